// Options and counters of the connection pool.
#pragma once

#include <dqlite/cluster_options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dqlite {

/// How a pool behaves. Designated initialisers:
///   std::vector<std::string> nodes{"10.0.0.1:9001", "10.0.0.2:9001"};
///   auto pool = co_await dqlite::async_create_pool(ex, nodes, {.database = "app", .max_size = 16});
/// (g++ 12 cannot compile a braced list of string literals inside a co_await expression:
/// "array used as initializer"; name the list first, as above.)
/// The struct holds no owning members (so a temporary of it is safe inside a co_await
/// expression); the pool keeps its own copy of the database name.
struct pool_options {
  /// The database the pool's connections open (replaces cluster.connection.database).
  std::string_view database = "default";
  /// Connections opened (in parallel) when the pool is created and kept open afterwards:
  /// after a leader change the pool refills to this size in the background.
  std::size_t min_size = 0;
  /// Most connections open at once (checked out, idle and being opened). At least 1.
  std::size_t max_size = 10;
  /// Bound on async_acquire (and on the acquire step of the convenience calls); on expiry
  /// it fails with errc::timeout. Zero or less: no bound.
  std::chrono::milliseconds acquire_timeout{30'000};
  /// An idle connection unused for longer than this is checked with `SELECT 1` before it
  /// is handed out (a dead one is discarded and the next one tried).
  std::chrono::milliseconds health_check_after{1'000};
  /// Connections older than this (since they were opened) are closed instead of being
  /// handed out again: when they come back, and when found idle; the pool refills to
  /// min_size. For load balancers, credentials or servers that should see connections
  /// renewed. Zero (the default): no limit. As database/sql's SetConnMaxLifetime.
  std::chrono::milliseconds max_lifetime{0};
  /// Idle connections unused for this long are closed, down to min_size. Zero (the
  /// default): kept. As database/sql's SetConnMaxIdleTime.
  std::chrono::milliseconds max_idle_time{0};
  /// When positive, a background pass runs at this interval: idle connections neither used
  /// nor checked for health_check_after are checked with `SELECT 1` one at a time (a
  /// failed one is discarded, and a connection error empties the pool as any leader change
  /// does; a check does not count as use for max_idle_time), and those past max_lifetime
  /// or max_idle_time are closed. Zero (the default): idle connections are checked only
  /// when handed out. With max_lifetime or max_idle_time set, the pass also runs at a
  /// quarter of the shorter one (at least 10 ms) when that is more often.
  std::chrono::milliseconds health_check_interval{0};
  /// How long async_close waits for checked-out connections to come back.
  std::chrono::milliseconds close_timeout{5'000};
  /// The convenience reads (async_fetch, async_fetchval, async_fetchone) are run once more
  /// on a fresh connection after a connection or leadership error. Writes never are.
  bool retry_reads = true;
  /// The convenience calls (reads and writes) that fail with SQLITE_BUSY or SQLITE_LOCKED
  /// (another connection holds the write lock: the statement was not applied) are run
  /// again on the same connection, with a short growing pause, for up to this long. Zero:
  /// never. (A multi-statement SQL text whose later statement is busy would run its
  /// earlier statements again: keep such texts idempotent, or use a pooled connection.)
  std::chrono::milliseconds busy_timeout{5'000};
  /// Leader discovery, retries and backoff of new connections, and the connections'
  /// own options (timeouts, caps).
  cluster_options cluster{};
  /// Logging hook for the pool's events (connections opened, discarded and why, health
  /// check failures, leader changes, busy and read retries: see docs/observability.md),
  /// at or above log_threshold, on the pool's strand, never concurrently for one pool. The
  /// cluster client (and its connections) use it too when cluster.log is not set.
  log_function log{};
  log_level log_threshold = log_level::info;
  /// Tracing hook of the pool's connections, when neither cluster.trace nor
  /// cluster.connection.trace is set (see request_trace).
  trace_function trace{};
};

/// How basic_pool::async_transaction runs a transaction again after a failure that left
/// nothing applied (busy, or a leader change before COMMIT was sent).
struct transaction_retry {
  /// Attempts in all, the first included (at least 1). With the default pauses, 20
  /// attempts pause 3.8-7.6 s in all, about a single statement's busy_timeout: a
  /// transaction competing with a steady flow of writes on other connections can be
  /// refused as busy many times in a row before it finds the write lock free.
  unsigned max_attempts = 20;
  /// No attempt starts later than this after the call. Zero or less: max_attempts only.
  std::chrono::milliseconds timeout{10'000};
  /// Pause before attempt n + 1: backoff_base * 2^(n - 1), at most backoff_cap, each a
  /// random duration between half of that and all of it.
  std::chrono::milliseconds backoff_base{20};
  std::chrono::milliseconds backoff_cap{500};
};

/// Counters of a pool (see basic_pool::stats).
struct pool_stats {
  std::size_t idle = 0;         ///< open connections waiting in the pool
  std::size_t in_use = 0;       ///< checked out (or being checked / reset)
  std::size_t connecting = 0;   ///< being opened
  std::size_t waiting = 0;      ///< acquires waiting for a connection
  std::uint64_t opened = 0;     ///< connections opened since the pool was created
  std::uint64_t discarded = 0;  ///< connections dropped (broken, failed check, leader change)
  std::uint64_t leader_changes = 0;  ///< connection or leadership errors that emptied the pool
  /// Connections given back that went through a reset before their next use (a
  /// transaction that may be open, a dropped cursor or statement, or an operation still
  /// running); the others are given back without sending anything.
  std::uint64_t resets = 0;
  std::uint64_t connect_failures = 0;       ///< attempts to open a connection that failed
  std::uint64_t health_check_failures = 0;  ///< idle connections that failed their check
  std::uint64_t busy_retries = 0;  ///< statements run again after SQLITE_BUSY / SQLITE_LOCKED
  std::uint64_t read_retries = 0;  ///< reads run again on a fresh connection (retry_reads)
  std::uint64_t acquires = 0;         ///< connections handed out (acquires that succeeded)
  std::uint64_t waits = 0;            ///< acquires that had to wait (no idle connection)
  std::chrono::microseconds wait_time{0};  ///< total time those waited
  std::uint64_t acquire_timeouts = 0;      ///< acquires that failed with errc::timeout
  std::uint64_t expired = 0;  ///< connections closed for max_lifetime or max_idle_time
  std::uint64_t background_checks = 0;  ///< idle connections checked by the background pass
  std::uint64_t transaction_retries = 0;  ///< transactions run again (async_transaction)
};

}  // namespace dqlite
