// What a real server cannot show: silent servers, malformed and oversized frames,
// truncated streams, unexpected responses. A scripted loopback server plays the node.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fake_server.hpp"
#include "support/run.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using bytes = std::vector<unsigned char>;
using dqlite_test::fake_peer;
using dqlite_test::fake_server;

namespace {

void put64(bytes& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

bytes header(std::uint32_t words, std::uint8_t type, std::uint8_t schema = 0) {
  return {static_cast<unsigned char>(words), static_cast<unsigned char>(words >> 8),
          static_cast<unsigned char>(words >> 16), static_cast<unsigned char>(words >> 24),
          type, schema, 0, 0};
}

bytes frame(std::uint8_t type, const bytes& body) {
  auto f = header(static_cast<std::uint32_t>(body.size() / 8), type);
  f.insert(f.end(), body.begin(), body.end());
  return f;
}

bytes db_response() { return frame(4, bytes(8, 0)); }

/// A FAILURE response: the code, then the message (NUL-terminated, padded to 8 bytes).
bytes failure_response(std::uint64_t code, const char* msg) {
  bytes body;
  put64(body, code);
  body.insert(body.end(), msg, msg + std::char_traits<char>::length(msg) + 1);
  body.resize((body.size() + 7) / 8 * 8, 0);
  return frame(0, body);
}

/// Reads the handshake (version + OPEN) and answers DB: the connection is open.
bool accept_handshake(fake_peer& peer) {
  if (peer.read_exact(8).size() < 8) return false;
  if (peer.read_frame().empty()) return false;
  peer.write(db_response());
  return true;
}

dqlite::connection_options fast_opts() {
  dqlite::connection_options o;
  o.database = "x";
  o.connect_timeout = std::chrono::milliseconds(700);
  o.request_timeout = std::chrono::milliseconds(700);
  return o;
}

/// Connects to the fake server, runs one query, returns its error (and the connection state).
struct outcome {
  dqlite::error_code ec;
  std::string diag;
  bool open_after = false;
  long long ms = 0;
};

outcome query_against(fake_server& server, const char* sql = "SELECT 1",
                      dqlite::connection_options o = fast_opts()) {
  return dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<outcome> {
    dqlite::connection conn(o, ex);
    co_await conn.async_connect(server.address());
    auto start = std::chrono::steady_clock::now();
    auto [ec, rows] = co_await conn.async_fetchall(sql, asio::as_tuple(asio::use_awaitable));
    outcome out{ec, conn.diagnostics().message(), conn.is_open(), dqlite_test::elapsed_ms(start)};
    co_return out;
  });
}

}  // namespace

TEST_CASE("a silent server ends the connect with a timeout", "[faults]") {
  fake_server server(fake_server::silent());
  auto start = std::chrono::steady_clock::now();
  try {
    dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      co_await dqlite::async_connect(ex, server.address(), fast_opts());
    });
    FAIL("expected a timeout");
  } catch (const dqlite::error& e) {
    CHECK(e.code() == dqlite::errc::timeout);
    // The transport connected and the request went out: the message says what was left
    // unanswered.
    CHECK_THAT(std::string(e.what()),
               Catch::Contains("connected to " + server.address() +
                               ", but no answer to the dqlite handshake and OPEN of database "
                               "'x' within 700 ms (connect_timeout)"));
  }
  auto ms = dqlite_test::elapsed_ms(start);
  CHECK(ms >= 600);
  CHECK(ms < 5000);
}

TEST_CASE("a peer that answers the handshake with text is named as perhaps not a dqlite node",
          "[faults]") {
  // An HTTP server (or a proxy) where a node was expected: its answer read as a frame header
  // announces a frame of gigabytes.
  fake_server server([](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    peer.read_frame();
    const std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    peer.write(bytes(answer.begin(), answer.end()));
    fake_server::silent()(peer);
  });
  try {
    dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      co_await dqlite::async_connect(ex, server.address(), fast_opts());
    });
    FAIL("expected the connect to fail");
  } catch (const dqlite::error& e) {
    CHECK(e.code() == dqlite::errc::frame_too_large);
    // (As much of the text as was read with the header, up to 16 bytes.)
    CHECK_THAT(std::string(e.what()), Catch::Contains("the answer begins with the text \"HTTP/1.1"));
    CHECK_THAT(std::string(e.what()), Catch::Contains("\": the peer may not be a dqlite node"));
  }
}

namespace {

/// Opens a connection to a peer that reads the handshake, answers `answer` and closes: the
/// error and the connection's diagnostics.
std::pair<dqlite::error_code, std::string> answer_handshake_and_close(bytes answer) {
  fake_server server([answer](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    peer.read_frame();
    peer.write(answer);
    peer.close();
  });
  std::pair<dqlite::error_code, std::string> out;
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection conn(fast_opts(), ex);
    auto [e] = co_await conn.async_connect(server.address(), asio::as_tuple(asio::use_awaitable));
    out = {e, conn.diagnostics().message()};
  });
  return out;
}

}  // namespace

TEST_CASE("a peer that answers the handshake with a TLS alert is named as perhaps a TLS node",
          "[faults]") {
  // A TLS server that receives a plain handshake answers with an alert record and closes.
  auto [ec, message] = answer_handshake_and_close({0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46});
  CHECK(ec == dqlite::errc::connection_closed);
  CHECK_THAT(message, Catch::Contains("the answer is a TLS alert: the node may expect TLS"));
}

TEST_CASE("a dqlite frame cut short is not taken for another protocol", "[faults]") {
  auto [ec, message] = answer_handshake_and_close({0x01, 0x00, 0x00, 0x00, 0x04});  // a DB's start
  CHECK(ec == dqlite::errc::connection_closed);
  CHECK_THAT(message, Catch::Contains("closed the connection while reading the response"));
  CHECK_THAT(message, !Catch::Contains("dqlite node") && !Catch::Contains("TLS"));
}

TEST_CASE("a server that stops answering after the handshake times the request out", "[faults]") {
  fake_server server([](fake_peer& peer) {
    if (accept_handshake(peer)) fake_server::silent()(peer);
  });
  auto out = query_against(server);
  CHECK(out.ec == dqlite::errc::timeout);
  CHECK(!out.open_after);
  CHECK(out.ms >= 600);
  CHECK(out.ms < 5000);
  CHECK_THAT(out.diag, Catch::Contains("700 ms"));
}

TEST_CASE("a server closing the connection mid-response", "[faults]") {
  fake_server server([](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    peer.read_frame();
    auto f = frame(7, bytes(64, 0));
    f.resize(20);  // truncated
    peer.write(f);
    peer.close();
  });
  auto out = query_against(server);
  CHECK(out.ec == dqlite::errc::connection_closed);
  CHECK(!out.open_after);
}

TEST_CASE("a probe of the server that fails ends the request that waited for it",
          "[faults]") {
  // More than 255 parameters on a server not probed yet: the client first asks whether
  // the server reads them (QUERY_SQL "SELECT ?" with one parameter in schema 1). The
  // server closes the connection on that question: the request is never sent, and the
  // operation completes once, with the probe's error and no rows.
  std::atomic<int> frames_after_handshake{0};
  std::atomic<unsigned> first_type{0};
  std::atomic<unsigned> first_schema{0};
  fake_server server([&](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    auto probe = peer.read_frame();
    if (probe.size() >= 8) {
      first_type = probe[4];
      first_schema = probe[5];
    }
    ++frames_after_handshake;
    peer.close();
  });
  std::vector<dqlite::value> values(300, dqlite::value(std::int64_t{7}));
  std::string sql = "SELECT ?";
  for (int i = 1; i < 300; ++i) sql += " + ?";
  int calls = 0;
  dqlite::error_code ec;
  std::vector<std::int64_t> rows{42};
  dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dqlite::connection conn(fast_opts(), ex);
    co_await conn.async_connect(server.address());
    std::tie(ec, rows) = co_await conn.async_fetch<std::int64_t>(
        sql, dqlite::params_from(values), asio::as_tuple(asio::use_awaitable));
    ++calls;
    CHECK(!conn.is_open());
  });
  CHECK(calls == 1);
  CHECK(ec == dqlite::errc::connection_closed);
  CHECK(rows.empty());
  CHECK(frames_after_handshake == 1);
  CHECK(first_type == 9);    // QUERY_SQL: the probe, not the request (no parameter of 300)
  CHECK(first_schema == 1);  // its one parameter in the encoding for more than 255
}

TEST_CASE("a request waiting for its probe when the io_context is destroyed is freed, not run",
          "[faults]") {
  // The server reads the probe and never answers. The connection, then the io_context, are
  // destroyed with the probe pending: the caller's handler is destroyed (what it holds is
  // released), never called, and the request is never sent.
  std::atomic<bool> probe_read{false};
  std::atomic<int> frames_after_handshake{0};
  fake_server server([&](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().empty()) return;
    ++frames_after_handshake;
    probe_read = true;
    while (!peer.read_frame().empty()) ++frames_after_handshake;  // until the client closes
  });
  std::vector<dqlite::value> values(300, dqlite::value(std::int64_t{7}));
  std::string sql = "SELECT ?";
  for (int i = 1; i < 300; ++i) sql += " + ?";
  auto held = std::make_shared<int>(0);
  std::weak_ptr<int> watch = held;
  bool called = false;
  {
    asio::io_context io;
    auto opts = fast_opts();
    opts.request_timeout = std::chrono::seconds(60);  // the probe cannot end on its own
    dqlite::connection conn(opts, io.get_executor());
    dqlite::error_code connect_ec = make_error_code(dqlite::errc::timeout);
    conn.async_connect(server.address(), [&](dqlite::error_code ec) { connect_ec = ec; });
    io.run();
    REQUIRE(!connect_ec);
    io.restart();
    conn.async_fetch<std::int64_t>(sql, dqlite::params_from(values),
                                   [&called, held](dqlite::error_code, std::vector<std::int64_t>) {
                                     called = true;
                                   });
    held.reset();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!probe_read && std::chrono::steady_clock::now() < until)
      io.run_for(std::chrono::milliseconds(10));
    REQUIRE(probe_read);
    CHECK(!watch.expired());  // the pending operation holds the handler
  }
  CHECK(!called);
  CHECK(watch.expired());
  CHECK(frames_after_handshake == 1);
}

TEST_CASE("an oversized frame is refused before it is read", "[faults]") {
  fake_server server([](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    peer.read_frame();
    peer.write(header(0x10000000u, 7));  // 2 GiB announced
    fake_server::silent()(peer);
  });
  auto out = query_against(server);
  CHECK(out.ec == dqlite::errc::frame_too_large);
  CHECK(!out.open_after);
  CHECK_THAT(out.diag, Catch::Contains("max_frame_size"));
}

TEST_CASE("malformed responses give specific errors and close the connection", "[faults]") {
  struct scenario {
    const char* name;
    bytes response;
    dqlite::errc expected;
  };
  bytes bad_text_rows;  // ROWS: 1 column whose name has no NUL
  put64(bad_text_rows, 1);
  put64(bad_text_rows, 0x4141414141414141ULL);
  bytes unknown_value;  // ROWS: 1 column "a", row header with type 7
  put64(unknown_value, 1);
  put64(unknown_value, 0x61);
  put64(unknown_value, 7);
  put64(unknown_value, 0);
  put64(unknown_value, 0xffffffffffffffffULL);
  bytes no_marker;  // ROWS: 1 column, one INTEGER row, no end marker
  put64(no_marker, 1);
  put64(no_marker, 0x61);
  put64(no_marker, 1);
  put64(no_marker, 5);
  bytes result_body(16, 0);
  std::vector<scenario> cases{
      {"unknown response type", frame(42, bytes(8, 0)), dqlite::errc::unknown_message_type},
      {"a text without NUL", frame(7, bad_text_rows), dqlite::errc::missing_nul},
      {"an unknown value type", frame(7, unknown_value), dqlite::errc::unknown_value_type},
      {"rows without end marker", frame(7, no_marker), dqlite::errc::invalid_row_marker},
      {"RESULT where ROWS was expected", frame(6, result_body), dqlite::errc::unexpected_response},
  };
  for (auto& c : cases) {
    SECTION(c.name) {
      fake_server server([resp = c.response](fake_peer& peer) {
        if (!accept_handshake(peer)) return;
        peer.read_frame();
        peer.write(resp);
        fake_server::silent()(peer);
      });
      auto out = query_against(server);
      CHECK(out.ec == c.expected);
      CHECK(!out.open_after);
      CHECK(dqlite::is_connection_error(out.ec));
    }
  }
}

TEST_CASE("a FAILURE response is the operation's error and the connection stays open", "[faults]") {
  fake_server server([](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    peer.read_frame();
    peer.write(failure_response(19, "UNIQUE constraint failed: t.id"));
    fake_server::silent()(peer);
  });
  auto out = query_against(server);
  CHECK(out.ec.category() == dqlite::server_category());
  CHECK(out.ec.value() == 19);
  CHECK(dqlite::is_constraint(out.ec));
  CHECK(out.diag == "UNIQUE constraint failed: t.id");
  CHECK(out.open_after);
}

TEST_CASE("an OPEN refused by the server fails the connect", "[faults]") {
  fake_server server([](fake_peer& peer) {
    peer.read_exact(8);
    peer.read_frame();
    peer.write(failure_response(10250, "not leader"));
    fake_server::silent()(peer);
  });
  try {
    dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      co_await dqlite::async_connect(ex, server.address(), fast_opts());
    });
    FAIL("expected an error");
  } catch (const dqlite::error& e) {
    CHECK(dqlite::is_not_leader(e.code()));
    CHECK_THAT(std::string(e.what()), Catch::Contains("not leader"));
  }
}

TEST_CASE("a server that closes at once", "[faults]") {
  fake_server server(fake_server::close_immediately());
  try {
    dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      co_await dqlite::async_connect(ex, server.address(), fast_opts());
    });
    FAIL("expected an error");
  } catch (const dqlite::error& e) {
    bool closed = e.code() == dqlite::errc::connection_closed ||
                  e.code() == asio::error::broken_pipe || e.code() == asio::error::connection_reset;
    CHECK(closed);
  }
}

namespace {

using tcp = asio::ip::tcp;
using tcp_steps = dqlite::detail::connect_steps<tcp::socket>;
using tcp_impl = dqlite::detail::connection_impl<tcp::socket>;

/// Stands for the I/O loop's composed operation around the connect steps: a failed
/// connect goes back to the steps (as io_loop_op hands it to try_next), and the outcome
/// that would resume the connect machine is recorded.
struct steps_driver {
  tcp_steps* steps;
  tcp_impl* c;
  std::vector<dqlite::error_code>* outcomes;
  int* completions;
  const asio::cancellation_type* cancel;  ///< what the operation's cancelled() says
  std::function<void()> on_failure = {};  ///< runs when a connect has failed, before the next
  asio::cancellation_type cancelled() const noexcept { return *cancel; }
  void operator()(dqlite::error_code ec) {
    ++*completions;
    if (ec && on_failure) on_failure();
    if (ec && steps->try_next(*c, *this, ec, true)) return;
    outcomes->push_back(ec);
  }
};

/// A loopback endpoint nothing listens on: a connect to it is refused at once.
tcp::endpoint refusing_endpoint(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto ep = a.local_endpoint();
  a.close();
  return ep;
}

struct resolved_run {
  std::vector<dqlite::error_code> outcomes;
  int completions = 0;
  tcp::endpoint connected_to{};
};

/// Hands `endpoints` to the connect steps as a resolver's answer for "multi", and runs.
/// cancel: the operation's cancellation state; close_after_failure: the connection is
/// closed (as by its deadline, or by close()) when a connect has failed.
resolved_run connect_resolved(asio::io_context& io, const std::vector<tcp::endpoint>& endpoints,
                              asio::cancellation_type cancel = asio::cancellation_type::none,
                              bool close_after_failure = false) {
  auto c = std::make_shared<tcp_impl>(fast_opts(), io.get_executor());
  tcp_steps steps;
  resolved_run r;
  steps_driver self{&steps, c.get(), &r.outcomes, &r.completions, &cancel};
  if (close_after_failure)
    self.on_failure = [&] {
      dqlite::error_code ignored;
      c->stream.close(ignored);
    };
  int machine = 0;  // unused by this step
  steps.on_completion(*c, machine, self, {},
                      tcp::resolver::results_type::create(endpoints.begin(), endpoints.end(),
                                                          "multi", "1"));
  io.run();
  dqlite::error_code ignored;
  r.connected_to = c->stream.remote_endpoint(ignored);
  return r;
}

}  // namespace

TEST_CASE("a resolved name is connected through the first of its addresses that accepts",
          "[faults]") {
  asio::io_context io;
  tcp::acceptor listening(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto r = connect_resolved(io, {refusing_endpoint(io), refusing_endpoint(io),
                                 listening.local_endpoint(), refusing_endpoint(io)});
  CHECK(r.completions == 3);  // two refused, then connected; the fourth never tried
  REQUIRE(r.outcomes.size() == 1);
  CHECK_FALSE(r.outcomes[0]);
  CHECK(r.connected_to == listening.local_endpoint());
}

TEST_CASE("a resolved name whose addresses all refuse fails with the last refusal",
          "[faults]") {
  asio::io_context io;
  auto r = connect_resolved(io, {refusing_endpoint(io), refusing_endpoint(io)});
  CHECK(r.completions == 2);
  REQUIRE(r.outcomes.size() == 1);
  CHECK(r.outcomes[0] == asio::error::connection_refused);
}

TEST_CASE("a cancellation stops the walk over resolved addresses", "[faults]") {
  // Cancelled while the name was resolved (which the resolver cannot take): no connect is
  // tried, and the outcome is an abort, not a resolver's failure.
  asio::io_context io;
  tcp::acceptor listening(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto r = connect_resolved(io, {listening.local_endpoint()}, asio::cancellation_type::terminal);
  CHECK(r.completions == 1);
  REQUIRE(r.outcomes.size() == 1);
  CHECK(r.outcomes[0] == asio::error::operation_aborted);
  CHECK(r.connected_to == tcp::endpoint{});
}

TEST_CASE("a connection closed during the walk over resolved addresses is not reopened",
          "[faults]") {
  asio::io_context io;
  tcp::acceptor listening(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto r = connect_resolved(io, {refusing_endpoint(io), listening.local_endpoint()},
                            asio::cancellation_type::none, true);
  CHECK(r.completions == 1);
  REQUIRE(r.outcomes.size() == 1);
  CHECK(r.outcomes[0] == asio::error::operation_aborted);
  CHECK(r.connected_to == tcp::endpoint{});
}

TEST_CASE("a resolver's empty answer fails as a host not found", "[faults]") {
  asio::io_context io;
  auto r = connect_resolved(io, {});
  CHECK(r.completions == 1);
  REQUIRE(r.outcomes.size() == 1);
  CHECK(r.outcomes[0] == asio::error::host_not_found);
}

TEST_CASE("a connection whose connect failed says why in broken_by and in its next error",
          "[faults]") {
  asio::io_context io;
  dqlite::connection conn(fast_opts(), io.get_executor());
  dqlite::error_code connect_ec, exec_ec;
  std::string exec_diag;
  // Never opened: an operation fails, and nothing broke the connection.
  conn.async_execute("SELECT 1", [&](dqlite::error_code ec, dqlite::exec_result) { exec_ec = ec; });
  io.run();
  io.restart();
  CHECK(exec_ec == dqlite::errc::not_connected);
  CHECK(!conn.broken_by());

  SECTION("refused by the transport") {
    const std::string address = "127.0.0.1:" + std::to_string(refusing_endpoint(io).port());
    conn.async_connect(address, [&](dqlite::error_code ec) { connect_ec = ec; });
    io.run();
    CHECK(connect_ec == asio::error::connection_refused);
  }
  SECTION("refused by the server (OPEN answered with a failure)") {
    // A code that does not break an open connection (SQLITE_CANTOPEN), and one that does
    // (not leader).
    const std::uint64_t code = GENERATE(14, 10250);
    fake_server server([code](fake_peer& peer) {
      peer.read_exact(8);
      peer.read_frame();
      peer.write(failure_response(code, "refused"));
      fake_server::silent()(peer);
    });
    conn.async_connect(server.address(), [&](dqlite::error_code ec) { connect_ec = ec; });
    io.run();
    CHECK(connect_ec.value() == static_cast<int>(code));
  }
  SECTION("an invalid address") {
    conn.async_connect("no-port", [&](dqlite::error_code ec) { connect_ec = ec; });
    io.run();
    CHECK(connect_ec == dqlite::errc::invalid_address);
  }
  REQUIRE(connect_ec);
  CHECK(!conn.is_open());
  CHECK(conn.broken_by() == connect_ec);
  io.restart();
  conn.async_execute("SELECT 1", [&](dqlite::error_code ec, dqlite::exec_result) {
    exec_ec = ec;
    exec_diag = conn.diagnostics().message();
  });
  io.run();
  CHECK(exec_ec == dqlite::errc::not_connected);
  CHECK_THAT(exec_diag, Catch::Contains("the connection is not open") &&
                            Catch::Contains(connect_ec.message()));
}

TEST_CASE("a connect cancelled during the dqlite handshake names the node", "[faults]") {
  std::atomic<bool> handshake_read{false};
  fake_server server([&](fake_peer& peer) {
    if (peer.read_exact(8).size() < 8) return;
    handshake_read = true;
    fake_server::silent()(peer);
  });
  asio::io_context io;
  auto opts = fast_opts();
  opts.connect_timeout = std::chrono::seconds(60);  // only the cancellation can end it
  dqlite::connection conn(opts, io.get_executor());
  asio::cancellation_signal cancel;
  dqlite::error_code connect_ec;
  bool done = false;
  conn.async_connect(server.address(),
                     asio::bind_cancellation_slot(cancel.slot(), [&](dqlite::error_code ec) {
                       connect_ec = ec;
                       done = true;
                     }));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!handshake_read && std::chrono::steady_clock::now() < until)
    io.run_for(std::chrono::milliseconds(10));
  REQUIRE(handshake_read);
  cancel.emit(asio::cancellation_type::terminal);
  io.run_for(std::chrono::seconds(20));
  REQUIRE(done);
  CHECK(connect_ec == dqlite::errc::cancelled);
  CHECK(!conn.is_open());
  CHECK(conn.broken_by() == dqlite::errc::cancelled);
  CHECK_THAT(conn.diagnostics().message(), Catch::Contains(server.address()));
}
