// Options of a connection.
#pragma once

#include <dqlite/observe.hpp>
#include <dqlite/wire/protocol.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dqlite {

/// How a connection opens and behaves. Designated initialisers keep call sites short:
///   auto db = co_await dqlite::async_connect(ex, "127.0.0.1:9001", {.database = "app"});
/// The struct holds no owning members on purpose (so a temporary of it is safe inside a
/// co_await expression with every compiler); the connection keeps its own copy of the
/// database name.
struct connection_options {
  /// The database to open (created on first use). Empty: the connection opens no
  /// database and serves cluster administration only (leader, cluster, add...); the
  /// handshake then asks the node for the leader instead, so it still waits for an answer.
  /// basic_connection::async_open_database opens one later.
  std::string_view database = "default";
  /// Bound on resolve + TCP connect + handshake + OPEN. Zero or less: no bound.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Bound on each request, from sending it to the last frame of its response. Zero or
  /// less: no bound. On expiry the operation fails with errc::timeout and the connection
  /// is closed (the server may still be working on the request).
  std::chrono::milliseconds request_timeout{60'000};
  /// Bound on reading the rest of a result the client interrupted (a cancelled query, a
  /// closed or dropped cursor, a fetch over its cap) when request_timeout is zero or less;
  /// with a request_timeout, that bound covers the drain too. The server keeps sending the interrupted result's rows until it
  /// has finished the query (libdqlite answers INTERRUPT only then); on expiry the
  /// operation fails with errc::timeout and the connection is closed. Zero or less: none.
  std::chrono::milliseconds interrupt_timeout{30'000};
  /// Largest frame body accepted from the server; a larger one fails the operation with
  /// errc::frame_too_large and closes the connection.
  std::size_t max_frame_size = wire::default_max_frame_size;
  /// Caps on one result; the row that crosses one fails the operation with
  /// errc::result_too_large at once (that row is not kept, nothing after it is decoded;
  /// the rest of the result is interrupted before the connection's next request, and
  /// the connection stays usable). Zero: no cap.
  ///
  /// max_result_rows: rows read from the result, whether kept (fetch, fetchall,
  /// fetch_into) or read past (fetchone and fetchval keep the first row and read the
  /// rest). Not applied to cursors.
  std::size_t max_result_rows = 0;
  /// max_result_bytes: bytes of memory the rows kept hold (the row objects, vector slots
  /// included, and the heap memory of their strings, blobs and values, with a
  /// per-allocation overhead), plus the wire size of the rows read past. A cursor applies
  /// it to each batch.
  std::size_t max_result_bytes = std::size_t{1} << 30;
  /// Most columns a result may have. A ROWS frame announcing more fails the operation
  /// with errc::too_many_columns and closes the connection. The default is SQLite's hard
  /// limit (32767), which no server's result exceeds.
  std::size_t max_result_columns = wire::default_max_columns;
  /// Typed rows: a result column that matches no field of the row type is an error
  /// (errc::column_mismatch) instead of being ignored.
  bool reject_extra_columns = false;
  /// TCP keepalive of the connection's socket (TCP and TLS over TCP): when positive,
  /// SO_KEEPALIVE is set and the kernel sends the first probe after this much idle time
  /// and the next ones this far apart (TCP_KEEPIDLE, TCP_KEEPINTVL, whole seconds, at least
  /// 1), so that a peer that vanished without closing (a powered-off host, a dropped NAT
  /// entry) is noticed by an idle connection too. Zero (the default): the system's setting
  /// (usually off). As net.Dialer.KeepAlive in Go. Applied when the library connects the
  /// socket (async_connect, and the connectors built on it); a connector of the caller's
  /// that connects the socket itself sets it itself.
  std::chrono::seconds tcp_keepalive{0};
  /// Logging hook for the connection's events (connect, connected, connect_failed,
  /// timeout, interrupted, connection_broken: see docs/observability.md), called for those
  /// at or above log_threshold. Empty (the default): nothing is logged and no message is
  /// built. Called on the connection's executor (in the calling thread for blocking
  /// operations), never concurrently for one connection.
  log_function log{};
  log_level log_threshold = log_level::info;
  /// Tracing hook: called at the start and at the end of every request (see
  /// request_trace), on the connection's executor (in the calling thread for blocking
  /// operations), never concurrently for one connection. Empty (the default): no clock is
  /// read and nothing is recorded.
  trace_function trace{};
};

}  // namespace dqlite
