// Second of two translation units of one program that include the single header (see
// single_header_a.cpp).
#include <dqlite/client.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace single_header_test {

const void* category_from_b() {
  return &dqlite::client_category();
}

std::string run_b() {
  boost::asio::io_context io;
  dqlite::connection conn(io);
  dqlite::error_code result;
  conn.async_fetchval<std::optional<std::int64_t>>(
      "SELECT ?", std::int64_t{2},
      [&](dqlite::error_code ec, std::optional<std::int64_t>) { result = ec; });
  io.run();
  if (result != dqlite::errc::not_connected) return "b: unexpected result: " + result.message();
  dqlite::error e(make_error_code(dqlite::errc::timeout), dqlite::diagnostics("slow"));
  return std::string("b: ") + e.what();
}

}  // namespace single_header_test
