// A unit using every part of the API: connection, prepared statement, cursor,
// transaction, blocking calls, the cluster client and the pool.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;

struct item {
  std::int64_t id;
  std::string name;
  std::optional<double> price;
};

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "app"});
  co_await conn.async_execute("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT, price REAL)");
  auto items = co_await conn.async_fetch<item>("SELECT id, name, price FROM item WHERE id > ?", 10);
  auto one = co_await conn.async_fetchone<item>("SELECT id, name, price FROM item LIMIT 1");
  auto n = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM item");
  auto all = co_await conn.async_fetchall("SELECT * FROM item");
  auto stmt = co_await conn.async_prepare("INSERT INTO item (name, price) VALUES (?, ?)");
  co_await stmt.async_execute("pen", 1.5);
  auto cur = co_await conn.async_cursor<item>("SELECT id, name, price FROM item");
  for (auto batch = co_await cur.async_next(); !batch.empty(); batch = co_await cur.async_next())
    std::printf("%zu\n", batch.size());
  co_await dqlite::async_transaction(conn, [](auto& c) -> asio::awaitable<void> {
    co_await c.async_execute("DELETE FROM item WHERE price IS NULL");
  });
  auto cluster = std::make_shared<dqlite::cluster>(ex, std::vector<std::string>{address});
  auto leader = co_await cluster->async_leader();
  dqlite::pool pool(ex, std::vector<std::string>{address}, {.database = "app", .max_size = 4});
  auto pooled = co_await pool.async_fetch<item>("SELECT id, name, price FROM item");
  co_await pool.async_close();
  std::printf("%zu %d %lld %zu %zu %s\n", items.size(), one.has_value(),
              static_cast<long long>(n), all.size(), pooled.size(), leader.address.c_str());
}

void blocking(const std::string& address) {
  auto conn = dqlite::connect(address, {.database = "app"});
  auto items = conn.fetch<item>("SELECT id, name, price FROM item");
  auto stmt = conn.prepare("SELECT name FROM item WHERE id = ?");
  auto name = stmt.fetchval<std::optional<std::string>>(1);
  dqlite::transaction(conn, [](auto& c) { c.execute("DELETE FROM item WHERE id < 0"); });
  std::printf("%zu %d\n", items.size(), name.has_value());
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, run("127.0.0.1:9001"), asio::detached);
  io.run();
  blocking("127.0.0.1:9001");
}
