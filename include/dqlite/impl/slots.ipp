// Definitions of detail/pool/slots.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/pool/slots.hpp>

namespace dqlite::detail {

DQLITE_DECL slot_table::id_type slot_table::open(clock::time_point now) {
  const id_type id = ++last_;
  slots_.emplace(id, slot{slot_state::connecting, {}, now});
  ++counts_[index(slot_state::connecting)];
  return id;
}

DQLITE_DECL void slot_table::move(id_type id, slot_state from, slot_state to,
                                  clock::time_point now) {
  slot& s = at(id, from);
  if (!slot_transition_allowed(from, to))
    throw std::logic_error(std::string("pool: a connection cannot go from ") + to_string(from) +
                           " to " + to_string(to));
  if (from == slot_state::connecting && to != slot_state::retry_wait) s.born = now;
  --counts_[index(from)];
  ++counts_[index(to)];
  s.state = to;
  s.since = now;
}

DQLITE_DECL void slot_table::end(id_type id, slot_state from) {
  at(id, from);
  --counts_[index(from)];
  slots_.erase(id);
}

DQLITE_DECL const slot_table::slot& slot_table::get(id_type id) const {
  auto it = slots_.find(id);
  if (it == slots_.end()) throw std::logic_error("pool: no such connection slot");
  return it->second;
}

DQLITE_DECL slot_table::slot& slot_table::at(id_type id, slot_state expected) {
  auto it = slots_.find(id);
  if (it == slots_.end()) throw std::logic_error("pool: no such connection slot");
  if (it->second.state != expected)
    throw std::logic_error(std::string("pool: a connection is ") + to_string(it->second.state) +
                           ", not " + to_string(expected));
  return it->second;
}

DQLITE_DECL void slot_table::mark_checked(id_type id, clock::time_point now) {
  at(id, slot_state::checking).checked = now;
}

DQLITE_DECL bool slot_table::contains(id_type id) const {
  return slots_.count(id) != 0;
}

}  // namespace dqlite::detail
