// dqlite::app with real nodes: every app runs in its own process (dqlite-app-node, see
// app_process.hpp), as it would in production. The nodes run with a 20 ms network latency
// setting (election timeout 300 ms) so that failover is quick; every wait is bounded by a
// generous guard, not by the machine's speed.
#include "app/app_process.hpp"

#include <dqlite/cluster.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/pool.hpp>

#include "support/run.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using dqlite::node_role;

namespace {

// Roles are adjusted every second (default: 30 s) so that the tests see a failure handled quickly.
const std::vector<std::string> fast{"--latency-ms", "20", "--frequency-ms", "1000"};

std::vector<std::string> args(std::vector<std::string> extra) {
  std::vector<std::string> a = fast;
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

dqlite::cluster_options admin_options() {
  dqlite::cluster_options o;
  o.connection.database = {};
  o.connection.connect_timeout = 2s;
  o.connection.request_timeout = 10s;
  o.probe_timeout = 1s;
  o.retry_timeout = 10s;
  return o;
}

/// The members as the leader lists them, asked through `addresses`.
std::vector<dqlite::node_info> members(const std::vector<std::string>& addresses) {
  return dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<std::vector<dqlite::node_info>> {
    dqlite::cluster c(ex, addresses, admin_options());
    co_return co_await c.async_cluster();
  });
}

/// The leader, asked through `addresses`.
dqlite::node_info leader(const std::vector<std::string>& addresses) {
  return dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<dqlite::node_info> {
    dqlite::cluster c(ex, addresses, admin_options());
    co_return co_await c.async_leader();
  });
}

std::size_t count_role(const std::vector<dqlite::node_info>& nodes, node_role r) {
  std::size_t n = 0;
  for (const auto& x : nodes)
    if (x.role == r) ++n;
  return n;
}

std::optional<node_role> role_of(const std::vector<dqlite::node_info>& nodes, std::uint64_t id) {
  for (const auto& x : nodes)
    if (x.id == id) return x.role;
  return std::nullopt;
}

std::string describe(const std::vector<dqlite::node_info>& nodes) {
  std::string s;
  for (const auto& n : nodes)
    s += (s.empty() ? "" : ", ") + std::to_string(n.id) + " " + n.address + " " +
         std::string(dqlite::to_string(n.role));
  return s;
}

/// Polls `pred(members)` until it holds (members asked through `addresses`); returns them.
template <class Pred>
std::vector<dqlite::node_info> wait_members(const std::vector<std::string>& addresses, Pred pred,
                                            dqlite_test::app_group& g,
                                            std::chrono::milliseconds limit = 120s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::vector<dqlite::node_info> last;
  std::string failure;
  for (;;) {
    try {
      last = members(addresses);
      if (pred(last)) return last;
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (std::chrono::steady_clock::now() > deadline)
      FAIL("the members did not reach the expected state within " << limit.count()
                                                                   << " ms; last seen: " << describe(last)
                                                                   << " " << failure << "\n" << g.logs());
    std::this_thread::sleep_for(50ms);
  }
}

/// Three apps: the first bootstraps, the others join through it; all ready.
void form_three(dqlite_test::app_group& g, std::vector<std::string> extra = {}) {
  auto& a = g.add(args(extra));
  a.wait_for("ready");
  auto more = extra;
  more.push_back("--join");
  more.push_back(a.address());
  g.add(args(more));
  g.add(args(more));
  g[1].wait_for("ready");
  g[2].wait_for("ready");
}

std::vector<std::string> addresses_of(dqlite_test::app_group& g) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < g.size(); ++i) out.push_back(g[i].address());
  return out;
}

}  // namespace

TEST_CASE("three apps form a cluster, and a restarted app keeps its identity", "[app][integration]") {
  dqlite_test::app_group g;
  form_three(g);
  const auto all = addresses_of(g);
  auto nodes = wait_members(all, [](const auto& n) { return n.size() == 3 && count_role(n, node_role::voter) == 3; }, g);
  CHECK(g[0].id() == 1);
  CHECK(g[0].has("log started: node 1 at " + g[0].address() + " (new: bootstrapping a cluster)"));
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(role_of(nodes, g[i].id()) == node_role::voter);
    if (i > 0) CHECK(g[i].has("(new: joining)"));
  }

  // Data written through one pool is there after a restart.
  dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    auto pool = co_await dqlite::async_create_pool(ex, all, {.database = "app_test"});
    co_await pool.async_execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)");
    co_await pool.async_execute("INSERT INTO t (n) VALUES (42)");
  });

  const auto id = g[1].id();
  g[1].send("stop");
  REQUIRE(g[1].wait_exit() == 0);
  g[1].launch();
  g[1].wait_for("ready");
  CHECK(g[1].id() == id);
  CHECK(g[1].has("log started: node " + std::to_string(id) + " at " + g[1].address() + " (restarted)"));
  CHECK_FALSE(g[1].has("joined"));
  nodes = wait_members(all, [](const auto& n) { return n.size() == 3 && count_role(n, node_role::voter) == 3; }, g);
  CHECK(role_of(nodes, id) == node_role::voter);
  auto n = dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<std::int64_t> {
    auto pool = co_await dqlite::async_create_pool(ex, all, {.database = "app_test"});
    co_return co_await pool.async_fetchval<std::int64_t>("SELECT n FROM t");
  });
  CHECK(n == 42);
}

namespace {

/// Four apps (3 voters, 1 spare, no stand-bys); kills a voter (the leader, or one that
/// does not lead) with SIGKILL and waits until three online voters are back, the dead one
/// a spare. Prints the time it took.
void kill_voter_and_recover(bool the_leader) {
  dqlite_test::app_group g;
  form_three(g, {"--standbys", "0"});
  auto& spare = g.add(args({"--standbys", "0", "--join", g[0].address()}));
  spare.wait_for("ready");
  const auto all = addresses_of(g);
  auto nodes = wait_members(all, [&](const auto& n) {
    return n.size() == 4 && count_role(n, node_role::voter) == 3 && role_of(n, spare.id()) == node_role::spare;
  }, g);

  const auto lead = leader(all);
  std::size_t victim = 0;
  while ((g[victim].id() == lead.id) != the_leader || g[victim].address() == spare.address()) ++victim;
  const auto victim_id = g[victim].id();
  const auto t0 = dqlite_test::mono_ms();
  g[victim].kill9();
  std::vector<std::string> alive;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (i != victim) alive.push_back(g[i].address());
  nodes = wait_members(alive, [&](const auto& n) {
    return count_role(n, node_role::voter) == 3 && role_of(n, victim_id) == node_role::spare &&
           role_of(n, spare.id()) == node_role::voter;
  }, g);
  const auto took = dqlite_test::mono_ms() - t0;
  std::printf("[measure] kill -9 of a voter (%s) to roles back at target (3 online voters): %lld ms\n",
              the_leader ? "the leader" : "not the leader", took);
  std::fflush(stdout);
  CHECK(count_role(nodes, node_role::voter) == 3);

  // The dead node comes back: it is a member again, and stays a spare (the voters are at
  // target).
  g[victim].launch();
  g[victim].wait_for("ready");
  CHECK(g[victim].id() == victim_id);
  nodes = wait_members(all, [&](const auto& n) { return count_role(n, node_role::voter) == 3; }, g);
  CHECK(role_of(nodes, victim_id) == node_role::spare);
}

}  // namespace

TEST_CASE("kill -9 of a voter: a spare is promoted and the roles are back at target", "[app][integration]") {
  kill_voter_and_recover(false);
}

TEST_CASE("kill -9 of the leader: a new leader promotes a spare and the roles are back at target",
          "[app][integration]") {
  kill_voter_and_recover(true);
}

namespace {

/// Writes numbered rows through the leader until stopped, retrying each write (as an
/// idempotent INSERT OR IGNORE) on a new leader connection after a leadership or
/// connection error. Records when and through which node each write was accepted.
struct writer {
  struct accepted {
    long long at;
    std::string node;
  };
  std::vector<std::string> addresses;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> done{0};
  std::atomic<int> failed{0};
  std::atomic<int> retries{0};
  std::mutex mu;
  std::vector<accepted> log;
  std::string last_error;

  boost::asio::awaitable<void> run(boost::asio::any_io_executor ex) {
    auto tok = boost::asio::as_tuple(boost::asio::use_awaitable);
    dqlite::cluster c(ex, addresses, admin_options());
    std::optional<dqlite::connection> conn;
    std::string node;
    for (std::int64_t k = 1; !stop; ++k) {
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      for (;;) {
        if (!conn || !conn->is_open()) {
          auto [e1, l] = co_await c.async_leader(tok);
          if (!e1) {
            auto [e2, cn] = co_await dqlite::async_connect(ex, l.address, {.database = "app_test"}, tok);
            if (!e2) {
              conn.emplace(std::move(cn));
              node = l.address;
            }
          }
        }
        if (conn && conn->is_open()) {
          auto [ec, r] = co_await conn->async_execute("INSERT OR IGNORE INTO w (k) VALUES (?)", k, tok);
          if (!ec) {
            std::lock_guard lock(mu);
            log.push_back({dqlite_test::mono_ms(), node});
            ++done;
            break;
          }
          {
            std::lock_guard lock(mu);
            last_error = conn->diagnostics().message() + " (" + ec.message() + ")";
          }
          conn->close();
        }
        ++retries;
        if (std::chrono::steady_clock::now() > give_up) {
          ++failed;
          break;
        }
        boost::asio::steady_timer t(ex, 10ms);
        co_await t.async_wait(tok);
      }
    }
  }
};

}  // namespace

TEST_CASE("handover of the leader with writes running through it: no failed write", "[app][integration]") {
  dqlite_test::app_group g;
  form_three(g, {"--standbys", "0"});
  auto& spare = g.add(args({"--standbys", "0", "--join", g[0].address()}));
  spare.wait_for("ready");
  const auto all = addresses_of(g);
  wait_members(all, [&](const auto& n) {
    return n.size() == 4 && count_role(n, node_role::voter) == 3 && role_of(n, spare.id()) == node_role::spare;
  }, g);
  dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    auto pool = co_await dqlite::async_create_pool(ex, all, {.database = "app_test"});
    co_await pool.async_execute("CREATE TABLE IF NOT EXISTS w (k INTEGER PRIMARY KEY)");
  });

  const auto lead = leader(all);
  std::size_t old = 0;
  while (g[old].id() != lead.id) ++old;

  writer w;
  w.addresses = all;
  std::thread writing([&] { dqlite_test::run([&](auto ex) { return w.run(ex); }, std::chrono::seconds(600)); });
  const auto wait_writes = [&](std::int64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (w.done < n && w.failed == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
  };
  wait_writes(20);
  const auto before = w.done.load();
  const auto t0 = dqlite_test::mono_ms();
  g[old].send("handover");
  const int code = g[old].wait_exit();
  wait_writes(before + 50);
  w.stop = true;
  writing.join();

  INFO(g.logs());
  INFO("last write error: " << w.last_error);
  CHECK(code == 0);
  CHECK(w.failed == 0);
  REQUIRE(w.done >= before + 50);
  CHECK(g[old].has("log handover: transferring the leadership to node"));
  CHECK(g[old].has("log handover: the leadership moved"));
  CHECK(g[old].has("log handover: node " + std::to_string(spare.id()) + " becomes a voter"));

  long long first_new = -1;
  std::string new_node;
  for (const auto& a : w.log)
    if (a.at >= t0 && a.node != g[old].address()) {
      first_new = a.at - t0;
      new_node = a.node;
      break;
    }
  REQUIRE(first_new >= 0);
  std::printf("[measure] handover start to the first write accepted by the new leader (%s): %lld ms "
              "(%d retried attempts during the handover)\n",
              new_node.c_str(), first_new, w.retries.load());
  std::fflush(stdout);

  // Every accepted write is there once; the old leader is a spare; three online voters.
  std::vector<std::string> alive;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (i != old) alive.push_back(g[i].address());
  const auto rows = dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<std::int64_t> {
    auto pool = co_await dqlite::async_create_pool(ex, alive, {.database = "app_test"});
    co_return co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM w");
  });
  CHECK(rows == w.done);
  auto nodes = wait_members(alive, [&](const auto& n) {
    return count_role(n, node_role::voter) == 3 && role_of(n, lead.id) == node_role::spare;
  }, g);
  CHECK(role_of(nodes, spare.id()) == node_role::voter);
}

TEST_CASE("a node joining with a wrong address is refused clearly", "[app][integration]") {
  dqlite_test::app_group g;
  auto& a = g.add(args({}));
  a.wait_for("ready");
  auto free_address = [] { return "127.0.0.1:" + std::to_string(dqlite_test::detail::pick_free_port()); };
  auto is_new = [](const dqlite_test::app_process& p) {
    return !std::filesystem::exists(std::filesystem::path(p.dir()) / "app-info");
  };

  // The address of another member (the node listens elsewhere, so the address reaches a
  // node: the other one).
  auto& b = g.add_at(a.address(), args({"--bind", free_address(), "--join", a.address()}));
  b.wait_for("error");
  CHECK(b.wait_exit() == 1);
  CHECK(b.has("cannot join: the address " + a.address() + " is already used by node 1 of the cluster"));
  CHECK(is_new(b));

  // An address where nothing listens.
  const auto nowhere = free_address();
  auto& c = g.add_at(nowhere, args({"--bind", free_address(), "--join", a.address()}));
  c.wait_for("error");
  CHECK(c.wait_exit() == 1);
  CHECK(c.has("the advertised address " + nowhere + " does not reach this node"));
  CHECK(is_new(c));

  // An address in use: the node cannot listen there.
  auto& d = g.add_at(a.address(), args({"--join", a.address()}));
  d.wait_for("error");
  CHECK(d.wait_exit() == 1);
  CHECK(d.has("cannot listen on '" + a.address() + "'"));
  CHECK(is_new(d));

  // Nothing of them is in the cluster; a node with a right address still joins.
  auto& e = g.add(args({"--join", a.address()}));
  e.wait_for("ready");
  auto nodes = members({a.address()});
  INFO(describe(nodes));
  CHECK(nodes.size() == 2);
  CHECK(role_of(nodes, e.id()) == node_role::voter);
}

TEST_CASE("five apps: a failed voter is replaced by the spare of a new failure domain", "[app][integration]") {
  dqlite_test::app_group g;
  auto domain = [](int d) { return args({"--standbys", "0", "--failure-domain", std::to_string(d)}); };
  auto joining = [&](int d) {
    auto a = domain(d);
    a.push_back("--join");
    a.push_back(g[0].address());
    return a;
  };
  g.add(domain(1)).wait_for("ready");
  g.add(joining(1));
  g.add(joining(2));
  g[1].wait_for("ready");
  g[2].wait_for("ready");
  auto all = addresses_of(g);
  wait_members(all, [](const auto& n) { return n.size() == 3 && count_role(n, node_role::voter) == 3; }, g);
  auto& same = g.add(joining(1));  // a spare in a domain the voters have
  auto& fresh = g.add(joining(3));  // a spare in a new domain
  same.wait_for("ready");
  fresh.wait_for("ready");
  all = addresses_of(g);
  wait_members(all, [&](const auto& n) {
    return n.size() == 5 && role_of(n, same.id()) == node_role::spare &&
           role_of(n, fresh.id()) == node_role::spare;
  }, g);

  // Kill a voter of domain 1 that does not lead.
  const auto lead = leader(all);
  const std::size_t victim = g[0].id() == lead.id ? 1 : 0;
  const auto victim_id = g[victim].id();
  g[victim].kill9();
  std::vector<std::string> alive;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (i != victim) alive.push_back(g[i].address());
  auto nodes = wait_members(alive, [&](const auto& n) {
    return count_role(n, node_role::voter) == 3 && role_of(n, victim_id) == node_role::spare;
  }, g);
  INFO(describe(nodes));
  CHECK(role_of(nodes, fresh.id()) == node_role::voter);
  CHECK(role_of(nodes, same.id()) == node_role::spare);
}

TEST_CASE("a fourth app becomes a stand-by", "[app][integration]") {
  dqlite_test::app_group g;
  form_three(g);  // default targets: 3 voters, 3 stand-bys
  auto& d = g.add(args({"--join", g[0].address()}));
  d.wait_for("ready");
  auto nodes = wait_members(addresses_of(g), [&](const auto& n) {
    return count_role(n, node_role::voter) == 3 && role_of(n, d.id()) == node_role::standby;
  }, g);
  CHECK(nodes.size() == 4);
}

TEST_CASE("with roles adjustment off a joining app stays a spare", "[app][integration]") {
  dqlite_test::app_group g;
  auto& a = g.add(args({"--no-roles"}));
  a.wait_for("ready");
  auto& b = g.add(args({"--no-roles", "--join", a.address()}));
  b.wait_for("ready");
  std::this_thread::sleep_for(3s);  // three adjustment periods of 1 s
  auto nodes = members({a.address(), b.address()});
  INFO(g.logs());
  CHECK(role_of(nodes, a.id()) == node_role::voter);
  CHECK(role_of(nodes, b.id()) == node_role::spare);
  CHECK_FALSE(a.has("log roles:"));
}
