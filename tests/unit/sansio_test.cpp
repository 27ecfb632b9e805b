// The request exchange and the connect sequence as state machines, driven without sockets.
// For every operation a clean run is counted step by step, then the run is repeated with a
// fault injected at each step: a network error, the timeout, and each way a cancellation
// can arrive (as an aborted I/O, or while an I/O was completing). Each run checks the
// final error, that the connection is closed exactly when it must be, and that nothing is
// written once the machine has asked for the connection to be closed.
#include <dqlite/client.hpp>

#include <catch2/catch.hpp>

#include "support/rows_frames.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wire = dqlite::wire;
using dqlite::errc;
using dqlite::error_code;
using dqlite::make_error_code;
using namespace dqlite::detail;

namespace {

using bytes = std::vector<std::byte>;

bytes frame(wire::response type, const bytes& body, std::uint8_t schema = 0) {
  bytes out;
  wire::put_u32(out, static_cast<std::uint32_t>(body.size() / 8));
  out.push_back(static_cast<std::byte>(type));
  out.push_back(static_cast<std::byte>(schema));
  out.push_back(std::byte{0});
  out.push_back(std::byte{0});
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

bytes u64_body(std::initializer_list<std::uint64_t> values) {
  bytes b;
  for (auto v : values) wire::put_u64(b, v);
  return b;
}

bytes result_frame(std::uint64_t id, std::uint64_t changes) {
  return frame(wire::response::result, u64_body({id, changes}));
}
bytes empty_frame() { return frame(wire::response::empty, u64_body({0})); }
bytes failure_frame(std::uint64_t code, std::string_view msg) {
  bytes b = u64_body({code});
  wire::put_text(b, msg);
  return frame(wire::response::failure, b);
}
bytes rows_frames(int n, std::size_t frame_limit = 4096) {
  dqlite_test::rows_builder rb({"id", "name"}, frame_limit);
  for (int i = 0; i < n; ++i) rb.row(std::int64_t{i}, "row " + std::to_string(i));
  bytes out;
  for (auto& body : rb.finish()) {
    auto f = frame(wire::response::rows, body);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

/// Frames of a result that goes on: PART frames only, no DONE.
bytes part_frames(int n) {
  dqlite_test::rows_builder rb({"id", "name"}, 512);
  for (int i = 0; i < n; ++i) rb.row(std::int64_t{i}, "row " + std::to_string(i));
  auto bodies = rb.finish();
  bodies.pop_back();
  bytes out;
  for (auto& body : bodies) {
    auto f = frame(wire::response::rows, body);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

bytes concat(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// The request frames found in bytes the client wrote (the protocol version word of a
/// handshake skipped).
std::vector<std::uint8_t> request_types(const bytes& sent, bool handshake) {
  std::vector<std::uint8_t> types;
  std::size_t at = handshake ? 8 : 0;
  while (at + 8 <= sent.size()) {
    std::uint32_t words = wire::load_u32(sent.data() + at);
    types.push_back(static_cast<std::uint8_t>(sent[at + 4]));
    at += 8 + std::size_t{words} * 8;
  }
  return types;
}

/// A fault to inject at one step.
enum class fault { none, network, timeout, cancel_aborted, cancel_late };

const char* name(fault f) {
  switch (f) {
    case fault::none: return "none";
    case fault::network: return "network error";
    case fault::timeout: return "timeout";
    case fault::cancel_aborted: return "cancellation (aborted I/O)";
    case fault::cancel_late: return "cancellation (while completing)";
  }
  return "?";
}

/// A scripted peer: the bytes it answers with, given what the client wrote so far.
struct peer_script {
  /// Answer to the whole request (written by the time the client reads).
  bytes response;
  /// Answer to an INTERRUPT: what is left of the result, then EMPTY.
  bytes interrupt_answer = empty_frame();
};

/// What a run ended with.
struct outcome {
  error_code ec;
  bool closed = false;              ///< the machine asked for the transport to be closed
  bool wrote_after_close = false;   ///< a write was asked for after that
  int steps = 0;                    ///< I/O actions performed
  std::chrono::milliseconds rearm{0};  ///< a timer bound the machine asked for
  std::vector<std::chrono::milliseconds> rearms;  ///< every one, in order
  bool interrupted = false;         ///< an INTERRUPT was written
  bytes sent;
};

/// Drives a machine over a scripted peer, injecting `f` at I/O step `at` (0-based).
/// chunk: how many bytes each read delivers at most.
template <class Machine>
outcome drive(session_state& s, Machine& m, const peer_script& peer, fault f, int at,
              std::size_t chunk = 1 << 20) {
  outcome out;
  bytes incoming;
  std::size_t delivered = 0;
  bool cancel_pending = false;  // a cancellation was emitted and not yet withdrawn
  io_event ev{io_event::kind::start, {}, 0, false};
  for (int guard = 0; guard < 100000; ++guard) {
    io_action a = m.resume(ev);
    if (s.close_requested) out.closed = true;
    if (auto r = m.take_rearm(); r.count() != 0) {
      out.rearms.push_back(r);
      if (r.count() > 0) out.rearm = r;
    }
    if (a.what == io_action::kind::done) {
      out.ec = a.ec;
      return out;
    }
    if (!m.cancellable()) cancel_pending = false;  // the loop disables cancellation
    const bool inject = out.steps == at;
    ++out.steps;
    ev = io_event{};
    ev.cancel_requested = cancel_pending;
    const error_code aborted(ECANCELED, boost::system::system_category());
    switch (a.what) {
      case io_action::kind::write: {
        if (out.closed) out.wrote_after_close = true;
        ev.what = io_event::kind::wrote;
        if (inject && f == fault::network) {
          ev.ec = error_code(EPIPE, boost::system::system_category());
          ev.n = a.out.size() / 2;
          out.sent.insert(out.sent.end(), a.out.begin(), a.out.begin() + ev.n);
          break;
        }
        if (inject && f == fault::timeout) {
          s.timed_out = true;
          ev.ec = aborted;
          break;
        }
        out.sent.insert(out.sent.end(), a.out.begin(), a.out.end());
        ev.n = a.out.size();
        // What the peer answers once this is written.
        std::uint8_t type = a.out.size() >= 8 ? static_cast<std::uint8_t>(a.out[4]) : 0;
        bool is_interrupt = a.out.size() >= 8 &&
                            type == static_cast<std::uint8_t>(wire::request::interrupt);
        if (is_interrupt) {
          out.interrupted = true;
          incoming.insert(incoming.end(), peer.interrupt_answer.begin(),
                          peer.interrupt_answer.end());
        } else {
          incoming.insert(incoming.end(), peer.response.begin(), peer.response.end());
        }
        if (inject && f == fault::cancel_aborted) {
          cancel_pending = true;
          ev.cancel_requested = true;
          ev.ec = aborted;  // completed in full, then reported as aborted
        } else if (inject && f == fault::cancel_late) {
          cancel_pending = true;
          ev.cancel_requested = true;
        }
        break;
      }
      case io_action::kind::read: {
        ev.what = io_event::kind::read;
        if (inject && f == fault::network) {
          ev.ec = error_code(ECONNRESET, boost::system::system_category());
          break;
        }
        if (inject && f == fault::timeout) {
          s.timed_out = true;
          ev.ec = aborted;
          break;
        }
        if (inject && f == fault::cancel_aborted) {
          cancel_pending = true;
          ev.cancel_requested = true;
          ev.ec = aborted;
          break;
        }
        if (delivered == incoming.size()) {  // a silent peer: the read would never end
          s.timed_out = true;
          ev.ec = aborted;
          break;
        }
        auto space = s.rbuf.prepare(a.need);
        std::size_t n = std::min({space.size(), chunk, incoming.size() - delivered});
        std::copy_n(incoming.begin() + static_cast<std::ptrdiff_t>(delivered), n, space.begin());
        delivered += n;
        ev.n = n;
        if (inject && f == fault::cancel_late) {
          cancel_pending = true;
          ev.cancel_requested = true;
        }
        break;
      }
      default: FAIL("unexpected action"); return out;
    }
  }
  FAIL("the machine did not finish");
  return out;
}

dqlite::connection_options test_options() {
  dqlite::connection_options o;
  o.database = "test";
  o.request_timeout = std::chrono::milliseconds(1000);
  return o;
}

/// A session as it is after a successful handshake.
struct open_session : session_state {
  open_session() : session_state(test_options()) {
    state = conn_state::open;
    peer = "127.0.0.1:9001";
    generation = 1;
  }
};

/// One operation of the connection, as its initiation sets it up.
struct operation {
  std::string name;
  bool may_write = false;
  bool interruptible = false;
  peer_script peer;
  /// Builds the machine over s (encodes the request and claims the connection) and runs it.
  std::function<outcome(session_state&, fault, int, std::size_t)> run;
};

template <class Proc>
operation make_op(std::string name, Proc proc, peer_script peer, bool may_write,
                  std::function<void(session_state&)> encode) {
  operation op;
  op.name = std::move(name);
  op.may_write = may_write;
  op.interruptible = exchange_machine<Proc>::proc_interruptible();
  op.peer = peer;
  op.run = [proc, peer, may_write, encode](session_state& s, fault f, int at, std::size_t chunk) {
    error_code ec = s.begin_op(true);
    REQUIRE_FALSE(ec);
    encode(s);
    exchange_machine<Proc> m(s, proc, {}, true, exchange_params{true, s.opts.request_timeout, 0, may_write});
    return drive(s, m, peer, f, at, chunk);
  };
  return op;
}

void encode_sql(session_state& s, wire::request type, std::string_view sql) {
  wire::frame_mark m{};
  REQUIRE_FALSE(wire::begin_sql_request(s.wbuf, type, s.db_id, sql, m));
  wire::end_frame(s.wbuf, m);
}

std::vector<operation> operations() {
  std::vector<operation> ops;
  ops.push_back(make_op("execute", exec_proc{}, {result_frame(7, 1)}, true, [](session_state& s) {
    encode_sql(s, wire::request::exec_sql, "INSERT INTO t VALUES (1)");
  }));
  ops.push_back(make_op("fetchall (3 frames)", rows_proc<dynamic_rows_sink>{}, {rows_frames(300, 2048)},
                        false, [](session_state& s) {
                          encode_sql(s, wire::request::query_sql, "SELECT id, name FROM t");
                        }));
  ops.push_back(make_op("fetch into a struct", rows_proc<typed_rows_sink<std::tuple<std::int64_t, std::string>>>{},
                        {rows_frames(20)}, false, [](session_state& s) {
                          encode_sql(s, wire::request::query_sql, "SELECT id, name FROM t");
                        }));
  ops.push_back(make_op("fetchval", rows_proc<value_sink<std::int64_t>>{}, {rows_frames(5)}, false,
                        [](session_state& s) {
                          encode_sql(s, wire::request::query_sql, "SELECT id FROM t");
                        }));
  ops.push_back(make_op("a writing query (INSERT RETURNING)", rows_proc<dynamic_rows_sink>{},
                        {rows_frames(1)}, true, [](session_state& s) {
                          encode_sql(s, wire::request::query_sql, "INSERT INTO t VALUES (1) RETURNING id");
                        }));
  {
    bytes stmt = u64_body({});
    wire::put_u32(stmt, 0);
    wire::put_u32(stmt, 3);
    wire::put_u64(stmt, 1);
    ops.push_back(make_op("prepare", prepare_proc{}, {frame(wire::response::stmt, stmt)}, false,
                          [](session_state& s) { REQUIRE_FALSE(wire::encode_prepare(s.wbuf, 0, "SELECT ?")); }));
  }
  ops.push_back(make_op("finalize", empty_proc{}, {empty_frame()}, false,
                        [](session_state& s) { wire::encode_finalize(s.wbuf, 0, 3); }));
  ops.push_back(make_op("commit", commit_proc{}, {result_frame(0, 0)}, true,
                        [](session_state& s) { encode_sql(s, wire::request::exec_sql, "COMMIT"); }));
  ops.push_back(make_op("rollback", rollback_proc{}, {result_frame(0, 0)}, true,
                        [](session_state& s) { encode_sql(s, wire::request::exec_sql, "ROLLBACK"); }));
  {
    bytes server = u64_body({1});
    wire::put_text(server, "127.0.0.1:9001");
    ops.push_back(make_op("leader", leader_proc{}, {frame(wire::response::server, server)}, false,
                          [](session_state& s) { wire::encode_leader(s.wbuf); }));
  }
  ops.push_back(make_op("add (administration)", empty_proc{}, {empty_frame()}, true,
                        [](session_state& s) { REQUIRE_FALSE(wire::encode_add(s.wbuf, 4, "127.0.0.1:9004")); }));
  return ops;
}

/// The rules every faulty run must follow.
void check_rules(const operation& op, fault f, int at, const outcome& o, int clean_steps) {
  INFO(op.name << ": " << name(f) << " at step " << at << " of " << clean_steps << " -> "
               << o.ec.message() << " (" << o.ec.category().name() << ":" << o.ec.value() << ")");
  CHECK_FALSE(o.wrote_after_close);
  if (at >= clean_steps) {  // past the end: nothing was injected
    CHECK_FALSE(o.ec);
    return;
  }
  // The request was sent whole before the fault (its write was step 0 and succeeded, or
  // it came back as aborted only after being written whole).
  const bool sent = at > 0 || f == fault::cancel_aborted || f == fault::cancel_late;
  if (f == fault::cancel_late && at == clean_steps - 1 && !o.interrupted) {
    // Cancelled while the last read completed: the response was complete, so the
    // operation succeeded.
    CHECK_FALSE(o.ec);
    CHECK_FALSE(o.closed);
    return;
  }
  REQUIRE(o.ec);
  if (op.may_write && sent) {
    CHECK(o.ec == make_error_code(errc::outcome_unknown));
    CHECK(dqlite::is_outcome_unknown(o.ec));
    CHECK_FALSE(dqlite::is_retryable(o.ec));
    CHECK(o.closed);
    return;
  }
  switch (f) {
    case fault::network:
      CHECK(o.closed);
      CHECK(dqlite::is_connection_error(o.ec));
      break;
    case fault::timeout:
      CHECK(o.ec == make_error_code(errc::timeout));
      CHECK(o.closed);
      break;
    case fault::cancel_aborted:
    case fault::cancel_late:
      if (op.interruptible && sent) {
        // Interrupted and drained: the connection stays usable.
        CHECK(o.ec == make_error_code(errc::interrupted));
        CHECK(o.interrupted);
        CHECK_FALSE(o.closed);
      } else {
        CHECK(o.ec == make_error_code(errc::cancelled));
        CHECK(o.closed);
      }
      break;
    case fault::none: break;
  }
}

}  // namespace

TEST_CASE("sansio exchange: every operation, every step, every fault", "[sansio]") {
  for (const auto& op : operations()) {
    for (std::size_t chunk : {std::size_t{1} << 20, std::size_t{5}}) {
      open_session clean_s;
      outcome clean = op.run(clean_s, fault::none, -1, chunk);
      INFO(op.name << " (reads of at most " << chunk << " bytes)");
      REQUIRE_FALSE(clean.ec);
      REQUIRE_FALSE(clean.closed);
      CHECK_FALSE(clean_s.busy);
      CHECK(clean_s.rbuf.empty());
      for (fault f : {fault::network, fault::timeout, fault::cancel_aborted, fault::cancel_late}) {
        for (int at = 0; at <= clean.steps; ++at) {
          open_session s;
          outcome o = op.run(s, f, at, chunk);
          check_rules(op, f, at, o, clean.steps);
          CHECK_FALSE(s.busy);
          if (!o.closed) {
            CHECK(s.state == conn_state::open);
            CHECK(s.rbuf.empty());
          }
        }
      }
    }
  }
}

TEST_CASE("sansio exchange: housekeeping before the request", "[sansio]") {
  auto ops = operations();
  const auto& exec = ops.front();
  for (fault f : {fault::none, fault::network, fault::timeout, fault::cancel_aborted}) {
    for (int at = 0; at < 8; ++at) {
      open_session s;
      s.drain_pending = true;
      s.finalize_pending = {4, 5};
      s.rollback_pending = true;
      // The peer answers each housekeeping request in turn, then the request.
      peer_script peer;
      // Housekeeping answers arrive in order: INTERRUPT -> EMPTY, FINALIZE x2 -> EMPTY,
      // ROLLBACK -> RESULT; the script hands out the answers per written frame.
      std::vector<bytes> answers = {empty_frame(), empty_frame(), empty_frame(),
                                    result_frame(0, 0), result_frame(9, 1)};
      REQUIRE_FALSE(s.begin_op(true));
      encode_sql(s, wire::request::exec_sql, "INSERT INTO t VALUES (2)");
      exchange_machine<exec_proc> m(s, exec_proc{}, {}, true,
                                    exchange_params{true, s.opts.request_timeout, 0, true});
      // Drive by hand: each write gets the next answer.
      std::size_t next = 0;
      io_event ev{};
      bool closed = false, wrote_after_close = false;
      int step = 0;
      error_code final_ec;
      std::vector<std::uint8_t> written;
      for (int guard = 0; guard < 1000; ++guard) {
        io_action a = m.resume(ev);
        closed = closed || s.close_requested;
        if (a.what == io_action::kind::done) {
          final_ec = a.ec;
          break;
        }
        const bool inject = step++ == at && f != fault::none;
        ev = io_event{};
        if (a.what == io_action::kind::write) {
          if (closed) wrote_after_close = true;
          written.push_back(static_cast<std::uint8_t>(a.out[4]));
          ev.what = io_event::kind::wrote;
          ev.n = a.out.size();
          if (inject) {
            if (f == fault::timeout) s.timed_out = true;
            ev.ec = f == fault::network ? error_code(EPIPE, boost::system::system_category())
                                        : error_code(ECANCELED, boost::system::system_category());
            ev.cancel_requested = f == fault::cancel_aborted;
            ev.n = 0;
          }
          continue;
        }
        REQUIRE(a.what == io_action::kind::read);
        ev.what = io_event::kind::read;
        if (inject) {
          if (f == fault::timeout) s.timed_out = true;
          ev.ec = f == fault::network ? error_code(ECONNRESET, boost::system::system_category())
                                      : error_code(ECANCELED, boost::system::system_category());
          ev.cancel_requested = f == fault::cancel_aborted;
          continue;
        }
        REQUIRE(next < answers.size());
        auto space = s.rbuf.prepare(a.need);
        REQUIRE(space.size() >= answers[next].size());
        std::copy(answers[next].begin(), answers[next].end(), space.begin());
        ev.n = answers[next].size();
        ++next;
      }
      INFO(name(f) << " at step " << at);
      CHECK_FALSE(wrote_after_close);
      if (f == fault::none) {
        CHECK_FALSE(final_ec);
        using R = wire::request;
        CHECK(written == std::vector<std::uint8_t>{
                             static_cast<std::uint8_t>(R::interrupt), static_cast<std::uint8_t>(R::finalize),
                             static_cast<std::uint8_t>(R::finalize), static_cast<std::uint8_t>(R::exec_sql),
                             static_cast<std::uint8_t>(R::exec_sql)});
        CHECK_FALSE(s.has_housekeeping());
        break;
      }
      // A fault during housekeeping: the request itself was never sent, so its outcome is
      // known (not applied); at or after the request (step 8 and 9) it is unknown.
      REQUIRE(final_ec);
      CHECK(closed);
      if (at < 8) CHECK(final_ec != make_error_code(errc::outcome_unknown));
      CHECK(dqlite::is_connection_error(final_ec));
    }
  }
  (void)exec;
}

TEST_CASE("sansio exchange: bytes after a complete response close the connection", "[sansio]") {
  bytes stray = result_frame(57005, 1);
  SECTION("a query: a protocol error") {
    open_session s;
    REQUIRE_FALSE(s.begin_op(true));
    encode_sql(s, wire::request::query_sql, "SELECT id FROM t");
    exchange_machine<rows_proc<value_sink<std::int64_t>>> m(
        s, {}, {}, true, exchange_params{true, s.opts.request_timeout, 0, false});
    outcome o = drive(s, m, peer_script{concat(rows_frames(1), stray)}, fault::none, -1);
    CHECK(o.ec == make_error_code(errc::trailing_bytes));
    CHECK(o.closed);
    CHECK_THAT(s.diag.message(), Catch::Contains("after a complete response"));
  }
  SECTION("a write: its answer cannot be trusted, so its outcome is unknown") {
    open_session s;
    REQUIRE_FALSE(s.begin_op(true));
    encode_sql(s, wire::request::exec_sql, "INSERT INTO t VALUES (1)");
    exchange_machine<exec_proc> m(s, exec_proc{}, {}, true,
                                  exchange_params{true, s.opts.request_timeout, 0, true});
    outcome o = drive(s, m, peer_script{concat(result_frame(1, 1), stray)}, fault::none, -1);
    CHECK(o.ec == make_error_code(errc::outcome_unknown));
    CHECK(o.closed);
    CHECK_THAT(s.diag.message(), Catch::Contains("after a complete response"));
  }
}

TEST_CASE("sansio exchange: a cap crossed in a PART frame ends the fetch, the next request drains",
          "[sansio]") {
  open_session s;
  s.opts.max_result_rows = 10;
  REQUIRE_FALSE(s.begin_op(true));
  encode_sql(s, wire::request::query_sql, "SELECT id, name FROM t");
  exchange_machine<rows_proc<dynamic_rows_sink>> m(
      s, {}, {}, true, exchange_params{true, s.opts.request_timeout, 0, false});
  // Several PART frames arrive at once: the fetch ends at the first, the rest stays.
  outcome o = drive(s, m, peer_script{part_frames(2000)}, fault::none, -1);
  CHECK(o.ec == make_error_code(errc::result_too_large));
  CHECK_FALSE(o.closed);
  CHECK(s.drain_pending);
  CHECK_FALSE(s.rbuf.empty());
  // The next request interrupts and drains the rest first, then runs.
  REQUIRE_FALSE(s.begin_op(true));
  encode_sql(s, wire::request::query_sql, "SELECT id FROM t");
  exchange_machine<rows_proc<value_sink<std::int64_t>>> next(
      s, {}, {}, true, exchange_params{true, s.opts.request_timeout, 0, false});
  outcome o2 = drive(s, next, peer_script{rows_frames(1), concat(part_frames(50), empty_frame())},
                     fault::none, -1);
  CHECK_FALSE(o2.ec);
  CHECK(o2.interrupted);
  CHECK(next.take() == 0);
  CHECK(s.rbuf.empty());
  CHECK_FALSE(s.has_housekeeping());
}

TEST_CASE("sansio exchange: a drain without a request timeout has its own bound", "[sansio]") {
  open_session s;
  s.opts.request_timeout = std::chrono::milliseconds(0);
  s.opts.interrupt_timeout = std::chrono::milliseconds(250);
  REQUIRE_FALSE(s.begin_op(true));
  encode_sql(s, wire::request::query_sql, "SELECT id FROM t");
  exchange_machine<rows_proc<value_sink<std::int64_t>>> m(
      s, {}, {}, true, exchange_params{true, {}, 0, false});
  // Cancelled while the result streams; the INTERRUPT is never answered: once the
  // scripted peer has nothing more to send, the bound the machine asked for expires.
  outcome o = drive(s, m, peer_script{part_frames(2000), part_frames(500)}, fault::cancel_late, 1);
  CHECK(o.rearm == std::chrono::milliseconds(250));
  CHECK(o.interrupted);
  CHECK(o.ec == make_error_code(errc::timeout));
  CHECK(o.closed);
  CHECK_THAT(s.diag.message(), Catch::Contains("interrupt_timeout"));
}

TEST_CASE("sansio exchange: a lost answer to a write is outcome unknown", "[sansio]") {
  // The written request, then a timeout: outcome unknown, the cause kept in the text.
  open_session s;
  REQUIRE_FALSE(s.begin_op(true));
  encode_sql(s, wire::request::exec_sql, "INSERT INTO t VALUES (1)");
  exchange_machine<exec_proc> m(s, exec_proc{}, {}, true,
                                exchange_params{true, s.opts.request_timeout, 0, true});
  outcome o = drive(s, m, peer_script{result_frame(1, 1)}, fault::timeout, 1);
  CHECK(o.ec == make_error_code(errc::outcome_unknown));
  CHECK_THAT(s.diag.message(), Catch::Contains("no response from 127.0.0.1:9001 within 1000 ms"));
  CHECK_THAT(s.diag.message(), Catch::Contains("may or may not have been applied"));
  CHECK(s.state == conn_state::broken);
}

TEST_CASE("sansio connect: every step, every fault", "[sansio]") {
  bytes db = u64_body({});
  wire::put_u32(db, 0);
  wire::put_u32(db, 0);
  const bytes answer = frame(wire::response::db, db);
  auto run = [&](fault f, int at, std::size_t chunk, bool tls) -> std::pair<outcome, bool> {
    session_state s(test_options());
    outcome o;
    auto go = [&](auto& m) {
      // Steps 0 (connect) and 1 (TLS handshake) are transport steps, driven here by hand.
      io_action a = m.resume(io_event{});
      int step = 0;
      while (a.what == io_action::kind::connect || a.what == io_action::kind::tls_handshake) {
        const bool inject = step++ == at;
        io_event ev{a.what == io_action::kind::connect ? io_event::kind::connected
                                                       : io_event::kind::handshaken};
        if (inject && f == fault::timeout) {
          s.timed_out = true;
          ev.ec = error_code(ECANCELED, boost::system::system_category());
        } else if (inject && f != fault::none) {
          ev.ec = error_code(ECONNREFUSED, boost::system::system_category());
        }
        a = m.resume(ev);
      }
      if (a.what == io_action::kind::done) {
        o.ec = a.ec;
        o.closed = s.close_requested;
        o.steps = step;
        return;
      }
      // The dqlite handshake: the rest is an exchange; replay its first action.
      struct replay {
        decltype(m)& inner;
        io_action first;
        bool used = false;
        io_action resume(const io_event& ev) {
          if (!used) {
            used = true;
            return first;
          }
          return inner.resume(ev);
        }
        bool cancellable() const { return true; }
        std::chrono::milliseconds take_rearm() { return inner.take_rearm(); }
      } r{m, a};
      o = drive(s, r, peer_script{answer}, f, at - step, chunk);
      o.steps += step;
    };
    if (tls) {
      connect_machine<true> m(s, "127.0.0.1:9001", true);
      go(m);
    } else {
      connect_machine<false> m(s, "127.0.0.1:9001", true);
      go(m);
    }
    return {o, s.state == conn_state::open && !s.busy};
  };
  for (bool tls : {false, true}) {
    for (std::size_t chunk : {std::size_t{1} << 20, std::size_t{3}}) {
      auto [clean, open] = run(fault::none, -1, chunk, tls);
      REQUIRE_FALSE(clean.ec);
      REQUIRE(open);
      auto types = request_types(clean.sent, true);
      CHECK(types == std::vector<std::uint8_t>{static_cast<std::uint8_t>(wire::request::open)});
      for (fault f : {fault::network, fault::timeout}) {
        for (int at = 0; at < clean.steps; ++at) {
          auto [o, now_open] = run(f, at, chunk, tls);
          INFO((tls ? "TLS " : "") << name(f) << " at step " << at << ": " << o.ec.message());
          CHECK(o.ec);
          CHECK_FALSE(now_open);
          CHECK(o.closed);
          CHECK_FALSE(o.wrote_after_close);
          if (f == fault::timeout) CHECK(o.ec == make_error_code(errc::timeout));
        }
      }
    }
  }
}

TEST_CASE("sansio connect: a bad address fails before any I/O", "[sansio]") {
  session_state s(test_options());
  connect_machine<false> m(s, "no-port-here", true);
  io_action a = m.resume(io_event{});
  REQUIRE(a.what == io_action::kind::done);
  CHECK(a.ec == make_error_code(errc::invalid_address));
  CHECK_FALSE(s.busy);
}

TEST_CASE("sansio connect: a cancelled transport step fails as cancelled, not as Asio's abort",
          "[sansio]") {
  const auto aborted = make_error_code(boost::system::errc::operation_canceled);
  for (bool requested : {true, false}) {
    session_state s(test_options());
    connect_machine<true> m(s, "127.0.0.1:9001", true);
    REQUIRE(m.resume(io_event{}).what == io_action::kind::connect);
    io_action a = m.resume(io_event{io_event::kind::connected, {}, 0, false});
    REQUIRE(a.what == io_action::kind::tls_handshake);
    a = m.resume(io_event{io_event::kind::handshaken, aborted, 0, requested});
    REQUIRE(a.what == io_action::kind::done);
    INFO("cancellation requested: " << requested);
    CHECK_FALSE(s.busy);
    if (requested) {
      CHECK(a.ec == make_error_code(errc::cancelled));
      CHECK(s.diag.message() ==
            "the operation was cancelled (TLS handshake with 127.0.0.1:9001); the connection "
            "was closed");
    } else {
      // Aborted without a cancellation (the connection was closed meanwhile).
      CHECK(a.ec == aborted);
    }
  }
  session_state s(test_options());
  connect_machine<false> m(s, "127.0.0.1:9001", true);
  REQUIRE(m.resume(io_event{}).what == io_action::kind::connect);
  io_action a = m.resume(io_event{io_event::kind::connected, aborted, 0, true});
  REQUIRE(a.what == io_action::kind::done);
  CHECK(a.ec == make_error_code(errc::cancelled));
  CHECK_THAT(s.diag.message(), Catch::Contains("cancelled (connecting to 127.0.0.1:9001)"));
}

TEST_CASE("sansio exchange: a FAILURE answer closes the connection only when it must",
          "[sansio]") {
  struct expect {
    std::uint64_t code;
    bool closes;
  };
  for (auto e : {expect{19, false}, expect{1, false}, expect{5, false}, expect{10250, true},
                 expect{10506, true}, expect{12, true}}) {
    open_session s;
    REQUIRE_FALSE(s.begin_op(true));
    encode_sql(s, wire::request::exec_sql, "INSERT INTO t VALUES (1)");
    exchange_machine<exec_proc> m(s, exec_proc{}, {}, true,
                                  exchange_params{true, s.opts.request_timeout, 0, true});
    outcome o = drive(s, m, peer_script{failure_frame(e.code, "from the server")}, fault::none, -1);
    INFO("code " << e.code);
    CHECK(o.ec == dqlite::make_server_error(e.code));
    CHECK(o.closed == e.closes);
    CHECK_THAT(s.diag.message(), Catch::StartsWith("from the server"));
    CHECK(s.state == (e.closes ? conn_state::broken : conn_state::open));
  }
}

TEST_CASE("statements that cannot write are told apart from those that may", "[sansio]") {
  for (const char* sql : {"SELECT 1", "  -- a comment\n select v FROM kv", "/* x */ VALUES (1)",
                          "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s "
                          "WHERE x < 5) SELECT x FROM s",
                          "WITH a AS (SELECT ')' AS p), \"b\" AS NOT MATERIALIZED (SELECT 2) "
                          "SELECT * FROM a, b",
                          "EXPLAIN DELETE FROM t", "select * from \"insert\""}) {
    INFO(sql);
    CHECK(is_read_only_sql(sql));
  }
  for (const char* sql : {"", "INSERT INTO t VALUES (1) RETURNING id", "UPDATE t SET a = 1",
                          "DELETE FROM t", "REPLACE INTO t VALUES (1)", "PRAGMA user_version = 3",
                          "WITH t AS (SELECT 1) INSERT INTO a SELECT * FROM t",
                          "WITH t AS MATERIALIZED (SELECT ')' ) DELETE FROM a", "BEGIN",
                          "CREATE TABLE t (a)", "/* unclosed SELECT", "WITH x AS (SELECT 1"}) {
    INFO(sql);
    CHECK_FALSE(is_read_only_sql(sql));
  }
}

TEST_CASE("sansio exchange: frames of a dropped cursor are drained, not taken as stray",
          "[sansio]") {
  open_session s;
  // A cursor read one batch; more of its result is already in the read buffer when it is
  // dropped.
  bytes more = part_frames(200);
  auto space = s.rbuf.prepare(more.size());
  REQUIRE(space.size() >= more.size());
  std::copy(more.begin(), more.end(), space.begin());
  s.rbuf.commit(more.size());
  s.drain_pending = true;
  REQUIRE_FALSE(s.begin_op(true));
  encode_sql(s, wire::request::query_sql, "SELECT 9");
  exchange_machine<rows_proc<value_sink<std::int64_t>>> m(
      s, {}, {}, true, exchange_params{true, s.opts.request_timeout, 0, false});
  // After the INTERRUPT: the rest of the result, DONE, EMPTY; then the query's answer.
  dqlite_test::rows_builder rb({"v"});
  rb.row(std::int64_t{9});
  bytes answer;
  for (auto& body : rb.finish()) answer = concat(answer, frame(wire::response::rows, body));
  peer_script peer{answer, concat(concat(part_frames(100), rows_frames(1)), empty_frame())};
  outcome o = drive(s, m, peer, fault::none, -1);
  CHECK_FALSE(o.ec);
  CHECK(m.take() == 9);
  CHECK(s.rbuf.empty());
  CHECK_FALSE(s.has_housekeeping());
}

TEST_CASE("sansio exchange: the bound of a housekeeping drain ends with the drain", "[sansio]") {
  open_session s;
  s.opts.request_timeout = std::chrono::milliseconds(0);
  s.opts.interrupt_timeout = std::chrono::milliseconds(250);
  s.drain_pending = true;
  REQUIRE_FALSE(s.begin_op(true));
  encode_sql(s, wire::request::exec_sql, "INSERT INTO t VALUES (1)");
  exchange_machine<exec_proc> m(s, exec_proc{}, {}, true, exchange_params{true, {}, 0, true});
  // INTERRUPT answered by EMPTY, then the request by RESULT.
  outcome o = drive(s, m, peer_script{result_frame(3, 1), empty_frame()}, fault::none, -1);
  CHECK_FALSE(o.ec);
  // Bounded while draining, unbounded again for the request (request_timeout is zero).
  CHECK(o.rearms == std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(250),
                                                           std::chrono::milliseconds(-1)});
}
