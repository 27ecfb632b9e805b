// The connection against a real dqlite node.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_node.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;

namespace {

dqlite_test::node_process& shared_node() {
  static dqlite_test::node_process node(1);
  return node;
}

dqlite::connection_options opts_for(std::string_view db) {
  dqlite::connection_options o;
  o.database = db;
  o.connect_timeout = std::chrono::seconds(10);
  o.request_timeout = std::chrono::seconds(30);
  return o;
}

/// Counts ROWS frames and rows, checks the rows of "SELECT n, 'row ' || n" as they come.
struct counting_sink {
  using result_type = std::pair<std::size_t, std::size_t>;  // frames, rows
  std::size_t frames = 0, rows = 0;
  bool ok = true;
  template <class Impl>
  dqlite::error_code on_rows(dqlite::wire::rows_reader& rr, Impl& c) {
    ++frames;
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
      ++rows;
      auto& v = c.scratch;
      if (v[0].type != dqlite::value_type::integer || v[0].integer != static_cast<std::int64_t>(rows) ||
          v[1].bytes != "row " + std::to_string(rows))
        ok = false;
    }
    return {};
  }
  template <class Impl>
  dqlite::error_code finish(Impl&) {
    return ok ? dqlite::error_code{} : make_error_code(dqlite::errc::type_mismatch);
  }
  result_type take() { return {frames, rows}; }
};

}  // namespace

TEST_CASE("create, insert and select against a real node", "[connection]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("basic"));
    CHECK(conn.is_open());
    co_await conn.async_execute("DROP TABLE IF EXISTS item");
    co_await conn.async_execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, score REAL)");
    auto r1 = co_await conn.async_execute("INSERT INTO item (name, score) VALUES (?, ?)", "apple", 1.5);
    CHECK(r1.last_insert_id == 1);
    CHECK(r1.rows_affected == 1);
    auto r2 = co_await conn.async_execute("INSERT INTO item (name, score) VALUES (?, ?)", "pear", nullptr);
    CHECK(r2.last_insert_id == 2);

    auto rows = co_await conn.async_fetchall("SELECT id, name, score FROM item ORDER BY id");
    REQUIRE(rows.size() == 2);
    CHECK(rows.columns() == dqlite::column_names{"id", "name", "score"});
    CHECK(rows[0]["id"].as_int64() == 1);
    CHECK(rows[0]["name"].as_text() == "apple");
    CHECK(rows[0]["score"].as_double() == 1.5);
    CHECK(rows[1]["name"].as_text() == "pear");
    CHECK(rows[1]["score"].is_null());

    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM item") == 2);
    CHECK(co_await conn.async_fetchval<std::string>("SELECT name FROM item WHERE id = ?", 2) == "pear");
    auto none = co_await conn.async_fetchval<std::optional<std::string>>(
        "SELECT name FROM item WHERE id = ?", 99);
    CHECK(!none.has_value());
    auto upd = co_await conn.async_execute("UPDATE item SET score = score + 1 WHERE score IS NOT NULL");
    CHECK(upd.rows_affected == 1);
  });
}

TEST_CASE("a 10000-row result spans many frames and every row arrives", "[connection]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("big"));
    co_await conn.async_execute("DROP TABLE IF EXISTS big");
    co_await conn.async_execute("CREATE TABLE big (n INTEGER, label TEXT)");
    co_await conn.async_execute(
        "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 10000) "
        "INSERT INTO big SELECT x, 'row ' || x FROM seq");
    auto [frames, count] =
        co_await conn.query<counting_sink>("SELECT n, label FROM big ORDER BY n");
    CHECK(count == 10000);
    CHECK(frames > 1);
    INFO("frames: " << frames);

    auto all = co_await conn.async_fetchall("SELECT n, label FROM big ORDER BY n");
    REQUIRE(all.size() == 10000);
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (all[i][0].as_int64() != static_cast<std::int64_t>(i + 1) ||
          all[i][1].as_text() != "row " + std::to_string(i + 1)) {
        FAIL("row " << i << " is wrong");
      }
    }
  });
}

TEST_CASE("an SQL error carries the server's code and message and keeps the connection", "[connection]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("errors"));
    try {
      co_await conn.async_execute("INSERT INTO no_such_table VALUES (1)");
      FAIL("expected an error");
    } catch (const dqlite::error& e) {
      CHECK(e.code().category() == dqlite::server_category());
      CHECK(e.code().value() == 1);
      CHECK_THAT(e.get_diagnostics().message(), Catch::Contains("no such table: no_such_table"));
      CHECK_THAT(std::string(e.what()), Catch::Contains("no such table"));
    }
    CHECK(conn.is_open());
    CHECK(co_await conn.async_fetchval<int>("SELECT 41 + 1") == 42);

    // Error codes without exceptions, with as_tuple.
    auto [ec, res] = co_await conn.async_execute("SELEKT 1", asio::as_tuple(asio::use_awaitable));
    CHECK(ec.category() == dqlite::server_category());
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("syntax error"));

    // A failure after some rows were sent: the operation fails, the connection survives.
    co_await conn.async_execute("CREATE TABLE IF NOT EXISTS nums (x INTEGER)");
    co_await conn.async_execute("DELETE FROM nums");
    co_await conn.async_execute(
        "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 5000) "
        "INSERT INTO nums SELECT x FROM seq");
    auto [ec2, rows2] = co_await conn.async_fetchall(
        "SELECT CASE WHEN x < 4000 THEN x ELSE abs(-9223372036854775807 - 1) END FROM nums ORDER BY x",
        asio::as_tuple(asio::use_awaitable));
    CHECK(ec2.category() == dqlite::server_category());
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("integer overflow"));
    CHECK(conn.is_open());
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM nums") == 5000);
  });
}

TEST_CASE("parameters of every type round-trip", "[connection]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("params"));
    co_await conn.async_execute("DROP TABLE IF EXISTS p");
    co_await conn.async_execute(
        "CREATE TABLE p (i INTEGER, f REAL, t TEXT, b BLOB, n TEXT, flag BOOLEAN, at DATETIME)");
    dqlite::blob bytes{std::byte{0}, std::byte{1}, std::byte{0xff}, std::byte{0}, std::byte{7}};
    auto when = std::chrono::sys_days{std::chrono::year{2024} / 2 / 29} + std::chrono::hours{13} +
                std::chrono::minutes{14} + std::chrono::seconds{15} + std::chrono::microseconds{250};
    std::int64_t big = std::numeric_limits<std::int64_t>::min();
    co_await conn.async_execute("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?, ?)", big, -0.125,
                                std::string("héllo wörld ✓"), bytes, std::nullopt, true,
                                std::chrono::time_point_cast<std::chrono::microseconds>(when));
    co_await conn.async_execute("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?, ?)",
                                std::numeric_limits<std::int64_t>::max(), 1e300, std::string_view(""),
                                dqlite::blob{}, dqlite::null, false, dqlite::value(7));
    auto rows = co_await conn.async_fetchall("SELECT * FROM p ORDER BY rowid");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["i"].as_int64() == big);
    CHECK(rows[0]["f"].as_double() == -0.125);
    CHECK(rows[0]["t"].as_text() == "héllo wörld ✓");
    CHECK(rows[0]["b"].as_blob() == bytes);
    CHECK(rows[0]["n"].is_null());
    CHECK(rows[0]["flag"].type() == dqlite::value_type::boolean);
    CHECK(rows[0]["flag"].as_bool());
    CHECK(rows[0]["at"].type() == dqlite::value_type::iso8601);
    CHECK(rows[0]["at"].as_text() == "2024-02-29 13:14:15.00025+00:00");
    CHECK(rows[1]["i"].as_int64() == std::numeric_limits<std::int64_t>::max());
    CHECK(rows[1]["f"].as_double() == 1e300);
    CHECK(rows[1]["t"].as_text().empty());
    CHECK(rows[1]["b"].as_blob().empty());
    CHECK(rows[1]["flag"].as_bool() == false);
    CHECK(rows[1]["at"].type() == dqlite::value_type::unixtime);
    CHECK(rows[1]["at"].as_int64() == 7);

    auto back = co_await conn.async_fetchval<std::chrono::sys_time<std::chrono::microseconds>>(
        "SELECT at FROM p WHERE rowid = 1");
    CHECK(back == std::chrono::time_point_cast<std::chrono::microseconds>(when));

    // Parameters as a tuple and as a runtime range.
    auto sum = co_await conn.async_fetchval<std::int64_t>("SELECT ? + ? + ?", std::tuple(1, 2, 3));
    CHECK(sum == 6);
    std::vector<dqlite::value> vals{dqlite::value(10), dqlite::value(20)};
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT ? * ?", dqlite::params_from(vals)) == 200);

    // 300 parameters: the schema-1 tuple above 255 parameters (not supported by every server).
    // A text with a NUL cannot be sent: clear error, nothing sent, connection fine.
    auto [ec, r] = co_await conn.async_execute("SELECT ?", std::string("a\0b", 3),
                                               asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::invalid_argument);
    CHECK(conn.is_open());
    CHECK(co_await conn.async_fetchval<int>("SELECT 1") == 1);
  });
}

TEST_CASE("several statements in one execute", "[connection]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("multi"));
    auto r = co_await conn.async_execute(
        "DROP TABLE IF EXISTS m; CREATE TABLE m (x INTEGER); INSERT INTO m VALUES (1); "
        "INSERT INTO m VALUES (2), (3);");
    CHECK(r.rows_affected == 2);
    CHECK(r.last_insert_id == 3);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT sum(x) FROM m") == 6);
  });
}

TEST_CASE("every completion token works", "[connection]") {
  auto& node = shared_node();
  asio::io_context io;
  auto opts = opts_for("tokens");

  // Callbacks.
  dqlite::connection conn(opts, io.get_executor());
  bool connected = false;
  conn.async_connect(node.address(), [&](dqlite::error_code ec) {
    REQUIRE(!ec);
    connected = true;
    conn.async_fetchval<std::int64_t>("SELECT ? * 2", 21, [&](dqlite::error_code ec2, std::int64_t v) {
      CHECK(!ec2);
      CHECK(v == 42);
    });
  });
  io.run();
  CHECK(connected);

  // deferred.
  io.restart();
  auto op = conn.async_fetchval<std::int64_t>("SELECT 7", asio::deferred);
  std::int64_t got = 0;
  std::move(op)([&](dqlite::error_code ec, std::int64_t v) {
    CHECK(!ec);
    got = v;
  });
  io.run();
  CHECK(got == 7);

  // use_future, with the io_context on another thread.
  io.restart();
  auto guard = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  auto fut = conn.async_fetchval<std::string>("SELECT 'x' || ?", "y", asio::use_future);
  CHECK(fut.get() == "xy");
  auto bad = conn.async_execute("NOT SQL", asio::use_future);
  CHECK_THROWS_AS(bad.get(), boost::system::system_error);
  // with_diagnostics: the exception carries the server message.
  auto bad2 = conn.async_execute("NOT SQL", dqlite::with_diagnostics(asio::use_future));
  try {
    bad2.get();
    FAIL("expected an error");
  } catch (const dqlite::error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("syntax error"));
  }
  guard.reset();
  t.join();
}

TEST_CASE("handlers bound to a strand, of either executor model, run in it", "[connection]") {
  auto& node = shared_node();
  asio::io_context io;
  // The older Networking TS strand (its executor is not a standard executor, so its
  // operations are not type-erased) and the standard one.
  asio::io_context::strand legacy(io);
  auto modern = asio::make_strand(io);
  dqlite::connection conn(opts_for("strands"), io.get_executor());
  std::vector<std::string> log;
  bool initiating = true;
  conn.async_connect(node.address(), asio::bind_executor(legacy, [&](dqlite::error_code ec) {
    CHECK(!ec);
    CHECK(legacy.running_in_this_thread());
    log.push_back("connected");
    conn.async_fetchval<std::int64_t>(
        "SELECT ? + 1", 41, asio::bind_executor(legacy, [&](dqlite::error_code ec2, std::int64_t v) {
          CHECK(!ec2);
          CHECK(v == 42);
          CHECK(legacy.running_in_this_thread());
          log.push_back("legacy fetch");
          conn.async_fetchval<std::int64_t>(
              "SELECT 7", asio::bind_executor(modern, [&](dqlite::error_code ec3, std::int64_t w) {
                CHECK(!ec3);
                CHECK(w == 7);
                CHECK(modern.running_in_this_thread());
                log.push_back("modern fetch");
              }));
        }));
  }));
  // A failure found before any I/O completes later, in the handler's strand, never inside
  // the initiating function.
  dqlite::connection unopened(opts_for("strands"), io.get_executor());
  unopened.async_execute("SELECT 1", asio::bind_executor(legacy, [&](dqlite::error_code ec, auto&&...) {
    CHECK(ec == dqlite::errc::not_connected);
    CHECK_FALSE(initiating);
    CHECK(legacy.running_in_this_thread());
    log.push_back("unopened");
  }));
  unopened.async_execute("SELECT 1", asio::bind_executor(modern, [&](dqlite::error_code ec, auto&&...) {
    CHECK(ec == dqlite::errc::not_connected);
    CHECK_FALSE(initiating);
    CHECK(modern.running_in_this_thread());
    log.push_back("unopened, modern");
  }));
  initiating = false;
  io.run();
  CHECK(log.size() == 5);
  CHECK(std::count(log.begin(), log.end(), "modern fetch") == 1);
}

namespace {
/// Counts the allocations made through it.
template <class T>
struct counting_allocator {
  using value_type = T;
  std::size_t* count;
  explicit counting_allocator(std::size_t* c) noexcept : count(c) {}
  template <class U>
  counting_allocator(const counting_allocator<U>& o) noexcept : count(o.count) {}
  T* allocate(std::size_t n) {
    ++*count;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(const counting_allocator<U>& o) const noexcept {
    return count == o.count;
  }
};
}  // namespace

TEST_CASE("a handler's own allocator serves its operation's memory", "[connection]") {
  auto& node = shared_node();
  asio::io_context io;
  dqlite::connection conn(opts_for("allocators"), io.get_executor());
  std::size_t connect_allocs = 0, fetch_allocs = 0;
  std::int64_t got = 0;
  conn.async_connect(node.address(),
                     asio::bind_allocator(counting_allocator<void>(&connect_allocs), [&](dqlite::error_code ec) {
                       REQUIRE(!ec);
                       conn.async_fetchval<std::int64_t>(
                           "SELECT ? * 3", 5,
                           asio::bind_allocator(counting_allocator<void>(&fetch_allocs),
                                                [&](dqlite::error_code ec2, std::int64_t v) {
                                                  CHECK(!ec2);
                                                  got = v;
                                                }));
                     }));
  io.run();
  CHECK(got == 15);
  // The request's machine and the pending reads and writes of each operation.
  CHECK(connect_allocs > 0);
  CHECK(fetch_allocs > 0);
}

TEST_CASE("a second operation while one runs fails without disturbing the first", "[connection]") {
  auto& node = shared_node();
  asio::io_context io;
  dqlite::connection conn(opts_for("busy"), io.get_executor());
  std::optional<std::int64_t> first;
  dqlite::error_code second;
  bool was_busy = false;
  conn.async_connect(node.address(), [&](dqlite::error_code ec) {
    REQUIRE(!ec);
    conn.async_fetchval<std::int64_t>(
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 20000) "
        "SELECT count(*) FROM s",
        [&](dqlite::error_code e, std::int64_t v) {
          CHECK(!e);
          first = v;
        });
    was_busy = conn.operation_in_progress();
    conn.async_execute("SELECT 1", [&](dqlite::error_code e, dqlite::exec_result) { second = e; });
  });
  io.run();
  CHECK(was_busy);
  CHECK(first == 20000);
  CHECK(second == dqlite::errc::operation_in_progress);
  // Still usable afterwards.
  io.restart();
  std::int64_t v = 0;
  conn.async_fetchval<std::int64_t>("SELECT 5", [&](dqlite::error_code e, std::int64_t x) {
    CHECK(!e);
    v = x;
  });
  io.run();
  CHECK(v == 5);
}

TEST_CASE("connection refused ends in a clear error", "[connection]") {
  // A port nobody listens on: take a free port from a node that we stop.
  std::string address;
  {
    dqlite_test::node_process tmp(1);
    address = tmp.address();
  }
  auto start = std::chrono::steady_clock::now();
  try {
    run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto o = opts_for("x");
      o.connect_timeout = std::chrono::seconds(5);
      co_await dqlite::async_connect(ex, address, o);
    });
    FAIL("expected an error");
  } catch (const dqlite::error& e) {
    CHECK(e.code() == asio::error::connection_refused);
    CHECK_THAT(std::string(e.what()), Catch::Contains(address));
  }
  CHECK(dqlite_test::elapsed_ms(start) < 5000);
}

TEST_CASE("a bad address is rejected before connecting", "[connection]") {
  for (const char* bad : {"localhost", "127.0.0.1:", "::1:9001", "127.0.0.1:99999", ""}) {
    INFO(bad);
    try {
      run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        co_await dqlite::async_connect(ex, bad);
      });
      FAIL("expected an error");
    } catch (const dqlite::error& e) {
      CHECK(e.code() == dqlite::errc::invalid_address);
    }
  }
}

TEST_CASE("operations on a closed connection fail clearly", "[connection]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection never(ex);
    auto [ec0, r0] = co_await never.async_execute("SELECT 1", asio::as_tuple(dqlite::use_awaitable.token));
    CHECK(ec0 == dqlite::errc::not_connected);

    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("closed"));
    co_await conn.async_close();
    CHECK(!conn.is_open());
    auto [ec, r] = co_await conn.async_execute("SELECT 1", asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::not_connected);
  });
}
