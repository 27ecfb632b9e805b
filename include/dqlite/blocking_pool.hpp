// dqlite::blocking_pool: a pool of connections to the leader for programs without an
// event loop of their own, usable from many threads at once.
#pragma once

#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/io_driver.hpp>
#include <dqlite/detail/pool/transaction_retry.hpp>
#include <dqlite/pool.hpp>

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
