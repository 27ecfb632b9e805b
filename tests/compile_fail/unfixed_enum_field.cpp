// Must not compile: a field of an unscoped enum without a fixed underlying type (a value
// outside its enumerators' range could not be stored in it).
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

enum shade { light, dark };

struct bad_row {
  int id;
  shade s;
};

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io.get_executor());
  auto op = conn.async_fetch<bad_row>("SELECT 1", boost::asio::deferred);
  (void)op;
}
