// The state of a pool (connections, waiters, limits, health, leader changes), independent
// of how connections are made, and the adapter that completes a pool operation from its
// coroutine.
#pragma once

#include <dqlite/pool_options.hpp>
#include <dqlite/cluster.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/detail/coroutine_op.hpp>
#include <dqlite/detail/event.hpp>
#include <dqlite/detail/pool/slots.hpp>
#include <dqlite/detail/token.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/observe.hpp>
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
