// Opening a connection: the connect machine (sansio/connect_machine.hpp) driven by the
// I/O loop, with the transport steps it needs (resolve, connect, TLS handshake). The loop
// and the steps are in detail/exchange.hpp: one loop type runs exchanges and openings.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/sansio/connect_machine.hpp>
#include <dqlite/error.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// A unix socket endpoint: "@name" is an abstract socket (Linux), anything else a path.
inline boost::asio::local::stream_protocol::endpoint unix_endpoint(std::string_view path) {
  if (!path.empty() && path.front() == '@')
    return {std::string(1, '\0') + std::string(path.substr(1))};
  return {std::string(path)};
}

/// An endpoint as text, for messages.
inline std::string describe_endpoint(const boost::asio::local::stream_protocol::endpoint& ep) {
  std::string p = ep.path();
  if (!p.empty() && p.front() == '\0') p.front() = '@';
  return "unix:" + p;
}
template <class Endpoint>
std::string describe_endpoint(const Endpoint& ep) {
  auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

/// Opens connection c: to `address` ("host:port", resolved) or, when endpoint is set, to
/// that endpoint (address is then only for messages); h is called with the error code
/// (and the inline flag, see io_loop_op).
template <class Stream, class Handler>
void connect_loop(const std::shared_ptr<connection_impl<Stream>>& c, std::string address,
                  std::optional<typename connect_steps<Stream>::endpoint_type> endpoint,
                  Handler h) {
  using steps_type = connect_steps<Stream>;
  using machine = stream_connect_machine<Stream>;
  steps_type steps;
  const bool resolve = !endpoint;
  steps.endpoint = std::move(endpoint);
  if constexpr (steps_type::is_tcp)
    if (resolve) steps.resolver = std::make_shared<typename steps_type::tcp::resolver>(c->stream.get_executor());
  auto timeout = c->opts.connect_timeout;
  loop_machine<Stream> m;
  m.conn.reset(new typename loop_machine<Stream>::opening{machine(*c, std::move(address), resolve),
                                                          std::move(steps)});
  boost::asio::async_compose<Handler, void(error_code, bool)>(
      io_loop_op<Stream>{c, std::move(m), timeout}, h, c->stream);
}

/// connect_loop with the handler erased: compiled once per stream type. With
/// DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms are compiled once, in
/// the unit that includes <dqlite/src.hpp>.
template <class Stream>
void run_connect(const std::shared_ptr<connection_impl<Stream>>& c, std::string address,
                 std::optional<typename connect_steps<Stream>::endpoint_type> endpoint,
                 loop_handler<typename Stream::executor_type> h) {
  connect_loop(c, std::move(address), std::move(endpoint), std::move(h));
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>.
extern template void run_connect<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, std::string,
    std::optional<boost::asio::ip::tcp::endpoint>, loop_handler<boost::asio::any_io_executor>);
extern template void run_connect<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    std::string, std::optional<boost::asio::local::stream_protocol::endpoint>, loop_handler<boost::asio::any_io_executor>);
#endif

/// Starts opening connection c (see run_connect); the handler's executor, allocator and
/// cancellation slot are kept.
template <class Stream, class Handler>
void start_connect(const std::shared_ptr<connection_impl<Stream>>& c, std::string address,
                   std::optional<typename connect_steps<Stream>::endpoint_type> endpoint,
                   Handler&& handler) {
  using executor = typename Stream::executor_type;
  using handler_type = std::decay_t<Handler>;
  if constexpr (erasable_handler<handler_type, executor>) {
    auto* t = exchange_target<executor, no_machine, handler_type>::create(
        std::forward<Handler>(handler), c->stream.get_executor());
    run_connect(c, std::move(address), std::move(endpoint), loop_handler<executor>(t));
  } else {
    using completion = exchange_completion<no_machine, handler_type, executor,
                                           std::default_delete<no_machine>>;
    connect_loop(c, std::move(address), std::move(endpoint),
                 completion{nullptr, std::forward<Handler>(handler), c->stream.get_executor()});
  }
}

}  // namespace dqlite::detail
