// TLS in front of a real node: stunnel (Debian's stunnel4) terminates TLS with a
// certificate issued by a test CA made with the openssl command.
//
//   dqlite_test::tls_front tls(node.address());   // certificate for DNS:localhost
//   tls.port(), tls.ca_file(), tls.other_ca_file()
//   dqlite_test::tls_front tls(cluster.addresses());  // a TLS port per node: tls.port(i)
#pragma once

#include "support/test_node.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace dqlite_test {

class tls_front {
 public:
  explicit tls_front(const std::string& node_address)
      : tls_front(std::vector<std::string>{node_address}) {}

  /// One stunnel with a TLS port in front of each node (one CA, one certificate).
  explicit tls_front(const std::vector<std::string>& node_addresses) {
    char tmpl[] = "/tmp/dqlite-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    make_ca("ca");
    make_ca("other-ca");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + dir_ +
       "/server.key -out " + dir_ + "/server.csr -subj /CN=localhost");
    write(dir_ + "/ext.cnf", "subjectAltName=DNS:localhost\n");
    sh("openssl x509 -req -in " + dir_ + "/server.csr -CA " + dir_ + "/ca.pem -CAkey " + dir_ +
       "/ca.key -CAcreateserial -out " + dir_ + "/server.pem -days 2 -extfile " + dir_ +
       "/ext.cnf");
    std::string conf = "foreground = yes\npid = " + dir_ + "/stunnel.pid\n" + "output = " + dir_ +
                       "/stunnel.log\n";
    for (std::size_t i = 0; i < node_addresses.size(); ++i) {
      ports_.push_back(detail::pick_free_port());
      conf += "[dqlite" + std::to_string(i) + "]\naccept = 127.0.0.1:" +
              std::to_string(ports_.back()) + "\nconnect = " + node_addresses[i] +
              "\ncert = " + dir_ + "/server.pem\nkey = " + dir_ + "/server.key\n";
    }
    port_ = ports_.at(0);
    write(dir_ + "/stunnel.conf", conf);
    std::string conf_path = dir_ + "/stunnel.conf";
    char prog[] = "stunnel4";
    char* argv[] = {prog, conf_path.data(), nullptr};
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    int rc = ::posix_spawnp(&pid_, prog, &fa, nullptr, argv, environ);
    ::posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start stunnel4 (is it installed?)");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (auto port : ports_) {
      while (!detail::tcp_connects("127.0.0.1", port)) {
        if (std::chrono::steady_clock::now() > deadline)
          throw std::runtime_error("stunnel4 did not start listening; see " + dir_ +
                                   "/stunnel.log");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  ~tls_front() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    sh("rm -rf " + dir_, false);
  }
  tls_front(const tls_front&) = delete;
  tls_front& operator=(const tls_front&) = delete;

  std::uint16_t port() const { return port_; }
  /// The TLS port in front of node i.
  std::uint16_t port(std::size_t i) const { return ports_.at(i); }
  /// The CA that issued the server's certificate.
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  /// A CA that did not.
  std::string other_ca_file() const { return dir_ + "/other-ca.pem"; }

 private:
  void make_ca(const std::string& name) {
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
       dir_ + "/" + name + ".key -out " + dir_ + "/" + name + ".pem -days 2 -subj /CN=" + name);
  }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  static void sh(const std::string& cmd, bool check = true) {
    int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
    if (check && rc != 0) throw std::runtime_error("command failed: " + cmd);
  }

  std::string dir_;
  std::uint16_t port_ = 0;
  std::vector<std::uint16_t> ports_;
  pid_t pid_ = -1;
};

}  // namespace dqlite_test
