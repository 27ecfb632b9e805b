// Must not compile, with the library's one message: an unsupported parameter of a blocking
// call.
#include <dqlite/client.hpp>

#include <map>

int main() {
  auto conn = dqlite::connect("127.0.0.1:9001");
  std::map<int, int> m;
  conn.execute("SELECT ?", m);
}
