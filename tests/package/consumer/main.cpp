// Constructs a connection and prints the library's version: enough to show that the
// headers are found and that a program using them compiles, links and runs.
#include <dqlite/client.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io);
  std::cout << "dqlite-client " << DQLITE_CLIENT_VERSION << "\n";
  return conn.is_open() ? 1 : 0;
}
