// Starting a statement request (SQL text or a prepared statement) with parameters.
#pragma once

#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/server_probe.hpp>
#include <dqlite/detail/sql_text.hpp>
#include <dqlite/error.hpp>
#include <dqlite/params.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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
  bool returning = false;        ///< the prepared statement has a RETURNING clause

  /// The shape of what the request runs (a prepared statement is one statement).
  sql_shape shape() const noexcept {
    if (prepared) return sql_shape{1, 0, returning};
    return scan_sql(sql);
  }

  wire::request type(bool query) const noexcept {
    if (prepared) return query ? wire::request::query : wire::request::exec;
    return query ? wire::request::query_sql : wire::request::exec_sql;
  }
};

/// Encodes the request into impl.wbuf.
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
template <class Impl>
error_code check_statement(Impl& ci, const request_spec& spec, const sql_shape& shape, bool query,
                           std::size_t params) {
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

/// Encodes the request into out (the connection's wbuf, or a buffer of its own while the
/// server is probed first).
template <class Impl, class... P>
error_code encode_request_to(wire::buffer& out, Impl& ci, const request_spec& spec, bool query,
                             const P&... params) {
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
  if (auto e = write_params(out, m, params...)) {
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

/// Checks (check_statement) and encodes the request into impl.wbuf.
template <class Impl, class... P>
error_code encode_request(Impl& ci, const request_spec& spec, bool query, const P&... params) {
  const sql_shape shape = spec.shape();
  const std::size_t n = (std::size_t{0} + ... + param_count(params));
  if (auto e = check_statement(ci, spec, shape, query, n)) return e;
  return encode_request_to(ci.wbuf, ci, spec, query, params...);
}

/// A request that needs the wide-parameter probe first (server_probe.hpp): the probe, then
/// the request, encoded beforehand (its parameters are only referenced while it starts).
template <class Impl, class Proc>
struct probed_request_op {
  std::shared_ptr<Impl> c;
  Proc proc;
  request_spec spec;
  sql_shape shape;
  bool query;
  std::size_t params;
  wire::buffer request;
  std::uint64_t generation;  ///< the opening the request was encoded for
  using result_type = typename Proc::result_type;

  template <class Self>
  void operator()(Self& self) {
    auto conn = c;
    start_exchange(
        conn, wide_params_probe_proc{}, std::move(self),
        [](Impl& ci) -> error_code {
          if (auto e = check_database(ci)) return e;
          return encode_wide_params_probe(ci.wbuf, ci.db_id);
        },
        exchange_params{true, c->opts.request_timeout, 0});
  }

  template <class Self>
  void operator()(Self& self, error_code ec, wide_params_answer answer) {  // probed
    const bool refused = ec.category() == server_category() ||
                         ec == make_error_code(errc::server_failure);
    if (ec && !refused) return fail(self, ec);  // the connection failed: report that
    remember_wide_params(*c, !ec && answer.echoed ? wide_params::supported
                                                   : wide_params::unsupported);
    auto conn = c;  // self (holding c) moves into the exchange
    start_exchange(
        conn, std::move(proc), std::move(self),
        [this](Impl& ci) -> error_code {
          if (auto e = check_statement(ci, spec, shape, query, params)) return e;
          if (ci.generation != generation) {
            ci.diag.assign("the connection was reopened while the request was prepared");
            return make_error_code(errc::not_connected);
          }
          ci.wbuf = std::move(request);
          return {};
        },
        exchange_params{true, c->opts.request_timeout, spec.holder});
  }

  template <class Self>
  void operator()(Self& self, error_code ec) {  // the request's completion (no result)
    self.complete(ec);
  }
  template <class Self, class R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, wide_params_answer>)
  void operator()(Self& self, error_code ec, R&& result) {  // the request's completion
    self.complete(ec, std::forward<R>(result));
  }

 private:
  template <class Self>
  void fail(Self& self, error_code ec) {
    if constexpr (std::is_void_v<result_type>)
      self.complete(ec);
    else
      self.complete(ec, result_type{});
  }
};

/// Initiation of a statement request whose response goes to a Proc.
template <class Impl>
struct request_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class Proc, class... P>
  void operator()(Handler&& h, Proc proc, request_spec spec, bool query, const P&... params) {
    const sql_shape shape = spec.shape();
    const std::size_t n = (std::size_t{0} + ... + param_count(params));
    // More than 255 parameters, or a query with RETURNING, on a connection whose server has
    // not been probed yet: probe first.
    const bool wide = n > wire::max_schema0_params;
    if ((wide || (query && shape.returning)) && c->state == conn_state::open && !c->busy &&
        c->holder == 0 && known_wide_params(*c) == wide_params::unknown &&
        !check_statement(*c, spec, shape, query, n)) {
      wire::buffer request;
      if (!encode_request_to(request, *c, spec, query, params...)) {
        using sig = completion_sig_t<typename Proc::result_type>;
        auto ex = c->stream.get_executor();
        boost::asio::async_compose<Handler, sig>(
            probed_request_op<Impl, Proc>{c, std::move(proc), spec, shape, query, n,
                                          std::move(request), c->generation},
            h, ex);
        return;
      }
      c->diag.clear();  // the same error is found again below, and reported there
    }
    start_exchange(
        c, std::move(proc), std::forward<Handler>(h),
        [&](Impl& ci) -> error_code {
          if (auto e = check_statement(ci, spec, shape, query, n)) return e;
          return encode_request_to(ci.wbuf, ci, spec, query, params...);
        },
        exchange_params{true, c->opts.request_timeout, spec.holder});
  }
};

/// Initiation of an exchange with a request encoded by a function of the connection.
template <class Impl>
struct encoded_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class Proc, class Encode>
  void operator()(Handler&& h, Proc proc, Encode encode, exchange_params params) {
    start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), params);
  }
};

/// Initiation of a composed operation Op (async_compose) on the connection.
template <class Impl, class Op, class Sig>
struct composed_initiation {
  std::shared_ptr<Impl> c;
  Op op;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler>
  void operator()(Handler&& h) {
    auto ex = c->stream.get_executor();
    boost::asio::async_compose<Handler, Sig>(std::move(op), h, ex);
  }
};

/// Completes a handler with an error found before anything could start (posted to the
/// handler's executor, never invoked inline).
template <class Impl>
struct failed_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class... R>
  void operator()(Handler&& h, error_code ec, std::string diag, R... results) {
    if (!diag.empty()) c->diag.assign(diag);
    auto ex = c->stream.get_executor();
    boost::asio::async_compose<Handler, void(error_code, R...)>(
        [ec, posted = false, ... r = std::move(results)](auto& self) mutable {
          if (!posted) {
            posted = true;
            boost::asio::post(std::move(self));
            return;
          }
          self.complete(ec, std::move(r)...);
        },
        h, ex);
  }
};

}  // namespace dqlite::detail
