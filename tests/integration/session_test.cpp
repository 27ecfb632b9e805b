// Transactions, prepared statements, executemany, cursors, cancellation and misuse, against
// a real dqlite node.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <catch2/catch.hpp>

#include "support/fault_proxy.hpp"
#include "support/run.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

// Operations with side effects are awaited outside CHECK(...): GCC 12 evaluates a co_await
// inside the macro's never-taken branch as well, so the operation would run twice.

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

dqlite_test::node_process& node() {
  static dqlite_test::node_process n(1);
  return n;
}

dqlite::connection_options opts(std::string_view db) {
  dqlite::connection_options o;
  o.database = db;
  o.request_timeout = 30s;
  return o;
}

asio::awaitable<dqlite::connection> connect(asio::any_io_executor ex, std::string_view db) {
  co_return co_await dqlite::async_connect(ex, node().address(), opts(db));
}

// A query yielding n rows (x, 'row x') without a table.
std::string series(long n) {
  return "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < " +
         std::to_string(n) + ") SELECT x, 'row ' || x AS label FROM s";
}

struct item {
  std::int64_t x;
  std::string label;
};

// The error code an operation completes with: op(token) starts it.
template <class Op>
asio::awaitable<dqlite::error_code> code_of(Op op) {
  auto t = co_await op(asio::as_tuple(asio::use_awaitable));
  co_return std::get<0>(t);
}

}  // namespace

TEST_CASE("transactions commit, roll back, and roll back when dropped", "[tx]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await connect(ex, "tx");
    auto other = co_await connect(ex, "tx");
    co_await conn.async_execute("CREATE TABLE t (v INTEGER)");

    auto tx = co_await conn.async_begin();
    CHECK(tx.is_active());
    co_await conn.async_execute("INSERT INTO t VALUES (1)");
    co_await tx.async_commit();
    CHECK_FALSE(tx.is_active());
    CHECK(co_await other.async_fetchval<std::int64_t>("SELECT count(*) FROM t") == 1);

    // Ended: a second commit is misuse, reported as such.
    auto [ec] = co_await tx.async_commit(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::invalid_argument);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("already ended"));

    {
      auto tx2 = co_await conn.async_begin();
      co_await conn.async_execute("INSERT INTO t VALUES (2)");
      co_await tx2.async_rollback();
    }
    CHECK(co_await other.async_fetchval<std::int64_t>("SELECT count(*) FROM t") == 1);

    // Dropped without commit: rolled back before the connection's next request, so the
    // write lock is not kept.
    {
      auto tx3 = co_await conn.async_begin();
      co_await conn.async_execute("INSERT INTO t VALUES (3)");
    }
    CHECK(dqlite::detail::connection_access::impl(conn)->rollback_pending);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM t") == 1);
    CHECK_FALSE(dqlite::detail::connection_access::impl(conn)->rollback_pending);
    co_await other.async_execute("INSERT INTO t VALUES (4)");  // not locked out
    CHECK(co_await other.async_fetchval<std::int64_t>("SELECT count(*) FROM t") == 2);
  });
}

TEST_CASE("scoped transactions commit on return and roll back on exceptions", "[tx]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await connect(ex, "scoped");
    co_await conn.async_execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)");
    co_await conn.async_execute("INSERT INTO acct VALUES (1, 100), (2, 0)");

    auto id = co_await dqlite::async_transaction(
        conn, [](dqlite::connection& c) -> asio::awaitable<std::uint64_t> {
          co_await c.async_execute("UPDATE acct SET bal = bal - 10 WHERE id = 1");
          co_await c.async_execute("UPDATE acct SET bal = bal + 10 WHERE id = 2");
          co_return (co_await c.async_execute("INSERT INTO acct (bal) VALUES (0)")).last_insert_id;
        });
    CHECK(id == 3);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT bal FROM acct WHERE id = 2") == 10);

    bool threw = false;
    try {
      co_await dqlite::async_transaction(conn, [](dqlite::connection& c) -> asio::awaitable<void> {
        co_await c.async_execute("UPDATE acct SET bal = 0");
        throw std::runtime_error("changed my mind");
      });
    } catch (const std::runtime_error& e) {
      threw = std::string(e.what()) == "changed my mind";
    }
    CHECK(threw);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT bal FROM acct WHERE id = 1") == 90);

    // A failing statement inside: the server error propagates, nothing is kept.
    bool server_error = false;
    try {
      co_await dqlite::async_transaction(conn, [](dqlite::connection& c) -> asio::awaitable<void> {
        co_await c.async_execute("UPDATE acct SET bal = 1");
        co_await c.async_execute("INSERT INTO acct (id, bal) VALUES (1, 1)");  // duplicate key
      });
    } catch (const dqlite::error& e) {
      server_error = dqlite::is_constraint(e.code());
    }
    CHECK(server_error);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT sum(bal) FROM acct") == 100);
  });
}

TEST_CASE("a commit that fails cleanly differs from one whose outcome is unknown", "[tx]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    // Clean failure: a deferred foreign key is checked at COMMIT, which fails; nothing is
    // applied and the transaction is rolled back before the next request.
    auto conn = co_await connect(ex, "outcome");
    co_await conn.async_execute("PRAGMA foreign_keys = ON");
    co_await conn.async_execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)");
    co_await conn.async_execute(
        "CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)");
    auto tx = co_await conn.async_begin();
    co_await conn.async_execute("INSERT INTO child VALUES (42)");
    auto [ec] = co_await tx.async_commit(asio::as_tuple(asio::use_awaitable));
    CHECK(dqlite::is_constraint(ec));
    CHECK_FALSE(dqlite::is_outcome_unknown(ec));
    CHECK(conn.is_open());
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM child") == 0);

    // Unknown outcome: the connection dies once COMMIT has been sent.
    for (auto how : {dqlite_test::fault_proxy::cut::before_forwarding,
                     dqlite_test::fault_proxy::cut::after_forwarding}) {
      dqlite_test::fault_proxy proxy(ex, node().address());
      auto via = co_await dqlite::async_connect(ex, proxy.address(), opts("outcome"));
      co_await via.async_execute("CREATE TABLE IF NOT EXISTS u (v INTEGER)");
      auto utx = co_await via.async_begin();
      co_await via.async_execute("INSERT INTO u VALUES (1)");
      proxy.cut_when_client_sends("COMMIT", how);
      auto [uec] = co_await utx.async_commit(asio::as_tuple(asio::use_awaitable));
      CHECK(uec == dqlite::errc::outcome_unknown);
      CHECK(dqlite::is_outcome_unknown(uec));
      CHECK_THAT(via.diagnostics().message(), Catch::Contains("may or may not have been applied"));
      CHECK_FALSE(via.is_open());
      CHECK(proxy.cuts() == 1);
    }
  });
}

TEST_CASE("prepared statements run many times and are finalized", "[stmt]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await connect(ex, "stmt");
    co_await conn.async_execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)");
    auto ins = co_await conn.async_prepare("INSERT INTO kv VALUES (?, ?)");
    CHECK(ins.param_count() == 2);
    CHECK(ins.is_open());
    for (int i = 0; i < 10; ++i) {
      auto r = co_await ins.async_execute("k" + std::to_string(i), i);
      CHECK(r.rows_affected == 1);
    }
    auto sel = co_await conn.async_prepare("SELECT k, v FROM kv WHERE v >= ? ORDER BY v");
    struct kv {
      std::string k;
      std::int64_t v;
    };
    auto rows = co_await sel.async_fetch<kv>(7);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].k == "k7");
    auto nine = co_await sel.async_fetchone<kv>(9);
    REQUIRE(nine.has_value());
    CHECK(nine->v == 9);
    auto one = co_await sel.async_fetchone<kv>(100);
    CHECK_FALSE(one.has_value());
    auto dyn = co_await sel.async_fetch(0);
    CHECK(dyn.size() == 10);

    // A server error keeps the statement usable.
    auto dup = co_await code_of([&](auto tok) { return ins.async_execute("k1", 1, tok); });
    CHECK(dqlite::is_constraint(dup));
    auto after = co_await ins.async_execute("k10", 10);
    CHECK(after.rows_affected == 1);

    co_await ins.async_close();
    CHECK_FALSE(ins.is_open());
    auto closed = co_await code_of([&](auto tok) { return ins.async_execute("k11", 11, tok); });
    CHECK(closed == dqlite::errc::not_connected);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("prepare it again"));

    // Dropped without close: finalized before the next request.
    { auto dropped = co_await conn.async_prepare("SELECT 1"); }
    CHECK(dqlite::detail::connection_access::impl(conn)->finalize_pending.size() == 1);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM kv") == 11);
    CHECK(dqlite::detail::connection_access::impl(conn)->finalize_pending.empty());

    // A statement outlives its connection's closing only as an error.
    co_await conn.async_close();
    auto gone = co_await code_of([&](auto tok) { return sel.async_fetch(0, tok); });
    CHECK(gone == dqlite::errc::not_connected);

    // Bad SQL fails to prepare with the server's message.
    auto conn2 = co_await connect(ex, "stmt");
    auto [bad, st] = co_await conn2.async_prepare("SELEKT 1", asio::as_tuple(asio::use_awaitable));
    CHECK(bad.category() == dqlite::server_category());
    CHECK_FALSE(st.is_open());
    CHECK_THAT(conn2.diagnostics().message(), Catch::Contains("syntax error"));
  });
}

TEST_CASE("executemany prepares once and reports the failing set", "[stmt]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await connect(ex, "many");
    co_await conn.async_execute("CREATE TABLE m (id INTEGER PRIMARY KEY, name TEXT)");
    std::vector<std::tuple<int, std::string>> sets;
    for (int i = 1; i <= 500; ++i) sets.emplace_back(i, "n" + std::to_string(i));
    auto r = co_await dqlite::async_transaction(conn, [&](dqlite::connection& c) {
      return c.async_executemany("INSERT INTO m VALUES (?, ?)", sets);
    });
    CHECK(r.rows_affected == 500);
    CHECK(r.last_insert_id == 500);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM m") == 500);

    // Single parameters and dynamic value lists work as sets too.
    std::vector<std::int64_t> ids{501, 502};
    auto singles = co_await conn.async_executemany("INSERT INTO m (id) VALUES (?)", ids);
    CHECK(singles.rows_affected == 2);
    std::vector<std::vector<dqlite::value>> dyn{{dqlite::value(503), dqlite::value("x")}};
    auto lists = co_await conn.async_executemany("INSERT INTO m VALUES (?, ?)", dyn);
    CHECK(lists.rows_affected == 1);

    std::vector<std::tuple<int>> clash{{600}, {601}, {5}, {602}};
    auto [ec, partial] = co_await conn.async_executemany("INSERT INTO m (id) VALUES (?)", clash,
                                                         asio::as_tuple(asio::use_awaitable));
    CHECK(dqlite::is_constraint(ec));
    CHECK(partial.rows_affected == 2);
    CHECK_THAT(conn.diagnostics().message(), Catch::StartsWith("parameter set #2: "));
    CHECK(conn.is_open());
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM m") == 505);
  });
}

TEST_CASE("cursors read large results in batches and closing early keeps the connection", "[cursor]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await connect(ex, "cursor");
    const long n = 200'000;
    auto cur = co_await conn.async_cursor<item>(series(n));
    long seen = 0;
    std::size_t batches = 0, largest = 0;
    for (;;) {
      auto batch = co_await cur.async_next();
      if (batch.empty()) break;
      ++batches;
      largest = std::max(largest, batch.size());
      for (auto& r : batch) {
        ++seen;
        if (r.x != seen) FAIL("row " << seen << " came as " << r.x);
      }
    }
    CHECK(seen == n);
    CHECK(cur.done());
    CHECK(batches > 100);
    CHECK(largest < 1000);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 7") == 7);

    // Dynamic rows, closed after the first batch: the query is interrupted and drained.
    auto dyn = co_await conn.async_cursor(series(1'000'000));
    auto first = co_await dyn.async_next();
    REQUIRE(first.size() > 0);
    CHECK(first[0]["label"].as_text() == "row 1");
    // The cursor holds the connection until it is done.
    auto busy = co_await code_of([&](auto tok) { return conn.async_fetchval<int>("SELECT 1", tok); });
    CHECK(busy == dqlite::errc::operation_in_progress);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("cursor"));
    co_await dyn.async_close();
    CHECK(dyn.done());
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 8") == 8);

    // Dropped after one batch: interrupted before the next request.
    {
      auto dropped = co_await conn.async_cursor<item>(series(1'000'000));
      auto batch = co_await dropped.async_next();
      CHECK(batch.size() > 0);
    }
    CHECK(dqlite::detail::connection_access::impl(conn)->drain_pending);
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 9") == 9);

    // A statement's cursor.
    auto st = co_await conn.async_prepare("SELECT value FROM json_each(?)");
    auto c2 = co_await st.async_cursor<std::int64_t>("[1,2,3]");
    auto b = co_await c2.async_next();
    CHECK(b == std::vector<std::int64_t>{1, 2, 3});
    auto end = co_await c2.async_next();
    CHECK(end.empty());

    // A conversion error in a batch fails the read; the rest is interrupted. (The first
    // batch is read by async_cursor itself.)
    auto [conv, bad] = co_await conn.async_cursor<std::int64_t>(
        "SELECT label FROM (" + series(100'000) + ")", asio::as_tuple(asio::use_awaitable));
    CHECK(conv == dqlite::errc::type_mismatch);
    CHECK(bad.done());
    auto [again, none] = co_await bad.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK(again == dqlite::errc::not_connected);
    CHECK(none.empty());
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 10") == 10);
    auto more = co_await conn.async_cursor<item>(series(100'000));
    auto b1 = co_await more.async_next();
    auto b2 = co_await more.async_next();
    CHECK(b1.front().x == 1);
    CHECK(b2.front().x == static_cast<std::int64_t>(b1.size()) + 1);
  });
}

TEST_CASE("cancelling a query interrupts it and keeps the connection", "[cancel]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    auto conn = co_await connect(ex, "cancel");

    // Through a cancellation slot.
    asio::cancellation_signal sig;
    asio::steady_timer t(ex, 50ms);
    t.async_wait([&](auto) { sig.emit(asio::cancellation_type::terminal); });
    auto start = std::chrono::steady_clock::now();
    // After INTERRUPT the server sends the rest of the result anyway (for longer on 1.18
    // than on 1.11): the drain ends within the request timeout (30 s, a hang guard).
    auto [ec, rows] = co_await conn.async_fetchall(
        series(2'000'000), asio::bind_cancellation_slot(sig.slot(), asio::as_tuple(asio::use_awaitable)));
    CHECK(ec == dqlite::errc::interrupted);
    CHECK(dqlite::is_cancelled(ec));
    CHECK(conn.is_open());
    std::cout << "cancelled query drained in " << dqlite_test::elapsed_ms(start) << " ms"
              << std::endl;
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 11") == 11);

    // With a timer racing it (awaitable operators cancel the loser).
    asio::steady_timer t2(ex, 50ms);
    auto winner = co_await (conn.async_fetchall(series(2'000'000)) || t2.async_wait(asio::use_awaitable));
    CHECK(winner.index() == 1);
    CHECK(conn.is_open());
    CHECK(co_await conn.async_fetchval<std::int64_t>("SELECT 12") == 12);

    // A write cannot be interrupted: cancelling it once it was sent closes the connection,
    // and its outcome is unknown (the server may have applied it).
    co_await conn.async_execute("CREATE TABLE big (x INTEGER)");
    asio::cancellation_signal sig2;
    asio::steady_timer t3(ex, 30ms);
    t3.async_wait([&](auto) { sig2.emit(asio::cancellation_type::terminal); });
    auto [wec, wr] = co_await conn.async_execute(
        "INSERT INTO big SELECT x FROM (" + series(3'000'000) + ")",
        asio::bind_cancellation_slot(sig2.slot(), asio::as_tuple(asio::use_awaitable)));
    if (!wec) {
      WARN("the insert finished within 30 ms; cancellation not exercised");
    } else {
      CHECK(wec == dqlite::errc::outcome_unknown);
      CHECK(dqlite::is_outcome_unknown(wec));
      CHECK_FALSE(dqlite::is_retryable(wec));
      CHECK_FALSE(conn.is_open());
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("cancelled"));
      CHECK_THAT(conn.diagnostics().message(), Catch::Contains("may or may not have been applied"));
    }
  });
}

TEST_CASE("a node that stops answering ends the operation with a timeout", "[timeout]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto o = opts("timeout");
    o.request_timeout = 300ms;
    auto conn = co_await dqlite::async_connect(ex, node().address(), o);
    dqlite_test::stop_process(node().pid());
    auto start = std::chrono::steady_clock::now();
    auto [ec, v] = co_await conn.async_fetchval<int>("SELECT 1", asio::as_tuple(asio::use_awaitable));
    auto took = dqlite_test::elapsed_ms(start);
    ::kill(node().pid(), SIGCONT);
    CHECK(ec == dqlite::errc::timeout);
    CHECK(took >= 290);
    CHECK(took < 3000);
    CHECK_FALSE(conn.is_open());
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("300 ms"));
  });
}

TEST_CASE("a connection used in a forked child fails there and keeps working in the parent",
          "[fork]") {
  asio::io_context io;
  std::optional<dqlite::connection> conn;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    conn.emplace(co_await dqlite::async_connect(io.get_executor(), node().address(), opts("fork")));
    co_await conn->async_execute("CREATE TABLE IF NOT EXISTS f (v INTEGER)");
  }, asio::detached);
  io.run();
  REQUIRE(conn);

  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // In the child: an operation fails at once with used_after_fork (its completion runs on
    // an io_context of the child's own), and dropping the connection leaves the parent's
    // socket alone.
    int code = 0;
    asio::io_context mine;
    bool called = false;
    conn->async_execute("INSERT INTO f VALUES (1)",
                        asio::bind_executor(mine, [&](dqlite::error_code ec, dqlite::exec_result) {
                          called = true;
                          if (ec != dqlite::errc::used_after_fork) code = 2;
                        }));
    mine.run_for(5s);
    if (!called) code = 3;
    conn.reset();
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  // The parent's connection is untouched.
  io.restart();
  std::int64_t n = -1, from_child = -1;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    co_await conn->async_execute("INSERT INTO f VALUES (2)");
    n = co_await conn->async_fetchval<std::int64_t>("SELECT count(*) FROM f WHERE v = 2");
    from_child = co_await conn->async_fetchval<std::int64_t>("SELECT count(*) FROM f WHERE v = 1");
  }, asio::detached);
  io.run_for(10s);
  CHECK(n == 1);
  CHECK(from_child == 0);  // nothing the child did reached the server
}

TEST_CASE("fetch-all caps end a result that is too large and the connection stays usable",
          "[caps]") {
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto o = opts("caps");
    o.max_result_rows = 1000;
    o.max_result_bytes = 256 * 1024;
    auto conn = co_await dqlite::async_connect(ex, node().address(), o);
    auto [ec1, rows] = co_await conn.async_fetch<item>(series(50'000), asio::as_tuple(asio::use_awaitable));
    CHECK(ec1 == dqlite::errc::result_too_large);
    CHECK_THAT(conn.diagnostics().message(), Catch::Contains("max_result_rows (1000)"));
    CHECK(conn.is_open());
    auto ok = co_await conn.async_fetch<item>(series(1000));
    CHECK(ok.size() == 1000);

    o.max_result_rows = 0;
    auto conn2 = co_await dqlite::async_connect(ex, node().address(), o);
    auto [ec2, all] = co_await conn2.async_fetchall(series(50'000), asio::as_tuple(asio::use_awaitable));
    CHECK(ec2 == dqlite::errc::result_too_large);
    CHECK_THAT(conn2.diagnostics().message(), Catch::Contains("max_result_bytes"));
    // A cursor is not capped: it holds one batch at a time.
    auto cur = co_await conn2.async_cursor<item>(series(50'000));
    std::size_t n = 0;
    for (auto b = co_await cur.async_next(); !b.empty(); b = co_await cur.async_next()) n += b.size();
    CHECK(n == 50'000);
  });
}
