// The logging and tracing hooks against real nodes: the exact events of a discovery
// through a dead node and a follower, of a leader killed under a pool, and of queries cut
// short by a timeout or a cancellation.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_cluster.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

/// Records what the hooks receive.
struct recorder {
  struct entry {
    dqlite::log_level level;
    std::string event;
    std::string message;
  };
  std::vector<entry> logs;
  struct trace {
    dqlite::request_trace::phase at;
    std::string request;
    std::string sql;
    std::uint64_t sequence;
    std::chrono::nanoseconds duration;
    dqlite::error_code error;
  };
  std::vector<trace> traces;

  void operator()(dqlite::log_level l, std::string_view e, std::string_view m) noexcept {
    logs.push_back({l, std::string(e), std::string(m)});
  }
  void operator()(const dqlite::request_trace& t) noexcept {
    traces.push_back(
        {t.at, std::string(t.request), std::string(t.sql), t.sequence, t.duration, t.error});
  }
  std::vector<std::string> events() const {
    std::vector<std::string> out;
    for (auto& l : logs) out.push_back(l.event);
    return out;
  }
  const entry& find(std::string_view event) const {
    for (auto& l : logs)
      if (l.event == event) return l;
    throw std::runtime_error("no event " + std::string(event));
  }
};

dqlite::cluster_options quick_options(std::string_view db) {
  dqlite::cluster_options o;
  o.connection.database = db;
  o.connection.connect_timeout = 2s;
  o.connection.request_timeout = 10s;
  o.probe_timeout = 1s;
  o.retry_timeout = 15s;
  o.max_concurrent_probes = 1;  // one node after the other: the events come in order
  return o;
}

/// Waits until the node at `address` names `leader` as the leader.
void wait_until_named(const std::string& address, const std::string& leader) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    auto a = run([&](asio::any_io_executor) { return dqlite_test::detail::ask_leader(address); });
    if (a && a->address == leader) return;
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error(address + " does not name " + leader + " as the leader");
    std::this_thread::sleep_for(20ms);
  }
}

/// The events of asking `first` for the leader when `leader` leads (first may be it).
void expect_probe(std::vector<std::string>& out, const std::string& first,
                  const std::string& leader) {
  out.push_back("probe");
  out.push_back("probe_answer");
  if (first != leader) {
    out.push_back("redirect");
    out.push_back("probe");
    out.push_back("probe_answer");
  }
}

const char* slow_query() {
  return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
         "SELECT count(*) FROM c";
}

}  // namespace

TEST_CASE("observe: discovery through a dead node and a follower to the leader",
          "[observe][cluster]") {
  dqlite_test::cluster_process cl(3);
  const int leader = cl.wait_for_leader();
  const auto addrs = cl.addresses();
  const std::string leader_addr = addrs[static_cast<std::size_t>(leader)];
  const std::string follower = addrs[static_cast<std::size_t>((leader + 1) % 3)];
  wait_until_named(follower, leader_addr);
  const std::string dead = "127.0.0.1:" + std::to_string(dqlite_test::detail::pick_free_port());

  recorder r;
  auto o = quick_options("observe");
  o.log = r;
  o.log_threshold = dqlite::log_level::debug;
  o.trace = r;
  const std::vector<std::string> nodes{dead, follower};
  auto st = run([&](asio::any_io_executor ex) -> asio::awaitable<dqlite::cluster_stats> {
    dqlite::cluster c(ex, nodes, o);
    auto conn = co_await c.async_connect();
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)");
    co_return c.stats();
  });

  CHECK(r.events() == std::vector<std::string>{"discovery_start", "probe", "probe_failed", "probe",
                                               "probe_answer", "redirect", "probe", "probe_answer",
                                               "leader_found"});
  CHECK(r.logs[0].message ==
        "finding the leader: no leader known yet, then 2 node(s) of the store");
  CHECK(r.logs[1].message == "asking " + dead + " for the leader");
  CHECK_THAT(r.logs[2].message, Catch::StartsWith(dead + ": cannot connect: "));
  CHECK(r.logs[2].level == dqlite::log_level::warning);
  CHECK(r.logs[3].message == "asking " + follower + " for the leader");
  CHECK_THAT(r.logs[4].message, Catch::StartsWith(follower + " names " + leader_addr + " (id "));
  CHECK(r.logs[5].message ==
        "following " + follower + "'s answer: asking " + leader_addr + " whether it leads");
  CHECK(r.logs[6].message == "asking " + leader_addr + " for the leader");
  CHECK_THAT(r.logs[7].message, Catch::StartsWith(leader_addr + " names " + leader_addr));
  CHECK_THAT(r.logs[8].message, Catch::StartsWith(leader_addr + " (id "));

  // The probes are not traced; the leader's connection is, from its OPEN on.
  REQUIRE(r.traces.size() == 4);
  CHECK(r.traces[0].request == "OPEN");
  CHECK(r.traces[2].request == "EXEC_SQL");
  CHECK(r.traces[3].sql == "CREATE TABLE IF NOT EXISTS t (x INTEGER)");
  CHECK(!r.traces[3].error);

  CHECK(st.discoveries == 1);
  CHECK(st.probes == 3);
  CHECK(st.probe_failures == 1);
  CHECK(st.redirects == 1);
  CHECK(st.redirects_refused == 0);
  CHECK(st.leader_changes == 0);
  CHECK(st.retries == 0);
  CHECK(st.connections == 1);
  CHECK(st.last_leader == leader_addr);
  CHECK(st.last_leader_id == static_cast<std::uint64_t>(leader + 1));
}

TEST_CASE("observe: a leader killed under a pool", "[observe][pool]") {
  dqlite_test::cluster_process cl(3);
  const int old_leader = cl.wait_for_leader();
  const auto addrs = cl.addresses();
  recorder r;
  dqlite::pool_options po;
  po.database = "observe";
  po.min_size = 1;
  po.max_size = 2;
  po.health_check_after = std::chrono::hours(1);  // the statement itself meets the dead node
  po.cluster = quick_options("observe");
  po.log = r;
  po.log_threshold = dqlite::log_level::debug;

  std::vector<std::string> expected;
  std::vector<std::string> got;
  dqlite::pool_stats ps;
  dqlite::cluster_stats cs;
  run(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto pool = co_await dqlite::async_create_pool(ex, addrs, po);
        co_await pool.async_execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)");
        co_await pool.async_execute("INSERT INTO t (x) VALUES (1)");
        co_await dqlite_test::detail::sleep_for(50ms);  // the connection is back in the pool
        REQUIRE(!r.logs.empty());
        CHECK(r.logs.front().event == "discovery_start");
        CHECK(r.logs.back().event == "pool_connection_opened");
        r.logs.clear();

        cl.node(static_cast<std::size_t>(old_leader)).kill();
        const int leader = cl.wait_for_leader();
        const std::string leader_addr = addrs[static_cast<std::size_t>(leader)];
        for (std::size_t i = 0; i < addrs.size(); ++i)
          if (static_cast<int>(i) != old_leader) wait_until_named(addrs[i], leader_addr);

        auto n = co_await pool.async_fetchval<std::int64_t>("SELECT count(*) FROM t");
        CHECK(n == 1);
        co_await dqlite_test::detail::sleep_for(50ms);

        expected = {"connection_broken", "pool_leader_change",
                    "read_retry",        "pool_connection_discarded",
                    "discovery_start",   "probe",
                    "probe_failed"};
        // Then the other nodes in the store's order, the first one that answers.
        std::string first;
        for (std::size_t i = 0; i < addrs.size() && first.empty(); ++i)
          if (static_cast<int>(i) != old_leader) first = addrs[i];
        expect_probe(expected, first, leader_addr);
        expected.insert(expected.end(),
                        {"leader_found", "leader_changed", "pool_connection_opened"});
        got = r.events();
        ps = pool.stats();
        cs = pool.cluster().stats();
        co_await pool.async_close();
      },
      60s);

  CHECK(got == expected);
  const std::string old_addr = addrs[static_cast<std::size_t>(old_leader)];
  CHECK_THAT(r.find("connection_broken").message, Catch::Contains(old_addr));
  CHECK(r.find("pool_connection_discarded").message ==
        "a connection was discarded: it was broken or closed");
  CHECK_THAT(r.find("probe_failed").message, Catch::StartsWith(old_addr + ": cannot connect: "));
  CHECK_THAT(r.find("leader_changed").message,
             Catch::StartsWith("the leader changed from " + old_addr + " to "));
  CHECK(ps.leader_changes == 1);
  CHECK(ps.read_retries == 1);
  CHECK(ps.opened == 2);
  CHECK(ps.discarded == 1);
  CHECK(ps.connect_failures == 0);
  CHECK(cs.leader_changes == 1);
  CHECK(cs.discoveries == 2);
  CHECK(cs.last_leader != old_addr);
}

TEST_CASE("observe: a query cut short by request_timeout", "[observe]") {
  dqlite_test::node_process node;
  recorder r;
  dqlite::connection_options o;
  o.database = "observe";
  o.request_timeout = 200ms;
  o.log = r;
  o.log_threshold = dqlite::log_level::debug;
  o.trace = r;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection conn(o, ex);
    co_await conn.async_connect(node.address());
    auto [ec, n] = co_await conn.async_fetchval<std::int64_t>(slow_query(),
                                                              asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::timeout);
  });
  CHECK(r.events() == std::vector<std::string>{"connect", "connected", "timeout"});
  CHECK(r.logs[2].message == "no response from " + node.address() + " within 200 ms");
  REQUIRE(r.traces.size() == 2);
  CHECK(r.traces[0].request == "QUERY_SQL");
  CHECK(r.traces[0].sql == slow_query());
  CHECK(r.traces[1].sequence == r.traces[0].sequence);
  CHECK(r.traces[1].error == dqlite::errc::timeout);
  CHECK(r.traces[1].duration >= 200ms);
}

TEST_CASE("observe: a query cancelled by a deadline is interrupted", "[observe]") {
  dqlite_test::node_process node;
  recorder r;
  dqlite::connection_options o;
  o.database = "observe";
  o.log = r;
  o.log_threshold = dqlite::log_level::debug;
  o.trace = r;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection conn(o, ex);
    co_await conn.async_connect(node.address());
    asio::cancellation_signal cancel;
    std::optional<dqlite::error_code> got;
    conn.async_fetchval<std::int64_t>(
        slow_query(), asio::bind_cancellation_slot(
                          cancel.slot(), [&](dqlite::error_code ec, std::int64_t) { got = ec; }));
    co_await dqlite_test::detail::sleep_for(100ms);
    cancel.emit(asio::cancellation_type::terminal);
    while (!got) co_await dqlite_test::detail::sleep_for(10ms);
    const bool interrupted = *got == dqlite::errc::interrupted;
    CHECK(interrupted);
    CHECK(conn.is_open());
  });
  CHECK(r.events() == std::vector<std::string>{"connect", "connected", "interrupted"});
  CHECK(r.logs[2].message == "a query on " + node.address() +
                                 " was interrupted (cancelled); the connection remains usable");
  REQUIRE(r.traces.size() == 2);
  CHECK(r.traces[1].error == dqlite::errc::interrupted);
}
