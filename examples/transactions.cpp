// Transactions: a scoped transaction that commits or rolls back by itself, an explicit
// one, and how to tell a failed commit from one whose outcome is unknown.
//
//   transactions 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> transfer(dqlite::connection& conn, std::int64_t from, std::int64_t to,
                               std::int64_t amount) {
  // Commits when the body returns; rolls back (and rethrows) when it throws.
  co_await dqlite::async_transaction(conn, [&](dqlite::connection& c) -> asio::awaitable<void> {
    co_await c.async_execute("UPDATE account SET balance = balance - ? WHERE id = ?", amount, from);
    auto left = co_await c.async_fetchval<std::int64_t>("SELECT balance FROM account WHERE id = ?", from);
    if (left < 0) throw std::runtime_error("insufficient funds");
    co_await c.async_execute("UPDATE account SET balance = balance + ? WHERE id = ?", amount, to);
  });
}

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "bank"});
  co_await conn.async_execute("DROP TABLE IF EXISTS account");
  co_await conn.async_execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER)");
  co_await conn.async_execute("INSERT INTO account VALUES (1, 100), (2, 0)");

  co_await transfer(conn, 1, 2, 30);
  try {
    co_await transfer(conn, 1, 2, 500);
  } catch (const std::runtime_error& e) {
    std::cout << "transfer refused: " << e.what() << " (rolled back)\n";
  }

  // An explicit transaction object. Dropping it without commit rolls it back before the
  // connection's next request.
  auto tx = co_await conn.async_begin();
  co_await conn.async_execute("INSERT INTO account VALUES (3, 7)");
  try {
    co_await tx.async_commit();
  } catch (const dqlite::error& e) {
    if (dqlite::is_outcome_unknown(e.code()))
      std::cout << "the commit may or may not have happened: check before retrying\n";
    else
      std::cout << "the commit failed: " << e.what() << "\n";
    throw;
  }

  for (auto& row : co_await conn.async_fetchall("SELECT id, balance FROM account ORDER BY id"))
    std::cout << "account " << row["id"].to_string() << ": " << row["balance"].to_string() << "\n";
  auto total = co_await conn.async_fetchval<std::int64_t>("SELECT sum(balance) FROM account");
  std::cout << "total " << total << "\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: transactions HOST:PORT\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(argv[1]), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "transactions failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
