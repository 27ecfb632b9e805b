// Transactions across leadership changes on a 3-node cluster of real nodes.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_cluster.hpp"

#include <chrono>
#include <cstdint>
#include <string>

#include <signal.h>

// Operations with side effects are awaited outside CHECK(...) (GCC 12 evaluates a co_await
// inside the assertion macros twice).

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

dqlite::cluster_options options(std::string_view db) {
  dqlite::cluster_options o;
  o.connection.database = db;
  o.connection.connect_timeout = 2s;
  o.connection.request_timeout = 10s;
  o.probe_timeout = 1s;
  o.retry_timeout = 15s;
  return o;
}

}  // namespace

TEST_CASE("a leadership transfer inside a transaction fails it and closes the connection",
          "[cluster][tx]") {
  dqlite_test::cluster_process cl(3);
  cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::cluster cluster(ex, cl.addresses(), options("txmove"));
    auto conn = co_await cluster.async_connect();
    co_await conn.async_execute("CREATE TABLE t (n INTEGER)");
    auto leader = co_await cluster.async_leader();
    auto tx = co_await conn.async_begin();
    co_await conn.async_execute("INSERT INTO t VALUES (1)");

    auto target = (leader.id % 3) + 1;  // another voter
    co_await cluster.async_transfer(target);

    auto [ec, r] = co_await conn.async_execute("INSERT INTO t VALUES (2)",
                                               asio::as_tuple(asio::use_awaitable));
    CHECK((dqlite::is_not_leader(ec) || dqlite::is_leadership_lost(ec)));
    CHECK(dqlite::is_connection_error(ec));
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("the connection was closed"));
    CHECK_FALSE(conn.is_open());
    CHECK_FALSE(tx.is_active());
    auto [cec] = co_await tx.async_commit(asio::as_tuple(asio::use_awaitable));
    CHECK(cec == dqlite::errc::not_connected);

    // The new leader has none of the transaction's rows.
    auto fresh = co_await cluster.async_connect();
    auto n = co_await fresh.async_fetchval<std::int64_t>("SELECT count(*) FROM t");
    CHECK(n == 0);
  });
}

TEST_CASE("a follower refuses OPEN (from 1.18.2) or the first write with not leader",
          "[cluster][tx]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  const auto follower = static_cast<std::size_t>((leader + 1) % 3);
  // Until 1.18.1 a follower accepts OPEN and refuses the first write; from 1.18.2 it
  // refuses OPEN already (PROTOCOL.md).
  const bool open_on_follower = dqlite_test::server_version() < 11802;
  INFO("libdqlite " << dqlite_test::server_version());
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection_options o;
    o.database = "follower";
    auto [cec, conn] = co_await dqlite::async_connect(ex, cl.node(follower).address(), o,
                                                      asio::as_tuple(asio::use_awaitable));
    if (!open_on_follower) {
      CHECK(dqlite::is_not_leader(cec));
      CHECK(cec.value() == 10250);
      CHECK_FALSE(conn.is_open());
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("not leader"));
      co_return;
    }
    REQUIRE_FALSE(cec);
    auto [ec, r] = co_await conn.async_execute("CREATE TABLE x (n INTEGER)",
                                               asio::as_tuple(asio::use_awaitable));
    CHECK(dqlite::is_not_leader(ec));
    CHECK(ec.value() == 10250);
    CHECK_FALSE(conn.is_open());
    auto [again, r2] = co_await conn.async_fetchval<int>("SELECT 1", asio::as_tuple(asio::use_awaitable));
    CHECK(again == dqlite::errc::not_connected);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("closed after an earlier error"));
  });
}

TEST_CASE("a commit that loses the leadership while replicating has an unknown outcome",
          "[cluster][tx]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection_options o;
    o.database = "lost";
    o.request_timeout = 20s;
    auto conn = co_await dqlite::async_connect(ex, cl.node(static_cast<std::size_t>(leader)).address(), o);
    co_await conn.async_execute("CREATE TABLE t (n INTEGER)");
    auto tx = co_await conn.async_begin();
    co_await conn.async_execute("INSERT INTO t VALUES (1)");
    // The followers stop answering: the commit cannot reach a quorum and the leader steps
    // down while it is being replicated.
    std::vector<pid_t> stopped;
    for (std::size_t i = 0; i < cl.size(); ++i)
      if (static_cast<int>(i) != leader) {
        stopped.push_back(cl.node(i).pid());
        dqlite_test::stop_process(cl.node(i).pid());
      }
    auto start = std::chrono::steady_clock::now();
    auto [ec] = co_await tx.async_commit(asio::as_tuple(asio::use_awaitable));
    auto took = dqlite_test::elapsed_ms(start);
    for (pid_t p : stopped) ::kill(p, SIGCONT);
    INFO("commit answered after " << took << " ms: " << ec.message() << ": "
                                  << conn.diagnostics().message());
    CHECK(ec == dqlite::errc::outcome_unknown);
    CHECK(dqlite::is_outcome_unknown(ec));
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("may or may not have been applied"));
    CHECK_FALSE(conn.is_open());
  });
}
