// Cluster administration: form a 3-node cluster from three started nodes (node 1
// bootstrapped itself; 2 and 3 are empty), list it, move the leadership, and write through
// whichever node leads.
//
//   cluster_admin 127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

asio::awaitable<void> run(std::vector<std::string> addresses) {
  auto ex = co_await asio::this_coro::executor;
  dqlite::cluster_options opts;
  opts.connection.database = "admin-demo";
  dqlite::cluster cluster(ex, addresses, opts);

  // Nodes 2 and 3 join as voters (ADD, then ASSIGN).
  for (std::uint64_t id = 2; id <= addresses.size(); ++id)
    co_await cluster.async_add(id, addresses[id - 1], dqlite::node_role::voter);

  for (const auto& n : co_await cluster.async_cluster())
    std::cout << "node " << n.id << " " << n.address << " " << dqlite::to_string(n.role) << "\n";

  auto leader = co_await cluster.async_leader();
  std::cout << "leader: node " << leader.id << "\n";

  // Move the leadership to the next node, then find it again.
  auto target = leader.id % addresses.size() + 1;
  co_await cluster.async_transfer(target);
  asio::steady_timer pause(ex);
  for (int i = 0; i < 50; ++i) {
    leader = co_await cluster.async_leader();
    if (leader.id == target) break;
    pause.expires_after(std::chrono::milliseconds(20));
    co_await pause.async_wait(asio::use_awaitable);
  }
  std::cout << "leader after transfer: node " << leader.id << "\n";

  // async_connect always reaches the current leader.
  auto conn = co_await cluster.async_connect();
  co_await conn.async_execute("CREATE TABLE IF NOT EXISTS visit (n INTEGER)");
  co_await conn.async_execute("INSERT INTO visit VALUES (1)");
  auto n = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM visit");
  std::cout << "rows through the new leader: " << n << "\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cluster_admin ADDRESS [ADDRESS...] (node 1 first)\n";
    return 2;
  }
  std::vector<std::string> addresses(argv + 1, argv + argc);
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(addresses), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "cluster_admin failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
