// Finding out, once per opening of a connection, whether the server understands the
// parameter encoding for more than 255 parameters (schema 1).
//
// The handshake does not tell the server's version. libdqlite 1.12 and later read a schema-1
// parameter tuple (u32 count); 1.11.1 ignores the frame's schema byte and reads a u8 count,
// so 256 or more parameters are bound wrong (all NULL for 256, garbage for 257), silently,
// or the request fails with code 1005. The probe is a read-only QUERY_SQL "SELECT ?" with a
// schema-1 tuple of one integer: a server that understands it answers that integer; 1.11.1
// answers FAILURE 1005 "not an error" (and the connection stays usable).
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>

#include <cstdint>

namespace dqlite::detail {

/// What the probe found on the connection's current opening.
enum class wide_params : std::uint8_t { unknown = 0, supported = 1, unsupported = 2 };

/// The cached answer for the connection's current opening (connection_impl::params_probe
/// holds generation * 4 + answer; a reopened connection starts unknown).
template <class Impl>
wide_params known_wide_params(const Impl& c) noexcept {
  if (c.params_probe / 4 != c.generation) return wide_params::unknown;
  return static_cast<wide_params>(c.params_probe % 4);
}

template <class Impl>
void remember_wide_params(Impl& c, wide_params w) noexcept {
  c.params_probe = c.generation * 4 + static_cast<std::uint64_t>(w);
}

/// The integer the probe sends and expects back.
inline constexpr std::int64_t wide_params_probe_value = 0x5c4e3a1f0d2b1907;

/// Encodes the probe: QUERY_SQL "SELECT ?" with a schema-1 tuple holding one INTEGER.
DQLITE_DECL error_code encode_wide_params_probe(wire::buffer& b, std::uint32_t db);

/// The probe's answer: true when the server sent the integer back.
struct wide_params_answer {
  bool echoed = false;
};

/// Reads the probe's ROWS.
struct wide_params_probe_proc {
  using result_type = wide_params_answer;
  wide_params_answer out;
  bool first = true;

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (h.type != static_cast<std::uint8_t>(wire::response::rows))
      return make_error_code(errc::unexpected_response);
    auto& rr = c.rows;
    if (auto e = rr.start(body)) return e;
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
      if (first && rr.column_count() == 1 && c.scratch[0].type == wire::value_type::integer &&
          c.scratch[0].integer == wide_params_probe_value)
        out.echoed = true;
      first = false;
    }
    if (auto e = rr.error()) return e;
    done = rr.end() == wire::rows_end::done;
    return {};
  }
  wide_params_answer take() { return out; }
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/server_probe.ipp>
#endif
