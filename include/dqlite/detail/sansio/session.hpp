// What one connection knows, apart from its transport: buffers, options, the opened
// database, the session objects (statements, transactions, cursors) and the flags of the
// operation in progress. No Asio: the state machines of sansio/ work on this alone, and
// the connection adds the stream and its timer (detail/exchange.hpp).
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/detail/sql_text.hpp>
#include <dqlite/error.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>

#include <algorithm>
#include <chrono>
#include <string_view>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <vector>

#include <pthread.h>

namespace dqlite::detail {

/// Counts the fork() calls made by this process and its ancestors since the library was
/// first used: a connection compares it with the value it was made under instead of
/// asking the kernel for the process id on every operation.
inline std::atomic<std::uint64_t>& fork_counter() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter;
}

/// The current fork generation (registers the pthread_atfork hook on first use).
inline std::uint64_t fork_generation() noexcept {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr,
                     [] { fork_counter().fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  return fork_counter().load(std::memory_order_relaxed);
}

/// Receive buffer: bytes [begin, end) are received and not yet consumed. It grows with the
/// bytes that actually arrive (never to a size a frame header merely announces), and gives
/// its memory back after an operation that needed more than retain_size. Its memory is
/// one block resized with realloc(), which moves large blocks without copying them (so
/// growing to hold a big frame does not need the old and the new block at once).
class read_buffer {
 public:
  read_buffer() { resize(min_size); }
  read_buffer(const read_buffer&) = delete;
  read_buffer& operator=(const read_buffer&) = delete;
  ~read_buffer() { std::free(buf_); }

  wire::bytes_view data() const noexcept { return {buf_ + begin_, end_ - begin_}; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return cap_; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Space to receive into, on the way to holding `need` unconsumed bytes: at least one
  /// byte. The buffer at most doubles per call (up to `need`), so memory follows the bytes
  /// received.
  std::span<std::byte> prepare(std::size_t need) {
    if (need <= size()) need = size() + 1;
    if (begin_ + need > cap_ && begin_ > 0) {
      std::memmove(buf_, buf_ + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == cap_) {
      std::size_t grown = std::max(cap_ * 2, min_size);
      resize(std::min(grown, std::max(need, cap_ + 1)));
    }
    return {buf_ + end_, cap_ - end_};
  }
  void commit(std::size_t n) noexcept {
    end_ += n;
    received_ += n;
  }
  /// Bytes received into the buffer since it was made (for request traces).
  std::uint64_t received() const noexcept { return received_; }
  void clear() noexcept { begin_ = end_ = 0; }
  /// Gives memory back once an operation needed an unusually large buffer.
  void shrink() {
    if (empty() && cap_ > retain_size) {
      begin_ = end_ = 0;
      resize(min_size);
    }
  }

  static constexpr std::size_t min_size = 64 * 1024;
  static constexpr std::size_t retain_size = 1024 * 1024;

 private:
  void resize(std::size_t n) {
    void* p = std::realloc(buf_, n);
    if (p == nullptr) throw std::bad_alloc();
    buf_ = static_cast<std::byte*>(p);
    cap_ = n;
  }

  std::byte* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::uint64_t received_ = 0;
};

/// The request in progress as a trace describes it (used only with a tracing hook).
struct trace_span {
  bool active = false;
  bool blocking = false;
  std::string_view request;
  std::string_view sql;  ///< in the request (wbuf), which stays until the trace ends
  std::uint32_t stmt = 0;
  std::size_t params = 0;
  std::uint64_t seq = 0;
  std::uint64_t sent = 0;
  std::uint64_t rows0 = 0;
  std::uint64_t bytes0 = 0;
  std::chrono::steady_clock::time_point t0{};
};

enum class conn_state : std::uint8_t { closed, open, broken };

/// The state of one connection that the state machines read and change.
struct session_state {
  explicit session_state(const connection_options& o) : database(o.database), opts(o) {
    opts.database = database;
  }
  session_state(const session_state&) = delete;
  session_state& operator=(const session_state&) = delete;

  std::string database;  ///< owns the name opts.database views
  connection_options opts;
  wire::buffer wbuf;
  read_buffer rbuf;
  diagnostics diag;
  wire::rows_reader rows;
  std::vector<wire::value_view> scratch;
  std::uint64_t op_seq = 0;
  std::uint32_t db_id = 0;
  std::uint64_t forks = fork_generation();  ///< fork generation the connection belongs to
  conn_state state = conn_state::closed;
  bool busy = false;
  bool timed_out = false;        ///< the operation's deadline passed (set by the I/O loop)
  bool close_requested = false;  ///< the transport must be closed (done by the I/O loop)
  std::string peer;              ///< address, for messages
  error_code broken_by;          ///< the error that broke the connection

  // Session state: statements, transactions and cursors refer to one opening of the
  // connection (one generation); work left behind by dropped objects is done before the
  // next request (the housekeeping phase of the exchange machine).
  std::uint64_t generation = 0;      ///< bumped each time the database is opened
  std::uint64_t params_probe = 0;    ///< what the server reads (server_probe.hpp)
  std::uint64_t holder = 0;          ///< a cursor holding the connection between reads
  std::uint64_t next_id = 0;         ///< ids for cursors and transactions
  std::uint64_t tx = 0;              ///< id of the open transaction object, 0 if none
  bool drain_pending = false;        ///< a dropped cursor left a result to interrupt
  bool rollback_pending = false;     ///< a dropped transaction left a transaction open
  /// SQL text run on the connection may have left a transaction open (BEGIN, SAVEPOINT...;
  /// see tx_effect): set when such a text was sent (whatever its answer, unless it was
  /// answered with success and closed the transaction), cleared by COMMIT, END, ROLLBACK.
  bool may_tx = false;
  std::vector<std::uint32_t> finalize_pending;  ///< statements dropped without close
  wire::buffer hbuf;                 ///< housekeeping requests
  trace_span span;                   ///< the request being traced (tracing hook only)

  /// True in a child process forked after the connection was made.
  bool forked() const noexcept { return forks != fork_generation(); }

  /// Checks that a new operation may start and claims the connection for it. `as_holder`:
  /// the id of the cursor that holds the connection, when the operation is that cursor's.
  DQLITE_DECL error_code begin_op(bool needs_open, std::uint64_t as_holder = 0);

  /// The stream can no longer be trusted: the connection is broken and its transport must
  /// be closed.
  void break_connection(error_code why) {
    if (state == conn_state::open) state = conn_state::broken;
    if (!broken_by) broken_by = why;
    request_close();
  }

  /// The connection is of no further use (e.g. its database could not be opened): it is
  /// closed, and its transport must be.
  void close_session() {
    state = conn_state::closed;
    request_close();
  }

  /// Asks the I/O loop to close the transport; forgets the server-side session.
  void request_close() {
    close_requested = true;
    rbuf.clear();
    reset_session();
  }

  /// Forgets everything tied to the server-side session (it is gone with the socket).
  void reset_session() {
    holder = 0;
    tx = 0;
    may_tx = false;
    drain_pending = false;
    rollback_pending = false;
    finalize_pending.clear();
  }

  /// A transaction may be open on the server: one of a transaction object, one SQL text
  /// opened, or one left to roll back.
  bool in_transaction() const noexcept { return tx != 0 || may_tx || rollback_pending; }

  /// What a connection given back to a pool needs before its next user: nothing, unless a
  /// transaction may be open, or a dropped cursor, statement or transaction left work.
  bool needs_reset() const noexcept { return in_transaction() || has_housekeeping(); }

  /// After a request with transaction effect e ended with ec (sent: it was written whole).
  void note_tx_effect(tx_effect e, const error_code& ec, bool sent) noexcept {
    if (e == tx_effect::none || !sent) return;
    if (ec || e == tx_effect::opens)
      may_tx = true;  // on failure the server may have run part of the text
    else
      may_tx = false;
  }

  /// True when the next request must be preceded by housekeeping requests.
  bool has_housekeeping() const noexcept {
    return drain_pending || rollback_pending || !finalize_pending.empty();
  }

  /// Gives back memory an operation needed beyond the usual.
  void release_buffers();
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/session.ipp>
#endif
