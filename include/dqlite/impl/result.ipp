// Definitions of detail/cluster/result.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/cluster/result.hpp>

#include <string>

namespace dqlite::detail {

DQLITE_DECL void attempt_report::note(const std::string& address, std::string reason, bool asked) {
  if (reason.size() > max_reason_size) {
    const std::size_t full = reason.size();
    reason.resize(wire::message_prefix(reason, max_reason_size).size());
    reason += " [... " + std::to_string(full - reason.size()) + " more bytes]";
  }
  for (auto& e : entries_)
    if (e.address == address) {
      if (asked || !e.asked) {
        e.reason = std::move(reason);
        e.asked = asked;
      }
      return;
    }
  entries_.push_back(entry{address, std::move(reason), asked});
}

DQLITE_DECL void attempt_report::merge(const attempt_report& other) {
  for (const auto& e : other.entries_) note(e.address, e.reason, e.asked);
}

DQLITE_DECL std::string attempt_report::text() const {
  std::string s;
  for (const auto& e : entries_) {
    if (!s.empty()) s += "; ";
    s += printable(e.address) + " (" + e.reason + ")";
  }
  return s;
}

DQLITE_DECL std::string error_text(const error_code& ec, const diagnostics& d) {
  if (d.empty()) return ec.message();
  if (d.message().find(ec.message()) != std::string::npos) return d.message();
  return d.message() + ": " + ec.message();
}

}  // namespace dqlite::detail
