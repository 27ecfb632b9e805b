// Must not compile, with the library's one message: an unsupported parameter before other
// parameters, and one before a completion token.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <map>

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io.get_executor());
  std::map<int, int> m;
  conn.async_execute("SELECT ?, ?", m, 1);
}
