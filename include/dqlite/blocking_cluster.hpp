// dqlite::blocking_cluster: the cluster client (leader discovery, administration through
// the leader) for programs without an event loop of their own.
#pragma once

#include <dqlite/cluster.hpp>
#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/io_driver.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/node_store.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// The blocking form of dqlite::basic_cluster over TCP or unix sockets: every operation runs in the calling thread
/// and returns when it has completed. It owns an io_context, which the threads calling
/// its operations run themselves while they wait, one at a time (no thread is started):
/// discovery asks the nodes in parallel and its timeouts hold as in the asynchronous
/// client (cluster_options). One object may be used from several threads at once.
///
/// Each operation has two forms, as the blocking forms of a connection: without more
/// arguments a failure throws dqlite::error (code and text); with a trailing
/// `error_code&, diagnostics&` it is reported there and the result is empty. The errors
/// are those of the asynchronous operation of the same name (errc::no_leader with every
/// node asked and why, errc::timeout, errc::cancelled after close(), ...).
///
///   dqlite::blocking_cluster cluster({"127.0.0.1:9001", "127.0.0.1:9002"},
///                                    {.connection = {.database = "app"}});
///   dqlite::connection leader_conn = cluster.connect();  // to the leader, "app" open
///   leader_conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)");
///   auto leader = cluster.leader();
///
/// connect() returns a connection for blocking use (its asynchronous forms would need
/// the cluster's io_context to run: do not use them). It keeps the cluster's io_context
/// alive and may outlive the blocking_cluster. The object itself must outlive the calls
/// made on it. The log and trace callbacks of the options run in whichever calling thread
/// runs the io_context; a blocking call of the same object from inside one throws
/// std::logic_error (it would wait for itself).
template <class Stream = boost::asio::ip::tcp::socket>
class basic_blocking_cluster {
  static_assert(detail::is_plain_socket<Stream>,
                "dqlite: the blocking cluster client works on TCP and unix socket streams; over "
                "TLS use the asynchronous basic_cluster (tls_cluster)");

 public:
  using cluster_type = basic_cluster<Stream>;
  using connection_type = basic_connection<Stream>;

  /// A client of the nodes in `store`, reached through `connector` (see
  /// dqlite/connector.hpp: tcp_connector, unix_connector, or the caller's own over a TCP or
  /// unix socket); asks nothing yet. Throws as the basic_cluster constructor of the same
  /// arguments.
  basic_blocking_cluster(basic_connector<Stream> connector, std::shared_ptr<node_store> store,
                         const cluster_options& opts = {})
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), std::move(connector), std::move(store), opts);
  }

  /// A client of the nodes at `addresses`, reached through `connector`.
  basic_blocking_cluster(basic_connector<Stream> connector,
                         const std::vector<std::string>& addresses,
                         const cluster_options& opts = {})
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), std::move(connector), addresses, opts);
  }

  /// A client of the nodes at `addresses` ("host:port") over plain TCP; asks nothing yet.
  explicit basic_blocking_cluster(const std::vector<std::string>& addresses,
                                  const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), addresses, opts);
  }

  /// A client of the nodes in `store` over plain TCP (it updates the store with
  /// cluster_options::refresh_store).
  explicit basic_blocking_cluster(std::shared_ptr<node_store> store,
                                  const cluster_options& opts = {})
    requires std::is_same_v<Stream, boost::asio::ip::tcp::socket>
      : s_(std::make_shared<state>()) {
    s_->c.emplace(s_->driver.get_executor(), std::move(store), opts);
  }

  basic_blocking_cluster(basic_blocking_cluster&&) noexcept = default;
  basic_blocking_cluster& operator=(basic_blocking_cluster&& o) noexcept {
    if (this != &o) {
      if (s_ && s_->c) s_->c->close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  /// Closes the client (connections it returned stay open and usable).
  ~basic_blocking_cluster() {
    if (s_ && s_->c) s_->c->close();  // posted to the client's strand; cannot fail
  }

  const cluster_options& options() const { return cl().options(); }
  const std::shared_ptr<node_store>& store() const { return cl().store(); }
  /// A snapshot of the counters (see cluster_stats).
  cluster_stats stats() const {
    cl();
    return s_->driver.call([s = s_] { return s->c->stats(); });
  }

  /// Makes every running operation complete with errc::cancelled and every later one fail
  /// the same way (as basic_cluster::close). Returns without waiting for running ones.
  void close() {
    if (s_) s_->driver.call([s = s_] { s->c->close(); });
  }

  /// Finds the leader and returns a connection to it with options().connection.database
  /// open (see basic_cluster::async_connect).
  template <class... E>
    requires detail::error_tail_of<E...>
  connection_type connect(E&... e) {
    return call_or<connection_type>([s = s_](auto token) {
      auto h = std::move(token.token);
      s->c->async_connect(with_diagnostics(
          [s, h = std::move(h)](std::exception_ptr ep, connection_type c) mutable {
            if (!ep) {
              // From here on the connection is used through its blocking forms only.
              const auto& impl = detail::connection_access::impl(c);
              impl->keep_alive = s;
              impl->release_timer();
            }
            std::move(h)(std::move(ep), std::move(c));
          }));
    }, [] { return connection_type(own_io_context, connection_options{}); }, e...);
  }

  /// The leader: its id and address.
  template <class... E>
    requires detail::error_tail_of<E...>
  node_info leader(E&... e) {
    return call<node_info>([s = s_](auto token) { s->c->async_leader(std::move(token)); }, e...);
  }

  /// Replaces the store's content with the leader's list of members; returns the list.
  template <class... E>
    requires detail::error_tail_of<E...>
  std::vector<node_info> refresh_store(E&... e) {
    return call<std::vector<node_info>>(
        [s = s_](auto token) { s->c->async_refresh_store(std::move(token)); }, e...);
  }

  /// The members of the cluster, as the leader knows them.
  template <class... E>
    requires detail::error_tail_of<E...>
  std::vector<node_info> cluster(E&... e) {
    return call<std::vector<node_info>>(
        [s = s_](auto token) { s->c->async_cluster(std::move(token)); }, e...);
  }

  /// Adds a running node, then assigns its role unless that is spare.
  template <class... E>
    requires detail::error_tail_of<E...>
  void add(const node_info& node, E&... e) {
    call<void>([s = s_, node](auto token) { s->c->async_add(node, std::move(token)); }, e...);
  }

  /// Same as add(node_info{id, address, role}).
  template <class... E>
    requires detail::error_tail_of<E...>
  void add(std::uint64_t id, std::string_view address, node_role role, E&... e) {
    add(node_info{id, std::string(address), role}, e...);
  }

  /// Same as add(node_info{id, address, node_role::voter}).
  template <class... E>
    requires detail::error_tail_of<E...>
  void add(std::uint64_t id, std::string_view address, E&... e) {
    add(node_info{id, std::string(address), node_role::voter}, e...);
  }

  /// Gives node `id` a new role.
  template <class... E>
    requires detail::error_tail_of<E...>
  void assign(std::uint64_t id, node_role role, E&... e) {
    call<void>([s = s_, id, role](auto token) { s->c->async_assign(id, role, std::move(token)); },
               e...);
  }

  /// Removes node `id` from the cluster.
  template <class... E>
    requires detail::error_tail_of<E...>
  void remove(std::uint64_t id, E&... e) {
    call<void>([s = s_, id](auto token) { s->c->async_remove(id, std::move(token)); }, e...);
  }

  /// Hands leadership over to voter `id` (0: raft chooses).
  template <class... E>
    requires detail::error_tail_of<E...>
  void transfer(std::uint64_t id, E&... e) {
    call<void>([s = s_, id](auto token) { s->c->async_transfer(id, std::move(token)); }, e...);
  }

  /// A copy of database `name` from the leader.
  template <class... E>
    requires detail::error_tail_of<E...>
  std::vector<dump_file> dump(std::string_view name, E&... e) {
    return call<std::vector<dump_file>>(
        [s = s_, name = std::string(name)](auto token) { s->c->async_dump(name, std::move(token)); },
        e...);
  }

  /// The failure domain and weight of the node at `address`.
  template <class... E>
    requires detail::error_tail_of<E...>
  node_metadata describe(std::string_view address, E&... e) {
    return call<node_metadata>([s = s_, a = std::string(address)](auto token) {
      s->c->async_describe(a, std::move(token));
    }, e...);
  }

  /// Sets the weight of the node at `address`.
  template <class... E>
    requires detail::error_tail_of<E...>
  void weight(std::string_view address, std::uint64_t w, E&... e) {
    call<void>([s = s_, a = std::string(address), w](auto token) {
      s->c->async_weight(a, w, std::move(token));
    }, e...);
  }

 private:
  struct state {
    detail::io_driver driver;         // destroyed last: the io_context outlives the client
    std::optional<cluster_type> c;
    ~state() {
      if (c) c->close();
    }
  };

  const cluster_type& cl() const {
    if (!s_) throw std::logic_error("dqlite: use of a moved-from blocking_cluster");
    return *s_->c;
  }

  template <class R, class Start, class... E>
  R call(Start start, E&... e) {
    return call_or<R>(std::move(start), detail::value_of<R>{}, e...);
  }

  // empty(): what a failed call returns.
  template <class R, class Start, class Empty, class... E>
  R call_or(Start start, Empty empty, E&... e) {
    cl();
    return s_->driver.template run_for<R>(std::move(start), std::move(empty), e...);
  }

  std::shared_ptr<state> s_;
};

/// The TCP form.
using blocking_cluster = basic_blocking_cluster<boost::asio::ip::tcp::socket>;

/// The unix-socket form (nodes reached through unix_connector()).
using unix_blocking_cluster = basic_blocking_cluster<boost::asio::local::stream_protocol::socket>;

}  // namespace dqlite
