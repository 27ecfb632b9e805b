// A signal between coroutines that run on one executor (a strand), built on a timer.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// Waiters suspend in wait() until notify_all(), or until `until` (never, by default).
/// It is a timer whose expiry is the longest wait: notify_all() cancels it, which wakes
/// every current waiter at once and makes no system call. A wait ends the same way for a
/// notification, the expiry, a cancellation of the waiter and a spurious wake-up: the
/// waiter checks the state it waits for, in a loop. Use it on one executor only.
class async_event : public boost::asio::steady_timer {
 public:
  using clock = std::chrono::steady_clock;

  /// (A template, so that only a unit that constructs one compiles the timer's
  /// construction.)
  template <class Executor>
    requires std::is_constructible_v<boost::asio::steady_timer, const Executor&, clock::time_point>
  explicit async_event(const Executor& ex, clock::time_point until = clock::time_point::max())
      : boost::asio::steady_timer(ex, until) {}

  /// Wakes every waiter now waiting; later waiters wait for the next call.
  void notify_all() noexcept { cancel(); }

  /// Ends at notify_all() or at the expiry; never throws for either. (A template, with a
  /// return type that is not deduced, so that only a unit that instantiates a wait
  /// compiles it: a deduced type would compile Asio's wait wherever a call is written.
  /// Token: the default only, as_tuple(use_awaitable).)
  template <class Token = decltype(boost::asio::as_tuple(boost::asio::use_awaitable))>
  boost::asio::awaitable<std::tuple<boost::system::error_code>> wait(Token token = {}) {
    return async_wait(std::move(token));
  }
};

}  // namespace dqlite::detail
