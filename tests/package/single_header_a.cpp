// First of two translation units of one program that include the single header: the
// inline functions, templates and function-local statics of the library must merge into
// one definition each at link time (see single_header_main.cpp).
#include <dqlite/client.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <string>

namespace single_header_test {

const void* category_from_a() {
  return &dqlite::client_category();
}

// An operation on a connection that was never opened completes with not_connected.
std::string run_a() {
  boost::asio::io_context io;
  dqlite::connection conn(io);
  dqlite::error_code result;
  conn.async_execute("INSERT INTO t VALUES (?, ?)", std::int64_t{1}, "one",
                     [&](dqlite::error_code ec, dqlite::exec_result) { result = ec; });
  io.run();
  if (result != dqlite::errc::not_connected) return "a: unexpected result: " + result.message();
  dqlite::value v("text");
  return "a: " + v.to_string() + ", " + conn.diagnostics().message();
}

}  // namespace single_header_test
