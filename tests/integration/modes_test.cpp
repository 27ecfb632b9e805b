// The operations of connections, prepared statements, cursors and transactions against a
// real node, once asynchronously and once with the blocking forms: one test body per
// behaviour, run in both modes. A mode turns each operation into an awaitable, so the
// bodies read the same; the blocking mode runs the blocking call in place.
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

#include <signal.h>

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

struct item {
  std::int64_t id;
  std::string name;
  std::optional<double> score;
};

// What both modes offer; each call returns an awaitable of the operation's result and
// throws dqlite::error on failure.
struct async_mode {
  static asio::awaitable<dqlite::connection> connect(asio::any_io_executor ex,
                                                     const dqlite::connection_options& o) {
    co_return co_await dqlite::async_connect(ex, node().address(), o);
  }
  template <class C, class... A>
  static asio::awaitable<dqlite::exec_result> execute(C& c, A... a) {
    co_return co_await c.async_execute(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<std::vector<T>> fetch(C& c, A... a) {
    co_return co_await c.template async_fetch<T>(a...);
  }
  template <class C, class... A>
  static asio::awaitable<dqlite::rows> fetchall(C& c, A... a) {
    co_return co_await c.async_fetchall(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<std::optional<T>> fetchone(C& c, A... a) {
    co_return co_await c.template async_fetchone<T>(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<T> fetchval(C& c, A... a) {
    co_return co_await c.template async_fetchval<T>(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<std::size_t> fetch_into(C& c, std::vector<T>& out, A... a) {
    co_return co_await c.template async_fetch_into<T>(out, a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<dqlite::basic_cursor<asio::ip::tcp::socket, T>> cursor(C& c, A... a) {
    co_return co_await c.template async_cursor<T>(a...);
  }
  template <class Cur>
  static asio::awaitable<typename Cur::batch_type> next(Cur& cur) {
    co_return co_await cur.async_next();
  }
  template <class X>
  static asio::awaitable<void> close(X& x) {
    co_await x.async_close();
  }
  static asio::awaitable<dqlite::basic_statement<asio::ip::tcp::socket>> prepare(dqlite::connection& c, std::string sql) {
    co_return co_await c.async_prepare(sql);
  }
  template <class Range>
  static asio::awaitable<dqlite::exec_result> executemany(dqlite::connection& c, std::string sql,
                                                          const Range& sets) {
    co_return co_await c.async_executemany(sql, sets);
  }
  static asio::awaitable<dqlite::basic_transaction<asio::ip::tcp::socket>> begin(dqlite::connection& c) {
    co_return co_await c.async_begin();
  }
  template <class Tx>
  static asio::awaitable<void> commit(Tx& tx) {
    co_await tx.async_commit();
  }
  template <class Tx>
  static asio::awaitable<void> rollback(Tx& tx) {
    co_await tx.async_rollback();
  }
  static asio::awaitable<dqlite::node_info> leader(dqlite::connection& c) {
    co_return co_await c.async_leader();
  }
  static asio::awaitable<std::vector<dqlite::node_info>> cluster(dqlite::connection& c) {
    co_return co_await c.async_cluster();
  }
  // The error code and text of a failing execute, without an exception.
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> execute_ec(
      dqlite::connection& c, std::string sql) {
    auto [ec, r] = co_await c.async_execute(sql, asio::as_tuple(asio::use_awaitable));
    co_return std::pair{ec, c.diagnostics().message()};
  }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> fetchval_ec(
      dqlite::connection& c, std::string sql) {
    auto [ec, r] = co_await c.async_fetchval<std::int64_t>(sql, asio::as_tuple(asio::use_awaitable));
    co_return std::pair{ec, c.diagnostics().message()};
  }
};

struct blocking_mode {
  static asio::awaitable<dqlite::connection> connect(asio::any_io_executor,
                                                     const dqlite::connection_options& o) {
    co_return dqlite::connect(node().address(), o);
  }
  template <class C, class... A>
  static asio::awaitable<dqlite::exec_result> execute(C& c, A... a) {
    co_return c.execute(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<std::vector<T>> fetch(C& c, A... a) {
    co_return c.template fetch<T>(a...);
  }
  template <class C, class... A>
  static asio::awaitable<dqlite::rows> fetchall(C& c, A... a) {
    co_return c.fetchall(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<std::optional<T>> fetchone(C& c, A... a) {
    co_return c.template fetchone<T>(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<T> fetchval(C& c, A... a) {
    co_return c.template fetchval<T>(a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<std::size_t> fetch_into(C& c, std::vector<T>& out, A... a) {
    co_return c.template fetch_into<T>(out, a...);
  }
  template <class T, class C, class... A>
  static asio::awaitable<dqlite::basic_cursor<asio::ip::tcp::socket, T>> cursor(C& c, A... a) {
    co_return c.template cursor<T>(a...);
  }
  template <class Cur>
  static asio::awaitable<typename Cur::batch_type> next(Cur& cur) {
    co_return cur.next();
  }
  template <class X>
  static asio::awaitable<void> close(X& x) {
    x.close();
    co_return;
  }
  static asio::awaitable<dqlite::basic_statement<asio::ip::tcp::socket>> prepare(dqlite::connection& c, std::string sql) {
    co_return c.prepare(sql);
  }
  template <class Range>
  static asio::awaitable<dqlite::exec_result> executemany(dqlite::connection& c, std::string sql,
                                                          const Range& sets) {
    co_return c.executemany(sql, sets);
  }
  static asio::awaitable<dqlite::basic_transaction<asio::ip::tcp::socket>> begin(dqlite::connection& c) {
    co_return c.begin();
  }
  template <class Tx>
  static asio::awaitable<void> commit(Tx& tx) {
    tx.commit();
    co_return;
  }
  template <class Tx>
  static asio::awaitable<void> rollback(Tx& tx) {
    tx.rollback();
    co_return;
  }
  static asio::awaitable<dqlite::node_info> leader(dqlite::connection& c) { co_return c.leader(); }
  static asio::awaitable<std::vector<dqlite::node_info>> cluster(dqlite::connection& c) {
    co_return c.cluster();
  }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> execute_ec(
      dqlite::connection& c, std::string sql) {
    dqlite::error_code ec;
    dqlite::diagnostics diag;
    c.execute(sql, ec, diag);
    co_return std::pair{ec, diag.message()};
  }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> fetchval_ec(
      dqlite::connection& c, std::string sql) {
    dqlite::error_code ec;
    dqlite::diagnostics diag;
    auto v = c.fetchval<std::int64_t>(sql, ec, diag);
    (void)v;
    co_return std::pair{ec, diag.message()};
  }
};

std::string db_name(const char* base, bool blocking) {
  return std::string(base) + (blocking ? "_b" : "_a");
}

template <class M>
constexpr bool is_blocking = std::is_same_v<M, blocking_mode>;

// A query yielding n rows (x, 'row x') without a table.
std::string series(long n) {
  return "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < " +
         std::to_string(n) + ") SELECT x, 'row ' || x AS label FROM s";
}

struct labelled {
  std::int64_t x;
  std::string label;
};

}  // namespace

TEMPLATE_TEST_CASE("statements, typed rows and errors", "[modes]", async_mode, blocking_mode) {
  using M = TestType;
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto name = db_name("modes_rows", is_blocking<M>);
    auto conn = co_await M::connect(ex, opts(name));
    co_await M::execute(conn, std::string_view(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, score REAL)"));
    auto r = co_await M::execute(conn, std::string_view("INSERT INTO item (name, score) VALUES (?, ?)"),
                                 std::string("apple"), 1.5);
    CHECK(r.last_insert_id == 1);
    CHECK(r.rows_affected == 1);
    co_await M::execute(conn, std::string_view("INSERT INTO item (name) VALUES (?)"),
                        std::string("pear"));

    auto items = co_await M::template fetch<item>(conn, std::string_view("SELECT id, name, score FROM item ORDER BY id"));
    REQUIRE(items.size() == 2);
    CHECK(items[0].name == "apple");
    CHECK(items[0].score == 1.5);
    CHECK_FALSE(items[1].score);

    auto rows = co_await M::fetchall(conn, std::string_view("SELECT name FROM item ORDER BY id"));
    REQUIRE(rows.size() == 2);
    CHECK(rows[1]["name"].as_text() == "pear");

    auto one = co_await M::template fetchone<item>(conn, std::string_view("SELECT id, name, score FROM item WHERE id = ?"),
                                                   std::int64_t{2});
    REQUIRE(one);
    CHECK(one->name == "pear");
    auto none = co_await M::template fetchone<item>(conn, std::string_view("SELECT id, name, score FROM item WHERE id = 99"));
    CHECK_FALSE(none);

    auto n = co_await M::template fetchval<std::int64_t>(conn, std::string_view("SELECT count(*) FROM item"));
    CHECK(n == 2);

    std::vector<item> into;
    into.reserve(8);
    auto appended = co_await M::template fetch_into<item>(conn, into, std::string_view("SELECT id, name, score FROM item"));
    CHECK(appended == 2);
    CHECK(into.size() == 2);

    // fetchone of a long result: the rest is interrupted, the connection stays usable.
    auto first = co_await M::template fetchone<labelled>(conn, series(300'000));
    REQUIRE(first);
    CHECK(first->x == 1);
    auto after = co_await M::template fetchval<std::int64_t>(conn, std::string_view("SELECT 5"));
    CHECK(after == 5);

    // Errors: the code and the server's text, as an error code or an exception.
    auto [ec, text] = co_await M::execute_ec(conn, "INSERT INTO nosuch VALUES (1)");
    CHECK(ec.category() == dqlite::server_category());
    CHECK_THAT(text, Catch::Contains("no such table"));
    auto [nec, ntext] = co_await M::fetchval_ec(conn, "SELECT 1 WHERE 0");
    CHECK(nec == dqlite::errc::no_rows);
    bool thrown = false;
    try {
      co_await M::execute(conn, std::string_view("INSERT INTO nosuch VALUES (1)"));
    } catch (const dqlite::error& e) {
      thrown = true;
      CHECK_THAT(std::string(e.what()), Catch::Contains("no such table"));
    }
    CHECK(thrown);
    CHECK(conn.is_open());
  });
}

TEMPLATE_TEST_CASE("prepared statements, executemany and cursors", "[modes]", async_mode,
                   blocking_mode) {
  using M = TestType;
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto name = db_name("modes_stmt", is_blocking<M>);
    auto conn = co_await M::connect(ex, opts(name));
    co_await M::execute(conn, std::string_view("CREATE TABLE m (k INTEGER, v TEXT)"));
    std::vector<std::tuple<std::int64_t, std::string>> sets;
    for (int i = 0; i < 50; ++i) sets.emplace_back(i, "v" + std::to_string(i));
    auto total = co_await M::executemany(conn, "INSERT INTO m (k, v) VALUES (?, ?)", sets);
    CHECK(total.rows_affected == 50);

    auto stmt = co_await M::prepare(conn, "SELECT v FROM m WHERE k = ?");
    CHECK(stmt.param_count() == 1);
    auto v = co_await M::template fetchval<std::string>(stmt, std::int64_t{7});
    CHECK(v == "v7");
    auto vs = co_await M::template fetch<std::string>(stmt, std::int64_t{8});
    CHECK(vs == std::vector<std::string>{"v8"});
    co_await M::close(stmt);
    CHECK_FALSE(stmt.is_open());

    auto ins = co_await M::prepare(conn, "INSERT INTO m (k, v) VALUES (?, ?)");
    auto r = co_await M::execute(ins, std::int64_t{100}, std::string("hundred"));
    CHECK(r.rows_affected == 1);
    co_await M::close(ins);

    // A cursor in batches, to the end.
    auto cur = co_await M::template cursor<labelled>(conn, series(100'000));
    long seen = 0;
    for (;;) {
      auto batch = co_await M::next(cur);
      if (batch.empty()) break;
      for (auto& row : batch)
        if (row.x != ++seen) FAIL("row " << seen << " came as " << row.x);
    }
    CHECK(seen == 100'000);
    CHECK(cur.done());
    // Closed early: interrupted, the connection stays usable.
    auto early = co_await M::template cursor<labelled>(conn, series(1'000'000));
    auto b1 = co_await M::next(early);
    CHECK_FALSE(b1.empty());
    co_await M::close(early);
    auto n = co_await M::template fetchval<std::int64_t>(conn, std::string_view("SELECT count(*) FROM m"));
    CHECK(n == 51);
  });
}

TEMPLATE_TEST_CASE("transactions", "[modes]", async_mode, blocking_mode) {
  using M = TestType;
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto name = db_name("modes_tx", is_blocking<M>);
    auto conn = co_await M::connect(ex, opts(name));
    co_await M::execute(conn, std::string_view("CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)"));
    co_await M::execute(conn, std::string_view("INSERT INTO acct VALUES (1, 100), (2, 0)"));
    {
      auto tx = co_await M::begin(conn);
      co_await M::execute(conn, std::string_view("UPDATE acct SET bal = bal - 10 WHERE id = 1"));
      co_await M::execute(conn, std::string_view("UPDATE acct SET bal = bal + 10 WHERE id = 2"));
      co_await M::commit(tx);
      CHECK_FALSE(tx.is_active());
    }
    {
      auto tx = co_await M::begin(conn);
      co_await M::execute(conn, std::string_view("UPDATE acct SET bal = 0"));
      co_await M::rollback(tx);
    }
    auto b2 = co_await M::template fetchval<std::int64_t>(conn, std::string_view("SELECT bal FROM acct WHERE id = 2"));
    CHECK(b2 == 10);
    if constexpr (is_blocking<M>) {
      // The scoped form: commits on return, rolls back on an exception.
      auto id = dqlite::transaction(conn, [](dqlite::connection& c) {
        c.execute("UPDATE acct SET bal = bal + 1 WHERE id = 2");
        return c.execute("INSERT INTO acct (bal) VALUES (5)").last_insert_id;
      });
      CHECK(id == 3);
      bool thrown = false;
      try {
        dqlite::transaction(conn, [](dqlite::connection& c) {
          c.execute("UPDATE acct SET bal = 999");
          c.execute("INSERT INTO nosuch VALUES (1)");
        });
      } catch (const dqlite::error&) {
        thrown = true;
      }
      CHECK(thrown);
      auto b = conn.template fetchval<std::int64_t>("SELECT bal FROM acct WHERE id = 2");
      CHECK(b == 11);
    }
  });
}

TEMPLATE_TEST_CASE("administration requests", "[modes]", async_mode, blocking_mode) {
  using M = TestType;
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto name = db_name("modes_admin", is_blocking<M>);
    auto conn = co_await M::connect(ex, opts(name));
    auto leader = co_await M::leader(conn);
    CHECK(leader.id == 1);
    CHECK(leader.address == node().address());
    auto members = co_await M::cluster(conn);
    REQUIRE(members.size() == 1);
    CHECK(members[0].role == dqlite::node_role::voter);
  });
}

TEMPLATE_TEST_CASE("a node that stops answering ends a request on its timeout", "[modes]",
                   async_mode, blocking_mode) {
  using M = TestType;
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto name = db_name("modes_timeout", is_blocking<M>);  // opts views it
    auto o = opts(name);
    o.request_timeout = 300ms;
    auto conn = co_await M::connect(ex, o);
    dqlite_test::stop_process(node().pid());
    auto start = std::chrono::steady_clock::now();
    auto [ec, text] = co_await M::fetchval_ec(conn, "SELECT 1");
    auto took = dqlite_test::elapsed_ms(start);
    ::kill(node().pid(), SIGCONT);
    CHECK(ec == dqlite::errc::timeout);
    CHECK(took >= 290);
    CHECK(took < 30'000);
    CHECK_FALSE(conn.is_open());
    CHECK_THAT(text, Catch::Contains("300 ms"));
  });
}

TEST_CASE("blocking connect failures are reported clearly", "[modes]") {
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  auto c = dqlite::connect("not an address", {}, ec, diag);
  CHECK(ec == dqlite::errc::invalid_address);
  CHECK_THAT(diag.message(), Catch::Contains("not an address"));
  // A port nobody listens on.
  auto c2 = dqlite::connect("127.0.0.1:1", {}, ec, diag);
  CHECK(ec);
  CHECK_FALSE(c2.is_open());
  CHECK_THAT(diag.message(), Catch::Contains("127.0.0.1:1"));
  bool thrown = false;
  try {
    (void)dqlite::connect("127.0.0.1:1");
  } catch (const dqlite::error& e) {
    thrown = true;
  }
  CHECK(thrown);
}
