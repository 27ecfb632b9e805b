// Definitions of field.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/field.hpp>

namespace dqlite {

DQLITE_DECL error_code field_traits<value>::read(const wire::value_view& v, value& out) {
  out = value::from_view(v);
  return {};
}

}  // namespace dqlite
