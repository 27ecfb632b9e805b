// Mapping prepared ROWS frames into user types, without a server.
#include <dqlite/client.hpp>

#include <catch2/catch.hpp>

#include "support/rows_frames.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

using dqlite_test::rows_builder;
using blob_value = rows_builder::blob_value;
using null_value = rows_builder::null_value;
using typed_int = rows_builder::typed_int;
using iso_text = rows_builder::iso_text;

namespace {

struct person {
  std::int64_t id;
  std::string name;
  std::optional<double> score;
};

enum class level : std::int16_t { low = 1, high = 9 };

struct everything {
  bool flag;
  std::int8_t i8;
  std::uint16_t u16;
  std::int32_t i32;
  std::uint64_t u64;
  float f;
  double d;
  std::string text;
  std::vector<std::byte> bytes;
  std::vector<unsigned char> ubytes;
  std::optional<std::int64_t> maybe;
  level lvl;
  std::chrono::sys_seconds at_unix;
  std::chrono::sys_time<std::chrono::microseconds> at_iso;
  dqlite::value any;
};

/// A user type with its own field and parameter conversions.
struct money {
  std::int64_t cents;
};

struct renamed {
  std::int64_t key;
  std::string label;
};

std::string& last_diag() {
  static std::string d;
  return d;
}

template <class Sink>
std::pair<dqlite::error_code, typename Sink::result_type> decode(
    const std::vector<std::vector<std::byte>>& frames, dqlite::connection_options opts = {}) {
  dqlite_test::sink_context ctx;
  ctx.opts = opts;
  Sink sink;
  auto ec = dqlite_test::run_sink(sink, frames, ctx);
  last_diag() = ctx.diag.message();
  return {ec, sink.take()};
}

template <class T>
using fetch_sink = dqlite::detail::typed_rows_sink<T>;

}  // namespace

template <>
struct dqlite::field_traits<money> {
  static dqlite::error_code read(const dqlite::wire::value_view& v, money& out) {
    if (v.type != dqlite::value_type::integer) return make_error_code(dqlite::errc::type_mismatch);
    out.cents = v.integer;
    return {};
  }
};

template <>
struct dqlite::field_names<renamed> {
  static constexpr std::array<std::string_view, 2> value{"id", "display_name"};
};

TEST_CASE("aggregates are mapped by column name, in any order", "[mapping]") {
  rows_builder b({"score", "name", "id", "extra"});
  b.row(1.5, "ann", 1, "x");
  b.row(null_value{}, "bob", 2, "y");
  auto [ec, rows] = decode<fetch_sink<person>>(b.finish());
  REQUIRE(!ec);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].id == 1);
  CHECK(rows[0].name == "ann");
  CHECK(rows[0].score == 1.5);
  CHECK(rows[1].name == "bob");
  CHECK(!rows[1].score);
}

TEST_CASE("extra columns can be rejected", "[mapping]") {
  rows_builder b({"id", "name", "score", "extra"});
  b.row(1, "ann", 1.5, "x");
  dqlite::connection_options o;
  o.reject_extra_columns = true;
  auto [ec, rows] = decode<fetch_sink<person>>(b.finish(), o);
  CHECK(ec == dqlite::errc::column_mismatch);
  CHECK_THAT(last_diag(), Catch::Contains("column 'extra' matches no field"));
}

TEST_CASE("a column mismatch lists every problem at once", "[mapping]") {
  rows_builder b({"name", "other"});
  b.row("ann", 1);
  dqlite::connection_options o;
  o.reject_extra_columns = true;
  auto [ec, rows] = decode<fetch_sink<person>>(b.finish(), o);
  CHECK(ec == dqlite::errc::column_mismatch);
  CHECK_THAT(last_diag(), Catch::Contains("field 'id' has no column of that name"));
  CHECK_THAT(last_diag(), Catch::Contains("field 'score' has no column of that name"));
  CHECK_THAT(last_diag(), Catch::Contains("column 'other' matches no field"));
  CHECK(rows.empty());
}

TEST_CASE("value errors name the row, field, column and both types", "[mapping]") {
  rows_builder b({"id", "name", "score"});
  b.row(1, "ann", 2.0);
  b.row("not a number", null_value{}, "zz");
  auto [ec, rows] = decode<fetch_sink<person>>(b.finish());
  CHECK(ec == dqlite::errc::type_mismatch);
  const auto& d = last_diag();
  CHECK_THAT(d, Catch::Contains("row 2"));
  CHECK_THAT(d, Catch::Contains("field 'id' (int64_t) from column 'id': has type TEXT"));
  CHECK_THAT(d, Catch::Contains("field 'name' (std::string) from column 'name': is NULL"));
  CHECK_THAT(d, Catch::Contains("field 'score' (std::optional<double>)"));
  CHECK(rows.size() == 1);  // the rows before the bad one
}

TEST_CASE("integers out of range for the field are reported", "[mapping]") {
  rows_builder b({"v"});
  b.row(300);
  auto [ec, rows] = decode<fetch_sink<std::int8_t>>(b.finish());
  CHECK(ec == dqlite::errc::out_of_range);
  CHECK_THAT(last_diag(), Catch::Contains("300"));
  rows_builder b2({"v"});
  b2.row(-1);
  auto [ec2, rows2] = decode<fetch_sink<std::uint32_t>>(b2.finish());
  CHECK(ec2 == dqlite::errc::out_of_range);
}

TEST_CASE("every supported field type", "[mapping]") {
  rows_builder b({"flag", "i8", "u16", "i32", "u64", "f", "d", "text", "bytes", "ubytes", "maybe",
                  "lvl", "at_unix", "at_iso", "any"});
  b.row(typed_int{dqlite::value_type::boolean, 1}, -5, 65535, -70000, 1LL << 62, 0.25, -2.5,
        "tëxt", blob_value{std::string_view("\0\1\2", 3)}, blob_value{"ab"}, null_value{}, 9,
        typed_int{dqlite::value_type::unixtime, 1700000000},
        iso_text{"2024-02-29T13:14:15.123456Z"}, "dyn");
  auto [ec, rows] = decode<fetch_sink<everything>>(b.finish());
  INFO(last_diag());
  REQUIRE(!ec);
  REQUIRE(rows.size() == 1);
  const auto& r = rows[0];
  CHECK(r.flag);
  CHECK(r.i8 == -5);
  CHECK(r.u16 == 65535);
  CHECK(r.i32 == -70000);
  CHECK(r.u64 == (1ULL << 62));
  CHECK(r.f == 0.25f);
  CHECK(r.d == -2.5);
  CHECK(r.text == "tëxt");
  CHECK(r.bytes == std::vector<std::byte>{std::byte{0}, std::byte{1}, std::byte{2}});
  CHECK(r.ubytes == std::vector<unsigned char>{'a', 'b'});
  CHECK(!r.maybe);
  CHECK(r.lvl == level::high);
  CHECK(r.at_unix.time_since_epoch().count() == 1700000000);
  using namespace std::chrono;
  CHECK(r.at_iso == sys_days{year{2024} / 2 / 29} + hours{13} + minutes{14} + seconds{15} +
                        microseconds{123456});
  CHECK(r.any == dqlite::value("dyn"));
}

TEST_CASE("NULL in BOOLEAN and DATETIME columns, in both server forms", "[mapping]") {
  struct row_t {
    std::optional<bool> flag;
    std::optional<std::chrono::sys_seconds> at;
  };
  rows_builder b({"flag", "at"});
  b.row(typed_int{dqlite::value_type::boolean, 0}, iso_text{""});  // released servers
  b.row(null_value{}, null_value{});                                // newer servers
  auto [ec, rows] = decode<fetch_sink<row_t>>(b.finish());
  REQUIRE(!ec);
  REQUIRE(rows.size() == 2);
  // Released servers: a NULL BOOLEAN cannot be told from false.
  CHECK(rows[0].flag == false);
  CHECK(!rows[0].at);  // ISO8601 "" is NULL
  CHECK(!rows[1].flag);
  CHECK(!rows[1].at);

  // A non-optional time point refuses the empty ISO8601 text as NULL.
  rows_builder b2({"at"});
  b2.row(iso_text{""});
  auto [ec2, rows2] = decode<fetch_sink<std::chrono::sys_seconds>>(b2.finish());
  CHECK(ec2 == dqlite::errc::unexpected_null);
}

TEST_CASE("tuples, pairs, scalars and by_position map in order", "[mapping]") {
  rows_builder b({"a", "b", "c"});
  b.row(1, "one", 1.0);
  b.row(2, "two", 2.0);
  auto frames = b.finish();
  auto [ec1, t] = decode<fetch_sink<std::tuple<std::int64_t, std::string, double>>>(frames);
  REQUIRE(!ec1);
  CHECK(t[1] == std::tuple<std::int64_t, std::string, double>{2, "two", 2.0});
  auto [ec2, p] = decode<fetch_sink<std::pair<int, std::string>>>(frames);
  REQUIRE(!ec2);
  CHECK(p[0].second == "one");
  auto [ec3, s] = decode<fetch_sink<int>>(frames);
  REQUIRE(!ec3);
  CHECK(s == std::vector<int>{1, 2});
  auto [ec4, bp] = decode<fetch_sink<dqlite::by_position<person>>>(frames);
  REQUIRE(!ec4);
  CHECK(bp[1].id == 2);
  CHECK(bp[1].name == "two");
  CHECK(bp[1].score == 2.0);
  rows_builder b5({"x", "y", "z"});
  b5.row(7, "seven", null_value{});
  auto [ec5, bp5] = decode<fetch_sink<dqlite::by_position<person>>>(b5.finish());
  REQUIRE(!ec5);
  CHECK(bp5[0].id == 7);
  CHECK(bp5[0].name == "seven");
  CHECK(!bp5[0].score);
  auto [ec6, short_tuple] = decode<fetch_sink<std::tuple<int, int, int, int>>>(frames);
  CHECK(ec6 == dqlite::errc::column_mismatch);
}

TEST_CASE("dynamic rows keep the column names once", "[mapping]") {
  rows_builder b({"id", "name"}, 64);  // small frames: many PART frames
  for (int i = 0; i < 50; ++i) b.row(i, "n" + std::to_string(i));
  auto frames = b.finish();
  REQUIRE(frames.size() > 5);
  auto [ec, rows] = decode<fetch_sink<dqlite::row>>(frames);
  REQUIRE(!ec);
  REQUIRE(rows.size() == 50);
  CHECK(rows[49]["name"].as_text() == "n49");
  CHECK(&rows[0].columns() == &rows[49].columns());
  CHECK_THROWS_AS(rows[0]["nope"], std::out_of_range);
  auto [ec2, all] = decode<dqlite::detail::dynamic_rows_sink>(frames);
  REQUIRE(!ec2);
  CHECK(all.size() == 50);
  CHECK(all.columns() == dqlite::column_names{"id", "name"});
}

TEST_CASE("fetchone keeps only the first row", "[mapping]") {
  rows_builder b({"id", "name", "score"});
  b.row(1, "a", 1.0);
  b.row(2, "b", 2.0);
  auto [ec, one] = decode<dqlite::detail::typed_rows_sink<person, true>>(b.finish());
  REQUIRE(!ec);
  REQUIRE(one);
  CHECK(one->id == 1);
  rows_builder empty({"id", "name", "score"});
  auto [ec2, none] = decode<dqlite::detail::typed_rows_sink<person, true>>(empty.finish());
  REQUIRE(!ec2);
  CHECK(!none);
}

TEST_CASE("user types through the customization points", "[mapping]") {
  struct account {
    std::string owner;
    money balance;
  };
  rows_builder b({"owner", "balance"});
  b.row("ann", 1234);
  auto [ec, rows] = decode<fetch_sink<account>>(b.finish());
  REQUIRE(!ec);
  CHECK(rows[0].balance.cents == 1234);

  rows_builder b2({"display_name", "id"});
  b2.row("shown", 5);
  auto [ec2, r2] = decode<fetch_sink<renamed>>(b2.finish());
  REQUIRE(!ec2);
  CHECK(r2[0].key == 5);
  CHECK(r2[0].label == "shown");
}

TEST_CASE("result caps stop accumulation with a clear error", "[mapping]") {
  rows_builder b({"id"}, 64);
  for (int i = 0; i < 100; ++i) b.row(i);
  dqlite::connection_options o;
  o.max_result_rows = 10;
  auto [ec, rows] = decode<fetch_sink<int>>(b.finish(), o);
  CHECK(ec == dqlite::errc::result_too_large);
  CHECK_THAT(last_diag(), Catch::Contains("max_result_rows"));
}

TEST_CASE("ISO8601 \"\" is NULL on every read path", "[mapping]") {
  // What released servers send for a NULL in a DATETIME column, next to the newer form.
  auto frames = [] {
    rows_builder b({"dt"});
    b.row(iso_text{""});
    b.row(null_value{});
    b.row(iso_text{"2006-01-02 15:04:05"});
    return b.finish();
  };
  SECTION("dynamic rows") {
    auto [ec, rows] = decode<dqlite::detail::dynamic_rows_sink>(frames());
    REQUIRE(!ec);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0]["dt"].is_null());
    CHECK(rows[0]["dt"] == rows[1]["dt"]);
    CHECK(rows[2]["dt"] == dqlite::value::iso8601("2006-01-02 15:04:05"));
  }
  SECTION("typed fields of every type") {
    auto [e1, s] = decode<fetch_sink<std::optional<std::string>>>(frames());
    REQUIRE(!e1);
    CHECK(s == std::vector<std::optional<std::string>>{std::nullopt, std::nullopt,
                                                        "2006-01-02 15:04:05"});
    auto [e2, v] = decode<fetch_sink<dqlite::value>>(frames());
    REQUIRE(!e2);
    CHECK(v[0].is_null());
    auto [e3, i] = decode<fetch_sink<std::optional<std::int64_t>>>(frames());
    CHECK(e3 == dqlite::errc::type_mismatch);  // the third row's text; the NULLs are fine
    auto [e4, t] = decode<fetch_sink<std::optional<std::chrono::sys_seconds>>>(frames());
    REQUIRE(!e4);
    CHECK(!t[0]);
    CHECK(!t[1]);
    CHECK(t[2]);
    // A type that cannot hold NULL refuses both forms alike.
    rows_builder b({"dt"});
    b.row(iso_text{""});
    auto [e5, str] = decode<fetch_sink<std::string>>(b.finish());
    CHECK(e5 == dqlite::errc::unexpected_null);
    CHECK_THAT(last_diag(), Catch::Contains("is NULL"));
  }
  SECTION("fetchval") {
    rows_builder b({"dt"});
    b.row(iso_text{""});
    auto [ec, v] = decode<dqlite::detail::value_sink<std::optional<std::string>>>(b.finish());
    REQUIRE(!ec);
    CHECK(!v);
  }
}

TEST_CASE("an out-of-range time names the field's type", "[mapping]") {
  struct row_t {
    std::chrono::system_clock::time_point at;
  };
  rows_builder b({"at"});
  b.row(iso_text{"0001-01-01 00:00:00+00:00"});
  auto [ec, rows] = decode<fetch_sink<row_t>>(b.finish());
  CHECK(ec == dqlite::errc::out_of_range);
  CHECK_THAT(last_diag(), Catch::Contains("'0001-01-01 00:00:00+00:00' is out of range for "
                                          "std::chrono::sys_time<nanoseconds>"));
}
