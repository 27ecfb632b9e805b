// Node stores: where a cluster client keeps the nodes it may ask for the leader.
#pragma once

#include <dqlite/node_info.hpp>

#include <concepts>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// A node store (go-dqlite's NodeStore): `get()` returns the known nodes, `set(nodes)`
/// replaces them. Both are synchronous and may throw (a file store throws
/// node_store_error when the file cannot be read or written). A cluster client calls them
/// from its executor's thread, so they should be quick.
template <class S>
concept node_store_like = requires(S& s, std::vector<node_info> nodes) {
  { s.get() } -> std::convertible_to<std::vector<node_info>>;
  s.set(std::move(nodes));
};

/// The error a node store throws, e.g. for a file that cannot be read, parsed or written.
/// what() names the store (the file) and the problem.
class node_store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The interface a cluster client keeps its store behind. Implement it, or pass any
/// node_store_like type to make_node_store.
class node_store {
 public:
  virtual ~node_store() = default;
  /// The known nodes.
  virtual std::vector<node_info> get() = 0;
  /// Replaces the known nodes.
  virtual void set(std::vector<node_info> nodes) = 0;
};

namespace detail {
template <class S>
class node_store_adapter final : public node_store {
 public:
  explicit node_store_adapter(std::shared_ptr<S> s) : s_(std::move(s)) {}
  std::vector<node_info> get() override { return s_->get(); }
  void set(std::vector<node_info> nodes) override { s_->set(std::move(nodes)); }

 private:
  std::shared_ptr<S> s_;
};
}  // namespace detail

/// A node_store over any node_store_like object (shared with the caller).
template <node_store_like S>
std::shared_ptr<node_store> make_node_store(std::shared_ptr<S> store) {
  if (!store) throw std::invalid_argument("dqlite::make_node_store: null store");
  if constexpr (std::is_base_of_v<node_store, S>)
    return store;
  else
    return std::make_shared<detail::node_store_adapter<S>>(std::move(store));
}

/// Nodes kept in memory. Thread-safe.
class memory_node_store final : public node_store {
 public:
  memory_node_store() = default;
  /// Starts with the given nodes.
  explicit memory_node_store(std::vector<node_info> nodes) : nodes_(std::move(nodes)) {}
  /// Starts with voters at the given addresses (ids unknown: 0).
  explicit memory_node_store(const std::vector<std::string>& addresses) {
    nodes_.reserve(addresses.size());
    for (const auto& a : addresses) nodes_.push_back(node_info{0, a, node_role::voter});
  }

  std::vector<node_info> get() override {
    std::lock_guard lock(mutex_);
    return nodes_;
  }
  void set(std::vector<node_info> nodes) override {
    std::lock_guard lock(mutex_);
    nodes_ = std::move(nodes);
  }

 private:
  std::mutex mutex_;
  std::vector<node_info> nodes_;
};

}  // namespace dqlite
