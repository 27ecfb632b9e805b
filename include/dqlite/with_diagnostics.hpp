// A completion token adapter that turns (error_code, diagnostics) into an exception.
//
// Operations of this library complete with void(error_code, T...). Wrapped in
// with_diagnostics(token), a failed operation delivers a std::exception_ptr to a
// dqlite::error that carries both the code and the diagnostics text (the server's message),
// so throwing forms report the whole story. dqlite::use_awaitable (with_diagnostics of
// asio::use_awaitable) is the default token of every operation:
// `co_await conn.async_execute(...)` throws dqlite::error.
#pragma once

#include <dqlite/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite {

/// Token adapter: see the file comment.
template <class Token>
struct with_diagnostics_t {
  Token token;
};

/// Wraps a completion token so failures arrive as a dqlite::error exception (with the
/// diagnostics text) instead of a bare error_code.
template <class Token>
constexpr with_diagnostics_t<std::decay_t<Token>> with_diagnostics(Token&& token) {
  return {std::forward<Token>(token)};
}

/// use_awaitable whose exceptions carry the server's message.
inline constexpr with_diagnostics_t<boost::asio::use_awaitable_t<>> use_awaitable{};

/// The default completion token of every operation.
using default_token_t = with_diagnostics_t<boost::asio::use_awaitable_t<>>;

namespace detail {

/// The diagnostics an initiation exposes (through diagnostics_ptr(), a shared_ptr that
/// keeps them alive until the handler has read them), or none.
template <class Initiation>
std::shared_ptr<const diagnostics> diagnostics_of(const Initiation& init) {
  if constexpr (requires { init.diagnostics_ptr(); })
    return init.diagnostics_ptr();
  else
    return nullptr;
}

template <class Handler>
struct diag_handler {
  Handler handler;
  std::shared_ptr<const diagnostics> diag;

  template <class... A>
  void operator()(error_code ec, A&&... args) {
    std::exception_ptr ep;
    if (ec) ep = make_error_ptr(ec, diag.get());
    std::move(handler)(std::move(ep), std::forward<A>(args)...);
  }
};

template <class Initiation>
struct diag_initiation {
  Initiation init;

  template <class Handler, class... Args>
  void operator()(Handler&& h, Args&&... args) {
    auto d = diagnostics_of(init);
    std::move(init)(diag_handler<std::decay_t<Handler>>{std::forward<Handler>(h), std::move(d)},
                    std::forward<Args>(args)...);
  }
};

}  // namespace detail
}  // namespace dqlite

namespace boost::asio {

template <class Token, class... A>
struct async_result<::dqlite::with_diagnostics_t<Token>, void(::dqlite::error_code, A...)> {
  template <class Initiation, class RawToken, class... Args>
  static auto initiate(Initiation&& init, RawToken&& token, Args&&... args) {
    Token inner = token.token;
    return async_initiate<Token, void(std::exception_ptr, A...)>(
        ::dqlite::detail::diag_initiation<std::decay_t<Initiation>>{std::forward<Initiation>(init)},
        inner, std::forward<Args>(args)...);
  }
};

template <template <class, class> class Associator, class Handler, class Default>
struct associator<Associator, ::dqlite::detail::diag_handler<Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type get(
      const ::dqlite::detail::diag_handler<Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(const ::dqlite::detail::diag_handler<Handler>& h, const Default& d) noexcept
      -> decltype(Associator<Handler, Default>::get(h.handler, d)) {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio
