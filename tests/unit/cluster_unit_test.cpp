// The parts of the cluster client that need no server: roles, memory stores, backoff,
// option and address checks, closing with operations in flight.
#include <dqlite/cluster.hpp>
#include <dqlite/node_store.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fake_server.hpp"
#include "support/test_node.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using dqlite::node_info;
using dqlite::node_role;

namespace {

/// A store that is not derived from dqlite::node_store.
struct counting_store {
  std::vector<node_info> nodes;
  int gets = 0;
  std::vector<node_info> get() {
    ++gets;
    return nodes;
  }
  void set(std::vector<node_info> n) { nodes = std::move(n); }
};

struct throwing_store final : dqlite::node_store {
  std::vector<node_info> get() override { throw dqlite::node_store_error("store.yaml: broken"); }
  void set(std::vector<node_info>) override {}
};

std::string refused_address() {
  return "127.0.0.1:" + std::to_string(dqlite_test::detail::pick_free_port());
}

}  // namespace

TEST_CASE("node roles: names and numbers", "[cluster]") {
  CHECK(dqlite::to_string(node_role::voter) == "voter");
  CHECK(dqlite::to_string(node_role::standby) == "standby");
  CHECK(dqlite::to_string(node_role::spare) == "spare");
  CHECK(dqlite::parse_node_role("voter") == node_role::voter);
  CHECK(dqlite::parse_node_role("stand-by") == node_role::standby);
  CHECK(dqlite::parse_node_role("standby") == node_role::standby);
  CHECK(dqlite::parse_node_role("2") == node_role::spare);
  CHECK_FALSE(dqlite::parse_node_role("Voter"));
  CHECK_FALSE(dqlite::parse_node_role("3"));
  CHECK_FALSE(dqlite::parse_node_role(""));
  CHECK(dqlite::node_role_from_value(1) == node_role::standby);
  CHECK_FALSE(dqlite::node_role_from_value(3));
}

TEST_CASE("memory node store", "[cluster]") {
  dqlite::memory_node_store store(std::vector<std::string>{"a:1", "b:2"});
  auto nodes = store.get();
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[0] == node_info{0, "a:1", node_role::voter});
  std::vector<node_info> next{{3, "c:3", node_role::spare}};
  store.set(next);
  CHECK(store.get() == next);

  // Concurrent use is safe: every get() sees one whole set() of some thread. (Catch2's
  // assertions are not thread-safe: the threads count, this thread checks.)
  std::vector<std::thread> threads;
  std::array<int, 4> torn{};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&store, &torn, t] {
      for (int i = 0; i < 500; ++i) {
        store.set({{static_cast<std::uint64_t>(t + 1), "x:1", node_role::voter},
                   {static_cast<std::uint64_t>(t + 11), "y:2", node_role::spare}});
        auto got = store.get();
        if (got.size() != 2 || got[1].id != got[0].id + 10) ++torn[static_cast<std::size_t>(t)];
      }
    });
  for (auto& th : threads) th.join();
  CHECK(torn == std::array<int, 4>{});

  // Any type with get/set can serve as a store.
  static_assert(dqlite::node_store_like<counting_store>);
  static_assert(!dqlite::node_store_like<int>);
  auto custom = std::make_shared<counting_store>();
  auto erased = dqlite::make_node_store(custom);
  erased->set(next);
  CHECK(erased->get() == next);
  CHECK(custom->gets == 1);
}

TEST_CASE("backoff: exponential, capped, with jitter", "[cluster]") {
  dqlite::cluster_options o;  // 100 ms, factor 2, cap 1 s
  std::vector<long> got;
  for (unsigned a = 1; a <= 7; ++a) got.push_back(dqlite::detail::backoff_delay(o, a).count());
  CHECK(got == std::vector<long>{100, 200, 400, 800, 1000, 1000, 1000});
  CHECK(dqlite::detail::backoff_delay(o, 1000).count() == 1000);

  o.backoff_base = 30ms;
  o.backoff_factor = 3;
  o.backoff_cap = 500ms;
  CHECK(dqlite::detail::backoff_delay(o, 1).count() == 30);
  CHECK(dqlite::detail::backoff_delay(o, 2).count() == 90);
  CHECK(dqlite::detail::backoff_delay(o, 3).count() == 270);
  CHECK(dqlite::detail::backoff_delay(o, 4).count() == 500);
  o.backoff_base = 0ms;
  CHECK(dqlite::detail::backoff_delay(o, 3).count() == 0);

  bool varied = false;
  long first = dqlite::detail::jittered(1000ms).count();
  for (int i = 0; i < 200; ++i) {
    auto d = dqlite::detail::jittered(1000ms).count();
    CHECK(d >= 500);
    CHECK(d <= 1000);
    varied = varied || d != first;
  }
  CHECK(varied);
  CHECK(dqlite::detail::jittered(1ms) == 1ms);
  CHECK(dqlite::detail::jittered(0ms) == 0ms);
}

TEST_CASE("cluster: processes forked from one draw different retry pauses", "[cluster]") {
  // Workers forked from one process must not retry in step.
  (void)dqlite::detail::jittered(1000ms);  // the parent draws before forking
  auto draws_in_child = [] {
    std::array<long, 8> v{};
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (auto& x : v) x = dqlite::detail::jittered(1000ms).count();
      const bool ok = ::write(fds[1], v.data(), sizeof v) == static_cast<ssize_t>(sizeof v);
      ::_exit(ok ? 0 : 1);
    }
    ::close(fds[1]);
    std::size_t got = 0;
    while (got < sizeof v) {
      const ssize_t n = ::read(fds[0], reinterpret_cast<char*>(v.data()) + got, sizeof v - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(got == sizeof v);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    return v;
  };
  CHECK(draws_in_child() != draws_in_child());
}

TEST_CASE("cluster: bad addresses and options are refused", "[cluster]") {
  asio::io_context io;
  auto ex = io.get_executor();
  auto code_of = [&](auto make) {
    try {
      make();
    } catch (const dqlite::error& e) {
      return std::make_pair(e.code(), std::string(e.what()));
    }
    return std::make_pair(dqlite::error_code{}, std::string());
  };
  for (const char* bad : {"no-port", "host:", ":9001", "host:0", "host:65536", "::1:9001",
                          "[::1]9001", "[::1", "a b:1"}) {
    INFO(bad);
    auto [ec, what] = code_of([&] {
      dqlite::cluster c(ex, std::vector<std::string>{"127.0.0.1:9001", bad});
    });
    CHECK(ec == dqlite::errc::invalid_address);
    CHECK(what.find("invalid node address '" + std::string(bad) + "'") != std::string::npos);
  }
  for (const char* good : {"127.0.0.1:9001", "[::1]:9001", "node-1.example.com:9001"}) {
    INFO(good);
    auto [ec, what] = code_of([&] { dqlite::cluster c(ex, std::vector<std::string>{good}); });
    CHECK_FALSE(ec);
  }
  auto [e1, w1] = code_of([&] { dqlite::cluster c(ex, std::vector<std::string>{}); });
  CHECK(e1 == dqlite::errc::invalid_address);
  auto [e2, w2] = code_of([&] {
    dqlite::cluster c(ex, std::vector<std::string>{"127.0.0.1:1"}, {.probe_timeout = 0ms});
  });
  CHECK(e2 == dqlite::errc::invalid_argument);
  CHECK(w2.find("probe_timeout") != std::string::npos);
  auto [e3, w3] = code_of([&] {
    dqlite::cluster c(ex, std::vector<std::string>{"127.0.0.1:1"}, {.max_concurrent_probes = 0});
  });
  CHECK(e3 == dqlite::errc::invalid_argument);
}

TEST_CASE("cluster: an empty or failing store is reported at once", "[cluster]") {
  asio::io_context io;
  dqlite::error_code e1, e2;
  std::string d1, d2;
  dqlite::cluster empty(io.get_executor(), std::make_shared<dqlite::memory_node_store>());
  empty.async_connect([&](dqlite::error_code ec, dqlite::connection) {
    e1 = ec;
    d1 = empty.diagnostics().message();
  });
  dqlite::cluster broken(io.get_executor(), std::make_shared<throwing_store>());
  broken.async_leader([&](dqlite::error_code ec, dqlite::node_info) {
    e2 = ec;
    d2 = broken.diagnostics().message();
  });
  auto start = std::chrono::steady_clock::now();
  io.run_for(10s);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(e1 == dqlite::errc::no_leader);
  CHECK(d1.find("node store is empty") != std::string::npos);
  CHECK(e2 == dqlite::errc::no_leader);
  CHECK(d2.find("store.yaml: broken") != std::string::npos);
}

TEST_CASE("cluster: retries end at the time bound and name every node", "[cluster]") {
  asio::io_context io;
  std::vector<std::string> list{refused_address(), "[::1]:1", refused_address()};
  dqlite::cluster_options o;
  o.retry_timeout = 400ms;
  dqlite::cluster c(io.get_executor(), list, o);
  dqlite::error_code got;
  std::string text;
  bool called = false;
  auto start = std::chrono::steady_clock::now();
  c.async_connect([&](dqlite::error_code ec, dqlite::connection conn) {
    called = true;
    got = ec;
    text = c.diagnostics().message();
    CHECK_FALSE(conn.is_open());
  });
  io.run_for(10s);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(called);
  INFO(text);
  CHECK(got == dqlite::errc::no_leader);
  CHECK(took >= 400ms);
  CHECK(took < 3s);
  for (const auto& a : list) CHECK(text.find(a) != std::string::npos);
}

TEST_CASE("cluster: closing or destroying it completes running operations", "[cluster]") {
  asio::io_context io;
  std::vector<std::string> list{refused_address()};
  dqlite::cluster_options o;
  o.retry_timeout = 60s;  // without close() the operations would retry for a minute
  o.backoff_base = 1s;
  o.backoff_jitter = false;
  int done = 0;
  std::vector<dqlite::error_code> codes;
  {
    dqlite::cluster c(io.get_executor(), list, o);
    c.async_connect([&](dqlite::error_code ec, dqlite::connection) {
      ++done;
      codes.push_back(ec);
    });
    c.async_cluster([&](dqlite::error_code ec, std::vector<node_info>) {
      ++done;
      codes.push_back(ec);
    });
    // Let them fail once and start waiting before the next attempt.
    io.run_for(200ms);
    CHECK(done == 0);
  }  // destroyed here
  auto start = std::chrono::steady_clock::now();
  io.run_for(10s);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(done == 2);
  for (auto ec : codes) CHECK(ec == dqlite::errc::cancelled);

  // close() on a live cluster: the operation completes, later ones fail the same way.
  dqlite::cluster c2(io.get_executor(), list, o);
  dqlite::error_code first, later;
  c2.async_connect([&](dqlite::error_code ec, dqlite::connection) { first = ec; });
  io.restart();
  io.run_for(100ms);
  c2.close();
  c2.async_leader([&](dqlite::error_code ec, node_info) { later = ec; });
  io.restart();
  io.run_for(5s);
  CHECK(first == dqlite::errc::cancelled);
  CHECK(later == dqlite::errc::cancelled);
}

TEST_CASE("cluster: a probe cut short by the time bound does not hide an earlier reason",
          "[cluster][hostile]") {
  // The node answers the first probe with a FAILURE whose message is huge, then never
  // answers: the last probe is cut short when the time for retries runs out.
  std::atomic<int> accepted{0};
  const std::string huge = "disk full: " + std::string(1u << 20, 'x');
  dqlite_test::fake_server server([&](dqlite_test::fake_peer& peer) {
    if (accepted++ == 0) {
      if (peer.read_exact(8).size() < 8) return;
      if (peer.read_frame().size() < 8) return;
      dqlite::wire::buffer body;
      dqlite::wire::put_u64(body, 1);
      dqlite::wire::put_text(body, huge);
      std::vector<unsigned char> f(8, 0);
      const auto words = static_cast<std::uint32_t>(body.size() / 8);
      for (int i = 0; i < 4; ++i) f[static_cast<std::size_t>(i)] = static_cast<unsigned char>(words >> (8 * i));
      for (auto b : body) f.push_back(static_cast<unsigned char>(b));
      peer.write(f);
    }
    dqlite_test::fake_server::silent()(peer);
  });
  asio::io_context io;
  dqlite::cluster_options o;
  o.retry_timeout = 400ms;
  o.backoff_base = 50ms;
  o.backoff_jitter = false;
  dqlite::cluster c(io.get_executor(), {server.address()}, o);
  dqlite::error_code got;
  std::string text;
  bool called = false;
  c.async_connect([&](dqlite::error_code ec, dqlite::connection) {
    called = true;
    got = ec;
    text = c.diagnostics().message();
  });
  io.run_for(10s);
  REQUIRE(called);
  INFO(text);
  CHECK(got == dqlite::errc::no_leader);
  CHECK(accepted >= 2);
  CHECK_THAT(text, Catch::Contains("disk full: xxx"));
  CHECK_THAT(text, Catch::Contains("more bytes]"));
  CHECK(text.size() < 2048);
}
