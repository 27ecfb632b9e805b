// Definitions of address.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/address.hpp>

#include <charconv>

namespace dqlite {

DQLITE_DECL error_code parse_address(std::string_view address, host_port& out) {
  auto bad = make_error_code(errc::invalid_address);
  std::string_view host, port;
  if (!address.empty() && address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':')
      return bad;
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad;  // IPv6 needs brackets
  }
  if (host.empty() || port.empty()) return bad;
  for (char c : host)
    if (c == ' ' || c == '/' || c == '[' || c == ']' || static_cast<unsigned char>(c) < 0x21)
      return bad;
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535)
    return bad;
  out.host.assign(host.data(), host.size());
  out.port = static_cast<std::uint16_t>(value);
  return {};
}

}  // namespace dqlite
