// The logging and tracing hooks without a real server: the hook references, the lazy
// messages, what a trace says of each request frame, and the events of a connection to a
// scripted server (asynchronous and blocking).
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fake_server.hpp"
#include "support/rows_frames.hpp"
#include "support/run.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
using bytes = std::vector<unsigned char>;
using dqlite_test::fake_peer;
using dqlite_test::fake_server;

namespace {

int plain_calls = 0;
void plain_log(dqlite::log_level, std::string_view, std::string_view) noexcept {
  ++plain_calls;
}

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
    std::uint32_t stmt;
    std::size_t params;
    std::string node;
    std::uint64_t sequence;
    bool blocking;
    std::uint64_t rows;
    std::uint64_t sent;
    std::uint64_t received;
    dqlite::error_code error;
    std::string message;
  };
  std::vector<trace> traces;

  void operator()(dqlite::log_level l, std::string_view e, std::string_view m) noexcept {
    logs.push_back({l, std::string(e), std::string(m)});
  }
  void operator()(const dqlite::request_trace& t) noexcept {
    traces.push_back({t.at, std::string(t.request), std::string(t.sql), t.statement_id,
                      t.parameters, std::string(t.node), t.sequence, t.blocking, t.rows,
                      t.bytes_sent, t.bytes_received, t.error, std::string(t.message)});
  }
  std::vector<std::string> events() const {
    std::vector<std::string> out;
    for (auto& l : logs) out.push_back(l.event);
    return out;
  }
};

bytes header(std::uint32_t words, std::uint8_t type) {
  return {static_cast<unsigned char>(words),
          static_cast<unsigned char>(words >> 8),
          static_cast<unsigned char>(words >> 16),
          static_cast<unsigned char>(words >> 24),
          type,
          0,
          0,
          0};
}

bytes frame(std::uint8_t type, const std::vector<std::byte>& body) {
  auto f = header(static_cast<std::uint32_t>(body.size() / 8), type);
  for (auto b : body) f.push_back(static_cast<unsigned char>(b));
  return f;
}

bool accept_handshake(fake_peer& peer) {
  if (peer.read_exact(8).size() < 8) return false;
  if (peer.read_frame().empty()) return false;
  peer.write(frame(4, std::vector<std::byte>(8)));
  return true;
}

/// Answers every request with two rows (one frame), then goes silent on the third.
void two_rows_then_silence(fake_peer& peer) {
  if (!accept_handshake(peer)) return;
  for (int i = 0; i < 2; ++i) {
    if (peer.read_frame().empty()) return;
    dqlite_test::rows_builder rb({"a"});
    rb.row(std::int64_t{1});
    rb.row(std::int64_t{2});
    peer.write(frame(7, rb.finish().front()));
  }
  fake_server::silent()(peer);
}

dqlite::connection_options hooked(recorder& r) {
  dqlite::connection_options o;
  o.database = "x";
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.request_timeout = std::chrono::milliseconds(300);
  o.log = r;
  o.log_threshold = dqlite::log_level::debug;
  o.trace = r;
  return o;
}

}  // namespace

TEST_CASE("observe: hook references", "[observe]") {
  dqlite::log_function none;
  CHECK(!none);
  dqlite::log_function f = plain_log;
  REQUIRE(f);
  plain_calls = 0;
  f(dqlite::log_level::info, "e", "m");
  CHECK(plain_calls == 1);
  dqlite::log_function captureless = [](dqlite::log_level, std::string_view,
                                        std::string_view) noexcept { ++plain_calls; };
  captureless(dqlite::log_level::info, "e", "m");
  CHECK(plain_calls == 2);
  recorder r;
  dqlite::log_function by_ref = r;
  by_ref(dqlite::log_level::warning, "ev", "msg");
  REQUIRE(r.logs.size() == 1);
  CHECK(r.logs[0].event == "ev");
  CHECK(r.logs[0].level == dqlite::log_level::warning);
  // A temporary with state would dangle: refused.
  int n = 0;
  auto stateful = [&n](dqlite::log_level, std::string_view, std::string_view) noexcept { ++n; };
  static_assert(!std::is_constructible_v<dqlite::log_function, decltype(stateful)&&>);
  static_assert(std::is_constructible_v<dqlite::log_function, decltype(stateful)&>);
  static_assert(std::is_trivially_copyable_v<dqlite::log_function>);
  static_assert(std::is_trivially_copyable_v<dqlite::trace_function>);
  CHECK(dqlite::to_string(dqlite::log_level::warning) == "warning");
}

TEST_CASE("observe: messages are built only for delivered events", "[observe]") {
  recorder r;
  int built = 0;
  auto make = [&] {
    ++built;
    return std::string("text");
  };
  dqlite::detail::logger unset;
  unset(dqlite::log_level::error, "e", make);
  CHECK(built == 0);
  dqlite::detail::logger lg{r, dqlite::log_level::warning};
  lg(dqlite::log_level::info, "e", make);
  lg(dqlite::log_level::debug, "e", make);
  CHECK(built == 0);
  lg(dqlite::log_level::warning, "w", make);
  lg(dqlite::log_level::error, "x", make);
  CHECK(built == 2);
  CHECK(r.events() == std::vector<std::string>{"w", "x"});
  dqlite::detail::logger off{r, dqlite::log_level::off};
  off(dqlite::log_level::error, "e", make);
  CHECK(built == 2);
}

TEST_CASE("observe: a trace describes each request frame", "[observe]") {
  using namespace dqlite;
  detail::trace_span sp;
  wire::buffer b;
  wire::frame_mark m{};
  REQUIRE(!wire::begin_sql_request(b, wire::request::query_sql, 0, "SELECT ?, ?", m));
  REQUIRE(!detail::write_params(b, m, std::int64_t{1}, std::string_view("two")));
  wire::end_frame(b, m);
  detail::describe_request(wire::bytes_view(b), sp);
  CHECK(sp.request == "QUERY_SQL");
  CHECK(sp.sql == "SELECT ?, ?");
  CHECK(sp.params == 2);

  b.clear();
  REQUIRE(!wire::begin_sql_request(b, wire::request::exec_sql, 0, "DELETE FROM t", m));
  wire::end_frame(b, m);
  detail::describe_request(wire::bytes_view(b), sp);
  CHECK(sp.request == "EXEC_SQL");
  CHECK(sp.sql == "DELETE FROM t");
  CHECK(sp.params == 0);

  b.clear();
  m = wire::begin_stmt_request(b, wire::request::exec, 0, 42);
  std::vector<value> many(300, value(std::int64_t{7}));
  REQUIRE(!detail::write_params(b, m, params_from(many)));
  wire::end_frame(b, m);
  detail::describe_request(wire::bytes_view(b), sp);
  CHECK(sp.request == "EXEC");
  CHECK(sp.sql.empty());
  CHECK(sp.stmt == 42);
  CHECK(sp.params == 300);

  b.clear();
  wire::encode_leader(b);
  detail::describe_request(wire::bytes_view(b), sp);
  CHECK(sp.request == "LEADER");
  CHECK(sp.params == 0);
}

TEST_CASE("observe: an asynchronous connection traces each request and logs its timeout",
          "[observe]") {
  fake_server server(two_rows_then_silence);
  recorder r;
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection conn(hooked(r), ex);
    co_await conn.async_connect(server.address());
    auto rows = co_await conn.async_fetchall("SELECT a FROM t WHERE a > ?", 0);
    CHECK(rows.size() == 2);
    auto n = co_await conn.async_fetchval<std::int64_t>("SELECT a FROM t");
    CHECK(n == 1);
    auto [ec, more] = co_await conn.async_fetchall("SELECT 3", asio::as_tuple(asio::use_awaitable));
    CHECK(ec == dqlite::errc::timeout);
  });
  const std::string addr = server.address();
  CHECK(r.events() == std::vector<std::string>{"connect", "connected", "timeout"});
  CHECK(r.logs[0].message == "connecting to " + addr);
  CHECK(r.logs[1].message == "connected to " + addr + " (database x)");
  CHECK(r.logs[2].level == dqlite::log_level::warning);
  CHECK_THAT(r.logs[2].message, Catch::Contains("300 ms"));

  REQUIRE(r.traces.size() == 6);
  using phase = dqlite::request_trace::phase;
  CHECK(r.traces[0].at == phase::start);
  CHECK(r.traces[0].request == "QUERY_SQL");
  CHECK(r.traces[0].sql == "SELECT a FROM t WHERE a > ?");
  CHECK(r.traces[0].params == 1);
  CHECK(r.traces[0].node == addr);
  CHECK(!r.traces[0].blocking);
  CHECK(r.traces[1].at == phase::end);
  CHECK(r.traces[1].sequence == r.traces[0].sequence);
  CHECK(r.traces[1].sql == "SELECT a FROM t WHERE a > ?");
  CHECK(r.traces[1].rows == 2);
  CHECK(r.traces[1].sent > 0);
  CHECK(r.traces[1].received == 8 + 8 + 8 + 2 * 16 + 8);  // header, columns, rows, DONE
  CHECK(!r.traces[1].error);
  CHECK(r.traces[3].rows == 2);  // fetchval reads past the second row
  CHECK(r.traces[3].sequence > r.traces[1].sequence);
  CHECK(r.traces[4].sql == "SELECT 3");
  CHECK(r.traces[5].error == dqlite::errc::timeout);
  CHECK_THAT(r.traces[5].message, Catch::Contains("300 ms"));
}

TEST_CASE("observe: blocking requests are traced too", "[observe]") {
  fake_server server(two_rows_then_silence);
  recorder r;
  auto conn = dqlite::connect(server.address(), hooked(r));
  auto rows = conn.fetchall("SELECT a FROM t");
  CHECK(rows.size() == 2);
  CHECK(r.events() == std::vector<std::string>{"connect", "connected"});
  REQUIRE(r.traces.size() == 2);
  CHECK(r.traces[0].blocking);
  CHECK(r.traces[1].blocking);
  CHECK(r.traces[1].rows == 2);
  CHECK(r.traces[1].request == "QUERY_SQL");
}

TEST_CASE("observe: a connect failure is logged, and without a hook there is no event",
          "[observe]") {
  recorder r;
  fake_server server([](fake_peer& peer) { (void)peer; });  // closes at once
  auto o = hooked(r);
  o.log_threshold = dqlite::log_level::warning;
  dqlite::error_code ec;
  dqlite::diagnostics d;
  dqlite::connection conn(dqlite::own_io_context, o);
  conn.connect(server.address(), ec, d);
  CHECK(ec);
  REQUIRE(r.events() == std::vector<std::string>{"connect_failed"});
  CHECK_THAT(r.logs[0].message,
             Catch::StartsWith("connecting to " + server.address() + " failed: "));
  CHECK(r.traces.empty());  // connecting is not a traced request
}
