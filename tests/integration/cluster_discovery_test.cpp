// The cluster client where what it is given is not enough by itself: a node store that
// cannot be written, a stand-by as the only known node.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_cluster.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

dqlite::cluster_options quick_options(std::string_view db) {
  dqlite::cluster_options o;
  o.connection.database = db;
  o.connection.connect_timeout = 2s;
  o.connection.request_timeout = 10s;
  o.probe_timeout = 1s;
  o.retry_timeout = 15s;
  return o;
}

/// A node store whose writes fail until it is made writable (a read-only file system).
struct unwritable_store final : dqlite::node_store {
  std::vector<dqlite::node_info> nodes;
  bool writable = false;
  int writes = 0;
  std::vector<dqlite::node_info> get() override { return nodes; }
  void set(std::vector<dqlite::node_info> n) override {
    ++writes;
    if (!writable) throw dqlite::node_store_error("cluster.yaml: read-only file system");
    nodes = std::move(n);
  }
};

}  // namespace

TEST_CASE("a node store that cannot be written does not fail the connect", "[cluster][store]") {
  dqlite_test::node_process node(1);
  auto store = std::make_shared<unwritable_store>();
  // An address as the node advertises it, with a role the leader will correct.
  store->nodes = {{0, node.address(), dqlite::node_role::standby}};
  auto opts = quick_options("store_refresh");
  opts.refresh_store = true;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, store, opts);
    auto conn = co_await cluster.async_connect();
    CHECK(conn.is_open());
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS s (x)");
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM s") == 0);
    CHECK(store->writes == 1);
    CHECK(cluster.store_error() == boost::system::errc::io_error);
    CHECK_THAT(cluster.store_diagnostics().message(), Catch::Contains("read-only file system"));
    CHECK(store->nodes[0].id == 0);  // unchanged

    // Once the store can be written, the next discovery refreshes it and clears the error.
    store->writable = true;
    auto again = co_await cluster.async_connect();
    CHECK(again.is_open());
    CHECK_FALSE(cluster.store_error());
    CHECK(cluster.store_diagnostics().empty());
    REQUIRE(store->nodes.size() == 1);
    CHECK(store->nodes[0].id == 1);
    CHECK(store->nodes[0].role == dqlite::node_role::voter);

    // An explicit refresh still reports the failure itself.
    store->writable = false;
    auto [ec, members] = co_await cluster.async_refresh_store(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == boost::system::errc::io_error);
  });
}

TEST_CASE("a cluster client whose only known node is a stand-by reaches the leader",
          "[cluster][standby]") {
  dqlite_test::cluster_options co;
  co.nodes = 3;
  dqlite_test::cluster_process cl(co);
  const int leader = cl.wait_for_leader();
  dqlite_test::node_options no;
  no.id = 4;
  no.extra_args = {"--latency-ms", std::to_string(cl.latency_ms())};
  dqlite_test::node_process standby(no);
  const std::string leader_address = cl.node(static_cast<std::size_t>(leader)).address();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    {
      dqlite::cluster admin(ex, cl.addresses(), quick_options("standby"));
      const dqlite::node_info fourth{4, standby.address(), dqlite::node_role::standby};
      co_await admin.async_add(fourth);
    }
    // Wait until the stand-by has the configuration (it lists the voters).
    dqlite::connection_options ao;
    ao.database = {};
    ao.connect_timeout = 2s;
    ao.request_timeout = 5s;
    dqlite::connection direct(ao, ex);
    co_await direct.async_connect(standby.address());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      auto members = co_await direct.async_cluster();
      if (members.size() == 4) break;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      asio::steady_timer t(ex, 50ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    auto says = co_await direct.async_leader();
    INFO("the stand-by answers LEADER with '" << says.address << "'");
    direct.close();

    auto opts = quick_options("standby");
    opts.retry_timeout = 10s;
    dqlite::cluster cluster(ex, std::vector<std::string>{standby.address()}, opts);
    auto info = co_await cluster.async_leader();
    CHECK(info.address == leader_address);
    auto conn = co_await cluster.async_connect();
    CHECK(conn.is_open());
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS sb (x)");
    co_await conn.async_execute("INSERT INTO sb VALUES (1)");
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM sb") == 1);
  });
}
