// Runs a real dqlite server node (tools/node/dqlite_node.c) in a child process
// for integration tests. POSIX (Linux) only; independent of the client library.
//
//   dqlite_test::node_process node;               // id 1, free loopback port, temp dir
//   connect_to(node.address());                   // "127.0.0.1:PORT"
//   node.kill(); node.restart();                  // crash and come back
//
// The node program is, in this order: the environment variable
// DQLITE_TEST_NODE_BINARY, the macro DQLITE_TEST_NODE_BINARY (set by the build),
// "dqlite-node" looked up on PATH.
//
// The child gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG),
// so a crashed or killed test program never leaves nodes behind. Construct and
// restart nodes from a thread that outlives them (normally the test's own thread).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace dqlite_test {

// How to run a node. Empty address: a free loopback port is picked. Empty
// data_dir: a fresh directory is made under $TMPDIR (or /tmp).
struct node_options {
  std::uint64_t id = 1;
  std::string address;                  // "HOST:PORT" advertised by the node
  std::string data_dir;                 // created if missing
  std::string bind_address;             // --bind; empty = same as address
  std::vector<std::string> extra_args;  // e.g. {"--latency-ms", "5"}
  std::chrono::milliseconds start_timeout{10000};
  std::chrono::milliseconds stop_timeout{10000};
};

namespace detail {

inline std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

inline std::string node_binary() {
  if (const char* env = std::getenv("DQLITE_TEST_NODE_BINARY"); env != nullptr && *env != '\0')
    return env;
#ifdef DQLITE_TEST_NODE_BINARY
  return DQLITE_TEST_NODE_BINARY;
#else
  return "dqlite-node";
#endif
}

// Binds 127.0.0.1:0 and returns the port the kernel chose.
inline std::uint16_t pick_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string msg = errno_text("bind 127.0.0.1:0");
    ::close(fd);
    throw std::runtime_error(msg);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Splits "HOST:PORT" or "[V6]:PORT".
inline std::pair<std::string, std::uint16_t> split_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size())
    throw std::invalid_argument("node address must be HOST:PORT: '" + address + "'");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) port = 0;
  } catch (const std::exception&) {
    port = 0;
  }
  if (port == 0 || port > 65535)
    throw std::invalid_argument("invalid port in node address '" + address + "'");
  return {host, static_cast<std::uint16_t>(port)};
}

// True when a TCP connection to host:port succeeds (closed again at once).
inline bool tcp_connects(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* ai = res; ai != nullptr && !ok; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int rc;
    do {
      rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    ok = rc == 0;
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return ok;
}

inline std::string read_file(const std::string& path, std::size_t from = 0) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(from));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::uintmax_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

// Describes a wait() status like a shell: exit code, or 128 + signal.
inline int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace detail

/// The label of the server the tests run against, from DQLITE_TEST_SERVER (CTest sets it
/// per server of the matrix: "1.11.1", "1.18.6", "null-fix"...); empty when unset.
inline std::string server_label() {
  const char* env = std::getenv("DQLITE_TEST_SERVER");
  return env != nullptr ? env : "";
}

/// dqlite_version_number() of the libdqlite the node program runs with (asked once with
/// `NODE --version`): major * 10000 + minor * 100 + patch. Debian's 1.11.1 reports 11000.
/// Both 1.18.6 and the server with the NULL fix report 11806: tell those apart by
/// behaviour. Throws when the node program cannot tell.
inline int server_version() {
  static const int version = [] {
    std::string quoted = "'";
    for (char c : detail::node_binary()) {
      if (c == '\'') quoted += "'\\''";
      else quoted += c;
    }
    quoted += "' --version 2>&1";
    std::string out;
    if (FILE* p = ::popen(quoted.c_str(), "r")) {
      char buf[256];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      ::pclose(p);
    }
    const std::string key = "libdqlite ";
    const auto at = out.find(key);
    int v = 0;
    if (at != std::string::npos) v = std::atoi(out.c_str() + at + key.size());
    if (v <= 0)
      throw std::runtime_error("cannot read the libdqlite version from `" + detail::node_binary() +
                               " --version`: " + out);
    return v;
  }();
  return version;
}

/// Sends SIGSTOP to `pid` and returns once every thread of it is stopped (the signal
/// takes effect asynchronously: a thread running on another core may still answer a
/// request sent right after kill()). Throws if that takes more than 5 s.
inline void stop_process(pid_t pid) {
  if (::kill(pid, SIGSTOP) != 0) throw std::runtime_error(detail::errno_text("kill(SIGSTOP)"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (;;) {
    bool all = true;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
      // /proc/PID/task/TID/stat: "tid (comm) S ..."; comm may hold spaces and parentheses.
      const std::string stat = detail::read_file((t.path() / "stat").string());
      const auto close = stat.rfind(')');
      const char state = close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
      if (state != 'T' && state != 't') all = false;
    }
    if (ec) throw std::runtime_error("cannot list " + tasks.string() + ": " + ec.message());
    if (all) return;
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("process " + std::to_string(pid) + " did not stop within 5 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

class node_process {
 public:
  // Node `id` on a free loopback port with a fresh temporary data directory.
  explicit node_process(std::uint64_t id = 1) : node_process(make_options(id)) {}

  // Node `id` advertised (and listening) at `address` ("HOST:PORT") with data in
  // `data_dir` (created if missing). The directory is removed by the destructor
  // only if this object created it.
  node_process(std::uint64_t id, std::string address, std::string data_dir)
      : node_process(make_options(id, std::move(address), std::move(data_dir))) {}

  explicit node_process(node_options options) : options_(std::move(options)) {
    if (options_.id == 0) throw std::invalid_argument("dqlite node id must be > 0");
    try {
      prepare_data_dir();
      if (options_.address.empty()) {
        // The port may be taken between picking and binding it: retry.
        for (int attempt = 1;; ++attempt) {
          address_ = "127.0.0.1:" + std::to_string(detail::pick_free_port());
          try {
            launch();
            break;
          } catch (const std::runtime_error&) {
            if (attempt >= 5 || !bind_failed_) throw;
          }
        }
      } else {
        address_ = options_.address;
        launch();
      }
    } catch (...) {
      remove_owned_dir();
      throw;
    }
  }

  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  ~node_process() {
    try {
      stop();
    } catch (...) {
    }
    remove_owned_dir();
  }

  const std::string& address() const noexcept { return address_; }
  std::uint16_t port() const { return detail::split_address(address_).second; }
  std::uint64_t id() const noexcept { return options_.id; }
  const std::string& data_dir() const noexcept { return data_dir_; }
  std::string log_path() const { return data_dir_ + "/node.log"; }
  // Everything the node wrote to stdout/stderr, over all its starts.
  std::string log() const { return detail::read_file(log_path()); }
  // Process id of the running node, -1 when stopped.
  pid_t pid() const noexcept { return pid_; }

  // True while the child runs (reaps it if it has exited on its own).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return true;
    last_exit_code_ = r == pid_ ? detail::exit_code_of(status) : -1;
    pid_ = -1;
    return false;
  }

  // SIGTERM, wait up to stop_timeout, then SIGKILL. Returns the exit code (0 =
  // clean stop; 128 + N = killed by signal N), or the last one if already stopped.
  int stop() {
    if (pid_ <= 0) return last_exit_code_;
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + options_.stop_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!running()) return last_exit_code_;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return kill();
  }

  // SIGKILL and reap, as in a crash. Returns the exit code (137 if killed).
  int kill() {
    if (pid_ <= 0) return last_exit_code_;
    ::kill(pid_, SIGKILL);
    reap_blocking();
    return last_exit_code_;
  }

  // Starts the node again with the same id, address and data directory (after
  // stop() or kill(); stops it first if it is running).
  void restart() {
    stop();
    launch();
  }

  // Exit code of the last run (see stop()); -1 if none finished yet.
  int last_exit_code() const noexcept { return last_exit_code_; }

 private:
  static node_options make_options(std::uint64_t id, std::string address = {},
                                   std::string data_dir = {}) {
    node_options o;
    o.id = id;
    o.address = std::move(address);
    o.data_dir = std::move(data_dir);
    return o;
  }

  void prepare_data_dir() {
    if (options_.data_dir.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string templ =
          std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/dqlite-test-node-XXXXXX";
      std::vector<char> buf(templ.begin(), templ.end());
      buf.push_back('\0');
      if (::mkdtemp(buf.data()) == nullptr)
        throw std::runtime_error(detail::errno_text(("mkdtemp " + templ).c_str()));
      data_dir_ = buf.data();
      owns_dir_ = true;
    } else {
      data_dir_ = options_.data_dir;
      std::error_code ec;
      bool existed = std::filesystem::exists(data_dir_, ec);
      std::filesystem::create_directories(data_dir_, ec);
      if (ec)
        throw std::runtime_error("cannot create data directory " + data_dir_ + ": " + ec.message());
      owns_dir_ = !existed;
    }
  }

  void remove_owned_dir() noexcept {
    if (owns_dir_ && !data_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir_, ec);
      owns_dir_ = false;
    }
  }

  void reap_blocking() {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    last_exit_code_ = r == pid_ ? detail::exit_code_of(status) : -1;
    pid_ = -1;
  }

  std::string describe() const {
    return "dqlite node " + std::to_string(options_.id) + " (" + address_ + ", " + data_dir_ +
           ", " + detail::node_binary() + ")";
  }

  // Forks and execs the node, waits until it is ready. Throws on failure with
  // the node's log in the message.
  void launch() {
    bind_failed_ = false;
    const std::string binary = detail::node_binary();
    const std::string bind = options_.bind_address.empty() ? address_ : options_.bind_address;
    std::vector<std::string> args{
        binary, "--id", std::to_string(options_.id), "--address", address_, "--dir", data_dir_};
    if (!options_.bind_address.empty()) {
      args.push_back("--bind");
      args.push_back(options_.bind_address);
    }
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const std::string log = log_path();
    const std::size_t log_start = static_cast<std::size_t>(detail::file_size_or_zero(log));
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error(detail::errno_text(("open " + log).c_str()));
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
      std::string msg = detail::errno_text("open /dev/null");
      ::close(log_fd);
      throw std::runtime_error(msg);
    }

    const pid_t parent = ::getpid();
    pid_t child = ::fork();
    if (child < 0) {
      std::string msg = detail::errno_text("fork");
      ::close(log_fd);
      ::close(null_fd);
      throw std::runtime_error(msg);
    }
    if (child == 0) {
      // Child: only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      // Leave no other descriptor of the test program open in the node: a
      // client socket inherited here would not see its peer close.
      if (::close_range(3, ~0U, 0) != 0) {
        for (int fd = 3; fd < 65536; ++fd) ::close(fd);
      }
      ::execvp(argv[0], argv.data());
      int err = errno;
      char msg[96] = "node_process: cannot execute the node program: errno ";
      std::size_t len = std::strlen(msg);
      char digits[12];
      std::size_t n = 0;
      do {
        digits[n++] = static_cast<char>('0' + err % 10);
        err /= 10;
      } while (err != 0 && n < sizeof digits);
      while (n > 0 && len + 2 < sizeof msg) msg[len++] = digits[--n];
      msg[len++] = '\n';
      [[maybe_unused]] auto written = ::write(STDERR_FILENO, msg, len);
      ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    pid_ = child;

    auto [host, port] = detail::split_address(bind.front() == '@' ? address_ : bind);
    auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    for (;;) {
      if (!running()) {
        std::string text = detail::read_file(log, log_start);
        bind_failed_ = text.find("cannot listen") != std::string::npos ||
                       text.find("in use") != std::string::npos;
        throw std::runtime_error(describe() + " exited during startup with code " +
                                 std::to_string(last_exit_code_) + "; log:\n" + text);
      }
      if (detail::read_file(log, log_start).find("ready ") != std::string::npos &&
          (bind.front() == '@' || detail::tcp_connects(host, port)))
        return;
      if (std::chrono::steady_clock::now() >= deadline) {
        kill();
        throw std::runtime_error(describe() + " did not accept connections within " +
                                 std::to_string(options_.start_timeout.count()) + " ms; log:\n" +
                                 detail::read_file(log, log_start));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  node_options options_;
  std::string address_;
  std::string data_dir_;
  bool owns_dir_ = false;
  bool bind_failed_ = false;
  pid_t pid_ = -1;
  int last_exit_code_ = -1;
};

}  // namespace dqlite_test
