// Objects that were moved from: every operation fails with errc::not_connected before any
// I/O (no server is needed), in its asynchronous and blocking forms; nothing crashes.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
template <class T>
using cursor_t = dqlite::basic_cursor<tcp::socket, T>;
using statement_t = dqlite::basic_statement<tcp::socket>;
using transaction_t = dqlite::basic_transaction<tcp::socket>;

namespace {

struct item {
  std::int64_t id;
  std::string name;
};

bool says_moved_from(const dqlite::diagnostics& d) {
  return d.message().find("moved from") != std::string::npos;
}

// Runs io until it has nothing left to do, and checks that every handler ran on this thread.
struct handler_log {
  std::thread::id thread = std::this_thread::get_id();
  int ran = 0;
  int wrong_thread = 0;

  void check(const dqlite::error_code& ec) {
    ++ran;
    if (std::this_thread::get_id() != thread) ++wrong_thread;
    CHECK(ec == dqlite::errc::not_connected);
  }
};

}  // namespace

TEST_CASE("a moved-from connection reports its state without crashing", "[moved_from]") {
  asio::io_context io;
  dqlite::connection a(io.get_executor());
  dqlite::connection b = std::move(a);

  CHECK_FALSE(a.is_open());
  CHECK_FALSE(a.operation_in_progress());
  CHECK_FALSE(a.in_transaction());
  CHECK_FALSE(a.has_database());
  CHECK(says_moved_from(a.diagnostics()));
  CHECK(a.broken_by() == dqlite::errc::not_connected);
  CHECK(a.options().database == dqlite::connection_options{}.database);
  CHECK(a.get_executor() == io.get_executor());
  a.close();  // nothing to close

  // The connection it was moved to is a plain, unopened connection.
  CHECK_FALSE(b.is_open());
  CHECK(b.get_executor() == io.get_executor());
  CHECK_FALSE(says_moved_from(b.diagnostics()));

  // Moved from twice: still an executor, still failing cleanly.
  dqlite::connection c = std::move(a);
  CHECK_FALSE(c.is_open());
  CHECK(c.get_executor() == io.get_executor());
  CHECK(says_moved_from(c.diagnostics()));

  // Assigning a connection to a moved-from one makes it usable again.
  a = std::move(b);
  CHECK_FALSE(says_moved_from(a.diagnostics()));
  CHECK(says_moved_from(b.diagnostics()));
  b = std::move(c);  // moved-from into moved-from
  CHECK(says_moved_from(b.diagnostics()));
}

TEST_CASE("asynchronous operations on a moved-from connection fail on its executor",
          "[moved_from]") {
  asio::io_context io;
  dqlite::connection a(io.get_executor());
  auto keep = std::move(a);
  handler_log log;
  auto on = [&log](auto&&...) {
    return [&log](dqlite::error_code ec, auto&&...) { log.check(ec); };
  };

  a.async_connect("127.0.0.1:1", on());
  a.async_connect(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 1), on());
  a.async_handshake(on());
  a.async_execute("CREATE TABLE t (x)", on());
  a.async_execute("INSERT INTO t VALUES (?)", 1, on());
  a.async_fetchall("SELECT 1", on());
  a.async_fetch<item>("SELECT 1, 'a'", on());
  a.async_fetch("SELECT 1", on());
  std::vector<item> into;
  a.async_fetch_into<item>(into, "SELECT 1, 'a'", on());
  a.async_fetchone<item>("SELECT 1, 'a'", on());
  a.async_fetchval<std::int64_t>("SELECT ?", std::int64_t{3}, on());
  std::optional<cursor_t<item>> cursor_out;
  a.async_cursor<item>("SELECT 1, 'a'", [&](dqlite::error_code ec, cursor_t<item> c) {
    log.check(ec);
    cursor_out.emplace(std::move(c));
  });
  std::optional<statement_t> statement_out;
  a.async_prepare("SELECT 1", [&](dqlite::error_code ec, statement_t s) {
    log.check(ec);
    statement_out.emplace(std::move(s));
  });
  std::vector<std::tuple<int>> sets{{1}, {2}};
  a.async_executemany("INSERT INTO t VALUES (?)", sets, on());
  std::optional<transaction_t> transaction_out;
  a.async_begin([&](dqlite::error_code ec, transaction_t t) {
    log.check(ec);
    transaction_out.emplace(std::move(t));
  });
  a.async_reset(on());
  a.async_leader(on());
  a.async_cluster(on());
  a.async_add(2, "127.0.0.1:2", on());
  a.async_assign(2, dqlite::node_role::voter, on());
  a.async_remove(2, on());
  a.async_transfer(2, on());
  a.async_describe(on());
  a.async_weight(1, on());
  a.async_dump("db", on());
  a.async_open_database("db", on());
  a.async_close(on());
  const int started = 27;

  CHECK(log.ran == 0);  // never completed inside the initiating function
  io.run();
  CHECK(log.ran == started);
  CHECK(log.wrong_thread == 0);
  CHECK(into.empty());

  // What the failed operations handed out belongs to no connection and fails as well.
  REQUIRE(cursor_out);
  REQUIRE(statement_out);
  REQUIRE(transaction_out);
  CHECK(cursor_out->done());
  CHECK_FALSE(statement_out->is_open());
  CHECK_FALSE(transaction_out->is_active());
  // Their handlers have no executor of the connection to default to: bind them to io.
  auto on_io = [&] { return asio::bind_executor(io, on()); };
  io.restart();
  cursor_out->async_next(on_io());
  cursor_out->async_close(on_io());
  statement_out->async_execute(on_io());
  statement_out->async_fetch<item>(on_io());
  statement_out->async_cursor<item>(on_io());
  statement_out->async_close(on_io());
  transaction_out->async_commit(on_io());
  transaction_out->async_rollback(on_io());
  statement_out->async_fetchval<std::int64_t>(
      asio::bind_executor(io, [&](dqlite::error_code ec, std::int64_t v) {
        log.check(ec);
        CHECK(v == 0);
      }));
  CHECK(log.ran == started);
  io.run();
  CHECK(log.ran == started + 9);
  CHECK(log.wrong_thread == 0);
}

TEST_CASE("a moved-from connection's failures throw dqlite::error with the default token",
          "[moved_from]") {
  asio::io_context io;
  dqlite::connection a(io.get_executor());
  auto keep = std::move(a);
  int caught = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await a.async_fetch<item>("SELECT 1, 'a'");
        } catch (const dqlite::error& e) {
          CHECK(e.code() == dqlite::errc::not_connected);
          CHECK(says_moved_from(e.get_diagnostics()));
          ++caught;
        }
        try {
          co_await a.async_prepare("SELECT 1");
        } catch (const dqlite::error& e) {
          CHECK(e.code() == dqlite::errc::not_connected);
          ++caught;
        }
        try {
          co_await a.async_connect("127.0.0.1:1");
        } catch (const dqlite::error& e) {
          CHECK(e.code() == dqlite::errc::not_connected);
          ++caught;
        }
        // A deferred operation keeps the executor by value.
        auto op = a.async_fetchval<std::int64_t>("SELECT 1", asio::deferred);
        auto [ec, v] = co_await std::move(op)(asio::as_tuple(asio::use_awaitable));
        CHECK(ec == dqlite::errc::not_connected);
        ++caught;
      },
      asio::detached);
  io.run();
  CHECK(caught == 4);
}

TEST_CASE("blocking operations on a moved-from connection fail", "[moved_from]") {
  dqlite::connection a(dqlite::own_io_context);
  auto keep = std::move(a);

  auto check_throws = [](auto&& f) {
    try {
      f();
      FAIL("no exception");
    } catch (const dqlite::error& e) {
      CHECK(e.code() == dqlite::errc::not_connected);
      CHECK(says_moved_from(e.get_diagnostics()));
    }
  };
  check_throws([&] { a.connect("127.0.0.1:1"); });
  check_throws([&] { a.execute("CREATE TABLE t (x)"); });
  check_throws([&] { a.execute("INSERT INTO t VALUES (?)", 1); });
  check_throws([&] { a.fetchall("SELECT 1"); });
  check_throws([&] { a.fetch<item>("SELECT 1, 'a'"); });
  check_throws([&] { a.fetchone<item>("SELECT 1, 'a'"); });
  check_throws([&] { a.fetchval<std::int64_t>("SELECT 1"); });
  check_throws([&] { a.cursor<item>("SELECT 1, 'a'"); });
  check_throws([&] { a.prepare("SELECT 1"); });
  check_throws([&] { a.executemany("INSERT INTO t VALUES (?)", std::vector<int>{1, 2}); });
  check_throws([&] { a.begin(); });
  check_throws([&] { a.reset(); });
  check_throws([&] { a.leader(); });
  check_throws([&] { a.cluster(); });
  check_throws([&] { a.add(2, "127.0.0.1:2"); });
  check_throws([&] { a.describe(); });
  check_throws([&] { a.dump("db"); });
  check_throws([&] { a.open_database("db"); });

  // With error_code& and diagnostics&: no exception, empty results.
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  std::vector<item> into{{1, "kept"}};
  CHECK(a.fetch_into<item>(into, "SELECT 1, 'a'", ec, diag) == 0);
  CHECK(ec == dqlite::errc::not_connected);
  CHECK(says_moved_from(diag));
  CHECK(into.size() == 1);
  ec = {};
  auto s = a.prepare("SELECT 1", ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  CHECK_FALSE(s.is_open());
  ec = {};
  auto t = a.begin(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  CHECK_FALSE(t.is_active());
  ec = {};
  auto c = a.cursor<item>("SELECT 1", ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  CHECK(c.done());

  // The detached objects fail too.
  ec = {};
  s.execute(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  ec = {};
  c.next(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  ec = {};
  t.commit(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  ec = {};
  t.rollback(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  c.close();
  s.close();
}

TEST_CASE("moved-from statements, cursors and transactions fail cleanly", "[moved_from]") {
  // Built from the library's constructors over a closed connection: no server needed.
  asio::io_context io;
  dqlite::connection conn(io.get_executor());
  const auto& impl = dqlite::detail::connection_access::impl(conn);
  dqlite::wire::stmt_response r{};
  r.id = 7;

  statement_t s1(impl, r, true);
  statement_t s2 = std::move(s1);
  CHECK_FALSE(s1.is_open());
  cursor_t<item> c1(impl, std::make_shared<dqlite::detail::cursor_shared>(), 1, {});
  cursor_t<item> c2 = std::move(c1);
  CHECK(c1.done());
  transaction_t t1(impl, 1);
  transaction_t t2 = std::move(t1);
  CHECK_FALSE(t1.is_active());

  handler_log log;
  int ran = 0;
  s1.async_execute([&](dqlite::error_code ec, dqlite::exec_result) {
    ++ran;
    CHECK(ec == dqlite::errc::not_connected);
  });
  c1.async_next([&](dqlite::error_code ec, std::vector<item>) {
    ++ran;
    CHECK(ec == dqlite::errc::not_connected);
  });
  t1.async_commit([&](dqlite::error_code ec) {
    ++ran;
    CHECK(ec);
  });
  io.run();
  CHECK(ran == 3);

  dqlite::error_code ec;
  dqlite::diagnostics diag;
  s1.fetchall(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  c1.next(ec, diag);
  CHECK(ec == dqlite::errc::not_connected);
  t1.rollback(ec, diag);
  CHECK(ec);

  // Move-assigning into moved-from objects.
  s1 = std::move(s2);
  c1 = std::move(c2);
  t1 = std::move(t2);
}

TEST_CASE("a failure found before any I/O completes on the handler's own executor",
          "[moved_from]") {
  // Handlers whose executor is an any_io_executor of their own (a coroutine's, one bound to
  // them): an operation that cannot start (a moved-from connection, an unopened one) is
  // completed from a post to that executor, never inside the initiating function, and
  // never through the connection's executor.
  asio::io_context io;
  asio::io_context other;
  const asio::any_io_executor to_other = other.get_executor();
  dqlite::connection moved(io.get_executor());
  auto keep = std::move(moved);
  dqlite::connection unopened(io.get_executor());
  int ran = 0;
  auto fetched = [&](dqlite::error_code ec, std::vector<item> v) {
    ++ran;
    CHECK(ec == dqlite::errc::not_connected);
    CHECK(v.empty());
    CHECK(other.get_executor().running_in_this_thread());
  };
  moved.async_fetch<item>("SELECT 1, 'a'", asio::bind_executor(to_other, fetched));
  unopened.async_fetch<item>("SELECT 1, 'a'", asio::bind_executor(to_other, fetched));
  moved.async_connect("127.0.0.1:1", asio::bind_executor(to_other, [&](dqlite::error_code ec) {
    ++ran;
    CHECK(ec == dqlite::errc::not_connected);
    CHECK(other.get_executor().running_in_this_thread());
  }));
  CHECK(ran == 0);
  io.run();
  CHECK(ran == 0);  // not through the connection's executor
  other.run();
  CHECK(ran == 3);

  // A statement with no executor at all, awaited: the coroutine's executor runs it.
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  auto detached = moved.prepare("SELECT 1", ec, diag);
  REQUIRE(ec == dqlite::errc::not_connected);
  int caught = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await detached.async_fetch<item>();
        } catch (const dqlite::error& e) {
          CHECK(e.code() == dqlite::errc::not_connected);
          ++caught;
        }
        try {
          co_await unopened.async_fetchval<std::int64_t>("SELECT 1");
        } catch (const dqlite::error& e) {
          CHECK(e.code() == dqlite::errc::not_connected);
          ++caught;
        }
      },
      asio::detached);
  io.restart();
  io.run();
  CHECK(caught == 2);

  // The handler's executor is gone before the completion runs: the handler is destroyed,
  // not called, and nothing leaks.
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  {
    asio::io_context gone;
    const asio::any_io_executor to_gone = gone.get_executor();
    auto held = [&] {
      return asio::bind_executor(to_gone, [&ran, a = alive](dqlite::error_code, auto&&...) { ++ran; });
    };
    moved.async_fetch<item>("SELECT 1, 'a'", held());
    unopened.async_fetch<item>("SELECT 1, 'a'", held());
    moved.async_connect("127.0.0.1:1", held());
    alive.reset();
    CHECK_FALSE(watch.expired());  // the three pending handlers hold it
  }
  CHECK(watch.expired());
  CHECK(ran == 3);

  // A connection whose executor tracks work: a completion pending on the handler's own
  // executor holds no work on the connection's io_context, nor anything of it once that
  // is destroyed.
  {
    std::optional<asio::io_context> conn_io(std::in_place);
    {
      const asio::any_io_executor tracked =
          asio::prefer(conn_io->get_executor(), asio::execution::outstanding_work.tracked);
      dqlite::connection on_tracked(tracked);
      on_tracked.async_fetch<item>("SELECT 1, 'a'", asio::bind_executor(to_other, fetched));
      on_tracked.async_fetch<item>("SELECT 2, 'b'", asio::bind_executor(to_other, fetched));
    }
    conn_io->poll();
    CHECK(conn_io->stopped());  // no work left: run() would return
    conn_io.reset();
    other.restart();
    other.run();
    CHECK(ran == 5);
  }
}
