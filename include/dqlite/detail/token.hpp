// Splitting "parameters..., completion token" argument lists.
#pragma once

#include <dqlite/params.hpp>

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

/// Calls f(token, params...): the last argument is the completion token unless it can be
/// bound as a parameter, in which case the token is Default{}.
template <class Default, class F, class... Args>
auto with_token(F&& f, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return f(Default{});
  } else if constexpr (param_arg<last_t<Args...>>) {
    check_params<Args...>();
    return f(Default{}, std::forward<Args>(args)...);
  } else {
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      check_params<std::tuple_element_t<I, std::tuple<Args...>>...>();
      return f(std::get<sizeof...(Args) - 1>(std::move(all)), std::get<I>(std::move(all))...);
    }(std::make_index_sequence<sizeof...(Args) - 1>{});
  }
}

}  // namespace dqlite::detail
