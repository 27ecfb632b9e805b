// Separate compilation: the library's parts that do not depend on the program's own types
// (the I/O loops of every request and of opening a connection, the start of a request,
// the connections' members, messages, SQL text scanning, frame encoding and decoding, for
// TCP and unix sockets) are compiled once, in dqlite_client.cpp, instead of in every unit that uses them.
// Every unit of the program is compiled with DQLITE_CLIENT_SEPARATE_COMPILATION defined:
//
//   g++ -std=c++20 -DDQLITE_CLIENT_SEPARATE_COMPILATION -I ../../include -c main.cpp
//   g++ -std=c++20 -DDQLITE_CLIENT_SEPARATE_COMPILATION -I ../../include -c dqlite_client.cpp
//   g++ main.o dqlite_client.o -o separate_compilation -pthread
//
// (with CMake, -DDQLITE_CLIENT_SEPARATE_COMPILATION=ON does both for dqlite::client).
//
//   separate_compilation 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

struct item {
  std::int64_t id;
  std::string name;
};

asio::awaitable<void> fill(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "app"});
  co_await conn.async_execute("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT)");
  co_await conn.async_execute("DELETE FROM item");
  co_await conn.async_execute("INSERT INTO item (name) VALUES (?), (?)", "apple", "pear");
  auto items = co_await conn.async_fetch<item>("SELECT id, name FROM item ORDER BY id");
  std::cout << "async: " << items.size() << " items\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: separate_compilation HOST:PORT\n";
    return 2;
  }
  try {
    asio::io_context io;
    auto done = asio::co_spawn(io, fill(argv[1]), asio::use_future);
    io.run();
    done.get();

    // The blocking forms use the same compiled parts.
    auto conn = dqlite::connect(argv[1], {.database = "app"});
    for (const auto& i : conn.fetch<item>("SELECT id, name FROM item ORDER BY id"))
      std::cout << i.id << " " << i.name << "\n";
    std::cout << "blocking: " << conn.fetchval<std::int64_t>("SELECT count(*) FROM item")
              << " items\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
