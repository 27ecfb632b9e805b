// One pool shared by several threads (docs/pool.md, "Closing, threads, fork": the pool's
// state lives on a strand, so one pool may be used from several threads; a checked-out
// connection is for one user at a time). Workers on strands of an io_context run by three
// threads, and on a second io_context run by a fourth thread, use one pool against a real
// node. Every worker keeps its own results; they are checked on the test's thread after
// the worker threads have been joined (Catch2's assertions are not thread-safe).
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/test_node.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);

struct worker_result {
  std::vector<std::int64_t> ids;     // acknowledged inserts
  int reads_checked = 0;             // counts read back equal to this worker's inserts
  std::vector<std::string> errors;   // anything unexpected, described
  std::set<std::thread::id> threads; // where the worker's coroutine ran
  bool finished = false;
};

// ops rounds of: an insert through the pool, a read of this worker's count through the
// pool, and a two-row transaction on a checked-out connection.
asio::awaitable<void> worker(dqlite::pool& pool, int w, int ops, worker_result& r) {
  auto note = [&](const std::string& what, const dqlite::error_code& ec) {
    r.errors.push_back("worker " + std::to_string(w) + ": " + what + ": " + ec.message());
  };
  std::int64_t mine = 0;
  for (int i = 0; i < ops; ++i) {
    r.threads.insert(std::this_thread::get_id());
    auto [ec, res] = co_await pool.async_execute("INSERT INTO t (worker, seq) VALUES (?, ?)", w,
                                                 i, tok);
    if (ec) {
      note("insert", ec);
      continue;
    }
    r.ids.push_back(res.last_insert_id);
    ++mine;
    r.threads.insert(std::this_thread::get_id());

    auto [ec2, n] =
        co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM t WHERE worker = ?", w, tok);
    if (ec2) {
      note("count", ec2);
    } else if (n != mine) {
      r.errors.push_back("worker " + std::to_string(w) + ": count " + std::to_string(n) +
                         ", expected " + std::to_string(mine));
    } else {
      ++r.reads_checked;
    }
    r.threads.insert(std::this_thread::get_id());

    // A transaction on a checked-out connection; another worker's transaction may hold
    // the write lock (busy): roll back and try again, a bounded number of times.
    bool done = false;
    int attempt = 0;
    for (; attempt < 10000 && !done; ++attempt) {
      auto [aec, pc] = co_await pool.async_acquire(tok);
      if (aec) {
        note("acquire", aec);
        break;
      }
      auto [bec, b] = co_await pc->async_execute("BEGIN", tok);
      dqlite::exec_result r1{}, r2{};
      dqlite::error_code xec = bec;
      if (!xec) std::tie(xec, r1) = co_await pc->async_execute(
                    "INSERT INTO t (worker, seq) VALUES (?, ?)", w, -i, tok);
      if (!xec) std::tie(xec, r2) = co_await pc->async_execute(
                    "INSERT INTO t (worker, seq) VALUES (?, ?)", w, -i - 1000000, tok);
      if (!xec) std::tie(xec, std::ignore) = co_await pc->async_execute("COMMIT", tok);
      if (!xec) {
        r.ids.push_back(r1.last_insert_id);
        r.ids.push_back(r2.last_insert_id);
        mine += 2;
        done = true;
      } else if (dqlite::is_busy(xec)) {
        // The pool rolls back what is left open when the connection comes back.
        pc.reset();
        asio::steady_timer pause(co_await asio::this_coro::executor, 2ms);
        co_await pause.async_wait(tok);
      } else {
        note("transaction", xec);
        break;
      }
    }
    if (!done && attempt == 10000)
      r.errors.push_back("worker " + std::to_string(w) + ": transaction busy 10000 times");
    r.threads.insert(std::this_thread::get_id());
  }
  r.finished = true;
}

}  // namespace

TEST_CASE("pool: one pool used from several threads and strands", "[pool][threads]") {
  dqlite_test::node_process node;
  constexpr int workers_a = 8;  // on strands of io_a (three threads)
  constexpr int workers_b = 4;  // on io_b (one thread)
  constexpr int ops = 25;
  asio::io_context io_a(3);
  asio::io_context io_b(1);
  auto guard_a = asio::make_work_guard(io_a);
  auto guard_b = asio::make_work_guard(io_b);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back([&] { io_a.run(); });
  threads.emplace_back([&] { io_b.run(); });

  std::optional<dqlite::pool> pool;
  std::vector<worker_result> results(workers_a + workers_b);
  std::atomic<int> finished{0};
  std::string setup_error;
  dqlite::pool_stats stats{};
  std::int64_t rows_in_table = -1;
  std::vector<std::int64_t> ids_in_table;

  auto on_a = [&](auto make) {
    return asio::co_spawn(io_a, make(), asio::use_future).get();
  };
  try {
    on_a([&]() -> asio::awaitable<void> {
      dqlite::pool_options o;
      o.database = "threads";
      o.min_size = 2;
      o.max_size = 4;
      o.acquire_timeout = 120s;  // hang guards
      o.cluster.connection.request_timeout = 60s;
      // The inserts through the pool wait while a worker's transaction holds the write
      // lock (busy): on a loaded machine that can take a while.
      o.busy_timeout = 120s;
      const std::vector<std::string> addresses{node.address()};
      pool.emplace(co_await dqlite::async_create_pool(io_a.get_executor(), addresses, o));
      co_await pool->async_execute(
          "CREATE TABLE t (id INTEGER PRIMARY KEY, worker INTEGER, seq INTEGER)");
    });

    for (int w = 0; w < workers_a + workers_b; ++w) {
      auto ex = w < workers_a ? asio::any_io_executor(asio::make_strand(io_a))
                              : asio::any_io_executor(io_b.get_executor());
      auto& r = results[static_cast<std::size_t>(w)];
      asio::co_spawn(ex, worker(*pool, w, ops, r), [&r, &finished](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            r.errors.push_back(std::string("exception: ") + x.what());
          }
        }
        ++finished;
      });
    }
    // A hang guard far above the expected time (about a second).
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (finished < workers_a + workers_b && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);

    on_a([&]() -> asio::awaitable<void> {
      ids_in_table = co_await pool->async_fetch<std::int64_t>("SELECT id FROM t");
      rows_in_table = static_cast<std::int64_t>(ids_in_table.size());
      // The counters live on the pool's strand: read them there. A connection goes back
      // to the pool just after its statement completes: wait for it (a hang guard of 60 s).
      auto read_stats = [&]() -> asio::awaitable<dqlite::pool_stats> { co_return pool->stats(); };
      for (int i = 0; i < 6000; ++i) {
        stats = co_await asio::co_spawn(pool->get_executor(), read_stats, asio::use_awaitable);
        if (stats.in_use == 0) break;
        asio::steady_timer pause(co_await asio::this_coro::executor, 10ms);
        co_await pause.async_wait(asio::use_awaitable);
      }
      co_await pool->async_close();
    });
  } catch (const std::exception& e) {
    setup_error = e.what();
  }
  pool.reset();
  guard_a.reset();
  guard_b.reset();
  io_a.stop();
  io_b.stop();
  for (auto& t : threads) t.join();

  REQUIRE(setup_error == "");
  REQUIRE(finished == workers_a + workers_b);
  std::set<std::thread::id> all_threads;
  std::vector<std::int64_t> acked;
  int reads = 0;
  for (const auto& r : results) {
    CHECK(r.finished);
    for (const auto& e : r.errors) FAIL_CHECK(e);
    all_threads.insert(r.threads.begin(), r.threads.end());
    acked.insert(acked.end(), r.ids.begin(), r.ids.end());
    reads += r.reads_checked;
  }
  constexpr int total_workers = workers_a + workers_b;
  CHECK(acked.size() == static_cast<std::size_t>(total_workers * ops * 3));
  CHECK(reads == total_workers * ops);
  // Every acknowledged row is there, once, and nothing else.
  std::set<std::int64_t> present(ids_in_table.begin(), ids_in_table.end());
  std::set<std::int64_t> acked_set(acked.begin(), acked.end());
  CHECK(acked_set.size() == acked.size());
  CHECK(present == acked_set);
  CHECK(rows_in_table == static_cast<std::int64_t>(acked.size()));
  // The workers ran on more than one thread (io_b's worker on its own).
  CHECK(all_threads.size() >= 2);
  // The pool never went above its size and lost no connection.
  CHECK(stats.in_use == 0);
  CHECK(stats.opened <= 4);
  CHECK(stats.discarded == 0);
  CHECK(stats.leader_changes == 0);
}
