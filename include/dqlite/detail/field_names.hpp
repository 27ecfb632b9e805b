// Names of the fields of an aggregate, for mapping result columns by name.
//
// Boost.PFR >= 1.84 provides them (BOOST_PFR_CORE_NAME_ENABLED). Before that, this header
// has its own small fallback: on GCC the names are read at compile time from the
// signature of a function templated on a pointer to each field; on Clang (whose older
// versions do not accept such pointers as template arguments) they are read once per type
// at run time with __builtin_dump_struct. A type can also name its fields itself by
// specialising dqlite::field_names<T> (which also renames them).
#pragma once

// Only the parts used (tuple_size, get, and the field names where PFR has them): the
// umbrella <boost/pfr.hpp> also brings PFR's comparison and stream operators, and with
// them <locale> and <iomanip>, into every unit of the user's.
#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>
#if __has_include(<boost/pfr/core_name.hpp>)
#include <boost/pfr/core_name.hpp>
#endif

#include <array>
#include <cstdarg>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// Customization point: names of the fields of T as they appear in result columns.
///   template <> struct dqlite::field_names<my_row> {
///     static constexpr std::array<std::string_view, 2> value{"id", "display_name"};
///   };
template <class T>
struct field_names;

namespace detail {

template <class T>
concept has_custom_field_names = requires { field_names<T>::value; };

#if defined(BOOST_PFR_CORE_NAME_ENABLED) && BOOST_PFR_CORE_NAME_ENABLED
#define DQLITE_FIELD_NAMES_PFR 1
#elif defined(__clang__)
#define DQLITE_FIELD_NAMES_DUMP_STRUCT 1
#elif defined(__GNUC__)
#define DQLITE_FIELD_NAMES_PRETTY_FUNCTION 1
#endif

#if defined(DQLITE_FIELD_NAMES_PRETTY_FUNCTION)
template <class T>
struct field_name_wrapper {
  const T value;
};
// Declared, never defined: only the addresses of its fields are used.
template <class T>
extern const field_name_wrapper<T> field_name_fake_object;

template <auto Ptr>
consteval std::string_view signature_of() {
  return __PRETTY_FUNCTION__;
}

/// "... [with auto Ptr = (& fake<T>.wrapper<T>::value.T::field); ...]" -> "field"
consteval std::string_view name_from_signature(std::string_view s) {
  auto start = s.find("Ptr = ");
  if (start == std::string_view::npos) return {};
  auto end = s.find(';', start);
  if (end == std::string_view::npos) end = s.find(']', start);
  if (end == std::string_view::npos) return {};
  auto expr = s.substr(start, end - start);
  while (!expr.empty() && (expr.back() == ')' || expr.back() == ' ')) expr.remove_suffix(1);
  auto cut = expr.find_last_of(":.");
  if (cut == std::string_view::npos) return {};
  return expr.substr(cut + 1);
}

template <class T, std::size_t I>
consteval std::string_view compile_time_field_name() {
  return name_from_signature(signature_of<&boost::pfr::detail::sequence_tuple::get<I>(
      boost::pfr::detail::tie_as_tuple(field_name_fake_object<T>.value))>());
}
#endif

#if defined(DQLITE_FIELD_NAMES_DUMP_STRUCT)
struct dump_collector {
  static inline thread_local std::vector<std::string>* out = nullptr;
  static int callback(const char* fmt, ...) {
    // Top-level fields come as "TYPE NAME : " with no indentation.
    std::string_view f(fmt);
    if (out != nullptr && !f.empty() && f.front() != ' ' && f.size() > 3 &&
        f.substr(f.size() - 3) == " : ") {
      f.remove_suffix(3);
      auto sp = f.find_last_of(' ');
      out->emplace_back(sp == std::string_view::npos ? f : f.substr(sp + 1));
    }
    return 0;
  }
};

template <class T>
std::vector<std::string> dump_struct_names() {
  std::vector<std::string> names;
  T object{};
  dump_collector::out = &names;
  __builtin_dump_struct(&object, &dump_collector::callback);
  dump_collector::out = nullptr;
  return names;
}
#endif

/// The field names of aggregate T, or an empty array of views when they cannot be known
/// (then mapping by name reports it).
template <class T>
const std::array<std::string_view, boost::pfr::tuple_size_v<T>>& aggregate_field_names() {
  constexpr std::size_t n = boost::pfr::tuple_size_v<T>;
  if constexpr (has_custom_field_names<T>) {
    static const std::array<std::string_view, n> names = [] {
      std::array<std::string_view, n> a{};
      const auto& v = field_names<T>::value;
      static_assert(std::size(field_names<T>::value) == n,
                    "dqlite::field_names<T>::value must name every field of T");
      for (std::size_t i = 0; i < n; ++i) a[i] = v[i];
      return a;
    }();
    return names;
  } else {
#if defined(DQLITE_FIELD_NAMES_PFR)
    static const std::array<std::string_view, n> names = boost::pfr::names_as_array<T>();
    return names;
#elif defined(DQLITE_FIELD_NAMES_PRETTY_FUNCTION)
    static const std::array<std::string_view, n> names =
        []<std::size_t... I>(std::index_sequence<I...>) {
          return std::array<std::string_view, n>{compile_time_field_name<T, I>()...};
        }(std::make_index_sequence<n>{});
    return names;
#elif defined(DQLITE_FIELD_NAMES_DUMP_STRUCT)
    static const std::vector<std::string> storage = dump_struct_names<T>();
    static const std::array<std::string_view, n> names = [] {
      std::array<std::string_view, n> a{};
      if (storage.size() == n)
        for (std::size_t i = 0; i < n; ++i) a[i] = storage[i];
      return a;
    }();
    return names;
#else
    static const std::array<std::string_view, n> names{};
    return names;
#endif
  }
}

}  // namespace detail
}  // namespace dqlite
