// Streaming a large result through a cursor, in bounded memory; stopping early.
//
//   streaming 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <string>

namespace asio = boost::asio;

struct point {
  std::int64_t x;
  double y;
};

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "stream"});
  const std::string sql =
      "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 500000) "
      "SELECT x, x * 0.001 AS y FROM s";

  // Batches arrive as the server sends them (about 4 KiB of rows each).
  auto cursor = co_await conn.async_cursor<point>(sql);
  std::int64_t rows = 0, batches = 0;
  double sum = 0;
  for (;;) {
    auto batch = co_await cursor.async_next();
    if (batch.empty()) break;
    ++batches;
    for (auto& p : batch) {
      ++rows;
      sum += p.y;
    }
  }
  std::cout << rows << " rows in " << batches << " batches, sum " << sum << "\n";

  // Stop after the first batch: the query is interrupted and the connection stays usable.
  auto early = co_await conn.async_cursor(sql);  // dynamic rows
  auto first = co_await early.async_next();
  std::cout << "first batch: " << first.size() << " rows, first x = " << first[0]["x"].to_string()
            << "\n";
  co_await early.async_close();
  std::cout << "still usable: " << co_await conn.async_fetchval<std::int64_t>("SELECT 42") << "\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: streaming HOST:PORT\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(argv[1]), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "streaming failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
