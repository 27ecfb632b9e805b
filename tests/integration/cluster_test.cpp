// The cluster client against clusters of real dqlite nodes.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_cluster.hpp"
#include "support/test_node.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

/// Three voters shared by the tests that leave the membership as they found it.
dqlite_test::cluster_process& shared_cluster() {
  static dqlite_test::cluster_process cluster([] {
    dqlite_test::cluster_options o;
    o.nodes = 3;
    o.extra_args = {{}, {"--failure-domain", "7"}, {}};
    return o;
  }());
  return cluster;
}

dqlite::cluster_options fast_options(std::string_view db = "clustertest") {
  dqlite::cluster_options o;
  o.connection.database = db;
  o.connection.connect_timeout = 2s;
  o.connection.request_timeout = 10s;
  o.probe_timeout = 1s;
  o.retry_timeout = 15s;
  return o;
}

/// An address where nothing listens.
std::string dead_address() {
  return "127.0.0.1:" + std::to_string(dqlite_test::detail::pick_free_port());
}

bool mentions(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("discovery starts from followers and a dead address", "[cluster]") {
  auto& cl = shared_cluster();
  const int leader = cl.wait_for_leader();
  // Followers first, then a dead address, the leader last.
  std::vector<std::string> list;
  for (std::size_t i = 0; i < cl.size(); ++i)
    if (static_cast<int>(i) != leader) list.push_back(cl.node(i).address());
  list.push_back(dead_address());
  list.push_back(cl.node(static_cast<std::size_t>(leader)).address());

  for (std::size_t concurrency : {std::size_t{1}, std::size_t{10}}) {
    INFO("max_concurrent_probes = " << concurrency);
    auto opts = fast_options();
    opts.max_concurrent_probes = concurrency;
    auto leader_address = cl.node(static_cast<std::size_t>(leader)).address();
    run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      dqlite::cluster cluster(ex, list, opts);
      auto info = co_await cluster.async_leader();
      CHECK(info.address == leader_address);
      CHECK(info.id == static_cast<std::uint64_t>(leader + 1));

      auto conn = co_await cluster.async_connect();
      CHECK(conn.is_open());
      CHECK(conn.has_database());
      co_await conn.async_execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)");
      co_await conn.async_execute("INSERT INTO t (n) VALUES (?)", 1);
      auto n = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM t");
      CHECK(n >= 1);
    });
  }
}

TEST_CASE("a connection from the cluster client outlives the client", "[cluster]") {
  auto& cl = shared_cluster();
  cl.wait_for_leader();
  std::vector<std::string> list;
  for (std::size_t i = 0; i < cl.size(); ++i) list.push_back(cl.node(i).address());
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    std::optional<dqlite::connection> kept;
    std::optional<dqlite::connection> second;
    {
      dqlite::cluster cluster(ex, list, fast_options());
      kept.emplace(co_await cluster.async_connect());
      second.emplace(co_await cluster.async_connect());
      cluster.close();  // and then destroyed
    }
    REQUIRE(kept->is_open());
    REQUIRE(second->is_open());
    auto n = co_await kept->async_fetchval<std::int64_t>("SELECT 41 + 1");
    CHECK(n == 42);
    auto m = co_await second->async_fetchval<std::int64_t>("SELECT 43");
    CHECK(m == 43);
  });
}

TEST_CASE("a node store with only followers leads to the leader", "[cluster]") {
  auto& cl = shared_cluster();
  const int leader = cl.wait_for_leader();
  std::vector<dqlite::node_info> nodes;
  for (std::size_t i = 0; i < cl.size(); ++i)
    if (static_cast<int>(i) != leader)
      nodes.push_back({i + 1, cl.node(i).address(), dqlite::node_role::voter});
  auto store = std::make_shared<dqlite::memory_node_store>(nodes);
  auto leader_address = cl.node(static_cast<std::size_t>(leader)).address();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, store, fast_options());
    auto conn = co_await cluster.async_connect();
    auto peer = conn.stream().remote_endpoint();
    CHECK(leader_address == peer.address().to_string() + ":" + std::to_string(peer.port()));
    // The store learns the full membership.
    auto members = co_await cluster.async_refresh_store();
    CHECK(members.size() == cl.size());
    CHECK(store->get() == members);
  });
}

TEST_CASE("concurrent callers share one discovery", "[cluster]") {
  auto& cl = shared_cluster();
  const int leader = cl.wait_for_leader();
  auto leader_address = cl.node(static_cast<std::size_t>(leader)).address();
  // A store that counts how often discovery reads it.
  struct counting_store {
    std::vector<dqlite::node_info> nodes;
    int gets = 0;
    std::vector<dqlite::node_info> get() {
      ++gets;
      return nodes;
    }
    void set(std::vector<dqlite::node_info> n) { nodes = std::move(n); }
  };
  auto store = std::make_shared<counting_store>();
  for (const auto& a : cl.addresses()) store->nodes.push_back({0, a, dqlite::node_role::voter});
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, store, fast_options());
    std::vector<std::string> found;
    int done = 0;
    for (int i = 0; i < 5; ++i)
      cluster.async_connect([&](dqlite::error_code ec, dqlite::connection c) {
        ++done;
        if (!ec) {
          auto peer = c.stream().remote_endpoint();
          found.push_back(peer.address().to_string() + ":" + std::to_string(peer.port()));
        }
      });
    asio::steady_timer t(ex);
    for (int waited = 0; done < 5 && waited < 1000; ++waited) {
      t.expires_after(10ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    REQUIRE(done == 5);
    CHECK(found == std::vector<std::string>(5, leader_address));
    CHECK(store->gets == 1);  // one discovery served the five callers
  });
}

TEST_CASE("cluster administration: leader, cluster, describe, weight, dump", "[cluster]") {
  auto& cl = shared_cluster();
  cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, cl.addresses(), fast_options("dumped"));

    auto members = co_await cluster.async_cluster();
    REQUIRE(members.size() == 3);
    std::sort(members.begin(), members.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(members[i].id == i + 1);
      CHECK(members[i].address == cl.node(i).address());
      CHECK(members[i].role == dqlite::node_role::voter);
    }

    // DESCRIBE and WEIGHT go to one node.
    auto m2 = co_await cluster.async_describe(cl.node(1).address());
    CHECK(m2.failure_domain == 7);
    auto m1 = co_await cluster.async_describe(cl.node(0).address());
    CHECK(m1.failure_domain == 0);
    co_await cluster.async_weight(cl.node(2).address(), 42);
    auto m3 = co_await cluster.async_describe(cl.node(2).address());
    CHECK(m3.weight == 42);

    // DUMP returns the database file with the rows written.
    auto conn = co_await cluster.async_connect();
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS d (n INTEGER, s TEXT)");
    for (int i = 0; i < 20; ++i)
      co_await conn.async_execute("INSERT INTO d (n, s) VALUES (?, ?)", i, std::string(100, 'x'));
    auto files = co_await cluster.async_dump("dumped");
    REQUIRE(!files.empty());
    auto db = std::find_if(files.begin(), files.end(),
                           [](const dqlite::dump_file& f) { return f.name == "dumped"; });
    REQUIRE(db != files.end());
    CHECK(db->data.size() > 0);
    std::size_t total = 0;
    for (const auto& f : files) total += f.data.size();
    CHECK(total > 2000);  // the rows are somewhere in the file or its WAL

    // A node that is not reachable.
    auto bad = dead_address();
    auto [ec, md] = co_await cluster.async_describe(bad, asio::as_tuple(asio::use_awaitable));
    CHECK(ec);
  });
}

TEST_CASE("cluster administration: add, assign, remove a fourth node", "[cluster]") {
  auto& cl = shared_cluster();
  cl.wait_for_leader();
  dqlite_test::node_options no;
  no.id = 4;
  no.extra_args = {"--latency-ms", std::to_string(cl.latency_ms())};
  dqlite_test::node_process fourth(no);
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, cl.addresses(), fast_options());
    auto role_of = [&](std::uint64_t id) -> asio::awaitable<std::optional<dqlite::node_role>> {
      auto members = co_await cluster.async_cluster();
      for (const auto& m : members)
        if (m.id == id) co_return m.role;
      co_return std::nullopt;
    };

    dqlite::node_info n4{4, fourth.address(), dqlite::node_role::standby};
    co_await cluster.async_add(n4);
    auto r1 = co_await role_of(4);
    CHECK(r1 == dqlite::node_role::standby);

    co_await cluster.async_assign(4, dqlite::node_role::spare);
    auto r2 = co_await role_of(4);
    CHECK(r2 == dqlite::node_role::spare);

    co_await cluster.async_remove(4);
    auto r3 = co_await role_of(4);
    CHECK(r3 == std::nullopt);

    // Bad requests fail with the server's or the client's reason.
    auto tok = asio::as_tuple(asio::use_awaitable);
    auto [e1] = co_await cluster.async_remove(99, tok);
    CHECK(e1);
    auto [e2] = co_await cluster.async_add(0, "127.0.0.1:1", dqlite::node_role::voter, tok);
    CHECK(e2 == dqlite::errc::invalid_argument);
    auto [e3] = co_await cluster.async_add(5, "no-port", dqlite::node_role::voter, tok);
    CHECK(e3 == dqlite::errc::invalid_address);

    // A connection can do the same directly, but only on the leader.
    auto info = co_await cluster.async_leader();
    for (std::size_t i = 0; i < cl.size(); ++i) {
      if (cl.node(i).address() == info.address) continue;
      dqlite::connection_options o;
      o.database = {};
      dqlite::connection follower(o, ex);
      co_await follower.async_connect(cl.node(i).address());
      CHECK_FALSE(follower.has_database());
      auto [e4] = co_await follower.async_add(9, fourth.address(), tok);
      CHECK(dqlite::is_not_leader(e4));
      // Statements need a database.
      auto [e5, r] = co_await follower.async_execute("SELECT 1", tok);
      CHECK(e5 == dqlite::errc::not_connected);
      break;
    }
  });
}

TEST_CASE("transfer moves the leadership and discovery follows it", "[cluster][slow]") {
  dqlite_test::cluster_process cl(3);
  const int before = cl.wait_for_leader();
  const std::size_t target = static_cast<std::size_t>((before + 1) % 3);
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, cl.addresses(), fast_options());
    auto first = co_await cluster.async_leader();
    CHECK(first.address == cl.node(static_cast<std::size_t>(before)).address());
    co_await cluster.async_transfer(target + 1);
    // The new leader may need a moment; discovery retries until it answers.
    dqlite::node_info now;
    asio::steady_timer t(ex);
    for (int i = 0; i < 100; ++i) {
      now = co_await cluster.async_leader();
      if (now.address == cl.node(target).address()) break;
      t.expires_after(20ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    CHECK(now.address == cl.node(target).address());
    CHECK(now.id == target + 1);
    auto conn = co_await cluster.async_connect();
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS moved (n INTEGER)");
    auto peer = conn.stream().remote_endpoint();
    CHECK(cl.node(target).address() ==
          peer.address().to_string() + ":" + std::to_string(peer.port()));
  });
}

TEST_CASE("after SIGKILL of the leader, async_connect reaches the new leader", "[cluster][slow]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, cl.addresses(), fast_options("failover"));
    {
      auto conn = co_await cluster.async_connect();
      co_await conn.async_execute("CREATE TABLE IF NOT EXISTS f (n INTEGER)");
      co_await conn.async_execute("INSERT INTO f (n) VALUES (1)");
    }
    auto start = std::chrono::steady_clock::now();
    cl.node(static_cast<std::size_t>(leader)).kill();
    auto conn = co_await cluster.async_connect();
    // The new leader accepts writes and has the old rows.
    co_await conn.async_execute("INSERT INTO f (n) VALUES (2)");
    auto ms = dqlite_test::elapsed_ms(start);
    auto n = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM f");
    CHECK(n == 2);
    auto peer = conn.stream().remote_endpoint();
    CHECK(cl.node(static_cast<std::size_t>(leader)).address() !=
          peer.address().to_string() + ":" + std::to_string(peer.port()));
    std::cout << "failover: " << ms << " ms (election timeout " << cl.election_timeout().count()
              << " ms)" << std::endl;
    WARN("failover: " << ms << " ms");
    CHECK(ms < 15000);
  });
}

TEST_CASE("without a quorum, async_connect fails within its bound naming every node",
          "[cluster][slow]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  // Kill the leader and one follower: the last node cannot win an election.
  cl.node(static_cast<std::size_t>(leader)).kill();
  cl.node(static_cast<std::size_t>((leader + 1) % 3)).kill();
  auto opts = fast_options();
  opts.retry_timeout = 2s;
  opts.probe_timeout = 500ms;
  auto start = std::chrono::steady_clock::now();
  std::string message;
  dqlite::error_code code;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, cl.addresses(), opts);
    try {
      co_await cluster.async_connect();
    } catch (const dqlite::error& e) {
      code = e.code();
      message = e.what();
    }
  });
  auto ms = dqlite_test::elapsed_ms(start);
  INFO(message);
  std::cout << "no quorum: " << ms << " ms: " << message << std::endl;
  CHECK(code == dqlite::errc::no_leader);
  CHECK(ms < 10000);  // the 2 s bound, not the 15 s of fast_options()
  for (const auto& a : cl.addresses()) CHECK(mentions(message, a));
  CHECK(mentions(message, "knows no leader"));
  CHECK(mentions(message, "attempts"));
}

TEST_CASE("max_attempts bounds the retries", "[cluster]") {
  auto opts = fast_options();
  opts.max_attempts = 3;
  opts.retry_timeout = 0ms;
  opts.backoff_base = 10ms;
  const std::vector<std::string> list{dead_address(), dead_address()};
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, list, opts);
    auto start = std::chrono::steady_clock::now();
    auto [ec, conn] = co_await cluster.async_connect(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::no_leader);
    INFO(cluster.diagnostics().message());
    CHECK(mentions(cluster.diagnostics().message(), "after 3 attempts"));
    for (const auto& a : list) CHECK(mentions(cluster.diagnostics().message(), a));
    CHECK(dqlite_test::elapsed_ms(start) < 3000);
    CHECK_FALSE(conn.is_open());
  });
}

TEST_CASE("a cancelled async_connect completes at once and the discovery it shared goes on",
          "[cluster]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    // A node that accepts connections (the kernel does) and never answers: asked first,
    // it holds the discovery for probe_timeout.
    asio::ip::tcp::acceptor silent(ex, {asio::ip::make_address("127.0.0.1"), 0});
    const std::string quiet = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    auto opts = fast_options("canceltest");
    opts.max_concurrent_probes = 1;
    opts.probe_timeout = 2s;
    dqlite::cluster cluster(ex, std::vector<std::string>{quiet, node.address()}, opts);

    const auto start = std::chrono::steady_clock::now();
    asio::cancellation_signal stop;
    std::optional<dqlite::error_code> a_ec;
    long long a_ms = -1;
    std::optional<dqlite::error_code> b_ec;
    bool b_done_before_a = false;
    cluster.async_connect(asio::bind_cancellation_slot(
        stop.slot(), [&](dqlite::error_code ec, dqlite::connection) {
          a_ec = ec;
          a_ms = dqlite_test::elapsed_ms(start);
          b_done_before_a = b_ec.has_value();
        }));
    std::optional<dqlite::connection> b_conn;
    cluster.async_connect([&](dqlite::error_code ec, dqlite::connection c) {
      b_ec = ec;
      b_conn.emplace(std::move(c));
    });
    asio::steady_timer t(ex, 100ms);
    co_await t.async_wait(asio::use_awaitable);
    stop.emit(asio::cancellation_type::terminal);
    while (!b_ec) {
      t.expires_after(10ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    REQUIRE(a_ec);
    CHECK(*a_ec == dqlite::errc::cancelled);
    // At once: before the shared discovery got past the silent node (probe_timeout).
    INFO("cancelled after " << a_ms << " ms");
    CHECK_FALSE(b_done_before_a);
    // The other caller was not cancelled: it gets the leader.
    INFO(cluster.diagnostics().message());
    CHECK_FALSE(*b_ec);
    REQUIRE(b_conn);
    auto one = co_await b_conn->async_fetchval<std::int64_t>("SELECT 1");
    CHECK(one == 1);

    // An administration request cancelled while it waits for the leader: the probe of the
    // silent node would take 60 s; the cancellation ends the request long before.
    opts.probe_timeout = 60s;
    opts.retry_timeout = 60s;
    dqlite::cluster quiet_only(ex, std::vector<std::string>{quiet}, opts);
    asio::cancellation_signal stop2;
    std::optional<dqlite::error_code> c_ec;
    const auto start2 = std::chrono::steady_clock::now();
    long long c_ms = -1;
    quiet_only.async_cluster(asio::bind_cancellation_slot(
        stop2.slot(), [&](dqlite::error_code ec, std::vector<dqlite::node_info>) {
          c_ec = ec;
          c_ms = dqlite_test::elapsed_ms(start2);
        }));
    t.expires_after(100ms);
    co_await t.async_wait(asio::use_awaitable);
    stop2.emit(asio::cancellation_type::terminal);
    for (int i = 0; i < 3000 && !c_ec; ++i) {  // a hang guard of 30 s
      t.expires_after(10ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    REQUIRE(c_ec);
    CHECK(*c_ec == dqlite::errc::cancelled);
    CHECK(c_ms < 30'000);
  });
}
