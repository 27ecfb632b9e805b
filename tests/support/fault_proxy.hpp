// A TCP proxy between a client and a real node that can cut the connection when the client
// sends given bytes: shows what a client sees when a connection dies at a chosen moment.
//
//   dqlite_test::fault_proxy proxy(ex, node.address());
//   proxy.cut_when_client_sends("COMMIT", dqlite_test::fault_proxy::cut::after_forwarding);
//   connect to proxy.address() ...
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace dqlite_test {

class fault_proxy {
  using tcp = boost::asio::ip::tcp;

 public:
  /// before_forwarding: the request never reaches the server. after_forwarding: it does,
  /// and the connection is cut at once (the server may see the close before it runs the
  /// request). after_answer: it does, and the connection is cut when the server starts
  /// answering, whose answer is dropped (the server ran the request).
  enum class cut { before_forwarding, after_forwarding, after_answer };

  /// Listens on a free loopback port and forwards to target ("127.0.0.1:PORT").
  fault_proxy(boost::asio::any_io_executor ex, const std::string& target)
      : st_(std::make_shared<state>(ex)) {
    auto colon = target.rfind(':');
    st_->target = tcp::endpoint(boost::asio::ip::make_address(target.substr(0, colon)),
                                static_cast<std::uint16_t>(std::stoul(target.substr(colon + 1))));
    st_->acceptor.open(tcp::v4());
    st_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    st_->acceptor.bind(tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
    st_->acceptor.listen();
    boost::asio::co_spawn(ex, accept_loop(st_), boost::asio::detached);
  }
  ~fault_proxy() { stop(); }

  std::string address() const {
    return "127.0.0.1:" + std::to_string(st_->acceptor.local_endpoint().port());
  }

  /// Cuts every proxied connection once the client has sent `needle` (in one read).
  void cut_when_client_sends(std::string needle, cut how) {
    st_->needle = std::move(needle);
    st_->how = how;
  }

  /// Number of connections cut so far.
  int cuts() const { return st_->cuts; }

  /// Bytes the clients have sent to the proxy so far (counted before they are forwarded:
  /// once the server has answered a request, the request is counted).
  std::uint64_t client_bytes() const { return st_->client_bytes; }

  void stop() {
    boost::system::error_code ignored;
    st_->acceptor.close(ignored);
  }

 private:
  struct state {
    explicit state(boost::asio::any_io_executor ex) : acceptor(ex) {}
    tcp::acceptor acceptor;
    tcp::endpoint target;
    std::string needle;
    cut how = cut::after_forwarding;
    int cuts = 0;
    std::uint64_t client_bytes = 0;
    bool cut_on_answer = false;  ///< after_answer: the request went out
  };
  struct link {
    link(tcp::socket c, boost::asio::any_io_executor ex) : client(std::move(c)), server(ex) {}
    tcp::socket client;
    tcp::socket server;
    void close() {
      boost::system::error_code ignored;
      client.close(ignored);
      server.close(ignored);
    }
  };

  static boost::asio::awaitable<void> accept_loop(std::shared_ptr<state> st) {
    for (;;) {
      auto [ec, sock] = co_await st->acceptor.async_accept(
          boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) co_return;
      auto ex = st->acceptor.get_executor();
      auto l = std::make_shared<link>(std::move(sock), ex);
      boost::asio::co_spawn(ex, start(st, l), boost::asio::detached);
    }
  }

  static boost::asio::awaitable<void> start(std::shared_ptr<state> st, std::shared_ptr<link> l) {
    auto [ec] = co_await l->server.async_connect(st->target,
                                                 boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) {
      l->close();
      co_return;
    }
    auto ex = st->acceptor.get_executor();
    boost::asio::co_spawn(ex, pump(st, l, true), boost::asio::detached);
    boost::asio::co_spawn(ex, pump(st, l, false), boost::asio::detached);
  }

  static boost::asio::awaitable<void> pump(std::shared_ptr<state> st, std::shared_ptr<link> l,
                                           bool from_client) {
    std::array<char, 16384> buf;
    auto& in = from_client ? l->client : l->server;
    auto& out = from_client ? l->server : l->client;
    for (;;) {
      auto [ec, n] = co_await in.async_read_some(boost::asio::buffer(buf),
                                                 boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) break;
      if (!from_client && st->cut_on_answer) {
        st->cut_on_answer = false;
        ++st->cuts;
        break;
      }
      bool cut_now = from_client && !st->needle.empty() &&
                     std::string_view(buf.data(), n).find(st->needle) != std::string_view::npos;
      if (from_client) st->client_bytes += n;
      if (cut_now && st->how == cut::before_forwarding) {
        ++st->cuts;
        break;
      }
      auto [wec, m] = co_await boost::asio::async_write(
          out, boost::asio::buffer(buf.data(), n), boost::asio::as_tuple(boost::asio::use_awaitable));
      (void)m;
      if (wec) break;
      if (cut_now && st->how == cut::after_answer) {
        st->cut_on_answer = true;
      } else if (cut_now) {
        ++st->cuts;
        break;
      }
    }
    l->close();
  }

  std::shared_ptr<state> st_;
};

}  // namespace dqlite_test
