// Cluster and pool over other transports than plain TCP: a 3-node cluster reached only
// through TLS (stunnel in front of each node, the connector mapping each advertised
// address to its TLS port), nodes in this process reached over unix sockets, connectors
// of the caller's, the redirect policy and TCP keepalive.
#include <dqlite/client.hpp>
#include <dqlite/tls.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fault_proxy.hpp"
#include "support/inproc_node.hpp"
#include "support/run.hpp"
#include "support/test_cluster.hpp"
#include "support/test_node.hpp"
#include "support/tls_front.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(tok);
}

dqlite::cluster_options quick_cluster(std::string_view db) {
  dqlite::cluster_options o;
  o.connection.database = db;
  o.connection.connect_timeout = 2s;
  o.connection.request_timeout = 5s;
  o.probe_timeout = 2s;
  o.retry_timeout = 15s;
  o.backoff_base = 20ms;
  o.backoff_cap = 200ms;
  return o;
}

dqlite::pool_options quick_pool(std::string_view db, std::size_t min_size, std::size_t max_size) {
  dqlite::pool_options o;
  o.database = db;
  o.min_size = min_size;
  o.max_size = max_size;
  o.acquire_timeout = 20s;
  o.cluster = quick_cluster(db);
  return o;
}

/// Maps each advertised address to another one; an address it does not know is an error
/// (so a test fails if anything dials around the map). Counts the addresses it mapped.
struct address_table {
  std::map<std::string, std::string> to;
  std::shared_ptr<int> mapped = std::make_shared<int>(0);
  dqlite::address_map map() const {
    return [to = to, mapped = mapped](std::string_view a) -> std::string {
      auto it = to.find(std::string(a));
      if (it == to.end()) throw std::runtime_error("no mapping for " + std::string(a));
      ++*mapped;
      return it->second;
    };
  }
};

int socket_option(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, level, name, &v, &len) != 0) return -1;
  return v;
}

/// Writes through the pool from `workers` coroutines, kills node `kill` half way, and checks
/// that every acknowledged write is present afterwards.
template <class Pool>
asio::awaitable<void> writes_through_a_kill(asio::any_io_executor ex, Pool& pool,
                                            dqlite_test::cluster_process& cl, std::size_t kill) {
  constexpr int workers = 16;
  constexpr int ops = 30;
  co_await pool.async_execute(
      "CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, worker INTEGER, seq INTEGER)");
  std::vector<std::int64_t> acked;
  int writes = 0, failed = 0, done = 0, finished = 0;
  bool killed = false;
  std::map<std::string, int> errors;
  for (int w = 0; w < workers; ++w) {
    asio::co_spawn(
        ex,
        [&, w]() -> asio::awaitable<void> {
          for (int i = 0; i < ops; ++i) {
            ++writes;
            auto [ec, res] = co_await pool.async_execute(
                "INSERT INTO w (worker, seq) VALUES (?, ?)", w, i, tok);
            if (ec) {
              ++failed;
              ++errors[ec.message() + (killed ? " (after the kill)" : " (before)")];
            } else {
              acked.push_back(res.last_insert_id);
            }
            ++done;
          }
          ++finished;
        },
        asio::detached);
  }
  while (done < workers * ops / 2) co_await sleep_for(1ms);
  killed = true;
  cl.node(kill).kill();
  while (finished < workers) co_await sleep_for(5ms);
  // The pool serves again after the election, and every acknowledged write is there.
  auto after = co_await pool.async_execute("INSERT INTO w (worker, seq) VALUES (-1, -1)");
  CHECK(after.rows_affected == 1);
  auto ids = co_await pool.template async_fetch<std::int64_t>("SELECT id FROM w");
  std::set<std::int64_t> present(ids.begin(), ids.end());
  std::size_t missing = 0;
  for (auto id : acked)
    if (!present.count(id)) ++missing;
  CHECK(missing == 0);
  CHECK(acked.size() + static_cast<std::size_t>(failed) == static_cast<std::size_t>(writes));
  CHECK(ids.size() >= acked.size() + 1);
  std::cout << "writes through the kill: " << writes << ", acknowledged " << acked.size()
            << ", failed " << failed << "\n";
  for (const auto& [what, count] : errors) std::cout << "  " << count << " x " << what << "\n";
}

}  // namespace

TEST_CASE("a 3-node cluster reached only through TLS: discovery, administration, the pool "
          "through a kill of the leader",
          "[connector][tls][slow]") {
  dqlite_test::cluster_process cl(3);
  const auto leader = static_cast<std::size_t>(cl.wait_for_leader());
  const auto nodes = cl.addresses();
  dqlite_test::tls_front front(nodes);
  address_table tls;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    tls.to[nodes[i]] = "localhost:" + std::to_string(front.port(i));
  run(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        ssl::context ctx(ssl::context::tls_client);
        ctx.load_verify_file(front.ca_file());
        dqlite::tls_cluster c(ex, dqlite::tls_connector(ctx, tls.map()), nodes,
                              quick_cluster("tlscluster"));
        // Discovery: the nodes answer with their advertised (plain) addresses; the
        // connector dials their TLS ports.
        auto who = co_await c.async_leader();
        CHECK(who.address == nodes[leader]);
        auto members = co_await c.async_cluster();
        CHECK(members.size() == 3);
        auto meta = co_await c.async_describe(nodes[(leader + 1) % 3]);
        CHECK(meta.weight == 0);
        auto conn = co_await c.async_connect();
        static_assert(std::is_same_v<decltype(conn), dqlite::tls_connection>);
        co_await conn.async_execute("CREATE TABLE t (n INTEGER)");
        co_await conn.async_execute("INSERT INTO t VALUES (?)", 7);
        auto seven = co_await conn.async_fetchval<std::int64_t>("SELECT n FROM t");
        CHECK(seven == 7);
        CHECK(*tls.mapped >= 2);

        // The pool, through a kill -9 of the leader.
        auto pool = co_await dqlite::async_create_pool(ex, dqlite::tls_connector(ctx, tls.map()),
                                                       nodes, quick_pool("tlspool", 2, 8));
        static_assert(std::is_same_v<decltype(pool), dqlite::tls_pool>);
        co_await writes_through_a_kill(ex, pool, cl, leader);
        CHECK(pool.stats().leader_changes >= 1);
        co_await pool.async_close();
      },
      std::chrono::seconds(400));
}

TEST_CASE("a TLS cluster with a wrong CA or host name is refused with the reason", "[connector][tls]") {
  static dqlite_test::node_process node(1);
  dqlite_test::tls_front front(node.address());
  const std::string port = std::to_string(front.port());
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto opts = quick_cluster("tlsrefused");
    opts.max_attempts = 1;
    // A CA that did not issue the certificate.
    ssl::context other(ssl::context::tls_client);
    other.load_verify_file(front.other_ca_file());
    address_table by_name;
    by_name.to[node.address()] = "localhost:" + port;
    dqlite::tls_cluster c1(ex, dqlite::tls_connector(other, by_name.map()), {node.address()}, opts);
    auto [ec1, conn1] = co_await c1.async_connect(tok);
    CHECK(ec1 == dqlite::errc::no_leader);
    CHECK_THAT(c1.diagnostics().message(), Catch::Contains("not issued by a trusted CA"));
    CHECK_THAT(c1.diagnostics().message(), Catch::Contains(node.address()));
    // The right CA, but a host name the certificate does not list.
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(front.ca_file());
    address_table by_ip;
    by_ip.to[node.address()] = "127.0.0.1:" + port;
    auto popts = quick_pool("tlsrefused", 0, 2);
    popts.cluster.max_attempts = 1;
    popts.acquire_timeout = 10s;
    dqlite::tls_pool pool(ex, dqlite::tls_connector(ctx, by_ip.map()), {node.address()}, popts);
    auto [ec2, pc] = co_await pool.async_acquire(tok);
    CHECK(ec2);
    CHECK_THAT(pool.cluster().diagnostics().message(),
               Catch::Contains("does not name the host 127.0.0.1"));
    // Both fixed: accepted.
    dqlite::tls_cluster c3(ex, dqlite::tls_connector(ctx, by_name.map()), {node.address()}, opts);
    auto conn3 = co_await c3.async_connect();
    auto one = co_await conn3.async_fetchval<std::int64_t>("SELECT 1");
    CHECK(one == 1);
  });
}

TEST_CASE("a cluster of nodes in this process reached over unix sockets", "[connector][unix]") {
  const std::string base = "dqlite-client-ucl-" + std::to_string(::getpid());
  dqlite_test::inproc_node n1(base + "-1", 1);
  dqlite_test::inproc_node n2(base + "-2", 2);
  dqlite_test::inproc_node n3(base + "-3", 3);
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    // The node advertises "@name": the default unix connector dials it as it is.
    dqlite::unix_cluster c(ex, dqlite::unix_connector(), {n1.address()},
                           quick_cluster("unixcluster"));
    auto who = co_await c.async_leader();
    CHECK(who.address == n1.address());
    auto members = co_await c.async_cluster();
    REQUIRE(members.size() == 1);
    CHECK(members[0].address == n1.address());
    auto conn = co_await c.async_connect();
    static_assert(std::is_same_v<decltype(conn), dqlite::unix_connection>);
    co_await conn.async_execute("CREATE TABLE t (n INTEGER)");

    // Two more nodes on unix sockets are added through the cluster client, as spares
    // (raft between nodes of this libdqlite needs TCP, so they cannot catch up as voters).
    co_await c.async_add(2, n2.address(), dqlite::node_role::spare);
    co_await c.async_add(3, n3.address(), dqlite::node_role::spare);
    auto all = co_await c.async_cluster();
    CHECK(all.size() == 3);
    std::size_t voters = 0;
    for (const auto& m : all)
      if (m.role == dqlite::node_role::voter) ++voters;
    CHECK(voters == 1);

    // A pool whose node store names the first node by another name, mapped to its socket.
    address_table paths;
    paths.to["node-one"] = n1.address();
    for (const auto* n : {&n1, &n2, &n3}) paths.to[n->address()] = n->address();
    paths.to["node-two"] = n2.address();
    // The first node asked knows no leader (it has not joined raft): discovery goes on.
    auto popts = quick_pool("unixcluster", 1, 2);
    popts.cluster.max_concurrent_probes = 1;
    dqlite::unix_pool pool(ex, dqlite::unix_connector(paths.map()), {"node-two", "node-one"},
                           popts);
    co_await pool.async_execute("INSERT INTO t VALUES (?)", 3);
    auto sum = co_await pool.async_fetchval<std::int64_t>("SELECT sum(n) FROM t");
    CHECK(sum == 3);
    CHECK(*paths.mapped >= 1);
    co_await pool.async_close();

    // A path where nothing listens: the reason names it.
    auto opts = quick_cluster("unixcluster");
    opts.max_attempts = 1;
    dqlite::unix_cluster none(ex, dqlite::unix_connector(), {"@" + base + "-nobody"}, opts);
    auto [ec, nc] = co_await none.async_connect(tok);
    CHECK(ec == dqlite::errc::no_leader);
    CHECK_THAT(none.diagnostics().message(), Catch::Contains(base + "-nobody"));
  });
}

TEST_CASE("the blocking cluster over unix sockets: leader, members, a connection, errors",
          "[connector][unix][blocking]") {
  const std::string base = "dqlite-client-ubc-" + std::to_string(::getpid());
  dqlite_test::inproc_node n1(base + "-1", 1);
  dqlite::unix_blocking_cluster c(dqlite::unix_connector(), std::vector<std::string>{n1.address()},
                                  quick_cluster("unixblocking"));
  CHECK(c.leader().address == n1.address());
  auto members = c.cluster();
  REQUIRE(members.size() == 1);
  CHECK(members[0].id == 1);

  auto conn = c.connect();
  static_assert(std::is_same_v<decltype(conn), dqlite::unix_connection>);
  conn.execute("CREATE TABLE t (n INTEGER)");
  conn.execute("INSERT INTO t VALUES (?)", 41);
  CHECK(conn.fetchval<std::int64_t>("SELECT n + 1 FROM t") == 42);

  // The error form: a node id that is not a member.
  dqlite::error_code ec;
  dqlite::diagnostics d;
  c.assign(99, dqlite::node_role::spare, ec, d);
  CHECK(ec);
  CHECK_FALSE(d.message().empty());

  // The same node through a node store.
  auto store = std::make_shared<dqlite::memory_node_store>(
      std::vector<dqlite::node_info>{{1, n1.address(), dqlite::node_role::voter}});
  dqlite::unix_blocking_cluster from_store(dqlite::unix_connector(), store,
                                           quick_cluster("unixblocking"));
  auto conn2 = from_store.connect();
  CHECK(conn2.fetchval<std::int64_t>("SELECT count(*) FROM t") == 1);
  // The TCP-only constructors (addresses dialled as host:port) are not offered for unix.
  static_assert(!std::is_constructible_v<dqlite::unix_blocking_cluster, std::vector<std::string>>);
  static_assert(std::is_constructible_v<dqlite::blocking_cluster, std::vector<std::string>>);

  // No node behind the only address: the discovery's failure, naming the address.
  auto opts = quick_cluster("unixblocking");
  opts.max_attempts = 1;
  dqlite::unix_blocking_cluster none(dqlite::unix_connector(),
                                     std::vector<std::string>{"@" + base + "-nobody"}, opts);
  {
    dqlite::error_code nec;
    dqlite::diagnostics nd;
    auto nc = none.connect(nec, nd);
    CHECK(nec == dqlite::errc::no_leader);
    CHECK_FALSE(nc.is_open());
    CHECK_THAT(nd.message(), Catch::Contains(base + "-nobody"));
  }
  try {
    (void)none.leader();
    FAIL("a leader was found behind no node");
  } catch (const dqlite::error& e) {
    CHECK(e.code() == dqlite::errc::no_leader);
    CHECK_THAT(std::string(e.what()), Catch::Contains(base + "-nobody"));
  }
}

TEST_CASE("a connector of the caller's: dialling through a proxy, one that throws, one that "
          "is empty",
          "[connector]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    // Every connection goes through a proxy the connector picks.
    dqlite_test::fault_proxy proxy(ex, node.address());
    auto dialled = std::make_shared<std::vector<std::string>>();
    dqlite::basic_connector<asio::ip::tcp::socket> via_proxy;
    via_proxy.make = [](const dqlite::connection_options& o, const asio::any_io_executor& e) {
      return dqlite::connection(o, e);
    };
    via_proxy.connect = [dialled, target = proxy.address()](
                            dqlite::connection& conn,
                            std::string address) -> asio::awaitable<dqlite::error_code> {
      dialled->push_back(address);
      auto [ec] = co_await conn.async_connect(target, tok);
      co_return ec;
    };
    dqlite::cluster c(ex, via_proxy, {node.address()}, quick_cluster("custom"));
    auto conn = co_await c.async_connect();
    auto two = co_await conn.async_fetchval<std::int64_t>("SELECT 2");
    CHECK(two == 2);
    CHECK(proxy.client_bytes() > 0);
    REQUIRE_FALSE(dialled->empty());
    CHECK(dialled->front() == node.address());

    // A connector that throws: the probe fails with its text.
    dqlite::basic_connector<asio::ip::tcp::socket> throwing = via_proxy;
    throwing.connect = [](dqlite::connection&, std::string) -> asio::awaitable<dqlite::error_code> {
      throw std::runtime_error("no route to the rack");
      co_return dqlite::error_code{};
    };
    auto opts = quick_cluster("custom");
    opts.max_attempts = 1;
    dqlite::cluster t(ex, throwing, {node.address()}, opts);
    auto [ec, none] = co_await t.async_connect(tok);
    CHECK(ec == dqlite::errc::no_leader);
    CHECK_THAT(t.diagnostics().message(), Catch::Contains("the connector failed: no route to the rack"));

    // A make that throws after the cluster was made: the operation fails, nothing crashes.
    auto makes = std::make_shared<int>(0);
    dqlite::basic_connector<asio::ip::tcp::socket> failing_make = via_proxy;
    failing_make.make = [makes](const dqlite::connection_options& o, const asio::any_io_executor& e) {
      if (++*makes > 1) throw std::runtime_error("out of sockets");
      return dqlite::connection(o, e);
    };
    dqlite::cluster fm(ex, failing_make, {node.address()}, opts);
    auto [ec3, c3] = co_await fm.async_connect(tok);
    CHECK(ec3);
    CHECK_FALSE(c3.is_open());
    CHECK_THAT(fm.diagnostics().message(), Catch::Contains("out of sockets"));

    // A connector without functions is refused when the cluster is made.
    dqlite::basic_connector<asio::ip::tcp::socket> empty;
    CHECK_THROWS_AS(dqlite::cluster(ex, empty, {node.address()}), dqlite::error);
    // So is an address the connector cannot dial.
    CHECK_THROWS_WITH(dqlite::cluster(ex, dqlite::tcp_connector(), {"no-port"}),
                      Catch::Contains("expected host:port"));
    CHECK_NOTHROW(dqlite::unix_cluster(ex, dqlite::unix_connector(), {"/run/dqlite.sock"}));
  });
}

TEST_CASE("follow_redirect: a node naming a leader outside the policy is not followed",
          "[connector][cluster]") {
  dqlite_test::cluster_process cl(3);
  const auto leader = static_cast<std::size_t>(cl.wait_for_leader());
  const auto nodes = cl.addresses();
  const std::string follower = nodes[(leader + 1) % 3];
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto opts = quick_cluster("redirects");
    opts.max_attempts = 1;
    auto only_follower = [&](std::string_view a) { return a == follower; };
    opts.follow_redirect = only_follower;
    dqlite::cluster refused(ex, {follower}, opts);
    auto [ec, none] = co_await refused.async_connect(tok);
    CHECK(ec == dqlite::errc::no_leader);
    CHECK_THAT(refused.diagnostics().message(), Catch::Contains("refused by follow_redirect"));
    CHECK_THAT(refused.diagnostics().message(), Catch::Contains(nodes[leader]));
    CHECK(refused.stats().redirects_refused >= 1);

    // The leader inside the policy: followed.
    auto follower_or_leader = [&](std::string_view a) {
      return a == follower || a == nodes[leader];
    };
    opts.follow_redirect = follower_or_leader;
    dqlite::cluster allowed(ex, {follower}, opts);
    auto conn = co_await allowed.async_connect();
    CHECK(conn.is_open());
    CHECK(allowed.stats().redirects >= 1);
  });
}

TEST_CASE("tcp_keepalive is set on connections, those of the pool included", "[connector]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto plain = co_await dqlite::async_connect(ex, node.address(), {.database = "ka"});
    const int fd0 = plain.stream().native_handle();
    CHECK(socket_option(fd0, SOL_SOCKET, SO_KEEPALIVE) == 0);

    dqlite::connection_options o;
    o.database = "ka";
    o.tcp_keepalive = 7s;
    auto conn = co_await dqlite::async_connect(ex, node.address(), o);
    const int fd = conn.stream().native_handle();
    CHECK(socket_option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(socket_option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 7);
    CHECK(socket_option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 7);

    auto popts = quick_pool("ka", 1, 1);
    popts.cluster.connection.tcp_keepalive = 9s;
    const std::vector<std::string> addresses{node.address()};
    auto pool = co_await dqlite::async_create_pool(ex, addresses, popts);
    auto pc = co_await pool.async_acquire();
    const int pfd = pc->stream().native_handle();
    CHECK(socket_option(pfd, SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(socket_option(pfd, IPPROTO_TCP, TCP_KEEPIDLE) == 9);
  });
}
