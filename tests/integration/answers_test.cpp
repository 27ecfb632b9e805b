// Requests a server would answer wrongly, silently, or with a message that says nothing:
// the client refuses them before sending, or explains the server's answer. Against a real
// node of whichever libdqlite the node program links (1.11.1 from Debian by default; point
// DQLITE_TEST_NODE_BINARY at a node built on 1.18 to run them there). Where the two
// generations differ, the test asks the node how it behaves, and checks the answer that goes
// with it.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono;

namespace {

dqlite_test::node_process& shared_node() {
  static dqlite_test::node_process node(1);
  return node;
}

dqlite::connection_options opts_for(std::string_view db) {
  dqlite::connection_options o;
  o.database = db;
  o.connect_timeout = seconds(10);
  o.request_timeout = seconds(30);
  return o;
}

constexpr auto tuple_token = asio::as_tuple(asio::use_awaitable);

/// How the node answers a query of a statement that returns no rows: libdqlite 1.11.1
/// fails it (code 1, "not an error") and applies nothing; 1.18 runs it. Asked through the
/// library's own fetch.
asio::awaitable<bool> runs_statements_without_rows_as_queries(dqlite::connection& conn) {
  co_await conn.async_execute("DROP TABLE IF EXISTS probe_generation");
  auto [ec, rows] =
      co_await conn.async_fetchall("CREATE TABLE probe_generation (x)", tuple_token);
  co_await conn.async_execute("DROP TABLE IF EXISTS probe_generation");
  co_return !ec;
}

asio::awaitable<std::int64_t> count(dqlite::connection& conn, const std::string& table) {
  co_return co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM " + table);
}

}  // namespace

TEST_CASE("a query whose text holds several statements fails before anything is sent",
          "[answers][multi]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("multi"));
    co_await conn.async_execute("DROP TABLE IF EXISTS m; CREATE TABLE m (x INTEGER)");
    co_await conn.async_execute("INSERT INTO m VALUES (1)");

    auto refused = [&](dqlite::error_code ec) {
      CHECK(ec == dqlite::errc::invalid_argument);
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("2 statements"));
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("Nothing was sent"));
      CHECK(conn.is_open());
    };
    const std::vector<std::string> texts{"SELECT 1; SELECT 2",
                                         "SELECT x FROM m; INSERT INTO m VALUES (99)"};
    for (const std::string& sql : texts) {
      INFO(sql);
      auto [e1, all] = co_await conn.async_fetchall(sql, tuple_token);
      refused(e1);
      CHECK(all.empty());
      auto [e2, typed] = co_await conn.async_fetch<std::int64_t>(sql, tuple_token);
      refused(e2);
      auto [e3, one] = co_await conn.async_fetchone(sql, tuple_token);
      refused(e3);
      auto [e4, val] = co_await conn.async_fetchval<std::int64_t>(sql, tuple_token);
      refused(e4);
      std::vector<std::int64_t> into;
      auto [e5, n] = co_await conn.async_fetch_into<std::int64_t>(into, sql, tuple_token);
      refused(e5);
      auto [e6, cursor] = co_await conn.async_cursor(sql, tuple_token);
      refused(e6);
      auto [e7, stmt] = co_await conn.async_prepare(sql, tuple_token);
      refused(e7);
      CHECK_FALSE(stmt.is_open());
      std::vector<std::int64_t> sets{5, 6};
      auto [e8, many] = co_await conn.async_executemany(sql, sets, tuple_token);
      refused(e8);
    }
    // The INSERT after the SELECT never ran, on any path.
    CHECK(co_await count(conn, "m") == 1);

    // One statement with what SQLite allows after it, and ';' where it separates nothing.
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 7; -- done") == 7);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 8;;  /* ; */ ;") == 8);
    CHECK(co_await conn.async_fetchval<std::string>("SELECT 'a;b'") == "a;b");
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT \"x;\" FROM (SELECT 9 AS \"x;\")") ==
          9);
    auto stmt = co_await conn.async_prepare("SELECT x FROM m WHERE x = ?;");
    CHECK(co_await stmt.async_fetchval<std::int64_t>(1) == 1);
    co_await stmt.async_close();

    // No statement at all.
    auto [e9, none] = co_await conn.async_fetchall("  -- nothing\n", tuple_token);
    CHECK(e9 == dqlite::errc::invalid_argument);
    CHECK(conn.diagnostics().message() == "the SQL text holds no statement");
    auto [e10, empty_stmt] = co_await conn.async_prepare("", tuple_token);
    CHECK(e10 == dqlite::errc::invalid_argument);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("holds no statement"));

    // execute keeps running every statement of its text.
    auto r = co_await conn.async_execute("INSERT INTO m VALUES (2); INSERT INTO m VALUES (3)");
    CHECK(r.last_insert_id == 3);
    CHECK(co_await count(conn, "m") == 3);
  });
}

TEST_CASE("no failure reads \"not an error\": a query of a statement that returns no rows",
          "[answers][failure]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("norows"));
    co_await conn.async_execute("DROP TABLE IF EXISTS n; CREATE TABLE n (x INTEGER)");
    const bool runs = co_await runs_statements_without_rows_as_queries(conn);
    INFO("the node runs statements without rows as queries: " << runs);

    // Where the node runs the statement, the result has no columns: fine for dynamic rows,
    // a column mismatch for a value (when_runs).
    auto check_answer = [&](dqlite::error_code ec, std::int64_t expected_rows,
                            dqlite::error_code when_runs = {}) -> asio::awaitable<void> {
      if (runs) {
        CHECK(ec == when_runs);
      } else {
        CHECK(ec == dqlite::error_code(1, dqlite::server_category()));
        const auto& text = conn.diagnostics().message();
        CHECK_THAT(text, Catch::Contains("returns no rows"));
        CHECK_THAT(text, Catch::Contains("execute"));
        CHECK_THAT(text, Catch::Contains("nothing was applied"));
        CHECK_THAT(text, !Catch::Contains("not an error"));
        CHECK_THAT(std::string(dqlite::error(ec, conn.diagnostics()).what()),
                   !Catch::Contains("not an error"));
        CHECK(conn.is_open());
      }
      CHECK(co_await count(conn, "n") == expected_rows);
    };
    std::int64_t rows = 0;
    // Every query path.
    auto [e1, all] = co_await conn.async_fetchall("INSERT INTO n VALUES (1)", tuple_token);
    rows += runs;
    co_await check_answer(e1, rows);
    auto [e2, typed] = co_await conn.async_fetch("INSERT INTO n VALUES (2)", tuple_token);
    rows += runs;
    co_await check_answer(e2, rows);
    auto [e3, one] = co_await conn.async_fetchone("UPDATE n SET x = x + 1", tuple_token);
    co_await check_answer(e3, rows);
    auto [e4, val] = co_await conn.async_fetchval<std::optional<std::int64_t>>(
        "INSERT INTO n VALUES (3)", tuple_token);
    rows += runs;
    co_await check_answer(e4, rows, dqlite::errc::column_mismatch);
    auto [e5, cursor] = co_await conn.async_cursor("INSERT INTO n VALUES (4)", tuple_token);
    rows += runs;
    co_await check_answer(e5, rows);
    auto stmt = co_await conn.async_prepare("INSERT INTO n VALUES (?)");
    auto [e6, prepared] = co_await stmt.async_fetchall(5, tuple_token);
    rows += runs;
    co_await check_answer(e6, rows);
    co_await stmt.async_close();
    auto [e7, created] = co_await conn.async_fetchall("CREATE TABLE n2 (y)", tuple_token);
    co_await check_answer(e7, rows);
    auto [e8, exists] = co_await conn.async_fetchall("SELECT * FROM n2", tuple_token);
    CHECK(!e8 == runs);  // created only where the node ran it

    // A failure with a message of its own keeps it.
    auto [e9, missing] = co_await conn.async_fetchall("SELECT * FROM nowhere", tuple_token);
    CHECK(e9 == dqlite::error_code(1, dqlite::server_category()));
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("no such table: nowhere"));
  });
}

TEST_CASE("a statement with RETURNING never reaches a node through execute",
          "[answers][returning]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("returning"));
    co_await conn.async_execute(
        "DROP TABLE IF EXISTS r; CREATE TABLE r (id INTEGER PRIMARY KEY, v INTEGER)");

    auto refused = [&](dqlite::error_code ec) {
      CHECK(ec == dqlite::errc::invalid_argument);
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("RETURNING"));
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("Nothing was sent"));
      CHECK(conn.is_open());
    };
    auto [e1, r1] =
        co_await conn.async_execute("INSERT INTO r (v) VALUES (1) RETURNING id", tuple_token);
    refused(e1);
    auto [e2, r2] = co_await conn.async_execute(
        "INSERT INTO r (v) VALUES (1), (2) returning id, v", tuple_token);
    refused(e2);
    auto [e3, r3] = co_await conn.async_execute(
        "INSERT INTO r (v) VALUES (0); UPDATE r SET v = 3 RETURNING *", tuple_token);
    refused(e3);
    auto stmt = co_await conn.async_prepare("DELETE FROM r WHERE v = ? RETURNING id");
    auto [e4, r4] = co_await stmt.async_execute(1, tuple_token);
    refused(e4);
    co_await stmt.async_close();
    std::vector<std::int64_t> sets{7, 8};
    auto [e5, r5] = co_await conn.async_executemany("INSERT INTO r (v) VALUES (?) RETURNING id",
                                                    sets, tuple_token);
    refused(e5);
    CHECK(co_await count(conn, "r") == 0);  // nothing of the above was applied

    // A word inside a string or a quoted identifier is no clause.
    co_await conn.async_execute("INSERT INTO r (v) VALUES (length('RETURNING id'))");
    CHECK(co_await count(conn, "r") == 1);
    CHECK(node.running());
  });
  CHECK(node.running());
}

TEST_CASE("a statement with RETURNING through a query stores its rows, or is refused",
          "[answers][returning]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("returning_q"));
    co_await conn.async_execute(
        "DROP TABLE IF EXISTS rq; CREATE TABLE rq (id INTEGER PRIMARY KEY, v INTEGER)");
    // libdqlite 1.11.1 returns the row of INSERT ... RETURNING run as a query but does not
    // store it; 1.18 stores it. The generations are told apart as in the other tests.
    const bool runs = co_await runs_statements_without_rows_as_queries(conn);
    INFO("the node runs statements without rows as queries: " << runs);

    auto [e1, ids] = co_await conn.async_fetch<std::int64_t>(
        "INSERT INTO rq (v) VALUES (10), (20) RETURNING id", tuple_token);
    auto [e2, one] = co_await conn.async_fetchval<std::int64_t>(
        "INSERT INTO rq (v) VALUES (30) RETURNING v", tuple_token);
    if (runs) {
      REQUIRE_FALSE(e1);
      CHECK(ids == std::vector<std::int64_t>{1, 2});
      REQUIRE_FALSE(e2);
      CHECK(one == 30);
      CHECK(co_await count(conn, "rq") == 3);
    } else {
      CHECK(e1 == dqlite::errc::unsupported);
      CHECK(e2 == dqlite::errc::unsupported);
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("does not store"));
      CHECK(co_await count(conn, "rq") == 0);
    }
    CHECK(conn.is_open());
    CHECK(node.running());
  });
}

TEST_CASE("a NULL date/time or boolean reads the same on every read path", "[answers][null]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("nulls"));
    co_await conn.async_execute(
        "DROP TABLE IF EXISTS z; CREATE TABLE z (id INTEGER PRIMARY KEY, dt DATETIME, "
        "d DATE, ts TIMESTAMP, b BOOLEAN)");
    co_await conn.async_execute("INSERT INTO z (id) VALUES (1)");
    const char* sql = "SELECT dt, d, ts, b FROM z WHERE id = 1";

    // Dynamic rows.
    auto rows = co_await conn.async_fetchall(sql);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0]["dt"].is_null());
    CHECK(rows[0]["d"].is_null());
    CHECK(rows[0]["ts"].is_null());
    // A NULL BOOLEAN arrives as false from released servers (1.11.1 .. 1.18.6), as NULL from
    // servers with the upstream fix: the client cannot tell the former from false.
    const bool bool_null = rows[0]["b"].is_null();
    if (!bool_null) CHECK(rows[0]["b"] == dqlite::value(false));

    // Typed fields of every type.
    using row_t = std::tuple<std::optional<sys_seconds>, std::optional<std::string>,
                             std::optional<dqlite::value>, std::optional<bool>>;
    auto typed = co_await conn.async_fetch<row_t>(sql);
    REQUIRE(typed.size() == 1);
    CHECK_FALSE(std::get<0>(typed[0]));
    CHECK_FALSE(std::get<1>(typed[0]));
    CHECK((!std::get<2>(typed[0]) || std::get<2>(typed[0])->is_null()));
    CHECK(std::get<3>(typed[0]).has_value() == !bool_null);
    auto as_values = co_await conn.async_fetch<std::tuple<dqlite::value, dqlite::value>>(
        "SELECT dt, d FROM z WHERE id = 1");
    CHECK(std::get<0>(as_values[0]).is_null());
    CHECK(std::get<1>(as_values[0]).is_null());
    auto [e1, not_null] =
        co_await conn.async_fetch<std::string>("SELECT dt FROM z WHERE id = 1", tuple_token);
    CHECK(e1 == dqlite::errc::unexpected_null);
    auto [e2, not_null_time] =
        co_await conn.async_fetch<sys_seconds>("SELECT ts FROM z WHERE id = 1", tuple_token);
    CHECK(e2 == dqlite::errc::unexpected_null);

    // fetchval, fetchone.
    CHECK_FALSE(co_await conn.async_fetchval<std::optional<std::string>>("SELECT dt FROM z"));
    CHECK_FALSE(co_await conn.async_fetchval<std::optional<sys_days>>("SELECT d FROM z"));
    auto first = co_await conn.async_fetchone(sql);
    REQUIRE(first);
    CHECK((*first)["ts"].is_null());

    // Cursors, dynamic and typed.
    auto dyn = co_await conn.async_cursor(sql);
    auto batch = co_await dyn.async_next();
    REQUIRE(batch.size() == 1);
    CHECK(batch[0]["dt"].is_null());
    CHECK(batch[0]["b"].is_null() == bool_null);
    CHECK((co_await dyn.async_next()).empty());
    auto tc = co_await conn.async_cursor<row_t>(sql);
    auto tb = co_await tc.async_next();
    REQUIRE(tb.size() == 1);
    CHECK_FALSE(std::get<0>(tb[0]));
    CHECK_FALSE(std::get<1>(tb[0]));
    CHECK((co_await tc.async_next()).empty());

    // A prepared statement.
    auto stmt = co_await conn.async_prepare("SELECT dt FROM z WHERE id = ?");
    CHECK_FALSE(co_await stmt.async_fetchval<std::optional<std::string>>(1));
    auto prepared_rows = co_await stmt.async_fetchall(1);
    CHECK(prepared_rows[0][0].is_null());
    co_await stmt.async_close();

    // A stored time is not NULL on any path.
    co_await conn.async_execute("UPDATE z SET dt = ? WHERE id = 1", sys_seconds{seconds{86400}});
    auto set = co_await conn.async_fetchall("SELECT dt FROM z");
    CHECK_FALSE(set[0]["dt"].is_null());
    CHECK(co_await conn.async_fetchval<std::optional<std::string>>("SELECT dt FROM z") ==
          "1970-01-02 00:00:00+00:00");
  });
}

TEST_CASE("times of the first and last second of SQLite's years round-trip",
          "[answers][time]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("times"));
    co_await conn.async_execute(
        "DROP TABLE IF EXISTS tm; CREATE TABLE tm (id INTEGER PRIMARY KEY, at DATETIME)");
    const sys_seconds first = sys_days{year{1} / 1 / 1};
    const sys_seconds last =
        sys_days{year{9999} / 12 / 31} + hours{23} + minutes{59} + seconds{59};
    // ISO-8601 form: a time point parameter. UNIXTIME form: integer seconds.
    co_await conn.async_execute("INSERT INTO tm VALUES (1, ?), (2, ?)", first, last);
    co_await conn.async_execute("INSERT INTO tm VALUES (3, ?), (4, ?)",
                                dqlite::value::unixtime(first.time_since_epoch().count()),
                                dqlite::value::unixtime(last.time_since_epoch().count()));
    auto rows = co_await conn.async_fetchall("SELECT at FROM tm ORDER BY id");
    REQUIRE(rows.size() == 4);
    CHECK(rows[0][0].type() == dqlite::value_type::iso8601);
    CHECK(rows[2][0].type() == dqlite::value_type::unixtime);

    const std::vector<sys_seconds> expected{first, last, first, last};
    auto back = co_await conn.async_fetch<sys_seconds>("SELECT at FROM tm ORDER BY id");
    CHECK(back == expected);
    auto ms = co_await conn.async_fetch<sys_time<milliseconds>>("SELECT at FROM tm ORDER BY id");
    CHECK(ms == std::vector<sys_time<milliseconds>>{first, last, first, last});
    CHECK(co_await conn.async_fetchval<sys_days>("SELECT at FROM tm WHERE id = 2") ==
          sys_days{year{9999} / 12 / 31});
    CHECK(co_await conn.async_fetchval<std::optional<sys_seconds>>(
              "SELECT at FROM tm WHERE id = 1") == first);
    auto cursor = co_await conn.async_cursor<sys_seconds>("SELECT at FROM tm ORDER BY id");
    auto batch = co_await cursor.async_next();
    CHECK(batch == expected);

    // A type that cannot hold the time: out of range, naming the type.
    const std::vector<int> ids{1, 4};
    for (int id : ids) {
      auto [ec, v] = co_await conn.async_fetchval<system_clock::time_point>(
          "SELECT at FROM tm WHERE id = ?", id, tuple_token);
      CHECK(ec == dqlite::errc::out_of_range);
      CHECK_THAT(conn.diagnostics().message(),
                 Catch::Contains("out of range for std::chrono::sys_time<nanoseconds>"));
    }
    // A time outside the years 0000..9999 is refused before sending.
    auto [ec, r] = co_await conn.async_execute(
        "INSERT INTO tm VALUES (5, ?)", sys_seconds{sys_days{year{10000} / 1 / 1}}, tuple_token);
    CHECK(ec == dqlite::errc::out_of_range);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("0000 to 9999"));
    CHECK(co_await count(conn, "tm") == 4);
  });
}

TEST_CASE("more than 255 parameters: the values, or a clear error and nothing applied",
          "[answers][params]") {
  auto& node = shared_node();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), opts_for("wide"));
    co_await conn.async_execute("DROP TABLE IF EXISTS w; CREATE TABLE w (v INTEGER)");
    const bool runs = co_await runs_statements_without_rows_as_queries(conn);
    INFO("the node runs statements without rows as queries (1.18): " << runs);

    const std::vector<std::size_t> counts{256, 257, 600};
    for (std::size_t n : counts) {
      INFO(n << " parameters");
      co_await conn.async_execute("DELETE FROM w");
      std::vector<dqlite::value> values;
      std::string sql = "INSERT INTO w (v) VALUES (?)";
      values.emplace_back(std::int64_t{1});
      for (std::size_t i = 2; i <= n; ++i) {
        sql += ", (?)";
        values.emplace_back(static_cast<std::int64_t>(i));
      }
      auto [ec, r] = co_await conn.async_execute(sql, dqlite::params_from(values), tuple_token);
      std::string select = "SELECT ?";
      for (std::size_t i = 2; i <= n; ++i) select += " + ?";
      auto [qec, sum] = co_await conn.async_fetchval<std::int64_t>(
          select, dqlite::params_from(values), tuple_token);
      const auto expected_sum = static_cast<std::int64_t>(n * (n + 1) / 2);
      if (runs) {
        REQUIRE_FALSE(ec);
        CHECK(r.rows_affected == n);
        auto stored = co_await conn.async_fetch<std::int64_t>("SELECT v FROM w ORDER BY rowid");
        REQUIRE(stored.size() == n);
        for (std::size_t i = 0; i < n; ++i) CHECK(stored[i] == static_cast<std::int64_t>(i + 1));
        REQUIRE_FALSE(qec);
        CHECK(sum == expected_sum);
      } else {
        CHECK(ec == dqlite::errc::too_many_parameters);
        CHECK(qec == dqlite::errc::too_many_parameters);
        CHECK_THAT(conn.diagnostics().message(), Catch::Contains("at most 255"));
        CHECK(co_await count(conn, "w") == 0);
      }
      CHECK(conn.is_open());
    }
    // 255 parameters use the encoding every server reads.
    std::vector<dqlite::value> values(255, dqlite::value(std::int64_t{2}));
    std::string select = "SELECT ?";
    for (int i = 1; i < 255; ++i) select += " + ?";
    CHECK(co_await conn.async_fetchval<std::int64_t>(select, dqlite::params_from(values)) == 510);

    // Through a prepared statement and executemany too.
    std::string insert = "INSERT INTO w (v) VALUES (?)";
    for (int i = 1; i < 300; ++i) insert += ", (?)";
    std::vector<dqlite::value> set(300, dqlite::value(std::int64_t{3}));
    co_await conn.async_execute("DELETE FROM w");
    auto stmt = co_await conn.async_prepare(insert);
    CHECK(stmt.param_count() == 300);
    auto [pec, pr] = co_await stmt.async_execute(dqlite::params_from(set), tuple_token);
    std::vector<std::vector<dqlite::value>> sets{set};
    std::vector<dqlite::param_range<std::vector<dqlite::value>>> ranges{dqlite::params_from(sets[0])};
    auto [mec, mr] = co_await conn.async_executemany(insert, ranges, tuple_token);
    if (runs) {
      CHECK_FALSE(pec);
      CHECK_FALSE(mec);
      CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT sum(v) FROM w") == 1800);
    } else {
      CHECK(pec == dqlite::errc::too_many_parameters);
      CHECK(mec == dqlite::errc::too_many_parameters);
      CHECK(co_await count(conn, "w") == 0);
    }
    co_await stmt.async_close();
    CHECK(node.running());
  });
}
