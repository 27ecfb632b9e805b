// The C++ half of the comparison with go-dqlite: runs one workload against a running
// dqlite node and prints one line of figures, in the same format and with the same
// workloads as benchmarks/go_compare/main.go (database/sql with the go-dqlite driver).
// benchmarks/compare_go.sh starts a node, runs `setup` once, then both programs in turn.
//
//   build/benchmarks/compare_client --address 127.0.0.1:9001 --workload point
//                                   [--seconds 5 | --ops N] [--database bench]
//                                   [--threads N] [--checkout]
//
// Workloads:
//   setup     (re)creates the tables: kv (k INTEGER PRIMARY KEY, v TEXT) with 1000 rows and
//             bulk (id, name, value, count) with 100000 rows; measures nothing
//   point     SELECT v FROM kv WHERE k = ? with a random key, by SQL text, one connection
//   prepared  the same through a statement prepared once
//   bulk      SELECT id, name, value, count FROM bulk read with fetch<bulk_row> into a
//             std::vector of structs; one op is one whole result
//   pool8     8 coroutine workers doing point SELECTs through a dqlite::pool with
//             max_size 8, with the pool's one-statement call async_fetchval (with
//             --checkout: async_acquire, then async_fetchval on the checked-out connection)
//
// --threads N runs the io_context on N threads (pool8 only: a connection serves one
// operation at a time, so more threads cannot help the single-connection workloads).
//
// Output:
//   client=cpp workload=point threads=1 ops=123456 elapsed_s=5.000012 cpu_s=1.230000
// cpu_s is this process's user + system time (getrusage, all threads) over the measured
// part only. Connections are opened, and a first query run, before the clock starts.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int kv_rows = 1000;
constexpr int bulk_rows = 100000;
constexpr int pool_size = 8;
constexpr const char* point_sql = "SELECT v FROM kv WHERE k = ?";
constexpr const char* bulk_sql = "SELECT id, name, value, count FROM bulk";

// One row of the bulk table; columns are matched to the fields by name.
struct bulk_row {
  std::int64_t id;
  std::string name;
  double value;
  std::int64_t count;
};

struct settings {
  std::string address;
  std::string workload;
  std::string database = "bench";
  double seconds = 5;
  long long ops = 0;  // > 0: run this many operations instead of `seconds`
  int threads = 1;
  bool checkout = false;
};

// Pseudo-random keys of kv. The generator and its constants are the same as in the Go
// twin, so both ask for the same sequence of rows.
struct keys {
  std::uint32_t x;
  explicit keys(int worker) : x(static_cast<std::uint32_t>(worker) * 2654435761u + 1) {}
  std::int64_t next() {
    x = x * 1664525u + 1013904223u;
    return static_cast<std::int64_t>(x % kv_rows);
  }
};

// When a run is over: at a deadline, or after a number of operations shared by all
// workers (which may run on several threads).
struct budget {
  clock_type::time_point deadline;
  long long ops = 0;
  std::atomic<long long> claimed{0};

  bool take() {
    if (ops > 0) return claimed.fetch_add(1, std::memory_order_relaxed) < ops;
    return clock_type::now() < deadline;
  }
};

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

struct figures {
  long long ops = 0;
  double elapsed = 0;
  double cpu = 0;
};

void check_value(const std::string& v, std::int64_t k) {
  if (v.empty()) throw std::runtime_error("empty value for key " + std::to_string(k));
}

void check_bulk(const std::vector<bulk_row>& rows) {
  if (rows.size() != bulk_rows)
    throw std::runtime_error("bulk query: " + std::to_string(rows.size()) + " rows instead of " +
                             std::to_string(bulk_rows));
}

asio::awaitable<void> setup(const settings& s) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, s.address, {.database = s.database});
  // One INSERT ... SELECT per table: a single statement (and a single Raft entry) is far
  // quicker than 100000 round trips, and the rows are the same every time.
  co_await conn.async_execute("DROP TABLE IF EXISTS kv");
  co_await conn.async_execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  co_await conn.async_execute(
      "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
      "INSERT INTO kv (k, v) SELECT i, 'value ' || i FROM n",
      kv_rows - 1);
  co_await conn.async_execute("DROP TABLE IF EXISTS bulk");
  co_await conn.async_execute(
      "CREATE TABLE bulk (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL, "
      "count INTEGER NOT NULL)");
  co_await conn.async_execute(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
      "INSERT INTO bulk (id, name, value, count) SELECT i, 'name ' || i, i * 0.5, i % 1000 FROM n",
      bulk_rows);
  const auto kv = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM kv");
  const auto bulk = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM bulk");
  if (kv != kv_rows || bulk != bulk_rows) throw std::runtime_error("setup: wrong row counts");
  std::printf("setup: kv %lld rows, bulk %lld rows in database '%s'\n", static_cast<long long>(kv),
              static_cast<long long>(bulk), s.database.c_str());
}

// Runs `workers` copies of body(worker, budget) (an awaitable yielding its op count) and
// measures them. One worker runs inline; several are spawned (each on a strand of its own
// when several threads run the io_context) and report back to the calling coroutine's
// executor (then a strand too), which therefore needs no lock.
template <class Body>
asio::awaitable<figures> measure(const settings& s, asio::io_context& io, int workers, Body body) {
  auto ex = co_await asio::this_coro::executor;
  budget b;
  b.ops = s.ops;
  figures f;
  const double cpu0 = cpu_seconds();
  const auto start = clock_type::now();
  b.deadline = start + std::chrono::duration_cast<clock_type::duration>(
                           std::chrono::duration<double>(s.seconds));
  if (workers == 1) {
    f.ops = co_await body(1, b);
  } else {
    int running = workers;
    std::exception_ptr failure;
    asio::steady_timer all_done(ex, clock_type::time_point::max());
    for (int w = 1; w <= workers; ++w)
      asio::co_spawn(s.threads > 1 ? asio::any_io_executor(asio::make_strand(io))
                                   : asio::any_io_executor(io.get_executor()),
                     body(w, b), asio::bind_executor(ex, [&](std::exception_ptr e, long long n) {
                       if (e && !failure) failure = e;
                       f.ops += n;
                       if (--running == 0) all_done.cancel();
                     }));
    co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (failure) std::rethrow_exception(failure);
  }
  f.elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  f.cpu = cpu_seconds() - cpu0;
  co_return f;
}

asio::awaitable<figures> run_point(const settings& s, asio::io_context& io) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, s.address, {.database = s.database});
  check_value(co_await conn.async_fetchval<std::string>(point_sql, 0), 0);
  co_return co_await measure(s, io, 1, [&](int worker, budget& b) -> asio::awaitable<long long> {
    keys ks(worker);
    long long n = 0;
    while (b.take()) {
      const auto k = ks.next();
      check_value(co_await conn.async_fetchval<std::string>(point_sql, k), k);
      ++n;
    }
    co_return n;
  });
}

asio::awaitable<figures> run_prepared(const settings& s, asio::io_context& io) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, s.address, {.database = s.database});
  auto stmt = co_await conn.async_prepare(point_sql);
  check_value(co_await stmt.async_fetchval<std::string>(0), 0);
  auto f = co_await measure(s, io, 1, [&](int worker, budget& b) -> asio::awaitable<long long> {
    keys ks(worker);
    long long n = 0;
    while (b.take()) {
      const auto k = ks.next();
      check_value(co_await stmt.async_fetchval<std::string>(k), k);
      ++n;
    }
    co_return n;
  });
  co_await stmt.async_close();
  co_return f;
}

asio::awaitable<figures> run_bulk(const settings& s, asio::io_context& io) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, s.address, {.database = s.database});
  check_bulk(co_await conn.async_fetch<bulk_row>(bulk_sql));
  co_return co_await measure(s, io, 1, [&](int, budget& b) -> asio::awaitable<long long> {
    long long n = 0;
    while (b.take()) {
      // A fresh vector per result, as the Go side scans into a fresh slice.
      check_bulk(co_await conn.async_fetch<bulk_row>(bulk_sql));
      ++n;
    }
    co_return n;
  });
}

asio::awaitable<figures> run_pool8(const settings& s, asio::io_context& io) {
  auto ex = co_await asio::this_coro::executor;
  const std::vector<std::string> addresses{s.address};
  // min_size opens all the connections before the clock starts.
  auto pool = co_await dqlite::async_create_pool(
      ex, addresses, {.database = s.database, .min_size = pool_size, .max_size = pool_size});
  auto query = [&pool, checkout = s.checkout](std::int64_t k) -> asio::awaitable<std::string> {
    if (!checkout) co_return co_await pool.async_fetchval<std::string>(point_sql, k);
    auto pc = co_await pool.async_acquire();
    co_return co_await pc->async_fetchval<std::string>(point_sql, k);
  };
  for (int i = 0; i < pool_size; ++i) check_value(co_await query(i), i);
  auto f =
      co_await measure(s, io, pool_size, [&](int worker, budget& b) -> asio::awaitable<long long> {
        keys ks(worker);
        long long n = 0;
        while (b.take()) {
          const auto k = ks.next();
          check_value(co_await query(k), k);
          ++n;
        }
        co_return n;
      });
  co_await pool.async_close();
  co_return f;
}

[[noreturn]] void usage(const char* why) {
  if (why) std::fprintf(stderr, "compare_client: %s\n", why);
  std::fprintf(
      stderr,
      "usage: compare_client --address HOST:PORT --workload setup|point|prepared|bulk|pool8\n"
      "                      [--seconds S | --ops N] [--database NAME] [--threads N] "
      "[--checkout]\n");
  std::exit(2);
}

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    // Accept the Go flag package's single-dash spelling too.
    if (arg.rfind("--", 0) != 0 && arg.rfind("-", 0) == 0) arg = "-" + arg;
    if (arg == "--checkout") {
      s.checkout = true;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
    const char* v = argv[++i];
    if (arg == "--address")
      s.address = v;
    else if (arg == "--workload")
      s.workload = v;
    else if (arg == "--database")
      s.database = v;
    else if (arg == "--seconds")
      s.seconds = std::atof(v);
    else if (arg == "--ops")
      s.ops = std::atoll(v);
    else if (arg == "--threads")
      s.threads = std::atoi(v);
    else
      usage(("unknown option " + arg).c_str());
  }
  if (s.address.empty() || s.workload.empty()) usage("--address and --workload are required");
  if (s.seconds <= 0 || s.ops < 0 || s.threads < 1) usage("bad --seconds, --ops or --threads");
  if (s.workload != "setup" && s.workload != "point" && s.workload != "prepared" &&
      s.workload != "bulk" && s.workload != "pool8")
    usage(("unknown workload " + s.workload).c_str());
  if (s.threads > 1 && s.workload != "pool8") usage("--threads applies to pool8 only");
  if (s.checkout && s.workload != "pool8") usage("--checkout applies to pool8 only");
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const settings s = parse(argc, argv);
  asio::io_context io(s.threads);
  std::optional<figures> result;
  int status = 0;
  auto body = [&]() -> asio::awaitable<void> {
    if (s.workload == "setup")
      co_await setup(s);
    else if (s.workload == "point")
      result = co_await run_point(s, io);
    else if (s.workload == "prepared")
      result = co_await run_prepared(s, io);
    else if (s.workload == "bulk")
      result = co_await run_bulk(s, io);
    else
      result = co_await run_pool8(s, io);
  };
  // With several threads everything not owned by a worker or by the pool runs on one
  // strand; with one thread a strand would only add work.
  const asio::any_io_executor ex =
      s.threads > 1 ? asio::any_io_executor(asio::make_strand(io)) : io.get_executor();
  asio::co_spawn(ex, body, [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "compare_client: %s: %s\n", s.workload.c_str(), x.what());
      status = 1;
    }
  });
  std::vector<std::thread> extra;
  for (int t = 1; t < s.threads; ++t) extra.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : extra) t.join();
  if (result)
    std::printf("client=cpp workload=%s threads=%d ops=%lld elapsed_s=%.6f cpu_s=%.6f\n",
                s.workload.c_str(), s.threads, result->ops, result->elapsed, result->cpu);
  return status;
}
