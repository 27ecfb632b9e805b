// Must not compile: a row type with a field type the library cannot read.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <map>

struct bad_row {
  int id;
  std::map<int, int> lookup;
};

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io.get_executor());
  auto op = conn.async_fetch<bad_row>("SELECT 1", boost::asio::deferred);
  (void)op;
}
