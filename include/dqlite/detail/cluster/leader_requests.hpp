// Requests run on the leader (or on one node) by the cluster client, and the adapter that completes a cluster operation from its coroutine.
#pragma once

#include <dqlite/detail/cluster/discovery.hpp>
#include <dqlite/detail/coroutine_op.hpp>

#include <dqlite/address.hpp>
#include <dqlite/connection.hpp>
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

namespace dqlite::detail {

/// Runs request(conn) on a connection (no database) to the leader: the cached one, or a
/// new one. A "not leader" answer (and, for requests that change nothing, a broken
/// connection) makes it find the leader again and retry once.
template <class Stream, class T, class Request>
boost::asio::awaitable<cluster_result<T>> on_leader(std::shared_ptr<cluster_state<Stream>> s,
                                                    Request request, bool read_only) {
  using state = cluster_state<Stream>;
  for (int round = 0;; ++round) {
    std::optional<typename state::connection_type> conn;
    if (s->admin && s->admin->is_open() && !s->admin->operation_in_progress()) {
      conn = std::move(s->admin);
      s->admin.reset();
    } else {
      auto r = co_await connect_leader<Stream>(s, std::string());
      if (r.ec) co_return cluster_result<T>::fail(r.ec, std::move(r.diag));
      conn = std::move(r.value->conn);
    }
    auto t = co_await request(*conn);
    if (s->closed) co_return cluster_result<T>::cluster_closed();
    error_code ec = std::get<0>(t);
    if (!ec) {
      if (!s->admin && conn->is_open()) s->admin = std::move(conn);
      cluster_result<T> out;
      if constexpr (std::is_void_v<T>)
        out.value.emplace();
      else
        out.value.emplace(std::move(std::get<1>(t)));
      co_return out;
    }
    std::string text = error_text(ec, conn->diagnostics());
    // Cancelled by the caller: nothing is known about the leader.
    if (is_cancelled(ec)) co_return cluster_result<T>::fail(ec, std::move(text));
    const bool leader_moved = is_not_leader(ec);
    if (leader_moved || is_connection_error(ec)) s->last_leader.clear();
    if (round == 0 && (leader_moved || (read_only && is_connection_error(ec)))) continue;
    if (conn->is_open() && !s->admin) s->admin = std::move(conn);
    co_return cluster_result<T>::fail(ec, std::move(text));
  }
}

/// Runs request(conn) on a new connection (no database) to the node at `address`.
template <class Stream, class T, class Request>
boost::asio::awaitable<cluster_result<T>> on_node(std::shared_ptr<cluster_state<Stream>> s,
                                                  std::string address, Request request) {
  auto opts = s->opts.connection;
  opts.database = {};
  basic_connection<Stream> conn = s->make_connection(opts);
  if (auto ec = co_await s->connect(conn, address))
    co_return cluster_result<T>::fail(ec, error_text(ec, conn.diagnostics()));
  auto t = co_await request(conn);
  if (auto ec = std::get<0>(t))
    co_return cluster_result<T>::fail(ec, printable(address) + ": " + error_text(ec, conn.diagnostics()));
  cluster_result<T> out;
  if constexpr (std::is_void_v<T>)
    out.value.emplace();
  else
    out.value.emplace(std::move(std::get<1>(t)));
  co_return out;
}

/// The cluster client's part of its operations (coroutine_op): the state is kept, each
/// operation's text is the client's last diagnostics, and a connection handed to the
/// caller is the caller's (a failure hands over the empty one made at construction).
template <class Stream>
struct cluster_op_hooks : default_op_hooks {
  static constexpr bool keeps_state = true;
  static void finished(cluster_state<Stream>* s, const diagnostics& d) { s->last_diag = d; }
  template <class T>
  static T value(cluster_state<Stream>* s, cluster_result<T>& r) {
    if constexpr (std::is_same_v<T, basic_connection<Stream>>) {
      if (!r.value) return s->empty_connection();
      s->untrack(connection_access::impl(*r.value).get());  // the caller's from now on
      return std::move(*r.value);
    } else {
      return default_op_hooks::value<T>(s, r);
    }
  }
};

}  // namespace dqlite::detail
