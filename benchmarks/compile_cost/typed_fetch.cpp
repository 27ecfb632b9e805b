// One typed fetch: connect, then fetch<T> into a struct of the user's.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

namespace asio = boost::asio;

struct item {
  std::int64_t id;
  std::string name;
};

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "app"});
  auto items = co_await conn.async_fetch<item>("SELECT id, name FROM item WHERE id > ?", 10);
  for (const auto& i : items) std::printf("%lld %s\n", static_cast<long long>(i.id), i.name.c_str());
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, run("127.0.0.1:9001"), asio::detached);
  io.run();
}
