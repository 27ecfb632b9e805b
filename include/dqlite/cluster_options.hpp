// Options of the cluster client: leader discovery, retries and backoff.
#pragma once

#include <dqlite/options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dqlite {

/// A predicate on node addresses, `bool(std::string_view address)`, held by reference (see
/// cluster_options::follow_redirect).
using address_filter = detail::basic_hook_ref<bool, std::string_view>;

/// How a cluster client finds the leader and retries. Designated initialisers:
///   dqlite::cluster c(ex, {"10.0.0.1:9001", "10.0.0.2:9001"},
///                     {.connection = {.database = "app"}, .retry_timeout = 5s});
struct cluster_options {
  /// Options of the connections to the leader that async_connect makes: the database to
  /// open (empty: none, for administration), timeouts, caps. The cluster keeps a copy of
  /// the database name.
  connection_options connection{};
  /// Bound on asking one node for the leader: TCP connect, handshake and LEADER. Must be
  /// positive.
  std::chrono::milliseconds probe_timeout{2'000};
  /// How many nodes are asked at the same time (at least 1).
  std::size_t max_concurrent_probes = 10;
  /// Attempts to find the leader (and, for async_connect, to open the database on it)
  /// before giving up. 0: no limit by count.
  unsigned max_attempts = 0;
  /// Bound on the time of all attempts together; a probe never outlasts it. 0 or less: no
  /// limit by time. With no limit at all (both 0) one attempt is made.
  std::chrono::milliseconds retry_timeout{30'000};
  /// Pause before attempt n + 1: backoff_base * backoff_factor^(n - 1), at most
  /// backoff_cap; with backoff_jitter, a random duration between half of that and all of
  /// it (so that clients do not retry in step).
  std::chrono::milliseconds backoff_base{100};
  unsigned backoff_factor = 2;
  std::chrono::milliseconds backoff_cap{1'000};
  bool backoff_jitter = true;
  /// After each successful discovery, replace the content of the node store with the
  /// leader's list of members (as async_refresh_store does). A refresh that fails (a store
  /// that cannot be written) does not fail the discovery: see basic_cluster::store_error().
  bool refresh_store = false;
  /// Which addresses a node's answer may lead to. When set, a node that names another node
  /// as the leader (or, knowing no leader, lists members to ask) is followed only to the
  /// addresses for which it returns true; the others are refused (counted in
  /// cluster_stats::redirects_refused, named in the errc::no_leader text) and discovery
  /// goes on with the nodes of the node store. Empty: every address is followed. The
  /// nodes of the node store itself are always asked. Called on the cluster's strand.
  /// Non-owning, with the rules of log_function: a plain function or a lambda without
  /// captures is kept as a function pointer, any other callable must outlive the cluster
  /// (or pool), and an exception escaping it calls std::terminate.
  address_filter follow_redirect{};
  /// Logging hook for the cluster's events (discovery, probes, redirects, leader
  /// changes, backoff: see docs/observability.md), called for those at or above
  /// log_threshold, on the cluster's strand, never concurrently for one cluster. The
  /// connections async_connect returns use connection.log (and its threshold) when set,
  /// else this one. The connections that only ask a node for the leader log nothing of
  /// their own: the cluster reports their probes.
  log_function log{};
  log_level log_threshold = log_level::info;
  /// Tracing hook of the connections async_connect returns, when connection.trace is
  /// not set (see request_trace).
  trace_function trace{};
};

/// Counters of a cluster client (see basic_cluster::stats).
struct cluster_stats {
  std::uint64_t discoveries = 0;  ///< leader discoveries run (one shared by callers counts once)
  std::uint64_t probes = 0;       ///< nodes asked for the leader (a redirect's target included)
  std::uint64_t probe_failures = 0;  ///< nodes that could not be asked (connect, handshake, LEADER)
  std::uint64_t redirects = 0;    ///< answers naming another node, followed
  std::uint64_t redirects_refused = 0;  ///< of those, the named node did not confirm it leads
  std::uint64_t leader_changes = 0;     ///< a discovery found another leader than the last one
  std::uint64_t retries = 0;      ///< pauses (backoff) between attempts to reach the leader
  /// Connections to the leader made (async_connect, the pool, administration requests).
  std::uint64_t connections = 0;
  std::string last_leader;        ///< address of the last leader found (empty: none yet)
  std::uint64_t last_leader_id = 0;  ///< its node id
};

}  // namespace dqlite
