// The connection's side of the logging and tracing hooks (dqlite/observe.hpp): the span
// of the request in progress, what a request frame says about itself, and the events of
// an exchange's or a connect's end. No Asio; called by the I/O loop and the blocking
// driver only when a hook is set.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/detail/sansio/io.hpp>
#include <dqlite/detail/sansio/session.hpp>
#include <dqlite/error.hpp>
#include <dqlite/observe.hpp>
#include <dqlite/wire/encode.hpp>
#include <dqlite/wire/protocol.hpp>

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
#include <dqlite/impl/observe.ipp>
#endif
