// One dqlite::blocking_pool used by 8 threads at once, with blocking calls only, against a
// real 3-node cluster whose leader is killed half-way. Every worker thread keeps its own
// record; it is checked on the test's thread after the workers have been joined (Catch2's
// assertions are not thread-safe).
#include <dqlite/client.hpp>

#include <catch2/catch.hpp>

#include "support/test_cluster.hpp"
#include "support/test_node.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct record {
  std::vector<std::int64_t> acked;  // ids of acknowledged inserts
  int writes = 0;
  int failed_writes = 0;
  int unknown = 0;            // writes that ended with errc::outcome_unknown
  int acked_after_kill = 0;
  int reads = 0;
  int failed_reads = 0;
  std::vector<std::string> wrong;   // anything that must not happen, described
  std::map<std::string, int> errors;  // the failures seen, by text
};

std::string describe(const dqlite::error_code& ec, bool after) {
  return ec.message() + (after ? " (after the kill)" : " (before the kill)");
}

}  // namespace

TEST_CASE("blocking pool: 8 threads through a leader kill keep every acknowledged write",
          "[pool][threads][blocking][slow]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  constexpr int threads = 8;
  constexpr int ops = 60;

  dqlite::pool_options o;
  o.database = "blocking_threads";
  o.min_size = 2;
  o.max_size = 6;  // fewer connections than threads: some wait in acquire
  o.cluster.connection.request_timeout = 10s;
  auto pool = dqlite::create_pool(cl.addresses(), o);
  pool.execute("CREATE TABLE w (id INTEGER PRIMARY KEY, worker INTEGER, seq INTEGER)");

  std::vector<record> records(threads);
  std::atomic<int> done{0};
  std::atomic<int> finished{0};
  std::atomic<bool> killed{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&, w] {
      auto& r = records[static_cast<std::size_t>(w)];
      for (int i = 0; i < ops; ++i) {
        const bool after = killed.load();
        dqlite::error_code ec;
        dqlite::diagnostics d;
        switch (i % 3) {
          case 0: {  // one statement through the pool
            ++r.writes;
            auto res = pool.execute("INSERT INTO w (worker, seq) VALUES (?, ?)", w, i, ec, d);
            if (ec) {
              ++r.failed_writes;
              if (ec == dqlite::errc::outcome_unknown) ++r.unknown;
              ++r.errors["insert: " + describe(ec, after)];
            } else {
              r.acked.push_back(res.last_insert_id);
              if (killed.load()) ++r.acked_after_kill;
            }
            break;
          }
          case 1: {  // a transaction, run again by the pool when that is safe
            ++r.writes;
            try {
              auto id = pool.transaction([&](dqlite::connection& c) {
                return c.execute("INSERT INTO w (worker, seq) VALUES (?, ?)", w, -i)
                    .last_insert_id;
              });
              r.acked.push_back(id);
              if (killed.load()) ++r.acked_after_kill;
            } catch (const dqlite::error& e) {
              ++r.failed_writes;
              if (e.code() == dqlite::errc::outcome_unknown) ++r.unknown;
              ++r.errors["transaction: " + describe(e.code(), after)];
            }
            break;
          }
          default: {  // a read on a checked-out connection
            ++r.reads;
            auto pc = pool.acquire(ec, d);
            std::int64_t n = -1;
            if (!ec) n = pc->fetchval<std::int64_t>("SELECT count(*) FROM w WHERE worker = ?", w,
                                                     ec, d);
            if (ec) {
              ++r.failed_reads;
              ++r.errors["read: " + describe(ec, after)];
            } else if (n < static_cast<std::int64_t>(r.acked.size()) || n > r.writes) {
              r.wrong.push_back("worker " + std::to_string(w) + " counted " + std::to_string(n) +
                                " rows with " + std::to_string(r.acked.size()) +
                                " acknowledged of " + std::to_string(r.writes) + " writes");
            }
            break;
          }
        }
        ++done;
      }
      ++finished;
    });
  }

  // Half-way, the leader dies.
  while (done.load() < threads * ops / 2) std::this_thread::sleep_for(1ms);
  const auto killed_at = std::chrono::steady_clock::now();
  cl.node(static_cast<std::size_t>(leader)).kill();
  killed = true;
  // A hang guard below the suite's 600 s per test: the workers must finish on their own.
  for (int i = 1; finished.load() < threads; ++i) {
    std::this_thread::sleep_for(10ms);
    if (i % 3000 == 0)
      std::cout << "after the kill: " << finished.load() << " of " << threads
                << " threads finished, " << done.load() << " of " << threads * ops
                << " operations done" << std::endl;
    if (i == 45'000) {
      std::cerr << "blocking pool: workers did not finish within 450 s" << std::endl;
      std::_Exit(1);
    }
  }
  for (auto& t : workers) t.join();
  const auto total_ms = dqlite_test::elapsed_ms(killed_at);

  // The pool serves again after the election, from the test's thread.
  auto after = pool.execute("INSERT INTO w (worker, seq) VALUES (-1, -1)");
  CHECK(after.rows_affected == 1);
  auto ids = pool.fetch<std::int64_t>("SELECT id FROM w");
  std::set<std::int64_t> present(ids.begin(), ids.end());

  std::size_t acked = 0, missing = 0;
  int writes = 0, failed_writes = 0, unknown = 0, after_kill = 0, reads = 0, failed_reads = 0;
  std::map<std::string, int> errors;
  for (const auto& r : records) {
    for (const auto& w : r.wrong) FAIL_CHECK(w);
    for (auto id : r.acked)
      if (!present.count(id)) ++missing;
    acked += r.acked.size();
    writes += r.writes;
    failed_writes += r.failed_writes;
    unknown += r.unknown;
    after_kill += r.acked_after_kill;
    reads += r.reads;
    failed_reads += r.failed_reads;
    for (const auto& [what, n] : r.errors) errors[what] += n;
  }
  CHECK(missing == 0);  // no acknowledged write is lost
  CHECK(acked + static_cast<std::size_t>(failed_writes) == static_cast<std::size_t>(writes));
  // Rows: the acknowledged writes, failed ones that were applied anyway (only an unknown
  // outcome may have been), and the one above.
  CHECK(ids.size() >= acked + 1);
  CHECK(ids.size() <= acked + static_cast<std::size_t>(unknown) + 1);
  CHECK(after_kill > 0);  // the pool served writes after the election
  const auto st = pool.stats();
  CHECK(st.leader_changes >= 1);
  CHECK(st.in_use == 0);
  std::cout << "blocking pool, " << threads << " threads x " << ops << " ops through a leader kill: "
            << total_ms << " ms after the kill; writes " << writes << ", failed " << failed_writes
            << " (outcome unknown " << unknown << "), acknowledged after the kill " << after_kill
            << "; reads " << reads << ", failed " << failed_reads << "; leader changes "
            << st.leader_changes << ", opened " << st.opened << ", transaction retries "
            << st.transaction_retries << std::endl;
  for (const auto& [what, n] : errors) std::cout << "  " << n << " x " << what << "\n";
  pool.close();
}

TEST_CASE("blocking pool: threads share the connections, acquire waits, then times out",
          "[pool][threads][blocking]") {
  dqlite_test::node_process node;
  dqlite::pool_options o;
  o.database = "blocking_share";
  o.max_size = 2;
  o.acquire_timeout = 2s;
  auto pool = dqlite::create_pool({node.address()}, o);
  pool.execute("CREATE TABLE t (v INTEGER)");

  // Four threads, two connections: every read on a checked-out connection and every
  // insert through the pool (which runs a statement refused as busy again) is made, with
  // acquires that wait.
  constexpr int threads = 4, ops = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int w = 0; w < threads; ++w)
    ts.emplace_back([&, w] {
      for (int i = 0; i < ops; ++i) {
        dqlite::error_code ec;
        dqlite::diagnostics d;
        {
          auto pc = pool.acquire(ec, d);
          if (!ec) (void)pc->fetchval<std::int64_t>("SELECT count(*) FROM t", ec, d);
        }
        if (!ec) pool.execute("INSERT INTO t (v) VALUES (?)", w * 1000 + i, ec, d);
        if (ec && failures++ == 0)
          std::cerr << "first failure: " << ec.message() << ": " << d.message() << std::endl;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  CHECK(pool.fetchval<std::int64_t>("SELECT count(*) FROM t") == threads * ops);
  auto st = pool.stats();
  CHECK(st.opened <= 2);
  CHECK(st.waits > 0);

  // With both connections held by this thread, another thread's acquire times out, and
  // gets one as soon as a connection comes back.
  auto a = pool.acquire();
  auto b = pool.acquire();
  dqlite::error_code ec;
  std::thread([&] {
    dqlite::diagnostics d;
    (void)pool.acquire(ec, d);
  }).join();
  CHECK(ec == dqlite::errc::timeout);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    dqlite::error_code wec;
    dqlite::diagnostics d;
    auto c = pool.acquire(wec, d);
    got = !wec && c.valid() && c->is_open();
  });
  std::this_thread::sleep_for(50ms);
  a.reset();  // given back from this thread; the waiting thread runs the pool and takes it
  waiter.join();
  CHECK(got);

  // A connection may outlive the pool object; it is closed when it comes back.
  {
    auto moved = std::move(pool);
  }
  CHECK(b->fetchval<std::int64_t>("SELECT count(*) FROM t") == threads * ops);
  b.reset();
}

TEST_CASE("blocking pool: a transaction refused as busy runs again, max_attempts ends it",
          "[pool][blocking][tx]") {
  dqlite_test::node_process node;
  dqlite::pool_options o;
  o.database = "blocking_tx";
  o.max_size = 2;
  auto pool = dqlite::create_pool({node.address()}, o);
  pool.execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, v INTEGER)");
  dqlite::connection_options lo;
  lo.database = "blocking_tx";
  auto locker = dqlite::connect(node.address(), lo);

  // Another connection holds the write lock until the transaction has been refused once.
  auto lock = locker.begin();
  locker.execute("INSERT INTO acct VALUES (100, 0)");
  std::atomic<int> calls{0};
  std::atomic<bool> released{false};
  std::thread releaser([&] {
    for (int i = 0; i < 20000 && calls.load() < 2; ++i) std::this_thread::sleep_for(1ms);
    lock.commit();
    released = true;
  });
  dqlite::transaction_retry patient;
  patient.max_attempts = 1000;
  patient.timeout = 60s;
  patient.backoff_cap = 50ms;
  auto id = pool.transaction(
      [&](dqlite::connection& c) {
        ++calls;
        return c.execute("INSERT INTO acct (v) VALUES (?)", 1).last_insert_id;
      },
      patient);
  releaser.join();
  CHECK(calls >= 2);
  CHECK(released);
  CHECK(id > 0);
  CHECK(pool.stats().transaction_retries >= 1);
  CHECK(pool.fetchval<std::int64_t>("SELECT count(*) FROM acct WHERE v = 1") == 1);  // once

  // With the lock held throughout, three attempts and the busy error.
  auto lock2 = locker.begin();
  locker.execute("INSERT INTO acct VALUES (200, 0)");
  dqlite::transaction_retry three;
  three.max_attempts = 3;
  three.backoff_base = 1ms;
  int tries = 0;
  bool threw = false;
  try {
    pool.transaction([&](dqlite::connection& c) {
      ++tries;
      c.execute("INSERT INTO acct (v) VALUES (2)");
    }, three);
  } catch (const dqlite::error& e) {
    threw = true;
    CHECK(dqlite::is_busy(e.code()));
    CHECK_THAT(std::string(e.what()), Catch::Contains("no attempt is left"));
  }
  CHECK(threw);
  CHECK(tries == 3);
  lock2.rollback();

  // An exception of the body's own rolls back and propagates at once.
  int body_runs = 0;
  CHECK_THROWS_AS(pool.transaction([&](dqlite::connection& c) {
    ++body_runs;
    c.execute("INSERT INTO acct (v) VALUES (3)");
    throw std::runtime_error("no");
  }), std::runtime_error);
  CHECK(body_runs == 1);
  // The rollback was made before the exception left transaction(): another connection
  // writes at once, with no call of the pool in between.
  locker.execute("INSERT INTO acct (v) VALUES (4)");
  CHECK(pool.fetchval<std::int64_t>("SELECT count(*) FROM acct WHERE v = 3") == 0);
  // The same for a handle dropped with a transaction open.
  {
    auto pc = pool.acquire();
    auto tx = pc->begin();
    pc->execute("INSERT INTO acct (v) VALUES (5)");
  }
  locker.execute("INSERT INTO acct (v) VALUES (6)");
  CHECK(pool.fetchval<std::int64_t>("SELECT count(*) FROM acct WHERE v = 5") == 0);
  pool.close();
}

TEST_CASE("blocking cluster and pool: connections outlive the objects that made them, "
          "misuse is refused",
          "[pool][cluster][blocking]") {
  dqlite_test::node_process node;
  std::optional<dqlite::connection> kept;
  {
    dqlite::cluster_options co;
    co.connection.database = "blocking_outlive";
    dqlite::blocking_cluster cl({node.address()}, co);
    auto c = cl.connect();
    kept.emplace(std::move(c));  // c is moved from, and outlives nothing it needs
    auto moved = std::move(cl);
    CHECK_THROWS_AS(cl.stats(), std::logic_error);  // NOLINT: use after move, on purpose
    CHECK_THROWS_AS(cl.leader(), std::logic_error);
  }
  kept->execute("CREATE TABLE t (v INTEGER)");
  CHECK(kept->fetchval<std::int64_t>("SELECT count(*) FROM t") == 0);
  kept.reset();

  dqlite::pool_options o;
  o.database = "blocking_outlive";
  std::optional<dqlite::connection> from_pool;
  {
    auto pool = dqlite::create_pool({node.address()}, o);
    auto pc = pool.acquire();
    from_pool.emplace(std::move(*pc));  // taken out of the pool for good
  }
  CHECK(from_pool->fetchval<std::int64_t>("SELECT count(*) FROM t") == 0);
  from_pool.reset();

  // Invalid options: an error code with the error-code form, an exception without.
  o.max_size = 0;
  dqlite::error_code ec;
  dqlite::diagnostics d;
  auto bad = dqlite::create_pool({node.address()}, o, ec, d);
  CHECK(ec == dqlite::errc::invalid_argument);
  CHECK_THAT(d.message(), Catch::Contains("max_size"));
  CHECK_FALSE(bad.valid());
  CHECK_THROWS_AS(bad.execute("SELECT 1"), std::logic_error);
  CHECK_THROWS_AS(dqlite::create_pool({node.address()}, o), dqlite::error);
}
