// The pool's connections, one slot each, with an explicit state and the transitions that
// are allowed between states. No I/O and no connection objects: the pool core moves a
// slot on each event, and the counts the pool reports (and its growth decisions) are read
// from here, so that no counter is adjusted by hand across coroutines.
#pragma once

#include <dqlite/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace dqlite::detail {

/// Where one connection of a pool is.
enum class slot_state : std::uint8_t {
  connecting,  ///< being opened (leader discovery, connect, handshake)
  retry_wait,  ///< its open failed; waiting before the next attempt
  idle,        ///< open, in the pool, not in use
  checking,    ///< taken out of the pool to be checked (SELECT 1) before hand-out or in the background
  in_use,      ///< checked out by a caller
  resetting    ///< given back, being reset (ROLLBACK, FINALIZE) before it is idle again
};

inline const char* to_string(slot_state s) noexcept {
  switch (s) {
    case slot_state::connecting: return "connecting";
    case slot_state::retry_wait: return "retry_wait";
    case slot_state::idle: return "idle";
    case slot_state::checking: return "checking";
    case slot_state::in_use: return "in_use";
    case slot_state::resetting: return "resetting";
  }
  return "?";
}

/// Whether a slot may go from `from` to `to`.
///
///   connecting -> idle | in_use (opened: kept, or handed to a waiter) | retry_wait
///   retry_wait -> connecting
///   idle       -> checking | in_use
///   checking   -> in_use (passed, for an acquire) | idle (passed, or the acquire was
///                 cancelled: back unused)
///   in_use     -> resetting | idle | in_use (given back: reset first, or kept at once,
///                 or handed straight to a waiter)
///   resetting  -> idle | in_use
/// Any slot may end (its connection closed, or its open given up).
constexpr bool slot_transition_allowed(slot_state from, slot_state to) noexcept {
  using s = slot_state;
  switch (from) {
    case s::connecting: return to == s::idle || to == s::in_use || to == s::retry_wait;
    case s::retry_wait: return to == s::connecting;
    case s::idle: return to == s::checking || to == s::in_use;
    case s::checking: return to == s::in_use || to == s::idle;
    case s::in_use: return to == s::resetting || to == s::idle || to == s::in_use;
    case s::resetting: return to == s::idle || to == s::in_use;
  }
  return false;
}

/// The slots of a pool: an id per connection, its state, when it was opened and since when
/// it is in its state. A transition that the table does not allow, or from a state the slot
/// is not in, is a bug of the pool: it throws std::logic_error naming both states.
class slot_table {
 public:
  using clock = std::chrono::steady_clock;
  using id_type = std::uint64_t;

  struct slot {
    slot_state state = slot_state::connecting;
    clock::time_point born{};   ///< when its connection was opened (set on leaving connecting)
    clock::time_point since{};  ///< when it entered its state
    clock::time_point checked{};  ///< when it last passed a check while idle (or never)
  };

  /// A new slot, connecting.
  id_type open(clock::time_point now);

  /// Moves slot `id` from `from` to `to` at `now`.
  void move(id_type id, slot_state from, slot_state to, clock::time_point now);

  /// Slot `id` (in state `from`) ends.
  void end(id_type id, slot_state from);

  /// Slot `id` passed a check at `now` (its idle time goes on: `since` is kept).
  void mark_checked(id_type id, clock::time_point now);

  bool contains(id_type id) const;
  const slot& get(id_type id) const;

  std::size_t count(slot_state s) const noexcept { return counts_[index(s)]; }
  std::size_t total() const noexcept { return slots_.size(); }
  /// Being opened, or waiting to be opened again.
  std::size_t opening() const noexcept {
    return count(slot_state::connecting) + count(slot_state::retry_wait);
  }
  /// Out of the pool: checked out, being checked or reset.
  std::size_t busy() const noexcept {
    return count(slot_state::checking) + count(slot_state::in_use) +
           count(slot_state::resetting);
  }

 private:
  static constexpr std::size_t index(slot_state s) noexcept { return static_cast<std::size_t>(s); }

  slot& at(id_type id, slot_state expected);

  std::unordered_map<id_type, slot> slots_;
  std::size_t counts_[6] = {};
  id_type last_ = 0;
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/slots.ipp>
#endif
