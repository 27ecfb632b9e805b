// Definitions of detail/procs.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/procs.hpp>

namespace dqlite::detail {

DQLITE_DECL error_code malformed_rows(session_state& c, error_code ec) {
  if (ec == make_error_code(errc::too_many_columns))
    c.diag.assign("a ROWS frame announces " + std::to_string(c.rows.announced_columns()) +
                  " columns, more than max_result_columns (" +
                  std::to_string(c.opts.max_result_columns) + ")");
  else if (ec == make_error_code(errc::unexpected_response))
    c.diag.assign("the columns changed between the frames of one result");
  else
    c.diag.assign("the server sent a ROWS frame that cannot be read: " + ec.message());
  return ec;
}

DQLITE_DECL error_code result_budget::check(session_state& c, std::size_t slots) {
  const auto& o = c.opts;
  if (!batch && o.max_result_rows != 0 && rows > o.max_result_rows) {
    c.diag.assign("the result has more than max_result_rows (" +
                  std::to_string(o.max_result_rows) + ") rows" +
                  (dropped != 0 ? "; fetchone and fetchval read the whole result: add LIMIT 1"
                                : "; raise the cap or narrow the query"));
    return make_error_code(errc::result_too_large);
  }
  const std::size_t bytes = held + slots + dropped;
  if (o.max_result_bytes != 0 && bytes > o.max_result_bytes) {
    std::string what = batch ? "a batch of the cursor holds"
                       : dropped != 0 ? "the result (the first row, and the rows read past "
                                        "by their size) takes"
                                      : "the rows of the result hold";
    c.diag.assign(what + " more than max_result_bytes (" + std::to_string(o.max_result_bytes) +
                  ") bytes; raise the cap or narrow the query" +
                  (batch || dropped != 0 ? std::string() : std::string(", or use a cursor")));
    return make_error_code(errc::result_too_large);
  }
  return {};
}

}  // namespace dqlite::detail
