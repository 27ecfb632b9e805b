// The blocking driver: the same sans-io machines as the asynchronous operations, run with
// blocking reads and writes on the connection's socket, in the calling thread. Every wait
// is bounded by the operation's deadline: a wait for an answer inside recv(2), under the
// socket's receive timeout, other waits (and the last few milliseconds) with poll(2). No
// thread and no io_context is involved. Plain sockets only (TCP and unix): a TLS stream has
// no blocking form.
#pragma once

#include <dqlite/detail/connect_op.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/sansio/exchange_machine.hpp>
#include <dqlite/detail/sansio/io.hpp>
#include <dqlite/error.hpp>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <poll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace dqlite::detail {

/// Blocking reads and writes on a connection's socket, each bounded by `deadline`. A wait
/// that reaches the deadline marks the session timed out and closes the socket, as the
/// asynchronous loop's timer does.
template <class Stream>
class blocking_transport {
  using clock = std::chrono::steady_clock;

 public:
  explicit blocking_transport(connection_impl<Stream>& c) : c_(c) {}

  /// From now on, every wait ends within d (d < 0: no bound; 0: unchanged).
  void bound(std::chrono::milliseconds d) {
    if (d.count() > 0) deadline_ = clock::now() + d;
    if (d.count() < 0) deadline_ = clock::time_point::max();
  }

  io_event write(wire::bytes_view out) {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t r = ::send(fd(), out.data() + done, out.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0) {
        done += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        error_code ec;
        int w = wait(POLLOUT, ec);
        if (w == 0) return expired(io_event::kind::wrote, done);
        if (w < 0) return {io_event::kind::wrote, ec, done, false};
        continue;
      }
      return {io_event::kind::wrote, error_code(errno, boost::system::system_category()), done,
              false};
    }
    fresh_request_ = true;
    return {io_event::kind::wrote, {}, done, false};
  }

  io_event read(std::size_t need) {
    auto space = c_.rbuf.prepare(need);
    // Wait inside recv(2) when the descriptor can be made to (one system call per wait).
    // Otherwise: right after a request the answer is rarely there yet, so wait with poll(2)
    // first; in the middle of a response more bytes usually are, so read first.
    bool wait_first = std::exchange(fresh_request_, false);
    bool may_block = true;
    for (;;) {
      int flags = MSG_DONTWAIT;
      if (may_block && block_in_recv()) {
        flags = 0;
      } else if (wait_first) {
        error_code ec;
        int w = wait(POLLIN, ec);
        if (w == 0) return expired(io_event::kind::read, 0);
        if (w < 0) return {io_event::kind::read, ec, 0, false};
      }
      ssize_t r = ::recv(fd(), space.data(), space.size(), flags);
      if (r > 0) return {io_event::kind::read, {}, static_cast<std::size_t>(r), false};
      if (r == 0) return {io_event::kind::read, boost::asio::error::eof, 0, false};
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (flags == 0) {
          // The receive timeout passed, or the descriptor was non-blocking after all (an
          // asynchronous operation ran on it): poll(2) decides from here, to the deadline.
          may_block = false;
          c_.blocking_fd = -1;
        }
        wait_first = true;
        continue;
      }
      return {io_event::kind::read, error_code(errno, boost::system::system_category()), 0,
              false};
    }
  }

  /// Connects the socket to the first endpoint of `endpoints` that accepts.
  template <class Endpoints>
  io_event connect(const Endpoints& endpoints) {
    error_code last = boost::asio::error::host_not_found;
    auto& sock = c_.stream.lowest_layer();
    for (const auto& entry : endpoints) {
      auto ep = endpoint_of(entry);
      error_code ec;
      sock.close(ec);
      sock.open(ep.protocol(), ec);
      c_.blocking_fd = -1;
      if (!ec) sock.non_blocking(true, ec);
      if (ec) return {io_event::kind::connected, ec, 0, false};
      if (::connect(fd(), ep.data(), static_cast<socklen_t>(ep.size())) == 0)
        return {io_event::kind::connected, {}, 0, false};
      if (errno != EINPROGRESS && errno != EINTR) {
        last = error_code(errno, boost::system::system_category());
        continue;
      }
      int w = wait(POLLOUT, ec);
      if (w == 0) return expired(io_event::kind::connected, 0);
      if (w < 0) return {io_event::kind::connected, ec, 0, false};
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) return {io_event::kind::connected, {}, 0, false};
      last = error_code(err, boost::system::system_category());
    }
    return {io_event::kind::connected, last, 0, false};
  }

 private:
  template <class Entry>
  static auto endpoint_of(const Entry& e) {
    if constexpr (requires { e.endpoint(); })
      return e.endpoint();
    else
      return e;
  }

  int fd() const { return static_cast<int>(c_.stream.lowest_layer().native_handle()); }

  // Readies the descriptor for a wait inside recv(2): blocking mode (set once per descriptor)
  // and a receive timeout that ends the wait well before the deadline: Linux may end a
  // receive timeout later than asked, by the granularity of its timer wheel (up to about an
  // eighth of the timeout, plus a tick or two), so the timeout is at most three quarters of
  // the time left (less 20 ms for short ones). It is set again only when the one set is
  // longer than that, or shorter than half of it; a new one is three quarters of that
  // longest, so that the later reads of the same operation (less time left) and a steady
  // stream of requests with the same timeout cost no system call here. False when the wait
  // must be done with poll(2): a deadline too close for the kernel's timers, or a failed
  // system call.
  bool block_in_recv() {
    using std::chrono::microseconds;
    const int s = fd();
    const bool blocking = c_.blocking_fd == s;
    microseconds want{0};  // no timeout
    if (deadline_ != clock::time_point::max()) {
      auto left = std::chrono::duration_cast<microseconds>(deadline_ - clock::now());
      if (left < min_recv_timeout) return false;
      auto most = left - std::max(left / 4, microseconds(20000));
      if (blocking && c_.recv_timeout.count() > 0 && c_.recv_timeout <= most &&
          c_.recv_timeout >= most / 2)
        return true;
      want = most * 3 / 4;
    } else if (blocking && c_.recv_timeout.count() == 0) {
      return true;
    }
    if (!blocking) {
      error_code ec;
      c_.stream.lowest_layer().non_blocking(false, ec);  // through Asio, which tracks it
      if (ec) return false;
      c_.blocking_fd = s;
      c_.recv_timeout = microseconds(-1);  // unknown
    }
    if (c_.recv_timeout != want) {
      timeval tv{};
      tv.tv_sec = static_cast<decltype(tv.tv_sec)>(want.count() / 1000000);
      tv.tv_usec = static_cast<decltype(tv.tv_usec)>(want.count() % 1000000);
      if (::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        c_.blocking_fd = -1;
        return false;
      }
      c_.recv_timeout = want;
    }
    return true;
  }

  static constexpr std::chrono::microseconds min_recv_timeout{40000};

  // 1: ready; 0: the deadline passed; -1: poll failed (ec).
  int wait(short events, error_code& ec) {
    for (;;) {
      int ms = -1;
      if (deadline_ != clock::time_point::max()) {
        auto left = deadline_ - clock::now();
        if (left <= clock::duration::zero()) return 0;
        ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
      }
      pollfd p{fd(), events, 0};
      int r = ::poll(&p, 1, ms);
      if (r > 0) return 1;
      if (r == 0) continue;  // re-checks the deadline
      if (errno == EINTR) continue;
      ec = error_code(errno, boost::system::system_category());
      return -1;
    }
  }

  io_event expired(io_event::kind k, std::size_t n) {
    c_.timed_out = true;
    error_code ignored;
    c_.stream.lowest_layer().close(ignored);
    c_.blocking_fd = -1;
    return {k, error_code(ECANCELED, boost::system::system_category()), n, false};
  }

  connection_impl<Stream>& c_;
  clock::time_point deadline_ = clock::time_point::max();
  bool fresh_request_ = false;
};

/// Runs machine m to completion with blocking I/O, within timeout (<= 0: none).
/// `connect(transport) -> io_event` performs a connect action (the connect machine only).
/// read_socket (optional): set when bytes were received from the socket (not only taken
/// from what an earlier read left buffered).
template <class Stream, class Machine, class Connect>
error_code run_blocking(connection_impl<Stream>& c, Machine& m, std::chrono::milliseconds timeout,
                        Connect&& connect, bool* read_socket = nullptr) {
  static_assert(is_plain_socket<Stream>,
                "dqlite: blocking operations work on TCP and unix socket connections; use the "
                "asynchronous operations (async_...) on TLS connections");
  blocking_transport<Stream> t(c);
  if (timeout.count() > 0) t.bound(timeout);
  io_event ev{io_event::kind::start, {}, 0, false};
  for (;;) {
    io_action a = m.resume(ev);
    if (auto d = m.take_rearm(); d.count() != 0) t.bound(d);
    switch (a.what) {
      case io_action::kind::done: c.apply_close_request(); return a.ec;
      case io_action::kind::write: ev = t.write(a.out); break;
      case io_action::kind::read:
        ev = t.read(a.need);
        if (read_socket && !ev.ec && ev.n > 0) *read_socket = true;
        break;
      case io_action::kind::connect: ev = connect(t); break;
      case io_action::kind::tls_handshake:
        ev = io_event{io_event::kind::handshaken, make_error_code(errc::invalid_argument), 0, false};
        break;
    }
  }
}

template <class Stream, class Machine>
error_code run_blocking(connection_impl<Stream>& c, Machine& m, std::chrono::milliseconds timeout,
                        bool* read_socket = nullptr) {
  return run_blocking(
      c, m, timeout,
      [](auto&) {
        return io_event{io_event::kind::connected, make_error_code(errc::invalid_argument), 0,
                        false};
      },
      read_socket);
}

/// run_blocking for an exchange machine of any response processor: compiled once per
/// stream type (with DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms in
/// the unit that includes <dqlite/src.hpp>).
template <class Stream>
error_code run_blocking_exchange(connection_impl<Stream>& c, exchange_core& m,
                                 std::chrono::milliseconds timeout, bool* read_socket) {
  exchange_ref r{&m};
  return run_blocking(c, r, timeout, read_socket);
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
extern template error_code run_blocking_exchange<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, exchange_core&, std::chrono::milliseconds,
    bool*);
extern template error_code run_blocking_exchange<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, exchange_core&,
    std::chrono::milliseconds, bool*);
#endif

/// Opens connection c with blocking I/O: to `address` ("host:port", resolved) or, when
/// endpoint is not null, to *endpoint (address is then only for messages); within the
/// connection's connect_timeout. Compiled once per stream type, as run_blocking_exchange.
template <class Stream>
error_code run_blocking_connect(connection_impl<Stream>& c, std::string_view address,
                                const typename connect_steps<Stream>::endpoint_type* endpoint) {
  using steps = connect_steps<Stream>;
  stream_connect_machine<Stream> m(c, std::string(address), endpoint == nullptr);
  if (c.opts.log) [[unlikely]]
    log_connect_start(c, address);
  error_code ec = run_blocking(c, m, c.opts.connect_timeout,
                               [&](blocking_transport<Stream>& t) -> io_event {
                                 if (endpoint) return t.connect(std::array{*endpoint});
                                 if constexpr (steps::is_tcp) {
                                   typename steps::tcp::resolver r(c.stream.get_executor());
                                   error_code rec;
                                   auto found = r.resolve(m.target().host,
                                                          std::to_string(m.target().port), rec);
                                   if (rec) return {io_event::kind::connected, rec, 0, false};
                                   return t.connect(found);
                                 } else {
                                   return {io_event::kind::connected,
                                           make_error_code(errc::invalid_address), 0, false};
                                 }
                               });
  if (c.opts.log) [[unlikely]]
    log_connect_end(c, address, ec);
  return ec;
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
extern template error_code run_blocking_connect<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, std::string_view,
    const boost::asio::ip::tcp::endpoint*);
extern template error_code run_blocking_connect<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, std::string_view,
    const boost::asio::local::stream_protocol::endpoint*);
#endif

/// One blocking exchange, as start_exchange starts an asynchronous one. The result of the
/// processor (nothing for void); ec and diag tell how it ended.
template <class Stream, class Proc, class Encode>
auto blocking_exchange(connection_impl<Stream>& c, Proc proc, Encode&& encode,
                       exchange_params params, error_code& ec, diagnostics& diag) {
  bool owns = false;
  const error_code e = claim_and_encode(c, std::forward<Encode>(encode), params, owns);
  exchange_machine<Proc> m(c, std::move(proc), e, owns, params);
  if (c.opts.trace && owns && !m.housekeeping_only()) [[unlikely]]
    trace_begin(c, true, m.failed_early(), c.wbuf.empty(), !params.needs_open);
  bool read_socket = false;
  ec = run_blocking_exchange(c, m, params.timeout, &read_socket);
  // An answer was received from the socket just now: a read-only request this thread makes
  // next on c, at once, need not look for unasked bytes first (take_unasked). Not when the
  // answer came whole from bytes an earlier read left buffered (the socket may have been
  // idle for long since), as the asynchronous path marks only after I/O it started.
  if (!ec && read_socket) last_blocking_answer = {&c, connection_impl<Stream>::clock::now()};
  if (c.span.active) [[unlikely]]
    trace_end(c, ec);
  if (ec && owns && c.opts.log) [[unlikely]]
    log_exchange_failure(c, ec);
  diag = ec ? c.diag : diagnostics{};
  using result = typename Proc::result_type;
  if constexpr (std::is_void_v<result>) {
    return;
  } else {
    if (ec) return result{};  // a failed blocking call returns an empty result
    return m.take();
  }
}

/// True when the last two of Args are `error_code&` and `diagnostics&`: the caller wants
/// the error reported there instead of an exception.
template <class... Args>
constexpr bool has_error_tail() {
  constexpr std::size_t n = sizeof...(Args);
  if constexpr (n < 2) {
    return false;
  } else {
    using all = std::tuple<Args...>;
    return std::is_same_v<std::tuple_element_t<n - 2, all>, error_code&> &&
           std::is_same_v<std::tuple_element_t<n - 1, all>, diagnostics&>;
  }
}

/// True when the last of Args is an error_code or a diagnostics that does not end a whole
/// (error_code&, diagnostics&) tail: `execute(sql, ec)`, say. blocking_call refuses it
/// with one message of the library's (neither is a statement parameter).
template <class... Args>
constexpr bool has_broken_error_tail() {
  if constexpr (sizeof...(Args) == 0 || has_error_tail<Args...>()) {
    return false;
  } else {
    using last = std::remove_cvref_t<std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>>;
    return std::is_same_v<last, error_code> || std::is_same_v<last, diagnostics>;
  }
}

/// Nothing, or `error_code&, diagnostics&`: the optional tail of a blocking operation that
/// takes no other variadic arguments. A broken tail (an error_code alone, say) is let
/// through, for blocking_call to refuse with its message instead of a failed constraint.
template <class... E>
concept error_tail_of = sizeof...(E) == 0 || (sizeof...(E) == 2 && has_error_tail<E&...>()) ||
                        (sizeof...(E) <= 2 && has_broken_error_tail<E&...>());

template <class>
inline constexpr bool dependent_false = false;

/// Calls f(ec, diag, params...) for a blocking operation's arguments: with a trailing
/// (error_code&, diagnostics&) those are used; without them a failure is thrown as
/// dqlite::error.
template <class F, class... Args>
decltype(auto) blocking_call(F&& f, Args&&... args) {
  constexpr std::size_t n = sizeof...(Args);
  if constexpr (has_broken_error_tail<Args&&...>()) {
    static_assert(dependent_false<F>,
                  "dqlite: the error form of a blocking operation ends with two arguments, "
                  "dqlite::error_code& then dqlite::diagnostics& (without them, a failure "
                  "throws dqlite::error)");
    // The rest (without the error arguments at the end) as the throwing form, so that the
    // caller's result type stays what it is: no second error after the message.
    constexpr bool two = [] {
      if constexpr (n < 2) {
        return false;
      } else {
        using before = std::remove_cvref_t<std::tuple_element_t<n - 2, std::tuple<Args...>>>;
        return std::is_same_v<before, error_code> || std::is_same_v<before, diagnostics>;
      }
    }();
    error_code ec;
    diagnostics diag;
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
      return f(ec, diag, std::get<I>(all)...);
    }(std::make_index_sequence<n - (two ? 2 : 1)>{});
  } else if constexpr (has_error_tail<Args&&...>()) {
    auto all = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
      return f(std::get<n - 2>(all), std::get<n - 1>(all), std::get<I>(all)...);
    }(std::make_index_sequence<n - 2>{});
  } else {
    error_code ec;
    diagnostics diag;
    if constexpr (std::is_void_v<decltype(f(ec, diag, std::forward<Args>(args)...))>) {
      f(ec, diag, std::forward<Args>(args)...);
      if (ec) throw error(ec, std::move(diag));
    } else {
      auto r = f(ec, diag, std::forward<Args>(args)...);
      if (ec) throw error(ec, std::move(diag));
      return r;
    }
  }
}

}  // namespace dqlite::detail
