// A cluster of real dqlite nodes (node_process) for integration tests.
//
//   dqlite_test::cluster_process cluster(3);       // nodes 1..3, all voters
//   cluster.addresses();                           // {"127.0.0.1:P1", ...}
//   cluster.leader_index();                        // which node leads now
//   cluster.node(i).kill();                        // crash one
//
// Node 1 bootstraps the cluster; nodes 2..N are added with this library's own
// connection::async_add and async_assign(voter), sent to the leader, and the
// constructor returns once the leader lists every node as a voter. The nodes run
// with a short network latency setting (--latency-ms, election timeout = 15 x
// latency) so that failover tests are quick.
#pragma once

#include <dqlite/connection.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "support/run.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dqlite_test {

struct cluster_options {
  std::size_t nodes = 3;
  /// --latency-ms of every node: heartbeat 1.5 x, election timeout 15 x this.
  unsigned latency_ms = 20;
  /// Extra arguments for node i (0-based), e.g. {"--failure-domain", "7"}.
  std::vector<std::vector<std::string>> extra_args;
  /// Bound on forming the cluster.
  std::chrono::seconds form_timeout{30};
};

namespace detail {

inline dqlite::connection_options admin_options() {
  dqlite::connection_options o;
  o.database = {};  // no database: administration only
  o.connect_timeout = std::chrono::seconds(2);
  o.request_timeout = std::chrono::seconds(10);
  return o;
}

inline boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
  co_await t.async_wait(boost::asio::use_awaitable);
}

/// LEADER as answered by the node at address; empty when it cannot be asked.
inline boost::asio::awaitable<std::optional<dqlite::node_info>> ask_leader(std::string address) {
  auto ex = co_await boost::asio::this_coro::executor;
  dqlite::connection conn(admin_options(), ex);
  auto tok = boost::asio::as_tuple(boost::asio::use_awaitable);
  auto [ec] = co_await conn.async_connect(address, tok);
  if (ec) co_return std::nullopt;
  auto [ec2, info] = co_await conn.async_leader(tok);
  if (ec2) co_return std::nullopt;
  co_return info;
}

}  // namespace detail

class cluster_process {
 public:
  explicit cluster_process(std::size_t nodes = 3) : cluster_process(make(nodes)) {}

  explicit cluster_process(cluster_options o) : opts_(std::move(o)) {
    if (opts_.nodes == 0) throw std::invalid_argument("a cluster needs at least one node");
    for (std::size_t i = 0; i < opts_.nodes; ++i) {
      node_options no;
      no.id = i + 1;
      no.extra_args = {"--latency-ms", std::to_string(opts_.latency_ms)};
      if (i < opts_.extra_args.size())
        no.extra_args.insert(no.extra_args.end(), opts_.extra_args[i].begin(),
                             opts_.extra_args[i].end());
      nodes_.push_back(std::make_unique<node_process>(no));
    }
    form();
  }

  std::size_t size() const noexcept { return nodes_.size(); }
  node_process& node(std::size_t i) { return *nodes_.at(i); }
  const node_process& node(std::size_t i) const { return *nodes_.at(i); }
  unsigned latency_ms() const noexcept { return opts_.latency_ms; }
  /// The election timeout the nodes run with.
  std::chrono::milliseconds election_timeout() const {
    return std::chrono::milliseconds(15 * opts_.latency_ms);
  }

  std::vector<std::string> addresses() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) out.push_back(n->address());
    return out;
  }

  /// The index of the node that names itself leader, or -1 when none does (asked once).
  int leader_index() {
    return run([this](boost::asio::any_io_executor) -> boost::asio::awaitable<int> {
      for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (!nodes_[i]->running()) continue;
        auto a = co_await detail::ask_leader(nodes_[i]->address());
        if (a && a->address == nodes_[i]->address()) co_return static_cast<int>(i);
      }
      co_return -1;
    });
  }

  /// Waits (up to `limit`) until some node names itself leader; returns its index.
  int wait_for_leader(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int i = leader_index();
      if (i >= 0) return i;
      if (std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error("no node became leader within " +
                                 std::to_string(limit.count()) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  static cluster_options make(std::size_t nodes) {
    cluster_options o;
    o.nodes = nodes;
    return o;
  }

  // Adds nodes 2..N through the leader, then waits until all are voters.
  void form() {
    const auto limit = opts_.form_timeout;
    run(
        [this, limit](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
          auto deadline = std::chrono::steady_clock::now() + limit;
          auto tok = boost::asio::as_tuple(boost::asio::use_awaitable);
          auto check_time = [&](const std::string& what) {
            if (std::chrono::steady_clock::now() > deadline)
              throw std::runtime_error("forming the test cluster: " + what + " within " +
                                       std::to_string(limit.count()) + " s");
          };
          // Node 1 elects itself.
          const std::string first = nodes_[0]->address();
          for (;;) {
            auto a = co_await detail::ask_leader(first);
            if (a && a->address == first) break;
            check_time("node 1 did not become leader");
            co_await detail::sleep_for(std::chrono::milliseconds(10));
          }
          dqlite::connection leader(detail::admin_options(), ex);
          co_await leader.async_connect(first);
          for (std::size_t i = 1; i < nodes_.size(); ++i) {
            const auto id = nodes_[i]->id();
            const std::string address = nodes_[i]->address();
            co_await leader.async_add(id, address);
            // ASSIGN may be refused while the previous change settles: retry.
            for (;;) {
              auto [ec] = co_await leader.async_assign(id, dqlite::node_role::voter, tok);
              if (!ec) break;
              check_time("node " + std::to_string(id) + " could not be made a voter (" +
                         leader.diagnostics().message() + ")");
              if (!leader.is_open()) co_await leader.async_connect(first);
              co_await detail::sleep_for(std::chrono::milliseconds(20));
            }
          }
          for (;;) {
            auto nodes = co_await leader.async_cluster();
            std::size_t voters = 0;
            for (const auto& n : nodes)
              if (n.role == dqlite::node_role::voter) ++voters;
            if (voters == nodes_.size()) break;
            check_time("not every node became a voter");
            co_await detail::sleep_for(std::chrono::milliseconds(10));
          }
        },
        std::chrono::seconds(limit.count() + 10));
  }

  cluster_options opts_;
  std::vector<std::unique_ptr<node_process>> nodes_;
};

}  // namespace dqlite_test
