// The state of a cluster client, and leader discovery: probes, shared discoveries, connecting to the leader with retries.
#pragma once

#include <dqlite/cluster_options.hpp>
#include <dqlite/detail/cluster/backoff.hpp>
#include <dqlite/detail/cluster/result.hpp>
#include <dqlite/detail/event.hpp>

#include <dqlite/address.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/connector.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/observe.hpp>
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
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

template <class Stream>
class basic_cluster;

namespace detail {

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
    explicit shared_discovery(const boost::asio::any_io_executor& ex) : done(ex) {}
    async_event done;  ///< notified when the runner has finished
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
    async_event wake;  ///< notified when a worker ends
  };

  cluster_state(boost::asio::any_io_executor e, std::shared_ptr<node_store> s, cluster_options o,
                basic_connector<Stream> c)
      : ex(std::move(e)), store(std::move(s)), opts(std::move(o)), connector(std::move(c)),
        database(opts.connection.database) {
    // A connection left empty by a move: what a failed async_connect completes with, made
    // now so that a failure never calls the connector (whose resources, such as a TLS
    // context, may be gone by the time a cancelled operation completes).
    connection_type made = connector.make(opts.connection, ex);
    connection_type taken(std::move(made));  // leaves `made` empty
    empty.emplace(std::move(made));
    opts.connection.database = database;
    // The connections handed out log and trace with the cluster's hooks unless they
    // have their own.
    if (!opts.connection.log) {
      opts.connection.log = opts.log;
      opts.connection.log_threshold = opts.log_threshold;
    }
    if (!opts.connection.trace) opts.connection.trace = opts.trace;
  }

  boost::asio::any_io_executor ex;  ///< a strand: every member is used on it only
  std::shared_ptr<node_store> store;
  cluster_options opts;
  basic_connector<Stream> connector;  ///< how nodes are reached
  std::optional<connection_type> empty;  ///< moved from: the value of a failed connect
  std::string database;  ///< owns opts.connection.database
  std::string last_leader;
  std::uint64_t last_leader_id = 0;
  std::shared_ptr<shared_discovery> running;
  std::optional<connection_type> admin;  ///< cached connection (no database) to the leader
  std::vector<std::weak_ptr<impl_type>> live_conns;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> live_timers;
  bool closed = false;
  diagnostics last_diag;  ///< the text of the last operation that completed
  error_code store_ec;     ///< the last automatic node store refresh failed (refresh_store)
  diagnostics store_diag;  ///< why
  cluster_stats stats;     ///< counters (basic_cluster::stats)

  /// The cluster's logging hook.
  logger log() const noexcept { return logger{opts.log, opts.log_threshold}; }

  /// A leader was found: counts and reports a change.
  void note_leader(const std::string& address, std::uint64_t id) {
    const logger lg = log();
    lg(log_level::debug, "leader_found",
       [&] { return address + " (id " + std::to_string(id) + ") is the leader"; });
    if (!stats.last_leader.empty() && stats.last_leader != address) {
      ++stats.leader_changes;
      lg(log_level::info, "leader_changed", [&] {
        return "the leader changed from " + stats.last_leader + " to " + address + " (id " +
               std::to_string(id) + ")";
      });
    }
    stats.last_leader = address;
    stats.last_leader_id = id;
  }

  template <class W>
  static void prune(std::vector<std::weak_ptr<W>>& v) {
    std::erase_if(v, [](const std::weak_ptr<W>& w) { return w.expired(); });
  }
  void track(const std::shared_ptr<impl_type>& c) {
    prune(live_conns);
    live_conns.push_back(c);
  }
  /// A connection handed to the caller is the caller's: closing the cluster leaves it.
  void untrack(const impl_type* c) {
    std::erase_if(live_conns, [c](const std::weak_ptr<impl_type>& w) {
      auto p = w.lock();
      return !p || p.get() == c;
    });
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
    if (running) running->done.notify_all();
    live_conns.clear();
    live_timers.clear();
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

  /// Whether a node's answer naming `address` (as the leader, or as a member to ask) may
  /// be followed (cluster_options::follow_redirect).
  bool may_follow(std::string_view address) const {
    return !opts.follow_redirect || opts.follow_redirect(address);
  }

  /// A new connection made by the connector, tracked so that close() ends its I/O. (A
  /// connector whose make throws fails the operation with that exception.)
  connection_type make_connection(const connection_options& o) {
    connection_type c = connector.make(o, ex);
    if (auto impl = connection_access::impl(c)) track(impl);
    return c;
  }

  /// An empty connection (moved from: every operation fails with errc::not_connected).
  connection_type empty_connection() { return connection_type(std::move(*empty)); }

  /// Connects c to the node that advertises address, through the connector. A connector
  /// that throws fails the connection with errc::invalid_argument and the exception's text.
  boost::asio::awaitable<error_code> connect(connection_type& c, std::string address) {
    error_code ec;
    std::string thrown;
    try {
      ec = co_await connector.connect(c, std::move(address));
    } catch (const std::exception& e) {
      thrown = e.what();
      if (thrown.empty()) thrown = "an exception";
    } catch (...) {
      thrown = "an exception";
    }
    if (!thrown.empty()) {
      c.close();
      ec = make_error_code(errc::invalid_argument);
      connection_access::impl(c)->diag.assign("the connector failed: " + thrown);
    }
    co_return ec;
  }

  connection_options probe_options(std::chrono::milliseconds timeout) const {
    connection_options o = opts.connection;
    o.database = {};
    o.log = {};  // the cluster reports probes itself
    o.trace = {};
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
  ++s->stats.probes;
  s->log()(log_level::debug, "probe", [&] { return "asking " + address + " for the leader"; });
  out.conn.emplace(s->make_connection(s->probe_options(timeout)));
  auto& conn = *out.conn;
  if (round) round->conns.push_back(connection_access::impl(conn));
  if (auto ec = co_await s->connect(conn, address)) {
    out.failure = error_text(ec, conn.diagnostics());
    // The report names the node already.
    for (std::string_view step : {"connecting to ", "resolving "}) {
      std::string prefix = std::string(step) + address + ": ";
      if (out.failure.rfind(prefix, 0) == 0)
        out.failure = (step == "resolving " ? "cannot resolve: " : "cannot connect: ") +
                      out.failure.substr(prefix.size());
    }
    out.conn.reset();
    ++s->stats.probe_failures;
    s->log()(log_level::warning, "probe_failed", [&] { return address + ": " + out.failure; });
    co_return out;
  }
  auto r2 = co_await conn.async_leader(as_tuple_awaitable);
  if (auto ec = std::get<0>(r2)) {
    out.failure = "asking for the leader: " + error_text(ec, conn.diagnostics());
    out.conn.reset();
    ++s->stats.probe_failures;
    s->log()(log_level::warning, "probe_failed", [&] { return address + ": " + out.failure; });
    co_return out;
  }
  out.leader = std::move(std::get<1>(r2));
  s->log()(log_level::debug, "probe_answer", [&] {
    return out.leader.address.empty()
               ? address + " knows no leader"
               : address + " names " + out.leader.address + " (id " +
                     std::to_string(out.leader.id) + ") as the leader";
  });
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
  if (s->closed) co_return result::cluster_closed();
  if (!a.failure.empty()) co_return result::fail(no, a.failure);
  if (a.leader.address.empty()) {
    // Stand-bys and spares know no leader (they answer LEADER with none), and neither does a
    // voter during an election; each lists the members it knows. Those of a probe round are
    // asked in turn: a client whose only known node is a stand-by reaches the voters.
    if (!round) co_return result::fail(no, "knows no leader");
    auto m = co_await a.conn->async_cluster(as_tuple_awaitable);
    if (s->closed) co_return result::cluster_closed();
    a.conn->close();
    if (std::get<0>(m)) co_return result::fail(no, "knows no leader");
    auto members = std::move(std::get<1>(m));
    std::stable_sort(members.begin(), members.end(), [](const node_info& x, const node_info& y) {
      return static_cast<int>(x.role) < static_cast<int>(y.role);
    });
    std::size_t added = 0;
    std::size_t refused = 0;
    for (const auto& n : members) {
      if (n.address.empty() || n.role == node_role::spare ||
          std::find(round->addresses.begin(), round->addresses.end(), n.address) !=
              round->addresses.end())
        continue;
      if (!s->may_follow(n.address)) {
        ++refused;
        ++s->stats.redirects_refused;
        s->log()(log_level::warning, "redirect_refused", [&] {
          return address + " lists " + n.address + ", which is not asked: refused by "
                 "follow_redirect";
        });
        continue;
      }
      round->addresses.push_back(n.address);
      round->reasons.emplace_back();
      round->asked.push_back(false);
      ++added;
    }
    std::string why = added == 0 ? std::string("knows no leader")
                                 : "knows no leader; asking the " + std::to_string(added) +
                                       " other member(s) it lists";
    if (refused > 0)
      why += " (" + std::to_string(refused) +
             " member(s) it lists are not followed: refused by follow_redirect)";
    co_return result::fail(no, why);
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
  if (!s->may_follow(target)) {
    ++s->stats.redirects_refused;
    std::string why = "names " + printable(target) +
                      " as the leader, which is not followed: refused by follow_redirect";
    s->log()(log_level::warning, "redirect_refused", [&] { return address + " " + why; });
    co_return result::fail(no, why);
  }
  ++s->stats.redirects;
  s->log()(log_level::debug, "redirect", [&] {
    return "following " + address + "'s answer: asking " + target + " whether it leads";
  });
  auto b = co_await ask_leader<Stream>(s, target, s->time_left(deadline, s->opts.probe_timeout),
                                       round);
  if (s->closed) co_return result::cluster_closed();
  std::string why = "names " + printable(target) + " as the leader, but that node ";
  if (!b.failure.empty()) why += "failed: " + b.failure;
  else if (b.leader.address.empty()) why += "knows no leader";
  else if (b.leader.address != target) why += "names " + printable(b.leader.address);
  if (!b.failure.empty() || b.leader.address != target) {
    ++s->stats.redirects_refused;
    s->log()(log_level::warning, "redirect_refused", [&] { return address + " " + why; });
    co_return result::fail(no, why);
  }
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
      auto keep = connection_access::impl(*round->found->conn);
      for (auto& w : round->conns)
        if (auto c = w.lock(); c && c != keep) c->close_transport();
    }
  } catch (const std::exception& e) {
    if (round->next > 0 && round->reasons[round->next - 1].empty())
      round->reasons[round->next - 1] = std::string("probe failed: ") + e.what();
  }
  --round->running;
  round->wake.notify_all();
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
  ++s->stats.discoveries;
  s->log()(log_level::debug, "discovery_start", [&] {
    std::size_t others = addresses.size();
    if (!last.empty() && std::find(addresses.begin(), addresses.end(), last) != addresses.end())
      --others;
    return "finding the leader: " +
           (last.empty() ? std::string("no leader known yet")
                         : "asking the last known leader " + last + " first") +
           ", then " + std::to_string(others) + " node(s) of the store";
  });
  if (!last.empty()) {
    auto r = co_await probe_node<Stream>(s, last, deadline, nullptr);
    if (s->closed) co_return result::cluster_closed();
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
      co_await round->wake.wait();
    }
    if (s->closed) co_return result::cluster_closed();
    for (std::size_t i = 0; i < round->addresses.size(); ++i)  // with those learned
      if (!round->reasons[i].empty())
        report.note(round->addresses[i], round->reasons[i], round->asked[i]);
    found = std::move(round->found);
  }
  if (!found) co_return result::fail(no, "no node knows a leader");

  s->last_leader = found->address;
  s->last_leader_id = found->id;
  s->note_leader(found->address, found->id);
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
  run->done.notify_all();
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
  while (!run->finished && !s->closed) co_await run->done.wait();
  if (!run->finished) co_return result::cluster_closed();
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
    if (s->closed) co_return result::cluster_closed();
    if (!d.ec && !d.value->conn) {
      // Found by another caller's discovery: confirm it and get a connection of our own.
      auto a = co_await ask_leader<Stream>(s, d.value->address,
                                           s->time_left(deadline, o.probe_timeout), nullptr);
      if (s->closed) co_return result::cluster_closed();
      if (!a.failure.empty() || a.leader.address != d.value->address) {
        report.note(d.value->address,
                    "found as the leader, but " +
                        (a.failure.empty() ? std::string("it no longer is") : a.failure));
        d = result::fail(make_error_code(errc::no_leader), "the leader changed");
      } else {
        d.value->conn = std::move(a.conn);
      }
    }
    if (!d.ec) {
      // The leader's connection reports with the caller's hooks from now on (its opening
      // of the database included).
      auto& impl = *connection_access::impl(*d.value->conn);
      impl.opts.log = o.connection.log;
      impl.opts.log_threshold = o.connection.log_threshold;
      impl.opts.trace = o.connection.trace;
    }
    if (!d.ec && !database.empty()) {
      auto& conn = *d.value->conn;
      auto r = co_await conn.async_open_database(database, as_tuple_awaitable);
      if (s->closed) co_return result::cluster_closed();
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
      auto& impl = *connection_access::impl(*d.value->conn);
      impl.opts.connect_timeout = o.connection.connect_timeout;
      impl.opts.request_timeout = o.connection.request_timeout;
      ++s->stats.connections;
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
      s->log()(log_level::error, "no_leader", [&] { return text; });
      co_return result::fail(make_error_code(errc::no_leader), text);
    }
    auto pause = backoff_delay(o, attempt);
    if (o.backoff_jitter) pause = jittered(pause);
    if (deadline != state::clock::time_point::max())
      pause = std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    ++s->stats.retries;
    s->log()(log_level::info, "backoff", [&] {
      return "attempt " + std::to_string(attempt) + " did not reach the leader (" + last_failure +
             "); next attempt in " + std::to_string(pause.count()) + " ms";
    });
    if (pause.count() > 0) {
      auto timer = std::make_shared<dependent_t<Stream, boost::asio::steady_timer>>(s->ex, pause);
      s->track(timer);
      co_await timer->async_wait(as_tuple_awaitable);
      if (s->closed) co_return result::cluster_closed();
    }
  }
}

}  // namespace detail
}  // namespace dqlite
