// Mapping result rows into C++ types, decided at compile time.
//
// Row types:
//   - an aggregate struct (through Boost.PFR): columns matched to fields BY NAME, so the
//     order of the select list does not matter and `SELECT *` works;
//   - dqlite::by_position<T> for an aggregate T: columns matched to fields in order;
//   - std::tuple<...> and std::pair<...>: in order;
//   - a single field type (int, std::string, std::optional<double>...): the first column;
//   - dqlite::row: dynamic values.
// Field types: see field.hpp. The column-to-field map is computed once per result set;
// a mismatch is one error whose diagnostics list every problem.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/detail/field_names.hpp>
#include <dqlite/error.hpp>
#include <dqlite/field.hpp>
#include <dqlite/options.hpp>
#include <dqlite/value.hpp>
#include <dqlite/wire/decode.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

/// Maps the columns of a result to the fields of aggregate T in order (not by name).
/// async_fetch<by_position<T>> returns std::vector<T>.
template <class T>
struct by_position {
  using type = T;
};

namespace detail {

template <class T>
struct always_false : std::false_type {};

/// Instantiated for a field type the library cannot read: the compiler's message names
/// the type (as the template argument of this struct).
template <class FieldType>
struct unsupported_field_type {
  static_assert(always_false<FieldType>::value,
                "dqlite: unsupported field type in a row type. Supported: bool, integers, "
                "float, double, std::string, std::vector<std::byte>, "
                "std::vector<unsigned char>, std::optional<T>, enums, "
                "std::chrono::system_clock time points, dqlite::value; or specialise "
                "dqlite::field_traits<T>. The type is named in 'unsupported_field_type<...>' "
                "above.");
  static constexpr bool value = false;
};

template <class F>
constexpr bool check_field() {
  if constexpr (field<F>)
    return true;
  else
    return unsupported_field_type<F>::value;
}

template <class T>
struct is_tuple_like : std::false_type {};
template <class... A>
struct is_tuple_like<std::tuple<A...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};

template <class T>
struct is_by_position : std::false_type {};
template <class T>
struct is_by_position<by_position<T>> : std::true_type {};

enum class row_kind { scalar, tuple, aggregate_by_name, aggregate_by_position, dynamic };

template <class T>
constexpr row_kind kind_of() {
  if constexpr (std::is_same_v<T, row>)
    return row_kind::dynamic;
  else if constexpr (is_by_position<T>::value)
    return row_kind::aggregate_by_position;
  else if constexpr (field<T>)
    return row_kind::scalar;
  else if constexpr (is_tuple_like<T>::value)
    return row_kind::tuple;
  else if constexpr (std::is_aggregate_v<T> && std::is_class_v<T>)
    return row_kind::aggregate_by_name;
  else
    return row_kind::scalar;  // reported by check_field below
}

template <class T>
struct stored_type {
  using type = T;
};
template <class T>
struct stored_type<by_position<T>> {
  using type = T;
};

/// Number of fields and access to field I of a row object, whatever its kind.
template <class Obj, bool Tuple = is_tuple_like<Obj>::value>
struct fields_of {
  static constexpr std::size_t size = boost::pfr::tuple_size_v<Obj>;
  template <std::size_t I>
  static auto& get(Obj& o) {
    return boost::pfr::get<I>(o);
  }
  template <std::size_t I>
  static const auto& get(const Obj& o) {
    return boost::pfr::get<I>(o);
  }
  template <std::size_t I>
  using type = boost::pfr::tuple_element_t<I, Obj>;
};
template <class Obj>
struct fields_of<Obj, true> {
  static constexpr std::size_t size = std::tuple_size_v<Obj>;
  template <std::size_t I>
  static auto& get(Obj& o) {
    return std::get<I>(o);
  }
  template <std::size_t I>
  static const auto& get(const Obj& o) {
    return std::get<I>(o);
  }
  template <std::size_t I>
  using type = std::tuple_element_t<I, Obj>;
};

template <class Obj, std::size_t... I>
constexpr bool check_all_fields(std::index_sequence<I...>) {
  using F = fields_of<Obj>;
  return (check_field<typename F::template type<I>>() && ...);
}

template <class T>
constexpr bool check_row_type() {
  constexpr row_kind kind = kind_of<T>();
  if constexpr (kind == row_kind::scalar)
    return check_field<T>();
  else if constexpr (kind == row_kind::dynamic)
    return true;
  else {
    using Obj = typename stored_type<T>::type;
    return check_all_fields<Obj>(std::make_index_sequence<fields_of<Obj>::size>{});
  }
}

DQLITE_DECL std::string quote(std::string_view s);

template <class V>
struct is_byte_vector : std::false_type {};
template <class B, class A>
  requires(std::is_same_v<B, std::byte> || std::is_same_v<B, unsigned char>)
struct is_byte_vector<std::vector<B, A>> : std::true_type {};

/// Heap memory a field holds: the bytes of strings, blobs and values; for a user type,
/// what field_traits<F>::heap_bytes(const F&) says when it has that function, else none.
template <class F>
std::size_t field_heap_bytes(const F& f) noexcept {
  if constexpr (is_optional_field<F>::value)
    return f ? field_heap_bytes<typename F::value_type>(*f) : 0;
  else if constexpr (std::is_same_v<F, std::string> || std::is_same_v<F, value> ||
                     is_byte_vector<F>::value)
    return heap_bytes(f);
  else if constexpr (requires {
                       { field_traits<F>::heap_bytes(f) } -> std::convertible_to<std::size_t>;
                     })
    return field_traits<F>::heap_bytes(f);
  else
    return 0;
}

/// The parts of a row_mapper that do not depend on the row type (column matching, the
/// checks of direct reading, error messages): compiled once, not once per row type.
class row_mapper_base {
 public:
  /// Whether columns are those map() was given (every frame of a result repeats them).
  bool same_columns(const std::vector<std::string_view>& columns) const noexcept {
    return std::equal(columns.begin(), columns.end(), saved_names_.begin(), saved_names_.end());
  }

 protected:
  static constexpr std::uint64_t no_header = ~std::uint64_t{0};

  /// Problems of a single-value row type with `columns` columns ("" when none).
  DQLITE_DECL static std::string match_scalar(std::size_t columns, bool reject_extra);

  /// Matches fields named `names` to columns of the same name (col[i]: field i's column).
  /// Problems, "; "-separated ("" when none).
  DQLITE_DECL static std::string match_by_name(const std::vector<std::string_view>& columns,
                                               std::span<const std::string_view> names,
                                               std::span<std::size_t> col, bool reject_extra);

  /// Matches `col.size()` fields to the first columns, in order.
  DQLITE_DECL static std::string match_by_position(std::size_t columns, std::span<std::size_t> col,
                                                   bool reject_extra);

  /// Ends map(): fails with errc::column_mismatch when there are problems, else remembers
  /// the columns and plans direct reading. col: the fields' columns (empty for a
  /// single-value or dynamic row type); natural: the row type's natural_header().
  DQLITE_DECL error_code finish_map(const std::vector<std::string_view>& columns,
                                    const std::string& problems, diagnostics& diag,
                                    std::span<const std::size_t> col, std::size_t field_count,
                                    std::uint64_t natural);

  /// The start of reading the row ahead of rr directly: false when it cannot be. Else
  /// header is the row's header, p its first value, and natural whether every column
  /// has its field's natural type (natural_header_). A header that is not natural has
  /// been checked valid.
  bool begin_direct(const wire::rows_reader& rr, const std::byte*& header, const std::byte*& p,
                    bool& natural) {
    if (!direct_ || rr.column_count() != columns_) return false;
    p = rr.row_data();
    const std::byte* const end = rr.data_end();
    const std::size_t hw = rr.header_words();
    if (static_cast<std::size_t>(end - p) < hw * 8) return false;
    header = p;
    p += hw * 8;
    natural = false;
    if (hw == 1) {
      const std::uint64_t h = wire::load_u64(header);
      // Every column has the wire type its field naturally reads: the types are known,
      // the header is valid.
      if (h == natural_header_) {
        natural = true;
        return true;
      }
      // Rows of a result mostly repeat one header: check it only when it changes.
      if (h != valid_header_) {
        if (!wire::row_header_valid(header, columns_, 1)) return false;
        valid_header_ = h;
      }
    } else if (!std::equal(header, header + hw * 8, valid_headers_.begin(),
                           valid_headers_.end())) {
      if (!wire::row_header_valid(header, columns_, hw)) return false;
      valid_headers_.assign(header, header + hw * 8);
    }
    return true;
  }

  /// Skips the values of columns [col, to), checking them as next() would.
  static bool skip_columns(const std::byte* header, const std::byte*& p, const std::byte* end,
                           std::size_t& col, std::size_t to) noexcept {
    wire::value_view v;
    for (; col < to; ++col)
      if (wire::decode_value(wire::row_type_code(header, col), p, end, v) != errc{}) return false;
    return true;
  }

  /// Whether the columns after the last field's are valid (when there are any).
  bool skip_rest(const std::byte* header, const std::byte*& p, const std::byte* end,
                 std::size_t col) const noexcept {
    return col == columns_ || skip_columns(header, p, end, col, columns_);
  }

  /// The message of a value that field `field_index` (named `name`, or "" to name it by
  /// its index), of type `type_name`, could not read from column `col`.
  DQLITE_DECL std::string describe_value_error(const error_code& ec, std::size_t field_index,
                                               std::string_view name, std::size_t col,
                                               const std::string& type_name,
                                               const wire::value_view& v) const;

  /// Sets diag to the problems of row `row_index`.
  DQLITE_DECL static void row_problems(diagnostics& diag, std::size_t row_index,
                                       const std::string& problems);

  std::vector<std::string> saved_names_;
  // Direct reading (see finish_map): the column count, the last row header found valid.
  bool direct_ = false;
  std::size_t columns_ = 0;
  std::uint64_t valid_header_ = no_header;
  std::vector<std::byte> valid_headers_;
  std::uint64_t natural_header_ = no_header;
};

/// Reads rows of one result into T (see the file comment).
template <class T>
class row_mapper : public row_mapper_base {
 public:
  using object_type = typename stored_type<T>::type;
  static constexpr row_kind kind = kind_of<T>();
  static_assert(check_row_type<T>(), "dqlite: the row type has a field type that cannot be read");

  /// Matches the columns once per result set. Fails with errc::column_mismatch listing
  /// every problem.
  error_code map(const std::vector<std::string_view>& columns, const connection_options& opts,
                 diagnostics& diag) {
    std::string problems;
    std::span<const std::size_t> col;
    if constexpr (kind == row_kind::dynamic) {
      names_ = std::make_shared<const column_names>(columns.begin(), columns.end());
    } else if constexpr (kind == row_kind::scalar) {
      problems = match_scalar(columns.size(), opts.reject_extra_columns);
    } else if constexpr (kind == row_kind::aggregate_by_name) {
      const auto& names = aggregate_field_names<object_type>();
      problems = match_by_name(columns, names, col_, opts.reject_extra_columns);
      field_names_ = names;
      col = col_;
    } else {
      problems = match_by_position(columns.size(), col_, opts.reject_extra_columns);
      col = col_;
    }
    return finish_map(columns, problems, diag, col, field_count(), natural_header());
  }

  /// Heap memory a row object holds (its fields' strings, blobs and values); the object's
  /// own size is not included.
  static std::size_t heap_bytes(const object_type& o) noexcept {
    if constexpr (kind == row_kind::dynamic) {
      return detail::heap_bytes(o);
    } else if constexpr (kind == row_kind::scalar) {
      return field_heap_bytes<T>(o);
    } else {
      using F = fields_of<object_type>;
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return (std::size_t{0} + ... +
                field_heap_bytes<typename F::template type<I>>(F::template get<I>(o)));
      }(std::make_index_sequence<F::size>{});
    }
  }

  /// Reads the row ahead of rr (rr.at_row() was true) straight from the frame into out,
  /// without an intermediate value array, and moves rr past it. Returns false, leaving rr
  /// where it was, when it cannot: the row is then to be read with rr.next() and read(),
  /// which report any problem with their usual errors and messages. It accepts exactly
  /// the rows those accept, with the same values; out may be partly assigned on false.
  bool read_direct(wire::rows_reader& rr, object_type& out) {
    if constexpr (kind == row_kind::dynamic) {
      return false;
    } else {
      const std::byte* header = nullptr;
      const std::byte* p = nullptr;
      bool natural = false;
      if (!begin_direct(rr, header, p, natural)) return false;
      const std::byte* const end = rr.data_end();
      if (natural) {
        if (!read_natural(p, end, out)) return false;
        rr.skip_row_to(p);
        return true;
      }
      std::size_t col = 0;
      bool ok;
      if constexpr (kind == row_kind::scalar) {
        ok = direct_field<T>(header, p, end, col, 0, out);
      } else {
        using F = fields_of<object_type>;
        ok = [&]<std::size_t... I>(std::index_sequence<I...>) {
          return (direct_field<typename F::template type<I>>(header, p, end, col, col_[I],
                                                             F::template get<I>(out)) &&
                  ...);
        }(std::make_index_sequence<F::size>{});
      }
      if (!ok || !skip_rest(header, p, end, col)) return false;
      rr.skip_row_to(p);
      return true;
    }
  }

  /// Reads one row. On failure, diag lists every field of the row that failed.
  error_code read(std::span<const wire::value_view> values, object_type& out, diagnostics& diag,
                  std::size_t row_index) {
    if constexpr (kind == row_kind::dynamic) {
      out = row::from_views(names_, values);
      return {};
    } else if constexpr (kind == row_kind::scalar) {
      auto ec = field_traits<T>::read(values[0], out);
      if (ec)
        row_problems(diag, row_index,
                     describe_value_error(ec, 0, {}, 0, field_type_name<T>(), values[0]));
      return ec;
    } else {
      using F = fields_of<object_type>;
      error_code first;
      std::string problems;
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (read_field<I>(values, out, first, problems), ...);
      }(std::make_index_sequence<F::size>{});
      if (first) row_problems(diag, row_index, problems);
      return first;
    }
  }

 private:
  // ---- direct reading ----

  /// The wire type code a field type naturally reads (0: none).
  template <class F>
  static constexpr unsigned natural_code() {
    if constexpr (is_optional_field<F>::value)
      return natural_code<typename F::value_type>();
    else if constexpr (std::is_same_v<F, bool>)
      return 11;
    else if constexpr (std::is_integral_v<F> || std::is_enum_v<F>)
      return 1;
    else if constexpr (std::is_floating_point_v<F>)
      return 2;
    else if constexpr (std::is_same_v<F, std::string> || std::is_same_v<F, std::string_view>)
      return 3;
    else if constexpr (std::is_same_v<F, std::vector<std::byte>> ||
                       std::is_same_v<F, std::vector<unsigned char>>)
      return 4;
    else
      return 0;
  }

  /// The row header of a row whose every column has its field's natural type, when the
  /// fields read the columns in order, one each, and fit one header word; else a value no
  /// header has.
  static constexpr std::uint64_t natural_header() {
    if constexpr (kind == row_kind::scalar) {
      return natural_code<T>() != 0 ? natural_code<T>() : no_header;
    } else if constexpr (kind == row_kind::dynamic) {
      return no_header;
    } else {
      using F = fields_of<object_type>;
      if constexpr (F::size == 0 || F::size > 16) {
        return no_header;
      } else {
        return []<std::size_t... I>(std::index_sequence<I...>) {
          constexpr unsigned codes[] = {natural_code<typename F::template type<I>>()...};
          std::uint64_t h = 0;
          for (std::size_t i = 0; i < F::size; ++i) {
            if (codes[i] == 0) return no_header;
            h |= std::uint64_t{codes[i]} << (4 * i);
          }
          return h;
        }(std::make_index_sequence<F::size>{});
      }
    }
  }

  /// Reads a row whose header is natural_header_ (its types are known at compile time).
  bool read_natural(const std::byte*& p, const std::byte* end, object_type& out) {
    const std::byte* q = p;
    bool ok;
    if constexpr (kind == row_kind::scalar) {
      ok = natural_field<T>(q, end, out);
    } else {
      using F = fields_of<object_type>;
      ok = [&]<std::size_t... I>(std::index_sequence<I...>) {
        return (natural_field<typename F::template type<I>>(q, end, F::template get<I>(out)) &&
                ...);
      }(std::make_index_sequence<F::size>{});
    }
    p = q;
    return ok;
  }

  template <class FieldT>
  DQLITE_ALWAYS_INLINE static bool natural_field(const std::byte*& p, const std::byte* end,
                                                 FieldT& out) {
    constexpr unsigned code = natural_code<FieldT>();
    if constexpr (code != 0) {  // always: natural_header() has no other
      wire::value_view v;
      if (wire::decode_value(code, p, end, v) != errc{}) return false;
      return !field_traits<FieldT>::read(v, out);
    } else {
      return false;
    }
  }

  /// Reads column `at` (skipping the columns before it) into a field.
  template <class FieldT>
  DQLITE_ALWAYS_INLINE static bool direct_field(const std::byte* header, const std::byte*& p,
                                                const std::byte* end, std::size_t& col,
                                                std::size_t at, FieldT& out) {
    if (col != at && !skip_columns(header, p, end, col, at)) return false;
    wire::value_view v;
    if (wire::decode_value(wire::row_type_code(header, col), p, end, v) != errc{}) return false;
    ++col;
    return !field_traits<FieldT>::read(v, out);
  }

  template <std::size_t I>
  void read_field(std::span<const wire::value_view> values, object_type& out, error_code& first,
                  std::string& problems) {
    using F = fields_of<object_type>;
    using field_t = typename F::template type<I>;
    const auto& v = values[col_[I]];
    if (auto ec = field_traits<field_t>::read(v, F::template get<I>(out))) {
      if (!first) first = ec;
      if (!problems.empty()) problems += "; ";
      std::string_view name;
      if constexpr (kind == row_kind::aggregate_by_name) name = field_names_[I];
      problems += describe_value_error(ec, I, name, col_[I], field_type_name<field_t>(), v);
    }
  }

  static constexpr std::size_t field_count() {
    if constexpr (kind == row_kind::tuple || kind == row_kind::aggregate_by_name ||
                  kind == row_kind::aggregate_by_position)
      return fields_of<object_type>::size;
    else
      return 1;
  }

  std::array<std::size_t, field_count()> col_{};
  std::array<std::string_view, field_count()> field_names_{};
  std::shared_ptr<const column_names> names_;
};

}  // namespace detail
}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/mapping.ipp>
#endif
