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

DQLITE_DECL error_code encode_request(wire::buffer& out, session_state& ci,
                                      const request_spec& spec, bool query, params_writer write,
                                      const void* params) {
  if (auto e = check_database(ci)) return e;
  wire::frame_mark m{};
  if (spec.prepared) {
    if (spec.generation != ci.generation) {
      ci.diag.assign("the prepared statement was closed, or belongs to an earlier opening of "
                     "this connection; prepare it again");
      return make_error_code(errc::not_connected);
    }
    m = wire::begin_stmt_request(out, spec.type(query), ci.db_id, spec.stmt);
  } else if (auto e = wire::begin_sql_request(out, spec.type(query), ci.db_id, spec.sql, m)) {
    ci.diag.assign("the SQL text contains a NUL byte");
    return e;
  }
  if (auto e = write(out, m, params)) {
    if (e == make_error_code(errc::invalid_argument))
      ci.diag.assign("a text parameter contains a NUL byte");
    else if (e == make_error_code(errc::out_of_range))
      ci.diag.assign("a parameter is out of range: an unsigned integer above INT64_MAX, or a "
                     "time outside the years 0000 to 9999 (those of SQLite's date and time "
                     "functions and of the ISO-8601 text a time is sent as)");
    else
      ci.diag.assign("a parameter could not be bound: " + e.message());
    return e;
  }
  wire::end_frame(out, m);
  return {};
}


DQLITE_DECL bool needs_probe(const session_state& c, const sql_shape& shape, bool query,
                             std::size_t n) {
  const bool wide = n > wire::max_schema0_params;
  return (wide || (query && shape.returning)) && c.state == conn_state::open && !c.busy &&
         c.holder == 0 && known_wide_params(c) == wide_params::unknown;
}

DQLITE_DECL error_code encode_probe(session_state& ci) {
  if (auto e = check_database(ci)) return e;
  return encode_wide_params_probe(ci.wbuf, ci.db_id);
}

DQLITE_DECL error_code adopt_encoded_request(session_state& ci, encoded_request& r) {
  if (auto e = check_statement(ci, r.spec, r.shape, r.query, r.n)) return e;
  if (ci.generation != r.generation) {
    ci.diag.assign("the connection was reopened while the request was prepared");
    return make_error_code(errc::not_connected);
  }
  ci.wbuf = std::move(r.request);
  return {};
}

}  // namespace dqlite::detail
