// dqlite::app in the test's own process: the API from start to stop, and a restart that
// reuses the identity stored in the data directory.
#include <dqlite/app.hpp>

#include "support/run.hpp"
#include "support/test_node.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("an app in this process: start, ready, pool, cluster client, stop, then a restart keeps the identity",
          "[app][inproc]") {
  std::string templ = std::filesystem::temp_directory_path().string() + "/dqlite-app-inproc-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  REQUIRE(::mkdtemp(buf.data()) != nullptr);
  const std::filesystem::path dir = std::string(buf.data()) + "/data";
  const std::string address = "127.0.0.1:" + std::to_string(dqlite_test::detail::pick_free_port());
  std::vector<std::string> events;

  dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    dqlite::app_options o;
    o.address = address;
    o.network_latency = 20ms;
    o.membership_check = 100ms;
    o.log = [&](std::string_view e) { events.emplace_back(e); };
    dqlite::app a(ex, dir, o);
    CHECK(a.id() == 0);
    co_await a.async_start();
    CHECK(a.id() == 1);
    CHECK(a.address() == address);
    co_await a.async_ready();
    CHECK(a.stats().ready);
    CHECK(a.stats().leader_id == 1);
    auto pool = a.make_pool({.database = "inproc"});
    co_await pool.async_execute("CREATE TABLE t (n INTEGER)");
    co_await pool.async_execute("INSERT INTO t (n) VALUES (?)", 7);
    auto nodes = co_await a.cluster().async_cluster();
    REQUIRE(nodes.size() == 1);
    CHECK(nodes[0].id == 1);
    CHECK(nodes[0].address == address);
    CHECK(nodes[0].role == dqlite::node_role::voter);
    auto stored = a.store()->get();
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].address == address);
    co_await pool.async_close();

    // A second start is refused; a stop completes; then readiness is refused.
    auto tok = boost::asio::as_tuple(boost::asio::use_awaitable);
    auto [again] = co_await a.async_start(tok);
    CHECK(again == dqlite::errc::invalid_argument);
    co_await a.async_stop();
    auto [ready] = co_await a.async_ready(tok);
    CHECK(ready == dqlite::errc::cancelled);
  });
  CHECK(std::find(events.begin(), events.end(),
                  "started: node 1 at " + address + " (new: bootstrapping a cluster)") != events.end());
  CHECK(std::filesystem::exists(dir / "app-info"));
  CHECK(std::filesystem::exists(dir / "app-cluster"));

  // Started again without an address: the stored one is used, the data is there.
  dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    dqlite::app_options o;
    o.network_latency = 20ms;
    o.membership_check = 100ms;
    dqlite::app a(ex, dir, o);
    co_await a.async_start();
    CHECK(a.id() == 1);
    CHECK(a.address() == address);
    co_await a.async_ready();
    auto pool = a.make_pool({.database = "inproc"});
    CHECK(co_await pool.async_fetchval<std::int64_t>("SELECT n FROM t") == 7);
    co_await pool.async_close();
    co_await a.async_handover();  // alone: nothing to hand over; the node stops
  });

  // Destroyed while running: the destructor stops the node.
  dqlite::app_options fast;
  fast.network_latency = 20ms;
  fast.membership_check = 100ms;
  dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    dqlite::app a(ex, dir, fast);
    co_await a.async_start();
    co_await a.async_ready();
  });
  dqlite_test::run([&](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    dqlite::app a(ex, dir, fast);
    co_await a.async_start();  // the port is free again
    co_await a.async_stop();
  });
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(buf.data()), ec);
}
