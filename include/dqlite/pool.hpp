// A pool of connections to the leader of a dqlite cluster. Its parts: pool_options.hpp,
// detail/pool/core.hpp (the pool's state and operations).
#pragma once

#include <dqlite/detail/pool/core.hpp>
#include <dqlite/detail/pool/transaction_retry.hpp>
#include <dqlite/pool_options.hpp>
#include <dqlite/cluster.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/detail/token.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/with_diagnostics.hpp>

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
