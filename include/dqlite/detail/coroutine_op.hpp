// The asynchronous operations of the cluster client and the pool: a coroutine run on the
// object's strand, whose cluster_result completes the caller's handler.
#pragma once

#include <dqlite/detail/cluster/result.hpp>
#include <dqlite/detail/sansio/exchange_machine.hpp>
#include <dqlite/error.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// The parts in which the cluster client's and the pool's operations differ:
///   static constexpr bool keeps_state;  the operation holds the state until it completes
///                                       (else the coroutine alone holds it while it runs)
///   static error_code absent(diagnostics&);  the state is null (a moved-from object);
///                                            optional: without it, it never is
///   static void finished(State*, const diagnostics&);  after each operation (the state
///                                                      is null unless keeps_state)
///   static T value(State*, cluster_result<T>&);  the value handed to the handler, also
///                                                on failure
struct default_op_hooks {
  static constexpr bool keeps_state = false;
  template <class State>
  static void finished(State*, const diagnostics&) {}
  template <class T, class State>
  static T value(State*, cluster_result<T>& r) {
    return r.value ? std::move(*r.value) : T{};
  }
};

/// Completes the caller's handler, with the signature completion_sig_t<T>, from `body(s)`:
/// a coroutine returning awaitable<cluster_result<T>>, spawned on the state's executor
/// `s->ex`. An exception escaping it and the caller's cancellation are settled as
/// settle_cancelled says; the text goes to `diag`.
template <class State, class T, class Body, class Hooks>
struct coroutine_op {
  std::shared_ptr<State> s;
  std::shared_ptr<diagnostics> diag;
  Body body;

  template <class Self>
  void operator()(Self& self) {
    if constexpr (requires(diagnostics& d) { Hooks::absent(d); }) {
      if (!s) {
        error_code ec = Hooks::absent(*diag);
        if constexpr (std::is_void_v<T>)
          self.complete(ec);
        else
          self.complete(ec, T{});
        return;
      }
    }
    auto ex = s->ex;
    if constexpr (Hooks::keeps_state)
      boost::asio::co_spawn(ex, body(s), std::move(self));
    else
      boost::asio::co_spawn(ex, body(std::move(s)), std::move(self));
  }

  template <class Self>
  void operator()(Self& self, std::exception_ptr ep, cluster_result<T> r) {
    settle_cancelled(r, ep, self.get_cancellation_state().cancelled());
    diag->assign(r.diag);
    Hooks::finished(s.get(), *diag);
    if constexpr (std::is_void_v<T>)
      self.complete(r.ec);
    else
      self.complete(r.ec, Hooks::template value<T>(s.get(), r));
  }
};

/// The initiation of a coroutine_op: runs on the state's executor (or, for a null state,
/// completes on the handler's).
template <class State, class T, class Hooks>
struct coroutine_initiation {
  std::shared_ptr<State> s;
  std::shared_ptr<diagnostics> diag = std::make_shared<diagnostics>();
  std::shared_ptr<const diagnostics> diagnostics_ptr() const { return diag; }

  template <class Handler, class Body>
  void operator()(Handler&& h, Body body) {
    using sig = completion_sig_t<T>;
    using op = coroutine_op<State, T, Body, Hooks>;
    if (s) {
      auto ex = s->ex;
      boost::asio::async_compose<Handler, sig>(op{s, diag, std::move(body)}, h, ex);
    } else {
      boost::asio::async_compose<Handler, sig>(op{s, diag, std::move(body)}, h);
    }
  }
};

/// Runs `body(state)` for `token` as an operation with the signature completion_sig_t<T>.
template <class T, class Hooks, class State, class Token, class Body>
auto initiate_coroutine_op(std::shared_ptr<State> s, Token& token, Body body) {
  return boost::asio::async_initiate<Token, completion_sig_t<T>>(
      coroutine_initiation<State, T, Hooks>{std::move(s)}, token, std::move(body));
}

}  // namespace dqlite::detail
