// The I/O loop shared by every request: write the encoded request, read frames, hand each
// one to a response processor until it says the response is complete.
#pragma once

#include <dqlite/error.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/buffer.hpp>
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

  /// Checks that a new operation may start and claims the connection for it.
  error_code begin_op(bool needs_open) {
    if (pid != ::getpid()) return make_error_code(errc::used_after_fork);
    if (busy) return make_error_code(errc::operation_in_progress);
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
  }

  void close_transport() {
    error_code ignored;
    stream.lowest_layer().close(ignored);
    state = conn_state::closed;
    rbuf.clear();
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

/// One request/response exchange. Proc: the response processor, with
///   using result_type = ...;
///   error_code on_frame(Impl&, const wire::frame_header&, wire::bytes_view body, bool& done);
///   result_type take();                         (absent when result_type is void)
///   void on_failure(Impl&) {}                   (optional: a FAILURE response arrived)
/// The request is already encoded in impl.wbuf when the op starts, unless init_ec is set.
template <class Stream, class Proc>
struct exchange_op {
  using impl_type = connection_impl<Stream>;

  std::shared_ptr<impl_type> c;
  Proc proc;
  error_code init_ec;  ///< failure found before anything was sent
  bool owns;           ///< this op holds the connection's busy flag
  std::chrono::milliseconds timeout;
  enum class step : std::uint8_t { start, fail_posted, wrote, read } st = step::start;

  template <class Self>
  void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
    switch (st) {
      case step::start:
        if (init_ec) {
          st = step::fail_posted;
          auto ex = c->stream.get_executor();
          boost::asio::post(ex, std::move(self));
          return;
        }
        arm_timer();
        st = step::wrote;
        boost::asio::async_write(c->stream, boost::asio::buffer(c->wbuf), std::move(self));
        return;
      case step::fail_posted: return finish(self, init_ec);
      case step::wrote:
        if (ec) return transport_failed(self, ec, "sending the request");
        break;
      case step::read:
        if (ec) return transport_failed(self, ec, "reading the response");
        c->rbuf.commit(n);
        break;
    }
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
          if (e || done) return finish(self, e);
          continue;
        }
      }
      st = step::read;
      c->stream.async_read_some(c->rbuf.prepare(need), std::move(self));
      return;
    }
  }

 private:
  error_code handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (h.type == static_cast<std::uint8_t>(wire::response::failure)) {
      wire::failure_response f;
      if (auto e = wire::decode_failure(body, f)) return e;
      if constexpr (requires { proc.on_failure(*c); }) proc.on_failure(*c);
      c->diag.assign(f.message);
      done = true;
      return make_server_error(f.code);
    }
    error_code e = proc.on_frame(*c, h, body, done);
    if (e == make_error_code(errc::unexpected_response) && c->diag.empty())
      c->diag.assign("unexpected response type " + std::to_string(h.type));
    return e;
  }

  void arm_timer() {
    if (timeout.count() <= 0) return;
    c->timer_armed = true;
    c->timer.expires_after(timeout);
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
                     std::to_string(timeout.count()) + " ms");
      return finish(self, make_error_code(errc::timeout));
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
      if (ec && is_connection_fatal(ec)) c->break_connection(ec);
      c->busy = false;
    }
    if constexpr (std::is_void_v<typename Proc::result_type>) {
      self.complete(ec);
    } else {
      self.complete(ec, proc.take());
    }
  }

  // Errors after which the stream cannot be trusted: protocol and transport errors.
  static bool is_connection_fatal(const error_code& ec) {
    if (ec.category() == server_category()) return false;
    if (ec.category() == client_category()) {
      return is_protocol_error(ec) || ec == make_error_code(errc::timeout) ||
             ec == make_error_code(errc::connection_closed) ||
             ec == make_error_code(errc::cancelled);
    }
    return true;
  }
};

/// Starts an exchange whose request the caller encodes through `encode(impl) -> error_code`,
/// called only when the connection could be claimed.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, bool needs_open,
                    std::chrono::milliseconds timeout) {
  error_code ec = c->begin_op(needs_open);
  bool owns = !ec;
  if (!ec) {
    ec = encode(*c);
    if (ec && c->diag.empty()) c->diag.assign("the request could not be encoded: " + ec.message());
  }
  using sig = completion_sig_t<typename Proc::result_type>;
  boost::asio::async_compose<Handler, sig>(
      exchange_op<Stream, Proc>{c, std::move(proc), ec, owns, timeout},
      handler, c->stream);
}

}  // namespace dqlite::detail
