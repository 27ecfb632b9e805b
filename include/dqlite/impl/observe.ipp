// Definitions of detail/sansio/observe.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/sansio/observe.hpp>

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
