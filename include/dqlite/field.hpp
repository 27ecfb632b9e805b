// Reading one received value into a C++ type.
//
// Supported in row types: bool, every integer type (range-checked), float, double,
// std::string, blobs (std::vector<std::byte>, std::vector<unsigned char>), std::optional<T>
// (NULL), enums with a fixed underlying type (via that integer type),
// std::chrono::system_clock time points (from UNIXTIME, INTEGER seconds, or ISO-8601 text),
// and dqlite::value. Other types: specialise dqlite::field_traits<T> with
//   static error_code read(const wire::value_view& v, T& out);
// returning errc::type_mismatch / unexpected_null / out_of_range / ... on failure.
//
// std::string_view has a reader too, but it views the received frame and is valid only
// while the frame is: only code that maps rows as they are decoded (a custom sink given to
// connection::query) may use it; fetch, fetchone, fetchval, fetch_into and cursors refuse
// it at compile time.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/detail/time.hpp>
#include <dqlite/error.hpp>
#include <dqlite/value.hpp>
#include <dqlite/wire/decode.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <ratio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dqlite {

/// Customization point: specialise for your own field types.
template <class T, class = void>
struct field_traits;

namespace detail {
template <class T>
struct is_time_point : std::false_type {};
template <class D>
struct is_time_point<std::chrono::time_point<std::chrono::system_clock, D>> : std::true_type {};
template <class T>
struct is_optional_field : std::false_type {};
template <class T>
struct is_optional_field<std::optional<T>> : std::true_type {};

inline error_code null_or_mismatch(const wire::value_view& v) {
  return make_error_code(v.is_null() ? errc::unexpected_null : errc::type_mismatch);
}
/// seconds + fraction (in [0, 1 s)) as a time point of Duration, rounded down; the
/// seconds fit Duration (seconds_fit).
template <class Duration>
std::chrono::time_point<std::chrono::system_clock, Duration> floor_time(
    std::chrono::sys_seconds secs, std::chrono::nanoseconds fraction) {
  using namespace std::chrono;
  if constexpr (std::ratio_less_equal_v<typename Duration::period, std::ratio<1>>)
    return time_point_cast<Duration>(secs) + floor<Duration>(fraction);
  else  // coarser than a second: the fraction cannot carry the time over a boundary
    return floor<Duration>(secs);
}
inline bool is_integer_like(value_type t) noexcept {
  return t == value_type::integer || t == value_type::unixtime || t == value_type::boolean;
}
}  // namespace detail

template <std::integral T>
struct field_traits<T> {
  static error_code read(const wire::value_view& v, T& out) {
    if (!detail::is_integer_like(v.type)) return detail::null_or_mismatch(v);
    if constexpr (std::is_same_v<T, bool>) {
      out = v.integer != 0;
    } else {
      std::int64_t i = v.integer;
      if constexpr (std::is_signed_v<T>) {
        if constexpr (sizeof(T) < sizeof(std::int64_t)) {
          if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max())
            return make_error_code(errc::out_of_range);
        }
      } else {
        if (i < 0) return make_error_code(errc::out_of_range);
        if constexpr (sizeof(T) < sizeof(std::int64_t)) {
          if (static_cast<std::uint64_t>(i) > std::numeric_limits<T>::max())
            return make_error_code(errc::out_of_range);
        }
      }
      out = static_cast<T>(i);
    }
    return {};
  }
};

template <std::floating_point T>
struct field_traits<T> {
  static error_code read(const wire::value_view& v, T& out) {
    if (v.type == value_type::floating) {
      out = static_cast<T>(v.floating);
      return {};
    }
    if (v.type == value_type::integer) {
      out = static_cast<T>(v.integer);
      return {};
    }
    return detail::null_or_mismatch(v);
  }
};

namespace detail {
/// An enum with a fixed underlying type: scoped (`enum class E`), or unscoped declared with
/// one (`enum E : int`). Only such an enum can hold every value of its underlying type;
/// in another, a value outside its enumerators' range is undefined behaviour.
template <class E>
concept enum_with_fixed_type =
    std::is_enum_v<E> && requires(std::underlying_type_t<E> u) { E{u}; };
}  // namespace detail

/// Enums with a fixed underlying type read as that integer type (range-checked).
template <class T>
struct field_traits<T, std::enable_if_t<std::is_enum_v<T>>> {
  static_assert(detail::enum_with_fixed_type<T>,
                "dqlite: an enum field needs a fixed underlying type: declare it `enum E : int "
                "{...}` or `enum class E {...}` (an unscoped enum without one cannot hold an "
                "integer outside its enumerators' range)");
  static error_code read(const wire::value_view& v, T& out) {
    std::underlying_type_t<T> u{};
    if (auto ec = field_traits<std::underlying_type_t<T>>::read(v, u)) return ec;
    out = static_cast<T>(u);
    return {};
  }
};

template <>
struct field_traits<std::string> {
  static error_code read(const wire::value_view& v, std::string& out) {
    if (v.type != value_type::text && v.type != value_type::iso8601)
      return detail::null_or_mismatch(v);
    out.assign(v.bytes.data(), v.bytes.size());
    return {};
  }
};

template <>
struct field_traits<std::string_view> {
  static error_code read(const wire::value_view& v, std::string_view& out) {
    if (v.type != value_type::text && v.type != value_type::iso8601)
      return detail::null_or_mismatch(v);
    out = v.bytes;
    return {};
  }
};

template <class B, class A>
  requires(std::is_same_v<B, std::byte> || std::is_same_v<B, unsigned char>)
struct field_traits<std::vector<B, A>> {
  static error_code read(const wire::value_view& v, std::vector<B, A>& out) {
    if (v.type != value_type::blob) return detail::null_or_mismatch(v);
    auto p = reinterpret_cast<const B*>(v.bytes.data());
    out.assign(p, p + v.bytes.size());
    return {};
  }
};

template <>
struct field_traits<value> {
  static error_code read(const wire::value_view& v, value& out);
};

/// A time point of the system clock, from UNIXTIME or INTEGER seconds, or from an ISO-8601
/// text (TEXT or ISO8601; see detail::parse_iso8601_time: years 0000 to 9999). A time the
/// Duration cannot hold (a system_clock::time_point of nanoseconds spans the years 1677 to
/// 2262) is errc::out_of_range; a text that is no date/time is errc::invalid_time. A finer
/// part than Duration is rounded down (floor).
template <class Duration>
struct field_traits<std::chrono::time_point<std::chrono::system_clock, Duration>> {
  using tp = std::chrono::time_point<std::chrono::system_clock, Duration>;
  static error_code read(const wire::value_view& v, tp& out) {
    using namespace std::chrono;
    switch (v.type) {
      case value_type::unixtime:
      case value_type::integer:
        if (!detail::seconds_fit<Duration>(v.integer)) return make_error_code(errc::out_of_range);
        out = detail::floor_time<Duration>(sys_seconds{seconds{v.integer}}, nanoseconds{0});
        return {};
      case value_type::iso8601:
        // NULL as released servers send it (the decoder already reads it as NULL; a value
        // made by hand follows the same rule).
        if (v.bytes.empty()) return make_error_code(errc::unexpected_null);
        [[fallthrough]];
      case value_type::text: {
        auto t = detail::parse_iso8601_time(v.bytes);
        if (!t) return make_error_code(errc::invalid_time);
        if (!detail::seconds_fit<Duration>(t->seconds.time_since_epoch().count(),
                                           t->fraction.count() != 0))
          return make_error_code(errc::out_of_range);
        out = detail::floor_time<Duration>(t->seconds, t->fraction);
        return {};
      }
      default: return detail::null_or_mismatch(v);
    }
  }
};

template <class T>
struct field_traits<std::optional<T>> {
  static error_code read(const wire::value_view& v, std::optional<T>& out) {
    if (v.is_null()) {
      out.reset();
      return {};
    }
    T inner{};
    auto ec = field_traits<T>::read(v, inner);
    if (ec == make_error_code(errc::unexpected_null)) {
      // The DATETIME NULL quirk (ISO8601 ""), seen through an optional: it is NULL.
      out.reset();
      return {};
    }
    if (ec) return ec;
    out = std::move(inner);
    return {};
  }
};

/// A type a received value can be read into.
template <class T>
concept field = requires(const wire::value_view& v, T& out) {
  { field_traits<T>::read(v, out) } -> std::same_as<error_code>;
};

namespace detail {
/// The name of a system_clock time point type, for messages.
template <class T>
std::string time_point_name() {
  using P = typename T::duration::period;
  using R = typename T::duration::rep;
  std::string unit;
  if constexpr (std::is_same_v<P, std::nano>) unit = "nanoseconds";
  else if constexpr (std::is_same_v<P, std::micro>) unit = "microseconds";
  else if constexpr (std::is_same_v<P, std::milli>) unit = "milliseconds";
  else if constexpr (std::is_same_v<P, std::ratio<1>>) unit = "seconds";
  else if constexpr (std::is_same_v<P, std::ratio<60>>) unit = "minutes";
  else if constexpr (std::is_same_v<P, std::ratio<3600>>) unit = "hours";
  else if constexpr (std::is_same_v<P, std::ratio<86400>>) unit = "days";
  else unit = "duration<" + std::to_string(P::num) + "/" + std::to_string(P::den) + " s>";
  std::string out = "std::chrono::sys_time<" + unit;
  if constexpr (std::is_floating_point_v<R>) out += " (floating-point)";
  else if constexpr (sizeof(R) < 8) out += " (" + std::to_string(8 * sizeof(R)) + "-bit)";
  return out + ">";
}
}  // namespace detail

/// The C++ name of a field type, for messages.
template <class T>
std::string field_type_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::int8_t>) return "int8_t";
  else if constexpr (std::is_same_v<T, std::uint8_t>) return "uint8_t";
  else if constexpr (std::is_same_v<T, std::int16_t>) return "int16_t";
  else if constexpr (std::is_same_v<T, std::uint16_t>) return "uint16_t";
  else if constexpr (std::is_same_v<T, std::int32_t>) return "int32_t";
  else if constexpr (std::is_same_v<T, std::uint32_t>) return "uint32_t";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "int64_t";
  else if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64_t";
  else if constexpr (std::is_integral_v<T>) return "integer";
  else if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else if constexpr (std::is_same_v<T, std::string>) return "std::string";
  else if constexpr (std::is_same_v<T, std::string_view>) return "std::string_view";
  else if constexpr (std::is_same_v<T, value>) return "dqlite::value";
  else if constexpr (std::is_same_v<T, std::vector<std::byte>>) return "std::vector<std::byte>";
  else if constexpr (std::is_same_v<T, std::vector<unsigned char>>) return "std::vector<unsigned char>";
  else if constexpr (std::is_enum_v<T>) return "enum";
  else if constexpr (detail::is_time_point<T>::value) return detail::time_point_name<T>();
  else if constexpr (detail::is_optional_field<T>::value)
    return "std::optional<" + field_type_name<typename T::value_type>() + ">";
  else return "user type";
}

}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/field.ipp>
#endif
