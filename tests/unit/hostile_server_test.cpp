// A scripted hostile server on loopback, seen through a connection: frames without rows,
// endless results, huge column counts and messages. Where the point is memory, the client
// runs in a child process whose peak memory is measured (dqlite_test::peak_memory).
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/fake_server.hpp"
#include "support/hostile_frames.hpp"
#include "support/peak_memory.hpp"
#include "support/run.hpp"

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using bytes = std::vector<unsigned char>;
using dqlite::errc;
using dqlite_test::fake_peer;
using dqlite_test::fake_server;
using dqlite_test::rows_frame;

namespace {

bytes frame(std::uint8_t type, const std::vector<std::byte>& body) {
  const auto words = static_cast<std::uint32_t>(body.size() / 8);
  bytes f{static_cast<unsigned char>(words),
          static_cast<unsigned char>(words >> 8),
          static_cast<unsigned char>(words >> 16),
          static_cast<unsigned char>(words >> 24),
          type,
          0,
          0,
          0};
  for (auto b : body) f.push_back(static_cast<unsigned char>(b));
  return f;
}

bytes rows(const std::vector<std::byte>& body) {
  return frame(7, body);
}

bytes empty_response() {
  return frame(8, std::vector<std::byte>(8));
}

bytes result_response(std::uint64_t last_insert_id) {
  dqlite::wire::buffer b;
  dqlite::wire::put_u64(b, last_insert_id);
  dqlite::wire::put_u64(b, 1);
  return frame(6, b);
}

bytes failure_response(std::uint64_t code, const std::string& message) {
  dqlite::wire::buffer b;
  dqlite::wire::put_u64(b, code);
  dqlite::wire::put_text(b, message);
  return frame(0, b);
}

/// Reads the handshake (version + OPEN) and answers DB: the connection is open.
bool accept_handshake(fake_peer& peer) {
  if (peer.read_exact(8).size() < 8) return false;
  if (peer.read_frame().size() < 8) return false;
  peer.write(frame(4, std::vector<std::byte>(8)));
  return true;
}

std::uint8_t request_type(const bytes& f) {
  return f.size() >= 8 ? f[4] : 0xff;
}

bool client_sent_something(fake_peer& peer) {
  pollfd p{peer.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

/// Answers the first request with PART frames for as long as the client reads them. When
/// the client sends INTERRUPT, ends the result (DONE, EMPTY) and answers the next request
/// with RESULT(last_insert_id 77).
fake_server::script endless_rows(bytes part) {
  return [part = std::move(part)](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().size() < 8) return;
    while (!peer.stopping()) {
      if (client_sent_something(peer)) {
        auto f = peer.read_frame();
        if (request_type(f) != 10) return;  // not an INTERRUPT
        peer.write(rows(rows_frame({"v"}).done()));
        peer.write(empty_response());
        if (peer.read_frame().size() < 8) return;
        peer.write(result_response(77));
        fake_server::silent()(peer);
        return;
      }
      if (!peer.write(part)) return;
    }
  };
}

dqlite::connection_options opts_for_test() {
  dqlite::connection_options o;
  o.database = "x";
  o.connect_timeout = std::chrono::milliseconds(5000);
  // A hang guard far above the time the operations take.
  o.request_timeout = std::chrono::milliseconds(20000);
  return o;
}

struct op_outcome {
  dqlite::error_code ec;
  std::string diag;
  std::size_t rows = 0;
  bool open_after = false;
  dqlite::error_code next_ec;  ///< of an execute after the operation
  std::uint64_t next_insert_id = 0;
};

}  // namespace

TEST_CASE("server: a cursor reads past PART frames without rows to the end of the result",
          "[hostile][cursor]") {
  fake_server server([](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().size() < 8) return;
    peer.write(rows(rows_frame({"v"}).integer(1).integer(2).part()));
    peer.write(rows(rows_frame({"v"}).part()));
    peer.write(rows(rows_frame({"v"}).part()));
    peer.write(rows(rows_frame({"v"}).integer(3).part()));
    peer.write(rows(rows_frame({"v"}).done()));
    if (peer.read_frame().size() < 8) return;
    peer.write(result_response(77));
    fake_server::silent()(peer);
  });
  auto out = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<op_outcome> {
    dqlite::connection conn(opts_for_test(), ex);
    co_await conn.async_connect(server.address());
    op_outcome o;
    auto cur = co_await conn.async_cursor<std::int64_t>("SELECT v FROM t");
    for (;;) {
      auto [ec, batch] = co_await cur.async_next(asio::as_tuple(asio::use_awaitable));
      o.ec = ec;
      if (ec || batch.empty()) break;
      o.rows += batch.size();
    }
    auto [ec2, r] =
        co_await conn.async_execute("UPDATE t SET v = 0", asio::as_tuple(asio::use_awaitable));
    o.next_ec = ec2;
    o.next_insert_id = r.last_insert_id;
    co_return o;
  });
  CHECK(!out.ec);
  CHECK(out.rows == 3);
  CHECK(!out.next_ec);
  CHECK(out.next_insert_id == 77);
}

TEST_CASE("server: against an endless result, fetches end at their caps, the connection "
          "stays usable",
          "[hostile][caps]") {
  rows_frame part({"v"});
  for (int i = 0; i < 256; ++i) part.integer(i);
  fake_server server(endless_rows(rows(part.part())));

  enum class op { fetchone, fetchval, fetch_typed, fetchall, fetch_into };
  for (op which : {op::fetchone, op::fetchval, op::fetch_typed, op::fetchall, op::fetch_into}) {
    CAPTURE(static_cast<int>(which));
    auto out = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<op_outcome> {
      auto o = opts_for_test();
      o.max_result_rows = 1000;
      dqlite::connection conn(o, ex);
      co_await conn.async_connect(server.address());
      op_outcome r;
      auto tok = asio::as_tuple(asio::use_awaitable);
      switch (which) {
        case op::fetchone:
          r.ec = std::get<0>(co_await conn.async_fetchone<std::int64_t>("SELECT", tok));
          break;
        case op::fetchval:
          r.ec = std::get<0>(co_await conn.async_fetchval<std::int64_t>("SELECT", tok));
          break;
        case op::fetch_typed:
          r.ec = std::get<0>(co_await conn.async_fetch<std::int64_t>("SELECT", tok));
          break;
        case op::fetchall: r.ec = std::get<0>(co_await conn.async_fetchall("SELECT", tok)); break;
        case op::fetch_into: {
          std::vector<std::int64_t> v;
          r.ec = std::get<0>(co_await conn.async_fetch_into<std::int64_t>(v, "SELECT", tok));
          r.rows = v.size();
          break;
        }
      }
      r.diag = conn.diagnostics().message();
      r.open_after = conn.is_open();
      auto [ec2, res] = co_await conn.async_execute("UPDATE t SET v = 0", tok);
      r.next_ec = ec2;
      r.next_insert_id = res.last_insert_id;
      co_return r;
    });
    CHECK(out.ec == errc::result_too_large);
    CHECK_THAT(out.diag, Catch::Contains("max_result_rows (1000)"));
    CHECK(out.open_after);
    if (which == op::fetch_into) CHECK(out.rows == 1000);
    // The rest of the result was interrupted before the next request, which is answered.
    CHECK(!out.next_ec);
    CHECK(out.next_insert_id == 77);
  }
}

TEST_CASE("server: an endless result into fetchall and fetch<T> holds no more than "
          "max_result_bytes",
          "[hostile][caps][memory]") {
  // 1 MiB frames of one-NULL rows: 16 bytes each on the wire, several times that in memory.
  rows_frame part({"n"});
  for (int i = 0; i < 65535; ++i) part.null();
  fake_server server(endless_rows(rows(part.part())));
  constexpr std::size_t cap = 32u << 20;

  for (bool typed : {false, true}) {
    CAPTURE(typed);
    auto m = dqlite_test::peak_memory([&] {
      return dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<std::string> {
        auto o = opts_for_test();
        o.max_result_bytes = cap;
        dqlite::connection conn(o, ex);
        co_await conn.async_connect(server.address());
        auto tok = asio::as_tuple(asio::use_awaitable);
        dqlite::error_code ec;
        if (typed)
          ec = std::get<0>(
              co_await conn.async_fetch<std::tuple<std::optional<std::string>>>("SELECT", tok));
        else
          ec = std::get<0>(co_await conn.async_fetchall("SELECT", tok));
        co_return ec == errc::result_too_large ? std::string() : "unexpected: " + ec.message();
      });
    });
    REQUIRE(m.ok());
    CHECK(m.message == "");
    INFO("peak memory growth: " << m.growth_mib() << " MiB for a cap of 32 MiB");
    // The rows (at most the cap), one frame in the read buffer, a vector's old block
    // while it grows, and the process's own.
    CHECK(m.growth_below_mib(56));
  }
}

TEST_CASE("server: a cursor over an endless result keeps flat memory",
          "[hostile][cursor][memory]") {
  rows_frame part({"n"});
  for (int i = 0; i < 65535; ++i) part.null();  // 1 MiB frames
  fake_server server(endless_rows(rows(part.part())));
  auto m = dqlite_test::peak_memory([&] {
    return dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<std::string> {
      dqlite::connection conn(opts_for_test(), ex);
      co_await conn.async_connect(server.address());
      auto cur = co_await conn.async_cursor("SELECT");
      std::size_t rows = 0;
      for (int i = 0; i < 200; ++i) {  // 200 MiB of frames, 13 M rows
        auto batch = co_await cur.async_next();
        if (batch.empty()) co_return std::string("an empty batch before the end");
        rows += batch.size();
      }
      co_return rows == 200u * 65535u ? std::string() : "rows: " + std::to_string(rows);
    });
  });
  REQUIRE(m.ok());
  CHECK(m.message == "");
  INFO("peak memory growth: " << m.growth_mib() << " MiB for 200 batches of 1 MiB frames");
  // One batch (65535 dynamic rows) and the read buffer, whatever the number of batches.
  CHECK(m.growth_below_mib(32));
}

TEST_CASE("server: a frame of 8.4 M empty column names is refused without amplification",
          "[hostile][columns][memory]") {
  // The largest frame max_frame_size allows: a count, 8388606 empty names, a marker.
  constexpr std::uint64_t names = (dqlite::wire::default_max_frame_size - 16) / 8;
  std::vector<std::byte> body;
  body.reserve(dqlite::wire::default_max_frame_size);
  dqlite::wire::put_u64(body, names);
  body.resize(8 + names * 8, std::byte{0});
  dqlite::wire::put_u64(body, dqlite::wire::rows_done_marker);
  REQUIRE(body.size() == dqlite::wire::default_max_frame_size);
  const bytes wide = rows(body);
  body = {};
  fake_server server([&wide](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().size() < 8) return;
    peer.write(wide);
    fake_server::silent()(peer);
  });

  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    auto m = dqlite_test::peak_memory([&] {
      return dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<std::string> {
        dqlite::connection conn(opts_for_test(), ex);
        co_await conn.async_connect(server.address());
        auto tok = asio::as_tuple(asio::use_awaitable);
        dqlite::error_code ec;
        if (which == 0)
          ec = std::get<0>(co_await conn.async_fetchall("SELECT", tok));
        else
          ec = std::get<0>(co_await conn.async_cursor("SELECT", tok));
        std::string d = conn.diagnostics().message();
        if (ec != errc::too_many_columns) co_return "unexpected: " + ec.message() + ": " + d;
        if (d.find("max_result_columns (32767)") == std::string::npos) co_return "text: " + d;
        if (conn.is_open()) co_return "the connection is still open";
        co_return std::string();
      });
    });
    REQUIRE(m.ok());
    CHECK(m.message == "");
    INFO("peak memory growth: " << m.growth_mib() << " MiB for a 64 MiB frame");
    // The frame itself is read into memory (64 MiB); nothing is built from its names.
    CHECK(m.growth_below_mib(64 + 16));
  }
}

TEST_CASE("server: a ROWS frame announcing 2^60 columns", "[hostile][columns]") {
  fake_server server([](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().size() < 8) return;
    std::vector<std::byte> body;
    dqlite::wire::put_u64(body, std::uint64_t{1} << 60);
    dqlite::wire::put_u64(body, dqlite::wire::rows_done_marker);
    peer.write(rows(body));
    fake_server::silent()(peer);
  });
  auto out = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<op_outcome> {
    dqlite::connection conn(opts_for_test(), ex);
    co_await conn.async_connect(server.address());
    op_outcome o;
    o.ec = std::get<0>(
        co_await conn.async_fetch<std::int64_t>("SELECT", asio::as_tuple(asio::use_awaitable)));
    o.diag = conn.diagnostics().message();
    o.open_after = conn.is_open();
    co_return o;
  });
  CHECK(out.ec == errc::too_many_columns);
  CHECK_THAT(out.diag, Catch::Contains(std::to_string(std::uint64_t{1} << 60) + " columns"));
  CHECK(!out.open_after);
}

TEST_CASE("server: a FAILURE with a huge message is kept to a bounded prefix",
          "[hostile][failure]") {
  const std::string huge(16u << 20, 'e');
  fake_server server([&huge](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().size() < 8) return;
    peer.write(failure_response(1, huge));
    fake_server::silent()(peer);
  });
  auto out = dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<op_outcome> {
    dqlite::connection conn(opts_for_test(), ex);
    co_await conn.async_connect(server.address());
    op_outcome o;
    o.ec = std::get<0>(co_await conn.async_fetchall("SELECT", asio::as_tuple(asio::use_awaitable)));
    o.diag = conn.diagnostics().message();
    o.open_after = conn.is_open();
    co_return o;
  });
  CHECK(out.ec.category() == dqlite::server_category());
  CHECK(out.ec.value() == 1);
  CHECK(out.diag.size() <= dqlite::wire::max_message_size + 64);
  CHECK(out.diag.substr(0, 100) == huge.substr(0, 100));
  CHECK(out.open_after);
}
