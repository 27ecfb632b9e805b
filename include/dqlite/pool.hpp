// A pool of connections to the leader of a dqlite cluster.
#pragma once

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

/// How a pool behaves. Designated initialisers:
///   auto pool = co_await dqlite::async_create_pool(ex, {"10.0.0.1:9001", "10.0.0.2:9001"},
///                                                  {.database = "app", .max_size = 16});
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
};

template <class Conn, class Connector>
class pooled_handle;

namespace detail {

/// The state of a pool, independent of how connections are made. Conn needs is_open(),
/// broken_by() and close(); Connector needs connect() -> awaitable<cluster_result<Conn>>,
/// reset(Conn&) and ping(Conn&) -> awaitable<error_code>, and close(). Every member is
/// used on `ex` only (a strand when the pool may be used from several threads).
template <class Conn, class Connector>
class pool_core : public std::enable_shared_from_this<pool_core<Conn, Connector>> {
 public:
  using clock = std::chrono::steady_clock;
  using handle_type = pooled_handle<Conn, Connector>;

  pool_core(boost::asio::any_io_executor e, Connector c, const pool_options& o)
      : ex(std::move(e)), connector(std::move(c)), opts(o), pid(::getpid()) {}

  boost::asio::any_io_executor ex;
  Connector connector;
  pool_options opts;
  ::pid_t pid;

  struct idle_conn {
    Conn conn;
    clock::time_point since;
  };
  struct waiter {
    explicit waiter(const boost::asio::any_io_executor& e) : timer(e, clock::time_point::max()) {}
    boost::asio::steady_timer timer;
    std::optional<Conn> conn;
    bool closed = false;
  };

  std::vector<idle_conn> idle;  ///< the back is the most recently returned
  std::deque<std::shared_ptr<waiter>> waiters;
  std::size_t in_use = 0;
  std::size_t connecting = 0;
  std::uint64_t generation = 0;  ///< bumped by each leader change
  std::uint64_t opened = 0;
  std::uint64_t discarded = 0;
  std::uint64_t leader_changes = 0;
  std::string last_connect_error;  ///< the latest failure to open a connection (bounded)
  std::string connect_cause;       ///< the latest such failure that was not a timeout
  bool closed = false;
  std::shared_ptr<boost::asio::steady_timer> drained;  ///< cancelled when in_use drops

  std::size_t total() const noexcept { return idle.size() + in_use + connecting; }

  pool_stats stats() const {
    return {idle.size(), in_use, connecting, waiters.size(), opened, discarded, leader_changes};
  }

  /// errc::used_after_fork or errc::pool_closed when the pool cannot serve.
  error_code check_usable(std::string& diag) const {
    if (::getpid() != pid) {
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
    std::string s = "in use: " + std::to_string(in_use) + ", idle: " + std::to_string(idle.size()) +
                    ", connecting: " + std::to_string(connecting) +
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
    const bool timeout = ec == make_error_code(errc::timeout) ||
                         ec == make_error_code(boost::system::errc::timed_out);
    if (!timeout) connect_cause = text;
    last_connect_error = std::move(text);
  }

  void discard(Conn& c) {
    c.close();
    ++discarded;
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
    for (auto& ic : idle) discard(ic.conn);
    idle.clear();
    grow();
  }

  /// Hands a ready connection to the first waiter, or keeps it idle.
  void deliver(Conn c) {
    if (closed) {
      discard(c);
      return;
    }
    while (!waiters.empty()) {
      auto w = std::move(waiters.front());
      waiters.pop_front();
      if (w->conn || w->closed) continue;
      w->conn.emplace(std::move(c));
      ++in_use;
      w->timer.cancel();
      return;
    }
    idle.push_back(idle_conn{std::move(c), clock::now()});
  }

  bool wants_more() const {
    if (closed) return false;
    if (total() >= opts.max_size) return false;
    return waiters.size() > connecting || total() < opts.min_size;
  }

  /// Starts opening connections for the waiters and up to min_size.
  void grow() {
    while (wants_more()) {
      ++connecting;
      try {
        boost::asio::co_spawn(ex, connect_one(this->shared_from_this()), boost::asio::detached);
      } catch (...) {
        --connecting;
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

  static boost::asio::awaitable<void> connect_one(std::shared_ptr<pool_core> s) {
    for (;;) {
      std::optional<cluster_result<Conn>> r;
      r.emplace(co_await connect_safely(s));
      --s->connecting;
      if (!r->ec && r->value) {
        ++s->opened;
        s->connect_cause.clear();  // a new run of failures has its own cause
        s->deliver(std::move(*r->value));
        s->notify();
        co_return;
      }
      s->note_connect_failure(r->ec, r->diag);
      if (!s->wants_more()) {
        s->notify();
        co_return;
      }
      // Still needed: try again after a pause (the cluster client retried already).
      ++s->connecting;
      auto pause = std::max(s->opts.cluster.backoff_base, std::chrono::milliseconds(20));
      boost::asio::steady_timer t(s->ex, pause);
      co_await t.async_wait(as_tuple_awaitable);
      if (!s->wants_more_after_pause()) {
        --s->connecting;
        s->notify();
        co_return;
      }
    }
  }

  bool wants_more_after_pause() {
    // This coroutine is counted in `connecting`: uncount it to ask.
    --connecting;
    bool more = wants_more();
    ++connecting;
    return more;
  }

  void notify() {
    if (drained) drained->cancel();
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
        discard(ic.conn);
        continue;
      }
      ++in_use;
      if (clock::now() - ic.since > opts.health_check_after) {
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
          --in_use;
          if (!ic.conn.is_open()) {
            note_error(ic.conn.broken_by());
            discard(ic.conn);
          } else if (gen != generation) {
            discard(ic.conn);  // from before a leader change
          } else if (!waiters.empty()) {
            deliver(std::move(ic.conn));  // a waiter that came meanwhile
          } else {
            idle.push_back(std::move(ic));
          }
          notify();
          grow();
          co_return cancelled_by_caller<handle_type>();
        }
        if (ec || !ic.conn.is_open() || closed) {
          --in_use;
          discard(ic.conn);
          notify();
          if (closed) co_return result::fail(make_error_code(errc::pool_closed), "the pool was closed");
          if (is_connection_error(ec)) note_error(ec);
          grow();
          continue;
        }
      }
      result r;
      r.value.emplace(self, std::move(ic.conn), generation);
      co_return r;
    }
    if (was_cancelled(cs)) co_return cancelled_by_caller<handle_type>();
    auto w = std::make_shared<waiter>(ex);
    waiters.push_back(w);
    if (opts.acquire_timeout.count() > 0) w->timer.expires_at(start + opts.acquire_timeout);
    grow();
    // (grow() may have delivered a connection already.) Nothing between the check of the
    // cancellation above and this wait suspends, so the wait itself sees a cancellation:
    // it ends, and the waiter leaves the queue below.
    if (!w->conn && !w->closed) co_await w->timer.async_wait(as_tuple_awaitable);
    if (w->conn) {
      result r;
      r.value.emplace(self, std::move(*w->conn), generation);
      co_return r;
    }
    std::erase(waiters, w);
    if (w->closed || closed)
      co_return result::fail(make_error_code(errc::pool_closed),
                             "the pool was closed while waiting for a connection");
    if (was_cancelled(cs)) co_return cancelled_by_caller<handle_type>();
    co_return result::fail(make_error_code(errc::timeout),
                           "no connection became available within " +
                               std::to_string(opts.acquire_timeout.count()) + " ms (" +
                               describe_counts() + ")");
  }

  /// A checked-out connection comes back (from any thread).
  void give_back(Conn c, std::uint64_t gen, bool unusable) noexcept {
    if (::getpid() != pid) return;  // the connection forgets its socket when destroyed
    try {
      boost::asio::co_spawn(ex, returned(this->shared_from_this(), std::move(c), gen, unusable),
                            boost::asio::detached);
    } catch (...) {
    }
  }

  static boost::asio::awaitable<void> returned(std::shared_ptr<pool_core> s, Conn c,
                                               std::uint64_t gen, bool unusable) {
    bool keep = !unusable && !s->closed && c.is_open() && gen == s->generation;
    if (!c.is_open()) s->note_error(c.broken_by());
    if (keep) {
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
    --s->in_use;
    if (keep && !s->closed && gen == s->generation)
      s->deliver(std::move(c));
    else
      s->discard(c);
    s->notify();
    s->grow();
  }

  /// Opens connections until min_size are open, in parallel. Fails when none could be
  /// opened and some were needed.
  boost::asio::awaitable<cluster_result<void>> warm_up() {
    auto self = this->shared_from_this();
    struct round {
      explicit round(const boost::asio::any_io_executor& e) : done(e, clock::time_point::max()) {}
      boost::asio::steady_timer done;
      std::size_t running = 0;
      std::size_t ok = 0;
      std::string failure;
    };
    auto r = std::make_shared<round>(ex);
    const std::size_t want = opts.min_size > total() ? opts.min_size - total() : 0;
    for (std::size_t i = 0; i < want; ++i) {
      ++connecting;
      ++r->running;
      boost::asio::co_spawn(
          ex,
          [](std::shared_ptr<pool_core> s, std::shared_ptr<round> r) -> boost::asio::awaitable<void> {
            std::optional<cluster_result<Conn>> c;
            c.emplace(co_await connect_safely(s));
            --s->connecting;
            if (!c->ec && c->value) {
              ++s->opened;
              ++r->ok;
              s->connect_cause.clear();
              s->deliver(std::move(*c->value));
            } else {
              s->note_connect_failure(c->ec, c->diag);
              r->failure = s->last_connect_error;
            }
            if (--r->running == 0) r->done.cancel();
          }(self, r),
          boost::asio::detached);
    }
    if (r->running > 0) co_await r->done.async_wait(as_tuple_awaitable);
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
    for (auto& ic : idle) discard(ic.conn);
    idle.clear();
    for (auto& w : waiters) {
      w->closed = true;
      w->timer.cancel();
    }
    waiters.clear();
  }

  /// shut(), then waits (up to close_timeout) for the checked-out connections.
  boost::asio::awaitable<cluster_result<void>> close() {
    auto self = this->shared_from_this();
    shut();
    const auto deadline = clock::now() + std::max(opts.close_timeout, std::chrono::milliseconds(0));
    const auto cs = co_await boost::asio::this_coro::cancellation_state;
    while (in_use > 0 && clock::now() < deadline && !was_cancelled(cs)) {
      auto t = std::make_shared<boost::asio::steady_timer>(ex, deadline);
      drained = t;
      co_await t->async_wait(as_tuple_awaitable);
      drained.reset();
    }
    const std::size_t left = in_use;
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

/// Completes a pool operation from the result of its coroutine.
template <class Core, class T, class Body>
struct pool_op {
  std::shared_ptr<Core> s;
  std::shared_ptr<diagnostics> diag;
  Body body;

  template <class Self>
  void operator()(Self& self) {
    if (!s) {
      diag->assign("the pool is empty (moved from, or its creation failed)");
      if constexpr (std::is_void_v<T>)
        self.complete(make_error_code(errc::pool_closed));
      else
        self.complete(make_error_code(errc::pool_closed), T{});
      return;
    }
    auto ex = s->ex;
    boost::asio::co_spawn(ex, body(std::move(s)), std::move(self));
  }

  template <class Self>
  void operator()(Self& self, std::exception_ptr ep, cluster_result<T> r) {
    settle_cancelled(r, ep, self.get_cancellation_state().cancelled());
    diag->assign(r.diag);
    if constexpr (std::is_void_v<T>)
      self.complete(r.ec);
    else
      self.complete(r.ec, r.value ? std::move(*r.value) : T{});
  }
};

template <class Core, class T>
struct pool_initiation {
  std::shared_ptr<Core> s;
  std::shared_ptr<diagnostics> diag = std::make_shared<diagnostics>();
  std::shared_ptr<const diagnostics> diagnostics_ptr() const { return diag; }

  template <class Handler, class Body>
  void operator()(Handler&& h, Body body) {
    using sig = completion_sig_t<T>;
    if (s) {
      auto ex = s->ex;
      boost::asio::async_compose<Handler, sig>(pool_op<Core, T, Body>{s, diag, std::move(body)}, h,
                                               ex);
    } else {
      boost::asio::async_compose<Handler, sig>(pool_op<Core, T, Body>{s, diag, std::move(body)},
                                               h);
    }
  }
};

/// Runs pool operation `body(core)` (a coroutine returning cluster_result<T>) for `token`.
template <class T, class Core, class Token, class Body>
auto initiate_pool_op(std::shared_ptr<Core> s, Token& token, Body body) {
  return boost::asio::async_initiate<Token, completion_sig_t<T>>(pool_initiation<Core, T>{std::move(s)},
                                                                 token, std::move(body));
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

/// A connection checked out of a pool: use it through -> and *; it goes back to the pool
/// when the handle is destroyed (or reset()). Move-only. On its way back a connection
/// that is closed or broken is discarded; an open one is reset (an open transaction is
/// rolled back, abandoned cursors and statements are cleaned up) before it is idle again.
template <class Conn, class Connector>
class pooled_handle {
  using core_type = detail::pool_core<Conn, Connector>;

 public:
  /// An empty handle.
  pooled_handle() = default;
  pooled_handle(std::shared_ptr<core_type> core, Conn c, std::uint64_t gen)
      : core_(std::move(core)), conn_(std::move(c)), gen_(gen) {}
  pooled_handle(pooled_handle&&) noexcept = default;
  pooled_handle& operator=(pooled_handle&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::move(other.core_);
      conn_ = std::move(other.conn_);
      other.conn_.reset();
      gen_ = other.gen_;
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
  void reset() noexcept {
    if (conn_ && core_) core_->give_back(std::move(*conn_), gen_, unusable_);
    conn_.reset();
    core_.reset();
    unusable_ = false;
  }

 private:
  std::shared_ptr<core_type> core_;
  std::optional<Conn> conn_;
  std::uint64_t gen_ = 0;
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

  /// A pool over the nodes of `store`. Opens no connection: async_create_pool also warms
  /// it up to min_size (or call async_warm_up). Throws dqlite::error (errc::invalid_argument)
  /// for options that cannot work.
  basic_pool(const executor_type& ex, std::shared_ptr<node_store> store, const pool_options& opts)
      : s_(make_core(std::make_shared<basic_cluster<Stream>>(ex, std::move(store),
                                                             cluster_opts(opts)),
                     opts)) {}

  /// A pool over the nodes at `addresses` ("host:port").
  basic_pool(const executor_type& ex, const std::vector<std::string>& addresses,
             const pool_options& opts)
      : s_(make_core(std::make_shared<basic_cluster<Stream>>(ex, addresses, cluster_opts(opts)),
                     opts)) {}

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
  /// The shared state (for the library's own use).
  const std::shared_ptr<core_type>& core() const noexcept { return s_; }
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
    return c;
  }

  static std::shared_ptr<core_type> make_core(std::shared_ptr<basic_cluster<Stream>> cl,
                                              const pool_options& opts) {
    if (opts.max_size == 0)
      throw error(make_error_code(errc::invalid_argument),
                  dqlite::diagnostics("pool_options: max_size must be at least 1"));
    if (opts.min_size > opts.max_size)
      throw error(make_error_code(errc::invalid_argument),
                  dqlite::diagnostics("pool_options: min_size must not exceed max_size"));
    if (opts.database.empty())
      throw error(make_error_code(errc::invalid_argument),
                  dqlite::diagnostics("pool_options: the database name is empty"));
    auto ex = cl->get_executor();  // the cluster's strand: pool and cluster share it
    auto s = std::make_shared<core_type>(ex, connector_type{std::move(cl)}, opts);
    s->opts.database = s->connector.cluster->options().connection.database;  // owned there
    return s;
  }

  template <class Call, class... Args>
  auto statement(bool read, std::string_view sql, Call call, Args&&... args) {
    return detail::with_token<default_token_t>(
        [&]<class Token, class... P>(Token&& token, P&&... params) {
          using A = decltype(call(std::declval<connection_type&>(), std::string_view(),
                                  std::declval<detail::owned_param_t<P>&>()...));
          using R = std::tuple_element_t<1, typename A::value_type>;
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
        boost::asio::steady_timer timer(s->ex, pause);
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
      if (read && s->opts.retry_reads && attempt == 0 && is_retryable(ec)) continue;
      co_return result::fail(ec, std::move(text));
    }
  }

  // The state; a moved-from pool has none.
  core_type& state() const {
    if (!s_) throw std::logic_error("dqlite: use of a moved-from or failed pool");
    return *s_;
  }

  std::shared_ptr<core_type> s_;
};

/// A pool of TCP connections.
using pool = basic_pool<boost::asio::ip::tcp::socket>;
/// A connection checked out of a dqlite::pool.
using pooled_connection = basic_pooled_connection<boost::asio::ip::tcp::socket>;

namespace detail {

template <class Stream>
struct create_pool_op {
  std::shared_ptr<basic_pool<Stream>> p;
  std::shared_ptr<diagnostics> diag;

  template <class Self>
  void operator()(Self& self) {
    auto core = p->core();
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
  void operator()(Handler&& h, Executor ex, Nodes nodes, pool_options opts) {
    std::shared_ptr<basic_pool<Stream>> p;
    error_code failed;
    try {
      p = std::make_shared<basic_pool<Stream>>(ex, std::move(nodes), opts);
    } catch (const error& e) {
      failed = e.code();
      diag->assign(e.get_diagnostics().message());
    } catch (const std::exception& e) {
      failed = make_error_code(errc::invalid_argument);
      diag->assign(e.what());
    }
    if (failed) {
      boost::asio::async_compose<Handler, void(error_code, basic_pool<Stream>)>(
          [failed, ex, posted = false](auto& self) mutable {
            if (!posted) {
              posted = true;
              boost::asio::post(ex, std::move(self));
              return;
            }
            self.complete(failed, basic_pool<Stream>());
          },
          h, ex);
      return;
    }
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
      addresses, opts);
}

/// Same, over the nodes of a node store.
template <class Executor, class Token = default_token_t>
auto async_create_pool(const Executor& ex, std::shared_ptr<node_store> store,
                       const pool_options& opts = {}, Token&& token = {}) {
  using Stream = boost::asio::ip::tcp::socket;
  return boost::asio::async_initiate<Token, void(error_code, basic_pool<Stream>)>(
      detail::create_pool_initiation<Stream>{}, token, boost::asio::any_io_executor(ex),
      std::move(store), opts);
}

}  // namespace dqlite
