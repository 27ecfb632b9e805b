// Definitions of mapping.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/mapping.hpp>

namespace dqlite::detail {

DQLITE_DECL std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

DQLITE_DECL std::string row_mapper_base::match_scalar(std::size_t columns, bool reject_extra) {
  if (columns == 0) return "the statement returned no columns";
  if (columns > 1 && reject_extra)
    return "a single-value row type got " + std::to_string(columns) + " columns";
  return {};
}

DQLITE_DECL std::string row_mapper_base::match_by_name(
  const std::vector<std::string_view>& columns, std::span<const std::string_view> names,
  std::span<std::size_t> col, bool reject_extra) {
  std::string problems;
  auto problem = [&](const std::string& p) {
    if (!problems.empty()) problems += "; ";
    problems += p;
  };
  std::vector<bool> used(columns.size(), false);
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) {
      problem("the field names of this row type cannot be determined with this compiler; "
              "specialise dqlite::field_names<T> or use dqlite::by_position<T>");
      break;
    }
    std::size_t found = columns.size();
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (columns[c] == names[i]) {
        found = c;
        break;
      }
    }
    if (found == columns.size()) {
      problem("field " + quote(names[i]) + " has no column of that name");
    } else {
      col[i] = found;
      used[found] = true;
    }
  }
  if (reject_extra)
    for (std::size_t c = 0; c < columns.size(); ++c)
      if (!used[c]) problem("column " + quote(columns[c]) + " matches no field");
  return problems;
}

DQLITE_DECL std::string row_mapper_base::match_by_position(std::size_t columns,
                                                     std::span<std::size_t> col,
                                                     bool reject_extra) {
  const std::size_t fields = col.size();
  for (std::size_t i = 0; i < fields; ++i) col[i] = i;
  if (columns < fields)
    return "the row type has " + std::to_string(fields) + " fields but the result has " +
           std::to_string(columns) + " columns";
  if (columns > fields && reject_extra)
    return "the result has " + std::to_string(columns) + " columns but the row type only " +
           std::to_string(fields) + " fields";
  return {};
}

DQLITE_DECL error_code row_mapper_base::finish_map(const std::vector<std::string_view>& columns,
                                              const std::string& problems, diagnostics& diag,
                                              std::span<const std::size_t> col,
                                              std::size_t field_count, std::uint64_t natural) {
  if (!problems.empty()) {
    diag.assign("the result does not match the row type: " + problems);
    return make_error_code(errc::column_mismatch);
  }
  saved_names_.assign(columns.begin(), columns.end());
  // Direct reading needs the fields' columns in increasing order (true of by-position
  // types and of most select lists): the values are read in column order.
  columns_ = columns.size();
  valid_header_ = no_header;  // not a valid header: the first row is checked
  valid_headers_.clear();
  direct_ = columns_ > 0;
  for (std::size_t i = 0; i < col.size(); ++i)
    if (col[i] >= columns_ || (i > 0 && col[i] <= col[i - 1])) direct_ = false;
  // In order, one column per field, no other column: column i is field i.
  natural_header_ = direct_ && columns_ == field_count ? natural : no_header;
  return {};
}

DQLITE_DECL std::string row_mapper_base::describe_value_error(
  const error_code& ec, std::size_t field_index, std::string_view name, std::size_t col,
  const std::string& type_name, const wire::value_view& v) const {
  std::string where = name.empty() ? std::string("field ") + std::to_string(field_index)
                                   : "field " + quote(name);
  where += " (" + type_name + ") from column " + quote(saved_names_[col]);
  std::string what;
  if (ec == make_error_code(errc::unexpected_null))
    what = "is NULL (use std::optional for nullable columns)";
  else if (ec == make_error_code(errc::out_of_range))
    what = "value " +
           (v.type == value_type::text || v.type == value_type::iso8601
                ? "'" + std::string(v.bytes) + "'"
                : std::to_string(v.integer)) +
           " is out of range for " + type_name;
  else if (ec == make_error_code(errc::invalid_time))
    what = "value '" + std::string(v.bytes) + "' is not a valid date/time";
  else
    what = std::string("has type ") + wire::to_string(v.type) + ", which cannot be read as " +
           type_name;
  return where + ": " + what;
}

DQLITE_DECL void row_mapper_base::row_problems(diagnostics& diag, std::size_t row_index,
                                             const std::string& problems) {
  diag.assign("row " + std::to_string(row_index) + ": " + problems);
}

}  // namespace dqlite::detail
