// dqlite-client for C++: single-header distribution.
//
// GENERATED FILE - DO NOT EDIT BY HAND.
// It is generated from the headers under include/ by tools/amalgamate.py.
// Edit those headers instead, then run: python3 tools/amalgamate.py
//
// Copyright (c) 2026 The dqlite-client for C++ authors
// SPDX-License-Identifier: MIT (see LICENSE.md)
//
// Add-on: <dqlite/app.hpp>, which needs libdqlite (link -ldqlite).

#ifndef DQLITE_SINGLE_INCLUDE_APP_HPP
#define DQLITE_SINGLE_INCLUDE_APP_HPP

#include "client.hpp"

// ---- begin dqlite/app.hpp ----
// A dqlite node embedded in the program (like go-dqlite's `app` package). Needs libdqlite:
// link the CMake target dqlite::app (pkg-config: dqlite).
//
//   dqlite::app node(ex, "/var/lib/svc/db", {.address = "10.0.0.2:9001",
//                                            .cluster = {"10.0.0.1:9001"}});
//   co_await node.async_start();    // first start: joins through 10.0.0.1:9001
//   co_await node.async_ready();    // a member, and a leader is known
//   auto pool = node.make_pool({.database = "svc"});
//   co_await pool.async_execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)");
//   ...
//   co_await node.async_handover(); // leadership and the voter role go to others; stop
//
// The node's id and address are chosen on its first start and kept in the data
// directory; later starts reuse them. A node started with no join list and a new data
// directory bootstraps a new cluster (id 1). The leader's app keeps the numbers of online
// voters and stand-bys at their targets. libdqlite's blocking calls (start, stop) run on a
// thread the app owns, never on the caller's executor.

// ---- begin dqlite/detail/app/files.hpp ----
// The files an embedded node (dqlite::app) keeps in its data directory beside libdqlite's
// own: its identity (id and address) and the last known members of the cluster.


#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace dqlite::detail {

/// "app-info": the node's identity, written once on its first start.
inline constexpr const char* app_info_file = "app-info";
/// "app-cluster": the members as last seen (one "id address role" line each).
inline constexpr const char* app_cluster_file = "app-cluster";

struct app_identity {
  std::uint64_t id = 0;
  std::string address;
};

/// Writes `text` to `path` through a temporary file and a rename, so that a crash leaves
/// the old or the new content, never a mix. Throws std::runtime_error naming the file.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp + " to " + path.string() + ": " + ec.message());
}

/// The identity stored in `dir`, or none when the file does not exist. Throws
/// std::runtime_error for a file that cannot be read or parsed.
inline std::optional<app_identity> read_app_identity(const std::filesystem::path& dir) {
  const auto path = dir / app_info_file;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  app_identity id;
  std::string line;
  bool have_id = false, have_address = false;
  while (std::getline(in, line)) {
    if (line.rfind("id: ", 0) == 0) {
      try {
        std::size_t used = 0;
        id.id = std::stoull(line.substr(4), &used);
        have_id = used == line.size() - 4 && id.id != 0;
      } catch (const std::exception&) {
        have_id = false;
      }
    } else if (line.rfind("address: ", 0) == 0) {
      id.address = line.substr(9);
      host_port hp;
      have_address = !parse_address(id.address, hp);
    }
  }
  if (!have_id || !have_address)
    throw std::runtime_error(path.string() + " is damaged: it must hold 'id: N' (N > 0) and "
                             "'address: HOST:PORT' lines");
  return id;
}

inline void write_app_identity(const std::filesystem::path& dir, const app_identity& id) {
  write_file_atomically(dir / app_info_file,
                        "id: " + std::to_string(id.id) + "\naddress: " + id.address + "\n");
}

/// The members stored in `dir` (empty when there is no such file or it cannot be read:
/// it is only a hint for finding the cluster).
inline std::vector<node_info> read_app_members(const std::filesystem::path& dir) {
  std::vector<node_info> out;
  std::ifstream in(dir / app_cluster_file, std::ios::binary);
  if (!in) return out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    node_info n;
    std::string role;
    if (!(fields >> n.id >> n.address >> role)) continue;
    auto r = parse_node_role(role);
    host_port hp;
    if (!r || n.id == 0 || parse_address(n.address, hp)) continue;
    n.role = *r;
    out.push_back(std::move(n));
  }
  return out;
}

inline void write_app_members(const std::filesystem::path& dir, const std::vector<node_info>& nodes) {
  std::string text;
  for (const auto& n : nodes)
    text += std::to_string(n.id) + " " + n.address + " " + std::string(to_string(n.role)) + "\n";
  write_file_atomically(dir / app_cluster_file, text);
}

/// True when `dir` holds files libdqlite wrote (raft metadata, segments, snapshots).
inline bool has_raft_data(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("metadata", 0) == 0 || name.rfind("snapshot-", 0) == 0 ||
        name.rfind("open-", 0) == 0 || (!name.empty() && name[0] >= '0' && name[0] <= '9'))
      return true;
  }
  return false;
}

}  // namespace dqlite::detail
// ---- end dqlite/detail/app/files.hpp ----
// ---- begin dqlite/detail/app/roles.hpp ----
// The roles policy of an embedded node (dqlite::app): which single role change brings the
// cluster closer to its target numbers of voters and stand-bys. Pure functions, no I/O.


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
// ---- end dqlite/detail/app/roles.hpp ----

// libdqlite's header has no extern "C" of its own (1.11).
extern "C" {
#include <dqlite.h>
}

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace dqlite {

/// How an embedded node starts, joins and manages roles. Designated initialisers:
///   dqlite::app node(ex, "/var/lib/example", {.address = "10.0.0.2:9001",
///                                             .cluster = {"10.0.0.1:9001"}});
struct app_options {
  /// The address the node advertises to clients and other nodes ("host:port",
  /// "[ipv6]:port"), stored exactly so (leader detection compares addresses as text).
  /// Required on the first start; later starts may leave it empty (the stored one is used)
  /// or repeat it (a different one is refused: a node keeps its address).
  std::string address{};
  /// Addresses of existing members to join through on the first start. Empty: the node
  /// bootstraps a new cluster (only with a new data directory). Ignored on later starts,
  /// except as extra places to look for the leader.
  std::vector<std::string> cluster{};
  /// Where the node listens: "host:port", or an abstract unix socket (an at sign, then a
  /// name). Empty: `address`.
  std::string bind_address{};
  /// Expected one-way network latency between nodes (dqlite_node_set_network_latency_ms:
  /// heartbeat 1.5 x, election timeout 15 x this). Zero: libdqlite's default.
  std::chrono::milliseconds network_latency{0};
  /// Raft snapshots (dqlite_node_set_snapshot_params): a snapshot every
  /// `snapshot_threshold` log entries, keeping `snapshot_trailing` entries after it. Both
  /// zero: libdqlite's defaults.
  unsigned snapshot_threshold = 0;
  unsigned snapshot_trailing = 0;
  /// The node's failure domain (reported by DESCRIBE; the roles policy spreads voters and
  /// stand-bys over distinct domains).
  std::uint64_t failure_domain = 0;
  /// The node's weight (WEIGHT after each start; the roles policy prefers low weights for
  /// promotion). Zero: not set.
  std::uint64_t weight = 0;
  /// Roles adjustment: the leader's app keeps this many online voters and stand-bys,
  /// promoting healthy spares and stand-bys and demoting members that stopped answering.
  /// A node that joins asks for the role missing most (voter, then stand-by).
  unsigned voters = 3;
  unsigned standbys = 3;
  /// Roles adjustment on or off (off: roles change only through the cluster client).
  bool adjust_roles = true;
  /// The leader adjusts roles this often, and at once when the membership changes.
  std::chrono::milliseconds roles_adjustment_frequency{30'000};
  /// How often the app looks at the cluster: the leader, the members (refreshing the node
  /// store), readiness, membership changes.
  std::chrono::milliseconds membership_check{1'000};
  /// Bound on probing one member (TCP connect, LEADER, DESCRIBE); a member that does not
  /// answer within it counts as offline.
  std::chrono::milliseconds probe_timeout{2'000};
  /// Bound on joining through `cluster` on the first start (finding the leader, ADD).
  std::chrono::milliseconds join_timeout{60'000};
  /// Bound on async_ready. Zero or less: none.
  std::chrono::milliseconds ready_timeout{60'000};
  /// Bound on the handover steps of async_handover (the node is stopped afterwards in any
  /// case).
  std::chrono::milliseconds handover_timeout{30'000};
  /// Options of the app's own cluster client (cluster()). Its node store is the app's.
  cluster_options client{};
  /// Sets SIGPIPE to SIG_IGN when it has its default action (the node writes to sockets
  /// that peers may close; the default action kills the process). Process-wide.
  bool ignore_sigpipe = true;
  /// Receives one line per event (start, join, role change, handover steps); called on the
  /// app's strand. Empty: no log.
  std::function<void(std::string_view)> log{};
};

/// Counters of an app (see app::stats).
struct app_stats {
  bool ready = false;             ///< a member, and a leader is known
  std::uint64_t leader_id = 0;    ///< the leader as last seen (0: none)
  std::uint64_t role_changes = 0; ///< role changes this app made as the leader
  std::vector<node_info> members; ///< the members as last seen
};

namespace detail {

using app_clock = std::chrono::steady_clock;
using app_result = cluster_result<void>;

/// What the start job produces.
struct app_start_result {
  error_code ec;
  std::string diag;
  app_identity identity;
  bool is_new = false;
  std::vector<node_info> stored_members;
};

/// The shared state of an app. Strand members are used on `ex` only; `node` and `closing`
/// under `mu` (the worker thread and the destructor use them too).
struct app_state {
  app_state(boost::asio::any_io_executor e, std::filesystem::path d, app_options o)
      : user_ex(e), ex(boost::asio::make_strand(e)), dir(std::move(d)), opts(std::move(o)),
        store(std::make_shared<memory_node_store>()) {}

  enum class phase { idle, starting, running, handing_over, stopping, stopped, failed };

  boost::asio::any_io_executor user_ex;
  boost::asio::any_io_executor ex;  ///< a strand
  std::filesystem::path dir;
  app_options opts;
  app_identity identity;
  std::shared_ptr<memory_node_store> store;
  std::optional<basic_cluster<boost::asio::ip::tcp::socket>> admin;   ///< the app's own use
  std::optional<basic_cluster<boost::asio::ip::tcp::socket>> client;  ///< cluster()
  boost::asio::thread_pool workers{1};

  std::mutex mu;
  dqlite_node* node = nullptr;
  bool closing = false;

  phase ph = phase::idle;
  bool ready = false;
  std::string not_ready_reason = "the node was not started";
  std::vector<std::weak_ptr<async_event>> waiters;  ///< async_ready's
  std::shared_ptr<boost::asio::steady_timer> loop_timer;
  std::vector<node_info> members;
  std::vector<node_info> adjusted_for;
  app_clock::time_point next_adjust{};
  std::uint64_t leader_id = 0;
  std::uint64_t role_changes = 0;

  void log(const std::string& text) const {
    if (!opts.log) return;
    try {
      opts.log(text);
    } catch (...) {
    }
  }
  /// Wakes every async_ready waiter.
  void notify() {
    for (auto& w : waiters)
      if (auto t = w.lock()) t->notify_all();
    waiters.clear();
  }
  bool active() const { return ph == phase::running || ph == phase::handing_over; }
  connection_options probe_options() const {
    connection_options o;
    o.database = {};
    o.connect_timeout = opts.probe_timeout;
    o.request_timeout = opts.probe_timeout;
    return o;
  }
};

/// Runs `f()` (a blocking call) on the app's worker thread and resumes the caller on its
/// executor with the result; empty when the app is being destroyed.
template <class R, class F>
boost::asio::awaitable<std::optional<R>> off_thread(std::shared_ptr<app_state> s, F f) {
  auto init = [s, f = std::move(f)](auto handler) mutable {
    auto ex = boost::asio::get_associated_executor(handler, s->ex);
    auto work = boost::asio::make_work_guard(ex);
    std::unique_lock lock(s->mu);
    if (s->closing) {
      lock.unlock();
      boost::asio::post(ex, [h = std::move(handler)]() mutable { std::move(h)(std::optional<R>()); });
      return;
    }
    boost::asio::post(s->workers, [f = std::move(f), h = std::move(handler),
                                   work = std::move(work)]() mutable {
      std::optional<R> r;
      r.emplace(f());
      auto ex2 = work.get_executor();
      boost::asio::post(ex2, [h = std::move(h), r = std::move(r)]() mutable {
        std::move(h)(std::move(r));
      });
    });
  };
  co_return co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                                 void(std::optional<R>)>(std::move(init),
                                                                         boost::asio::use_awaitable);
}

inline std::string node_error(dqlite_node* n, const char* what, int rv) {
  const char* msg = n != nullptr ? dqlite_node_errmsg(n) : nullptr;
  return std::string(what) + " failed (" + std::to_string(rv) +
         (msg != nullptr && *msg != '\0' ? std::string("): ") + msg : std::string(")"));
}

/// Removes what a first start left in `dir` (the identity, the member list, raft files).
inline void remove_app_files(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> doomed;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind(app_info_file, 0) == 0 || name.rfind(app_cluster_file, 0) == 0 ||
        name.rfind("metadata", 0) == 0 || name.rfind("snapshot-", 0) == 0 ||
        name.rfind("open-", 0) == 0 || (!name.empty() && name[0] >= '0' && name[0] <= '9'))
      doomed.push_back(e.path());
  }
  for (const auto& p : doomed) std::filesystem::remove_all(p, ec);
}

/// The start job: decides the identity, creates and starts the node. Worker thread only.
inline app_start_result start_node_blocking(app_state& s) {
  app_start_result r;
  auto fail = [&r](errc e, std::string text) {
    r.ec = make_error_code(e);
    r.diag = std::move(text);
    return r;
  };
  const auto& o = s.opts;
  const std::string dir = s.dir.string();
  std::error_code fec;
  std::filesystem::create_directories(s.dir, fec);
  if (fec) return fail(errc::invalid_argument, "cannot create the data directory " + dir + ": " + fec.message());
  std::optional<app_identity> stored;
  try {
    stored = read_app_identity(s.dir);
  } catch (const std::exception& e) {
    return fail(errc::invalid_argument, e.what());
  }
  if (stored) {
    if (!o.address.empty() && o.address != stored->address)
      return fail(errc::invalid_argument,
                  "the data directory " + dir + " belongs to node " + std::to_string(stored->id) +
                      " advertised at " + stored->address + ", but app_options::address is " +
                      o.address + " (a node keeps its address; use a new data directory for a new node)");
    r.identity = *stored;
  } else {
    if (has_raft_data(s.dir))
      return fail(errc::invalid_argument,
                  "the data directory " + dir + " holds raft data but no " + app_info_file +
                      " file: it was not made by dqlite::app, or that file was lost");
    host_port hp;
    if (o.address.empty())
      return fail(errc::invalid_argument,
                  "app_options::address is required on the first start (data directory " + dir + ")");
    if (parse_address(o.address, hp))
      return fail(errc::invalid_address, "app_options::address '" + printable(o.address) +
                                             "' is not host:port or [ipv6]:port");
    r.identity.address = o.address;
    if (o.cluster.empty()) {
      r.identity.id = 1;  // libdqlite bootstraps a new cluster with node 1
    } else {
      r.identity.id = dqlite_generate_node_id(o.address.c_str());
      while (r.identity.id <= 1) r.identity.id = dqlite_generate_node_id(o.address.c_str());
    }
    r.is_new = true;
    try {
      write_app_identity(s.dir, r.identity);
    } catch (const std::exception& e) {
      return fail(errc::invalid_argument, e.what());
    }
  }
  r.stored_members = read_app_members(s.dir);

  auto undo = [&] {
    if (r.is_new) remove_app_files(s.dir);
  };
  dqlite_node* n = nullptr;
  int rv = dqlite_node_create(r.identity.id, r.identity.address.c_str(), dir.c_str(), &n);
  if (rv != 0) {
    undo();
    return fail(errc::invalid_argument, "dqlite_node_create failed (" + std::to_string(rv) + ")");
  }
  const std::string bind = o.bind_address.empty() ? r.identity.address : o.bind_address;
  // libdqlite 1.11 opens the listening socket here already.
  rv = dqlite_node_set_bind_address(n, bind.c_str());
  if (rv != 0) {
    std::string text = node_error(n, "dqlite_node_set_bind_address", rv);
    dqlite_node_destroy(n);
    undo();
    return fail(errc::invalid_address, "cannot listen on '" + printable(bind) +
                                           "' (address in use, or not host:port or @name): " + text);
  }
  auto setting = [&](const char* what, int code) {
    if (code == 0) return false;
    std::string text = node_error(n, what, code);
    dqlite_node_destroy(n);
    undo();
    fail(errc::invalid_argument, text);
    return true;
  };
  if (o.network_latency.count() > 0 &&
      setting("dqlite_node_set_network_latency_ms",
              dqlite_node_set_network_latency_ms(n, static_cast<unsigned>(o.network_latency.count()))))
    return r;
  if (o.failure_domain != 0 &&
      setting("dqlite_node_set_failure_domain", dqlite_node_set_failure_domain(n, o.failure_domain)))
    return r;
  if ((o.snapshot_threshold != 0 || o.snapshot_trailing != 0) &&
      setting("dqlite_node_set_snapshot_params",
              dqlite_node_set_snapshot_params(n, o.snapshot_threshold, o.snapshot_trailing)))
    return r;
  rv = dqlite_node_start(n);
  if (rv != 0) {
    std::string text = node_error(n, "dqlite_node_start", rv);
    dqlite_node_destroy(n);
    undo();
    return fail(errc::invalid_argument, text);
  }
  std::lock_guard lock(s.mu);
  if (s.closing) {  // the app is being destroyed
    dqlite_node_stop(n);
    dqlite_node_destroy(n);
    return fail(errc::cancelled, "the app was destroyed while its node started");
  }
  s.node = n;
  return r;
}

/// The stop job: stops and destroys the node, if any. Worker thread only.
inline std::string stop_node_blocking(app_state& s) {
  dqlite_node* n = nullptr;
  {
    std::lock_guard lock(s.mu);
    n = std::exchange(s.node, nullptr);
  }
  if (n == nullptr) return {};
  std::string text;
  if (int rv = dqlite_node_stop(n); rv != 0) text = node_error(n, "dqlite_node_stop", rv);
  dqlite_node_destroy(n);
  return text;
}

inline void ignore_sigpipe_if_default() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) return;
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGPIPE, &ign, nullptr);
}

inline boost::asio::awaitable<void> app_sleep(std::shared_ptr<app_state> s, std::chrono::milliseconds d) {
  auto t = std::make_shared<boost::asio::steady_timer>(s->ex, d);
  s->loop_timer = t;
  co_await t->async_wait(as_tuple_awaitable);
}

/// Pauses the caller for `d` (on the app's strand).
inline boost::asio::awaitable<void> pause(std::shared_ptr<app_state> s, std::chrono::milliseconds d) {
  boost::asio::steady_timer t(s->ex, d);
  co_await t.async_wait(as_tuple_awaitable);
}

/// Probes one member: TCP connect, LEADER (the handshake), DESCRIBE.
inline boost::asio::awaitable<member_health> probe_member(std::shared_ptr<app_state> s, node_info n) {
  member_health h;
  h.node = n;
  connection conn(s->probe_options(), s->ex);
  auto c = co_await conn.async_connect(n.address, as_tuple_awaitable);
  if (std::get<0>(c)) co_return h;
  auto d = co_await conn.async_describe(as_tuple_awaitable);
  if (std::get<0>(d)) co_return h;
  h.online = true;
  h.failure_domain = std::get<1>(d).failure_domain;
  h.weight = std::get<1>(d).weight;
  co_return h;
}

struct probe_batch {
  explicit probe_batch(const boost::asio::any_io_executor& ex) : done(ex) {}
  std::vector<member_health> results;
  std::size_t left = 0;
  async_event done;  ///< notified when the last probe ends
};

inline boost::asio::awaitable<void> probe_into(std::shared_ptr<app_state> s,
                                               std::shared_ptr<probe_batch> b, std::size_t i) {
  try {
    b->results[i] = co_await probe_member(s, b->results[i].node);
  } catch (...) {
    b->results[i].online = false;
  }
  if (--b->left == 0) b->done.notify_all();
}

/// Probes every member at once; each within probe_timeout.
inline boost::asio::awaitable<std::vector<member_health>> probe_members(
    std::shared_ptr<app_state> s, const std::vector<node_info>& members) {
  auto b = std::make_shared<probe_batch>(s->ex);
  b->results.resize(members.size());
  for (std::size_t i = 0; i < members.size(); ++i) b->results[i].node = members[i];
  b->left = members.size();
  for (std::size_t i = 0; i < members.size(); ++i)
    boost::asio::co_spawn(s->ex, probe_into(s, b, i), boost::asio::detached);
  while (b->left > 0) co_await b->done.wait();
  co_return std::move(b->results);
}

/// LEADER as answered by the node at `address`; empty when it does not answer.
inline boost::asio::awaitable<std::optional<node_info>> leader_seen_by(std::shared_ptr<app_state> s,
                                                                       std::string address) {
  connection conn(s->probe_options(), s->ex);
  auto c = co_await conn.async_connect(address, as_tuple_awaitable);
  if (std::get<0>(c)) co_return std::nullopt;
  auto l = co_await conn.async_leader(as_tuple_awaitable);
  if (std::get<0>(l)) co_return std::nullopt;
  co_return std::get<1>(l);
}

inline std::string cluster_error(const basic_cluster<boost::asio::ip::tcp::socket>& c, error_code ec) {
  return error_text(ec, c.diagnostics());
}

/// Keeps the node store (and its file) up to date with the members as the leader lists
/// them, plus this node.
inline boost::asio::awaitable<void> remember_members(std::shared_ptr<app_state> s,
                                                     std::vector<node_info> members) {
  if (members == s->members) co_return;
  s->members = members;
  s->store->set(members);
  auto dir = s->dir;
  // (Named: GCC 12 mishandles a lambda temporary with owning captures in a co_await
  // expression.)
  auto job = [dir, members] {
    try {
      write_app_members(dir, members);
    } catch (...) {
    }
    return true;
  };
  co_await off_thread<bool>(s, std::move(job));
}

/// One pass of the roles adjustment on the leader: role changes, one at a time, until the
/// policy asks for none.
inline boost::asio::awaitable<void> adjust_roles(std::shared_ptr<app_state> s) {
  for (int round = 0; round < 16 && s->ph == app_state::phase::running; ++round) {
    auto m = co_await s->admin->async_cluster(as_tuple_awaitable);
    if (auto ec = std::get<0>(m)) {
      s->log("roles: cannot list the members: " + cluster_error(*s->admin, ec));
      co_return;
    }
    auto members = std::get<1>(std::move(m));
    co_await remember_members(s, members);
    auto health = co_await probe_members(s, members);
    if (s->ph != app_state::phase::running) co_return;
    auto change = next_role_change(health, s->identity.id, s->opts.voters, s->opts.standbys);
    if (!change) co_return;
    s->log("roles: " + to_string(*change));
    auto a = co_await s->admin->async_assign(change->id, change->role, as_tuple_awaitable);
    if (auto ec = std::get<0>(a)) {
      s->log("roles: " + to_string(*change) + " failed: " + cluster_error(*s->admin, ec));
      // Another configuration change (a node joining, a handover) is in progress: look
      // again shortly.
      if (!is_busy(ec)) co_return;
      co_await pause(s, std::chrono::milliseconds(100));
      continue;
    }
    ++s->role_changes;
  }
}

/// One look at the cluster: leader, members, readiness; on the leader, roles adjustment
/// when the membership changed or its period has passed.
inline boost::asio::awaitable<void> loop_step(std::shared_ptr<app_state> s) {
  auto l = co_await s->admin->async_leader(as_tuple_awaitable);
  if (!s->active()) co_return;
  if (auto ec = std::get<0>(l)) {
    s->leader_id = 0;
    s->not_ready_reason = "no leader known: " + cluster_error(*s->admin, ec);
    co_return;
  }
  const node_info leader = std::get<1>(l);
  s->leader_id = leader.id;
  auto m = co_await s->admin->async_cluster(as_tuple_awaitable);
  if (!s->active()) co_return;
  if (auto ec = std::get<0>(m)) {
    s->not_ready_reason = "cannot list the members: " + cluster_error(*s->admin, ec);
    co_return;
  }
  auto members = std::get<1>(std::move(m));
  co_await remember_members(s, members);
  const bool member = std::any_of(members.begin(), members.end(),
                                  [&](const node_info& n) { return n.id == s->identity.id; });
  if (!member) {
    s->not_ready_reason = "node " + std::to_string(s->identity.id) + " is not a member of the cluster";
  } else if (!s->ready) {
    s->ready = true;
    s->not_ready_reason.clear();
    s->log("ready: node " + std::to_string(s->identity.id) + " is a member; the leader is node " +
           std::to_string(leader.id) + " at " + leader.address);
    s->notify();
  }
  if (leader.id != s->identity.id || !s->opts.adjust_roles || s->ph != app_state::phase::running)
    co_return;
  const auto now = app_clock::now();
  if (members != s->adjusted_for || now >= s->next_adjust) {
    co_await adjust_roles(s);
    s->adjusted_for = s->members;
    s->next_adjust = app_clock::now() + s->opts.roles_adjustment_frequency;
  }
}

inline boost::asio::awaitable<void> run_loop(std::shared_ptr<app_state> s) {
  while (s->active()) {
    try {
      if (s->ph == app_state::phase::running) co_await loop_step(s);
    } catch (const std::exception& e) {
      s->log(std::string("app loop: ") + e.what());
    }
    if (!s->active()) break;
    co_await app_sleep(s, s->opts.membership_check);
  }
}

/// Joins through opts.cluster: checks the address, ADD as a spare, then asks for the role
/// the policy gives a new member.
inline boost::asio::awaitable<app_result> join_cluster(std::shared_ptr<app_state> s) {
  const auto& me = s->identity;
  const auto deadline = app_clock::now() + s->opts.join_timeout;
  // The advertised address must reach this node.
  auto own = co_await leader_seen_by(s, me.address);
  if (!own)
    co_return app_result::fail(make_error_code(errc::invalid_address),
                               "the advertised address " + me.address +
                                   " does not reach this node (it listens on " +
                                   (s->opts.bind_address.empty() ? me.address : s->opts.bind_address) + ")");
  cluster_options co;
  co.connection.database = {};
  co.probe_timeout = s->opts.probe_timeout;
  co.retry_timeout = s->opts.join_timeout;
  std::optional<basic_cluster<boost::asio::ip::tcp::socket>> joiner;
  try {
    joiner.emplace(s->ex, s->opts.cluster, co);
  } catch (const error& e) {
    co_return app_result::fail(e.code(), "app_options::cluster: " + e.get_diagnostics().message());
  }
  std::string through;
  for (const auto& a : s->opts.cluster) through += (through.empty() ? "" : ", ") + a;
  for (;;) {
    auto m = co_await joiner->async_cluster(as_tuple_awaitable);
    if (auto ec = std::get<0>(m))
      co_return app_result::fail(ec, "cannot join the cluster through " + through + ": " +
                                         cluster_error(*joiner, ec));
    auto members = std::get<1>(std::move(m));
    bool added = false;
    for (const auto& n : members) {
      if (n.address == me.address && n.id != me.id)
        co_return app_result::fail(
            make_error_code(errc::invalid_address),
            "cannot join: the address " + me.address + " is already used by node " +
                std::to_string(n.id) + " of the cluster (each node needs its own address)");
      if (n.id == me.id) added = true;
    }
    if (added) break;
    node_info self{me.id, me.address, node_role::spare};
    auto a = co_await joiner->async_add(self, as_tuple_awaitable);
    auto ec = std::get<0>(a);
    if (!ec) {
      s->log("joined: node " + std::to_string(me.id) + " at " + me.address + " added as a spare");
      continue;  // confirm through the member list
    }
    const std::string text = cluster_error(*joiner, ec);
    if (!is_retryable(ec) || app_clock::now() >= deadline)
      co_return app_result::fail(ec, "adding node " + std::to_string(me.id) + " at " + me.address +
                                         " to the cluster failed: " + text);
    s->log("join: ADD failed, retrying: " + text);
    co_await pause(s, std::chrono::milliseconds(200));
  }
  if (!s->opts.adjust_roles) co_return app_result{};
  // Ask for the role the cluster misses most; the leader's adjustment does it otherwise.
  for (int attempt = 0; attempt < 20 && app_clock::now() < deadline; ++attempt) {
    auto m = co_await joiner->async_cluster(as_tuple_awaitable);
    if (std::get<0>(m)) break;
    auto members = std::get<1>(std::move(m));
    auto health = co_await probe_members(s, members);
    auto role = role_for_new_member(health, me.id, s->opts.voters, s->opts.standbys);
    auto mine = std::find_if(members.begin(), members.end(),
                             [&](const node_info& n) { return n.id == me.id; });
    if (!role || mine == members.end() || mine->role == *role ||
        (mine->role == node_role::voter) || (mine->role == node_role::standby && *role == node_role::standby))
      break;
    auto a = co_await joiner->async_assign(me.id, *role, as_tuple_awaitable);
    auto ec = std::get<0>(a);
    if (!ec) {
      s->log("joined: node " + std::to_string(me.id) + " is now a " + std::string(to_string(*role)));
      break;
    }
    s->log("join: becoming a " + std::string(to_string(*role)) + " failed: " + cluster_error(*joiner, ec));
    if (!is_retryable(ec)) break;
    co_await pause(s, std::chrono::milliseconds(200));
  }
  co_return app_result{};
}

inline boost::asio::awaitable<app_result> start_body(std::shared_ptr<app_state> s) {
  if (s->ph != app_state::phase::idle)
    co_return app_result::fail(make_error_code(errc::invalid_argument),
                               "async_start: the app was started already");
  s->ph = app_state::phase::starting;
  if (s->opts.ignore_sigpipe) ignore_sigpipe_if_default();
  app_state* raw = s.get();
  auto start_job = [raw] { return start_node_blocking(*raw); };
  auto r = co_await off_thread<app_start_result>(s, start_job);
  if (!r || r->ec) {
    s->ph = app_state::phase::failed;
    s->not_ready_reason = r ? r->diag : "the app was destroyed";
    s->notify();
    if (!r) co_return app_result::fail(make_error_code(errc::cancelled), "the app was destroyed");
    co_return app_result::fail(r->ec, std::move(r->diag));
  }
  s->identity = r->identity;
  s->log("started: node " + std::to_string(s->identity.id) + " at " + s->identity.address +
         (r->is_new ? (s->opts.cluster.empty() ? " (new: bootstrapping a cluster)" : " (new: joining)")
                    : " (restarted)"));
  // Where to look for the leader: the members seen last time, the join list, this node.
  std::vector<node_info> seed = r->stored_members;
  auto known = [&seed](const std::string& a) {
    return std::any_of(seed.begin(), seed.end(), [&](const node_info& n) { return n.address == a; });
  };
  if (!known(s->identity.address)) seed.push_back(node_info{s->identity.id, s->identity.address, node_role::voter});
  for (const auto& a : s->opts.cluster)
    if (!known(a)) seed.push_back(node_info{0, a, node_role::voter});
  s->store->set(seed);
  cluster_options ao;
  ao.connection.database = {};
  ao.probe_timeout = s->opts.probe_timeout;
  ao.retry_timeout = std::max(s->opts.probe_timeout * 2, std::chrono::milliseconds(2'000));
  s->admin.emplace(s->ex, std::static_pointer_cast<node_store>(s->store), ao);
  s->client.emplace(s->user_ex, std::static_pointer_cast<node_store>(s->store), s->opts.client);

  app_result failure;
  if (s->opts.weight != 0) {
    auto w = co_await s->admin->async_weight(s->identity.address, s->opts.weight, as_tuple_awaitable);
    if (auto ec = std::get<0>(w))
      failure = app_result::fail(ec, "setting the weight of node " + std::to_string(s->identity.id) +
                                         " failed: " + cluster_error(*s->admin, ec));
  }
  bool join = r->is_new && !s->opts.cluster.empty();
  if (!failure.ec && !r->is_new && !s->opts.cluster.empty()) {
    // A node that stopped during its first join (identity stored, ADD not done) joins now.
    auto m = co_await s->admin->async_cluster(as_tuple_awaitable);
    if (!std::get<0>(m)) {
      const auto& members = std::get<1>(m);
      join = std::none_of(members.begin(), members.end(),
                          [&](const node_info& n) { return n.id == s->identity.id; });
      if (join)
        s->log("restarted: node " + std::to_string(s->identity.id) +
               " is not a member (its first join did not finish): joining");
    }
  }
  if (!failure.ec && join) failure = co_await join_cluster(s);
  if (failure.ec) {
    s->log("start failed: " + failure.diag);
    s->admin->close();
    s->client->close();
    const bool is_new = r->is_new;
    auto dir = s->dir;
    auto job = [raw, is_new, dir] {
      auto text = stop_node_blocking(*raw);
      if (is_new) remove_app_files(dir);  // a later start may try another address
      return text;
    };
    co_await off_thread<std::string>(s, std::move(job));
    s->ph = app_state::phase::failed;
    s->not_ready_reason = failure.diag;
    s->notify();
    co_return failure;
  }
  s->ph = app_state::phase::running;
  s->not_ready_reason = "no leader seen yet";
  boost::asio::co_spawn(s->ex, run_loop(s), boost::asio::detached);
  co_return app_result{};
}

inline boost::asio::awaitable<app_result> ready_body(std::shared_ptr<app_state> s) {
  const auto bound = s->opts.ready_timeout;
  const auto deadline = bound.count() > 0 ? app_clock::now() + bound : app_clock::time_point::max();
  while (!s->ready || !s->active()) {
    if (s->ph == app_state::phase::failed || s->ph == app_state::phase::stopping ||
        s->ph == app_state::phase::stopped)
      co_return app_result::fail(make_error_code(errc::cancelled),
                                 "the node is not running: " + s->not_ready_reason);
    if (app_clock::now() >= deadline)
      co_return app_result::fail(make_error_code(errc::timeout),
                                 "the node is not ready after " + std::to_string(bound.count()) +
                                     " ms: " + s->not_ready_reason);
    auto t = std::make_shared<async_event>(s->ex, deadline);
    s->waiters.push_back(t);
    co_await t->wait();
  }
  co_return app_result{};
}

inline boost::asio::awaitable<app_result> stop_body(std::shared_ptr<app_state> s) {
  using phase = app_state::phase;
  if (s->ph == phase::stopped || s->ph == phase::idle || s->ph == phase::failed) {
    s->ph = phase::stopped;
    co_return app_result{};
  }
  if (s->ph == phase::stopping || s->ph == phase::starting)
    co_return app_result::fail(make_error_code(errc::operation_in_progress),
                               s->ph == phase::stopping ? "the node is stopping already"
                                                        : "the node is starting: wait for async_start");
  s->ph = phase::stopping;
  s->ready = false;
  s->not_ready_reason = "the node was stopped";
  s->notify();
  if (s->loop_timer) s->loop_timer->cancel();
  if (s->admin) s->admin->close();
  if (s->client) s->client->close();
  app_state* raw = s.get();
  auto stop_job = [raw] { return stop_node_blocking(*raw); };
  auto text = co_await off_thread<std::string>(s, stop_job);
  s->ph = phase::stopped;
  s->log("stopped: node " + std::to_string(s->identity.id));
  if (text && !text->empty()) co_return app_result::fail(make_error_code(errc::invalid_argument), *text);
  co_return app_result{};
}

/// The best online member of `health` with role `r`, not `self`, for a promotion.
inline std::optional<member_health> best_candidate(const std::vector<member_health>& health,
                                                   node_role r, std::uint64_t self) {
  auto c = members_where(health, r, true);
  std::erase_if(c, [self](const member_health* m) { return m->node.id == self; });
  auto voters = members_where(health, node_role::voter, true);
  rank_candidates(c, voters);
  if (c.empty()) return std::nullopt;
  return *c.front();
}

inline boost::asio::awaitable<void> handover_steps(std::shared_ptr<app_state> s) {
  const auto me = s->identity.id;
  const auto deadline = app_clock::now() + s->opts.handover_timeout;
  auto& admin = *s->admin;
  // 1. A leader hands the leadership to a healthy voter.
  auto own = co_await leader_seen_by(s, s->identity.address);
  if (own && own->id == me) {
    auto m = co_await admin.async_cluster(as_tuple_awaitable);
    if (auto ec = std::get<0>(m)) {
      s->log("handover: cannot list the members: " + cluster_error(admin, ec));
      co_return;
    }
    auto health = co_await probe_members(s, std::get<1>(m));
    auto target = best_candidate(health, node_role::voter, me);
    if (!target) {
      s->log("handover: no other online voter to take the leadership");
      co_return;
    }
    s->log("handover: transferring the leadership to node " + std::to_string(target->node.id));
    auto t = co_await admin.async_transfer(target->node.id, as_tuple_awaitable);
    if (auto ec = std::get<0>(t)) {
      s->log("handover: the transfer failed: " + cluster_error(admin, ec));
      co_return;
    }
    for (;;) {
      auto seen = co_await leader_seen_by(s, s->identity.address);
      if (seen && seen->id != me && seen->id != 0) break;
      if (app_clock::now() >= deadline) {
        s->log("handover: the leadership did not move in time");
        co_return;
      }
      co_await pause(s, std::chrono::milliseconds(20));
    }
    s->log("handover: the leadership moved");
  }
  if (app_clock::now() >= deadline) co_return;
  // 2. A voter (or stand-by) hands its role to a spare or stand-by, then becomes a spare.
  auto m = co_await admin.async_cluster(as_tuple_awaitable);
  if (auto ec = std::get<0>(m)) {
    s->log("handover: cannot list the members: " + cluster_error(admin, ec));
    co_return;
  }
  auto members = std::get<1>(std::move(m));
  auto mine = std::find_if(members.begin(), members.end(), [&](const node_info& n) { return n.id == me; });
  if (mine == members.end() || mine->role == node_role::spare) co_return;
  const node_role role = mine->role;
  auto health = co_await probe_members(s, members);
  std::optional<member_health> heir;
  if (role == node_role::voter) heir = best_candidate(health, node_role::standby, me);
  if (!heir) heir = best_candidate(health, node_role::spare, me);
  if (!heir) {
    s->log("handover: no online stand-by or spare to take the " + std::string(to_string(role)) + " role");
    co_return;
  }
  s->log("handover: node " + std::to_string(heir->node.id) + " becomes a " + std::string(to_string(role)));
  auto a = co_await admin.async_assign(heir->node.id, role, as_tuple_awaitable);
  if (auto ec = std::get<0>(a)) {
    s->log("handover: promoting node " + std::to_string(heir->node.id) + " failed: " + cluster_error(admin, ec));
    co_return;
  }
  auto b = co_await admin.async_assign(me, node_role::spare, as_tuple_awaitable);
  if (auto ec = std::get<0>(b))
    s->log("handover: demoting this node failed: " + cluster_error(admin, ec));
  else
    s->log("handover: node " + std::to_string(me) + " is now a spare");
}

inline boost::asio::awaitable<app_result> handover_body(std::shared_ptr<app_state> s) {
  if (s->ph != app_state::phase::running) co_return co_await stop_body(s);
  s->ph = app_state::phase::handing_over;
  try {
    co_await handover_steps(s);
  } catch (const std::exception& e) {
    s->log(std::string("handover: ") + e.what());
  }
  co_return co_await stop_body(s);
}

/// The app's part of its operations (coroutine_op): the state is kept while they run.
struct app_op_hooks : default_op_hooks {
  static constexpr bool keeps_state = true;
};

}  // namespace detail

/// A dqlite node running inside this process, with go-dqlite's `app` behaviour: identity
/// kept in the data directory, bootstrap or join on the first start, roles adjustment on
/// the leader, handover on shutdown.
///
/// Operations take any completion token (default: dqlite::use_awaitable, which throws
/// dqlite::error carrying the diagnostics text) and complete with void(error_code). They
/// run on a strand of the executor. The blocking libdqlite calls run on a thread the app
/// owns. Destroying an app whose node still runs stops the node on that thread and waits
/// for it (the destructor blocks then): call async_handover or async_stop first.
class app {
 public:
  using executor_type = boost::asio::any_io_executor;
  using cluster_type = basic_cluster<boost::asio::ip::tcp::socket>;

  /// An app over data directory `dir` (created if missing). Starts nothing: see
  /// async_start. Throws dqlite::error (errc::invalid_argument) for options that cannot
  /// work.
  app(const executor_type& ex, std::filesystem::path dir, app_options opts = {})
      : s_(std::make_shared<detail::app_state>(ex, std::move(dir), validate(std::move(opts)))) {}

  app(app&&) noexcept = default;
  app& operator=(app&& other) noexcept {
    if (this != &other) {
      destroy();
      s_ = std::move(other.s_);
    }
    return *this;
  }
  app(const app&) = delete;
  app& operator=(const app&) = delete;
  ~app() { destroy(); }

  /// Starts the node. On the first start (no identity in the data directory) the id and
  /// address are chosen and stored: with no join list the node bootstraps a new cluster
  /// as node 1; otherwise it gets a new id, checks that its address reaches it and is not
  /// used by another member, joins as a spare through app_options::cluster and asks for
  /// the role the cluster misses (voter, then stand-by). Later starts reuse the identity
  /// and just start (with a join list, a node that the leader does not list, because it
  /// stopped during its first join, joins again). Completes once the node runs (and, on a
  /// join, is a member).
  /// Errors: errc::invalid_argument / invalid_address (bad options, a data directory of
  /// another node, an address in use or taken by another member: the text says which),
  /// errc::no_leader (the join list leads to no leader within join_timeout), server
  /// errors of ADD. A failed first start leaves the data directory new again.
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_start(Token&& token = {}) {
    return initiate(token, [](std::shared_ptr<detail::app_state> s) { return detail::start_body(std::move(s)); });
  }

  /// Completes once the node is a member of the cluster and a leader is known (checked
  /// every membership_check). Fails with errc::timeout after app_options::ready_timeout
  /// (the text says what is missing), or errc::cancelled when the node is stopped or its
  /// start failed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_ready(Token&& token = {}) {
    return initiate(token, [](std::shared_ptr<detail::app_state> s) { return detail::ready_body(std::move(s)); });
  }

  /// Graceful shutdown: a leader first transfers the leadership to a healthy voter and
  /// waits until it moved; a voter (or stand-by) then has an online stand-by or spare
  /// promoted to its role and becomes a spare itself; then the node stops. The handover
  /// steps are best effort, bounded by app_options::handover_timeout, and logged; the
  /// operation fails only when stopping the node fails. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_handover(Token&& token = {}) {
    return initiate(token, [](std::shared_ptr<detail::app_state> s) { return detail::handover_body(std::move(s)); });
  }

  /// Stops the node without a handover (the cluster sees it fail). Completes at once when
  /// it is not running. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_stop(Token&& token = {}) {
    return initiate(token, [](std::shared_ptr<detail::app_state> s) { return detail::stop_body(std::move(s)); });
  }

  /// The node's raft id (0 before async_start completed).
  std::uint64_t id() const { return state().identity.id; }
  /// The address the node advertises (empty before async_start completed).
  const std::string& address() const { return state().identity.address; }
  /// The data directory.
  const std::filesystem::path& dir() const { return state().dir; }
  /// The node store the app keeps up to date with the members (for pools and clusters of
  /// the caller's own: dqlite::pool(ex, app.store(), opts)).
  std::shared_ptr<node_store> store() const { return state().store; }
  /// The app's cluster client (options: app_options::client), after async_start.
  cluster_type& cluster() {
    auto& s = state();
    if (!s.client) throw std::logic_error("dqlite::app::cluster(): call async_start first");
    return *s.client;
  }
  /// A pool of connections to the leader over the app's node store (no I/O until used).
  pool make_pool(const pool_options& opts = {}) const {
    return pool(state().user_ex, std::static_pointer_cast<node_store>(state().store), opts);
  }
  /// A snapshot of the app's state. Read it on get_executor() while operations run.
  app_stats stats() const {
    const auto& s = state();
    return app_stats{s.ready, s.leader_id, s.role_changes, s.members};
  }
  /// The strand the app's operations run on.
  executor_type get_executor() const { return state().ex; }

 private:
  static app_options validate(app_options o) {
    host_port hp;
    if (!o.address.empty() && parse_address(o.address, hp))
      throw error(make_error_code(errc::invalid_address),
                  diagnostics("app_options: address '" + detail::printable(o.address) +
                              "' is not host:port or [ipv6]:port"));
    for (const auto& a : o.cluster)
      if (parse_address(a, hp))
        throw error(make_error_code(errc::invalid_address),
                    diagnostics("app_options: cluster address '" + detail::printable(a) +
                                "' is not host:port or [ipv6]:port"));
    auto require = [](bool ok, std::string_view what) {
      detail::require_option(ok, "app_options", what);
    };
    require(o.network_latency.count() >= 0 && o.network_latency.count() <= 3'600'000,
            "network_latency must be 0 (default) or 1..3600000 ms");
    require(o.voters > 0, "voters must be at least 1");
    require(o.probe_timeout.count() > 0, "probe_timeout must be positive");
    require(o.membership_check.count() > 0, "membership_check must be positive");
    require(o.join_timeout.count() > 0, "join_timeout must be positive");
    require(o.handover_timeout.count() > 0, "handover_timeout must be positive");
    return o;
  }

  template <class Token, class Body>
  auto initiate(Token& token, Body body) {
    return detail::initiate_coroutine_op<void, detail::app_op_hooks>(s_, token, std::move(body));
  }

  detail::app_state& state() const {
    if (!s_) throw std::logic_error("dqlite: use of a moved-from app");
    return *s_;
  }

  void destroy() noexcept {
    if (!s_) return;
    auto s = std::move(s_);
    {
      std::lock_guard lock(s->mu);
      s->closing = true;
    }
    try {
      boost::asio::post(s->ex, [s] {
        s->ph = detail::app_state::phase::stopped;
        s->ready = false;
        s->not_ready_reason = "the app was destroyed";
        s->notify();
        if (s->loop_timer) s->loop_timer->cancel();
        if (s->admin) s->admin->close();
        if (s->client) s->client->close();
      });
      detail::app_state* raw = s.get();
      boost::asio::post(s->workers, [raw] { detail::stop_node_blocking(*raw); });
    } catch (...) {
    }
    s->workers.join();
  }

  std::shared_ptr<detail::app_state> s_;
};

}  // namespace dqlite
// ---- end dqlite/app.hpp ----

#endif // DQLITE_SINGLE_INCLUDE_APP_HPP
