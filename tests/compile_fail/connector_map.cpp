// Must not compile, with the error at this file's line (a failed constraint of the
// connectors), not inside the library: a map that is no address_map, a callable of the
// wrong signature.
#include <dqlite/client.hpp>

int main() {
  auto tcp = dqlite::tcp_connector([](int port) { return port + 1; });
  auto local = dqlite::unix_connector(42);
  (void)tcp;
  (void)local;
}
