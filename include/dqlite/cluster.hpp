// The cluster client: leader discovery, connecting to the leader with retries, cluster
// administration.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

/// How a cluster client finds the leader and retries. Designated initialisers:
///   dqlite::cluster c(ex, {"10.0.0.1:9001", "10.0.0.2:9001"},
///                     {.connection = {.database = "app"}, .retry_timeout = 5s});
struct cluster_options {
  /// Options of the connections to the leader that async_connect makes: the database to
  /// open (empty: none, for administration), timeouts, caps. The cluster keeps a copy of
  /// the database name.
  connection_options connection{};
  /// Bound on asking one node for the leader: TCP connect, handshake and LEADER. Must be
  /// positive.
  std::chrono::milliseconds probe_timeout{2'000};
  /// How many nodes are asked at the same time (at least 1).
  std::size_t max_concurrent_probes = 10;
  /// Attempts to find the leader (and, for async_connect, to open the database on it)
  /// before giving up. 0: no limit by count.
  unsigned max_attempts = 0;
  /// Bound on the time of all attempts together; a probe never outlasts it. 0 or less: no
  /// limit by time. With no limit at all (both 0) one attempt is made.
  std::chrono::milliseconds retry_timeout{30'000};
  /// Pause before attempt n + 1: backoff_base * backoff_factor^(n - 1), at most
  /// backoff_cap; with backoff_jitter, a random duration between half of that and all of
  /// it (so that clients do not retry in step).
  std::chrono::milliseconds backoff_base{100};
  unsigned backoff_factor = 2;
  std::chrono::milliseconds backoff_cap{1'000};
  bool backoff_jitter = true;
  /// After each successful discovery, replace the content of the node store with the
  /// leader's list of members (as async_refresh_store does). A refresh that fails (a store
  /// that cannot be written) does not fail the discovery: see basic_cluster::store_error().
  bool refresh_store = false;
};

/// The pause before attempt `attempt + 1` after `attempt` failed ones (attempt >= 1),
/// without jitter.
inline std::chrono::milliseconds backoff_delay(const cluster_options& o, unsigned attempt) {
  using ms = std::chrono::milliseconds;
  if (o.backoff_base.count() <= 0) return ms{0};
  const auto cap = std::max(o.backoff_cap, ms{0});
  auto d = o.backoff_base;
  for (unsigned i = 1; i < attempt && d < cap; ++i) {
    if (o.backoff_factor <= 1) break;
    if (d.count() > cap.count() / static_cast<ms::rep>(o.backoff_factor)) {
      d = cap;
      break;
    }
    d *= o.backoff_factor;
  }
  return std::min(d, cap);
}

/// A random duration between d / 2 and d.
template <class URBG>
std::chrono::milliseconds jittered(std::chrono::milliseconds d, URBG& g) {
  if (d.count() <= 1) return d;
  std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(g));
}

template <class Stream>
class basic_cluster;

namespace detail {

inline constexpr auto as_tuple_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

/// What a cluster operation produces: an error with its text, or a value.
template <class T>
struct cluster_result {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  error_code ec;
  std::string diag;
  std::optional<value_type> value;

  static cluster_result fail(error_code e, std::string text) {
    cluster_result r;
    r.ec = e;
    r.diag = std::move(text);
    return r;
  }

  /// An exception that escaped an operation's coroutine, as a failure.
  static cluster_result from_exception(std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::bad_alloc&) {
      return fail(make_error_code(boost::system::errc::not_enough_memory), "out of memory");
    } catch (const std::exception& e) {
      return fail(make_error_code(errc::invalid_argument), e.what());
    } catch (...) {
      return fail(make_error_code(errc::invalid_argument), "unknown exception");
    }
  }
};

/// True once the operation whose cancellation state this is has been cancelled.
inline bool was_cancelled(const boost::asio::cancellation_state& cs) noexcept {
  return cs.cancelled() != boost::asio::cancellation_type::none;
}

/// The failure of an operation its caller cancelled.
template <class T>
cluster_result<T> cancelled_by_caller(std::string detail = {}) {
  std::string text = "the operation was cancelled";
  if (!detail.empty()) text += " (" + detail + ")";
  return cluster_result<T>::fail(make_error_code(errc::cancelled), std::move(text));
}

/// The failure of an operation its caller cancelled reads as errc::cancelled, whatever
/// step it stopped in (a cancelled wait, a connection closed by the cancellation), except
/// an unknown outcome, which stays what it is. `ep`: the operation ended with this
/// exception (a cancelled co_await throws; its text says nothing more).
template <class T>
void settle_cancelled(cluster_result<T>& r, std::exception_ptr ep,
                      boost::asio::cancellation_type_t cancelled) {
  if (cancelled == boost::asio::cancellation_type::none) {
    if (ep) r = cluster_result<T>::from_exception(ep);
    return;
  }
  if (ep)
    r = cancelled_by_caller<T>();
  else if (r.ec && !is_cancelled(r.ec) && !is_outcome_unknown(r.ec))
    r = cancelled_by_caller<T>(std::move(r.diag));
}

/// Why each node that was asked did not lead to the leader, in the order first asked.
class attempt_report {
 public:
  /// Longest reason kept for a node, in bytes (a server's message may be much longer).
  static constexpr std::size_t max_reason_size = 512;

  /// Records why `address` failed; a node not asked (or asked when the time for retries
  /// had run out) keeps the reason of an earlier attempt.
  void note(const std::string& address, std::string reason, bool asked = true) {
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
  void merge(const attempt_report& other) {
    for (const auto& e : other.entries_) note(e.address, e.reason, e.asked);
  }
  bool empty() const noexcept { return entries_.empty(); }
  std::string text() const {
    std::string s;
    for (const auto& e : entries_) {
      if (!s.empty()) s += "; ";
      s += printable(e.address) + " (" + e.reason + ")";
    }
    return s;
  }

 private:
  struct entry {
    std::string address;
    std::string reason;
    bool asked;
  };
  std::vector<entry> entries_;
};

inline std::string error_text(const error_code& ec, const diagnostics& d) {
  if (d.empty()) return ec.message();
  if (d.message().find(ec.message()) != std::string::npos) return d.message();
  return d.message() + ": " + ec.message();
}

template <class Stream>
struct cluster_state {
  using connection_type = basic_connection<Stream>;
  using impl_type = connection_impl<Stream>;
  using clock = std::chrono::steady_clock;

  /// A connection to a node that answered LEADER with its own address.
  struct leader_conn {
    std::string address;
    std::uint64_t id = 0;
    std::optional<connection_type> conn;  // empty for those waiting on another discovery
  };
  using discovery = cluster_result<leader_conn>;

  /// A running discovery that other callers wait for.
  struct shared_discovery {
    // Waiters wait on `done` until the runner cancels it (its expiry never comes).
    explicit shared_discovery(const boost::asio::any_io_executor& ex)
        : done(ex, clock::time_point::max()) {}
    boost::asio::steady_timer done;
    bool finished = false;
    error_code ec;
    std::string diag;
    std::string address;
    std::uint64_t id = 0;
    attempt_report report;
    std::optional<connection_type> conn;  ///< the leader's, until a waiter takes it
  };

  /// The nodes of one discovery, asked by a bounded number of workers at once.
  struct probe_round {
    explicit probe_round(const boost::asio::any_io_executor& ex) : wake(ex) {}
    std::vector<std::string> addresses;
    std::size_t next = 0;
    std::size_t running = 0;
    clock::time_point deadline;
    std::vector<std::string> reasons;
    std::vector<bool> asked;
    std::optional<leader_conn> found;
    std::vector<std::weak_ptr<impl_type>> conns;
    boost::asio::steady_timer wake;
  };

  cluster_state(boost::asio::any_io_executor e, std::shared_ptr<node_store> s, cluster_options o)
      : ex(std::move(e)), store(std::move(s)), opts(o), database(o.connection.database),
        rng(std::random_device{}()) {
    opts.connection.database = database;
  }

  boost::asio::any_io_executor ex;  ///< a strand: every member is used on it only
  std::shared_ptr<node_store> store;
  cluster_options opts;
  std::string database;  ///< owns opts.connection.database
  std::string last_leader;
  std::uint64_t last_leader_id = 0;
  std::shared_ptr<shared_discovery> running;
  std::optional<connection_type> admin;  ///< cached connection (no database) to the leader
  std::vector<std::weak_ptr<impl_type>> live_conns;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> live_timers;
  bool closed = false;
  std::minstd_rand rng;
  diagnostics last_diag;  ///< the text of the last operation that completed
  error_code store_ec;     ///< the last automatic node store refresh failed (refresh_store)
  diagnostics store_diag;  ///< why

  template <class W>
  static void prune(std::vector<std::weak_ptr<W>>& v) {
    std::erase_if(v, [](const std::weak_ptr<W>& w) { return w.expired(); });
  }
  void track(const std::shared_ptr<impl_type>& c) {
    prune(live_conns);
    live_conns.push_back(c);
  }
  void track(const std::shared_ptr<boost::asio::steady_timer>& t) {
    prune(live_timers);
    live_timers.push_back(t);
  }

  /// Closes everything in flight; operations complete with errc::cancelled.
  void shutdown() {
    closed = true;
    if (admin) admin->close();
    admin.reset();
    for (auto& w : live_conns)
      if (auto c = w.lock()) c->close_transport();
    for (auto& w : live_timers)
      if (auto t = w.lock()) t->cancel();
    if (running) running->done.cancel();
    live_conns.clear();
    live_timers.clear();
  }

  static cluster_result<void> closed_error() {
    return cluster_result<void>::fail(make_error_code(errc::cancelled),
                                      "the cluster client was closed");
  }

  /// Whether the time for retries has run out: a probe given the rest of it (whole
  /// milliseconds, rounded down) ends within a millisecond of the deadline.
  static bool out_of_time(clock::time_point deadline) {
    return deadline != clock::time_point::max() &&
           clock::now() + std::chrono::milliseconds(2) >= deadline;
  }

  std::chrono::milliseconds time_left(clock::time_point deadline, std::chrono::milliseconds cap) {
    if (deadline == clock::time_point::max()) return cap;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    return std::max(std::chrono::milliseconds(1), std::min(left, cap));
  }

  connection_options probe_options(std::chrono::milliseconds timeout) const {
    connection_options o = opts.connection;
    o.database = {};
    o.connect_timeout = timeout;
    o.request_timeout = timeout;
    return o;
  }
};

/// The result of asking one node for the leader.
template <class Stream>
struct leader_answer {
  std::optional<basic_connection<Stream>> conn;
  node_info leader;      ///< what the node answered
  std::string failure;   ///< non-empty when the node could not be asked
};

/// Connects to `address` (no database) and sends LEADER, within `timeout`.
template <class Stream>
boost::asio::awaitable<leader_answer<Stream>> ask_leader(
    std::shared_ptr<cluster_state<Stream>> s, std::string address,
    std::chrono::milliseconds timeout,
    std::shared_ptr<typename cluster_state<Stream>::probe_round> round) {
  leader_answer<Stream> out;
  out.conn.emplace(s->probe_options(timeout), s->ex);
  auto& conn = *out.conn;
  s->track(conn.impl());
  if (round) round->conns.push_back(conn.impl());
  auto r1 = co_await conn.async_connect(address, as_tuple_awaitable);
  if (auto ec = std::get<0>(r1)) {
    out.failure = error_text(ec, conn.diagnostics());
    // The report names the node already.
    for (std::string_view step : {"connecting to ", "resolving "}) {
      std::string prefix = std::string(step) + address + ": ";
      if (out.failure.rfind(prefix, 0) == 0)
        out.failure = (step == "resolving " ? "cannot resolve: " : "cannot connect: ") +
                      out.failure.substr(prefix.size());
    }
    out.conn.reset();
    co_return out;
  }
  auto r2 = co_await conn.async_leader(as_tuple_awaitable);
  if (auto ec = std::get<0>(r2)) {
    out.failure = "asking for the leader: " + error_text(ec, conn.diagnostics());
    out.conn.reset();
    co_return out;
  }
  out.leader = std::move(std::get<1>(r2));
  co_return out;
}

/// Asks one node; follows its answer to another node only once that node confirms it
/// leads. Returns the leader's connection, or why this node led to none.
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>> probe_node(
    std::shared_ptr<cluster_state<Stream>> s, std::string address,
    typename cluster_state<Stream>::clock::time_point deadline,
    std::shared_ptr<typename cluster_state<Stream>::probe_round> round) {
  using result = cluster_result<typename cluster_state<Stream>::leader_conn>;
  const auto no = make_error_code(errc::no_leader);
  auto a = co_await ask_leader<Stream>(s, address, s->time_left(deadline, s->opts.probe_timeout),
                                       round);
  if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "closed");
  if (!a.failure.empty()) co_return result::fail(no, a.failure);
  if (a.leader.address.empty()) {
    // Stand-bys and spares know no leader (they answer LEADER with none), and neither does a
    // voter during an election; each lists the members it knows. Those of a probe round are
    // asked in turn: a client whose only known node is a stand-by reaches the voters.
    if (!round) co_return result::fail(no, "knows no leader");
    auto m = co_await a.conn->async_cluster(as_tuple_awaitable);
    if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "closed");
    a.conn->close();
    if (std::get<0>(m)) co_return result::fail(no, "knows no leader");
    auto members = std::move(std::get<1>(m));
    std::stable_sort(members.begin(), members.end(), [](const node_info& x, const node_info& y) {
      return static_cast<int>(x.role) < static_cast<int>(y.role);
    });
    std::size_t added = 0;
    for (const auto& n : members) {
      if (n.address.empty() || n.role == node_role::spare ||
          std::find(round->addresses.begin(), round->addresses.end(), n.address) !=
              round->addresses.end())
        continue;
      round->addresses.push_back(n.address);
      round->reasons.emplace_back();
      round->asked.push_back(false);
      ++added;
    }
    co_return result::fail(
        no, added == 0 ? std::string("knows no leader")
                       : "knows no leader; asking the " + std::to_string(added) +
                             " other member(s) it lists");
  }
  if (a.leader.address == address) {
    result r;
    r.value.emplace();
    r.value->address = std::move(address);
    r.value->id = a.leader.id;
    r.value->conn = std::move(a.conn);
    co_return r;
  }
  // A redirect: the named node must confirm.
  a.conn->close();
  std::string target = a.leader.address;
  auto b = co_await ask_leader<Stream>(s, target, s->time_left(deadline, s->opts.probe_timeout),
                                       round);
  if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "closed");
  std::string why = "names " + printable(target) + " as the leader, but that node ";
  if (!b.failure.empty()) co_return result::fail(no, why + "failed: " + b.failure);
  if (b.leader.address.empty()) co_return result::fail(no, why + "knows no leader");
  if (b.leader.address != target)
    co_return result::fail(no, why + "names " + printable(b.leader.address));
  result r;
  r.value.emplace();
  r.value->address = std::move(target);
  r.value->id = b.leader.id;
  r.value->conn = std::move(b.conn);
  co_return r;
}

/// One worker of a probe round: asks the round's nodes one after the other until they are
/// all asked or the leader is found.
template <class Stream>
boost::asio::awaitable<void> probe_worker(
    std::shared_ptr<cluster_state<Stream>> s,
    std::shared_ptr<typename cluster_state<Stream>::probe_round> round) {
  try {
    while (!round->found && !s->closed && round->next < round->addresses.size()) {
      std::size_t i = round->next++;
      if (round->deadline != cluster_state<Stream>::clock::time_point::max() &&
          cluster_state<Stream>::clock::now() >= round->deadline) {
        round->reasons[i] = "not asked: the time for retries ran out";
        continue;
      }
      round->asked[i] = true;
      auto r = co_await probe_node<Stream>(s, round->addresses[i], round->deadline, round);
      if (r.ec) {
        round->reasons[i] = std::move(r.diag);
        // A probe cut short by the end of the time for retries says less than an earlier
        // attempt's reason: it does not replace one.
        if (cluster_state<Stream>::out_of_time(round->deadline)) round->asked[i] = false;
        continue;
      }
      if (round->found) {
        r.value->conn->close();  // another worker was faster
        continue;
      }
      round->reasons[i].clear();
      round->found = std::move(r.value);
      // Stop the other probes of this round: their answers are not needed.
      auto keep = round->found->conn->impl();
      for (auto& w : round->conns)
        if (auto c = w.lock(); c && c != keep) c->close_transport();
    }
  } catch (const std::exception& e) {
    if (round->next > 0 && round->reasons[round->next - 1].empty())
      round->reasons[round->next - 1] = std::string("probe failed: ") + e.what();
  }
  --round->running;
  round->wake.cancel();
}

/// One discovery: the last known leader first, then every node of the store, voters
/// first, at most max_concurrent_probes at a time.
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>> discover(
    std::shared_ptr<cluster_state<Stream>> s,
    typename cluster_state<Stream>::clock::time_point deadline, attempt_report& report) {
  using state = cluster_state<Stream>;
  using result = cluster_result<typename state::leader_conn>;
  const auto no = make_error_code(errc::no_leader);

  std::vector<node_info> nodes;
  try {
    nodes = s->store->get();
  } catch (const std::exception& e) {
    co_return result::fail(no, std::string("reading the node store failed: ") + e.what());
  }
  std::stable_sort(nodes.begin(), nodes.end(), [](const node_info& a, const node_info& b) {
    return static_cast<int>(a.role) < static_cast<int>(b.role);
  });
  std::vector<std::string> addresses;
  for (auto& n : nodes)
    if (std::find(addresses.begin(), addresses.end(), n.address) == addresses.end())
      addresses.push_back(n.address);

  std::optional<typename state::leader_conn> found;
  const std::string last = s->last_leader;
  if (!last.empty()) {
    auto r = co_await probe_node<Stream>(s, last, deadline, nullptr);
    if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "closed");
    if (r.ec)
      report.note(last, "last known leader: " + r.diag, !state::out_of_time(deadline));
    else
      found = std::move(r.value);
    std::erase(addresses, last);
  } else if (addresses.empty()) {
    co_return result::fail(no, "the node store is empty: there is no node to ask for the leader");
  }

  if (!found && !addresses.empty()) {
    auto round = std::make_shared<typename state::probe_round>(s->ex);
    s->track(std::shared_ptr<boost::asio::steady_timer>(round, &round->wake));  // for close()
    round->addresses = addresses;
    round->reasons.resize(addresses.size());
    round->asked.resize(addresses.size(), false);
    round->deadline = deadline;
    std::size_t workers = std::min(addresses.size(), std::max<std::size_t>(1, s->opts.max_concurrent_probes));
    round->running = workers;
    for (std::size_t w = 0; w < workers; ++w)
      boost::asio::co_spawn(s->ex, probe_worker<Stream>(s, round), boost::asio::detached);
    while (round->running > 0 && !round->found && !s->closed) {
      round->wake.expires_at(state::clock::time_point::max());
      co_await round->wake.async_wait(as_tuple_awaitable);
    }
    if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "closed");
    for (std::size_t i = 0; i < round->addresses.size(); ++i)  // with those learned
      if (!round->reasons[i].empty())
        report.note(round->addresses[i], round->reasons[i], round->asked[i]);
    found = std::move(round->found);
  }
  if (!found) co_return result::fail(no, "no node knows a leader");

  s->last_leader = found->address;
  s->last_leader_id = found->id;
  if (s->opts.refresh_store) {
    // The leader is reached: a refresh that fails does not lose it. The failure is kept
    // for basic_cluster::store_error().
    auto r = co_await found->conn->async_cluster(as_tuple_awaitable);
    if (auto ec = std::get<0>(r)) {
      if (!found->conn->is_open()) {  // the leader's connection broke: it is of no use
        report.note(found->address, "leader, but asking it for the members failed: " +
                                        error_text(ec, found->conn->diagnostics()));
        co_return result::fail(no, "the leader did not list the members");
      }
      s->store_ec = ec;
      s->store_diag.assign("refreshing the node store: asking the leader " + found->address +
                           " for the members failed: " +
                           error_text(ec, found->conn->diagnostics()));
    } else {
      try {
        s->store->set(std::move(std::get<1>(r)));
        s->store_ec = {};
        s->store_diag.clear();
      } catch (const std::exception& e) {
        s->store_ec = make_error_code(boost::system::errc::io_error);
        s->store_diag.assign(std::string("refreshing the node store: updating it failed: ") +
                             e.what());
      }
    }
  }
  result r;
  r.value = std::move(found);
  co_return r;
}

/// Runs one discovery for every caller waiting on `run`, on its own: cancelling one of
/// them does not stop it.
template <class Stream>
boost::asio::awaitable<void> run_discovery(
    std::shared_ptr<cluster_state<Stream>> s,
    std::shared_ptr<typename cluster_state<Stream>::shared_discovery> run,
    typename cluster_state<Stream>::clock::time_point deadline) {
  using result = cluster_result<typename cluster_state<Stream>::leader_conn>;
  result r;
  try {
    r = co_await discover<Stream>(s, deadline, run->report);
  } catch (const std::exception& e) {
    // Never leave the waiters waiting.
    r = result::fail(make_error_code(errc::no_leader), std::string("discovery failed: ") + e.what());
  }
  run->finished = true;
  run->ec = r.ec;
  run->diag = r.diag;
  if (!r.ec) {
    run->address = r.value->address;
    run->id = r.value->id;
    run->conn = std::move(r.value->conn);  // for the first waiter that wakes up
  }
  if (s->running == run) s->running.reset();
  run->done.cancel();
}

/// A discovery shared by concurrent callers: the first one starts it, all wait for its
/// result. The first to wake up takes the leader's connection; the others get the
/// leader's address only (and connect to it themselves).
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>>
shared_discover(std::shared_ptr<cluster_state<Stream>> s,
                typename cluster_state<Stream>::clock::time_point deadline,
                attempt_report& report) {
  using state = cluster_state<Stream>;
  using result = cluster_result<typename state::leader_conn>;
  auto run = s->running;
  if (!run) {
    run = std::make_shared<typename state::shared_discovery>(s->ex);
    s->running = run;
    try {
      boost::asio::co_spawn(s->ex, run_discovery<Stream>(s, run, deadline), boost::asio::detached);
    } catch (...) {
      s->running.reset();
      throw;
    }
  }
  // A cancellation of this caller ends the wait (and, at the next co_await, the caller's
  // operation); the discovery goes on for the others.
  while (!run->finished && !s->closed) co_await run->done.async_wait(as_tuple_awaitable);
  if (!run->finished) co_return result::fail(make_error_code(errc::cancelled), "closed");
  report.merge(run->report);
  if (run->ec) co_return result::fail(run->ec, run->diag);
  result r;
  r.value.emplace();
  r.value->address = run->address;
  r.value->id = run->id;
  // A cancelled caller leaves the connection to the next one (its next co_await throws).
  const auto cs = co_await boost::asio::this_coro::cancellation_state;
  if (!was_cancelled(cs) && run->conn) {
    if (run->conn->is_open()) r.value->conn = std::move(run->conn);
    run->conn.reset();
  }
  co_return r;
}

/// Finds the leader and returns a connection to it (no database), retrying with backoff
/// within the options' bounds. With `database` non-empty the database is opened on it.
template <class Stream>
boost::asio::awaitable<cluster_result<typename cluster_state<Stream>::leader_conn>>
connect_leader(std::shared_ptr<cluster_state<Stream>> s, std::string database) {
  using state = cluster_state<Stream>;
  using result = cluster_result<typename state::leader_conn>;
  const auto& o = s->opts;
  const auto start = state::clock::now();
  const auto deadline =
      o.retry_timeout.count() > 0 ? start + o.retry_timeout : state::clock::time_point::max();
  const unsigned max_attempts =
      o.max_attempts == 0 && o.retry_timeout.count() <= 0 ? 1 : o.max_attempts;
  attempt_report report;
  std::string last_failure;
  unsigned attempt = 0;
  for (;;) {
    ++attempt;
    auto d = co_await shared_discover<Stream>(s, deadline, report);
    if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "the cluster client was closed");
    if (!d.ec && !d.value->conn) {
      // Found by another caller's discovery: confirm it and get a connection of our own.
      auto a = co_await ask_leader<Stream>(s, d.value->address,
                                           s->time_left(deadline, o.probe_timeout), nullptr);
      if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "the cluster client was closed");
      if (!a.failure.empty() || a.leader.address != d.value->address) {
        report.note(d.value->address,
                    "found as the leader, but " +
                        (a.failure.empty() ? std::string("it no longer is") : a.failure));
        d = result::fail(make_error_code(errc::no_leader), "the leader changed");
      } else {
        d.value->conn = std::move(a.conn);
      }
    }
    if (!d.ec && !database.empty()) {
      auto& conn = *d.value->conn;
      auto r = co_await conn.async_open_database(database, as_tuple_awaitable);
      if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "the cluster client was closed");
      if (auto ec = std::get<0>(r)) {
        std::string text = error_text(ec, conn.diagnostics());
        if (!is_retryable(ec))
          co_return result::fail(ec, "opening database '" + printable(database) + "' on the leader " +
                                         d.value->address + " failed: " + text);
        s->last_leader.clear();
        report.note(d.value->address, "leader, but opening the database failed: " + text);
        d = result::fail(make_error_code(errc::no_leader), text);
      }
    }
    if (!d.ec) {
      // From now on the connection follows the caller's options.
      auto& impl = *d.value->conn->impl();
      impl.opts.connect_timeout = o.connection.connect_timeout;
      impl.opts.request_timeout = o.connection.request_timeout;
      co_return d;
    }
    if (d.ec != make_error_code(errc::no_leader)) co_return d;  // not worth retrying
    last_failure = d.diag;
    const auto now = state::clock::now();
    const bool out_of_attempts = max_attempts != 0 && attempt >= max_attempts;
    const bool out_of_time = deadline != state::clock::time_point::max() && now >= deadline;
    if (out_of_attempts || out_of_time || report.empty()) {
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
      std::string text = "no leader found after " + std::to_string(attempt) +
                         (attempt == 1 ? " attempt" : " attempts") + " in " +
                         std::to_string(elapsed.count()) + " ms";
      if (report.empty())
        text += ": " + last_failure;
      else
        text += "; nodes asked: " + report.text();
      co_return result::fail(make_error_code(errc::no_leader), text);
    }
    auto pause = backoff_delay(o, attempt);
    if (o.backoff_jitter) pause = jittered(pause, s->rng);
    if (deadline != state::clock::time_point::max())
      pause = std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    if (pause.count() > 0) {
      auto timer = std::make_shared<boost::asio::steady_timer>(s->ex, pause);
      s->track(timer);
      co_await timer->async_wait(as_tuple_awaitable);
      if (s->closed) co_return result::fail(make_error_code(errc::cancelled), "the cluster client was closed");
    }
  }
}

/// Runs request(conn) on a connection (no database) to the leader: the cached one, or a
/// new one. A "not leader" answer (and, for requests that change nothing, a broken
/// connection) makes it find the leader again and retry once.
template <class Stream, class T, class Request>
boost::asio::awaitable<cluster_result<T>> on_leader(std::shared_ptr<cluster_state<Stream>> s,
                                                    Request request, bool read_only) {
  using state = cluster_state<Stream>;
  for (int round = 0;; ++round) {
    std::optional<typename state::connection_type> conn;
    if (s->admin && s->admin->is_open() && !s->admin->busy()) {
      conn = std::move(s->admin);
      s->admin.reset();
    } else {
      auto r = co_await connect_leader<Stream>(s, std::string());
      if (r.ec) co_return cluster_result<T>::fail(r.ec, std::move(r.diag));
      conn = std::move(r.value->conn);
    }
    auto t = co_await request(*conn);
    if (s->closed) {
      auto c = state::closed_error();
      co_return cluster_result<T>::fail(c.ec, c.diag);
    }
    error_code ec = std::get<0>(t);
    if (!ec) {
      if (!s->admin && conn->is_open()) s->admin = std::move(conn);
      cluster_result<T> out;
      if constexpr (std::is_void_v<T>)
        out.value.emplace();
      else
        out.value.emplace(std::move(std::get<1>(t)));
      co_return out;
    }
    std::string text = error_text(ec, conn->diagnostics());
    // Cancelled by the caller: nothing is known about the leader.
    if (is_cancelled(ec)) co_return cluster_result<T>::fail(ec, std::move(text));
    const bool leader_moved = is_not_leader(ec);
    if (leader_moved || is_connection_error(ec)) s->last_leader.clear();
    if (round == 0 && (leader_moved || (read_only && is_connection_error(ec)))) continue;
    if (conn->is_open() && !s->admin) s->admin = std::move(conn);
    co_return cluster_result<T>::fail(ec, std::move(text));
  }
}

/// Runs request(conn) on a new connection (no database) to the node at `address`.
template <class Stream, class T, class Request>
boost::asio::awaitable<cluster_result<T>> on_node(std::shared_ptr<cluster_state<Stream>> s,
                                                  std::string address, Request request) {
  auto opts = s->opts.connection;
  opts.database = {};
  basic_connection<Stream> conn(opts, s->ex);
  s->track(conn.impl());
  auto c = co_await conn.async_connect(address, as_tuple_awaitable);
  if (auto ec = std::get<0>(c)) co_return cluster_result<T>::fail(ec, error_text(ec, conn.diagnostics()));
  auto t = co_await request(conn);
  if (auto ec = std::get<0>(t))
    co_return cluster_result<T>::fail(ec, printable(address) + ": " + error_text(ec, conn.diagnostics()));
  cluster_result<T> out;
  if constexpr (std::is_void_v<T>)
    out.value.emplace();
  else
    out.value.emplace(std::move(std::get<1>(t)));
  co_return out;
}

/// Completes an operation of the cluster from the result of its coroutine.
template <class Stream, class T, class Body>
struct cluster_op {
  std::shared_ptr<cluster_state<Stream>> s;
  std::shared_ptr<diagnostics> diag;
  Body body;

  template <class Self>
  void operator()(Self& self) {
    boost::asio::co_spawn(s->ex, body(s), std::move(self));
  }

  template <class Self>
  void operator()(Self& self, std::exception_ptr ep, cluster_result<T> r) {
    settle_cancelled(r, ep, self.get_cancellation_state().cancelled());
    diag->assign(r.diag);
    s->last_diag = *diag;
    if constexpr (std::is_void_v<T>) {
      self.complete(r.ec);
    } else if constexpr (std::is_same_v<T, basic_connection<Stream>>) {
      if (r.value)
        self.complete(r.ec, std::move(*r.value));
      else
        self.complete(r.ec, basic_connection<Stream>(s->opts.connection, s->ex));
    } else {
      self.complete(r.ec, r.value ? std::move(*r.value) : T{});
    }
  }
};

template <class Stream, class T>
struct cluster_initiation {
  std::shared_ptr<cluster_state<Stream>> s;
  std::shared_ptr<diagnostics> diag = std::make_shared<diagnostics>();
  std::shared_ptr<const diagnostics> diagnostics_ptr() const { return diag; }

  template <class Handler, class Body>
  void operator()(Handler&& h, Body body) {
    using sig = completion_sig_t<T>;
    boost::asio::async_compose<Handler, sig>(cluster_op<Stream, T, Body>{s, diag, std::move(body)},
                                             h, s->ex);
  }
};

}  // namespace detail

/// A client of a whole dqlite cluster: finds the leader, connects to it with retries, and
/// administers the cluster.
///
/// Nodes come from a node store (or a list of addresses). Discovery asks the last known
/// leader first, then the stored nodes (voters first, max_concurrent_probes at a time)
/// which node leads: a node that names itself is the leader; a node that names another
/// one is believed only once that one names itself. Concurrent callers share one
/// discovery. Failed attempts are retried with exponential backoff and jitter within
/// cluster_options' bounds; the final errc::no_leader names every node asked and why it
/// did not lead to the leader.
///
/// Operations accept any completion token (default: dqlite::use_awaitable, which throws
/// dqlite::error with the diagnostics text). They run on a strand of the executor, so a
/// cluster may be used from several threads. Destroying the cluster (or close()) makes
/// running operations complete with errc::cancelled; so does a terminal cancellation of
/// one operation through its cancellation slot (a discovery that other callers share goes
/// on for them).
///
/// Stream: the stream of the connections, which must support
/// basic_connection<Stream>::async_connect(address) (today: TCP sockets).
template <class Stream>
class basic_cluster {
  using state_type = detail::cluster_state<Stream>;

 public:
  using connection_type = basic_connection<Stream>;
  using executor_type = boost::asio::any_io_executor;

  /// A cluster whose nodes are in `store`. Throws dqlite::error (errc::invalid_argument)
  /// for options that cannot work.
  basic_cluster(const executor_type& ex, std::shared_ptr<node_store> store,
                const cluster_options& opts = {})
      : s_(make_state(ex, std::move(store), opts)) {}

  /// A cluster whose nodes are in any node_store_like object.
  template <node_store_like S>
    requires(!std::is_base_of_v<node_store, S>)
  basic_cluster(const executor_type& ex, std::shared_ptr<S> store, const cluster_options& opts = {})
      : basic_cluster(ex, make_node_store(std::move(store)), opts) {}

  /// A cluster whose nodes are at `addresses` ("host:port", "[ipv6]:port"), kept in a
  /// memory_node_store. Throws dqlite::error (errc::invalid_address) naming a malformed
  /// address, or for an empty list.
  basic_cluster(const executor_type& ex, const std::vector<std::string>& addresses,
                const cluster_options& opts = {})
      : basic_cluster(ex, make_address_store(addresses), opts) {}

  basic_cluster(basic_cluster&&) noexcept = default;
  basic_cluster& operator=(basic_cluster&& other) noexcept {
    if (this != &other) {
      close();
      s_ = std::move(other.s_);
    }
    return *this;
  }
  basic_cluster(const basic_cluster&) = delete;
  basic_cluster& operator=(const basic_cluster&) = delete;
  /// Closes the cluster (see close()).
  ~basic_cluster() { close(); }

  /// The strand the cluster's operations run on.
  executor_type get_executor() const { return s_->ex; }
  const cluster_options& options() const noexcept { return s_->opts; }
  /// The node store.
  const std::shared_ptr<node_store>& store() const noexcept { return s_->store; }
  /// The text that goes with the last completed operation: for errc::no_leader, every
  /// node asked and why it did not lead to the leader. (For tokens that do not carry it,
  /// such as callbacks or as_tuple; read it in the completion handler, or once no other
  /// operation of this cluster runs.)
  const dqlite::diagnostics& diagnostics() const noexcept { return s_->last_diag; }

  /// With cluster_options::refresh_store: why the last automatic refresh of the node store
  /// failed (the members could not be listed, or node_store::set threw: then
  /// boost::system::errc::io_error), or a default error_code when it succeeded or none
  /// ran. Such a failure does not fail the operation that reached the leader: it completes
  /// normally, with its connection. The text is in store_diagnostics(). Read them as
  /// diagnostics() (in the completion handler, or once no other operation runs).
  error_code store_error() const noexcept { return s_->store_ec; }
  const dqlite::diagnostics& store_diagnostics() const noexcept { return s_->store_diag; }

  /// Makes every running operation complete with errc::cancelled (their connections are
  /// closed) and every later one fail the same way. Returns at once.
  void close() noexcept {
    if (!s_) return;
    try {
      boost::asio::post(s_->ex, [s = s_] { s->shutdown(); });
    } catch (...) {
    }
  }

  // ---- connecting ----

  /// Finds the leader and returns a connection to it with options().connection.database
  /// open (no database when that is empty). Signature: void(error_code, connection_type).
  template <class Token = default_token_t>
  auto async_connect(Token&& token = {}) {
    return initiate<connection_type>(token, [](std::shared_ptr<state_type> s) {
      return connect_body(std::move(s));
    });
  }

  /// The leader: its id and address. Signature: void(error_code, node_info).
  template <class Token = default_token_t>
  auto async_leader(Token&& token = {}) {
    return initiate<node_info>(token, [](std::shared_ptr<state_type> s) {
      return leader_body(std::move(s));
    });
  }

  /// Replaces the content of the node store with the leader's list of members and
  /// returns that list. Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_refresh_store(Token&& token = {}) {
    return initiate<std::vector<node_info>>(token, [](std::shared_ptr<state_type> s) {
      return refresh_body(std::move(s));
    });
  }

  // ---- administration (through the leader) ----

  /// The members of the cluster, as the leader knows them.
  /// Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_cluster(Token&& token = {}) {
    return leader_request<std::vector<node_info>>(
        token, [](connection_type& c) { return c.async_cluster(detail::as_tuple_awaitable); },
        true);
  }

  /// Adds a node (ADD), then gives it its role (ASSIGN) unless that is spare, as go-dqlite
  /// does. The node must be running. Signature: void(error_code).
  /// (GCC 12 miscompiles a braced temporary inside a co_await expression, as in
  /// `co_await c.async_add({2, "host:port"})`: pass a named node_info, or use the overload
  /// below.)
  template <class Token = default_token_t>
  auto async_add(const node_info& node, Token&& token = {}) {
    return initiate<void>(token, [node](std::shared_ptr<state_type> s) {
      return add_body(std::move(s), node);
    });
  }

  /// Same as async_add(node_info{id, address, role}).
  template <class Token = default_token_t>
  auto async_add(std::uint64_t id, std::string_view address, node_role role = node_role::voter,
                 Token&& token = {}) {
    return initiate<void>(token, [node = node_info{id, std::string(address), role}](
                                     std::shared_ptr<state_type> s) {
      return add_body(std::move(s), node);
    });
  }

  /// Gives node `id` a new role. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_assign(std::uint64_t id, node_role role, Token&& token = {}) {
    return leader_request<void>(
        token,
        [id, role](connection_type& c) { return c.async_assign(id, role, detail::as_tuple_awaitable); },
        false);
  }

  /// Removes node `id` from the cluster. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_remove(std::uint64_t id, Token&& token = {}) {
    return leader_request<void>(
        token, [id](connection_type& c) { return c.async_remove(id, detail::as_tuple_awaitable); },
        false);
  }

  /// Hands leadership over to voter `id` (0: raft chooses). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_transfer(std::uint64_t id, Token&& token = {}) {
    return initiate<void>(token, [id](std::shared_ptr<state_type> s) {
      return transfer_body(std::move(s), id);
    });
  }

  /// A copy of database `name` (default: options().connection.database) from the leader.
  /// Signature: void(error_code, std::vector<dump_file>).
  template <class Token = default_token_t>
  auto async_dump(std::string_view name, Token&& token = {}) {
    return leader_request<std::vector<dump_file>>(
        token,
        [name = std::string(name)](connection_type& c) {
          return c.async_dump(name, detail::as_tuple_awaitable);
        },
        true);
  }

  // ---- administration of one node ----

  /// The failure domain and weight of the node at `address`.
  /// Signature: void(error_code, node_metadata).
  template <class Token = default_token_t>
  auto async_describe(std::string_view address, Token&& token = {}) {
    return node_request<node_metadata>(
        token, address, [](connection_type& c) { return c.async_describe(detail::as_tuple_awaitable); });
  }

  /// Sets the weight of the node at `address`. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_weight(std::string_view address, std::uint64_t weight, Token&& token = {}) {
    return node_request<void>(token, address, [weight](connection_type& c) {
      return c.async_weight(weight, detail::as_tuple_awaitable);
    });
  }

 private:
  using clock = std::chrono::steady_clock;

  static std::shared_ptr<state_type> make_state(const executor_type& ex,
                                                std::shared_ptr<node_store> store,
                                                const cluster_options& opts) {
    auto bad = [](const std::string& what) {
      return error(make_error_code(errc::invalid_argument), dqlite::diagnostics("cluster_options: " + what));
    };
    if (!store) throw error(make_error_code(errc::invalid_argument), dqlite::diagnostics("the node store is null"));
    if (opts.probe_timeout.count() <= 0) throw bad("probe_timeout must be positive");
    if (opts.max_concurrent_probes == 0) throw bad("max_concurrent_probes must be at least 1");
    return std::make_shared<state_type>(boost::asio::make_strand(ex), std::move(store), opts);
  }

  static std::shared_ptr<node_store> make_address_store(const std::vector<std::string>& addresses) {
    if (addresses.empty())
      throw error(make_error_code(errc::invalid_address), dqlite::diagnostics("the list of node addresses is empty"));
    for (const auto& a : addresses) {
      host_port hp;
      if (parse_address(a, hp))
        throw error(make_error_code(errc::invalid_address),
                    dqlite::diagnostics("invalid node address '" + detail::printable(a) +
                                "'"));
    }
    return std::make_shared<memory_node_store>(addresses);
  }

  template <class T, class Token, class Body>
  auto initiate(Token& token, Body body) {
    return boost::asio::async_initiate<Token, detail::completion_sig_t<T>>(
        detail::cluster_initiation<Stream, T>{s_}, token, std::move(body));
  }

  template <class T, class Token, class Request>
  auto leader_request(Token& token, Request request, bool read_only) {
    return initiate<T>(token, [request = std::move(request), read_only](std::shared_ptr<state_type> s) {
      return detail::on_leader<Stream, T>(std::move(s), request, read_only);
    });
  }

  template <class T, class Token, class Request>
  auto node_request(Token& token, std::string_view address, Request request) {
    return initiate<T>(token, [address = std::string(address),
                               request = std::move(request)](std::shared_ptr<state_type> s) {
      return detail::on_node<Stream, T>(std::move(s), address, request);
    });
  }

  template <class T>
  static detail::cluster_result<T> cancelled() {
    return detail::cluster_result<T>::fail(make_error_code(errc::cancelled),
                                           "the cluster client was closed");
  }

  static boost::asio::awaitable<detail::cluster_result<connection_type>> connect_body(
      std::shared_ptr<state_type> s) {
    if (s->closed) co_return cancelled<connection_type>();
    auto r = co_await detail::connect_leader<Stream>(s, s->database);
    detail::cluster_result<connection_type> out;
    out.ec = r.ec;
    out.diag = std::move(r.diag);
    if (!r.ec) out.value.emplace(std::move(*r.value->conn));
    co_return out;
  }

  static boost::asio::awaitable<detail::cluster_result<node_info>> leader_body(
      std::shared_ptr<state_type> s) {
    if (s->closed) co_return cancelled<node_info>();
    auto r = co_await detail::connect_leader<Stream>(s, std::string());
    if (r.ec) co_return detail::cluster_result<node_info>::fail(r.ec, std::move(r.diag));
    detail::cluster_result<node_info> out;
    out.value.emplace(node_info{r.value->id, r.value->address, node_role::voter});
    // Keep the connection for the next administration request.
    if (!s->admin || !s->admin->is_open()) s->admin = std::move(r.value->conn);
    co_return out;
  }

  static boost::asio::awaitable<detail::cluster_result<std::vector<node_info>>> refresh_body(
      std::shared_ptr<state_type> s) {
    using result = detail::cluster_result<std::vector<node_info>>;
    if (s->closed) co_return cancelled<std::vector<node_info>>();
    auto r = co_await detail::on_leader<Stream, std::vector<node_info>>(
        s, [](connection_type& c) { return c.async_cluster(detail::as_tuple_awaitable); }, true);
    if (r.ec) co_return r;
    try {
      s->store->set(*r.value);
    } catch (const std::exception& e) {
      co_return result::fail(make_error_code(boost::system::errc::io_error),
                             std::string("updating the node store failed: ") + e.what());
    }
    co_return r;
  }

  static boost::asio::awaitable<detail::cluster_result<void>> add_body(std::shared_ptr<state_type> s,
                                                                        node_info node) {
    if (s->closed) co_return cancelled<void>();
    auto r = co_await detail::on_leader<Stream, void>(
        s,
        [&node](connection_type& c) {
          return c.async_add(node.id, node.address, detail::as_tuple_awaitable);
        },
        false);
    if (r.ec || node.role == node_role::spare) co_return r;
    auto id = node.id;
    auto role = node.role;
    detail::cluster_result<void> a;
    std::exception_ptr ep;
    try {
      a = co_await detail::on_leader<Stream, void>(
          s,
          [id, role](connection_type& c) {
            return c.async_assign(id, role, detail::as_tuple_awaitable);
          },
          false);
    } catch (...) {
      ep = std::current_exception();
    }
    if (ep) {
      const auto cs = co_await boost::asio::this_coro::cancellation_state;
      if (detail::was_cancelled(cs))
        a = detail::cancelled_by_caller<void>();
      else
        a = detail::cluster_result<void>::from_exception(ep);
    }
    if (a.ec)
      a.diag = "node " + std::to_string(id) + " was added as a spare, but making it a " +
               std::string(to_string(role)) + " failed: " + a.diag;
    co_return a;
  }

  static boost::asio::awaitable<detail::cluster_result<void>> transfer_body(
      std::shared_ptr<state_type> s, std::uint64_t id) {
    if (s->closed) co_return cancelled<void>();
    auto r = co_await detail::on_leader<Stream, void>(
        s, [id](connection_type& c) { return c.async_transfer(id, detail::as_tuple_awaitable); },
        false);
    // The old leader is a follower now: forget it.
    if (s->admin) s->admin->close();
    s->admin.reset();
    s->last_leader.clear();
    co_return r;
  }

  std::shared_ptr<state_type> s_;
};

/// A cluster client over TCP.
using cluster = basic_cluster<boost::asio::ip::tcp::socket>;

}  // namespace dqlite
