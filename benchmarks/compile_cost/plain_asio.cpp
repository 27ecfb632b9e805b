// The baseline: a plain Boost.Asio coroutine program that connects a TCP socket, writes a
// request and reads an answer (what any networked Asio program compiles).
#include <boost/asio.hpp>

#include <array>
#include <cstdio>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> run(std::string host, std::string port) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(ex);
  asio::ip::tcp::socket sock(ex);
  co_await asio::async_connect(sock, co_await resolver.async_resolve(host, port, asio::use_awaitable),
                               asio::use_awaitable);
  std::string request = "hello";
  co_await asio::async_write(sock, asio::buffer(request), asio::use_awaitable);
  std::array<char, 64> answer{};
  std::size_t n = co_await sock.async_read_some(asio::buffer(answer), asio::use_awaitable);
  std::printf("%.*s\n", static_cast<int>(n), answer.data());
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, run("127.0.0.1", "9001"), asio::detached);
  io.run();
}
