// The pool's waiting, ordering, discarding and refilling, with fake connections.
#include <dqlite/pool.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include "support/run.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using dqlite::error_code;

struct fake_server {
  int next_id = 1;
  int connects = 0;
  int resets = 0;
  int pings = 0;
  std::deque<error_code> connect_failures;  // the next connects fail with these
  std::deque<std::string> failure_texts;    // ... and these texts (else a fixed one)
  std::chrono::milliseconds connect_delay{0};
  int connecting = 0;      // connects in progress now
  int max_connecting = 0;  // most connects in progress at once
  bool ping_fails = false;
  std::chrono::milliseconds ping_delay{0};  // a check that takes this long (cancellable)
};

struct fake_conn {
  int id = 0;
  std::shared_ptr<fake_server> server;
  bool open = true;
  error_code broken;

  bool is_open() const noexcept { return open; }
  error_code broken_by() const noexcept { return broken; }
  void close() noexcept { open = false; }
  void break_with(error_code ec) {
    open = false;
    broken = ec;
  }
};

struct fake_connector {
  std::shared_ptr<fake_server> server;
  asio::any_io_executor ex;

  asio::awaitable<dqlite::detail::cluster_result<fake_conn>> connect() {
    auto srv = server;
    srv->max_connecting = std::max(srv->max_connecting, ++srv->connecting);
    if (srv->connect_delay.count() > 0) {
      asio::steady_timer t(ex, srv->connect_delay);
      co_await t.async_wait(dqlite::detail::as_tuple_awaitable);
    }
    --srv->connecting;
    ++srv->connects;
    if (!srv->connect_failures.empty()) {
      auto ec = srv->connect_failures.front();
      srv->connect_failures.pop_front();
      std::string text = "no node leads (fake)";
      if (!srv->failure_texts.empty()) {
        text = std::move(srv->failure_texts.front());
        srv->failure_texts.pop_front();
      }
      co_return dqlite::detail::cluster_result<fake_conn>::fail(ec, std::move(text));
    }
    dqlite::detail::cluster_result<fake_conn> r;
    r.value.emplace(fake_conn{srv->next_id++, srv, true, {}});
    co_return r;
  }
  asio::awaitable<error_code> reset(fake_conn& c) {
    ++c.server->resets;
    co_return error_code{};
  }
  asio::awaitable<error_code> ping(fake_conn& c) {
    ++c.server->pings;
    if (c.server->ping_delay.count() > 0) {
      // Like a real check cut short: the query is interrupted, the connection stays open.
      asio::steady_timer t(ex, c.server->ping_delay);
      auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return make_error_code(dqlite::errc::interrupted);
    }
    if (c.server->ping_fails) {
      c.break_with(make_error_code(dqlite::errc::connection_closed));
      co_return make_error_code(dqlite::errc::connection_closed);
    }
    co_return error_code{};
  }
  void close() {}
};

using core = dqlite::detail::pool_core<fake_conn, fake_connector>;
using handle = dqlite::pooled_handle<fake_conn, fake_connector>;

std::shared_ptr<core> make_core(asio::any_io_executor ex, std::shared_ptr<fake_server> srv,
                                dqlite::pool_options o) {
  return std::make_shared<core>(ex, fake_connector{std::move(srv), ex}, o);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(dqlite::detail::as_tuple_awaitable);
}

/// Lets every handler already queued on the executor run first.
asio::awaitable<void> yield_now() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

asio::awaitable<handle> take(std::shared_ptr<core> p) {
  auto r = co_await p->acquire();
  if (r.ec) throw dqlite::error(r.ec, dqlite::diagnostics(r.diag));
  co_return std::move(*r.value);
}

}  // namespace

TEST_CASE("pool: connections are reused, reset on return", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 2});
    {
      auto h = co_await take(p);
      CHECK(h->id == 1);
    }
    co_await sleep_for(5ms);
    CHECK(srv->resets == 1);
    auto s = p->stats();
    CHECK(s.idle == 1);
    CHECK(s.in_use == 0);
    auto h2 = co_await take(p);
    CHECK(h2->id == 1);  // the same connection
    CHECK(srv->connects == 1);
  });
}

TEST_CASE("pool: waiters are served in FIFO order", "[pool]") {
  // Ordered by the io_context's queue alone: no sleeps, no clock.
  auto srv = std::make_shared<fake_server>();
  std::vector<int> order;
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1});
    auto first = co_await take(p);
    int done = 0;
    for (int i = 0; i < 5; ++i) {
      asio::co_spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            auto h = co_await take(p);
            order.push_back(i);
            co_await yield_now();
            ++done;
          },
          asio::detached);
      // Let it run until it waits: the waiters queue in this order.
      for (int k = 0; k < 4 && p->stats().waiting < static_cast<std::size_t>(i + 1); ++k)
        co_await yield_now();
      REQUIRE(p->stats().waiting == static_cast<std::size_t>(i + 1));
    }
    first.reset();
    while (done < 5) co_await yield_now();
    CHECK(srv->connects == 1);
  });
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("pool: an acquire that times out names the counts and the last connect error",
          "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1, .acquire_timeout = 50ms});
    auto h = co_await take(p);
    auto r = co_await p->acquire();
    CHECK(r.ec == dqlite::errc::timeout);
    CHECK_THAT(r.diag, Catch::Contains("in use: 1") && Catch::Contains("idle: 0") &&
                           Catch::Contains("last connect error: none"));
    CHECK(p->stats().waiting == 0);
  });
  // Connects that keep failing: the error is reported.
  auto srv2 = std::make_shared<fake_server>();
  for (int i = 0; i < 100; ++i)
    srv2->connect_failures.push_back(make_error_code(dqlite::errc::no_leader));
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv2, {.max_size = 2, .acquire_timeout = 60ms});
    auto r = co_await p->acquire();
    CHECK(r.ec == dqlite::errc::timeout);
    CHECK_THAT(r.diag, Catch::Contains("in use: 0") &&
                           Catch::Contains("last connect error: no node leads (fake)"));
  });
}

TEST_CASE("pool: an acquire timeout names the cause of the connect failures, bounded",
          "[pool][hostile]") {
  // The first connect fails with a huge message (a server's), the later ones time out.
  auto srv = std::make_shared<fake_server>();
  const std::string huge = "disk full: " + std::string(60u << 20, 'x');
  srv->connect_failures.push_back(make_error_code(dqlite::errc::no_leader));
  srv->failure_texts.push_back(huge);
  for (int i = 0; i < 1000; ++i) {
    srv->connect_failures.push_back(make_error_code(dqlite::errc::timeout));
    srv->failure_texts.push_back("connecting took longer than 1 ms");
  }
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::pool_options o{.max_size = 1, .acquire_timeout = 1s};
    o.cluster.backoff_base = 1ms;  // the pool pauses 20 ms between connects
    auto p = make_core(ex, srv, o);
    auto r = co_await p->acquire();
    CHECK(r.ec == dqlite::errc::timeout);
    CHECK(srv->connects >= 2);  // a timed-out attempt came after the cause
    CHECK(r.diag.size() < 4096);
    CHECK_THAT(r.diag, Catch::Contains("last connect error: disk full: xxx"));
    CHECK_THAT(r.diag, Catch::Contains("more bytes]"));
    CHECK_THAT(r.diag, Catch::Contains("later attempts timed out: connecting took longer than 1 ms"));
  });
  // Once a connection opened, an old cause is not reported for new failures.
  auto srv2 = std::make_shared<fake_server>();
  srv2->connect_failures = {make_error_code(dqlite::errc::no_leader)};
  srv2->failure_texts = {"old cause"};
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv2, {.max_size = 1, .acquire_timeout = 2s});
    auto h = co_await p->acquire();  // fails once, then opens
    REQUIRE(h.value);
    h.value->get().break_with(make_error_code(dqlite::errc::connection_closed));
    for (int i = 0; i < 20; ++i) {
      srv2->connect_failures.push_back(make_error_code(dqlite::errc::timeout));
      srv2->failure_texts.push_back("slow");
    }
    h.value.reset();
    p->opts.acquire_timeout = 100ms;
    auto r = co_await p->acquire();
    CHECK(r.ec == dqlite::errc::timeout);
    CHECK_THAT(r.diag, !Catch::Contains("old cause"));
  });
}

TEST_CASE("pool: a connection that failed once is retried for a waiter", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  srv->connect_failures.push_back(make_error_code(dqlite::errc::no_leader));
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::pool_options o{.max_size = 1, .acquire_timeout = 2s};
    o.cluster.backoff_base = 10ms;
    auto p = make_core(ex, srv, o);
    auto h = co_await take(p);
    CHECK(h->id == 1);
    CHECK(srv->connects == 2);
  });
}

TEST_CASE("pool: broken connections are discarded and the idle ones dropped", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 3});
    auto a = co_await take(p);
    auto b = co_await take(p);
    b.reset();  // b (id 2) goes back idle
    co_await sleep_for(2ms);
    CHECK(p->stats().idle == 1);
    a->break_with(make_error_code(dqlite::errc::leadership_lost));
    a.reset();
    co_await sleep_for(2ms);
    auto s = p->stats();
    CHECK(s.idle == 0);  // the idle one pointed at the old leader
    CHECK(s.discarded == 2);
    CHECK(s.leader_changes == 1);
    auto c = co_await take(p);
    CHECK(c->id == 3);  // a new connection
    // mark_unusable: discarded even though it is open.
    c.mark_unusable();
    c.reset();
    co_await sleep_for(2ms);
    CHECK(p->stats().idle == 0);
    CHECK(p->stats().discarded == 3);
  });
}

TEST_CASE("pool: connections returned after a leader change are discarded", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 3});
    auto a = co_await take(p);
    auto b = co_await take(p);
    p->note_error(make_error_code(dqlite::errc::leadership_lost));
    b.reset();  // still open, but from before the change
    co_await sleep_for(2ms);
    CHECK(p->stats().idle == 0);
    a.reset();
  });
}

TEST_CASE("pool: idle connections are checked before hand-out", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    // Idle for 1 s or more: checked. The margins are wide, so that a slow or loaded
    // machine (sanitizers) still sees a connection reused at once as fresh.
    auto p = make_core(ex, srv, {.max_size = 2, .health_check_after = 1000ms});
    { auto h = co_await take(p); }
    co_await sleep_for(2ms);
    { auto h = co_await take(p); }  // fresh: no check
    CHECK(srv->pings == 0);
    co_await sleep_for(1100ms);
    {
      auto h = co_await take(p);  // idle for long: checked
      CHECK(srv->pings == 1);
      CHECK(h->id == 1);
    }
    co_await sleep_for(1100ms);
    srv->ping_fails = true;
    auto h = co_await take(p);  // the check fails: discarded, a new one opened
    CHECK(srv->pings == 2);
    CHECK(h->id == 2);
  });
}

namespace {

/// Starts p->acquire() with a cancellation slot; the result lands in `out`.
void start_acquire(asio::any_io_executor ex, std::shared_ptr<core> p, asio::cancellation_signal& stop,
                   std::optional<dqlite::detail::cluster_result<handle>>& out) {
  asio::co_spawn(ex, p->acquire(),
                 asio::bind_cancellation_slot(
                     stop.slot(), [&out](std::exception_ptr ep,
                                         dqlite::detail::cluster_result<handle> r) {
                       if (ep) std::rethrow_exception(ep);
                       out.emplace(std::move(r));
                     }));
}

}  // namespace

TEST_CASE("pool: a cancelled acquire leaves the queue and loses no connection", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1, .acquire_timeout = 5s});
    auto held = co_await take(p);
    asio::cancellation_signal stop;
    std::optional<dqlite::detail::cluster_result<handle>> got;
    start_acquire(ex, p, stop, got);
    co_await sleep_for(5ms);
    CHECK(p->stats().waiting == 1);
    stop.emit(asio::cancellation_type::terminal);
    co_await sleep_for(5ms);
    REQUIRE(got);
    CHECK(got->ec == dqlite::errc::cancelled);
    CHECK(got->diag == "the operation was cancelled");
    CHECK(p->stats().waiting == 0);
    // The connection that comes back goes to the next caller, not to the cancelled one.
    held.reset();
    co_await sleep_for(5ms);
    CHECK(p->stats().idle == 1);
    auto again = co_await take(p);
    CHECK(again->id == 1);
    CHECK(srv->connects == 1);
    // A cancellation is not a sign of a leader change: the pool keeps its connections.
    p->note_error(make_error_code(dqlite::errc::cancelled));
    p->note_error(make_error_code(dqlite::errc::interrupted));
    CHECK(p->stats().leader_changes == 0);
  });
}

TEST_CASE("pool: an acquire cancelled during the health check puts the connection back",
          "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1, .health_check_after = 1ms});
    { auto h = co_await take(p); }
    co_await sleep_for(10ms);
    srv->ping_delay = 1s;
    asio::cancellation_signal stop;
    std::optional<dqlite::detail::cluster_result<handle>> got;
    start_acquire(ex, p, stop, got);
    co_await sleep_for(10ms);
    CHECK(srv->pings == 1);
    CHECK(p->stats().in_use == 1);  // being checked
    stop.emit(asio::cancellation_type::terminal);
    co_await sleep_for(5ms);
    REQUIRE(got);
    CHECK(got->ec == dqlite::errc::cancelled);
    auto s = p->stats();
    CHECK(s.in_use == 0);
    CHECK(s.idle == 1);
    CHECK(s.discarded == 0);
    srv->ping_delay = 0ms;
    {
      auto h = co_await take(p);
      CHECK(h->id == 1);
      CHECK(srv->pings == 2);  // it went back unchecked: checked now
      CHECK(srv->connects == 1);
    }
    // A leader change while the check runs: the connection is not put back.
    co_await sleep_for(10ms);
    srv->ping_delay = 1s;
    got.reset();
    asio::cancellation_signal stop2;
    start_acquire(ex, p, stop2, got);
    co_await sleep_for(10ms);
    p->note_error(make_error_code(dqlite::errc::leadership_lost));
    stop2.emit(asio::cancellation_type::terminal);
    co_await sleep_for(5ms);
    REQUIRE(got);
    CHECK(got->ec == dqlite::errc::cancelled);
    CHECK(p->stats().idle == 0);
    CHECK(p->stats().discarded == 1);
  });
}

TEST_CASE("pool: warm-up opens min_size connections and refills after a leader change",
          "[pool]") {
  auto srv = std::make_shared<fake_server>();
  srv->connect_delay = 20ms;
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.min_size = 3, .max_size = 4});
    auto w = co_await p->warm_up();
    CHECK(!w.ec);
    CHECK(srv->max_connecting == 3);  // in parallel
    CHECK(p->stats().idle == 3);
    auto h = co_await take(p);
    h->break_with(make_error_code(dqlite::errc::connection_closed));
    h.reset();
    co_await sleep_for(5ms);
    CHECK(p->stats().idle + p->stats().connecting == 3);
    co_await sleep_for(60ms);
    auto s = p->stats();
    CHECK(s.idle == 3);
    CHECK(s.connecting == 0);
    CHECK(srv->connects == 6);
  });
}

TEST_CASE("pool: close fails waiters, closes idle connections, waits for checked-out ones",
          "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1, .close_timeout = 2s});
    auto h = co_await take(p);
    std::optional<error_code> waiter_ec;
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          auto r = co_await p->acquire();
          waiter_ec = r.ec;
        },
        asio::detached);
    co_await sleep_for(2ms);
    bool closed = false;
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          auto r = co_await p->close();
          CHECK(!r.ec);
          closed = true;
        },
        asio::detached);
    co_await sleep_for(5ms);
    REQUIRE(waiter_ec);
    CHECK(*waiter_ec == dqlite::errc::pool_closed);
    CHECK(!closed);  // h is still out
    h.reset();
    co_await sleep_for(5ms);
    CHECK(closed);
    auto r = co_await p->acquire();
    CHECK(r.ec == dqlite::errc::pool_closed);
    CHECK(p->stats().idle == 0);
  });
}

TEST_CASE("pool: close gives up on connections that stay out", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1, .close_timeout = 20ms});
    auto h = co_await take(p);
    auto r = co_await p->close();
    CHECK(r.ec == dqlite::errc::timeout);
    CHECK_THAT(r.diag, Catch::Contains("1 checked-out connection(s)"));
  });
}

TEST_CASE("pool: an empty pool fails with pool_closed", "[pool]") {
  dqlite_test::run([](asio::any_io_executor) -> asio::awaitable<void> {
    dqlite::pool p;
    auto [ec, pc] = co_await p.async_acquire(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::pool_closed);
    CHECK(!pc.valid());
  });
}

TEST_CASE("pool: invalid options are refused", "[pool]") {
  asio::io_context io;
  CHECK_THROWS_AS(dqlite::pool(io.get_executor(), std::vector<std::string>{"127.0.0.1:1"},
                               dqlite::pool_options{.max_size = 0}),
                  dqlite::error);
  CHECK_THROWS_AS(dqlite::pool(io.get_executor(), std::vector<std::string>{"127.0.0.1:1"},
                               dqlite::pool_options{.min_size = 3, .max_size = 2}),
                  dqlite::error);
}

TEST_CASE("pool: after fork() the child's operations fail with used_after_fork", "[pool]") {
  asio::io_context io;
  dqlite::pool p(io.get_executor(), std::vector<std::string>{"127.0.0.1:1"},
                 dqlite::pool_options{.max_size = 2});
  const ::pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    io.notify_fork(asio::io_context::fork_child);
    int code = 3;
    p.async_acquire([&](error_code ec, dqlite::pooled_connection) {
      code = ec == dqlite::errc::used_after_fork ? 0 : 1;
    });
    io.run_for(2s);
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("pool: a connection past max_lifetime is not handed out again", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 2, .max_lifetime = 300ms});
    const auto born = std::chrono::steady_clock::now();
    { auto h = co_await take(p); }
    co_await sleep_for(1ms);
    {
      auto h = co_await take(p);
      // Reused while young (only checked when the machine was quick enough to tell).
      if (std::chrono::steady_clock::now() - born < 250ms) CHECK(h->id == 1);
    }
    co_await sleep_for(400ms);
    auto h = co_await take(p);  // older than max_lifetime: closed, a new one opened
    CHECK(h->id != 1);
    CHECK(p->stats().expired >= 1);
    // One that outlives max_lifetime while checked out is closed when it comes back,
    // without a reset first.
    const int id = h->id;
    co_await sleep_for(400ms);
    const int resets = srv->resets;
    const auto expired = p->stats().expired;
    h.reset();
    co_await sleep_for(5ms);
    CHECK(p->stats().idle == 0);
    CHECK(p->stats().expired == expired + 1);
    CHECK(srv->resets == resets);
    auto h2 = co_await take(p);
    CHECK(h2->id != id);
  });
}

TEST_CASE("pool: the background pass closes connections idle for max_idle_time, down to "
          "min_size",
          "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.min_size = 1, .max_size = 3, .max_idle_time = 100ms});
    p->start_maintenance();
    {
      auto a = co_await take(p);
      auto b = co_await take(p);
      auto c = co_await take(p);
    }
    co_await sleep_for(5ms);
    CHECK(p->stats().idle + p->stats().in_use <= 3);
    // Without any acquire, the pass closes the idle ones but min_size.
    for (int i = 0; i < 200 && p->stats().idle > 1; ++i) co_await sleep_for(10ms);
    auto s = p->stats();
    CHECK(s.idle == 1);
    CHECK(s.expired == 2);
    p->shut();  // ends the pass: run() returns
  });
}

TEST_CASE("pool: the background pass checks idle connections and drops a dead one", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv,
                       {.max_size = 2, .health_check_after = 20ms, .health_check_interval = 30ms});
    p->start_maintenance();
    { auto h = co_await take(p); }
    for (int i = 0; i < 300 && srv->pings == 0; ++i) co_await sleep_for(5ms);
    CHECK(srv->pings >= 1);
    CHECK(p->stats().idle == 1);  // it passed: idle again
    srv->ping_fails = true;
    for (int i = 0; i < 300 && p->stats().idle > 0; ++i) co_await sleep_for(5ms);
    auto s = p->stats();
    CHECK(s.idle == 0);
    CHECK(s.health_check_failures >= 1);
    CHECK(s.background_checks >= 2);
    CHECK(s.leader_changes >= 1);  // a connection error empties the pool
    p->shut();
  });
}

TEST_CASE("pool: stats count acquires, waits, their time and timeouts", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 1, .acquire_timeout = 50ms});
    auto h = co_await take(p);  // opened for this acquire: it waited
    auto r = co_await p->acquire();  // none free: times out
    CHECK(r.ec == dqlite::errc::timeout);
    h.reset();
    co_await sleep_for(2ms);
    auto h2 = co_await take(p);  // idle: no wait
    auto s = p->stats();
    CHECK(s.acquires == 2);
    CHECK(s.waits == 2);
    CHECK(s.acquire_timeouts == 1);
    CHECK(s.wait_time >= std::chrono::microseconds(50'000));
  });
}

TEST_CASE("pool slots: the allowed transitions, and the counts that follow them", "[pool]") {
  using dqlite::detail::slot_state;
  using dqlite::detail::slot_table;
  using dqlite::detail::slot_transition_allowed;
  const slot_state all[] = {slot_state::connecting, slot_state::retry_wait, slot_state::idle,
                            slot_state::checking,   slot_state::in_use,     slot_state::resetting};
  // The whole table: what is allowed, and nothing else.
  std::set<std::pair<slot_state, slot_state>> allowed{
      {slot_state::connecting, slot_state::idle},    {slot_state::connecting, slot_state::in_use},
      {slot_state::connecting, slot_state::retry_wait}, {slot_state::retry_wait, slot_state::connecting},
      {slot_state::idle, slot_state::checking},      {slot_state::idle, slot_state::in_use},
      {slot_state::checking, slot_state::in_use},    {slot_state::checking, slot_state::idle},
      {slot_state::in_use, slot_state::resetting},   {slot_state::in_use, slot_state::idle},
      {slot_state::in_use, slot_state::in_use},      {slot_state::resetting, slot_state::idle},
      {slot_state::resetting, slot_state::in_use}};
  for (auto from : all)
    for (auto to : all) {
      INFO(dqlite::detail::to_string(from) << " -> " << dqlite::detail::to_string(to));
      CHECK(slot_transition_allowed(from, to) == (allowed.count({from, to}) == 1));
    }

  slot_table t;
  const auto t0 = slot_table::clock::time_point{} + std::chrono::seconds(100);
  auto a = t.open(t0);
  auto b = t.open(t0);
  CHECK(t.opening() == 2);
  CHECK(t.total() == 2);
  t.move(a, slot_state::connecting, slot_state::retry_wait, t0 + 1s);
  CHECK(t.count(slot_state::retry_wait) == 1);
  CHECK(t.opening() == 2);
  t.move(a, slot_state::retry_wait, slot_state::connecting, t0 + 2s);
  t.move(a, slot_state::connecting, slot_state::idle, t0 + 3s);
  CHECK(t.get(a).born == t0 + 3s);  // opened when it left connecting
  t.move(a, slot_state::idle, slot_state::checking, t0 + 4s);
  t.move(a, slot_state::checking, slot_state::in_use, t0 + 5s);
  t.move(b, slot_state::connecting, slot_state::in_use, t0 + 6s);
  CHECK(t.busy() == 2);
  CHECK(t.opening() == 0);
  t.move(a, slot_state::in_use, slot_state::resetting, t0 + 7s);
  t.move(a, slot_state::resetting, slot_state::idle, t0 + 8s);
  CHECK(t.get(a).since == t0 + 8s);
  CHECK(t.get(a).born == t0 + 3s);
  CHECK(t.count(slot_state::idle) == 1);
  // A transition the table forbids, or from a state the slot is not in: a bug, refused
  // without changing anything.
  CHECK_THROWS_WITH(t.move(a, slot_state::idle, slot_state::resetting, t0),
                    Catch::Contains("cannot go from idle to resetting"));
  CHECK_THROWS_WITH(t.move(b, slot_state::idle, slot_state::in_use, t0),
                    Catch::Contains("is in_use, not idle"));
  CHECK(t.count(slot_state::idle) == 1);
  CHECK(t.busy() == 1);
  t.end(b, slot_state::in_use);
  CHECK_FALSE(t.contains(b));
  CHECK_THROWS(t.end(b, slot_state::in_use));
  CHECK(t.total() == 1);
}

TEST_CASE("pool: every connection is in one state, and none is left when all are closed",
          "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv, {.max_size = 3});
    auto h1 = co_await take(p);
    auto h2 = co_await take(p);
    using dqlite::detail::slot_state;
    CHECK(p->slots.count(slot_state::in_use) == 2);
    h1.reset();  // reset (the fake connector always resets): resetting, then idle
    CHECK(p->slots.count(slot_state::resetting) + p->slots.count(slot_state::idle) +
              p->slots.count(slot_state::in_use) ==
          2);
    co_await sleep_for(2ms);
    CHECK(p->slots.count(slot_state::idle) == 1);
    CHECK(p->slots.count(slot_state::in_use) == 1);
    // A failed open for a waiter: retry_wait, then connecting again, then in use.
    srv->connect_failures.push_back(make_error_code(dqlite::errc::no_leader));
    auto h3 = co_await take(p);  // the idle one
    auto h4 = co_await take(p);  // a new one: fails once, then opens
    CHECK(srv->connects >= 3);
    CHECK(p->slots.count(slot_state::in_use) == 3);
    CHECK(p->slots.opening() == 0);
    p->shut();
    h2.reset();
    h3.reset();
    h4.reset();
    co_await sleep_for(2ms);
    CHECK(p->slots.total() == 0);
  });
}

TEST_CASE("pool: background checks do not keep a connection from max_idle_time", "[pool]") {
  auto srv = std::make_shared<fake_server>();
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = make_core(ex, srv,
                       {.max_size = 2,
                        .health_check_after = 10ms,
                        .max_idle_time = 200ms,
                        .health_check_interval = 20ms});
    CHECK(p->sweep_period() == 20ms);
    p->start_maintenance();
    { auto h = co_await take(p); }
    for (int i = 0; i < 500 && p->stats().expired == 0; ++i) co_await sleep_for(5ms);
    CHECK(srv->pings >= 1);  // it was checked while it waited...
    CHECK(p->stats().expired == 1);  // ...and closed for idleness all the same
    CHECK(p->stats().idle == 0);
    p->shut();
  });
  // The lifetimes make the pass run more often than a long interval.
  asio::io_context io;
  auto p2 = make_core(io.get_executor(), srv,
                      {.max_lifetime = 400ms, .health_check_interval = 60'000ms});
  CHECK(p2->sweep_period() == 100ms);
}
