// Transactions: an object from async_begin, and a scoped helper for coroutines.
#pragma once

#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/detail/request.hpp>
#include <dqlite/detail/session_procs.hpp>
#include <dqlite/error.hpp>
#include <dqlite/with_diagnostics.hpp>

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
