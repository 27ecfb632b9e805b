// Runs dqlite-app-node (tests/app/app_node.cpp: one dqlite::app) in a child process for
// the app's integration tests, controlled through its stdin, observed through its output.
//
//   dqlite_test::app_group g;                            // a temporary base directory
//   auto& a = g.add({});                                 // bootstraps a cluster
//   auto& b = g.add({"--join", a.address()});            // joins through a
//   b.wait_for("ready");  b.send("handover");  b.wait_exit();
//
// The child gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG).
#pragma once

#include "support/test_node.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dqlite_test {

/// The steady clock in ms (CLOCK_MONOTONIC, shared with the child processes).
inline long long mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline std::string app_node_binary() {
  if (const char* env = std::getenv("DQLITE_TEST_APP_NODE_BINARY"); env != nullptr && *env != '\0')
    return env;
#ifdef DQLITE_TEST_APP_NODE_BINARY
  return DQLITE_TEST_APP_NODE_BINARY;
#else
  return "dqlite-app-node";
#endif
}

class app_process {
 public:
  /// An app with data in `dir` advertised at `address`, with extra arguments (--join...).
  /// Launched at once; does not wait for it to start.
  app_process(std::string dir, std::string address, std::vector<std::string> args)
      : dir_(std::move(dir)), address_(std::move(address)), args_(std::move(args)) {
    launch();
  }
  app_process(const app_process&) = delete;
  app_process& operator=(const app_process&) = delete;
  ~app_process() {
    if (pid_ > 0) kill9();
  }

  const std::string& address() const noexcept { return address_; }
  const std::string& dir() const noexcept { return dir_; }
  std::string log_path() const { return dir_ + ".log"; }
  /// Everything the app wrote, over all its runs.
  std::string log() const { return detail::read_file(log_path()); }
  pid_t pid() const noexcept { return pid_; }

  /// The node id printed on its "started" line (0 before).
  std::uint64_t id() const {
    auto text = detail::read_file(log_path(), from_);
    auto at = text.find(" started ");
    if (at == std::string::npos) return 0;
    return std::stoull(text.substr(at + 9));
  }

  /// Starts the app again with the same directory, address and arguments.
  void launch() {
    if (pid_ > 0) throw std::logic_error("app_process::launch: still running");
    from_ = static_cast<std::size_t>(detail::file_size_or_zero(log_path()));
    int in[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error(detail::errno_text("pipe"));
    int log_fd = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error(detail::errno_text("open log"));
    std::vector<std::string> argv_s{app_node_binary(), "--dir", dir_, "--address", address_};
    argv_s.insert(argv_s.end(), args_.begin(), args_.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_t child = ::fork();
    if (child < 0) throw std::runtime_error(detail::errno_text("fork"));
    if (child == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (::close_range(3, ~0U, 0) != 0)
        for (int fd = 3; fd < 65536; ++fd) ::close(fd);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(log_fd);
    stdin_ = in[1];
    pid_ = child;
  }

  /// Writes one command line to the app's stdin.
  void send(const std::string& line) {
    std::string l = line + "\n";
    if (stdin_ < 0 || ::write(stdin_, l.data(), l.size()) != static_cast<ssize_t>(l.size()))
      throw std::runtime_error("cannot send '" + line + "' to the app at " + address_);
  }

  /// True when the output of this run has a line with " text".
  bool has(const std::string& text) const {
    return detail::read_file(log_path(), from_).find(" " + text) != std::string::npos;
  }

  /// Waits for a line with " text" in the output of this run; returns its time stamp
  /// (mono_ms of the child). Throws with the log when the app exits first or on timeout.
  long long wait_for(const std::string& text,
                     std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto out = detail::read_file(log_path(), from_);
      auto at = out.find(" " + text);
      if (at != std::string::npos) {
        auto bol = out.rfind('\n', at);
        bol = bol == std::string::npos ? 0 : bol + 1;
        return std::stoll(out.substr(bol, at - bol));
      }
      if (!running())
        throw std::runtime_error("the app at " + address_ + " exited (code " +
                                 std::to_string(exit_code_) + ") before printing '" + text +
                                 "'; its output:\n" + out);
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("the app at " + address_ + " did not print '" + text +
                                 "' within " + std::to_string(timeout.count()) +
                                 " ms; its output:\n" + out);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return true;
    exit_code_ = r == pid_ ? detail::exit_code_of(status) : -1;
    pid_ = -1;
    close_stdin();
    return false;
  }

  /// Waits for the app to exit on its own; returns its exit code. Throws after `timeout`.
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("the app at " + address_ + " did not exit within " +
                                 std::to_string(timeout.count()) + " ms; its output:\n" + log());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_code_;
  }

  /// SIGKILL, as in a crash.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = detail::exit_code_of(status);
    pid_ = -1;
    close_stdin();
  }

 private:
  void close_stdin() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }

  std::string dir_;
  std::string address_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int exit_code_ = -1;
  std::size_t from_ = 0;
};

/// Apps under one temporary base directory (removed at the end).
class app_group {
 public:
  app_group() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/dqlite-app-test-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error(detail::errno_text("mkdtemp"));
    base_ = buf.data();
    ::signal(SIGPIPE, SIG_IGN);  // writing to an app that has died
  }
  app_group(const app_group&) = delete;
  app_group& operator=(const app_group&) = delete;
  ~app_group() {
    apps_.clear();
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }

  /// A new app on a free loopback port with its own data directory.
  app_process& add(std::vector<std::string> args) {
    const std::string dir = base_ + "/app" + std::to_string(apps_.size() + 1);
    const std::string address = "127.0.0.1:" + std::to_string(detail::pick_free_port());
    apps_.push_back(std::make_unique<app_process>(dir, address, std::move(args)));
    return *apps_.back();
  }
  /// A new app advertised at `address` (its arguments may add --bind).
  app_process& add_at(const std::string& address, std::vector<std::string> args) {
    const std::string dir = base_ + "/app" + std::to_string(apps_.size() + 1);
    apps_.push_back(std::make_unique<app_process>(dir, address, std::move(args)));
    return *apps_.back();
  }
  app_process& operator[](std::size_t i) { return *apps_.at(i); }
  std::size_t size() const { return apps_.size(); }
  const std::string& base() const { return base_; }

  /// All the output, for failure messages.
  std::string logs() const {
    std::string s;
    for (const auto& a : apps_) s += "---- " + a->address() + "\n" + a->log();
    return s;
  }

 private:
  std::string base_;
  std::vector<std::unique_ptr<app_process>> apps_;
};

}  // namespace dqlite_test
