// Prepared statements and executemany.
//
//   prepared 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;

struct reading {
  std::string sensor;
  double value;
};

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "sensors"});
  co_await conn.async_execute("DROP TABLE IF EXISTS reading");
  co_await conn.async_execute("CREATE TABLE reading (sensor TEXT, value REAL)");

  // One PREPARE, many EXECs; inside a transaction, all or nothing.
  std::vector<std::tuple<std::string, double>> batch;
  for (int i = 0; i < 1000; ++i) batch.emplace_back("s" + std::to_string(i % 4), i * 0.25);
  auto inserted = co_await dqlite::async_transaction(conn, [&](dqlite::connection& c) {
    return c.async_executemany("INSERT INTO reading VALUES (?, ?)", batch);
  });
  std::cout << inserted.rows_affected << " readings inserted\n";

  // A statement prepared once and run with new parameters.
  auto by_sensor = co_await conn.async_prepare(
      "SELECT sensor, value FROM reading WHERE sensor = ? ORDER BY value DESC LIMIT ?");
  std::cout << "the statement takes " << by_sensor.param_count() << " parameters\n";
  for (const char* s : {"s1", "s3"}) {
    auto top = co_await by_sensor.async_fetch<reading>(s, 2);
    for (auto& r : top) std::cout << r.sensor << " " << r.value << "\n";
  }
  auto max = co_await by_sensor.async_fetchval<std::string>("s2", 1);
  std::cout << "first column of the first row: " << max << "\n";
  co_await by_sensor.async_close();  // FINALIZE (also done if the statement is dropped)
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: prepared HOST:PORT\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(argv[1]), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "prepared failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
