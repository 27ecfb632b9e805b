// The vocabulary between the sans-io state machines and the I/O loop that drives them: a
// machine is resumed with an event (what the last I/O did) and answers with an action
// (what to do next). No Asio.
#pragma once

#include <dqlite/detail/sql_text.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/decode.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace dqlite::detail {

/// What the I/O loop reports to a machine.
struct io_event {
  enum class kind : std::uint8_t {
    start,       ///< the operation starts
    wrote,       ///< a write completed (n: bytes written, all of them unless ec)
    read,        ///< a read completed (n: bytes received into the read buffer)
    connected,   ///< the transport connect completed
    handshaken,  ///< the TLS handshake completed
  };
  kind what = kind::start;
  error_code ec{};
  std::size_t n = 0;
  /// The operation's cancellation was requested (its cancellation slot was emitted) and
  /// cancellation is still enabled.
  bool cancel_requested = false;
};

/// What a machine asks the I/O loop to do.
struct io_action {
  enum class kind : std::uint8_t {
    write,          ///< write all of `out`, then resume with wrote
    read,           ///< read some bytes into the session's read buffer (prepare(need)), then
                    ///< resume with read
    connect,        ///< connect the transport (resolve, connect), then resume with connected
    tls_handshake,  ///< the TLS handshake (TLS streams), then resume with handshaken
    done,           ///< the operation is complete with `ec`
  };
  kind what = kind::done;
  wire::bytes_view out{};
  std::size_t need = 0;
  error_code ec{};

  static io_action write(wire::bytes_view b) { return {kind::write, b, 0, {}}; }
  static io_action read(std::size_t need) { return {kind::read, {}, need, {}}; }
  static io_action connect() { return {kind::connect, {}, 0, {}}; }
  static io_action tls_handshake() { return {kind::tls_handshake, {}, 0, {}}; }
  static io_action done(error_code ec) { return {kind::done, {}, 0, ec}; }
};

/// How an exchange runs.
struct exchange_params {
  bool needs_open = true;                ///< the database must be open (false: handshake)
  std::chrono::milliseconds timeout{0};  ///< bound on the whole exchange; <= 0: none
  std::uint64_t holder = 0;              ///< id of the cursor running it (0: none)
  /// The request may change the database or the cluster: once it is written, a failure
  /// before its answer leaves its outcome unknown (errc::outcome_unknown).
  bool may_write = false;
  /// What the request does to the connection's transaction (see session_state::may_tx).
  tx_effect tx = tx_effect::none;
};

}  // namespace dqlite::detail
