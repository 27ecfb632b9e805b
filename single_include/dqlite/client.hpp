// dqlite-client for C++: single-header distribution.
//
// GENERATED FILE - DO NOT EDIT BY HAND.
// It is generated from the headers under include/ by tools/amalgamate.py.
// Edit those headers instead, then run: python3 tools/amalgamate.py
//
// Copyright (c) 2026 The dqlite-client for C++ authors
// SPDX-License-Identifier: MIT (see LICENSE.md)

#ifndef DQLITE_SINGLE_INCLUDE_CLIENT_HPP
#define DQLITE_SINGLE_INCLUDE_CLIENT_HPP

// ---- begin dqlite/client.hpp ----
// dqlite-client for C++: the whole library.

// ---- begin dqlite/address.hpp ----
// Parsing node addresses: "host:port", "[ipv6]:port".

// ---- begin dqlite/detail/config.hpp ----
// How the library's functions that do not depend on the user's types are compiled.
//
// Header-only (the default): they are `inline`, defined in the headers (each header
// includes its part of include/dqlite/impl/*.ipp at its end).
//
// With DQLITE_CLIENT_SEPARATE_COMPILATION: they are declared only, and defined once, in
// the unit that includes <dqlite/src.hpp> (which includes every impl/*.ipp). The other
// units neither parse nor compile their bodies.

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
#define DQLITE_DECL
#else
#define DQLITE_DECL inline
#endif
// ---- end dqlite/detail/config.hpp ----
// ---- begin dqlite/error.hpp ----
// Error codes, diagnostics and the exception type of dqlite-client.


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
// ---- begin dqlite/impl/error.ipp ----
// Definitions of error.hpp (see detail/config.hpp).


namespace dqlite {

DQLITE_DECL const boost::system::error_category& client_category() noexcept {
  static const detail::client_category_impl cat;
  return cat;
}

DQLITE_DECL const boost::system::error_category& server_category() noexcept {
  static const detail::server_category_impl cat;
  return cat;
}

DQLITE_DECL std::string error::format(const error_code& ec, const diagnostics& d) {
  std::string msg = ec.message();
  std::string out = d.message();
  if (out.empty())
    out = msg;
  else if (out.find(msg) == std::string::npos)
    out += ": " + msg;
  out += " [";
  out += ec.category().name();
  out += ':';
  out += std::to_string(ec.value());
  out += ']';
  return out;
}

namespace detail {

DQLITE_DECL std::exception_ptr make_error_ptr(const error_code& ec, const diagnostics* d) {
  return std::make_exception_ptr(error(ec, d ? *d : diagnostics{}));
}

DQLITE_DECL std::string describe_failure(std::uint64_t code, std::string_view message,
                                       std::span<const std::byte> request) {
const bool has_request = request.size() >= 8;
const unsigned type = has_request ? static_cast<unsigned>(request[4]) : 256u;
const unsigned schema = has_request ? static_cast<unsigned>(request[5]) : 0u;
const char* name = request_name(type);
const std::string to = name != nullptr ? std::string(" to ") + name : std::string();
const bool is_query = type == 6 || type == 9;
const bool says_nothing = message.empty() || message == "not an error";
const std::string server_text =
    message.empty() ? std::string("no message") : "\"" + std::string(message) + "\"";

if (code == 0 && message == "empty statement")
  return "the SQL text holds no statement (the server answered" + to + ": empty statement)";
if (!says_nothing && code != 0) return std::string(message);
if (code == 1005) {
  std::string out = "the server could not read the" + (name ? " " + std::string(name) : std::string()) +
                    " request (code 1005, DQLITE_PARSE: unknown request type, schema or format; "
                    "the server's text: " + server_text + ")";
  if (schema == 1)
    out += ": it does not understand the parameter encoding used for more than 255 "
           "parameters (schema 1, understood from libdqlite 1.12; 1.11.1 does not); nothing "
           "was applied";
  return out;
}
if (code == 1 && is_query && message == "not an error")
  return "the statement returns no rows, and this server version cannot run such a "
         "statement as a query (libdqlite 1.11.1 answers so; 1.18 runs it): nothing was "
         "applied; run it with execute";
if (code == 0)
  return "the server reported a failure without an error code" + to + " (the server's text: " +
         server_text + ")";
return "the server reported code " + std::to_string(code) + " (" +
       server_category().message(static_cast<int>(code & 0x7fffffff)) + ")" + to +
       " without an explanation (the server's text: " + server_text + ")";
}

}  // namespace detail

}  // namespace dqlite
// ---- end dqlite/impl/error.ipp ----
#endif
// ---- end dqlite/error.hpp ----

#include <cstdint>
#include <string>
#include <string_view>

namespace dqlite {

/// A node address split into host and port.
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

/// Splits "host:port" or "[ipv6]:port". The port is required (1-65535).
/// Ends with errc::invalid_address (and leaves `out` as it was) when the address is not
/// of that form; a host is not resolved here.
DQLITE_DECL error_code parse_address(std::string_view address, host_port& out);

}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/address.ipp ----
// Definitions of address.hpp (see detail/config.hpp).


#include <charconv>

namespace dqlite {

DQLITE_DECL error_code parse_address(std::string_view address, host_port& out) {
  auto bad = make_error_code(errc::invalid_address);
  std::string_view host, port;
  if (!address.empty() && address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':')
      return bad;
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad;  // IPv6 needs brackets
  }
  if (host.empty() || port.empty()) return bad;
  for (char c : host)
    if (c == ' ' || c == '/' || c == '[' || c == ']' || static_cast<unsigned char>(c) < 0x21)
      return bad;
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535)
    return bad;
  out.host.assign(host.data(), host.size());
  out.port = static_cast<std::uint16_t>(value);
  return {};
}

}  // namespace dqlite
// ---- end dqlite/impl/address.ipp ----
#endif
// ---- end dqlite/address.hpp ----
// ---- begin dqlite/blocking_cluster.hpp ----
// dqlite::blocking_cluster: the cluster client (leader discovery, administration through
// the leader) for programs without an event loop of their own.

// ---- begin dqlite/cluster.hpp ----
// The cluster client: leader discovery, connecting to the leader with retries, cluster
// administration. Its parts: cluster_options.hpp, detail/cluster/ (backoff, results,
// discovery, requests on the leader).

// ---- begin dqlite/cluster_options.hpp ----
// Options of the cluster client: leader discovery, retries and backoff.

// ---- begin dqlite/options.hpp ----
// Options of a connection.

// ---- begin dqlite/observe.hpp ----
// Logging and tracing hooks: what a connection, a cluster client and a pool say about
// what they do (docs/observability.md lists every event).


#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite {

/// Severity of a log event. A hook is called for the events at or above the threshold
/// of the options that set it (log_threshold); `off` as a threshold silences every event.
enum class log_level : std::uint8_t { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

/// "debug", "info", "warning", "error" or "off".
constexpr std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
    case log_level::off: return "off";
  }
  return "?";
}

namespace detail {

/// A non-owning reference to a callable of signature R(A...), called through a noexcept
/// thunk: an exception escaping the callable calls std::terminate. Trivially copyable, so
/// that the options structs that hold one stay free of owning members.
template <class R, class... A>
class basic_hook_ref {
  using fn_type = R (*)(A...);

 public:
  constexpr basic_hook_ref() noexcept = default;
  constexpr basic_hook_ref(std::nullptr_t) noexcept {}

  /// A plain function, or a lambda without captures (converted to a function pointer).
  template <class F>
    requires std::is_convertible_v<F, fn_type> &&
             (!std::is_same_v<std::decay_t<F>, basic_hook_ref>)
  constexpr basic_hook_ref(F&& f) noexcept : fn_(static_cast<fn_type>(f)), thunk_(&call_fn) {}

  /// Any other callable, by reference: it must outlive every object the hook is given to.
  template <class F>
    requires(!std::is_convertible_v<F&, fn_type>) &&
            (!std::is_same_v<std::remove_const_t<F>, basic_hook_ref>) &&
            std::is_invocable_r_v<R, F&, A...>
  constexpr basic_hook_ref(F& f) noexcept
      : obj_(static_cast<const void*>(std::addressof(f))), thunk_(&call_obj<F>) {}

  /// A temporary callable with state would dangle: refused.
  template <class F>
    requires(!std::is_convertible_v<F, fn_type>) && (!std::is_lvalue_reference_v<F>) &&
            (!std::is_same_v<std::decay_t<F>, basic_hook_ref>) &&
            std::is_invocable_r_v<R, F&, A...>
  basic_hook_ref(F&& f) = delete;

  constexpr explicit operator bool() const noexcept { return thunk_ != nullptr; }

  R operator()(A... a) const noexcept { return thunk_(*this, a...); }

 private:
  static R call_fn(const basic_hook_ref& h, A... a) noexcept { return h.fn_(a...); }
  template <class F>
  static R call_obj(const basic_hook_ref& h, A... a) noexcept {
    return (*static_cast<F*>(const_cast<void*>(h.obj_)))(a...);
  }

  fn_type fn_ = nullptr;
  const void* obj_ = nullptr;
  R (*thunk_)(const basic_hook_ref&, A...) noexcept = nullptr;
};

/// A hook that returns nothing.
template <class... A>
using hook_ref = basic_hook_ref<void, A...>;

}  // namespace detail

/// The logging hook: `void(log_level level, std::string_view event, std::string_view
/// message)`. `event` is a short fixed name (the list is in docs/observability.md, e.g.
/// "connect_failed", "redirect", "leader_changed"), `message` a sentence for people that
/// names the node and the cause. Both views are valid during the call only.
///
/// It refers to the callable without owning it: a plain function or a lambda without
/// captures is kept as a function pointer; any other callable is referred to, and must
/// outlive every connection, cluster and pool whose options hold the hook (a temporary
/// with state is refused at compile time). The library never throws through a hook: an
/// exception escaping it calls std::terminate (make it noexcept).
///
/// When no hook is set, or the event's level is below the threshold, nothing is
/// formatted: the message is built only for the events that are delivered.
using log_function = detail::hook_ref<log_level, std::string_view, std::string_view>;

/// What the tracing hook receives, twice per request: when it starts (phase::start) and
/// when it ends (phase::end: the outcome fields are set).
struct request_trace {
  enum class phase : std::uint8_t { start, end };
  phase at = phase::start;
  /// The request: "EXEC_SQL" or "QUERY_SQL" (SQL text), "EXEC" or "QUERY" (a prepared
  /// statement), "PREPARE", "FINALIZE", "OPEN", "LEADER", "CLUSTER", "ADD", "ASSIGN",
  /// "REMOVE", "TRANSFER", "DESCRIBE", "WEIGHT", "DUMP"; "ROWS" for the next batch of a
  /// cursor (nothing is sent: more rows of the result are read); "HANDSHAKE" for
  /// async_handshake over a stream connected by the caller (the protocol version and OPEN);
  /// "NONE" when the request failed before it could be encoded.
  std::string_view request;
  /// The SQL text (EXEC_SQL, QUERY_SQL, PREPARE), empty otherwise.
  std::string_view sql;
  /// The statement id (EXEC, QUERY, FINALIZE), 0 otherwise.
  std::uint32_t statement_id = 0;
  /// Parameters bound to the statement.
  std::size_t parameters = 0;
  /// The node ("host:port", "unix:path") and the database of the connection.
  std::string_view node;
  std::string_view database;
  /// Identify the request across its two calls: the connection (an address, stable while
  /// it lives) and the request's number on it (increasing).
  const void* connection = nullptr;
  std::uint64_t sequence = 0;
  /// Run by a blocking call (in the calling thread) rather than an asynchronous one.
  bool blocking = false;

  // ---- set at phase::end ----
  /// Time from the start of the request to its end (including requests the client sent
  /// first to clean up after dropped objects, and the drain of an interrupted query).
  std::chrono::nanoseconds duration{0};
  /// Result rows received (kept or read past) by this request.
  std::uint64_t rows = 0;
  /// Bytes sent (the request) and received (frame headers included) by this request.
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  /// How it ended: a default error_code on success.
  error_code error{};
  /// The diagnostics text of a failure (the server's message or the client's
  /// explanation), empty on success.
  std::string_view message;
};

/// The tracing hook: `void(const request_trace&)`, called at the start and at the end of
/// every request a connection runs (statements, prepared statement requests, cursor
/// batches, administration requests, asynchronous and blocking). The trace and its views
/// are valid during the call only. Same ownership and exception rules as log_function.
using trace_function = detail::hook_ref<const request_trace&>;

namespace detail {

/// A log hook and its threshold; builds a message only for an event it delivers.
struct logger {
  log_function fn{};
  log_level threshold = log_level::info;

  bool on(log_level l) const noexcept { return fn && l >= threshold && l != log_level::off; }

  /// Calls the hook with make() (a callable returning the message) if l passes.
  template <class Make>
  void operator()(log_level l, std::string_view event, Make&& make) const {
    if (!on(l)) [[likely]]
      return;
    fn(l, event, std::string_view(make()));
  }
};

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/observe.hpp ----
// ---- begin dqlite/wire/protocol.hpp ----
// Constants of the dqlite wire protocol (version 1).

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
// ---- end dqlite/wire/protocol.hpp ----

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dqlite {

/// How a connection opens and behaves. Designated initialisers keep call sites short:
///   auto db = co_await dqlite::async_connect(ex, "127.0.0.1:9001", {.database = "app"});
/// The struct holds no owning members on purpose (so a temporary of it is safe inside a
/// co_await expression with every compiler); the connection keeps its own copy of the
/// database name.
struct connection_options {
  /// The database to open (created on first use). Empty: the connection opens no
  /// database and serves cluster administration only (leader, cluster, add...); the
  /// handshake then asks the node for the leader instead, so it still waits for an answer.
  /// basic_connection::async_open_database opens one later.
  std::string_view database = "default";
  /// Bound on resolve + TCP connect + handshake + OPEN. Zero or less: no bound.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Bound on each request, from sending it to the last frame of its response. Zero or
  /// less: no bound. On expiry the operation fails with errc::timeout and the connection
  /// is closed (the server may still be working on the request).
  std::chrono::milliseconds request_timeout{60'000};
  /// Bound on reading the rest of a result the client interrupted (a cancelled query, a
  /// closed or dropped cursor, a fetch over its cap) when request_timeout is zero or less;
  /// with a request_timeout, that bound covers the drain too. The server keeps sending the interrupted result's rows until it
  /// has finished the query (libdqlite answers INTERRUPT only then); on expiry the
  /// operation fails with errc::timeout and the connection is closed. Zero or less: none.
  std::chrono::milliseconds interrupt_timeout{30'000};
  /// Largest frame body accepted from the server; a larger one fails the operation with
  /// errc::frame_too_large and closes the connection.
  std::size_t max_frame_size = wire::default_max_frame_size;
  /// Caps on one result; the row that crosses one fails the operation with
  /// errc::result_too_large at once (that row is not kept, nothing after it is decoded;
  /// the rest of the result is interrupted before the connection's next request, and
  /// the connection stays usable). Zero: no cap.
  ///
  /// max_result_rows: rows read from the result, whether kept (fetch, fetchall,
  /// fetch_into) or read past (fetchone and fetchval keep the first row and read the
  /// rest). Not applied to cursors.
  std::size_t max_result_rows = 0;
  /// max_result_bytes: bytes of memory the rows kept hold (the row objects, vector slots
  /// included, and the heap memory of their strings, blobs and values, with a
  /// per-allocation overhead), plus the wire size of the rows read past. A cursor applies
  /// it to each batch.
  std::size_t max_result_bytes = std::size_t{1} << 30;
  /// Most columns a result may have. A ROWS frame announcing more fails the operation
  /// with errc::too_many_columns and closes the connection. The default is SQLite's hard
  /// limit (32767), which no server's result exceeds.
  std::size_t max_result_columns = wire::default_max_columns;
  /// Typed rows: a result column that matches no field of the row type is an error
  /// (errc::column_mismatch) instead of being ignored.
  bool reject_extra_columns = false;
  /// TCP keepalive of the connection's socket (TCP and TLS over TCP): when positive,
  /// SO_KEEPALIVE is set and the kernel sends the first probe after this much idle time
  /// and the next ones this far apart (TCP_KEEPIDLE, TCP_KEEPINTVL, whole seconds, at least
  /// 1), so that a peer that vanished without closing (a powered-off host, a dropped NAT
  /// entry) is noticed by an idle connection too. Zero (the default): the system's setting
  /// (usually off). As net.Dialer.KeepAlive in Go. Applied when the library connects the
  /// socket (async_connect, and the connectors built on it); a connector of the caller's
  /// that connects the socket itself sets it itself.
  std::chrono::seconds tcp_keepalive{0};
  /// Logging hook for the connection's events (connect, connected, connect_failed,
  /// timeout, interrupted, connection_broken: see docs/observability.md), called for those
  /// at or above log_threshold. Empty (the default): nothing is logged and no message is
  /// built. Called on the connection's executor (in the calling thread for blocking
  /// operations), never concurrently for one connection.
  log_function log{};
  log_level log_threshold = log_level::info;
  /// Tracing hook: called at the start and at the end of every request (see
  /// request_trace), on the connection's executor (in the calling thread for blocking
  /// operations), never concurrently for one connection. Empty (the default): no clock is
  /// read and nothing is recorded.
  trace_function trace{};
};

}  // namespace dqlite
// ---- end dqlite/options.hpp ----

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dqlite {

/// A predicate on node addresses, `bool(std::string_view address)`, held by reference (see
/// cluster_options::follow_redirect).
using address_filter = detail::basic_hook_ref<bool, std::string_view>;

/// How a cluster client finds the leader and retries. Designated initialisers:
///   dqlite::cluster c(ex, {"10.0.0.1:9001", "10.0.0.2:9001"},
///                     {.connection = {.database = "app"}, .retry_timeout = 5s});
struct cluster_options {
  /// Options of the connections to the leader that async_connect makes: the database to
  /// open (empty: none, for administration), timeouts, caps. The cluster keeps a copy of
  /// the database name.
  connection_options connection{};
  /// Bound on asking one node for the leader: TCP connect, handshake and LEADER. Must be
  /// positive.
  std::chrono::milliseconds probe_timeout{2'000};
  /// How many nodes are asked at the same time (at least 1).
  std::size_t max_concurrent_probes = 10;
  /// Attempts to find the leader (and, for async_connect, to open the database on it)
  /// before giving up. 0: no limit by count.
  unsigned max_attempts = 0;
  /// Bound on the time of all attempts together; a probe never outlasts it. 0 or less: no
  /// limit by time. With no limit at all (both 0) one attempt is made.
  std::chrono::milliseconds retry_timeout{30'000};
  /// Pause before attempt n + 1: backoff_base * backoff_factor^(n - 1), at most
  /// backoff_cap; with backoff_jitter, a random duration between half of that and all of
  /// it (so that clients do not retry in step).
  std::chrono::milliseconds backoff_base{100};
  unsigned backoff_factor = 2;
  std::chrono::milliseconds backoff_cap{1'000};
  bool backoff_jitter = true;
  /// After each successful discovery, replace the content of the node store with the
  /// leader's list of members (as async_refresh_store does). A refresh that fails (a store
  /// that cannot be written) does not fail the discovery: see basic_cluster::store_error().
  bool refresh_store = false;
  /// Which addresses a node's answer may lead to. When set, a node that names another node
  /// as the leader (or, knowing no leader, lists members to ask) is followed only to the
  /// addresses for which it returns true; the others are refused (counted in
  /// cluster_stats::redirects_refused, named in the errc::no_leader text) and discovery
  /// goes on with the nodes of the node store. Empty: every address is followed. The
  /// nodes of the node store itself are always asked. Called on the cluster's strand.
  /// Non-owning, with the rules of log_function: a plain function or a lambda without
  /// captures is kept as a function pointer, any other callable must outlive the cluster
  /// (or pool), and an exception escaping it calls std::terminate.
  address_filter follow_redirect{};
  /// Logging hook for the cluster's events (discovery, probes, redirects, leader
  /// changes, backoff: see docs/observability.md), called for those at or above
  /// log_threshold, on the cluster's strand, never concurrently for one cluster. The
  /// connections async_connect returns use connection.log (and its threshold) when set,
  /// else this one. The connections that only ask a node for the leader log nothing of
  /// their own: the cluster reports their probes.
  log_function log{};
  log_level log_threshold = log_level::info;
  /// Tracing hook of the connections async_connect returns, when connection.trace is
  /// not set (see request_trace).
  trace_function trace{};
};

/// Counters of a cluster client (see basic_cluster::stats).
struct cluster_stats {
  std::uint64_t discoveries = 0;  ///< leader discoveries run (one shared by callers counts once)
  std::uint64_t probes = 0;       ///< nodes asked for the leader (a redirect's target included)
  std::uint64_t probe_failures = 0;  ///< nodes that could not be asked (connect, handshake, LEADER)
  std::uint64_t redirects = 0;    ///< answers naming another node, followed
  std::uint64_t redirects_refused = 0;  ///< of those, the named node did not confirm it leads
  std::uint64_t leader_changes = 0;     ///< a discovery found another leader than the last one
  std::uint64_t retries = 0;      ///< pauses (backoff) between attempts to reach the leader
  /// Connections to the leader made (async_connect, the pool, administration requests).
  std::uint64_t connections = 0;
  std::string last_leader;        ///< address of the last leader found (empty: none yet)
  std::uint64_t last_leader_id = 0;  ///< its node id
};

}  // namespace dqlite
// ---- end dqlite/cluster_options.hpp ----
// ---- begin dqlite/detail/cluster/backoff.hpp ----
// The pause between attempts: exponential backoff with a cap, and jitter.


#include <algorithm>
#include <chrono>

namespace dqlite::detail {

/// The pause before attempt `attempt + 1` after `attempt` failed ones (attempt >= 1),
/// without jitter.
inline std::chrono::milliseconds backoff_delay(const cluster_options& o, unsigned attempt) {
  using ms = std::chrono::milliseconds;
  if (o.backoff_base.count() <= 0) return ms{0};
  const auto cap = std::max(o.backoff_cap, ms{0});
  auto d = o.backoff_base;
  for (unsigned i = 1; i < attempt && d < cap; ++i) {
    if (o.backoff_factor <= 1) break;
    if (d.count() > cap.count() / static_cast<ms::rep>(o.backoff_factor)) {
      d = cap;
      break;
    }
    d *= o.backoff_factor;
  }
  return std::min(d, cap);
}

/// A random duration between d / 2 and d (d itself when d <= 1 ms), from a generator seeded
/// anew from std::random_device for each call (from the clock when it has no entropy);
/// defined in impl/backoff.ipp, so that <random> is parsed only where that file is compiled.
DQLITE_DECL std::chrono::milliseconds jittered(std::chrono::milliseconds d);

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/backoff.ipp ----
// Definitions of detail/cluster/backoff.hpp (see detail/config.hpp).


#include <chrono>
#include <random>

namespace dqlite::detail {

DQLITE_DECL std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
  if (d.count() <= 1) return d;
  // A fresh seed for every pause (there is one per retry, not one per request): no state
  // shared between threads, and none a forked process would share with its parent.
  std::random_device::result_type seed;
  try {
    seed = std::random_device{}();
  } catch (...) {  // no source of entropy: the clock will do for spreading retries
    seed = static_cast<std::random_device::result_type>(
        std::chrono::steady_clock::now().time_since_epoch().count());
  }
  std::minstd_rand rng(seed);
  std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(rng));
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/backoff.ipp ----
#endif
// ---- end dqlite/detail/cluster/backoff.hpp ----
// ---- begin dqlite/detail/cluster/discovery.hpp ----
// The state of a cluster client, and leader discovery: probes, shared discoveries, connecting to the leader with retries.

// ---- begin dqlite/detail/cluster/result.hpp ----
// The result of a cluster or pool operation, cancellation, and the report of failed attempts.


// ---- begin dqlite/connection.hpp ----
// One connection to a dqlite node.

// ---- begin dqlite/detail/admin_procs.hpp ----
// Response processors of the cluster administration requests (see exchange.hpp for the
// Proc interface).

// ---- begin dqlite/detail/exchange.hpp ----
// The I/O loop: one small Asio composed operation per stream type that drives the sans-io
// machines of detail/sansio/ (a request exchange, or the opening of a connection with its
// transport steps) over a connection's stream, and owns the connection's one timer.

// ---- begin dqlite/detail/sansio/connect_machine.hpp ----
// Opening a connection as a sans-io state machine: the transport connect (and the TLS
// handshake for TLS streams), then the dqlite handshake and OPEN as one exchange. No Asio:
// the I/O loop (detail/exchange.hpp) resolves, connects and runs the TLS handshake when
// asked to.

// ---- begin dqlite/detail/sansio/exchange_machine.hpp ----
// The request exchange as a sans-io state machine: housekeeping requests left behind by
// dropped objects, the request itself, its response frames, INTERRUPT and drain on
// cancellation, failure mapping, and the rule for when the connection must be closed.
// No Asio: an I/O loop (detail/exchange.hpp) performs the actions it asks for.

// ---- begin dqlite/detail/sansio/io.hpp ----
// The vocabulary between the sans-io state machines and the I/O loop that drives them: a
// machine is resumed with an event (what the last I/O did) and answers with an action
// (what to do next). No Asio.

// ---- begin dqlite/detail/sql_text.hpp ----
// What the client needs to know about an SQL text before sending it: how many statements it
// holds, and whether one of them has a RETURNING clause. The text is split into tokens the
// way SQLite's tokenizer does, so that a ';' or a word inside a string, a quoted identifier
// or a comment is not taken for a separator or a keyword.


#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dqlite::detail {

/// What an SQL text does to the connection's transaction, read from its statements' first
/// words in order (the last one that says something wins): BEGIN or SAVEPOINT open one;
/// COMMIT, END and ROLLBACK (not ROLLBACK ... TO, which stays inside) close it. RELEASE
/// closes it only when it releases the outermost savepoint of a transaction that SAVEPOINT
/// opened, which the text alone does not say: it counts as "opens" (may be open).
enum class tx_effect : std::uint8_t { none, opens, closes };

/// The shape of an SQL text.
struct sql_shape {
  /// Statements holding at least one token. Whitespace, comments and ';' between, before
  /// and after statements do not count ("SELECT 1;  -- done" is one statement).
  std::size_t statements = 0;
  /// Offset of the first byte after the end of the first statement (its ';', or the end of
  /// the text); the text's size when it holds no statement.
  std::size_t first_end = 0;
  /// The keyword RETURNING appears as a token (not inside a string, a quoted identifier or
  /// a comment) in some statement: the statement returns rows.
  bool returning = false;
  /// What the text does to the connection's transaction.
  tx_effect tx = tx_effect::none;
};

namespace sql_scan {

inline bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}
/// Characters of an unquoted word (identifier, keyword or number); SQLite takes every byte
/// of a multi-byte UTF-8 character as one.
inline bool is_word_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
         u == '_' || u == '$' || u >= 0x80;
}
inline bool word_is(std::string_view w, std::string_view keyword) noexcept {
  if (w.size() != keyword.size()) return false;
  for (std::size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != keyword[i]) return false;
  }
  return true;
}

}  // namespace sql_scan

/// Scans an SQL text as SQLite's tokenizer does:
/// - '...' strings (a doubled '' inside), "..." and `...` identifiers (doubled quote
///   inside), [...] identifiers, "-- ..." comments to the end of the line and "/* ... */"
///   comments (an unterminated one runs to the end of the text) are single tokens or
///   nothing; a ';' or a word inside them is not seen;
/// - ';' ends a statement, except inside the body of CREATE [TEMP] TRIGGER ... BEGIN ...
///   END, whose statements end with ';' too: there only a ';' right after the word END ends
///   the statement (the rule of sqlite3_complete()), where an END that closes a CASE
///   expression does not count.
/// An unterminated string or quoted identifier runs to the end of the text (the server
/// reports the syntax error).
DQLITE_DECL sql_shape scan_sql(std::string_view sql) noexcept;

/// True when SQL text is a statement that cannot change the database: its main keyword
/// is SELECT, VALUES or EXPLAIN, after white space, comments and (for WITH) the common
/// table expressions, whose bodies are skipped as balanced parentheses with strings,
/// quoted identifiers and comments taken whole. Anything else may write (INSERT, UPDATE,
/// DELETE, REPLACE, also after WITH; PRAGMA may set a value; BEGIN, COMMIT...).
DQLITE_DECL bool is_read_only_sql(std::string_view sql) noexcept;

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/sql_text.ipp ----
// Definitions of detail/sql_text.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL sql_shape scan_sql(std::string_view sql) noexcept {
  using namespace sql_scan;
  sql_shape out;
  out.first_end = sql.size();
  const std::size_t n = sql.size();
  std::size_t i = 0;
  // The statement being read.
  std::size_t tokens = 0;     // tokens so far
  std::size_t words = 0;      // leading words examined for CREATE [TEMP] TRIGGER
  bool trigger = false;       // a CREATE TRIGGER statement: ';' ends it only after END
  bool after_end = false;     // the last token was the word END
  bool leading = true;        // still in the statement's leading words
  std::size_t case_depth = 0;  // CASE expressions open (their END ends no trigger)
  // Transaction control: 1 after a leading ROLLBACK, 2 after ROLLBACK TRANSACTION.
  int rollback = 0;
  auto end_statement = [&](std::size_t at) {
    if (tokens > 0) {
      if (++out.statements == 1) out.first_end = at;
    }
    if (rollback != 0) out.tx = tx_effect::closes;
    rollback = 0;
    tokens = 0;
    words = 0;
    trigger = false;
    after_end = false;
    leading = true;
    case_depth = 0;
  };
  auto token = [&](std::string_view word) {
    ++tokens;
    after_end = false;
    if (tokens == 1 && !word.empty()) {
      if (word_is(word, "BEGIN") || word_is(word, "SAVEPOINT") || word_is(word, "RELEASE"))
        out.tx = tx_effect::opens;
      else if (word_is(word, "COMMIT") || word_is(word, "END"))
        out.tx = tx_effect::closes;
      else if (word_is(word, "ROLLBACK"))
        rollback = 1;
    } else if (rollback != 0 && !word.empty()) {
      if (word_is(word, "TO"))
        rollback = 0;  // ROLLBACK [TRANSACTION] TO savepoint: the transaction stays open
      else if (rollback == 1 && word_is(word, "TRANSACTION"))
        rollback = 2;
    }
    if (!word.empty() && word_is(word, "CASE")) {
      ++case_depth;
    } else if (!word.empty() && word_is(word, "END")) {
      if (case_depth > 0)
        --case_depth;  // the END of a CASE expression
      else
        after_end = true;
    }
    if (!word.empty() && word_is(word, "RETURNING")) out.returning = true;
    if (!leading) return;
    // Leading words: [EXPLAIN [QUERY PLAN]] CREATE [TEMP | TEMPORARY] TRIGGER.
    if (word.empty()) {
      leading = false;
      return;
    }
    ++words;
    if (word_is(word, "EXPLAIN") || word_is(word, "QUERY") || word_is(word, "PLAN") ||
        word_is(word, "CREATE") || word_is(word, "TEMP") || word_is(word, "TEMPORARY")) {
      if (words > 6) leading = false;
      return;
    }
    if (word_is(word, "TRIGGER")) trigger = true;
    leading = false;
  };
  while (i < n) {
    const char c = sql[i];
    if (is_space(c)) {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      i += 2;
      while (i < n && !(sql[i] == '*' && i + 1 < n && sql[i + 1] == '/')) ++i;
      i = i < n ? i + 2 : n;
    } else if (c == ';') {
      if (!trigger || after_end) end_statement(i + 1);
      else after_end = false;
      ++i;
    } else if (c == '\'' || c == '"' || c == '`') {
      // A quoted string or identifier: the quote doubled inside stands for itself.
      ++i;
      for (;;) {
        if (i >= n) break;
        if (sql[i] == c) {
          if (i + 1 < n && sql[i + 1] == c) {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
      token({});
    } else if (c == '[') {
      while (i < n && sql[i] != ']') ++i;
      i = i < n ? i + 1 : n;
      token({});
    } else if (is_word_char(c)) {
      const std::size_t start = i;
      while (i < n && is_word_char(sql[i])) ++i;
      token(sql.substr(start, i - start));
    } else {
      ++i;  // an operator or punctuation, a parameter marker...
      token({});
    }
  }
  end_statement(n);
  return out;
}

DQLITE_DECL bool is_read_only_sql(std::string_view sql) noexcept {
  const std::size_t n = sql.size();
  std::size_t i = 0;
  auto lower = [](char ch) { return static_cast<char>(ch | 0x20); };
  auto is_word_char = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || static_cast<unsigned char>(ch) >= 0x80;
  };
  // Skips one token that is not a word: white space, a comment, a string or quoted
  // identifier, or one punctuation character. False at the end or in an unclosed token.
  auto skip_other = [&]() -> bool {
    char ch = sql[i];
    if (ch == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
      return true;
    }
    if (ch == '/' && i + 1 < n && sql[i + 1] == '*') {
      auto end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return false;
      i = end + 2;
      return true;
    }
    if (ch == '\'' || ch == '"' || ch == '`' || ch == '[') {
      char close = ch == '[' ? ']' : ch;
      for (++i; i < n; ++i) {
        if (sql[i] != close) continue;
        if (close != ']' && i + 1 < n && sql[i + 1] == close) {  // doubled quote
          ++i;
          continue;
        }
        ++i;
        return true;
      }
      return false;
    }
    ++i;
    return true;
  };
  int depth = 0;
  bool first = true;
  while (i < n) {
    if (!is_word_char(sql[i])) {
      char ch = sql[i];
      if (!skip_other()) return false;
      if (ch == '(') ++depth;
      if (ch == ')') --depth;
      continue;
    }
    std::size_t j = i;
    while (j < n && is_word_char(sql[j])) ++j;
    auto word = sql.substr(i, j - i);
    i = j;
    if (depth != 0) continue;
    auto is = [&](std::string_view kw) {
      if (word.size() != kw.size()) return false;
      for (std::size_t k = 0; k < kw.size(); ++k)
        if (lower(word[k]) != kw[k]) return false;
      return true;
    };
    if (is("select") || is("values") || (first && is("explain"))) return true;
    if (!(first && is("with"))) {
      // After WITH: the names, RECURSIVE, AS, MATERIALIZED... until the main keyword.
      if (first || is("insert") || is("update") || is("delete") || is("replace")) return false;
    }
    first = false;
  }
  return false;
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/sql_text.ipp ----
#endif
// ---- end dqlite/detail/sql_text.hpp ----
// ---- begin dqlite/wire/decode.hpp ----
// Sans-io decoding of dqlite responses from byte spans.
//
// Every read is bounds-checked: malformed input yields an errc, never a read out of
// bounds. Decoded text and blobs are views into the caller's bytes (zero-copy); they stay
// valid as long as those bytes do.


#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// Forces inlining of the small per-value functions of the row decoders' inner loops.
#ifndef DQLITE_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define DQLITE_ALWAYS_INLINE [[gnu::always_inline]] inline
#else
#define DQLITE_ALWAYS_INLINE inline
#endif
#endif

namespace dqlite::wire {

using bytes_view = std::span<const std::byte>;

/// A decoded frame header.
struct frame_header {
  std::uint32_t words = 0;  ///< body length in 8-byte words
  std::uint8_t type = 0;    ///< response type
  std::uint8_t schema = 0;  ///< schema (format revision) of the body
  std::size_t body_size() const noexcept { return std::size_t{words} * 8; }
};

inline std::uint64_t load_u64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

inline std::uint32_t load_u32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

/// Decodes a frame header (exactly header_size bytes). Checks the type is a known response
/// and the body fits max_body.
inline error_code decode_header(bytes_view h, frame_header& out,
                                std::size_t max_body = default_max_frame_size) noexcept {
  if (h.size() < header_size) return make_error_code(errc::truncated);
  out.words = load_u32(h.data());
  out.type = static_cast<std::uint8_t>(h[4]);
  out.schema = static_cast<std::uint8_t>(h[5]);
  if (out.body_size() > max_body) return make_error_code(errc::frame_too_large);
  if (out.type > max_response_type) return make_error_code(errc::unknown_message_type);
  return {};
}

/// Bounds-checked reader over a frame body.
class reader {
 public:
  reader() = default;
  explicit reader(bytes_view body) noexcept
      : p_(body.data()), end_(body.data() + body.size()) {}

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  bool at_end() const noexcept { return p_ == end_; }
  const std::byte* position() const noexcept { return p_; }

  error_code u64(std::uint64_t& v) noexcept {
    if (remaining() < 8) return make_error_code(errc::truncated);
    v = load_u64(p_);
    p_ += 8;
    return {};
  }
  error_code u32(std::uint32_t& v) noexcept {
    if (remaining() < 4) return make_error_code(errc::truncated);
    v = load_u32(p_);
    p_ += 4;
    return {};
  }
  error_code i64(std::int64_t& v) noexcept {
    std::uint64_t u = 0;
    auto ec = u64(u);
    v = static_cast<std::int64_t>(u);
    return ec;
  }
  error_code f64(double& v) noexcept {
    std::uint64_t u = 0;
    auto ec = u64(u);
    std::memcpy(&v, &u, 8);
    return ec;
  }
  /// Text: bytes up to a NUL, then zero padding to a whole word.
  error_code text(std::string_view& v) noexcept {
    if (at_end()) return make_error_code(errc::missing_nul);  // p_ may be null
    const void* nul = std::memchr(p_, 0, remaining());
    if (nul == nullptr) return make_error_code(errc::missing_nul);
    std::size_t len = static_cast<std::size_t>(static_cast<const std::byte*>(nul) - p_);
    std::size_t padded = (len + 1 + 7) & ~std::size_t{7};
    if (padded > remaining()) return make_error_code(errc::truncated);
    for (std::size_t i = len + 1; i < padded; ++i)
      if (p_[i] != std::byte{0}) return make_error_code(errc::bad_padding);
    v = std::string_view(reinterpret_cast<const char*>(p_), len);
    p_ += padded;
    return {};
  }
  /// Blob: u64 length, bytes, zero padding to a whole word.
  error_code blob(bytes_view& v) noexcept {
    std::uint64_t len = 0;
    if (auto ec = u64(len)) return ec;
    if (len > remaining()) return make_error_code(errc::truncated);
    std::size_t padded = (static_cast<std::size_t>(len) + 7) & ~std::size_t{7};
    if (padded > remaining()) return make_error_code(errc::truncated);
    // The padding after a blob is not checked: servers leave it uninitialised.
    v = bytes_view(p_, static_cast<std::size_t>(len));
    p_ += padded;
    return {};
  }
  /// Raw bytes (no padding).
  error_code raw(std::size_t n, bytes_view& v) noexcept {
    if (n > remaining()) return make_error_code(errc::truncated);
    v = bytes_view(p_, n);
    p_ += n;
    return {};
  }
  error_code finish() const noexcept {
    return at_end() ? error_code{} : make_error_code(errc::trailing_bytes);
  }

 private:
  const std::byte* p_ = nullptr;
  const std::byte* end_ = nullptr;
};

// ---- simple responses ----

struct failure_response {
  std::uint64_t code = 0;
  /// The server's message, or its first max_message_size bytes (cut at a UTF-8 character
  /// boundary) when it is longer: see message_size.
  std::string_view message;
  /// Length in bytes of the whole message as the server sent it (> message.size() when it
  /// was cut).
  std::size_t message_size = 0;
  bool message_cut() const noexcept { return message_size > message.size(); }
};
struct server_response {
  std::uint64_t id = 0;
  std::string_view address;
};
struct welcome_response {
  std::uint64_t heartbeat_timeout_ms = 0;
};
struct db_response {
  std::uint32_t id = 0;
};
struct stmt_response {
  std::uint32_t db = 0;
  std::uint32_t id = 0;
  std::uint64_t params = 0;
  std::uint64_t tail_offset = 0;  ///< schema 1 only
  bool has_tail = false;
};
struct result_response {
  std::uint64_t last_insert_id = 0;
  std::uint64_t rows_affected = 0;
};
struct metadata_response {
  std::uint64_t failure_domain = 0;
  std::uint64_t weight = 0;
};
struct node_view {
  std::uint64_t id = 0;
  std::string_view address;
  std::uint64_t role = 0;
};
struct file_view {
  std::string_view name;
  bytes_view data;
};

namespace detail {
inline error_code check_type(const frame_header& h, response expected) noexcept {
  return h.type == static_cast<std::uint8_t>(expected) ? error_code{}
                                                       : make_error_code(errc::unexpected_response);
}
}  // namespace detail

/// The first `limit` bytes of a message, without splitting a UTF-8 sequence.
inline std::string_view message_prefix(std::string_view m,
                                       std::size_t limit = max_message_size) noexcept {
  if (m.size() <= limit) return m;
  std::size_t n = limit;
  // Back off over continuation bytes (10xxxxxx) to the start of the cut character.
  for (std::size_t k = 0; k < 3 && n > 0 &&
                          (static_cast<unsigned char>(m[n]) & 0xc0u) == 0x80u;
       ++k)
    --n;
  return m.substr(0, n);
}

/// A failure's text as the client reports it: the message, and when it was cut a note
/// saying how much was left out. At most max_message_size + 64 bytes.
DQLITE_DECL std::string failure_text(const failure_response& f);

/// FAILURE: u64 code, text message.
///
/// A failure that happens while a query is producing rows may arrive after the partly
/// written rows of that frame (server 1.11.1): the body is then [column count, names,
/// rows...][code][message]. Such a body is recognised by its tail: the message is the
/// run of NUL-free words ending in the word that holds its terminator, and the code is the
/// word before it.
///
/// Decodes the message whole (a view of any length into body): see decode_failure.
DQLITE_DECL error_code decode_failure_whole(bytes_view body, failure_response& out) noexcept;

/// Decodes a FAILURE. out.message views at most max_message_size bytes of the body (see
/// failure_response::message_size), so nothing built from it holds a longer text.
DQLITE_DECL error_code decode_failure(bytes_view body, failure_response& out) noexcept;

DQLITE_DECL error_code decode_server(bytes_view body, server_response& out) noexcept;

DQLITE_DECL error_code decode_welcome(bytes_view body, welcome_response& out) noexcept;

DQLITE_DECL error_code decode_db(bytes_view body, db_response& out) noexcept;

DQLITE_DECL error_code decode_stmt(bytes_view body, std::uint8_t schema, stmt_response& out) noexcept;

DQLITE_DECL error_code decode_result(bytes_view body, result_response& out) noexcept;

inline error_code decode_empty(bytes_view body) noexcept {
  reader r(body);
  std::uint64_t unused = 0;
  if (auto ec = r.u64(unused)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_metadata(bytes_view body, metadata_response& out) noexcept;

/// SERVERS: u64 count, then per node u64 id, text address, u64 role (format 1).
DQLITE_DECL error_code decode_servers(bytes_view body, std::vector<node_view>& out);

/// FILES: u64 count, then per file text name, u64 size, raw bytes (size a multiple of 8).
DQLITE_DECL error_code decode_files(bytes_view body, std::vector<file_view>& out);

// ---- values and rows ----

/// A value inside a received frame: text and blob bytes are views into the frame.
struct value_view {
  value_type type = value_type::null;
  std::int64_t integer = 0;  ///< INTEGER, UNIXTIME, BOOLEAN (0/1)
  double floating = 0;       ///< FLOAT
  std::string_view bytes;    ///< TEXT, ISO8601 and BLOB contents

  bool is_null() const noexcept { return type == value_type::null; }
  std::span<const std::byte> blob() const noexcept {
    return {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()};
  }
};

/// Reads one value of type code at p (not past end) into v and moves p past it. Returns
/// errc{} (zero) on success, else what is wrong; p is then unspecified. The rules every
/// ROWS decoder shares: fixed-size values take a word, text ends at a NUL followed by zero
/// padding to a whole word, a blob is a length word and the bytes padded to a whole word
/// (that padding is not checked: servers leave it uninitialised), BOOLEAN reads as 0/1,
/// and an empty ISO8601 text is NULL (how released servers send a NULL date/time).
DQLITE_ALWAYS_INLINE errc decode_value(unsigned code, const std::byte*& p, const std::byte* end,
                                       value_view& v) noexcept {
  const std::size_t avail = static_cast<std::size_t>(end - p);
  switch (code) {
    case 1:   // INTEGER
    case 9:   // UNIXTIME
    case 11:  // BOOLEAN
      if (avail < 8) return errc::truncated;
      v.type = static_cast<value_type>(code);
      v.integer = static_cast<std::int64_t>(load_u64(p));
      if (code == 11) v.integer = v.integer != 0 ? 1 : 0;
      p += 8;
      return {};
    case 2: {
      if (avail < 8) return errc::truncated;
      v.type = value_type::floating;
      const std::uint64_t bits = load_u64(p);
      std::memcpy(&v.floating, &bits, 8);
      p += 8;
      return {};
    }
    case 3:     // TEXT
    case 10: {  // ISO8601
      // Most texts are short: look for the NUL a word at a time in the first words,
      // then let memchr scan the rest.
      constexpr std::uint64_t ones = 0x0101010101010101ULL;
      constexpr std::uint64_t highs = 0x8080808080808080ULL;
      std::size_t at = 0;
      std::size_t len = avail;  // avail: no NUL found yet
      for (; at + 8 <= avail && at < 32; at += 8) {
        const std::uint64_t w = load_u64(p + at);
        if (const std::uint64_t zero = (w - ones) & ~w & highs) {
          len = at + static_cast<std::size_t>(std::countr_zero(zero)) / 8;
          break;
        }
      }
      if (len == avail) {
        const void* nul = at < avail ? std::memchr(p + at, 0, avail - at) : nullptr;
        if (nul == nullptr) return errc::missing_nul;
        len = static_cast<std::size_t>(static_cast<const std::byte*>(nul) - p);
      }
      const std::size_t padded = (len + 8) & ~std::size_t{7};
      if (padded > avail) return errc::truncated;
      // The NUL and the padding after it, all in the last word, must be zero.
      if ((load_u64(p + padded - 8) >> (8 * (len % 8))) != 0) return errc::bad_padding;
      // Released servers (libdqlite 1.11.1 to 1.18.6) send a NULL of a DATETIME, DATE or
      // TIMESTAMP column as ISO8601 "": it is NULL, on every read path (docs/typed-rows.md).
      v.type = code == 10 && len == 0 ? value_type::null : static_cast<value_type>(code);
      v.bytes = std::string_view(reinterpret_cast<const char*>(p), len);
      p += padded;
      return {};
    }
    case 4: {
      if (avail < 8) return errc::truncated;
      const std::uint64_t len = load_u64(p);
      if (len > avail - 8) return errc::truncated;
      const std::size_t padded = (static_cast<std::size_t>(len) + 7) & ~std::size_t{7};
      if (padded > avail - 8) return errc::truncated;
      v.type = value_type::blob;
      v.bytes = std::string_view(reinterpret_cast<const char*>(p + 8), static_cast<std::size_t>(len));
      p += 8 + padded;
      return {};
    }
    case 5:
      if (avail < 8) return errc::truncated;
      v.type = value_type::null;
      p += 8;
      return {};
    default: return errc::unknown_value_type;
  }
}

/// Type code of column i in a row header.
DQLITE_ALWAYS_INLINE unsigned row_type_code(const std::byte* header, std::size_t i) noexcept {
  return (static_cast<unsigned>(header[i / 2]) >> ((i % 2) * 4)) & 0x0fu;
}

/// Whether a row header of n columns (header_words words) is well formed: every type
/// code is one the protocol defines, the unused nibble of an odd count and the bytes after
/// the codes are zero.
inline bool row_header_valid(const std::byte* header, std::size_t n,
                             std::size_t header_words) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned code = row_type_code(header, i);
    if (code == 0 || (code > 5 && code < 9) || code > 11) return false;
  }
  if (n % 2 == 1 && (static_cast<unsigned>(header[n / 2]) >> 4) != 0) return false;
  for (std::size_t i = (n + 1) / 2; i < header_words * 8; ++i)
    if (header[i] != std::byte{0}) return false;
  return true;
}

/// How a ROWS frame ended.
enum class rows_end { none, part, done };

/// Zero-copy reader of one ROWS frame body:
///   rows_reader rr;  rr.start(body);  rr.column_count(); rr.column_name(i);
///   while (rr.next(values)) {...}    // values: a span of column_count() value_views
///   rr.error(), rr.end()
///
/// Decoders that read values straight into their destination use the direct row access
/// instead of next(): while (rr.at_row()) { read the row from rr.row_data() (at most up to
/// rr.data_end()) with the rules of decode_value and row_header_valid, then
/// rr.skip_row_to(end of the row) - or, when anything is wrong, call next(), which reports
/// the problem exactly }.
class rows_reader {
 public:
  /// Parses the column count and names. Column names are kept as views (the vector is
  /// reused between frames, so reading frame after frame does not allocate). A count over
  /// max_columns fails with errc::too_many_columns before anything is allocated for it
  /// (see announced_columns()); the names' memory is then at most 2 bytes per byte of the
  /// body (a 16-byte view per name of at least 8 bytes).
  DQLITE_DECL error_code start(bytes_view body, std::size_t max_columns = default_max_columns);

  std::size_t column_count() const noexcept { return names_.size(); }
  /// The column count the frame announced (also when start() refused it).
  std::uint64_t announced_columns() const noexcept { return announced_; }
  std::string_view column_name(std::size_t i) const noexcept { return names_[i]; }
  const std::vector<std::string_view>& column_names() const noexcept { return names_; }

  /// Reads the next row into out (size must be column_count()). Returns false at the end
  /// marker or on error (see error() and end()).
  bool next(std::span<value_view> out) noexcept {
    if (ec_ || end_ != rows_end::none) return false;
    const std::byte* p = r_.position();
    const std::byte* const end = p + r_.remaining();
    if (end - p < 8) return fail(errc::invalid_row_marker);
    const std::uint64_t word = load_u64(p);
    if (word == rows_done_marker || word == rows_part_marker) return end_at_marker(p, end, word);
    const std::size_t n = names_.size();
    if (n == 0) return fail(errc::invalid_row_marker);
    if (out.size() < n) return fail(errc::truncated);
    const std::size_t header_bytes = header_words_ * 8;
    if (static_cast<std::size_t>(end - p) < header_bytes) return fail(errc::truncated);
    const std::byte* const header = p;
    p += header_bytes;
    for (std::size_t i = 0; i < n; ++i)
      if (const errc e = decode_value(row_type_code(header, i), p, end, out[i]); e != errc{})
        return fail(e);
    // The unused nibble of an odd count and the bytes after the types must be zero.
    if (n % 2 == 1 && (static_cast<unsigned>(header[n / 2]) >> 4) != 0)
      return fail(errc::bad_padding);
    for (std::size_t i = (n + 1) / 2; i < header_bytes; ++i)
      if (header[i] != std::byte{0}) return fail(errc::bad_padding);
    r_ = reader(bytes_view(p, static_cast<std::size_t>(end - p)));
    ++rows_read_;
    return true;
  }

  /// Direct row access: true when a row may follow (read it from row_data(), or with
  /// next()). At an end marker, consumes it as next() does and returns false; false too
  /// after the end or an error.
  bool at_row() noexcept {
    if (ec_ || end_ != rows_end::none) return false;
    const std::byte* p = r_.position();
    const std::byte* const end = p + r_.remaining();
    if (end - p >= 8) {
      const std::uint64_t word = load_u64(p);
      if (word == rows_done_marker || word == rows_part_marker) return end_at_marker(p, end, word);
    }
    return true;  // a row, or something next() will report
  }
  /// Start of the row ahead, and the end of the bytes it may use.
  const std::byte* row_data() const noexcept { return r_.position(); }
  const std::byte* data_end() const noexcept { return r_.position() + r_.remaining(); }
  /// Words of each row header (one per 16 columns).
  std::size_t header_words() const noexcept { return header_words_; }
  /// Moves past a row read directly; p is the end of that row, within [row_data(), data_end()].
  void skip_row_to(const std::byte* p) noexcept {
    r_ = reader(bytes_view(p, static_cast<std::size_t>(data_end() - p)));
    ++rows_read_;
  }

  /// Rows read (by next() or directly) since the reader was made, across frames.
  std::uint64_t rows_read() const noexcept { return rows_read_; }

  error_code error() const noexcept { return ec_; }
  rows_end end() const noexcept { return end_; }
  /// Size of the frame body being read.
  std::size_t frame_size() const noexcept { return frame_size_; }

 private:
  reader r_;
  std::vector<std::string_view> names_;
  bool fail(errc e) noexcept {
    ec_ = make_error_code(e);
    return false;
  }
  bool end_at_marker(const std::byte* p, const std::byte* end, std::uint64_t word) noexcept {
    r_ = reader(bytes_view(p + 8, static_cast<std::size_t>(end - p - 8)));
    end_ = word == rows_done_marker ? rows_end::done : rows_end::part;
    ec_ = r_.finish();
    return false;
  }

  std::size_t header_words_ = 0;
  std::uint64_t rows_read_ = 0;
  std::size_t frame_size_ = 0;
  std::uint64_t announced_ = 0;
  rows_end end_ = rows_end::none;
  error_code ec_;
};

}  // namespace dqlite::wire

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/decode.ipp ----
// Definitions of wire/decode.hpp (see detail/config.hpp).


namespace dqlite::wire {

DQLITE_DECL error_code rows_reader::start(bytes_view body, std::size_t max_columns) {
  r_ = reader(body);
  frame_size_ = body.size();
  end_ = rows_end::none;
  ec_ = {};
  names_.clear();
  announced_ = 0;
  std::uint64_t n = 0;
  if (auto ec = r_.u64(n)) return ec_ = ec;
  announced_ = n;
  if (n > max_columns) return ec_ = make_error_code(errc::too_many_columns);
  // Every name takes at least one word: refuse counts the body cannot hold.
  if (n > r_.remaining() / 8) return ec_ = make_error_code(errc::truncated);
  // A vector that held the names of a much wider frame gives its memory back.
  if (names_.capacity() > 2 * n + 64) std::vector<std::string_view>().swap(names_);
  names_.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string_view name;
    if (auto ec = r_.text(name)) {
      names_.clear();  // a frame that cannot be read has no columns
      return ec_ = ec;
    }
    names_.push_back(name);
  }
  header_words_ = (names_.size() + 15) / 16;
  return {};
}

DQLITE_DECL std::string failure_text(const failure_response& f) {
  std::string s(f.message);
  if (f.message_cut())
    s += " [... message cut: " + std::to_string(f.message_size - f.message.size()) +
         " more bytes]";
  return s;
}

DQLITE_DECL error_code decode_failure_whole(bytes_view body, failure_response& out) noexcept {
  reader r(body);
  error_code ec = r.u64(out.code);
  if (!ec) ec = r.text(out.message);
  if (!ec) ec = r.finish();
  if (ec != make_error_code(errc::trailing_bytes)) return ec;

  const std::size_t words = body.size() / 8;
  auto word_has_nul = [&](std::size_t w) {
    for (std::size_t i = 0; i < 8; ++i)
      if (body[w * 8 + i] == std::byte{0}) return true;
    return false;
  };
  std::size_t first = words - 1;  // the last word holds the message's terminator
  if (!word_has_nul(first)) return ec;
  while (first > 0 && !word_has_nul(first - 1)) --first;
  if (first < 2) return ec;  // room for a rows prefix and the code
  reader tail(body.subspan((first - 1) * 8));
  failure_response f;
  if (tail.u64(f.code) || tail.text(f.message) || tail.finish()) return ec;
  out = f;
  return {};
}

DQLITE_DECL error_code decode_failure(bytes_view body, failure_response& out) noexcept {
  error_code ec = decode_failure_whole(body, out);
  if (!ec) {
    out.message_size = out.message.size();
    out.message = message_prefix(out.message);
  }
  return ec;
}

DQLITE_DECL error_code decode_server(bytes_view body, server_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.id)) return ec;
  if (auto ec = r.text(out.address)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_welcome(bytes_view body, welcome_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.heartbeat_timeout_ms)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_db(bytes_view body, db_response& out) noexcept {
  reader r(body);
  std::uint32_t unused = 0;
  if (auto ec = r.u32(out.id)) return ec;
  if (auto ec = r.u32(unused)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_stmt(bytes_view body, std::uint8_t schema, stmt_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u32(out.db)) return ec;
  if (auto ec = r.u32(out.id)) return ec;
  if (auto ec = r.u64(out.params)) return ec;
  out.has_tail = false;
  if (schema >= 1) {
    if (auto ec = r.u64(out.tail_offset)) return ec;
    out.has_tail = true;
  }
  return r.finish();
}

DQLITE_DECL error_code decode_result(bytes_view body, result_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.last_insert_id)) return ec;
  if (auto ec = r.u64(out.rows_affected)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_metadata(bytes_view body, metadata_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.failure_domain)) return ec;
  if (auto ec = r.u64(out.weight)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_servers(bytes_view body, std::vector<node_view>& out) {
  reader r(body);
  std::uint64_t n = 0;
  if (auto ec = r.u64(n)) return ec;
  // Each node takes at least 24 bytes: refuse counts the body cannot hold before reserving.
  if (n > r.remaining() / 24) return make_error_code(errc::truncated);
  out.clear();
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    node_view v;
    if (auto ec = r.u64(v.id)) return ec;
    if (auto ec = r.text(v.address)) return ec;
    if (auto ec = r.u64(v.role)) return ec;
    out.push_back(v);
  }
  return r.finish();
}

DQLITE_DECL error_code decode_files(bytes_view body, std::vector<file_view>& out) {
  reader r(body);
  std::uint64_t n = 0;
  if (auto ec = r.u64(n)) return ec;
  if (n > r.remaining() / 16) return make_error_code(errc::truncated);
  out.clear();
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    file_view f;
    std::uint64_t size = 0;
    if (auto ec = r.text(f.name)) return ec;
    if (auto ec = r.u64(size)) return ec;
    if (size > r.remaining()) return make_error_code(errc::truncated);
    if (auto ec = r.raw(static_cast<std::size_t>(size), f.data)) return ec;
    out.push_back(f);
  }
  return r.finish();
}

}  // namespace dqlite::wire
// ---- end dqlite/impl/decode.ipp ----
#endif
// ---- end dqlite/wire/decode.hpp ----

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace dqlite::detail {

/// What the I/O loop reports to a machine.
struct io_event {
  enum class kind : std::uint8_t {
    start,       ///< the operation starts
    wrote,       ///< a write completed (n: bytes written, all of them unless ec)
    read,        ///< a read completed (n: bytes received into the read buffer)
    connected,   ///< the transport connect completed
    handshaken,  ///< the TLS handshake completed
  };
  kind what = kind::start;
  error_code ec{};
  std::size_t n = 0;
  /// The operation's cancellation was requested (its cancellation slot was emitted) and
  /// cancellation is still enabled.
  bool cancel_requested = false;
};

/// What a machine asks the I/O loop to do.
struct io_action {
  enum class kind : std::uint8_t {
    write,          ///< write all of `out`, then resume with wrote
    read,           ///< read some bytes into the session's read buffer (prepare(need)), then
                    ///< resume with read
    connect,        ///< connect the transport (resolve, connect), then resume with connected
    tls_handshake,  ///< the TLS handshake (TLS streams), then resume with handshaken
    done,           ///< the operation is complete with `ec`
  };
  kind what = kind::done;
  wire::bytes_view out{};
  std::size_t need = 0;
  error_code ec{};

  static io_action write(wire::bytes_view b) { return {kind::write, b, 0, {}}; }
  static io_action read(std::size_t need) { return {kind::read, {}, need, {}}; }
  static io_action connect() { return {kind::connect, {}, 0, {}}; }
  static io_action tls_handshake() { return {kind::tls_handshake, {}, 0, {}}; }
  static io_action done(error_code ec) { return {kind::done, {}, 0, ec}; }
};

/// How an exchange runs.
struct exchange_params {
  bool needs_open = true;                ///< the database must be open (false: handshake)
  std::chrono::milliseconds timeout{0};  ///< bound on the whole exchange; <= 0: none
  std::uint64_t holder = 0;              ///< id of the cursor running it (0: none)
  /// The request may change the database or the cluster: once it is written, a failure
  /// before its answer leaves its outcome unknown (errc::outcome_unknown).
  bool may_write = false;
  /// What the request does to the connection's transaction (see session_state::may_tx).
  tx_effect tx = tx_effect::none;
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/sansio/io.hpp ----
// ---- begin dqlite/detail/sansio/session.hpp ----
// What one connection knows, apart from its transport: buffers, options, the opened
// database, the session objects (statements, transactions, cursors) and the flags of the
// operation in progress. No Asio: the state machines of sansio/ work on this alone, and
// the connection adds the stream and its timer (detail/exchange.hpp).

// ---- begin dqlite/wire/encode.hpp ----
// Sans-io encoding of dqlite requests into a caller's buffer.
//
// Every function appends to a std::vector<std::byte>. A request is built as
//   auto f = begin_frame(buf, request::x);  ...put fields...;  end_frame(buf, f);
// or with one of the ready-made encode_* functions. Functions that take text return an
// error when the text contains a NUL byte (the protocol cannot carry it) and leave the
// buffer unchanged.


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
// ---- begin dqlite/impl/encode.ipp ----
// Definitions of wire/encode.hpp (see detail/config.hpp).


namespace dqlite::wire {

DQLITE_DECL frame_mark begin_frame(buffer& b, request type, std::uint8_t schema) {
  frame_mark m{b.size()};
  put_u32(b, 0);
  put_u8(b, static_cast<std::uint8_t>(type));
  put_u8(b, schema);
  put_u8(b, 0);
  put_u8(b, 0);
  return m;
}

}  // namespace dqlite::wire
// ---- end dqlite/impl/encode.ipp ----
#endif
// ---- end dqlite/wire/encode.hpp ----

#include <algorithm>
#include <chrono>
#include <string_view>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <vector>

#include <pthread.h>

namespace dqlite::detail {

/// Counts the fork() calls made by this process and its ancestors since the library was
/// first used: a connection compares it with the value it was made under instead of
/// asking the kernel for the process id on every operation.
inline std::atomic<std::uint64_t>& fork_counter() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter;
}

/// The current fork generation (registers the pthread_atfork hook on first use).
inline std::uint64_t fork_generation() noexcept {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr,
                     [] { fork_counter().fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  return fork_counter().load(std::memory_order_relaxed);
}

/// Receive buffer: bytes [begin, end) are received and not yet consumed. It grows with the
/// bytes that actually arrive (never to a size a frame header merely announces), and gives
/// its memory back after an operation that needed more than retain_size. Its memory is
/// one block resized with realloc(), which moves large blocks without copying them (so
/// growing to hold a big frame does not need the old and the new block at once).
class read_buffer {
 public:
  read_buffer() { resize(min_size); }
  read_buffer(const read_buffer&) = delete;
  read_buffer& operator=(const read_buffer&) = delete;
  ~read_buffer() { std::free(buf_); }

  wire::bytes_view data() const noexcept { return {buf_ + begin_, end_ - begin_}; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return cap_; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Space to receive into, on the way to holding `need` unconsumed bytes: at least one
  /// byte. The buffer at most doubles per call (up to `need`), so memory follows the bytes
  /// received.
  std::span<std::byte> prepare(std::size_t need) {
    if (need <= size()) need = size() + 1;
    if (begin_ + need > cap_ && begin_ > 0) {
      std::memmove(buf_, buf_ + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == cap_) {
      std::size_t grown = std::max(cap_ * 2, min_size);
      resize(std::min(grown, std::max(need, cap_ + 1)));
    }
    return {buf_ + end_, cap_ - end_};
  }
  void commit(std::size_t n) noexcept {
    end_ += n;
    received_ += n;
  }
  /// Bytes received into the buffer since it was made (for request traces).
  std::uint64_t received() const noexcept { return received_; }
  void clear() noexcept { begin_ = end_ = 0; }
  /// Gives memory back once an operation needed an unusually large buffer.
  void shrink() {
    if (empty() && cap_ > retain_size) {
      begin_ = end_ = 0;
      resize(min_size);
    }
  }

  static constexpr std::size_t min_size = 64 * 1024;
  static constexpr std::size_t retain_size = 1024 * 1024;

 private:
  void resize(std::size_t n) {
    void* p = std::realloc(buf_, n);
    if (p == nullptr) throw std::bad_alloc();
    buf_ = static_cast<std::byte*>(p);
    cap_ = n;
  }

  std::byte* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::uint64_t received_ = 0;
};

/// The request in progress as a trace describes it (used only with a tracing hook).
struct trace_span {
  bool active = false;
  bool blocking = false;
  std::string_view request;
  std::string_view sql;  ///< in the request (wbuf), which stays until the trace ends
  std::uint32_t stmt = 0;
  std::size_t params = 0;
  std::uint64_t seq = 0;
  std::uint64_t sent = 0;
  std::uint64_t rows0 = 0;
  std::uint64_t bytes0 = 0;
  std::chrono::steady_clock::time_point t0{};
};

enum class conn_state : std::uint8_t { closed, open, broken };

/// The state of one connection that the state machines read and change.
struct session_state {
  explicit session_state(const connection_options& o) : database(o.database), opts(o) {
    opts.database = database;
  }
  session_state(const session_state&) = delete;
  session_state& operator=(const session_state&) = delete;

  std::string database;  ///< owns the name opts.database views
  connection_options opts;
  wire::buffer wbuf;
  read_buffer rbuf;
  diagnostics diag;
  wire::rows_reader rows;
  std::vector<wire::value_view> scratch;
  std::uint64_t op_seq = 0;
  std::uint32_t db_id = 0;
  std::uint64_t forks = fork_generation();  ///< fork generation the connection belongs to
  conn_state state = conn_state::closed;
  bool busy = false;
  bool timed_out = false;        ///< the operation's deadline passed (set by the I/O loop)
  bool close_requested = false;  ///< the transport must be closed (done by the I/O loop)
  std::string peer;              ///< address, for messages
  error_code broken_by;          ///< the error that broke the connection

  // Session state: statements, transactions and cursors refer to one opening of the
  // connection (one generation); work left behind by dropped objects is done before the
  // next request (the housekeeping phase of the exchange machine).
  std::uint64_t generation = 0;      ///< bumped each time the database is opened
  std::uint64_t params_probe = 0;    ///< what the server reads (server_probe.hpp)
  std::uint64_t holder = 0;          ///< a cursor holding the connection between reads
  std::uint64_t next_id = 0;         ///< ids for cursors and transactions
  std::uint64_t tx = 0;              ///< id of the open transaction object, 0 if none
  bool drain_pending = false;        ///< a dropped cursor left a result to interrupt
  bool rollback_pending = false;     ///< a dropped transaction left a transaction open
  /// SQL text run on the connection may have left a transaction open (BEGIN, SAVEPOINT...;
  /// see tx_effect): set when such a text was sent (whatever its answer, unless it was
  /// answered with success and closed the transaction), cleared by COMMIT, END, ROLLBACK.
  bool may_tx = false;
  std::vector<std::uint32_t> finalize_pending;  ///< statements dropped without close
  wire::buffer hbuf;                 ///< housekeeping requests
  trace_span span;                   ///< the request being traced (tracing hook only)

  /// True in a child process forked after the connection was made.
  bool forked() const noexcept { return forks != fork_generation(); }

  /// Checks that a new operation may start and claims the connection for it. `as_holder`:
  /// the id of the cursor that holds the connection, when the operation is that cursor's.
  DQLITE_DECL error_code begin_op(bool needs_open, std::uint64_t as_holder = 0);

  /// The stream can no longer be trusted: the connection is broken and its transport must
  /// be closed.
  void break_connection(error_code why) {
    if (state == conn_state::open) state = conn_state::broken;
    if (!broken_by) broken_by = why;
    request_close();
  }

  /// The connection is of no further use (e.g. its database could not be opened): it is
  /// closed, and its transport must be.
  void close_session() {
    state = conn_state::closed;
    request_close();
  }

  /// Asks the I/O loop to close the transport; forgets the server-side session.
  void request_close() {
    close_requested = true;
    rbuf.clear();
    reset_session();
  }

  /// Forgets everything tied to the server-side session (it is gone with the socket).
  void reset_session() {
    holder = 0;
    tx = 0;
    may_tx = false;
    drain_pending = false;
    rollback_pending = false;
    finalize_pending.clear();
  }

  /// A transaction may be open on the server: one of a transaction object, one SQL text
  /// opened, or one left to roll back.
  bool in_transaction() const noexcept { return tx != 0 || may_tx || rollback_pending; }

  /// What a connection given back to a pool needs before its next user: nothing, unless a
  /// transaction may be open, or a dropped cursor, statement or transaction left work.
  bool needs_reset() const noexcept { return in_transaction() || has_housekeeping(); }

  /// After a request with transaction effect e ended with ec (sent: it was written whole).
  void note_tx_effect(tx_effect e, const error_code& ec, bool sent) noexcept {
    if (e == tx_effect::none || !sent) return;
    if (ec || e == tx_effect::opens)
      may_tx = true;  // on failure the server may have run part of the text
    else
      may_tx = false;
  }

  /// True when the next request must be preceded by housekeeping requests.
  bool has_housekeeping() const noexcept {
    return drain_pending || rollback_pending || !finalize_pending.empty();
  }

  /// Gives back memory an operation needed beyond the usual.
  void release_buffers();
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/session.ipp ----
// Definitions of detail/sansio/session.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL error_code session_state::begin_op(bool needs_open, std::uint64_t as_holder) {
  if (forked()) {
    diag.assign("the connection was opened in another process (before fork()); open a new "
                "connection in this process");
    return make_error_code(errc::used_after_fork);
  }
  if (busy) {
    diag.assign("another operation is running on this connection; wait for it to complete "
                "(one operation at a time per connection)");
    return make_error_code(errc::operation_in_progress);
  }
  if (holder != 0 && holder != as_holder) {
    diag.assign("a cursor is reading a result on this connection; read it to the end or "
                "close it first");
    return make_error_code(errc::operation_in_progress);
  }
  if (needs_open && state != conn_state::open) {
    if (state == conn_state::broken)
      diag.assign("the connection is not open (it was closed after an earlier error: " +
                  broken_by.message() + ")");
    else if (broken_by)
      diag.assign("the connection is not open (its last error, which closed it or made its "
                  "connect fail: " + broken_by.message() + ")");
    else
      diag.assign("the connection is not open");
    return make_error_code(errc::not_connected);
  }
  busy = true;
  timed_out = false;
  ++op_seq;
  diag.clear();
  wbuf.clear();
  return {};
}

DQLITE_DECL void session_state::release_buffers() {
  rbuf.shrink();
  constexpr std::size_t retain = read_buffer::retain_size;
  // A traced request's SQL text is viewed in wbuf until its trace ends (trace_end
  // gives the memory back then).
  if (wbuf.capacity() > retain && !span.active) wire::buffer().swap(wbuf);
  if (hbuf.capacity() > retain) wire::buffer().swap(hbuf);
  if (scratch.capacity() > 4096) std::vector<wire::value_view>().swap(scratch);
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/session.ipp ----
#endif
// ---- end dqlite/detail/sansio/session.hpp ----

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// Completion signature for a processor's result type.
template <class R>
struct completion_sig {
  using type = void(error_code, R);
};
template <>
struct completion_sig<void> {
  using type = void(error_code);
};
template <class R>
using completion_sig_t = typename completion_sig<R>::type;

/// True for errors reported by a client-side check or by a FAILURE answer, as opposed to
/// those that mean the answer to a request was lost (transport, timeout, cancellation,
/// malformed response).
DQLITE_DECL bool answer_lost(const error_code& ec) noexcept;

/// For the start of the first answer on a connection, when it cannot be dqlite's (a header
/// that is not, or bytes that end before a header): a hint, appended to the message, when
/// those bytes look like another protocol's answer (text, such as an HTTP server's or
/// proxy's, or a TLS alert record: type 21, version 3.x, length 2); empty otherwise.
DQLITE_DECL std::string foreign_peer_hint(wire::bytes_view start);

/// What every request exchange does, whatever processes its response: housekeeping, the
/// request, the response frames, INTERRUPT and drain, failure mapping. Compiled once (not
/// once per response processor); exchange_machine<Proc> (or a request's target,
/// request_target in exchange.hpp) supplies the processor's hooks.
class exchange_core {
 public:
  /// False once the request has been interrupted: from then on the operation runs to the
  /// end of the drain whatever is requested (the I/O loop disables cancellation).
  bool cancellable() const noexcept { return ph_ != phase::interrupt; }
  /// A bound for the I/O loop to arm its timer with from now, when a drain begins on an
  /// exchange that has no bound of its own; negative: that drain is over, no bound from
  /// now on; zero: leave the timer as it is.
  std::chrono::milliseconds take_rearm() noexcept { return std::exchange(rearm_, {}); }
  const exchange_params& params() const noexcept { return params_; }
  /// The request was written whole.
  bool sent() const noexcept { return sent_; }
  /// The exchange holds the connection (else it was refused: another operation runs).
  bool owns() const noexcept { return owns_; }
  /// It failed before its request could be encoded.
  bool failed_early() const noexcept { return static_cast<bool>(init_ec_); }
  /// On cancellation, it interrupts its request and drains the response (the connection
  /// stays usable); else a cancellation closes the connection.
  bool interruptible() const noexcept { return interruptible_; }
  /// It sends no request of its own (housekeeping only).
  bool housekeeping_only() const noexcept { return housekeeping_only_; }

  io_action resume(const io_event& ev);

 protected:
  exchange_core(session_state& s, error_code init_ec, bool owns, exchange_params params,
                bool interruptible, bool housekeeping_only)
      : s_(&s),
        init_ec_(init_ec),
        owns_(owns),
        interruptible_(interruptible),
        housekeeping_only_(housekeeping_only),
        params_(params) {}
  /// A machine made before its request can start (a request that waits for a probe of
  /// the server): begin() binds it to its session before it is resumed.
  exchange_core(bool interruptible, bool housekeeping_only)
      : s_(nullptr),
        owns_(false),
        interruptible_(interruptible),
        housekeeping_only_(housekeeping_only) {}
  /// What the first constructor takes, for a machine made with the second.
  void begin(session_state& s, error_code init_ec, bool owns, exchange_params params) noexcept {
    s_ = &s;
    init_ec_ = init_ec;
    owns_ = owns;
    params_ = params;
  }
  exchange_core(const exchange_core&) = default;
  exchange_core(exchange_core&&) = default;
  exchange_core& operator=(const exchange_core&) = default;
  exchange_core& operator=(exchange_core&&) = default;
  ~exchange_core() = default;

  // The response processor's part (see exchange_machine).
  virtual error_code on_frame(session_state& s, const wire::frame_header& h,
                              wire::bytes_view body, bool& done) = 0;
  virtual void on_failure(session_state&) {}
  virtual bool holds() const { return false; }
  virtual error_code map_error(session_state&, error_code ec, bool /*sent*/) { return ec; }

 private:
  /// What the frames being read answer.
  enum class phase : std::uint8_t {
    drain,     ///< housekeeping INTERRUPT: discard rows until EMPTY
    finalize,  ///< housekeeping FINALIZE: EMPTY (a failure is ignored)
    rollback,  ///< housekeeping ROLLBACK: RESULT (a failure is ignored)
    main,      ///< the request itself
    interrupt  ///< the request was interrupted: INTERRUPT sent, discard until EMPTY
  };

  // foreign_peer_hint for an answer before the connection is open (to the handshake): a
  // later answer comes from a peer that already spoke dqlite.
  std::string peer_hint(wire::bytes_view start) const;

  static bool is_aborted(const error_code& ec) {
    return ec == boost::system::errc::operation_canceled;
  }

  // Writes the next housekeeping request, or the request itself.
  io_action next_write();

  // Cancelled: INTERRUPT the request, then drain its response until EMPTY.
  io_action start_interrupt();

  // A drain must end even when requests have no time bound.
  void bound_drain();

  io_action read_frames(bool cancel_requested);

  io_action finish_main();

  io_action finish_interrupt();

  // Bytes after a complete response that nothing asked for: the stream is out of step.
  io_action stray_bytes();

  error_code handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done);

  error_code unexpected(const wire::frame_header& h, const char* to);

  io_action transport_failed(const io_event& ev, const char* during);

  static bool is_eof_or_reset(const error_code& ec);

  io_action finish(error_code ec);

  session_state* s_;
  error_code init_ec_;  ///< failure found before anything was sent
  bool owns_;           ///< this exchange holds the connection's busy flag
  bool interruptible_;  ///< on cancellation: INTERRUPT and drain, the connection stays usable
  bool housekeeping_only_;  ///< no request of its own
  exchange_params params_;
  phase ph_ = phase::main;
  bool sent_ = false;  ///< the request has been written whole
  bool drain_bounded_ = false;
  std::size_t out_size_ = 0;
  std::chrono::milliseconds rearm_{0};
};

// The optional parts of a response processor (see exchange_machine), with their defaults.
template <class Proc>
constexpr bool proc_interruptible() {
  if constexpr (requires { Proc::interruptible; })
    return Proc::interruptible;
  else
    return false;
}

template <class Proc>
constexpr bool proc_housekeeping_only() {
  return requires { Proc::housekeeping_only; };
}
template <class Proc>
void proc_on_failure(Proc& p, session_state& s) {
  if constexpr (requires { p.on_failure(s); }) p.on_failure(s);
}
template <class Proc>
bool proc_holds(const Proc& p) {
  if constexpr (requires { p.holds(); })
    return p.holds();
  else
    return false;
}
template <class Proc>
error_code proc_map_error(Proc& p, session_state& s, error_code ec, bool sent) {
  if constexpr (requires { p.map_error(s, ec, sent); })
    return p.map_error(s, ec, sent);
  else
    return ec;
}

/// One request/response exchange over a session. Proc: the response processor, with
///   using result_type = ...;
///   error_code on_frame(session_state&, const wire::frame_header&, wire::bytes_view body,
///                       bool& done);
///   result_type take();                         (absent when result_type is void)
///   void on_failure(session_state&) {}          (optional: a FAILURE response arrived)
///   bool holds() const;                         (optional: keep the connection claimed for
///                                                the holder after completing: a cursor
///                                                paused between frames)
///   static constexpr bool interruptible = true; (optional: on cancellation, INTERRUPT the
///                                                request and drain its response; the
///                                                connection stays usable)
///   error_code map_error(session_state&, error_code, bool sent);  (optional: rewrites a
///                                                failure)
///   static constexpr bool housekeeping_only = true; (optional: no request of its own)
/// The request is in session.wbuf when the machine starts, unless init_ec is set; an empty
/// wbuf means "nothing to send, read the rest of a response" (a cursor). Requests left
/// behind by dropped cursors, statements and transactions are sent first, each awaiting
/// its response.
template <class Proc>
class exchange_machine final : public exchange_core {
 public:
  using result_type = typename Proc::result_type;

  exchange_machine(session_state& s, Proc proc, error_code init_ec, bool owns,
                   exchange_params params)
      : exchange_core(s, init_ec, owns, params, proc_interruptible(),
                      proc_housekeeping_only<Proc>()),
        proc_(std::move(proc)) {}

  static constexpr bool proc_interruptible() { return detail::proc_interruptible<Proc>(); }

  Proc& proc() noexcept { return proc_; }
  result_type take() {
    if constexpr (!std::is_void_v<result_type>) return proc_.take();
  }

 private:
  error_code on_frame(session_state& s, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) override {
    return proc_.on_frame(s, h, body, done);
  }
  void on_failure(session_state& s) override { proc_on_failure(proc_, s); }
  bool holds() const override { return proc_holds(proc_); }
  error_code map_error(session_state& s, error_code ec, bool sent) override {
    return proc_map_error(proc_, s, ec, sent);
  }

  Proc proc_;
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/exchange_machine.ipp ----
// Definitions of detail/sansio/exchange_machine.hpp (see detail/config.hpp).


#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>

namespace dqlite::detail {

DQLITE_DECL bool answer_lost(const error_code& ec) noexcept {
  if (!ec || ec.category() == server_category()) return false;
  if (ec.category() != client_category()) return true;  // transport errors
  switch (static_cast<errc>(ec.value())) {
    case errc::timeout:
    case errc::connection_closed:
    case errc::cancelled:
    case errc::interrupted: return true;
    default: return is_protocol_error(ec);
  }
}

DQLITE_DECL std::string foreign_peer_hint(wire::bytes_view start) {
  if (start.size() < 4) return {};
  if (start.size() >= 5 && start[0] == std::byte{0x15} && start[1] == std::byte{0x03} &&
      start[2] <= std::byte{0x04} && start[3] == std::byte{0x00} && start[4] == std::byte{0x02})
    return "; the answer is a TLS alert: the node may expect TLS (see dqlite/tls.hpp)";
  std::string text;
  for (std::byte b : start.first(std::min<std::size_t>(start.size(), 16))) {
    const auto c = static_cast<unsigned char>(b);
    if (c == '\r' || c == '\n' || c == '\t')
      text += ' ';
    else if (c >= 0x20 && c < 0x7f)
      text += static_cast<char>(c);
    else
      return {};
  }
  return "; the answer begins with the text \"" + text +
         "\": the peer may not be a dqlite node";
}

DQLITE_DECL io_action exchange_core::resume(const io_event& ev) {
  switch (ev.what) {
    case io_event::kind::start:
      if (init_ec_) return finish(init_ec_);
      return next_write();
    case io_event::kind::wrote:
      if (ph_ == phase::main && ev.n == out_size_) sent_ = true;
      if (ev.ec) {
        // Cancelled once the whole request was out: it can still be interrupted.
        if (is_aborted(ev.ec) && !s_->timed_out && ph_ == phase::main && sent_ &&
            interruptible_ && ev.cancel_requested)
          return start_interrupt();
        return transport_failed(ev, "sending the request");
      }
      if (ph_ == phase::main && interruptible_ && ev.cancel_requested)
        return start_interrupt();
      break;
    case io_event::kind::read:
      if (ev.ec) {
        if (is_aborted(ev.ec) && !s_->timed_out && ph_ == phase::main && interruptible_ &&
            ev.cancel_requested)
          return start_interrupt();
        return transport_failed(ev, "reading the response");
      }
      s_->rbuf.commit(ev.n);
      break;
    default:
      s_->diag.assign("internal error: unexpected event in a request exchange");
      return finish(make_error_code(errc::invalid_argument));
  }
  return read_frames(ev.cancel_requested);
}

DQLITE_DECL std::string exchange_core::peer_hint(wire::bytes_view start) const {
  return s_->state == conn_state::open ? std::string() : foreign_peer_hint(start);
}

DQLITE_DECL io_action exchange_core::next_write() {
  // Bytes already received belong to a cursor's result: the one holding the connection,
  // or one dropped (the drain below reads past them). Anything else came unasked.
  if (!s_->rbuf.empty() && s_->holder == 0 && !s_->drain_pending) return stray_bytes();
  // Not while a cursor holds the connection: its result is still arriving.
  if (drain_bounded_) {  // a housekeeping drain just ended: its bound ends with it
    drain_bounded_ = false;
    rearm_ = std::chrono::milliseconds(-1);
  }
  if (params_.needs_open && s_->holder == 0 && s_->has_housekeeping()) {
    s_->hbuf.clear();
    if (s_->drain_pending) {
      s_->drain_pending = false;
      ph_ = phase::drain;
      wire::encode_interrupt(s_->hbuf, s_->db_id);
      bound_drain();
    } else if (!s_->finalize_pending.empty()) {
      ph_ = phase::finalize;
      wire::encode_finalize(s_->hbuf, s_->db_id, s_->finalize_pending.back());
      s_->finalize_pending.pop_back();
    } else {
      s_->rollback_pending = false;
      s_->may_tx = false;  // whatever its answer, no transaction is open after it
      ph_ = phase::rollback;
      wire::frame_mark m{};
      (void)wire::begin_sql_request(s_->hbuf, wire::request::exec_sql, s_->db_id, "ROLLBACK",
                                    m);
      wire::end_frame(s_->hbuf, m);
    }
    return io_action::write(wire::bytes_view(s_->hbuf));
  }
  ph_ = phase::main;
  if (housekeeping_only_) return finish({});
  if (s_->wbuf.empty()) {  // nothing to send: read on
    sent_ = true;
    return read_frames(false);
  }
  out_size_ = s_->wbuf.size();
  return io_action::write(wire::bytes_view(s_->wbuf));
}

DQLITE_DECL io_action exchange_core::start_interrupt() {
  ph_ = phase::interrupt;
  s_->hbuf.clear();
  wire::encode_interrupt(s_->hbuf, s_->db_id);
  bound_drain();
  return io_action::write(wire::bytes_view(s_->hbuf));
}

DQLITE_DECL void exchange_core::bound_drain() {
  if (params_.timeout.count() <= 0 && s_->opts.interrupt_timeout.count() > 0) {
    rearm_ = s_->opts.interrupt_timeout;
    drain_bounded_ = true;
  }
}

DQLITE_DECL io_action exchange_core::read_frames(bool cancel_requested) {
  for (;;) {
    auto avail = s_->rbuf.data();
    std::size_t need = wire::header_size;
    if (avail.size() >= wire::header_size) {
      wire::frame_header h;
      if (auto e = wire::decode_header(avail.first(wire::header_size), h,
                                       s_->opts.max_frame_size)) {
        if (e == make_error_code(errc::frame_too_large))
          s_->diag.assign("a frame of " + std::to_string(h.body_size()) + " bytes from " +
                          s_->peer + " exceeds max_frame_size (" +
                          std::to_string(s_->opts.max_frame_size) + ")" +
                          peer_hint(avail));
        else
          s_->diag.assign("response type " + std::to_string(h.type) + " is not defined" +
                          peer_hint(avail));
        return finish(e);
      }
      need = wire::header_size + h.body_size();
      if (avail.size() >= need) {
        bool done = false;
        error_code e = handle_frame(h, avail.subspan(wire::header_size, h.body_size()), done);
        s_->rbuf.consume(need);
        if (e) return finish(e);
        if (done) {
          if (ph_ == phase::main) return finish_main();
          if (ph_ == phase::interrupt) return finish_interrupt();
          return next_write();  // housekeeping answered: go on
        }
        continue;
      }
    }
    // A cancellation that arrived while a read was completing reached no operation:
    // act on it before reading on.
    if (cancel_requested && ph_ != phase::interrupt) {
      if (ph_ == phase::main && interruptible_) return start_interrupt();
      io_event aborted{io_event::kind::read,
                       error_code(ECANCELED, boost::system::system_category()), 0, true};
      return transport_failed(aborted, "reading the response");
    }
    return io_action::read(need);
  }
}

DQLITE_DECL io_action exchange_core::finish_main() {
  const bool hold = holds();
  // A processor that ended the response early left the rest to the housekeeping drain.
  if (!hold && !s_->rbuf.empty() && !s_->drain_pending) return stray_bytes();
  return finish({});
}

DQLITE_DECL io_action exchange_core::finish_interrupt() {
  if (!s_->rbuf.empty()) return stray_bytes();
  s_->diag.assign("the operation was cancelled; the query was interrupted and the "
                  "connection remains usable");
  return finish(make_error_code(errc::interrupted));
}

DQLITE_DECL io_action exchange_core::stray_bytes() {
  s_->diag.assign("the server sent " + std::to_string(s_->rbuf.size()) +
                  " bytes after a complete response, unasked; the connection was closed");
  return finish(make_error_code(errc::trailing_bytes));
}

DQLITE_DECL error_code exchange_core::handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done) {
  using wire::response;
  const bool failure = h.type == static_cast<std::uint8_t>(response::failure);
  switch (ph_) {
    case phase::main: break;
    case phase::drain:
    case phase::interrupt:
      // Rows of the interrupted query (and its failure, if any) until EMPTY.
      if (h.type == static_cast<std::uint8_t>(response::empty)) {
        done = true;
        return {};
      }
      if (failure || h.type == static_cast<std::uint8_t>(response::rows)) return {};
      return unexpected(h, "an interrupted query");
    case phase::finalize:
      if (failure || h.type == static_cast<std::uint8_t>(response::empty)) {
        done = true;
        return {};
      }
      return unexpected(h, "FINALIZE");
    case phase::rollback:
      if (failure) {
        // "no transaction is active" is the expected refusal; any other leaves the
        // transaction's state unknown: the connection cannot be handed on.
        wire::failure_response f;
        if (auto e = wire::decode_failure(body, f)) return e;
        const std::string text = wire::failure_text(f);
        done = true;
        if (text.find("no transaction is active") != std::string::npos) return {};
        s_->diag.assign("the ROLLBACK of a transaction left open failed (" +
                        text + "); the connection was closed");
        error_code e = make_server_error(f.code);
        s_->break_connection(e);
        return e;
      }
      if (h.type == static_cast<std::uint8_t>(response::result)) {
        done = true;
        return {};
      }
      return unexpected(h, "ROLLBACK");
  }
  if (failure) {
    wire::failure_response f;
    if (auto e = wire::decode_failure(body, f)) return e;
    on_failure(*s_);
    // The one place a server's message becomes the diagnostics: empty or misleading texts
    // ("not an error") are explained from the request that was sent.
    s_->diag.assign(describe_failure(f.code, wire::failure_text(f), wire::bytes_view(s_->wbuf)));
    done = true;
    return make_server_error(f.code);
  }
  error_code e = on_frame(*s_, h, body, done);
  if (e == make_error_code(errc::unexpected_response) && s_->diag.empty())
    s_->diag.assign("unexpected response type " + std::to_string(h.type));
  return e;
}

DQLITE_DECL error_code exchange_core::unexpected(const wire::frame_header& h, const char* to) {
  s_->diag.assign("unexpected response type " + std::to_string(h.type) + " to " + to);
  return make_error_code(errc::unexpected_response);
}

DQLITE_DECL io_action exchange_core::transport_failed(const io_event& ev, const char* during) {
  if (s_->timed_out) {
    if (drain_bounded_ && (ph_ == phase::interrupt || ph_ == phase::drain))
      s_->diag.assign("the server " + s_->peer + " went on sending an interrupted result for " +
                      std::to_string(s_->opts.interrupt_timeout.count()) +
                      " ms (interrupt_timeout); the connection was closed");
    else
      s_->diag.assign("no response from " + s_->peer + " within " +
                      std::to_string(params_.timeout.count()) + " ms");
    return finish(make_error_code(errc::timeout));
  }
  if (is_aborted(ev.ec)) {
    // Cancelled through the operation's slot, or the connection was closed (or destroyed)
    // while the operation ran.
    const std::string at = s_->peer.empty() ? std::string() : " (" + s_->peer + ")";
    s_->diag.assign(ev.cancel_requested || ph_ == phase::interrupt
                        ? std::string("the operation was cancelled while ") + during + at +
                              "; the connection was closed"
                        : std::string("the connection was closed while ") + during + at);
    return finish(make_error_code(errc::cancelled));
  }
  if (is_eof_or_reset(ev.ec)) {
    s_->diag.assign("the server " + s_->peer + " closed the connection while " + during +
                    peer_hint(s_->rbuf.data()));
    return finish(make_error_code(errc::connection_closed));
  }
  s_->diag.assign(std::string(during) + " (" + s_->peer + "): " + ev.ec.message());
  return finish(ev.ec);
}

DQLITE_DECL bool exchange_core::is_eof_or_reset(const error_code& ec) {
  // asio::error::eof belongs to asio's misc category: compare by name, so that this file
  // needs no Asio header.
  if (ec == boost::system::errc::connection_reset) return true;
  return ec.value() == 2 && std::string_view(ec.category().name()) == "asio.misc";
}

DQLITE_DECL io_action exchange_core::finish(error_code ec) {
  if (owns_) {
    if (ec) ec = map_error(*s_, ec, sent_);
    if (ec && params_.may_write && sent_ && answer_lost(ec)) {
      s_->diag.assign("the request was sent but its answer was lost (" +
                      (s_->diag.empty() ? ec.message() : s_->diag.message()) +
                      "); it may or may not have been applied");
      ec = make_error_code(errc::outcome_unknown);
    }
    s_->note_tx_effect(params_.tx, ec, sent_);
    if (ec && !init_ec_ && is_connection_error(ec)) {
      if (ec.category() == server_category())
        s_->diag.assign(s_->diag.message() +
                        (is_not_leader(ec) || is_leadership_lost(ec)
                             ? " (the connection was closed: the node is not the leader)"
                             : " (the connection was closed: the node has no such database "
                               "or statement any more, e.g. after a leadership change)"));
      s_->break_connection(ec);
    } else if (ec && s_->state != conn_state::open && !s_->broken_by) {
      s_->broken_by = ec;  // an opening (handshake, OPEN) that failed
    }
    const bool hold = !ec && holds();
    if (hold)
      s_->holder = params_.holder;
    else if (params_.holder != 0 && s_->holder == params_.holder)
      s_->holder = 0;
    s_->busy = false;
    s_->release_buffers();
  }
  return io_action::done(ec);
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/exchange_machine.ipp ----
#endif
// ---- end dqlite/detail/sansio/exchange_machine.hpp ----

#include <optional>
#include <string>
#include <utility>

namespace dqlite::detail {

/// Encodes the protocol version followed by OPEN(database): one write, one round trip.
/// With an empty database name (a connection for cluster administration only) LEADER
/// takes the place of OPEN, so that the handshake still waits for the node to answer.
inline error_code encode_handshake(session_state& c) {
  wire::encode_handshake(c.wbuf);
  if (c.opts.database.empty()) {
    wire::encode_leader(c.wbuf);
    return {};
  }
  if (auto e = wire::encode_open(c.wbuf, c.opts.database)) {
    c.diag.assign("the database name contains a NUL byte");
    return e;
  }
  return {};
}

/// OPEN: the DB response opens the connection.
struct open_proc {
  using result_type = void;
  error_code on_frame(session_state& c, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) {
    if (h.type != static_cast<std::uint8_t>(wire::response::db))
      return make_error_code(errc::unexpected_response);
    wire::db_response r;
    if (auto e = wire::decode_db(body, r)) return e;
    c.db_id = r.id;
    c.state = conn_state::open;
    ++c.generation;
    done = true;
    return {};
  }
  void on_failure(session_state& c) {
    c.close_session();  // no database is open: the connection is of no use
  }
};

/// The response to encode_handshake: DB (see open_proc), or SERVER when no database is
/// opened. Either one makes the connection open.
struct handshake_proc {
  using result_type = void;
  error_code on_frame(session_state& c, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) {
    if (!c.opts.database.empty()) return open_proc{}.on_frame(c, h, body, done);
    if (h.type != static_cast<std::uint8_t>(wire::response::server))
      return make_error_code(errc::unexpected_response);
    wire::server_response r;
    if (auto e = wire::decode_server(body, r)) return e;
    c.state = conn_state::open;
    done = true;
    return {};
  }
  void on_failure(session_state& c) { c.close_session(); }
};

/// Transport connect, TLS handshake (when Tls), then the dqlite handshake + OPEN, all
/// within connect_timeout (the I/O loop arms one timer for the whole operation).
/// `resolve`: the address is "host:port" to parse and resolve (else the I/O loop has an
/// endpoint to connect to).
template <bool Tls>
class connect_machine {
 public:
  using result_type = void;

  connect_machine(session_state& s, std::string address, bool resolve)
      : s_(&s), address_(std::move(address)), resolve_(resolve) {}

  static constexpr bool interruptible() { return false; }
  bool cancellable() const noexcept { return true; }
  std::chrono::milliseconds take_rearm() noexcept {
    return handshake_ ? handshake_->take_rearm() : std::chrono::milliseconds{0};
  }
  /// The host and port to resolve (valid once the machine asked to connect).
  const host_port& target() const noexcept { return hp_; }
  const std::string& address() const noexcept { return address_; }

  io_action resume(const io_event& ev) {
    switch (ev.what) {
      case io_event::kind::start: return start();
      case io_event::kind::connected:
        if (ev.ec) return fail(ev.ec, "connecting to", ev.cancel_requested);
        if constexpr (Tls) return io_action::tls_handshake();
        return start_handshake();
      case io_event::kind::handshaken:
        if (ev.ec) return fail(ev.ec, "TLS handshake with", ev.cancel_requested);
        return start_handshake();
      case io_event::kind::wrote:
      case io_event::kind::read:
        if (!handshake_) break;
        {
          io_action a = handshake_->resume(ev);
          if (a.what == io_action::kind::done) return handshake_done(a.ec);
          return a;
        }
    }
    fail(make_error_code(errc::invalid_argument), "connecting to");
    s_->diag.assign("internal error: unexpected event while connecting");
    return io_action::done(make_error_code(errc::invalid_argument));
  }

 private:
  io_action start() {
    if (auto e = s_->begin_op(false)) return io_action::done(e);  // busy: not ours to undo
    s_->state = conn_state::closed;
    s_->rbuf.clear();
    s_->reset_session();
    s_->broken_by = {};
    s_->peer = address_;
    if (resolve_ && parse_address(address_, hp_)) {
      s_->busy = false;
      s_->diag.assign("invalid address '" + address_ + "': expected host:port or [ipv6]:port");
      s_->broken_by = make_error_code(errc::invalid_address);
      return io_action::done(s_->broken_by);
    }
    return io_action::connect();
  }

  io_action start_handshake() {
    s_->wbuf.clear();
    error_code e = encode_handshake(*s_);
    exchange_params p{false, s_->opts.connect_timeout, 0, false};
    handshake_.emplace(*s_, handshake_proc{}, e, true, p);
    io_action a = handshake_->resume(io_event{});
    if (a.what == io_action::kind::done) return handshake_done(a.ec);
    return a;
  }

  io_action handshake_done(error_code ec) {
    if (ec && s_->state != conn_state::open) {
      s_->state = conn_state::closed;  // broken_by: set by the exchange's finish
      s_->request_close();
    }
    if (ec == make_error_code(errc::timeout)) {
      // The transport was connected, and the handshake and OPEN went out together (one
      // write) or were on their way: no answer came.
      std::string sent = s_->opts.database.empty()
                             ? std::string("LEADER request")
                             : "OPEN of database '" + std::string(s_->opts.database) + "'";
      s_->diag.assign("connected to " + address_ + ", but no answer to the dqlite handshake and " +
                      sent + " within " + std::to_string(s_->opts.connect_timeout.count()) +
                      " ms (connect_timeout): the node may be stuck or overloaded, or the peer "
                      "may not be a dqlite node (an HTTP server, for one, waits for a request "
                      "line that never comes)");
    }
    return io_action::done(ec);
  }

  io_action fail(error_code ec, const char* during, bool cancel_requested = false) {
    s_->busy = false;
    s_->state = conn_state::closed;
    s_->request_close();
    if (s_->timed_out) {
      s_->diag.assign(std::string(during) + " " + address_ + " took longer than " +
                      std::to_string(s_->opts.connect_timeout.count()) +
                      " ms (connect_timeout)");
      ec = make_error_code(errc::timeout);
    } else if (cancel_requested && ec == boost::system::errc::operation_canceled) {
      s_->diag.assign("the operation was cancelled (" + std::string(during) + " " + address_ +
                      "); the connection was closed");
      ec = make_error_code(errc::cancelled);
    } else {
      s_->diag.assign(std::string(during) + " " + address_ + ": " + ec.message());
    }
    s_->broken_by = ec;
    return io_action::done(ec);
  }

  session_state* s_;
  std::string address_;
  bool resolve_;
  host_port hp_{};
  std::optional<exchange_machine<handshake_proc>> handshake_;
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/sansio/connect_machine.hpp ----
// ---- begin dqlite/detail/sansio/observe.hpp ----
// The connection's side of the logging and tracing hooks (dqlite/observe.hpp): the span
// of the request in progress, what a request frame says about itself, and the events of
// an exchange's or a connect's end. No Asio; called by the I/O loop and the blocking
// driver only when a hook is set.


#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>

namespace dqlite::detail {

/// The name of a request type, as request_trace::request gives it.
constexpr std::string_view request_name(std::uint8_t type) noexcept {
  constexpr std::string_view names[] = {
      "LEADER",   "CLIENT",   "HEARTBEAT", "OPEN",      "PREPARE",  "EXEC",  "QUERY",
      "FINALIZE", "EXEC_SQL", "QUERY_SQL", "INTERRUPT", "CONNECT",  "ADD",   "ASSIGN",
      "REMOVE",   "DUMP",     "CLUSTER",   "TRANSFER",  "DESCRIBE", "WEIGHT"};
  return type < std::size(names) ? names[type] : std::string_view("UNKNOWN");
}

/// Fills the span's description of the request from its frame (as encoded in wbuf).
DQLITE_DECL void describe_request(wire::bytes_view f, trace_span& sp);

/// What a request trace event says of the connection's span, at a phase.
DQLITE_DECL request_trace make_trace(const session_state& s, request_trace::phase at);

/// The start of an exchange that holds the connection (its request, if any, in wbuf).
/// early: the exchange failed before its request could be encoded; handshake: the
/// request is the protocol version and OPEN (async_handshake over a connected stream).
DQLITE_DECL void trace_begin(session_state& s, bool blocking, bool early, bool continuation,
                             bool handshake = false);

/// The end of the exchange trace_begin started.
DQLITE_DECL void trace_end(session_state& s, const error_code& ec);

/// Log events of an exchange that failed (ec set), holding the connection.
DQLITE_DECL void log_exchange_failure(const session_state& s, const error_code& ec);

/// Log events of opening a connection.
DQLITE_DECL void log_connect_start(const session_state& s, std::string_view address);
DQLITE_DECL void log_connect_end(const session_state& s, std::string_view address,
                                 const error_code& ec);

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/observe.ipp ----
// Definitions of detail/sansio/observe.hpp (see detail/config.hpp).


namespace dqlite::detail {

namespace trace_detail {
DQLITE_DECL std::uint32_t load_u32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint32_t>(p[i]);
  return v;
}
// The parameter count of a tuple at `at` in a frame whose header says `schema`.
DQLITE_DECL std::size_t tuple_count(wire::bytes_view f, std::size_t at,
                                    std::uint8_t schema) noexcept {
  if (at >= f.size()) return 0;
  if (schema == 0) return static_cast<std::size_t>(f[at]);
  return at + 4 <= f.size() ? load_u32(f.data() + at) : 0;
}
}  // namespace trace_detail

/// Fills the span's description of the request from its frame (as encoded in wbuf).
DQLITE_DECL void describe_request(wire::bytes_view f, trace_span& sp) {
  sp.sql = {};
  sp.stmt = 0;
  sp.params = 0;
  if (f.size() < wire::header_size) {
    sp.request = "NONE";
    return;
  }
  const auto type = static_cast<std::uint8_t>(f[4]);
  const auto schema = static_cast<std::uint8_t>(f[5]);
  sp.request = request_name(type);
  using wire::request;
  const std::size_t body = wire::header_size;
  switch (static_cast<request>(type)) {
    case request::exec_sql:
    case request::query_sql:
    case request::prepare: {
      // u64 db (u32 + padding for PREPARE), then the text, NUL-terminated, padded.
      const std::size_t at = body + 8;
      if (at >= f.size()) return;
      const char* text = reinterpret_cast<const char*>(f.data() + at);
      const std::size_t len = strnlen(text, f.size() - at);
      sp.sql = std::string_view(text, len);
      const std::size_t after = at + ((len + 1 + 7) & ~std::size_t{7});
      if (type != static_cast<std::uint8_t>(request::prepare))
        sp.params = trace_detail::tuple_count(f, after, schema);
      return;
    }
    case request::exec:
    case request::query:
      if (f.size() >= body + 8) sp.stmt = trace_detail::load_u32(f.data() + body + 4);
      sp.params = trace_detail::tuple_count(f, body + 8, schema);
      return;
    case request::finalize:
      if (f.size() >= body + 8) sp.stmt = trace_detail::load_u32(f.data() + body + 4);
      return;
    default: return;
  }
}

DQLITE_DECL request_trace make_trace(const session_state& s, request_trace::phase at) {
  request_trace t;
  t.at = at;
  t.request = s.span.request;
  t.sql = s.span.sql;
  t.statement_id = s.span.stmt;
  t.parameters = s.span.params;
  t.node = s.peer;
  t.database = s.database;
  t.connection = &s;
  t.sequence = s.span.seq;
  t.blocking = s.span.blocking;
  return t;
}

/// The start of an exchange that holds the connection (its request, if any, in wbuf).
/// early: the exchange failed before its request could be encoded; handshake: the
/// request is the protocol version and OPEN (async_handshake over a connected stream).
DQLITE_DECL void trace_begin(session_state& s, bool blocking, bool early, bool continuation,
                             bool handshake) {
  auto& sp = s.span;
  sp.active = true;
  sp.blocking = blocking;
  sp.seq = s.op_seq;
  if (early || handshake) {
    sp.request = early ? "NONE" : "HANDSHAKE";
    sp.sql = {};
    sp.stmt = 0;
    sp.params = 0;
  } else if (continuation) {
    sp.request = "ROWS";
    sp.sql = {};
    sp.stmt = 0;
    sp.params = 0;
  } else {
    describe_request(wire::bytes_view(s.wbuf), sp);
  }
  sp.sent = early ? 0 : s.wbuf.size();
  sp.rows0 = s.rows.rows_read();
  sp.bytes0 = s.rbuf.received();
  s.opts.trace(make_trace(s, request_trace::phase::start));
  sp.t0 = std::chrono::steady_clock::now();
}

/// The end of the exchange trace_begin started.
DQLITE_DECL void trace_end(session_state& s, const error_code& ec) {
  auto& sp = s.span;
  if (!sp.active) return;
  sp.active = false;
  request_trace t = make_trace(s, request_trace::phase::end);
  t.duration = std::chrono::steady_clock::now() - sp.t0;
  t.rows = s.rows.rows_read() - sp.rows0;
  t.bytes_sent = sp.sent;
  t.bytes_received = s.rbuf.received() - sp.bytes0;
  t.error = ec;
  if (ec) t.message = s.diag.message();
  s.opts.trace(t);
  sp.sql = {};
  if (s.wbuf.capacity() > read_buffer::retain_size) wire::buffer().swap(s.wbuf);
}

DQLITE_DECL logger session_logger(const session_state& s) noexcept {
  return logger{s.opts.log, s.opts.log_threshold};
}

/// Log events of an exchange that failed (ec set), holding the connection.
DQLITE_DECL void log_exchange_failure(const session_state& s, const error_code& ec) {
  const logger log = session_logger(s);
  if (ec == make_error_code(errc::timeout)) {
    log(log_level::warning, "timeout", [&] { return std::string(s.diag.message()); });
  } else if (ec == make_error_code(errc::interrupted)) {
    log(log_level::info, "interrupted", [&] {
      return "a query on " + s.peer + " was interrupted (cancelled); the connection remains usable";
    });
  } else if (s.state != conn_state::open && is_connection_error(ec)) {
    log(log_level::warning, "connection_broken", [&] {
      return "the connection to " + s.peer + " was closed after an error: " + ec.message() +
             (s.diag.empty() ? std::string() : ": " + std::string(s.diag.message()));
    });
  }
}

/// Log events of opening a connection.
DQLITE_DECL void log_connect_start(const session_state& s, std::string_view address) {
  session_logger(s)(log_level::debug, "connect",
                    [&] { return "connecting to " + std::string(address); });
}
DQLITE_DECL void log_connect_end(const session_state& s, std::string_view address,
                                 const error_code& ec) {
  const logger log = session_logger(s);
  if (!ec)
    log(log_level::debug, "connected", [&] {
      return "connected to " + std::string(address) +
             (s.database.empty() ? std::string(" (no database)")
                                 : " (database " + s.database + ")");
    });
  else
    log(log_level::warning, "connect_failed", [&] {
      return "connecting to " + std::string(address) +
             " failed: " + (s.diag.empty() ? ec.message() : std::string(s.diag.message()));
    });
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/observe.ipp ----
#endif
// ---- end dqlite/detail/sansio/observe.hpp ----

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace dqlite {

/// Tag: a connection with an io_context of its own (see dqlite::connect).
struct own_io_context_t {
  explicit own_io_context_t() = default;
};
inline constexpr own_io_context_t own_io_context{};

}  // namespace dqlite

namespace dqlite::detail {

/// An io_context a connection owns (connections for blocking use need no executor).
struct owned_io_context {
  std::unique_ptr<boost::asio::io_context> io;
  /// What else must outlive the stream: the state (and io_context) of the blocking cluster
  /// client or blocking pool whose io_context the stream is registered with (a connection
  /// from blocking_cluster::connect(), or one checked out of a blocking_pool until it goes
  /// back).
  std::shared_ptr<void> keep_alive;
};

/// A connection: its session state, its stream and its timer, shared with the
/// operations in progress.
template <class Stream>
struct connection_impl : owned_io_context,
                         session_state,
                         std::enable_shared_from_this<connection_impl<Stream>> {
  using executor_type = typename Stream::executor_type;

  template <class... Args>
  explicit connection_impl(const connection_options& o, Args&&... args)
      : session_state(o), stream(std::forward<Args>(args)...), timer(stream.get_executor()) {}

  /// With an io_context of its own (constructed before the stream that uses it).
  connection_impl(own_io_context_t, const connection_options& o)
      : owned_io_context{std::make_unique<boost::asio::io_context>(), nullptr},
        session_state(o),
        stream(io->get_executor()),
        timer(stream.get_executor()) {}

  using clock = std::chrono::steady_clock;

  Stream stream;
  boost::asio::steady_timer timer;

  // The deadline of the operation in progress, watched by one timer that is not re-armed
  // for every request: a pending wait ends at most `tick` from when it was armed (or at
  // the deadline, if sooner); when it ends, it checks the deadline and waits again while
  // an operation runs. So a steady stream of requests costs no timer system call per
  // request, and an idle connection holds no wait for longer than a tick (an io_context
  // with nothing else to do returns from run() within a tick of the last operation).
  static constexpr std::chrono::milliseconds tick{50};
  clock::time_point deadline = clock::time_point::max();
  clock::time_point wait_until = clock::time_point::max();  ///< end of the pending wait
  /// Identifies the pending wait (0: none). Atomic because the wait's handler may read it on
  /// the executor's thread after release_timer() while another thread uses the blocking
  /// forms (which only ever store 0, in release_timer); relaxed: it orders nothing else.
  std::atomic<std::uint64_t> wait_id{0};
  std::uint64_t waits = 0;      ///< waits started so far
  std::function<void()> timeout_hook;  ///< what else to stop on expiry (a resolver)

  /// The blocking forms wait for an answer inside recv(2) on a descriptor in blocking mode,
  /// bounded by its receive timeout (SO_RCVTIMEO): one system call where poll(2) and a read
  /// take two. blocking_fd is the descriptor they switched to blocking mode (-1: none) and
  /// recv_timeout the receive timeout they last set on it (zero: none). An asynchronous
  /// operation makes the descriptor non-blocking again (Asio does), so each one resets
  /// blocking_fd, as does every close and every opening of a socket by the blocking forms
  /// (a new socket may get the same number); if it is stale all the same, recv fails at
  /// once with EAGAIN and the blocking forms wait with poll(2) instead.
  int blocking_fd = -1;
  std::chrono::microseconds recv_timeout{0};

  /// The operation in progress must end within d from now.
  void set_deadline(std::chrono::milliseconds d) {
    auto now = clock::now();
    deadline = now + d;
    if (wait_id.load(std::memory_order_relaxed) == 0 || wait_until > deadline) watch(now);
  }

  /// The operation in progress ended: the pending wait, if any, ends by itself.
  void clear_deadline() {
    deadline = clock::time_point::max();
    timeout_hook = nullptr;
  }

  void watch(clock::time_point now) {
    wait_until = std::min(deadline, now + tick);
    const auto id = ++waits;
    wait_id.store(id, std::memory_order_relaxed);
    timer.expires_at(wait_until);
    timer.async_wait([w = this->weak_from_this(), id](error_code ec) {
      auto s = w.lock();
      if (!s || s->wait_id.load(std::memory_order_relaxed) != id) return;  // replaced, released
      s->wait_id.store(0, std::memory_order_relaxed);
      if (ec || !s->busy || s->deadline == clock::time_point::max()) return;  // idle: stop
      auto now = clock::now();
      if (now < s->deadline) return s->watch(now);
      s->timed_out = true;
      if (s->timeout_hook) s->timeout_hook();
      error_code ignored;
      s->stream.lowest_layer().close(ignored);
    });
  }

  /// Called on the executor's thread before the connection is handed to a thread that uses
  /// only its blocking forms: the pending wait, if any, ends without reading the
  /// connection again (its handler finds wait_id changed), and no later one is armed
  /// until an asynchronous operation starts.
  void release_timer() {
    wait_id.store(0, std::memory_order_relaxed);
    timer.cancel();
  }

  /// Closes the transport now; the session is gone with it.
  void close_transport() {
    if (forked()) return forget_after_fork();
    error_code ignored;
    stream.lowest_layer().close(ignored);
    blocking_fd = -1;
    release_timer();
    close_requested = false;
    state = conn_state::closed;
    rbuf.clear();
    reset_session();
  }

  /// Carries out a machine's request to close the transport.
  void apply_close_request() {
    if (!close_requested) return;
    close_requested = false;
    error_code ignored;
    stream.lowest_layer().close(ignored);
    blocking_fd = -1;
  }

  /// After fork() in the child: the socket is shared with the parent process. Point the
  /// descriptor at /dev/null before closing it, so that nothing done to it in the child (the
  /// close, a reactor deregistration from an epoll instance shared across fork) can reach
  /// the parent's connection.
  void forget_after_fork() noexcept {
    auto& sock = stream.lowest_layer();
    if (sock.is_open()) {
      int fd = static_cast<int>(sock.native_handle());
      int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (null_fd >= 0) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
      }
      error_code ignored;
      sock.close(ignored);
    }
    blocking_fd = -1;
    state = conn_state::closed;
  }
};

/// The completion handler of a request on connection `conn` is running on this thread
/// (the innermost one, if they nest), after its answer was read: see take_unasked. Only
/// the thread that runs the handler reads it; it is kept by value (saved and restored
/// around each handler call), so it never points into a stack frame.
struct completion_mark {
  const void* conn = nullptr;
  std::chrono::steady_clock::time_point answered{};  ///< when the answer was taken in
};
inline thread_local completion_mark current_completion{};

/// The last blocking exchange this thread completed with an answer read: the blocking
/// twin of current_completion. A blocking call returns to its caller, so the mark stays
/// after it; take_unasked honours it only for the same connection within
/// follow_on_window (a caller's loop of blocking calls, as a coroutine's loop of
/// co_awaits). The connection is only compared, never dereferenced.
inline thread_local completion_mark last_blocking_answer{};

/// True for the streams whose socket the client reads and writes directly: Asio stream
/// sockets (TCP, unix), not TLS streams.
template <class Stream>
constexpr bool is_plain_socket = std::is_base_of_v<typename Stream::lowest_layer_type, Stream>;

/// Preparing a TLS stream before its handshake (server name, host name verification):
/// specialised in dqlite/tls.hpp. The primary template is for streams that are not TLS.
template <class Stream>
struct tls_setup {
  static constexpr bool is_tls = false;
  static error_code prepare(Stream&, const std::string&) { return {}; }
};

/// The transport steps of opening a connection over Stream: resolve "host:port" (TCP) or
/// connect to a given endpoint, TCP_NODELAY, and the TLS handshake for TLS streams.
template <class Stream>
struct connect_steps {
  using tcp = boost::asio::ip::tcp;
  using socket_type = std::remove_cvref_t<decltype(std::declval<Stream&>().lowest_layer())>;
  using endpoint_type = typename socket_type::endpoint_type;
  static constexpr bool is_tcp = std::is_same_v<typename socket_type::protocol_type, tcp>;

  std::optional<endpoint_type> endpoint{};  ///< given instead of an address to resolve
  std::shared_ptr<tcp::resolver> resolver{};
  tcp::resolver::results_type resolved{};           ///< the resolver's answer
  tcp::resolver::results_type::const_iterator next{};  ///< the resolved endpoint to try next

  template <class Impl, class Machine, class Self>
  void connect(Impl& c, Machine& m, Self& self) {
    error_code ignored;
    c.stream.lowest_layer().close(ignored);  // a connection may be opened again
    if (endpoint) {
      c.stream.lowest_layer().async_connect(*endpoint, std::move(self));
      return;
    }
    if constexpr (is_tcp) {
      const auto& hp = m.target();
      resolver->async_resolve(hp.host, std::to_string(hp.port), std::move(self));
    }
  }

  /// The resolver's answer: connect to its endpoints in turn, until one accepts (see
  /// try_next), as asio::async_connect over a range does, with the connect operation the
  /// loop already has for a given endpoint.
  template <class Impl, class Machine, class Self>
  void on_completion(Impl& c, Machine&, Self& self, error_code ec,
                     const tcp::resolver::results_type& results) {
    if (ec) return self(ec);
    if (results.empty()) return self(make_error_code(boost::asio::error::host_not_found));
    resolved = results;
    next = resolved.begin();
    if (!try_next(c, self, ec, false)) self(ec);
  }

  /// Starts connecting to the next resolved endpoint and returns true, after a failed
  /// connect (ec, after_failure) or for the first one. False when none is left (ec is then
  /// the last failure), or when the operation must end: cancelled (a cancellation the
  /// resolver could not take, or one that came with the failure), or its connection
  /// closed (its deadline passed, or it was closed or destroyed meanwhile); ec is then
  /// operation_aborted.
  template <class Impl, class Self>
  bool try_next(Impl& c, Self& self, error_code& ec, bool after_failure) {
    if constexpr (is_tcp) {
      if (next == tcp::resolver::results_type::const_iterator{} || next == resolved.end())
        return false;
      if (ec == boost::asio::error::operation_aborted || c.timed_out ||
          (after_failure && !c.stream.lowest_layer().is_open()) ||
          self.cancelled() != boost::asio::cancellation_type::none) {
        ec = make_error_code(boost::asio::error::operation_aborted);
        return false;
      }
      const tcp::endpoint ep = (next++)->endpoint();
      error_code ignored;
      c.stream.lowest_layer().close(ignored);
      c.stream.lowest_layer().async_connect(ep, std::move(self));
      return true;
    } else {
      (void)c, (void)self, (void)ec, (void)after_failure;
      return false;
    }
  }

  template <class Impl, class Machine, class Self>
  void tls_handshake(Impl& c, Machine& m, Self& self) {
    if constexpr (tls_setup<Stream>::is_tls) {
      std::string host = endpoint ? m.address() : m.target().host;
      // A failure is reported as a failed handshake (the op has already run I/O: this is
      // not the initiating function).
      if (auto e = tls_setup<Stream>::prepare(c.stream, host)) return self(e);
      c.stream.async_handshake(boost::asio::ssl::stream_base::client, std::move(self));
    }
  }

  auto timeout_hook() const {
    return [r = resolver] {
      if (r) r->cancel();
    };
  }
};

/// After the transport connect: TCP_NODELAY on TCP sockets, and TCP keepalive when
/// connection_options::tcp_keepalive asks for it.
template <class Stream>
void tune_socket(Stream& stream, const connection_options& opts) {
  using socket_type = std::remove_cvref_t<decltype(stream.lowest_layer())>;
  if constexpr (std::is_same_v<typename socket_type::protocol_type, boost::asio::ip::tcp>) {
    error_code ignored;
    auto& sock = stream.lowest_layer();
    sock.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    if (opts.tcp_keepalive.count() > 0) {
      sock.set_option(boost::asio::socket_base::keep_alive(true), ignored);
      const auto secs = static_cast<int>(
          std::min<std::chrono::seconds::rep>(opts.tcp_keepalive.count(), 32767));
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL)
      using idle = boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>;
      using interval = boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>;
      sock.set_option(idle(secs), ignored);
      sock.set_option(interval(secs), ignored);
#else
      (void)secs;  // the system's idle time and interval
#endif
    }
  }
}

/// The connect machine with TCP_NODELAY set once the transport is connected.
template <class Stream>
class stream_connect_machine : public connect_machine<tls_setup<Stream>::is_tls> {
  using base = connect_machine<tls_setup<Stream>::is_tls>;

 public:
  stream_connect_machine(connection_impl<Stream>& c, std::string address, bool resolve)
      : base(c, std::move(address), resolve), c_(&c) {}
  io_action resume(const io_event& ev) {
    if (ev.what == io_event::kind::connected && !ev.ec) tune_socket(c_->stream, c_->opts);
    return base::resume(ev);
  }

 private:
  connection_impl<Stream>* c_;
};

/// What an I/O loop drives: a request exchange (its machine's core, which the caller owns
/// and keeps alive until the loop completes) or the opening of a connection (its machine
/// and transport steps, held here). Both kinds run in one loop type per stream, so the
/// Asio operations the loop starts (writes, reads, the connect steps) are compiled once
/// per stream type, not once per kind.
template <class Stream>
struct loop_machine {
  /// Opening a connection: allocated once per opening, so that an exchange's loop (which
  /// Asio moves at each step) carries only a null pointer for it.
  struct opening {
    stream_connect_machine<Stream> m;
    connect_steps<Stream> steps;
  };

  exchange_core* ex = nullptr;    ///< an exchange, or
  std::unique_ptr<opening> conn;  ///< the opening of a connection

  io_action resume(const io_event& ev) { return ex ? ex->resume(ev) : conn->m.resume(ev); }
  bool interruptible() const noexcept { return ex ? ex->interruptible() : conn->m.interruptible(); }
  bool cancellable() const noexcept { return ex ? ex->cancellable() : conn->m.cancellable(); }
  std::chrono::milliseconds take_rearm() noexcept {
    return ex ? ex->take_rearm() : conn->m.take_rearm();
  }
};

/// Drives a loop_machine over the connection's stream until it is done. The machine
/// answers:
///   io_action resume(const io_event&);
///   bool interruptible() const;              (true: total cancellation is enabled)
///   bool cancellable() const;                (false: disable cancellation from now on)
///   std::chrono::milliseconds take_rearm();  (> 0: arm the timer for that long from now)
/// timeout: armed when the machine starts; on expiry the session's timed_out is set and
/// the stream closed, which makes the pending I/O fail.
/// Completes with (error_code, bool inline): inline is true when the machine was done
/// before any asynchronous operation started, i.e. inside the initiating function; the
/// handler (loop_handler) must then post the caller's completion, not call it.
template <class Stream>
struct io_loop_op {
  using impl_type = connection_impl<Stream>;
  std::shared_ptr<impl_type> c;
  loop_machine<Stream> m;
  std::chrono::milliseconds timeout{0};
  bool started = false;
  bool async_started = false;  ///< an asynchronous operation was started
  bool cancellation_on = true;
  bool armed_here = false;
  std::size_t sent_now = 0;  ///< bytes of the current write already sent synchronously

  template <class Self>
  void operator()(Self& self) {
    if (started) return;
    started = true;
    c->blocking_fd = -1;
    if (m.interruptible())
      self.reset_cancellation_state(boost::asio::enable_total_cancellation());
    // With no hook set this is one test of a pointer: no clock is read.
    if (m.ex) {
      if (c->opts.trace) [[unlikely]]
        begin_trace();
    } else if (c->opts.log) [[unlikely]] {
      log_connect_start(*c, m.conn->m.address());
    }
    io_action a = m.resume(io_event{io_event::kind::start, {}, 0, false});
    if (a.what != io_action::kind::done) arm(timeout);
    perform(self, a);
  }

  // Writes and reads.
  template <class Self>
  void operator()(Self& self, error_code ec, std::size_t n) {
    if (pending == io_event::kind::wrote) n += std::exchange(sent_now, 0);
    step(self, io_event{pending, ec, n, false});
  }

  // Steps that complete with an error code alone (connect, TLS handshake). A failed
  // connect to one of the resolved endpoints moves on to the next one.
  template <class Self>
  void operator()(Self& self, error_code ec) {
    if (ec && pending == io_event::kind::connected && m.conn &&
        m.conn->steps.try_next(*c, self, ec, true))
      return;
    step(self, io_event{pending, ec, 0, false});
  }

  // Other completions of transport steps (resolver results, the endpoint connected to).
  template <class Self, class Arg>
    requires(!std::is_convertible_v<Arg, std::size_t>)
  void operator()(Self& self, error_code ec, Arg&& arg) {
    m.conn->steps.on_completion(*c, m.conn->m, self, ec, std::forward<Arg>(arg));
  }

  /// Resumes the machine with ev (pending I/O just completed).
  template <class Self>
  void step(Self& self, io_event ev) {
    ev.cancel_requested =
        cancellation_on && self.cancelled() != boost::asio::cancellation_type::none;
    perform(self, m.resume(ev));
  }

  io_event::kind pending = io_event::kind::start;

 private:
  void begin_trace() {
    if (!m.ex->owns() || m.ex->housekeeping_only()) return;
    trace_begin(*c, false, m.ex->failed_early(), c->wbuf.empty(), !m.ex->params().needs_open);
  }

  // The machine is done: the hooks' events of its end (before anything else can start
  // on the connection).
  void observe_end(const error_code& ec) {
    if (m.ex) {
      if (c->span.active) [[unlikely]]
        trace_end(*c, ec);
      if (ec && c->opts.log && m.ex->owns()) [[unlikely]]
        log_exchange_failure(*c, ec);
    } else if (c->opts.log) [[unlikely]] {
      log_connect_end(*c, m.conn->m.address(), ec);
    }
  }

  template <class Self>
  void perform(Self& self, const io_action& a) {
    if (cancellation_on && !m.cancellable()) {
      cancellation_on = false;
      self.reset_cancellation_state(boost::asio::disable_cancellation());
    }
    if (auto d = m.take_rearm(); d.count() > 0)
      arm(d);
    else if (d.count() < 0 && armed_here)
      c->deadline = connection_impl<Stream>::clock::time_point::max();
    switch (a.what) {
      case io_action::kind::write: {
        pending = io_event::kind::wrote;
        // A plain socket usually takes a small request at once: write it without a trip
        // through the reactor (one send() instead of send() plus a posted completion), and
        // resume the machine right away. Whatever the socket does not take goes the
        // asynchronous way (async_write: only a terminal cancellation aborts a write, so a
        // total one interrupts the request once it is out).
        std::size_t n = try_send_now(a.out);
        if (n == a.out.size() && n > 0) return step(self, io_event{io_event::kind::wrote, {}, n, false});
        sent_now = n;
        async_started = true;
        auto rest = a.out.subspan(n);
        boost::asio::async_write(c->stream, boost::asio::buffer(rest.data(), rest.size()),
                                 std::move(self));
        return;
      }
      case io_action::kind::read: {
        pending = io_event::kind::read;
        async_started = true;
        auto space = c->rbuf.prepare(a.need);
        c->stream.async_read_some(boost::asio::buffer(space.data(), space.size()),
                                  std::move(self));
        return;
      }
      case io_action::kind::connect:
        pending = io_event::kind::connected;
        async_started = true;
        if (!m.conn) return transport_step_misuse(self);
        return m.conn->steps.connect(*c, m.conn->m, self);
      case io_action::kind::tls_handshake:
        pending = io_event::kind::handshaken;
        async_started = true;
        if (!m.conn) return transport_step_misuse(self);
        return m.conn->steps.tls_handshake(*c, m.conn->m, self);
      case io_action::kind::done:
        observe_end(a.ec);
        return complete(self, a.ec);
    }
  }

  // An exchange machine asked for a transport step (a connect or a TLS handshake): a bug.
  // It gets the step's failure, so that it ends as a failed step would.
  template <class Self>
  void transport_step_misuse(Self& self) {
    c->diag.assign("internal error: a request exchange asked for a transport step");
    step(self, io_event{pending, make_error_code(errc::invalid_argument), 0, false});
  }

  // Sends what the socket takes without blocking (plain TCP and unix sockets only).
  std::size_t try_send_now(wire::bytes_view out) {
    if constexpr (is_plain_socket<Stream> &&
                  requires { c->stream.native_handle(); }) {
      if (out.empty() || !c->stream.is_open()) return 0;
      ssize_t r = ::send(c->stream.native_handle(), out.data(), out.size(),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
      return r > 0 ? static_cast<std::size_t>(r) : 0;
    } else {
      (void)out;
      return 0;
    }
  }

  void arm(std::chrono::milliseconds d) {
    if (d.count() <= 0) return;
    if (!armed_here) {
      armed_here = true;
      if (m.conn) c->timeout_hook = m.conn->steps.timeout_hook();
    }
    c->set_deadline(d);
  }

  template <class Self>
  void complete(Self& self, error_code ec) {
    if (armed_here) c->clear_deadline();
    c->apply_close_request();
    // While the handler runs, a request it starts on this connection can tell that it
    // follows this answer at once (restored even if the handler throws). Only after an
    // answer was read: not for a failure found before anything was sent, nor for a
    // connect.
    struct mark_guard {
      completion_mark saved;
      ~mark_guard() { current_completion = saved; }
    } guard{current_completion};
    if constexpr (is_plain_socket<Stream>) {
      if (m.ex && async_started && !ec)
        current_completion = {c.get(), connection_impl<Stream>::clock::now()};
    }
    self.complete(ec, !async_started);
  }
};

/// Before a request on a connection that expects nothing from the server: takes in the
/// bytes the server sent unasked since the last answer, so that the exchange refuses them
/// (errc::trailing_bytes) instead of taking them for the answer to the new request. One
/// non-blocking recv() on plain sockets; a TLS stream cannot look ahead.
/// A server that closed the connection while it was idle is found the same way: the
/// request then fails with errc::connection_closed before anything is sent (so a write is
/// known not to have been applied).
/// Not done for a read-only request that follows the previous answer at once: started by
/// the completion handler of the connection's previous request, after its answer (the
/// next co_await of a coroutine that awaited it), or by the thread whose blocking call
/// read that answer, on the same thread, within follow_on_window of that answer. A
/// connection in such a loop is not idle, and the look would cost a system call per
/// request. A request that may write always looks: a close found then makes it fail as
/// connection_closed (nothing sent), not outcome_unknown.
inline constexpr std::chrono::microseconds follow_on_window{1000};

template <class Stream>
error_code take_unasked(connection_impl<Stream>& c, bool may_write) {
  if constexpr (is_plain_socket<Stream>) {
    if (c.state != conn_state::open || c.holder != 0 || c.drain_pending || !c.rbuf.empty() ||
        !c.stream.is_open())
      return {};
    if (!may_write && (current_completion.conn == &c || last_blocking_answer.conn == &c)) {
      const auto now = connection_impl<Stream>::clock::now();
      auto recent = [&](const completion_mark& m) {
        return m.conn == &c && now - m.answered < follow_on_window;
      };
      if (recent(current_completion) || recent(last_blocking_answer)) return {};
    }
    auto space = c.rbuf.prepare(1);
    ssize_t r = ::recv(c.stream.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
    if (r > 0) c.rbuf.commit(static_cast<std::size_t>(r));
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      c.diag.assign("the server " + c.peer +
                    " had closed the connection (it was idle); nothing was sent");
      auto ec = make_error_code(errc::connection_closed);
      c.break_connection(ec);
      return ec;
    }
    return {};
  } else {
    (void)c;
    (void)may_write;
    return {};
  }
}

/// Calls the caller's handler h with args; when the loop completed inside the initiating
/// function (inline), posts it to the handler's own executor instead (never the
/// connection's: after fork() that one may not be running), so that it is never called
/// from inside the initiating function.
template <class Handler, class Executor, class... Args>
void deliver(Handler&& h, const Executor& io_ex, bool inline_done, Args&&... args) {
  if (!inline_done) return std::move(h)(std::forward<Args>(args)...);
  auto ex = boost::asio::get_associated_executor(h, io_ex);
  boost::asio::post(ex, boost::asio::append(std::move(h), std::forward<Args>(args)...));
}

/// What a loop_handler completes: the caller's handler, with what its completion needs
/// (an exchange's machine), in one block from Asio's recycling allocator.
template <class Executor>
class loop_target {
 public:
  /// Frees the target, then calls the caller's handler; when the loop completed inside the
  /// initiating function (inline_done), from a post instead (post_completion).
  virtual void complete(error_code ec, bool inline_done) = 0;
  /// The same for an operation that never started (request_core: with an empty result).
  virtual void complete_empty(error_code ec, bool inline_done) { complete(ec, inline_done); }
  /// Frees the target without calling the handler (the operation was abandoned).
  virtual void destroy() noexcept = 0;
  virtual Executor executor() const noexcept = 0;
  virtual boost::asio::cancellation_slot slot() const noexcept = 0;

 protected:
  ~loop_target() = default;
};

/// The completion handler of the type-erased I/O loops (run_exchange, run_connect), with
/// the signature void(error_code, bool inline) (see io_loop_op). It stands for a caller's
/// handler whose associated executor is of the connection's executor type, with Asio's
/// default allocator and the standard cancellation slot (erasable_handler); it forwards
/// both, so the loop behaves as if it had the caller's handler. Other handlers get the
/// loop compiled for them. Unlike any_completion_handler, it needs no type-erased executor
/// (whose construction allocates for an any_io_executor).
template <class Executor>
class loop_handler {
 public:
  using executor_type = Executor;
  using cancellation_slot_type = boost::asio::cancellation_slot;

  explicit loop_handler(loop_target<Executor>* t) noexcept : t_(t) {}
  loop_handler(loop_handler&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  loop_handler& operator=(loop_handler&&) = delete;
  ~loop_handler() {
    if (t_) t_->destroy();
  }

  executor_type get_executor() const noexcept { return t_->executor(); }
  cancellation_slot_type get_cancellation_slot() const noexcept { return t_->slot(); }
  void operator()(error_code ec, bool inline_done) {
    std::exchange(t_, nullptr)->complete(ec, inline_done);
  }

 private:
  loop_target<Executor>* t_;
};

/// True when Handler can go through loop_handler<Executor> (see there).
template <class Handler, class Executor>
constexpr bool erasable_handler =
    std::is_same_v<boost::asio::associated_executor_t<Handler, Executor>, Executor> &&
    std::is_same_v<boost::asio::associated_allocator_t<Handler>, std::allocator<void>> &&
    std::is_same_v<boost::asio::associated_cancellation_slot_t<Handler>,
                   boost::asio::cancellation_slot>;

/// An erasable handler with an executor of its own (a coroutine's, one bound to it): even
/// an operation that cannot start (on a moved-from connection) completes it through a
/// target (post_completion), whatever executor the connection had.
template <class Handler, class Executor>
constexpr bool erasable_with_executor =
    erasable_handler<Handler, Executor> &&
    std::is_same_v<boost::asio::associated_executor_t<Handler>, Executor>;

/// A target's completion that came inside the initiating function, run from a post to the
/// target's executor (its caller's handler's) as target->complete(ec, false), or with
/// `empty` as target->complete_empty(ec, false). Its type depends on the executor type
/// only, not on the handler: Asio's post is compiled once per executor type, not once per
/// handler type (a few kilobytes of code for each result type).
/// Destroyed without having run (its executor was shut down), it frees the target, which
/// destroys the handler without calling it, as Asio does with a posted handler.
template <class Executor>
class posted_completion {
 public:
  posted_completion(loop_target<Executor>* t, error_code ec, bool empty) noexcept
      : t_(t), ec_(ec), empty_(empty) {}
  posted_completion(posted_completion&& o) noexcept
      : t_(std::exchange(o.t_, nullptr)), ec_(o.ec_), empty_(o.empty_) {}
  posted_completion& operator=(posted_completion&&) = delete;
  ~posted_completion() {
    if (t_) t_->destroy();
  }
  void operator()() {
    loop_target<Executor>* t = std::exchange(t_, nullptr);
    if (empty_)
      t->complete_empty(ec_, false);
    else
      t->complete(ec_, false);
  }

 private:
  loop_target<Executor>* t_;
  error_code ec_;
  bool empty_;
};

/// Posts target's completion (see posted_completion) to target->executor(): the handler's
/// own executor, never the connection's (after fork() that one may not be running), so that
/// the handler is never called from inside the initiating function.
template <class Executor>
void post_completion(loop_target<Executor>* target, error_code ec, bool empty = false) {
  boost::asio::post(target->executor(), posted_completion<Executor>(target, ec, empty));
}

/// The part of a loop_target that holds the caller's handler: its allocation, its
/// executor (the connection's when the handler has none) and its cancellation slot. Base:
/// loop_target<Executor>, or a class derived from it.
template <class Derived, class Executor, class Handler, class Base = loop_target<Executor>>
class loop_target_base : public Base {
 public:
  template <class... Args>
  static Derived* create(Args&&... args) {
    boost::asio::recycling_allocator<Derived> alloc;
    Derived* p = alloc.allocate(1);
    try {
      return ::new (static_cast<void*>(p)) Derived(std::forward<Args>(args)...);
    } catch (...) {
      alloc.deallocate(p, 1);
      throw;
    }
  }
  void destroy() noexcept final {
    auto* d = static_cast<Derived*>(this);
    d->~Derived();
    boost::asio::recycling_allocator<Derived>().deallocate(d, 1);
  }
  Executor executor() const noexcept final {
    return boost::asio::get_associated_executor(handler, io_ex);
  }
  /// Before a completion is posted (post_completion): the target keeps the executor it
  /// completes on only, not the connection's besides (which may track work on its
  /// io_context, or outlive it, until the completion runs).
  void keep_completion_executor() noexcept { io_ex = executor(); }
  boost::asio::cancellation_slot slot() const noexcept final {
    return boost::asio::get_associated_cancellation_slot(handler);
  }

 protected:
  template <class H, class... BaseArgs>
  loop_target_base(H&& h, const Executor& ex, BaseArgs&&... base_args)
      : Base(std::forward<BaseArgs>(base_args)...), handler(std::forward<H>(h)), io_ex(ex) {}
  ~loop_target_base() = default;

  Handler handler;
  Executor io_ex;
};

/// The target of an erased loop that is not a request's (opening a connection, with
/// Machine = no_machine): the machine and the caller's handler, completed with
/// (error_code[, the machine's result]).
template <class Executor, class Machine, class Handler>
class exchange_target final
    : public loop_target_base<exchange_target<Executor, Machine, Handler>, Executor, Handler> {
  using base = loop_target_base<exchange_target, Executor, Handler>;

 public:
  template <class H, class... Args>
  exchange_target(H&& h, const Executor& ex, Args&&... args)
      : base(std::forward<H>(h), ex), m(std::forward<Args>(args)...) {}
  ~exchange_target() = default;

  void complete(error_code ec, bool inline_done) override {
    if (inline_done) {
      this->keep_completion_executor();
      return post_completion<Executor>(this, ec);
    }
    Handler h(std::move(this->handler));
    if constexpr (std::is_void_v<typename Machine::result_type>) {
      this->destroy();
      std::move(h)(ec);
    } else {
      auto r = m.take();
      this->destroy();
      std::move(h)(ec, std::move(r));
    }
  }

  Machine m;
};

/// The target of a request's exchange as the library's code that does not depend on the
/// caller's handler or the response processor sees it: the exchange machine (whose
/// processor hooks the target supplies) and the completion of the caller's handler. It
/// is made before the request can start (a request may first wait for a probe of the
/// server): exchange_core::begin() binds it to the connection when it does.
template <class Executor>
class request_core : public loop_target<Executor>, public exchange_core {
 public:
  using exchange_core::begin;
  /// Frees the target, then calls the caller's handler with ec and an empty result (the
  /// request never started).
  void complete_empty(error_code ec, bool inline_done) override = 0;

 protected:
  request_core(bool interruptible, bool housekeeping_only)
      : exchange_core(interruptible, housekeeping_only) {}
  ~request_core() = default;
};

/// A request_core for processor Proc and the caller's handler, completed with
/// (error_code[, the processor's result]).
template <class Executor, class Proc, class Handler>
class request_target final
    : public loop_target_base<request_target<Executor, Proc, Handler>, Executor, Handler,
                              request_core<Executor>> {
  using base =
      loop_target_base<request_target, Executor, Handler, request_core<Executor>>;
  using result_type = typename Proc::result_type;

 public:
  template <class H>
  request_target(H&& h, const Executor& ex, Proc p)
      : base(std::forward<H>(h), ex, proc_interruptible<Proc>(), proc_housekeeping_only<Proc>()),
        proc(std::move(p)) {}
  ~request_target() = default;

  void complete(error_code ec, bool inline_done) override {
    if (inline_done) {
      this->keep_completion_executor();
      return post_completion<Executor>(this, ec);
    }
    if constexpr (std::is_void_v<result_type>) {
      finish(ec);
    } else {
      auto r = proc.take();
      finish(ec, std::move(r));
    }
  }
  void complete_empty(error_code ec, bool inline_done) override {
    if (inline_done) {
      this->keep_completion_executor();
      return post_completion<Executor>(this, ec, true);
    }
    if constexpr (std::is_void_v<result_type>)
      finish(ec);
    else
      finish(ec, result_type{});
  }

  Proc proc;

 private:
  error_code on_frame(session_state& s, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) override {
    return proc.on_frame(s, h, body, done);
  }
  void on_failure(session_state& s) override { proc_on_failure(proc, s); }
  bool holds() const override { return proc_holds(proc); }
  error_code map_error(session_state& s, error_code ec, bool sent) override {
    return proc_map_error(proc, s, ec, sent);
  }

  template <class... R>
  void finish(error_code ec, R&&... r) {
    Handler h(std::move(this->handler));
    this->destroy();
    std::move(h)(ec, std::forward<R>(r)...);
  }
};

/// The machine slot of an operation with no machine and no result of its own (opening a
/// connection: its loop holds its state): exchange_target<Executor, no_machine, Handler> and
/// exchange_completion<no_machine, ...> then only call the handler with the error code.
struct no_machine {
  using result_type = void;
};

/// Frees a machine allocated with the caller's handler's allocator (Asio's recycling
/// allocator when the handler has none), as Asio allocates an operation's memory.
template <class Alloc>
struct machine_deleter {
  Alloc alloc;
  template <class T>
  void operator()(T* p) {
    std::allocator_traits<Alloc>::destroy(alloc, p);
    std::allocator_traits<Alloc>::deallocate(alloc, p, 1);
  }
};

/// Allocates Machine(args...) with the handler's allocator.
template <class Machine, class Handler, class... Args>
auto allocate_machine(const Handler& h, Args&&... args) {
  using handler_alloc =
      boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;
  using alloc_t = typename std::allocator_traits<handler_alloc>::template rebind_alloc<Machine>;
  alloc_t alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
  Machine* p = std::allocator_traits<alloc_t>::allocate(alloc, 1);
  try {
    std::allocator_traits<alloc_t>::construct(alloc, p, std::forward<Args>(args)...);
  } catch (...) {
    std::allocator_traits<alloc_t>::deallocate(alloc, p, 1);
    throw;
  }
  return std::unique_ptr<Machine, machine_deleter<alloc_t>>(p, machine_deleter<alloc_t>{alloc});
}

/// The blocking driver's view of an exchange machine of any response processor: its loop
/// is compiled once per stream type, not once per processor.
struct exchange_ref {
  exchange_core* m;
  io_action resume(const io_event& ev) { return m->resume(ev); }
  bool interruptible() const noexcept { return m->interruptible(); }
  bool cancellable() const noexcept { return m->cancellable(); }
  std::chrono::milliseconds take_rearm() noexcept { return m->take_rearm(); }
  const exchange_params& params() const noexcept { return m->params(); }
  bool owns() const noexcept { return m->owns(); }
  bool failed_early() const noexcept { return m->failed_early(); }
  bool housekeeping_only() const noexcept { return m->housekeeping_only(); }
};

/// Runs exchange machine m over connection c, bounded by timeout (0: none); h is called
/// with the exchange's error code (and the inline flag, see io_loop_op). m must live until
/// h is called (or destroyed).
/// With DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms are compiled
/// once, in the unit that includes <dqlite/src.hpp>.
template <class Stream>
void run_exchange(const std::shared_ptr<connection_impl<Stream>>& c, exchange_core& m,
                  std::chrono::milliseconds timeout,
                  loop_handler<typename Stream::executor_type> h) {
  using handler_type = loop_handler<typename Stream::executor_type>;
  boost::asio::async_compose<handler_type, void(error_code, bool)>(
      io_loop_op<Stream>{c, loop_machine<Stream>{&m, nullptr}, timeout}, h, c->stream);
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>: the members of the TCP and unix
// socket connections' state (its construction, the deadline's timer, the closing of the
// transport), and the exchange loops.
extern template struct connection_impl<boost::asio::ip::tcp::socket>;
extern template struct connection_impl<boost::asio::local::stream_protocol::socket>;
extern template connection_impl<boost::asio::ip::tcp::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
extern template connection_impl<boost::asio::local::stream_protocol::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
extern template void run_exchange<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, exchange_core&,
    std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
extern template void run_exchange<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    exchange_core&, std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
#endif

/// The completion of a typed exchange whose handler is not erasable (its loop is compiled
/// for it): takes the processor's result out of the machine, frees the machine, and calls
/// the caller's handler with (error_code[, result]). The handler's executor, allocator and
/// cancellation slot are those of Handler.
template <class Machine, class Handler, class Executor, class Deleter>
struct exchange_completion {
  std::unique_ptr<Machine, Deleter> m;
  Handler handler;
  Executor io_ex;  ///< the connection's: the default for the handler's executor

  void operator()(error_code ec, bool inline_done) {
    if constexpr (std::is_void_v<typename Machine::result_type>) {
      m.reset();
      deliver(std::move(handler), io_ex, inline_done, ec);
    } else {
      auto r = m->take();
      m.reset();
      deliver(std::move(handler), io_ex, inline_done, ec, std::move(r));
    }
  }
};

/// Claims connection c for an exchange and encodes its request through
/// `encode(impl) -> error_code`, called only when the connection could be claimed. Returns
/// the exchange's initial error; owns: the connection was claimed.
/// An exception thrown by encode (a parameter's binding, memory) leaves the connection
/// as it was: not claimed.
template <class Stream, class Encode>
error_code claim_and_encode(connection_impl<Stream>& c, Encode&& encode,
                            const exchange_params& params, bool& owns) {
  error_code ec = c.begin_op(params.needs_open, params.holder);
  owns = !ec;
  if (!ec) {
    try {
      ec = encode(c);
      if (ec && c.diag.empty())
        c.diag.assign("the request could not be encoded: " + ec.message());
      if (!ec && params.holder == 0) ec = take_unasked(c, params.may_write);
    } catch (...) {
      c.busy = false;  // the claim begin_op made
      c.wbuf.clear();
      throw;
    }
  }
  return ec;
}

/// Owns a request target until its exchange's loop does: frees it (without calling the
/// caller's handler, which is destroyed) when the start ends in an exception.
template <class Executor>
class target_guard {
 public:
  explicit target_guard(request_core<Executor>* t) noexcept : t_(t) {}
  target_guard(const target_guard&) = delete;
  target_guard& operator=(const target_guard&) = delete;
  ~target_guard() {
    if (t_) t_->destroy();
  }
  request_core<Executor>& get() const noexcept { return *t_; }
  request_core<Executor>& release() noexcept { return *std::exchange(t_, nullptr); }

 private:
  request_core<Executor>* t_;
};

/// Starts the exchange of the request target `owner` holds (see claim_and_encode), which
/// its loop then owns.
template <class Stream, class Encode>
void begin_request(const std::shared_ptr<connection_impl<Stream>>& c,
                   target_guard<typename Stream::executor_type>& owner, Encode&& encode,
                   exchange_params params) {
  bool owns = false;
  const error_code ec = claim_and_encode(*c, std::forward<Encode>(encode), params, owns);
  auto& t = owner.release();
  t.begin(*c, ec, owns, params);
  run_exchange(c, t, params.timeout, loop_handler<typename Stream::executor_type>(&t));
}

/// Starts an exchange whose request the caller encodes through `encode(impl) -> error_code`,
/// called only when the connection could be claimed.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, exchange_params params) {
  using machine = exchange_machine<Proc>;
  using executor = typename Stream::executor_type;
  using handler_type = std::decay_t<Handler>;
  if constexpr (erasable_handler<handler_type, executor>) {
    target_guard<executor> owner(request_target<executor, Proc, handler_type>::create(
        std::forward<Handler>(handler), c->stream.get_executor(), std::move(proc)));
    begin_request(c, owner, std::forward<Encode>(encode), params);
  } else {
    bool owns = false;
    const error_code ec = claim_and_encode(*c, std::forward<Encode>(encode), params, owns);
    auto m = allocate_machine<machine>(handler, *c, std::move(proc), ec, owns, params);
    exchange_core& core = *m;
    using completion = exchange_completion<machine, handler_type, executor,
                                           typename decltype(m)::deleter_type>;
    completion done{std::move(m), std::forward<Handler>(handler), c->stream.get_executor()};
    boost::asio::async_compose<completion, void(error_code, bool)>(
        io_loop_op<Stream>{c, loop_machine<Stream>{&core, nullptr}, params.timeout}, done, c->stream);
  }
}

/// Same, for a request that needs (or not) an open database, bounded by timeout.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, bool needs_open,
                    std::chrono::milliseconds timeout, bool may_write = false) {
  start_exchange(c, std::move(proc), std::forward<Handler>(handler), std::forward<Encode>(encode),
                 exchange_params{needs_open, timeout, 0, may_write});
}

}  // namespace dqlite::detail

namespace boost::asio {

/// The completions of typed operations are associated with what their caller's handler is
/// (the connection's executor being the default executor).
template <template <class, class> class Associator, class Machine, class Handler, class Executor,
          class Deleter, class DefaultCandidate>
struct associator<Associator,
                  dqlite::detail::exchange_completion<Machine, Handler, Executor, Deleter>,
                  DefaultCandidate> {
  using type = typename Associator<Handler, DefaultCandidate>::type;
  static type get(
      const dqlite::detail::exchange_completion<Machine, Handler, Executor, Deleter>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const dqlite::detail::exchange_completion<Machine, Handler, Executor, Deleter>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

}  // namespace boost::asio
// ---- end dqlite/detail/exchange.hpp ----
// ---- begin dqlite/node_info.hpp ----
// What the cluster administration requests return: nodes, roles, metadata, dump files.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dqlite {

/// The role of a node in the cluster (the values are those of the wire protocol and of
/// go-dqlite's node stores).
enum class node_role : std::uint8_t {
  voter = 0,    ///< takes part in elections and in the write quorum
  standby = 1,  ///< replicates the log without voting; promoted when a voter fails
  spare = 2,    ///< a member that neither votes nor replicates
};

/// "voter", "standby" or "spare".
inline constexpr std::string_view to_string(node_role r) noexcept {
  switch (r) {
    case node_role::voter: return "voter";
    case node_role::standby: return "standby";
    case node_role::spare: return "spare";
  }
  return "unknown";
}

/// The role named by text: "voter", "standby" (also "stand-by", go-dqlite's spelling),
/// "spare", or the protocol's number "0", "1", "2". Empty when the text names no role.
inline constexpr std::optional<node_role> parse_node_role(std::string_view text) noexcept {
  if (text == "voter" || text == "0") return node_role::voter;
  if (text == "standby" || text == "stand-by" || text == "1") return node_role::standby;
  if (text == "spare" || text == "2") return node_role::spare;
  return std::nullopt;
}

/// The role with the protocol's number, or empty when the number is not a role.
inline constexpr std::optional<node_role> node_role_from_value(std::uint64_t v) noexcept {
  if (v > 2) return std::nullopt;
  return static_cast<node_role>(v);
}

/// One node of a cluster: its raft id, the address it advertises ("host:port", exactly as
/// the node was configured: leader detection compares addresses as plain strings) and its
/// role. LEADER answers with id 0 and an empty address when no leader is known.
struct node_info {
  std::uint64_t id = 0;
  std::string address;
  node_role role = node_role::voter;
  friend bool operator==(const node_info&, const node_info&) = default;
};

/// What DESCRIBE reports about a node.
struct node_metadata {
  std::uint64_t failure_domain = 0;  ///< set by the node's operator (dqlite_node_set_failure_domain)
  std::uint64_t weight = 0;          ///< set by WEIGHT; raft prefers low weights for roles
  friend bool operator==(const node_metadata&, const node_metadata&) = default;
};

/// One file of a DUMP: the database file and its write-ahead log ("name-wal").
struct dump_file {
  std::string name;
  std::vector<std::byte> data;
  friend bool operator==(const dump_file&, const dump_file&) = default;
};

}  // namespace dqlite
// ---- end dqlite/node_info.hpp ----

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dqlite::detail {

/// Text for a message: control characters and bytes >= 0x7f shown as \xNN.
inline std::string printable(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u >= 0x7f) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

/// Node ids start at 1.
template <class Impl>
error_code check_node_id(Impl& c, std::uint64_t id) {
  if (id != 0) return {};
  c.diag.assign("node id 0 is not valid (node ids start at 1)");
  return make_error_code(errc::invalid_argument);
}

inline error_code expect_response(const wire::frame_header& h, wire::response r) {
  return h.type == static_cast<std::uint8_t>(r) ? error_code{}
                                                : make_error_code(errc::unexpected_response);
}

/// LEADER: one SERVER (id 0 and "" when no leader is known).
struct leader_proc {
  using result_type = node_info;
  node_info out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::server)) return e;
    wire::server_response r;
    if (auto e = wire::decode_server(body, r)) return e;
    out.id = r.id;
    out.address.assign(r.address.data(), r.address.size());
    out.role = node_role::voter;  // a leader is always a voter
    done = true;
    return {};
  }
  node_info take() { return std::move(out); }
};

/// CLUSTER: one SERVERS.
struct servers_proc {
  using result_type = std::vector<node_info>;
  std::vector<node_info> out;
  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::servers)) return e;
    std::vector<wire::node_view> nodes;
    if (auto e = wire::decode_servers(body, nodes)) return e;
    out.clear();
    out.reserve(nodes.size());
    for (const auto& n : nodes) {
      auto role = node_role_from_value(n.role);
      if (!role) {
        c.diag.assign("the server described node " + std::to_string(n.id) +
                      " with an unknown role " + std::to_string(n.role));
        out.clear();
        return make_error_code(errc::unexpected_response);
      }
      out.push_back(node_info{n.id, std::string(n.address), *role});
    }
    done = true;
    return {};
  }
  std::vector<node_info> take() { return std::move(out); }
};

/// ADD, ASSIGN, REMOVE, TRANSFER, WEIGHT: one EMPTY.
struct empty_proc {
  using result_type = void;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::empty)) return e;
    if (auto e = wire::decode_empty(body)) return e;
    done = true;
    return {};
  }
};

/// DESCRIBE: one METADATA.
struct metadata_proc {
  using result_type = node_metadata;
  node_metadata out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::metadata)) return e;
    wire::metadata_response r;
    if (auto e = wire::decode_metadata(body, r)) return e;
    out = {r.failure_domain, r.weight};
    done = true;
    return {};
  }
  node_metadata take() { return out; }
};

/// DUMP: one FILES.
struct files_proc {
  using result_type = std::vector<dump_file>;
  std::vector<dump_file> out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::files)) return e;
    std::vector<wire::file_view> files;
    if (auto e = wire::decode_files(body, files)) return e;
    out.clear();
    out.reserve(files.size());
    for (const auto& f : files)
      out.push_back(dump_file{std::string(f.name),
                              std::vector<std::byte>(f.data.begin(), f.data.end())});
    done = true;
    return {};
  }
  std::vector<dump_file> take() { return std::move(out); }
};

// ---- the administration requests, each as an encoder of a connection's request ----

inline auto leader_request() {
  return [](session_state& c) -> error_code {
    wire::encode_leader(c.wbuf);
    return {};
  };
}

inline auto cluster_request() {
  return [](session_state& c) -> error_code {
    wire::encode_cluster(c.wbuf, 1);
    return {};
  };
}

inline auto add_request(std::uint64_t id, std::string_view address) {
  return [id, address = std::string(address)](session_state& c) -> error_code {
    if (auto e = check_node_id(c, id)) return e;
    host_port hp;
    // Nodes listen on TCP ("host:port") or on a unix socket ("@name" abstract, "/path").
    const bool unix_socket =
        address.size() > 1 && (address.front() == '@' || address.front() == '/');
    if (!wire::is_valid_text(address) || (!unix_socket && parse_address(address, hp))) {
      c.diag.assign("invalid node address '" + printable(address) +
                    "' (expected host:port, [ipv6]:port, @name or /path)");
      return make_error_code(errc::invalid_address);
    }
    return wire::encode_add(c.wbuf, id, address);
  };
}

inline auto assign_request(std::uint64_t id, node_role role) {
  return [id, role](session_state& c) -> error_code {
    if (auto e = check_node_id(c, id)) return e;
    if (!node_role_from_value(static_cast<std::uint64_t>(role))) {
      c.diag.assign("invalid node role " + std::to_string(static_cast<unsigned>(role)) +
                    " (expected voter, standby or spare)");
      return make_error_code(errc::invalid_argument);
    }
    wire::encode_assign(c.wbuf, id, static_cast<wire::role>(role));
    return {};
  };
}

inline auto remove_request(std::uint64_t id) {
  return [id](session_state& c) -> error_code {
    if (auto e = check_node_id(c, id)) return e;
    wire::encode_remove(c.wbuf, id);
    return {};
  };
}

inline auto transfer_request(std::uint64_t id) {
  return [id](session_state& c) -> error_code {
    wire::encode_transfer(c.wbuf, id);
    return {};
  };
}

inline auto describe_request() {
  return [](session_state& c) -> error_code {
    wire::encode_describe(c.wbuf, 0);
    return {};
  };
}

inline auto weight_request(std::uint64_t weight) {
  return [weight](session_state& c) -> error_code {
    wire::encode_weight(c.wbuf, weight);
    return {};
  };
}

inline auto dump_request(std::string_view name) {
  return [name = std::string(name)](session_state& c) -> error_code {
    if (auto e = wire::encode_dump(c.wbuf, name)) {
      c.diag.assign("the database name contains a NUL byte");
      return e;
    }
    return {};
  };
}

/// OPEN of a database on a connection made without one.
inline auto open_request(std::string_view name) {
  return [name = std::string(name)](session_state& c) -> error_code {
    if (!c.database.empty()) {
      c.diag.assign("database '" + c.database + "' is already open on this connection");
      return make_error_code(errc::invalid_argument);
    }
    if (name.empty()) {
      c.diag.assign("the database name is empty");
      return make_error_code(errc::invalid_argument);
    }
    if (auto e = wire::encode_open(c.wbuf, name)) {
      c.diag.assign("the database name contains a NUL byte");
      return e;
    }
    c.database = name;
    c.opts.database = c.database;
    return {};
  };
}

}  // namespace dqlite::detail
// ---- end dqlite/detail/admin_procs.hpp ----
// ---- begin dqlite/detail/blocking.hpp ----
// The blocking driver: the same sans-io machines as the asynchronous operations, run with
// blocking reads and writes on the connection's socket, in the calling thread. Every wait
// is bounded by the operation's deadline: a wait for an answer inside recv(2), under the
// socket's receive timeout, other waits (and the last few milliseconds) with poll(2). No
// thread and no io_context is involved. Plain sockets only (TCP and unix): a TLS stream has
// no blocking form.

// ---- begin dqlite/detail/connect_op.hpp ----
// Opening a connection: the connect machine (sansio/connect_machine.hpp) driven by the
// I/O loop, with the transport steps it needs (resolve, connect, TLS handshake). The loop
// and the steps are in detail/exchange.hpp: one loop type runs exchanges and openings.


#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// A unix socket endpoint: "@name" is an abstract socket (Linux), anything else a path.
inline boost::asio::local::stream_protocol::endpoint unix_endpoint(std::string_view path) {
  if (!path.empty() && path.front() == '@')
    return {std::string(1, '\0') + std::string(path.substr(1))};
  return {std::string(path)};
}

/// An endpoint as text, for messages.
inline std::string describe_endpoint(const boost::asio::local::stream_protocol::endpoint& ep) {
  std::string p = ep.path();
  if (!p.empty() && p.front() == '\0') p.front() = '@';
  return "unix:" + p;
}
template <class Endpoint>
std::string describe_endpoint(const Endpoint& ep) {
  auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

/// Opens connection c: to `address` ("host:port", resolved) or, when endpoint is set, to
/// that endpoint (address is then only for messages); h is called with the error code
/// (and the inline flag, see io_loop_op).
template <class Stream, class Handler>
void connect_loop(const std::shared_ptr<connection_impl<Stream>>& c, std::string address,
                  std::optional<typename connect_steps<Stream>::endpoint_type> endpoint,
                  Handler h) {
  using steps_type = connect_steps<Stream>;
  using machine = stream_connect_machine<Stream>;
  steps_type steps;
  const bool resolve = !endpoint;
  steps.endpoint = std::move(endpoint);
  if constexpr (steps_type::is_tcp)
    if (resolve) steps.resolver = std::make_shared<typename steps_type::tcp::resolver>(c->stream.get_executor());
  auto timeout = c->opts.connect_timeout;
  loop_machine<Stream> m;
  m.conn.reset(new typename loop_machine<Stream>::opening{machine(*c, std::move(address), resolve),
                                                          std::move(steps)});
  boost::asio::async_compose<Handler, void(error_code, bool)>(
      io_loop_op<Stream>{c, std::move(m), timeout}, h, c->stream);
}

/// connect_loop with the handler erased: compiled once per stream type. With
/// DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms are compiled once, in
/// the unit that includes <dqlite/src.hpp>.
template <class Stream>
void run_connect(const std::shared_ptr<connection_impl<Stream>>& c, std::string address,
                 std::optional<typename connect_steps<Stream>::endpoint_type> endpoint,
                 loop_handler<typename Stream::executor_type> h) {
  connect_loop(c, std::move(address), std::move(endpoint), std::move(h));
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>.
extern template void run_connect<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, std::string,
    std::optional<boost::asio::ip::tcp::endpoint>, loop_handler<boost::asio::any_io_executor>);
extern template void run_connect<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    std::string, std::optional<boost::asio::local::stream_protocol::endpoint>, loop_handler<boost::asio::any_io_executor>);
#endif

/// Starts opening connection c (see run_connect); the handler's executor, allocator and
/// cancellation slot are kept.
template <class Stream, class Handler>
void start_connect(const std::shared_ptr<connection_impl<Stream>>& c, std::string address,
                   std::optional<typename connect_steps<Stream>::endpoint_type> endpoint,
                   Handler&& handler) {
  using executor = typename Stream::executor_type;
  using handler_type = std::decay_t<Handler>;
  if constexpr (erasable_handler<handler_type, executor>) {
    auto* t = exchange_target<executor, no_machine, handler_type>::create(
        std::forward<Handler>(handler), c->stream.get_executor());
    run_connect(c, std::move(address), std::move(endpoint), loop_handler<executor>(t));
  } else {
    using completion = exchange_completion<no_machine, handler_type, executor,
                                           std::default_delete<no_machine>>;
    connect_loop(c, std::move(address), std::move(endpoint),
                 completion{nullptr, std::forward<Handler>(handler), c->stream.get_executor()});
  }
}

}  // namespace dqlite::detail
// ---- end dqlite/detail/connect_op.hpp ----

#include <boost/asio/error.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <poll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace dqlite::detail {

/// Blocking reads and writes on a connection's socket, each bounded by `deadline`. A wait
/// that reaches the deadline marks the session timed out and closes the socket, as the
/// asynchronous loop's timer does.
template <class Stream>
class blocking_transport {
  using clock = std::chrono::steady_clock;

 public:
  explicit blocking_transport(connection_impl<Stream>& c) : c_(c) {}

  /// From now on, every wait ends within d (d < 0: no bound; 0: unchanged).
  void bound(std::chrono::milliseconds d) {
    if (d.count() > 0) deadline_ = clock::now() + d;
    if (d.count() < 0) deadline_ = clock::time_point::max();
  }

  io_event write(wire::bytes_view out) {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t r = ::send(fd(), out.data() + done, out.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0) {
        done += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        error_code ec;
        int w = wait(POLLOUT, ec);
        if (w == 0) return expired(io_event::kind::wrote, done);
        if (w < 0) return {io_event::kind::wrote, ec, done, false};
        continue;
      }
      return {io_event::kind::wrote, error_code(errno, boost::system::system_category()), done,
              false};
    }
    fresh_request_ = true;
    return {io_event::kind::wrote, {}, done, false};
  }

  io_event read(std::size_t need) {
    auto space = c_.rbuf.prepare(need);
    // Wait inside recv(2) when the descriptor can be made to (one system call per wait).
    // Otherwise: right after a request the answer is rarely there yet, so wait with poll(2)
    // first; in the middle of a response more bytes usually are, so read first.
    bool wait_first = std::exchange(fresh_request_, false);
    bool may_block = true;
    for (;;) {
      int flags = MSG_DONTWAIT;
      if (may_block && block_in_recv()) {
        flags = 0;
      } else if (wait_first) {
        error_code ec;
        int w = wait(POLLIN, ec);
        if (w == 0) return expired(io_event::kind::read, 0);
        if (w < 0) return {io_event::kind::read, ec, 0, false};
      }
      ssize_t r = ::recv(fd(), space.data(), space.size(), flags);
      if (r > 0) return {io_event::kind::read, {}, static_cast<std::size_t>(r), false};
      if (r == 0) return {io_event::kind::read, boost::asio::error::eof, 0, false};
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (flags == 0) {
          // The receive timeout passed, or the descriptor was non-blocking after all (an
          // asynchronous operation ran on it): poll(2) decides from here, to the deadline.
          may_block = false;
          c_.blocking_fd = -1;
        }
        wait_first = true;
        continue;
      }
      return {io_event::kind::read, error_code(errno, boost::system::system_category()), 0,
              false};
    }
  }

  /// Connects the socket to the first endpoint of `endpoints` that accepts.
  template <class Endpoints>
  io_event connect(const Endpoints& endpoints) {
    error_code last = boost::asio::error::host_not_found;
    auto& sock = c_.stream.lowest_layer();
    for (const auto& entry : endpoints) {
      auto ep = endpoint_of(entry);
      error_code ec;
      sock.close(ec);
      sock.open(ep.protocol(), ec);
      c_.blocking_fd = -1;
      if (!ec) sock.non_blocking(true, ec);
      if (ec) return {io_event::kind::connected, ec, 0, false};
      if (::connect(fd(), ep.data(), static_cast<socklen_t>(ep.size())) == 0)
        return {io_event::kind::connected, {}, 0, false};
      if (errno != EINPROGRESS && errno != EINTR) {
        last = error_code(errno, boost::system::system_category());
        continue;
      }
      int w = wait(POLLOUT, ec);
      if (w == 0) return expired(io_event::kind::connected, 0);
      if (w < 0) return {io_event::kind::connected, ec, 0, false};
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) return {io_event::kind::connected, {}, 0, false};
      last = error_code(err, boost::system::system_category());
    }
    return {io_event::kind::connected, last, 0, false};
  }

 private:
  template <class Entry>
  static auto endpoint_of(const Entry& e) {
    if constexpr (requires { e.endpoint(); })
      return e.endpoint();
    else
      return e;
  }

  int fd() const { return static_cast<int>(c_.stream.lowest_layer().native_handle()); }

  // Readies the descriptor for a wait inside recv(2): blocking mode (set once per descriptor)
  // and a receive timeout that ends the wait well before the deadline: Linux may end a
  // receive timeout later than asked, by the granularity of its timer wheel (up to about an
  // eighth of the timeout, plus a tick or two), so the timeout is at most three quarters of
  // the time left (less 20 ms for short ones). It is set again only when the one set is
  // longer than that, or shorter than half of it; a new one is three quarters of that
  // longest, so that the later reads of the same operation (less time left) and a steady
  // stream of requests with the same timeout cost no system call here. False when the wait
  // must be done with poll(2): a deadline too close for the kernel's timers, or a failed
  // system call.
  bool block_in_recv() {
    using std::chrono::microseconds;
    const int s = fd();
    const bool blocking = c_.blocking_fd == s;
    microseconds want{0};  // no timeout
    if (deadline_ != clock::time_point::max()) {
      auto left = std::chrono::duration_cast<microseconds>(deadline_ - clock::now());
      if (left < min_recv_timeout) return false;
      auto most = left - std::max(left / 4, microseconds(20000));
      if (blocking && c_.recv_timeout.count() > 0 && c_.recv_timeout <= most &&
          c_.recv_timeout >= most / 2)
        return true;
      want = most * 3 / 4;
    } else if (blocking && c_.recv_timeout.count() == 0) {
      return true;
    }
    if (!blocking) {
      error_code ec;
      c_.stream.lowest_layer().non_blocking(false, ec);  // through Asio, which tracks it
      if (ec) return false;
      c_.blocking_fd = s;
      c_.recv_timeout = microseconds(-1);  // unknown
    }
    if (c_.recv_timeout != want) {
      timeval tv{};
      tv.tv_sec = static_cast<decltype(tv.tv_sec)>(want.count() / 1000000);
      tv.tv_usec = static_cast<decltype(tv.tv_usec)>(want.count() % 1000000);
      if (::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        c_.blocking_fd = -1;
        return false;
      }
      c_.recv_timeout = want;
    }
    return true;
  }

  static constexpr std::chrono::microseconds min_recv_timeout{40000};

  // 1: ready; 0: the deadline passed; -1: poll failed (ec).
  int wait(short events, error_code& ec) {
    for (;;) {
      int ms = -1;
      if (deadline_ != clock::time_point::max()) {
        auto left = deadline_ - clock::now();
        if (left <= clock::duration::zero()) return 0;
        ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
      }
      pollfd p{fd(), events, 0};
      int r = ::poll(&p, 1, ms);
      if (r > 0) return 1;
      if (r == 0) continue;  // re-checks the deadline
      if (errno == EINTR) continue;
      ec = error_code(errno, boost::system::system_category());
      return -1;
    }
  }

  io_event expired(io_event::kind k, std::size_t n) {
    c_.timed_out = true;
    error_code ignored;
    c_.stream.lowest_layer().close(ignored);
    c_.blocking_fd = -1;
    return {k, error_code(ECANCELED, boost::system::system_category()), n, false};
  }

  connection_impl<Stream>& c_;
  clock::time_point deadline_ = clock::time_point::max();
  bool fresh_request_ = false;
};

/// Runs machine m to completion with blocking I/O, within timeout (<= 0: none).
/// `connect(transport) -> io_event` performs a connect action (the connect machine only).
/// read_socket (optional): set when bytes were received from the socket (not only taken
/// from what an earlier read left buffered).
template <class Stream, class Machine, class Connect>
error_code run_blocking(connection_impl<Stream>& c, Machine& m, std::chrono::milliseconds timeout,
                        Connect&& connect, bool* read_socket = nullptr) {
  static_assert(is_plain_socket<Stream>,
                "dqlite: blocking operations work on TCP and unix socket connections; use the "
                "asynchronous operations (async_...) on TLS connections");
  blocking_transport<Stream> t(c);
  if (timeout.count() > 0) t.bound(timeout);
  io_event ev{io_event::kind::start, {}, 0, false};
  for (;;) {
    io_action a = m.resume(ev);
    if (auto d = m.take_rearm(); d.count() != 0) t.bound(d);
    switch (a.what) {
      case io_action::kind::done: c.apply_close_request(); return a.ec;
      case io_action::kind::write: ev = t.write(a.out); break;
      case io_action::kind::read:
        ev = t.read(a.need);
        if (read_socket && !ev.ec && ev.n > 0) *read_socket = true;
        break;
      case io_action::kind::connect: ev = connect(t); break;
      case io_action::kind::tls_handshake:
        ev = io_event{io_event::kind::handshaken, make_error_code(errc::invalid_argument), 0, false};
        break;
    }
  }
}

template <class Stream, class Machine>
error_code run_blocking(connection_impl<Stream>& c, Machine& m, std::chrono::milliseconds timeout,
                        bool* read_socket = nullptr) {
  return run_blocking(
      c, m, timeout,
      [](auto&) {
        return io_event{io_event::kind::connected, make_error_code(errc::invalid_argument), 0,
                        false};
      },
      read_socket);
}

/// run_blocking for an exchange machine of any response processor: compiled once per
/// stream type (with DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms in
/// the unit that includes <dqlite/src.hpp>).
template <class Stream>
error_code run_blocking_exchange(connection_impl<Stream>& c, exchange_core& m,
                                 std::chrono::milliseconds timeout, bool* read_socket) {
  exchange_ref r{&m};
  return run_blocking(c, r, timeout, read_socket);
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
extern template error_code run_blocking_exchange<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, exchange_core&, std::chrono::milliseconds,
    bool*);
extern template error_code run_blocking_exchange<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, exchange_core&,
    std::chrono::milliseconds, bool*);
#endif

/// Opens connection c with blocking I/O: to `address` ("host:port", resolved) or, when
/// endpoint is not null, to *endpoint (address is then only for messages); within the
/// connection's connect_timeout. Compiled once per stream type, as run_blocking_exchange.
template <class Stream>
error_code run_blocking_connect(connection_impl<Stream>& c, std::string_view address,
                                const typename connect_steps<Stream>::endpoint_type* endpoint) {
  using steps = connect_steps<Stream>;
  stream_connect_machine<Stream> m(c, std::string(address), endpoint == nullptr);
  if (c.opts.log) [[unlikely]]
    log_connect_start(c, address);
  error_code ec = run_blocking(c, m, c.opts.connect_timeout,
                               [&](blocking_transport<Stream>& t) -> io_event {
                                 if (endpoint) return t.connect(std::array{*endpoint});
                                 if constexpr (steps::is_tcp) {
                                   typename steps::tcp::resolver r(c.stream.get_executor());
                                   error_code rec;
                                   auto found = r.resolve(m.target().host,
                                                          std::to_string(m.target().port), rec);
                                   if (rec) return {io_event::kind::connected, rec, 0, false};
                                   return t.connect(found);
                                 } else {
                                   return {io_event::kind::connected,
                                           make_error_code(errc::invalid_address), 0, false};
                                 }
                               });
  if (c.opts.log) [[unlikely]]
    log_connect_end(c, address, ec);
  return ec;
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
extern template error_code run_blocking_connect<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, std::string_view,
    const boost::asio::ip::tcp::endpoint*);
extern template error_code run_blocking_connect<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, std::string_view,
    const boost::asio::local::stream_protocol::endpoint*);
#endif

/// One blocking exchange, as start_exchange starts an asynchronous one. The result of the
/// processor (nothing for void); ec and diag tell how it ended.
template <class Stream, class Proc, class Encode>
auto blocking_exchange(connection_impl<Stream>& c, Proc proc, Encode&& encode,
                       exchange_params params, error_code& ec, diagnostics& diag) {
  bool owns = false;
  const error_code e = claim_and_encode(c, std::forward<Encode>(encode), params, owns);
  exchange_machine<Proc> m(c, std::move(proc), e, owns, params);
  if (c.opts.trace && owns && !m.housekeeping_only()) [[unlikely]]
    trace_begin(c, true, m.failed_early(), c.wbuf.empty(), !params.needs_open);
  bool read_socket = false;
  ec = run_blocking_exchange(c, m, params.timeout, &read_socket);
  // An answer was received from the socket just now: a read-only request this thread makes
  // next on c, at once, need not look for unasked bytes first (take_unasked). Not when the
  // answer came whole from bytes an earlier read left buffered (the socket may have been
  // idle for long since), as the asynchronous path marks only after I/O it started.
  if (!ec && read_socket) last_blocking_answer = {&c, connection_impl<Stream>::clock::now()};
  if (c.span.active) [[unlikely]]
    trace_end(c, ec);
  if (ec && owns && c.opts.log) [[unlikely]]
    log_exchange_failure(c, ec);
  diag = ec ? c.diag : diagnostics{};
  using result = typename Proc::result_type;
  if constexpr (std::is_void_v<result>) {
    return;
  } else {
    if (ec) return result{};  // a failed blocking call returns an empty result
    return m.take();
  }
}

/// True when the last two of Args are `error_code&` and `diagnostics&`: the caller wants
/// the error reported there instead of an exception.
template <class... Args>
constexpr bool has_error_tail() {
  constexpr std::size_t n = sizeof...(Args);
  if constexpr (n < 2) {
    return false;
  } else {
    using all = std::tuple<Args...>;
    return std::is_same_v<std::tuple_element_t<n - 2, all>, error_code&> &&
           std::is_same_v<std::tuple_element_t<n - 1, all>, diagnostics&>;
  }
}

/// True when the last of Args is an error_code or a diagnostics that does not end a whole
/// (error_code&, diagnostics&) tail: `execute(sql, ec)`, say. blocking_call refuses it
/// with one message of the library's (neither is a statement parameter).
template <class... Args>
constexpr bool has_broken_error_tail() {
  if constexpr (sizeof...(Args) == 0 || has_error_tail<Args...>()) {
    return false;
  } else {
    using last = std::remove_cvref_t<std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>>;
    return std::is_same_v<last, error_code> || std::is_same_v<last, diagnostics>;
  }
}

/// Nothing, or `error_code&, diagnostics&`: the optional tail of a blocking operation that
/// takes no other variadic arguments. A broken tail (an error_code alone, say) is let
/// through, for blocking_call to refuse with its message instead of a failed constraint.
template <class... E>
concept error_tail_of = sizeof...(E) == 0 || (sizeof...(E) == 2 && has_error_tail<E&...>()) ||
                        (sizeof...(E) <= 2 && has_broken_error_tail<E&...>());

template <class>
inline constexpr bool dependent_false = false;

/// Calls f(ec, diag, params...) for a blocking operation's arguments: with a trailing
/// (error_code&, diagnostics&) those are used; without them a failure is thrown as
/// dqlite::error.
template <class F, class... Args>
decltype(auto) blocking_call(F&& f, Args&&... args) {
  constexpr std::size_t n = sizeof...(Args);
  if constexpr (has_broken_error_tail<Args&&...>()) {
    static_assert(dependent_false<F>,
                  "dqlite: the error form of a blocking operation ends with two arguments, "
                  "dqlite::error_code& then dqlite::diagnostics& (without them, a failure "
                  "throws dqlite::error)");
    // The rest (without the error arguments at the end) as the throwing form, so that the
    // caller's result type stays what it is: no second error after the message.
    constexpr bool two = [] {
      if constexpr (n < 2) {
        return false;
      } else {
        using before = std::remove_cvref_t<std::tuple_element_t<n - 2, std::tuple<Args...>>>;
        return std::is_same_v<before, error_code> || std::is_same_v<before, diagnostics>;
      }
    }();
    error_code ec;
    diagnostics diag;
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
      return f(ec, diag, std::get<I>(all)...);
    }(std::make_index_sequence<n - (two ? 2 : 1)>{});
  } else if constexpr (has_error_tail<Args&&...>()) {
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
      return f(std::get<n - 2>(all), std::get<n - 1>(all), std::get<I>(all)...);
    }(std::make_index_sequence<n - 2>{});
  } else {
    error_code ec;
    diagnostics diag;
    if constexpr (std::is_void_v<decltype(f(ec, diag, std::forward<Args>(args)...))>) {
      f(ec, diag, std::forward<Args>(args)...);
      if (ec) throw error(ec, std::move(diag));
    } else {
      auto r = f(ec, diag, std::forward<Args>(args)...);
      if (ec) throw error(ec, std::move(diag));
      return r;
    }
  }
}

}  // namespace dqlite::detail
// ---- end dqlite/detail/blocking.hpp ----
// ---- begin dqlite/cursor.hpp ----
// Reading a large result batch by batch.

// ---- begin dqlite/detail/procs.hpp ----
// Response processors: how each kind of request reads its response frames.

// ---- begin dqlite/exec_result.hpp ----
// What a statement that returns no rows reports.

#include <cstdint>

namespace dqlite {

/// What a statement that does not return rows reports (EXEC, EXEC_SQL: the server's
/// RESULT response).
struct exec_result {
  std::uint64_t last_insert_id = 0;  ///< rowid of the last inserted row
  std::uint64_t rows_affected = 0;   ///< rows changed by the (last) statement
  friend bool operator==(const exec_result&, const exec_result&) = default;
};

}  // namespace dqlite
// ---- end dqlite/exec_result.hpp ----
// ---- begin dqlite/field.hpp ----
// Reading one received value into a C++ type.
//
// Supported in row types: bool, every integer type (range-checked), float, double,
// std::string, blobs (std::vector<std::byte>, std::vector<unsigned char>), std::optional<T>
// (NULL), enums with a fixed underlying type (via that integer type),
// std::chrono::system_clock time points (from UNIXTIME, INTEGER seconds, or ISO-8601 text),
// and dqlite::value. Other types: specialise dqlite::field_traits<T> with
//   static error_code read(const wire::value_view& v, T& out);
// returning errc::type_mismatch / unexpected_null / out_of_range / ... on failure.
//
// std::string_view has a reader too, but it views the received frame and is valid only
// while the frame is: only code that maps rows as they are decoded (a custom sink given to
// connection::query) may use it; fetch, fetchone, fetchval, fetch_into and cursors refuse
// it at compile time.

// ---- begin dqlite/detail/time.hpp ----
// ISO-8601 formatting and parsing for DATETIME/DATE/TIMESTAMP values.


#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ratio>
#include <string_view>

namespace dqlite::detail {

/// Longest text format_iso8601 writes.
inline constexpr std::size_t iso8601_max_size = 48;

/// Formats a UTC time as "2006-01-02 15:04:05.999999999+00:00" (the fraction without
/// trailing zeros, and without the dot when zero), the form the Go client sends.
template <class Duration>
std::string_view format_iso8601(std::chrono::time_point<std::chrono::system_clock, Duration> tp,
                                char (&out)[iso8601_max_size]) {
  using namespace std::chrono;
  // Split without converting tp to nanoseconds: a coarser tp may lie outside their range.
  auto day = floor<days>(tp);
  year_month_day ymd{day};
  auto tod = tp - day;  // [0, 24h)
  auto secs = floor<seconds>(tod);
  auto secs_of_day = secs.count();
  auto frac = static_cast<std::uint64_t>(duration_cast<nanoseconds>(tod - secs).count());
  char* p = out;
  auto put = [&](std::uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    p += width;
  };
  int y = static_cast<int>(ymd.year());
  if (y < 0) {
    *p++ = '-';
    y = -y;
  }
  put(static_cast<std::uint64_t>(y), y > 9999 ? 5 : 4);
  *p++ = '-';
  put(static_cast<unsigned>(ymd.month()), 2);
  *p++ = '-';
  put(static_cast<unsigned>(ymd.day()), 2);
  *p++ = ' ';
  put(static_cast<std::uint64_t>(secs_of_day / 3600), 2);
  *p++ = ':';
  put(static_cast<std::uint64_t>(secs_of_day / 60 % 60), 2);
  *p++ = ':';
  put(static_cast<std::uint64_t>(secs_of_day % 60), 2);
  if (frac != 0) {
    *p++ = '.';
    int digits = 9;
    while (frac % 10 == 0) {
      frac /= 10;
      --digits;
    }
    put(frac, digits);
  }
  for (char c : std::string_view("+00:00")) *p++ = c;
  return std::string_view(out, static_cast<std::size_t>(p - out));
}

/// A date/time read from an ISO-8601 text: whole seconds and the fraction of a second.
struct iso8601_time {
  std::chrono::sys_seconds seconds;
  std::chrono::nanoseconds fraction{0};  ///< in [0, 1 s)
};

/// The years format_iso8601 writes and parse_iso8601_time reads: those of SQLite's date and
/// time functions (four digits).
inline constexpr int iso8601_min_year = 0;
inline constexpr int iso8601_max_year = 9999;

/// Parses the forms SQLite and the Go client use: "YYYY-MM-DD", optionally followed by
/// ' ' or 'T' and "HH:MM", ":SS", ".fraction" (up to 9 digits are kept), then optionally
/// 'Z' or a "+HH:MM" / "-HH:MM" / "+HHMM" offset. Without an offset the time is UTC. Every
/// date of the years 0000 to 9999 is read; nullopt when the text is not such a time.
DQLITE_DECL std::optional<iso8601_time> parse_iso8601_time(std::string_view s);

/// parse_iso8601_time as one sys_time<nanoseconds>, which only spans the years 1677 to 2262:
/// nullopt outside them too.
DQLITE_DECL std::optional<std::chrono::sys_time<std::chrono::nanoseconds>> parse_iso8601(
    std::string_view s);

/// Whether a time of `secs` seconds since the epoch (plus a fraction of a second when
/// `fraction`) fits a system_clock time point of Duration.
template <class Duration>
constexpr bool seconds_fit(std::int64_t secs, bool fraction = false) noexcept {
  using namespace std::chrono;
  using rep = typename Duration::rep;
  if constexpr (treat_as_floating_point_v<rep>) {
    return true;
  } else if constexpr (std::ratio_less_equal_v<typename Duration::period, std::ratio<1>>) {
    // Whole seconds of Duration::max() / min(): exact, and no overflow.
    const auto hi = duration_cast<seconds>(Duration::max()).count();
    const auto lo = duration_cast<seconds>(Duration::min()).count();
    return fraction ? secs < hi && secs > lo : secs <= hi && secs >= lo;
  } else {
    const double hi = duration<double>(Duration::max()).count();
    const double lo = duration<double>(Duration::min()).count();
    const auto s = static_cast<double>(secs);
    return s < hi && s > lo;
  }
}

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/time.ipp ----
// Definitions of detail/time.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL std::optional<iso8601_time> parse_iso8601_time(std::string_view s) {
  using namespace std::chrono;
  std::size_t i = 0;
  auto digits = [&](int n, int& out) {
    if (i + static_cast<std::size_t>(n) > s.size()) return false;
    int v = 0;
    for (int k = 0; k < n; ++k) {
      char c = s[i + static_cast<std::size_t>(k)];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = v;
    i += static_cast<std::size_t>(n);
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  std::int64_t frac_ns = 0;
  if (!digits(4, y) || !expect('-') || !digits(2, mo) || !expect('-') || !digits(2, d))
    return std::nullopt;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  if (i < s.size() && (s[i] == ' ' || s[i] == 'T')) {
    ++i;
    if (!digits(2, h) || !expect(':') || !digits(2, mi)) return std::nullopt;
    if (expect(':')) {
      if (!digits(2, sec)) return std::nullopt;
      if (expect('.')) {
        int n = 0;
        std::int64_t scale = 100000000;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
          if (n < 9) {
            frac_ns += (s[i] - '0') * scale;
            scale /= 10;
          }
          ++n;
          ++i;
        }
        if (n == 0) return std::nullopt;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  }
  int offset_min = 0;
  if (i < s.size()) {
    if (s[i] == 'Z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int oh = 0, om = 0;
      if (!digits(2, oh)) return std::nullopt;
      expect(':');
      if (!digits(2, om)) return std::nullopt;
      if (oh > 23 || om > 59) return std::nullopt;
      offset_min = sign * (oh * 60 + om);
    }
  }
  if (i != s.size()) return std::nullopt;
  return iso8601_time{sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - minutes{offset_min},
                      nanoseconds{frac_ns}};
}

DQLITE_DECL std::optional<std::chrono::sys_time<std::chrono::nanoseconds>> parse_iso8601(
    std::string_view s) {
  using namespace std::chrono;
  auto t = parse_iso8601_time(s);
  if (!t) return std::nullopt;
  constexpr auto limit = duration_cast<seconds>(nanoseconds::max()).count();
  auto count = t->seconds.time_since_epoch().count();
  if (count >= limit || count < -limit) return std::nullopt;
  return sys_time<nanoseconds>{t->seconds} + t->fraction;
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/time.ipp ----
#endif
// ---- end dqlite/detail/time.hpp ----
// ---- begin dqlite/value.hpp ----
// Dynamic values and rows: what a query returns when no row type is given.


#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

using wire::value_type;

/// Binary data.
using blob = std::vector<std::byte>;

/// A view of binary data.
using blob_view = std::span<const std::byte>;

/// Marker for NULL, usable as a parameter.
struct null_t {
  friend constexpr bool operator==(null_t, null_t) noexcept { return true; }
};
inline constexpr null_t null{};

/// An owned value of any dqlite type. The wire type is kept: a BOOLEAN column reads as a
/// value of type boolean, a DATETIME column as unixtime or iso8601.
class value {
 public:
  value() noexcept = default;  ///< NULL
  value(null_t) noexcept {}
  value(std::nullptr_t) noexcept {}
  value(std::int64_t v) noexcept : type_(value_type::integer), data_(v) {}
  value(int v) noexcept : value(static_cast<std::int64_t>(v)) {}
  value(double v) noexcept : type_(value_type::floating), data_(v) {}
  value(bool v) noexcept : type_(value_type::boolean), data_(std::int64_t{v ? 1 : 0}) {}
  value(std::string v) noexcept : type_(value_type::text), data_(std::move(v)) {}
  value(std::string_view v) : value(std::string(v)) {}
  value(const char* v) : value(std::string(v)) {}
  value(blob v) noexcept : type_(value_type::blob), data_(std::move(v)) {}

  /// A value of a given wire type (unixtime from an integer, iso8601 from a text).
  static value unixtime(std::int64_t seconds) {
    value v(seconds);
    v.type_ = value_type::unixtime;
    return v;
  }
  static value iso8601(std::string text) {
    value v(std::move(text));
    v.type_ = value_type::iso8601;
    return v;
  }

  /// Copies a value out of a received frame.
  static value from_view(const wire::value_view& v);

  value_type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == value_type::null; }
  bool is_integer() const noexcept {
    return type_ == value_type::integer || type_ == value_type::unixtime ||
           type_ == value_type::boolean;
  }
  bool is_floating() const noexcept { return type_ == value_type::floating; }
  bool is_text() const noexcept {
    return type_ == value_type::text || type_ == value_type::iso8601;
  }
  bool is_blob() const noexcept { return type_ == value_type::blob; }

  /// Typed access; throws dqlite::error(errc::type_mismatch) when the type differs.
  std::int64_t as_int64() const {
    if (auto p = std::get_if<std::int64_t>(&data_)) return *p;
    throw_mismatch("INTEGER");
  }
  double as_double() const {
    if (auto p = std::get_if<double>(&data_)) return *p;
    if (auto p = std::get_if<std::int64_t>(&data_)) return static_cast<double>(*p);
    throw_mismatch("FLOAT");
  }
  bool as_bool() const { return as_int64() != 0; }
  const std::string& as_text() const {
    if (auto p = std::get_if<std::string>(&data_)) return *p;
    throw_mismatch("TEXT");
  }
  const blob& as_blob() const {
    if (auto p = std::get_if<blob>(&data_)) return *p;
    throw_mismatch("BLOB");
  }

  /// Pointers to the stored alternative, or nullptr.
  const std::int64_t* if_int64() const noexcept { return std::get_if<std::int64_t>(&data_); }
  const double* if_double() const noexcept { return std::get_if<double>(&data_); }
  const std::string* if_text() const noexcept { return std::get_if<std::string>(&data_); }
  const blob* if_blob() const noexcept { return std::get_if<blob>(&data_); }

  /// Equal when of the same wire type and the same stored value.
  friend bool operator==(const value& a, const value& b) noexcept { return a.equals(b); }

  /// A short human-readable form (for logs and messages).
  std::string to_string() const;

 private:
  [[noreturn]] void throw_mismatch(const char* wanted) const;
  bool equals(const value& other) const noexcept;

  value_type type_ = value_type::null;
  std::variant<std::monostate, std::int64_t, double, std::string, blob> data_;
};

namespace detail {
struct dynamic_rows_sink;
}

/// Column names of a result, shared by all its rows.
using column_names = std::vector<std::string>;

/// A dynamic row: values by index or by column name.
class row {
 public:
  row() = default;
  row(std::shared_ptr<const column_names> columns, std::vector<value> values)
      : columns_(std::move(columns)), values_(std::move(values)) {}

  /// Copies the values of a received row.
  static row from_views(std::shared_ptr<const column_names> columns,
                        std::span<const wire::value_view> views);

  std::size_t size() const noexcept { return values_.size(); }
  bool empty() const noexcept { return values_.empty(); }
  const value& operator[](std::size_t i) const noexcept { return values_[i]; }
  const value& at(std::size_t i) const { return values_.at(i); }

  /// Value of the named column; throws std::out_of_range naming the column when absent.
  const value& operator[](std::string_view name) const { return at(name); }
  const value& at(std::string_view name) const;
  /// Value of the named column, or nullptr.
  const value* find(std::string_view name) const noexcept;

  const column_names& columns() const noexcept {
    static const column_names none;
    return columns_ ? *columns_ : none;
  }
  const std::vector<value>& values() const noexcept { return values_; }
  std::vector<value>& values() noexcept { return values_; }

  auto begin() const noexcept { return values_.begin(); }
  auto end() const noexcept { return values_.end(); }

  /// Equal when their values are (column names are not compared).
  friend bool operator==(const row& a, const row& b) noexcept { return a.equals(b); }

 private:
  bool equals(const row& other) const noexcept;
  std::shared_ptr<const column_names> columns_;
  std::vector<value> values_;
};

/// All rows of a result, with its column names (kept once).
class rows {
 public:
  rows() = default;

  const column_names& columns() const noexcept {
    static const column_names none;
    return columns_ ? *columns_ : none;
  }
  std::size_t size() const noexcept { return rows_.size(); }
  bool empty() const noexcept { return rows_.empty(); }
  const row& operator[](std::size_t i) const noexcept { return rows_[i]; }
  const row& at(std::size_t i) const { return rows_.at(i); }
  auto begin() const noexcept { return rows_.begin(); }
  auto end() const noexcept { return rows_.end(); }
  const std::vector<row>& all() const noexcept { return rows_; }
  void reserve(std::size_t n) { rows_.reserve(n); }

  /// Appends the rows of one ROWS frame. Fails with errc::unexpected_response when the
  /// frame's columns differ from those of the rows already held, or with the frame's
  /// decoding error.
  error_code append(wire::rows_reader& rr, std::vector<wire::value_view>& scratch);

 private:
  friend struct detail::dynamic_rows_sink;  // reads a result row by row, within its caps
  std::shared_ptr<const column_names> columns_;
  std::vector<row> rows_;
};

namespace detail {

/// Bytes the allocator adds to each block (an estimate: a chunk header and rounding).
inline constexpr std::size_t alloc_overhead = 16;

/// Heap memory held by a string (nothing while it fits its inline buffer).
DQLITE_DECL std::size_t heap_bytes(const std::string& s) noexcept;

/// Heap memory held by a vector's own block (not what its elements point to).
template <class E, class A>
std::size_t heap_bytes(const std::vector<E, A>& v) noexcept {
  return v.capacity() > 0 ? v.capacity() * sizeof(E) + alloc_overhead : 0;
}

/// Heap memory held by a value: the bytes of its text or blob.
DQLITE_DECL std::size_t heap_bytes(const value& v) noexcept;

/// Heap memory held by a dynamic row: its values and what they hold (not its column
/// names, which all rows of a result share).
DQLITE_DECL std::size_t heap_bytes(const row& r) noexcept;

/// Memory held by column names: the strings and their heap memory.
DQLITE_DECL std::size_t names_bytes(const std::vector<std::string_view>& names) noexcept;

}  // namespace detail

}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/value.ipp ----
// Definitions of value.hpp (see detail/config.hpp).


namespace dqlite {

DQLITE_DECL value value::from_view(const wire::value_view& v) {
  switch (v.type) {
    case value_type::integer: return value(v.integer);
    case value_type::floating: return value(v.floating);
    case value_type::text: return value(std::string(v.bytes));
    case value_type::blob: {
      auto b = v.blob();
      return value(blob(b.begin(), b.end()));
    }
    case value_type::null: return value();
    case value_type::unixtime: return unixtime(v.integer);
    case value_type::iso8601: return iso8601(std::string(v.bytes));
    case value_type::boolean: return value(v.integer != 0);
  }
  return value();
}

DQLITE_DECL bool value::equals(const value& other) const noexcept {
  return type_ == other.type_ && data_ == other.data_;
}

DQLITE_DECL std::string value::to_string() const {
  switch (type_) {
    case value_type::null: return "NULL";
    case value_type::integer:
    case value_type::unixtime: return std::to_string(std::get<std::int64_t>(data_));
    case value_type::boolean: return std::get<std::int64_t>(data_) ? "true" : "false";
    case value_type::floating: return std::to_string(std::get<double>(data_));
    case value_type::text:
    case value_type::iso8601: return std::get<std::string>(data_);
    case value_type::blob:
      return "<blob of " + std::to_string(std::get<blob>(data_).size()) + " bytes>";
  }
  return "?";
}

DQLITE_DECL void value::throw_mismatch(const char* wanted) const {
  throw error(
      make_error_code(errc::type_mismatch),
      diagnostics(std::string("value of type ") + wire::to_string(type_) + " read as " + wanted));
}

DQLITE_DECL row row::from_views(std::shared_ptr<const column_names> columns,
                                std::span<const wire::value_view> views) {
  std::vector<value> vals;
  vals.reserve(views.size());
  for (const auto& v : views) vals.push_back(value::from_view(v));
  return row(std::move(columns), std::move(vals));
}

DQLITE_DECL const value& row::at(std::string_view name) const {
  if (auto p = find(name)) return *p;
  throw std::out_of_range("no column named '" + std::string(name) + "' in the row");
}

DQLITE_DECL const value* row::find(std::string_view name) const noexcept {
  if (!columns_) return nullptr;
  for (std::size_t i = 0; i < columns_->size() && i < values_.size(); ++i)
    if ((*columns_)[i] == name) return &values_[i];
  return nullptr;
}

DQLITE_DECL bool row::equals(const row& other) const noexcept {
  return values_ == other.values_;
}

DQLITE_DECL error_code rows::append(wire::rows_reader& rr, std::vector<wire::value_view>& scratch) {
  const auto& names = rr.column_names();
  if (!columns_ || columns_->size() != names.size() ||
      !std::equal(names.begin(), names.end(), columns_->begin())) {
    if (columns_ && !rows_.empty()) return make_error_code(errc::unexpected_response);
    columns_ = std::make_shared<const column_names>(names.begin(), names.end());
  }
  scratch.resize(names.size());
  while (rr.next(scratch)) rows_.push_back(row::from_views(columns_, scratch));
  return rr.error();
}

namespace detail {

DQLITE_DECL std::size_t heap_bytes(const std::string& s) noexcept {
  static const std::size_t inline_capacity = std::string().capacity();
  return s.capacity() > inline_capacity ? s.capacity() + 1 + alloc_overhead : 0;
}

DQLITE_DECL std::size_t heap_bytes(const value& v) noexcept {
  if (const std::string* t = v.if_text()) return heap_bytes(*t);
  if (const blob* b = v.if_blob()) return heap_bytes(*b);
  return 0;
}

DQLITE_DECL std::size_t heap_bytes(const row& r) noexcept {
  std::size_t n = heap_bytes(r.values());
  for (const value& v : r.values()) n += heap_bytes(v);
  return n;
}

DQLITE_DECL std::size_t names_bytes(const std::vector<std::string_view>& names) noexcept {
  std::size_t n = names.size() * sizeof(std::string) + alloc_overhead;
  static const std::size_t inline_capacity = std::string().capacity();
  for (std::string_view s : names)
    if (s.size() > inline_capacity) n += s.size() + 1 + alloc_overhead;
  return n;
}

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/impl/value.ipp ----
#endif
// ---- end dqlite/value.hpp ----

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <ratio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dqlite {

/// Customization point: specialise for your own field types.
template <class T, class = void>
struct field_traits;

namespace detail {
template <class T>
struct is_time_point : std::false_type {};
template <class D>
struct is_time_point<std::chrono::time_point<std::chrono::system_clock, D>> : std::true_type {};
template <class T>
struct is_optional_field : std::false_type {};
template <class T>
struct is_optional_field<std::optional<T>> : std::true_type {};

inline error_code null_or_mismatch(const wire::value_view& v) {
  return make_error_code(v.is_null() ? errc::unexpected_null : errc::type_mismatch);
}
/// seconds + fraction (in [0, 1 s)) as a time point of Duration, rounded down; the
/// seconds fit Duration (seconds_fit).
template <class Duration>
std::chrono::time_point<std::chrono::system_clock, Duration> floor_time(
    std::chrono::sys_seconds secs, std::chrono::nanoseconds fraction) {
  using namespace std::chrono;
  if constexpr (std::ratio_less_equal_v<typename Duration::period, std::ratio<1>>)
    return time_point_cast<Duration>(secs) + floor<Duration>(fraction);
  else  // coarser than a second: the fraction cannot carry the time over a boundary
    return floor<Duration>(secs);
}
inline bool is_integer_like(value_type t) noexcept {
  return t == value_type::integer || t == value_type::unixtime || t == value_type::boolean;
}
}  // namespace detail

template <std::integral T>
struct field_traits<T> {
  static error_code read(const wire::value_view& v, T& out) {
    if (!detail::is_integer_like(v.type)) return detail::null_or_mismatch(v);
    if constexpr (std::is_same_v<T, bool>) {
      out = v.integer != 0;
    } else {
      std::int64_t i = v.integer;
      if constexpr (std::is_signed_v<T>) {
        if constexpr (sizeof(T) < sizeof(std::int64_t)) {
          if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max())
            return make_error_code(errc::out_of_range);
        }
      } else {
        if (i < 0) return make_error_code(errc::out_of_range);
        if constexpr (sizeof(T) < sizeof(std::int64_t)) {
          if (static_cast<std::uint64_t>(i) > std::numeric_limits<T>::max())
            return make_error_code(errc::out_of_range);
        }
      }
      out = static_cast<T>(i);
    }
    return {};
  }
};

template <std::floating_point T>
struct field_traits<T> {
  static error_code read(const wire::value_view& v, T& out) {
    if (v.type == value_type::floating) {
      out = static_cast<T>(v.floating);
      return {};
    }
    if (v.type == value_type::integer) {
      out = static_cast<T>(v.integer);
      return {};
    }
    return detail::null_or_mismatch(v);
  }
};

namespace detail {
/// An enum with a fixed underlying type: scoped (`enum class E`), or unscoped declared with
/// one (`enum E : int`). Only such an enum can hold every value of its underlying type;
/// in another, a value outside its enumerators' range is undefined behaviour.
template <class E>
concept enum_with_fixed_type =
    std::is_enum_v<E> && requires(std::underlying_type_t<E> u) { E{u}; };
}  // namespace detail

/// Enums with a fixed underlying type read as that integer type (range-checked).
template <class T>
struct field_traits<T, std::enable_if_t<std::is_enum_v<T>>> {
  static_assert(detail::enum_with_fixed_type<T>,
                "dqlite: an enum field needs a fixed underlying type: declare it `enum E : int "
                "{...}` or `enum class E {...}` (an unscoped enum without one cannot hold an "
                "integer outside its enumerators' range)");
  static error_code read(const wire::value_view& v, T& out) {
    std::underlying_type_t<T> u{};
    if (auto ec = field_traits<std::underlying_type_t<T>>::read(v, u)) return ec;
    out = static_cast<T>(u);
    return {};
  }
};

template <>
struct field_traits<std::string> {
  static error_code read(const wire::value_view& v, std::string& out) {
    if (v.type != value_type::text && v.type != value_type::iso8601)
      return detail::null_or_mismatch(v);
    out.assign(v.bytes.data(), v.bytes.size());
    return {};
  }
};

template <>
struct field_traits<std::string_view> {
  static error_code read(const wire::value_view& v, std::string_view& out) {
    if (v.type != value_type::text && v.type != value_type::iso8601)
      return detail::null_or_mismatch(v);
    out = v.bytes;
    return {};
  }
};

template <class B, class A>
  requires(std::is_same_v<B, std::byte> || std::is_same_v<B, unsigned char>)
struct field_traits<std::vector<B, A>> {
  static error_code read(const wire::value_view& v, std::vector<B, A>& out) {
    if (v.type != value_type::blob) return detail::null_or_mismatch(v);
    auto p = reinterpret_cast<const B*>(v.bytes.data());
    out.assign(p, p + v.bytes.size());
    return {};
  }
};

template <>
struct field_traits<value> {
  static error_code read(const wire::value_view& v, value& out);
};

/// A time point of the system clock, from UNIXTIME or INTEGER seconds, or from an ISO-8601
/// text (TEXT or ISO8601; see detail::parse_iso8601_time: years 0000 to 9999). A time the
/// Duration cannot hold (a system_clock::time_point of nanoseconds spans the years 1677 to
/// 2262) is errc::out_of_range; a text that is no date/time is errc::invalid_time. A finer
/// part than Duration is rounded down (floor).
template <class Duration>
struct field_traits<std::chrono::time_point<std::chrono::system_clock, Duration>> {
  using tp = std::chrono::time_point<std::chrono::system_clock, Duration>;
  static error_code read(const wire::value_view& v, tp& out) {
    using namespace std::chrono;
    switch (v.type) {
      case value_type::unixtime:
      case value_type::integer:
        if (!detail::seconds_fit<Duration>(v.integer)) return make_error_code(errc::out_of_range);
        out = detail::floor_time<Duration>(sys_seconds{seconds{v.integer}}, nanoseconds{0});
        return {};
      case value_type::iso8601:
        // NULL as released servers send it (the decoder already reads it as NULL; a value
        // made by hand follows the same rule).
        if (v.bytes.empty()) return make_error_code(errc::unexpected_null);
        [[fallthrough]];
      case value_type::text: {
        auto t = detail::parse_iso8601_time(v.bytes);
        if (!t) return make_error_code(errc::invalid_time);
        if (!detail::seconds_fit<Duration>(t->seconds.time_since_epoch().count(),
                                           t->fraction.count() != 0))
          return make_error_code(errc::out_of_range);
        out = detail::floor_time<Duration>(t->seconds, t->fraction);
        return {};
      }
      default: return detail::null_or_mismatch(v);
    }
  }
};

template <class T>
struct field_traits<std::optional<T>> {
  static error_code read(const wire::value_view& v, std::optional<T>& out) {
    if (v.is_null()) {
      out.reset();
      return {};
    }
    T inner{};
    auto ec = field_traits<T>::read(v, inner);
    if (ec == make_error_code(errc::unexpected_null)) {
      // The DATETIME NULL quirk (ISO8601 ""), seen through an optional: it is NULL.
      out.reset();
      return {};
    }
    if (ec) return ec;
    out = std::move(inner);
    return {};
  }
};

/// A type a received value can be read into.
template <class T>
concept field = requires(const wire::value_view& v, T& out) {
  { field_traits<T>::read(v, out) } -> std::same_as<error_code>;
};

namespace detail {
/// The name of a system_clock time point type, for messages.
template <class T>
std::string time_point_name() {
  using P = typename T::duration::period;
  using R = typename T::duration::rep;
  std::string unit;
  if constexpr (std::is_same_v<P, std::nano>) unit = "nanoseconds";
  else if constexpr (std::is_same_v<P, std::micro>) unit = "microseconds";
  else if constexpr (std::is_same_v<P, std::milli>) unit = "milliseconds";
  else if constexpr (std::is_same_v<P, std::ratio<1>>) unit = "seconds";
  else if constexpr (std::is_same_v<P, std::ratio<60>>) unit = "minutes";
  else if constexpr (std::is_same_v<P, std::ratio<3600>>) unit = "hours";
  else if constexpr (std::is_same_v<P, std::ratio<86400>>) unit = "days";
  else unit = "duration<" + std::to_string(P::num) + "/" + std::to_string(P::den) + " s>";
  std::string out = "std::chrono::sys_time<" + unit;
  if constexpr (std::is_floating_point_v<R>) out += " (floating-point)";
  else if constexpr (sizeof(R) < 8) out += " (" + std::to_string(8 * sizeof(R)) + "-bit)";
  return out + ">";
}
}  // namespace detail

/// The C++ name of a field type, for messages.
template <class T>
std::string field_type_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::int8_t>) return "int8_t";
  else if constexpr (std::is_same_v<T, std::uint8_t>) return "uint8_t";
  else if constexpr (std::is_same_v<T, std::int16_t>) return "int16_t";
  else if constexpr (std::is_same_v<T, std::uint16_t>) return "uint16_t";
  else if constexpr (std::is_same_v<T, std::int32_t>) return "int32_t";
  else if constexpr (std::is_same_v<T, std::uint32_t>) return "uint32_t";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "int64_t";
  else if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64_t";
  else if constexpr (std::is_integral_v<T>) return "integer";
  else if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else if constexpr (std::is_same_v<T, std::string>) return "std::string";
  else if constexpr (std::is_same_v<T, std::string_view>) return "std::string_view";
  else if constexpr (std::is_same_v<T, value>) return "dqlite::value";
  else if constexpr (std::is_same_v<T, std::vector<std::byte>>) return "std::vector<std::byte>";
  else if constexpr (std::is_same_v<T, std::vector<unsigned char>>) return "std::vector<unsigned char>";
  else if constexpr (std::is_enum_v<T>) return "enum";
  else if constexpr (detail::is_time_point<T>::value) return detail::time_point_name<T>();
  else if constexpr (detail::is_optional_field<T>::value)
    return "std::optional<" + field_type_name<typename T::value_type>() + ">";
  else return "user type";
}

}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/field.ipp ----
// Definitions of field.hpp (see detail/config.hpp).


namespace dqlite {

DQLITE_DECL error_code field_traits<value>::read(const wire::value_view& v, value& out) {
  out = value::from_view(v);
  return {};
}

}  // namespace dqlite
// ---- end dqlite/impl/field.ipp ----
#endif
// ---- end dqlite/field.hpp ----
// ---- begin dqlite/mapping.hpp ----
// Mapping result rows into C++ types, decided at compile time.
//
// Row types:
//   - an aggregate struct (through Boost.PFR): columns matched to fields BY NAME, so the
//     order of the select list does not matter and `SELECT *` works;
//   - dqlite::by_position<T> for an aggregate T: columns matched to fields in order;
//   - std::tuple<...> and std::pair<...>: in order;
//   - a single field type (int, std::string, std::optional<double>...): the first column;
//   - dqlite::row: dynamic values.
// Field types: see field.hpp. The column-to-field map is computed once per result set;
// a mismatch is one error whose diagnostics list every problem.

// ---- begin dqlite/detail/field_names.hpp ----
// Names of the fields of an aggregate, for mapping result columns by name.
//
// Boost.PFR >= 1.84 provides them (BOOST_PFR_CORE_NAME_ENABLED). Before that, this header
// has its own small fallback: on GCC the names are read at compile time from the
// signature of a function templated on a pointer to each field; on Clang (whose older
// versions do not accept such pointers as template arguments) they are read once per type
// at run time with __builtin_dump_struct. A type can also name its fields itself by
// specialising dqlite::field_names<T> (which also renames them).

// Only the parts used (tuple_size, get, and the field names where PFR has them): the
// umbrella <boost/pfr.hpp> also brings PFR's comparison and stream operators, and with
// them <locale> and <iomanip>, into every unit of the user's.
#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>
#if __has_include(<boost/pfr/core_name.hpp>)
#include <boost/pfr/core_name.hpp>
#endif

#include <array>
#include <cstdarg>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// Customization point: names of the fields of T as they appear in result columns.
///   template <> struct dqlite::field_names<my_row> {
///     static constexpr std::array<std::string_view, 2> value{"id", "display_name"};
///   };
template <class T>
struct field_names;

namespace detail {

template <class T>
concept has_custom_field_names = requires { field_names<T>::value; };

#if defined(BOOST_PFR_CORE_NAME_ENABLED) && BOOST_PFR_CORE_NAME_ENABLED
#define DQLITE_FIELD_NAMES_PFR 1
#elif defined(__clang__)
#define DQLITE_FIELD_NAMES_DUMP_STRUCT 1
#elif defined(__GNUC__)
#define DQLITE_FIELD_NAMES_PRETTY_FUNCTION 1
#endif

#if defined(DQLITE_FIELD_NAMES_PRETTY_FUNCTION)
template <class T>
struct field_name_wrapper {
  const T value;
};
// Declared, never defined: only the addresses of its fields are used.
template <class T>
extern const field_name_wrapper<T> field_name_fake_object;

template <auto Ptr>
consteval std::string_view signature_of() {
  return __PRETTY_FUNCTION__;
}

/// "... [with auto Ptr = (& fake<T>.wrapper<T>::value.T::field); ...]" -> "field"
consteval std::string_view name_from_signature(std::string_view s) {
  auto start = s.find("Ptr = ");
  if (start == std::string_view::npos) return {};
  auto end = s.find(';', start);
  if (end == std::string_view::npos) end = s.find(']', start);
  if (end == std::string_view::npos) return {};
  auto expr = s.substr(start, end - start);
  while (!expr.empty() && (expr.back() == ')' || expr.back() == ' ')) expr.remove_suffix(1);
  auto cut = expr.find_last_of(":.");
  if (cut == std::string_view::npos) return {};
  return expr.substr(cut + 1);
}

template <class T, std::size_t I>
consteval std::string_view compile_time_field_name() {
  return name_from_signature(signature_of<&boost::pfr::detail::sequence_tuple::get<I>(
      boost::pfr::detail::tie_as_tuple(field_name_fake_object<T>.value))>());
}
#endif

#if defined(DQLITE_FIELD_NAMES_DUMP_STRUCT)
struct dump_collector {
  static inline thread_local std::vector<std::string>* out = nullptr;
  static int callback(const char* fmt, ...) {
    // Top-level fields come as "TYPE NAME : " with no indentation.
    std::string_view f(fmt);
    if (out != nullptr && !f.empty() && f.front() != ' ' && f.size() > 3 &&
        f.substr(f.size() - 3) == " : ") {
      f.remove_suffix(3);
      auto sp = f.find_last_of(' ');
      out->emplace_back(sp == std::string_view::npos ? f : f.substr(sp + 1));
    }
    return 0;
  }
};

template <class T>
std::vector<std::string> dump_struct_names() {
  std::vector<std::string> names;
  T object{};
  dump_collector::out = &names;
  __builtin_dump_struct(&object, &dump_collector::callback);
  dump_collector::out = nullptr;
  return names;
}
#endif

/// The field names of aggregate T, or an empty array of views when they cannot be known
/// (then mapping by name reports it).
template <class T>
const std::array<std::string_view, boost::pfr::tuple_size_v<T>>& aggregate_field_names() {
  constexpr std::size_t n = boost::pfr::tuple_size_v<T>;
  if constexpr (has_custom_field_names<T>) {
    static const std::array<std::string_view, n> names = [] {
      std::array<std::string_view, n> a{};
      const auto& v = field_names<T>::value;
      static_assert(std::size(field_names<T>::value) == n,
                    "dqlite::field_names<T>::value must name every field of T");
      for (std::size_t i = 0; i < n; ++i) a[i] = v[i];
      return a;
    }();
    return names;
  } else {
#if defined(DQLITE_FIELD_NAMES_PFR)
    static const std::array<std::string_view, n> names = boost::pfr::names_as_array<T>();
    return names;
#elif defined(DQLITE_FIELD_NAMES_PRETTY_FUNCTION)
    static const std::array<std::string_view, n> names =
        []<std::size_t... I>(std::index_sequence<I...>) {
          return std::array<std::string_view, n>{compile_time_field_name<T, I>()...};
        }(std::make_index_sequence<n>{});
    return names;
#elif defined(DQLITE_FIELD_NAMES_DUMP_STRUCT)
    static const std::vector<std::string> storage = dump_struct_names<T>();
    static const std::array<std::string_view, n> names = [] {
      std::array<std::string_view, n> a{};
      if (storage.size() == n)
        for (std::size_t i = 0; i < n; ++i) a[i] = storage[i];
      return a;
    }();
    return names;
#else
    static const std::array<std::string_view, n> names{};
    return names;
#endif
  }
}

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/detail/field_names.hpp ----

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// Maps the columns of a result to the fields of aggregate T in order (not by name).
/// async_fetch<by_position<T>> returns std::vector<T>.
template <class T>
struct by_position {
  using type = T;
};

namespace detail {

template <class T>
struct always_false : std::false_type {};

/// Instantiated for a field type the library cannot read: the compiler's message names
/// the type (as the template argument of this struct).
template <class FieldType>
struct unsupported_field_type {
  static_assert(always_false<FieldType>::value,
                "dqlite: unsupported field type in a row type. Supported: bool, integers, "
                "float, double, std::string, std::vector<std::byte>, "
                "std::vector<unsigned char>, std::optional<T>, enums, "
                "std::chrono::system_clock time points, dqlite::value; or specialise "
                "dqlite::field_traits<T>. The type is named in 'unsupported_field_type<...>' "
                "above.");
  static constexpr bool value = false;
};

template <class F>
constexpr bool check_field() {
  if constexpr (field<F>)
    return true;
  else
    return unsupported_field_type<F>::value;
}

template <class T>
struct is_tuple_like : std::false_type {};
template <class... A>
struct is_tuple_like<std::tuple<A...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};

template <class T>
struct is_by_position : std::false_type {};
template <class T>
struct is_by_position<by_position<T>> : std::true_type {};

enum class row_kind { scalar, tuple, aggregate_by_name, aggregate_by_position, dynamic };

template <class T>
constexpr row_kind kind_of() {
  if constexpr (std::is_same_v<T, row>)
    return row_kind::dynamic;
  else if constexpr (is_by_position<T>::value)
    return row_kind::aggregate_by_position;
  else if constexpr (field<T>)
    return row_kind::scalar;
  else if constexpr (is_tuple_like<T>::value)
    return row_kind::tuple;
  else if constexpr (std::is_aggregate_v<T> && std::is_class_v<T>)
    return row_kind::aggregate_by_name;
  else
    return row_kind::scalar;  // reported by check_field below
}

template <class T>
struct stored_type {
  using type = T;
};
template <class T>
struct stored_type<by_position<T>> {
  using type = T;
};

/// Number of fields and access to field I of a row object, whatever its kind.
template <class Obj, bool Tuple = is_tuple_like<Obj>::value>
struct fields_of {
  static constexpr std::size_t size = boost::pfr::tuple_size_v<Obj>;
  template <std::size_t I>
  static auto& get(Obj& o) {
    return boost::pfr::get<I>(o);
  }
  template <std::size_t I>
  static const auto& get(const Obj& o) {
    return boost::pfr::get<I>(o);
  }
  template <std::size_t I>
  using type = boost::pfr::tuple_element_t<I, Obj>;
};
template <class Obj>
struct fields_of<Obj, true> {
  static constexpr std::size_t size = std::tuple_size_v<Obj>;
  template <std::size_t I>
  static auto& get(Obj& o) {
    return std::get<I>(o);
  }
  template <std::size_t I>
  static const auto& get(const Obj& o) {
    return std::get<I>(o);
  }
  template <std::size_t I>
  using type = std::tuple_element_t<I, Obj>;
};

template <class Obj, std::size_t... I>
constexpr bool check_all_fields(std::index_sequence<I...>) {
  using F = fields_of<Obj>;
  return (check_field<typename F::template type<I>>() && ...);
}

template <class T>
constexpr bool check_row_type() {
  constexpr row_kind kind = kind_of<T>();
  if constexpr (kind == row_kind::scalar)
    return check_field<T>();
  else if constexpr (kind == row_kind::dynamic)
    return true;
  else {
    using Obj = typename stored_type<T>::type;
    return check_all_fields<Obj>(std::make_index_sequence<fields_of<Obj>::size>{});
  }
}

DQLITE_DECL std::string quote(std::string_view s);

template <class V>
struct is_byte_vector : std::false_type {};
template <class B, class A>
  requires(std::is_same_v<B, std::byte> || std::is_same_v<B, unsigned char>)
struct is_byte_vector<std::vector<B, A>> : std::true_type {};

/// Heap memory a field holds: the bytes of strings, blobs and values; for a user type,
/// what field_traits<F>::heap_bytes(const F&) says when it has that function, else none.
template <class F>
std::size_t field_heap_bytes(const F& f) noexcept {
  if constexpr (is_optional_field<F>::value)
    return f ? field_heap_bytes<typename F::value_type>(*f) : 0;
  else if constexpr (std::is_same_v<F, std::string> || std::is_same_v<F, value> ||
                     is_byte_vector<F>::value)
    return heap_bytes(f);
  else if constexpr (requires {
                       { field_traits<F>::heap_bytes(f) } -> std::convertible_to<std::size_t>;
                     })
    return field_traits<F>::heap_bytes(f);
  else
    return 0;
}

/// The parts of a row_mapper that do not depend on the row type (column matching, the
/// checks of direct reading, error messages): compiled once, not once per row type.
class row_mapper_base {
 public:
  /// Whether columns are those map() was given (every frame of a result repeats them).
  bool same_columns(const std::vector<std::string_view>& columns) const noexcept {
    return std::equal(columns.begin(), columns.end(), saved_names_.begin(), saved_names_.end());
  }

 protected:
  static constexpr std::uint64_t no_header = ~std::uint64_t{0};

  /// Problems of a single-value row type with `columns` columns ("" when none).
  DQLITE_DECL static std::string match_scalar(std::size_t columns, bool reject_extra);

  /// Matches fields named `names` to columns of the same name (col[i]: field i's column).
  /// Problems, "; "-separated ("" when none).
  DQLITE_DECL static std::string match_by_name(const std::vector<std::string_view>& columns,
                                               std::span<const std::string_view> names,
                                               std::span<std::size_t> col, bool reject_extra);

  /// Matches `col.size()` fields to the first columns, in order.
  DQLITE_DECL static std::string match_by_position(std::size_t columns, std::span<std::size_t> col,
                                                   bool reject_extra);

  /// Ends map(): fails with errc::column_mismatch when there are problems, else remembers
  /// the columns and plans direct reading. col: the fields' columns (empty for a
  /// single-value or dynamic row type); natural: the row type's natural_header().
  DQLITE_DECL error_code finish_map(const std::vector<std::string_view>& columns,
                                    const std::string& problems, diagnostics& diag,
                                    std::span<const std::size_t> col, std::size_t field_count,
                                    std::uint64_t natural);

  /// The start of reading the row ahead of rr directly: false when it cannot be. Else
  /// header is the row's header, p its first value, and natural whether every column
  /// has its field's natural type (natural_header_). A header that is not natural has
  /// been checked valid.
  bool begin_direct(const wire::rows_reader& rr, const std::byte*& header, const std::byte*& p,
                    bool& natural) {
    if (!direct_ || rr.column_count() != columns_) return false;
    p = rr.row_data();
    const std::byte* const end = rr.data_end();
    const std::size_t hw = rr.header_words();
    if (static_cast<std::size_t>(end - p) < hw * 8) return false;
    header = p;
    p += hw * 8;
    natural = false;
    if (hw == 1) {
      const std::uint64_t h = wire::load_u64(header);
      // Every column has the wire type its field naturally reads: the types are known,
      // the header is valid.
      if (h == natural_header_) {
        natural = true;
        return true;
      }
      // Rows of a result mostly repeat one header: check it only when it changes.
      if (h != valid_header_) {
        if (!wire::row_header_valid(header, columns_, 1)) return false;
        valid_header_ = h;
      }
    } else if (!std::equal(header, header + hw * 8, valid_headers_.begin(),
                           valid_headers_.end())) {
      if (!wire::row_header_valid(header, columns_, hw)) return false;
      valid_headers_.assign(header, header + hw * 8);
    }
    return true;
  }

  /// Skips the values of columns [col, to), checking them as next() would.
  static bool skip_columns(const std::byte* header, const std::byte*& p, const std::byte* end,
                           std::size_t& col, std::size_t to) noexcept {
    wire::value_view v;
    for (; col < to; ++col)
      if (wire::decode_value(wire::row_type_code(header, col), p, end, v) != errc{}) return false;
    return true;
  }

  /// Whether the columns after the last field's are valid (when there are any).
  bool skip_rest(const std::byte* header, const std::byte*& p, const std::byte* end,
                 std::size_t col) const noexcept {
    return col == columns_ || skip_columns(header, p, end, col, columns_);
  }

  /// The message of a value that field `field_index` (named `name`, or "" to name it by
  /// its index), of type `type_name`, could not read from column `col`.
  DQLITE_DECL std::string describe_value_error(const error_code& ec, std::size_t field_index,
                                               std::string_view name, std::size_t col,
                                               const std::string& type_name,
                                               const wire::value_view& v) const;

  /// Sets diag to the problems of row `row_index`.
  DQLITE_DECL static void row_problems(diagnostics& diag, std::size_t row_index,
                                       const std::string& problems);

  std::vector<std::string> saved_names_;
  // Direct reading (see finish_map): the column count, the last row header found valid.
  bool direct_ = false;
  std::size_t columns_ = 0;
  std::uint64_t valid_header_ = no_header;
  std::vector<std::byte> valid_headers_;
  std::uint64_t natural_header_ = no_header;
};

/// Reads rows of one result into T (see the file comment).
template <class T>
class row_mapper : public row_mapper_base {
 public:
  using object_type = typename stored_type<T>::type;
  static constexpr row_kind kind = kind_of<T>();
  static_assert(check_row_type<T>(), "dqlite: the row type has a field type that cannot be read");

  /// Matches the columns once per result set. Fails with errc::column_mismatch listing
  /// every problem.
  error_code map(const std::vector<std::string_view>& columns, const connection_options& opts,
                 diagnostics& diag) {
    std::string problems;
    std::span<const std::size_t> col;
    if constexpr (kind == row_kind::dynamic) {
      names_ = std::make_shared<const column_names>(columns.begin(), columns.end());
    } else if constexpr (kind == row_kind::scalar) {
      problems = match_scalar(columns.size(), opts.reject_extra_columns);
    } else if constexpr (kind == row_kind::aggregate_by_name) {
      const auto& names = aggregate_field_names<object_type>();
      problems = match_by_name(columns, names, col_, opts.reject_extra_columns);
      field_names_ = names;
      col = col_;
    } else {
      problems = match_by_position(columns.size(), col_, opts.reject_extra_columns);
      col = col_;
    }
    return finish_map(columns, problems, diag, col, field_count(), natural_header());
  }

  /// Heap memory a row object holds (its fields' strings, blobs and values); the object's
  /// own size is not included.
  static std::size_t heap_bytes(const object_type& o) noexcept {
    if constexpr (kind == row_kind::dynamic) {
      return detail::heap_bytes(o);
    } else if constexpr (kind == row_kind::scalar) {
      return field_heap_bytes<T>(o);
    } else {
      using F = fields_of<object_type>;
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return (std::size_t{0} + ... +
                field_heap_bytes<typename F::template type<I>>(F::template get<I>(o)));
      }(std::make_index_sequence<F::size>{});
    }
  }

  /// Reads the row ahead of rr (rr.at_row() was true) straight from the frame into out,
  /// without an intermediate value array, and moves rr past it. Returns false, leaving rr
  /// where it was, when it cannot: the row is then to be read with rr.next() and read(),
  /// which report any problem with their usual errors and messages. It accepts exactly
  /// the rows those accept, with the same values; out may be partly assigned on false.
  bool read_direct(wire::rows_reader& rr, object_type& out) {
    if constexpr (kind == row_kind::dynamic) {
      return false;
    } else {
      const std::byte* header = nullptr;
      const std::byte* p = nullptr;
      bool natural = false;
      if (!begin_direct(rr, header, p, natural)) return false;
      const std::byte* const end = rr.data_end();
      if (natural) {
        if (!read_natural(p, end, out)) return false;
        rr.skip_row_to(p);
        return true;
      }
      std::size_t col = 0;
      bool ok;
      if constexpr (kind == row_kind::scalar) {
        ok = direct_field<T>(header, p, end, col, 0, out);
      } else {
        using F = fields_of<object_type>;
        ok = [&]<std::size_t... I>(std::index_sequence<I...>) {
          return (direct_field<typename F::template type<I>>(header, p, end, col, col_[I],
                                                             F::template get<I>(out)) &&
                  ...);
        }(std::make_index_sequence<F::size>{});
      }
      if (!ok || !skip_rest(header, p, end, col)) return false;
      rr.skip_row_to(p);
      return true;
    }
  }

  /// Reads one row. On failure, diag lists every field of the row that failed.
  error_code read(std::span<const wire::value_view> values, object_type& out, diagnostics& diag,
                  std::size_t row_index) {
    if constexpr (kind == row_kind::dynamic) {
      out = row::from_views(names_, values);
      return {};
    } else if constexpr (kind == row_kind::scalar) {
      auto ec = field_traits<T>::read(values[0], out);
      if (ec)
        row_problems(diag, row_index,
                     describe_value_error(ec, 0, {}, 0, field_type_name<T>(), values[0]));
      return ec;
    } else {
      using F = fields_of<object_type>;
      error_code first;
      std::string problems;
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (read_field<I>(values, out, first, problems), ...);
      }(std::make_index_sequence<F::size>{});
      if (first) row_problems(diag, row_index, problems);
      return first;
    }
  }

 private:
  // ---- direct reading ----

  /// The wire type code a field type naturally reads (0: none).
  template <class F>
  static constexpr unsigned natural_code() {
    if constexpr (is_optional_field<F>::value)
      return natural_code<typename F::value_type>();
    else if constexpr (std::is_same_v<F, bool>)
      return 11;
    else if constexpr (std::is_integral_v<F> || std::is_enum_v<F>)
      return 1;
    else if constexpr (std::is_floating_point_v<F>)
      return 2;
    else if constexpr (std::is_same_v<F, std::string> || std::is_same_v<F, std::string_view>)
      return 3;
    else if constexpr (std::is_same_v<F, std::vector<std::byte>> ||
                       std::is_same_v<F, std::vector<unsigned char>>)
      return 4;
    else
      return 0;
  }

  /// The row header of a row whose every column has its field's natural type, when the
  /// fields read the columns in order, one each, and fit one header word; else a value no
  /// header has.
  static constexpr std::uint64_t natural_header() {
    if constexpr (kind == row_kind::scalar) {
      return natural_code<T>() != 0 ? natural_code<T>() : no_header;
    } else if constexpr (kind == row_kind::dynamic) {
      return no_header;
    } else {
      using F = fields_of<object_type>;
      if constexpr (F::size == 0 || F::size > 16) {
        return no_header;
      } else {
        return []<std::size_t... I>(std::index_sequence<I...>) {
          constexpr unsigned codes[] = {natural_code<typename F::template type<I>>()...};
          std::uint64_t h = 0;
          for (std::size_t i = 0; i < F::size; ++i) {
            if (codes[i] == 0) return no_header;
            h |= std::uint64_t{codes[i]} << (4 * i);
          }
          return h;
        }(std::make_index_sequence<F::size>{});
      }
    }
  }

  /// Reads a row whose header is natural_header_ (its types are known at compile time).
  bool read_natural(const std::byte*& p, const std::byte* end, object_type& out) {
    const std::byte* q = p;
    bool ok;
    if constexpr (kind == row_kind::scalar) {
      ok = natural_field<T>(q, end, out);
    } else {
      using F = fields_of<object_type>;
      ok = [&]<std::size_t... I>(std::index_sequence<I...>) {
        return (natural_field<typename F::template type<I>>(q, end, F::template get<I>(out)) &&
                ...);
      }(std::make_index_sequence<F::size>{});
    }
    p = q;
    return ok;
  }

  template <class FieldT>
  DQLITE_ALWAYS_INLINE static bool natural_field(const std::byte*& p, const std::byte* end,
                                                 FieldT& out) {
    constexpr unsigned code = natural_code<FieldT>();
    if constexpr (code != 0) {  // always: natural_header() has no other
      wire::value_view v;
      if (wire::decode_value(code, p, end, v) != errc{}) return false;
      return !field_traits<FieldT>::read(v, out);
    } else {
      return false;
    }
  }

  /// Reads column `at` (skipping the columns before it) into a field.
  template <class FieldT>
  DQLITE_ALWAYS_INLINE static bool direct_field(const std::byte* header, const std::byte*& p,
                                                const std::byte* end, std::size_t& col,
                                                std::size_t at, FieldT& out) {
    if (col != at && !skip_columns(header, p, end, col, at)) return false;
    wire::value_view v;
    if (wire::decode_value(wire::row_type_code(header, col), p, end, v) != errc{}) return false;
    ++col;
    return !field_traits<FieldT>::read(v, out);
  }

  template <std::size_t I>
  void read_field(std::span<const wire::value_view> values, object_type& out, error_code& first,
                  std::string& problems) {
    using F = fields_of<object_type>;
    using field_t = typename F::template type<I>;
    const auto& v = values[col_[I]];
    if (auto ec = field_traits<field_t>::read(v, F::template get<I>(out))) {
      if (!first) first = ec;
      if (!problems.empty()) problems += "; ";
      std::string_view name;
      if constexpr (kind == row_kind::aggregate_by_name) name = field_names_[I];
      problems += describe_value_error(ec, I, name, col_[I], field_type_name<field_t>(), v);
    }
  }

  static constexpr std::size_t field_count() {
    if constexpr (kind == row_kind::tuple || kind == row_kind::aggregate_by_name ||
                  kind == row_kind::aggregate_by_position)
      return fields_of<object_type>::size;
    else
      return 1;
  }

  std::array<std::size_t, field_count()> col_{};
  std::array<std::string_view, field_count()> field_names_{};
  std::shared_ptr<const column_names> names_;
};

}  // namespace detail
}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/mapping.ipp ----
// Definitions of mapping.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

DQLITE_DECL std::string row_mapper_base::match_scalar(std::size_t columns, bool reject_extra) {
  if (columns == 0) return "the statement returned no columns";
  if (columns > 1 && reject_extra)
    return "a single-value row type got " + std::to_string(columns) + " columns";
  return {};
}

DQLITE_DECL std::string row_mapper_base::match_by_name(
  const std::vector<std::string_view>& columns, std::span<const std::string_view> names,
  std::span<std::size_t> col, bool reject_extra) {
  std::string problems;
  auto problem = [&](const std::string& p) {
    if (!problems.empty()) problems += "; ";
    problems += p;
  };
  std::vector<bool> used(columns.size(), false);
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) {
      problem("the field names of this row type cannot be determined with this compiler; "
              "specialise dqlite::field_names<T> or use dqlite::by_position<T>");
      break;
    }
    std::size_t found = columns.size();
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (columns[c] == names[i]) {
        found = c;
        break;
      }
    }
    if (found == columns.size()) {
      problem("field " + quote(names[i]) + " has no column of that name");
    } else {
      col[i] = found;
      used[found] = true;
    }
  }
  if (reject_extra)
    for (std::size_t c = 0; c < columns.size(); ++c)
      if (!used[c]) problem("column " + quote(columns[c]) + " matches no field");
  return problems;
}

DQLITE_DECL std::string row_mapper_base::match_by_position(std::size_t columns,
                                                     std::span<std::size_t> col,
                                                     bool reject_extra) {
  const std::size_t fields = col.size();
  for (std::size_t i = 0; i < fields; ++i) col[i] = i;
  if (columns < fields)
    return "the row type has " + std::to_string(fields) + " fields but the result has " +
           std::to_string(columns) + " columns";
  if (columns > fields && reject_extra)
    return "the result has " + std::to_string(columns) + " columns but the row type only " +
           std::to_string(fields) + " fields";
  return {};
}

DQLITE_DECL error_code row_mapper_base::finish_map(const std::vector<std::string_view>& columns,
                                              const std::string& problems, diagnostics& diag,
                                              std::span<const std::size_t> col,
                                              std::size_t field_count, std::uint64_t natural) {
  if (!problems.empty()) {
    diag.assign("the result does not match the row type: " + problems);
    return make_error_code(errc::column_mismatch);
  }
  saved_names_.assign(columns.begin(), columns.end());
  // Direct reading needs the fields' columns in increasing order (true of by-position
  // types and of most select lists): the values are read in column order.
  columns_ = columns.size();
  valid_header_ = no_header;  // not a valid header: the first row is checked
  valid_headers_.clear();
  direct_ = columns_ > 0;
  for (std::size_t i = 0; i < col.size(); ++i)
    if (col[i] >= columns_ || (i > 0 && col[i] <= col[i - 1])) direct_ = false;
  // In order, one column per field, no other column: column i is field i.
  natural_header_ = direct_ && columns_ == field_count ? natural : no_header;
  return {};
}

DQLITE_DECL std::string row_mapper_base::describe_value_error(
  const error_code& ec, std::size_t field_index, std::string_view name, std::size_t col,
  const std::string& type_name, const wire::value_view& v) const {
  std::string where = name.empty() ? std::string("field ") + std::to_string(field_index)
                                   : "field " + quote(name);
  where += " (" + type_name + ") from column " + quote(saved_names_[col]);
  std::string what;
  if (ec == make_error_code(errc::unexpected_null))
    what = "is NULL (use std::optional for nullable columns)";
  else if (ec == make_error_code(errc::out_of_range))
    what = "value " +
           (v.type == value_type::text || v.type == value_type::iso8601
                ? "'" + std::string(v.bytes) + "'"
                : std::to_string(v.integer)) +
           " is out of range for " + type_name;
  else if (ec == make_error_code(errc::invalid_time))
    what = "value '" + std::string(v.bytes) + "' is not a valid date/time";
  else
    what = std::string("has type ") + wire::to_string(v.type) + ", which cannot be read as " +
           type_name;
  return where + ": " + what;
}

DQLITE_DECL void row_mapper_base::row_problems(diagnostics& diag, std::size_t row_index,
                                             const std::string& problems) {
  diag.assign("row " + std::to_string(row_index) + ": " + problems);
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/mapping.ipp ----
#endif
// ---- end dqlite/mapping.hpp ----

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {


namespace detail {

inline error_code expect_type(const wire::frame_header& h, wire::response r) {
  return h.type == static_cast<std::uint8_t>(r) ? error_code{}
                                                : make_error_code(errc::unexpected_response);
}

/// EXEC / EXEC_SQL: one RESULT.
struct exec_proc {
  using result_type = exec_result;
  exec_result out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::result)) return e;
    wire::result_response r;
    if (auto e = wire::decode_result(body, r)) return e;
    out = {r.last_insert_id, r.rows_affected};
    done = true;
    return {};
  }
  exec_result take() { return out; }
};

/// A ROWS frame the client cannot read: the diagnostics name the problem (replacing any
/// text a sink set for an earlier, lesser error: a protocol error always wins).
DQLITE_DECL error_code malformed_rows(session_state& c, error_code ec);

/// Starts reading a ROWS frame with the connection's column limit.
template <class Impl>
error_code start_rows(Impl& c, wire::bytes_view body) {
  if (auto e = c.rows.start(body, c.opts.max_result_columns)) return malformed_rows(c, e);
  return {};
}

/// Reads what is left of the frame without keeping anything, to find a malformed row
/// after a sink stopped early.
template <class Impl>
void scan_rest(Impl& c) {
  auto& rr = c.rows;
  if (!rr.error() && rr.end() == wire::rows_end::none) {
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
    }
  }
}

/// QUERY / QUERY_SQL: ROWS frames until DONE, each handed to a Sink:
///   using result_type = ...;
///   error_code on_rows(wire::rows_reader&, Impl&);   reads rows of one frame (may stop early)
///   error_code finish(Impl&);                         after DONE
///   result_type take();
/// A sink error (a conversion failure, a cap crossed) ends the operation with that frame:
/// nothing more is decoded; the rest of the frame is still checked (a malformed frame is
/// the error then), and when more frames are to come the result is interrupted before
/// the connection's next request (the connection stays usable).
template <class Sink>
struct rows_proc {
  using result_type = typename Sink::result_type;
  static constexpr bool interruptible = true;  // cancellation: INTERRUPT, keep the connection
  Sink sink;

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::rows)) return e;
    auto& rr = c.rows;
    if (auto e = start_rows(c, body)) return e;
    error_code e = sink.on_rows(rr, c);
    if (e && is_protocol_error(e)) return malformed_rows(c, e);
    scan_rest(c);
    if (auto pe = rr.error()) return malformed_rows(c, pe);
    if (rr.end() == wire::rows_end::part) {
      if (!e) return {};
      done = true;
      c.drain_pending = true;
      return e;
    }
    done = true;
    if (!e) e = sink.finish(c);
    return e;
  }
  result_type take() { return sink.take(); }
};

/// What a result costs so far, checked against the caps of the connection's options
/// after each row, so that a cap stops the decoding at the row that crosses it.
struct result_budget {
  std::size_t rows = 0;     ///< rows read, kept or read past
  std::size_t held = 0;     ///< memory the kept rows hold outside their slots
  std::size_t dropped = 0;  ///< wire bytes of the rows read past
  bool batch = false;       ///< a cursor's batch: only the bytes cap applies

  /// slots: bytes of the storage of the kept row objects.
  DQLITE_DECL error_code check(session_state& c, std::size_t slots);

  /// Slots of v counted for the rows kept: what it grew by since it held `base`, at least
  /// one per row kept.
  template <class V>
  static std::size_t slots(const V& v, std::size_t base, std::size_t kept) noexcept {
    return std::max(v.capacity() - std::min(v.capacity(), base), kept);
  }

  /// Before a row is added to v: when v is full, grows it (doubling, as it would) no
  /// further than max_result_bytes allows; fails when not one more row fits.
  template <class Impl, class V>
  error_code make_room(Impl& c, V& v, std::size_t base, std::size_t kept) {
    const std::size_t max = c.opts.max_result_bytes;
    if (v.size() < v.capacity() || max == 0) return {};
    constexpr std::size_t elem = sizeof(typename V::value_type);
    const std::size_t s = slots(v, base, kept) * elem;
    const std::size_t used = held + dropped + s;
    const std::size_t room = used < max ? (max - used) / elem : 0;
    if (room == 0) return check(c, s + elem);  // over the cap with one more slot
    v.reserve(v.capacity() + std::min(std::max<std::size_t>(v.capacity(), 1), room));
    return {};
  }
};

/// All rows as dynamic values.
struct dynamic_rows_sink {
  using result_type = rows;
  rows out;
  result_budget budget;
  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    const auto& names = rr.column_names();
    if (!out.columns_ || out.columns_->size() != names.size() ||
        !std::equal(names.begin(), names.end(), out.columns_->begin())) {
      if (out.columns_ && !out.rows_.empty()) return make_error_code(errc::unexpected_response);
      out.columns_ = std::make_shared<const column_names>(names.begin(), names.end());
      budget.held = names_bytes(names);
    }
    c.scratch.resize(names.size());
    auto& v = out.rows_;
    while (rr.at_row()) {
      if (auto e = budget.make_room(c, v, 0, v.size())) return e;
      if (!rr.next(c.scratch)) break;
      v.push_back(row::from_views(out.columns_, c.scratch));
      const std::size_t h = heap_bytes(v.back());
      ++budget.rows;
      budget.held += h;
      if (auto e = budget.check(c, result_budget::slots(v, 0, v.size()) * sizeof(row))) {
        budget.held -= h;
        v.pop_back();
        return e;
      }
    }
    return rr.error();
  }
  template <class Impl>
  error_code finish(Impl&) {
    return {};
  }
  rows take() { return std::move(out); }
};

/// True when T (a field, or a row type's fields) holds a std::string_view.
template <class T>
constexpr bool has_view_fields() {
  if constexpr (std::is_same_v<T, std::string_view> ||
                std::is_same_v<T, std::optional<std::string_view>>) {
    return true;
  } else if constexpr (kind_of<T>() == row_kind::tuple ||
                       kind_of<T>() == row_kind::aggregate_by_name ||
                       kind_of<T>() == row_kind::aggregate_by_position) {
    using Obj = typename stored_type<T>::type;
    return []<std::size_t... I>(std::index_sequence<I...>) {
      return (has_view_fields<typename fields_of<Obj>::template type<I>>() || ...);
    }(std::make_index_sequence<fields_of<Obj>::size>{});
  } else {
    return false;
  }
}

template <class U>
struct is_optional : std::false_type {};
template <class U>
struct is_optional<std::optional<U>> : std::true_type {};

/// Rows mapped into T (see mapping.hpp), appended to a std::vector of T (of U for
/// by_position<U>): the sink's own vector (fetch), or the caller's (fetch_into, where the
/// result is the number of rows appended). With OneOnly, only the first row is kept.
template <class T, bool OneOnly = false, bool Into = false>
struct typed_rows_sink {
  using object_type = typename row_mapper<T>::object_type;
  static_assert(!has_view_fields<T>(),
                "dqlite: std::string_view fields view the received frame, which is gone when a "
                "fetch completes: use std::string in row types of fetch, fetchone, fetch_into "
                "and fetchval");
  using vector_type = std::vector<object_type>;
  using result_type = std::conditional_t<
      OneOnly, std::optional<object_type>,
      std::conditional_t<Into, std::size_t, vector_type>>;

  typed_rows_sink() = default;
  explicit typed_rows_sink(vector_type* target) : target_(target) {}

  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    if (!mapped_) {
      if (auto e = mapper_.map(rr.column_names(), c.opts, c.diag)) return e;
      mapped_ = true;
      budget.held = names_bytes(rr.column_names());
    } else if (!mapper_.same_columns(rr.column_names())) {
      return make_error_code(errc::unexpected_response);
    }
    c.scratch.resize(rr.column_count());
    if constexpr (OneOnly) {
      if (!one_) {
        // The first row is kept.
        if (!rr.at_row()) return rr.error();
        object_type obj{};
        if (!mapper_.read_direct(rr, obj)) {
          if (!rr.next(c.scratch)) return rr.error();
          if (auto e = mapper_.read(c.scratch, obj, c.diag, 1)) return e;
        }
        one_.emplace(std::move(obj));
        ++budget.rows;
        budget.held += row_mapper<T>::heap_bytes(*one_);
        if (auto e = budget.check(c, sizeof(object_type))) return e;
      }
      // The rest is read past: it costs its rows and its size on the wire.
      for (;;) {
        const std::byte* before = rr.row_data();
        if (!rr.next(c.scratch)) return rr.error();
        ++budget.rows;
        budget.dropped += static_cast<std::size_t>(rr.row_data() - before);
        if (auto e = budget.check(c, sizeof(object_type))) return e;
      }
    } else {
      vector_type& out = Into ? *target_ : own_;
      if (!started_) {
        started_ = true;
        base_slots_ = out.capacity();
      }
      // Each row is read straight from the frame when it can be, else (and to report any
      // problem) through the value array.
      while (rr.at_row()) {
        if (auto e = budget.make_room(c, out, base_slots_, count_)) return e;
        auto& obj = out.emplace_back();
        if (!mapper_.read_direct(rr, obj)) {
          if (!rr.next(c.scratch)) {
            out.pop_back();
            return rr.error();
          }
          if (auto e = mapper_.read(c.scratch, obj, c.diag, budget.rows + 1)) {
            out.pop_back();
            return e;
          }
        }
        ++budget.rows;
        ++count_;
        budget.held += row_mapper<T>::heap_bytes(obj);
        if (auto e = budget.check(
                c, result_budget::slots(out, base_slots_, count_) * sizeof(object_type))) {
          budget.held -= row_mapper<T>::heap_bytes(obj);
          out.pop_back();
          --count_;
          return e;
        }
      }
      return rr.error();
    }
  }
  template <class Impl>
  error_code finish(Impl&) {
    return {};
  }
  bool has_row() const noexcept { return one_.has_value(); }
  /// Every row wanted is there (fetchone): the rest of the result can be interrupted.
  result_type take() {
    if constexpr (OneOnly)
      return std::move(one_);
    else if constexpr (Into)
      return count_;
    else
      return std::move(own_);
  }

  vector_type own_;  ///< public so a caller may reserve before the rows arrive
  result_budget budget;

 private:
  row_mapper<T> mapper_;
  vector_type* target_ = nullptr;
  std::optional<object_type> one_;
  bool mapped_ = false;
  bool started_ = false;
  std::size_t base_slots_ = 0;  ///< capacity of the target vector before the first row
  std::size_t count_ = 0;       ///< rows appended
};

/// The first column of the first row, as T. std::optional<T>: empty on NULL or no rows.
template <class T>
struct value_sink {
  using result_type = T;
  typed_rows_sink<T, true> first;  // T is a single field type: it maps the first column

  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    return first.on_rows(rr, c);
  }
  template <class Impl>
  error_code finish(Impl& c) {
    if (first.has_row() || is_optional<T>::value) return {};
    c.diag.assign("the query returned no rows");
    return make_error_code(errc::no_rows);
  }
  T take() {
    auto row = first.take();
    return row ? std::move(*row) : T{};
  }
};

}  // namespace detail
}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/procs.ipp ----
// Definitions of detail/procs.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL error_code malformed_rows(session_state& c, error_code ec) {
  if (ec == make_error_code(errc::too_many_columns))
    c.diag.assign("a ROWS frame announces " + std::to_string(c.rows.announced_columns()) +
                  " columns, more than max_result_columns (" +
                  std::to_string(c.opts.max_result_columns) + ")");
  else if (ec == make_error_code(errc::unexpected_response))
    c.diag.assign("the columns changed between the frames of one result");
  else
    c.diag.assign("the server sent a ROWS frame that cannot be read: " + ec.message());
  return ec;
}

DQLITE_DECL error_code result_budget::check(session_state& c, std::size_t slots) {
  const auto& o = c.opts;
  if (!batch && o.max_result_rows != 0 && rows > o.max_result_rows) {
    c.diag.assign("the result has more than max_result_rows (" +
                  std::to_string(o.max_result_rows) + ") rows" +
                  (dropped != 0 ? "; fetchone and fetchval read the whole result: add LIMIT 1"
                                : "; raise the cap or narrow the query"));
    return make_error_code(errc::result_too_large);
  }
  const std::size_t bytes = held + slots + dropped;
  if (o.max_result_bytes != 0 && bytes > o.max_result_bytes) {
    std::string what = batch ? "a batch of the cursor holds"
                       : dropped != 0 ? "the result (the first row, and the rows read past "
                                        "by their size) takes"
                                      : "the rows of the result hold";
    c.diag.assign(what + " more than max_result_bytes (" + std::to_string(o.max_result_bytes) +
                  ") bytes; raise the cap or narrow the query" +
                  (batch || dropped != 0 ? std::string() : std::string(", or use a cursor")));
    return make_error_code(errc::result_too_large);
  }
  return {};
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/procs.ipp ----
#endif
// ---- end dqlite/detail/procs.hpp ----
// ---- begin dqlite/detail/request.hpp ----
// Starting a statement request (SQL text or a prepared statement) with parameters.

// ---- begin dqlite/detail/server_probe.hpp ----
// Finding out, once per opening of a connection, whether the server understands the
// parameter encoding for more than 255 parameters (schema 1).
//
// The handshake does not tell the server's version. libdqlite 1.12 and later read a schema-1
// parameter tuple (u32 count); 1.11.1 ignores the frame's schema byte and reads a u8 count,
// so 256 or more parameters are bound wrong (all NULL for 256, garbage for 257), silently,
// or the request fails with code 1005. The probe is a read-only QUERY_SQL "SELECT ?" with a
// schema-1 tuple of one integer: a server that understands it answers that integer; 1.11.1
// answers FAILURE 1005 "not an error" (and the connection stays usable).


#include <cstdint>

namespace dqlite::detail {

/// What the probe found on the connection's current opening.
enum class wide_params : std::uint8_t { unknown = 0, supported = 1, unsupported = 2 };

/// The cached answer for the connection's current opening (connection_impl::params_probe
/// holds generation * 4 + answer; a reopened connection starts unknown).
template <class Impl>
wide_params known_wide_params(const Impl& c) noexcept {
  if (c.params_probe / 4 != c.generation) return wide_params::unknown;
  return static_cast<wide_params>(c.params_probe % 4);
}

template <class Impl>
void remember_wide_params(Impl& c, wide_params w) noexcept {
  c.params_probe = c.generation * 4 + static_cast<std::uint64_t>(w);
}

/// The integer the probe sends and expects back.
inline constexpr std::int64_t wide_params_probe_value = 0x5c4e3a1f0d2b1907;

/// Encodes the probe: QUERY_SQL "SELECT ?" with a schema-1 tuple holding one INTEGER.
DQLITE_DECL error_code encode_wide_params_probe(wire::buffer& b, std::uint32_t db);

/// The probe's answer: true when the server sent the integer back.
struct wide_params_answer {
  bool echoed = false;
};

/// Reads the probe's ROWS.
struct wide_params_probe_proc {
  using result_type = wide_params_answer;
  wide_params_answer out;
  bool first = true;

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (h.type != static_cast<std::uint8_t>(wire::response::rows))
      return make_error_code(errc::unexpected_response);
    auto& rr = c.rows;
    if (auto e = rr.start(body)) return e;
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
      if (first && rr.column_count() == 1 && c.scratch[0].type == wire::value_type::integer &&
          c.scratch[0].integer == wide_params_probe_value)
        out.echoed = true;
      first = false;
    }
    if (auto e = rr.error()) return e;
    done = rr.end() == wire::rows_end::done;
    return {};
  }
  wide_params_answer take() { return out; }
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/server_probe.ipp ----
// Definitions of detail/server_probe.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL error_code encode_wide_params_probe(wire::buffer& b, std::uint32_t db) {
  wire::frame_mark m{};
  if (auto e = wire::begin_sql_request(b, wire::request::query_sql, db, "SELECT ?", m)) return e;
  wire::put_u32(b, 1);                                                // count (schema 1: u32)
  wire::put_u8(b, static_cast<std::uint8_t>(wire::value_type::integer));  // its type
  wire::detail::pad_to_word(b);
  wire::put_i64(b, wide_params_probe_value);
  wire::set_frame_schema(b, m, 1);
  wire::end_frame(b, m);
  return {};
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/server_probe.ipp ----
#endif
// ---- end dqlite/detail/server_probe.hpp ----
// ---- begin dqlite/detail/token.hpp ----
// Splitting "parameters..., completion token" argument lists.

// ---- begin dqlite/params.hpp ----
// Binding C++ values as statement parameters.
//
// Supported out of the box: bool, every integer type, float, double, std::string,
// std::string_view, const char*, blobs (std::vector<std::byte>, std::vector<unsigned char>,
// std::span of bytes), std::nullopt, nullptr, dqlite::null, std::optional<T>, enums (as their
// underlying integer), std::chrono::system_clock time points (as ISO-8601 text), and
// dqlite::value. Other types: specialise dqlite::param_traits<T> with
//   static error_code bind(wire::tuple_writer& w, const T& v);
// that calls exactly one of w.integer / floating / text / blob / null / iso8601 / boolean.

// ---- begin dqlite/detail/ranges.hpp ----
// The parts of std::ranges the library uses: the range concepts (input_range, sized_range,
// iterator_t, range_reference_t) and the access functions (begin, end, size).
//
// libstdc++ defines exactly these in <bits/ranges_base.h>, which its <span> includes; <ranges>
// adds the views and adaptors on top, which the library does not use and which every unit of
// the user's would otherwise parse. Other standard libraries get <ranges>.

#include <version>

#if defined(__GLIBCXX__)
#include <span>
#endif
#ifndef _GLIBCXX_RANGES_BASE_H  // not libstdc++, or one whose <span> does not bring them
#include <ranges>
#endif
// ---- end dqlite/detail/ranges.hpp ----

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace dqlite {

/// Customization point: specialise for your own parameter types.
template <class T, class = void>
struct param_traits;

namespace detail {
inline error_code bind_text(wire::tuple_writer& w, std::string_view s) {
  if (!wire::is_valid_text(s)) return make_error_code(errc::invalid_argument);
  w.text(s);
  return {};
}
}  // namespace detail

template <std::integral T>
struct param_traits<T> {
  static error_code bind(wire::tuple_writer& w, T v) {
    if constexpr (std::is_same_v<T, bool>) {
      w.integer(v ? 1 : 0);
    } else if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (v > static_cast<T>(std::numeric_limits<std::int64_t>::max()))
        return make_error_code(errc::out_of_range);
      w.integer(static_cast<std::int64_t>(v));
    } else {
      w.integer(static_cast<std::int64_t>(v));
    }
    return {};
  }
};

template <std::floating_point T>
struct param_traits<T> {
  static error_code bind(wire::tuple_writer& w, T v) {
    w.floating(static_cast<double>(v));
    return {};
  }
};

template <class T>
struct param_traits<T, std::enable_if_t<std::is_enum_v<T>>> {
  static error_code bind(wire::tuple_writer& w, T v) {
    return param_traits<std::underlying_type_t<T>>::bind(w, static_cast<std::underlying_type_t<T>>(v));
  }
};

template <>
struct param_traits<std::string_view> {
  static error_code bind(wire::tuple_writer& w, std::string_view v) { return detail::bind_text(w, v); }
};
template <>
struct param_traits<std::string> {
  static error_code bind(wire::tuple_writer& w, const std::string& v) { return detail::bind_text(w, v); }
};
template <>
struct param_traits<const char*> {
  static error_code bind(wire::tuple_writer& w, const char* v) {
    if (v == nullptr) {
      w.null();
      return {};
    }
    return detail::bind_text(w, v);
  }
};
template <>
struct param_traits<char*> : param_traits<const char*> {};
template <std::size_t N>
struct param_traits<char[N]> {
  static error_code bind(wire::tuple_writer& w, const char (&v)[N]) {
    return detail::bind_text(w, std::string_view(v));
  }
};

namespace detail {
template <class T>
inline constexpr bool is_byte_like_v =
    std::is_same_v<T, std::byte> || std::is_same_v<T, unsigned char> ||
    std::is_same_v<T, std::uint8_t>;
}  // namespace detail

template <class T, class A>
  requires detail::is_byte_like_v<T>
struct param_traits<std::vector<T, A>> {
  static error_code bind(wire::tuple_writer& w, const std::vector<T, A>& v) {
    w.blob(std::as_bytes(std::span(v)));
    return {};
  }
};
template <class T, std::size_t E>
  requires detail::is_byte_like_v<std::remove_const_t<T>>
struct param_traits<std::span<T, E>> {
  static error_code bind(wire::tuple_writer& w, std::span<T, E> v) {
    w.blob(std::as_bytes(v));
    return {};
  }
};

template <>
struct param_traits<std::nullptr_t> {
  static error_code bind(wire::tuple_writer& w, std::nullptr_t) {
    w.null();
    return {};
  }
};
template <>
struct param_traits<std::nullopt_t> {
  static error_code bind(wire::tuple_writer& w, std::nullopt_t) {
    w.null();
    return {};
  }
};
template <>
struct param_traits<null_t> {
  static error_code bind(wire::tuple_writer& w, null_t) {
    w.null();
    return {};
  }
};

template <class T>
struct param_traits<std::optional<T>> {
  static error_code bind(wire::tuple_writer& w, const std::optional<T>& v) {
    if (!v) {
      w.null();
      return {};
    }
    return param_traits<T>::bind(w, *v);
  }
};

template <class Duration>
struct param_traits<std::chrono::time_point<std::chrono::system_clock, Duration>> {
  static error_code bind(wire::tuple_writer& w,
                         std::chrono::time_point<std::chrono::system_clock, Duration> tp) {
    // The ISO-8601 form of SQLite's date and time functions has four-digit years: a time
    // outside them could not be read back.
    using namespace std::chrono;
    const auto y = static_cast<int>(year_month_day{floor<days>(tp)}.year());
    if (y < detail::iso8601_min_year || y > detail::iso8601_max_year)
      return make_error_code(errc::out_of_range);
    char buf[detail::iso8601_max_size];
    w.iso8601(detail::format_iso8601(tp, buf));
    return {};
  }
};

template <>
struct param_traits<value> {
  static error_code bind(wire::tuple_writer& w, const value& v) {
    switch (v.type()) {
      case value_type::null: w.null(); return {};
      case value_type::integer:
      case value_type::unixtime: w.integer(*v.if_int64()); return {};
      case value_type::boolean: w.integer(*v.if_int64() != 0 ? 1 : 0); return {};
      case value_type::floating: w.floating(*v.if_double()); return {};
      case value_type::text: return detail::bind_text(w, *v.if_text());
      case value_type::iso8601:
        if (!wire::is_valid_text(*v.if_text())) return make_error_code(errc::invalid_argument);
        w.iso8601(*v.if_text());
        return {};
      case value_type::blob: w.blob(std::span(*v.if_blob())); return {};
    }
    return make_error_code(errc::invalid_argument);
  }
};

/// A type that can be bound as one parameter.
template <class T>
concept parameter = requires(wire::tuple_writer& w, const std::remove_cvref_t<T>& v) {
  { param_traits<std::remove_cvref_t<T>>::bind(w, v) } -> std::same_as<error_code>;
};

/// Parameters given as a runtime range of dqlite::value (for query builders).
template <class Range>
struct param_range {
  const Range& range;
};

/// Wraps a runtime range of dqlite::value so it binds as that many parameters.
template <std::ranges::sized_range Range>
  requires std::convertible_to<std::ranges::range_reference_t<const Range&>, const value&>
param_range<Range> params_from(const Range& r) {
  return {r};
}

namespace detail {

template <class T>
struct is_param_range : std::false_type {};
template <class R>
struct is_param_range<param_range<R>> : std::true_type {};

template <class T>
struct is_tuple : std::false_type {};
template <class... T>
struct is_tuple<std::tuple<T...>> : std::true_type {};

/// One argument of a parameter list: a single parameter, a std::tuple of parameters, or a
/// param_range.
template <class T>
concept param_arg = parameter<T> || is_tuple<std::remove_cvref_t<T>>::value ||
                    is_param_range<std::remove_cvref_t<T>>::value;

template <class T>
std::size_t param_count(const T& v) {
  if constexpr (is_tuple<T>::value)  // elements may be tuples or ranges themselves
    return std::apply([](const auto&... e) { return (std::size_t{0} + ... + param_count(e)); }, v);
  else if constexpr (is_param_range<T>::value)
    return static_cast<std::size_t>(std::ranges::size(v.range));
  else
    return 1;
}

template <class T>
error_code bind_one(wire::tuple_writer& w, const T& v) {
  if constexpr (is_tuple<T>::value) {
    error_code ec;
    std::apply([&](const auto&... e) { ((ec ? void() : void(ec = bind_one(w, e))), ...); }, v);
    return ec;
  } else if constexpr (is_param_range<T>::value) {
    for (const value& e : v.range)
      if (auto ec = param_traits<value>::bind(w, e)) return ec;
    return {};
  } else {
    return param_traits<T>::bind(w, v);
  }
}

/// Writes the parameter tuple of args (nothing when there are none) into a frame begun
/// at m. On error the caller discards the frame.
template <class... Args>
error_code write_params(wire::buffer& b, wire::frame_mark m, const Args&... args) {
  std::size_t n = (std::size_t{0} + ... + param_count(args));
  if (n == 0) return {};
  if (n > wire::max_params) return make_error_code(errc::too_many_parameters);
  wire::tuple_writer w(b, n);
  error_code ec;
  ((ec ? void() : void(ec = bind_one(w, args))), ...);
  if (ec) return ec;
  wire::set_frame_schema(b, m, w.schema());
  return {};
}

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/params.hpp ----

#include <boost/asio/async_result.hpp>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

template <class... Args>
using last_t = std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>;

template <class... P>
constexpr void check_params() {
  static_assert((param_arg<P> && ...),
                "dqlite: unsupported parameter type. Supported: bool, integers, float, double, "
                "strings, byte vectors/spans (blobs), std::optional, nullptr/std::nullopt/"
                "dqlite::null, enums, system_clock time points, dqlite::value, std::tuple of "
                "those, dqlite::params_from(range of dqlite::value); or specialise "
                "dqlite::param_traits<T>. (The completion token, if any, must come last.)");
}

/// Calls f(token, params...): the last argument is the completion token when it is one for
/// the signature Sig (and cannot be bound as a parameter); otherwise every argument is a
/// parameter and the token is Default{}. An argument that is neither stops compilation
/// with the library's list of supported parameter types (not Asio's errors about a token).
template <class Default, class Sig, class F, class... Args>
auto with_token(F&& f, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return f(Default{});
  } else if constexpr (param_arg<last_t<Args...>>) {
    // Only with valid parameters is the operation instantiated: one error, the library's.
    if constexpr ((param_arg<Args> && ...))
      return f(Default{}, std::forward<Args>(args)...);
    else
      check_params<Args...>();
  } else if constexpr (!boost::asio::completion_token_for<last_t<Args...>, Sig>) {
    check_params<Args...>();  // fails: the last argument is neither a parameter nor a token
  } else {
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      using params = std::tuple<std::tuple_element_t<I, std::tuple<Args...>>...>;
      if constexpr ((param_arg<std::tuple_element_t<I, params>> && ...))
        return f(std::get<sizeof...(Args) - 1>(std::move(all)), std::get<I>(std::move(all))...);
      else
        check_params<std::tuple_element_t<I, params>...>();
    }(std::make_index_sequence<sizeof...(Args) - 1>{});
  }
}

}  // namespace dqlite::detail
// ---- end dqlite/detail/token.hpp ----

#include <boost/asio/associator.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// What a request runs: SQL text (EXEC_SQL / QUERY_SQL) or a prepared statement (EXEC /
/// QUERY) of one opening of the connection.
struct request_spec {
  bool prepared = false;
  std::string_view sql;          ///< SQL text, when not prepared
  std::uint32_t stmt = 0;        ///< statement id, when prepared
  std::uint64_t generation = 0;  ///< the opening the statement belongs to
  std::uint64_t holder = 0;      ///< the cursor that will hold the connection, if any
  bool read_only = false;        ///< a prepared statement that cannot write (is_read_only_sql)
  bool returning = false;        ///< the prepared statement has a RETURNING clause
  tx_effect tx = tx_effect::none;  ///< what the prepared statement does to a transaction

  /// The shape of what the request runs (a prepared statement is one statement).
  sql_shape shape() const noexcept {
    if (prepared) return sql_shape{1, 0, returning, tx};
    return scan_sql(sql);
  }

  wire::request type(bool query) const noexcept {
    if (prepared) return query ? wire::request::query : wire::request::exec;
    return query ? wire::request::query_sql : wire::request::exec_sql;
  }
};

/// Statements need a database: a connection made without one (an empty
/// connection_options::database, for administration) has none until async_open_database.
template <class Impl>
error_code check_database(Impl& ci) {
  if (!ci.database.empty()) return {};
  ci.diag.assign("no database is open on this connection (connection_options::database was "
                 "empty): call async_open_database first");
  return make_error_code(errc::not_connected);
}

/// The operations that run a query, for messages.
inline constexpr const char* query_operations =
    "fetch, fetchall, fetchone, fetchval, fetch_into, cursor";

/// Refuses, before anything is sent, a statement request the server would run wrongly:
/// - a query whose SQL text holds no statement, or more than one: libdqlite 1.11.1 runs the
///   first and silently ignores the rest (1.15 and later fail with "nonempty statement
///   tail");
/// - an execute of a statement with a RETURNING clause: libdqlite aborts on it through
///   EXEC/EXEC_SQL (1.11.1 on any, 1.18.6 on one that returns two rows or more);
/// - on a server found not to read the parameter encoding for more than 255 parameters
///   (server_probe.hpp: libdqlite before 1.12), more than 255 parameters, which would be
///   bound wrong, and a query with a RETURNING clause, whose changes 1.11.1 does not store.
DQLITE_DECL error_code check_statement(session_state& ci, const request_spec& spec,
                                        const sql_shape& shape, bool query, std::size_t params);

/// Writes a request's parameters (a std::tuple<const P&...>) into a frame being built.
using params_writer = error_code (*)(wire::buffer& out, wire::frame_mark m, const void* params);

template <class... P>
error_code write_params_tuple(wire::buffer& out, wire::frame_mark m, const void* params) {
  return std::apply([&](const P&... p) { return write_params(out, m, p...); },
                    *static_cast<const std::tuple<const P&...>*>(params));
}

/// Encodes the request into out (the connection's wbuf, or a buffer of its own while the
/// server is probed first), its parameters written by write from params.
DQLITE_DECL error_code encode_request(wire::buffer& out, session_state& ci,
                                      const request_spec& spec, bool query, params_writer write,
                                      const void* params);

/// The same, with the parameters given.
template <class... P>
error_code encode_request_to(wire::buffer& out, session_state& ci, const request_spec& spec,
                             bool query, const P&... params) {
  const std::tuple<const P&...> refs(params...);
  return encode_request(out, ci, spec, query, &write_params_tuple<P...>, &refs);
}

/// Encodes EXEC_SQL of a fixed SQL text without parameters (BEGIN, COMMIT, ROLLBACK).
inline auto sql_request(std::string_view sql) {
  return [sql](auto& ci) -> error_code {
    wire::frame_mark m{};
    (void)wire::begin_sql_request(ci.wbuf, wire::request::exec_sql, ci.db_id, sql, m);
    wire::end_frame(ci.wbuf, m);
    return {};
  };
}

/// Encodes FINALIZE of statement `id`.
inline auto finalize_request(std::uint32_t id) {
  return [id](auto& ci) -> error_code {
    wire::encode_finalize(ci.wbuf, ci.db_id, id);
    return {};
  };
}

/// Checks (check_statement) and encodes the request into impl.wbuf. shape and n (the
/// number of parameters) as the caller computed them: the SQL text is scanned once.
template <class Impl, class... P>
error_code encode_statement(Impl& ci, const request_spec& spec, const sql_shape& shape,
                            bool query, std::size_t n, const P&... params) {
  if (auto e = check_statement(ci, spec, shape, query, n)) return e;
  return encode_request_to(ci.wbuf, ci, spec, query, params...);
}

/// How a statement request runs: bounded by request_timeout, held by its cursor (if any),
/// and whether it may write (its outcome is unknown once sent and its answer lost).
template <class Impl>
exchange_params statement_params(const Impl& c, const request_spec& spec, const sql_shape& shape,
                                 bool query) {
  // An EXEC may write; a query may too unless its text cannot (read from its first words).
  const bool may_write =
      !query || !(spec.prepared ? spec.read_only : is_read_only_sql(spec.sql));
  return exchange_params{true, c.opts.request_timeout, spec.holder, may_write, shape.tx};
}

/// Whether a request must wait for the wide-parameter probe (server_probe.hpp): it has
/// more than 255 parameters, or is a query with RETURNING, on an open connection whose
/// server has not been probed yet, and nothing else runs on the connection.
DQLITE_DECL bool needs_probe(const session_state& c, const sql_shape& shape, bool query,
                             std::size_t n);

/// The probe's answer: what the server reads, unless the probe failed otherwise than by
/// the server's refusal (false: the connection failed, ec says how).
inline bool record_probe(session_state& c, const error_code& ec, const wide_params_answer& answer) {
  const bool refused = ec.category() == server_category() ||
                       ec == make_error_code(errc::server_failure);
  if (ec && !refused) return false;
  remember_wide_params(c, !ec && answer.echoed ? wide_params::supported : wide_params::unsupported);
  return true;
}

/// Encodes the wide-parameter probe into ci.wbuf (when a database is open).
DQLITE_DECL error_code encode_probe(session_state& ci);

/// A statement request encoded before the probe that runs first, with what its start
/// needs after the probe (when its SQL text is gone).
struct encoded_request {
  request_spec spec;  ///< without its SQL text
  sql_shape shape;
  bool query;
  std::size_t n;  ///< the number of parameters
  wire::buffer request;
  std::uint64_t generation;  ///< the opening the request was encoded for
  exchange_params exchange;  ///< the request's, found while it started

  /// Keeps what a request on connection c needs of its SQL text, found now.
  static encoded_request make(const session_state& c, const request_spec& spec,
                              const sql_shape& shape, bool query, std::size_t n,
                              wire::buffer request, const exchange_params& exchange) {
    encoded_request r{spec, shape, query, n, std::move(request), c.generation, exchange};
    r.spec.sql = {};  // only valid while the operation starts
    return r;
  }
};

/// Makes r's request the connection's request, after the checks that depend on what the
/// probe found (check_statement) and on the opening it was encoded for (a reopened
/// connection has other statement ids).
DQLITE_DECL error_code adopt_encoded_request(session_state& ci, encoded_request& r);

/// What start_request needs of a statement request: its parameters only while it starts.
struct request_start {
  request_spec spec;
  bool query;
  std::size_t n;  ///< the number of parameters
  params_writer write;
  const void* params;
};

/// The wide-parameter probe before a request (start_request), and then the request: the
/// target of the probe's exchange. Its executor and cancellation slot are those of the
/// request's target, which it owns until it starts the request (or completes it, when the
/// probe failed).
template <class Stream>
class probe_then_start final : public loop_target<typename Stream::executor_type> {
  using io_executor = typename Stream::executor_type;
  using impl = connection_impl<Stream>;

 public:
  /// Starts the probe, and takes the request's target from owner; r: the request, encoded
  /// (its parameters are gone after this).
  static void run(const std::shared_ptr<impl>& c, target_guard<io_executor>& owner,
                  encoded_request r) {
    boost::asio::recycling_allocator<probe_then_start> alloc;
    probe_then_start* const mem = alloc.allocate(1);
    auto* p = ::new (static_cast<void*>(mem)) probe_then_start(c, owner.release(), std::move(r));
    loop_handler<io_executor> done(p);  // frees p, and the target, if the start throws
    const exchange_params probe{true, c->opts.request_timeout, 0};
    bool owns = false;
    const error_code ec = claim_and_encode(*c, encode_probe, probe, owns);
    p->m_.emplace(*c, wide_params_probe_proc{}, ec, owns, probe);
    run_exchange(c, *p->m_, probe.timeout, std::move(done));
  }

  void complete(error_code ec, bool inline_done) override {
    const wide_params_answer answer = m_->take();
    target_guard<io_executor> owner(std::exchange(t_, nullptr));
    std::shared_ptr<impl> c = std::move(c_);
    encoded_request r = std::move(r_);
    destroy();
    if (!record_probe(*c, ec, answer)) return owner.release().complete_empty(ec, inline_done);
    begin_request(
        c, owner, [&](impl& ci) { return adopt_encoded_request(ci, r); }, r.exchange);
  }
  void destroy() noexcept override {
    if (t_) std::exchange(t_, nullptr)->destroy();  // abandoned: the request never starts
    this->~probe_then_start();
    boost::asio::recycling_allocator<probe_then_start>().deallocate(this, 1);
  }
  io_executor executor() const noexcept override { return t_->executor(); }
  boost::asio::cancellation_slot slot() const noexcept override { return t_->slot(); }

 private:
  probe_then_start(const std::shared_ptr<impl>& c, request_core<io_executor>& t,
                   encoded_request r) noexcept
      : c_(c), t_(&t), r_(std::move(r)) {}
  ~probe_then_start() = default;

  std::shared_ptr<impl> c_;
  request_core<io_executor>* t_;  ///< owned until the request starts
  encoded_request r_;
  std::optional<exchange_machine<wide_params_probe_proc>> m_;
};

/// Starts statement request s on connection c, completing target t, which it owns (an
/// exception thrown while the request starts frees it, and destroys the caller's handler):
/// the probe first when the request needs it (needs_probe), then the request. Compiled
/// once per stream type,
/// whatever the caller's handler and the response processor (with
/// DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms in the unit that
/// includes <dqlite/src.hpp>).
template <class Stream>
void start_request(const std::shared_ptr<connection_impl<Stream>>& c,
                   request_core<typename Stream::executor_type>& t, const request_start& s) {
  target_guard<typename Stream::executor_type> owner(&t);
  const sql_shape shape = s.spec.shape();
  const exchange_params exchange = statement_params(*c, s.spec, shape, s.query);
  if (needs_probe(*c, shape, s.query, s.n) &&
      !check_statement(*c, s.spec, shape, s.query, s.n)) {
    wire::buffer request;
    if (!encode_request(request, *c, s.spec, s.query, s.write, s.params))
      return probe_then_start<Stream>::run(
          c, owner,
          encoded_request::make(*c, s.spec, shape, s.query, s.n, std::move(request), exchange));
    c->diag.clear();  // the same error is found again below, and reported there
  }
  begin_request(
      c, owner,
      [&](connection_impl<Stream>& ci) -> error_code {
        if (auto e = check_statement(ci, s.spec, shape, s.query, s.n)) return e;
        return encode_request(ci.wbuf, ci, s.spec, s.query, s.write, s.params);
      },
      exchange);
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>.
extern template void start_request<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
extern template void start_request<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
#endif

/// The completion of the wide-parameter probe (server_probe.hpp) that runs before a
/// request that needs it, for a caller's handler that start_request cannot take (see
/// erasable_handler): records what the server reads, then starts the request, encoded
/// beforehand (its parameters are only referenced while it starts), with the caller's
/// handler. A plain handler rather than a composed operation: its executor, allocator and
/// cancellation slot are the caller's handler's (see the associator below), and the
/// request's exchange is the one compiled for that handler anyway.
template <class Impl, class Proc, class Handler>
struct probe_then_request {
  Handler handler;
  std::shared_ptr<Impl> c;
  Proc proc;
  encoded_request r;
  using result_type = typename Proc::result_type;

  /// Called as an exchange's handler is (never inside the initiating function).
  void operator()(error_code ec, wide_params_answer answer) {
    if (!record_probe(*c, ec, answer)) {  // the connection failed: report that
      if constexpr (std::is_void_v<result_type>)
        return std::move(handler)(ec);
      else
        return std::move(handler)(ec, result_type{});
    }
    auto conn = c;
    start_exchange(
        conn, std::move(proc), std::move(handler),
        [this](Impl& ci) { return adopt_encoded_request(ci, r); }, r.exchange);
  }
};

/// The blocking twin of the probe start_request runs first when a request needs it
/// (more than 255 parameters, or a query with RETURNING, on a server not probed yet).
/// False when the probe itself failed (ec, diag say why).
template <class Impl>
bool blocking_probe(Impl& c, const request_spec& spec, const sql_shape& shape, bool query,
                    std::size_t n, error_code& ec, dqlite::diagnostics& d) {
  if (!needs_probe(c, shape, query, n) || check_statement(c, spec, shape, query, n))
    return true;
  auto answer = blocking_exchange(
      c, wide_params_probe_proc{},
      encode_probe,
      exchange_params{true, c.opts.request_timeout, 0}, ec, d);
  if (!record_probe(c, ec, answer)) return false;
  ec = {};
  d = {};
  return true;
}

/// A blocking statement request: the probe when needed, then the request.
template <class Impl, class Proc, class... P>
auto blocking_statement(Impl& c, Proc proc, const request_spec& spec, bool query,
                        error_code& ec, dqlite::diagnostics& d, const P&... params) {
  if constexpr (!(param_arg<const P&> && ...)) {
    check_params<const P&...>();  // fails with the list of supported types
    return typename Proc::result_type{};
  } else {
    const std::size_t n = (std::size_t{0} + ... + param_count(params));
    const sql_shape shape = spec.shape();  // for the probe and the exchange's parameters
    if (!blocking_probe(c, spec, shape, query, n, ec, d)) return typename Proc::result_type{};
    return blocking_exchange(
        c, std::move(proc),
        [&](Impl& ci) { return encode_statement(ci, spec, shape, query, n, params...); },
        statement_params(c, spec, shape, query), ec, d);
  }
}

/// Tag of the objects that belong to no connection: the statement, cursor or transaction
/// an operation on a moved-from connection completes with. Their operations fail with
/// errc::not_connected.
struct detached_t {
  explicit detached_t() = default;
};
inline constexpr detached_t detached{};

/// The diagnostics of an operation on a moved-from connection (or on an object that
/// belongs to none). One object for the whole program, never changed.
inline const std::shared_ptr<const dqlite::diagnostics>& moved_from_diagnostics() {
  static const auto d = std::make_shared<const dqlite::diagnostics>(
      "the connection was moved from: it has no state and no stream left. Nothing was sent");
  return d;
}

/// The failure of an operation on a moved-from connection: errc::not_connected, with
/// moved_from_diagnostics() in diag.
inline error_code fail_moved_from(dqlite::diagnostics& diag) {
  diag = *moved_from_diagnostics();
  return make_error_code(errc::not_connected);
}

/// The empty result a failed operation completes with: R{}, or for the library's objects
/// that belong to a connection, one that belongs to none.
template <class R>
R empty_result() {
  if constexpr (std::is_default_constructible_v<R>)
    return R{};
  else
    return R(detached);
}

/// Completes h with (ec, results...), posted (never invoked inline) to the handler's
/// associated executor, whose default is ex, or the system executor when ex is empty.
/// Sig: void(error_code, R...).
template <class Sig, class Handler, class Executor, class... R>
void complete_posted(Handler&& h, const std::optional<Executor>& ex, error_code ec,
                     R... results) {
  // A post (deliver's), not a composed operation: these completions are rare, and a
  // composed operation per handler type is a lot of code to compile for them.
  // Not Executor(system_executor()): for any_io_executor that conversion instantiates the
  // whole type erasure of the system executor, in every unit that connects.
  if (ex) {
    deliver(std::forward<Handler>(h), *ex, true, ec, std::move(results)...);
  } else {
    deliver(std::forward<Handler>(h), boost::asio::system_executor(), true, ec,
            std::move(results)...);
  }
}

/// Completes h with errc::not_connected and empty results, for an operation started on a
/// moved-from connection, which has no stream to run it on (Sig: void(error_code, R...)).
/// Posted to the handler's associated executor; its default is ex, the executor the
/// connection had, or the system executor when there is none.
template <class Sig, class Handler, class Executor>
void complete_moved_from(Handler&& h, const std::optional<Executor>& ex) {
  [&]<class... R>(void (*)(error_code, R...)) {
    complete_posted<Sig>(std::forward<Handler>(h), ex, make_error_code(errc::not_connected),
                         empty_result<R>()...);
  }(static_cast<Sig*>(nullptr));
}

/// The diagnostics an operation on connection c reports: c's, or for a moved-from
/// connection (c null), moved_from_diagnostics().
template <class Impl>
std::shared_ptr<const dqlite::diagnostics> diagnostics_of_impl(const std::shared_ptr<Impl>& c) {
  if (!c) return moved_from_diagnostics();
  return {c, &c->diag};
}

/// Initiation of a statement request whose response goes to a Proc.
template <class Impl>
struct request_initiation {
  std::shared_ptr<Impl> c;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler, class Proc, class... P>
  void operator()(Handler&& h, Proc proc, request_spec spec, bool query, const P&... params) {
    using executor = typename Impl::executor_type;
    using handler_type = std::decay_t<Handler>;
    if (!c) {
      if constexpr (erasable_with_executor<handler_type, executor>) {
        // Through a target, as every other completion of such a handler: no code of its own.
        // The handler's executor is the one it completes on (not the connection's, ex).
        const executor own = boost::asio::get_associated_executor(h);
        auto* t = request_target<executor, Proc, handler_type>::create(std::forward<Handler>(h),
                                                                       own, std::move(proc));
        return post_completion<executor>(t, make_error_code(errc::not_connected), true);
      } else {
        return complete_moved_from<completion_sig_t<typename Proc::result_type>>(
            std::forward<Handler>(h), ex);
      }
    }
    const std::size_t n = (std::size_t{0} + ... + param_count(params));
    if constexpr (erasable_handler<handler_type, executor>) {
      // What depends on the handler and the processor is the target; the rest is compiled
      // once (start_request).
      auto* t = request_target<executor, Proc, handler_type>::create(
          std::forward<Handler>(h), c->stream.get_executor(), std::move(proc));
      const std::tuple<const P&...> refs(params...);
      start_request(c, *t, request_start{spec, query, n, &write_params_tuple<P...>, &refs});
    } else {
      const sql_shape shape = spec.shape();
      // More than 255 parameters, or a query with RETURNING, on a connection whose server has
      // not been probed yet: probe first.
      if (needs_probe(*c, shape, query, n) && !check_statement(*c, spec, shape, query, n)) {
        wire::buffer request;
        if (!encode_request_to(request, *c, spec, query, params...)) {
          using then = probe_then_request<Impl, Proc, std::decay_t<Handler>>;
          auto conn = c;
          const auto timeout = c->opts.request_timeout;
          start_exchange(
              conn, wide_params_probe_proc{},
              then{std::forward<Handler>(h), c, std::move(proc),
                   encoded_request::make(*c, spec, shape, query, n, std::move(request),
                                         statement_params(*c, spec, shape, query))},
              encode_probe, exchange_params{true, timeout, 0});
          return;
        }
        c->diag.clear();  // the same error is found again below, and reported there
      }
      start_exchange(
          c, std::move(proc), std::forward<Handler>(h),
          [&](Impl& ci) { return encode_statement(ci, spec, shape, query, n, params...); },
          statement_params(*c, spec, shape, query));
    }
  }
};

/// Initiation of an exchange with a request encoded by a function of the connection.
template <class Impl>
struct encoded_initiation {
  std::shared_ptr<Impl> c;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler, class Proc, class Encode>
  void operator()(Handler&& h, Proc proc, Encode encode, exchange_params params) {
    if (!c)
      return complete_moved_from<completion_sig_t<typename Proc::result_type>>(
          std::forward<Handler>(h), ex);
    start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), params);
  }
};

/// Initiation of a composed operation Op (async_compose) on the connection.
template <class Impl, class Op, class Sig>
struct composed_initiation {
  std::shared_ptr<Impl> c;
  Op op;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler>
  void operator()(Handler&& h) {
    if (!c) return complete_moved_from<Sig>(std::forward<Handler>(h), ex);
    boost::asio::async_compose<Handler, Sig>(std::move(op), h, c->stream.get_executor());
  }
};

/// Completes a handler with an error found before anything could start (posted to the
/// handler's executor, never invoked inline).
template <class Impl>
struct failed_initiation {
  std::shared_ptr<Impl> c;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler, class... R>
  void operator()(Handler&& h, error_code ec, std::string diag, R... results) {
    if (!c) return complete_moved_from<void(error_code, R...)>(std::forward<Handler>(h), ex);
    if (!diag.empty()) c->diag.assign(diag);
    complete_posted<void(error_code, R...)>(std::forward<Handler>(h),
                                            std::optional(c->stream.get_executor()), ec,
                                            std::move(results)...);
  }
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/request.ipp ----
// Definitions of detail/request.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL error_code check_statement(session_state& ci, const request_spec& spec,
                                        const sql_shape& shape, bool query, std::size_t params) {
  if (query && !spec.prepared && shape.statements != 1) {
    if (shape.statements == 0)
      ci.diag.assign("the SQL text holds no statement");
    else
      ci.diag.assign("the SQL text holds " + std::to_string(shape.statements) +
                     " statements, and a query (" + query_operations +
                     ") runs exactly one (the first ends at byte " +
                     std::to_string(shape.first_end) +
                     "); run each on its own (execute runs several statements that return no "
                     "rows). Nothing was sent");
    return make_error_code(errc::invalid_argument);
  }
  if (!query && shape.returning) {
    ci.diag.assign(std::string("the statement has a RETURNING clause, so it returns rows: run it "
                               "as a query (") + query_operations +
                   "). execute refuses it because libdqlite aborts on such a statement sent "
                   "as EXEC/EXEC_SQL (1.11.1 on any RETURNING, 1.18.6 when it returns two rows "
                   "or more). Nothing was sent");
    return make_error_code(errc::invalid_argument);
  }
  if (known_wide_params(ci) == wide_params::unsupported) {
    if (params > wire::max_schema0_params) {
      ci.diag.assign("the statement has " + std::to_string(params) +
                     " parameters, and this server reads at most 255 per statement (it does not "
                     "understand the encoding for more, which libdqlite reads from 1.12 on: "
                     "it would bind wrong values). Nothing was sent");
      return make_error_code(errc::too_many_parameters);
    }
    if (query && shape.returning) {
      ci.diag.assign("this server (older than libdqlite 1.12) returns the rows of a statement "
                     "with a RETURNING clause run as a query, but does not store its changes "
                     "(libdqlite 1.11.1): run the statement without RETURNING through execute, "
                     "then query what it wrote. Nothing was sent");
      return make_error_code(errc::unsupported);
    }
  }
  return {};
}

DQLITE_DECL error_code encode_request(wire::buffer& out, session_state& ci,
                                      const request_spec& spec, bool query, params_writer write,
                                      const void* params) {
  if (auto e = check_database(ci)) return e;
  wire::frame_mark m{};
  if (spec.prepared) {
    if (spec.generation != ci.generation) {
      ci.diag.assign("the prepared statement was closed, or belongs to an earlier opening of "
                     "this connection; prepare it again");
      return make_error_code(errc::not_connected);
    }
    m = wire::begin_stmt_request(out, spec.type(query), ci.db_id, spec.stmt);
  } else if (auto e = wire::begin_sql_request(out, spec.type(query), ci.db_id, spec.sql, m)) {
    ci.diag.assign("the SQL text contains a NUL byte");
    return e;
  }
  if (auto e = write(out, m, params)) {
    if (e == make_error_code(errc::invalid_argument))
      ci.diag.assign("a text parameter contains a NUL byte");
    else if (e == make_error_code(errc::out_of_range))
      ci.diag.assign("a parameter is out of range: an unsigned integer above INT64_MAX, or a "
                     "time outside the years 0000 to 9999 (those of SQLite's date and time "
                     "functions and of the ISO-8601 text a time is sent as)");
    else
      ci.diag.assign("a parameter could not be bound: " + e.message());
    return e;
  }
  wire::end_frame(out, m);
  return {};
}


DQLITE_DECL bool needs_probe(const session_state& c, const sql_shape& shape, bool query,
                             std::size_t n) {
  const bool wide = n > wire::max_schema0_params;
  return (wide || (query && shape.returning)) && c.state == conn_state::open && !c.busy &&
         c.holder == 0 && known_wide_params(c) == wide_params::unknown;
}

DQLITE_DECL error_code encode_probe(session_state& ci) {
  if (auto e = check_database(ci)) return e;
  return encode_wide_params_probe(ci.wbuf, ci.db_id);
}

DQLITE_DECL error_code adopt_encoded_request(session_state& ci, encoded_request& r) {
  if (auto e = check_statement(ci, r.spec, r.shape, r.query, r.n)) return e;
  if (ci.generation != r.generation) {
    ci.diag.assign("the connection was reopened while the request was prepared");
    return make_error_code(errc::not_connected);
  }
  ci.wbuf = std::move(r.request);
  return {};
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/request.ipp ----
#endif

namespace boost::asio {

/// The probe's completion before a request is associated with what the caller's handler
/// is.
template <template <class, class> class Associator, class Impl, class Proc, class Handler,
          class Default>
struct associator<Associator, ::dqlite::detail::probe_then_request<Impl, Proc, Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type get(
      const ::dqlite::detail::probe_then_request<Impl, Proc, Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(const ::dqlite::detail::probe_then_request<Impl, Proc, Handler>& h,
                  const Default& d) noexcept -> decltype(Associator<Handler, Default>::get(h.handler, d)) {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio
// ---- end dqlite/detail/request.hpp ----
// ---- begin dqlite/detail/session_procs.hpp ----
// Response processors for prepared statements, transactions and cursors.


#include <memory>
#include <string>
#include <utility>

namespace dqlite::detail {

/// PREPARE: one STMT.
struct prepare_proc {
  using result_type = wire::stmt_response;
  wire::stmt_response out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::stmt)) return e;
    if (auto e = wire::decode_stmt(body, h.schema, out)) return e;
    done = true;
    return {};
  }
  wire::stmt_response take() { return out; }
};

/// No request of its own: runs the connection's pending housekeeping (a dropped cursor's
/// INTERRUPT, FINALIZE of dropped statements, ROLLBACK of a dropped transaction).
struct flush_proc {
  using result_type = void;
  static constexpr bool housekeeping_only = true;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header&, wire::bytes_view, bool&) {
    return make_error_code(errc::unexpected_response);
  }
};

/// COMMIT. A failure that leaves the outcome open is reported as errc::outcome_unknown:
/// leadership lost while the commit was being replicated, or the connection lost once the
/// request had been sent. After any other failure the transaction may still be open on the
/// server: it is rolled back before the connection's next request.
/// The end of a transaction: one RESULT, reported as success only.
struct end_tx_proc {
  using result_type = void;
  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    return exec_proc{}.on_frame(c, h, body, done);
  }
};

struct commit_proc : end_tx_proc {
  template <class Impl>
  error_code map_error(Impl& c, error_code ec, bool sent) {
    if (is_leadership_lost(ec)) {
      c.diag.assign("COMMIT: leadership was lost while the commit was being replicated; it may "
                    "or may not have been applied (server: " + c.diag.message() + ")");
      return make_error_code(errc::outcome_unknown);
    }
    const bool transport = ec.category() != server_category() &&
                           ec != make_error_code(errc::not_connected) &&
                           ec != make_error_code(errc::operation_in_progress) &&
                           ec != make_error_code(errc::used_after_fork);
    if (sent && transport) {
      c.diag.assign("COMMIT: the connection failed after the commit was sent (" +
                    c.diag.message() + "); it may or may not have been applied");
      return make_error_code(errc::outcome_unknown);
    }
    if (ec.category() == server_category() && !is_not_leader(ec)) c.rollback_pending = true;
    return ec;
  }
};

/// ROLLBACK of a transaction object: a failure that says no transaction is open (it was
/// already rolled back by the server, e.g. after an error inside it) is not an error.
struct rollback_proc : end_tx_proc {
  template <class Impl>
  error_code map_error(Impl& c, error_code ec, bool) {
    if (ec.category() == server_category() &&
        c.diag.message().find("no transaction is active") != std::string::npos)
      return {};
    return ec;
  }
};

/// What a cursor keeps between its reads.
struct cursor_shared {
  bool finished = false;  ///< DONE seen, or the cursor failed or was closed
};

/// One batch of a cursor's result per exchange: the rows of one ROWS frame go to a fresh
/// Sink, whose memory cap (max_result_bytes) applies to the batch. A PART frame without
/// rows is read past (an empty batch means the result is complete, so it is handed out at
/// DONE only); after a PART frame with rows the connection stays claimed by the cursor.
template <class Sink>
struct cursor_proc {
  using result_type = typename Sink::result_type;
  static constexpr bool interruptible = true;

  std::shared_ptr<cursor_shared> st;
  Sink sink{};

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::rows)) return e;
    auto& rr = c.rows;
    if (auto e = start_rows(c, body)) return e;
    if (!rr.at_row()) {  // no rows: at the end marker, or malformed
      if (auto pe = rr.error()) return malformed_rows(c, pe);
      if (rr.end() == wire::rows_end::part) return {};  // read on
    }
    sink.budget.batch = true;
    error_code e = sink.on_rows(rr, c);
    if (e && is_protocol_error(e)) return malformed_rows(c, e);
    scan_rest(c);
    if (auto pe = rr.error()) return malformed_rows(c, pe);
    done = true;
    if (rr.end() == wire::rows_end::done) {
      st->finished = true;
      if (!e) e = sink.finish(c);
    } else if (e) {
      // The batch cannot be delivered: the rest of the result is interrupted before the
      // connection's next request.
      st->finished = true;
      c.drain_pending = true;
    }
    return e;
  }
  template <class Impl>
  error_code map_error(Impl&, error_code ec, bool) {
    st->finished = true;
    return ec;
  }
  bool holds() const noexcept { return !st->finished; }
  result_type take() { return sink.take(); }
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/session_procs.hpp ----
// ---- begin dqlite/with_diagnostics.hpp ----
// A completion token adapter that turns (error_code, diagnostics) into an exception.
//
// Operations of this library complete with void(error_code, T...). Wrapped in
// with_diagnostics(token), a failed operation delivers a std::exception_ptr to a
// dqlite::error that carries both the code and the diagnostics text (the server's message),
// so throwing forms report the whole story. dqlite::use_awaitable (with_diagnostics of
// asio::use_awaitable) is the default token of every operation:
// `co_await conn.async_execute(...)` throws dqlite::error.


#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite {

/// Token adapter: see the file comment.
template <class Token>
struct with_diagnostics_t {
  Token token;
};

/// Wraps a completion token so failures arrive as a dqlite::error exception (with the
/// diagnostics text) instead of a bare error_code.
template <class Token>
constexpr with_diagnostics_t<std::decay_t<Token>> with_diagnostics(Token&& token) {
  return {std::forward<Token>(token)};
}

/// use_awaitable whose exceptions carry the server's message.
inline constexpr with_diagnostics_t<boost::asio::use_awaitable_t<>> use_awaitable{};

/// The default completion token of every operation.
using default_token_t = with_diagnostics_t<boost::asio::use_awaitable_t<>>;

namespace detail {

/// The diagnostics an initiation exposes (through diagnostics_ptr(), a shared_ptr that
/// keeps them alive until the handler has read them), or none.
template <class Initiation>
std::shared_ptr<const diagnostics> diagnostics_of(const Initiation& init) {
  if constexpr (requires { init.diagnostics_ptr(); })
    return init.diagnostics_ptr();
  else
    return nullptr;
}

template <class Handler>
struct diag_handler {
  Handler handler;
  std::shared_ptr<const diagnostics> diag;

  template <class... A>
  void operator()(error_code ec, A&&... args) {
    std::exception_ptr ep;
    if (ec) ep = make_error_ptr(ec, diag.get());
    std::move(handler)(std::move(ep), std::forward<A>(args)...);
  }
};

template <class Initiation>
struct diag_initiation {
  Initiation init;

  template <class Handler, class... Args>
  void operator()(Handler&& h, Args&&... args) {
    auto d = diagnostics_of(init);
    std::move(init)(diag_handler<std::decay_t<Handler>>{std::forward<Handler>(h), std::move(d)},
                    std::forward<Args>(args)...);
  }
};

}  // namespace detail
}  // namespace dqlite

namespace boost::asio {

template <class Token, class... A>
struct async_result<::dqlite::with_diagnostics_t<Token>, void(::dqlite::error_code, A...)> {
  template <class Initiation, class RawToken, class... Args>
  static auto initiate(Initiation&& init, RawToken&& token, Args&&... args) {
    Token inner = token.token;
    return async_initiate<Token, void(std::exception_ptr, A...)>(
        ::dqlite::detail::diag_initiation<std::decay_t<Initiation>>{std::forward<Initiation>(init)},
        inner, std::forward<Args>(args)...);
  }
};

template <template <class, class> class Associator, class Handler, class Default>
struct associator<Associator, ::dqlite::detail::diag_handler<Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type get(
      const ::dqlite::detail::diag_handler<Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(const ::dqlite::detail::diag_handler<Handler>& h, const Default& d) noexcept
      -> decltype(Associator<Handler, Default>::get(h.handler, d)) {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio
// ---- end dqlite/with_diagnostics.hpp ----

#include <boost/asio/async_result.hpp>

#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

namespace detail {
template <class T>
struct cursor_sink {
  using type = typed_rows_sink<T>;
};
template <>
struct cursor_sink<void> {
  using type = dynamic_rows_sink;
};
}  // namespace detail

/// A query result read batch by batch, as the server sends it (one batch per ROWS frame,
/// about 4 KiB of rows), so that results of any size are processed in bounded memory.
/// Obtained from async_cursor<T>() on a connection or a prepared statement. T is a row
/// type as for async_fetch<T> (void: dynamic rows).
///
/// While a cursor is open it holds its connection: other operations fail with
/// errc::operation_in_progress until the cursor has been read to the end or closed.
/// Closing early (async_close, or destroying the cursor) interrupts the query; the
/// connection remains usable. Cancelling async_next (Asio cancellation slot) interrupts
/// the query as well and completes with errc::interrupted.
template <class Stream, class T = void>
class basic_cursor {
  using impl_type = detail::connection_impl<Stream>;
  using sink_type = typename detail::cursor_sink<T>::type;

 public:
  /// What async_next yields: std::vector of the row type, or dqlite::rows for T = void.
  using batch_type = typename sink_type::result_type;

  basic_cursor(basic_cursor&& o) noexcept
      : c_(o.c_), st_(std::move(o.st_)), first_(std::move(o.first_)),
        has_first_(std::exchange(o.has_first_, false)), id_(std::exchange(o.id_, 0)) {}
  basic_cursor& operator=(basic_cursor&& o) noexcept {
    if (this != &o) {
      abandon();
      c_ = o.c_;
      st_ = std::move(o.st_);
      first_ = std::move(o.first_);
      has_first_ = std::exchange(o.has_first_, false);
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  /// For the library: a cursor that belongs to no connection (what an operation on a
  /// moved-from connection completes with); it is done, and async_next fails with
  /// errc::not_connected.
  explicit basic_cursor(detail::detached_t) noexcept {}
  basic_cursor(const basic_cursor&) = delete;
  basic_cursor& operator=(const basic_cursor&) = delete;
  /// An unfinished cursor interrupts its query before the connection's next request.
  ~basic_cursor() { abandon(); }

  /// True once every batch has been handed out (or the cursor failed or was closed).
  bool done() const noexcept { return !has_first_ && (!st_ || st_->finished); }

  /// The next batch: the rows of the next response frame that has rows (frames without
  /// rows are read past). An empty batch means the result is complete, and comes only
  /// then. A batch whose rows hold more than max_result_bytes fails with
  /// errc::result_too_large (the rest of the result is interrupted; the cursor is done).
  /// Signature: void(error_code, batch_type).
  template <class Token = default_token_t>
  auto async_next(Token&& token = {}) {
    if (has_first_ || !st_ || st_->finished) {
      batch_type out{};
      error_code ec;
      std::string diag;
      if (has_first_) {
        has_first_ = false;
        out = std::move(first_);
        first_ = batch_type{};
      } else if (!st_) {
        ec = make_error_code(errc::not_connected);
        diag = "the cursor is not open (it was moved from, or its query failed)";
      }
      return boost::asio::async_initiate<Token, void(error_code, batch_type)>(
          detail::failed_initiation<impl_type>{c_}, token, ec, std::move(diag), std::move(out));
    }
    return boost::asio::async_initiate<Token, void(error_code, batch_type)>(
        detail::encoded_initiation<impl_type>{c_}, token,
        detail::cursor_proc<sink_type>{st_, {}}, still_held(id_),
        detail::exchange_params{true, c_->opts.request_timeout, id_});
  }

  /// Stops reading: interrupts the query if it is still running and waits until the
  /// connection is usable again. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    has_first_ = false;
    first_ = batch_type{};
    if (!st_ || st_->finished) {
      st_.reset();
      return boost::asio::async_initiate<Token, void(error_code)>(
          detail::failed_initiation<impl_type>{c_}, token, error_code{}, std::string());
    }
    abandon_keep();
    st_.reset();
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{c_}, token, detail::flush_proc{},
        [](impl_type&) { return error_code{}; },
        detail::exchange_params{true, c_->opts.request_timeout, 0});
  }

  /// Blocking async_next: the next batch (empty once the result is complete). Takes an
  /// optional `error_code&, diagnostics&` (else a failure throws dqlite::error).
  template <class... E>
  batch_type next(E&... e) {
    return detail::blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d) -> batch_type {
          if (has_first_) {
            has_first_ = false;
            return std::exchange(first_, batch_type{});
          }
          if (!st_) {
            ec = make_error_code(errc::not_connected);
            d.assign("the cursor is not open (it was moved from, or its query failed)");
            return {};
          }
          if (st_->finished) return {};
          return detail::blocking_exchange(
              *c_, detail::cursor_proc<sink_type>{st_, {}}, still_held(id_),
              detail::exchange_params{true, c_->opts.request_timeout, id_}, ec, d);
        },
        e...);
  }

  /// Blocking async_close. Takes an optional `error_code&, diagnostics&`.
  template <class... E>
  void close(E&... e) {
    detail::blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d) {
          has_first_ = false;
          first_ = batch_type{};
          if (!st_ || st_->finished) {
            st_.reset();
            return;
          }
          abandon_keep();
          st_.reset();
          detail::blocking_exchange(*c_, detail::flush_proc{},
                                    [](impl_type&) { return error_code{}; },
                                    detail::exchange_params{true, c_->opts.request_timeout, 0}, ec, d);
        },
        e...);
  }

  /// For the library: a cursor over connection c (st empty: a cursor whose query failed).
  basic_cursor(std::shared_ptr<impl_type> c, std::shared_ptr<detail::cursor_shared> st,
               std::uint64_t id, batch_type first)
      : c_(std::move(c)), st_(std::move(st)), first_(std::move(first)), has_first_(st_ != nullptr),
        id_(id) {}

 private:
  // Reads on only while the connection still holds this cursor's result: after a close or
  // a reconnect it holds nothing, and a read would wait for bytes nobody owes.
  static auto still_held(std::uint64_t id) {
    return [id](impl_type& ci) -> error_code {
      if (ci.holder == id) return {};
      ci.diag.assign("the cursor's connection was closed or opened again since the cursor was "
                     "opened; its result is gone");
      return make_error_code(errc::not_connected);
    };
  }

  // Hands the rest of the result to the connection's housekeeping.
  void abandon_keep() noexcept {
    if (c_ && st_ && !st_->finished) {
      st_->finished = true;
      if (c_->holder == id_) {
        c_->holder = 0;
        c_->drain_pending = true;
      }
    }
  }
  void abandon() noexcept {
    abandon_keep();
    st_.reset();
  }

  std::shared_ptr<impl_type> c_;
  std::shared_ptr<detail::cursor_shared> st_;
  batch_type first_{};
  bool has_first_ = false;
  std::uint64_t id_ = 0;
};

}  // namespace dqlite
// ---- end dqlite/cursor.hpp ----
// ---- begin dqlite/detail/request_api.hpp ----
// The statement operations shared by connections (SQL text) and prepared statements.


#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>

#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite::detail {

/// Opening a cursor: the request and its first ROWS frame, then the cursor. Params: the
/// statement's parameters, referenced only during the first (synchronous) call.
template <class Impl, class Sink, class Cursor, class Params>
struct open_cursor_op {
  std::shared_ptr<Impl> c;
  std::shared_ptr<cursor_shared> st;
  request_spec spec;
  Params params;  // a tuple of references

  template <class Self>
  void operator()(Self& self) {
    std::apply(
        [&](const auto&... p) {
          request_initiation<Impl>{c}(std::move(self), cursor_proc<Sink>{st, {}}, spec, true,
                                      p...);
        },
        params);
  }
  template <class Self>
  void operator()(Self& self, error_code ec, typename Sink::result_type first) {
    if (ec) st.reset();
    self.complete(ec, Cursor(c, std::move(st), spec.holder, std::move(first)));
  }
};

/// Statement operations on one request target (SQL text or a prepared statement). Every
/// operation takes the statement's parameters followed by an optional completion token.
template <class Stream>
class request_api {
 public:
  using impl_type = connection_impl<Stream>;

  /// ex: the executor of a moved-from connection (c null), where its failures complete.
  request_api(std::shared_ptr<impl_type> c, request_spec spec,
              const typename impl_type::executor_type* ex = nullptr)
      : c_(std::move(c)), spec_(spec), ex_(ex) {}

  /// Runs a statement that returns no rows. Signature: void(error_code, exec_result).
  template <class... Args>
  auto async_execute(Args&&... args) {
    return run<void(error_code, exec_result)>(exec_proc{}, false, std::forward<Args>(args)...);
  }

  /// All rows as dynamic values. Signature: void(error_code, dqlite::rows).
  template <class... Args>
  auto async_fetchall(Args&&... args) {
    return query<dynamic_rows_sink>(std::forward<Args>(args)...);
  }

  /// All rows as std::vector<T> (T = void: dynamic rows).
  template <class T = void, class... Args>
  auto async_fetch(Args&&... args) {
    if constexpr (std::is_void_v<T>)
      return query<dynamic_rows_sink>(std::forward<Args>(args)...);
    else
      return query<typed_rows_sink<T>>(std::forward<Args>(args)...);
  }

  /// All rows, appended to out. Signature: void(error_code, std::size_t rows_appended).
  template <class T, class... Args>
  auto async_fetch_into(std::vector<typename row_mapper<T>::object_type>& out, Args&&... args) {
    using sink = typed_rows_sink<T, false, true>;
    return query_with<sink>(sink(&out), std::forward<Args>(args)...);
  }

  /// The first row, or an empty optional. Signature: void(error_code, std::optional<T>).
  template <class T = row, class... Args>
  auto async_fetchone(Args&&... args) {
    return query<typed_rows_sink<T, true>>(std::forward<Args>(args)...);
  }

  /// The first column of the first row. Signature: void(error_code, T).
  template <class T, class... Args>
  auto async_fetchval(Args&&... args) {
    static_assert(field<T>, "dqlite: async_fetchval<T>: T is not a supported field type "
                            "(see dqlite/field.hpp, or specialise dqlite::field_traits<T>)");
    return query<value_sink<T>>(std::forward<Args>(args)...);
  }

  /// A cursor over the result (see basic_cursor). Signature:
  /// void(error_code, basic_cursor<Stream, T>).
  template <class T = void, class... Args>
  auto async_cursor(Args&&... args) {
    using cursor = basic_cursor<Stream, T>;
    using sink = typename cursor_sink<T>::type;
    return with_token<default_token_t, void(error_code, cursor)>(
        [this]<class Token, class... P>(Token&& token, P&&... params) {
          return boost::asio::async_initiate<Token, void(error_code, cursor)>(
              cursor_initiation<sink, cursor>{c_, moved_ex()}, token, spec_, std::forward<P>(params)...);
        },
        std::forward<Args>(args)...);
  }

  // ---- blocking forms ----
  //
  // The same operations in the calling thread, driven by the same state machines over
  // blocking socket I/O (TCP and unix socket connections). Each takes the statement's
  // parameters, then optionally `error_code&, diagnostics&`: with them a failure is
  // reported there (and the result is empty); without them it throws dqlite::error.

  /// Runs a statement that returns no rows.
  template <class... Args>
  exec_result execute(Args&&... args) {
    return blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d, const auto&... p) {
          return this->blocking_request(exec_proc{}, false, ec, d, p...);
        },
        std::forward<Args>(args)...);
  }

  /// All rows as dynamic values.
  template <class... Args>
  rows fetchall(Args&&... args) {
    return blocking_query<dynamic_rows_sink>({}, std::forward<Args>(args)...);
  }

  /// All rows as std::vector<T> (T = void: dynamic rows).
  template <class T = void, class... Args>
  auto fetch(Args&&... args) {
    if constexpr (std::is_void_v<T>)
      return blocking_query<dynamic_rows_sink>({}, std::forward<Args>(args)...);
    else
      return blocking_query<typed_rows_sink<T>>({}, std::forward<Args>(args)...);
  }

  /// All rows, appended to out; returns how many were appended.
  template <class T, class... Args>
  std::size_t fetch_into(std::vector<typename row_mapper<T>::object_type>& out, Args&&... args) {
    using sink = typed_rows_sink<T, false, true>;
    return blocking_query<sink>(sink(&out), std::forward<Args>(args)...);
  }

  /// The first row, or an empty optional.
  template <class T = row, class... Args>
  auto fetchone(Args&&... args) {
    return blocking_query<typed_rows_sink<T, true>>({}, std::forward<Args>(args)...);
  }

  /// The first column of the first row (errc::no_rows without rows, unless T is an
  /// optional).
  template <class T, class... Args>
  T fetchval(Args&&... args) {
    static_assert(field<T>, "dqlite: fetchval<T>: T is not a supported field type "
                            "(see dqlite/field.hpp, or specialise dqlite::field_traits<T>)");
    return blocking_query<value_sink<T>>({}, std::forward<Args>(args)...);
  }

  /// A cursor over the result, read with its blocking next().
  template <class T = void, class... Args>
  basic_cursor<Stream, T> cursor(Args&&... args) {
    using cursor_type = basic_cursor<Stream, T>;
    using sink = typename cursor_sink<T>::type;
    return blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d, const auto&... p) {
          if (!c_) {
            ec = fail_moved_from(d);
            return cursor_type(detached);
          }
          request_spec spec = spec_;
          spec.holder = ++c_->next_id;
          auto st = std::make_shared<cursor_shared>();
          auto first = blocking_statement(*c_, cursor_proc<sink>{st, {}}, spec, true, ec, d, p...);
          if (ec) st.reset();
          return cursor_type(c_, std::move(st), spec.holder, std::move(first));
        },
        std::forward<Args>(args)...);
  }

  template <class Sink, class... Args>
  auto query(Args&&... args) {
    return query_with<Sink>(Sink{}, std::forward<Args>(args)...);
  }

  template <class Sink, class... Args>
  auto query_with(Sink sink, Args&&... args) {
    using result = typename Sink::result_type;
    return run<void(error_code, result)>(rows_proc<Sink>{std::move(sink)}, true,
                                         std::forward<Args>(args)...);
  }

 protected:
  template <class Proc, class... P>
  auto blocking_request(Proc proc, bool is_query, error_code& ec, dqlite::diagnostics& d,
                        const P&... params) {
    if (!c_) {
      ec = fail_moved_from(d);
      return typename Proc::result_type{};
    }
    return blocking_statement(*c_, std::move(proc), spec_, is_query, ec, d, params...);
  }

  template <class Sink, class... Args>
  auto blocking_query(Sink sink, Args&&... args) {
    return blocking_call(
        [this, &sink](error_code& ec, dqlite::diagnostics& d, const auto&... p) {
          return this->blocking_request(rows_proc<Sink>{std::move(sink)}, true, ec, d, p...);
        },
        std::forward<Args>(args)...);
  }

  template <class Sig, class Proc, class... Args>
  auto run(Proc proc, bool is_query, Args&&... args) {
    return with_token<default_token_t, Sig>(
        [&]<class Token, class... P>(Token&& token, P&&... params) {
          return boost::asio::async_initiate<Token, Sig>(request_initiation<impl_type>{c_, moved_ex()}, token,
                                                         std::move(proc), spec_, is_query,
                                                         std::forward<P>(params)...);
        },
        std::forward<Args>(args)...);
  }

  template <class Sink, class Cursor>
  struct cursor_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<typename impl_type::executor_type> ex{};
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return diagnostics_of_impl(c);
    }

    template <class Handler, class... P>
    void operator()(Handler&& h, request_spec spec, const P&... params) {
      if (!c) return complete_moved_from<void(error_code, Cursor)>(std::forward<Handler>(h), ex);
      spec.holder = ++c->next_id;
      using op = open_cursor_op<impl_type, Sink, Cursor, std::tuple<const P&...>>;
      boost::asio::async_compose<Handler, void(error_code, Cursor)>(
          op{c, std::make_shared<cursor_shared>(), spec, std::tuple<const P&...>(params...)}, h,
          c->stream.get_executor());
    }
  };


 protected:
  std::optional<typename impl_type::executor_type> moved_ex() const {
    if (ex_) return *ex_;
    return std::nullopt;
  }

  std::shared_ptr<impl_type> c_;
  request_spec spec_;
  const typename impl_type::executor_type* ex_ = nullptr;
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/request_api.hpp ----
// ---- begin dqlite/statement.hpp ----
// Prepared statements, and running one statement over many parameter sets.


#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dqlite {

/// A statement prepared on a connection (PREPARE), run any number of times with new
/// parameters: async_execute, async_fetch<T>, async_fetchone<T>, async_fetchval<T>,
/// async_fetch_into<T>, async_fetchall, async_cursor<T> take the parameters followed by an
/// optional completion token, as the connection's operations do after the SQL text.
///
/// The statement belongs to its connection: it runs there, one operation at a time with
/// the connection's other operations, and cannot be used once the connection has closed or
/// reconnected (errc::not_connected). async_close finalizes it on the server; a statement
/// destroyed without async_close is finalized before the connection's next request.
/// Statements are released by the server when the connection closes.
template <class Stream>
class basic_statement : public detail::request_api<Stream> {
  using base = detail::request_api<Stream>;
  using impl_type = detail::connection_impl<Stream>;

 public:
  basic_statement(basic_statement&& o) noexcept
      : base(o.c_, o.spec_), params_(o.params_), open_(std::exchange(o.open_, false)) {
    o.spec_.generation = 0;
  }
  basic_statement& operator=(basic_statement&& o) noexcept {
    if (this != &o) {
      release();
      this->c_ = o.c_;
      this->spec_ = o.spec_;
      params_ = o.params_;
      open_ = std::exchange(o.open_, false);
      o.spec_.generation = 0;
    }
    return *this;
  }
  /// For the library: a statement that belongs to no connection (what an operation on a
  /// moved-from connection completes with); its operations fail with errc::not_connected.
  explicit basic_statement(detail::detached_t) noexcept : base(nullptr, detail::request_spec{}) {}
  basic_statement(const basic_statement&) = delete;
  basic_statement& operator=(const basic_statement&) = delete;
  ~basic_statement() { release(); }

  /// The server's id of the statement.
  std::uint32_t id() const noexcept { return this->spec_.stmt; }
  /// How many parameters the statement takes.
  std::uint64_t param_count() const noexcept { return params_; }
  /// True until closed, and while its connection stays open (no reconnect since).
  bool is_open() const noexcept {
    return open_ && this->c_->state == detail::conn_state::open &&
           this->c_->generation == this->spec_.generation;
  }

  /// Finalizes the statement on the server. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    const bool live = is_open();
    open_ = false;
    // Never send the id again: a server may reuse it, and 1.11.1 crashes on an EXEC of a
    // finalized statement.
    this->spec_.generation = 0;
    if (!live) {  // nothing left on the server
      return boost::asio::async_initiate<Token, void(error_code)>(
          detail::failed_initiation<impl_type>{this->c_}, token, error_code{}, std::string());
    }
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{this->c_}, token, detail::empty_proc{},
        detail::finalize_request(id()),
        detail::exchange_params{true, this->c_->opts.request_timeout, 0});
  }

  /// Blocking async_close; takes an optional `error_code&, diagnostics&` (else throws).
  template <class... E>
  void close(E&... e) {
    detail::blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d) {
          const bool live = is_open();
          open_ = false;
          this->spec_.generation = 0;  // never sent again (see async_close)
          if (!live) return;
          detail::blocking_exchange(*this->c_, detail::empty_proc{}, detail::finalize_request(id()),
                                    detail::exchange_params{true, this->c_->opts.request_timeout, 0},
                                    ec, d);
        },
        e...);
  }

  /// For the library: a statement prepared on connection c (open: PREPARE succeeded;
  /// read_only: it cannot change the database (detail::is_read_only_sql); shape: what
  /// detail::scan_sql found in its text).
  basic_statement(std::shared_ptr<impl_type> c, const wire::stmt_response& r, bool open,
                  bool read_only = false, const detail::sql_shape& shape = {})
      : base(c, detail::request_spec{true, {}, r.id, open ? c->generation : 0, 0, read_only,
                                     shape.returning, shape.tx}),
        params_(r.params), open_(open) {}

 private:
  void release() noexcept {
    if (is_open()) this->c_->finalize_pending.push_back(id());
    open_ = false;
    this->spec_.generation = 0;
  }

  std::uint64_t params_ = 0;
  bool open_ = false;
};

namespace detail {

/// Encodes PREPARE(sql). The text must hold exactly one statement: libdqlite 1.11.1
/// prepares the first and silently drops the rest (1.15 and later fail). For executemany
/// (runs: EXEC), a statement with a RETURNING clause is refused, as execute refuses it.
inline auto prepare_request(std::string_view sql, bool runs = false) {
  return [sql, runs](auto& ci) -> error_code {
    if (auto e = check_database(ci)) return e;
    const sql_shape shape = scan_sql(sql);
    if (shape.statements != 1) {
      ci.diag.assign(shape.statements == 0
                         ? std::string("the SQL text holds no statement")
                         : "the SQL text holds " + std::to_string(shape.statements) +
                               " statements, and a prepared statement holds exactly one (the "
                               "first ends at byte " + std::to_string(shape.first_end) +
                               "); prepare each on its own. Nothing was sent");
      return make_error_code(errc::invalid_argument);
    }
    if (runs && shape.returning) {
      ci.diag.assign("the statement has a RETURNING clause, so it returns rows: executemany "
                     "refuses it because libdqlite aborts on such a statement sent as EXEC "
                     "(1.11.1 on any RETURNING, 1.18.6 when it returns two rows or more); "
                     "prepare it and run it as a query for each set. Nothing was sent");
      return make_error_code(errc::invalid_argument);
    }
    if (auto e = wire::encode_prepare(ci.wbuf, ci.db_id, sql)) {
      ci.diag.assign("the SQL text contains a NUL byte");
      return e;
    }
    return {};
  };
}

/// Calls f(params) with one parameter set of executemany: a std::tuple of parameters, a
/// range of dqlite::value, or a single parameter.
template <class Set, class F>
decltype(auto) with_set(const Set& set, F&& f) {
  using E = std::remove_cvref_t<Set>;
  if constexpr (param_arg<E>) {
    return f(set);
  } else {
    static_assert(std::ranges::input_range<E>,
                  "dqlite: executemany: each element must be a parameter, a std::tuple of "
                  "parameters, or a range of dqlite::value");
    return f(params_from(set));
  }
}

/// PREPARE, then the statement object.
template <class Impl, class Statement>
struct prepare_op {
  std::shared_ptr<Impl> c;
  std::string_view sql;
  sql_shape shape{};
  bool read_only = false;

  template <class Self>
  void operator()(Self& self) {
    shape = scan_sql(sql);  // the text is only read while the op starts
    read_only = is_read_only_sql(sql);
    encoded_initiation<Impl>{c}(std::move(self), prepare_proc{}, prepare_request(sql),
                                exchange_params{true, c->opts.request_timeout, 0});
  }
  template <class Self>
  void operator()(Self& self, error_code ec, wire::stmt_response r) {
    self.complete(ec, Statement(c, r, !ec, read_only, shape));
  }
};

/// executemany: PREPARE once, EXEC per parameter set, FINALIZE. Each element of the range
/// is one parameter set: a std::tuple of parameters, a dqlite::params_from(...) range, or a
/// single parameter.
template <class Impl, class Range>
struct executemany_op {
  std::shared_ptr<Impl> c;
  std::string_view sql;
  const Range* range;
  std::ranges::iterator_t<const Range> it{};
  std::uint32_t stmt = 0;
  std::uint64_t gen = 0;
  std::size_t index = 0;
  exec_result total{};
  error_code failed{};
  tx_effect tx = tx_effect::none;  ///< what the text does to a transaction, per EXEC
  enum class step : std::uint8_t { prepare, exec, finalize } st = step::prepare;

  template <class Self>
  void operator()(Self& self) {
    tx = scan_sql(sql).tx;  // the text is only read while the op starts
    encoded_initiation<Impl>{c}(std::move(self), prepare_proc{}, prepare_request(sql, true),
                                exchange_params{true, c->opts.request_timeout, 0});
  }

  template <class Self>
  void operator()(Self& self, error_code ec, wire::stmt_response r) {  // prepared
    if (ec) return self.complete(ec, total);
    stmt = r.id;
    gen = c->generation;
    st = step::exec;
    it = std::ranges::begin(*range);
    next(self);
  }

  template <class Self>
  void operator()(Self& self, error_code ec, exec_result r) {  // one EXEC done
    if (ec) {
      c->diag.assign("parameter set #" + std::to_string(index) + ": " + c->diag.message());
      if (c->state == conn_state::open && c->generation == gen) c->finalize_pending.push_back(stmt);
      return self.complete(ec, total);
    }
    total.rows_affected += r.rows_affected;
    total.last_insert_id = r.last_insert_id;
    ++it;
    ++index;
    next(self);
  }

  template <class Self>
  void operator()(Self& self, error_code ec) {  // finalized
    self.complete(ec, total);
  }

 private:
  template <class Self>
  void next(Self& self) {
    if (it == std::ranges::end(*range)) {
      st = step::finalize;
      encoded_initiation<Impl>{c}(std::move(self), empty_proc{}, finalize_request(stmt),
                                  exchange_params{true, c->opts.request_timeout, 0});
      return;
    }
    const auto& set = *it;
    request_spec spec{true, {}, stmt, gen, 0, false, false, tx};
    using E = std::remove_cvref_t<decltype(set)>;
    if constexpr (param_arg<E>) {
      request_initiation<Impl>{c}(std::move(self), exec_proc{}, spec, false, set);
    } else {
      static_assert(std::ranges::input_range<E>,
                    "dqlite: executemany: each element must be a parameter, a std::tuple of "
                    "parameters, or a range of dqlite::value");
      request_initiation<Impl>{c}(std::move(self), exec_proc{}, spec, false, params_from(set));
    }
  }
};

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/statement.hpp ----
// ---- begin dqlite/transaction.hpp ----
// Transactions: an object from async_begin, and a scoped helper for coroutines.


#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace dqlite {

/// An open transaction (from async_begin). Statements of the transaction run on the
/// connection as usual; async_commit or async_rollback ends it.
///
/// A transaction destroyed while still open is rolled back before the connection's next
/// request, so a forgotten transaction never keeps the database's write lock.
///
/// async_commit fails with errc::outcome_unknown when the commit may or may not have been
/// applied: leadership was lost while it was being replicated, or the connection failed
/// after the COMMIT was sent. A leadership error inside the transaction (the node is not, or
/// no longer, the leader) closes the connection: the transaction is lost.
template <class Stream>
class basic_transaction {
  using impl_type = detail::connection_impl<Stream>;

 public:
  basic_transaction(basic_transaction&& o) noexcept
      : c_(o.c_), id_(std::exchange(o.id_, 0)), gen_(o.gen_) {}
  basic_transaction& operator=(basic_transaction&& o) noexcept {
    if (this != &o) {
      abandon();
      c_ = o.c_;
      id_ = std::exchange(o.id_, 0);
      gen_ = o.gen_;
    }
    return *this;
  }
  /// For the library: a transaction that belongs to no connection (what an operation on a
  /// moved-from connection completes with); it is not active, and ending it fails with
  /// errc::not_connected.
  explicit basic_transaction(detail::detached_t) noexcept {}
  basic_transaction(const basic_transaction&) = delete;
  basic_transaction& operator=(const basic_transaction&) = delete;
  ~basic_transaction() { abandon(); }

  /// True until committed or rolled back, while its connection stays open.
  bool is_active() const noexcept {
    return id_ != 0 && c_->tx == id_ && c_->generation == gen_ &&
           c_->state == detail::conn_state::open;
  }

  /// Commits. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_commit(Token&& token = {}) {
    return end<detail::commit_proc>("COMMIT", std::forward<Token>(token));
  }

  /// Rolls back. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_rollback(Token&& token = {}) {
    return end<detail::rollback_proc>("ROLLBACK", std::forward<Token>(token));
  }

  /// Blocking async_commit; takes an optional `error_code&, diagnostics&` (else throws).
  template <class... E>
  void commit(E&... e) {
    end_blocking<detail::commit_proc>("COMMIT", e...);
  }

  /// Blocking async_rollback; takes an optional `error_code&, diagnostics&` (else throws).
  template <class... E>
  void rollback(E&... e) {
    end_blocking<detail::rollback_proc>("ROLLBACK", e...);
  }

  /// For the library: transaction `id` of connection c.
  basic_transaction(std::shared_ptr<impl_type> c, std::uint64_t id)
      : c_(std::move(c)), id_(id), gen_(c_->generation) {}

 private:
  // Why the transaction cannot end (it is not active), or nothing.
  error_code not_active(std::string& why) const {
    if (is_active()) return {};
    if (!c_) {
      why = detail::moved_from_diagnostics()->message();
      return make_error_code(errc::not_connected);
    }
    const bool closed = c_->state != detail::conn_state::open;
    why = closed ? "the transaction ended when its connection closed"
                 : "the transaction has already ended (committed, rolled back, or moved from)";
    return make_error_code(closed ? errc::not_connected : errc::invalid_argument);
  }

  // COMMIT or ROLLBACK; once the connection is claimed the object is spent.
  auto end_request(std::string_view sql) const {
    return [sql, id = id_](impl_type& ci) -> error_code {
      if (ci.tx == id) ci.tx = 0;
      return detail::sql_request(sql)(ci);
    };
  }

  template <class Proc, class Token>
  auto end(std::string_view sql, Token&& token) {
    std::string why;
    if (auto ec = not_active(why))
      return boost::asio::async_initiate<Token, void(error_code)>(
          detail::failed_initiation<impl_type>{c_}, token, ec, std::move(why));
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{c_}, token, Proc{}, end_request(sql),
        detail::exchange_params{true, c_->opts.request_timeout, 0, sql == "COMMIT"});
  }

  template <class Proc, class... E>
  void end_blocking(std::string_view sql, E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          std::string why;
          if ((ec = not_active(why))) {
            d.assign(why);
            return;
          }
          detail::blocking_exchange(
              *c_, Proc{}, end_request(sql),
              detail::exchange_params{true, c_->opts.request_timeout, 0, sql == "COMMIT"}, ec, d);
        },
        e...);
  }

  void abandon() noexcept {
    if (is_active()) {
      c_->tx = 0;
      c_->rollback_pending = true;
    }
    id_ = 0;
  }

  std::shared_ptr<impl_type> c_;
  std::uint64_t id_ = 0;
  std::uint64_t gen_ = 0;
};

namespace detail {

/// BEGIN, then the transaction object.
template <class Impl, class Transaction>
struct begin_op {
  std::shared_ptr<Impl> c;
  std::string_view sql;

  template <class Self>
  void operator()(Self& self) {
    encoded_initiation<Impl>{c}(std::move(self), exec_proc{}, sql_request(sql),
                                exchange_params{true, c->opts.request_timeout, 0});
  }
  template <class Self>
  void operator()(Self& self, error_code ec, exec_result) {
    std::uint64_t id = 0;
    if (!ec) c->tx = id = ++c->next_id;
    self.complete(ec, Transaction(c, id));
  }
};

}  // namespace detail

/// Runs `body(conn)` (a function returning boost::asio::awaitable<R>) inside a transaction:
/// commits when it returns, rolls back when it throws (and rethrows). Returns what body
/// returns. Failures throw dqlite::error; a commit whose outcome is unknown throws one with
/// errc::outcome_unknown.
///
///   auto id = co_await dqlite::async_transaction(conn, [&](auto& c) -> asio::awaitable<int64_t> {
///     co_await c.async_execute("UPDATE account SET balance = balance - ? WHERE id = ?", 10, 1);
///     auto r = co_await c.async_execute("INSERT INTO log (what) VALUES ('paid')");
///     co_return r.last_insert_id;
///   });
template <class Connection, class Body>
auto async_transaction(Connection& conn, Body body)
    -> boost::asio::awaitable<typename std::invoke_result_t<Body&, Connection&>::value_type> {
  using result = typename std::invoke_result_t<Body&, Connection&>::value_type;
  auto tx = co_await conn.async_begin(dqlite::use_awaitable);
  std::exception_ptr failure;
  std::optional<std::conditional_t<std::is_void_v<result>, bool, result>> out;
  try {
    if constexpr (std::is_void_v<result>) {
      co_await body(conn);
      out.emplace(true);
    } else {
      out.emplace(co_await body(conn));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    if (tx.is_active())
      co_await tx.async_rollback(boost::asio::as_tuple(boost::asio::use_awaitable));
    std::rethrow_exception(failure);
  }
  co_await tx.async_commit(dqlite::use_awaitable);
  if constexpr (!std::is_void_v<result>) co_return std::move(*out);
}

/// Runs `body(conn)` inside a transaction, in the calling thread (the blocking twin of
/// async_transaction): commits when it returns, rolls back when it throws (and rethrows).
/// Returns what body returns. Failures throw dqlite::error; a commit whose outcome is
/// unknown throws one with errc::outcome_unknown.
///
///   auto id = dqlite::transaction(conn, [](auto& c) {
///     c.execute("UPDATE account SET balance = balance - ? WHERE id = ?", 10, 1);
///     return c.execute("INSERT INTO log (what) VALUES ('paid')").last_insert_id;
///   });
template <class Connection, class Body>
auto transaction(Connection& conn, Body body) -> std::invoke_result_t<Body&, Connection&> {
  using result = std::invoke_result_t<Body&, Connection&>;
  auto tx = conn.begin();
  std::optional<std::conditional_t<std::is_void_v<result>, bool, result>> out;
  try {
    if constexpr (std::is_void_v<result>) {
      body(conn);
      out.emplace(true);
    } else {
      out.emplace(body(conn));
    }
  } catch (...) {
    if (tx.is_active()) {
      error_code ignored;
      dqlite::diagnostics ignored_text;
      tx.rollback(ignored, ignored_text);
    }
    throw;
  }
  tx.commit();
  if constexpr (!std::is_void_v<result>) return std::move(*out);
}

}  // namespace dqlite
// ---- end dqlite/transaction.hpp ----

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite {

namespace detail {
/// The state behind a connection, for the library's own higher layers (cluster, pool,
/// add-ons) and its tests.
struct connection_access {
  template <class Conn>
  static const auto& impl(const Conn& c) noexcept {
    return c.impl_;
  }
};
}  // namespace detail

/// A connection to one dqlite node over any Asio stream (TCP, unix socket, TLS...).
///
/// Operations are asynchronous and accept any completion token; the default token makes
/// `co_await conn.async_x(...)` throw dqlite::error (code + server message) on failure.
/// One operation at a time: a second one started while another runs fails with
/// errc::operation_in_progress without disturbing the first. Not thread-safe.
template <class Stream>
class basic_connection {
  using impl_type = detail::connection_impl<Stream>;

 public:
  using stream_type = Stream;
  using executor_type = typename Stream::executor_type;

  /// Constructs the stream from args (e.g. an executor), with default options.
  template <class Arg0, class... Args>
    requires(std::is_constructible_v<Stream, Arg0, Args...> &&
             !std::is_same_v<std::remove_cvref_t<Arg0>, basic_connection>)
  explicit basic_connection(Arg0&& arg0, Args&&... args)
      : impl_(std::make_shared<impl_type>(connection_options{}, std::forward<Arg0>(arg0),
                                          std::forward<Args>(args)...)) {}

  /// Constructs the stream from args, with the given options.
  template <class... Args>
    requires std::is_constructible_v<Stream, Args...>
  basic_connection(const connection_options& opts, Args&&... args);

  /// With an io_context of its own, for blocking use: dqlite::connect needs no executor.
  /// Its asynchronous operations run when that context runs (get_executor().context()).
  explicit basic_connection(own_io_context_t, const connection_options& opts = {});

  /// A moved-from connection keeps only its executor: its operations fail with
  /// errc::not_connected (diagnostics say it was moved from), is_open() is false. It may be
  /// assigned a connection again.
  basic_connection(basic_connection&& other) noexcept;
  basic_connection& operator=(basic_connection&& other) noexcept;
  basic_connection(const basic_connection&) = delete;
  basic_connection& operator=(const basic_connection&) = delete;
  /// Closes the transport; a running operation completes with an error.
  ~basic_connection();

  executor_type get_executor() { return impl_ ? impl_->stream.get_executor() : *moved_ex_; }
  /// The stream. Precondition: the connection was not moved from.
  Stream& stream() noexcept { return impl_->stream; }
  const Stream& stream() const noexcept { return impl_->stream; }
  /// The options (default ones for a moved-from connection).
  const connection_options& options() const noexcept {
    static const connection_options none{};
    return impl_ ? impl_->opts : none;
  }

  /// True when the database is open and no error has broken the connection.
  bool is_open() const noexcept { return impl_ && impl_->state == detail::conn_state::open; }
  /// True while an operation runs (see errc::operation_in_progress; not to be confused
  /// with is_busy(ec), the server's SQLITE_BUSY).
  bool operation_in_progress() const noexcept { return impl_ && impl_->busy; }
  /// True when a transaction may be open on the server: a transaction object is active,
  /// or SQL text run on this connection opened one (BEGIN, SAVEPOINT, also inside a longer
  /// text) and no COMMIT, END or ROLLBACK has closed it since, or a dropped transaction is
  /// still to be rolled back. Conservative: a text that touched the transaction state and
  /// failed, or a RELEASE, counts as "may be open". async_reset sends a ROLLBACK only then.
  bool in_transaction() const noexcept { return impl_ && impl_->in_transaction(); }
  /// The text that goes with the last failed operation (server message or client detail).
  /// A moved-from connection has a fixed text that says so.
  const dqlite::diagnostics& diagnostics() const noexcept {
    return impl_ ? impl_->diag : *detail::moved_from_diagnostics();
  }
  /// The error that closed the connection, or that made its last connect, handshake or
  /// OPEN fail: errc::cancelled when close() ended a running operation. Success while it
  /// is open, before its first connect, and after a close() that ended nothing and that no
  /// error came before; errc::not_connected for a moved-from connection. A new connect or
  /// handshake clears it.
  error_code broken_by() const noexcept {
    return impl_ ? impl_->broken_by : make_error_code(errc::not_connected);
  }

  // ---- opening ----

  /// Resolves address ("host:port" or "[ipv6]:port"), connects, performs the TLS handshake
  /// (TLS streams, see dqlite/tls.hpp), then the dqlite handshake, and opens
  /// options().database, all within options().connect_timeout. For streams over TCP.
  /// Signature: void(error_code).
  template <class Token = default_token_t>
    requires detail::connect_steps<Stream>::is_tcp
  auto async_connect(std::string_view address, Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        connect_initiation{impl_, moved_ex_}, token, std::string(address), std::nullopt);
  }

  /// Connects to an endpoint of the stream's socket type (a unix socket path, a TCP
  /// endpoint), then as above. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_connect(const typename detail::connect_steps<Stream>::endpoint_type& endpoint,
                     Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        connect_initiation{impl_, moved_ex_}, token, detail::describe_endpoint(endpoint),
        std::optional(endpoint));
  }

  /// Performs the dqlite handshake and opens options().database over an already connected
  /// stream (for TLS or unix sockets). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_handshake(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(handshake_initiation{impl_, moved_ex_},
                                                                token);
  }

  // ---- statements ----
  //
  // Each takes the SQL text, its parameters (a variadic list, std::tuples of parameters, or
  // dqlite::params_from(range of dqlite::value)) and an optional completion token, last.
  // The SQL text and the parameters are read when the operation starts.

  /// Runs SQL that returns no rows (several statements separated by ';' are allowed; the
  /// result is the last one's). Signature: void(error_code, exec_result).
  template <class... Args>
  auto async_execute(std::string_view sql, Args&&... args) {
    return api(sql).async_execute(std::forward<Args>(args)...);
  }

  /// Runs a query and returns all its rows as dynamic values.
  /// Signature: void(error_code, dqlite::rows).
  template <class... Args>
  auto async_fetchall(std::string_view sql, Args&&... args) {
    return api(sql).async_fetchall(std::forward<Args>(args)...);
  }

  /// All rows. async_fetch<T>: a std::vector<T> of the user's row type T (an aggregate
  /// mapped by column name, dqlite::by_position<T>, a std::tuple, a single field type, or
  /// dqlite::row; see mapping.hpp). async_fetch without T: dynamic rows, as async_fetchall.
  /// Signature: void(error_code, std::vector<T>) (or dqlite::rows).
  template <class T = void, class... Args>
  auto async_fetch(std::string_view sql, Args&&... args) {
    return api(sql).template async_fetch<T>(std::forward<Args>(args)...);
  }

  /// Appends all rows, mapped into T as async_fetch<T> does, to a vector the caller owns
  /// (and may reserve and reuse: no allocation beyond the values themselves). The vector
  /// must stay alive until completion; rows read before an error stay in it.
  /// Signature: void(error_code, std::size_t rows_appended).
  template <class T, class... Args>
  auto async_fetch_into(std::vector<typename detail::row_mapper<T>::object_type>& out,
                        std::string_view sql, Args&&... args) {
    return api(sql).template async_fetch_into<T>(out, std::forward<Args>(args)...);
  }

  /// The first row as T (default: dqlite::row), or an empty optional when there is none.
  /// The remaining rows are read and dropped. Signature: void(error_code, std::optional<T>).
  template <class T = row, class... Args>
  auto async_fetchone(std::string_view sql, Args&&... args) {
    return api(sql).template async_fetchone<T>(std::forward<Args>(args)...);
  }

  /// The first column of the first row, as T. With no rows: errc::no_rows, or an empty
  /// std::optional when T is one. Signature: void(error_code, T).
  template <class T, class... Args>
  auto async_fetchval(std::string_view sql, Args&&... args) {
    return api(sql).template async_fetchval<T>(std::forward<Args>(args)...);
  }

  /// Runs a query and reads its result batch by batch through a cursor, in bounded memory
  /// (see basic_cursor). T: the row type as for async_fetch<T> (void: dynamic rows).
  /// Signature: void(error_code, basic_cursor<Stream, T>).
  template <class T = void, class... Args>
  auto async_cursor(std::string_view sql, Args&&... args) {
    return api(sql).template async_cursor<T>(std::forward<Args>(args)...);
  }

  /// Prepares a statement (see basic_statement). Signature:
  /// void(error_code, basic_statement<Stream>).
  template <class Token = default_token_t>
  auto async_prepare(std::string_view sql, Token&& token = {}) {
    using statement = basic_statement<Stream>;
    return async_with_diag<void(error_code, statement)>(
        detail::prepare_op<impl_type, statement>{impl_, sql}, token);
  }

  /// Runs one statement once per element of `sets` (one PREPARE, then one EXEC per set,
  /// then FINALIZE). An element is a std::tuple of parameters, a range of dqlite::value,
  /// or a single parameter. The range must stay alive until completion. The result adds up
  /// rows_affected and has the last set's last_insert_id. On failure the diagnostics name
  /// the failing set (counted from 0); sets before it have been applied (wrap the call in
  /// a transaction for all or nothing). Signature: void(error_code, exec_result).
  template <std::ranges::input_range Range, class Token = default_token_t>
  auto async_executemany(std::string_view sql, const Range& sets, Token&& token = {}) {
    return async_with_diag<void(error_code, exec_result)>(
        detail::executemany_op<impl_type, Range>{impl_, sql, &sets}, token);
  }

  // ---- transactions ----

  /// Starts a transaction (BEGIN). Signature: void(error_code, basic_transaction<Stream>).
  /// See also dqlite::async_transaction for a scoped form.
  template <class Token = default_token_t>
  auto async_begin(Token&& token = {}) {
    using transaction = basic_transaction<Stream>;
    return async_with_diag<void(error_code, transaction)>(
        detail::begin_op<impl_type, transaction>{impl_, "BEGIN"}, token);
  }

  /// Makes the connection as good as new for its next user: interrupts the rest of an
  /// abandoned cursor's result, finalizes statements dropped without async_close, and
  /// rolls back any open transaction (also one started with a plain "BEGIN"; see
  /// in_transaction()). Sends nothing when there is nothing to undo.
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_reset(Token&& token = {}) {
    mark_for_reset();
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{impl_, moved_ex_}, token, detail::flush_proc{},
        [](impl_type&) { return error_code{}; }, request_params());
  }

  // ---- blocking forms ----
  //
  // Each operation above has a blocking twin without the async_ prefix, for TCP and unix
  // socket connections: it runs the same state machines in the calling thread over
  // blocking socket I/O (every wait is bounded by the same timeouts), without any
  // io_context. The arguments are those of the asynchronous form without the completion
  // token, then optionally `error_code& ec, diagnostics& diag`: with them a failure is
  // reported there and the result is empty; without them it throws dqlite::error (code +
  // server text). As with the asynchronous forms, one operation at a time.
  //
  //   dqlite::connection conn = dqlite::connect("127.0.0.1:9001", {.database = "app"});
  //   conn.execute("INSERT INTO item (name) VALUES (?)", "apple");
  //   auto n = conn.fetchval<std::int64_t>("SELECT count(*) FROM item");

  /// Blocking async_connect (resolving "host:port"; TCP connections).
  template <class... E>
    requires detail::connect_steps<Stream>::is_tcp
  void connect(std::string_view address, E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) { blocking_connect(address, nullptr, ec, d); },
        e...);
  }

  /// Blocking async_connect to an endpoint of the stream's socket type.
  template <class... E>
  void connect(const typename detail::connect_steps<Stream>::endpoint_type& endpoint, E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          blocking_connect(detail::describe_endpoint(endpoint), &endpoint, ec, d);
        },
        e...);
  }

  /// Blocking async_execute.
  template <class... Args>
  exec_result execute(std::string_view sql, Args&&... args) {
    return api(sql).execute(std::forward<Args>(args)...);
  }
  /// Blocking async_fetchall.
  template <class... Args>
  rows fetchall(std::string_view sql, Args&&... args) {
    return api(sql).fetchall(std::forward<Args>(args)...);
  }
  /// Blocking async_fetch<T>.
  template <class T = void, class... Args>
  auto fetch(std::string_view sql, Args&&... args) {
    return api(sql).template fetch<T>(std::forward<Args>(args)...);
  }
  /// Blocking async_fetch_into<T>: returns how many rows were appended.
  template <class T, class... Args>
  std::size_t fetch_into(std::vector<typename detail::row_mapper<T>::object_type>& out,
                         std::string_view sql, Args&&... args) {
    return api(sql).template fetch_into<T>(out, std::forward<Args>(args)...);
  }
  /// Blocking async_fetchone<T>.
  template <class T = row, class... Args>
  auto fetchone(std::string_view sql, Args&&... args) {
    return api(sql).template fetchone<T>(std::forward<Args>(args)...);
  }
  /// Blocking async_fetchval<T>.
  template <class T, class... Args>
  T fetchval(std::string_view sql, Args&&... args) {
    return api(sql).template fetchval<T>(std::forward<Args>(args)...);
  }
  /// Blocking async_cursor<T>: read it with the cursor's blocking next().
  template <class T = void, class... Args>
  basic_cursor<Stream, T> cursor(std::string_view sql, Args&&... args) {
    return api(sql).template cursor<T>(std::forward<Args>(args)...);
  }

  /// Blocking async_prepare.
  template <class... E>
  basic_statement<Stream> prepare(std::string_view sql, E&... e) {
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return basic_statement<Stream>(detail::detached);
          }
          auto r = detail::blocking_exchange(*impl_, detail::prepare_proc{},
                                             detail::prepare_request(sql), request_params(), ec, d);
          return basic_statement<Stream>(impl_, r, !ec, detail::is_read_only_sql(sql),
                                         detail::scan_sql(sql));
        },
        e...);
  }

  /// Blocking async_executemany.
  template <std::ranges::input_range Range, class... E>
  exec_result executemany(std::string_view sql, const Range& sets, E&... e) {
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          exec_result total{};
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return total;
          }
          auto r = detail::blocking_exchange(*impl_, detail::prepare_proc{},
                                             detail::prepare_request(sql, true), request_params(),
                                             ec, d);
          if (ec) return total;
          const std::uint64_t gen = impl_->generation;
          detail::request_spec spec{true, {}, r.id, gen, 0, false, false,
                                    detail::scan_sql(sql).tx};
          std::size_t index = 0;
          for (const auto& set : sets) {
            auto one = detail::with_set(set, [&](const auto& p) {
              return detail::blocking_statement(*impl_, detail::exec_proc{}, spec, false, ec, d, p);
            });
            if (ec) {
              d.assign("parameter set #" + std::to_string(index) + ": " + d.message());
              if (impl_->state == detail::conn_state::open && impl_->generation == gen)
                impl_->finalize_pending.push_back(r.id);
              return total;
            }
            total.rows_affected += one.rows_affected;
            total.last_insert_id = one.last_insert_id;
            ++index;
          }
          detail::blocking_exchange(*impl_, detail::empty_proc{}, detail::finalize_request(r.id),
                                    request_params(), ec, d);
          return total;
        },
        e...);
  }

  /// Blocking async_begin.
  template <class... E>
  basic_transaction<Stream> begin(E&... e) {
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return basic_transaction<Stream>(detail::detached);
          }
          detail::blocking_exchange(*impl_, detail::exec_proc{}, detail::sql_request("BEGIN"),
                                    request_params(), ec, d);
          std::uint64_t id = 0;
          if (!ec) impl_->tx = id = ++impl_->next_id;
          return basic_transaction<Stream>(impl_, id);
        },
        e...);
  }

  /// Blocking async_reset.
  template <class... E>
  void reset(E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return;
          }
          mark_for_reset();
          detail::blocking_exchange(*impl_, detail::flush_proc{},
                                    [](impl_type&) { return error_code{}; }, request_params(), ec,
                                    d);
        },
        e...);
  }

  // ---- cluster administration ----
  //
  // These requests need no database: a connection made with an empty
  // connection_options::database (whose handshake opens none) can send them. ADD, ASSIGN,
  // REMOVE and TRANSFER must reach the leader; other nodes answer "not leader"
  // (is_not_leader). basic_cluster (cluster.hpp) finds the leader and retries.

  /// Asks the node which node is the leader. Signature: void(error_code, node_info); the
  /// node_info has id 0 and an empty address when the node knows no leader (non-voters
  /// always answer so).
  template <class Token = default_token_t>
  auto async_leader(Token&& token = {}) {
    return admin_request(detail::leader_proc{}, detail::leader_request(), token);
  }

  /// The members of the cluster as this node knows them (the leader's view is the
  /// authoritative one). Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_cluster(Token&& token = {}) {
    return admin_request(detail::servers_proc{}, detail::cluster_request(), token);
  }

  /// Adds node `id` advertised at `address` ("host:port", or "@name" / "/path" for a node
  /// on a unix socket) to the cluster as a spare; make
  /// it a voter or stand-by with async_assign. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_add(std::uint64_t id, std::string_view address, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::add_request(id, address), token, true);
  }

  /// Gives node `id` a new role. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_assign(std::uint64_t id, node_role role, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::assign_request(id, role), token, true);
  }

  /// Removes node `id` from the cluster. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_remove(std::uint64_t id, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::remove_request(id), token, true);
  }

  /// Hands leadership over to voter `id` (0: a voter chosen by raft). Leader only; this
  /// connection's node is a follower afterwards. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_transfer(std::uint64_t id, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::transfer_request(id), token, true);
  }

  /// This node's failure domain and weight. Signature: void(error_code, node_metadata).
  template <class Token = default_token_t>
  auto async_describe(Token&& token = {}) {
    return admin_request(detail::metadata_proc{}, detail::describe_request(), token);
  }

  /// Sets this node's weight (raft prefers nodes of low weight when it assigns roles).
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_weight(std::uint64_t weight, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::weight_request(weight), token, true);
  }

  /// A copy of database `name`: its file and write-ahead log as the node has them.
  /// Signature: void(error_code, std::vector<dump_file>).
  template <class Token = default_token_t>
  auto async_dump(std::string_view name, Token&& token = {}) {
    return admin_request(detail::files_proc{}, detail::dump_request(name), token);
  }

  /// Opens database `name` on a connection made without one (empty
  /// connection_options::database). A connection opens one database at most; on failure
  /// the connection is closed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_open_database(std::string_view name, Token&& token = {}) {
    return admin_request(detail::open_proc{}, detail::open_request(name), token);
  }

  // Blocking forms of the administration requests: the same requests in the calling
  // thread; each takes an optional `error_code&, diagnostics&` last (without them a
  // failure throws dqlite::error).

  /// Blocking async_leader.
  template <class... E>
  node_info leader(E&... e) {
    return admin_blocking(detail::leader_proc{}, detail::leader_request(), false, e...);
  }
  /// Blocking async_cluster.
  template <class... E>
  std::vector<node_info> cluster(E&... e) {
    return admin_blocking(detail::servers_proc{}, detail::cluster_request(), false, e...);
  }
  /// Blocking async_add.
  template <class... E>
  void add(std::uint64_t id, std::string_view address, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::add_request(id, address), true, e...);
  }
  /// Blocking async_assign.
  template <class... E>
  void assign(std::uint64_t id, node_role role, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::assign_request(id, role), true, e...);
  }
  /// Blocking async_remove.
  template <class... E>
  void remove(std::uint64_t id, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::remove_request(id), true, e...);
  }
  /// Blocking async_transfer.
  template <class... E>
  void transfer(std::uint64_t id, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::transfer_request(id), true, e...);
  }
  /// Blocking async_describe.
  template <class... E>
  node_metadata describe(E&... e) {
    return admin_blocking(detail::metadata_proc{}, detail::describe_request(), false, e...);
  }
  /// Blocking async_weight.
  template <class... E>
  void weight(std::uint64_t weight, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::weight_request(weight), true, e...);
  }
  /// Blocking async_dump.
  template <class... E>
  std::vector<dump_file> dump(std::string_view name, E&... e) {
    return admin_blocking(detail::files_proc{}, detail::dump_request(name), false, e...);
  }
  /// Blocking async_open_database.
  template <class... E>
  void open_database(std::string_view name, E&... e) {
    admin_blocking(detail::open_proc{}, detail::open_request(name), false, e...);
  }

  /// True when the connection is open and has a database open (false for a connection
  /// made for cluster administration only).
  bool has_database() const noexcept { return is_open() && !impl_->database.empty(); }

 private:
  struct admin_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler, class Proc, class Encode>
    void operator()(Handler&& h, Proc proc, Encode encode, bool may_write) {
      if (!c)
        return detail::complete_moved_from<detail::completion_sig_t<typename Proc::result_type>>(
            std::forward<Handler>(h), ex);
      detail::start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), true,
                             c->opts.request_timeout, may_write);
    }
  };

  detail::exchange_params request_params() const {
    return detail::exchange_params{true, options().request_timeout, 0};
  }

  // A transaction that may be open is rolled back by the next request (async_reset, reset).
  void mark_for_reset() {
    if (impl_ && impl_->state == detail::conn_state::open && !impl_->busy && impl_->holder == 0 &&
        impl_->in_transaction()) {
      impl_->tx = 0;
      impl_->rollback_pending = true;
    }
  }

  void blocking_connect(std::string_view address,
                        const typename detail::connect_steps<Stream>::endpoint_type* endpoint,
                        error_code& ec, dqlite::diagnostics& d) {
    if (!impl_) {
      ec = detail::fail_moved_from(d);
      return;
    }
    ec = detail::run_blocking_connect(*impl_, address, endpoint);
    d = ec ? impl_->diag : dqlite::diagnostics{};
  }

  template <class Proc, class Encode, class... E>
  auto admin_blocking(Proc proc, Encode encode, bool may_write, E&... e) {
    static_assert(detail::has_error_tail<E&...>() || sizeof...(E) == 0,
                  "dqlite: the last arguments of a blocking call are (error_code&, diagnostics&)");
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            if constexpr (std::is_void_v<typename Proc::result_type>)
              return;
            else
              return typename Proc::result_type{};
          }
          return detail::blocking_exchange(
              *impl_, std::move(proc), std::move(encode),
              detail::exchange_params{true, impl_->opts.request_timeout, 0, may_write}, ec, d);
        },
        e...);
  }

  // may_write: the request changes the cluster (its outcome is unknown once it is sent and
  // its answer is lost).
  template <class Proc, class Encode, class Token>
  auto admin_request(Proc proc, Encode encode, Token& token, bool may_write = false) {
    using sig = detail::completion_sig_t<typename Proc::result_type>;
    return boost::asio::async_initiate<Token, sig>(admin_initiation{impl_, moved_ex_}, token,
                                                   std::move(proc), std::move(encode), may_write);
  }

 public:

  // ---- closing ----

  /// Closes the connection. A running operation completes with an error.
  void close() noexcept;

  /// Closes the connection; completes once closed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(close_initiation{impl_, moved_ex_}, token);
  }

  /// Runs a query whose rows go to a Sink (see detail/procs.hpp). For extensions.
  template <class Sink, class... Args>
  auto query(std::string_view sql, Args&&... args) {
    return api(sql).template query<Sink>(std::forward<Args>(args)...);
  }

  /// Same, with a sink object given by the caller.
  template <class Sink, class... Args>
  auto query_with(Sink sink, std::string_view sql, Args&&... args) {
    return api(sql).template query_with<Sink>(std::move(sink), std::forward<Args>(args)...);
  }


 private:
  void shut() noexcept;

  // Takes other's state; other keeps the executor, where its operations fail.
  void take(basic_connection& other) noexcept;

  detail::request_api<Stream> api(std::string_view sql) const {
    return {impl_, detail::request_spec{false, sql, 0, 0, 0}, moved_ex_ ? &*moved_ex_ : nullptr};
  }

  // A composed operation whose failures carry the connection's diagnostics.
  template <class Sig, class Op, class Token>
  auto async_with_diag(Op op, Token& token) {
    return boost::asio::async_initiate<Token, Sig>(
        detail::composed_initiation<impl_type, Op, Sig>{impl_, std::move(op), moved_ex_}, token);
  }

  struct handshake_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler>
    void operator()(Handler&& h) {
      if (!c) return detail::complete_moved_from<void(error_code)>(std::forward<Handler>(h), ex);
      detail::start_exchange(c, detail::handshake_proc{}, std::forward<Handler>(h),
                             [](impl_type& ci) {
                               ci.broken_by = {};  // a new opening, as a connect's start
                               return detail::encode_handshake(ci);
                             },
                             false,
                             c->opts.connect_timeout);
    }
  };

  struct close_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler>
    void operator()(Handler&& h) {
      if (!c) return detail::complete_moved_from<void(error_code)>(std::forward<Handler>(h), ex);
      c->close_transport();
      detail::failed_initiation<impl_type>{c}(std::forward<Handler>(h), error_code{},
                                              std::string());
    }
  };

  struct connect_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler, class Endpoint>
    void operator()(Handler&& h, std::string address, Endpoint endpoint) {
      if (!c) {
        using handler_type = std::decay_t<Handler>;
        if constexpr (detail::erasable_with_executor<handler_type, executor_type>) {
          // Through a target, as every other completion of such a handler, on the
          // handler's own executor (not the connection's, ex).
          const executor_type own = boost::asio::get_associated_executor(h);
          auto* t = detail::exchange_target<executor_type, detail::no_machine,
                                            handler_type>::create(std::forward<Handler>(h), own);
          return detail::post_completion<executor_type>(t, make_error_code(errc::not_connected));
        } else {
          return detail::complete_moved_from<void(error_code)>(std::forward<Handler>(h), ex);
        }
      }
      std::optional<typename detail::connect_steps<Stream>::endpoint_type> ep;
      if constexpr (!std::is_same_v<Endpoint, std::nullopt_t>) ep = std::move(endpoint);
      detail::start_connect(c, std::move(address), std::move(ep), std::forward<Handler>(h));
    }
  };

  friend struct detail::connection_access;
  std::shared_ptr<impl_type> impl_;
  /// Once moved from: what keeps moved_ex_'s io_context alive (a blocking cluster's or
  /// pool's state; declared first, so destroyed after moved_ex_).
  std::shared_ptr<void> moved_keep_;
  std::optional<executor_type> moved_ex_;  ///< set once moved from
};

/// A connection over TCP.
using connection = basic_connection<boost::asio::ip::tcp::socket>;
/// A connection over a unix socket (see async_connect_unix).
using unix_connection = basic_connection<boost::asio::local::stream_protocol::socket>;

namespace detail {

/// The handler of the connection's own async_connect inside a free async_connect:
/// completes the caller's handler with the new connection. Its executor, allocator and
/// cancellation slot are the caller's handler's (see the associator below).
template <class Conn, class Handler>
struct connected_handler {
  Handler handler;
  std::shared_ptr<Conn> holder;  ///< the new connection, until it is handed over

  void operator()(error_code ec) { std::move(handler)(ec, std::move(*holder)); }
};

template <class Conn>
struct free_connect_initiation {
  std::shared_ptr<Conn> holder;  // keeps the connection until the handler takes it
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
    const auto& c = connection_access::impl(*holder);
    return {c, &c->diag};
  }

  template <class Handler, class Target>
  void operator()(Handler&& h, Target target) {
    auto& c = *holder;
    c.async_connect(target, connected_handler<Conn, std::decay_t<Handler>>{
                                std::forward<Handler>(h), std::move(holder)});
  }
};

/// Connects a new connection (made by make()) to target.
template <class Conn, class Token, class Target>
auto connect_new(std::shared_ptr<Conn> holder, Target target, Token& token) {
  return boost::asio::async_initiate<Token, void(error_code, Conn)>(
      free_connect_initiation<Conn>{std::move(holder)}, token, std::move(target));
}

}  // namespace detail

/// Connects to the node at address ("host:port" or "[ipv6]:port") and opens opts.database,
/// in the calling thread (blocking), within opts.connect_timeout. The connection owns an
/// io_context of its own, so no executor is needed; use its blocking operations. Throws
/// dqlite::error; the overload with `error_code&, diagnostics&` reports failures there.
DQLITE_DECL connection connect(std::string_view address, const connection_options& opts = {});
DQLITE_DECL connection connect(std::string_view address, const connection_options& opts,
                               error_code& ec, dqlite::diagnostics& diag);

/// connect over a unix socket (path, or "@name" for an abstract socket).
DQLITE_DECL unix_connection connect_unix(std::string_view path,
                                         const connection_options& opts = {});
DQLITE_DECL unix_connection connect_unix(std::string_view path, const connection_options& opts,
                                         error_code& ec, dqlite::diagnostics& diag);

// Members of basic_connection defined here, outside the class: not inline, so that with
// DQLITE_CLIENT_SEPARATE_COMPILATION the explicit instantiation declarations below keep
// them out of the user's units (a member defined in the class is inline, and GCC compiles
// inline members of such a class in every unit that calls them, to inline them).

template <class Stream>
basic_connection<Stream>::basic_connection(own_io_context_t, const connection_options& opts)
    : impl_(std::make_shared<impl_type>(own_io_context, opts)) {}

template <class Stream>
basic_connection<Stream>::basic_connection(basic_connection&& other) noexcept {
  take(other);
}

template <class Stream>
basic_connection<Stream>& basic_connection<Stream>::operator=(basic_connection&& other) noexcept {
  if (this != &other) {
    shut();
    take(other);
  }
  return *this;
}

template <class Stream>
basic_connection<Stream>::~basic_connection() {
  shut();
}

template <class Stream>
void basic_connection<Stream>::close() noexcept {
  if (impl_) impl_->close_transport();
}

template <class Stream>
void basic_connection<Stream>::shut() noexcept {
  if (!impl_) return;
  impl_->close_transport();
  // A connection with an io_context of its own: the operations it was running hold the
  // connection's state, which holds that io_context; let them complete (with an error)
  // so that nothing is left behind.
  if (impl_->io) {
    try {
      impl_->io->restart();
      impl_->io->poll();
    } catch (...) {
    }
  }
}

template <class Stream>
void basic_connection<Stream>::take(basic_connection& other) noexcept {
  impl_ = std::move(other.impl_);
  if (impl_) {
    moved_ex_.reset();
    moved_keep_.reset();
    other.moved_ex_.emplace(impl_->stream.get_executor());
    other.moved_keep_ = impl_->keep_alive;  // the io_context behind that executor
  } else {
    moved_ex_ = other.moved_ex_;
    moved_keep_ = other.moved_keep_;
  }
}

template <class Stream>
template <class... Args>
  requires std::is_constructible_v<Stream, Args...>
basic_connection<Stream>::basic_connection(const connection_options& opts, Args&&... args)
    : impl_(std::make_shared<impl_type>(opts, std::forward<Args>(args)...)) {}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>: the members of the TCP and
// unix socket connections defined outside the class above, and their construction from
// options and a `const boost::asio::any_io_executor&` (the form async_connect and
// async_connect_unix use, whatever executor they are given: see make_connection).
extern template class basic_connection<boost::asio::ip::tcp::socket>;
extern template class basic_connection<boost::asio::local::stream_protocol::socket>;
extern template basic_connection<boost::asio::ip::tcp::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);
extern template basic_connection<boost::asio::local::stream_protocol::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);
#endif

namespace detail {

/// A new connection of type Conn over the executor ex, converted to the connection's
/// executor_type first, so that every call constructs the connection in the one form
/// <dqlite/src.hpp> compiles (separate compilation).
template <class Conn, class Executor>
std::shared_ptr<Conn> make_connection(const connection_options& opts, const Executor& ex) {
  const typename Conn::executor_type& converted = ex;
  return std::make_shared<Conn>(opts, converted);
}

}  // namespace detail

/// Connects to the node at address ("host:port" or "[ipv6]:port") and opens
/// opts.database. Signature: void(error_code, connection).
template <class Executor, class Token = default_token_t>
auto async_connect(const Executor& ex, std::string_view address,
                   const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(detail::make_connection<connection>(opts, ex), std::string(address),
                             token);
}

/// Connects over a unix socket and opens opts.database. path: a file system path, or
/// "@name" for an abstract socket (Linux). Signature: void(error_code, unix_connection).
template <class Executor, class Token = default_token_t>
auto async_connect_unix(const Executor& ex, std::string_view path,
                        const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(detail::make_connection<unix_connection>(opts, ex),
                             detail::unix_endpoint(path), token);
}

}  // namespace dqlite

namespace boost::asio {

/// A free async_connect's inner handler is associated with what the caller's handler is.
template <template <class, class> class Associator, class Conn, class Handler, class Default>
struct associator<Associator, ::dqlite::detail::connected_handler<Conn, Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type get(
      const ::dqlite::detail::connected_handler<Conn, Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(const ::dqlite::detail::connected_handler<Conn, Handler>& h,
                  const Default& d) noexcept -> decltype(Associator<Handler, Default>::get(h.handler, d)) {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/connection.ipp ----
// Definitions of connection.hpp (see detail/config.hpp).


namespace dqlite {

DQLITE_DECL connection connect(std::string_view address, const connection_options& opts) {
  connection c(own_io_context, opts);
  c.connect(address);
  return c;
}

DQLITE_DECL connection connect(std::string_view address, const connection_options& opts,
                               error_code& ec, dqlite::diagnostics& diag) {
  connection c(own_io_context, opts);
  c.connect(address, ec, diag);
  return c;
}

DQLITE_DECL unix_connection connect_unix(std::string_view path, const connection_options& opts) {
  unix_connection c(own_io_context, opts);
  c.connect(detail::unix_endpoint(path));
  return c;
}

DQLITE_DECL unix_connection connect_unix(std::string_view path, const connection_options& opts,
                                         error_code& ec, dqlite::diagnostics& diag) {
  unix_connection c(own_io_context, opts);
  c.connect(detail::unix_endpoint(path), ec, diag);
  return c;
}

}  // namespace dqlite
// ---- end dqlite/impl/connection.ipp ----
#endif
// ---- end dqlite/connection.hpp ----
// ---- begin dqlite/node_store.hpp ----
// Node stores: where a cluster client keeps the nodes it may ask for the leader.


#include <concepts>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// A node store (go-dqlite's NodeStore): `get()` returns the known nodes, `set(nodes)`
/// replaces them. Both are synchronous and may throw (a file store throws
/// node_store_error when the file cannot be read or written). A cluster client calls them
/// from its executor's thread, so they should be quick.
template <class S>
concept node_store_like = requires(S& s, std::vector<node_info> nodes) {
  { s.get() } -> std::convertible_to<std::vector<node_info>>;
  s.set(std::move(nodes));
};

/// The error a node store throws, e.g. for a file that cannot be read, parsed or written.
/// what() names the store (the file) and the problem.
class node_store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The interface a cluster client keeps its store behind. Implement it, or pass any
/// node_store_like type to make_node_store.
class node_store {
 public:
  virtual ~node_store() = default;
  /// The known nodes.
  virtual std::vector<node_info> get() = 0;
  /// Replaces the known nodes.
  virtual void set(std::vector<node_info> nodes) = 0;
};

namespace detail {
template <class S>
class node_store_adapter final : public node_store {
 public:
  explicit node_store_adapter(std::shared_ptr<S> s) : s_(std::move(s)) {}
  std::vector<node_info> get() override { return s_->get(); }
  void set(std::vector<node_info> nodes) override { s_->set(std::move(nodes)); }

 private:
  std::shared_ptr<S> s_;
};
}  // namespace detail

/// A node_store over any node_store_like object (shared with the caller).
template <node_store_like S>
std::shared_ptr<node_store> make_node_store(std::shared_ptr<S> store) {
  if (!store) throw std::invalid_argument("dqlite::make_node_store: null store");
  if constexpr (std::is_base_of_v<node_store, S>)
    return store;
  else
    return std::make_shared<detail::node_store_adapter<S>>(std::move(store));
}

/// Nodes kept in memory. Thread-safe.
class memory_node_store final : public node_store {
 public:
  memory_node_store() = default;
  /// Starts with the given nodes.
  explicit memory_node_store(std::vector<node_info> nodes) : nodes_(std::move(nodes)) {}
  /// Starts with voters at the given addresses (ids unknown: 0).
  explicit memory_node_store(const std::vector<std::string>& addresses) {
    nodes_.reserve(addresses.size());
    for (const auto& a : addresses) nodes_.push_back(node_info{0, a, node_role::voter});
  }

  std::vector<node_info> get() override {
    std::lock_guard lock(mutex_);
    return nodes_;
  }
  void set(std::vector<node_info> nodes) override {
    std::lock_guard lock(mutex_);
    nodes_ = std::move(nodes);
  }

 private:
  std::mutex mutex_;
  std::vector<node_info> nodes_;
};

}  // namespace dqlite
// ---- end dqlite/node_store.hpp ----

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite::detail {

inline constexpr auto as_tuple_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

/// T, spelled as a type that depends on D. A call on an object of it inside a template of
/// D is compiled when that template is, not where it is written: e.g. a timer's
/// `async_wait(as_tuple_awaitable)` inside a class template compiles Asio's whole wait
/// operation in every unit that includes the header, whether or not it uses the template.
template <class D, class T>
struct dependent_type {
  using type = T;
};
template <class D, class T>
using dependent_t = typename dependent_type<D, T>::type;

/// What a cluster operation produces: an error with its text, or a value.
template <class T>
struct cluster_result {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  error_code ec;
  std::string diag;
  std::optional<value_type> value;

  static cluster_result fail(error_code e, std::string text) {
    cluster_result r;
    r.ec = e;
    r.diag = std::move(text);
    return r;
  }

  /// An operation that the cluster client's close() ended: errc::cancelled.
  static cluster_result cluster_closed() {
    return fail(make_error_code(errc::cancelled), "the cluster client was closed");
  }

  /// An exception that escaped an operation's coroutine, as a failure.
  static cluster_result from_exception(std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::bad_alloc&) {
      return fail(make_error_code(boost::system::errc::not_enough_memory), "out of memory");
    } catch (const std::exception& e) {
      return fail(make_error_code(errc::invalid_argument), e.what());
    } catch (...) {
      return fail(make_error_code(errc::invalid_argument), "unknown exception");
    }
  }
};

/// True once the operation whose cancellation state this is has been cancelled.
inline bool was_cancelled(const boost::asio::cancellation_state& cs) noexcept {
  return cs.cancelled() != boost::asio::cancellation_type::none;
}

/// The failure of an operation its caller cancelled.
template <class T>
cluster_result<T> cancelled_by_caller(std::string detail = {}) {
  std::string text = "the operation was cancelled";
  if (!detail.empty()) text += " (" + detail + ")";
  return cluster_result<T>::fail(make_error_code(errc::cancelled), std::move(text));
}

/// The failure of an operation its caller cancelled reads as errc::cancelled, whatever
/// step it stopped in (a cancelled wait, a connection closed by the cancellation), except
/// an unknown outcome, which stays what it is. `ep`: the operation ended with this
/// exception (a cancelled co_await throws; its text says nothing more).
template <class T>
void settle_cancelled(cluster_result<T>& r, std::exception_ptr ep,
                      boost::asio::cancellation_type_t cancelled) {
  if (cancelled == boost::asio::cancellation_type::none) {
    if (ep) r = cluster_result<T>::from_exception(ep);
    return;
  }
  if (ep)
    r = cancelled_by_caller<T>();
  else if (r.ec && !is_cancelled(r.ec) && !is_outcome_unknown(r.ec))
    r = cancelled_by_caller<T>(std::move(r.diag));
}

/// Why each node that was asked did not lead to the leader, in the order first asked.
class attempt_report {
 public:
  /// Longest reason kept for a node, in bytes (a server's message may be much longer).
  static constexpr std::size_t max_reason_size = 512;

  /// Records why `address` failed; a node not asked (or asked when the time for retries
  /// had run out) keeps the reason of an earlier attempt.
  void note(const std::string& address, std::string reason, bool asked = true);
  void merge(const attempt_report& other);
  bool empty() const noexcept { return entries_.empty(); }
  std::string text() const;

 private:
  struct entry {
    std::string address;
    std::string reason;
    bool asked;
  };
  std::vector<entry> entries_;
};

DQLITE_DECL std::string error_text(const error_code& ec, const diagnostics& d);

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/result.ipp ----
// Definitions of detail/cluster/result.hpp (see detail/config.hpp).


#include <string>

namespace dqlite::detail {

DQLITE_DECL void attempt_report::note(const std::string& address, std::string reason, bool asked) {
  if (reason.size() > max_reason_size) {
    const std::size_t full = reason.size();
    reason.resize(wire::message_prefix(reason, max_reason_size).size());
    reason += " [... " + std::to_string(full - reason.size()) + " more bytes]";
  }
  for (auto& e : entries_)
    if (e.address == address) {
      if (asked || !e.asked) {
        e.reason = std::move(reason);
        e.asked = asked;
      }
      return;
    }
  entries_.push_back(entry{address, std::move(reason), asked});
}

DQLITE_DECL void attempt_report::merge(const attempt_report& other) {
  for (const auto& e : other.entries_) note(e.address, e.reason, e.asked);
}

DQLITE_DECL std::string attempt_report::text() const {
  std::string s;
  for (const auto& e : entries_) {
    if (!s.empty()) s += "; ";
    s += printable(e.address) + " (" + e.reason + ")";
  }
  return s;
}

DQLITE_DECL std::string error_text(const error_code& ec, const diagnostics& d) {
  if (d.empty()) return ec.message();
  if (d.message().find(ec.message()) != std::string::npos) return d.message();
  return d.message() + ": " + ec.message();
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/result.ipp ----
#endif
// ---- end dqlite/detail/cluster/result.hpp ----
// ---- begin dqlite/detail/event.hpp ----
// A signal between coroutines that run on one executor (a strand), built on a timer.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// Waiters suspend in wait() until notify_all(), or until `until` (never, by default).
/// It is a timer whose expiry is the longest wait: notify_all() cancels it, which wakes
/// every current waiter at once and makes no system call. A wait ends the same way for a
/// notification, the expiry, a cancellation of the waiter and a spurious wake-up: the
/// waiter checks the state it waits for, in a loop. Use it on one executor only.
class async_event : public boost::asio::steady_timer {
 public:
  using clock = std::chrono::steady_clock;

  /// (A template, so that only a unit that constructs one compiles the timer's
  /// construction.)
  template <class Executor>
    requires std::is_constructible_v<boost::asio::steady_timer, const Executor&, clock::time_point>
  explicit async_event(const Executor& ex, clock::time_point until = clock::time_point::max())
      : boost::asio::steady_timer(ex, until) {}

  /// Wakes every waiter now waiting; later waiters wait for the next call.
  void notify_all() noexcept { cancel(); }

  /// Ends at notify_all() or at the expiry; never throws for either. (A template, with a
  /// return type that is not deduced, so that only a unit that instantiates a wait
  /// compiles it: a deduced type would compile Asio's wait wherever a call is written.
  /// Token: the default only, as_tuple(use_awaitable).)
  template <class Token = decltype(boost::asio::as_tuple(boost::asio::use_awaitable))>
  boost::asio::awaitable<std::tuple<boost::system::error_code>> wait(Token token = {}) {
    return async_wait(std::move(token));
  }
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/event.hpp ----

// ---- begin dqlite/connector.hpp ----
// How a cluster client and a pool reach their nodes: a connector makes a connection and
// connects it to the node behind an advertised address. TCP is the default; unix sockets
// here, TLS in dqlite/tls.hpp, and any user function (address mapping, proxies, custom
// sockets) through basic_connector's two members.


#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite {

/// Maps a node's advertised address (as the node store and the LEADER and CLUSTER answers
/// give it) to the address to dial: for clusters behind TLS terminators, NAT or a proxy.
using address_map = std::function<std::string(std::string_view advertised)>;

/// How basic_cluster<Stream> and basic_pool<Stream> reach a node.
///
/// make(opts, ex): a new connection, not connected, with options opts, doing its I/O on ex
/// (the cluster's strand). connect(conn, address): connects conn to the node that
/// advertises `address` (transport, TLS handshake if any, the dqlite handshake, opening
/// conn.options().database) and gives the error, with its text left in
/// conn.diagnostics(); a user function usually ends with conn.async_connect(...) or
/// conn.async_handshake(...). check_address(address): why an address given to the cluster
/// can never be dialled ("" when it can); empty: every address is accepted.
///
/// connect runs as a coroutine on the cluster's strand; both are called for every new
/// connection (probes, the leader, administration), so they must not block. Connections
/// are made rarely, so the functions are type-erased: one cluster type per stream type.
template <class Stream>
struct basic_connector {
  using stream_type = Stream;
  using connection_type = basic_connection<Stream>;

  std::function<connection_type(const connection_options& opts,
                                const boost::asio::any_io_executor& ex)>
      make;
  std::function<boost::asio::awaitable<error_code>(connection_type& conn, std::string address)>
      connect;
  std::function<std::string(std::string_view address)> check_address;
};

namespace detail {

/// Why address is not "host:port" ("" when it is).
inline std::string host_port_problem(std::string_view address) {
  host_port hp;
  if (parse_address(address, hp))
    return "invalid node address '" + printable(address) + "' (expected host:port)";
  return {};
}

inline std::string mapped(const address_map& map, std::string address) {
  return map ? map(address) : address;
}

}  // namespace detail

namespace detail {

// The body of tcp_connector and unix_connector, one per socket type. It is a template,
// although each public connector has one socket type, so that a unit compiles a
// connector's connect coroutine (an async_connect and the connection's opening loop) only
// when it makes that connector, not whenever it includes this header. With separate
// compilation, <dqlite/src.hpp> compiles both.

template <class Socket>
basic_connector<Socket> make_socket_connector(address_map map) {
  using conn_t = basic_connection<Socket>;
  constexpr bool unix_socket =
      std::is_same_v<typename Socket::protocol_type, boost::asio::local::stream_protocol>;
  basic_connector<Socket> c;
  c.make = [](const connection_options& o, const boost::asio::any_io_executor& ex) {
    return conn_t(o, ex);
  };
  c.connect = [map = std::move(map)](conn_t& conn,
                                     std::string address) -> boost::asio::awaitable<error_code> {
    std::string target = mapped(map, std::move(address));
    if constexpr (unix_socket) {
      auto [ec] = co_await conn.async_connect(unix_endpoint(target), as_tuple_awaitable);
      co_return ec;
    } else {
      auto [ec] = co_await conn.async_connect(std::move(target), as_tuple_awaitable);
      co_return ec;
    }
  };
  if constexpr (unix_socket)
    c.check_address = [](std::string_view a) -> std::string {
      return a.empty() ? "a node address is empty" : std::string();
    };
  else
    c.check_address = host_port_problem;
  return c;
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
extern template basic_connector<boost::asio::ip::tcp::socket>
make_socket_connector<boost::asio::ip::tcp::socket>(address_map);
extern template basic_connector<boost::asio::local::stream_protocol::socket>
make_socket_connector<boost::asio::local::stream_protocol::socket>(address_map);
#endif

}  // namespace detail

/// Plain TCP (the default of dqlite::cluster and dqlite::pool). With `map` (an address_map,
/// or any callable std::string(std::string_view) it can hold), each advertised address is
/// dialled at map(address). Node addresses must be "host:port".
template <class Map = address_map>
  requires std::is_convertible_v<Map, address_map>
basic_connector<boost::asio::ip::tcp::socket> tcp_connector(Map map = {}) {
  return detail::make_socket_connector<boost::asio::ip::tcp::socket>(address_map(std::move(map)));
}

/// Unix sockets: the node that advertises `address` listens at path_of(address), a file
/// system path or "@name" for an abstract socket (Linux). Without path_of, the advertised
/// address is the path (nodes whose address is "@name" or "/path", as a node bound to a
/// unix socket advertises). Any non-empty address is accepted. path_of: an address_map, or
/// any callable it can hold.
template <class Map = address_map>
  requires std::is_convertible_v<Map, address_map>
basic_connector<boost::asio::local::stream_protocol::socket> unix_connector(Map path_of = {}) {
  return detail::make_socket_connector<boost::asio::local::stream_protocol::socket>(
      address_map(std::move(path_of)));
}

namespace detail {

/// The connector a cluster of Stream uses when none is given: TCP for TCP sockets. Other
/// streams need one (unix_connector, tls_connector, or the user's).
template <class Stream>
basic_connector<Stream> default_connector() {
  if constexpr (std::is_same_v<Stream, boost::asio::ip::tcp::socket>) {
    return tcp_connector();
  } else {
    return {};
  }
}

/// Whether c can be used: both functions are set.
template <class Stream>
void check_connector(const basic_connector<Stream>& c) {
  if (!c.make || !c.connect)
    throw error(make_error_code(errc::invalid_argument),
                diagnostics("the connector has no make or no connect function (streams other "
                            "than TCP need a connector: unix_connector, tls_connector, or one "
                            "of the caller's)"));
}

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/connector.hpp ----

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

template <class Stream>
class basic_cluster;

namespace detail {

template <class Stream>
struct cluster_state {
  using connection_type = basic_connection<Stream>;
  using impl_type = connection_impl<Stream>;
  using clock = std::chrono::steady_clock;

  /// A connection to a node that answered LEADER with its own address.
  struct leader_conn {
    std::string address;
    std::uint64_t id = 0;
    std::optional<connection_type> conn;  // empty for those waiting on another discovery
  };
  using discovery = cluster_result<leader_conn>;

  /// A running discovery that other callers wait for.
  struct shared_discovery {
    explicit shared_discovery(const boost::asio::any_io_executor& ex) : done(ex) {}
    async_event done;  ///< notified when the runner has finished
    bool finished = false;
    error_code ec;
    std::string diag;
    std::string address;
    std::uint64_t id = 0;
    attempt_report report;
    std::optional<connection_type> conn;  ///< the leader's, until a waiter takes it
  };

  /// The nodes of one discovery, asked by a bounded number of workers at once.
  struct probe_round {
    explicit probe_round(const boost::asio::any_io_executor& ex) : wake(ex) {}
    std::vector<std::string> addresses;
    std::size_t next = 0;
    std::size_t running = 0;
    clock::time_point deadline;
    std::vector<std::string> reasons;
    std::vector<bool> asked;
    std::optional<leader_conn> found;
    std::vector<std::weak_ptr<impl_type>> conns;
    async_event wake;  ///< notified when a worker ends
  };

  cluster_state(boost::asio::any_io_executor e, std::shared_ptr<node_store> s, cluster_options o,
                basic_connector<Stream> c)
      : ex(std::move(e)), store(std::move(s)), opts(std::move(o)), connector(std::move(c)),
        database(opts.connection.database) {
    // A connection left empty by a move: what a failed async_connect completes with, made
    // now so that a failure never calls the connector (whose resources, such as a TLS
    // context, may be gone by the time a cancelled operation completes).
    connection_type made = connector.make(opts.connection, ex);
    connection_type taken(std::move(made));  // leaves `made` empty
    empty.emplace(std::move(made));
    opts.connection.database = database;
    // The connections handed out log and trace with the cluster's hooks unless they
    // have their own.
    if (!opts.connection.log) {
      opts.connection.log = opts.log;
      opts.connection.log_threshold = opts.log_threshold;
    }
    if (!opts.connection.trace) opts.connection.trace = opts.trace;
  }

  boost::asio::any_io_executor ex;  ///< a strand: every member is used on it only
  std::shared_ptr<node_store> store;
  cluster_options opts;
  basic_connector<Stream> connector;  ///< how nodes are reached
  std::optional<connection_type> empty;  ///< moved from: the value of a failed connect
  std::string database;  ///< owns opts.connection.database
  std::string last_leader;
  std::uint64_t last_leader_id = 0;
  std::shared_ptr<shared_discovery> running;
  std::optional<connection_type> admin;  ///< cached connection (no database) to the leader
  std::vector<std::weak_ptr<impl_type>> live_conns;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> live_timers;
  bool closed = false;
  diagnostics last_diag;  ///< the text of the last operation that completed
  error_code store_ec;     ///< the last automatic node store refresh failed (refresh_store)
  diagnostics store_diag;  ///< why
  cluster_stats stats;     ///< counters (basic_cluster::stats)

  /// The cluster's logging hook.
  logger log() const noexcept { return logger{opts.log, opts.log_threshold}; }

  /// A leader was found: counts and reports a change.
  void note_leader(const std::string& address, std::uint64_t id) {
    const logger lg = log();
    lg(log_level::debug, "leader_found",
       [&] { return address + " (id " + std::to_string(id) + ") is the leader"; });
    if (!stats.last_leader.empty() && stats.last_leader != address) {
      ++stats.leader_changes;
      lg(log_level::info, "leader_changed", [&] {
        return "the leader changed from " + stats.last_leader + " to " + address + " (id " +
               std::to_string(id) + ")";
      });
    }
    stats.last_leader = address;
    stats.last_leader_id = id;
  }

  template <class W>
  static void prune(std::vector<std::weak_ptr<W>>& v) {
    std::erase_if(v, [](const std::weak_ptr<W>& w) { return w.expired(); });
  }
  void track(const std::shared_ptr<impl_type>& c) {
    prune(live_conns);
    live_conns.push_back(c);
  }
  /// A connection handed to the caller is the caller's: closing the cluster leaves it.
  void untrack(const impl_type* c) {
    std::erase_if(live_conns, [c](const std::weak_ptr<impl_type>& w) {
      auto p = w.lock();
      return !p || p.get() == c;
    });
  }
  void track(const std::shared_ptr<boost::asio::steady_timer>& t) {
    prune(live_timers);
    live_timers.push_back(t);
  }

  /// Closes everything in flight; operations complete with errc::cancelled.
  void shutdown() {
    closed = true;
    if (admin) admin->close();
    admin.reset();
    for (auto& w : live_conns)
      if (auto c = w.lock()) c->close_transport();
    for (auto& w : live_timers)
      if (auto t = w.lock()) t->cancel();
    if (running) running->done.notify_all();
    live_conns.clear();
    live_timers.clear();
  }


  /// Whether the time for retries has run out: a probe given the rest of it (whole
  /// milliseconds, rounded down) ends within a millisecond of the deadline.
  static bool out_of_time(clock::time_point deadline) {
    return deadline != clock::time_point::max() &&
           clock::now() + std::chrono::milliseconds(2) >= deadline;
  }

  std::chrono::milliseconds time_left(clock::time_point deadline, std::chrono::milliseconds cap) {
    if (deadline == clock::time_point::max()) return cap;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    return std::max(std::chrono::milliseconds(1), std::min(left, cap));
  }

  /// Whether a node's answer naming `address` (as the leader, or as a member to ask) may
  /// be followed (cluster_options::follow_redirect).
  bool may_follow(std::string_view address) const {
    return !opts.follow_redirect || opts.follow_redirect(address);
  }

  /// A new connection made by the connector, tracked so that close() ends its I/O. (A
  /// connector whose make throws fails the operation with that exception.)
  connection_type make_connection(const connection_options& o) {
    connection_type c = connector.make(o, ex);
    if (auto impl = connection_access::impl(c)) track(impl);
    return c;
  }

  /// An empty connection (moved from: every operation fails with errc::not_connected).
  connection_type empty_connection() { return connection_type(std::move(*empty)); }

  /// Connects c to the node that advertises address, through the connector. A connector
  /// that throws fails the connection with errc::invalid_argument and the exception's text.
  boost::asio::awaitable<error_code> connect(connection_type& c, std::string address) {
    error_code ec;
    std::string thrown;
    try {
      ec = co_await connector.connect(c, std::move(address));
    } catch (const std::exception& e) {
      thrown = e.what();
      if (thrown.empty()) thrown = "an exception";
    } catch (...) {
      thrown = "an exception";
    }
    if (!thrown.empty()) {
      c.close();
      ec = make_error_code(errc::invalid_argument);
      connection_access::impl(c)->diag.assign("the connector failed: " + thrown);
    }
    co_return ec;
  }

  connection_options probe_options(std::chrono::milliseconds timeout) const {
    connection_options o = opts.connection;
    o.database = {};
    o.log = {};  // the cluster reports probes itself
    o.trace = {};
    o.connect_timeout = timeout;
    o.request_timeout = timeout;
    return o;
  }
};

/// The result of asking one node for the leader.
template <class Stream>
struct leader_answer {
  std::optional<basic_connection<Stream>> conn;
  node_info leader;      ///< what the node answered
  std::string failure;   ///< non-empty when the node could not be asked
};

/// Connects to `address` (no database) and sends LEADER, within `timeout`.
template <class Stream>
boost::asio::awaitable<leader_answer<Stream>> ask_leader(
    std::shared_ptr<cluster_state<Stream>> s, std::string address,
    std::chrono::milliseconds timeout,
    std::shared_ptr<typename cluster_state<Stream>::probe_round> round) {
  leader_answer<Stream> out;
  ++s->stats.probes;
  s->log()(log_level::debug, "probe", [&] { return "asking " + address + " for the leader"; });
  out.conn.emplace(s->make_connection(s->probe_options(timeout)));
  auto& conn = *out.conn;
  if (round) round->conns.push_back(connection_access::impl(conn));
  if (auto ec = co_await s->connect(conn, address)) {
    out.failure = error_text(ec, conn.diagnostics());
    // The report names the node already.
    for (std::string_view step : {"connecting to ", "resolving "}) {
      std::string prefix = std::string(step) + address + ": ";
      if (out.failure.rfind(prefix, 0) == 0)
        out.failure = (step == "resolving " ? "cannot resolve: " : "cannot connect: ") +
                      out.failure.substr(prefix.size());
    }
    out.conn.reset();
    ++s->stats.probe_failures;
    s->log()(log_level::warning, "probe_failed", [&] { return address + ": " + out.failure; });
    co_return out;
  }
  auto r2 = co_await conn.async_leader(as_tuple_awaitable);
  if (auto ec = std::get<0>(r2)) {
    out.failure = "asking for the leader: " + error_text(ec, conn.diagnostics());
    out.conn.reset();
    ++s->stats.probe_failures;
    s->log()(log_level::warning, "probe_failed", [&] { return address + ": " + out.failure; });
    co_return out;
  }
  out.leader = std::move(std::get<1>(r2));
  s->log()(log_level::debug, "probe_answer", [&] {
    return out.leader.address.empty()
               ? address + " knows no leader"
               : address + " names " + out.leader.address + " (id " +
                     std::to_string(out.leader.id) + ") as the leader";
  });
  co_return out;
}

/// Asks one node; follows its answer to another node only once that node confirms it
/// leads. Returns the leader's connection, or why this node led to none.
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>> probe_node(
    std::shared_ptr<cluster_state<Stream>> s, std::string address,
    typename cluster_state<Stream>::clock::time_point deadline,
    std::shared_ptr<typename cluster_state<Stream>::probe_round> round) {
  using result = cluster_result<typename cluster_state<Stream>::leader_conn>;
  const auto no = make_error_code(errc::no_leader);
  auto a = co_await ask_leader<Stream>(s, address, s->time_left(deadline, s->opts.probe_timeout),
                                       round);
  if (s->closed) co_return result::cluster_closed();
  if (!a.failure.empty()) co_return result::fail(no, a.failure);
  if (a.leader.address.empty()) {
    // Stand-bys and spares know no leader (they answer LEADER with none), and neither does a
    // voter during an election; each lists the members it knows. Those of a probe round are
    // asked in turn: a client whose only known node is a stand-by reaches the voters.
    if (!round) co_return result::fail(no, "knows no leader");
    auto m = co_await a.conn->async_cluster(as_tuple_awaitable);
    if (s->closed) co_return result::cluster_closed();
    a.conn->close();
    if (std::get<0>(m)) co_return result::fail(no, "knows no leader");
    auto members = std::move(std::get<1>(m));
    std::stable_sort(members.begin(), members.end(), [](const node_info& x, const node_info& y) {
      return static_cast<int>(x.role) < static_cast<int>(y.role);
    });
    std::size_t added = 0;
    std::size_t refused = 0;
    for (const auto& n : members) {
      if (n.address.empty() || n.role == node_role::spare ||
          std::find(round->addresses.begin(), round->addresses.end(), n.address) !=
              round->addresses.end())
        continue;
      if (!s->may_follow(n.address)) {
        ++refused;
        ++s->stats.redirects_refused;
        s->log()(log_level::warning, "redirect_refused", [&] {
          return address + " lists " + n.address + ", which is not asked: refused by "
                 "follow_redirect";
        });
        continue;
      }
      round->addresses.push_back(n.address);
      round->reasons.emplace_back();
      round->asked.push_back(false);
      ++added;
    }
    std::string why = added == 0 ? std::string("knows no leader")
                                 : "knows no leader; asking the " + std::to_string(added) +
                                       " other member(s) it lists";
    if (refused > 0)
      why += " (" + std::to_string(refused) +
             " member(s) it lists are not followed: refused by follow_redirect)";
    co_return result::fail(no, why);
  }
  if (a.leader.address == address) {
    result r;
    r.value.emplace();
    r.value->address = std::move(address);
    r.value->id = a.leader.id;
    r.value->conn = std::move(a.conn);
    co_return r;
  }
  // A redirect: the named node must confirm.
  a.conn->close();
  std::string target = a.leader.address;
  if (!s->may_follow(target)) {
    ++s->stats.redirects_refused;
    std::string why = "names " + printable(target) +
                      " as the leader, which is not followed: refused by follow_redirect";
    s->log()(log_level::warning, "redirect_refused", [&] { return address + " " + why; });
    co_return result::fail(no, why);
  }
  ++s->stats.redirects;
  s->log()(log_level::debug, "redirect", [&] {
    return "following " + address + "'s answer: asking " + target + " whether it leads";
  });
  auto b = co_await ask_leader<Stream>(s, target, s->time_left(deadline, s->opts.probe_timeout),
                                       round);
  if (s->closed) co_return result::cluster_closed();
  std::string why = "names " + printable(target) + " as the leader, but that node ";
  if (!b.failure.empty()) why += "failed: " + b.failure;
  else if (b.leader.address.empty()) why += "knows no leader";
  else if (b.leader.address != target) why += "names " + printable(b.leader.address);
  if (!b.failure.empty() || b.leader.address != target) {
    ++s->stats.redirects_refused;
    s->log()(log_level::warning, "redirect_refused", [&] { return address + " " + why; });
    co_return result::fail(no, why);
  }
  result r;
  r.value.emplace();
  r.value->address = std::move(target);
  r.value->id = b.leader.id;
  r.value->conn = std::move(b.conn);
  co_return r;
}

/// One worker of a probe round: asks the round's nodes one after the other until they are
/// all asked or the leader is found.
template <class Stream>
boost::asio::awaitable<void> probe_worker(
    std::shared_ptr<cluster_state<Stream>> s,
    std::shared_ptr<typename cluster_state<Stream>::probe_round> round) {
  try {
    while (!round->found && !s->closed && round->next < round->addresses.size()) {
      std::size_t i = round->next++;
      if (round->deadline != cluster_state<Stream>::clock::time_point::max() &&
          cluster_state<Stream>::clock::now() >= round->deadline) {
        round->reasons[i] = "not asked: the time for retries ran out";
        continue;
      }
      round->asked[i] = true;
      auto r = co_await probe_node<Stream>(s, round->addresses[i], round->deadline, round);
      if (r.ec) {
        round->reasons[i] = std::move(r.diag);
        // A probe cut short by the end of the time for retries says less than an earlier
        // attempt's reason: it does not replace one.
        if (cluster_state<Stream>::out_of_time(round->deadline)) round->asked[i] = false;
        continue;
      }
      if (round->found) {
        r.value->conn->close();  // another worker was faster
        continue;
      }
      round->reasons[i].clear();
      round->found = std::move(r.value);
      // Stop the other probes of this round: their answers are not needed.
      auto keep = connection_access::impl(*round->found->conn);
      for (auto& w : round->conns)
        if (auto c = w.lock(); c && c != keep) c->close_transport();
    }
  } catch (const std::exception& e) {
    if (round->next > 0 && round->reasons[round->next - 1].empty())
      round->reasons[round->next - 1] = std::string("probe failed: ") + e.what();
  }
  --round->running;
  round->wake.notify_all();
}

/// One discovery: the last known leader first, then every node of the store, voters
/// first, at most max_concurrent_probes at a time.
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>> discover(
    std::shared_ptr<cluster_state<Stream>> s,
    typename cluster_state<Stream>::clock::time_point deadline, attempt_report& report) {
  using state = cluster_state<Stream>;
  using result = cluster_result<typename state::leader_conn>;
  const auto no = make_error_code(errc::no_leader);

  std::vector<node_info> nodes;
  try {
    nodes = s->store->get();
  } catch (const std::exception& e) {
    co_return result::fail(no, std::string("reading the node store failed: ") + e.what());
  }
  std::stable_sort(nodes.begin(), nodes.end(), [](const node_info& a, const node_info& b) {
    return static_cast<int>(a.role) < static_cast<int>(b.role);
  });
  std::vector<std::string> addresses;
  for (auto& n : nodes)
    if (std::find(addresses.begin(), addresses.end(), n.address) == addresses.end())
      addresses.push_back(n.address);

  std::optional<typename state::leader_conn> found;
  const std::string last = s->last_leader;
  ++s->stats.discoveries;
  s->log()(log_level::debug, "discovery_start", [&] {
    std::size_t others = addresses.size();
    if (!last.empty() && std::find(addresses.begin(), addresses.end(), last) != addresses.end())
      --others;
    return "finding the leader: " +
           (last.empty() ? std::string("no leader known yet")
                         : "asking the last known leader " + last + " first") +
           ", then " + std::to_string(others) + " node(s) of the store";
  });
  if (!last.empty()) {
    auto r = co_await probe_node<Stream>(s, last, deadline, nullptr);
    if (s->closed) co_return result::cluster_closed();
    if (r.ec)
      report.note(last, "last known leader: " + r.diag, !state::out_of_time(deadline));
    else
      found = std::move(r.value);
    std::erase(addresses, last);
  } else if (addresses.empty()) {
    co_return result::fail(no, "the node store is empty: there is no node to ask for the leader");
  }

  if (!found && !addresses.empty()) {
    auto round = std::make_shared<typename state::probe_round>(s->ex);
    s->track(std::shared_ptr<boost::asio::steady_timer>(round, &round->wake));  // for close()
    round->addresses = addresses;
    round->reasons.resize(addresses.size());
    round->asked.resize(addresses.size(), false);
    round->deadline = deadline;
    std::size_t workers = std::min(addresses.size(), std::max<std::size_t>(1, s->opts.max_concurrent_probes));
    round->running = workers;
    for (std::size_t w = 0; w < workers; ++w)
      boost::asio::co_spawn(s->ex, probe_worker<Stream>(s, round), boost::asio::detached);
    while (round->running > 0 && !round->found && !s->closed) {
      co_await round->wake.wait();
    }
    if (s->closed) co_return result::cluster_closed();
    for (std::size_t i = 0; i < round->addresses.size(); ++i)  // with those learned
      if (!round->reasons[i].empty())
        report.note(round->addresses[i], round->reasons[i], round->asked[i]);
    found = std::move(round->found);
  }
  if (!found) co_return result::fail(no, "no node knows a leader");

  s->last_leader = found->address;
  s->last_leader_id = found->id;
  s->note_leader(found->address, found->id);
  if (s->opts.refresh_store) {
    // The leader is reached: a refresh that fails does not lose it. The failure is kept
    // for basic_cluster::store_error().
    auto r = co_await found->conn->async_cluster(as_tuple_awaitable);
    if (auto ec = std::get<0>(r)) {
      if (!found->conn->is_open()) {  // the leader's connection broke: it is of no use
        report.note(found->address, "leader, but asking it for the members failed: " +
                                        error_text(ec, found->conn->diagnostics()));
        co_return result::fail(no, "the leader did not list the members");
      }
      s->store_ec = ec;
      s->store_diag.assign("refreshing the node store: asking the leader " + found->address +
                           " for the members failed: " +
                           error_text(ec, found->conn->diagnostics()));
    } else {
      try {
        s->store->set(std::move(std::get<1>(r)));
        s->store_ec = {};
        s->store_diag.clear();
      } catch (const std::exception& e) {
        s->store_ec = make_error_code(boost::system::errc::io_error);
        s->store_diag.assign(std::string("refreshing the node store: updating it failed: ") +
                             e.what());
      }
    }
  }
  result r;
  r.value = std::move(found);
  co_return r;
}

/// Runs one discovery for every caller waiting on `run`, on its own: cancelling one of
/// them does not stop it.
template <class Stream>
boost::asio::awaitable<void> run_discovery(
    std::shared_ptr<cluster_state<Stream>> s,
    std::shared_ptr<typename cluster_state<Stream>::shared_discovery> run,
    typename cluster_state<Stream>::clock::time_point deadline) {
  using result = cluster_result<typename cluster_state<Stream>::leader_conn>;
  result r;
  try {
    r = co_await discover<Stream>(s, deadline, run->report);
  } catch (const std::exception& e) {
    // Never leave the waiters waiting.
    r = result::fail(make_error_code(errc::no_leader), std::string("discovery failed: ") + e.what());
  }
  run->finished = true;
  run->ec = r.ec;
  run->diag = r.diag;
  if (!r.ec) {
    run->address = r.value->address;
    run->id = r.value->id;
    run->conn = std::move(r.value->conn);  // for the first waiter that wakes up
  }
  if (s->running == run) s->running.reset();
  run->done.notify_all();
}

/// A discovery shared by concurrent callers: the first one starts it, all wait for its
/// result. The first to wake up takes the leader's connection; the others get the
/// leader's address only (and connect to it themselves).
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>>
shared_discover(std::shared_ptr<cluster_state<Stream>> s,
                typename cluster_state<Stream>::clock::time_point deadline,
                attempt_report& report) {
  using state = cluster_state<Stream>;
  using result = cluster_result<typename state::leader_conn>;
  auto run = s->running;
  if (!run) {
    run = std::make_shared<typename state::shared_discovery>(s->ex);
    s->running = run;
    try {
      boost::asio::co_spawn(s->ex, run_discovery<Stream>(s, run, deadline), boost::asio::detached);
    } catch (...) {
      s->running.reset();
      throw;
    }
  }
  // A cancellation of this caller ends the wait (and, at the next co_await, the caller's
  // operation); the discovery goes on for the others.
  while (!run->finished && !s->closed) co_await run->done.wait();
  if (!run->finished) co_return result::cluster_closed();
  report.merge(run->report);
  if (run->ec) co_return result::fail(run->ec, run->diag);
  result r;
  r.value.emplace();
  r.value->address = run->address;
  r.value->id = run->id;
  // A cancelled caller leaves the connection to the next one (its next co_await throws).
  const auto cs = co_await boost::asio::this_coro::cancellation_state;
  if (!was_cancelled(cs) && run->conn) {
    if (run->conn->is_open()) r.value->conn = std::move(run->conn);
    run->conn.reset();
  }
  co_return r;
}

/// Finds the leader and returns a connection to it (no database), retrying with backoff
/// within the options' bounds. With `database` non-empty the database is opened on it.
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>>
connect_leader(std::shared_ptr<cluster_state<Stream>> s, std::string database) {
  using state = cluster_state<Stream>;
  using result = cluster_result<typename state::leader_conn>;
  const auto& o = s->opts;
  const auto start = state::clock::now();
  const auto deadline =
      o.retry_timeout.count() > 0 ? start + o.retry_timeout : state::clock::time_point::max();
  const unsigned max_attempts =
      o.max_attempts == 0 && o.retry_timeout.count() <= 0 ? 1 : o.max_attempts;
  attempt_report report;
  std::string last_failure;
  unsigned attempt = 0;
  for (;;) {
    ++attempt;
    auto d = co_await shared_discover<Stream>(s, deadline, report);
    if (s->closed) co_return result::cluster_closed();
    if (!d.ec && !d.value->conn) {
      // Found by another caller's discovery: confirm it and get a connection of our own.
      auto a = co_await ask_leader<Stream>(s, d.value->address,
                                           s->time_left(deadline, o.probe_timeout), nullptr);
      if (s->closed) co_return result::cluster_closed();
      if (!a.failure.empty() || a.leader.address != d.value->address) {
        report.note(d.value->address,
                    "found as the leader, but " +
                        (a.failure.empty() ? std::string("it no longer is") : a.failure));
        d = result::fail(make_error_code(errc::no_leader), "the leader changed");
      } else {
        d.value->conn = std::move(a.conn);
      }
    }
    if (!d.ec) {
      // The leader's connection reports with the caller's hooks from now on (its opening
      // of the database included).
      auto& impl = *connection_access::impl(*d.value->conn);
      impl.opts.log = o.connection.log;
      impl.opts.log_threshold = o.connection.log_threshold;
      impl.opts.trace = o.connection.trace;
    }
    if (!d.ec && !database.empty()) {
      auto& conn = *d.value->conn;
      auto r = co_await conn.async_open_database(database, as_tuple_awaitable);
      if (s->closed) co_return result::cluster_closed();
      if (auto ec = std::get<0>(r)) {
        std::string text = error_text(ec, conn.diagnostics());
        if (!is_retryable(ec))
          co_return result::fail(ec, "opening database '" + printable(database) + "' on the leader " +
                                         d.value->address + " failed: " + text);
        s->last_leader.clear();
        report.note(d.value->address, "leader, but opening the database failed: " + text);
        d = result::fail(make_error_code(errc::no_leader), text);
      }
    }
    if (!d.ec) {
      // From now on the connection follows the caller's options.
      auto& impl = *connection_access::impl(*d.value->conn);
      impl.opts.connect_timeout = o.connection.connect_timeout;
      impl.opts.request_timeout = o.connection.request_timeout;
      ++s->stats.connections;
      co_return d;
    }
    if (d.ec != make_error_code(errc::no_leader)) co_return d;  // not worth retrying
    last_failure = d.diag;
    const auto now = state::clock::now();
    const bool out_of_attempts = max_attempts != 0 && attempt >= max_attempts;
    const bool out_of_time = deadline != state::clock::time_point::max() && now >= deadline;
    if (out_of_attempts || out_of_time || report.empty()) {
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
      std::string text = "no leader found after " + std::to_string(attempt) +
                         (attempt == 1 ? " attempt" : " attempts") + " in " +
                         std::to_string(elapsed.count()) + " ms";
      if (report.empty())
        text += ": " + last_failure;
      else
        text += "; nodes asked: " + report.text();
      s->log()(log_level::error, "no_leader", [&] { return text; });
      co_return result::fail(make_error_code(errc::no_leader), text);
    }
    auto pause = backoff_delay(o, attempt);
    if (o.backoff_jitter) pause = jittered(pause);
    if (deadline != state::clock::time_point::max())
      pause = std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    ++s->stats.retries;
    s->log()(log_level::info, "backoff", [&] {
      return "attempt " + std::to_string(attempt) + " did not reach the leader (" + last_failure +
             "); next attempt in " + std::to_string(pause.count()) + " ms";
    });
    if (pause.count() > 0) {
      auto timer = std::make_shared<dependent_t<Stream, boost::asio::steady_timer>>(s->ex, pause);
      s->track(timer);
      co_await timer->async_wait(as_tuple_awaitable);
      if (s->closed) co_return result::cluster_closed();
    }
  }
}

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/detail/cluster/discovery.hpp ----
// ---- begin dqlite/detail/cluster/leader_requests.hpp ----
// Requests run on the leader (or on one node) by the cluster client, and the adapter that completes a cluster operation from its coroutine.

// ---- begin dqlite/detail/coroutine_op.hpp ----
// The asynchronous operations of the cluster client and the pool: a coroutine run on the
// object's strand, whose cluster_result completes the caller's handler.


#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// The parts in which the cluster client's and the pool's operations differ:
///   static constexpr bool keeps_state;  the operation holds the state until it completes
///                                       (else the coroutine alone holds it while it runs)
///   static error_code absent(diagnostics&);  the state is null (a moved-from object);
///                                            optional: without it, it never is
///   static void finished(State*, const diagnostics&);  after each operation (the state
///                                                      is null unless keeps_state)
///   static T value(State*, cluster_result<T>&);  the value handed to the handler, also
///                                                on failure
struct default_op_hooks {
  static constexpr bool keeps_state = false;
  template <class State>
  static void finished(State*, const diagnostics&) {}
  template <class T, class State>
  static T value(State*, cluster_result<T>& r) {
    return r.value ? std::move(*r.value) : T{};
  }
};

/// Completes the caller's handler, with the signature completion_sig_t<T>, from `body(s)`:
/// a coroutine returning awaitable<cluster_result<T>>, spawned on the state's executor
/// `s->ex`. An exception escaping it and the caller's cancellation are settled as
/// settle_cancelled says; the text goes to `diag`.
template <class State, class T, class Body, class Hooks>
struct coroutine_op {
  std::shared_ptr<State> s;
  std::shared_ptr<diagnostics> diag;
  Body body;

  template <class Self>
  void operator()(Self& self) {
    if constexpr (requires(diagnostics& d) { Hooks::absent(d); }) {
      if (!s) {
        error_code ec = Hooks::absent(*diag);
        if constexpr (std::is_void_v<T>)
          self.complete(ec);
        else
          self.complete(ec, T{});
        return;
      }
    }
    auto ex = s->ex;
    if constexpr (Hooks::keeps_state)
      boost::asio::co_spawn(ex, body(s), std::move(self));
    else
      boost::asio::co_spawn(ex, body(std::move(s)), std::move(self));
  }

  template <class Self>
  void operator()(Self& self, std::exception_ptr ep, cluster_result<T> r) {
    settle_cancelled(r, ep, self.get_cancellation_state().cancelled());
    diag->assign(r.diag);
    Hooks::finished(s.get(), *diag);
    if constexpr (std::is_void_v<T>)
      self.complete(r.ec);
    else
      self.complete(r.ec, Hooks::template value<T>(s.get(), r));
  }
};

/// The initiation of a coroutine_op: runs on the state's executor (or, for a null state,
/// completes on the handler's).
template <class State, class T, class Hooks>
struct coroutine_initiation {
  std::shared_ptr<State> s;
  std::shared_ptr<diagnostics> diag = std::make_shared<diagnostics>();
  std::shared_ptr<const diagnostics> diagnostics_ptr() const { return diag; }

  template <class Handler, class Body>
  void operator()(Handler&& h, Body body) {
    using sig = completion_sig_t<T>;
    using op = coroutine_op<State, T, Body, Hooks>;
    if (s) {
      auto ex = s->ex;
      boost::asio::async_compose<Handler, sig>(op{s, diag, std::move(body)}, h, ex);
    } else {
      boost::asio::async_compose<Handler, sig>(op{s, diag, std::move(body)}, h);
    }
  }
};

/// Runs `body(state)` for `token` as an operation with the signature completion_sig_t<T>.
template <class T, class Hooks, class State, class Token, class Body>
auto initiate_coroutine_op(std::shared_ptr<State> s, Token& token, Body body) {
  return boost::asio::async_initiate<Token, completion_sig_t<T>>(
      coroutine_initiation<State, T, Hooks>{std::move(s)}, token, std::move(body));
}

}  // namespace dqlite::detail
// ---- end dqlite/detail/coroutine_op.hpp ----


#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite::detail {

/// Runs request(conn) on a connection (no database) to the leader: the cached one, or a
/// new one. A "not leader" answer (and, for requests that change nothing, a broken
/// connection) makes it find the leader again and retry once.
template <class Stream, class T, class Request>
boost::asio::awaitable<cluster_result<T>> on_leader(std::shared_ptr<cluster_state<Stream>> s,
                                                    Request request, bool read_only) {
  using state = cluster_state<Stream>;
  for (int round = 0;; ++round) {
    std::optional<typename state::connection_type> conn;
    if (s->admin && s->admin->is_open() && !s->admin->operation_in_progress()) {
      conn = std::move(s->admin);
      s->admin.reset();
    } else {
      auto r = co_await connect_leader<Stream>(s, std::string());
      if (r.ec) co_return cluster_result<T>::fail(r.ec, std::move(r.diag));
      conn = std::move(r.value->conn);
    }
    auto t = co_await request(*conn);
    if (s->closed) co_return cluster_result<T>::cluster_closed();
    error_code ec = std::get<0>(t);
    if (!ec) {
      if (!s->admin && conn->is_open()) s->admin = std::move(conn);
      cluster_result<T> out;
      if constexpr (std::is_void_v<T>)
        out.value.emplace();
      else
        out.value.emplace(std::move(std::get<1>(t)));
      co_return out;
    }
    std::string text = error_text(ec, conn->diagnostics());
    // Cancelled by the caller: nothing is known about the leader.
    if (is_cancelled(ec)) co_return cluster_result<T>::fail(ec, std::move(text));
    const bool leader_moved = is_not_leader(ec);
    if (leader_moved || is_connection_error(ec)) s->last_leader.clear();
    if (round == 0 && (leader_moved || (read_only && is_connection_error(ec)))) continue;
    if (conn->is_open() && !s->admin) s->admin = std::move(conn);
    co_return cluster_result<T>::fail(ec, std::move(text));
  }
}

/// Runs request(conn) on a new connection (no database) to the node at `address`.
template <class Stream, class T, class Request>
boost::asio::awaitable<cluster_result<T>> on_node(std::shared_ptr<cluster_state<Stream>> s,
                                                  std::string address, Request request) {
  auto opts = s->opts.connection;
  opts.database = {};
  basic_connection<Stream> conn = s->make_connection(opts);
  if (auto ec = co_await s->connect(conn, address))
    co_return cluster_result<T>::fail(ec, error_text(ec, conn.diagnostics()));
  auto t = co_await request(conn);
  if (auto ec = std::get<0>(t))
    co_return cluster_result<T>::fail(ec, printable(address) + ": " + error_text(ec, conn.diagnostics()));
  cluster_result<T> out;
  if constexpr (std::is_void_v<T>)
    out.value.emplace();
  else
    out.value.emplace(std::move(std::get<1>(t)));
  co_return out;
}

/// The cluster client's part of its operations (coroutine_op): the state is kept, each
/// operation's text is the client's last diagnostics, and a connection handed to the
/// caller is the caller's (a failure hands over the empty one made at construction).
template <class Stream>
struct cluster_op_hooks : default_op_hooks {
  static constexpr bool keeps_state = true;
  static void finished(cluster_state<Stream>* s, const diagnostics& d) { s->last_diag = d; }
  template <class T>
  static T value(cluster_state<Stream>* s, cluster_result<T>& r) {
    if constexpr (std::is_same_v<T, basic_connection<Stream>>) {
      if (!r.value) return s->empty_connection();
      s->untrack(connection_access::impl(*r.value).get());  // the caller's from now on
      return std::move(*r.value);
    } else {
      return default_op_hooks::value<T>(s, r);
    }
  }
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/cluster/leader_requests.hpp ----

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

/// A client of a whole dqlite cluster: finds the leader, connects to it with retries, and
/// administers the cluster.
///
/// Nodes come from a node store (or a list of addresses). Discovery asks the last known
/// leader first, then the stored nodes (voters first, max_concurrent_probes at a time)
/// which node leads: a node that names itself is the leader; a node that names another
/// one is believed only once that one names itself. Concurrent callers share one
/// discovery. Failed attempts are retried with exponential backoff and jitter within
/// cluster_options' bounds; the final errc::no_leader names every node asked and why it
/// did not lead to the leader.
///
/// Operations accept any completion token (default: dqlite::use_awaitable, which throws
/// dqlite::error with the diagnostics text). They run on a strand of the executor, so a
/// cluster may be used from several threads. Destroying the cluster (or close()) makes
/// running operations complete with errc::cancelled; so does a terminal cancellation of
/// one operation through its cancellation slot (a discovery that other callers share goes
/// on for them). A connection that async_connect returned is the caller's: it keeps
/// working after the cluster is closed or destroyed.
///
/// Stream: the stream of the connections. The connector (dqlite/connector.hpp) makes them
/// and connects them to the nodes: TCP by default (dqlite::cluster), unix_cluster with
/// unix_connector, tls_cluster (dqlite/tls.hpp) with tls_connector, or a connector of the
/// caller's (address mapping, proxies, custom sockets).
template <class Stream>
class basic_cluster {
  using state_type = detail::cluster_state<Stream>;

 public:
  using connection_type = basic_connection<Stream>;
  using executor_type = boost::asio::any_io_executor;

  /// A cluster whose nodes are in `store`, reached through `connector` (see
  /// dqlite/connector.hpp: tcp_connector, unix_connector, tls_connector, or the caller's
  /// own). Throws dqlite::error (errc::invalid_argument) for options that cannot work and
  /// for a connector without make or connect.
  basic_cluster(const executor_type& ex, basic_connector<Stream> connector,
                std::shared_ptr<node_store> store, const cluster_options& opts = {})
      : s_(make_state(ex, std::move(connector), std::move(store), opts)) {}

  /// A cluster whose nodes are in any node_store_like object.
  template <node_store_like S>
    requires(!std::is_base_of_v<node_store, S>)
  basic_cluster(const executor_type& ex, basic_connector<Stream> connector,
                std::shared_ptr<S> store, const cluster_options& opts = {})
      : basic_cluster(ex, std::move(connector), make_node_store(std::move(store)), opts) {}

  /// A cluster whose nodes are at `addresses` (as the nodes advertise them: "host:port" or
  /// "[ipv6]:port" for TCP and TLS), kept in a memory_node_store. Throws dqlite::error
  /// (errc::invalid_address) naming an address the connector refuses, or for an empty list.
  basic_cluster(const executor_type& ex, basic_connector<Stream> connector,
                const std::vector<std::string>& addresses, const cluster_options& opts = {})
      : basic_cluster(ex, connector, make_address_store(connector, addresses), opts) {}

  /// The same over plain TCP (tcp_connector()).
  basic_cluster(const executor_type& ex, std::shared_ptr<node_store> store,
                const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : basic_cluster(ex, tcp_connector(), std::move(store), opts) {}

  template <node_store_like S>
    requires(!std::is_base_of_v<node_store, S> &&
             std::is_same_v<Stream, boost::asio::ip::tcp::socket>)
  basic_cluster(const executor_type& ex, std::shared_ptr<S> store, const cluster_options& opts = {})
      : basic_cluster(ex, tcp_connector(), make_node_store(std::move(store)), opts) {}

  basic_cluster(const executor_type& ex, const std::vector<std::string>& addresses,
                const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : basic_cluster(ex, tcp_connector(), addresses, opts) {}

  basic_cluster(basic_cluster&&) noexcept = default;
  basic_cluster& operator=(basic_cluster&& other) noexcept {
    if (this != &other) {
      close();
      s_ = std::move(other.s_);
    }
    return *this;
  }
  basic_cluster(const basic_cluster&) = delete;
  basic_cluster& operator=(const basic_cluster&) = delete;
  /// Closes the cluster (see close()).
  ~basic_cluster() { close(); }

  /// The strand the cluster's operations run on.
  executor_type get_executor() const { return s_->ex; }
  const cluster_options& options() const noexcept { return s_->opts; }
  /// The node store.
  const std::shared_ptr<node_store>& store() const noexcept { return s_->store; }
  /// A snapshot of the counters: discoveries, probes, redirects, leader changes, the last
  /// leader. Read it on get_executor() (e.g. from a coroutine running there) when other
  /// threads use the cluster.
  cluster_stats stats() const { return s_->stats; }
  /// The text that goes with the last completed operation: for errc::no_leader, every
  /// node asked and why it did not lead to the leader. (For tokens that do not carry it,
  /// such as callbacks or as_tuple; read it in the completion handler, or once no other
  /// operation of this cluster runs.)
  const dqlite::diagnostics& diagnostics() const noexcept { return s_->last_diag; }

  /// With cluster_options::refresh_store: why the last automatic refresh of the node store
  /// failed (the members could not be listed, or node_store::set threw: then
  /// boost::system::errc::io_error), or a default error_code when it succeeded or none
  /// ran. Such a failure does not fail the operation that reached the leader: it completes
  /// normally, with its connection. The text is in store_diagnostics(). Read them as
  /// diagnostics() (in the completion handler, or once no other operation runs).
  error_code store_error() const noexcept { return s_->store_ec; }
  const dqlite::diagnostics& store_diagnostics() const noexcept { return s_->store_diag; }

  /// Makes every running operation complete with errc::cancelled (their connections are
  /// closed) and every later one fail the same way. Returns at once.
  void close() noexcept {
    if (!s_) return;
    try {
      boost::asio::post(s_->ex, [s = s_] { s->shutdown(); });
    } catch (...) {
    }
  }

  // ---- connecting ----

  /// Finds the leader and returns a connection to it with options().connection.database
  /// open (no database when that is empty). Signature: void(error_code, connection_type).
  template <class Token = default_token_t>
  auto async_connect(Token&& token = {}) {
    return initiate<connection_type>(token, [](std::shared_ptr<state_type> s) {
      return connect_body(std::move(s));
    });
  }

  /// The leader: its id and address. Signature: void(error_code, node_info).
  template <class Token = default_token_t>
  auto async_leader(Token&& token = {}) {
    return initiate<node_info>(token, [](std::shared_ptr<state_type> s) {
      return leader_body(std::move(s));
    });
  }

  /// Replaces the content of the node store with the leader's list of members and
  /// returns that list. Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_refresh_store(Token&& token = {}) {
    return initiate<std::vector<node_info>>(token, [](std::shared_ptr<state_type> s) {
      return refresh_body(std::move(s));
    });
  }

  // ---- administration (through the leader) ----

  /// The members of the cluster, as the leader knows them.
  /// Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_cluster(Token&& token = {}) {
    return leader_request<std::vector<node_info>>(
        token, [](connection_type& c) { return c.async_cluster(detail::as_tuple_awaitable); },
        true);
  }

  /// Adds a node (ADD), then gives it its role (ASSIGN) unless that is spare, as go-dqlite
  /// does. The node must be running. Signature: void(error_code).
  /// (GCC 12 miscompiles a braced temporary inside a co_await expression, as in
  /// `co_await c.async_add({2, "host:port"})`: pass a named node_info, or use the overload
  /// below.)
  template <class Token = default_token_t>
  auto async_add(const node_info& node, Token&& token = {}) {
    return initiate<void>(token, [node](std::shared_ptr<state_type> s) {
      return add_body(std::move(s), node);
    });
  }

  /// Same as async_add(node_info{id, address, role}).
  template <class Token = default_token_t>
  auto async_add(std::uint64_t id, std::string_view address, node_role role = node_role::voter,
                 Token&& token = {}) {
    return initiate<void>(token, [node = node_info{id, std::string(address), role}](
                                     std::shared_ptr<state_type> s) {
      return add_body(std::move(s), node);
    });
  }

  /// Gives node `id` a new role. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_assign(std::uint64_t id, node_role role, Token&& token = {}) {
    return leader_request<void>(
        token,
        [id, role](connection_type& c) { return c.async_assign(id, role, detail::as_tuple_awaitable); },
        false);
  }

  /// Removes node `id` from the cluster. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_remove(std::uint64_t id, Token&& token = {}) {
    return leader_request<void>(
        token, [id](connection_type& c) { return c.async_remove(id, detail::as_tuple_awaitable); },
        false);
  }

  /// Hands leadership over to voter `id` (0: raft chooses). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_transfer(std::uint64_t id, Token&& token = {}) {
    return initiate<void>(token, [id](std::shared_ptr<state_type> s) {
      return transfer_body(std::move(s), id);
    });
  }

  /// A copy of database `name` (default: options().connection.database) from the leader.
  /// Signature: void(error_code, std::vector<dump_file>).
  template <class Token = default_token_t>
  auto async_dump(std::string_view name, Token&& token = {}) {
    return leader_request<std::vector<dump_file>>(
        token,
        [name = std::string(name)](connection_type& c) {
          return c.async_dump(name, detail::as_tuple_awaitable);
        },
        true);
  }

  // ---- administration of one node ----

  /// The failure domain and weight of the node at `address`.
  /// Signature: void(error_code, node_metadata).
  template <class Token = default_token_t>
  auto async_describe(std::string_view address, Token&& token = {}) {
    return node_request<node_metadata>(
        token, address, [](connection_type& c) { return c.async_describe(detail::as_tuple_awaitable); });
  }

  /// Sets the weight of the node at `address`. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_weight(std::string_view address, std::uint64_t weight, Token&& token = {}) {
    return node_request<void>(token, address, [weight](connection_type& c) {
      return c.async_weight(weight, detail::as_tuple_awaitable);
    });
  }

 private:
  using clock = std::chrono::steady_clock;

  static std::shared_ptr<state_type> make_state(const executor_type& ex,
                                                basic_connector<Stream> connector,
                                                std::shared_ptr<node_store> store,
                                                const cluster_options& opts) {
    detail::check_connector(connector);
    if (!store) throw error(make_error_code(errc::invalid_argument), dqlite::diagnostics("the node store is null"));
    detail::require_option(opts.probe_timeout.count() > 0, "cluster_options",
                           "probe_timeout must be positive");
    detail::require_option(opts.max_concurrent_probes > 0, "cluster_options",
                           "max_concurrent_probes must be at least 1");
    return std::make_shared<state_type>(boost::asio::make_strand(ex), std::move(store), opts,
                                        std::move(connector));
  }

  static std::shared_ptr<node_store> make_address_store(const basic_connector<Stream>& connector,
                                                        const std::vector<std::string>& addresses) {
    if (addresses.empty())
      throw error(make_error_code(errc::invalid_address), dqlite::diagnostics("the list of node addresses is empty"));
    if (connector.check_address)
      for (const auto& a : addresses)
        if (auto why = connector.check_address(a); !why.empty())
          throw error(make_error_code(errc::invalid_address), dqlite::diagnostics(why));
    return std::make_shared<memory_node_store>(addresses);
  }

  template <class T, class Token, class Body>
  auto initiate(Token& token, Body body) {
    return detail::initiate_coroutine_op<T, detail::cluster_op_hooks<Stream>>(s_, token,
                                                                             std::move(body));
  }

  template <class T, class Token, class Request>
  auto leader_request(Token& token, Request request, bool read_only) {
    return initiate<T>(token, [request = std::move(request), read_only](std::shared_ptr<state_type> s) {
      return detail::on_leader<Stream, T>(std::move(s), request, read_only);
    });
  }

  template <class T, class Token, class Request>
  auto node_request(Token& token, std::string_view address, Request request) {
    return initiate<T>(token, [address = std::string(address),
                               request = std::move(request)](std::shared_ptr<state_type> s) {
      return detail::on_node<Stream, T>(std::move(s), address, request);
    });
  }

  static boost::asio::awaitable<detail::cluster_result<connection_type>> connect_body(
      std::shared_ptr<state_type> s) {
    if (s->closed) co_return detail::cluster_result<connection_type>::cluster_closed();
    auto r = co_await detail::connect_leader<Stream>(s, s->database);
    detail::cluster_result<connection_type> out;
    out.ec = r.ec;
    out.diag = std::move(r.diag);
    if (!r.ec) out.value.emplace(std::move(*r.value->conn));
    co_return out;
  }

  static boost::asio::awaitable<detail::cluster_result<node_info>> leader_body(
      std::shared_ptr<state_type> s) {
    if (s->closed) co_return detail::cluster_result<node_info>::cluster_closed();
    auto r = co_await detail::connect_leader<Stream>(s, std::string());
    if (r.ec) co_return detail::cluster_result<node_info>::fail(r.ec, std::move(r.diag));
    detail::cluster_result<node_info> out;
    out.value.emplace(node_info{r.value->id, r.value->address, node_role::voter});
    // Keep the connection for the next administration request.
    if (!s->admin || !s->admin->is_open()) s->admin = std::move(r.value->conn);
    co_return out;
  }

  static boost::asio::awaitable<detail::cluster_result<std::vector<node_info>>> refresh_body(
      std::shared_ptr<state_type> s) {
    using result = detail::cluster_result<std::vector<node_info>>;
    if (s->closed) co_return detail::cluster_result<std::vector<node_info>>::cluster_closed();
    auto r = co_await detail::on_leader<Stream, std::vector<node_info>>(
        s, [](connection_type& c) { return c.async_cluster(detail::as_tuple_awaitable); }, true);
    if (r.ec) co_return r;
    try {
      s->store->set(*r.value);
    } catch (const std::exception& e) {
      co_return result::fail(make_error_code(boost::system::errc::io_error),
                             std::string("updating the node store failed: ") + e.what());
    }
    co_return r;
  }

  static boost::asio::awaitable<detail::cluster_result<void>> add_body(std::shared_ptr<state_type> s,
                                                                        node_info node) {
    if (s->closed) co_return detail::cluster_result<void>::cluster_closed();
    auto r = co_await detail::on_leader<Stream, void>(
        s,
        [&node](connection_type& c) {
          return c.async_add(node.id, node.address, detail::as_tuple_awaitable);
        },
        false);
    if (r.ec || node.role == node_role::spare) co_return r;
    auto id = node.id;
    auto role = node.role;
    detail::cluster_result<void> a;
    std::exception_ptr ep;
    try {
      a = co_await detail::on_leader<Stream, void>(
          s,
          [id, role](connection_type& c) {
            return c.async_assign(id, role, detail::as_tuple_awaitable);
          },
          false);
    } catch (...) {
      ep = std::current_exception();
    }
    if (ep) {
      const auto cs = co_await boost::asio::this_coro::cancellation_state;
      if (detail::was_cancelled(cs))
        a = detail::cancelled_by_caller<void>();
      else
        a = detail::cluster_result<void>::from_exception(ep);
    }
    if (a.ec)
      a.diag = "node " + std::to_string(id) + " was added as a spare, but making it a " +
               std::string(to_string(role)) + " failed: " + a.diag;
    co_return a;
  }

  static boost::asio::awaitable<detail::cluster_result<void>> transfer_body(
      std::shared_ptr<state_type> s, std::uint64_t id) {
    if (s->closed) co_return detail::cluster_result<void>::cluster_closed();
    auto r = co_await detail::on_leader<Stream, void>(
        s, [id](connection_type& c) { return c.async_transfer(id, detail::as_tuple_awaitable); },
        false);
    // The old leader is a follower now: forget it.
    if (s->admin) s->admin->close();
    s->admin.reset();
    s->last_leader.clear();
    co_return r;
  }

  std::shared_ptr<state_type> s_;
};

/// A cluster client over TCP.
using cluster = basic_cluster<boost::asio::ip::tcp::socket>;
/// A cluster client over unix sockets (constructed with a unix_connector).
using unix_cluster = basic_cluster<boost::asio::local::stream_protocol::socket>;

}  // namespace dqlite
// ---- end dqlite/cluster.hpp ----
// ---- begin dqlite/detail/io_driver.hpp ----
// The event loop of a blocking cluster client or pool: an io_context of its own that the
// threads calling the object's blocking operations run themselves, one thread at a time.
// No thread is started. A thread that waits for its operation runs the io_context when no
// other thread does (and so completes the operations of other threads too); otherwise it
// sleeps on a condition variable until its own operation completes or the running thread
// stops running the io_context, and then takes over.


#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

template <class R>
struct value_of {
  R operator()() const { return R{}; }
};

class io_driver {
 public:
  io_driver() = default;
  io_driver(const io_driver&) = delete;
  io_driver& operator=(const io_driver&) = delete;

  boost::asio::io_context& context() noexcept { return io_; }
  boost::asio::io_context::executor_type get_executor() noexcept { return io_.get_executor(); }

  /// run() for a blocking operation's optional error tail e (nothing, or error_code&,
  /// diagnostics&): with the tail a failure is reported there, without it thrown as
  /// dqlite::error.
  template <class R, class Start, class Empty, class... E>
  R run_for(Start start, Empty empty, E&... e) {
    return blocking_call(
        [&](error_code& ec, diagnostics& d) {
          return run<R>(std::move(start), ec, d, std::move(empty));
        },
        e...);
  }

  /// Calls start(token) on the io_context (so every initiation runs where the object's
  /// state lives), where token is a completion token for a void(error_code, R) operation
  /// (void(error_code) when R is void), and returns once the operation has completed:
  /// its result, or empty() (default: R{}) with ec and d set on failure.
  template <class R, class Start, class Empty = value_of<R>>
  R run(Start start, error_code& ec, diagnostics& d, Empty empty = {}) {
    if (io_.get_executor().running_in_this_thread())
      throw std::logic_error(
          "dqlite: a blocking call of a blocking_pool or blocking_cluster from inside one of "
          "its own callbacks (a log or trace function) would wait for itself");
    auto s = std::make_shared<slot<R>>();
    boost::asio::post(io_, [this, s, start = std::move(start)]() mutable {
      try {
        start(with_diagnostics(handler<R>{this, s}));
      } catch (...) {  // the initiation itself failed (a moved-from object, say)
        handler<R>{this, s}.finish(std::current_exception());
      }
    });
    wait_for(s->done);
    if (s->failure) {
      try {
        std::rethrow_exception(s->failure);
      } catch (const error& e) {
        ec = e.code();
        d = e.get_diagnostics();
      }
    } else {
      ec = {};
      d = {};
    }
    if constexpr (!std::is_void_v<R>) {
      if (s->value) return std::move(*s->value);
      return empty();
    }
  }

  /// Runs f() on the io_context and returns what it returns (at once when the calling
  /// thread is the one running it).
  template <class F>
  auto call(F f) -> decltype(f()) {
    using R = decltype(f());
    if (io_.get_executor().running_in_this_thread()) return f();
    error_code ec;
    diagnostics d;
    return run<R>(
        [f = std::move(f)](auto token) mutable {
          auto h = std::move(token.token);
          if constexpr (std::is_void_v<R>) {
            f();
            h(std::exception_ptr());
          } else {
            h(std::exception_ptr(), f());
          }
        },
        ec, d);
  }

 private:
  template <class R>
  struct slot {
    bool done = false;  // guarded by the driver's mutex
    std::exception_ptr failure;
    std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value;
  };

  template <class R>
  struct handler {
    io_driver* driver;
    std::shared_ptr<slot<R>> s;

    void operator()(std::exception_ptr ep) { finish(std::move(ep)); }
    template <class V>
    void operator()(std::exception_ptr ep, V&& v) {
      std::lock_guard<std::mutex> lk(driver->m_);
      if (s->done) return;  // (after an initiation that threw)
      if (!ep) s->value.emplace(std::forward<V>(v));
      settle(std::move(ep));
    }
    void finish(std::exception_ptr ep) {
      std::lock_guard<std::mutex> lk(driver->m_);
      if (s->done) return;
      settle(std::move(ep));
    }
    void settle(std::exception_ptr ep) {  // with m_ held
      s->failure = std::move(ep);
      s->done = true;
      driver->cv_.notify_all();
    }
  };

  // Returns once `done` (guarded by m_) is true. An exception thrown by a handler while
  // this thread ran the io_context (a user's log callback, say) is rethrown after that.
  void wait_for(const bool& done) {
    std::exception_ptr thrown;
    std::unique_lock<std::mutex> lk(m_);
    while (!done) {
      if (running_) {
        cv_.wait(lk);
        continue;
      }
      running_ = true;
      lk.unlock();
      for (;;) {
        try {
          if (io_.run_one() == 0) io_.restart();
        } catch (...) {
          if (!thrown) thrown = std::current_exception();
        }
        std::lock_guard<std::mutex> g(m_);
        if (done) break;
      }
      lk.lock();
      running_ = false;
      cv_.notify_all();  // another waiting thread takes over
    }
    lk.unlock();
    if (thrown) std::rethrow_exception(thrown);
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::mutex m_;
  std::condition_variable cv_;
  bool running_ = false;  // a thread runs io_ (guarded by m_)
};

}  // namespace dqlite::detail
// ---- end dqlite/detail/io_driver.hpp ----

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// The blocking form of dqlite::basic_cluster over TCP or unix sockets: every operation runs in the calling thread
/// and returns when it has completed. It owns an io_context, which the threads calling
/// its operations run themselves while they wait, one at a time (no thread is started):
/// discovery asks the nodes in parallel and its timeouts hold as in the asynchronous
/// client (cluster_options). One object may be used from several threads at once.
///
/// Each operation has two forms, as the blocking forms of a connection: without more
/// arguments a failure throws dqlite::error (code and text); with a trailing
/// `error_code&, diagnostics&` it is reported there and the result is empty. The errors
/// are those of the asynchronous operation of the same name (errc::no_leader with every
/// node asked and why, errc::timeout, errc::cancelled after close(), ...).
///
///   dqlite::blocking_cluster cluster({"127.0.0.1:9001", "127.0.0.1:9002"},
///                                    {.connection = {.database = "app"}});
///   dqlite::connection leader_conn = cluster.connect();  // to the leader, "app" open
///   leader_conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)");
///   auto leader = cluster.leader();
///
/// connect() returns a connection for blocking use (its asynchronous forms would need
/// the cluster's io_context to run: do not use them). It keeps the cluster's io_context
/// alive and may outlive the blocking_cluster. The object itself must outlive the calls
/// made on it. The log and trace callbacks of the options run in whichever calling thread
/// runs the io_context; a blocking call of the same object from inside one throws
/// std::logic_error (it would wait for itself).
template <class Stream = boost::asio::ip::tcp::socket>
class basic_blocking_cluster {
  static_assert(detail::is_plain_socket<Stream>,
                "dqlite: the blocking cluster client works on TCP and unix socket streams; over "
                "TLS use the asynchronous basic_cluster (tls_cluster)");

 public:
  using cluster_type = basic_cluster<Stream>;
  using connection_type = basic_connection<Stream>;

  /// A client of the nodes in `store`, reached through `connector` (see
  /// dqlite/connector.hpp: tcp_connector, unix_connector, or the caller's own over a TCP or
  /// unix socket); asks nothing yet. Throws as the basic_cluster constructor of the same
  /// arguments.
  basic_blocking_cluster(basic_connector<Stream> connector, std::shared_ptr<node_store> store,
                         const cluster_options& opts = {})
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), std::move(connector), std::move(store), opts);
  }

  /// A client of the nodes at `addresses`, reached through `connector`.
  basic_blocking_cluster(basic_connector<Stream> connector,
                         const std::vector<std::string>& addresses,
                         const cluster_options& opts = {})
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), std::move(connector), addresses, opts);
  }

  /// A client of the nodes at `addresses` ("host:port") over plain TCP; asks nothing yet.
  explicit basic_blocking_cluster(const std::vector<std::string>& addresses,
                                  const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), addresses, opts);
  }

  /// A client of the nodes in `store` over plain TCP (it updates the store with
  /// cluster_options::refresh_store).
  explicit basic_blocking_cluster(std::shared_ptr<node_store> store,
                                  const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), std::move(store), opts);
  }

  basic_blocking_cluster(basic_blocking_cluster&&) noexcept = default;
  basic_blocking_cluster& operator=(basic_blocking_cluster&& o) noexcept {
    if (this != &o) {
      if (s_ && s_->c) s_->c->close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  /// Closes the client (connections it returned stay open and usable).
  ~basic_blocking_cluster() {
    if (s_ && s_->c) s_->c->close();  // posted to the client's strand; cannot fail
  }

  const cluster_options& options() const { return cl().options(); }
  const std::shared_ptr<node_store>& store() const { return cl().store(); }
  /// A snapshot of the counters (see cluster_stats).
  cluster_stats stats() const {
    cl();
    return s_->driver.call([s = s_] { return s->c->stats(); });
  }

  /// Makes every running operation complete with errc::cancelled and every later one fail
  /// the same way (as basic_cluster::close). Returns without waiting for running ones.
  void close() {
    if (s_) s_->driver.call([s = s_] { s->c->close(); });
  }

  /// Finds the leader and returns a connection to it with options().connection.database
  /// open (see basic_cluster::async_connect).
  template <class... E>
    requires detail::error_tail_of<E...>
  connection_type connect(E&... e) {
    return call_or<connection_type>([s = s_](auto token) {
      auto h = std::move(token.token);
      s->c->async_connect(with_diagnostics(
          [s, h = std::move(h)](std::exception_ptr ep, connection_type c) mutable {
            if (!ep) {
              // From here on the connection is used through its blocking forms only.
              const auto& impl = detail::connection_access::impl(c);
              impl->keep_alive = s;
              impl->release_timer();
            }
            std::move(h)(std::move(ep), std::move(c));
          }));
    }, [] { return connection_type(own_io_context, connection_options{}); }, e...);
  }

  /// The leader: its id and address.
  template <class... E>
    requires detail::error_tail_of<E...>
  node_info leader(E&... e) {
    return call<node_info>([s = s_](auto token) { s->c->async_leader(std::move(token)); }, e...);
  }

  /// Replaces the store's content with the leader's list of members; returns the list.
  template <class... E>
    requires detail::error_tail_of<E...>
  std::vector<node_info> refresh_store(E&... e) {
    return call<std::vector<node_info>>(
        [s = s_](auto token) { s->c->async_refresh_store(std::move(token)); }, e...);
  }

  /// The members of the cluster, as the leader knows them.
  template <class... E>
    requires detail::error_tail_of<E...>
  std::vector<node_info> cluster(E&... e) {
    return call<std::vector<node_info>>(
        [s = s_](auto token) { s->c->async_cluster(std::move(token)); }, e...);
  }

  /// Adds a running node, then assigns its role unless that is spare.
  template <class... E>
    requires detail::error_tail_of<E...>
  void add(const node_info& node, E&... e) {
    call<void>([s = s_, node](auto token) { s->c->async_add(node, std::move(token)); }, e...);
  }

  /// Same as add(node_info{id, address, role}).
  template <class... E>
    requires detail::error_tail_of<E...>
  void add(std::uint64_t id, std::string_view address, node_role role, E&... e) {
    add(node_info{id, std::string(address), role}, e...);
  }

  /// Same as add(node_info{id, address, node_role::voter}).
  template <class... E>
    requires detail::error_tail_of<E...>
  void add(std::uint64_t id, std::string_view address, E&... e) {
    add(node_info{id, std::string(address), node_role::voter}, e...);
  }

  /// Gives node `id` a new role.
  template <class... E>
    requires detail::error_tail_of<E...>
  void assign(std::uint64_t id, node_role role, E&... e) {
    call<void>([s = s_, id, role](auto token) { s->c->async_assign(id, role, std::move(token)); },
               e...);
  }

  /// Removes node `id` from the cluster.
  template <class... E>
    requires detail::error_tail_of<E...>
  void remove(std::uint64_t id, E&... e) {
    call<void>([s = s_, id](auto token) { s->c->async_remove(id, std::move(token)); }, e...);
  }

  /// Hands leadership over to voter `id` (0: raft chooses).
  template <class... E>
    requires detail::error_tail_of<E...>
  void transfer(std::uint64_t id, E&... e) {
    call<void>([s = s_, id](auto token) { s->c->async_transfer(id, std::move(token)); }, e...);
  }

  /// A copy of database `name` from the leader.
  template <class... E>
    requires detail::error_tail_of<E...>
  std::vector<dump_file> dump(std::string_view name, E&... e) {
    return call<std::vector<dump_file>>(
        [s = s_, name = std::string(name)](auto token) { s->c->async_dump(name, std::move(token)); },
        e...);
  }

  /// The failure domain and weight of the node at `address`.
  template <class... E>
    requires detail::error_tail_of<E...>
  node_metadata describe(std::string_view address, E&... e) {
    return call<node_metadata>([s = s_, a = std::string(address)](auto token) {
      s->c->async_describe(a, std::move(token));
    }, e...);
  }

  /// Sets the weight of the node at `address`.
  template <class... E>
    requires detail::error_tail_of<E...>
  void weight(std::string_view address, std::uint64_t w, E&... e) {
    call<void>([s = s_, a = std::string(address), w](auto token) {
      s->c->async_weight(a, w, std::move(token));
    }, e...);
  }

 private:
  struct state {
    detail::io_driver driver;         // destroyed last: the io_context outlives the client
    std::optional<cluster_type> c;
    ~state() {
      if (c) c->close();
    }
  };

  const cluster_type& cl() const {
    if (!s_) throw std::logic_error("dqlite: use of a moved-from blocking_cluster");
    return *s_->c;
  }

  template <class R, class Start, class... E>
  R call(Start start, E&... e) {
    return call_or<R>(std::move(start), detail::value_of<R>{}, e...);
  }

  // empty(): what a failed call returns.
  template <class R, class Start, class Empty, class... E>
  R call_or(Start start, Empty empty, E&... e) {
    cl();
    return s_->driver.template run_for<R>(std::move(start), std::move(empty), e...);
  }

  std::shared_ptr<state> s_;
};

/// The TCP form.
using blocking_cluster = basic_blocking_cluster<boost::asio::ip::tcp::socket>;

/// The unix-socket form (nodes reached through unix_connector()).
using unix_blocking_cluster = basic_blocking_cluster<boost::asio::local::stream_protocol::socket>;

}  // namespace dqlite
// ---- end dqlite/blocking_cluster.hpp ----
// ---- begin dqlite/blocking_pool.hpp ----
// dqlite::blocking_pool: a pool of connections to the leader for programs without an
// event loop of their own, usable from many threads at once.

// ---- begin dqlite/detail/pool/transaction_retry.hpp ----
// When a pooled transaction runs again: the one rule of basic_pool::async_transaction and
// blocking_pool::transaction.

// ---- begin dqlite/pool_options.hpp ----
// Options and counters of the connection pool.


#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dqlite {

/// How a pool behaves. Designated initialisers:
///   std::vector<std::string> nodes{"10.0.0.1:9001", "10.0.0.2:9001"};
///   auto pool = co_await dqlite::async_create_pool(ex, nodes, {.database = "app", .max_size = 16});
/// (g++ 12 cannot compile a braced list of string literals inside a co_await expression:
/// "array used as initializer"; name the list first, as above.)
/// The struct holds no owning members (so a temporary of it is safe inside a co_await
/// expression); the pool keeps its own copy of the database name.
struct pool_options {
  /// The database the pool's connections open (replaces cluster.connection.database).
  std::string_view database = "default";
  /// Connections opened (in parallel) when the pool is created and kept open afterwards:
  /// after a leader change the pool refills to this size in the background.
  std::size_t min_size = 0;
  /// Most connections open at once (checked out, idle and being opened). At least 1.
  std::size_t max_size = 10;
  /// Bound on async_acquire (and on the acquire step of the convenience calls); on expiry
  /// it fails with errc::timeout. Zero or less: no bound.
  std::chrono::milliseconds acquire_timeout{30'000};
  /// An idle connection unused for longer than this is checked with `SELECT 1` before it
  /// is handed out (a dead one is discarded and the next one tried).
  std::chrono::milliseconds health_check_after{1'000};
  /// Connections older than this (since they were opened) are closed instead of being
  /// handed out again: when they come back, and when found idle; the pool refills to
  /// min_size. For load balancers, credentials or servers that should see connections
  /// renewed. Zero (the default): no limit. As database/sql's SetConnMaxLifetime.
  std::chrono::milliseconds max_lifetime{0};
  /// Idle connections unused for this long are closed, down to min_size. Zero (the
  /// default): kept. As database/sql's SetConnMaxIdleTime.
  std::chrono::milliseconds max_idle_time{0};
  /// When positive, a background pass runs at this interval: idle connections neither used
  /// nor checked for health_check_after are checked with `SELECT 1` one at a time (a
  /// failed one is discarded, and a connection error empties the pool as any leader change
  /// does; a check does not count as use for max_idle_time), and those past max_lifetime
  /// or max_idle_time are closed. Zero (the default): idle connections are checked only
  /// when handed out. With max_lifetime or max_idle_time set, the pass also runs at a
  /// quarter of the shorter one (at least 10 ms) when that is more often.
  std::chrono::milliseconds health_check_interval{0};
  /// How long async_close waits for checked-out connections to come back.
  std::chrono::milliseconds close_timeout{5'000};
  /// The convenience reads (async_fetch, async_fetchval, async_fetchone) are run once more
  /// on a fresh connection after a connection or leadership error. Writes never are.
  bool retry_reads = true;
  /// The convenience calls (reads and writes) that fail with SQLITE_BUSY or SQLITE_LOCKED
  /// (another connection holds the write lock: the statement was not applied) are run
  /// again on the same connection, with a short growing pause, for up to this long. Zero:
  /// never. (A multi-statement SQL text whose later statement is busy would run its
  /// earlier statements again: keep such texts idempotent, or use a pooled connection.)
  std::chrono::milliseconds busy_timeout{5'000};
  /// Leader discovery, retries and backoff of new connections, and the connections'
  /// own options (timeouts, caps).
  cluster_options cluster{};
  /// Logging hook for the pool's events (connections opened, discarded and why, health
  /// check failures, leader changes, busy and read retries: see docs/observability.md),
  /// at or above log_threshold, on the pool's strand, never concurrently for one pool. The
  /// cluster client (and its connections) use it too when cluster.log is not set.
  log_function log{};
  log_level log_threshold = log_level::info;
  /// Tracing hook of the pool's connections, when neither cluster.trace nor
  /// cluster.connection.trace is set (see request_trace).
  trace_function trace{};
};

/// How basic_pool::async_transaction runs a transaction again after a failure that left
/// nothing applied (busy, or a leader change before COMMIT was sent).
struct transaction_retry {
  /// Attempts in all, the first included (at least 1). With the default pauses, 20
  /// attempts pause 3.8-7.6 s in all, about a single statement's busy_timeout: a
  /// transaction competing with a steady flow of writes on other connections can be
  /// refused as busy many times in a row before it finds the write lock free.
  unsigned max_attempts = 20;
  /// No attempt starts later than this after the call. Zero or less: max_attempts only.
  std::chrono::milliseconds timeout{10'000};
  /// Pause before attempt n + 1: backoff_base * 2^(n - 1), at most backoff_cap, each a
  /// random duration between half of that and all of it.
  std::chrono::milliseconds backoff_base{20};
  std::chrono::milliseconds backoff_cap{500};
};

/// Counters of a pool (see basic_pool::stats).
struct pool_stats {
  std::size_t idle = 0;         ///< open connections waiting in the pool
  std::size_t in_use = 0;       ///< checked out (or being checked / reset)
  std::size_t connecting = 0;   ///< being opened
  std::size_t waiting = 0;      ///< acquires waiting for a connection
  std::uint64_t opened = 0;     ///< connections opened since the pool was created
  std::uint64_t discarded = 0;  ///< connections dropped (broken, failed check, leader change)
  std::uint64_t leader_changes = 0;  ///< connection or leadership errors that emptied the pool
  /// Connections given back that went through a reset before their next use (a
  /// transaction that may be open, a dropped cursor or statement, or an operation still
  /// running); the others are given back without sending anything.
  std::uint64_t resets = 0;
  std::uint64_t connect_failures = 0;       ///< attempts to open a connection that failed
  std::uint64_t health_check_failures = 0;  ///< idle connections that failed their check
  std::uint64_t busy_retries = 0;  ///< statements run again after SQLITE_BUSY / SQLITE_LOCKED
  std::uint64_t read_retries = 0;  ///< reads run again on a fresh connection (retry_reads)
  std::uint64_t acquires = 0;         ///< connections handed out (acquires that succeeded)
  std::uint64_t waits = 0;            ///< acquires that had to wait (no idle connection)
  std::chrono::microseconds wait_time{0};  ///< total time those waited
  std::uint64_t acquire_timeouts = 0;      ///< acquires that failed with errc::timeout
  std::uint64_t expired = 0;  ///< connections closed for max_lifetime or max_idle_time
  std::uint64_t background_checks = 0;  ///< idle connections checked by the background pass
  std::uint64_t transaction_retries = 0;  ///< transactions run again (async_transaction)
};

}  // namespace dqlite
// ---- end dqlite/pool_options.hpp ----

#include <algorithm>
#include <chrono>
#include <string>

namespace dqlite::detail {

/// The attempts of one pooled transaction.
class transaction_attempts {
 public:
  explicit transaction_attempts(const transaction_retry& r)
      : retry_(r), attempts_(std::max(r.max_attempts, 1u)) {
    pauses_.backoff_base = r.backoff_base;
    pauses_.backoff_cap = r.backoff_cap;
    pauses_.backoff_factor = 2;
  }

  /// After attempt `attempt` (from 1) failed with `ec` (and the text `text`): the pause before the next attempt,
  /// or throws the dqlite::error that ends the transaction. `acquired`: a connection had
  /// been acquired (a failed acquire ends it at once). Runs again only after a failure
  /// that left nothing applied: busy (SQLITE_BUSY, SQLITE_LOCKED), or a connection or
  /// leadership error before the COMMIT was sent; never after errc::outcome_unknown.
  std::chrono::milliseconds after_failure(unsigned attempt, bool acquired, error_code ec,
                                          std::string text);

  /// The error for a pause between attempts that was cancelled.
  error cancelled() const;

 private:
  transaction_retry retry_;
  unsigned attempts_;
  cluster_options pauses_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::string last_text_;
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/transaction_retry.ipp ----
// Definitions of detail/pool/transaction_retry.hpp (see detail/config.hpp).


#include <string>

namespace dqlite::detail {

DQLITE_DECL std::chrono::milliseconds transaction_attempts::after_failure(unsigned attempt, bool acquired, error_code ec,
                                        std::string text) {
  if (text.empty()) text = ec.message();
  const bool unknown = is_outcome_unknown(ec);
  const bool again = acquired && !unknown && !is_cancelled(ec) &&
                     ec != make_error_code(errc::used_after_fork) &&
                     (is_busy(ec) || is_connection_error(ec));
  const auto pause = jittered(backoff_delay(pauses_, attempt));
  const bool in_time = retry_.timeout.count() <= 0 ||
                       std::chrono::steady_clock::now() + pause - start_ < retry_.timeout;
  if (again && attempt < attempts_ && in_time) {
    last_text_ = std::move(text);
    return pause;
  }
  std::string why;
  if (unknown)
    why = "the transaction may have been applied (its outcome is unknown), so it was "
          "not run again";
  else if (again)
    why = "the transaction failed " + std::to_string(attempt) + " time(s); " +
          (attempt >= attempts_
               ? "no attempt is left (max_attempts " + std::to_string(attempts_) + ")"
               : std::string("retry.timeout has passed"));
  else
    why = "the transaction failed (attempt " + std::to_string(attempt) + ")";
  throw error(ec, diagnostics(why + ": " + text));
}

DQLITE_DECL error transaction_attempts::cancelled() const {
  return error(make_error_code(errc::cancelled),
               diagnostics("the transaction was cancelled while waiting to run again "
                           "(after: " + last_text_ + ")"));
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/transaction_retry.ipp ----
#endif
// ---- end dqlite/detail/pool/transaction_retry.hpp ----
// ---- begin dqlite/pool.hpp ----
// A pool of connections to the leader of a dqlite cluster. Its parts: pool_options.hpp,
// detail/pool/core.hpp (the pool's state and operations).

// ---- begin dqlite/detail/pool/core.hpp ----
// The state of a pool (connections, waiters, limits, health, leader changes), independent
// of how connections are made, and the adapter that completes a pool operation from its
// coroutine.

// ---- begin dqlite/detail/pool/slots.hpp ----
// The pool's connections, one slot each, with an explicit state and the transitions that
// are allowed between states. No I/O and no connection objects: the pool core moves a
// slot on each event, and the counts the pool reports (and its growth decisions) are read
// from here, so that no counter is adjusted by hand across coroutines.


#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace dqlite::detail {

/// Where one connection of a pool is.
enum class slot_state : std::uint8_t {
  connecting,  ///< being opened (leader discovery, connect, handshake)
  retry_wait,  ///< its open failed; waiting before the next attempt
  idle,        ///< open, in the pool, not in use
  checking,    ///< taken out of the pool to be checked (SELECT 1) before hand-out or in the background
  in_use,      ///< checked out by a caller
  resetting    ///< given back, being reset (ROLLBACK, FINALIZE) before it is idle again
};

inline const char* to_string(slot_state s) noexcept {
  switch (s) {
    case slot_state::connecting: return "connecting";
    case slot_state::retry_wait: return "retry_wait";
    case slot_state::idle: return "idle";
    case slot_state::checking: return "checking";
    case slot_state::in_use: return "in_use";
    case slot_state::resetting: return "resetting";
  }
  return "?";
}

/// Whether a slot may go from `from` to `to`.
///
///   connecting -> idle | in_use (opened: kept, or handed to a waiter) | retry_wait
///   retry_wait -> connecting
///   idle       -> checking | in_use
///   checking   -> in_use (passed, for an acquire) | idle (passed, or the acquire was
///                 cancelled: back unused)
///   in_use     -> resetting | idle | in_use (given back: reset first, or kept at once,
///                 or handed straight to a waiter)
///   resetting  -> idle | in_use
/// Any slot may end (its connection closed, or its open given up).
constexpr bool slot_transition_allowed(slot_state from, slot_state to) noexcept {
  using s = slot_state;
  switch (from) {
    case s::connecting: return to == s::idle || to == s::in_use || to == s::retry_wait;
    case s::retry_wait: return to == s::connecting;
    case s::idle: return to == s::checking || to == s::in_use;
    case s::checking: return to == s::in_use || to == s::idle;
    case s::in_use: return to == s::resetting || to == s::idle || to == s::in_use;
    case s::resetting: return to == s::idle || to == s::in_use;
  }
  return false;
}

/// The slots of a pool: an id per connection, its state, when it was opened and since when
/// it is in its state. A transition that the table does not allow, or from a state the slot
/// is not in, is a bug of the pool: it throws std::logic_error naming both states.
class slot_table {
 public:
  using clock = std::chrono::steady_clock;
  using id_type = std::uint64_t;

  struct slot {
    slot_state state = slot_state::connecting;
    clock::time_point born{};   ///< when its connection was opened (set on leaving connecting)
    clock::time_point since{};  ///< when it entered its state
    clock::time_point checked{};  ///< when it last passed a check while idle (or never)
  };

  /// A new slot, connecting.
  id_type open(clock::time_point now);

  /// Moves slot `id` from `from` to `to` at `now`.
  void move(id_type id, slot_state from, slot_state to, clock::time_point now);

  /// Slot `id` (in state `from`) ends.
  void end(id_type id, slot_state from);

  /// Slot `id` passed a check at `now` (its idle time goes on: `since` is kept).
  void mark_checked(id_type id, clock::time_point now);

  bool contains(id_type id) const;
  const slot& get(id_type id) const;

  std::size_t count(slot_state s) const noexcept { return counts_[index(s)]; }
  std::size_t total() const noexcept { return slots_.size(); }
  /// Being opened, or waiting to be opened again.
  std::size_t opening() const noexcept {
    return count(slot_state::connecting) + count(slot_state::retry_wait);
  }
  /// Out of the pool: checked out, being checked or reset.
  std::size_t busy() const noexcept {
    return count(slot_state::checking) + count(slot_state::in_use) +
           count(slot_state::resetting);
  }

 private:
  static constexpr std::size_t index(slot_state s) noexcept { return static_cast<std::size_t>(s); }

  slot& at(id_type id, slot_state expected);

  std::unordered_map<id_type, slot> slots_;
  std::size_t counts_[6] = {};
  id_type last_ = 0;
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- begin dqlite/impl/slots.ipp ----
// Definitions of detail/pool/slots.hpp (see detail/config.hpp).


namespace dqlite::detail {

DQLITE_DECL slot_table::id_type slot_table::open(clock::time_point now) {
  const id_type id = ++last_;
  slots_.emplace(id, slot{slot_state::connecting, {}, now});
  ++counts_[index(slot_state::connecting)];
  return id;
}

DQLITE_DECL void slot_table::move(id_type id, slot_state from, slot_state to,
                                  clock::time_point now) {
  slot& s = at(id, from);
  if (!slot_transition_allowed(from, to))
    throw std::logic_error(std::string("pool: a connection cannot go from ") + to_string(from) +
                           " to " + to_string(to));
  if (from == slot_state::connecting && to != slot_state::retry_wait) s.born = now;
  --counts_[index(from)];
  ++counts_[index(to)];
  s.state = to;
  s.since = now;
}

DQLITE_DECL void slot_table::end(id_type id, slot_state from) {
  at(id, from);
  --counts_[index(from)];
  slots_.erase(id);
}

DQLITE_DECL const slot_table::slot& slot_table::get(id_type id) const {
  auto it = slots_.find(id);
  if (it == slots_.end()) throw std::logic_error("pool: no such connection slot");
  return it->second;
}

DQLITE_DECL slot_table::slot& slot_table::at(id_type id, slot_state expected) {
  auto it = slots_.find(id);
  if (it == slots_.end()) throw std::logic_error("pool: no such connection slot");
  if (it->second.state != expected)
    throw std::logic_error(std::string("pool: a connection is ") + to_string(it->second.state) +
                           ", not " + to_string(expected));
  return it->second;
}

DQLITE_DECL void slot_table::mark_checked(id_type id, clock::time_point now) {
  at(id, slot_state::checking).checked = now;
}

DQLITE_DECL bool slot_table::contains(id_type id) const {
  return slots_.count(id) != 0;
}

}  // namespace dqlite::detail
// ---- end dqlite/impl/slots.ipp ----
#endif
// ---- end dqlite/detail/pool/slots.hpp ----

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

template <class Conn, class Connector>
class pooled_handle;

namespace detail {

/// The state of a pool, independent of how connections are made. Conn needs is_open(),
/// broken_by() and close(); Connector needs connect() -> awaitable<cluster_result<Conn>>,
/// reset(Conn&) and ping(Conn&) -> awaitable<error_code>, and close(); optionally
/// needs_reset(const Conn&) -> bool (without it every connection given back is reset). Every
/// member is
/// used on `ex` only (a strand when the pool may be used from several threads).
template <class Conn, class Connector>
class pool_core : public std::enable_shared_from_this<pool_core<Conn, Connector>> {
 public:
  using clock = std::chrono::steady_clock;
  using handle_type = pooled_handle<Conn, Connector>;

  pool_core(boost::asio::any_io_executor e, Connector c, const pool_options& o)
      : ex(std::move(e)), connector(std::move(c)), opts(o), forks(fork_generation()) {}

  boost::asio::any_io_executor ex;
  Connector connector;
  pool_options opts;
  std::uint64_t forks;  ///< fork generation the pool belongs to (no getpid() per call)

  using slot_id = slot_table::id_type;
  struct idle_conn {
    Conn conn;
    slot_id slot;
  };
  struct waiter {
    explicit waiter(const boost::asio::any_io_executor& e) : ready(e) {}
    async_event ready;  ///< notified when a connection is handed over or the pool closes
    std::optional<Conn> conn;
    slot_id slot = 0;
    bool closed = false;
  };

  std::vector<idle_conn> idle;  ///< the back is the most recently returned
  std::deque<std::shared_ptr<waiter>> waiters;
  slot_table slots;  ///< every connection's state (idle ones are also in `idle`)
  std::uint64_t generation = 0;  ///< bumped by each leader change
  std::uint64_t opened = 0;
  std::uint64_t discarded = 0;
  std::uint64_t leader_changes = 0;
  std::uint64_t resets = 0;
  std::string last_connect_error;  ///< the latest failure to open a connection (bounded)
  std::string connect_cause;       ///< the latest such failure that was not a timeout
  bool closed = false;
  std::shared_ptr<async_event> drained;  ///< notified when a slot settles

  std::size_t total() const noexcept { return slots.total(); }

  std::uint64_t connect_failures = 0;
  std::uint64_t health_check_failures = 0;
  std::uint64_t busy_retries = 0;
  std::uint64_t read_retries = 0;
  std::uint64_t acquires = 0;
  std::uint64_t waits = 0;
  clock::duration wait_time{};
  std::uint64_t acquire_timeouts = 0;
  std::uint64_t expired = 0;
  std::uint64_t background_checks = 0;
  std::uint64_t transaction_retries = 0;
  std::shared_ptr<boost::asio::steady_timer> maintenance;  ///< the background sweep's timer

  pool_stats stats() const {
    pool_stats st;
    st.idle = idle.size();
    st.in_use = slots.busy();
    st.connecting = slots.opening();
    st.waiting = waiters.size();
    st.opened = opened;
    st.discarded = discarded;
    st.leader_changes = leader_changes;
    st.resets = resets;
    st.connect_failures = connect_failures;
    st.health_check_failures = health_check_failures;
    st.busy_retries = busy_retries;
    st.read_retries = read_retries;
    st.acquires = acquires;
    st.waits = waits;
    st.wait_time = std::chrono::duration_cast<std::chrono::microseconds>(wait_time);
    st.acquire_timeouts = acquire_timeouts;
    st.expired = expired;
    st.background_checks = background_checks;
    st.transaction_retries = transaction_retries;
    return st;
  }

  /// The pool's logging hook.
  logger log() const noexcept { return logger{opts.log, opts.log_threshold}; }

  /// A connection was opened.
  void note_opened() {
    ++opened;
    log()(log_level::debug, "pool_connection_opened", [&] {
      return "a connection was opened (" + std::to_string(opened) + " so far; " +
             std::to_string(total()) + " open or being opened)";
    });
  }

  /// errc::used_after_fork or errc::pool_closed when the pool cannot serve.
  error_code check_usable(std::string& diag) const {
    if (fork_generation() != forks) {
      diag = "the pool was created in another process (before fork()); create a new pool in "
             "this process";
      return make_error_code(errc::used_after_fork);
    }
    if (closed) {
      diag = "the pool was closed";
      return make_error_code(errc::pool_closed);
    }
    return {};
  }

  std::string describe_counts() const {
    std::string s = "in use: " + std::to_string(slots.busy()) +
                    ", idle: " + std::to_string(idle.size()) +
                    ", connecting: " + std::to_string(slots.opening()) +
                    ", waiting: " + std::to_string(waiters.size()) +
                    ", max_size: " + std::to_string(opts.max_size);
    if (last_connect_error.empty())
      s += "; last connect error: none";
    else if (connect_cause.empty() || connect_cause == last_connect_error)
      s += "; last connect error: " + last_connect_error;
    else
      s += "; last connect error: " + connect_cause + " (later attempts timed out: " +
           last_connect_error + ")";
    return s;
  }

  /// Longest text kept of one connect failure, in bytes.
  static constexpr std::size_t max_failure_text = 1024;

  /// A connection could not be opened: keeps a bounded text of why. A timeout (often an
  /// attempt left little time by an earlier failure) does not replace the cause of an
  /// earlier failure in the messages.
  void note_connect_failure(const error_code& ec, const std::string& diag) {
    std::string text = diag.empty() ? ec.message() : diag;
    if (text.size() > max_failure_text) {
      const std::size_t full = text.size();
      text.resize(wire::message_prefix(text, max_failure_text).size());
      text += " [... " + std::to_string(full - text.size()) + " more bytes]";
    }
    ++connect_failures;
    log()(log_level::warning, "pool_connect_failed",
          [&] { return "opening a connection failed: " + text; });
    const bool timeout = ec == make_error_code(errc::timeout) ||
                         ec == make_error_code(boost::system::errc::timed_out);
    if (!timeout) connect_cause = text;
    last_connect_error = std::move(text);
  }

  /// Closes a connection the pool will not use again, and ends its slot (in state
  /// `from`); why: for the log.
  void discard(Conn& c, slot_id slot, slot_state from, const char* why) {
    slots.end(slot, from);
    c.close();
    ++discarded;
    log()(log_level::info, "pool_connection_discarded",
          [&] { return std::string("a connection was discarded: ") + why; });
  }

  /// A connection or leadership error was seen: the idle connections point at a node that
  /// may not lead any more (or is gone). Drop them; the next ones go through discovery.
  void note_error(const error_code& ec) {
    // A cancellation closes a connection because its caller asked, not because of the node.
    if (!ec || !is_connection_error(ec) || ec == make_error_code(errc::used_after_fork) ||
        is_cancelled(ec))
      return;
    ++generation;
    ++leader_changes;
    log()(log_level::warning, "pool_leader_change", [&] {
      return "a connection failed (" + ec.message() + "): the leader may have changed; " +
             std::to_string(idle.size()) + " idle connection(s) dropped";
    });
    for (auto& ic : idle) discard(ic.conn, ic.slot, slot_state::idle, "the leader may have changed");
    idle.clear();
    grow();
  }

  /// Whether a connection opened at `born` has outlived max_lifetime.
  bool too_old(clock::time_point born, clock::time_point now) const {
    return opts.max_lifetime.count() > 0 && now - born >= opts.max_lifetime;
  }
  /// Whether an idle connection has been idle for max_idle_time, and the pool may close it
  /// (it keeps min_size connections).
  bool idle_too_long(const idle_conn& ic, clock::time_point now) const {
    return opts.max_idle_time.count() > 0 && now - slots.get(ic.slot).since >= opts.max_idle_time &&
           total() > opts.min_size;
  }
  clock::time_point born(slot_id slot) const { return slots.get(slot).born; }
  /// Since when an idle connection has gone without being used or checked.
  clock::time_point unchecked_since(slot_id slot) const {
    const auto& s = slots.get(slot);
    return std::max(s.since, s.checked);
  }
  /// Closes a connection that outlived max_lifetime or max_idle_time.
  void expire(Conn& c, slot_id slot, slot_state from, const char* why) {
    ++expired;
    discard(c, slot, from, why);
  }
  /// Closes an idle connection past max_lifetime or max_idle_time; false when it is kept.
  bool expire_if_due(idle_conn& ic, clock::time_point now) {
    const bool old = too_old(born(ic.slot), now);
    if (!old && !idle_too_long(ic, now)) return false;
    expire(ic.conn, ic.slot, slot_state::idle,
           old ? "it reached max_lifetime" : "it was idle for max_idle_time");
    return true;
  }

  /// Hands a ready connection (its slot in state `from`) to the first waiter, or keeps it
  /// idle.
  void deliver(Conn c, slot_id slot, slot_state from) {
    if (closed) {
      discard(c, slot, from, "the pool is closed");
      return;
    }
    while (!waiters.empty()) {
      auto w = std::move(waiters.front());
      waiters.pop_front();
      if (w->conn || w->closed) continue;
      w->conn.emplace(std::move(c));
      w->slot = slot;
      slots.move(slot, from, slot_state::in_use, clock::now());
      w->ready.notify_all();
      return;
    }
    slots.move(slot, from, slot_state::idle, clock::now());
    idle.push_back(idle_conn{std::move(c), slot});
  }

  /// Whether one more connection is wanted (for a waiter, or up to min_size), counting
  /// `except` slots fewer (a slot being opened that asks whether it is still needed).
  bool wants_more(std::size_t except = 0) const {
    if (closed) return false;
    const std::size_t all = total() - except;
    if (all >= opts.max_size) return false;
    return waiters.size() > slots.opening() - except || all < opts.min_size;
  }

  /// Starts opening connections for the waiters and up to min_size.
  void grow() {
    while (wants_more()) {
      const slot_id slot = slots.open(clock::now());
      try {
        boost::asio::co_spawn(ex, connect_one(this->shared_from_this(), slot),
                              boost::asio::detached);
      } catch (...) {
        slots.end(slot, slot_state::connecting);
        return;
      }
    }
  }

  // One connection from the connector; an exception it throws becomes a failure.
  static boost::asio::awaitable<cluster_result<Conn>> connect_safely(std::shared_ptr<pool_core> s) {
    std::exception_ptr ep;
    try {
      co_return co_await s->connector.connect();
    } catch (...) {
      ep = std::current_exception();
    }
    co_return cluster_result<Conn>::from_exception(ep);
  }

  /// Opens the connection of `slot` (connecting), and again after a pause (retry_wait)
  /// while it is still wanted.
  static boost::asio::awaitable<void> connect_one(std::shared_ptr<pool_core> s, slot_id slot) {
    for (;;) {
      std::optional<cluster_result<Conn>> r;
      r.emplace(co_await connect_safely(s));
      if (!r->ec && r->value) {
        s->note_opened();
        s->connect_cause.clear();  // a new run of failures has its own cause
        s->deliver(std::move(*r->value), slot, slot_state::connecting);
        s->notify();
        co_return;
      }
      s->note_connect_failure(r->ec, r->diag);
      if (!s->wants_more(1)) {
        s->slots.end(slot, slot_state::connecting);
        s->notify();
        co_return;
      }
      // Still needed: try again after a pause (the cluster client retried already).
      s->slots.move(slot, slot_state::connecting, slot_state::retry_wait, clock::now());
      auto pause = std::max(s->opts.cluster.backoff_base, std::chrono::milliseconds(20));
      dependent_t<Conn, boost::asio::steady_timer> t(s->ex, pause);
      co_await t.async_wait(as_tuple_awaitable);
      if (!s->wants_more(1)) {
        s->slots.end(slot, slot_state::retry_wait);
        s->notify();
        co_return;
      }
      s->slots.move(slot, slot_state::retry_wait, slot_state::connecting, clock::now());
    }
  }

  void notify() {
    if (drained) drained->notify_all();
  }

  /// Checks out a connection: an idle one (checked first), or the next one that comes
  /// back or is opened, in the order of the requests.
  boost::asio::awaitable<cluster_result<handle_type>> acquire() {
    using result = cluster_result<handle_type>;
    auto self = this->shared_from_this();
    std::string diag;
    if (auto ec = check_usable(diag)) co_return result::fail(ec, diag);
    // A cancelled acquire leaves the pool as it was: no connection is lost or discarded
    // because of it.
    const auto cs = co_await boost::asio::this_coro::cancellation_state;
    const auto start = clock::now();
    while (waiters.empty() && !idle.empty()) {
      if (was_cancelled(cs)) co_return cancelled_by_caller<handle_type>();
      idle_conn ic = std::move(idle.back());
      idle.pop_back();
      if (!ic.conn.is_open()) {
        note_error(ic.conn.broken_by());
        discard(ic.conn, ic.slot, slot_state::idle, "it was closed while idle");
        continue;
      }
      if (expire_if_due(ic, clock::now())) continue;
      const auto idle_since = slots.get(ic.slot).since;
      if (clock::now() - unchecked_since(ic.slot) <= opts.health_check_after) {
        slots.move(ic.slot, slot_state::idle, slot_state::in_use, clock::now());
      } else {
        slots.move(ic.slot, slot_state::idle, slot_state::checking, clock::now());
        const auto gen = generation;
        error_code ec;
        try {
          ec = co_await connector.ping(ic.conn);
        } catch (...) {
          ec = make_error_code(errc::not_connected);
        }
        if (was_cancelled(cs) && !closed) {
          // The check was cut short (an interrupted check leaves the connection open): the
          // connection goes back unchecked, to be checked by the next acquire.
          if (!ic.conn.is_open()) {
            note_error(ic.conn.broken_by());
            discard(ic.conn, ic.slot, slot_state::checking, "its health check broke it");
          } else if (gen != generation) {
            discard(ic.conn, ic.slot, slot_state::checking, "it is from before a leader change");
          } else if (!waiters.empty()) {
            deliver(std::move(ic.conn), ic.slot, slot_state::checking);  // a waiter came
          } else {
            // Idle again as it was: still unchecked.
            slots.move(ic.slot, slot_state::checking, slot_state::idle, idle_since);
            idle.push_back(std::move(ic));
          }
          notify();
          grow();
          co_return cancelled_by_caller<handle_type>();
        }
        if (ec || !ic.conn.is_open() || closed) {
          if (!closed) {
            ++health_check_failures;
            log()(log_level::warning, "pool_health_check_failed", [&] {
              return "an idle connection failed its health check: " +
                     (ec ? ec.message() : std::string("the connection was closed"));
            });
          }
          discard(ic.conn, ic.slot, slot_state::checking,
                  closed ? "the pool is closed" : "it failed its health check");
          notify();
          if (closed) co_return result::fail(make_error_code(errc::pool_closed), "the pool was closed");
          if (is_connection_error(ec)) note_error(ec);
          grow();
          continue;
        }
        slots.move(ic.slot, slot_state::checking, slot_state::in_use, clock::now());
      }
      ++acquires;
      result r;
      r.value.emplace(self, std::move(ic.conn), generation, ic.slot);
      co_return r;
    }
    if (was_cancelled(cs)) co_return cancelled_by_caller<handle_type>();
    auto w = std::make_shared<waiter>(ex);
    waiters.push_back(w);
    if (opts.acquire_timeout.count() > 0) w->ready.expires_at(start + opts.acquire_timeout);
    grow();
    // (grow() may have delivered a connection already.) Nothing between the check of the
    // cancellation above and this wait suspends, so the wait itself sees a cancellation:
    // it ends, and the waiter leaves the queue below.
    ++waits;
    if (!w->conn && !w->closed) co_await w->ready.wait();
    wait_time += clock::now() - start;
    if (w->conn) {
      ++acquires;
      result r;
      r.value.emplace(self, std::move(*w->conn), generation, w->slot);
      co_return r;
    }
    std::erase(waiters, w);
    if (w->closed || closed)
      co_return result::fail(make_error_code(errc::pool_closed),
                             "the pool was closed while waiting for a connection");
    if (was_cancelled(cs)) co_return cancelled_by_caller<handle_type>();
    ++acquire_timeouts;
    co_return result::fail(make_error_code(errc::timeout),
                           "no connection became available within " +
                               std::to_string(opts.acquire_timeout.count()) + " ms (" +
                               describe_counts() + ")");
  }

  /// A checked-out connection comes back (from any thread). One with nothing to undo
  /// (Connector::needs_reset) is settled by a plain handler on the pool's executor (at
  /// once when the caller already runs there, so that the connection is idle before the
  /// caller's next acquire); one that needs a reset by a coroutine that runs it first.
  void give_back(Conn c, std::uint64_t gen, bool unusable, bool skip_reset,
                 slot_id slot) noexcept {
    if (fork_generation() != forks) return;  // the connection forgets its socket when destroyed
    try {
      bool reset = !skip_reset && !unusable;
      if constexpr (requires { connector.needs_reset(c); })
        reset = reset && connector.needs_reset(c);
      if (!reset) {
        boost::asio::dispatch(ex, [s = this->shared_from_this(), c = std::move(c), gen,
                                   unusable, slot]() mutable {
          const bool keep = s->keeps(c, gen, unusable);
          s->settle(std::move(c), gen, keep, unusable, slot, slot_state::in_use);
        });
        return;
      }
      boost::asio::co_spawn(ex, returned(this->shared_from_this(), std::move(c), gen, slot),
                            boost::asio::detached);
    } catch (...) {
    }
  }

  /// Whether a connection coming back may be kept (on the pool's executor).
  bool keeps(const Conn& c, std::uint64_t gen, bool unusable) {
    // A connection from before the last leader change tells nothing new.
    if (!c.is_open() && gen == generation) note_error(c.broken_by());
    return !unusable && !closed && c.is_open() && gen == generation;
  }

  /// A connection that needs a reset comes back: the reset, then settle().
  static boost::asio::awaitable<void> returned(std::shared_ptr<pool_core> s, Conn c,
                                               std::uint64_t gen, slot_id slot) {
    bool keep = s->keeps(c, gen, false);
    slot_state at = slot_state::in_use;
    // One past max_lifetime is closed by settle() without a reset first.
    if (keep && !s->too_old(s->born(slot), clock::now())) {
      s->slots.move(slot, slot_state::in_use, slot_state::resetting, clock::now());
      at = slot_state::resetting;
      ++s->resets;
      error_code ec;
      try {
        ec = co_await s->connector.reset(c);
      } catch (...) {
        ec = make_error_code(errc::not_connected);
      }
      if (ec || !c.is_open()) {
        keep = false;
        s->note_error(ec ? ec : c.broken_by());
      }
    }
    s->settle(std::move(c), gen, keep, false, slot, at);
  }

  /// The connection is idle again (keep) or discarded; waiters and growth follow.
  /// (Its slot is in state `from`: in_use, or resetting.)
  void settle(Conn c, std::uint64_t gen, bool keep, bool unusable, slot_id slot,
              slot_state from) {
    const bool old = too_old(born(slot), clock::now());
    if (keep && !closed && gen == generation && !old)
      deliver(std::move(c), slot, from);
    else if (keep && old && !closed && gen == generation)
      expire(c, slot, from, "it reached max_lifetime");
    else
      discard(c, slot, from,
                 closed                 ? "the pool is closed"
                 : !c.is_open()         ? "it was broken or closed"
                 : unusable             ? "it was marked unusable"
                 : gen != generation    ? "it is from before a leader change"
                                        : "its reset failed");
    notify();
    grow();
  }

  /// How often the background sweep runs: health_check_interval, else a quarter of the
  /// shortest of max_idle_time and max_lifetime (at least 10 ms); zero: no sweep.
  std::chrono::milliseconds sweep_period() const {
    using ms = std::chrono::milliseconds;
    ms p{0};
    for (ms d : {opts.max_idle_time, opts.max_lifetime})
      if (d.count() > 0) p = p.count() > 0 ? std::min(p, d) : d;
    if (p.count() > 0) p = std::max(p / 4, ms(10));
    if (opts.health_check_interval.count() > 0)
      p = p.count() > 0 ? std::min(p, opts.health_check_interval) : opts.health_check_interval;
    return p;
  }

  /// Starts the background sweep when the options ask for one (see sweep_period). It holds
  /// the pool weakly, and ends when the pool is shut.
  void start_maintenance() {
    const auto period = sweep_period();
    if (period.count() <= 0 || maintenance) return;
    maintenance = std::make_shared<boost::asio::steady_timer>(ex);
    boost::asio::co_spawn(ex, maintain(this->weak_from_this(), maintenance, period),
                          boost::asio::detached);
  }

  static boost::asio::awaitable<void> maintain(std::weak_ptr<pool_core> weak,
                                               std::shared_ptr<dependent_t<Conn, boost::asio::steady_timer>> t,
                                               std::chrono::milliseconds period) {
    for (;;) {
      t->expires_after(period);
      auto [ec] = co_await t->async_wait(as_tuple_awaitable);
      auto s = weak.lock();
      if (!s || s->closed || ec) co_return;
      co_await s->sweep();
      if (s->closed) co_return;  // closed during the pass: no wait for another period
    }
  }

  /// One background pass over the idle connections: those past max_lifetime or
  /// max_idle_time are closed; with health_check_interval, those idle (unchecked) for at
  /// least health_check_after are checked, one at a time, and a failed one discarded.
  /// Afterwards the pool refills to min_size.
  boost::asio::awaitable<void> sweep() {
    auto self = this->shared_from_this();
    const auto now = clock::now();
    for (std::size_t i = 0; i < idle.size();) {
      if (expire_if_due(idle[i], now))
        idle.erase(idle.begin() + static_cast<std::ptrdiff_t>(i));
      else
        ++i;
    }
    if (opts.health_check_interval.count() > 0) {
      // Oldest first (the front); each is taken out while it is checked.
      for (std::size_t n = idle.size(); n > 0 && !closed; --n) {
        auto it = std::find_if(idle.begin(), idle.end(), [&](const idle_conn& ic) {
          return clock::now() - unchecked_since(ic.slot) >= opts.health_check_after;
        });
        if (it == idle.end()) break;
        idle_conn ic = std::move(*it);
        idle.erase(it);
        const auto idle_since = slots.get(ic.slot).since;
        slots.move(ic.slot, slot_state::idle, slot_state::checking, clock::now());
        ++background_checks;
        const auto gen = generation;
        error_code ec;
        try {
          ec = co_await connector.ping(ic.conn);
        } catch (...) {
          ec = make_error_code(errc::not_connected);
        }
        if (ec || !ic.conn.is_open()) {
          if (!closed) {
            ++health_check_failures;
            log()(log_level::warning, "pool_health_check_failed", [&] {
              return "an idle connection failed its background check: " +
                     (ec ? ec.message() : std::string("the connection was closed"));
            });
          }
          discard(ic.conn, ic.slot, slot_state::checking,
                  closed ? "the pool is closed" : "it failed its health check");
          if (!closed && is_connection_error(ec)) note_error(ec);
        } else if (closed || gen != generation) {
          discard(ic.conn, ic.slot, slot_state::checking,
                  closed ? "the pool is closed" : "it is from before a leader change");
        } else if (!waiters.empty()) {
          deliver(std::move(ic.conn), ic.slot, slot_state::checking);  // a waiter came
        } else {
          // Checked, and idle as long as before (max_idle_time counts from its last use).
          slots.mark_checked(ic.slot, clock::now());
          slots.move(ic.slot, slot_state::checking, slot_state::idle, idle_since);
          idle.push_back(std::move(ic));
        }
        notify();
      }
    }
    grow();
  }

  /// Opens connections until min_size are open, in parallel. Fails when none could be
  /// opened and some were needed.
  boost::asio::awaitable<cluster_result<void>> warm_up() {
    auto self = this->shared_from_this();
    struct round {
      explicit round(const boost::asio::any_io_executor& e) : done(e) {}
      async_event done;
      std::size_t running = 0;
      std::size_t ok = 0;
      std::string failure;
    };
    auto r = std::make_shared<round>(ex);
    const std::size_t want = opts.min_size > total() ? opts.min_size - total() : 0;
    for (std::size_t i = 0; i < want; ++i) {
      const slot_id slot = slots.open(clock::now());
      ++r->running;
      boost::asio::co_spawn(
          ex,
          [](std::shared_ptr<pool_core> s, std::shared_ptr<round> r,
             slot_id slot) -> boost::asio::awaitable<void> {
            std::optional<cluster_result<Conn>> c;
            c.emplace(co_await connect_safely(s));
            if (!c->ec && c->value) {
              s->note_opened();
              ++r->ok;
              s->connect_cause.clear();
              s->deliver(std::move(*c->value), slot, slot_state::connecting);
            } else {
              s->slots.end(slot, slot_state::connecting);
              s->note_connect_failure(c->ec, c->diag);
              r->failure = s->last_connect_error;
            }
            if (--r->running == 0) r->done.notify_all();
          }(self, r, slot),
          boost::asio::detached);
    }
    if (r->running > 0) co_await r->done.wait();
    const auto cs = co_await boost::asio::this_coro::cancellation_state;
    if (r->running > 0 && was_cancelled(cs)) {
      grow();  // the connections being opened stay in the pool; the rest come later
      co_return cancelled_by_caller<void>();
    }
    if (want > 0 && r->ok == 0)
      co_return cluster_result<void>::fail(make_error_code(errc::no_leader),
                                           "opening the pool's first connections failed: " +
                                               r->failure);
    grow();  // whatever failed is retried in the background
    cluster_result<void> out;
    out.value.emplace();
    co_return out;
  }

  /// Stops the pool: idle connections closed, waiters failed with errc::pool_closed,
  /// no more refills. Returns at once.
  void shut() {
    if (closed) return;
    closed = true;
    if (maintenance) maintenance->cancel();
    for (auto& ic : idle) discard(ic.conn, ic.slot, slot_state::idle, "the pool is closed");
    idle.clear();
    for (auto& w : waiters) {
      w->closed = true;
      w->ready.notify_all();
    }
    waiters.clear();
  }

  /// shut(), then waits (up to close_timeout) for the checked-out connections.
  boost::asio::awaitable<cluster_result<void>> close() {
    auto self = this->shared_from_this();
    shut();
    const auto deadline = clock::now() + std::max(opts.close_timeout, std::chrono::milliseconds(0));
    const auto cs = co_await boost::asio::this_coro::cancellation_state;
    while (slots.busy() > 0 && clock::now() < deadline && !was_cancelled(cs)) {
      auto t = std::make_shared<async_event>(ex, deadline);
      drained = t;
      co_await t->wait();
      drained.reset();
    }
    const std::size_t left = slots.busy();
    connector.close();
    if (left > 0 && was_cancelled(cs))
      co_return cancelled_by_caller<void>("the pool is closed; " + std::to_string(left) +
                                          " checked-out connection(s) were still out");
    if (left > 0)
      co_return cluster_result<void>::fail(
          make_error_code(errc::timeout),
          std::to_string(left) + " checked-out connection(s) did not come back within " +
              std::to_string(opts.close_timeout.count()) + " ms");
    cluster_result<void> out;
    out.value.emplace();
    co_return out;
  }
};

/// The pool's part of its operations (coroutine_op): a moved-from pool fails them.
struct pool_op_hooks : default_op_hooks {
  static error_code absent(diagnostics& d) {
    d.assign("the pool is empty (moved from, or its creation failed)");
    return make_error_code(errc::pool_closed);
  }
};

/// Runs pool operation `body(core)` (a coroutine returning cluster_result<T>) for `token`.
template <class T, class Core, class Token, class Body>
auto initiate_pool_op(std::shared_ptr<Core> s, Token& token, Body body) {
  return initiate_coroutine_op<T, pool_op_hooks>(std::move(s), token, std::move(body));
}

/// Opens the pool's connections to the leader through a cluster client.
template <class Stream>
struct cluster_connector {
  using connection_type = basic_connection<Stream>;
  std::shared_ptr<basic_cluster<Stream>> cluster;

  boost::asio::awaitable<cluster_result<connection_type>> connect() {
    auto c = cluster;  // keeps the cluster while this runs
    auto [ec, conn] = co_await c->async_connect(as_tuple_awaitable);
    if (ec) co_return cluster_result<connection_type>::fail(ec, error_text(ec, c->diagnostics()));
    cluster_result<connection_type> out;
    out.value.emplace(std::move(conn));
    co_return out;
  }
  /// False for a connection that has nothing to undo (no transaction may be open, no
  /// dropped cursor or statement left work): it goes back without a request.
  static bool needs_reset(const connection_type& c) {
    const auto& impl = connection_access::impl(c);
    return !impl || impl->busy || impl->holder != 0 || impl->needs_reset();
  }
  static boost::asio::awaitable<error_code> reset(connection_type& c) {
    auto [ec] = co_await c.async_reset(as_tuple_awaitable);
    co_return ec;
  }
  static boost::asio::awaitable<error_code> ping(connection_type& c) {
    auto [ec, v] = co_await c.template async_fetchval<std::int64_t>("SELECT 1", as_tuple_awaitable);
    (void)v;
    co_return ec;
  }
  void close() {
    if (cluster) cluster->close();
  }
};

/// A parameter kept by a pool call until it runs: strings are copied, the rest decays.
template <class P>
using owned_param_t =
    std::conditional_t<std::is_convertible_v<const std::decay_t<P>&, std::string_view> &&
                           !std::is_same_v<std::decay_t<P>, std::string>,
                       std::string, std::decay_t<P>>;

}  // namespace detail
}  // namespace dqlite
// ---- end dqlite/detail/pool/core.hpp ----

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

template <class Stream>
class basic_blocking_pool;

/// A connection checked out of a pool: use it through -> and *; it goes back to the pool
/// when the handle is destroyed (or reset()). Move-only. On its way back a connection
/// that is closed or broken is discarded; an open one is reset when it needs it (a
/// transaction that may be open is rolled back, see connection::in_transaction();
/// abandoned cursors and statements are cleaned up) before it is idle again. A connection
/// with nothing to undo goes back without any request.
template <class Conn, class Connector>
class pooled_handle {
  using core_type = detail::pool_core<Conn, Connector>;

 public:
  /// An empty handle.
  pooled_handle() = default;
  pooled_handle(std::shared_ptr<core_type> core, Conn c, std::uint64_t gen,
                detail::slot_table::id_type slot)
      : core_(std::move(core)), conn_(std::move(c)), gen_(gen), slot_(slot) {}
  pooled_handle(pooled_handle&&) noexcept = default;
  pooled_handle& operator=(pooled_handle&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::move(other.core_);
      conn_ = std::move(other.conn_);
      other.conn_.reset();
      gen_ = other.gen_;
      slot_ = other.slot_;
      unusable_ = other.unusable_;
    }
    return *this;
  }
  pooled_handle(const pooled_handle&) = delete;
  pooled_handle& operator=(const pooled_handle&) = delete;
  ~pooled_handle() { reset(); }

  /// True when the handle holds a connection.
  bool valid() const noexcept { return conn_.has_value(); }
  explicit operator bool() const noexcept { return valid(); }

  Conn& get() noexcept { return *conn_; }
  const Conn& get() const noexcept { return *conn_; }
  Conn* operator->() noexcept { return &*conn_; }
  const Conn* operator->() const noexcept { return &*conn_; }
  Conn& operator*() noexcept { return *conn_; }
  const Conn& operator*() const noexcept { return *conn_; }

  /// Makes the pool close the connection instead of keeping it when it comes back.
  void mark_unusable() noexcept { unusable_ = true; }

  /// Gives the connection back to the pool now; the handle is empty afterwards.
  void reset() noexcept { give_back(false); }

  /// Gives the connection back without the reset: for a caller who knows that nothing is
  /// left to undo, even where in_transaction() cannot tell (it is conservative). A
  /// transaction left open this way is the next user's. The handle is empty afterwards.
  void return_without_reset() noexcept { give_back(true); }

 private:
  void give_back(bool skip_reset) noexcept {
    if (conn_ && core_) core_->give_back(std::move(*conn_), gen_, unusable_, skip_reset, slot_);
    conn_.reset();
    core_.reset();
    unusable_ = false;
  }

 public:

 private:
  std::shared_ptr<core_type> core_;
  std::optional<Conn> conn_;
  std::uint64_t gen_ = 0;
  detail::slot_table::id_type slot_ = 0;  ///< the connection's slot in the pool
  bool unusable_ = false;
};

/// A connection of a basic_pool<Stream>.
template <class Stream>
using basic_pooled_connection =
    pooled_handle<basic_connection<Stream>, detail::cluster_connector<Stream>>;

/// A pool of connections to the leader of a dqlite cluster, built on basic_cluster.
///
/// async_acquire checks out a connection (see pooled_handle); requests wait in FIFO order
/// when max_size connections are in use. Idle connections are checked before they are
/// handed out. A connection or leadership error seen on any connection empties the pool of
/// its idle connections (they point at the old leader); new ones go through leader
/// discovery, and the pool refills to min_size in the background. async_execute,
/// async_fetch, async_fetchval and async_fetchone borrow a connection for one statement.
///
/// All state lives on a strand, so a pool may be shared by several threads. Operations
/// accept any completion token (default: dqlite::use_awaitable, which throws dqlite::error
/// carrying the diagnostics text) and a terminal cancellation (errc::cancelled; a cancelled
/// acquire leaves the queue, and the statement calls pass the cancellation on to the
/// statement). After fork() the child's operations fail with
/// errc::used_after_fork. Destroying the pool closes it without waiting; checked-out
/// connections are closed when they come back.
namespace detail {
template <class Stream>
struct create_pool_op;
}  // namespace detail

template <class Stream>
class basic_pool {
  using connector_type = detail::cluster_connector<Stream>;
  using core_type = detail::pool_core<basic_connection<Stream>, connector_type>;

 public:
  using connection_type = basic_connection<Stream>;
  using pooled_connection_type = basic_pooled_connection<Stream>;
  using executor_type = boost::asio::any_io_executor;

  /// An empty pool (every operation fails with errc::pool_closed).
  basic_pool() = default;

  /// A pool over the nodes of `store`, reached through `connector` (dqlite/connector.hpp:
  /// tcp_connector, unix_connector, tls_connector, or the caller's own). Opens no
  /// connection: async_create_pool also warms it up to min_size (or call async_warm_up).
  /// Throws dqlite::error (errc::invalid_argument) for options that cannot work and for a
  /// connector without make or connect.
  basic_pool(const executor_type& ex, basic_connector<Stream> connector,
             std::shared_ptr<node_store> store, const pool_options& opts)
      : s_(make_core(std::make_shared<basic_cluster<Stream>>(ex, std::move(connector),
                                                             std::move(store), cluster_opts(opts)),
                     opts)) {}

  /// A pool over the nodes at `addresses` (as the nodes advertise them).
  basic_pool(const executor_type& ex, basic_connector<Stream> connector,
             const std::vector<std::string>& addresses, const pool_options& opts)
      : s_(make_core(std::make_shared<basic_cluster<Stream>>(ex, std::move(connector), addresses,
                                                             cluster_opts(opts)),
                     opts)) {}

  /// The same over plain TCP (tcp_connector()); addresses are "host:port".
  basic_pool(const executor_type& ex, std::shared_ptr<node_store> store, const pool_options& opts)
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : basic_pool(ex, tcp_connector(), std::move(store), opts) {}

  basic_pool(const executor_type& ex, const std::vector<std::string>& addresses,
             const pool_options& opts)
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : basic_pool(ex, tcp_connector(), addresses, opts) {}

  basic_pool(basic_pool&&) noexcept = default;
  basic_pool& operator=(basic_pool&& other) noexcept {
    if (this != &other) {
      close();
      s_ = std::move(other.s_);
    }
    return *this;
  }
  basic_pool(const basic_pool&) = delete;
  basic_pool& operator=(const basic_pool&) = delete;
  ~basic_pool() { close(); }

  /// The strand the pool's state lives on.
  executor_type get_executor() const { return state().ex; }
  const pool_options& options() const { return state().opts; }
  /// The cluster client the pool opens its connections with.
  basic_cluster<Stream>& cluster() { return *state().connector.cluster; }
  /// A snapshot of the counters. Read it on get_executor() (e.g. from a coroutine running
  /// there) when other threads use the pool.
  pool_stats stats() const { return s_ ? s_->stats() : pool_stats{}; }

  /// Stops the pool without waiting (see async_close). Returns at once.
  void close() noexcept {
    if (!s_) return;
    try {
      boost::asio::post(s_->ex, [s = s_] {
        s->shut();
        s->connector.close();
      });
    } catch (...) {
    }
  }

  /// Opens connections until min_size are open. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_warm_up(Token&& token = {}) {
    return detail::initiate_pool_op<void>(s_, token,
                                          [](std::shared_ptr<core_type> s) { return s->warm_up(); });
  }

  /// Checks out a connection. Fails with errc::timeout (the diagnostics give the counts
  /// and the last connect error) when none is available within acquire_timeout.
  /// Signature: void(error_code, pooled_connection_type).
  template <class Token = default_token_t>
  auto async_acquire(Token&& token = {}) {
    return detail::initiate_pool_op<pooled_connection_type>(
        s_, token, [](std::shared_ptr<core_type> s) { return s->acquire(); });
  }

  /// Closes the idle connections, stops refilling, fails waiting acquires with
  /// errc::pool_closed, then waits up to close_timeout for checked-out connections
  /// (errc::timeout if some stay out). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    return detail::initiate_pool_op<void>(s_, token,
                                          [](std::shared_ptr<core_type> s) { return s->close(); });
  }

  // ---- a transaction on a borrowed connection, run again when that is safe ----

  /// Runs `body(conn)` (a callable returning boost::asio::awaitable<R>) in a transaction on
  /// a pooled connection: BEGIN, the body, COMMIT. Returns what the body returns. When an
  /// attempt fails in a way that leaves nothing applied, the whole transaction runs again
  /// (the body is called again, on a connection acquired anew) after a pause (backoff
  /// with jitter), within retry.max_attempts and retry.timeout, in two cases. The server
  /// refused a statement or the COMMIT as busy (SQLITE_BUSY, SQLITE_LOCKED: another
  /// connection holds the write lock). Or the node was not (or no longer) the leader, or
  /// the connection failed, before the COMMIT was sent (the transaction was lost with the
  /// connection).
  /// Never after an unknown outcome (errc::outcome_unknown, leadership lost during the
  /// COMMIT): the error says the transaction may have been applied and was not run again.
  /// An exception that is not a dqlite::error (thrown by the body) rolls the transaction
  /// back and propagates at once. Throws dqlite::error: the last attempt's error, its text
  /// saying how many attempts were made; an acquire that fails (errc::timeout after
  /// acquire_timeout, errc::pool_closed) ends it at once; a cancellation between attempts
  /// throws errc::cancelled. Coroutines only (as dqlite::async_transaction); the pool must
  /// outlive the call. The body may run more than once, so it must not have effects
  /// outside the database that cannot be repeated.
  ///
  ///   dqlite::pool pool(ex, std::vector<std::string>{"127.0.0.1:9001"}, {.database = "bank"});
  ///   auto id = co_await pool.async_transaction([&](dqlite::connection& c)
  ///                                                 -> asio::awaitable<std::int64_t> {
  ///     co_await c.async_execute("UPDATE account SET balance = balance - 10 WHERE id = 1");
  ///     auto r = co_await c.async_execute("INSERT INTO log (what) VALUES ('paid')");
  ///     co_return r.last_insert_id;
  ///   });
  template <class Body>
  auto async_transaction(Body body, transaction_retry retry = {})
      -> boost::asio::awaitable<
          typename std::invoke_result_t<Body&, connection_type&>::value_type> {
    using R = typename std::invoke_result_t<Body&, connection_type&>::value_type;
    detail::transaction_attempts tries(retry);
    for (unsigned attempt = 1;; ++attempt) {
      bool acquired = false;
      error_code ec;
      std::string text;
      try {
        auto pc = co_await async_acquire();
        acquired = true;
        auto tx = co_await pc->async_begin();
        if constexpr (std::is_void_v<R>) {
          co_await body(*pc);
          co_await tx.async_commit();
          co_return;
        } else {
          R out = co_await body(*pc);
          co_await tx.async_commit();
          co_return out;
        }
      } catch (const error& e) {
        ec = e.code();
        text = e.get_diagnostics().message();
      }
      // (The transaction object, dropped above, is rolled back when the connection goes
      // back to the pool.)
      const auto pause = tries.after_failure(attempt, acquired, ec, std::move(text));  // or throws
      note_transaction_retry();
      detail::dependent_t<Body, boost::asio::steady_timer> t(
          co_await boost::asio::this_coro::executor, pause);
      auto [waited] = co_await t.async_wait(detail::as_tuple_awaitable);
      if (waited) throw tries.cancelled();
    }
  }

  // ---- one statement on a borrowed connection ----
  //
  // SQL text, parameters, then an optional completion token, as on basic_connection.
  // Strings are copied; other parameters are copied or moved (views other than strings
  // must stay valid until completion). After a connection or leadership error writes are
  // never retried; reads are retried once on a fresh connection (pool_options::retry_reads).
  // Statements refused as busy are retried within pool_options::busy_timeout.

  /// Signature: void(error_code, exec_result).
  template <class... Args>
  auto async_execute(std::string_view sql, Args&&... args) {
    return statement(false, sql, [](connection_type& c, std::string_view q, auto&... p) {
      return c.async_execute(q, p..., detail::as_tuple_awaitable);
    }, std::forward<Args>(args)...);
  }

  /// Signature: void(error_code, std::vector<T>) (T = void: dqlite::rows).
  template <class T = void, class... Args>
  auto async_fetch(std::string_view sql, Args&&... args) {
    return statement(true, sql, [](connection_type& c, std::string_view q, auto&... p) {
      return c.template async_fetch<T>(q, p..., detail::as_tuple_awaitable);
    }, std::forward<Args>(args)...);
  }

  /// Signature: void(error_code, T).
  template <class T, class... Args>
  auto async_fetchval(std::string_view sql, Args&&... args) {
    return statement(true, sql, [](connection_type& c, std::string_view q, auto&... p) {
      return c.template async_fetchval<T>(q, p..., detail::as_tuple_awaitable);
    }, std::forward<Args>(args)...);
  }

  /// Signature: void(error_code, std::optional<T>).
  template <class T = row, class... Args>
  auto async_fetchone(std::string_view sql, Args&&... args) {
    return statement(true, sql, [](connection_type& c, std::string_view q, auto&... p) {
      return c.template async_fetchone<T>(q, p..., detail::as_tuple_awaitable);
    }, std::forward<Args>(args)...);
  }

 private:
  static cluster_options cluster_opts(const pool_options& o) {
    cluster_options c = o.cluster;
    c.connection.database = o.database;
    if (!c.log) {
      c.log = o.log;
      c.log_threshold = o.log_threshold;
    }
    if (!c.trace) c.trace = o.trace;
    return c;
  }

  static std::shared_ptr<core_type> make_core(std::shared_ptr<basic_cluster<Stream>> cl,
                                              const pool_options& opts) {
    detail::require_option(opts.max_size > 0, "pool_options", "max_size must be at least 1");
    detail::require_option(opts.min_size <= opts.max_size, "pool_options",
                           "min_size must not exceed max_size");
    detail::require_option(!opts.database.empty(), "pool_options", "the database name is empty");
    auto ex = cl->get_executor();  // the cluster's strand: pool and cluster share it
    auto s = std::make_shared<core_type>(ex, connector_type{std::move(cl)}, opts);
    s->opts.database = s->connector.cluster->options().connection.database;  // owned there
    s->start_maintenance();
    return s;
  }

  template <class Call, class... Args>
  auto statement(bool read, std::string_view sql, Call call, Args&&... args) {
    // The result type does not depend on the parameters' types.
    using A = decltype(call(std::declval<connection_type&>(), std::string_view()));
    using R = std::tuple_element_t<1, typename A::value_type>;
    return detail::with_token<default_token_t, detail::completion_sig_t<R>>(
        [&]<class Token, class... P>(Token&& token, P&&... params) {
          auto body = [read, call, sql = std::string(sql),
                       params = std::tuple<detail::owned_param_t<P>...>(
                           std::forward<P>(params)...)](std::shared_ptr<core_type> s) mutable {
            return run_statement<R>(std::move(s), read, std::move(sql), call, std::move(params));
          };
          return detail::initiate_pool_op<R>(s_, token, std::move(body));
        },
        std::forward<Args>(args)...);
  }

  template <class R, class Call, class Params>
  static boost::asio::awaitable<detail::cluster_result<R>> run_statement(
      std::shared_ptr<core_type> s, bool read, std::string sql, Call call, Params params) {
    using result = detail::cluster_result<R>;
    for (int attempt = 0;; ++attempt) {
      auto a = co_await s->acquire();
      if (a.ec) co_return result::fail(a.ec, std::move(a.diag));
      auto& pc = *a.value;
      const auto busy_deadline = core_type::clock::now() + s->opts.busy_timeout;
      auto pause = std::chrono::milliseconds(1);
      auto t = co_await std::apply(
          [&](auto&... p) { return call(*pc, std::string_view(sql), p...); }, params);
      while (is_busy(std::get<0>(t)) && pc->is_open() && !s->closed &&
             core_type::clock::now() + pause < busy_deadline) {
        ++s->busy_retries;
        s->log()(log_level::debug, "busy_retry", [&] {
          return "the statement was refused as busy (" +
                 detail::error_text(std::get<0>(t), pc->diagnostics()) + "); running it again in " +
                 std::to_string(pause.count()) + " ms";
        });
        detail::dependent_t<R, boost::asio::steady_timer> timer(s->ex, pause);
        co_await timer.async_wait(detail::as_tuple_awaitable);
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
        t = co_await std::apply(
            [&](auto&... p) { return call(*pc, std::string_view(sql), p...); }, params);
      }
      error_code ec = std::get<0>(t);
      if (!ec) {
        result out;
        out.value.emplace(std::move(std::get<1>(t)));
        co_return out;
      }
      std::string text = detail::error_text(ec, pc->diagnostics());
      if (is_connection_error(ec)) {
        pc.mark_unusable();
        s->note_error(ec);  // now, so that the retry does not take a stale idle connection
      }
      if (read && s->opts.retry_reads && attempt == 0 && is_retryable(ec)) {
        ++s->read_retries;
        s->log()(log_level::info, "read_retry", [&] {
          return "a read failed (" + text + "); running it once more on a fresh connection";
        });
        continue;
      }
      co_return result::fail(ec, std::move(text));
    }
  }

  // The state; a moved-from pool has none.
  core_type& state() const {
    if (!s_) throw std::logic_error("dqlite: use of a moved-from or failed pool");
    return *s_;
  }

  // Counts a transaction run again (on the pool's strand).
  void note_transaction_retry() {
    if (s_) boost::asio::post(s_->ex, [s = s_] { ++s->transaction_retries; });
  }

  template <class S>
  friend struct detail::create_pool_op;
  template <class>
  friend class basic_blocking_pool;
  std::shared_ptr<core_type> s_;
};

/// A pool of TCP connections.
using pool = basic_pool<boost::asio::ip::tcp::socket>;
/// A connection checked out of a dqlite::pool.
using pooled_connection = basic_pooled_connection<boost::asio::ip::tcp::socket>;
/// A pool over unix sockets (constructed with a unix_connector).
using unix_pool = basic_pool<boost::asio::local::stream_protocol::socket>;
/// A connection checked out of a dqlite::unix_pool.
using unix_pooled_connection = basic_pooled_connection<boost::asio::local::stream_protocol::socket>;

namespace detail {

template <class Stream>
struct create_pool_op {
  std::shared_ptr<basic_pool<Stream>> p;
  std::shared_ptr<diagnostics> diag;

  template <class Self>
  void operator()(Self& self) {
    auto core = p->s_;
    auto ex = core->ex;
    boost::asio::co_spawn(ex, core->warm_up(), std::move(self));
  }
  template <class Self>
  void operator()(Self& self, std::exception_ptr ep, cluster_result<void> r) {
    settle_cancelled(r, ep, self.get_cancellation_state().cancelled());
    if (r.ec) {
      diag->assign(r.diag);
      p->close();
      self.complete(r.ec, basic_pool<Stream>());
      return;
    }
    self.complete(r.ec, std::move(*p));
  }
};

template <class Stream>
struct create_pool_initiation {
  std::shared_ptr<diagnostics> diag = std::make_shared<diagnostics>();
  std::shared_ptr<const diagnostics> diagnostics_ptr() const { return diag; }

  template <class Handler, class Executor, class Nodes>
  void operator()(Handler&& h, Executor ex, basic_connector<Stream> connector, Nodes nodes,
                  pool_options opts) {
    std::shared_ptr<basic_pool<Stream>> p;
    error_code failed;
    try {
      p = std::make_shared<basic_pool<Stream>>(ex, std::move(connector), std::move(nodes), opts);
    } catch (const error& e) {
      failed = e.code();
      diag->assign(e.get_diagnostics().message());
    } catch (const std::exception& e) {
      failed = make_error_code(errc::invalid_argument);
      diag->assign(e.what());
    }
    if (failed)
      return complete_posted<void(error_code, basic_pool<Stream>)>(
          std::forward<Handler>(h), std::optional<Executor>(ex), failed, basic_pool<Stream>());
    auto ex2 = p->get_executor();
    boost::asio::async_compose<Handler, void(error_code, basic_pool<Stream>)>(
        create_pool_op<Stream>{std::move(p), diag}, h, ex2);
  }
};

}  // namespace detail

/// Creates a pool over the nodes at `addresses` ("host:port") and opens min_size
/// connections to the leader in parallel. Signature: void(error_code, pool).
template <class Executor, class Token = default_token_t>
auto async_create_pool(const Executor& ex, const std::vector<std::string>& addresses,
                       const pool_options& opts = {}, Token&& token = {}) {
  using Stream = boost::asio::ip::tcp::socket;
  return boost::asio::async_initiate<Token, void(error_code, basic_pool<Stream>)>(
      detail::create_pool_initiation<Stream>{}, token, boost::asio::any_io_executor(ex),
      tcp_connector(), addresses, opts);
}

/// Same, over the nodes of a node store.
template <class Executor, class Token = default_token_t>
auto async_create_pool(const Executor& ex, std::shared_ptr<node_store> store,
                       const pool_options& opts = {}, Token&& token = {}) {
  using Stream = boost::asio::ip::tcp::socket;
  return boost::asio::async_initiate<Token, void(error_code, basic_pool<Stream>)>(
      detail::create_pool_initiation<Stream>{}, token, boost::asio::any_io_executor(ex),
      tcp_connector(), std::move(store), opts);
}

/// Same, reaching the nodes (at `addresses`, as they advertise them) through `connector`.
/// Signature: void(error_code, basic_pool<Stream>).
template <class Executor, class Stream, class Token = default_token_t>
auto async_create_pool(const Executor& ex, basic_connector<Stream> connector,
                       const std::vector<std::string>& addresses, const pool_options& opts = {},
                       Token&& token = {}) {
  return boost::asio::async_initiate<Token, void(error_code, basic_pool<Stream>)>(
      detail::create_pool_initiation<Stream>{}, token, boost::asio::any_io_executor(ex),
      std::move(connector), addresses, opts);
}

/// Same, over the nodes of a node store, through `connector`.
template <class Executor, class Stream, class Token = default_token_t>
auto async_create_pool(const Executor& ex, basic_connector<Stream> connector,
                       std::shared_ptr<node_store> store, const pool_options& opts = {},
                       Token&& token = {}) {
  return boost::asio::async_initiate<Token, void(error_code, basic_pool<Stream>)>(
      detail::create_pool_initiation<Stream>{}, token, boost::asio::any_io_executor(ex),
      std::move(connector), std::move(store), opts);
}

}  // namespace dqlite
// ---- end dqlite/pool.hpp ----

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// A connection checked out of a blocking_pool: use it through -> and * with the blocking
/// forms of dqlite::connection (not the asynchronous ones: they would need the pool's
/// io_context to run). It goes back to the pool when the handle is destroyed or reset(),
/// from any thread; as with basic_pooled_connection, a broken one is discarded and an
/// open one is reset when it needs it. It keeps the pool's io_context alive, so it may
/// outlive the blocking_pool (it is then closed when it comes back). Move-only; one
/// thread at a time.
template <class Stream>
class basic_blocking_pooled_connection {
 public:
  using connection_type = basic_connection<Stream>;

  basic_blocking_pooled_connection() = default;
  basic_blocking_pooled_connection(basic_blocking_pooled_connection&&) noexcept = default;
  basic_blocking_pooled_connection& operator=(basic_blocking_pooled_connection&& o) noexcept {
    if (this != &o) {
      reset();
      handle_ = std::move(o.handle_);
      keep_ = std::move(o.keep_);
    }
    return *this;
  }
  ~basic_blocking_pooled_connection() { reset(); }

  /// True when the handle holds a connection.
  bool valid() const noexcept { return handle_.valid(); }
  explicit operator bool() const noexcept { return valid(); }

  connection_type& get() noexcept { return handle_.get(); }
  const connection_type& get() const noexcept { return handle_.get(); }
  connection_type* operator->() noexcept { return &handle_.get(); }
  const connection_type* operator->() const noexcept { return &handle_.get(); }
  connection_type& operator*() noexcept { return handle_.get(); }
  const connection_type& operator*() const noexcept { return handle_.get(); }

  /// Makes the pool close the connection instead of keeping it when it comes back.
  void mark_unusable() noexcept { handle_.mark_unusable(); }
  /// Gives the connection back now. One that needs it is reset first, here, in the calling
  /// thread, with the blocking forms (a transaction that may be open is rolled back, so its
  /// write lock is released before this returns); one whose reset fails is discarded.
  void reset() noexcept {
    if (handle_.valid()) {
      auto& c = handle_.get();
      forget_pool(c);
      if (c.is_open() && detail::cluster_connector<Stream>::needs_reset(c)) {
        error_code ec;
        diagnostics d;
        try {
          c.reset(ec, d);
        } catch (...) {
          ec = make_error_code(errc::invalid_argument);
        }
        if (ec) handle_.mark_unusable();
      }
    }
    handle_.reset();
    keep_.reset();  // after the connection has been given back
  }
  /// Gives the connection back without the reset (see basic_pooled_connection).
  void return_without_reset() noexcept {
    if (handle_.valid()) forget_pool(handle_.get());
    handle_.return_without_reset();
    keep_.reset();
  }

 private:
  template <class>
  friend class basic_blocking_pool;
  basic_blocking_pooled_connection(std::shared_ptr<void> keep,
                                   basic_pooled_connection<Stream> h)
      : handle_(std::move(h)), keep_(std::move(keep)) {}

  // The connection goes back: it no longer keeps the pool's state alive (an idle
  // connection that did would keep the pool from ever being destroyed).
  static void forget_pool(connection_type& c) noexcept {
    if (const auto& impl = detail::connection_access::impl(c)) impl->keep_alive.reset();
  }

  basic_pooled_connection<Stream> handle_;
  std::shared_ptr<void> keep_;  // the pool's state and io_context
};

/// The connection blocking_pool::acquire returns.
using blocking_pooled_connection =
    basic_blocking_pooled_connection<boost::asio::ip::tcp::socket>;

/// The blocking form of dqlite::pool (TCP): connections to the leader, opened through
/// leader discovery and kept for reuse, with every operation running in the calling
/// thread. One pool may be used from many threads at once: it owns an io_context, which
/// the threads calling its operations run themselves while they wait, one at a time (no
/// thread is started). So the pool's background work (refilling to min_size, health
/// checks, max_idle_time and max_lifetime, the reset of a connection that came back) runs
/// while some thread waits in one of the calls below: acquire, the statement calls,
/// warm_up, close, stats.
///
/// Each operation has two forms, as the blocking forms of a connection: without more
/// arguments a failure throws dqlite::error (code and text); with a trailing
/// `error_code&, diagnostics&` it is reported there and the result is empty. The errors
/// and the retry rules are those of the asynchronous pool (basic_pool): an acquire fails
/// with errc::timeout after pool_options::acquire_timeout, errc::pool_closed after close;
/// a statement refused as busy is run again within busy_timeout, a read that met a
/// connection error once more on a fresh connection, and a write never.
///
///   auto pool = dqlite::create_pool({"127.0.0.1:9001"}, {.database = "app", .max_size = 8});
///   pool.execute("CREATE TABLE IF NOT EXISTS item (name TEXT)");
///   pool.execute("INSERT INTO item (name) VALUES (?)", "apple");
///   auto n = pool.fetchval<std::int64_t>("SELECT count(*) FROM item");
///   (void)n;
///   {
///     auto conn = pool.acquire();  // one connection, for several statements
///     auto tx = conn->begin();
///     conn->execute("DELETE FROM item");
///     tx.commit();
///   }  // back to the pool
///
/// The object must outlive the calls made on it; destroying it closes the pool without
/// waiting (checked-out connections are closed when they come back).
///
/// blocking_pool is basic_blocking_pool<tcp::socket>, the one form there is: a class
/// template only so that a program that includes this header and uses no blocking pool
/// instantiates none of it.
template <class Stream>
class basic_blocking_pool {
  static_assert(std::is_same_v<Stream, boost::asio::ip::tcp::socket>,
                "dqlite: the blocking pool is over TCP only: use dqlite::blocking_pool");

 public:
  using pool_type = basic_pool<Stream>;
  using connection_type = basic_connection<Stream>;
  using pooled_connection_type = basic_blocking_pooled_connection<Stream>;

  /// A pool over the nodes at `addresses` ("host:port"). Opens no connection (see
  /// create_pool and warm_up). Throws dqlite::error (errc::invalid_argument, the text
  /// naming the option) for invalid options.
  basic_blocking_pool(const std::vector<std::string>& addresses, const pool_options& opts)
      : s_(std::make_shared<state>()) {
    s_->p.emplace(s_->driver.get_executor(), addresses, opts);
  }

  /// A pool over the nodes in `store`.
  basic_blocking_pool(std::shared_ptr<node_store> store, const pool_options& opts)
      : s_(std::make_shared<state>()) {
    s_->p.emplace(s_->driver.get_executor(), std::move(store), opts);
  }

  basic_blocking_pool(basic_blocking_pool&&) noexcept = default;
  basic_blocking_pool& operator=(basic_blocking_pool&& o) noexcept {
    if (this != &o) {
      shut();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  /// Closes the pool without waiting (see the class comment).
  ~basic_blocking_pool() { shut(); }

  const pool_options& options() const { return p().options(); }
  /// False for a moved-from pool, or the one create_pool(..., ec, d) returns for invalid
  /// options.
  bool valid() const noexcept { return s_ && s_->p; }

  /// A snapshot of the counters (see pool_stats).
  pool_stats stats() const {
    p();
    return s_->driver.call([s = s_] { return s->p->stats(); });
  }

  /// Opens connections until min_size are open.
  template <class... E>
    requires detail::error_tail_of<E...>
  void warm_up(E&... e) {
    call<void>([s = s_](auto token) { s->p->async_warm_up(std::move(token)); }, e...);
  }

  /// Checks out a connection (see basic_pool::async_acquire).
  template <class... E>
    requires detail::error_tail_of<E...>
  pooled_connection_type acquire(E&... e) {
    using handle = basic_pooled_connection<Stream>;
    auto h = call<handle>([s = s_](auto token) {
      auto done = std::move(token.token);
      s->p->async_acquire(with_diagnostics(
          [s, done = std::move(done)](std::exception_ptr ep, handle c) mutable {
            // From here on the connection is used through its blocking forms only, and it
            // keeps the io_context its socket is registered with alive (also when it is
            // moved out of the handle) until it goes back.
            if (!ep && c) {
              const auto& impl = detail::connection_access::impl(*c);
              impl->release_timer();
              impl->keep_alive = s;
            }
            std::move(done)(std::move(ep), std::move(c));
          }));
    }, e...);
    if (!h) return {};
    return pooled_connection_type(s_, std::move(h));
  }

  /// Closes the idle connections, fails waiting acquires with errc::pool_closed, then
  /// waits up to close_timeout for checked-out connections (errc::timeout if some stay
  /// out: a connection this thread holds stays out).
  template <class... E>
    requires detail::error_tail_of<E...>
  void close(E&... e) {
    call<void>([s = s_](auto token) { s->p->async_close(std::move(token)); }, e...);
  }

  // ---- one statement on a borrowed connection ----
  //
  // SQL text, parameters, then optionally `error_code&, diagnostics&`, as the blocking
  // forms of a connection.

  /// Runs a statement that returns no rows.
  template <class... Args>
  exec_result execute(std::string_view sql, Args&&... args) {
    return statement<exec_result>([](pool_type& p, std::string_view q, auto token, auto&... a) {
      p.async_execute(q, a..., std::move(token));
    }, sql, std::forward<Args>(args)...);
  }

  /// All rows as std::vector<T> (T = void: dqlite::rows).
  template <class T = void, class... Args>
  auto fetch(std::string_view sql, Args&&... args) {
    using A = decltype(std::declval<connection_type&>().template async_fetch<T>(
        std::string_view(), detail::as_tuple_awaitable));
    using R = std::tuple_element_t<1, typename A::value_type>;
    return statement<R>([](pool_type& p, std::string_view q, auto token, auto&... a) {
      p.template async_fetch<T>(q, a..., std::move(token));
    }, sql, std::forward<Args>(args)...);
  }

  /// The first column of the first row (errc::no_rows without rows, unless T is an
  /// optional).
  template <class T, class... Args>
  T fetchval(std::string_view sql, Args&&... args) {
    return statement<T>([](pool_type& p, std::string_view q, auto token, auto&... a) {
      p.template async_fetchval<T>(q, a..., std::move(token));
    }, sql, std::forward<Args>(args)...);
  }

  /// The first row, or an empty optional.
  template <class T = row, class... Args>
  std::optional<T> fetchone(std::string_view sql, Args&&... args) {
    return statement<std::optional<T>>(
        [](pool_type& p, std::string_view q, auto token, auto&... a) {
          p.template async_fetchone<T>(q, a..., std::move(token));
        },
        sql, std::forward<Args>(args)...);
  }

  /// Runs `body(conn)` (a callable taking dqlite::connection& and using its blocking
  /// forms) in a transaction on a pooled connection: BEGIN, the body, COMMIT; returns
  /// what the body returns. Run again, on a connection acquired anew and after a pause,
  /// when an attempt failed leaving nothing applied, exactly as
  /// basic_pool::async_transaction: busy, or a connection or leadership error before the
  /// COMMIT was sent; never after errc::outcome_unknown. An exception that is not a
  /// dqlite::error rolls the transaction back and propagates at once. Throws dqlite::error
  /// (the last attempt's error, its text saying how many attempts were made). The body
  /// may run more than once.
  ///
  ///   auto pool = dqlite::create_pool({"127.0.0.1:9001"}, {.database = "bank"});
  ///   auto id = pool.transaction([](dqlite::connection& c) {
  ///     c.execute("UPDATE account SET balance = balance - 10 WHERE id = 1");
  ///     return c.execute("INSERT INTO log (what) VALUES ('paid')").last_insert_id;
  ///   });
  template <class Body>
  auto transaction(Body body, transaction_retry retry = {})
      -> std::invoke_result_t<Body&, connection_type&> {
    using R = std::invoke_result_t<Body&, connection_type&>;
    detail::transaction_attempts tries(retry);
    for (unsigned attempt = 1;; ++attempt) {
      bool acquired = false;
      error_code ec;
      std::string text;
      try {
        auto pc = acquire();
        acquired = true;
        auto tx = pc->begin();
        if constexpr (std::is_void_v<R>) {
          body(*pc);
          tx.commit();
          return;
        } else {
          R out = body(*pc);
          tx.commit();
          return out;
        }
      } catch (const error& e) {
        ec = e.code();
        text = e.get_diagnostics().message();
      }
      // (The dropped transaction is rolled back when its connection goes back.)
      const auto pause = tries.after_failure(attempt, acquired, ec, std::move(text));  // or throws
      s_->p->note_transaction_retry();  // (posted to the pool's strand)
      std::this_thread::sleep_for(pause);
    }
  }

 private:
  struct state {
    detail::io_driver driver;  // destroyed last: the io_context outlives the pool
    std::optional<pool_type> p;
    ~state() {
      if (p) p->close();
    }
  };

  basic_blocking_pool() = default;  // empty: see create_pool

  void shut() noexcept {
    if (s_ && s_->p) s_->p->close();  // posted to the pool's strand; cannot fail
  }
  template <class S>
  friend basic_blocking_pool<S> create_pool(const std::vector<std::string>&,
                                            const pool_options&, error_code&, diagnostics&);

  const pool_type& p() const {
    if (!s_ || !s_->p)
      throw std::logic_error("dqlite: use of a moved-from or empty (failed) blocking_pool");
    return *s_->p;
  }

  template <class R, class Start, class... E>
  R call(Start start, E&... e) {
    p();
    return s_->driver.template run_for<R>(std::move(start), detail::value_of<R>{}, e...);
  }

  // f(pool, sql, token, params...) starts the pool's statement call.
  template <class R, class F, class... Args>
  R statement(F f, std::string_view sql, Args&&... args) {
    p();
    return detail::blocking_call(
        [&](error_code& ec, diagnostics& d, auto&&... a) {
          return s_->driver.template run<R>(
              [&](auto token) { f(*s_->p, sql, std::move(token), a...); }, ec, d);
        },
        std::forward<Args>(args)...);
  }

  std::shared_ptr<state> s_;
};

/// The TCP form.
using blocking_pool = basic_blocking_pool<boost::asio::ip::tcp::socket>;

/// Creates a blocking pool over the nodes at `addresses` and opens min_size connections to
/// the leader (as async_create_pool). Throws dqlite::error when they cannot be opened, or
/// with errc::invalid_argument for invalid options.
template <class Stream = boost::asio::ip::tcp::socket>
basic_blocking_pool<Stream> create_pool(const std::vector<std::string>& addresses,
                                        const pool_options& opts) {
  basic_blocking_pool<Stream> p(addresses, opts);
  p.warm_up();
  return p;
}

/// The same, reporting a failure in ec and d. When the connections could not be opened the
/// pool is returned anyway (its later calls try again); for invalid options
/// (errc::invalid_argument) an empty pool is returned, whose every call throws
/// std::logic_error.
template <class Stream = boost::asio::ip::tcp::socket>
basic_blocking_pool<Stream> create_pool(const std::vector<std::string>& addresses,
                                        const pool_options& opts, error_code& ec,
                                        diagnostics& d) {
  try {
    basic_blocking_pool<Stream> p(addresses, opts);
    p.warm_up(ec, d);
    return p;
  } catch (const error& e) {
    ec = e.code();
    d = e.get_diagnostics();
    return basic_blocking_pool<Stream>();
  }
}

}  // namespace dqlite
// ---- end dqlite/blocking_pool.hpp ----
// ---- begin dqlite/version.hpp ----
// Version of dqlite-client for C++.

#define DQLITE_CLIENT_VERSION_MAJOR 0
#define DQLITE_CLIENT_VERSION_MINOR 1
#define DQLITE_CLIENT_VERSION_PATCH 0
#define DQLITE_CLIENT_VERSION "0.1.0"
// ---- end dqlite/version.hpp ----
// ---- end dqlite/client.hpp ----

#endif // DQLITE_SINGLE_INCLUDE_CLIENT_HPP
