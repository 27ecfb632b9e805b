// A scripted loopback TCP server for client behaviour that a real dqlite node
// cannot show: a server that never answers, closes at once, answers garbage...
// POSIX sockets and std::thread; independent of the client library.
//
//   dqlite_test::fake_server server(dqlite_test::fake_server::silent());
//   connect_to(server.address());                 // "127.0.0.1:PORT"
//
//   dqlite_test::fake_server server([](dqlite_test::fake_peer& peer) {
//     auto handshake = peer.read_exact(8);        // protocol version
//     auto request = peer.read_frame();           // header + body
//     peer.write(response_bytes);
//   });                                           // peer closed when the script returns
//
// Every accepted connection runs the script on its own thread. The destructor
// wakes up every blocked read, closes every connection and joins the threads,
// so a script should block only in fake_peer calls (a script sleeping on its
// own delays the destructor by that long).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace dqlite_test {

namespace detail {

// State shared by the server and its peers: lets the server shut down every
// open connection so that blocked reads return at once.
struct fake_server_state {
  std::mutex mutex;
  std::vector<int> open_fds;
  std::atomic<bool> stopping{false};
  std::condition_variable accepted_cv;
  std::size_t accepted = 0;
  std::vector<std::string> errors;

  void add_fd(int fd) {
    std::lock_guard<std::mutex> lock(mutex);
    open_fds.push_back(fd);
  }
  // Closes fd if still open; false if it was already closed.
  bool close_fd(int fd) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = std::find(open_fds.begin(), open_fds.end(), fd);
    if (it == open_fds.end()) return false;
    open_fds.erase(it);
    ::close(fd);
    return true;
  }
  void shutdown_all() {
    std::lock_guard<std::mutex> lock(mutex);
    for (int fd : open_fds) ::shutdown(fd, SHUT_RDWR);
  }
};

inline int poll_timeout_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 1000 * 1000));
}

}  // namespace detail

// The server side of one accepted connection, handed to the script.
class fake_peer {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds default_timeout{10000};

  fake_peer(int fd, std::shared_ptr<detail::fake_server_state> state)
      : fd_(fd),
        state_(std::move(state)) {}
  fake_peer(const fake_peer&) = delete;
  fake_peer& operator=(const fake_peer&) = delete;
  ~fake_peer() { close(); }

  // Reads exactly n bytes. Returns fewer if the client closed the connection,
  // an error occurred, the timeout expired or the server is being destroyed.
  std::vector<unsigned char> read_exact(std::size_t n,
                                        std::chrono::milliseconds timeout = default_timeout) {
    std::vector<unsigned char> out;
    out.reserve(n);
    auto deadline = clock::now() + timeout;
    unsigned char buf[4096];
    while (out.size() < n && fd_ >= 0) {
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, detail::poll_timeout_ms(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) break;  // timeout or error
      std::size_t want = std::min(sizeof buf, n - out.size());
      ssize_t got = ::recv(fd_, buf, want, 0);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        eof_ = true;
        break;
      }
      out.insert(out.end(), buf, buf + got);
    }
    return out;
  }

  // Reads one dqlite frame: the 8-byte header, then (u32 little-endian words) * 8
  // body bytes. Returns header and body together; fewer bytes on EOF/timeout.
  std::vector<unsigned char> read_frame(std::chrono::milliseconds timeout = default_timeout) {
    auto deadline = clock::now() + timeout;
    auto frame = read_exact(8, timeout);
    if (frame.size() < 8) return frame;
    std::size_t words = std::size_t(frame[0]) | std::size_t(frame[1]) << 8 |
                        std::size_t(frame[2]) << 16 | std::size_t(frame[3]) << 24;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    auto body = read_exact(words * 8, std::max(left, std::chrono::milliseconds(0)));
    frame.insert(frame.end(), body.begin(), body.end());
    return frame;
  }

  // Writes all bytes; false if the connection is closed or broken.
  bool write(std::span<const unsigned char> bytes) {
    std::size_t done = 0;
    while (done < bytes.size() && fd_ >= 0) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return done == bytes.size();
  }
  bool write(std::string_view bytes) {
    return write(std::span<const unsigned char>(
        reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
  }

  // Closes the connection (the client sees EOF). Idempotent.
  void close() {
    if (fd_ >= 0) {
      state_->close_fd(fd_);
      fd_ = -1;
    }
  }

  // Sends a TCP reset instead of an orderly close.
  void reset() {
    if (fd_ >= 0) {
      linger l{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      close();
    }
  }

  // Reads and discards data until the client closes its end (true), or the
  // timeout expires, the connection breaks or the server is destroyed (false).
  bool wait_closed(std::chrono::milliseconds timeout = default_timeout) {
    if (eof_) return !stopping();
    auto deadline = clock::now() + timeout;
    unsigned char buf[4096];
    while (fd_ >= 0) {
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, detail::poll_timeout_ms(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) return false;
      ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        // EOF, or an error such as a reset: the client is gone either way.
        eof_ = true;
        return !stopping();
      }
    }
    return false;
  }

  // True once a read saw the end of the stream (or an error).
  bool eof() const noexcept { return eof_; }

  // True once the server destructor has started.
  bool stopping() const noexcept { return state_->stopping.load(); }
  int native_handle() const noexcept { return fd_; }

 private:
  int fd_;
  bool eof_ = false;
  std::shared_ptr<detail::fake_server_state> state_;
};

class fake_server {
 public:
  using script = std::function<void(fake_peer&)>;

  // Accepts connections on 127.0.0.1 (kernel-chosen port) and runs `s` for each.
  explicit fake_server(script s) : script_(std::move(s)), state_(std::make_shared<state_type>()) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0)
      throw std::runtime_error(std::string("fake_server: socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::string msg = std::string("fake_server: bind/listen: ") + std::strerror(errno);
      ::close(listen_fd_);
      throw std::runtime_error(msg);
    }
    port_ = ntohs(addr.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) {
      std::string msg = std::string("fake_server: pipe: ") + std::strerror(errno);
      ::close(listen_fd_);
      throw std::runtime_error(msg);
    }
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  fake_server(const fake_server&) = delete;
  fake_server& operator=(const fake_server&) = delete;

  ~fake_server() { stop(); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const noexcept { return port_; }

  // Number of connections accepted so far.
  std::size_t accepted() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->accepted;
  }

  // Waits until at least n connections were accepted; false on timeout.
  bool wait_accepted(std::size_t n,
                     std::chrono::milliseconds timeout = fake_peer::default_timeout) const {
    std::unique_lock<std::mutex> lock(state_->mutex);
    return state_->accepted_cv.wait_for(lock, timeout, [&] { return state_->accepted >= n; });
  }

  // Messages of exceptions thrown by scripts (they never escape a thread).
  std::vector<std::string> errors() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->errors;
  }

  // Stops accepting, closes every connection, joins every thread. Idempotent;
  // the destructor calls it.
  void stop() {
    if (state_->stopping.exchange(true)) return;
    char c = 1;
    [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
    if (acceptor_.joinable()) acceptor_.join();
    state_->shutdown_all();
    for (auto& t : handlers_)
      if (t.joinable()) t.join();
    handlers_.clear();
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  // Ready-made scripts.

  // Reads and discards everything, never answers, until the client closes or
  // the server is destroyed.
  static script silent() {
    return [](fake_peer& peer) {
      while (!peer.stopping() && !peer.eof() && peer.native_handle() >= 0)
        peer.wait_closed(std::chrono::milliseconds(60 * 60 * 1000));
    };
  }

  // Closes each connection as soon as it is accepted.
  static script close_immediately() {
    return [](fake_peer& peer) { peer.close(); };
  }

  // Reads n bytes, sends `reply`, then closes (then_close) or waits until the
  // client closes. Closes at once if the client sends fewer than n bytes.
  static script reply_after(std::size_t n, std::vector<unsigned char> reply,
                            bool then_close = true) {
    return [n, reply = std::move(reply), then_close](fake_peer& peer) {
      if (peer.read_exact(n).size() < n) return;
      peer.write(reply);
      if (!then_close) silent()(peer);
    };
  }

 private:
  using state_type = detail::fake_server_state;

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      int rc = ::poll(fds, 2, -1);
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0 || state_->stopping.load() || (fds[1].revents & POLLIN) != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;  // e.g. the client gave up already
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      state_->add_fd(fd);
      {
        std::lock_guard<std::mutex> lock(state_->mutex);
        ++state_->accepted;
      }
      state_->accepted_cv.notify_all();
      handlers_.emplace_back([this, fd] {
        fake_peer peer(fd, state_);
        try {
          script_(peer);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(state_->mutex);
          state_->errors.push_back(e.what());
        } catch (...) {
          std::lock_guard<std::mutex> lock(state_->mutex);
          state_->errors.emplace_back("unknown exception");
        }
      });
    }
  }

  script script_;
  std::shared_ptr<state_type> state_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

}  // namespace dqlite_test
