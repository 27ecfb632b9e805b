// Typed rows are read straight from the frame when they can be (row_mapper::read_direct),
// else through rows_reader::next() and row_mapper::read(). These tests check that both ways
// accept the same rows with the same values, and that every problem found in the middle of
// a frame is reported as before, with the rows before it kept.
#include <dqlite/client.hpp>

#include <catch2/catch.hpp>

#include "support/rows_frames.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using dqlite_test::rows_builder;
using blob_value = rows_builder::blob_value;
using null_value = rows_builder::null_value;
using typed_int = rows_builder::typed_int;
using iso_text = rows_builder::iso_text;

namespace {

struct rec {
  std::int64_t id;
  std::string name;
  double score;
  std::vector<std::byte> payload;
  friend bool operator==(const rec&, const rec&) = default;
};

struct maybe_rec {
  std::int32_t id;
  std::optional<std::string> name;
  std::optional<double> score;
  bool flag;
  friend bool operator==(const maybe_rec&, const maybe_rec&) = default;
};

/// Every column of the frames of the last test, each nullable.
struct loose_rec {
  std::int32_t id;
  std::optional<std::string> name;
  std::optional<float> score;
  std::optional<std::vector<unsigned char>> payload;
  friend bool operator==(const loose_rec&, const loose_rec&) = default;
};

using frames_t = std::vector<std::vector<std::byte>>;

template <class T>
struct outcome {
  dqlite::error_code ec;
  std::string diag;
  std::vector<typename dqlite::detail::row_mapper<T>::object_type> rows;
};

/// Through the connection's typed sink (direct reading where it can).
template <class T>
outcome<T> with_sink(const frames_t& frames, dqlite::connection_options opts = {}) {
  dqlite_test::sink_context ctx;
  ctx.opts = opts;
  dqlite::detail::typed_rows_sink<T> sink;
  outcome<T> o;
  o.ec = dqlite_test::run_sink(sink, frames, ctx);
  o.diag = ctx.diag.message();
  o.rows = sink.take();
  return o;
}

/// Every row through next() and read() only: the reference.
template <class T>
struct reference_sink {
  using object_type = typename dqlite::detail::row_mapper<T>::object_type;
  using result_type = std::vector<object_type>;
  dqlite::detail::row_mapper<T> mapper;
  bool mapped = false;
  std::size_t count = 0;
  result_type out;

  template <class Impl>
  dqlite::error_code on_rows(dqlite::wire::rows_reader& rr, Impl& c) {
    if (!mapped) {
      if (auto e = mapper.map(rr.column_names(), c.opts, c.diag)) return e;
      mapped = true;
    } else if (!mapper.same_columns(rr.column_names())) {
      c.diag.assign("the columns changed between the frames of one result");
      return make_error_code(dqlite::errc::unexpected_response);
    }
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
      ++count;
      auto& obj = out.emplace_back();
      if (auto e = mapper.read(c.scratch, obj, c.diag, count)) {
        out.pop_back();
        return e;
      }
    }
    return {};
  }
  template <class Impl>
  dqlite::error_code finish(Impl&) {
    return {};
  }
  result_type take() { return std::move(out); }
};

template <class T>
outcome<T> with_reference(const frames_t& frames, dqlite::connection_options opts = {}) {
  dqlite_test::sink_context ctx;
  ctx.opts = opts;
  reference_sink<T> sink;
  outcome<T> o;
  o.ec = dqlite_test::run_sink(sink, frames, ctx);
  o.diag = ctx.diag.message();
  o.rows = sink.take();
  return o;
}

template <class T>
void check_same(const frames_t& frames, dqlite::connection_options opts = {}) {
  auto a = with_sink<T>(frames, opts);
  auto b = with_reference<T>(frames, opts);
  CHECK(a.ec == b.ec);
  CHECK(a.diag == b.diag);
  CHECK(a.rows.size() == b.rows.size());
  CHECK(a.rows == b.rows);
}

std::string pay(std::size_t n) { return std::string(n, 'x'); }

/// One frame's body ([count][names][rows][marker]) as separate rows, to cut or alter rows.
frames_t one_frame_rows(std::size_t n, std::size_t bad_row, const std::function<void(rows_builder&)>& bad) {
  rows_builder b({"id", "name", "score", "payload"}, 1 << 20);
  for (std::size_t i = 0; i < n; ++i) {
    if (i == bad_row)
      bad(b);
    else
      b.row(static_cast<std::int64_t>(i), "n" + std::to_string(i), 0.5 * static_cast<double>(i),
            blob_value{pay(i % 20)});
  }
  return b.finish();
}

}  // namespace

TEST_CASE("direct reading gives the rows of the value-array path", "[mapping][direct]") {
  rows_builder b({"id", "name", "score", "payload"}, 512);
  for (int i = 0; i < 300; ++i)
    b.row(i, std::string(static_cast<std::size_t>(i % 40), 'a' + static_cast<char>(i % 26)),
          i * 0.25, blob_value{pay(static_cast<std::size_t>(i % 33))});
  auto frames = b.finish();
  REQUIRE(frames.size() > 10);
  auto a = with_sink<rec>(frames);
  REQUIRE(!a.ec);
  REQUIRE(a.rows.size() == 300);
  CHECK(a.rows[39].name == std::string(39, 'a' + 13));
  CHECK(a.rows[32].payload.size() == 32);
  check_same<rec>(frames);
  check_same<dqlite::by_position<rec>>(frames);
  check_same<std::tuple<std::int64_t, std::string, double, std::vector<unsigned char>>>(frames);
  check_same<std::int64_t>(frames);  // one field, three columns skipped
}

TEST_CASE("rows whose types differ from the fields' usual ones, mixed in a frame",
          "[mapping][direct]") {
  rows_builder b({"id", "name", "score", "flag"});
  b.row(1, "a", 1.5, typed_int{dqlite::value_type::boolean, 1});        // the usual types
  b.row(2, null_value{}, 7, typed_int{dqlite::value_type::integer, 0});  // NULL, int score, int flag
  b.row(3, "c", null_value{}, typed_int{dqlite::value_type::boolean, 5});
  b.row(typed_int{dqlite::value_type::unixtime, 4}, iso_text{"2024"}, 2.5,
        typed_int{dqlite::value_type::boolean, 0});
  b.row(5, "e", 3.5, typed_int{dqlite::value_type::boolean, 1});
  auto frames = b.finish();
  auto a = with_sink<maybe_rec>(frames);
  INFO(a.diag);
  REQUIRE(!a.ec);
  REQUIRE(a.rows.size() == 5);
  CHECK(!a.rows[1].name);
  CHECK(a.rows[1].score == 7.0);
  CHECK(!a.rows[1].flag);
  CHECK(!a.rows[2].score);
  CHECK(a.rows[2].flag);
  CHECK(a.rows[3].id == 4);
  CHECK(a.rows[3].name == "2024");
  CHECK(a.rows[4].score == 3.5);
  check_same<maybe_rec>(frames);
}

TEST_CASE("conversion failures in the middle of a frame", "[mapping][direct]") {
  SECTION("NULL into a non-optional field") {
    auto frames = one_frame_rows(10, 6, [](rows_builder& b) {
      b.row(6, null_value{}, 1.0, blob_value{"x"});
    });
    auto a = with_sink<rec>(frames);
    CHECK(a.ec == dqlite::errc::unexpected_null);
    CHECK_THAT(a.diag, Catch::Contains("row 7: field 'name' (std::string) from column 'name': is NULL"));
    CHECK(a.rows.size() == 6);
    check_same<rec>(frames);
  }
  SECTION("a type the field cannot read") {
    auto frames = one_frame_rows(10, 3, [](rows_builder& b) {
      b.row(3, "three", "not a float", 4);
    });
    auto a = with_sink<rec>(frames);
    CHECK(a.ec == dqlite::errc::type_mismatch);
    CHECK_THAT(a.diag, Catch::Contains("field 'score' (double) from column 'score': has type TEXT"));
    CHECK_THAT(a.diag, Catch::Contains("field 'payload' (std::vector<std::byte>) from column 'payload': has type INTEGER"));
    CHECK(a.rows.size() == 3);
    check_same<rec>(frames);
  }
  SECTION("an integer out of the field's range") {
    struct small {
      std::int8_t id;
      std::string name;
      double score;
      std::vector<std::byte> payload;
      bool operator==(const small&) const = default;
    };
    auto frames = one_frame_rows(10, 5, [](rows_builder& b) {
      b.row(300, "big", 1.0, blob_value{"x"});
    });
    auto a = with_sink<small>(frames);
    CHECK(a.ec == dqlite::errc::out_of_range);
    CHECK_THAT(a.diag, Catch::Contains("row 6: field 'id' (int8_t) from column 'id': value 300 is out of range"));
    CHECK(a.rows.size() == 5);
    check_same<small>(frames);
  }
}

TEST_CASE("malformed rows in the middle of a frame", "[mapping][direct]") {
  // A frame of 8 good rows; its row 5 is then damaged.
  auto good = one_frame_rows(8, 99, {});
  REQUIRE(good.size() == 1);
  const auto& body = good[0];
  // Offsets of the rows: the names take 4 words after the count.
  std::vector<std::size_t> starts;
  {
    dqlite::wire::rows_reader rr;
    REQUIRE(!rr.start(body));
    std::vector<dqlite::wire::value_view> v(4);
    starts.push_back(static_cast<std::size_t>(rr.row_data() - body.data()));
    while (rr.next(v)) starts.push_back(static_cast<std::size_t>(rr.row_data() - body.data()));
    REQUIRE(rr.end() == dqlite::wire::rows_end::done);
  }
  REQUIRE(starts.size() == 9);
  const std::size_t row5 = starts[5];
  auto damaged = [&](auto&& change) {
    auto b = body;
    change(b);
    return frames_t{b};
  };
  auto set_u64 = [](std::vector<std::byte>& b, std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
  };

  SECTION("cut in the middle of a row") {
    auto b = body;
    b.resize(row5 + 20);
    auto a = with_sink<rec>({b});
    CHECK(a.ec == dqlite::errc::truncated);
    CHECK(a.rows.size() == 5);
    check_same<rec>({b});
  }
  SECTION("cut inside the text") {
    auto b = body;
    b.resize(row5 + 8 + 8 + 2);
    auto a = with_sink<rec>({b});
    CHECK(a.ec == dqlite::errc::missing_nul);
    CHECK(a.rows.size() == 5);
    check_same<rec>({b});
  }
  SECTION("unknown type code") {
    auto f = damaged([&](auto& b) { b[row5] = std::byte{0x17}; });  // INTEGER -> 7
    auto a = with_sink<rec>(f);
    CHECK(a.ec == dqlite::errc::unknown_value_type);
    CHECK(a.rows.size() == 5);
    check_same<rec>(f);
  }
  SECTION("non-zero header padding") {
    auto f = damaged([&](auto& b) { b[row5 + 5] = std::byte{1}; });
    auto a = with_sink<rec>(f);
    CHECK(a.ec == dqlite::errc::bad_padding);
    check_same<rec>(f);
  }
  SECTION("non-zero text padding") {
    // Row 5's name "n5" is followed by its NUL and five padding bytes.
    auto f = damaged([&](auto& b) { b[row5 + 8 + 8 + 4] = std::byte{'z'}; });
    auto a = with_sink<rec>(f);
    CHECK(a.ec == dqlite::errc::bad_padding);
    CHECK(a.rows.size() == 5);
    check_same<rec>(f);
  }
  SECTION("a blob length past the end of the frame") {
    auto f = damaged([&](auto& b) { set_u64(b, row5 + 8 + 8 + 8 + 8, 1u << 20); });
    auto a = with_sink<rec>(f);
    CHECK(a.ec == dqlite::errc::truncated);
    CHECK(a.rows.size() == 5);
    check_same<rec>(f);
  }
  SECTION("no end marker") {
    auto b = body;
    b.resize(b.size() - 8);
    auto a = with_sink<rec>({b});
    CHECK(a.ec == dqlite::errc::invalid_row_marker);
    CHECK(a.rows.size() == 8);
    check_same<rec>({b});
  }
}

TEST_CASE("columns in another order, extra columns, many columns", "[mapping][direct]") {
  SECTION("fields' columns in another order") {
    rows_builder b({"payload", "score", "name", "id"});
    for (int i = 0; i < 20; ++i) b.row(blob_value{pay(3)}, 1.0 * i, std::to_string(i), i);
    auto frames = b.finish();
    auto a = with_sink<rec>(frames);
    REQUIRE(!a.ec);
    CHECK(a.rows[19].name == "19");
    check_same<rec>(frames);
  }
  SECTION("extra columns between and after the fields") {
    rows_builder b({"x", "id", "y", "name", "score", "z", "payload", "w"});
    for (int i = 0; i < 20; ++i)
      b.row("x", i, null_value{}, std::to_string(i), 0.5, blob_value{"zz"}, blob_value{pay(9)}, 1.5);
    b.row(typed_int{dqlite::value_type::boolean, 1}, 20, 3, "t", 0.5, "q", blob_value{""}, "w");
    auto frames = b.finish();
    auto a = with_sink<rec>(frames);
    REQUIRE(!a.ec);
    REQUIRE(a.rows.size() == 21);
    CHECK(a.rows[20].payload.empty());
    check_same<rec>(frames);
  }
  SECTION("more than 16 columns: a two-word row header") {
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) names.push_back("c" + std::to_string(i));
    rows_builder b(names, 256);
    for (int r = 0; r < 30; ++r) {
      if (r == 17)
        b.row(r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, null_value{}, "s");
      else
        b.row(r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18.5, "s");
    }
    auto frames = b.finish();
    using wide = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int, int,
                            int, int, int, int, std::optional<double>, std::string>;
    auto a = with_sink<wide>(frames);
    REQUIRE(!a.ec);
    REQUIRE(a.rows.size() == 30);
    CHECK(!std::get<18>(a.rows[17]));
    CHECK(std::get<18>(a.rows[18]) == 18.5);
    check_same<wide>(frames);
    auto bad = with_sink<std::tuple<int, int>>(frames);  // c2.. are extra: allowed
    REQUIRE(!bad.ec);
    check_same<std::tuple<int, int>>(frames);
  }
}

TEST_CASE("columns that change between the frames of one result are refused", "[mapping][direct]") {
  rows_builder b1({"id", "name", "score", "payload"});
  b1.row(1, "a", 1.0, blob_value{"x"});
  rows_builder b2({"id", "name"});
  b2.row(2, "b");
  auto f1 = b1.finish();
  auto f2 = b2.finish();
  // The first frame ends with PART instead of DONE.
  auto& first = f1[0];
  for (std::size_t i = first.size() - 8; i < first.size(); ++i) first[i] = std::byte{0xee};
  frames_t frames{first, f2[0]};
  auto a = with_sink<rec>(frames);
  CHECK(a.ec == dqlite::errc::unexpected_response);
  CHECK(a.rows.size() == 1);
}

TEST_CASE("damaged frames: direct reading accepts and refuses exactly what next() does",
          "[mapping][direct]") {
  rows_builder b({"id", "name", "score", "payload"}, 300);
  for (int i = 0; i < 60; ++i) {
    if (i % 7 == 3)
      b.row(i, null_value{}, i, blob_value{pay(static_cast<std::size_t>(i % 17))});
    else
      b.row(i, std::string(static_cast<std::size_t>(i % 13), 'q'), 0.5,
            blob_value{pay(static_cast<std::size_t>(i % 17))});
  }
  const auto frames = b.finish();
  std::mt19937 rng(12345);
  for (int round = 0; round < 400; ++round) {
    auto f = frames;
    auto& body = f[rng() % f.size()];
    const int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) {
      const std::size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0: body[at] = static_cast<std::byte>(rng() % 256); break;
        case 1: body[at] = std::byte{0}; break;
        case 2: body[at] = static_cast<std::byte>(rng() % 16); break;
        default: body.resize(at); break;
      }
      if (body.empty()) break;
    }
    INFO("round " << round);
    check_same<loose_rec>(f);
    check_same<rec>(f);
    check_same<std::tuple<std::int64_t, std::optional<std::string>>>(f);
  }
}
