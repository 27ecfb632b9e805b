// The request exchange as a sans-io state machine: housekeeping requests left behind by
// dropped objects, the request itself, its response frames, INTERRUPT and drain on
// cancellation, failure mapping, and the rule for when the connection must be closed.
// No Asio: an I/O loop (detail/exchange.hpp) performs the actions it asks for.
#pragma once

#include <dqlite/detail/sansio/io.hpp>
#include <dqlite/detail/sansio/session.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// Completion signature for a processor's result type.
template <class R>
struct completion_sig {
  using type = void(error_code, R);
};
template <>
struct completion_sig<void> {
  using type = void(error_code);
};
template <class R>
using completion_sig_t = typename completion_sig<R>::type;

/// True for errors reported by a client-side check or by a FAILURE answer, as opposed to
/// those that mean the answer to a request was lost (transport, timeout, cancellation,
/// malformed response).
inline bool answer_lost(const error_code& ec) noexcept {
  if (!ec || ec.category() == server_category()) return false;
  if (ec.category() != client_category()) return true;  // transport errors
  switch (static_cast<errc>(ec.value())) {
    case errc::timeout:
    case errc::connection_closed:
    case errc::cancelled:
    case errc::interrupted: return true;
    default: return is_protocol_error(ec);
  }
}

/// For the start of the first answer on a connection, when it cannot be dqlite's (a header
/// that is not, or bytes that end before a header): a hint, appended to the message, when
/// those bytes look like another protocol's answer (text, such as an HTTP server's or
/// proxy's, or a TLS alert record: type 21, version 3.x, length 2); empty otherwise.
inline std::string foreign_peer_hint(wire::bytes_view start) {
  if (start.size() < 4) return {};
  if (start.size() >= 5 && start[0] == std::byte{0x15} && start[1] == std::byte{0x03} &&
      start[2] <= std::byte{0x04} && start[3] == std::byte{0x00} && start[4] == std::byte{0x02})
    return "; the answer is a TLS alert: the node may expect TLS (see dqlite/tls.hpp)";
  std::string text;
  for (std::byte b : start.first(std::min<std::size_t>(start.size(), 16))) {
    const auto c = static_cast<unsigned char>(b);
    if (c == '\r' || c == '\n' || c == '\t')
      text += ' ';
    else if (c >= 0x20 && c < 0x7f)
      text += static_cast<char>(c);
    else
      return {};
  }
  return "; the answer begins with the text \"" + text +
         "\": the peer may not be a dqlite node";
}

/// What every request exchange does, whatever processes its response: housekeeping, the
/// request, the response frames, INTERRUPT and drain, failure mapping. Compiled once (not
/// once per response processor); exchange_machine<Proc> (or a request's target,
/// request_target in exchange.hpp) supplies the processor's hooks.
class exchange_core {
 public:
  /// False once the request has been interrupted: from then on the operation runs to the
  /// end of the drain whatever is requested (the I/O loop disables cancellation).
  bool cancellable() const noexcept { return ph_ != phase::interrupt; }
  /// A bound for the I/O loop to arm its timer with from now, when a drain begins on an
  /// exchange that has no bound of its own; negative: that drain is over, no bound from
  /// now on; zero: leave the timer as it is.
  std::chrono::milliseconds take_rearm() noexcept { return std::exchange(rearm_, {}); }
  const exchange_params& params() const noexcept { return params_; }
  /// The request was written whole.
  bool sent() const noexcept { return sent_; }
  /// The exchange holds the connection (else it was refused: another operation runs).
  bool owns() const noexcept { return owns_; }
  /// It failed before its request could be encoded.
  bool failed_early() const noexcept { return static_cast<bool>(init_ec_); }
  /// On cancellation, it interrupts its request and drains the response (the connection
  /// stays usable); else a cancellation closes the connection.
  bool interruptible() const noexcept { return interruptible_; }
  /// It sends no request of its own (housekeeping only).
  bool housekeeping_only() const noexcept { return housekeeping_only_; }

  io_action resume(const io_event& ev) {
    switch (ev.what) {
      case io_event::kind::start:
        if (init_ec_) return finish(init_ec_);
        return next_write();
      case io_event::kind::wrote:
        if (ph_ == phase::main && ev.n == out_size_) sent_ = true;
        if (ev.ec) {
          // Cancelled once the whole request was out: it can still be interrupted.
          if (is_aborted(ev.ec) && !s_->timed_out && ph_ == phase::main && sent_ &&
              interruptible_ && ev.cancel_requested)
            return start_interrupt();
          return transport_failed(ev, "sending the request");
        }
        if (ph_ == phase::main && interruptible_ && ev.cancel_requested)
          return start_interrupt();
        break;
      case io_event::kind::read:
        if (ev.ec) {
          if (is_aborted(ev.ec) && !s_->timed_out && ph_ == phase::main && interruptible_ &&
              ev.cancel_requested)
            return start_interrupt();
          return transport_failed(ev, "reading the response");
        }
        s_->rbuf.commit(ev.n);
        break;
      default:
        s_->diag.assign("internal error: unexpected event in a request exchange");
        return finish(make_error_code(errc::invalid_argument));
    }
    return read_frames(ev.cancel_requested);
  }

 protected:
  exchange_core(session_state& s, error_code init_ec, bool owns, exchange_params params,
                bool interruptible, bool housekeeping_only)
      : s_(&s),
        init_ec_(init_ec),
        owns_(owns),
        interruptible_(interruptible),
        housekeeping_only_(housekeeping_only),
        params_(params) {}
  /// A machine made before its request can start (a request that waits for a probe of
  /// the server): begin() binds it to its session before it is resumed.
  exchange_core(bool interruptible, bool housekeeping_only)
      : s_(nullptr),
        owns_(false),
        interruptible_(interruptible),
        housekeeping_only_(housekeeping_only) {}
  /// What the first constructor takes, for a machine made with the second.
  void begin(session_state& s, error_code init_ec, bool owns, exchange_params params) noexcept {
    s_ = &s;
    init_ec_ = init_ec;
    owns_ = owns;
    params_ = params;
  }
  exchange_core(const exchange_core&) = default;
  exchange_core(exchange_core&&) = default;
  exchange_core& operator=(const exchange_core&) = default;
  exchange_core& operator=(exchange_core&&) = default;
  ~exchange_core() = default;

  // The response processor's part (see exchange_machine).
  virtual error_code on_frame(session_state& s, const wire::frame_header& h,
                              wire::bytes_view body, bool& done) = 0;
  virtual void on_failure(session_state&) {}
  virtual bool holds() const { return false; }
  virtual error_code map_error(session_state&, error_code ec, bool /*sent*/) { return ec; }

 private:
  /// What the frames being read answer.
  enum class phase : std::uint8_t {
    drain,     ///< housekeeping INTERRUPT: discard rows until EMPTY
    finalize,  ///< housekeeping FINALIZE: EMPTY (a failure is ignored)
    rollback,  ///< housekeeping ROLLBACK: RESULT (a failure is ignored)
    main,      ///< the request itself
    interrupt  ///< the request was interrupted: INTERRUPT sent, discard until EMPTY
  };

  // foreign_peer_hint for an answer before the connection is open (to the handshake): a
  // later answer comes from a peer that already spoke dqlite.
  std::string peer_hint(wire::bytes_view start) const {
    return s_->state == conn_state::open ? std::string() : foreign_peer_hint(start);
  }

  static bool is_aborted(const error_code& ec) {
    return ec == boost::system::errc::operation_canceled;
  }

  // Writes the next housekeeping request, or the request itself.
  io_action next_write() {
    // Bytes already received belong to a cursor's result: the one holding the connection,
    // or one dropped (the drain below reads past them). Anything else came unasked.
    if (!s_->rbuf.empty() && s_->holder == 0 && !s_->drain_pending) return stray_bytes();
    // Not while a cursor holds the connection: its result is still arriving.
    if (drain_bounded_) {  // a housekeeping drain just ended: its bound ends with it
      drain_bounded_ = false;
      rearm_ = std::chrono::milliseconds(-1);
    }
    if (params_.needs_open && s_->holder == 0 && s_->has_housekeeping()) {
      s_->hbuf.clear();
      if (s_->drain_pending) {
        s_->drain_pending = false;
        ph_ = phase::drain;
        wire::encode_interrupt(s_->hbuf, s_->db_id);
        bound_drain();
      } else if (!s_->finalize_pending.empty()) {
        ph_ = phase::finalize;
        wire::encode_finalize(s_->hbuf, s_->db_id, s_->finalize_pending.back());
        s_->finalize_pending.pop_back();
      } else {
        s_->rollback_pending = false;
        s_->may_tx = false;  // whatever its answer, no transaction is open after it
        ph_ = phase::rollback;
        wire::frame_mark m{};
        (void)wire::begin_sql_request(s_->hbuf, wire::request::exec_sql, s_->db_id, "ROLLBACK",
                                      m);
        wire::end_frame(s_->hbuf, m);
      }
      return io_action::write(wire::bytes_view(s_->hbuf));
    }
    ph_ = phase::main;
    if (housekeeping_only_) return finish({});
    if (s_->wbuf.empty()) {  // nothing to send: read on
      sent_ = true;
      return read_frames(false);
    }
    out_size_ = s_->wbuf.size();
    return io_action::write(wire::bytes_view(s_->wbuf));
  }

  // Cancelled: INTERRUPT the request, then drain its response until EMPTY.
  io_action start_interrupt() {
    ph_ = phase::interrupt;
    s_->hbuf.clear();
    wire::encode_interrupt(s_->hbuf, s_->db_id);
    bound_drain();
    return io_action::write(wire::bytes_view(s_->hbuf));
  }

  // A drain must end even when requests have no time bound.
  void bound_drain() {
    if (params_.timeout.count() <= 0 && s_->opts.interrupt_timeout.count() > 0) {
      rearm_ = s_->opts.interrupt_timeout;
      drain_bounded_ = true;
    }
  }

  io_action read_frames(bool cancel_requested) {
    for (;;) {
      auto avail = s_->rbuf.data();
      std::size_t need = wire::header_size;
      if (avail.size() >= wire::header_size) {
        wire::frame_header h;
        if (auto e = wire::decode_header(avail.first(wire::header_size), h,
                                         s_->opts.max_frame_size)) {
          if (e == make_error_code(errc::frame_too_large))
            s_->diag.assign("a frame of " + std::to_string(h.body_size()) + " bytes from " +
                            s_->peer + " exceeds max_frame_size (" +
                            std::to_string(s_->opts.max_frame_size) + ")" +
                            peer_hint(avail));
          else
            s_->diag.assign("response type " + std::to_string(h.type) + " is not defined" +
                            peer_hint(avail));
          return finish(e);
        }
        need = wire::header_size + h.body_size();
        if (avail.size() >= need) {
          bool done = false;
          error_code e = handle_frame(h, avail.subspan(wire::header_size, h.body_size()), done);
          s_->rbuf.consume(need);
          if (e) return finish(e);
          if (done) {
            if (ph_ == phase::main) return finish_main();
            if (ph_ == phase::interrupt) return finish_interrupt();
            return next_write();  // housekeeping answered: go on
          }
          continue;
        }
      }
      // A cancellation that arrived while a read was completing reached no operation:
      // act on it before reading on.
      if (cancel_requested && ph_ != phase::interrupt) {
        if (ph_ == phase::main && interruptible_) return start_interrupt();
        io_event aborted{io_event::kind::read,
                         error_code(ECANCELED, boost::system::system_category()), 0, true};
        return transport_failed(aborted, "reading the response");
      }
      return io_action::read(need);
    }
  }

  io_action finish_main() {
    const bool hold = holds();
    // A processor that ended the response early left the rest to the housekeeping drain.
    if (!hold && !s_->rbuf.empty() && !s_->drain_pending) return stray_bytes();
    return finish({});
  }

  io_action finish_interrupt() {
    if (!s_->rbuf.empty()) return stray_bytes();
    s_->diag.assign("the operation was cancelled; the query was interrupted and the "
                    "connection remains usable");
    return finish(make_error_code(errc::interrupted));
  }

  // Bytes after a complete response that nothing asked for: the stream is out of step.
  io_action stray_bytes() {
    s_->diag.assign("the server sent " + std::to_string(s_->rbuf.size()) +
                    " bytes after a complete response, unasked; the connection was closed");
    return finish(make_error_code(errc::trailing_bytes));
  }

  error_code handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done) {
    using wire::response;
    const bool failure = h.type == static_cast<std::uint8_t>(response::failure);
    switch (ph_) {
      case phase::main: break;
      case phase::drain:
      case phase::interrupt:
        // Rows of the interrupted query (and its failure, if any) until EMPTY.
        if (h.type == static_cast<std::uint8_t>(response::empty)) {
          done = true;
          return {};
        }
        if (failure || h.type == static_cast<std::uint8_t>(response::rows)) return {};
        return unexpected(h, "an interrupted query");
      case phase::finalize:
        if (failure || h.type == static_cast<std::uint8_t>(response::empty)) {
          done = true;
          return {};
        }
        return unexpected(h, "FINALIZE");
      case phase::rollback:
        if (failure) {
          // "no transaction is active" is the expected refusal; any other leaves the
          // transaction's state unknown: the connection cannot be handed on.
          wire::failure_response f;
          if (auto e = wire::decode_failure(body, f)) return e;
          const std::string text = wire::failure_text(f);
          done = true;
          if (text.find("no transaction is active") != std::string::npos) return {};
          s_->diag.assign("the ROLLBACK of a transaction left open failed (" +
                          text + "); the connection was closed");
          error_code e = make_server_error(f.code);
          s_->break_connection(e);
          return e;
        }
        if (h.type == static_cast<std::uint8_t>(response::result)) {
          done = true;
          return {};
        }
        return unexpected(h, "ROLLBACK");
    }
    if (failure) {
      wire::failure_response f;
      if (auto e = wire::decode_failure(body, f)) return e;
      on_failure(*s_);
      // The one place a server's message becomes the diagnostics: empty or misleading texts
      // ("not an error") are explained from the request that was sent.
      s_->diag.assign(describe_failure(f.code, wire::failure_text(f), wire::bytes_view(s_->wbuf)));
      done = true;
      return make_server_error(f.code);
    }
    error_code e = on_frame(*s_, h, body, done);
    if (e == make_error_code(errc::unexpected_response) && s_->diag.empty())
      s_->diag.assign("unexpected response type " + std::to_string(h.type));
    return e;
  }

  error_code unexpected(const wire::frame_header& h, const char* to) {
    s_->diag.assign("unexpected response type " + std::to_string(h.type) + " to " + to);
    return make_error_code(errc::unexpected_response);
  }

  io_action transport_failed(const io_event& ev, const char* during) {
    if (s_->timed_out) {
      if (drain_bounded_ && (ph_ == phase::interrupt || ph_ == phase::drain))
        s_->diag.assign("the server " + s_->peer + " went on sending an interrupted result for " +
                        std::to_string(s_->opts.interrupt_timeout.count()) +
                        " ms (interrupt_timeout); the connection was closed");
      else
        s_->diag.assign("no response from " + s_->peer + " within " +
                        std::to_string(params_.timeout.count()) + " ms");
      return finish(make_error_code(errc::timeout));
    }
    if (is_aborted(ev.ec)) {
      // Cancelled through the operation's slot, or the connection was closed (or destroyed)
      // while the operation ran.
      const std::string at = s_->peer.empty() ? std::string() : " (" + s_->peer + ")";
      s_->diag.assign(ev.cancel_requested || ph_ == phase::interrupt
                          ? std::string("the operation was cancelled while ") + during + at +
                                "; the connection was closed"
                          : std::string("the connection was closed while ") + during + at);
      return finish(make_error_code(errc::cancelled));
    }
    if (is_eof_or_reset(ev.ec)) {
      s_->diag.assign("the server " + s_->peer + " closed the connection while " + during +
                      peer_hint(s_->rbuf.data()));
      return finish(make_error_code(errc::connection_closed));
    }
    s_->diag.assign(std::string(during) + " (" + s_->peer + "): " + ev.ec.message());
    return finish(ev.ec);
  }

  static bool is_eof_or_reset(const error_code& ec) {
    // asio::error::eof belongs to asio's misc category: compare by name, so that this file
    // needs no Asio header.
    if (ec == boost::system::errc::connection_reset) return true;
    return ec.value() == 2 && std::string_view(ec.category().name()) == "asio.misc";
  }

  io_action finish(error_code ec) {
    if (owns_) {
      if (ec) ec = map_error(*s_, ec, sent_);
      if (ec && params_.may_write && sent_ && answer_lost(ec)) {
        s_->diag.assign("the request was sent but its answer was lost (" +
                        (s_->diag.empty() ? ec.message() : s_->diag.message()) +
                        "); it may or may not have been applied");
        ec = make_error_code(errc::outcome_unknown);
      }
      s_->note_tx_effect(params_.tx, ec, sent_);
      if (ec && !init_ec_ && is_connection_error(ec)) {
        if (ec.category() == server_category())
          s_->diag.assign(s_->diag.message() +
                          (is_not_leader(ec) || is_leadership_lost(ec)
                               ? " (the connection was closed: the node is not the leader)"
                               : " (the connection was closed: the node has no such database "
                                 "or statement any more, e.g. after a leadership change)"));
        s_->break_connection(ec);
      } else if (ec && s_->state != conn_state::open && !s_->broken_by) {
        s_->broken_by = ec;  // an opening (handshake, OPEN) that failed
      }
      const bool hold = !ec && holds();
      if (hold)
        s_->holder = params_.holder;
      else if (params_.holder != 0 && s_->holder == params_.holder)
        s_->holder = 0;
      s_->busy = false;
      s_->release_buffers();
    }
    return io_action::done(ec);
  }

  session_state* s_;
  error_code init_ec_;  ///< failure found before anything was sent
  bool owns_;           ///< this exchange holds the connection's busy flag
  bool interruptible_;  ///< on cancellation: INTERRUPT and drain, the connection stays usable
  bool housekeeping_only_;  ///< no request of its own
  exchange_params params_;
  phase ph_ = phase::main;
  bool sent_ = false;  ///< the request has been written whole
  bool drain_bounded_ = false;
  std::size_t out_size_ = 0;
  std::chrono::milliseconds rearm_{0};
};

// The optional parts of a response processor (see exchange_machine), with their defaults.
template <class Proc>
constexpr bool proc_interruptible() {
  if constexpr (requires { Proc::interruptible; })
    return Proc::interruptible;
  else
    return false;
}

template <class Proc>
constexpr bool proc_housekeeping_only() {
  return requires { Proc::housekeeping_only; };
}
template <class Proc>
void proc_on_failure(Proc& p, session_state& s) {
  if constexpr (requires { p.on_failure(s); }) p.on_failure(s);
}
template <class Proc>
bool proc_holds(const Proc& p) {
  if constexpr (requires { p.holds(); })
    return p.holds();
  else
    return false;
}
template <class Proc>
error_code proc_map_error(Proc& p, session_state& s, error_code ec, bool sent) {
  if constexpr (requires { p.map_error(s, ec, sent); })
    return p.map_error(s, ec, sent);
  else
    return ec;
}

/// One request/response exchange over a session. Proc: the response processor, with
///   using result_type = ...;
///   error_code on_frame(session_state&, const wire::frame_header&, wire::bytes_view body,
///                       bool& done);
///   result_type take();                         (absent when result_type is void)
///   void on_failure(session_state&) {}          (optional: a FAILURE response arrived)
///   bool holds() const;                         (optional: keep the connection claimed for
///                                                the holder after completing: a cursor
///                                                paused between frames)
///   static constexpr bool interruptible = true; (optional: on cancellation, INTERRUPT the
///                                                request and drain its response; the
///                                                connection stays usable)
///   error_code map_error(session_state&, error_code, bool sent);  (optional: rewrites a
///                                                failure)
///   static constexpr bool housekeeping_only = true; (optional: no request of its own)
/// The request is in session.wbuf when the machine starts, unless init_ec is set; an empty
/// wbuf means "nothing to send, read the rest of a response" (a cursor). Requests left
/// behind by dropped cursors, statements and transactions are sent first, each awaiting
/// its response.
template <class Proc>
class exchange_machine final : public exchange_core {
 public:
  using result_type = typename Proc::result_type;

  exchange_machine(session_state& s, Proc proc, error_code init_ec, bool owns,
                   exchange_params params)
      : exchange_core(s, init_ec, owns, params, proc_interruptible(),
                      proc_housekeeping_only<Proc>()),
        proc_(std::move(proc)) {}

  static constexpr bool proc_interruptible() { return detail::proc_interruptible<Proc>(); }

  Proc& proc() noexcept { return proc_; }
  result_type take() {
    if constexpr (!std::is_void_v<result_type>) return proc_.take();
  }

 private:
  error_code on_frame(session_state& s, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) override {
    return proc_.on_frame(s, h, body, done);
  }
  void on_failure(session_state& s) override { proc_on_failure(proc_, s); }
  bool holds() const override { return proc_holds(proc_); }
  error_code map_error(session_state& s, error_code ec, bool sent) override {
    return proc_map_error(proc_, s, ec, sent);
  }

  Proc proc_;
};

}  // namespace dqlite::detail
