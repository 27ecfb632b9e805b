// A write whose answer is lost has an unknown outcome, on every path that sends one: the
// node is frozen (SIGSTOP) while the request is in flight, the call fails on its timeout
// or a cancellation, the node is resumed, and the write turns out to have been applied.
// The client must have said "outcome unknown" (not retryable), never a plain timeout.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fault_proxy.hpp"
#include "support/run.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include <signal.h>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

dqlite_test::node_process& node() {
  static dqlite_test::node_process n(1);
  return n;
}

dqlite::connection_options opts(std::chrono::milliseconds request_timeout) {
  dqlite::connection_options o;
  o.database = "outcome";
  o.request_timeout = request_timeout;
  return o;
}

// Resumes the node when the scope ends, whatever happens.
struct resume_node {
  ~resume_node() { ::kill(node().pid(), SIGCONT); }
};

// How many rows of t have value v (on a fresh connection, once the node runs again).
asio::awaitable<std::int64_t> rows_with(asio::any_io_executor ex, std::int64_t v) {
  auto conn = co_await dqlite::async_connect(ex, node().address(), opts(30s));
  co_return co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM t WHERE v = ?", v);
}

dqlite::pool_options pool_opts() {
  dqlite::pool_options o;
  o.database = "outcome";
  o.min_size = 1;
  o.max_size = 2;
  o.cluster.connection.request_timeout = 500ms;
  o.health_check_after = std::chrono::minutes(10);  // no SELECT 1 to a frozen node first
  return o;
}

using write_call =
    std::function<asio::awaitable<dqlite::error_code>(dqlite::connection&, std::int64_t)>;

struct write_path {
  const char* name;
  write_call call;
  bool counted = true;  // the row can be counted afterwards on every server
};

asio::awaitable<dqlite::error_code> insert_sql(dqlite::connection& c, std::int64_t v) {
  auto [ec, r] = co_await c.async_execute("INSERT INTO t (v) VALUES (?)", v,
                                          asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

// Every path that sends a request that may write. `before` runs first (e.g. to freeze the
// node once a statement is prepared); the write follows at once.
std::vector<write_path> write_paths(std::function<void()> before) {
  return {
      {"execute (SQL text)",
       [before](dqlite::connection& c, std::int64_t v) -> asio::awaitable<dqlite::error_code> {
         before();
         co_return co_await insert_sql(c, v);
       }},
      {"execute (prepared statement)",
       [before](dqlite::connection& c, std::int64_t v) -> asio::awaitable<dqlite::error_code> {
         auto stmt = co_await c.async_prepare("INSERT INTO t (v) VALUES (?)");
         before();
         auto [ec, r] = co_await stmt.async_execute(v, asio::as_tuple(asio::use_awaitable));
         co_return ec;
       }},
      // (A DELETE that deletes nothing: a RETURNING query would first probe the server's
      // version, a read-only request.)
      {"a query that writes (fetch of a DELETE)",
       [before](dqlite::connection& c, std::int64_t v) -> asio::awaitable<dqlite::error_code> {
         before();
         auto [ec, rows] = co_await c.async_fetchall(
             "DELETE FROM t WHERE v = ? AND 0", v, asio::as_tuple(asio::use_awaitable));
         co_return ec;
       },
       false},
  };
}

// The 8 bytes of v as the request carries them (a needle for the fault proxy).
std::string wire_bytes(std::int64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
  return out;
}

// Rows with value v once the node had time to apply what it received: never more than one.
asio::awaitable<std::int64_t> settled_rows_with(asio::any_io_executor ex, std::int64_t v,
                                                bool expect_one) {
  std::int64_t n = 0;
  for (int i = 0; i < 50; ++i) {
    n = co_await rows_with(ex, v);
    if (n > 0 || !expect_one) break;
    co_await asio::steady_timer(ex, 100ms).async_wait(asio::use_awaitable);
  }
  co_return n;
}

asio::awaitable<void> create_table(asio::any_io_executor ex) {
  auto setup = co_await dqlite::async_connect(ex, node().address(), opts(30s));
  co_await setup.async_execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)");
}

}  // namespace

TEST_CASE("a write whose answer does not come back in time has an unknown outcome",
          "[outcome]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    co_await create_table(ex);
    std::int64_t value = 1000;
    for (const auto& path : write_paths([] { dqlite_test::stop_process(node().pid()); })) {
      INFO(path.name);
      ++value;
      auto conn = co_await dqlite::async_connect(ex, node().address(), opts(500ms));
      dqlite::error_code ec;
      {
        resume_node resume;
        ec = co_await path.call(conn, value);
      }
      CHECK(ec == dqlite::errc::outcome_unknown);
      CHECK(dqlite::is_outcome_unknown(ec));
      CHECK_FALSE(dqlite::is_retryable(ec));
      CHECK_FALSE(conn.is_open());
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("within 500 ms"));
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("may or may not have been applied"));
      // The node received the request before it was frozen; whether it still applies it
      // once resumed, with the client gone, is exactly what the client cannot know.
      if (path.counted) {
        auto n = co_await settled_rows_with(ex, value, false);
        CHECK(n <= 1);
      }
    }
  });
}

TEST_CASE("a write whose connection breaks once it was sent has an unknown outcome",
          "[outcome]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    co_await create_table(ex);
    std::int64_t value = 5000;
    auto paths = write_paths([] {});
    paths.push_back({"executemany",
                     [](dqlite::connection& c, std::int64_t v) -> asio::awaitable<dqlite::error_code> {
                       std::vector<std::tuple<std::int64_t>> sets{{v}};
                       auto [ec, r] = co_await c.async_executemany(
                           "INSERT INTO t (v) VALUES (?)", sets, asio::as_tuple(asio::use_awaitable));
                       co_return ec;
                     }});
    for (const auto& path : paths) {
      INFO(path.name);
      ++value;
      dqlite_test::fault_proxy proxy(ex, node().address());
      auto conn = co_await dqlite::async_connect(ex, proxy.address(), opts(30s));
      // Cut once the request carrying the value has been passed on to the node, when its
      // answer starts: the node ran it, and the client never learns so. (A cut right after
      // forwarding lets the node see the close first and, at times, not run it.)
      proxy.cut_when_client_sends(wire_bytes(value), dqlite_test::fault_proxy::cut::after_answer);
      auto ec = co_await path.call(conn, value);
      CHECK(ec == dqlite::errc::outcome_unknown);
      CHECK_FALSE(dqlite::is_retryable(ec));
      CHECK_FALSE(conn.is_open());
      CHECK(proxy.cuts() == 1);
      if (path.counted) {
        auto n = co_await settled_rows_with(ex, value, true);
        CHECK(n == 1);  // the node had it whole, and ran it
      }
    }
    // Administration that changes the cluster: ADD.
    dqlite_test::fault_proxy proxy(ex, node().address());
    auto admin = co_await dqlite::async_connect(ex, proxy.address(), opts(30s));
    proxy.cut_when_client_sends("127.0.0.1:1", dqlite_test::fault_proxy::cut::after_forwarding);
    auto [aec] = co_await admin.async_add(77, "127.0.0.1:1", asio::as_tuple(asio::use_awaitable));
    CHECK(aec == dqlite::errc::outcome_unknown);
  });
}

TEST_CASE("a read whose answer does not come back in time is a plain timeout", "[outcome]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node().address(), opts(300ms));
    dqlite::error_code ec;
    {
      resume_node resume;
      dqlite_test::stop_process(node().pid());
      auto [e, v] = co_await conn.async_fetchval<std::int64_t>(
          "WITH a AS (SELECT 1 AS x) SELECT x FROM a", asio::as_tuple(asio::use_awaitable));
      ec = e;
    }
    CHECK(ec == dqlite::errc::timeout);
    CHECK(dqlite::is_retryable(ec));
  });
}

TEST_CASE("a cancelled write that was sent has an unknown outcome", "[outcome]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node().address(), opts(30s));
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)");
    dqlite::error_code ec;
    {
      resume_node resume;
      dqlite_test::stop_process(node().pid());
      asio::cancellation_signal sig;
      asio::steady_timer t(ex, 200ms);
      t.async_wait([&](auto) { sig.emit(asio::cancellation_type::terminal); });
      auto [e, r] = co_await conn.async_execute(
          "INSERT INTO t (v) VALUES (?)", std::int64_t{2001},
          asio::bind_cancellation_slot(sig.slot(), asio::as_tuple(asio::use_awaitable)));
      ec = e;
    }
    CHECK(ec == dqlite::errc::outcome_unknown);
    CHECK_FALSE(dqlite::is_retryable(ec));
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("cancelled"));
    auto n = co_await settled_rows_with(ex, 2001, false);
    CHECK(n <= 1);
  });
}

TEST_CASE("the pool never runs a write again when its outcome is unknown", "[outcome][pool]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    co_await create_table(ex);
    auto po = pool_opts();
    const std::vector<std::string> addresses{node().address()};
    auto pool = co_await dqlite::async_create_pool(ex, addresses, po);
    dqlite::error_code ec, fec;
    {
      resume_node resume;
      dqlite_test::stop_process(node().pid());
      auto t = co_await pool.async_execute("INSERT INTO t (v) VALUES (?)", std::int64_t{4001},
                                           asio::as_tuple(asio::use_awaitable));
      ec = std::get<0>(t);
    }
    CHECK(ec == dqlite::errc::outcome_unknown);
    // A fresh pooled connection while the node runs, then the node frozen again.
    auto one = co_await pool.async_fetchval<std::int64_t>("SELECT 1");
    CHECK(one == 1);
    // Until the connection is back in the pool (its reset done): the write below must be
    // sent on it, not wait for a connect to the frozen node. (A hang guard, not a timing.)
    for (int i = 0; i < 3000 && !(pool.stats().idle >= 1 && pool.stats().in_use == 0); ++i)
      co_await asio::steady_timer(ex, 10ms).async_wait(asio::use_awaitable);
    REQUIRE(pool.stats().idle >= 1);
    {
      resume_node resume;
      dqlite_test::stop_process(node().pid());
      // A query that writes, through the pool's fetch (reads are retried; this one not).
      std::string sql = "DELETE FROM t WHERE v = 4001 AND 0";
      auto t = co_await pool.async_fetch(sql, asio::as_tuple(asio::use_awaitable));
      fec = std::get<0>(t);
    }
    CHECK(fec == dqlite::errc::outcome_unknown);
    // Never applied twice.
    auto n = co_await settled_rows_with(ex, 4001, false);
    CHECK(n <= 1);
    co_await pool.async_close();
  });
}
