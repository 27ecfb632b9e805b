// Parsing node addresses: "host:port", "[ipv6]:port".
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace dqlite {

/// A node address split into host and port.
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

/// Splits "host:port" or "[ipv6]:port". The port is required (1-65535).
/// Ends with errc::invalid_address (and leaves `out` as it was) when the address is not
/// of that form; a host is not resolved here.
DQLITE_DECL error_code parse_address(std::string_view address, host_port& out);

}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/address.ipp>
#endif
