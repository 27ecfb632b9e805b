// dqlite-client for C++: single-header distribution.
//
// GENERATED FILE - DO NOT EDIT BY HAND.
// It is generated from the headers under include/ by tools/amalgamate.py.
// Edit those headers instead, then run: python3 tools/amalgamate.py
//
// Copyright (c) 2026 The dqlite-client for C++ authors
// SPDX-License-Identifier: MIT (see LICENSE.md)
//
// Add-on: <dqlite/src.hpp>, which needs DQLITE_CLIENT_SEPARATE_COMPILATION defined in every unit of the program; include it in one unit.

#ifndef DQLITE_SINGLE_INCLUDE_SRC_HPP
#define DQLITE_SINGLE_INCLUDE_SRC_HPP

#include "client.hpp"

// ---- begin dqlite/src.hpp ----
// Separate compilation: the parts of the library that do not depend on the user's types,
// compiled once. With DQLITE_CLIENT_SEPARATE_COMPILATION defined in every unit of a
// program (e.g. on the compiler's command line), exactly one unit includes this header:
//
//     // dqlite_client.cpp
//     #include <dqlite/src.hpp>
//
// The other units include <dqlite/client.hpp> (or the headers they need) as usual; they
// declare these parts and do not compile them again. A program built with the macro and
// without this unit fails to link with undefined references to the connections' members
// (dqlite::basic_connection<...>::~basic_connection()...), dqlite::detail::start_request,
// run_exchange, run_connect, dqlite::client_category()...
//
// What is compiled here: the functions of include/dqlite/impl/*.ipp (error categories and
// messages, node addresses, dynamic values and rows, SQL text scanning, frame encoding and
// decoding, the request exchange's handling of frames, failures and cancellation, column
// matching, ISO-8601 times, the logging and tracing events, the jitter of retry pauses, the
// cluster client's attempt reports, the pool's slot table and transaction retry rule, the
// blocking dqlite::connect and connect_unix), the start of
// every statement request (and the probe of the server some need first), the connections'
// construction from options and an executor (as async_connect and connect() do it),
// destruction, moves and closing, the members of their state, the TCP and unix connectors
// (dqlite/connector.hpp), and the I/O loops that run every request
// exchange and every connection opening (asynchronous and blocking), for TCP
// (boost::asio::ip::tcp::socket) and unix sockets (boost::asio::local::stream_protocol::
// socket) with Asio's default executor. Other streams (TLS, a custom executor) are
// compiled in the units that use them, as in header-only mode.

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#error "<dqlite/src.hpp> is for separate compilation: define DQLITE_CLIENT_SEPARATE_COMPILATION in every unit of the program"
#else  // the rest only with the macro: one clear error without it


// The library's functions that do not depend on the user's types (declared only in the
// other units: detail/config.hpp).
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
// ---- begin dqlite/impl/field.ipp ----
// Definitions of field.hpp (see detail/config.hpp).


namespace dqlite {

DQLITE_DECL error_code field_traits<value>::read(const wire::value_view& v, value& out) {
  out = value::from_view(v);
  return {};
}

}  // namespace dqlite
// ---- end dqlite/impl/field.ipp ----
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

namespace dqlite::detail {

template struct connection_impl<boost::asio::ip::tcp::socket>;
template struct connection_impl<boost::asio::local::stream_protocol::socket>;
template connection_impl<boost::asio::ip::tcp::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
template connection_impl<boost::asio::local::stream_protocol::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
template void run_exchange<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, exchange_core&,
    std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
template void run_exchange<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    exchange_core&, std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
template void run_connect<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, std::string,
    std::optional<boost::asio::ip::tcp::endpoint>, loop_handler<boost::asio::any_io_executor>);
template void run_connect<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    std::string, std::optional<boost::asio::local::stream_protocol::endpoint>, loop_handler<boost::asio::any_io_executor>);
template basic_connector<boost::asio::ip::tcp::socket>
make_socket_connector<boost::asio::ip::tcp::socket>(address_map);
template basic_connector<boost::asio::local::stream_protocol::socket>
make_socket_connector<boost::asio::local::stream_protocol::socket>(address_map);
template void start_request<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
template void start_request<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
template error_code run_blocking_exchange<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, exchange_core&, std::chrono::milliseconds,
    bool*);
template error_code run_blocking_exchange<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, exchange_core&,
    std::chrono::milliseconds, bool*);
template error_code run_blocking_connect<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, std::string_view,
    const boost::asio::ip::tcp::endpoint*);
template error_code run_blocking_connect<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, std::string_view,
    const boost::asio::local::stream_protocol::endpoint*);

}  // namespace dqlite::detail

/// @cond DQLITE_INTERNAL
namespace dqlite {

template class basic_connection<boost::asio::ip::tcp::socket>;
template class basic_connection<boost::asio::local::stream_protocol::socket>;
template basic_connection<boost::asio::ip::tcp::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);
template basic_connection<boost::asio::local::stream_protocol::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);

}  // namespace dqlite
/// @endcond

#endif  // DQLITE_CLIENT_SEPARATE_COMPILATION
// ---- end dqlite/src.hpp ----

#endif // DQLITE_SINGLE_INCLUDE_SRC_HPP
