// What a statement that returns no rows reports.
#pragma once

#include <cstdint>

namespace dqlite {

/// What a statement that does not return rows reports (EXEC, EXEC_SQL: the server's
/// RESULT response).
struct exec_result {
  std::uint64_t last_insert_id = 0;  ///< rowid of the last inserted row
  std::uint64_t rows_affected = 0;   ///< rows changed by the (last) statement
  friend bool operator==(const exec_result&, const exec_result&) = default;
};

}  // namespace dqlite
