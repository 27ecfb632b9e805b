// The connection pool against real dqlite nodes.
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
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);

dqlite::pool_options pool_opts(std::string_view db, std::size_t min_size, std::size_t max_size) {
  dqlite::pool_options o;
  o.database = db;
  o.min_size = min_size;
  o.max_size = max_size;
  o.acquire_timeout = 20s;
  o.cluster.connection.connect_timeout = 2s;
  o.cluster.connection.request_timeout = 5s;
  o.cluster.probe_timeout = 1s;
  o.cluster.retry_timeout = 15s;
  o.cluster.backoff_base = 20ms;
  o.cluster.backoff_cap = 200ms;
  return o;
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(tok);
}

}  // namespace

TEST_CASE("pool: acquire, reset on return, convenience calls, close", "[pool]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const std::vector<std::string> addresses{node.address()};
    const auto opts = pool_opts("pooltest", 2, 4);
    auto pool = co_await dqlite::async_create_pool(ex, addresses, opts);
    CHECK(pool.stats().idle == 2);
    co_await pool.async_execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
    {
      auto pc = co_await pool.async_acquire();
      // A transaction left open is rolled back before the connection is reused.
      co_await pc->async_execute("BEGIN");
      co_await pc->async_execute("INSERT INTO t (v) VALUES ('lost')");
    }
    std::string text = "kept";
    auto r = co_await pool.async_execute("INSERT INTO t (v) VALUES (?)", text);
    CHECK(r.rows_affected == 1);
    auto n = co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM t");
    CHECK(n == 1);
    auto one = co_await pool.async_fetchone<std::tuple<std::int64_t, std::string>>(
        "SELECT id, v FROM t WHERE v = ?", "kept");
    REQUIRE(one);
    CHECK(std::get<1>(*one) == "kept");
    auto all = co_await pool.async_fetch<std::string>("SELECT v FROM t");
    CHECK(all == std::vector<std::string>{"kept"});
    // Errors of the statement reach the caller; the connection stays in the pool.
    auto [ec, bad] = co_await pool.async_execute("INSERT INTO nowhere VALUES (1)", tok);
    CHECK(ec);
    co_await sleep_for(20ms);  // the connection goes back (and is reset) asynchronously
    CHECK(pool.stats().in_use == 0);
    // (A call that came while the others were being reset may have opened one more.)
    CHECK(pool.stats().idle >= 2);
    CHECK(pool.stats().discarded == 0);
    co_await pool.async_close();
    auto [ec2, pc2] = co_await pool.async_acquire(tok);
    CHECK(ec2 == dqlite::errc::pool_closed);
  });
}

TEST_CASE("pool: workers through a leader kill keep every acknowledged write", "[pool][slow]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  constexpr int workers = 64;
  constexpr int ops = 40;
  run(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        const auto addresses = cl.addresses();
        const auto opts = pool_opts("poolfailover", 2, 8);
        auto pool = co_await dqlite::async_create_pool(ex, addresses, opts);
        co_await pool.async_execute(
            "CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, worker INTEGER, seq INTEGER)");

        std::vector<std::int64_t> acked;
        std::map<std::string, int> errors;
        int failed_writes = 0, writes = 0, reads = 0, failed_reads = 0, finished = 0, done = 0;
        std::optional<std::chrono::steady_clock::time_point> killed_at;
        std::optional<long long> failover_ms;
        for (int w = 0; w < workers; ++w) {
          asio::co_spawn(
              ex,
              [&, w]() -> asio::awaitable<void> {
                for (int i = 0; i < ops; ++i) {
                  if (i % 2 == 0) {
                    ++writes;
                    auto [ec, res] =
                        co_await pool.async_execute("INSERT INTO w (worker, seq) VALUES (?, ?)", w, i, tok);
                    if (ec) {
                      ++failed_writes;
                      ++errors[ec.message() + (killed_at ? " (after kill)" : " (before kill)")];
                    } else {
                      acked.push_back(res.last_insert_id);
                      if (killed_at && !failover_ms) {
                        failover_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - *killed_at)
                                          .count();
                      }
                    }
                  } else {
                    ++reads;
                    auto [ec, n] = co_await pool.async_fetchval<std::int64_t>(
                        "SELECT count(*) FROM w WHERE worker = ?", w, tok);
                    if (ec) ++failed_reads;
                  }
                  ++done;
                }
                ++finished;
              },
              asio::detached);
        }
        const auto start = std::chrono::steady_clock::now();
        while (done < workers * ops / 2) co_await sleep_for(1ms);
        killed_at = std::chrono::steady_clock::now();
        cl.node(static_cast<std::size_t>(leader)).kill();
        // Progress, for a run that meets the hang guard below.
        for (int i = 1; finished < workers; ++i) {
          co_await sleep_for(5ms);
          if (i % 2000 == 0)
            std::cout << "after the kill: " << finished << " of " << workers
                      << " workers finished, " << done << " of " << workers * ops
                      << " operations done, " << failed_writes << " writes failed, "
                      << pool.stats().leader_changes << " leader changes" << std::endl;
        }
        const auto total_ms = dqlite_test::elapsed_ms(start);

        // The pool serves again after the election.
        auto after = co_await pool.async_execute("INSERT INTO w (worker, seq) VALUES (-1, -1)");
        CHECK(after.rows_affected == 1);
        auto ids = co_await pool.async_fetch<std::int64_t>("SELECT id FROM w");
        std::set<std::int64_t> present(ids.begin(), ids.end());
        std::size_t missing = 0;
        for (auto id : acked)
          if (!present.count(id)) ++missing;
        CHECK(missing == 0);
        CHECK(acked.size() + static_cast<std::size_t>(failed_writes) ==
              static_cast<std::size_t>(writes));
        // Rows: every acknowledged write, plus failed ones that were applied anyway
        // (outcome unknown), plus the one above.
        CHECK(ids.size() >= acked.size() + 1);
        CHECK(ids.size() <= static_cast<std::size_t>(writes) + 1);
        REQUIRE(failover_ms);
        std::cout << "pool failover: " << *failover_ms << " ms (" << workers << " workers x "
                  << ops << " ops in " << total_ms << " ms; writes " << writes << ", failed "
                  << failed_writes << "; reads " << reads << ", failed " << failed_reads
                  << "; leader changes seen " << pool.stats().leader_changes << ")" << std::endl;
        for (const auto& [what, count] : errors) std::cout << "  " << count << " x " << what << "\n";
        CHECK(*failover_ms < 15000);
        co_await pool.async_close();
      },
      std::chrono::seconds(500));  // a hang guard, below the suite's 600 s per test
}

TEST_CASE("pool: cancelled acquires and statements lose no connection", "[pool]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const std::vector<std::string> addresses{node.address()};
    auto opts = pool_opts("poolcancel", 1, 1);
    // After INTERRUPT the server keeps sending the rest of the result (1.18 for longer than
    // 1.11): the drain must not meet the request timeout, a hang guard here.
    opts.cluster.connection.request_timeout = 120s;
    auto pool = co_await dqlite::async_create_pool(ex, addresses, opts);
    auto held = co_await pool.async_acquire();

    // An acquire waiting for the only connection, cancelled.
    asio::cancellation_signal stop;
    std::optional<dqlite::error_code> got;
    pool.async_acquire(asio::bind_cancellation_slot(
        stop.slot(), [&](dqlite::error_code ec, dqlite::pooled_connection) { got = ec; }));
    co_await sleep_for(50ms);
    CHECK(pool.stats().waiting == 1);
    stop.emit(asio::cancellation_type::terminal);
    co_await sleep_for(20ms);
    REQUIRE(got);
    CHECK(*got == dqlite::errc::cancelled);
    CHECK(pool.stats().waiting == 0);
    held.reset();
    co_await sleep_for(50ms);

    // A long query through the pool, cancelled: interrupted, and the connection stays.
    asio::cancellation_signal stop2;
    std::optional<dqlite::error_code> q_ec;
    pool.async_fetch<std::int64_t>(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000000) "
        "SELECT x FROM c",
        asio::bind_cancellation_slot(stop2.slot(), [&](dqlite::error_code ec,
                                                       std::vector<std::int64_t>) { q_ec = ec; }));
    co_await sleep_for(50ms);
    stop2.emit(asio::cancellation_type::terminal);
    while (!q_ec) co_await sleep_for(10ms);
    CHECK(*q_ec == dqlite::errc::interrupted);
    co_await sleep_for(50ms);
    auto n = co_await pool.async_fetchval<std::int64_t>("SELECT 41 + 1");
    CHECK(n == 42);
    const auto s = pool.stats();
    CHECK(s.opened == 1);  // the same connection all along
    CHECK(s.discarded == 0);
    CHECK(s.leader_changes == 0);
  });
}

TEST_CASE("pool: async_transaction runs a transaction refused as busy again, and nothing else",
          "[pool][transaction]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const std::vector<std::string> addresses{node.address()};
    auto pool = co_await dqlite::async_create_pool(ex, addresses, pool_opts("pooltx", 1, 4));
    co_await pool.async_execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, v INTEGER)");
    dqlite::connection_options lo;
    lo.database = "pooltx";
    auto locker = co_await dqlite::async_connect(ex, node.address(), lo);

    // Another connection holds the write lock until the transaction has been refused once.
    auto lock = co_await locker.async_begin();
    co_await locker.async_execute("INSERT INTO acct VALUES (100, 0)");
    int calls = 0;
    bool released = false;
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < 2000 && calls < 2; ++i) co_await sleep_for(5ms);
          co_await lock.async_commit();
          released = true;
        },
        asio::detached);
    dqlite::transaction_retry patient;
    patient.max_attempts = 1000;
    patient.timeout = 60s;
    patient.backoff_cap = 50ms;
    auto id = co_await pool.async_transaction(
        [&](dqlite::connection& c) -> asio::awaitable<std::int64_t> {
          ++calls;
          auto r = co_await c.async_execute("INSERT INTO acct (v) VALUES (?)", 1);
          co_return r.last_insert_id;
        },
        patient);
    CHECK(calls >= 2);
    CHECK(released);
    CHECK(id > 0);
    co_await sleep_for(5ms);
    CHECK(pool.stats().transaction_retries >= 1);
    auto n = co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM acct WHERE v = 1");
    CHECK(n == 1);  // applied once

    // A constraint violation is not run again.
    calls = 0;
    bool threw = false;
    try {
      co_await pool.async_transaction([&](dqlite::connection& c) -> asio::awaitable<void> {
        ++calls;
        co_await c.async_execute("INSERT INTO acct VALUES (100, 2)");
      });
    } catch (const dqlite::error& e) {
      threw = true;
      CHECK(dqlite::is_constraint(e.code()));
      CHECK_THAT(std::string(e.what()), Catch::Contains("attempt 1"));
    }
    CHECK(threw);
    CHECK(calls == 1);

    // The failed transaction is rolled back when its connection goes back to the pool, in
    // the background. Until then it holds the write lock, and the next transaction, on
    // another connection, would be refused as busy (and run again): wait for that reset.
    for (int i = 0; i < 2000 && pool.stats().in_use > 0; ++i) co_await sleep_for(5ms);
    REQUIRE(pool.stats().in_use == 0);

    // Nor is an exception of the body's own; its changes are rolled back.
    calls = 0;
    threw = false;
    try {
      co_await pool.async_transaction([&](dqlite::connection& c) -> asio::awaitable<void> {
        ++calls;
        co_await c.async_execute("INSERT INTO acct VALUES (200, 3)");
        throw std::runtime_error("changed my mind");
      });
    } catch (const std::runtime_error& e) {
      threw = std::string(e.what()) == "changed my mind";
    }
    CHECK(threw);
    CHECK(calls == 1);
    auto gone = co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM acct WHERE id = 200");
    CHECK(gone == 0);

    // Busy on every attempt: max_attempts ends it with the server's error.
    auto lock2 = co_await locker.async_begin();
    co_await locker.async_execute("INSERT INTO acct VALUES (300, 0)");
    calls = 0;
    dqlite::transaction_retry few;
    few.max_attempts = 3;
    few.backoff_base = 5ms;
    threw = false;
    try {
      co_await pool.async_transaction(
          [&](dqlite::connection& c) -> asio::awaitable<void> {
            ++calls;
            co_await c.async_execute("INSERT INTO acct (v) VALUES (4)");
          },
          few);
    } catch (const dqlite::error& e) {
      threw = true;
      CHECK(dqlite::is_busy(e.code()));
      CHECK_THAT(std::string(e.what()), Catch::Contains("no attempt is left"));
    }
    CHECK(threw);
    CHECK(calls == 3);
    co_await lock2.async_rollback();
    co_await pool.async_close();
  });
}

TEST_CASE("pool: max_lifetime renews connections to a real node", "[pool]") {
  dqlite_test::node_process node;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const std::vector<std::string> addresses{node.address()};
    auto opts = pool_opts("poollife", 1, 2);
    opts.max_lifetime = 200ms;
    auto pool = co_await dqlite::async_create_pool(ex, addresses, opts);
    auto one = co_await pool.async_fetchval<std::int64_t>("SELECT 1");
    CHECK(one == 1);
    for (int i = 0; i < 300 && pool.stats().expired == 0; ++i) co_await sleep_for(10ms);
    auto again = co_await pool.async_fetchval<std::int64_t>("SELECT 2");
    CHECK(again == 2);
    auto s = pool.stats();
    CHECK(s.expired >= 1);
    CHECK(s.opened >= 2);
    co_await pool.async_close();
  });
}
