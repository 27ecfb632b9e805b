// Constants of the dqlite wire protocol (version 1).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dqlite::wire {

/// The protocol version the client announces when a connection starts.
inline constexpr std::uint64_t protocol_version = 1;

/// Size of a frame header: u32 body words, u8 type, u8 schema, u16 unused.
inline constexpr std::size_t header_size = 8;

/// Default cap on a frame body, in bytes.
inline constexpr std::size_t default_max_frame_size = 64u * 1024u * 1024u;

/// Default cap on the columns of a result: SQLite's hard limit (SQLITE_MAX_COLUMN cannot
/// be compiled above 32767; its default is 2000), so no real server's result exceeds it.
inline constexpr std::size_t default_max_columns = 32767;

/// Longest server message (a FAILURE's text) the client keeps, in bytes; a longer one is
/// cut to this prefix.
inline constexpr std::size_t max_message_size = 64u * 1024u;

/// Request types (client to server).
enum class request : std::uint8_t {
  leader = 0,
  client = 1,
  heartbeat = 2,  // never sent: some servers do not answer it
  open = 3,
  prepare = 4,
  exec = 5,
  query = 6,
  finalize = 7,
  exec_sql = 8,
  query_sql = 9,
  interrupt = 10,
  connect = 11,  // node-to-node only
  add = 12,
  assign = 13,
  remove = 14,
  dump = 15,
  cluster = 16,
  transfer = 17,
  describe = 18,
  weight = 19,
};

/// Response types (server to client).
enum class response : std::uint8_t {
  failure = 0,
  server = 1,
  welcome = 2,
  servers = 3,
  db = 4,
  stmt = 5,
  result = 6,
  rows = 7,
  empty = 8,
  files = 9,
  metadata = 10,
};

inline constexpr std::uint8_t max_response_type = 10;

/// Value type codes.
enum class value_type : std::uint8_t {
  integer = 1,
  floating = 2,
  text = 3,
  blob = 4,
  null = 5,
  unixtime = 9,
  iso8601 = 10,
  boolean = 11,
};

inline constexpr bool is_known_value_type(unsigned code) noexcept {
  return (code >= 1 && code <= 5) || (code >= 9 && code <= 11);
}

/// Name of a value type, for messages.
inline constexpr const char* to_string(value_type t) noexcept {
  switch (t) {
    case value_type::integer: return "INTEGER";
    case value_type::floating: return "FLOAT";
    case value_type::text: return "TEXT";
    case value_type::blob: return "BLOB";
    case value_type::null: return "NULL";
    case value_type::unixtime: return "UNIXTIME";
    case value_type::iso8601: return "ISO8601";
    case value_type::boolean: return "BOOLEAN";
  }
  return "UNKNOWN";
}

/// Node roles.
enum class role : std::uint64_t { voter = 0, standby = 1, spare = 2 };

inline constexpr const char* to_string(role r) noexcept {
  switch (r) {
    case role::voter: return "voter";
    case role::standby: return "stand-by";
    case role::spare: return "spare";
  }
  return "unknown";
}

/// Markers that end a ROWS frame.
inline constexpr std::uint64_t rows_part_marker = 0xeeeeeeeeeeeeeeeeULL;
inline constexpr std::uint64_t rows_done_marker = 0xffffffffffffffffULL;

/// Largest parameter count of the schema-0 tuple (u8 count).
inline constexpr std::size_t max_schema0_params = 255;

}  // namespace dqlite::wire
