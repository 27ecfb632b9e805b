// Opening a connection: TCP connect, then the dqlite handshake and OPEN.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <memory>
#include <string>

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

/// Resolve, connect (TCP_NODELAY), then handshake + OPEN, all within connect_timeout.
template <class Impl>
struct tcp_connect_op {
  using tcp = boost::asio::ip::tcp;

  std::shared_ptr<Impl> c;
  std::string address;
  std::shared_ptr<tcp::resolver> resolver{};
  host_port hp{};
  std::chrono::steady_clock::time_point deadline{};
  error_code init_ec{};
  enum class step : std::uint8_t { start, fail_posted, resolving, connecting, handshaking };
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
      init_ec = parse_address(address, hp);
      if (init_ec) {
        c->diag.assign("invalid address '" + address + "': expected host:port or [ipv6]:port");
        c->busy = false;
      }
    }
    if (init_ec) {
      st = step::fail_posted;
      auto ex = c->stream.get_executor();
      boost::asio::post(ex, std::move(self));
      return;
    }
    auto timeout = c->opts.connect_timeout;
    deadline = std::chrono::steady_clock::now() + timeout;
    resolver = std::make_shared<tcp::resolver>(c->stream.get_executor());
    if (timeout.count() > 0) {
      c->timer_armed = true;
      c->timer.expires_at(deadline);
      c->timer.async_wait([w = std::weak_ptr<Impl>(c), r = resolver, seq = c->op_seq](error_code ec) {
        if (ec) return;
        auto s = w.lock();
        if (!s || !s->busy || s->op_seq != seq) return;
        s->timed_out = true;
        r->cancel();
        error_code ignored;
        s->stream.lowest_layer().close(ignored);
      });
    }
    st = step::resolving;
    resolver->async_resolve(hp.host, std::to_string(hp.port), std::move(self));
  }

  template <class Self>
  void operator()(Self& self, error_code ec, tcp::resolver::results_type results) {
    if (ec) return fail(self, ec, "resolving");
    st = step::connecting;
    boost::asio::async_connect(c->stream, results, std::move(self));
  }

  template <class Self>
  void operator()(Self& self, error_code ec, const tcp::endpoint&) {
    if (ec) return fail(self, ec, "connecting to");
    error_code ignored;
    c->stream.set_option(tcp::no_delay(true), ignored);
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

  // Handshake done.
  template <class Self>
  void operator()(Self& self, error_code ec) {
    if (ec && c->state != conn_state::open) c->close_transport();
    if (ec == make_error_code(errc::timeout))
      c->diag.assign("no answer to the handshake from " + address + " within " +
                     std::to_string(c->opts.connect_timeout.count()) + " ms (connect_timeout)");
    self.complete(ec);
  }

 private:
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
