// TLS: connect through a TLS endpoint in front of a node (e.g. stunnel), verifying the
// server's certificate against a CA file and the host name. Link dqlite::tls (OpenSSL).
//
//   tls localhost:9443 ca.pem
#include <dqlite/client.hpp>
#include <dqlite/tls.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> run(std::string address, std::string ca_file) {
  auto ex = co_await asio::this_coro::executor;
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.load_verify_file(ca_file);  // verification is on: certificate and host name
  auto conn = co_await dqlite::async_connect_tls(ex, tls, address, {.database = "secure"});
  co_await conn.async_execute("CREATE TABLE IF NOT EXISTS secret (v TEXT)");
  co_await conn.async_execute("INSERT INTO secret VALUES (?)", "over TLS");
  auto v = co_await conn.async_fetchval<std::string>("SELECT v FROM secret LIMIT 1");
  std::cout << "read back: " << v << "\n";
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: tls HOST:PORT CA_FILE\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(argv[1], argv[2]), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "tls failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
