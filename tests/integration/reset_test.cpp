// What a connection knows of its transaction (connection::in_transaction), and what a reset
// sends: nothing for a connection with nothing to undo, a ROLLBACK when a transaction may
// be open. Against a real node; the bytes a client sends are counted by a TCP proxy.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fault_proxy.hpp"
#include "support/run.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

dqlite_test::node_process& reset_node() {
  static dqlite_test::node_process node;
  return node;
}

dqlite::connection_options reset_opts(std::string_view db) {
  dqlite::connection_options o;
  o.database = db;
  o.connect_timeout = 5s;
  o.request_timeout = 10s;
  return o;
}

// Waits (bounded) until every pooled connection is back: they come back asynchronously.
asio::awaitable<bool> all_back(dqlite::pool& pool) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (int i = 0; i < 500; ++i) {
    if (pool.stats().in_use == 0) co_return true;
    t.expires_after(10ms);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return false;
}

}  // namespace

TEST_CASE("connection: in_transaction follows BEGIN, COMMIT, ROLLBACK and SAVEPOINT in SQL text",
          "[reset]") {
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, reset_node().address(), reset_opts("txstate"));
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)");
    CHECK_FALSE(conn.in_transaction());
    co_await conn.async_execute("BEGIN");
    CHECK(conn.in_transaction());
    co_await conn.async_execute("INSERT INTO t VALUES (1)");
    CHECK(conn.in_transaction());
    co_await conn.async_execute("COMMIT");
    CHECK_FALSE(conn.in_transaction());
    // Inside a longer text; a query too.
    co_await conn.async_execute("BEGIN; INSERT INTO t VALUES (2)");
    CHECK(conn.in_transaction());
    co_await conn.async_execute("ROLLBACK");
    CHECK_FALSE(conn.in_transaction());
    co_await conn.async_execute("begin immediate; insert into t values (3); commit");
    CHECK_FALSE(conn.in_transaction());
    // Savepoints: ROLLBACK TO stays inside; RELEASE may or may not end it (counted open).
    co_await conn.async_execute("SAVEPOINT a");
    CHECK(conn.in_transaction());
    co_await conn.async_execute("ROLLBACK TO a");
    CHECK(conn.in_transaction());
    co_await conn.async_execute("RELEASE a");
    CHECK(conn.in_transaction());
    // The reset rolls back whatever may be open; afterwards a BEGIN is accepted.
    co_await conn.async_reset();
    CHECK_FALSE(conn.in_transaction());
    co_await conn.async_execute("BEGIN");
    co_await conn.async_reset();
    CHECK_FALSE(conn.in_transaction());
    auto [ec, r] = co_await conn.async_execute("BEGIN", asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(ec);  // the reset's ROLLBACK closed the first one
    co_await conn.async_execute("ROLLBACK");
    // Prepared statements carry what their text does.
    auto begin = co_await conn.async_prepare("BEGIN");
    auto commit = co_await conn.async_prepare("COMMIT");
    co_await begin.async_execute();
    CHECK(conn.in_transaction());
    co_await commit.async_execute();
    CHECK_FALSE(conn.in_transaction());
    // executemany of a text that opens one.
    std::vector<std::tuple<>> once(1);
    co_await conn.async_executemany("SAVEPOINT m", once);
    CHECK(conn.in_transaction());
    co_await conn.async_reset();
    CHECK_FALSE(conn.in_transaction());
    conn.executemany("BEGIN", once);  // the blocking form
    CHECK(conn.in_transaction());
    co_await conn.async_reset();
    auto [bec, br] = co_await conn.async_execute("BEGIN", asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(bec);  // the reset closed the executemany's transaction
    co_await conn.async_execute("ROLLBACK");
    // A transaction object.
    auto tx = co_await conn.async_begin();
    CHECK(conn.in_transaction());
    co_await tx.async_commit();
    CHECK_FALSE(conn.in_transaction());
    // A text that touched the transaction and failed: the server may have run part of it.
    auto [fec, fr] = co_await conn.async_execute("BEGIN; INSERT INTO nowhere VALUES (1)",
                                                 asio::as_tuple(asio::use_awaitable));
    CHECK(fec);
    CHECK(conn.in_transaction());
    co_await conn.async_reset();
    CHECK_FALSE(conn.in_transaction());
    co_await begin.async_close();
    co_await commit.async_close();
  });
}

TEST_CASE("connection: a reset sends nothing when there is nothing to undo", "[reset]") {
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite_test::fault_proxy proxy(ex, reset_node().address());
    auto conn = co_await dqlite::async_connect(ex, proxy.address(), reset_opts("txsend"));
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)");
    auto n = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM t");
    (void)n;
    const auto before = proxy.client_bytes();
    co_await conn.async_reset();
    CHECK(proxy.client_bytes() == before);  // no frame
    conn.reset();                           // the blocking form: none either
    CHECK(proxy.client_bytes() == before);
    // An open transaction: the reset sends its ROLLBACK.
    co_await conn.async_execute("BEGIN");
    const auto in_tx = proxy.client_bytes();
    co_await conn.async_reset();
    CHECK(proxy.client_bytes() > in_tx);
    CHECK_FALSE(conn.in_transaction());
    // A statement dropped without close: the reset finalizes it.
    {
      auto stmt = co_await conn.async_prepare("SELECT 1");
      (void)stmt;
    }
    const auto dropped = proxy.client_bytes();
    co_await conn.async_reset();
    CHECK(proxy.client_bytes() > dropped);
    const auto clean = proxy.client_bytes();
    co_await conn.async_reset();
    CHECK(proxy.client_bytes() == clean);
  });
}

TEST_CASE("pool: a clean connection goes back without a request, an open transaction is "
          "rolled back",
          "[reset][pool]") {
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const std::vector<std::string> addresses{reset_node().address()};
    dqlite::pool_options o;
    o.database = "txpool";
    o.min_size = 1;
    o.max_size = 1;
    o.acquire_timeout = 20s;
    o.cluster.connection.connect_timeout = 5s;
    o.cluster.connection.request_timeout = 10s;
    auto pool = co_await dqlite::async_create_pool(ex, addresses, o);
    co_await pool.async_execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)");
    for (int i = 0; i < 20; ++i) {
      auto v = co_await pool.async_fetchval<std::int64_t>("SELECT ?", i);
      CHECK(v == i);
    }
    co_await pool.async_execute("INSERT INTO t VALUES (1)");
    REQUIRE(co_await all_back(pool));
    CHECK(pool.stats().resets == 0);
    {
      auto pc = co_await pool.async_acquire();
      co_await pc->async_execute("BEGIN");
      co_await pc->async_execute("INSERT INTO t VALUES (2)");
    }
    REQUIRE(co_await all_back(pool));
    CHECK(pool.stats().resets == 1);
    {
      auto pc = co_await pool.async_acquire();
      CHECK_FALSE(pc->in_transaction());
      // The uncommitted row is gone, and a new transaction can start.
      auto n = co_await pc->async_fetchval<std::int64_t>("SELECT count(*) FROM t WHERE v = 2");
      CHECK(n == 0);
      co_await pc->async_execute("BEGIN");
      co_await pc->async_execute("COMMIT");
    }
    REQUIRE(co_await all_back(pool));
    CHECK(pool.stats().resets == 1);  // committed: nothing to undo
    {
      auto pc = co_await pool.async_acquire();
      co_await pc->async_execute("SAVEPOINT s");
      co_await pc->async_execute("RELEASE s");  // ended, but the client cannot tell
      CHECK(pc->in_transaction());
      pc.return_without_reset();  // the caller knows
    }
    REQUIRE(co_await all_back(pool));
    CHECK(pool.stats().resets == 1);
    co_await pool.async_close();
  });
}
