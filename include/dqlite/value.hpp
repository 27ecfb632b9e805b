// Dynamic values and rows: what a query returns when no row type is given.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/protocol.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite {

using wire::value_type;

/// Binary data.
using blob = std::vector<std::byte>;

/// A view of binary data.
using blob_view = std::span<const std::byte>;

/// Marker for NULL, usable as a parameter.
struct null_t {
  friend constexpr bool operator==(null_t, null_t) noexcept { return true; }
};
inline constexpr null_t null{};

/// An owned value of any dqlite type. The wire type is kept: a BOOLEAN column reads as a
/// value of type boolean, a DATETIME column as unixtime or iso8601.
class value {
 public:
  value() noexcept = default;  ///< NULL
  value(null_t) noexcept {}
  value(std::nullptr_t) noexcept {}
  value(std::int64_t v) noexcept : type_(value_type::integer), data_(v) {}
  value(int v) noexcept : value(static_cast<std::int64_t>(v)) {}
  value(double v) noexcept : type_(value_type::floating), data_(v) {}
  value(bool v) noexcept : type_(value_type::boolean), data_(std::int64_t{v ? 1 : 0}) {}
  value(std::string v) noexcept : type_(value_type::text), data_(std::move(v)) {}
  value(std::string_view v) : value(std::string(v)) {}
  value(const char* v) : value(std::string(v)) {}
  value(blob v) noexcept : type_(value_type::blob), data_(std::move(v)) {}

  /// A value of a given wire type (unixtime from an integer, iso8601 from a text).
  static value unixtime(std::int64_t seconds) {
    value v(seconds);
    v.type_ = value_type::unixtime;
    return v;
  }
  static value iso8601(std::string text) {
    value v(std::move(text));
    v.type_ = value_type::iso8601;
    return v;
  }

  /// Copies a value out of a received frame.
  static value from_view(const wire::value_view& v);

  value_type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == value_type::null; }
  bool is_integer() const noexcept {
    return type_ == value_type::integer || type_ == value_type::unixtime ||
           type_ == value_type::boolean;
  }
  bool is_floating() const noexcept { return type_ == value_type::floating; }
  bool is_text() const noexcept {
    return type_ == value_type::text || type_ == value_type::iso8601;
  }
  bool is_blob() const noexcept { return type_ == value_type::blob; }

  /// Typed access; throws dqlite::error(errc::type_mismatch) when the type differs.
  std::int64_t as_int64() const {
    if (auto p = std::get_if<std::int64_t>(&data_)) return *p;
    throw_mismatch("INTEGER");
  }
  double as_double() const {
    if (auto p = std::get_if<double>(&data_)) return *p;
    if (auto p = std::get_if<std::int64_t>(&data_)) return static_cast<double>(*p);
    throw_mismatch("FLOAT");
  }
  bool as_bool() const { return as_int64() != 0; }
  const std::string& as_text() const {
    if (auto p = std::get_if<std::string>(&data_)) return *p;
    throw_mismatch("TEXT");
  }
  const blob& as_blob() const {
    if (auto p = std::get_if<blob>(&data_)) return *p;
    throw_mismatch("BLOB");
  }

  /// Pointers to the stored alternative, or nullptr.
  const std::int64_t* if_int64() const noexcept { return std::get_if<std::int64_t>(&data_); }
  const double* if_double() const noexcept { return std::get_if<double>(&data_); }
  const std::string* if_text() const noexcept { return std::get_if<std::string>(&data_); }
  const blob* if_blob() const noexcept { return std::get_if<blob>(&data_); }

  /// Equal when of the same wire type and the same stored value.
  friend bool operator==(const value& a, const value& b) noexcept { return a.equals(b); }

  /// A short human-readable form (for logs and messages).
  std::string to_string() const;

 private:
  [[noreturn]] void throw_mismatch(const char* wanted) const;
  bool equals(const value& other) const noexcept;

  value_type type_ = value_type::null;
  std::variant<std::monostate, std::int64_t, double, std::string, blob> data_;
};

namespace detail {
struct dynamic_rows_sink;
}

/// Column names of a result, shared by all its rows.
using column_names = std::vector<std::string>;

/// A dynamic row: values by index or by column name.
class row {
 public:
  row() = default;
  row(std::shared_ptr<const column_names> columns, std::vector<value> values)
      : columns_(std::move(columns)), values_(std::move(values)) {}

  /// Copies the values of a received row.
  static row from_views(std::shared_ptr<const column_names> columns,
                        std::span<const wire::value_view> views);

  std::size_t size() const noexcept { return values_.size(); }
  bool empty() const noexcept { return values_.empty(); }
  const value& operator[](std::size_t i) const noexcept { return values_[i]; }
  const value& at(std::size_t i) const { return values_.at(i); }

  /// Value of the named column; throws std::out_of_range naming the column when absent.
  const value& operator[](std::string_view name) const { return at(name); }
  const value& at(std::string_view name) const;
  /// Value of the named column, or nullptr.
  const value* find(std::string_view name) const noexcept;

  const column_names& columns() const noexcept {
    static const column_names none;
    return columns_ ? *columns_ : none;
  }
  const std::vector<value>& values() const noexcept { return values_; }
  std::vector<value>& values() noexcept { return values_; }

  auto begin() const noexcept { return values_.begin(); }
  auto end() const noexcept { return values_.end(); }

  /// Equal when their values are (column names are not compared).
  friend bool operator==(const row& a, const row& b) noexcept { return a.equals(b); }

 private:
  bool equals(const row& other) const noexcept;
  std::shared_ptr<const column_names> columns_;
  std::vector<value> values_;
};

/// All rows of a result, with its column names (kept once).
class rows {
 public:
  rows() = default;

  const column_names& columns() const noexcept {
    static const column_names none;
    return columns_ ? *columns_ : none;
  }
  std::size_t size() const noexcept { return rows_.size(); }
  bool empty() const noexcept { return rows_.empty(); }
  const row& operator[](std::size_t i) const noexcept { return rows_[i]; }
  const row& at(std::size_t i) const { return rows_.at(i); }
  auto begin() const noexcept { return rows_.begin(); }
  auto end() const noexcept { return rows_.end(); }
  const std::vector<row>& all() const noexcept { return rows_; }
  void reserve(std::size_t n) { rows_.reserve(n); }

  /// Appends the rows of one ROWS frame. Fails with errc::unexpected_response when the
  /// frame's columns differ from those of the rows already held, or with the frame's
  /// decoding error.
  error_code append(wire::rows_reader& rr, std::vector<wire::value_view>& scratch);

 private:
  friend struct detail::dynamic_rows_sink;  // reads a result row by row, within its caps
  std::shared_ptr<const column_names> columns_;
  std::vector<row> rows_;
};

namespace detail {

/// Bytes the allocator adds to each block (an estimate: a chunk header and rounding).
inline constexpr std::size_t alloc_overhead = 16;

/// Heap memory held by a string (nothing while it fits its inline buffer).
DQLITE_DECL std::size_t heap_bytes(const std::string& s) noexcept;

/// Heap memory held by a vector's own block (not what its elements point to).
template <class E, class A>
std::size_t heap_bytes(const std::vector<E, A>& v) noexcept {
  return v.capacity() > 0 ? v.capacity() * sizeof(E) + alloc_overhead : 0;
}

/// Heap memory held by a value: the bytes of its text or blob.
DQLITE_DECL std::size_t heap_bytes(const value& v) noexcept;

/// Heap memory held by a dynamic row: its values and what they hold (not its column
/// names, which all rows of a result share).
DQLITE_DECL std::size_t heap_bytes(const row& r) noexcept;

/// Memory held by column names: the strings and their heap memory.
DQLITE_DECL std::size_t names_bytes(const std::vector<std::string_view>& names) noexcept;

}  // namespace detail

}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/value.ipp>
#endif
