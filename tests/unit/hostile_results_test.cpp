// What a hostile or broken server can do to results, driven through the response
// processors and result sinks over byte spans (no I/O): frames without rows, results over
// their caps, memory the rows hold, huge column counts and messages, and diagnostics that
// must match the error returned.
#include <dqlite/client.hpp>

#include <catch2/catch.hpp>

#include "support/hostile_frames.hpp"
#include "support/rows_frames.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

using dqlite::errc;
using dqlite_test::rows_frame;
using frames_t = std::vector<std::vector<std::byte>>;
namespace detail = dqlite::detail;
namespace wire = dqlite::wire;

namespace {

template <class Sink>
struct sink_run {
  dqlite::error_code ec;
  typename Sink::result_type result{};
  std::string diag;
  bool drain_pending = false;
  std::size_t frames_read = 0;
};

/// Runs a fresh Sink (or the given one) over the frames through the fetch processor.
template <class Sink>
sink_run<Sink> fetch_with(const frames_t& frames, dqlite::connection_options opts = {},
                          Sink sink = Sink{}) {
  dqlite_test::sink_context ctx;
  ctx.opts = opts;
  detail::rows_proc<Sink> proc{std::move(sink)};
  sink_run<Sink> out;
  out.ec = dqlite_test::run_proc(proc, frames, ctx, &out.frames_read);
  out.result = proc.take();
  out.diag = ctx.diag.message();
  out.drain_pending = ctx.drain_pending;
  return out;
}

/// Reads a whole result through the cursor processor, batch by batch as async_next
/// would, until a batch is empty or an error; returns the batch sizes.
template <class Sink>
struct cursor_run {
  std::vector<std::size_t> batches;  ///< sizes of the non-empty batches
  bool ended_empty = false;          ///< the last batch handed out was empty
  bool finished = false;             ///< the cursor saw DONE
  std::size_t frames_read = 0;
  dqlite::error_code ec;
  std::string diag;
};

template <class Sink>
cursor_run<Sink> read_cursor(const frames_t& frames, dqlite::connection_options opts = {}) {
  dqlite_test::sink_context ctx;
  ctx.opts = opts;
  auto st = std::make_shared<detail::cursor_shared>();
  cursor_run<Sink> out;
  std::size_t at = 0;
  while (at < frames.size() && !st->finished) {
    detail::cursor_proc<Sink> proc{st, {}};
    frames_t rest(frames.begin() + static_cast<std::ptrdiff_t>(at), frames.end());
    std::size_t n = 0;
    out.ec = dqlite_test::run_proc(proc, rest, ctx, &n);
    at += n;
    auto batch = proc.take();
    if (out.ec) break;
    if (batch.empty()) {
      out.ended_empty = true;
      break;
    }
    out.batches.push_back(batch.size());
  }
  out.finished = st->finished;
  out.frames_read = at;
  out.diag = ctx.diag.message();
  return out;
}

std::size_t sum(const std::vector<std::size_t>& v) {
  std::size_t n = 0;
  for (auto x : v) n += x;
  return n;
}

/// A field type of the user's that says how much heap memory it holds.
struct big_note {
  std::int64_t id = 0;
};

using int_rows = detail::typed_rows_sink<std::int64_t>;
using one_int = detail::typed_rows_sink<std::int64_t, true>;
using int_value = detail::value_sink<std::int64_t>;
using dyn_rows = detail::dynamic_rows_sink;

}  // namespace

template <>
struct dqlite::field_traits<big_note> {
  static dqlite::error_code read(const wire::value_view& v, big_note& out) {
    if (v.type != dqlite::value_type::integer) return make_error_code(errc::type_mismatch);
    out.id = v.integer;
    return {};
  }
  static std::size_t heap_bytes(const big_note&) noexcept { return 1000; }
};

// ---- a cursor and PART frames without rows ----

TEMPLATE_TEST_CASE("a cursor reads past PART frames without rows, an empty batch only at DONE",
                   "[hostile][cursor]", int_rows, dyn_rows) {
  const frames_t frames{
      rows_frame({"v"}).integer(1).integer(2).part(),
      rows_frame({"v"}).part(),  // no rows
      rows_frame({"v"}).part(),  // no rows
      rows_frame({"v"}).integer(3).part(),
      rows_frame({"v"}).done(),
  };
  auto r = read_cursor<TestType>(frames);
  CHECK(!r.ec);
  CHECK(r.batches == std::vector<std::size_t>{2, 1});
  CHECK(r.finished);
  CHECK(r.ended_empty);
  CHECK(r.frames_read == frames.size());
}

TEMPLATE_TEST_CASE("a cursor over a result whose only rows follow empty PART frames",
                   "[hostile][cursor]", int_rows, dyn_rows) {
  const frames_t frames{rows_frame({"v"}).part(), rows_frame({"v"}).part(),
                        rows_frame({"v"}).integer(7).done()};
  auto r = read_cursor<TestType>(frames);
  CHECK(!r.ec);
  CHECK(sum(r.batches) == 1);
  CHECK(r.finished);
}

// ---- caps stop the decode of the frame that crosses them ----

TEST_CASE("max_result_rows stops a fetch at the row that crosses it, inside one frame",
          "[hostile][caps]") {
  const auto frames = dqlite_test::integer_frames(1000, 1000);  // one DONE frame
  REQUIRE(frames.size() == 1);
  dqlite::connection_options o;
  o.max_result_rows = 10;

  auto typed = fetch_with<int_rows>(frames, o);
  CHECK(typed.ec == errc::result_too_large);
  CHECK(typed.result.size() == 10);
  CHECK_THAT(typed.diag, Catch::Contains("max_result_rows (10)"));

  auto dyn = fetch_with<dyn_rows>(frames, o);
  CHECK(dyn.ec == errc::result_too_large);
  CHECK(dyn.result.size() == 10);

  std::vector<std::int64_t> target;
  auto into = fetch_with<detail::typed_rows_sink<std::int64_t, false, true>>(
      frames, o, detail::typed_rows_sink<std::int64_t, false, true>(&target));
  CHECK(into.ec == errc::result_too_large);
  CHECK(target.size() == 10);
  CHECK(into.result == 10);
}

TEST_CASE("fetchone and fetchval count the rows they read past against the caps",
          "[hostile][caps]") {
  const auto frames = dqlite_test::integer_frames(1000, 100);
  dqlite::connection_options rows_cap;
  rows_cap.max_result_rows = 10;
  auto one = fetch_with<one_int>(frames, rows_cap);
  CHECK(one.ec == errc::result_too_large);
  CHECK(one.frames_read == 1);  // the frame that crossed the cap was the last one read
  CHECK(one.drain_pending);     // the rest is interrupted before the next request
  CHECK_THAT(one.diag, Catch::Contains("LIMIT 1"));
  auto val = fetch_with<int_value>(frames, rows_cap);
  CHECK(val.ec == errc::result_too_large);

  // Rows read past cost their size on the wire (16 bytes each here).
  dqlite::connection_options bytes_cap;
  bytes_cap.max_result_bytes = 4000;
  auto one_b = fetch_with<one_int>(frames, bytes_cap);
  CHECK(one_b.ec == errc::result_too_large);
  CHECK(one_b.frames_read == 3);  // 250 rows of 16 bytes cross 4000 in the third frame
  CHECK_THAT(one_b.diag, Catch::Contains("max_result_bytes (4000)"));

  // Under the caps they read the first row as before.
  dqlite::connection_options roomy;
  roomy.max_result_rows = 1000;
  auto ok = fetch_with<one_int>(frames, roomy);
  REQUIRE(!ok.ec);
  CHECK(ok.result == std::optional<std::int64_t>(0));
  CHECK(ok.frames_read == frames.size());
  auto ok_val = fetch_with<int_value>(frames, roomy);
  REQUIRE(!ok_val.ec);
  CHECK(ok_val.result == 0);
}

TEST_CASE("a cap crossed in a PART frame ends the fetch there, the rest is interrupted",
          "[hostile][caps]") {
  const auto frames = dqlite_test::integer_frames(1000, 100);
  dqlite::connection_options o;
  o.max_result_rows = 250;
  auto r = fetch_with<int_rows>(frames, o);
  CHECK(r.ec == errc::result_too_large);
  CHECK(r.frames_read == 3);
  CHECK(r.drain_pending);
  CHECK(r.result.size() == 250);
  // A cap crossed in the DONE frame needs no interrupt.
  o.max_result_rows = 950;
  auto last = fetch_with<int_rows>(frames, o);
  CHECK(last.ec == errc::result_too_large);
  CHECK(last.frames_read == frames.size());
  CHECK(!last.drain_pending);
}

TEST_CASE("max_result_bytes bounds the memory dynamic rows hold, not the bytes received",
          "[hostile][caps][memory]") {
  // One NULL per row: 16 bytes on the wire, far more as a dqlite::row in memory.
  frames_t frames;
  for (int f = 0; f < 100; ++f) {
    rows_frame fr({"n"});
    for (int i = 0; i < 256; ++i) fr.null();
    frames.push_back(fr.part());
  }
  frames.push_back(rows_frame({"n"}).done());
  dqlite::connection_options o;
  o.max_result_bytes = 64 * 1024;
  auto r = fetch_with<dyn_rows>(frames, o);
  CHECK(r.ec == errc::result_too_large);
  CHECK_THAT(r.diag, Catch::Contains("max_result_bytes (65536)"));
  // What the rows kept certainly occupy: their slots and one value each.
  const std::size_t floor_bytes = r.result.size() * (sizeof(dqlite::row) + sizeof(dqlite::value));
  CHECK(floor_bytes <= o.max_result_bytes);
  CHECK(r.result.size() > 0);
  // A budget over the whole result lets it through.
  o.max_result_bytes = 10 * 1024 * 1024;
  auto all = fetch_with<dyn_rows>(frames, o);
  REQUIRE(!all.ec);
  CHECK(all.result.size() == 25600);
}

TEST_CASE("max_result_bytes counts typed objects, their vector slots and their strings",
          "[hostile][caps][memory]") {
  using row_t = std::tuple<std::optional<std::string>>;
  // NULL rows: 16 bytes on the wire, an object of sizeof(row_t) in memory.
  frames_t frames;
  for (int f = 0; f < 50; ++f) {
    rows_frame fr({"s"});
    for (int i = 0; i < 256; ++i) fr.null();
    frames.push_back(fr.part());
  }
  frames.push_back(rows_frame({"s"}).done());
  dqlite::connection_options o;
  o.max_result_bytes = 64 * 1024;
  auto r = fetch_with<detail::typed_rows_sink<row_t>>(frames, o);
  CHECK(r.ec == errc::result_too_large);
  CHECK(r.result.size() * sizeof(row_t) <= o.max_result_bytes);
  CHECK(r.result.capacity() * sizeof(row_t) <= o.max_result_bytes + sizeof(row_t));

  // Long strings: their heap memory is counted.
  frames_t texts;
  const std::string long_text(1000, 'x');
  for (int f = 0; f < 20; ++f) {
    rows_frame fr({"s"});
    for (int i = 0; i < 4; ++i) fr.text(long_text);
    texts.push_back(fr.part());
  }
  texts.push_back(rows_frame({"s"}).done());
  o.max_result_bytes = 20 * 1000;
  auto t = fetch_with<detail::typed_rows_sink<row_t>>(texts, o);
  CHECK(t.ec == errc::result_too_large);
  CHECK(t.result.size() * 1000 <= o.max_result_bytes);
  CHECK(t.result.size() >= 10);
}

TEST_CASE("a cursor applies max_result_bytes to each batch, never max_result_rows",
          "[hostile][caps][cursor]") {
  const auto frames = dqlite_test::integer_frames(1000, 100);
  dqlite::connection_options o;
  o.max_result_rows = 10;  // not for cursors
  auto r = read_cursor<int_rows>(frames, o);
  CHECK(!r.ec);
  CHECK(sum(r.batches) == 1000);
  o.max_result_bytes = 512;  // a batch of 100 int64 holds 800 bytes
  auto b = read_cursor<int_rows>(frames, o);
  CHECK(b.ec == errc::result_too_large);
  CHECK_THAT(b.diag, Catch::Contains("batch"));
}

// ---- column counts ----

TEST_CASE("a ROWS frame announcing more columns than the limit is refused at once",
          "[hostile][columns]") {
  wire::rows_reader rr;
  {
    wire::buffer body;
    wire::put_u64(body, std::uint64_t{1} << 60);
    wire::put_u64(body, wire::rows_done_marker);
    CHECK(rr.start(body) == errc::too_many_columns);
    CHECK(rr.announced_columns() == std::uint64_t{1} << 60);
    CHECK(rr.column_count() == 0);
    CHECK(dqlite::is_protocol_error(make_error_code(errc::too_many_columns)));
  }
  // 40000 empty names: a well-formed frame, over the default limit.
  wire::buffer wide;
  wire::put_u64(wide, 40000);
  for (int i = 0; i < 40000; ++i) wire::put_text(wide, "");
  wire::put_u64(wide, wire::rows_done_marker);
  CHECK(rr.start(wide) == errc::too_many_columns);
  CHECK(rr.column_names().capacity() == 0);  // nothing allocated for them
  REQUIRE(!rr.start(wide, 40000));
  CHECK(rr.column_count() == 40000);
  // The names' memory is a small multiple of the frame's size.
  CHECK(rr.column_names().capacity() * sizeof(std::string_view) <= 2 * wide.size());
  // A narrow frame after a wide one gives the names' memory back.
  auto narrow = rows_frame({"a"}).done();
  REQUIRE(!rr.start(narrow));
  CHECK(rr.column_names().capacity() < 1000);

  // Through a fetch: the error names the count and the limit.
  auto r = fetch_with<dyn_rows>({wide});
  CHECK(r.ec == errc::too_many_columns);
  CHECK_THAT(r.diag,
             Catch::Contains("40000 columns") && Catch::Contains("max_result_columns (32767)"));
  dqlite::connection_options o;
  o.max_result_columns = 100;
  auto t = fetch_with<int_rows>({rows_frame({"a", "b", "c"}).done()}, o);
  CHECK(!t.ec);
  o.max_result_columns = 2;
  auto t2 = fetch_with<int_rows>({rows_frame({"a", "b", "c"}).done()}, o);
  CHECK(t2.ec == errc::too_many_columns);
  auto c = read_cursor<dyn_rows>({wide});
  CHECK(c.ec == errc::too_many_columns);
}

// ---- server messages ----

TEST_CASE("a FAILURE keeps a bounded prefix of a huge message", "[hostile][failure]") {
  wire::buffer body;
  wire::put_u64(body, 1);
  const std::string huge(1 << 20, 'm');
  wire::put_text(body, huge);
  wire::failure_response f;
  REQUIRE(!wire::decode_failure(body, f));
  CHECK(f.code == 1);
  CHECK(f.message.size() == wire::max_message_size);
  CHECK(f.message_size == huge.size());
  CHECK(f.message_cut());
  CHECK(f.message == std::string_view(huge).substr(0, wire::max_message_size));
  const std::string text = wire::failure_text(f);
  CHECK(text.size() <= wire::max_message_size + 64);
  CHECK_THAT(text, Catch::Contains("message cut: " +
                                   std::to_string(huge.size() - wire::max_message_size)));

  // A cut never splits a UTF-8 character: "a" then two-byte characters, so the limit
  // falls inside one.
  std::string utf8 = "a";
  while (utf8.size() < wire::max_message_size + 100) utf8 += "\xc3\xa9";
  wire::buffer ub;
  wire::put_u64(ub, 1);
  wire::put_text(ub, utf8);
  REQUIRE(!wire::decode_failure(ub, f));
  CHECK(f.message.size() == wire::max_message_size - 1);
  CHECK(static_cast<unsigned char>(f.message.back()) == 0xa9);

  // A short message is whole and not marked.
  wire::buffer sb;
  wire::put_u64(sb, 19);
  wire::put_text(sb, "UNIQUE constraint failed");
  REQUIRE(!wire::decode_failure(sb, f));
  CHECK(!f.message_cut());
  CHECK(wire::failure_text(f) == "UNIQUE constraint failed");

  // The shape of a failure after partly written rows keeps working, and is bounded too.
  wire::buffer after_rows;
  wire::put_u64(after_rows, 1);
  wire::put_text(after_rows, "v");
  wire::put_u64(after_rows, 1);
  wire::put_i64(after_rows, 5);
  wire::put_u64(after_rows, 1);
  wire::put_text(after_rows, huge);
  REQUIRE(!wire::decode_failure(after_rows, f));
  CHECK(f.message.size() == wire::max_message_size);
  CHECK(f.message_size == huge.size());
}

// ---- the text describes the error returned ----

TEMPLATE_TEST_CASE("a malformed row after rows up to a cap: the protocol error and its text",
                   "[hostile][diagnostics]", int_rows, dyn_rows, one_int) {
  rows_frame f({"v"});
  f.integer(1).integer(2).integer(3);
  f.word(7).word(0);  // a row of the undefined type 7
  dqlite::connection_options o;
  o.max_result_rows = 3;
  auto r = fetch_with<TestType>({f.done()}, o);
  CHECK(r.ec == errc::unknown_value_type);
  CHECK_THAT(r.diag, !Catch::Contains("max_result_rows"));
  CHECK_THAT(r.diag, Catch::Contains("unknown value type"));
}

TEST_CASE("a type mismatch then a malformed row: the malformed row's error and text",
          "[hostile][diagnostics]") {
  rows_frame f({"v"});
  f.text("not a number");
  f.word(1);  // an INTEGER row cut short: the frame ends after its header
  auto r = fetch_with<int_rows>({f.body()});
  CHECK(r.ec == errc::truncated);
  CHECK_THAT(r.diag, !Catch::Contains("row 1"));
  CHECK_THAT(r.diag, Catch::Contains("cannot be read"));

  // Alone, the mismatch is reported with its own text.
  rows_frame g({"v"});
  g.text("not a number");
  auto m = fetch_with<int_rows>({g.done()});
  CHECK(m.ec == errc::type_mismatch);
  CHECK_THAT(m.diag, Catch::Contains("row 1"));
}

TEMPLATE_TEST_CASE("columns that change between frames are named as such", "[hostile][diagnostics]",
                   int_rows, dyn_rows) {
  auto r = fetch_with<TestType>(
      {rows_frame({"a"}).integer(1).part(), rows_frame({"b"}).integer(2).done()});
  CHECK(r.ec == errc::unexpected_response);
  CHECK_THAT(r.diag, Catch::Contains("columns changed"));
}

// Found by fuzz_rows_reader (seed tests/fuzz/corpus/rows_reader/regression_names_after_bad_start).
TEST_CASE("a ROWS frame whose names cannot be read has no columns", "[hostile][columns]") {
  wire::buffer body;
  wire::put_u64(body, 2);
  wire::put_text(body, "id");
  wire::put_u64(body, 0x4141414141414141ULL);  // a name without its NUL
  wire::rows_reader rr;
  CHECK(rr.start(body) == errc::missing_nul);
  CHECK(rr.column_count() == 0);
  CHECK(rr.column_names().empty());
  std::vector<wire::value_view> v(2);
  CHECK_FALSE(rr.next(v));
  CHECK_FALSE(rr.at_row());
}

TEST_CASE("a field type of the user's counts the heap memory it says it holds",
          "[hostile][caps][memory]") {
  const auto frames = dqlite_test::integer_frames(100, 100);
  dqlite::connection_options o;
  o.max_result_bytes = 10 * 1000;
  auto r = fetch_with<detail::typed_rows_sink<big_note>>(frames, o);
  CHECK(r.ec == errc::result_too_large);
  CHECK(r.result.size() < 10);
  CHECK(r.result.size() >= 8);
  o.max_result_bytes = 0;
  auto all = fetch_with<detail::typed_rows_sink<big_note>>(frames, o);
  REQUIRE(!all.ec);
  CHECK(all.result.size() == 100);
}
