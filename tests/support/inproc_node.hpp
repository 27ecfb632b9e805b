// A dqlite node running inside the test process, listening on an abstract unix socket
// (libdqlite accepts connections there from its own process only).
#pragma once

extern "C" {  // dqlite.h declares C functions without extern "C"
#include <dqlite.h>
}

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <signal.h>
#include <unistd.h>

namespace dqlite_test {

class inproc_node {
 public:
  /// name: the abstract socket name, without the leading '@'.
  explicit inproc_node(const std::string& name, std::uint64_t id = 1) : address_("@" + name) {
    ::signal(SIGPIPE, SIG_IGN);
    char tmpl[] = "/tmp/dqlite-inproc-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    int rv = dqlite_node_create(id, address_.c_str(), dir_.c_str(), &node_);
    if (rv == 0) rv = dqlite_node_set_bind_address(node_, address_.c_str());
    if (rv == 0) rv = dqlite_node_start(node_);
    if (rv != 0) {
      std::string msg = node_ ? dqlite_node_errmsg(node_) : "dqlite_node_create failed";
      if (node_) dqlite_node_destroy(node_);
      node_ = nullptr;
      throw std::runtime_error("in-process node: " + msg);
    }
  }
  ~inproc_node() {
    if (node_) {
      dqlite_node_stop(node_);
      dqlite_node_destroy(node_);
    }
    std::string cmd = "rm -rf " + dir_;
    [[maybe_unused]] int rc = std::system(cmd.c_str());
  }
  inproc_node(const inproc_node&) = delete;
  inproc_node& operator=(const inproc_node&) = delete;

  /// "@name".
  const std::string& address() const { return address_; }

 private:
  std::string address_;
  std::string dir_;
  dqlite_node* node_ = nullptr;
};

}  // namespace dqlite_test
