// Opening a connection: TCP connect, then the dqlite handshake and OPEN.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace dqlite::detail {

/// Encodes the protocol version followed by OPEN(database): one write, one round trip.
/// With an empty database name (a connection for cluster administration only) LEADER
/// takes the place of OPEN, so that the handshake still waits for the node to answer.
template <class Impl>
error_code encode_handshake(Impl& c) {
  wire::encode_handshake(c.wbuf);
  if (c.opts.database.empty()) {
    wire::encode_leader(c.wbuf);
    return {};
  }
  if (auto e = wire::encode_open(c.wbuf, c.opts.database)) {
    c.diag.assign("the database name contains a NUL byte");
    return e;
  }
  return {};
}

/// The response to encode_handshake: DB (see open_proc), or SERVER when no database is
/// opened. Either one makes the connection open.
struct handshake_proc {
  using result_type = void;
  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (!c.opts.database.empty()) return open_proc{}.on_frame(c, h, body, done);
    if (h.type != static_cast<std::uint8_t>(wire::response::server))
      return make_error_code(errc::unexpected_response);
    wire::server_response r;
    if (auto e = wire::decode_server(body, r)) return e;
    c.state = conn_state::open;
    done = true;
    return {};
  }
  template <class Impl>
  void on_failure(Impl& c) {
    c.close_transport();
  }
};

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

/// Connect (resolving "host:port" first, for TCP), TCP_NODELAY, the TLS handshake for TLS
/// streams, then the dqlite handshake + OPEN, all within connect_timeout.
template <class Impl>
struct connect_op {
  using tcp = boost::asio::ip::tcp;
  using stream_type = std::remove_cvref_t<decltype(std::declval<Impl&>().stream)>;
  using socket_type = std::remove_cvref_t<decltype(std::declval<Impl&>().stream.lowest_layer())>;
  using endpoint_type = typename socket_type::endpoint_type;
  static constexpr bool is_tcp = std::is_same_v<typename socket_type::protocol_type, tcp>;

  std::shared_ptr<Impl> c;
  std::string address;                  ///< as given, for messages (and resolving)
  std::optional<endpoint_type> endpoint{};  ///< given instead of an address to resolve
  std::shared_ptr<tcp::resolver> resolver{};
  host_port hp{};
  std::chrono::steady_clock::time_point deadline{};
  error_code init_ec{};
  enum class step : std::uint8_t {
    start,
    fail_posted,
    resolving,
    connecting,
    tls_handshaking,
    handshaking
  };
  step st = step::start;

  // Start (and the posted immediate failure).
  template <class Self>
  void operator()(Self& self) {
    if (st == step::fail_posted) return self.complete(init_ec);
    init_ec = c->begin_op(false);
    if (!init_ec) {
      c->close_transport();
      c->broken_by = {};
      c->peer = address;
      if (!endpoint) {
        init_ec = parse_address(address, hp);
        if (init_ec)
          c->diag.assign("invalid address '" + address + "': expected host:port or [ipv6]:port");
      }
      if (!init_ec) {
        init_ec = tls_setup<stream_type>::prepare(c->stream, endpoint ? address : hp.host);
        if (init_ec) c->diag.assign("setting up TLS for " + address + ": " + init_ec.message());
      }
      if (init_ec) c->busy = false;
    }
    if (init_ec) {
      st = step::fail_posted;
      boost::asio::post(std::move(self));
      return;
    }
    auto timeout = c->opts.connect_timeout;
    deadline = std::chrono::steady_clock::now() + timeout;
    if constexpr (is_tcp)
      if (!endpoint) resolver = std::make_shared<tcp::resolver>(c->stream.get_executor());
    if (timeout.count() > 0) {
      c->timer_armed = true;
      c->timer.expires_at(deadline);
      c->timer.async_wait([w = std::weak_ptr<Impl>(c), r = resolver, seq = c->op_seq](error_code ec) {
        if (ec) return;
        auto s = w.lock();
        if (!s || !s->busy || s->op_seq != seq) return;
        s->timed_out = true;
        if (r) r->cancel();
        error_code ignored;
        s->stream.lowest_layer().close(ignored);
      });
    }
    st = step::connecting;
    if (endpoint) {
      c->stream.lowest_layer().async_connect(*endpoint, std::move(self));
      return;
    }
    if constexpr (is_tcp) {
      st = step::resolving;
      resolver->async_resolve(hp.host, std::to_string(hp.port), std::move(self));
    }
  }

  template <class Self>
  void operator()(Self& self, error_code ec, tcp::resolver::results_type results) {
    if (ec) return fail(self, ec, "resolving");
    st = step::connecting;
    boost::asio::async_connect(c->stream.lowest_layer(), results, std::move(self));
  }

  template <class Self>
  void operator()(Self& self, error_code ec, const tcp::endpoint&) {
    connected(self, ec);
  }

  // A step that completes with an error code alone.
  template <class Self>
  void operator()(Self& self, error_code ec) {
    switch (st) {
      case step::connecting: return connected(self, ec);
      case step::tls_handshaking:
        if (ec) return fail(self, ec, "TLS handshake with");
        return dqlite_handshake(self);
      default: break;
    }
    // The dqlite handshake is done.
    if (ec && c->state != conn_state::open) c->close_transport();
    if (ec == make_error_code(errc::timeout))
      c->diag.assign("no answer to the handshake from " + address + " within " +
                     std::to_string(c->opts.connect_timeout.count()) + " ms (connect_timeout)");
    self.complete(ec);
  }

 private:
  template <class Self>
  void connected(Self& self, error_code ec) {
    if (ec) return fail(self, ec, "connecting to");
    if constexpr (is_tcp) {
      error_code ignored;
      c->stream.lowest_layer().set_option(tcp::no_delay(true), ignored);
    }
    if constexpr (tls_setup<stream_type>::is_tls) {
      st = step::tls_handshaking;
      c->stream.async_handshake(boost::asio::ssl::stream_base::client, std::move(self));
    } else {
      dqlite_handshake(self);
    }
  }

  template <class Self>
  void dqlite_handshake(Self& self) {
    // Hand over to the handshake exchange with what is left of the time.
    release();
    std::chrono::milliseconds left{0};
    if (c->opts.connect_timeout.count() > 0) {
      left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 1) left = std::chrono::milliseconds(1);
    }
    st = step::handshaking;
    auto cc = c;
    start_exchange(cc, handshake_proc{}, std::move(self), encode_handshake<Impl>, false, left);
  }

  void release() {
    if (c->timer_armed) {
      c->timer.cancel();
      c->timer_armed = false;
    }
    c->busy = false;
  }

  template <class Self>
  void fail(Self& self, error_code ec, const char* during) {
    bool timed_out = c->timed_out;
    release();
    c->close_transport();
    if (timed_out) {
      c->diag.assign(std::string(during) + " " + address + " took longer than " +
                     std::to_string(c->opts.connect_timeout.count()) + " ms (connect_timeout)");
      ec = make_error_code(errc::timeout);
    } else {
      c->diag.assign(std::string(during) + " " + address + ": " + ec.message());
    }
    self.complete(ec);
  }
};

}  // namespace dqlite::detail
