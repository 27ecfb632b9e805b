// Definitions of wire/encode.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/wire/encode.hpp>

namespace dqlite::wire {

DQLITE_DECL frame_mark begin_frame(buffer& b, request type, std::uint8_t schema) {
  frame_mark m{b.size()};
  put_u32(b, 0);
  put_u8(b, static_cast<std::uint8_t>(type));
  put_u8(b, schema);
  put_u8(b, 0);
  put_u8(b, 0);
  return m;
}

}  // namespace dqlite::wire
