// The I/O loop: one small Asio composed operation per stream type that drives the sans-io
// machines of detail/sansio/ (a request exchange, or the opening of a connection with its
// transport steps) over a connection's stream, and owns the connection's one timer.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/sansio/connect_machine.hpp>
#include <dqlite/detail/sansio/exchange_machine.hpp>
#include <dqlite/detail/sansio/io.hpp>
#include <dqlite/detail/sansio/observe.hpp>
#include <dqlite/detail/sansio/session.hpp>
#include <dqlite/error.hpp>
#include <dqlite/options.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace dqlite {

/// Tag: a connection with an io_context of its own (see dqlite::connect).
struct own_io_context_t {
  explicit own_io_context_t() = default;
};
inline constexpr own_io_context_t own_io_context{};

}  // namespace dqlite

namespace dqlite::detail {

/// An io_context a connection owns (connections for blocking use need no executor).
struct owned_io_context {
  std::unique_ptr<boost::asio::io_context> io;
  /// What else must outlive the stream: the state (and io_context) of the blocking cluster
  /// client or blocking pool whose io_context the stream is registered with (a connection
  /// from blocking_cluster::connect(), or one checked out of a blocking_pool until it goes
  /// back).
  std::shared_ptr<void> keep_alive;
};

/// A connection: its session state, its stream and its timer, shared with the
/// operations in progress.
template <class Stream>
struct connection_impl : owned_io_context,
                         session_state,
                         std::enable_shared_from_this<connection_impl<Stream>> {
  using executor_type = typename Stream::executor_type;

  template <class... Args>
  explicit connection_impl(const connection_options& o, Args&&... args)
      : session_state(o), stream(std::forward<Args>(args)...), timer(stream.get_executor()) {}

  /// With an io_context of its own (constructed before the stream that uses it).
  connection_impl(own_io_context_t, const connection_options& o)
      : owned_io_context{std::make_unique<boost::asio::io_context>(), nullptr},
        session_state(o),
        stream(io->get_executor()),
        timer(stream.get_executor()) {}

  using clock = std::chrono::steady_clock;

  Stream stream;
  boost::asio::steady_timer timer;

  // The deadline of the operation in progress, watched by one timer that is not re-armed
  // for every request: a pending wait ends at most `tick` from when it was armed (or at
  // the deadline, if sooner); when it ends, it checks the deadline and waits again while
  // an operation runs. So a steady stream of requests costs no timer system call per
  // request, and an idle connection holds no wait for longer than a tick (an io_context
  // with nothing else to do returns from run() within a tick of the last operation).
  static constexpr std::chrono::milliseconds tick{50};
  clock::time_point deadline = clock::time_point::max();
  clock::time_point wait_until = clock::time_point::max();  ///< end of the pending wait
  /// Identifies the pending wait (0: none). Atomic because the wait's handler may read it on
  /// the executor's thread after release_timer() while another thread uses the blocking
  /// forms (which only ever store 0, in release_timer); relaxed: it orders nothing else.
  std::atomic<std::uint64_t> wait_id{0};
  std::uint64_t waits = 0;      ///< waits started so far
  std::function<void()> timeout_hook;  ///< what else to stop on expiry (a resolver)

  /// The blocking forms wait for an answer inside recv(2) on a descriptor in blocking mode,
  /// bounded by its receive timeout (SO_RCVTIMEO): one system call where poll(2) and a read
  /// take two. blocking_fd is the descriptor they switched to blocking mode (-1: none) and
  /// recv_timeout the receive timeout they last set on it (zero: none). An asynchronous
  /// operation makes the descriptor non-blocking again (Asio does), so each one resets
  /// blocking_fd, as does every close and every opening of a socket by the blocking forms
  /// (a new socket may get the same number); if it is stale all the same, recv fails at
  /// once with EAGAIN and the blocking forms wait with poll(2) instead.
  int blocking_fd = -1;
  std::chrono::microseconds recv_timeout{0};

  /// The operation in progress must end within d from now.
  void set_deadline(std::chrono::milliseconds d) {
    auto now = clock::now();
    deadline = now + d;
    if (wait_id.load(std::memory_order_relaxed) == 0 || wait_until > deadline) watch(now);
  }

  /// The operation in progress ended: the pending wait, if any, ends by itself.
  void clear_deadline() {
    deadline = clock::time_point::max();
    timeout_hook = nullptr;
  }

  void watch(clock::time_point now) {
    wait_until = std::min(deadline, now + tick);
    const auto id = ++waits;
    wait_id.store(id, std::memory_order_relaxed);
    timer.expires_at(wait_until);
    timer.async_wait([w = this->weak_from_this(), id](error_code ec) {
      auto s = w.lock();
      if (!s || s->wait_id.load(std::memory_order_relaxed) != id) return;  // replaced, released
      s->wait_id.store(0, std::memory_order_relaxed);
      if (ec || !s->busy || s->deadline == clock::time_point::max()) return;  // idle: stop
      auto now = clock::now();
      if (now < s->deadline) return s->watch(now);
      s->timed_out = true;
      if (s->timeout_hook) s->timeout_hook();
      error_code ignored;
      s->stream.lowest_layer().close(ignored);
    });
  }

  /// Called on the executor's thread before the connection is handed to a thread that uses
  /// only its blocking forms: the pending wait, if any, ends without reading the
  /// connection again (its handler finds wait_id changed), and no later one is armed
  /// until an asynchronous operation starts.
  void release_timer() {
    wait_id.store(0, std::memory_order_relaxed);
    timer.cancel();
  }

  /// Closes the transport now; the session is gone with it.
  void close_transport() {
    if (forked()) return forget_after_fork();
    error_code ignored;
    stream.lowest_layer().close(ignored);
    blocking_fd = -1;
    release_timer();
    close_requested = false;
    state = conn_state::closed;
    rbuf.clear();
    reset_session();
  }

  /// Carries out a machine's request to close the transport.
  void apply_close_request() {
    if (!close_requested) return;
    close_requested = false;
    error_code ignored;
    stream.lowest_layer().close(ignored);
    blocking_fd = -1;
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
    blocking_fd = -1;
    state = conn_state::closed;
  }
};

/// The completion handler of a request on connection `conn` is running on this thread
/// (the innermost one, if they nest), after its answer was read: see take_unasked. Only
/// the thread that runs the handler reads it; it is kept by value (saved and restored
/// around each handler call), so it never points into a stack frame.
struct completion_mark {
  const void* conn = nullptr;
  std::chrono::steady_clock::time_point answered{};  ///< when the answer was taken in
};
inline thread_local completion_mark current_completion{};

/// The last blocking exchange this thread completed with an answer read: the blocking
/// twin of current_completion. A blocking call returns to its caller, so the mark stays
/// after it; take_unasked honours it only for the same connection within
/// follow_on_window (a caller's loop of blocking calls, as a coroutine's loop of
/// co_awaits). The connection is only compared, never dereferenced.
inline thread_local completion_mark last_blocking_answer{};

/// True for the streams whose socket the client reads and writes directly: Asio stream
/// sockets (TCP, unix), not TLS streams.
template <class Stream>
constexpr bool is_plain_socket = std::is_base_of_v<typename Stream::lowest_layer_type, Stream>;

/// Preparing a TLS stream before its handshake (server name, host name verification):
/// specialised in dqlite/tls.hpp. The primary template is for streams that are not TLS.
template <class Stream>
struct tls_setup {
  static constexpr bool is_tls = false;
  static error_code prepare(Stream&, const std::string&) { return {}; }
};

/// The transport steps of opening a connection over Stream: resolve "host:port" (TCP) or
/// connect to a given endpoint, TCP_NODELAY, and the TLS handshake for TLS streams.
template <class Stream>
struct connect_steps {
  using tcp = boost::asio::ip::tcp;
  using socket_type = std::remove_cvref_t<decltype(std::declval<Stream&>().lowest_layer())>;
  using endpoint_type = typename socket_type::endpoint_type;
  static constexpr bool is_tcp = std::is_same_v<typename socket_type::protocol_type, tcp>;

  std::optional<endpoint_type> endpoint{};  ///< given instead of an address to resolve
  std::shared_ptr<tcp::resolver> resolver{};
  tcp::resolver::results_type resolved{};           ///< the resolver's answer
  tcp::resolver::results_type::const_iterator next{};  ///< the resolved endpoint to try next

  template <class Impl, class Machine, class Self>
  void connect(Impl& c, Machine& m, Self& self) {
    error_code ignored;
    c.stream.lowest_layer().close(ignored);  // a connection may be opened again
    if (endpoint) {
      c.stream.lowest_layer().async_connect(*endpoint, std::move(self));
      return;
    }
    if constexpr (is_tcp) {
      const auto& hp = m.target();
      resolver->async_resolve(hp.host, std::to_string(hp.port), std::move(self));
    }
  }

  /// The resolver's answer: connect to its endpoints in turn, until one accepts (see
  /// try_next), as asio::async_connect over a range does, with the connect operation the
  /// loop already has for a given endpoint.
  template <class Impl, class Machine, class Self>
  void on_completion(Impl& c, Machine&, Self& self, error_code ec,
                     const tcp::resolver::results_type& results) {
    if (ec) return self(ec);
    if (results.empty()) return self(make_error_code(boost::asio::error::host_not_found));
    resolved = results;
    next = resolved.begin();
    if (!try_next(c, self, ec, false)) self(ec);
  }

  /// Starts connecting to the next resolved endpoint and returns true, after a failed
  /// connect (ec, after_failure) or for the first one. False when none is left (ec is then
  /// the last failure), or when the operation must end: cancelled (a cancellation the
  /// resolver could not take, or one that came with the failure), or its connection
  /// closed (its deadline passed, or it was closed or destroyed meanwhile); ec is then
  /// operation_aborted.
  template <class Impl, class Self>
  bool try_next(Impl& c, Self& self, error_code& ec, bool after_failure) {
    if constexpr (is_tcp) {
      if (next == tcp::resolver::results_type::const_iterator{} || next == resolved.end())
        return false;
      if (ec == boost::asio::error::operation_aborted || c.timed_out ||
          (after_failure && !c.stream.lowest_layer().is_open()) ||
          self.cancelled() != boost::asio::cancellation_type::none) {
        ec = make_error_code(boost::asio::error::operation_aborted);
        return false;
      }
      const tcp::endpoint ep = (next++)->endpoint();
      error_code ignored;
      c.stream.lowest_layer().close(ignored);
      c.stream.lowest_layer().async_connect(ep, std::move(self));
      return true;
    } else {
      (void)c, (void)self, (void)ec, (void)after_failure;
      return false;
    }
  }

  template <class Impl, class Machine, class Self>
  void tls_handshake(Impl& c, Machine& m, Self& self) {
    if constexpr (tls_setup<Stream>::is_tls) {
      std::string host = endpoint ? m.address() : m.target().host;
      // A failure is reported as a failed handshake (the op has already run I/O: this is
      // not the initiating function).
      if (auto e = tls_setup<Stream>::prepare(c.stream, host)) return self(e);
      c.stream.async_handshake(boost::asio::ssl::stream_base::client, std::move(self));
    }
  }

  auto timeout_hook() const {
    return [r = resolver] {
      if (r) r->cancel();
    };
  }
};

/// After the transport connect: TCP_NODELAY on TCP sockets, and TCP keepalive when
/// connection_options::tcp_keepalive asks for it.
template <class Stream>
void tune_socket(Stream& stream, const connection_options& opts) {
  using socket_type = std::remove_cvref_t<decltype(stream.lowest_layer())>;
  if constexpr (std::is_same_v<typename socket_type::protocol_type, boost::asio::ip::tcp>) {
    error_code ignored;
    auto& sock = stream.lowest_layer();
    sock.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    if (opts.tcp_keepalive.count() > 0) {
      sock.set_option(boost::asio::socket_base::keep_alive(true), ignored);
      const auto secs = static_cast<int>(
          std::min<std::chrono::seconds::rep>(opts.tcp_keepalive.count(), 32767));
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL)
      using idle = boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>;
      using interval = boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>;
      sock.set_option(idle(secs), ignored);
      sock.set_option(interval(secs), ignored);
#else
      (void)secs;  // the system's idle time and interval
#endif
    }
  }
}

/// The connect machine with TCP_NODELAY set once the transport is connected.
template <class Stream>
class stream_connect_machine : public connect_machine<tls_setup<Stream>::is_tls> {
  using base = connect_machine<tls_setup<Stream>::is_tls>;

 public:
  stream_connect_machine(connection_impl<Stream>& c, std::string address, bool resolve)
      : base(c, std::move(address), resolve), c_(&c) {}
  io_action resume(const io_event& ev) {
    if (ev.what == io_event::kind::connected && !ev.ec) tune_socket(c_->stream, c_->opts);
    return base::resume(ev);
  }

 private:
  connection_impl<Stream>* c_;
};

/// What an I/O loop drives: a request exchange (its machine's core, which the caller owns
/// and keeps alive until the loop completes) or the opening of a connection (its machine
/// and transport steps, held here). Both kinds run in one loop type per stream, so the
/// Asio operations the loop starts (writes, reads, the connect steps) are compiled once
/// per stream type, not once per kind.
template <class Stream>
struct loop_machine {
  /// Opening a connection: allocated once per opening, so that an exchange's loop (which
  /// Asio moves at each step) carries only a null pointer for it.
  struct opening {
    stream_connect_machine<Stream> m;
    connect_steps<Stream> steps;
  };

  exchange_core* ex = nullptr;    ///< an exchange, or
  std::unique_ptr<opening> conn;  ///< the opening of a connection

  io_action resume(const io_event& ev) { return ex ? ex->resume(ev) : conn->m.resume(ev); }
  bool interruptible() const noexcept { return ex ? ex->interruptible() : conn->m.interruptible(); }
  bool cancellable() const noexcept { return ex ? ex->cancellable() : conn->m.cancellable(); }
  std::chrono::milliseconds take_rearm() noexcept {
    return ex ? ex->take_rearm() : conn->m.take_rearm();
  }
};

/// Drives a loop_machine over the connection's stream until it is done. The machine
/// answers:
///   io_action resume(const io_event&);
///   bool interruptible() const;              (true: total cancellation is enabled)
///   bool cancellable() const;                (false: disable cancellation from now on)
///   std::chrono::milliseconds take_rearm();  (> 0: arm the timer for that long from now)
/// timeout: armed when the machine starts; on expiry the session's timed_out is set and
/// the stream closed, which makes the pending I/O fail.
/// Completes with (error_code, bool inline): inline is true when the machine was done
/// before any asynchronous operation started, i.e. inside the initiating function; the
/// handler (loop_handler) must then post the caller's completion, not call it.
template <class Stream>
struct io_loop_op {
  using impl_type = connection_impl<Stream>;
  std::shared_ptr<impl_type> c;
  loop_machine<Stream> m;
  std::chrono::milliseconds timeout{0};
  bool started = false;
  bool async_started = false;  ///< an asynchronous operation was started
  bool cancellation_on = true;
  bool armed_here = false;
  std::size_t sent_now = 0;  ///< bytes of the current write already sent synchronously

  template <class Self>
  void operator()(Self& self) {
    if (started) return;
    started = true;
    c->blocking_fd = -1;
    if (m.interruptible())
      self.reset_cancellation_state(boost::asio::enable_total_cancellation());
    // With no hook set this is one test of a pointer: no clock is read.
    if (m.ex) {
      if (c->opts.trace) [[unlikely]]
        begin_trace();
    } else if (c->opts.log) [[unlikely]] {
      log_connect_start(*c, m.conn->m.address());
    }
    io_action a = m.resume(io_event{io_event::kind::start, {}, 0, false});
    if (a.what != io_action::kind::done) arm(timeout);
    perform(self, a);
  }

  // Writes and reads.
  template <class Self>
  void operator()(Self& self, error_code ec, std::size_t n) {
    if (pending == io_event::kind::wrote) n += std::exchange(sent_now, 0);
    step(self, io_event{pending, ec, n, false});
  }

  // Steps that complete with an error code alone (connect, TLS handshake). A failed
  // connect to one of the resolved endpoints moves on to the next one.
  template <class Self>
  void operator()(Self& self, error_code ec) {
    if (ec && pending == io_event::kind::connected && m.conn &&
        m.conn->steps.try_next(*c, self, ec, true))
      return;
    step(self, io_event{pending, ec, 0, false});
  }

  // Other completions of transport steps (resolver results, the endpoint connected to).
  template <class Self, class Arg>
    requires(!std::is_convertible_v<Arg, std::size_t>)
  void operator()(Self& self, error_code ec, Arg&& arg) {
    m.conn->steps.on_completion(*c, m.conn->m, self, ec, std::forward<Arg>(arg));
  }

  /// Resumes the machine with ev (pending I/O just completed).
  template <class Self>
  void step(Self& self, io_event ev) {
    ev.cancel_requested =
        cancellation_on && self.cancelled() != boost::asio::cancellation_type::none;
    perform(self, m.resume(ev));
  }

  io_event::kind pending = io_event::kind::start;

 private:
  void begin_trace() {
    if (!m.ex->owns() || m.ex->housekeeping_only()) return;
    trace_begin(*c, false, m.ex->failed_early(), c->wbuf.empty(), !m.ex->params().needs_open);
  }

  // The machine is done: the hooks' events of its end (before anything else can start
  // on the connection).
  void observe_end(const error_code& ec) {
    if (m.ex) {
      if (c->span.active) [[unlikely]]
        trace_end(*c, ec);
      if (ec && c->opts.log && m.ex->owns()) [[unlikely]]
        log_exchange_failure(*c, ec);
    } else if (c->opts.log) [[unlikely]] {
      log_connect_end(*c, m.conn->m.address(), ec);
    }
  }

  template <class Self>
  void perform(Self& self, const io_action& a) {
    if (cancellation_on && !m.cancellable()) {
      cancellation_on = false;
      self.reset_cancellation_state(boost::asio::disable_cancellation());
    }
    if (auto d = m.take_rearm(); d.count() > 0)
      arm(d);
    else if (d.count() < 0 && armed_here)
      c->deadline = connection_impl<Stream>::clock::time_point::max();
    switch (a.what) {
      case io_action::kind::write: {
        pending = io_event::kind::wrote;
        // A plain socket usually takes a small request at once: write it without a trip
        // through the reactor (one send() instead of send() plus a posted completion), and
        // resume the machine right away. Whatever the socket does not take goes the
        // asynchronous way (async_write: only a terminal cancellation aborts a write, so a
        // total one interrupts the request once it is out).
        std::size_t n = try_send_now(a.out);
        if (n == a.out.size() && n > 0) return step(self, io_event{io_event::kind::wrote, {}, n, false});
        sent_now = n;
        async_started = true;
        auto rest = a.out.subspan(n);
        boost::asio::async_write(c->stream, boost::asio::buffer(rest.data(), rest.size()),
                                 std::move(self));
        return;
      }
      case io_action::kind::read: {
        pending = io_event::kind::read;
        async_started = true;
        auto space = c->rbuf.prepare(a.need);
        c->stream.async_read_some(boost::asio::buffer(space.data(), space.size()),
                                  std::move(self));
        return;
      }
      case io_action::kind::connect:
        pending = io_event::kind::connected;
        async_started = true;
        if (!m.conn) return transport_step_misuse(self);
        return m.conn->steps.connect(*c, m.conn->m, self);
      case io_action::kind::tls_handshake:
        pending = io_event::kind::handshaken;
        async_started = true;
        if (!m.conn) return transport_step_misuse(self);
        return m.conn->steps.tls_handshake(*c, m.conn->m, self);
      case io_action::kind::done:
        observe_end(a.ec);
        return complete(self, a.ec);
    }
  }

  // An exchange machine asked for a transport step (a connect or a TLS handshake): a bug.
  // It gets the step's failure, so that it ends as a failed step would.
  template <class Self>
  void transport_step_misuse(Self& self) {
    c->diag.assign("internal error: a request exchange asked for a transport step");
    step(self, io_event{pending, make_error_code(errc::invalid_argument), 0, false});
  }

  // Sends what the socket takes without blocking (plain TCP and unix sockets only).
  std::size_t try_send_now(wire::bytes_view out) {
    if constexpr (is_plain_socket<Stream> &&
                  requires { c->stream.native_handle(); }) {
      if (out.empty() || !c->stream.is_open()) return 0;
      ssize_t r = ::send(c->stream.native_handle(), out.data(), out.size(),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
      return r > 0 ? static_cast<std::size_t>(r) : 0;
    } else {
      (void)out;
      return 0;
    }
  }

  void arm(std::chrono::milliseconds d) {
    if (d.count() <= 0) return;
    if (!armed_here) {
      armed_here = true;
      if (m.conn) c->timeout_hook = m.conn->steps.timeout_hook();
    }
    c->set_deadline(d);
  }

  template <class Self>
  void complete(Self& self, error_code ec) {
    if (armed_here) c->clear_deadline();
    c->apply_close_request();
    // While the handler runs, a request it starts on this connection can tell that it
    // follows this answer at once (restored even if the handler throws). Only after an
    // answer was read: not for a failure found before anything was sent, nor for a
    // connect.
    struct mark_guard {
      completion_mark saved;
      ~mark_guard() { current_completion = saved; }
    } guard{current_completion};
    if constexpr (is_plain_socket<Stream>) {
      if (m.ex && async_started && !ec)
        current_completion = {c.get(), connection_impl<Stream>::clock::now()};
    }
    self.complete(ec, !async_started);
  }
};

/// Before a request on a connection that expects nothing from the server: takes in the
/// bytes the server sent unasked since the last answer, so that the exchange refuses them
/// (errc::trailing_bytes) instead of taking them for the answer to the new request. One
/// non-blocking recv() on plain sockets; a TLS stream cannot look ahead.
/// A server that closed the connection while it was idle is found the same way: the
/// request then fails with errc::connection_closed before anything is sent (so a write is
/// known not to have been applied).
/// Not done for a read-only request that follows the previous answer at once: started by
/// the completion handler of the connection's previous request, after its answer (the
/// next co_await of a coroutine that awaited it), or by the thread whose blocking call
/// read that answer, on the same thread, within follow_on_window of that answer. A
/// connection in such a loop is not idle, and the look would cost a system call per
/// request. A request that may write always looks: a close found then makes it fail as
/// connection_closed (nothing sent), not outcome_unknown.
inline constexpr std::chrono::microseconds follow_on_window{1000};

template <class Stream>
error_code take_unasked(connection_impl<Stream>& c, bool may_write) {
  if constexpr (is_plain_socket<Stream>) {
    if (c.state != conn_state::open || c.holder != 0 || c.drain_pending || !c.rbuf.empty() ||
        !c.stream.is_open())
      return {};
    if (!may_write && (current_completion.conn == &c || last_blocking_answer.conn == &c)) {
      const auto now = connection_impl<Stream>::clock::now();
      auto recent = [&](const completion_mark& m) {
        return m.conn == &c && now - m.answered < follow_on_window;
      };
      if (recent(current_completion) || recent(last_blocking_answer)) return {};
    }
    auto space = c.rbuf.prepare(1);
    ssize_t r = ::recv(c.stream.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
    if (r > 0) c.rbuf.commit(static_cast<std::size_t>(r));
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      c.diag.assign("the server " + c.peer +
                    " had closed the connection (it was idle); nothing was sent");
      auto ec = make_error_code(errc::connection_closed);
      c.break_connection(ec);
      return ec;
    }
    return {};
  } else {
    (void)c;
    (void)may_write;
    return {};
  }
}

/// Calls the caller's handler h with args; when the loop completed inside the initiating
/// function (inline), posts it to the handler's own executor instead (never the
/// connection's: after fork() that one may not be running), so that it is never called
/// from inside the initiating function.
template <class Handler, class Executor, class... Args>
void deliver(Handler&& h, const Executor& io_ex, bool inline_done, Args&&... args) {
  if (!inline_done) return std::move(h)(std::forward<Args>(args)...);
  auto ex = boost::asio::get_associated_executor(h, io_ex);
  boost::asio::post(ex, boost::asio::append(std::move(h), std::forward<Args>(args)...));
}

/// What a loop_handler completes: the caller's handler, with what its completion needs
/// (an exchange's machine), in one block from Asio's recycling allocator.
template <class Executor>
class loop_target {
 public:
  /// Frees the target, then calls the caller's handler; when the loop completed inside the
  /// initiating function (inline_done), from a post instead (post_completion).
  virtual void complete(error_code ec, bool inline_done) = 0;
  /// The same for an operation that never started (request_core: with an empty result).
  virtual void complete_empty(error_code ec, bool inline_done) { complete(ec, inline_done); }
  /// Frees the target without calling the handler (the operation was abandoned).
  virtual void destroy() noexcept = 0;
  virtual Executor executor() const noexcept = 0;
  virtual boost::asio::cancellation_slot slot() const noexcept = 0;

 protected:
  ~loop_target() = default;
};

/// The completion handler of the type-erased I/O loops (run_exchange, run_connect), with
/// the signature void(error_code, bool inline) (see io_loop_op). It stands for a caller's
/// handler whose associated executor is of the connection's executor type, with Asio's
/// default allocator and the standard cancellation slot (erasable_handler); it forwards
/// both, so the loop behaves as if it had the caller's handler. Other handlers get the
/// loop compiled for them. Unlike any_completion_handler, it needs no type-erased executor
/// (whose construction allocates for an any_io_executor).
template <class Executor>
class loop_handler {
 public:
  using executor_type = Executor;
  using cancellation_slot_type = boost::asio::cancellation_slot;

  explicit loop_handler(loop_target<Executor>* t) noexcept : t_(t) {}
  loop_handler(loop_handler&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  loop_handler& operator=(loop_handler&&) = delete;
  ~loop_handler() {
    if (t_) t_->destroy();
  }

  executor_type get_executor() const noexcept { return t_->executor(); }
  cancellation_slot_type get_cancellation_slot() const noexcept { return t_->slot(); }
  void operator()(error_code ec, bool inline_done) {
    std::exchange(t_, nullptr)->complete(ec, inline_done);
  }

 private:
  loop_target<Executor>* t_;
};

/// True when Handler can go through loop_handler<Executor> (see there).
template <class Handler, class Executor>
constexpr bool erasable_handler =
    std::is_same_v<boost::asio::associated_executor_t<Handler, Executor>, Executor> &&
    std::is_same_v<boost::asio::associated_allocator_t<Handler>, std::allocator<void>> &&
    std::is_same_v<boost::asio::associated_cancellation_slot_t<Handler>,
                   boost::asio::cancellation_slot>;

/// An erasable handler with an executor of its own (a coroutine's, one bound to it): even
/// an operation that cannot start (on a moved-from connection) completes it through a
/// target (post_completion), whatever executor the connection had.
template <class Handler, class Executor>
constexpr bool erasable_with_executor =
    erasable_handler<Handler, Executor> &&
    std::is_same_v<boost::asio::associated_executor_t<Handler>, Executor>;

/// A target's completion that came inside the initiating function, run from a post to the
/// target's executor (its caller's handler's) as target->complete(ec, false), or with
/// `empty` as target->complete_empty(ec, false). Its type depends on the executor type
/// only, not on the handler: Asio's post is compiled once per executor type, not once per
/// handler type (a few kilobytes of code for each result type).
/// Destroyed without having run (its executor was shut down), it frees the target, which
/// destroys the handler without calling it, as Asio does with a posted handler.
template <class Executor>
class posted_completion {
 public:
  posted_completion(loop_target<Executor>* t, error_code ec, bool empty) noexcept
      : t_(t), ec_(ec), empty_(empty) {}
  posted_completion(posted_completion&& o) noexcept
      : t_(std::exchange(o.t_, nullptr)), ec_(o.ec_), empty_(o.empty_) {}
  posted_completion& operator=(posted_completion&&) = delete;
  ~posted_completion() {
    if (t_) t_->destroy();
  }
  void operator()() {
    loop_target<Executor>* t = std::exchange(t_, nullptr);
    if (empty_)
      t->complete_empty(ec_, false);
    else
      t->complete(ec_, false);
  }

 private:
  loop_target<Executor>* t_;
  error_code ec_;
  bool empty_;
};

/// Posts target's completion (see posted_completion) to target->executor(): the handler's
/// own executor, never the connection's (after fork() that one may not be running), so that
/// the handler is never called from inside the initiating function.
template <class Executor>
void post_completion(loop_target<Executor>* target, error_code ec, bool empty = false) {
  boost::asio::post(target->executor(), posted_completion<Executor>(target, ec, empty));
}

/// The part of a loop_target that holds the caller's handler: its allocation, its
/// executor (the connection's when the handler has none) and its cancellation slot. Base:
/// loop_target<Executor>, or a class derived from it.
template <class Derived, class Executor, class Handler, class Base = loop_target<Executor>>
class loop_target_base : public Base {
 public:
  template <class... Args>
  static Derived* create(Args&&... args) {
    boost::asio::recycling_allocator<Derived> alloc;
    Derived* p = alloc.allocate(1);
    try {
      return ::new (static_cast<void*>(p)) Derived(std::forward<Args>(args)...);
    } catch (...) {
      alloc.deallocate(p, 1);
      throw;
    }
  }
  void destroy() noexcept final {
    auto* d = static_cast<Derived*>(this);
    d->~Derived();
    boost::asio::recycling_allocator<Derived>().deallocate(d, 1);
  }
  Executor executor() const noexcept final {
    return boost::asio::get_associated_executor(handler, io_ex);
  }
  /// Before a completion is posted (post_completion): the target keeps the executor it
  /// completes on only, not the connection's besides (which may track work on its
  /// io_context, or outlive it, until the completion runs).
  void keep_completion_executor() noexcept { io_ex = executor(); }
  boost::asio::cancellation_slot slot() const noexcept final {
    return boost::asio::get_associated_cancellation_slot(handler);
  }

 protected:
  template <class H, class... BaseArgs>
  loop_target_base(H&& h, const Executor& ex, BaseArgs&&... base_args)
      : Base(std::forward<BaseArgs>(base_args)...), handler(std::forward<H>(h)), io_ex(ex) {}
  ~loop_target_base() = default;

  Handler handler;
  Executor io_ex;
};

/// The target of an erased loop that is not a request's (opening a connection, with
/// Machine = no_machine): the machine and the caller's handler, completed with
/// (error_code[, the machine's result]).
template <class Executor, class Machine, class Handler>
class exchange_target final
    : public loop_target_base<exchange_target<Executor, Machine, Handler>, Executor, Handler> {
  using base = loop_target_base<exchange_target, Executor, Handler>;

 public:
  template <class H, class... Args>
  exchange_target(H&& h, const Executor& ex, Args&&... args)
      : base(std::forward<H>(h), ex), m(std::forward<Args>(args)...) {}
  ~exchange_target() = default;

  void complete(error_code ec, bool inline_done) override {
    if (inline_done) {
      this->keep_completion_executor();
      return post_completion<Executor>(this, ec);
    }
    Handler h(std::move(this->handler));
    if constexpr (std::is_void_v<typename Machine::result_type>) {
      this->destroy();
      std::move(h)(ec);
    } else {
      auto r = m.take();
      this->destroy();
      std::move(h)(ec, std::move(r));
    }
  }

  Machine m;
};

/// The target of a request's exchange as the library's code that does not depend on the
/// caller's handler or the response processor sees it: the exchange machine (whose
/// processor hooks the target supplies) and the completion of the caller's handler. It
/// is made before the request can start (a request may first wait for a probe of the
/// server): exchange_core::begin() binds it to the connection when it does.
template <class Executor>
class request_core : public loop_target<Executor>, public exchange_core {
 public:
  using exchange_core::begin;
  /// Frees the target, then calls the caller's handler with ec and an empty result (the
  /// request never started).
  void complete_empty(error_code ec, bool inline_done) override = 0;

 protected:
  request_core(bool interruptible, bool housekeeping_only)
      : exchange_core(interruptible, housekeeping_only) {}
  ~request_core() = default;
};

/// A request_core for processor Proc and the caller's handler, completed with
/// (error_code[, the processor's result]).
template <class Executor, class Proc, class Handler>
class request_target final
    : public loop_target_base<request_target<Executor, Proc, Handler>, Executor, Handler,
                              request_core<Executor>> {
  using base =
      loop_target_base<request_target, Executor, Handler, request_core<Executor>>;
  using result_type = typename Proc::result_type;

 public:
  template <class H>
  request_target(H&& h, const Executor& ex, Proc p)
      : base(std::forward<H>(h), ex, proc_interruptible<Proc>(), proc_housekeeping_only<Proc>()),
        proc(std::move(p)) {}
  ~request_target() = default;

  void complete(error_code ec, bool inline_done) override {
    if (inline_done) {
      this->keep_completion_executor();
      return post_completion<Executor>(this, ec);
    }
    if constexpr (std::is_void_v<result_type>) {
      finish(ec);
    } else {
      auto r = proc.take();
      finish(ec, std::move(r));
    }
  }
  void complete_empty(error_code ec, bool inline_done) override {
    if (inline_done) {
      this->keep_completion_executor();
      return post_completion<Executor>(this, ec, true);
    }
    if constexpr (std::is_void_v<result_type>)
      finish(ec);
    else
      finish(ec, result_type{});
  }

  Proc proc;

 private:
  error_code on_frame(session_state& s, const wire::frame_header& h, wire::bytes_view body,
                      bool& done) override {
    return proc.on_frame(s, h, body, done);
  }
  void on_failure(session_state& s) override { proc_on_failure(proc, s); }
  bool holds() const override { return proc_holds(proc); }
  error_code map_error(session_state& s, error_code ec, bool sent) override {
    return proc_map_error(proc, s, ec, sent);
  }

  template <class... R>
  void finish(error_code ec, R&&... r) {
    Handler h(std::move(this->handler));
    this->destroy();
    std::move(h)(ec, std::forward<R>(r)...);
  }
};

/// The machine slot of an operation with no machine and no result of its own (opening a
/// connection: its loop holds its state): exchange_target<Executor, no_machine, Handler> and
/// exchange_completion<no_machine, ...> then only call the handler with the error code.
struct no_machine {
  using result_type = void;
};

/// Frees a machine allocated with the caller's handler's allocator (Asio's recycling
/// allocator when the handler has none), as Asio allocates an operation's memory.
template <class Alloc>
struct machine_deleter {
  Alloc alloc;
  template <class T>
  void operator()(T* p) {
    std::allocator_traits<Alloc>::destroy(alloc, p);
    std::allocator_traits<Alloc>::deallocate(alloc, p, 1);
  }
};

/// Allocates Machine(args...) with the handler's allocator.
template <class Machine, class Handler, class... Args>
auto allocate_machine(const Handler& h, Args&&... args) {
  using handler_alloc =
      boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;
  using alloc_t = typename std::allocator_traits<handler_alloc>::template rebind_alloc<Machine>;
  alloc_t alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
  Machine* p = std::allocator_traits<alloc_t>::allocate(alloc, 1);
  try {
    std::allocator_traits<alloc_t>::construct(alloc, p, std::forward<Args>(args)...);
  } catch (...) {
    std::allocator_traits<alloc_t>::deallocate(alloc, p, 1);
    throw;
  }
  return std::unique_ptr<Machine, machine_deleter<alloc_t>>(p, machine_deleter<alloc_t>{alloc});
}

/// The blocking driver's view of an exchange machine of any response processor: its loop
/// is compiled once per stream type, not once per processor.
struct exchange_ref {
  exchange_core* m;
  io_action resume(const io_event& ev) { return m->resume(ev); }
  bool interruptible() const noexcept { return m->interruptible(); }
  bool cancellable() const noexcept { return m->cancellable(); }
  std::chrono::milliseconds take_rearm() noexcept { return m->take_rearm(); }
  const exchange_params& params() const noexcept { return m->params(); }
  bool owns() const noexcept { return m->owns(); }
  bool failed_early() const noexcept { return m->failed_early(); }
  bool housekeeping_only() const noexcept { return m->housekeeping_only(); }
};

/// Runs exchange machine m over connection c, bounded by timeout (0: none); h is called
/// with the exchange's error code (and the inline flag, see io_loop_op). m must live until
/// h is called (or destroyed).
/// With DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms are compiled
/// once, in the unit that includes <dqlite/src.hpp>.
template <class Stream>
void run_exchange(const std::shared_ptr<connection_impl<Stream>>& c, exchange_core& m,
                  std::chrono::milliseconds timeout,
                  loop_handler<typename Stream::executor_type> h) {
  using handler_type = loop_handler<typename Stream::executor_type>;
  boost::asio::async_compose<handler_type, void(error_code, bool)>(
      io_loop_op<Stream>{c, loop_machine<Stream>{&m, nullptr}, timeout}, h, c->stream);
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>: the members of the TCP and unix
// socket connections' state (its construction, the deadline's timer, the closing of the
// transport), and the exchange loops.
extern template struct connection_impl<boost::asio::ip::tcp::socket>;
extern template struct connection_impl<boost::asio::local::stream_protocol::socket>;
extern template connection_impl<boost::asio::ip::tcp::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
extern template connection_impl<boost::asio::local::stream_protocol::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
extern template void run_exchange<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, exchange_core&,
    std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
extern template void run_exchange<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    exchange_core&, std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
#endif

/// The completion of a typed exchange whose handler is not erasable (its loop is compiled
/// for it): takes the processor's result out of the machine, frees the machine, and calls
/// the caller's handler with (error_code[, result]). The handler's executor, allocator and
/// cancellation slot are those of Handler.
template <class Machine, class Handler, class Executor, class Deleter>
struct exchange_completion {
  std::unique_ptr<Machine, Deleter> m;
  Handler handler;
  Executor io_ex;  ///< the connection's: the default for the handler's executor

  void operator()(error_code ec, bool inline_done) {
    if constexpr (std::is_void_v<typename Machine::result_type>) {
      m.reset();
      deliver(std::move(handler), io_ex, inline_done, ec);
    } else {
      auto r = m->take();
      m.reset();
      deliver(std::move(handler), io_ex, inline_done, ec, std::move(r));
    }
  }
};

/// Claims connection c for an exchange and encodes its request through
/// `encode(impl) -> error_code`, called only when the connection could be claimed. Returns
/// the exchange's initial error; owns: the connection was claimed.
/// An exception thrown by encode (a parameter's binding, memory) leaves the connection
/// as it was: not claimed.
template <class Stream, class Encode>
error_code claim_and_encode(connection_impl<Stream>& c, Encode&& encode,
                            const exchange_params& params, bool& owns) {
  error_code ec = c.begin_op(params.needs_open, params.holder);
  owns = !ec;
  if (!ec) {
    try {
      ec = encode(c);
      if (ec && c.diag.empty())
        c.diag.assign("the request could not be encoded: " + ec.message());
      if (!ec && params.holder == 0) ec = take_unasked(c, params.may_write);
    } catch (...) {
      c.busy = false;  // the claim begin_op made
      c.wbuf.clear();
      throw;
    }
  }
  return ec;
}

/// Owns a request target until its exchange's loop does: frees it (without calling the
/// caller's handler, which is destroyed) when the start ends in an exception.
template <class Executor>
class target_guard {
 public:
  explicit target_guard(request_core<Executor>* t) noexcept : t_(t) {}
  target_guard(const target_guard&) = delete;
  target_guard& operator=(const target_guard&) = delete;
  ~target_guard() {
    if (t_) t_->destroy();
  }
  request_core<Executor>& get() const noexcept { return *t_; }
  request_core<Executor>& release() noexcept { return *std::exchange(t_, nullptr); }

 private:
  request_core<Executor>* t_;
};

/// Starts the exchange of the request target `owner` holds (see claim_and_encode), which
/// its loop then owns.
template <class Stream, class Encode>
void begin_request(const std::shared_ptr<connection_impl<Stream>>& c,
                   target_guard<typename Stream::executor_type>& owner, Encode&& encode,
                   exchange_params params) {
  bool owns = false;
  const error_code ec = claim_and_encode(*c, std::forward<Encode>(encode), params, owns);
  auto& t = owner.release();
  t.begin(*c, ec, owns, params);
  run_exchange(c, t, params.timeout, loop_handler<typename Stream::executor_type>(&t));
}

/// Starts an exchange whose request the caller encodes through `encode(impl) -> error_code`,
/// called only when the connection could be claimed.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, exchange_params params) {
  using machine = exchange_machine<Proc>;
  using executor = typename Stream::executor_type;
  using handler_type = std::decay_t<Handler>;
  if constexpr (erasable_handler<handler_type, executor>) {
    target_guard<executor> owner(request_target<executor, Proc, handler_type>::create(
        std::forward<Handler>(handler), c->stream.get_executor(), std::move(proc)));
    begin_request(c, owner, std::forward<Encode>(encode), params);
  } else {
    bool owns = false;
    const error_code ec = claim_and_encode(*c, std::forward<Encode>(encode), params, owns);
    auto m = allocate_machine<machine>(handler, *c, std::move(proc), ec, owns, params);
    exchange_core& core = *m;
    using completion = exchange_completion<machine, handler_type, executor,
                                           typename decltype(m)::deleter_type>;
    completion done{std::move(m), std::forward<Handler>(handler), c->stream.get_executor()};
    boost::asio::async_compose<completion, void(error_code, bool)>(
        io_loop_op<Stream>{c, loop_machine<Stream>{&core, nullptr}, params.timeout}, done, c->stream);
  }
}

/// Same, for a request that needs (or not) an open database, bounded by timeout.
template <class Stream, class Proc, class Handler, class Encode>
void start_exchange(const std::shared_ptr<connection_impl<Stream>>& c, Proc proc,
                    Handler&& handler, Encode&& encode, bool needs_open,
                    std::chrono::milliseconds timeout, bool may_write = false) {
  start_exchange(c, std::move(proc), std::forward<Handler>(handler), std::forward<Encode>(encode),
                 exchange_params{needs_open, timeout, 0, may_write});
}

}  // namespace dqlite::detail

namespace boost::asio {

/// The completions of typed operations are associated with what their caller's handler is
/// (the connection's executor being the default executor).
template <template <class, class> class Associator, class Machine, class Handler, class Executor,
          class Deleter, class DefaultCandidate>
struct associator<Associator,
                  dqlite::detail::exchange_completion<Machine, Handler, Executor, Deleter>,
                  DefaultCandidate> {
  using type = typename Associator<Handler, DefaultCandidate>::type;
  static type get(
      const dqlite::detail::exchange_completion<Machine, Handler, Executor, Deleter>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const dqlite::detail::exchange_completion<Machine, Handler, Executor, Deleter>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

}  // namespace boost::asio
