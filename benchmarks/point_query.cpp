// Point queries on one connection: client CPU per query and queries per second.
// Starts its own dqlite node (the dqlite-node program of the build tree, or
// $DQLITE_TEST_NODE_BINARY), fills a table of 1000 rows, then runs
// `SELECT v FROM kv WHERE k = ?` COUNT times with a random key: by SQL text and through a
// prepared statement, asynchronously (coroutines on an io_context) and with the blocking
// forms.
//
//   build/benchmarks/point_query [COUNT] [MODE]
//
// With DQLITE_ADDRESS set (e.g. 127.0.0.1:9001) it uses that node instead of starting one.
// COUNT defaults to 20000. MODE: "all" (default), "sql", "prepared", "blocking" (SQL text,
// blocking), "blocking-prepared", "hooks": the SQL-text query on three connections, one
// without hooks, one with a tracing hook that does nothing, one with a logging hook whose
// threshold filters every event; 15 rounds of COUNT queries each, interleaved (each
// connection first in turn), the best round of each is reported (with the median); or
// "compare": async and blocking side by side, SQL text and prepared, on two connections of
// one process, 15 interleaved rounds of COUNT queries each (each variant first in turn), the
// best round and the median of each, the user and system time of all rounds (getrusage,
// rough), and blocking / async. The client CPU
// is this process's CPU time (CLOCK_PROCESS_CPUTIME_ID) over the measured loop; the node runs
// in a child process and is not counted. benchmarks/syscalls.sh runs this program under
// strace to count system calls per query.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include "support/test_node.hpp"

#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string_view>
#include <vector>
#include <exception>
#include <optional>
#include <string>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int rows = 1000;

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

// This process's CPU time, exact (getrusage's user and system times are adjusted from
// tick samples, so that the difference of two readings a fraction of a second apart can be
// far off; their split is only used to show roughly where the time went).
double cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// getrusage's user and system time: where the CPU time roughly went.
std::pair<double, double> user_system_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return {seconds(u.ru_utime), seconds(u.ru_stime)};
}

struct figures {
  double wall = 0;
  double cpu = 0;
  double user = 0;  ///< getrusage's user time (rough)
  double sys = 0;   ///< getrusage's system time (rough)
};

void report(const char* what, long count, const figures& f) {
  std::printf("%-28s %9ld queries %10.0f q/s %8.2f us CPU/query\n", what, count,
              static_cast<double>(count) / f.wall, f.cpu * 1e6 / static_cast<double>(count));
}

asio::awaitable<void> fill(dqlite::connection& conn) {
  co_await conn.async_execute("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT)");
  co_await conn.async_execute("DELETE FROM kv");
  auto tx = co_await conn.async_begin();
  for (int i = 0; i < rows; ++i)
    co_await conn.async_execute("INSERT INTO kv (k, v) VALUES (?, ?)", i,
                                "value " + std::to_string(i));
  co_await tx.async_commit();
}

template <class Query>
asio::awaitable<figures> measure(long count, Query query) {
  std::uint32_t x = 12345;
  const auto start = clock_type::now();
  const double cpu0 = cpu_seconds();
  const auto [user0, sys0] = user_system_seconds();
  for (long i = 0; i < count; ++i) {
    x = x * 1664525u + 1013904223u;
    auto v = co_await query(static_cast<std::int64_t>(x % rows));
    if (v.empty()) throw std::runtime_error("empty value");
  }
  figures f;
  f.cpu = cpu_seconds() - cpu0;
  const auto [user1, sys1] = user_system_seconds();
  f.user = user1 - user0;
  f.sys = sys1 - sys0;
  f.wall = std::chrono::duration<double>(clock_type::now() - start).count();
  co_return f;
}

template <class Query>
figures measure_blocking(long count, Query query) {
  std::uint32_t x = 12345;
  const auto start = clock_type::now();
  const double cpu0 = cpu_seconds();
  const auto [user0, sys0] = user_system_seconds();
  for (long i = 0; i < count; ++i) {
    x = x * 1664525u + 1013904223u;
    auto v = query(static_cast<std::int64_t>(x % rows));
    if (v.empty()) throw std::runtime_error("empty value");
  }
  figures f;
  f.cpu = cpu_seconds() - cpu0;
  const auto [user1, sys1] = user_system_seconds();
  f.user = user1 - user0;
  f.sys = sys1 - sys0;
  f.wall = std::chrono::duration<double>(clock_type::now() - start).count();
  return f;
}

void noop_trace(const dqlite::request_trace&) noexcept {}
void noop_log(dqlite::log_level, std::string_view, std::string_view) noexcept {}

asio::awaitable<void> bench_hooks(std::string address, long count) {
  auto ex = co_await asio::this_coro::executor;
  dqlite::connection_options plain{.database = "bench"};
  dqlite::connection_options traced = plain;
  traced.trace = noop_trace;
  dqlite::connection_options logged = plain;
  logged.log = noop_log;
  logged.log_threshold = dqlite::log_level::off;
  const char* names[3] = {"no hook", "no-op tracing hook", "logging hook, all filtered"};
  std::vector<dqlite::connection> conns;
  for (const auto* o : {&plain, &traced, &logged})
    conns.push_back(co_await dqlite::async_connect(ex, address, *o));
  constexpr int rounds = 15;
  std::vector<std::vector<double>> cpu(3);
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t j = 0; j < 3; ++j) {
      const std::size_t i = (j + static_cast<std::size_t>(round)) % 3;  // each goes first in turn
      auto& conn = conns[i];
      auto f = co_await measure(count, [&](std::int64_t k) {
        return conn.async_fetchval<std::string>("SELECT v FROM kv WHERE k = ?", k);
      });
      cpu[i].push_back(f.cpu * 1e6 / static_cast<double>(count));
    }
  }
  double base = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    std::sort(cpu[i].begin(), cpu[i].end());
    if (i == 0) base = cpu[i].front();
    std::printf("%-28s %8.3f us CPU/query (best of %d rounds; median %.3f) %+6.2f%%\n", names[i],
                cpu[i].front(), rounds, cpu[i][rounds / 2], (cpu[i].front() / base - 1) * 100);
  }
}

// Async and blocking side by side: see the file comment.
asio::awaitable<void> bench_compare(std::string address, long count) {
  auto ex = co_await asio::this_coro::executor;
  auto aconn = co_await dqlite::async_connect(ex, address, {.database = "bench"});
  auto bconn = dqlite::connect(address, {.database = "bench"});
  auto astmt = co_await aconn.async_prepare("SELECT v FROM kv WHERE k = ?");
  auto bstmt = bconn.prepare("SELECT v FROM kv WHERE k = ?");
  const char* names[4] = {"SQL text, async", "SQL text, blocking", "prepared, async",
                          "prepared, blocking"};
  constexpr int rounds = 15;
  std::vector<std::vector<figures>> got(4);
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t j = 0; j < 4; ++j) {
      const std::size_t i = (j + static_cast<std::size_t>(round)) % 4;  // each goes first in turn
      figures f;
      // The blocking calls run inside this coroutine: its io_context has nothing else to do
      // meanwhile (the async connection is idle), so they only block this thread.
      switch (i) {
        case 0:
          f = co_await measure(count, [&](std::int64_t k) {
            return aconn.async_fetchval<std::string>("SELECT v FROM kv WHERE k = ?", k);
          });
          break;
        case 1:
          f = measure_blocking(count, [&](std::int64_t k) {
            return bconn.fetchval<std::string>("SELECT v FROM kv WHERE k = ?", k);
          });
          break;
        case 2:
          f = co_await measure(count, [&](std::int64_t k) {
            return astmt.async_fetchval<std::string>(k);
          });
          break;
        default:
          f = measure_blocking(count, [&](std::int64_t k) { return bstmt.fetchval<std::string>(k); });
          break;
      }
      got[i].push_back(f);
    }
  }
  const double n = static_cast<double>(count);
  auto per_query = [&](double s) { return s * 1e6 / n; };
  double best[4], median[4];
  std::printf("%-20s %8s %8s %8s %8s   (us CPU/query, %d rounds of %ld queries)\n", "", "best",
              "median", "user", "system", rounds, count);
  for (std::size_t i = 0; i < 4; ++i) {
    std::vector<double> cpu;
    double user = 0, sys = 0;
    for (const auto& f : got[i]) {
      cpu.push_back(per_query(f.cpu));
      user += f.user;
      sys += f.sys;
    }
    std::sort(cpu.begin(), cpu.end());
    best[i] = cpu.front();
    median[i] = cpu[rounds / 2];
    std::printf("%-20s %8.2f %8.2f %8.2f %8.2f\n", names[i], best[i], median[i],
                per_query(user) / rounds, per_query(sys) / rounds);
  }
  std::printf("blocking / async, SQL text: best %.3f, median %.3f\n", best[1] / best[0],
              median[1] / median[0]);
  std::printf("blocking / async, prepared: best %.3f, median %.3f\n", best[3] / best[2],
              median[3] / median[2]);
  bstmt.close();
  co_await astmt.async_close();
}

asio::awaitable<void> bench(std::string address, long count, std::string mode) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "bench"});
  co_await fill(conn);
  if (mode == "hooks") {
    co_await bench_hooks(address, count);
    co_return;
  }
  if (mode == "compare") {
    co_await bench_compare(address, count);
    co_return;
  }
  if (mode == "all" || mode == "sql") {
    auto f = co_await measure(count, [&](std::int64_t k) {
      return conn.async_fetchval<std::string>("SELECT v FROM kv WHERE k = ?", k);
    });
    report("point SELECT (SQL text)", count, f);
  }
  if (mode == "all" || mode == "prepared") {
    auto stmt = co_await conn.async_prepare("SELECT v FROM kv WHERE k = ?");
    auto f = co_await measure(count, [&](std::int64_t k) {
      return stmt.async_fetchval<std::string>(k);
    });
    report("point SELECT (prepared)", count, f);
    co_await stmt.async_close();
  }
}

void bench_blocking(const std::string& address, long count, const std::string& mode) {
  auto conn = dqlite::connect(address, {.database = "bench"});
  if (conn.fetchval<std::int64_t>("SELECT count(*) FROM sqlite_master WHERE name = 'kv'") == 0)
    throw std::runtime_error("the kv table is missing");
  if (mode == "all" || mode == "blocking") {
    auto f = measure_blocking(count, [&](std::int64_t k) {
      return conn.fetchval<std::string>("SELECT v FROM kv WHERE k = ?", k);
    });
    report("point SELECT (SQL, blocking)", count, f);
  }
  if (mode == "all" || mode == "blocking-prepared") {
    auto stmt = conn.prepare("SELECT v FROM kv WHERE k = ?");
    auto f = measure_blocking(count, [&](std::int64_t k) { return stmt.fetchval<std::string>(k); });
    report("point SELECT (prep., blocking)", count, f);
    stmt.close();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long count = argc > 1 ? std::atol(argv[1]) : 20000;
  const std::string mode = argc > 2 ? argv[2] : "all";
  if (count <= 0 || (mode != "all" && mode != "sql" && mode != "prepared" &&
                     mode != "blocking" && mode != "blocking-prepared" && mode != "hooks" &&
                     mode != "compare")) {
    std::fprintf(stderr,
                 "usage: point_query [COUNT] "
                 "[all|sql|prepared|blocking|blocking-prepared|hooks|compare]\n");
    return 2;
  }
  std::string address;
  std::optional<dqlite_test::node_process> node;
  if (const char* a = std::getenv("DQLITE_ADDRESS"); a && *a) {
    address = a;
  } else {
    node.emplace(1);
    address = node->address();
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, bench(address, count, mode), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "error: %s\n", x.what());
      status = 1;
    }
  });
  io.run();
  if (status == 0 && mode != "sql" && mode != "prepared" && mode != "hooks" &&
      mode != "compare") {
    try {
      bench_blocking(address, count, mode);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "error: %s\n", x.what());
      status = 1;
    }
  }
  return status;
}
