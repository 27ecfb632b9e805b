// The add-on headers next to the single header: <dqlite/tls.hpp> and
// <dqlite/yaml_node_store.hpp> with only single_include/ on the include path, in a
// program that also includes the single header itself.
#include <dqlite/client.hpp>
#include <dqlite/tls.hpp>
#include <dqlite/yaml_node_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

int main() {
  // TLS: a connect to a port where nothing listens fails with a transport error.
  boost::asio::io_context io;
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  std::string port;
  {
    boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = std::to_string(probe.local_endpoint().port());
  }  // closed: nothing listens there now
  dqlite::error_code got;
  bool done = false;
  dqlite::async_connect_tls(io.get_executor(), ctx, "127.0.0.1:" + port, {.database = "app"},
                            [&](dqlite::error_code ec, dqlite::tls_connection) {
                              got = ec;
                              done = true;
                            });
  io.run();
  if (!done || !got) {
    std::fprintf(stderr, "tls: expected a connect error\n");
    return 1;
  }

  // YAML node store: a round trip through a file.
  auto dir = std::filesystem::temp_directory_path() /
             ("dqlite-addons-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "cluster.yaml";
  {
    dqlite::yaml_node_store store(file);
    store.set({{1, "127.0.0.1:9001", dqlite::node_role::voter},
               {2, "127.0.0.1:9002", dqlite::node_role::standby}});
  }
  dqlite::yaml_node_store again(file);
  const auto nodes = again.get();
  std::filesystem::remove_all(dir);
  if (nodes.size() != 2 || nodes[1].address != "127.0.0.1:9002" ||
      nodes[1].role != dqlite::node_role::standby) {
    std::fprintf(stderr, "yaml: the nodes did not come back\n");
    return 1;
  }
  std::printf("tls: %s; yaml: %zu nodes\n", got.message().c_str(), nodes.size());
  return 0;
}
