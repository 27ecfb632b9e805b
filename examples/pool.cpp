// Pool: several workers share a pool of connections to the leader.
//
//   pool 127.0.0.1:9001 [127.0.0.1:9002 ...]
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

struct order {
  std::int64_t id;
  std::int64_t worker;
  double amount;
};

asio::awaitable<void> worker(dqlite::pool& pool, int id) {
  for (int i = 0; i < 25; ++i) {
    // One statement on a borrowed connection.
    co_await pool.async_execute("INSERT INTO orders (worker, amount) VALUES (?, ?)", id, 1.5 * i);
  }
  // Several statements in one transaction on a pooled connection. A transaction refused
  // as busy (another connection is writing), or lost with a leader change before its
  // COMMIT was sent, is run again (up to transaction_retry::max_attempts); one whose
  // outcome is unknown never is.
  co_await pool.async_transaction([&](dqlite::connection& c) -> asio::awaitable<void> {
    co_await c.async_execute("UPDATE orders SET amount = amount + 1 WHERE worker = ?", id);
  });
}

asio::awaitable<void> run(std::vector<std::string> addresses) {
  auto ex = co_await asio::this_coro::executor;
  dqlite::pool_options opts{.database = "app", .min_size = 2, .max_size = 4};
  auto pool = co_await dqlite::async_create_pool(ex, addresses, opts);

  co_await pool.async_execute(
      "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, worker INTEGER, amount REAL)");
  co_await pool.async_execute("DELETE FROM orders");

  // Eight workers, at most four connections: the others wait their turn.
  int running = 8;
  std::exception_ptr failure;
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (int w = 0; w < 8; ++w)
    asio::co_spawn(ex, worker(pool, w), [&](std::exception_ptr e) {
      if (e && !failure) failure = e;
      if (--running == 0) all_done.cancel();
    });
  co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
  if (failure) std::rethrow_exception(failure);

  auto count = co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM orders");
  auto biggest = co_await pool.async_fetchone<order>(
      "SELECT id, worker, amount FROM orders ORDER BY amount DESC, id LIMIT 1");
  auto stats = pool.stats();
  std::cout << count << " orders from 8 workers\n";
  if (biggest) std::cout << "biggest: " << biggest->amount << " by worker " << biggest->worker << "\n";
  std::cout << "connections opened: " << stats.opened << " (max 4)\n";
  co_await pool.async_close();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: pool HOST:PORT [HOST:PORT ...]\n";
    return 2;
  }
  std::vector<std::string> addresses(argv + 1, argv + argc);
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(addresses), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "error: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
