// Without coroutines: completion handlers (and a future), errors as error_code plus the
// connection's diagnostics.
//
//   callbacks 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <future>
#include <iostream>
#include <memory>

namespace asio = boost::asio;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: callbacks HOST:PORT\n";
    return 2;
  }
  asio::io_context io;
  int status = 1;
  auto conn = std::make_shared<dqlite::connection>(dqlite::connection_options{.database = "cb"},
                                                   io.get_executor());

  auto fail = [&](const char* what, dqlite::error_code ec) {
    std::cerr << what << ": " << ec.message() << ": " << conn->diagnostics().message() << "\n";
  };

  conn->async_connect(argv[1], [&](dqlite::error_code ec) {
    if (ec) return fail("connect", ec);
    conn->async_execute("CREATE TABLE IF NOT EXISTS hit (n INTEGER)",
                        [&](dqlite::error_code ec, dqlite::exec_result) {
      if (ec) return fail("create", ec);
      conn->async_execute("INSERT INTO hit VALUES (?)", 1,
                          [&](dqlite::error_code ec, dqlite::exec_result r) {
        if (ec) return fail("insert", ec);
        std::cout << "inserted rowid " << r.last_insert_id << "\n";
        conn->async_fetchval<std::int64_t>("SELECT count(*) FROM hit",
                                           [&](dqlite::error_code ec, std::int64_t n) {
          if (ec) return fail("count", ec);
          std::cout << n << " hits\n";
          // A failure: the code and the server's message.
          conn->async_execute("INSERT INTO nowhere VALUES (1)",
                              [&](dqlite::error_code ec, dqlite::exec_result) {
            std::cout << "expected failure: " << ec.message() << " / "
                      << conn->diagnostics().message() << "\n";
            status = ec ? 0 : 1;
          });
        });
      });
    });
  });
  io.run();

  // use_future: the io_context runs on another thread; errors arrive as std::system_error.
  std::thread runner;
  {
    auto work = asio::make_work_guard(io);
    io.restart();
    runner = std::thread([&] { io.run(); });
    auto f = conn->async_fetchval<std::int64_t>("SELECT 6 * 7", asio::use_future);
    std::cout << "future: " << f.get() << "\n";
  }
  runner.join();
  return status;
}
