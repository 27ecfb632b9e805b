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
// blocking), "blocking-prepared", or "hooks": the SQL-text query on three connections, one
// without hooks, one with a tracing hook that does nothing, one with a logging hook whose
// threshold filters every event; 15 rounds of COUNT queries each, interleaved (each
// connection first in turn), the best round of each is reported (with the median). The client CPU
// is this process's user + system time (getrusage) over the measured loop; the node runs
// in a child process and is not counted. benchmarks/syscalls.sh runs this program under
// strace to count system calls per query.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include "support/test_node.hpp"

#include <sys/resource.h>

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

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

struct figures {
  double wall = 0;
  double cpu = 0;
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
  for (long i = 0; i < count; ++i) {
    x = x * 1664525u + 1013904223u;
    auto v = co_await query(static_cast<std::int64_t>(x % rows));
    if (v.empty()) throw std::runtime_error("empty value");
  }
  figures f;
  f.cpu = cpu_seconds() - cpu0;
  f.wall = std::chrono::duration<double>(clock_type::now() - start).count();
  co_return f;
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

asio::awaitable<void> bench(std::string address, long count, std::string mode) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "bench"});
  co_await fill(conn);
  if (mode == "hooks") {
    co_await bench_hooks(address, count);
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

template <class Query>
figures measure_blocking(long count, Query query) {
  std::uint32_t x = 12345;
  const auto start = clock_type::now();
  const double cpu0 = cpu_seconds();
  for (long i = 0; i < count; ++i) {
    x = x * 1664525u + 1013904223u;
    auto v = query(static_cast<std::int64_t>(x % rows));
    if (v.empty()) throw std::runtime_error("empty value");
  }
  figures f;
  f.cpu = cpu_seconds() - cpu0;
  f.wall = std::chrono::duration<double>(clock_type::now() - start).count();
  return f;
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
                     mode != "blocking" && mode != "blocking-prepared" && mode != "hooks")) {
    std::fprintf(stderr,
                 "usage: point_query [COUNT] [all|sql|prepared|blocking|blocking-prepared|hooks]\n");
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
  if (status == 0 && mode != "sql" && mode != "prepared" && mode != "hooks") {
    try {
      bench_blocking(address, count, mode);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "error: %s\n", x.what());
      status = 1;
    }
  }
  return status;
}
