// Peak memory of reading a 1 000 000-row result through a cursor, against fetching it
// whole. Starts its own dqlite node (the dqlite-node program of the build tree, or
// $DQLITE_TEST_NODE_BINARY) and prints the peak resident set size of each way, each measured in
// a fresh child process.
//
//   build/benchmarks/cursor_memory [ROWS]
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;

namespace {

struct row_t {
  std::int64_t x;
  std::string label;
  double score;
};

long peak_rss_kib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

std::string query(long n) {
  return "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < " +
         std::to_string(n) + ") SELECT x, 'label number ' || x AS label, x * 0.5 AS score FROM s";
}

// Runs one way of reading in this process; returns rows read.
long read_rows(const std::string& address, long n, bool cursor) {
  asio::io_context io;
  long rows = 0;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(io.get_executor(), address, {.database = "bench"});
    if (cursor) {
      auto cur = co_await conn.async_cursor<row_t>(query(n));
      for (;;) {
        auto batch = co_await cur.async_next();
        if (batch.empty()) break;
        rows += static_cast<long>(batch.size());
      }
    } else {
      auto all = co_await conn.async_fetch<row_t>(query(n));
      rows = static_cast<long>(all.size());
    }
  }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  io.run();
  return rows;
}

void measure(const std::string& address, long n, bool cursor) {
  std::fflush(stdout);
  pid_t child = ::fork();
  if (child == 0) {
    long before = peak_rss_kib();
    auto start = std::chrono::steady_clock::now();
    long rows = read_rows(address, n, cursor);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%-22s %8ld rows  peak RSS %7.1f MiB (%.1f MiB before the query)  %.2f s  %.0f rows/s\n",
                cursor ? "cursor<T> batches:" : "fetch<T> whole result:", rows,
                peak_rss_kib() / 1024.0, before / 1024.0, secs, rows / secs);
    std::fflush(stdout);
    ::_exit(rows == n ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::printf("  (failed)\n");
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::stol(argv[1]) : 1'000'000;
  dqlite_test::node_process node(1);
  std::printf("reading %ld rows of (INTEGER, TEXT, FLOAT) from a local node\n", n);
  measure(node.address(), n, true);
  measure(node.address(), n, false);
}
