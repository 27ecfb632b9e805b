// Must not compile, with the library's one message for each call: the error form of a
// blocking operation given an error_code without the diagnostics that must follow it (a
// statement, an operation with no other arguments, the cluster client), or the two in the
// wrong order.
#include <dqlite/client.hpp>

int main() {
  auto conn = dqlite::connect("127.0.0.1:9001");
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  conn.execute("INSERT INTO t VALUES (?)", 1, ec);
  conn.connect("127.0.0.1:9001", ec);
  conn.execute("SELECT 1", diag, ec);
  dqlite::blocking_cluster cluster({"127.0.0.1:9001"});
  auto leader = cluster.leader(ec);
  (void)leader;
}
