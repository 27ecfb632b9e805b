// Error codes, diagnostics and the exception type of dqlite-client.
#pragma once

#include <dqlite/detail/config.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite {

using error_code = boost::system::error_code;

/// Errors detected by the client itself (as opposed to failures reported by the server).
enum class errc : int {
  // Wire format problems: the stream can no longer be trusted, the connection is closed.
  frame_too_large = 1,       ///< a frame longer than the configured maximum
  truncated,                 ///< a length or value runs past the end of its frame
  unknown_message_type,      ///< a response type the protocol does not define
  unknown_value_type,        ///< a value type code the protocol does not define
  missing_nul,               ///< a text value without its terminating NUL
  bad_padding,               ///< non-zero padding bytes
  trailing_bytes,            ///< bytes left over after a complete message
  unexpected_response,       ///< a valid response of the wrong type for the request
  invalid_row_marker,        ///< a ROWS frame without a valid end marker
  // Misuse.
  operation_in_progress,  ///< a second operation while one is running on the connection
  not_connected,          ///< the connection is closed or was never opened
  used_after_fork,        ///< the connection was created in another process
  too_many_parameters,    ///< more parameters than the protocol can carry
  invalid_address,        ///< an address that is not host:port or [ipv6]:port
  invalid_argument,       ///< an argument the operation cannot accept
  // Results.
  no_rows,                ///< fetchval on a statement that returned no rows
  no_columns,             ///< fetchval on a statement that returned no columns
  type_mismatch,          ///< a value whose type cannot be converted to the requested one
  unexpected_null,        ///< a NULL value for a type that cannot hold it
  out_of_range,           ///< a value (integer, time) that does not fit the requested type
  column_mismatch,        ///< the columns do not match the fields of the row type
  result_too_large,       ///< a result (or cursor batch) over the configured row or byte cap
  invalid_time,           ///< a date/time text that cannot be parsed
  // Connection life.
  timeout,                ///< the operation did not finish within its time limit
  connection_closed,      ///< the peer closed the connection in the middle of a response
  cancelled,              ///< the operation was cancelled and the connection closed
  interrupted,            ///< the query was cancelled and interrupted; the connection is usable
  leadership_lost,        ///< the connection's node is no longer (or not) the leader
  outcome_unknown,        ///< a commit/write whose outcome cannot be known
  no_leader,              ///< no node of the cluster knows a leader
  pool_closed,            ///< the pool was closed
  // Wire format, continued (a protocol error like those above: the connection is closed).
  too_many_columns,  ///< a result with more columns than the configured maximum
  // Server answers.
  server_failure,         ///< a FAILURE without an error code (code 0)
  unsupported,            ///< the server's version cannot run the request correctly
};

namespace detail {

class client_category_impl final : public boost::system::error_category {
 public:
  // A fixed id makes the category identical across shared objects that each have a copy.
  constexpr client_category_impl() noexcept : error_category(0xd9c1e5a1f0e10001ULL) {}
  const char* name() const noexcept override { return "dqlite.client"; }
  std::string message(int ev) const override { return std::string(describe(ev)); }
  char const* message(int ev, char*, std::size_t) const noexcept override { return describe(ev); }

  static const char* describe(int ev) noexcept {
    switch (static_cast<errc>(ev)) {
      case errc::frame_too_large: return "frame larger than the configured maximum";
      case errc::truncated: return "malformed message: value runs past the end of the frame";
      case errc::unknown_message_type: return "malformed message: unknown response type";
      case errc::unknown_value_type: return "malformed message: unknown value type";
      case errc::missing_nul: return "malformed message: text value without terminating NUL";
      case errc::bad_padding: return "malformed message: non-zero padding";
      case errc::trailing_bytes: return "malformed message: trailing bytes after message";
      case errc::unexpected_response: return "unexpected response type for the request";
      case errc::invalid_row_marker: return "malformed message: rows without end marker";
      case errc::operation_in_progress:
        return "another operation is in progress on this connection";
      case errc::not_connected: return "the connection is not open";
      case errc::used_after_fork:
        return "the connection was created in another process (used after fork)";
      case errc::too_many_parameters: return "too many parameters";
      case errc::invalid_address: return "invalid address (expected host:port or [ipv6]:port)";
      case errc::invalid_argument: return "invalid argument";
      case errc::no_rows: return "the statement returned no rows";
      case errc::no_columns: return "the statement returned no columns";
      case errc::type_mismatch: return "value type does not match the requested type";
      case errc::unexpected_null: return "NULL value for a type that cannot hold NULL";
      case errc::out_of_range: return "value out of range for the requested type";
      case errc::column_mismatch: return "result columns do not match the row type";
      case errc::result_too_large: return "result exceeds the configured size limit";
      case errc::invalid_time: return "invalid date/time value";
      case errc::timeout: return "operation timed out";
      case errc::connection_closed: return "connection closed by the peer";
      case errc::cancelled: return "operation cancelled";
      case errc::interrupted: return "operation cancelled; the query was interrupted";
      case errc::leadership_lost: return "the node is not the leader";
      case errc::outcome_unknown: return "the outcome of the operation is unknown";
      case errc::no_leader: return "no leader found in the cluster";
      case errc::pool_closed: return "the pool is closed";
      case errc::too_many_columns: return "result with more columns than the configured maximum";
      case errc::server_failure: return "the server reported a failure without an error code";
      case errc::unsupported: return "the server's version cannot run this request correctly";
    }
    return "unknown dqlite client error";
  }
};

class server_category_impl final : public boost::system::error_category {
 public:
  constexpr server_category_impl() noexcept : error_category(0xd9c1e5a1f0e10002ULL) {}
  const char* name() const noexcept override { return "dqlite.server"; }
  std::string message(int ev) const override { return std::string(describe(ev)); }
  char const* message(int ev, char*, std::size_t) const noexcept override { return describe(ev); }

  static const char* describe(int ev) noexcept {
    switch (ev) {
      case 0: return "server error (code 0)";
      case 1: return "SQL error";
      case 5: return "database is locked (SQLITE_BUSY)";
      case 6: return "table is locked (SQLITE_LOCKED)";
      case 12: return "not found (SQLITE_NOTFOUND)";
      case 19: return "constraint failed (SQLITE_CONSTRAINT)";
      case 20: return "datatype mismatch (SQLITE_MISMATCH)";
      case 21: return "library misuse (SQLITE_MISUSE)";
      case 25: return "parameter index out of range (SQLITE_RANGE)";
      case 1002: return "dqlite: not found";
      case 1005: return "dqlite: unknown request type, schema or format";
      case 8202:
      case 10250: return "not leader";
      case 8458:
      case 10506: return "leadership lost";
      default: break;
    }
    switch (ev & 0xff) {
      case 1: return "SQL error";
      case 5: return "database is locked (SQLITE_BUSY)";
      case 10: return "disk I/O error (SQLITE_IOERR)";
      case 19: return "constraint failed (SQLITE_CONSTRAINT)";
      default: return "server error";
    }
  }
};

}  // namespace detail

/// The category of errc.
DQLITE_DECL const boost::system::error_category& client_category() noexcept;

/// The category of failures reported by the server: the value is the SQLite/dqlite code.
DQLITE_DECL const boost::system::error_category& server_category() noexcept;

inline error_code make_error_code(errc e) noexcept {
  return error_code(static_cast<int>(e), client_category());
}

/// Builds the error_code of a server FAILURE response. A FAILURE with code 0 (libdqlite
/// sends it, e.g. for "empty statement") is errc::server_failure: an error_code of value 0
/// would read as success.
inline error_code make_server_error(std::uint64_t code) noexcept {
  const int v = static_cast<int>(code & 0x7fffffff);
  if (v == 0) return make_error_code(errc::server_failure);
  return error_code(v, server_category());
}

/// Server codes worth naming.
namespace server_code {
inline constexpr int sqlite_error = 1;
inline constexpr int busy = 5;
inline constexpr int locked = 6;
inline constexpr int notfound = 12;
inline constexpr int constraint = 19;
inline constexpr int range = 25;
inline constexpr int not_leader = 10250;
inline constexpr int not_leader_legacy = 8202;
inline constexpr int leadership_lost = 10506;
inline constexpr int leadership_lost_legacy = 8458;
inline constexpr int dqlite_parse = 1005;
inline constexpr int dqlite_notfound = 1002;
}  // namespace server_code

/// Text that goes with an error: the server's message, or details found by the client.
class diagnostics {
 public:
  diagnostics() = default;
  explicit diagnostics(std::string msg) : msg_(std::move(msg)) {}
  const std::string& message() const noexcept { return msg_; }
  bool empty() const noexcept { return msg_.empty(); }
  void clear() noexcept { msg_.clear(); }
  void assign(std::string_view msg) { msg_.assign(msg.data(), msg.size()); }
  friend bool operator==(const diagnostics&, const diagnostics&) = default;

 private:
  std::string msg_;
};

/// The exception thrown by the throwing forms: the error_code plus the diagnostics text.
/// what() reads "<diagnostics>: <code message> [<category>:<value>]".
class error : public boost::system::system_error {
 public:
  error(error_code ec, diagnostics diag)
      : system_error(ec), diag_(std::move(diag)), what_(format(ec, diag_)) {}
  explicit error(error_code ec) : error(ec, diagnostics{}) {}
  const diagnostics& get_diagnostics() const noexcept { return diag_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  static std::string format(const error_code& ec, const diagnostics& d);

  diagnostics diag_;
  std::string what_;
};

namespace detail {

/// Refuses an option value that cannot work: unless `ok`, throws dqlite::error
/// (errc::invalid_argument) whose text is "<options>: <what>", e.g.
/// "pool_options: max_size must be at least 1".
inline void require_option(bool ok, std::string_view options, std::string_view what) {
  if (ok) return;
  std::string text(options);
  text += ": ";
  text += what;
  throw error(make_error_code(errc::invalid_argument), diagnostics(std::move(text)));
}

/// The name of a request type code (a frame header's type byte), for messages.
inline const char* request_name(unsigned type) noexcept {
  switch (type) {
    case 0: return "LEADER";
    case 1: return "CLIENT";
    case 2: return "HEARTBEAT";
    case 3: return "OPEN";
    case 4: return "PREPARE";
    case 5: return "EXEC";
    case 6: return "QUERY";
    case 7: return "FINALIZE";
    case 8: return "EXEC_SQL";
    case 9: return "QUERY_SQL";
    case 10: return "INTERRUPT";
    case 12: return "ADD";
    case 13: return "ASSIGN";
    case 14: return "REMOVE";
    case 15: return "DUMP";
    case 16: return "CLUSTER";
    case 17: return "TRANSFER";
    case 18: return "DESCRIBE";
    case 19: return "WEIGHT";
    default: return nullptr;
  }
}

/// The diagnostics text of a FAILURE response (code, message) to `request`, the encoded
/// request frame (header and body; empty when the frames being read answer an earlier
/// request, as a cursor's next batch does). The server's message is kept as it is, except
/// where it says nothing useful: libdqlite answers some failures with code 0, with an empty
/// message, or with SQLite's text for code 0, "not an error". Those are explained from what
/// was sent. Facts (libdqlite 1.11.1 and 1.18.6):
/// - a QUERY / QUERY_SQL of a statement that returns no rows (CREATE, INSERT...) fails on
///   1.11.1 with code 1 and "not an error", and nothing is applied; 1.18 runs it;
/// - a request whose parameters use schema 1 (more than 255 parameters) fails on 1.11.1
///   with code 1005 and "not an error" (or an empty message), when it is not mis-read;
/// - a QUERY_SQL or PREPARE of a text without a statement fails with code 0 and
///   "empty statement".
DQLITE_DECL std::string describe_failure(std::uint64_t code, std::string_view message,
                                         std::span<const std::byte> request);

/// A std::exception_ptr to dqlite::error(ec, *d) (to an error without diagnostics when d is
/// null): what the default token's handlers complete with on a failure. Compiled once, not
/// once per handler type.
DQLITE_DECL std::exception_ptr make_error_ptr(const error_code& ec, const diagnostics* d);

}  // namespace detail

// ---- classification ----

/// The node is not the leader, or stopped being the leader: use another connection.
inline bool is_not_leader(const error_code& ec) noexcept {
  if (ec.category() == server_category()) {
    int v = ec.value();
    return v == server_code::not_leader || v == server_code::not_leader_legacy;
  }
  return ec == make_error_code(errc::leadership_lost);
}

/// Leadership was lost while a write was being replicated: its outcome is unknown.
inline bool is_leadership_lost(const error_code& ec) noexcept {
  if (ec.category() == server_category()) {
    int v = ec.value();
    return v == server_code::leadership_lost || v == server_code::leadership_lost_legacy;
  }
  return false;
}

/// SQLITE_BUSY or SQLITE_LOCKED (including their extended codes).
inline bool is_busy(const error_code& ec) noexcept {
  if (ec.category() != server_category()) return false;
  int primary = ec.value() & 0xff;
  return primary == server_code::busy || primary == server_code::locked;
}

/// A constraint violation (UNIQUE, NOT NULL, CHECK, FOREIGN KEY...).
inline bool is_constraint(const error_code& ec) noexcept {
  return ec.category() == server_category() && (ec.value() & 0xff) == server_code::constraint;
}

/// The operation was cancelled (errc::interrupted: the connection stays usable;
/// errc::cancelled: it was closed).
inline bool is_cancelled(const error_code& ec) noexcept {
  return ec == make_error_code(errc::cancelled) || ec == make_error_code(errc::interrupted);
}

/// The outcome of a write cannot be known (it may or may not have been applied).
inline bool is_outcome_unknown(const error_code& ec) noexcept {
  return ec == make_error_code(errc::outcome_unknown) || is_leadership_lost(ec);
}

/// A wire-format error: the stream can no longer be trusted.
inline bool is_protocol_error(const error_code& ec) noexcept {
  if (ec.category() != client_category()) return false;
  int v = ec.value();
  return (v >= static_cast<int>(errc::frame_too_large) &&
          v <= static_cast<int>(errc::invalid_row_marker)) ||
         v == static_cast<int>(errc::too_many_columns);
}

/// The connection that reported this error must not be used again (the Go client's rule:
/// leadership errors, "no database"/"no statement" after a leader change, protocol errors,
/// transport errors and timeouts).
inline bool is_connection_error(const error_code& ec) noexcept {
  if (!ec) return false;
  if (ec.category() == server_category()) {
    int v = ec.value();
    return v == server_code::not_leader || v == server_code::not_leader_legacy ||
           v == server_code::leadership_lost || v == server_code::leadership_lost_legacy ||
           v == server_code::notfound;
  }
  if (ec.category() == client_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::timeout:
      case errc::connection_closed:
      case errc::cancelled:
      case errc::not_connected:
      case errc::used_after_fork:
      case errc::leadership_lost:
      case errc::outcome_unknown:
      case errc::no_leader: return true;
      default: return is_protocol_error(ec);
    }
  }
  // Transport (system, asio, ssl) errors.
  return true;
}

/// Retrying the operation on a fresh connection (possibly to another node) may succeed.
/// Writes should only be retried when they are idempotent: see is_outcome_unknown.
inline bool is_retryable(const error_code& ec) noexcept {
  if (!ec) return false;
  if (is_busy(ec)) return true;
  if (is_outcome_unknown(ec) || is_cancelled(ec)) return false;  // cancelled: the caller stopped it
  return is_connection_error(ec) && ec != make_error_code(errc::used_after_fork);
}

}  // namespace dqlite

namespace boost::system {
template <>
struct is_error_code_enum<::dqlite::errc> : std::true_type {};
}  // namespace boost::system

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/error.ipp>
#endif
