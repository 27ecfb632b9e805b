// Sans-io encoding of dqlite requests into a caller's buffer.
//
// Every function appends to a std::vector<std::byte>. A request is built as
//   auto f = begin_frame(buf, request::x);  ...put fields...;  end_frame(buf, f);
// or with one of the ready-made encode_* functions. Functions that take text return an
// error when the text contains a NUL byte (the protocol cannot carry it) and leave the
// buffer unchanged.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace dqlite::wire {

using buffer = std::vector<std::byte>;

namespace detail {

inline void put_le(buffer& b, std::uint64_t v, std::size_t n) {
  std::size_t at = b.size();
  b.resize(at + n);
  for (std::size_t i = 0; i < n; ++i) b[at + i] = static_cast<std::byte>(v >> (8 * i));
}

inline void pad_to_word(buffer& b) {
  std::size_t rem = b.size() % 8;
  if (rem != 0) b.resize(b.size() + (8 - rem), std::byte{0});
}

}  // namespace detail

inline void put_u8(buffer& b, std::uint8_t v) { b.push_back(static_cast<std::byte>(v)); }
inline void put_u32(buffer& b, std::uint32_t v) { detail::put_le(b, v, 4); }
inline void put_u64(buffer& b, std::uint64_t v) { detail::put_le(b, v, 8); }
inline void put_i64(buffer& b, std::int64_t v) { detail::put_le(b, static_cast<std::uint64_t>(v), 8); }
inline void put_double(buffer& b, double v) {
  std::uint64_t bits;
  static_assert(sizeof bits == sizeof v);
  std::memcpy(&bits, &v, sizeof bits);
  put_u64(b, bits);
}

/// True when text can be carried by the protocol (no embedded NUL).
inline bool is_valid_text(std::string_view s) noexcept {
  return s.empty() || std::memchr(s.data(), 0, s.size()) == nullptr;
}

/// Appends a text: bytes, NUL, zero padding to a whole word. The caller checks
/// is_valid_text first (put_text does not).
inline void put_text(buffer& b, std::string_view s) {
  std::size_t at = b.size();
  std::size_t padded = (s.size() + 1 + 7) & ~std::size_t{7};
  b.resize(at + padded, std::byte{0});
  if (!s.empty()) std::memcpy(b.data() + at, s.data(), s.size());
}

/// Appends a blob: u64 length, bytes, zero padding to a whole word.
inline void put_blob(buffer& b, std::span<const std::byte> data) {
  put_u64(b, data.size());
  std::size_t at = b.size();
  std::size_t padded = (data.size() + 7) & ~std::size_t{7};
  b.resize(at + padded, std::byte{0});
  if (!data.empty()) std::memcpy(b.data() + at, data.data(), data.size());
}

/// Position of a frame being built in a buffer.
struct frame_mark {
  std::size_t start;
};

/// Starts a frame: reserves the header.
DQLITE_DECL frame_mark begin_frame(buffer& b, request type, std::uint8_t schema = 0);

/// Sets the schema byte of a frame begun with begin_frame.
inline void set_frame_schema(buffer& b, frame_mark m, std::uint8_t schema) {
  b[m.start + 5] = static_cast<std::byte>(schema);
}

/// Completes a frame: pads the body to a whole word and writes its length.
inline void end_frame(buffer& b, frame_mark m) {
  detail::pad_to_word(b);
  std::size_t words = (b.size() - m.start - header_size) / 8;
  for (std::size_t i = 0; i < 4; ++i) b[m.start + i] = static_cast<std::byte>(words >> (8 * i));
}

/// Appends the protocol version that starts a connection.
inline void encode_handshake(buffer& b, std::uint64_t version = protocol_version) {
  put_u64(b, version);
}

/// Writer of a parameter tuple. Construct with the number of parameters, then add exactly
/// that many values. Schema 0 (u8 count) is used up to 255 parameters, schema 1 (u32 count)
/// above; schema() tells which, for the frame header.
class tuple_writer {
 public:
  tuple_writer(buffer& b, std::size_t count) : b_(b), count_(count) {
    if (count_ > max_schema0_params) {
      schema_ = 1;
      put_u32(b_, static_cast<std::uint32_t>(count_));
    } else {
      put_u8(b_, static_cast<std::uint8_t>(count_));
    }
    types_at_ = b_.size();
    b_.resize(b_.size() + count_, std::byte{0});
    detail::pad_to_word(b_);
  }

  std::uint8_t schema() const noexcept { return schema_; }
  std::size_t count() const noexcept { return count_; }
  std::size_t written() const noexcept { return index_; }

  void integer(std::int64_t v) {
    type(value_type::integer);
    put_i64(b_, v);
  }
  void floating(double v) {
    type(value_type::floating);
    put_double(b_, v);
  }
  /// Text must satisfy is_valid_text.
  void text(std::string_view v) {
    type(value_type::text);
    put_text(b_, v);
  }
  void blob(std::span<const std::byte> v) {
    type(value_type::blob);
    put_blob(b_, v);
  }
  void null() {
    type(value_type::null);
    put_u64(b_, 0);
  }
  /// A date/time as ISO-8601 text (bound by the server as text).
  void iso8601(std::string_view v) {
    type(value_type::iso8601);
    put_text(b_, v);
  }
  void boolean(bool v) {
    type(value_type::boolean);
    put_u64(b_, v ? 1 : 0);
  }

 private:
  void type(value_type t) {
    b_[types_at_ + index_] = static_cast<std::byte>(t);
    ++index_;
  }

  buffer& b_;
  std::size_t count_;
  std::size_t types_at_ = 0;
  std::size_t index_ = 0;
  std::uint8_t schema_ = 0;
};

/// Largest parameter count any encoding can carry.
inline constexpr std::size_t max_params = 0xffffffffu;

// ---- complete requests without parameters ----

inline void encode_leader(buffer& b) {
  auto m = begin_frame(b, request::leader);
  put_u64(b, 0);
  end_frame(b, m);
}

inline void encode_client(buffer& b, std::uint64_t id) {
  auto m = begin_frame(b, request::client);
  put_u64(b, id);
  end_frame(b, m);
}

inline error_code encode_open(buffer& b, std::string_view name, std::uint64_t flags = 0,
                              std::string_view vfs = {}) {
  if (!is_valid_text(name) || !is_valid_text(vfs)) return make_error_code(errc::invalid_argument);
  auto m = begin_frame(b, request::open);
  put_text(b, name);
  put_u64(b, flags);
  put_text(b, vfs);
  end_frame(b, m);
  return {};
}

inline error_code encode_prepare(buffer& b, std::uint64_t db, std::string_view sql) {
  if (!is_valid_text(sql)) return make_error_code(errc::invalid_argument);
  auto m = begin_frame(b, request::prepare);
  put_u64(b, db);
  put_text(b, sql);
  end_frame(b, m);
  return {};
}

inline void encode_finalize(buffer& b, std::uint32_t db, std::uint32_t stmt) {
  auto m = begin_frame(b, request::finalize);
  put_u32(b, db);
  put_u32(b, stmt);
  end_frame(b, m);
}

inline void encode_interrupt(buffer& b, std::uint64_t db) {
  auto m = begin_frame(b, request::interrupt);
  put_u64(b, db);
  end_frame(b, m);
}

inline error_code encode_add(buffer& b, std::uint64_t id, std::string_view address) {
  if (!is_valid_text(address)) return make_error_code(errc::invalid_argument);
  auto m = begin_frame(b, request::add);
  put_u64(b, id);
  put_text(b, address);
  end_frame(b, m);
  return {};
}

inline void encode_assign(buffer& b, std::uint64_t id, role r) {
  auto m = begin_frame(b, request::assign);
  put_u64(b, id);
  put_u64(b, static_cast<std::uint64_t>(r));
  end_frame(b, m);
}

inline void encode_remove(buffer& b, std::uint64_t id) {
  auto m = begin_frame(b, request::remove);
  put_u64(b, id);
  end_frame(b, m);
}

inline error_code encode_dump(buffer& b, std::string_view db_name) {
  if (!is_valid_text(db_name)) return make_error_code(errc::invalid_argument);
  auto m = begin_frame(b, request::dump);
  put_text(b, db_name);
  end_frame(b, m);
  return {};
}

inline void encode_cluster(buffer& b, std::uint64_t format = 1) {
  auto m = begin_frame(b, request::cluster);
  put_u64(b, format);
  end_frame(b, m);
}

inline void encode_transfer(buffer& b, std::uint64_t target_id) {
  auto m = begin_frame(b, request::transfer);
  put_u64(b, target_id);
  end_frame(b, m);
}

inline void encode_describe(buffer& b, std::uint64_t format = 0) {
  auto m = begin_frame(b, request::describe);
  put_u64(b, format);
  end_frame(b, m);
}

inline void encode_weight(buffer& b, std::uint64_t weight) {
  auto m = begin_frame(b, request::weight);
  put_u64(b, weight);
  end_frame(b, m);
}

// ---- requests with parameters: begin, write the tuple, end ----
//
//   auto m = begin_exec_sql(b, db, sql);            // or begin_exec / begin_query...
//   if (n > 0) { tuple_writer w(b, n); ...; set_frame_schema(b, m, w.schema()); }
//   end_frame(b, m);
// With no parameters the tuple is omitted.

/// EXEC (5) or QUERY (6) of a prepared statement: u32 db, u32 stmt.
inline frame_mark begin_stmt_request(buffer& b, request type, std::uint32_t db,
                                     std::uint32_t stmt) {
  auto m = begin_frame(b, type);
  put_u32(b, db);
  put_u32(b, stmt);
  return m;
}

/// EXEC_SQL (8) or QUERY_SQL (9): u64 db, text sql. Returns invalid_argument (buffer
/// unchanged) when sql holds a NUL.
inline error_code begin_sql_request(buffer& b, request type, std::uint64_t db,
                                    std::string_view sql, frame_mark& m) {
  if (!is_valid_text(sql)) return make_error_code(errc::invalid_argument);
  m = begin_frame(b, type);
  put_u64(b, db);
  put_text(b, sql);
  return {};
}

}  // namespace dqlite::wire

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/encode.ipp>
#endif
