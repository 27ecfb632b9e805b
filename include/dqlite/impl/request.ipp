// Definitions of detail/request.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/request.hpp>

namespace dqlite::detail {

DQLITE_DECL error_code check_statement(session_state& ci, const request_spec& spec,
                                        const sql_shape& shape, bool query, std::size_t params) {
  if (query && !spec.prepared && shape.statements != 1) {
    if (shape.statements == 0)
      ci.diag.assign("the SQL text holds no statement");
    else
      ci.diag.assign("the SQL text holds " + std::to_string(shape.statements) +
                     " statements, and a query (" + query_operations +
                     ") runs exactly one (the first ends at byte " +
                     std::to_string(shape.first_end) +
                     "); run each on its own (execute runs several statements that return no "
                     "rows). Nothing was sent");
    return make_error_code(errc::invalid_argument);
  }
  if (!query && shape.returning) {
    ci.diag.assign(std::string("the statement has a RETURNING clause, so it returns rows: run it "
                               "as a query (") + query_operations +
                   "). execute refuses it because libdqlite aborts on such a statement sent "
                   "as EXEC/EXEC_SQL (1.11.1 on any RETURNING, 1.18.6 when it returns two rows "
                   "or more). Nothing was sent");
    return make_error_code(errc::invalid_argument);
  }
  if (known_wide_params(ci) == wide_params::unsupported) {
    if (params > wire::max_schema0_params) {
      ci.diag.assign("the statement has " + std::to_string(params) +
                     " parameters, and this server reads at most 255 per statement (it does not "
                     "understand the encoding for more, which libdqlite reads from 1.12 on: "
                     "it would bind wrong values). Nothing was sent");
      return make_error_code(errc::too_many_parameters);
    }
    if (query && shape.returning) {
      ci.diag.assign("this server (older than libdqlite 1.12) returns the rows of a statement "
                     "with a RETURNING clause run as a query, but does not store its changes "
                     "(libdqlite 1.11.1): run the statement without RETURNING through execute, "
                     "then query what it wrote. Nothing was sent");
      return make_error_code(errc::unsupported);
    }
  }
  return {};
}

}  // namespace dqlite::detail
