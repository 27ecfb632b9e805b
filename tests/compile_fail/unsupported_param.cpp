// Must not compile: a parameter of a type the library cannot bind.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <map>

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io.get_executor());
  std::map<int, int> m;
  auto op = conn.async_execute("SELECT ?", m, boost::asio::deferred);
  (void)op;
}
