// Splitting "parameters..., completion token" argument lists.
#pragma once

#include <dqlite/params.hpp>

#include <boost/asio/async_result.hpp>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

template <class... Args>
using last_t = std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>;

template <class... P>
constexpr void check_params() {
  static_assert((param_arg<P> && ...),
                "dqlite: unsupported parameter type. Supported: bool, integers, float, double, "
                "strings, byte vectors/spans (blobs), std::optional, nullptr/std::nullopt/"
                "dqlite::null, enums, system_clock time points, dqlite::value, std::tuple of "
                "those, dqlite::params_from(range of dqlite::value); or specialise "
                "dqlite::param_traits<T>. (The completion token, if any, must come last.)");
}

/// Calls f(token, params...): the last argument is the completion token when it is one for
/// the signature Sig (and cannot be bound as a parameter); otherwise every argument is a
/// parameter and the token is Default{}. An argument that is neither stops compilation
/// with the library's list of supported parameter types (not Asio's errors about a token).
template <class Default, class Sig, class F, class... Args>
auto with_token(F&& f, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return f(Default{});
  } else if constexpr (param_arg<last_t<Args...>>) {
    // Only with valid parameters is the operation instantiated: one error, the library's.
    if constexpr ((param_arg<Args> && ...))
      return f(Default{}, std::forward<Args>(args)...);
    else
      check_params<Args...>();
  } else if constexpr (!boost::asio::completion_token_for<last_t<Args...>, Sig>) {
    check_params<Args...>();  // fails: the last argument is neither a parameter nor a token
  } else {
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      using params = std::tuple<std::tuple_element_t<I, std::tuple<Args...>>...>;
      if constexpr ((param_arg<std::tuple_element_t<I, params>> && ...))
        return f(std::get<sizeof...(Args) - 1>(std::move(all)), std::get<I>(std::move(all))...);
      else
        check_params<std::tuple_element_t<I, params>...>();
    }(std::make_index_sequence<sizeof...(Args) - 1>{});
  }
}

}  // namespace dqlite::detail
