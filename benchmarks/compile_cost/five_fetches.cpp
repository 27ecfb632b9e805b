// Five typed fetches, each into a row type of its own. Against typed_fetch.cpp (one), a
// fourth of the difference is the compile cost of each additional query into a struct of the user's.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace asio = boost::asio;

struct item {
  std::int64_t id;
  std::string name;
};
struct price {
  std::int64_t item_id;
  double amount;
  std::string currency;
};
struct stock {
  std::int64_t item_id;
  std::int64_t count;
};
struct note {
  std::int64_t id;
  std::optional<std::string> text;
};
struct tag {
  std::string name;
  std::int64_t uses;
};

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "app"});
  auto items = co_await conn.async_fetch<item>("SELECT id, name FROM item WHERE id > ?", 10);
  auto prices = co_await conn.async_fetch<price>(
      "SELECT item_id, amount, currency FROM price WHERE item_id > ?", 10);
  auto stocks = co_await conn.async_fetch<stock>("SELECT item_id, count FROM stock");
  auto notes = co_await conn.async_fetch<note>("SELECT id, text FROM note WHERE id < ?", 5);
  auto tags = co_await conn.async_fetch<tag>("SELECT name, uses FROM tag");
  std::printf("%zu %zu %zu %zu %zu\n", items.size(), prices.size(), stocks.size(), notes.size(),
              tags.size());
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, run("127.0.0.1:9001"), asio::detached);
  io.run();
}
