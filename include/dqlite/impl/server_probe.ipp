// Definitions of detail/server_probe.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/server_probe.hpp>

namespace dqlite::detail {

DQLITE_DECL error_code encode_wide_params_probe(wire::buffer& b, std::uint32_t db) {
  wire::frame_mark m{};
  if (auto e = wire::begin_sql_request(b, wire::request::query_sql, db, "SELECT ?", m)) return e;
  wire::put_u32(b, 1);                                                // count (schema 1: u32)
  wire::put_u8(b, static_cast<std::uint8_t>(wire::value_type::integer));  // its type
  wire::detail::pad_to_word(b);
  wire::put_i64(b, wide_params_probe_value);
  wire::set_frame_schema(b, m, 1);
  wire::end_frame(b, m);
  return {};
}

}  // namespace dqlite::detail
