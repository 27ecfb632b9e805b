// Must not compile: a fetched row type holding a std::string_view (it would dangle).
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <string_view>

struct view_row {
  int id;
  std::string_view name;
};

int main() {
  boost::asio::io_context io;
  dqlite::connection conn(io.get_executor());
  auto op = conn.async_fetch<view_row>("SELECT 1, 'x'", boost::asio::deferred);
  (void)op;
}
