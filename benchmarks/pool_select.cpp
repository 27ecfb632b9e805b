// Point SELECTs per second through a pool, with 1, 4, 8 and 16 workers sharing a pool of
// (at most) 8 connections to one local node. Starts its own dqlite node (the dqlite-node
// program of the build tree, or $DQLITE_TEST_NODE_BINARY).
//
//   build/benchmarks/pool_select [SECONDS_PER_RUN]
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int rows = 1000;

asio::awaitable<void> prepare(dqlite::pool& pool) {
  co_await pool.async_execute("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT)");
  co_await pool.async_execute("DELETE FROM kv");
  auto pc = co_await pool.async_acquire();
  auto tx = co_await pc->async_begin();
  for (int i = 0; i < rows; ++i) {
    const std::string v = "value " + std::to_string(i);
    co_await pc->async_execute("INSERT INTO kv (k, v) VALUES (?, ?)", i, v);
  }
  co_await tx.async_commit();
}

asio::awaitable<void> worker(dqlite::pool& pool, clock_type::time_point end, int seed,
                             std::uint64_t& done) {
  std::uint32_t x = static_cast<std::uint32_t>(seed) * 2654435761u + 1;
  while (clock_type::now() < end) {
    x = x * 1664525u + 1013904223u;
    auto v = co_await pool.async_fetchval<std::string>("SELECT v FROM kv WHERE k = ?",
                                                       static_cast<std::int64_t>(x % rows));
    if (v.empty()) throw std::runtime_error("empty value");
    ++done;
  }
}

asio::awaitable<void> bench(std::string address, double seconds) {
  auto ex = co_await asio::this_coro::executor;
  const std::vector<std::string> addresses{address};
  dqlite::pool_options opts{.database = "bench", .min_size = 8, .max_size = 8};
  auto pool = co_await dqlite::async_create_pool(ex, addresses, opts);
  co_await prepare(pool);
  std::printf("point SELECT through a pool of 8 connections, %.1f s per run\n", seconds);
  std::printf("%8s %12s %14s\n", "workers", "queries", "queries/s");
  for (int workers : {1, 4, 8, 16}) {
    std::uint64_t done = 0;
    const auto start = clock_type::now();
    const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                                 std::chrono::duration<double>(seconds));
    int running = workers;
    std::exception_ptr failure;
    asio::steady_timer finished(ex, clock_type::time_point::max());
    for (int w = 0; w < workers; ++w)
      asio::co_spawn(ex, worker(pool, end, w + 1, done), [&](std::exception_ptr e) {
        if (e && !failure) failure = e;
        if (--running == 0) finished.cancel();
      });
    co_await finished.async_wait(asio::as_tuple(asio::use_awaitable));
    if (failure) std::rethrow_exception(failure);
    const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
    std::printf("%8d %12llu %14.0f\n", workers, static_cast<unsigned long long>(done),
                static_cast<double>(done) / secs);
  }
  co_await pool.async_close();
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  dqlite_test::node_process node(1);
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, bench(node.address(), seconds > 0 ? seconds : 2.0),
                 [&](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& x) {
                     std::fprintf(stderr, "error: %s\n", x.what());
                     status = 1;
                   }
                 });
  io.run();
  return status;
}
