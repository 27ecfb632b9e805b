// A program with a dqlite node inside: start it three times (three data directories, three
// addresses) and the three processes form one replicated cluster.
//
//   app /tmp/n1 127.0.0.1:9001                   # bootstraps the cluster
//   app /tmp/n2 127.0.0.1:9002 127.0.0.1:9001    # joins through the first node
//   app /tmp/n3 127.0.0.1:9003 127.0.0.1:9001
//
// Each process writes a greeting through the app's pool, waits until it reads the
// greetings of all three, waits until all three have read them, then hands its roles over
// and stops. Started again with the same data directory, a node keeps its id and address.
#include <dqlite/app.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;

struct greeting {
  std::int64_t node;
  std::string text;
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// Polls `sql` (a count) until it reaches `n`, for at most two minutes.
asio::awaitable<void> wait_for_count(dqlite::pool& pool, const char* sql, std::int64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (co_await pool.async_fetchval<std::int64_t>(sql) < n) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error(std::string("gave up waiting for: ") + sql);
    co_await sleep_for(200ms);
  }
}

asio::awaitable<void> run(dqlite::app& node) {
  co_await node.async_start();  // bootstrap, join, or restart: decided by the data directory
  co_await node.async_ready();  // a member, and a leader is known
  std::printf("node %llu at %s is ready\n", static_cast<unsigned long long>(node.id()),
              node.address().c_str());

  dqlite::pool pool = node.make_pool({.database = "example"});
  co_await pool.async_execute(
      "CREATE TABLE IF NOT EXISTS greeting (node INTEGER PRIMARY KEY, text TEXT NOT NULL)");
  co_await pool.async_execute("CREATE TABLE IF NOT EXISTS seen (node INTEGER PRIMARY KEY)");
  const auto id = static_cast<std::int64_t>(node.id() % (1ULL << 62));
  const std::string text = "hello from " + node.address();
  co_await pool.async_execute("INSERT OR REPLACE INTO greeting (node, text) VALUES (?, ?)", id, text);

  co_await wait_for_count(pool, "SELECT count(*) FROM greeting", 3);
  auto rows = co_await pool.async_fetch<greeting>("SELECT node, text FROM greeting ORDER BY text");
  std::printf("%zu greetings:\n", rows.size());
  for (const auto& g : rows) std::printf("  %s\n", g.text.c_str());

  // Leave only once every node has read them (a cluster of three needs two to write).
  co_await pool.async_execute("INSERT OR REPLACE INTO seen (node) VALUES (?)", id);
  co_await wait_for_count(pool, "SELECT count(*) FROM seen", 3);
  co_await pool.async_close();
  co_await node.async_handover();  // leadership and the voter role go to the others first
  std::printf("node %llu stopped\n", static_cast<unsigned long long>(node.id()));
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DATA_DIR HOST:PORT [JOIN_HOST:PORT...]\n", argv[0]);
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, also into a file
  asio::io_context io;
  dqlite::app_options opts;
  opts.address = argv[2];
  opts.cluster.assign(argv + 3, argv + argc);
  opts.network_latency = 20ms;  // a quick failover on one machine; keep the default on a network
  opts.handover_timeout = 10s;
  int status = 0;
  try {
    dqlite::app node(io.get_executor(), argv[1], opts);
    asio::co_spawn(io, run(node), [&](std::exception_ptr ep) {
      if (!ep) return;
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        status = 1;
      }
    });
    io.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return status;
}
