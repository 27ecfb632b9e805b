// Definitions of value.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/value.hpp>

namespace dqlite {

DQLITE_DECL value value::from_view(const wire::value_view& v) {
  switch (v.type) {
    case value_type::integer: return value(v.integer);
    case value_type::floating: return value(v.floating);
    case value_type::text: return value(std::string(v.bytes));
    case value_type::blob: {
      auto b = v.blob();
      return value(blob(b.begin(), b.end()));
    }
    case value_type::null: return value();
    case value_type::unixtime: return unixtime(v.integer);
    case value_type::iso8601: return iso8601(std::string(v.bytes));
    case value_type::boolean: return value(v.integer != 0);
  }
  return value();
}

DQLITE_DECL bool value::equals(const value& other) const noexcept {
  return type_ == other.type_ && data_ == other.data_;
}

DQLITE_DECL std::string value::to_string() const {
  switch (type_) {
    case value_type::null: return "NULL";
    case value_type::integer:
    case value_type::unixtime: return std::to_string(std::get<std::int64_t>(data_));
    case value_type::boolean: return std::get<std::int64_t>(data_) ? "true" : "false";
    case value_type::floating: return std::to_string(std::get<double>(data_));
    case value_type::text:
    case value_type::iso8601: return std::get<std::string>(data_);
    case value_type::blob:
      return "<blob of " + std::to_string(std::get<blob>(data_).size()) + " bytes>";
  }
  return "?";
}

DQLITE_DECL void value::throw_mismatch(const char* wanted) const {
  throw error(
      make_error_code(errc::type_mismatch),
      diagnostics(std::string("value of type ") + wire::to_string(type_) + " read as " + wanted));
}

DQLITE_DECL row row::from_views(std::shared_ptr<const column_names> columns,
                                std::span<const wire::value_view> views) {
  std::vector<value> vals;
  vals.reserve(views.size());
  for (const auto& v : views) vals.push_back(value::from_view(v));
  return row(std::move(columns), std::move(vals));
}

DQLITE_DECL const value& row::at(std::string_view name) const {
  if (auto p = find(name)) return *p;
  throw std::out_of_range("no column named '" + std::string(name) + "' in the row");
}

DQLITE_DECL const value* row::find(std::string_view name) const noexcept {
  if (!columns_) return nullptr;
  for (std::size_t i = 0; i < columns_->size() && i < values_.size(); ++i)
    if ((*columns_)[i] == name) return &values_[i];
  return nullptr;
}

DQLITE_DECL bool row::equals(const row& other) const noexcept {
  return values_ == other.values_;
}

DQLITE_DECL error_code rows::append(wire::rows_reader& rr, std::vector<wire::value_view>& scratch) {
  const auto& names = rr.column_names();
  if (!columns_ || columns_->size() != names.size() ||
      !std::equal(names.begin(), names.end(), columns_->begin())) {
    if (columns_ && !rows_.empty()) return make_error_code(errc::unexpected_response);
    columns_ = std::make_shared<const column_names>(names.begin(), names.end());
  }
  scratch.resize(names.size());
  while (rr.next(scratch)) rows_.push_back(row::from_views(columns_, scratch));
  return rr.error();
}

namespace detail {

DQLITE_DECL std::size_t heap_bytes(const std::string& s) noexcept {
  static const std::size_t inline_capacity = std::string().capacity();
  return s.capacity() > inline_capacity ? s.capacity() + 1 + alloc_overhead : 0;
}

DQLITE_DECL std::size_t heap_bytes(const value& v) noexcept {
  if (const std::string* t = v.if_text()) return heap_bytes(*t);
  if (const blob* b = v.if_blob()) return heap_bytes(*b);
  return 0;
}

DQLITE_DECL std::size_t heap_bytes(const row& r) noexcept {
  std::size_t n = heap_bytes(r.values());
  for (const value& v : r.values()) n += heap_bytes(v);
  return n;
}

DQLITE_DECL std::size_t names_bytes(const std::vector<std::string_view>& names) noexcept {
  std::size_t n = names.size() * sizeof(std::string) + alloc_overhead;
  static const std::size_t inline_capacity = std::string().capacity();
  for (std::string_view s : names)
    if (s.size() > inline_capacity) n += s.size() + 1 + alloc_overhead;
  return n;
}

}  // namespace detail
}  // namespace dqlite
