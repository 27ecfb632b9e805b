// Binding C++ values as statement parameters.
//
// Supported out of the box: bool, every integer type, float, double, std::string,
// std::string_view, const char*, blobs (std::vector<std::byte>, std::vector<unsigned char>,
// std::span of bytes), std::nullopt, nullptr, dqlite::null, std::optional<T>, enums (as their
// underlying integer), std::chrono::system_clock time points (as ISO-8601 text), and
// dqlite::value. Other types: specialise dqlite::param_traits<T> with
//   static error_code bind(wire::tuple_writer& w, const T& v);
// that calls exactly one of w.integer / floating / text / blob / null / iso8601 / boolean.
#pragma once

#include <dqlite/detail/ranges.hpp>
#include <dqlite/detail/time.hpp>
#include <dqlite/error.hpp>
#include <dqlite/value.hpp>
#include <dqlite/wire/encode.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace dqlite {

/// Customization point: specialise for your own parameter types.
template <class T, class = void>
struct param_traits;

namespace detail {
inline error_code bind_text(wire::tuple_writer& w, std::string_view s) {
  if (!wire::is_valid_text(s)) return make_error_code(errc::invalid_argument);
  w.text(s);
  return {};
}
}  // namespace detail

template <std::integral T>
struct param_traits<T> {
  static error_code bind(wire::tuple_writer& w, T v) {
    if constexpr (std::is_same_v<T, bool>) {
      w.integer(v ? 1 : 0);
    } else if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (v > static_cast<T>(std::numeric_limits<std::int64_t>::max()))
        return make_error_code(errc::out_of_range);
      w.integer(static_cast<std::int64_t>(v));
    } else {
      w.integer(static_cast<std::int64_t>(v));
    }
    return {};
  }
};

template <std::floating_point T>
struct param_traits<T> {
  static error_code bind(wire::tuple_writer& w, T v) {
    w.floating(static_cast<double>(v));
    return {};
  }
};

template <class T>
struct param_traits<T, std::enable_if_t<std::is_enum_v<T>>> {
  static error_code bind(wire::tuple_writer& w, T v) {
    return param_traits<std::underlying_type_t<T>>::bind(w, static_cast<std::underlying_type_t<T>>(v));
  }
};

template <>
struct param_traits<std::string_view> {
  static error_code bind(wire::tuple_writer& w, std::string_view v) { return detail::bind_text(w, v); }
};
template <>
struct param_traits<std::string> {
  static error_code bind(wire::tuple_writer& w, const std::string& v) { return detail::bind_text(w, v); }
};
template <>
struct param_traits<const char*> {
  static error_code bind(wire::tuple_writer& w, const char* v) {
    if (v == nullptr) {
      w.null();
      return {};
    }
    return detail::bind_text(w, v);
  }
};
template <>
struct param_traits<char*> : param_traits<const char*> {};
template <std::size_t N>
struct param_traits<char[N]> {
  static error_code bind(wire::tuple_writer& w, const char (&v)[N]) {
    return detail::bind_text(w, std::string_view(v));
  }
};

namespace detail {
template <class T>
inline constexpr bool is_byte_like_v =
    std::is_same_v<T, std::byte> || std::is_same_v<T, unsigned char> ||
    std::is_same_v<T, std::uint8_t>;
}  // namespace detail

template <class T, class A>
  requires detail::is_byte_like_v<T>
struct param_traits<std::vector<T, A>> {
  static error_code bind(wire::tuple_writer& w, const std::vector<T, A>& v) {
    w.blob(std::as_bytes(std::span(v)));
    return {};
  }
};
template <class T, std::size_t E>
  requires detail::is_byte_like_v<std::remove_const_t<T>>
struct param_traits<std::span<T, E>> {
  static error_code bind(wire::tuple_writer& w, std::span<T, E> v) {
    w.blob(std::as_bytes(v));
    return {};
  }
};

template <>
struct param_traits<std::nullptr_t> {
  static error_code bind(wire::tuple_writer& w, std::nullptr_t) {
    w.null();
    return {};
  }
};
template <>
struct param_traits<std::nullopt_t> {
  static error_code bind(wire::tuple_writer& w, std::nullopt_t) {
    w.null();
    return {};
  }
};
template <>
struct param_traits<null_t> {
  static error_code bind(wire::tuple_writer& w, null_t) {
    w.null();
    return {};
  }
};

template <class T>
struct param_traits<std::optional<T>> {
  static error_code bind(wire::tuple_writer& w, const std::optional<T>& v) {
    if (!v) {
      w.null();
      return {};
    }
    return param_traits<T>::bind(w, *v);
  }
};

template <class Duration>
struct param_traits<std::chrono::time_point<std::chrono::system_clock, Duration>> {
  static error_code bind(wire::tuple_writer& w,
                         std::chrono::time_point<std::chrono::system_clock, Duration> tp) {
    // The ISO-8601 form of SQLite's date and time functions has four-digit years: a time
    // outside them could not be read back.
    using namespace std::chrono;
    const auto y = static_cast<int>(year_month_day{floor<days>(tp)}.year());
    if (y < detail::iso8601_min_year || y > detail::iso8601_max_year)
      return make_error_code(errc::out_of_range);
    char buf[detail::iso8601_max_size];
    w.iso8601(detail::format_iso8601(tp, buf));
    return {};
  }
};

template <>
struct param_traits<value> {
  static error_code bind(wire::tuple_writer& w, const value& v) {
    switch (v.type()) {
      case value_type::null: w.null(); return {};
      case value_type::integer:
      case value_type::unixtime: w.integer(*v.if_int64()); return {};
      case value_type::boolean: w.integer(*v.if_int64() != 0 ? 1 : 0); return {};
      case value_type::floating: w.floating(*v.if_double()); return {};
      case value_type::text: return detail::bind_text(w, *v.if_text());
      case value_type::iso8601:
        if (!wire::is_valid_text(*v.if_text())) return make_error_code(errc::invalid_argument);
        w.iso8601(*v.if_text());
        return {};
      case value_type::blob: w.blob(std::span(*v.if_blob())); return {};
    }
    return make_error_code(errc::invalid_argument);
  }
};

/// A type that can be bound as one parameter.
template <class T>
concept parameter = requires(wire::tuple_writer& w, const std::remove_cvref_t<T>& v) {
  { param_traits<std::remove_cvref_t<T>>::bind(w, v) } -> std::same_as<error_code>;
};

/// Parameters given as a runtime range of dqlite::value (for query builders).
template <class Range>
struct param_range {
  const Range& range;
};

/// Wraps a runtime range of dqlite::value so it binds as that many parameters.
template <std::ranges::sized_range Range>
  requires std::convertible_to<std::ranges::range_reference_t<const Range&>, const value&>
param_range<Range> params_from(const Range& r) {
  return {r};
}

namespace detail {

template <class T>
struct is_param_range : std::false_type {};
template <class R>
struct is_param_range<param_range<R>> : std::true_type {};

template <class T>
struct is_tuple : std::false_type {};
template <class... T>
struct is_tuple<std::tuple<T...>> : std::true_type {};

/// One argument of a parameter list: a single parameter, a std::tuple of parameters, or a
/// param_range.
template <class T>
concept param_arg = parameter<T> || is_tuple<std::remove_cvref_t<T>>::value ||
                    is_param_range<std::remove_cvref_t<T>>::value;

template <class T>
std::size_t param_count(const T& v) {
  if constexpr (is_tuple<T>::value)  // elements may be tuples or ranges themselves
    return std::apply([](const auto&... e) { return (std::size_t{0} + ... + param_count(e)); }, v);
  else if constexpr (is_param_range<T>::value)
    return static_cast<std::size_t>(std::ranges::size(v.range));
  else
    return 1;
}

template <class T>
error_code bind_one(wire::tuple_writer& w, const T& v) {
  if constexpr (is_tuple<T>::value) {
    error_code ec;
    std::apply([&](const auto&... e) { ((ec ? void() : void(ec = bind_one(w, e))), ...); }, v);
    return ec;
  } else if constexpr (is_param_range<T>::value) {
    for (const value& e : v.range)
      if (auto ec = param_traits<value>::bind(w, e)) return ec;
    return {};
  } else {
    return param_traits<T>::bind(w, v);
  }
}

/// Writes the parameter tuple of args (nothing when there are none) into a frame begun
/// at m. On error the caller discards the frame.
template <class... Args>
error_code write_params(wire::buffer& b, wire::frame_mark m, const Args&... args) {
  std::size_t n = (std::size_t{0} + ... + param_count(args));
  if (n == 0) return {};
  if (n > wire::max_params) return make_error_code(errc::too_many_parameters);
  wire::tuple_writer w(b, n);
  error_code ec;
  ((ec ? void() : void(ec = bind_one(w, args))), ...);
  if (ec) return ec;
  wire::set_frame_schema(b, m, w.schema());
  return {};
}

}  // namespace detail
}  // namespace dqlite
