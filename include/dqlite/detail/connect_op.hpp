// Opening a connection: the connect machine (sansio/connect_machine.hpp) driven by the
// I/O loop, with the transport steps it needs (resolve, connect, TLS handshake).
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/sansio/connect_machine.hpp>
#include <dqlite/error.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
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

/// Preparing a TLS stream before its handshake (server name, host name verification):
/// specialised in dqlite/tls.hpp. The primary template is for streams that are not TLS.
template <class Stream>
struct tls_setup {
  static constexpr bool is_tls = false;
  static error_code prepare(Stream&, const std::string&) { return {}; }
};

/// The transport steps of opening a connection over Stream: resolve "host:port" (TCP) or
/// connect to a given endpoint, TCP_NODELAY, and the TLS handshake for TLS streams.
template <class Stream>
struct connect_steps {
  using tcp = boost::asio::ip::tcp;
  using socket_type = std::remove_cvref_t<decltype(std::declval<Stream&>().lowest_layer())>;
  using endpoint_type = typename socket_type::endpoint_type;
  static constexpr bool is_tcp = std::is_same_v<typename socket_type::protocol_type, tcp>;

  std::optional<endpoint_type> endpoint{};  ///< given instead of an address to resolve
  std::shared_ptr<tcp::resolver> resolver{};

  template <class Impl, class Machine, class Self>
  void connect(Impl& c, Machine& m, Self& self) {
    error_code ignored;
    c.stream.lowest_layer().close(ignored);  // a connection may be opened again
    if (endpoint) {
      c.stream.lowest_layer().async_connect(*endpoint, std::move(self));
      return;
    }
    if constexpr (is_tcp) {
      const auto& hp = m.target();
      resolver->async_resolve(hp.host, std::to_string(hp.port), std::move(self));
    }
  }

  /// The resolver's answer: connect to the first endpoint that accepts.
  template <class Impl, class Machine, class Self>
  void on_completion(Impl& c, Machine&, Self& self, error_code ec,
                     const tcp::resolver::results_type& results) {
    if (ec) return self(ec);
    boost::asio::async_connect(c.stream.lowest_layer(), results, std::move(self));
  }

  /// Connected to one of the resolved endpoints.
  template <class Impl, class Machine, class Self>
  void on_completion(Impl&, Machine&, Self& self, error_code ec, const tcp::endpoint&) {
    self(ec);
  }

  template <class Impl, class Machine, class Self>
  void tls_handshake(Impl& c, Machine& m, Self& self) {
    if constexpr (tls_setup<Stream>::is_tls) {
      std::string host = endpoint ? m.address() : m.target().host;
      // A failure is reported as a failed handshake (the op has already run I/O: this is
      // not the initiating function).
      if (auto e = tls_setup<Stream>::prepare(c.stream, host)) return self(e);
      c.stream.async_handshake(boost::asio::ssl::stream_base::client, std::move(self));
    }
  }

  auto timeout_hook() const {
    return [r = resolver] {
      if (r) r->cancel();
    };
  }
};

/// After the transport connect: TCP_NODELAY on TCP sockets, and TCP keepalive when
/// connection_options::tcp_keepalive asks for it.
template <class Stream>
void tune_socket(Stream& stream, const connection_options& opts) {
  using socket_type = std::remove_cvref_t<decltype(stream.lowest_layer())>;
  if constexpr (std::is_same_v<typename socket_type::protocol_type, boost::asio::ip::tcp>) {
    error_code ignored;
    auto& sock = stream.lowest_layer();
    sock.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    if (opts.tcp_keepalive.count() > 0) {
      sock.set_option(boost::asio::socket_base::keep_alive(true), ignored);
      const auto secs = static_cast<int>(
          std::min<std::chrono::seconds::rep>(opts.tcp_keepalive.count(), 32767));
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL)
      using idle = boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>;
      using interval = boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>;
      sock.set_option(idle(secs), ignored);
      sock.set_option(interval(secs), ignored);
#else
      (void)secs;  // the system's idle time and interval
#endif
    }
  }
}

/// The connect machine with TCP_NODELAY set once the transport is connected.
template <class Stream>
class stream_connect_machine : public connect_machine<tls_setup<Stream>::is_tls> {
  using base = connect_machine<tls_setup<Stream>::is_tls>;

 public:
  stream_connect_machine(connection_impl<Stream>& c, std::string address, bool resolve)
      : base(c, std::move(address), resolve), c_(&c) {}
  io_action resume(const io_event& ev) {
    if (ev.what == io_event::kind::connected && !ev.ec) tune_socket(c_->stream, c_->opts);
    return base::resume(ev);
  }

 private:
  connection_impl<Stream>* c_;
};

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
  boost::asio::async_compose<Handler, void(error_code, bool)>(
      io_loop_op<Stream, machine, steps_type>{c, machine(*c, std::move(address), resolve),
                                              timeout, std::move(steps)},
      h, c->stream);
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
