// Every kind of hostile answer against every operation: a scripted loopback server acts
// as a node (LEADER, OPEN) until the first statement request, which it answers with the
// scenario's bytes. Each operation must end with a specific error within its timeout:
// never a crash, a hang, or a silently wrong value; a write whose answer is lost is
// "outcome unknown".
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fake_server.hpp"
#include "support/run.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <time.h>

namespace asio = boost::asio;
using bytes = std::vector<unsigned char>;
using dqlite_test::fake_peer;
using dqlite_test::fake_server;
using namespace std::chrono_literals;

namespace {

void put64(bytes& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_text(bytes& b, const std::string& s) {
  b.insert(b.end(), s.begin(), s.end());
  do b.push_back(0);
  while (b.size() % 8 != 0);
}
bytes header(std::uint32_t words, std::uint8_t type) {
  return {static_cast<unsigned char>(words), static_cast<unsigned char>(words >> 8),
          static_cast<unsigned char>(words >> 16), static_cast<unsigned char>(words >> 24),
          type, 0, 0, 0};
}
bytes frame(std::uint8_t type, const bytes& body) {
  auto f = header(static_cast<std::uint32_t>(body.size() / 8), type);
  f.insert(f.end(), body.begin(), body.end());
  return f;
}
bytes concat(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// What a node answers to a request of `type`, as far as this test needs.
bytes good_answer(std::uint8_t type, const std::string& self) {
  switch (type) {
    case 0: {  // LEADER -> SERVER: this node
      bytes b;
      put64(b, 1);
      put_text(b, self);
      return frame(1, b);
    }
    case 3: return frame(4, bytes(8, 0));  // OPEN -> DB
    case 16: {                             // CLUSTER -> SERVERS: this node, a voter
      bytes b;
      put64(b, 1);
      put64(b, 1);
      put_text(b, self);
      put64(b, 0);
      return frame(3, b);
    }
    case 5:
    case 8: {  // EXEC, EXEC_SQL -> RESULT
      bytes b;
      put64(b, 1);
      put64(b, 1);
      return frame(6, b);
    }
    default: {  // QUERY, QUERY_SQL -> ROWS: one column "v", one row 7, DONE
      bytes b;
      put64(b, 1);
      put_text(b, "v");
      put64(b, 1);  // row header: INTEGER
      put64(b, 7);
      put64(b, 0xffffffffffffffffULL);
      return frame(7, b);
    }
  }
}

// Reads the handshake, then answers the requests of opening a connection (LEADER, OPEN,
// CLUSTER) and the first n statements. True when the next statement has come and is left
// unanswered; false when the client closed the connection first.
bool answer_statements(fake_peer& peer, const std::string& self, int n) {
  if (peer.read_exact(8).size() < 8) return false;
  int statements = 0;
  for (;;) {
    auto req = peer.read_frame();
    if (req.size() < 8) return false;
    const std::uint8_t type = req[4];
    if (type != 0 && type != 3 && type != 16 && ++statements > n) return true;
    peer.write(good_answer(type, self));
  }
}

// A server that answers every request until the first one of type `last`, which it
// answers and then closes the connection. `self` is read when a LEADER request comes.
std::function<void(fake_peer&)> close_after_first(std::uint8_t last, const std::string& self) {
  return [last, &self](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    for (;;) {
      auto req = peer.read_frame();
      if (req.size() < 8) return;
      const std::uint8_t type = req[4];
      peer.write(good_answer(type, self));
      if (type == last) return;
    }
  };
}

struct scenario {
  const char* name;
  // Writes the answer to the first statement request (type), given the good answer.
  std::function<void(fake_peer&, std::uint8_t type, const bytes& good)> answer;
  // The error a read-only operation must end with (a write's answer being lost, writes
  // end with errc::outcome_unknown instead); nothing: a server error code.
  std::function<bool(const dqlite::error_code&)> expected;
  bool stays_open = false;  // the connection is usable afterwards
};

bool protocol_like(const dqlite::error_code& ec) {
  return dqlite::is_protocol_error(ec) || ec == dqlite::errc::unexpected_response;
}

std::vector<scenario> scenarios() {
  std::vector<scenario> out;
  out.push_back({"random bytes",
                 [](fake_peer& p, std::uint8_t, const bytes&) {
                   std::mt19937 rng(42);
                   bytes b(64);
                   for (auto& c : b) c = static_cast<unsigned char>(rng());
                   b[4] = 200;  // no response type is that large
                   p.write(b);
                 },
                 protocol_like});
  out.push_back({"a header announcing 2^32-1 words",
                 [](fake_peer& p, std::uint8_t, const bytes&) { p.write(header(0xffffffffu, 7)); },
                 [](const dqlite::error_code& ec) { return ec == dqlite::errc::frame_too_large; }});
  out.push_back({"a valid header, then one byte a second",
                 [](fake_peer& p, std::uint8_t, const bytes& good) {
                   p.write(bytes(good.begin(), good.begin() + 8));
                   for (std::size_t i = 8; i < good.size() && i < 10; ++i) {
                     std::this_thread::sleep_for(1s);
                     if (!p.write(bytes{good[i]})) return;
                   }
                 },
                 [](const dqlite::error_code& ec) { return ec == dqlite::errc::timeout; }});
  out.push_back({"a truncated frame, then close",
                 [](fake_peer& p, std::uint8_t, const bytes& good) {
                   p.write(bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() - 4)));
                   p.close();
                 },
                 [](const dqlite::error_code& ec) { return ec == dqlite::errc::connection_closed; }});
  out.push_back({"a text without its NUL",
                 [](fake_peer& p, std::uint8_t, const bytes&) {
                   bytes b;
                   put64(b, 1);
                   put64(b, 0x4141414141414141ULL);
                   p.write(frame(7, b));
                 },
                 protocol_like});
  out.push_back({"a FAILURE with a 4 MiB message",
                 [](fake_peer& p, std::uint8_t, const bytes&) {
                   bytes b;
                   put64(b, 1);
                   put_text(b, std::string(4 << 20, 'x'));
                   p.write(frame(0, b));
                 },
                 [](const dqlite::error_code& ec) {
                   return ec.category() == dqlite::server_category() && ec.value() == 1;
                 },
                 true});
  out.push_back({"the right answer with trailing garbage",
                 [](fake_peer& p, std::uint8_t, const bytes& good) {
                   p.write(concat(good, bytes(16, 0x5a)));
                 },
                 [](const dqlite::error_code& ec) { return ec == dqlite::errc::trailing_bytes; }});
  out.push_back({"an answer of the wrong type",
                 [](fake_peer& p, std::uint8_t, const bytes&) { p.write(frame(8, bytes(8, 0))); },
                 protocol_like});
  out.push_back({"an unrequested answer after the right one",
                 [](fake_peer& p, std::uint8_t type, const bytes& good) {
                   p.write(concat(good, good_answer(type == 8 || type == 5 ? 5 : 9, "x")));
                 },
                 [](const dqlite::error_code& ec) { return ec == dqlite::errc::trailing_bytes; }});
  return out;
}

// A node that answers LEADER, OPEN and CLUSTER, then plays the scenario on the first
// statement request, then keeps silent (unless the scenario closed the connection).
fake_server::script hostile_node(const scenario& sc, const std::string* self) {
  return fake_server::script([&sc, self](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;  // protocol version
    for (;;) {
      auto req = peer.read_frame();
      if (req.size() < 8) return;
      const std::uint8_t type = req[4];
      if (type == 0 || type == 3 || type == 16) {
        peer.write(good_answer(type, *self));
        continue;
      }
      sc.answer(peer, type, good_answer(type, *self));
      fake_server::silent()(peer);
      return;
    }
  });
}

dqlite::connection_options fast_opts() {
  dqlite::connection_options o;
  o.database = "x";
  o.connect_timeout = 1500ms;
  o.request_timeout = 1500ms;
  return o;
}

struct result {
  dqlite::error_code ec;
  std::string diag;
  bool open_after = false;
  long long ms = 0;
};

using operation = std::function<asio::awaitable<result>(asio::any_io_executor, std::string)>;

struct op_case {
  const char* name;
  bool writes;
  operation run;
};

template <class F>
asio::awaitable<result> on_connection(asio::any_io_executor ex, std::string address, F f) {
  dqlite::connection conn(fast_opts(), ex);
  co_await conn.async_connect(address);
  auto start = std::chrono::steady_clock::now();
  dqlite::error_code ec = co_await f(conn);
  co_return result{ec, conn.diagnostics().message(), conn.is_open(), dqlite_test::elapsed_ms(start)};
}

struct item {
  std::int64_t v;
};

std::vector<op_case> operations() {
  return {
      {"execute", true,
       [](asio::any_io_executor ex, std::string a) {
         return on_connection(ex, a, [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
           auto [ec, r] = co_await c.async_execute("INSERT INTO t VALUES (1)", asio::as_tuple(asio::use_awaitable));
           co_return ec;
         });
       }},
      {"fetchall", false,
       [](asio::any_io_executor ex, std::string a) {
         return on_connection(ex, a, [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
           auto [ec, r] = co_await c.async_fetchall("SELECT v FROM t", asio::as_tuple(asio::use_awaitable));
           co_return ec;
         });
       }},
      {"fetch<T>", false,
       [](asio::any_io_executor ex, std::string a) {
         return on_connection(ex, a, [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
           auto [ec, r] = co_await c.async_fetch<item>("SELECT v FROM t", asio::as_tuple(asio::use_awaitable));
           co_return ec;
         });
       }},
      {"cursor", false,
       [](asio::any_io_executor ex, std::string a) {
         return on_connection(ex, a, [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
           auto [ec, cur] = co_await c.async_cursor<item>("SELECT v FROM t", asio::as_tuple(asio::use_awaitable));
           if (ec) co_return ec;
           auto [ec2, batch] = co_await cur.async_next(asio::as_tuple(asio::use_awaitable));
           co_return ec2;
         });
       }},
      {"blocking fetchval", false,
       [](asio::any_io_executor, std::string a) -> asio::awaitable<result> {
         auto conn = dqlite::connect(a, fast_opts());
         auto start = std::chrono::steady_clock::now();
         dqlite::error_code ec;
         dqlite::diagnostics d;
         (void)conn.fetchval<std::int64_t>("SELECT v FROM t", ec, d);
         co_return result{ec, d.message(), conn.is_open(), dqlite_test::elapsed_ms(start)};
       }},
      {"pool execute", true,
       [](asio::any_io_executor ex, std::string a) -> asio::awaitable<result> {
         dqlite::pool_options po;
         po.database = "x";
         po.max_size = 1;
         po.retry_reads = false;
         po.cluster.connection = fast_opts();
         po.cluster.connection.database = "x";
         const std::vector<std::string> nodes{a};
         auto pool = co_await dqlite::async_create_pool(ex, nodes, po);
         auto start = std::chrono::steady_clock::now();
         auto t = co_await pool.async_execute("INSERT INTO t VALUES (1)", asio::as_tuple(asio::use_awaitable));
         result r{std::get<0>(t), {}, false, dqlite_test::elapsed_ms(start)};
         co_await pool.async_close(asio::as_tuple(asio::use_awaitable));
         co_return r;
       }},
  };
}

}  // namespace

TEST_CASE("hostile answers against every operation end with a specific error", "[hostile]") {
  for (const auto& sc : scenarios()) {
    for (const auto& op : operations()) {
      std::string self;
      fake_server server(hostile_node(sc, &self));
      self = server.address();
      INFO(op.name << " against " << sc.name);
      result r = dqlite_test::run(
          [&](asio::any_io_executor ex) -> asio::awaitable<result> { return op.run(ex, self); });
      INFO("-> " << r.ec.message() << " [" << r.ec.category().name() << ":" << r.ec.value()
                 << "] " << r.diag.substr(0, 300) << " after " << r.ms << " ms");
      REQUIRE(r.ec);
      const bool lost = !sc.stays_open;
      if (op.writes && lost) {
        CHECK(r.ec == dqlite::errc::outcome_unknown);
      } else {
        CHECK(sc.expected(r.ec));
      }
      if (sc.stays_open) CHECK(r.diag.size() < 70'000);  // a bounded prefix of the message
      if (!sc.stays_open) CHECK_FALSE(r.open_after);
      CHECK(r.ms < 60'000);  // a hang guard: the timeouts are 1.5 s
    }
  }
}

TEST_CASE("an answer that comes unasked after the response is refused by the next request",
          "[hostile]") {
  std::string self;
  fake_server server([&self](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    for (int n = 0;; ++n) {
      auto req = peer.read_frame();
      if (req.size() < 8) return;
      const std::uint8_t type = req[4];
      peer.write(good_answer(type, self));
      if (type == 8 && n == 1) {  // the first statement: a stray RESULT, a while later
        std::this_thread::sleep_for(200ms);
        peer.write(good_answer(8, self));
      }
    }
  });
  self = server.address();
  for (bool blocking : {false, true}) {
    INFO((blocking ? "blocking" : "async"));
    result r = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<result> {
      dqlite::connection conn(fast_opts(), ex);
      if (blocking)
        conn.connect(self);
      else
        co_await conn.async_connect(self);
      auto first = blocking ? conn.execute("INSERT INTO t VALUES (1)")
                            : co_await conn.async_execute("INSERT INTO t VALUES (1)");
      CHECK(first.last_insert_id == 1);
      co_await asio::steady_timer(ex, 600ms).async_wait(asio::use_awaitable);
      dqlite::error_code ec;
      dqlite::diagnostics d;
      if (blocking) {
        conn.execute("INSERT INTO t VALUES (2)", ec, d);
      } else {
        auto [e, res] = co_await conn.async_execute("INSERT INTO t VALUES (2)",
                                                    asio::as_tuple(asio::use_awaitable));
        ec = e;
        d = conn.diagnostics();
      }
      co_return result{ec, d.message(), conn.is_open(), 0};
    });
    // Refused before the request was sent: not an unknown outcome.
    CHECK(r.ec == dqlite::errc::trailing_bytes);
    CHECK_FALSE(r.open_after);
    CHECK_THAT(r.diag, Catch::Contains("unasked"));
  }
}

TEST_CASE("a cursor whose connection was opened again fails at once", "[hostile]") {
  std::string self;
  fake_server server([&self](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    for (;;) {
      auto req = peer.read_frame();
      if (req.size() < 8) return;
      const std::uint8_t type = req[4];
      if (type != 9) {
        peer.write(good_answer(type, self));
        continue;
      }
      // A result that goes on: PART frames, then silence.
      bytes b;
      put64(b, 1);
      put_text(b, "v");
      put64(b, 1);
      put64(b, 7);
      put64(b, 0xeeeeeeeeeeeeeeeeULL);
      peer.write(concat(frame(7, b), frame(7, b)));
    }
  });
  self = server.address();
  for (bool blocking : {false, true}) {
    INFO((blocking ? "blocking" : "async"));
    dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto o = fast_opts();
      o.request_timeout = std::chrono::milliseconds(0);  // a read would wait for ever
      dqlite::connection conn(o, ex);
      co_await conn.async_connect(self);
      auto cur = co_await conn.async_cursor<item>("SELECT v FROM t");
      auto b1 = co_await cur.async_next();
      CHECK(b1.size() == 1);
      conn.close();
      co_await conn.async_connect(self);
      auto start = std::chrono::steady_clock::now();
      dqlite::error_code ec;
      dqlite::diagnostics d;
      if (blocking) {
        (void)cur.next(ec, d);
      } else {
        auto [e, batch] = co_await cur.async_next(asio::as_tuple(asio::use_awaitable));
        ec = e;
        d = conn.diagnostics();
      }
      CHECK(ec == dqlite::errc::not_connected);
      CHECK(dqlite_test::elapsed_ms(start) < 30'000);  // a hang guard
      CHECK(conn.is_open());  // the new opening is untouched
      auto res = co_await conn.async_execute("INSERT INTO t VALUES (7)");
      CHECK(res.last_insert_id == 1);
    });
  }
}

TEST_CASE("closing a connection under a running operation completes it as cancelled",
          "[hostile]") {
  std::string self;
  fake_server server([&self](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    auto req = peer.read_frame();
    if (req.size() < 8) return;
    peer.write(good_answer(req[4], self));  // OPEN
    fake_server::silent()(peer);
  });
  self = server.address();
  auto r = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<result> {
    dqlite::connection conn(fast_opts(), ex);
    co_await conn.async_connect(self);
    asio::steady_timer t(ex, 100ms);
    t.async_wait([&](auto) { conn.close(); });
    auto [ec, v] = co_await conn.async_fetchval<std::int64_t>("SELECT 1",
                                                              asio::as_tuple(asio::use_awaitable));
    co_return result{ec, conn.diagnostics().message(), conn.is_open(), 0};
  });
  CHECK(r.ec == dqlite::errc::cancelled);
  CHECK(dqlite::is_cancelled(r.ec));
  CHECK_FALSE(dqlite::is_retryable(r.ec));
  CHECK_THAT(r.diag, Catch::Contains("closed"));
}

// Requests that follow one another at once share one timer wait (it is not re-armed per
// request); the deadline must still hold for the one the server never answers.
TEST_CASE("a request that follows others at once still times out", "[hostile]") {
  std::string self;
  fake_server server([&self](fake_peer& peer) {
    if (answer_statements(peer, self, 3)) fake_server::silent()(peer);
  });
  self = server.address();
  auto r = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<result> {
    dqlite::connection conn(fast_opts(), ex);
    co_await conn.async_connect(self);
    for (int i = 0; i < 3; ++i) {
      auto v = co_await conn.async_fetchval<std::int64_t>("SELECT v FROM t");
      CHECK(v == 7);
    }
    auto start = std::chrono::steady_clock::now();
    auto [ec, v] = co_await conn.async_fetchval<std::int64_t>("SELECT v FROM t",
                                                              asio::as_tuple(asio::use_awaitable));
    co_return result{ec, conn.diagnostics().message(), conn.is_open(),
                     dqlite_test::elapsed_ms(start)};
  });
  CHECK(r.ec == dqlite::errc::timeout);
  CHECK_FALSE(r.open_after);
  CHECK(r.ms >= 1000);    // not ended by a wait armed for an earlier request
  CHECK(r.ms < 60'000);   // a hang guard: the timeout is 1.5 s
}

// A request started from the previous one's completion, but after synchronous work in
// that handler, still looks for a close while the connection was idle: a write to a
// server that has closed is refused before it is sent, not "outcome unknown".
TEST_CASE("a request after work in the previous completion finds a server that closed",
          "[hostile]") {
  std::string self;
  fake_server server(close_after_first(8, self));  // EXEC_SQL
  self = server.address();
  auto r = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<result> {
    dqlite::connection conn(fast_opts(), ex);
    co_await conn.async_connect(self);
    auto first = co_await conn.async_execute("INSERT INTO t VALUES (1)");
    CHECK(first.last_insert_id == 1);
    std::this_thread::sleep_for(300ms);  // work in the same resumption; the close arrives
    auto [ec, res] = co_await conn.async_execute("INSERT INTO t VALUES (2)",
                                                 asio::as_tuple(asio::use_awaitable));
    co_return result{ec, conn.diagnostics().message(), conn.is_open(), 0};
  });
  CHECK(r.ec == dqlite::errc::connection_closed);
  CHECK(dqlite::is_retryable(r.ec));
  CHECK_THAT(r.diag, Catch::Contains("nothing was sent"));
}

// The blocking forms skip the look for bytes the server sent unasked (and so for a close
// while the connection was idle) only for a read-only request that follows the previous
// answer at once, as the asynchronous ones do; a write always looks, so that a close is
// refused before anything is sent instead of ending as "outcome unknown". The server
// answers the first query, then closes; the client waits until the close has arrived and
// then makes the previous answer look recent (the mark the blocking driver sets).
TEST_CASE("a blocking write that follows an answer at once still finds a server that closed",
          "[hostile]") {
  std::string self;
  fake_server server(close_after_first(9, self));  // QUERY_SQL
  self = server.address();
  struct variant {
    const char* name;
    bool write;
    bool at_once;
    bool looks;  // the request must find the close before sending
  };
  for (const variant& v : {variant{"a write at once", true, true, true},
                           variant{"a read after a pause", false, false, true},
                           variant{"a read at once", false, true, false}}) {
    INFO(v.name);
    auto conn = dqlite::connect(self, fast_opts());
    CHECK(conn.fetchval<std::int64_t>("SELECT v FROM t") == 7);
    std::this_thread::sleep_for(300ms);  // the close arrives
    // A mark in the future stays inside the window, however long this thread is held up.
    if (v.at_once)
      dqlite::detail::last_blocking_answer.answered = std::chrono::steady_clock::now() + 1min;
    dqlite::error_code ec;
    dqlite::diagnostics d;
    if (v.write)
      conn.execute("INSERT INTO t VALUES (2)", ec, d);
    else
      (void)conn.fetchval<std::int64_t>("SELECT v FROM t", ec, d);
    REQUIRE(ec);
    CHECK(dqlite::is_retryable(ec));
    if (v.looks) {
      CHECK(ec == dqlite::errc::connection_closed);
      CHECK_THAT(d.message(), Catch::Contains("nothing was sent"));
    } else {
      CHECK_THAT(d.message(), !Catch::Contains("nothing was sent"));
    }
  }
}

// The blocking forms wait for an answer inside recv(2), on a descriptor in blocking mode
// under a receive timeout shorter than the time left; when that timeout passes, poll(2)
// waits for the rest. A request the server does not answer must still end at its deadline
// with errc::timeout: not at the receive timeout, and not never (the server closes the
// connection 10 s later, which a wait without a bound would end with instead).
TEST_CASE("a blocking request that waits inside recv still ends at its deadline", "[hostile]") {
  std::string self;
  fake_server server([&self](fake_peer& peer) {
    if (answer_statements(peer, self, 3)) peer.wait_closed(10s);
  });
  self = server.address();
  auto conn = dqlite::connect(self, fast_opts());
  for (int i = 0; i < 3; ++i) CHECK(conn.fetchval<std::int64_t>("SELECT v FROM t") == 7);
  const int fd = static_cast<int>(conn.stream().native_handle());
  CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);  // the waits are inside recv(2)
  dqlite::error_code ec;
  dqlite::diagnostics d;
  auto start = std::chrono::steady_clock::now();
  (void)conn.fetchval<std::int64_t>("SELECT v FROM t", ec, d);
  auto ms = dqlite_test::elapsed_ms(start);
  INFO(ec.message() << ": " << d.message() << " after " << ms << " ms");
  CHECK(ec == dqlite::errc::timeout);
  CHECK_FALSE(conn.is_open());
  CHECK(ms >= 1490);  // the request timeout (1.5 s) decides, not the receive timeout
}

// One connection used in turn by the blocking forms and by asynchronous operations: the
// descriptor the blocking forms put in blocking mode must not block the io_context's thread
// when an asynchronous operation follows (Asio makes it non-blocking again), and the
// blocking forms must still read their answers after it, also when the descriptor was made
// non-blocking behind their back. The server answers the asynchronous request only once a
// timer on the same io_context has fired: if the io_context's thread were blocked in a read
// of the socket, the timer could not fire before the answer came.
TEST_CASE("blocking and asynchronous operations take turns on one connection", "[hostile]") {
  std::string self;
  std::promise<void> timer_fired;
  auto fired = timer_fired.get_future();
  std::atomic<bool> answered_after_timer{false};
  fake_server server([&](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    int statements = 0;
    for (;;) {
      auto req = peer.read_frame(std::chrono::milliseconds(30'000));
      if (req.size() < 8) return;
      const std::uint8_t type = req[4];
      const bool statement = type != 0 && type != 3 && type != 16;
      if (statement && ++statements == 2)
        answered_after_timer =
            fired.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
      if (statement && statements == 4) std::this_thread::sleep_for(500ms);  // see below
      peer.write(good_answer(type, self));
    }
  });
  self = server.address();
  auto o = fast_opts();
  o.request_timeout = 30s;
  asio::io_context io;
  dqlite::connection conn(o, io.get_executor());
  conn.connect(self);
  CHECK(conn.fetchval<std::int64_t>("SELECT v FROM t") == 7);  // blocking: statement 1
  const int fd = static_cast<int>(conn.stream().native_handle());
  CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);

  std::optional<std::int64_t> async_value;
  dqlite::error_code async_ec;
  asio::steady_timer timer(io, 20ms);
  timer.async_wait([&](dqlite::error_code) { timer_fired.set_value(); });
  conn.async_fetchval<std::int64_t>("SELECT v FROM t",  // statement 2
                                    [&](dqlite::error_code e, std::int64_t v) {
                                      async_ec = e;
                                      if (!e) async_value = v;
                                    });
  io.run();
  CHECK_FALSE(async_ec);
  CHECK(async_value == 7);
  CHECK(answered_after_timer);
  CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);  // Asio's, for its operations

  CHECK(conn.fetchval<std::int64_t>("SELECT v FROM t") == 7);  // blocking again: statement 3
  CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
  // Non-blocking behind the blocking forms' back: statement 4, answered 0.5 s late, finds
  // no answer at its first receive (EAGAIN at once, not the end of its receive timeout)
  // and waits with poll(2), not in a loop of receives: this thread's CPU time over the
  // wait stays far below the wait (a loop would spin for most of it, even on a busy
  // machine); statement 5 is read as usual.
  conn.stream().non_blocking(true);
  auto thread_cpu_ms = [] {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
  };
  const double cpu0 = thread_cpu_ms();
  CHECK(conn.fetchval<std::int64_t>("SELECT v FROM t") == 7);
  const double cpu = thread_cpu_ms() - cpu0;
  INFO("CPU time of statement 4: " << cpu << " ms");
  CHECK(cpu < 50);
  CHECK(conn.fetchval<std::int64_t>("SELECT v FROM t") == 7);
}
