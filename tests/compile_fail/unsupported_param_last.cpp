// Must not compile, with the library's one message: an unsupported parameter in the last
// position (where a completion token could be) is not taken for a token.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <map>

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io.get_executor());
  std::map<int, int> m;
  conn.async_execute("SELECT ?", m);
}
