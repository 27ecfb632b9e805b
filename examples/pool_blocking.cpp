// Blocking pool: eight threads share a pool of connections to the leader, with no event
// loop and no coroutine in sight (the twin of pool.cpp).
//
//   pool_blocking 127.0.0.1:9001 [127.0.0.1:9002 ...]
#include <dqlite/client.hpp>

#include <cstdint>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct order {
  std::int64_t id;
  std::int64_t worker;
  double amount;
};

void worker(dqlite::blocking_pool& pool, int id) {
  for (int i = 0; i < 25; ++i) {
    // One statement on a borrowed connection.
    pool.execute("INSERT INTO orders (worker, amount) VALUES (?, ?)", id, 1.5 * i);
  }
  // Several statements in one transaction on a pooled connection, run again when that
  // is safe (busy, or a leader change before COMMIT was sent), as pool.cpp.
  pool.transaction([&](dqlite::connection& c) {
    c.execute("UPDATE orders SET amount = amount + 1 WHERE worker = ?", id);
  });
  // A connection of one's own for a while: back to the pool at the end of the scope.
  auto conn = pool.acquire();
  (void)conn->fetchval<std::int64_t>("SELECT count(*) FROM orders WHERE worker = ?", id);
}

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: pool_blocking HOST:PORT [HOST:PORT ...]\n";
    return 2;
  }
  std::vector<std::string> addresses(argv + 1, argv + argc);
  auto pool = dqlite::create_pool(addresses, {.database = "app", .min_size = 2, .max_size = 4});
  pool.execute(
      "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, worker INTEGER, amount REAL)");
  pool.execute("DELETE FROM orders");

  // Eight threads, at most four connections: the others wait their turn in acquire.
  std::mutex m;
  std::exception_ptr failure;
  std::vector<std::thread> threads;
  for (int w = 0; w < 8; ++w)
    threads.emplace_back([&, w] {
      try {
        worker(pool, w);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m);
        if (!failure) failure = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);

  auto count = pool.fetchval<std::int64_t>("SELECT count(*) FROM orders");
  auto biggest = pool.fetchone<order>(
      "SELECT id, worker, amount FROM orders ORDER BY amount DESC, id LIMIT 1");
  auto stats = pool.stats();
  std::cout << count << " orders from 8 threads\n";
  if (biggest) std::cout << "biggest: " << biggest->amount << " by worker " << biggest->worker << "\n";
  std::cout << "connections opened: " << stats.opened << " (max 4)\n";
  pool.close();
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
