// Definitions of connection.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/connection.hpp>

namespace dqlite {

DQLITE_DECL connection connect(std::string_view address, const connection_options& opts) {
  connection c(own_io_context, opts);
  c.connect(address);
  return c;
}

DQLITE_DECL connection connect(std::string_view address, const connection_options& opts,
                               error_code& ec, dqlite::diagnostics& diag) {
  connection c(own_io_context, opts);
  c.connect(address, ec, diag);
  return c;
}

DQLITE_DECL unix_connection connect_unix(std::string_view path, const connection_options& opts) {
  unix_connection c(own_io_context, opts);
  c.connect(detail::unix_endpoint(path));
  return c;
}

DQLITE_DECL unix_connection connect_unix(std::string_view path, const connection_options& opts,
                                         error_code& ec, dqlite::diagnostics& diag) {
  unix_connection c(own_io_context, opts);
  c.connect(detail::unix_endpoint(path), ec, diag);
  return c;
}

}  // namespace dqlite
