// The roles policy of an embedded node (dqlite::app): which single role change brings the
// cluster closer to its target numbers of voters and stand-bys. Pure functions, no I/O.
#pragma once

#include <dqlite/node_info.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dqlite {

/// What the roles policy knows about one member: its place in the configuration, whether
/// it answered a probe, and the metadata it reported (DESCRIBE).
struct member_health {
  node_info node;
  bool online = false;
  std::uint64_t failure_domain = 0;
  std::uint64_t weight = 0;
};

/// One role change: give node `id` the role `role`.
struct role_change {
  std::uint64_t id = 0;
  node_role role = node_role::spare;
  friend bool operator==(const role_change&, const role_change&) = default;
};

/// "node 3 -> voter".
inline std::string to_string(const role_change& c) {
  return "node " + std::to_string(c.id) + " -> " + std::string(to_string(c.role));
}

namespace detail {

/// The members with role `r` and online state `online`, in id order.
inline std::vector<const member_health*> members_where(const std::vector<member_health>& all,
                                                       node_role r, bool online) {
  std::vector<const member_health*> out;
  for (const auto& m : all)
    if (m.node.role == r && m.online == online) out.push_back(&m);
  std::sort(out.begin(), out.end(),
            [](const member_health* a, const member_health* b) { return a->node.id < b->node.id; });
  return out;
}

/// Orders candidates for a promotion: those whose failure domain none of `taken` has
/// first, then the lower weight, then the lower id.
inline void rank_candidates(std::vector<const member_health*>& c,
                            const std::vector<const member_health*>& taken) {
  std::set<std::uint64_t> domains;
  for (const auto* m : taken) domains.insert(m->failure_domain);
  std::stable_sort(c.begin(), c.end(), [&](const member_health* a, const member_health* b) {
    const bool na = !domains.count(a->failure_domain), nb = !domains.count(b->failure_domain);
    if (na != nb) return na;
    if (a->weight != b->weight) return a->weight < b->weight;
    return a->node.id < b->node.id;
  });
}

/// Orders members for a demotion: those sharing a failure domain with another of `group`
/// first, then the higher weight, then the higher id.
inline void rank_for_demotion(std::vector<const member_health*>& c,
                              const std::vector<const member_health*>& group) {
  auto shared = [&](const member_health* m) {
    for (const auto* o : group)
      if (o != m && o->failure_domain == m->failure_domain) return true;
    return false;
  };
  std::stable_sort(c.begin(), c.end(), [&](const member_health* a, const member_health* b) {
    const bool sa = shared(a), sb = shared(b);
    if (sa != sb) return sa;
    if (a->weight != b->weight) return a->weight > b->weight;
    return a->node.id > b->node.id;
  });
}

}  // namespace detail

/// The next role change that brings the cluster closer to `voters` online voters and
/// `standbys` online stand-bys, or none when nothing should change. `leader_id` is never
/// demoted. One change at a time: apply it, read the members again, ask again.
///
/// In this order:
/// 1. Too few online voters and an online stand-by or spare to promote: first an offline
///    voter is demoted to spare (so the configuration never counts a dead voter), then the
///    best candidate is promoted (stand-bys before spares, a new failure domain first, then
///    the lower weight).
/// 2. Too many online voters: one is demoted (to stand-by while stand-bys are missing,
///    else to spare); offline voters beyond the target are demoted to spare.
/// 3. The same for stand-bys, promoted from online spares.
inline std::optional<role_change> next_role_change(const std::vector<member_health>& members,
                                                   std::uint64_t leader_id, unsigned voters,
                                                   unsigned standbys) {
  using detail::members_where;
  auto on_voters = members_where(members, node_role::voter, true);
  auto off_voters = members_where(members, node_role::voter, false);
  auto on_standbys = members_where(members, node_role::standby, true);
  auto off_standbys = members_where(members, node_role::standby, false);
  auto on_spares = members_where(members, node_role::spare, true);
  auto not_leader = [leader_id](std::vector<const member_health*> v) {
    std::erase_if(v, [leader_id](const member_health* m) { return m->node.id == leader_id; });
    return v;
  };

  // Voters.
  if (on_voters.size() < voters) {
    std::vector<const member_health*> candidates = on_standbys;
    auto spares = on_spares;
    detail::rank_candidates(candidates, on_voters);
    detail::rank_candidates(spares, on_voters);
    candidates.insert(candidates.end(), spares.begin(), spares.end());
    candidates = not_leader(candidates);
    if (!candidates.empty()) {
      auto dead = not_leader(off_voters);
      if (!dead.empty()) return role_change{dead.front()->node.id, node_role::spare};
      return role_change{candidates.front()->node.id, node_role::voter};
    }
  } else if (on_voters.size() > voters) {
    auto extra = not_leader(on_voters);
    detail::rank_for_demotion(extra, on_voters);
    if (!extra.empty())
      return role_change{extra.front()->node.id,
                         on_standbys.size() < standbys ? node_role::standby : node_role::spare};
  } else {
    auto dead = not_leader(off_voters);
    if (!dead.empty()) return role_change{dead.front()->node.id, node_role::spare};
  }

  // Stand-bys.
  if (on_standbys.size() < standbys) {
    auto candidates = not_leader(on_spares);
    std::vector<const member_health*> taken = on_voters;
    taken.insert(taken.end(), on_standbys.begin(), on_standbys.end());
    detail::rank_candidates(candidates, taken);
    if (!candidates.empty()) {
      if (!off_standbys.empty()) return role_change{off_standbys.front()->node.id, node_role::spare};
      return role_change{candidates.front()->node.id, node_role::standby};
    }
  } else if (on_standbys.size() > standbys) {
    auto extra = not_leader(on_standbys);
    detail::rank_for_demotion(extra, on_standbys);
    if (!extra.empty()) return role_change{extra.front()->node.id, node_role::spare};
  } else if (!off_standbys.empty()) {
    return role_change{off_standbys.front()->node.id, node_role::spare};
  }
  return std::nullopt;
}

/// The role a node that has just joined (as a spare) should ask for itself: voter while
/// online voters are missing, else stand-by while online stand-bys are missing, else none.
inline std::optional<node_role> role_for_new_member(const std::vector<member_health>& members,
                                                    std::uint64_t self, unsigned voters,
                                                    unsigned standbys) {
  std::size_t v = 0, s = 0;
  for (const auto& m : members) {
    if (m.node.id == self || !m.online) continue;
    if (m.node.role == node_role::voter) ++v;
    if (m.node.role == node_role::standby) ++s;
  }
  if (v < voters) return node_role::voter;
  if (s < standbys) return node_role::standby;
  return std::nullopt;
}

}  // namespace dqlite
