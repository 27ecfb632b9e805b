// The cluster client and the pool against a real 3-node cluster, once asynchronously
// (dqlite::cluster, dqlite::pool) and once with the blocking forms (dqlite::blocking_cluster,
// dqlite::blocking_pool): one test body per behaviour, run in both modes, as in
// modes_test.cpp. A mode turns each operation into an awaitable; the blocking mode runs
// the blocking call in place.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_cluster.hpp"
#include "support/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

dqlite_test::cluster_process& three() {
  static dqlite_test::cluster_process c(3);
  return c;
}

// (The options view the database name: pass a string that outlives them.)
dqlite::cluster_options cluster_opts(std::string_view db) {
  dqlite::cluster_options o;
  o.connection.database = db;
  o.connection.request_timeout = 30s;
  return o;
}

dqlite::pool_options pool_opts(std::string_view db, std::size_t min, std::size_t max) {
  dqlite::pool_options o;
  o.database = db;
  o.min_size = min;
  o.max_size = max;
  o.cluster.connection.request_timeout = 30s;
  return o;
}

struct async_mode {
  using cluster_type = dqlite::cluster;
  using pool_type = dqlite::pool;

  static std::unique_ptr<cluster_type> make_cluster(asio::any_io_executor ex,
                                                    const std::vector<std::string>& a,
                                                    const dqlite::cluster_options& o) {
    return std::make_unique<cluster_type>(ex, a, o);
  }
  static asio::awaitable<dqlite::connection> connect(cluster_type& c) {
    co_return co_await c.async_connect();
  }
  static asio::awaitable<dqlite::node_info> leader(cluster_type& c) {
    co_return co_await c.async_leader();
  }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> leader_ec(cluster_type& c) {
    auto [ec, info] = co_await c.async_leader(asio::as_tuple(asio::use_awaitable));
    co_return std::pair{ec, c.diagnostics().message()};
  }
  static asio::awaitable<std::vector<dqlite::node_info>> members(cluster_type& c) {
    co_return co_await c.async_cluster();
  }
  static asio::awaitable<std::vector<dqlite::node_info>> refresh_store(cluster_type& c) {
    co_return co_await c.async_refresh_store();
  }
  static asio::awaitable<void> add(cluster_type& c, dqlite::node_info n) {
    co_await c.async_add(n);
  }
  static asio::awaitable<void> assign(cluster_type& c, std::uint64_t id, dqlite::node_role r) {
    co_await c.async_assign(id, r);
  }
  static asio::awaitable<void> remove(cluster_type& c, std::uint64_t id) {
    co_await c.async_remove(id);
  }
  static asio::awaitable<void> transfer(cluster_type& c, std::uint64_t id) {
    co_await c.async_transfer(id);
  }
  static asio::awaitable<dqlite::node_metadata> describe(cluster_type& c, std::string a) {
    co_return co_await c.async_describe(a);
  }
  static asio::awaitable<void> weight(cluster_type& c, std::string a, std::uint64_t w) {
    co_await c.async_weight(a, w);
  }
  static asio::awaitable<std::vector<dqlite::dump_file>> dump(cluster_type& c, std::string db) {
    co_return co_await c.async_dump(db);
  }
  static asio::awaitable<void> close(cluster_type& c) {
    c.close();
    co_return;
  }

  static asio::awaitable<pool_type> create_pool(asio::any_io_executor ex,
                                                const std::vector<std::string>& a,
                                                const dqlite::pool_options& o) {
    co_return co_await dqlite::async_create_pool(ex, a, o);
  }
  template <class... A>
  static asio::awaitable<dqlite::exec_result> execute(pool_type& p, std::string sql, A... a) {
    co_return co_await p.async_execute(sql, a...);
  }
  template <class T, class... A>
  static asio::awaitable<std::vector<T>> fetch(pool_type& p, std::string sql, A... a) {
    co_return co_await p.template async_fetch<T>(sql, a...);
  }
  template <class T, class... A>
  static asio::awaitable<T> fetchval(pool_type& p, std::string sql, A... a) {
    co_return co_await p.template async_fetchval<T>(sql, a...);
  }
  template <class T, class... A>
  static asio::awaitable<std::optional<T>> fetchone(pool_type& p, std::string sql, A... a) {
    co_return co_await p.template async_fetchone<T>(sql, a...);
  }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> execute_ec(pool_type& p,
                                                                              std::string sql) {
    try {
      co_await p.async_execute(sql);
    } catch (const dqlite::error& e) {
      co_return std::pair{e.code(), e.get_diagnostics().message()};
    }
    co_return std::pair{dqlite::error_code(), std::string()};
  }
  static asio::awaitable<dqlite::pooled_connection> acquire(pool_type& p) {
    co_return co_await p.async_acquire();
  }
  static asio::awaitable<dqlite::error_code> acquire_ec(pool_type& p) {
    auto [ec, pc] = co_await p.async_acquire(asio::as_tuple(asio::use_awaitable));
    co_return ec;
  }
  template <class H>
  static asio::awaitable<dqlite::exec_result> execute_on(H& h, std::string sql) {
    co_return co_await h->async_execute(sql);
  }
  // A transaction that inserts `v` into t and returns the row id. (The body captures by
  // reference: GCC 12 miscompiles a std::string captured by value in a coroutine lambda
  // that is passed on by value to another coroutine.)
  static asio::awaitable<std::int64_t> insert_in_transaction(pool_type& p, std::string v,
                                                             int& runs) {
    co_return co_await p.async_transaction(
        [&runs, &v](dqlite::connection& c) -> asio::awaitable<std::int64_t> {
          ++runs;
          auto r = co_await c.async_execute("INSERT INTO t (v) VALUES (?)", v);
          co_return r.last_insert_id;
        });
  }
  static asio::awaitable<void> failing_transaction(pool_type& p) {
    co_await p.async_transaction([](dqlite::connection& c) -> asio::awaitable<void> {
      co_await c.async_execute("INSERT INTO t (v) VALUES ('rolled back')");
      co_await c.async_execute("INSERT INTO nowhere VALUES (1)");
    });
  }
  static asio::awaitable<dqlite::pool_stats> stats(pool_type& p) { co_return p.stats(); }
  static asio::awaitable<void> close(pool_type& p) { co_await p.async_close(); }
};

struct blocking_mode {
  using cluster_type = dqlite::blocking_cluster;
  using pool_type = dqlite::blocking_pool;

  static std::unique_ptr<cluster_type> make_cluster(asio::any_io_executor,
                                                    const std::vector<std::string>& a,
                                                    const dqlite::cluster_options& o) {
    return std::make_unique<cluster_type>(a, o);
  }
  static asio::awaitable<dqlite::connection> connect(cluster_type& c) { co_return c.connect(); }
  static asio::awaitable<dqlite::node_info> leader(cluster_type& c) { co_return c.leader(); }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> leader_ec(cluster_type& c) {
    dqlite::error_code ec;
    dqlite::diagnostics d;
    auto info = c.leader(ec, d);
    CHECK(info.address.empty());
    co_return std::pair{ec, d.message()};
  }
  static asio::awaitable<std::vector<dqlite::node_info>> members(cluster_type& c) {
    co_return c.cluster();
  }
  static asio::awaitable<std::vector<dqlite::node_info>> refresh_store(cluster_type& c) {
    co_return c.refresh_store();
  }
  static asio::awaitable<void> add(cluster_type& c, dqlite::node_info n) {
    c.add(n);
    co_return;
  }
  static asio::awaitable<void> assign(cluster_type& c, std::uint64_t id, dqlite::node_role r) {
    c.assign(id, r);
    co_return;
  }
  static asio::awaitable<void> remove(cluster_type& c, std::uint64_t id) {
    c.remove(id);
    co_return;
  }
  static asio::awaitable<void> transfer(cluster_type& c, std::uint64_t id) {
    c.transfer(id);
    co_return;
  }
  static asio::awaitable<dqlite::node_metadata> describe(cluster_type& c, std::string a) {
    co_return c.describe(a);
  }
  static asio::awaitable<void> weight(cluster_type& c, std::string a, std::uint64_t w) {
    c.weight(a, w);
    co_return;
  }
  static asio::awaitable<std::vector<dqlite::dump_file>> dump(cluster_type& c, std::string db) {
    co_return c.dump(db);
  }
  static asio::awaitable<void> close(cluster_type& c) {
    c.close();
    co_return;
  }

  static asio::awaitable<pool_type> create_pool(asio::any_io_executor,
                                                const std::vector<std::string>& a,
                                                const dqlite::pool_options& o) {
    co_return dqlite::create_pool(a, o);
  }
  template <class... A>
  static asio::awaitable<dqlite::exec_result> execute(pool_type& p, std::string sql, A... a) {
    co_return p.execute(sql, a...);
  }
  template <class T, class... A>
  static asio::awaitable<std::vector<T>> fetch(pool_type& p, std::string sql, A... a) {
    co_return p.template fetch<T>(sql, a...);
  }
  template <class T, class... A>
  static asio::awaitable<T> fetchval(pool_type& p, std::string sql, A... a) {
    co_return p.template fetchval<T>(sql, a...);
  }
  template <class T, class... A>
  static asio::awaitable<std::optional<T>> fetchone(pool_type& p, std::string sql, A... a) {
    co_return p.template fetchone<T>(sql, a...);
  }
  static asio::awaitable<std::pair<dqlite::error_code, std::string>> execute_ec(pool_type& p,
                                                                              std::string sql) {
    dqlite::error_code ec;
    dqlite::diagnostics d;
    p.execute(sql, ec, d);
    co_return std::pair{ec, d.message()};
  }
  static asio::awaitable<dqlite::blocking_pooled_connection> acquire(pool_type& p) {
    co_return p.acquire();
  }
  static asio::awaitable<dqlite::error_code> acquire_ec(pool_type& p) {
    dqlite::error_code ec;
    dqlite::diagnostics d;
    auto pc = p.acquire(ec, d);
    CHECK_FALSE(pc.valid() == bool(ec));
    co_return ec;
  }
  template <class H>
  static asio::awaitable<dqlite::exec_result> execute_on(H& h, std::string sql) {
    co_return h->execute(sql);
  }
  static asio::awaitable<std::int64_t> insert_in_transaction(pool_type& p, std::string v,
                                                             int& runs) {
    co_return p.transaction([&runs, v](dqlite::connection& c) {
      ++runs;
      return c.execute("INSERT INTO t (v) VALUES (?)", v).last_insert_id;
    });
  }
  static asio::awaitable<void> failing_transaction(pool_type& p) {
    p.transaction([](dqlite::connection& c) {
      c.execute("INSERT INTO t (v) VALUES ('rolled back')");
      c.execute("INSERT INTO nowhere VALUES (1)");
    });
    co_return;
  }
  static asio::awaitable<dqlite::pool_stats> stats(pool_type& p) { co_return p.stats(); }
  static asio::awaitable<void> close(pool_type& p) {
    p.close();
    co_return;
  }
};

template <class M>
constexpr bool is_blocking = std::is_same_v<M, blocking_mode>;

// A database of each mode's own.
template <class M>
constexpr const char* db_name(const char* async_name, const char* blocking_name) {
  return is_blocking<M> ? blocking_name : async_name;
}

}  // namespace

TEMPLATE_TEST_CASE("cluster client: leader, members, connect and node administration",
                   "[modes][cluster]", async_mode, blocking_mode) {
  using M = TestType;
  auto& cl = three();
  const int leader_index = cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto db = db_name<M>("modes_cluster_a", "modes_cluster_b");
    auto c = M::make_cluster(ex, cl.addresses(), cluster_opts(db));
    auto leader = co_await M::leader(*c);
    CHECK(leader.address == cl.node(static_cast<std::size_t>(leader_index)).address());
    auto members = co_await M::members(*c);
    CHECK(members.size() == 3);
    auto refreshed = co_await M::refresh_store(*c);
    CHECK(refreshed.size() == 3);

    // A connection to the leader with the database open.
    auto conn = co_await M::connect(*c);
    CHECK(conn.is_open());
    if constexpr (is_blocking<M>) {
      conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)");
      conn.execute("INSERT INTO t (v) VALUES ('one')");
      CHECK(conn.template fetchval<std::int64_t>("SELECT count(*) FROM t") >= 1);
    } else {
      co_await conn.async_execute("CREATE TABLE IF NOT EXISTS t (v TEXT)");
      co_await conn.async_execute("INSERT INTO t (v) VALUES ('one')");
      CHECK(co_await conn.template async_fetchval<std::int64_t>("SELECT count(*) FROM t") >= 1);
    }
    auto files = co_await M::dump(*c, db);
    CHECK_FALSE(files.empty());

    // One node's metadata.
    const auto a2 = cl.node(1).address();
    co_await M::weight(*c, a2, 7);
    auto meta = co_await M::describe(*c, a2);
    CHECK(meta.weight == 7);

    // Roles: a voter becomes a stand-by and comes back.
    const auto other = static_cast<std::uint64_t>((leader_index + 1) % 3 + 1);
    co_await M::assign(*c, other, dqlite::node_role::standby);
    members = co_await M::members(*c);
    bool standby = false;
    for (const auto& m : members)
      if (m.id == other) standby = m.role == dqlite::node_role::standby;
    CHECK(standby);
    co_await M::assign(*c, other, dqlite::node_role::voter);

    // A fourth node joins as a spare and is removed again.
    dqlite_test::node_process extra(is_blocking<M> ? 5 : 4);
    dqlite::node_info n{is_blocking<M> ? 5u : 4u, extra.address(), dqlite::node_role::spare};
    co_await M::add(*c, n);
    members = co_await M::members(*c);
    CHECK(members.size() == 4);
    co_await M::remove(*c, n.id);
    members = co_await M::members(*c);
    CHECK(members.size() == 3);

    // After close(), operations fail with errc::cancelled.
    co_await M::close(*c);
    bool cancelled = false;
    try {
      (void)co_await M::leader(*c);
    } catch (const dqlite::error& e) {
      cancelled = e.code() == dqlite::errc::cancelled;
    }
    CHECK(cancelled);
  }, std::chrono::seconds(300));
}

TEMPLATE_TEST_CASE("cluster client: leadership handed over, and no leader to be found",
                   "[modes][cluster]", async_mode, blocking_mode) {
  using M = TestType;
  auto& cl = three();
  const int leader_index = cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = M::make_cluster(ex, cl.addresses(), cluster_opts(db_name<M>("modes_tr_a", "modes_tr_b")));
    const auto target = static_cast<std::uint64_t>((leader_index + 1) % 3 + 1);
    co_await M::transfer(*c, target);
    auto leader = co_await M::leader(*c);
    CHECK(leader.id == target);

    // Nobody listens at these addresses: errc::no_leader, naming every node asked.
    auto o = cluster_opts("none");
    o.connection.connect_timeout = 500ms;
    o.max_attempts = 2;
    o.retry_timeout = 5s;
    auto none = M::make_cluster(ex, {"127.0.0.1:1", "127.0.0.1:2"}, o);
    auto [ec, text] = co_await M::leader_ec(*none);
    CHECK(ec == dqlite::errc::no_leader);
    CHECK_THAT(text, Catch::Contains("127.0.0.1:1") && Catch::Contains("127.0.0.1:2"));
  }, std::chrono::seconds(300));
}

TEMPLATE_TEST_CASE("pool: statements, a checked-out connection, transactions and close",
                   "[modes][pool]", async_mode, blocking_mode) {
  using M = TestType;
  auto& cl = three();
  cl.wait_for_leader();
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto o = pool_opts(db_name<M>("modes_pool_a", "modes_pool_b"), 1, 2);
    o.acquire_timeout = 400ms;
    auto pool = co_await M::create_pool(ex, cl.addresses(), o);
    co_await M::execute(pool, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
    auto r = co_await M::execute(pool, "INSERT INTO t (v) VALUES (?)", std::string("kept"));
    CHECK(r.rows_affected == 1);
    CHECK(co_await M::template fetchval<std::int64_t>(pool, "SELECT count(*) FROM t") == 1);
    auto one = co_await M::template fetchone<std::tuple<std::int64_t, std::string>>(
        pool, "SELECT id, v FROM t WHERE v = ?", std::string("kept"));
    REQUIRE(one);
    CHECK(std::get<0>(*one) == static_cast<std::int64_t>(r.last_insert_id));
    auto all = co_await M::template fetch<std::string>(pool, "SELECT v FROM t");
    CHECK(all == std::vector<std::string>{"kept"});

    // A statement's error reaches the caller with the server's text.
    auto [ec, text] = co_await M::execute_ec(pool, "INSERT INTO nowhere VALUES (1)");
    CHECK(ec.category() == dqlite::server_category());
    CHECK_THAT(text, Catch::Contains("no such table"));

    // Transactions: one that commits, one whose statement fails and is rolled back (the
    // error is not one that runs it again).
    int runs = 0;
    auto id = co_await M::insert_in_transaction(pool, "in tx", runs);
    CHECK(runs == 1);
    CHECK(id > static_cast<std::int64_t>(r.last_insert_id));
    bool failed = false;
    try {
      co_await M::failing_transaction(pool);
    } catch (const dqlite::error& e) {
      failed = true;
      CHECK(e.code().category() == dqlite::server_category());
      CHECK_THAT(e.get_diagnostics().message(), Catch::Contains("attempt 1"));
    }
    CHECK(failed);
    CHECK(co_await M::template fetchval<std::int64_t>(pool, "SELECT count(*) FROM t") == 2);

    {
      // Both connections checked out: a third acquire times out.
      auto a = co_await M::acquire(pool);
      auto b = co_await M::acquire(pool);
      co_await M::execute_on(a, "INSERT INTO t (v) VALUES ('through a')");
      auto t0 = std::chrono::steady_clock::now();
      auto third = co_await M::acquire_ec(pool);
      CHECK(third == dqlite::errc::timeout);
      CHECK(dqlite_test::elapsed_ms(t0) >= 390);
    }
    CHECK(co_await M::template fetchval<std::int64_t>(pool, "SELECT count(*) FROM t") == 3);
    auto st = co_await M::stats(pool);
    CHECK(st.acquire_timeouts == 1);
    CHECK(st.opened >= 2);

    co_await M::close(pool);
    auto closed = co_await M::acquire_ec(pool);
    CHECK(closed == dqlite::errc::pool_closed);
  }, std::chrono::seconds(300));
}
