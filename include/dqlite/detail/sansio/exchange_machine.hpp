// The request exchange as a sans-io state machine: housekeeping requests left behind by
// dropped objects, the request itself, its response frames, INTERRUPT and drain on
// cancellation, failure mapping, and the rule for when the connection must be closed.
// No Asio: an I/O loop (detail/exchange.hpp) performs the actions it asks for.
#pragma once

#include <dqlite/detail/config.hpp>
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
DQLITE_DECL bool answer_lost(const error_code& ec) noexcept;

/// For the start of the first answer on a connection, when it cannot be dqlite's (a header
/// that is not, or bytes that end before a header): a hint, appended to the message, when
/// those bytes look like another protocol's answer (text, such as an HTTP server's or
/// proxy's, or a TLS alert record: type 21, version 3.x, length 2); empty otherwise.
DQLITE_DECL std::string foreign_peer_hint(wire::bytes_view start);

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

  io_action resume(const io_event& ev);

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
  std::string peer_hint(wire::bytes_view start) const;

  static bool is_aborted(const error_code& ec) {
    return ec == boost::system::errc::operation_canceled;
  }

  // Writes the next housekeeping request, or the request itself.
  io_action next_write();

  // Cancelled: INTERRUPT the request, then drain its response until EMPTY.
  io_action start_interrupt();

  // A drain must end even when requests have no time bound.
  void bound_drain();

  io_action read_frames(bool cancel_requested);

  io_action finish_main();

  io_action finish_interrupt();

  // Bytes after a complete response that nothing asked for: the stream is out of step.
  io_action stray_bytes();

  error_code handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done);

  error_code unexpected(const wire::frame_header& h, const char* to);

  io_action transport_failed(const io_event& ev, const char* during);

  static bool is_eof_or_reset(const error_code& ec);

  io_action finish(error_code ec);

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

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/exchange_machine.ipp>
#endif
