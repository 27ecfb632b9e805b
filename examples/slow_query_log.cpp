// Observability: a tracing hook that writes a slow-query log and keeps a latency
// histogram per statement, and a logging hook that prints the connection's events.
//
//   slow_query_log 127.0.0.1:9001 [SLOW_MS]
//
// Every request is traced twice (start, end); the end carries the duration, the rows and
// bytes received and the error. Statements slower than SLOW_MS (default 20) are logged
// with their SQL text, parameter count and node.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <string_view>

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// Latency buckets of one statement, in microseconds: < 100, < 1000, < 10000, < 100000,
/// and above.
struct histogram {
  static constexpr std::array<long, 4> bounds_us{100, 1'000, 10'000, 100'000};
  std::array<long, bounds_us.size() + 1> buckets{};
  long count = 0;
  std::chrono::nanoseconds total{0};
  std::chrono::nanoseconds max{0};

  void add(std::chrono::nanoseconds d) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    std::size_t i = 0;
    while (i < bounds_us.size() && us >= bounds_us[i]) ++i;
    ++buckets[i];
    ++count;
    total += d;
    if (d > max) max = d;
  }
};

/// The tracing hook: it must outlive the connection (the options refer to it).
struct query_observer {
  std::chrono::milliseconds slow;
  std::map<std::string, histogram> per_statement;
  long slow_queries = 0;

  void operator()(const dqlite::request_trace& t) noexcept {
    if (t.at != dqlite::request_trace::phase::end) return;
    std::string key = !t.sql.empty() ? std::string(t.sql)
                      : t.statement_id != 0
                          ? std::string(t.request) + " #" + std::to_string(t.statement_id)
                          : std::string(t.request);
    per_statement[key].add(t.duration);
    if (t.duration >= slow) {
      ++slow_queries;
      std::printf(
          "slow query: %.1f ms on %.*s, %zu parameter(s), %llu row(s), %llu bytes in%s%s: %s\n",
          std::chrono::duration<double, std::milli>(t.duration).count(),
          static_cast<int>(t.node.size()), t.node.data(), t.parameters,
          static_cast<unsigned long long>(t.rows),
          static_cast<unsigned long long>(t.bytes_received), t.error ? ", failed: " : "",
          t.error ? t.error.message().c_str() : "", key.c_str());
    }
  }

  void print() const {
    std::printf("%-60s %6s %9s %9s   <0.1ms <1ms <10ms <100ms more\n", "statement", "count",
                "mean ms", "max ms");
    for (const auto& [sql, h] : per_statement) {
      std::string shown = sql.size() > 60 ? sql.substr(0, 57) + "..." : sql;
      std::printf("%-60s %6ld %9.3f %9.3f  ", shown.c_str(), h.count,
                  std::chrono::duration<double, std::milli>(h.total).count() /
                      static_cast<double>(h.count),
                  std::chrono::duration<double, std::milli>(h.max).count());
      for (long b : h.buckets) std::printf(" %5ld", b);
      std::printf("\n");
    }
  }
};

/// The logging hook: a plain function.
void print_event(dqlite::log_level level, std::string_view event,
                 std::string_view message) noexcept {
  std::printf("[%s] %.*s: %.*s\n", dqlite::to_string(level).data(), static_cast<int>(event.size()),
              event.data(), static_cast<int>(message.size()), message.data());
}

asio::awaitable<void> run(std::string address, query_observer& observer) {
  auto ex = co_await asio::this_coro::executor;
  dqlite::connection_options opts;
  opts.database = "observed";
  opts.trace = observer;
  opts.log = print_event;
  opts.log_threshold = dqlite::log_level::debug;
  auto conn = co_await dqlite::async_connect(ex, address, opts);

  co_await conn.async_execute(
      "CREATE TABLE IF NOT EXISTS reading (id INTEGER PRIMARY KEY, v REAL)");
  co_await conn.async_execute("DELETE FROM reading");
  auto insert = co_await conn.async_prepare("INSERT INTO reading (v) VALUES (?)");
  for (int i = 0; i < 200; ++i) co_await insert.async_execute(i * 0.5);
  co_await insert.async_close();
  for (int i = 0; i < 50; ++i)
    co_await conn.async_fetchval<double>("SELECT v FROM reading WHERE id = ?", 1 + i);
  auto total = co_await conn.async_fetchval<double>("SELECT sum(v) FROM reading");
  std::printf("sum: %.1f\n", total);
  // A deliberately slow query (a long recursive count): it lands in the slow-query log.
  auto n = co_await conn.async_fetchval<std::int64_t>(
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000) "
      "SELECT count(*) FROM c");
  std::printf("counted to %lld\n", static_cast<long long>(n));
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: slow_query_log HOST:PORT [SLOW_MS]\n";
    return 2;
  }
  query_observer observer{std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 20), {}, 0};
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(argv[1], observer), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "error: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  observer.print();
  std::printf("slow queries logged: %ld\n", observer.slow_queries);
  return status;
}
