// The I/O loop shared by every request: write the encoded request, read frames, hand each
// one to a response processor until it says the response is complete.
#pragma once

#include <dqlite/error.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace dqlite::detail {

/// Receive buffer: bytes [begin, end) are received and not yet consumed.
class read_buffer {
 public:
  wire::bytes_view data() const noexcept { return {buf_.data() + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Space to receive into, such that [begin, begin + need) fits without moving again.
  boost::asio::mutable_buffer prepare(std::size_t need) {
    if (begin_ + need > buf_.size()) {
      if (begin_ > 0) {
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (need > buf_.size()) buf_.resize(std::max(need, buf_.size() * 2));
    }
    if (buf_.size() == end_) buf_.resize(std::max<std::size_t>(buf_.size() * 2, min_size));
    return boost::asio::buffer(buf_.data() + end_, buf_.size() - end_);
  }
  void commit(std::size_t n) noexcept { end_ += n; }
  void clear() noexcept { begin_ = end_ = 0; }
  /// Gives memory back after an unusually large response.
  void shrink() {
    if (begin_ == end_ && buf_.size() > 4 * min_size) {
      std::vector<std::byte>(min_size).swap(buf_);
      begin_ = end_ = 0;
    }
  }

  static constexpr std::size_t min_size = 64 * 1024;

 private:
  std::vector<std::byte> buf_ = std::vector<std::byte>(min_size);
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

enum class conn_state : std::uint8_t { closed, open, broken };

/// State of a connection, shared with its pending operations and timers.
template <class Stream>
struct connection_impl {
  template <class... Args>
  explicit connection_impl(const connection_options& o, Args&&... args)
      : stream(std::forward<Args>(args)...),
        timer(stream.get_executor()),
        database(o.database),
        opts(o) {
    opts.database = database;
  }
  connection_impl(const connection_impl&) = delete;
  connection_impl& operator=(const connection_impl&) = delete;

  Stream stream;
  boost::asio::steady_timer timer;
  std::string database;  ///< owns the name opts.database views
  connection_options opts;
  wire::buffer wbuf;
  read_buffer rbuf;
  diagnostics diag;
  wire::rows_reader rows;
  std::vector<wire::value_view> scratch;
  std::uint64_t op_seq = 0;
  std::uint32_t db_id = 0;
  ::pid_t pid = ::getpid();
  conn_state state = conn_state::closed;
  bool busy = false;
  bool timed_out = false;
  bool timer_armed = false;
  std::string peer;  ///< address, for messages
  error_code broken_by;  ///< the error that broke the connection

  // Session state: statements, transactions and cursors refer to one opening of the
  // connection (one generation); work left behind by dropped objects is done before the
  // next request (the housekeeping phase of exchange_op).
  std::uint64_t generation = 0;      ///< bumped each time the database is opened
  std::uint64_t params_probe = 0;    ///< what the server reads (server_probe.hpp)
  std::uint64_t holder = 0;          ///< a cursor holding the connection between reads
  std::uint64_t next_id = 0;         ///< ids for cursors and transactions
  std::uint64_t tx = 0;              ///< id of the open transaction object, 0 if none
  bool drain_pending = false;        ///< a dropped cursor left a result to interrupt
  bool rollback_pending = false;     ///< a dropped transaction left a transaction open
  std::vector<std::uint32_t> finalize_pending;  ///< statements dropped without close
  wire::buffer hbuf;                 ///< housekeeping requests

  /// Checks that a new operation may start and claims the connection for it. `as_holder`:
  /// the id of the cursor that holds the connection, when the operation is that cursor's.
  error_code begin_op(bool needs_open, std::uint64_t as_holder = 0) {
    if (pid != ::getpid()) {
      diag.assign("the connection was opened in another process (before fork()); open a new "
                  "connection in this process");
      return make_error_code(errc::used_after_fork);
    }
    if (busy) {
      diag.assign("another operation is running on this connection; wait for it to complete "
                  "(one operation at a time per connection)");
      return make_error_code(errc::operation_in_progress);
    }
    if (holder != 0 && holder != as_holder) {
      diag.assign("a cursor is reading a result on this connection; read it to the end or "
                  "close it first");
      return make_error_code(errc::operation_in_progress);
    }
    if (needs_open && state != conn_state::open) {
      diag.assign(state == conn_state::broken
                      ? "the connection was closed after an earlier error: " + broken_by.message()
                      : std::string("the connection is not open"));
      return make_error_code(errc::not_connected);
    }
    busy = true;
    timed_out = false;
    ++op_seq;
    diag.clear();
    wbuf.clear();
    return {};
  }

  /// Closes the transport after an error that leaves the stream untrustworthy.
  void break_connection(error_code why) {
    if (state == conn_state::open) state = conn_state::broken;
    if (!broken_by) broken_by = why;
    error_code ignored;
    stream.lowest_layer().close(ignored);
    rbuf.clear();
    reset_session();
  }

  void close_transport() {
    if (pid != ::getpid()) return forget_after_fork();
    error_code ignored;
    stream.lowest_layer().close(ignored);
    state = conn_state::closed;
    rbuf.clear();
    reset_session();
  }

  /// Forgets everything tied to the server-side session (it is gone with the socket).
  void reset_session() {
    holder = 0;
    tx = 0;
    drain_pending = false;
    rollback_pending = false;
    finalize_pending.clear();
  }

  /// After fork() in the child: the socket is shared with the parent process. Point the
  /// descriptor at /dev/null before closing it, so that nothing done to it in the child (the
  /// close, a reactor deregistration from an epoll instance shared across fork) can reach
  /// the parent's connection.
  void forget_after_fork() noexcept {
    auto& sock = stream.lowest_layer();
    if (sock.is_open()) {
      int fd = static_cast<int>(sock.native_handle());
      int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (null_fd >= 0) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
      }
      error_code ignored;
      sock.close(ignored);
    }
    state = conn_state::closed;
  }

  /// True when the next request must be preceded by housekeeping requests.
  bool has_housekeeping() const noexcept {
    return drain_pending || rollback_pending || !finalize_pending.empty();
  }
};

/// Completion signature for a processor's result type.
template <class R>
struct completion_sig {
  using type = void(error_code, R);
};
template <>
struct completion_sig<void> {
  using type = void(error_code);
};
template <class R>
using completion_sig_t = typename completion_sig<R>::type;

/// How an exchange runs.
struct exchange_params {
  bool needs_open = true;              ///< the database must be open (false: handshake)
  std::chrono::milliseconds timeout{0};  ///< bound on the whole exchange; <= 0: none
  std::uint64_t holder = 0;            ///< id of the cursor running it (0: none)
};

/// One request/response exchange. Proc: the response processor, with
///   using result_type = ...;
///   error_code on_frame(Impl&, const wire::frame_header&, wire::bytes_view body, bool& done);
///   result_type take();                         (absent when result_type is void)
///   void on_failure(Impl&) {}                   (optional: a FAILURE response arrived)
///   bool holds() const;                         (optional: keep the connection claimed for
///                                                the holder after completing: a cursor
///                                                paused between frames)
///   static constexpr bool interruptible = true; (optional: on cancellation, INTERRUPT the
///                                                request and drain its response; the
///                                                connection stays usable)
///   error_code map_error(Impl&, error_code, bool sent);  (optional: rewrites a failure)
/// The request is already encoded in impl.wbuf when the op starts, unless init_ec is set;
/// an empty wbuf means "nothing to send, read the rest of a response" (a cursor).
/// Requests left behind by dropped cursors, statements and transactions (impl's
/// housekeeping) are sent first, each awaiting its response.
template <class Stream, class Proc>
struct exchange_op {
  using impl_type = connection_impl<Stream>;

  std::shared_ptr<impl_type> c;
  Proc proc;
  error_code init_ec;  ///< failure found before anything was sent
  bool owns;           ///< this op holds the connection's busy flag
  exchange_params params;
  enum class step : std::uint8_t { start, fail_posted, wrote, read } st = step::start;
  /// What the frames being read answer.
  enum class phase : std::uint8_t {
    drain,     ///< housekeeping INTERRUPT: discard rows until EMPTY
    finalize,  ///< housekeeping FINALIZE: EMPTY (a failure is ignored)
    rollback,  ///< housekeeping ROLLBACK: RESULT (a failure is ignored)
    main,      ///< the request itself
    interrupt  ///< the request was cancelled: INTERRUPT sent, discard until EMPTY
  } ph = phase::main;
  bool sent = false;       ///< the request has been (at least partly) written
  bool cancelled = false;  ///< the operation was cancelled

  template <class Self>
  void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
    switch (st) {
      case step::start:
        if (init_ec) {
          st = step::fail_posted;
          // The handler's own executor: after fork() the connection's may not be running.
          boost::asio::post(std::move(self));
          return;
        }
        if constexpr (interruptible())
          self.reset_cancellation_state(boost::asio::enable_total_cancellation());
        arm_timer();
        return next_write(self);
      case step::fail_posted: return finish(self, init_ec);
      case step::wrote:
        if (ph == phase::main && n > 0) sent = true;
        if (ec) {
          // Cancelled once the whole request was out: it can still be interrupted.
          if (ec == boost::asio::error::operation_aborted && !c->timed_out &&
              ph == phase::main && n == c->wbuf.size() && interruptible())
            return start_interrupt(self);
          return transport_failed(self, ec, "sending the request");
        }
        if (ph == phase::main && interruptible() &&
            self.cancelled() != boost::asio::cancellation_type::none)
          return start_interrupt(self);
        break;
      case step::read:
        if (ec) {
          if (ec == boost::asio::error::operation_aborted && !c->timed_out &&
              ph == phase::main && interruptible() &&
              self.cancelled() != boost::asio::cancellation_type::none)
            return start_interrupt(self);
          return transport_failed(self, ec, "reading the response");
        }
        c->rbuf.commit(n);
        break;
    }
    read_frames(self);
  }

 private:
  static constexpr bool interruptible() {
    if constexpr (requires { Proc::interruptible; })
      return Proc::interruptible;
    else
      return false;
  }

  // Writes the next housekeeping request, or the request itself.
  template <class Self>
  void next_write(Self& self) {
    // Not while a cursor holds the connection: its result is still arriving.
    if (params.needs_open && c->holder == 0 && c->has_housekeeping()) {
      c->hbuf.clear();
      if (c->drain_pending) {
        c->drain_pending = false;
        ph = phase::drain;
        wire::encode_interrupt(c->hbuf, c->db_id);
      } else if (!c->finalize_pending.empty()) {
        ph = phase::finalize;
        wire::encode_finalize(c->hbuf, c->db_id, c->finalize_pending.back());
        c->finalize_pending.pop_back();
      } else {
        c->rollback_pending = false;
        ph = phase::rollback;
        wire::frame_mark m{};
        (void)wire::begin_sql_request(c->hbuf, wire::request::exec_sql, c->db_id, "ROLLBACK", m);
        wire::end_frame(c->hbuf, m);
      }
      st = step::wrote;
      boost::asio::async_write(c->stream, boost::asio::buffer(c->hbuf), std::move(self));
      return;
    }
    ph = phase::main;
    if constexpr (requires { Proc::housekeeping_only; }) {
      return finish(self, {});
    }
    if (c->wbuf.empty()) {  // nothing to send: read on
      sent = true;
      return read_frames(self);
    }
    st = step::wrote;
    boost::asio::async_write(c->stream, boost::asio::buffer(c->wbuf), std::move(self));
  }

  // Cancelled while the response is being read: INTERRUPT it, then drain until EMPTY.
  template <class Self>
  void start_interrupt(Self& self) {
    cancelled = true;
    self.reset_cancellation_state(boost::asio::disable_cancellation());
    ph = phase::interrupt;
    c->wbuf.clear();
    wire::encode_interrupt(c->wbuf, c->db_id);
    st = step::wrote;
    boost::asio::async_write(c->stream, boost::asio::buffer(c->wbuf), std::move(self));
  }

  template <class Self>
  void read_frames(Self& self) {
    for (;;) {
      auto avail = c->rbuf.data();
      std::size_t need = wire::header_size;
      if (avail.size() >= wire::header_size) {
        wire::frame_header h;
        if (auto e = wire::decode_header(avail.first(wire::header_size), h, c->opts.max_frame_size)) {
          if (e == make_error_code(errc::frame_too_large))
            c->diag.assign("a frame of " + std::to_string(h.body_size()) +
                           " bytes exceeds max_frame_size (" +
                           std::to_string(c->opts.max_frame_size) + ")");
          else
            c->diag.assign("response type " + std::to_string(h.type) + " is not defined");
          return finish(self, e);
        }
        need = wire::header_size + h.body_size();
        if (avail.size() >= need) {
          bool done = false;
          error_code e = handle_frame(h, avail.subspan(wire::header_size, h.body_size()), done);
          c->rbuf.consume(need);
          if (e) return finish(self, e);
          if (done) {
            if (ph == phase::main) return finish(self, {});
            if (ph == phase::interrupt) {
              c->diag.assign("the operation was cancelled; the query was interrupted and the "
                             "connection remains usable");
              return finish(self, make_error_code(errc::interrupted));
            }
            return next_write(self);  // housekeeping answered: go on
          }
          continue;
        }
      }
      // A cancellation that arrived while a read was completing reached no operation:
      // act on it before reading on.
      if (self.cancelled() != boost::asio::cancellation_type::none) {
        if (ph == phase::main && interruptible()) return start_interrupt(self);
        return transport_failed(self, boost::asio::error::operation_aborted, "reading the response");
      }
      st = step::read;
      c->stream.async_read_some(c->rbuf.prepare(need), std::move(self));
      return;
    }
  }

  error_code handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done) {
    using wire::response;
    const bool failure = h.type == static_cast<std::uint8_t>(response::failure);
    switch (ph) {
      case phase::main: break;
      case phase::drain:
      case phase::interrupt:
        // Rows of the interrupted query (and its failure, if any) until EMPTY.
        if (h.type == static_cast<std::uint8_t>(response::empty)) {
          done = true;
          return {};
        }
        if (failure || h.type == static_cast<std::uint8_t>(response::rows)) return {};
        return unexpected(h, "an interrupted query");
      case phase::finalize:
        if (failure || h.type == static_cast<std::uint8_t>(response::empty)) {
          done = true;
          return {};
        }
        return unexpected(h, "FINALIZE");
      case phase::rollback:
        if (failure || h.type == static_cast<std::uint8_t>(response::result)) {
          done = true;
          return {};
        }
        return unexpected(h, "ROLLBACK");
    }
    if (failure) {
      wire::failure_response f;
      if (auto e = wire::decode_failure(body, f)) return e;
      if constexpr (requires { proc.on_failure(*c); }) proc.on_failure(*c);
      c->diag.assign(describe_failure(f.code, f.message, c->wbuf));
      done = true;
      return make_server_error(f.code);
    }
    error_code e = proc.on_frame(*c, h, body, done);
    if (e == make_error_code(errc::unexpected_response) && c->diag.empty())
      c->diag.assign("unexpected response type " + std::to_string(h.type));
    return e;
  }

  error_code unexpected(const wire::frame_header& h, const char* to) {
    c->diag.assign("unexpected response type " + std::to_string(h.type) + " to " + to);
    return make_error_code(errc::unexpected_response);
  }

  void arm_timer() {
    if (params.timeout.count() <= 0) return;
    c->timer_armed = true;
    c->timer.expires_after(params.timeout);
    c->timer.async_wait([w = std::weak_ptr<impl_type>(c), seq = c->op_seq](error_code ec) {
      if (ec) return;
      auto s = w.lock();
      if (!s || !s->busy || s->op_seq != seq) return;
      s->timed_out = true;
      error_code ignored;
      s->stream.lowest_layer().close(ignored);
    });
  }

  template <class Self>
  void transport_failed(Self& self, error_code ec, const char* during) {
    if (c->timed_out) {
      c->diag.assign("no response from " + c->peer + " within " +
                     std::to_string(params.timeout.count()) + " ms");
      return finish(self, make_error_code(errc::timeout));
    }
    if (ec == boost::asio::error::operation_aborted &&
        (cancelled || self.cancelled() != boost::asio::cancellation_type::none)) {
      c->diag.assign(std::string("the operation was cancelled while ") + during +
                     "; the connection was closed (the server may still act on the request)");
      return finish(self, make_error_code(errc::cancelled));
    }
    if (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset) {
      c->diag.assign("the server " + c->peer + " closed the connection while " + during);
      return finish(self, make_error_code(errc::connection_closed));
    }
    c->diag.assign(std::string(during) + " (" + c->peer + "): " + ec.message());
    return finish(self, ec);
  }

  template <class Self>
  void finish(Self& self, error_code ec) {
    if (owns) {
      if (c->timer_armed) {
        c->timer.cancel();
        c->timer_armed = false;
      }
      if constexpr (requires { proc.map_error(*c, ec, sent); })
        if (ec) ec = proc.map_error(*c, ec, sent);
      if (ec && is_connection_fatal(ec)) {
        if (ec.category() == server_category())
          c->diag.assign(c->diag.message() + " (the connection was closed: the node is not the leader)");
        c->break_connection(ec);
      }
      bool hold = false;
      if constexpr (requires { proc.holds(); }) hold = !ec && proc.holds();
      if (hold)
        c->holder = params.holder;
      else if (params.holder != 0 && c->holder == params.holder)
        c->holder = 0;
      c->busy = false;
    }
    if constexpr (std::is_void_v<typename Proc::result_type>) {
      self.complete(ec);
    } else {
      self.complete(ec, proc.take());
    }
  }

 public:
  /// Errors after which the connection cannot be trusted or used: protocol and transport
  /// errors, and the node not (or no longer) being the leader (every later request would
  /// fail, and a transaction in progress is lost).
  static bool is_connection_fatal(const error_code& ec) {
    if (ec.category() == server_category()) return is_not_leader(ec) || is_leadership_lost(ec);
    if (ec.category() == client_category()) {
      return is_protocol_error(ec) || ec == make_error_code(errc::timeout) ||
             ec == make_error_code(errc::connection_closed) ||
             ec == make_error_code(errc::cancelled) ||
             ec == make_error_code(errc::outcome_unknown);
    }
    return true;
  }
};

/// Starts an exchange whose request the caller encodes through `encode(impl) -> error_code`,
/// called only when the connection could be claimed.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, exchange_params params) {
  error_code ec = c->begin_op(params.needs_open, params.holder);
  bool owns = !ec;
  if (!ec) {
    ec = encode(*c);
    if (ec && c->diag.empty()) c->diag.assign("the request could not be encoded: " + ec.message());
  }
  using sig = completion_sig_t<typename Proc::result_type>;
  boost::asio::async_compose<Handler, sig>(
      exchange_op<Stream, Proc>{c, std::move(proc), ec, owns, params}, handler, c->stream);
}

/// Same, for a request that needs (or not) an open database, bounded by timeout.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, bool needs_open,
                    std::chrono::milliseconds timeout) {
  start_exchange(c, std::move(proc), std::forward<Handler>(handler), std::forward<Encode>(encode),
                 exchange_params{needs_open, timeout, 0});
}

}  // namespace dqlite::detail
