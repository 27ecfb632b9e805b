// Quickstart: connect to a dqlite node, create a table, insert rows, read them back.
//
//   quickstart 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> quickstart(std::string address) {
  auto ex = co_await asio::this_coro::executor;

  // Connect and open the database "app" (created on first use).
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "app"});

  co_await conn.async_execute(
      "CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT, score REAL)");
  co_await conn.async_execute("DELETE FROM item");

  // Parameters follow the SQL text.
  auto res = co_await conn.async_execute("INSERT INTO item (name, score) VALUES (?, ?)", "apple", 1.5);
  std::cout << "inserted row " << res.last_insert_id << "\n";
  co_await conn.async_execute("INSERT INTO item (name, score) VALUES (?, ?)", "pear", std::nullopt);

  // Dynamic rows: values by column name or index.
  auto rows = co_await conn.async_fetchall("SELECT id, name, score FROM item ORDER BY id");
  for (const auto& row : rows)
    std::cout << row["id"].to_string() << " | " << row["name"].to_string() << " | "
              << row["score"].to_string() << "\n";

  // A single value.
  auto count = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM item");
  std::cout << count << " rows\n";

  // Errors carry the server's message.
  try {
    co_await conn.async_execute("INSERT INTO missing_table VALUES (1)");
  } catch (const dqlite::error& e) {
    std::cout << "expected error: " << e.what() << "\n";
  }
  conn.close();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: quickstart HOST:PORT\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, quickstart(argv[1]), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "quickstart failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
