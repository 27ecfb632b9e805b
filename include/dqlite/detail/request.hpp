// Starting a statement request (SQL text or a prepared statement) with parameters.
#pragma once

#include <dqlite/detail/exchange.hpp>
#include <dqlite/error.hpp>
#include <dqlite/params.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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

template <class Impl, class... P>
error_code encode_request(Impl& ci, const request_spec& spec, bool query, const P&... params) {
  if (auto e = check_database(ci)) return e;
  wire::frame_mark m{};
  if (spec.prepared) {
    if (spec.generation != ci.generation) {
      ci.diag.assign("the prepared statement was closed, or belongs to an earlier opening of "
                     "this connection; prepare it again");
      return make_error_code(errc::not_connected);
    }
    m = wire::begin_stmt_request(ci.wbuf, spec.type(query), ci.db_id, spec.stmt);
  } else if (auto e = wire::begin_sql_request(ci.wbuf, spec.type(query), ci.db_id, spec.sql, m)) {
    ci.diag.assign("the SQL text contains a NUL byte");
    return e;
  }
  if (auto e = write_params(ci.wbuf, m, params...)) {
    ci.diag.assign(e == make_error_code(errc::invalid_argument)
                       ? "a text parameter contains a NUL byte"
                       : "a parameter could not be bound: " + e.message());
    return e;
  }
  wire::end_frame(ci.wbuf, m);
  return {};
}

/// Initiation of a statement request whose response goes to a Proc.
template <class Impl>
struct request_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class Proc, class... P>
  void operator()(Handler&& h, Proc proc, request_spec spec, bool query, const P&... params) {
    start_exchange(
        c, std::move(proc), std::forward<Handler>(h),
        [&](Impl& ci) { return encode_request(ci, spec, query, params...); },
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
