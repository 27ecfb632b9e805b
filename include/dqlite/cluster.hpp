// The cluster client: leader discovery, connecting to the leader with retries, cluster
// administration. Its parts: cluster_options.hpp, detail/cluster/ (backoff, results,
// discovery, requests on the leader).
#pragma once

#include <dqlite/cluster_options.hpp>
#include <dqlite/detail/cluster/backoff.hpp>
#include <dqlite/detail/cluster/discovery.hpp>
#include <dqlite/detail/cluster/leader_requests.hpp>
#include <dqlite/detail/cluster/result.hpp>
#include <dqlite/address.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/connector.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

/// A client of a whole dqlite cluster: finds the leader, connects to it with retries, and
/// administers the cluster.
///
/// Nodes come from a node store (or a list of addresses). Discovery asks the last known
/// leader first, then the stored nodes (voters first, max_concurrent_probes at a time)
/// which node leads: a node that names itself is the leader; a node that names another
/// one is believed only once that one names itself. Concurrent callers share one
/// discovery. Failed attempts are retried with exponential backoff and jitter within
/// cluster_options' bounds; the final errc::no_leader names every node asked and why it
/// did not lead to the leader.
///
/// Operations accept any completion token (default: dqlite::use_awaitable, which throws
/// dqlite::error with the diagnostics text). They run on a strand of the executor, so a
/// cluster may be used from several threads. Destroying the cluster (or close()) makes
/// running operations complete with errc::cancelled; so does a terminal cancellation of
/// one operation through its cancellation slot (a discovery that other callers share goes
/// on for them). A connection that async_connect returned is the caller's: it keeps
/// working after the cluster is closed or destroyed.
///
/// Stream: the stream of the connections. The connector (dqlite/connector.hpp) makes them
/// and connects them to the nodes: TCP by default (dqlite::cluster), unix_cluster with
/// unix_connector, tls_cluster (dqlite/tls.hpp) with tls_connector, or a connector of the
/// caller's (address mapping, proxies, custom sockets).
template <class Stream>
class basic_cluster {
  using state_type = detail::cluster_state<Stream>;

 public:
  using connection_type = basic_connection<Stream>;
  using executor_type = boost::asio::any_io_executor;

  /// A cluster whose nodes are in `store`, reached through `connector` (see
  /// dqlite/connector.hpp: tcp_connector, unix_connector, tls_connector, or the caller's
  /// own). Throws dqlite::error (errc::invalid_argument) for options that cannot work and
  /// for a connector without make or connect.
  basic_cluster(const executor_type& ex, basic_connector<Stream> connector,
                std::shared_ptr<node_store> store, const cluster_options& opts = {})
      : s_(make_state(ex, std::move(connector), std::move(store), opts)) {}

  /// A cluster whose nodes are in any node_store_like object.
  template <node_store_like S>
    requires(!std::is_base_of_v<node_store, S>)
  basic_cluster(const executor_type& ex, basic_connector<Stream> connector,
                std::shared_ptr<S> store, const cluster_options& opts = {})
      : basic_cluster(ex, std::move(connector), make_node_store(std::move(store)), opts) {}

  /// A cluster whose nodes are at `addresses` (as the nodes advertise them: "host:port" or
  /// "[ipv6]:port" for TCP and TLS), kept in a memory_node_store. Throws dqlite::error
  /// (errc::invalid_address) naming an address the connector refuses, or for an empty list.
  basic_cluster(const executor_type& ex, basic_connector<Stream> connector,
                const std::vector<std::string>& addresses, const cluster_options& opts = {})
      : basic_cluster(ex, connector, make_address_store(connector, addresses), opts) {}

  /// The same over plain TCP (tcp_connector()).
  basic_cluster(const executor_type& ex, std::shared_ptr<node_store> store,
                const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : basic_cluster(ex, tcp_connector(), std::move(store), opts) {}

  template <node_store_like S>
    requires(!std::is_base_of_v<node_store, S> &&
             std::is_same_v<Stream, boost::asio::ip::tcp::socket>)
  basic_cluster(const executor_type& ex, std::shared_ptr<S> store, const cluster_options& opts = {})
      : basic_cluster(ex, tcp_connector(), make_node_store(std::move(store)), opts) {}

  basic_cluster(const executor_type& ex, const std::vector<std::string>& addresses,
                const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : basic_cluster(ex, tcp_connector(), addresses, opts) {}

  basic_cluster(basic_cluster&&) noexcept = default;
  basic_cluster& operator=(basic_cluster&& other) noexcept {
    if (this != &other) {
      close();
      s_ = std::move(other.s_);
    }
    return *this;
  }
  basic_cluster(const basic_cluster&) = delete;
  basic_cluster& operator=(const basic_cluster&) = delete;
  /// Closes the cluster (see close()).
  ~basic_cluster() { close(); }

  /// The strand the cluster's operations run on.
  executor_type get_executor() const { return s_->ex; }
  const cluster_options& options() const noexcept { return s_->opts; }
  /// The node store.
  const std::shared_ptr<node_store>& store() const noexcept { return s_->store; }
  /// A snapshot of the counters: discoveries, probes, redirects, leader changes, the last
  /// leader. Read it on get_executor() (e.g. from a coroutine running there) when other
  /// threads use the cluster.
  cluster_stats stats() const { return s_->stats; }
  /// The text that goes with the last completed operation: for errc::no_leader, every
  /// node asked and why it did not lead to the leader. (For tokens that do not carry it,
  /// such as callbacks or as_tuple; read it in the completion handler, or once no other
  /// operation of this cluster runs.)
  const dqlite::diagnostics& diagnostics() const noexcept { return s_->last_diag; }

  /// With cluster_options::refresh_store: why the last automatic refresh of the node store
  /// failed (the members could not be listed, or node_store::set threw: then
  /// boost::system::errc::io_error), or a default error_code when it succeeded or none
  /// ran. Such a failure does not fail the operation that reached the leader: it completes
  /// normally, with its connection. The text is in store_diagnostics(). Read them as
  /// diagnostics() (in the completion handler, or once no other operation runs).
  error_code store_error() const noexcept { return s_->store_ec; }
  const dqlite::diagnostics& store_diagnostics() const noexcept { return s_->store_diag; }

  /// Makes every running operation complete with errc::cancelled (their connections are
  /// closed) and every later one fail the same way. Returns at once.
  void close() noexcept {
    if (!s_) return;
    try {
      boost::asio::post(s_->ex, [s = s_] { s->shutdown(); });
    } catch (...) {
    }
  }

  // ---- connecting ----

  /// Finds the leader and returns a connection to it with options().connection.database
  /// open (no database when that is empty). Signature: void(error_code, connection_type).
  template <class Token = default_token_t>
  auto async_connect(Token&& token = {}) {
    return initiate<connection_type>(token, [](std::shared_ptr<state_type> s) {
      return connect_body(std::move(s));
    });
  }

  /// The leader: its id and address. Signature: void(error_code, node_info).
  template <class Token = default_token_t>
  auto async_leader(Token&& token = {}) {
    return initiate<node_info>(token, [](std::shared_ptr<state_type> s) {
      return leader_body(std::move(s));
    });
  }

  /// Replaces the content of the node store with the leader's list of members and
  /// returns that list. Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_refresh_store(Token&& token = {}) {
    return initiate<std::vector<node_info>>(token, [](std::shared_ptr<state_type> s) {
      return refresh_body(std::move(s));
    });
  }

  // ---- administration (through the leader) ----

  /// The members of the cluster, as the leader knows them.
  /// Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_cluster(Token&& token = {}) {
    return leader_request<std::vector<node_info>>(
        token, [](connection_type& c) { return c.async_cluster(detail::as_tuple_awaitable); },
        true);
  }

  /// Adds a node (ADD), then gives it its role (ASSIGN) unless that is spare, as go-dqlite
  /// does. The node must be running. Signature: void(error_code).
  /// (GCC 12 miscompiles a braced temporary inside a co_await expression, as in
  /// `co_await c.async_add({2, "host:port"})`: pass a named node_info, or use the overload
  /// below.)
  template <class Token = default_token_t>
  auto async_add(const node_info& node, Token&& token = {}) {
    return initiate<void>(token, [node](std::shared_ptr<state_type> s) {
      return add_body(std::move(s), node);
    });
  }

  /// Same as async_add(node_info{id, address, role}).
  template <class Token = default_token_t>
  auto async_add(std::uint64_t id, std::string_view address, node_role role = node_role::voter,
                 Token&& token = {}) {
    return initiate<void>(token, [node = node_info{id, std::string(address), role}](
                                     std::shared_ptr<state_type> s) {
      return add_body(std::move(s), node);
    });
  }

  /// Gives node `id` a new role. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_assign(std::uint64_t id, node_role role, Token&& token = {}) {
    return leader_request<void>(
        token,
        [id, role](connection_type& c) { return c.async_assign(id, role, detail::as_tuple_awaitable); },
        false);
  }

  /// Removes node `id` from the cluster. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_remove(std::uint64_t id, Token&& token = {}) {
    return leader_request<void>(
        token, [id](connection_type& c) { return c.async_remove(id, detail::as_tuple_awaitable); },
        false);
  }

  /// Hands leadership over to voter `id` (0: raft chooses). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_transfer(std::uint64_t id, Token&& token = {}) {
    return initiate<void>(token, [id](std::shared_ptr<state_type> s) {
      return transfer_body(std::move(s), id);
    });
  }

  /// A copy of database `name` (default: options().connection.database) from the leader.
  /// Signature: void(error_code, std::vector<dump_file>).
  template <class Token = default_token_t>
  auto async_dump(std::string_view name, Token&& token = {}) {
    return leader_request<std::vector<dump_file>>(
        token,
        [name = std::string(name)](connection_type& c) {
          return c.async_dump(name, detail::as_tuple_awaitable);
        },
        true);
  }

  // ---- administration of one node ----

  /// The failure domain and weight of the node at `address`.
  /// Signature: void(error_code, node_metadata).
  template <class Token = default_token_t>
  auto async_describe(std::string_view address, Token&& token = {}) {
    return node_request<node_metadata>(
        token, address, [](connection_type& c) { return c.async_describe(detail::as_tuple_awaitable); });
  }

  /// Sets the weight of the node at `address`. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_weight(std::string_view address, std::uint64_t weight, Token&& token = {}) {
    return node_request<void>(token, address, [weight](connection_type& c) {
      return c.async_weight(weight, detail::as_tuple_awaitable);
    });
  }

 private:
  using clock = std::chrono::steady_clock;

  static std::shared_ptr<state_type> make_state(const executor_type& ex,
                                                basic_connector<Stream> connector,
                                                std::shared_ptr<node_store> store,
                                                const cluster_options& opts) {
    detail::check_connector(connector);
    if (!store) throw error(make_error_code(errc::invalid_argument), dqlite::diagnostics("the node store is null"));
    detail::require_option(opts.probe_timeout.count() > 0, "cluster_options",
                           "probe_timeout must be positive");
    detail::require_option(opts.max_concurrent_probes > 0, "cluster_options",
                           "max_concurrent_probes must be at least 1");
    return std::make_shared<state_type>(boost::asio::make_strand(ex), std::move(store), opts,
                                        std::move(connector));
  }

  static std::shared_ptr<node_store> make_address_store(const basic_connector<Stream>& connector,
                                                        const std::vector<std::string>& addresses) {
    if (addresses.empty())
      throw error(make_error_code(errc::invalid_address), dqlite::diagnostics("the list of node addresses is empty"));
    if (connector.check_address)
      for (const auto& a : addresses)
        if (auto why = connector.check_address(a); !why.empty())
          throw error(make_error_code(errc::invalid_address), dqlite::diagnostics(why));
    return std::make_shared<memory_node_store>(addresses);
  }

  template <class T, class Token, class Body>
  auto initiate(Token& token, Body body) {
    return detail::initiate_coroutine_op<T, detail::cluster_op_hooks<Stream>>(s_, token,
                                                                             std::move(body));
  }

  template <class T, class Token, class Request>
  auto leader_request(Token& token, Request request, bool read_only) {
    return initiate<T>(token, [request = std::move(request), read_only](std::shared_ptr<state_type> s) {
      return detail::on_leader<Stream, T>(std::move(s), request, read_only);
    });
  }

  template <class T, class Token, class Request>
  auto node_request(Token& token, std::string_view address, Request request) {
    return initiate<T>(token, [address = std::string(address),
                               request = std::move(request)](std::shared_ptr<state_type> s) {
      return detail::on_node<Stream, T>(std::move(s), address, request);
    });
  }

  static boost::asio::awaitable<detail::cluster_result<connection_type>> connect_body(
      std::shared_ptr<state_type> s) {
    if (s->closed) co_return detail::cluster_result<connection_type>::cluster_closed();
    auto r = co_await detail::connect_leader<Stream>(s, s->database);
    detail::cluster_result<connection_type> out;
    out.ec = r.ec;
    out.diag = std::move(r.diag);
    if (!r.ec) out.value.emplace(std::move(*r.value->conn));
    co_return out;
  }

  static boost::asio::awaitable<detail::cluster_result<node_info>> leader_body(
      std::shared_ptr<state_type> s) {
    if (s->closed) co_return detail::cluster_result<node_info>::cluster_closed();
    auto r = co_await detail::connect_leader<Stream>(s, std::string());
    if (r.ec) co_return detail::cluster_result<node_info>::fail(r.ec, std::move(r.diag));
    detail::cluster_result<node_info> out;
    out.value.emplace(node_info{r.value->id, r.value->address, node_role::voter});
    // Keep the connection for the next administration request.
    if (!s->admin || !s->admin->is_open()) s->admin = std::move(r.value->conn);
    co_return out;
  }

  static boost::asio::awaitable<detail::cluster_result<std::vector<node_info>>> refresh_body(
      std::shared_ptr<state_type> s) {
    using result = detail::cluster_result<std::vector<node_info>>;
    if (s->closed) co_return detail::cluster_result<std::vector<node_info>>::cluster_closed();
    auto r = co_await detail::on_leader<Stream, std::vector<node_info>>(
        s, [](connection_type& c) { return c.async_cluster(detail::as_tuple_awaitable); }, true);
    if (r.ec) co_return r;
    try {
      s->store->set(*r.value);
    } catch (const std::exception& e) {
      co_return result::fail(make_error_code(boost::system::errc::io_error),
                             std::string("updating the node store failed: ") + e.what());
    }
    co_return r;
  }

  static boost::asio::awaitable<detail::cluster_result<void>> add_body(std::shared_ptr<state_type> s,
                                                                        node_info node) {
    if (s->closed) co_return detail::cluster_result<void>::cluster_closed();
    auto r = co_await detail::on_leader<Stream, void>(
        s,
        [&node](connection_type& c) {
          return c.async_add(node.id, node.address, detail::as_tuple_awaitable);
        },
        false);
    if (r.ec || node.role == node_role::spare) co_return r;
    auto id = node.id;
    auto role = node.role;
    detail::cluster_result<void> a;
    std::exception_ptr ep;
    try {
      a = co_await detail::on_leader<Stream, void>(
          s,
          [id, role](connection_type& c) {
            return c.async_assign(id, role, detail::as_tuple_awaitable);
          },
          false);
    } catch (...) {
      ep = std::current_exception();
    }
    if (ep) {
      const auto cs = co_await boost::asio::this_coro::cancellation_state;
      if (detail::was_cancelled(cs))
        a = detail::cancelled_by_caller<void>();
      else
        a = detail::cluster_result<void>::from_exception(ep);
    }
    if (a.ec)
      a.diag = "node " + std::to_string(id) + " was added as a spare, but making it a " +
               std::string(to_string(role)) + " failed: " + a.diag;
    co_return a;
  }

  static boost::asio::awaitable<detail::cluster_result<void>> transfer_body(
      std::shared_ptr<state_type> s, std::uint64_t id) {
    if (s->closed) co_return detail::cluster_result<void>::cluster_closed();
    auto r = co_await detail::on_leader<Stream, void>(
        s, [id](connection_type& c) { return c.async_transfer(id, detail::as_tuple_awaitable); },
        false);
    // The old leader is a follower now: forget it.
    if (s->admin) s->admin->close();
    s->admin.reset();
    s->last_leader.clear();
    co_return r;
  }

  std::shared_ptr<state_type> s_;
};

/// A cluster client over TCP.
using cluster = basic_cluster<boost::asio::ip::tcp::socket>;
/// A cluster client over unix sockets (constructed with a unix_connector).
using unix_cluster = basic_cluster<boost::asio::local::stream_protocol::socket>;

}  // namespace dqlite
