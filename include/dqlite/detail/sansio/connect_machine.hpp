// Opening a connection as a sans-io state machine: the transport connect (and the TLS
// handshake for TLS streams), then the dqlite handshake and OPEN as one exchange. No Asio:
// the I/O loop (detail/exchange.hpp) resolves, connects and runs the TLS handshake when
// asked to.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/sansio/exchange_machine.hpp>
#include <dqlite/detail/sansio/io.hpp>
#include <dqlite/detail/sansio/session.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>

#include <optional>
#include <string>
#include <utility>

namespace dqlite::detail {

/// Encodes the protocol version followed by OPEN(database): one write, one round trip.
/// With an empty database name (a connection for cluster administration only) LEADER
/// takes the place of OPEN, so that the handshake still waits for the node to answer.
inline error_code encode_handshake(session_state& c) {
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

/// OPEN: the DB response opens the connection.
struct open_proc {
  using result_type = void;
  error_code on_frame(session_state& c, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) {
    if (h.type != static_cast<std::uint8_t>(wire::response::db))
      return make_error_code(errc::unexpected_response);
    wire::db_response r;
    if (auto e = wire::decode_db(body, r)) return e;
    c.db_id = r.id;
    c.state = conn_state::open;
    ++c.generation;
    done = true;
    return {};
  }
  void on_failure(session_state& c) {
    c.close_session();  // no database is open: the connection is of no use
  }
};

/// The response to encode_handshake: DB (see open_proc), or SERVER when no database is
/// opened. Either one makes the connection open.
struct handshake_proc {
  using result_type = void;
  error_code on_frame(session_state& c, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) {
    if (!c.opts.database.empty()) return open_proc{}.on_frame(c, h, body, done);
    if (h.type != static_cast<std::uint8_t>(wire::response::server))
      return make_error_code(errc::unexpected_response);
    wire::server_response r;
    if (auto e = wire::decode_server(body, r)) return e;
    c.state = conn_state::open;
    done = true;
    return {};
  }
  void on_failure(session_state& c) { c.close_session(); }
};

/// Transport connect, TLS handshake (when Tls), then the dqlite handshake + OPEN, all
/// within connect_timeout (the I/O loop arms one timer for the whole operation).
/// `resolve`: the address is "host:port" to parse and resolve (else the I/O loop has an
/// endpoint to connect to).
template <bool Tls>
class connect_machine {
 public:
  using result_type = void;

  connect_machine(session_state& s, std::string address, bool resolve)
      : s_(&s), address_(std::move(address)), resolve_(resolve) {}

  static constexpr bool interruptible() { return false; }
  bool cancellable() const noexcept { return true; }
  std::chrono::milliseconds take_rearm() noexcept {
    return handshake_ ? handshake_->take_rearm() : std::chrono::milliseconds{0};
  }
  /// The host and port to resolve (valid once the machine asked to connect).
  const host_port& target() const noexcept { return hp_; }
  const std::string& address() const noexcept { return address_; }

  io_action resume(const io_event& ev) {
    switch (ev.what) {
      case io_event::kind::start: return start();
      case io_event::kind::connected:
        if (ev.ec) return fail(ev.ec, "connecting to", ev.cancel_requested);
        if constexpr (Tls) return io_action::tls_handshake();
        return start_handshake();
      case io_event::kind::handshaken:
        if (ev.ec) return fail(ev.ec, "TLS handshake with", ev.cancel_requested);
        return start_handshake();
      case io_event::kind::wrote:
      case io_event::kind::read:
        if (!handshake_) break;
        {
          io_action a = handshake_->resume(ev);
          if (a.what == io_action::kind::done) return handshake_done(a.ec);
          return a;
        }
    }
    fail(make_error_code(errc::invalid_argument), "connecting to");
    s_->diag.assign("internal error: unexpected event while connecting");
    return io_action::done(make_error_code(errc::invalid_argument));
  }

 private:
  io_action start() {
    if (auto e = s_->begin_op(false)) return io_action::done(e);  // busy: not ours to undo
    s_->state = conn_state::closed;
    s_->rbuf.clear();
    s_->reset_session();
    s_->broken_by = {};
    s_->peer = address_;
    if (resolve_ && parse_address(address_, hp_)) {
      s_->busy = false;
      s_->diag.assign("invalid address '" + address_ + "': expected host:port or [ipv6]:port");
      s_->broken_by = make_error_code(errc::invalid_address);
      return io_action::done(s_->broken_by);
    }
    return io_action::connect();
  }

  io_action start_handshake() {
    s_->wbuf.clear();
    error_code e = encode_handshake(*s_);
    exchange_params p{false, s_->opts.connect_timeout, 0, false};
    handshake_.emplace(*s_, handshake_proc{}, e, true, p);
    io_action a = handshake_->resume(io_event{});
    if (a.what == io_action::kind::done) return handshake_done(a.ec);
    return a;
  }

  io_action handshake_done(error_code ec) {
    if (ec && s_->state != conn_state::open) {
      s_->state = conn_state::closed;  // broken_by: set by the exchange's finish
      s_->request_close();
    }
    if (ec == make_error_code(errc::timeout)) {
      // The transport was connected, and the handshake and OPEN went out together (one
      // write) or were on their way: no answer came.
      std::string sent = s_->opts.database.empty()
                             ? std::string("LEADER request")
                             : "OPEN of database '" + std::string(s_->opts.database) + "'";
      s_->diag.assign("connected to " + address_ + ", but no answer to the dqlite handshake and " +
                      sent + " within " + std::to_string(s_->opts.connect_timeout.count()) +
                      " ms (connect_timeout): the node may be stuck or overloaded, or the peer "
                      "may not be a dqlite node (an HTTP server, for one, waits for a request "
                      "line that never comes)");
    }
    return io_action::done(ec);
  }

  io_action fail(error_code ec, const char* during, bool cancel_requested = false) {
    s_->busy = false;
    s_->state = conn_state::closed;
    s_->request_close();
    if (s_->timed_out) {
      s_->diag.assign(std::string(during) + " " + address_ + " took longer than " +
                      std::to_string(s_->opts.connect_timeout.count()) +
                      " ms (connect_timeout)");
      ec = make_error_code(errc::timeout);
    } else if (cancel_requested && ec == boost::system::errc::operation_canceled) {
      s_->diag.assign("the operation was cancelled (" + std::string(during) + " " + address_ +
                      "); the connection was closed");
      ec = make_error_code(errc::cancelled);
    } else {
      s_->diag.assign(std::string(during) + " " + address_ + ": " + ec.message());
    }
    s_->broken_by = ec;
    return io_action::done(ec);
  }

  session_state* s_;
  std::string address_;
  bool resolve_;
  host_port hp_{};
  std::optional<exchange_machine<handshake_proc>> handshake_;
};

}  // namespace dqlite::detail
