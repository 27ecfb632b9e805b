// Constructs a connection and prints the library's version: enough to show that the
// headers are found and that a program using them compiles, links and runs. With an
// argument it also starts a request (on the unopened connection, which fails at once), so
// that the program links the library's request loop: from the headers, or with separate
// compilation from the library's compiled part.
#include <dqlite/client.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>

int main(int argc, char**) {
  boost::asio::io_context io;
  dqlite::connection conn(io);
  if (argc > 1) {
    conn.async_execute("SELECT 1", [](auto&&...) {});
    io.run();
  }
  std::cout << "dqlite-client " << DQLITE_CLIENT_VERSION << "\n";
  return conn.is_open() ? 1 : 0;
}
