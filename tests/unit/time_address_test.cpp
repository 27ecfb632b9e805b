// ISO-8601 formatting and parsing, and node address parsing.
#include <dqlite/address.hpp>
#include <dqlite/detail/time.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono;
using dqlite::errc;
using dqlite::make_error_code;
using ns_time = sys_time<nanoseconds>;

template <class Duration>
std::string format(time_point<system_clock, Duration> tp) {
  char buf[dqlite::detail::iso8601_max_size];
  return std::string(dqlite::detail::format_iso8601(tp, buf));
}

std::optional<ns_time> parse(std::string_view s) {
  return dqlite::detail::parse_iso8601(s);
}

constexpr sys_days day_2023 = sys_days{year{2023} / 1 / 2};
constexpr ns_time at(int h, int m, int s = 0, std::int64_t ns = 0) {
  return ns_time{day_2023} + hours{h} + minutes{m} + seconds{s} + nanoseconds{ns};
}

}  // namespace

TEST_CASE("time: format", "[time]") {
  CHECK(format(at(3, 4, 5)) == "2023-01-02 03:04:05+00:00");
  CHECK(format(at(3, 4, 5, 120000000)) == "2023-01-02 03:04:05.12+00:00");
  CHECK(format(at(23, 59, 59, 999999999)) == "2023-01-02 23:59:59.999999999+00:00");
  CHECK(format(day_2023) == "2023-01-02 00:00:00+00:00");
  CHECK(format(sys_seconds{} - seconds{1}) == "1969-12-31 23:59:59+00:00");
  CHECK(format(ns_time{} - nanoseconds{1}) == "1969-12-31 23:59:59.999999999+00:00");
  CHECK(format(time_point_cast<microseconds>(at(0, 0, 0, 5000))) ==
        "2023-01-02 00:00:00.000005+00:00");
  CHECK(format(sys_days{year{2262} / 4 / 12}) == "2262-04-12 00:00:00+00:00");
  CHECK(format(sys_days{year{1600} / 2 / 29}) == "1600-02-29 00:00:00+00:00");
  CHECK(format(sys_days{year{9999} / 12 / 31} + hours{23} + minutes{59} + seconds{59}) ==
        "9999-12-31 23:59:59+00:00");
  // The longest form fits the buffer.
  CHECK(format(at(0, 0, 0, 1)).size() < dqlite::detail::iso8601_max_size);
}

TEST_CASE("time: format and parse round trip", "[time]") {
  // Deterministic spread over the whole range of nanosecond time points.
  std::int64_t step = 7919LL * 1000000007LL * 1000LL + 123456789;
  for (std::int64_t t = -9'000'000'000'000'000'000LL; t < 9'000'000'000'000'000'000LL - step;
       t += step) {
    ns_time tp{nanoseconds{t}};
    auto text = format(tp);
    auto back = parse(text);
    INFO(text);
    REQUIRE(back.has_value());
    CHECK(*back == tp);
  }
  for (auto tp : {at(0, 0), at(12, 30, 1, 1), at(23, 59, 59, 999999999), ns_time{}}) {
    auto back = parse(format(tp));
    REQUIRE(back.has_value());
    CHECK(*back == tp);
  }
}

TEST_CASE("time: accepted forms", "[time]") {
  CHECK(parse("2023-01-02") == ns_time{day_2023});
  CHECK(parse("2023-01-02 03:04") == at(3, 4));
  CHECK(parse("2023-01-02T03:04") == at(3, 4));
  CHECK(parse("2023-01-02 03:04:05") == at(3, 4, 5));
  CHECK(parse("2023-01-02T03:04:05") == at(3, 4, 5));

  SECTION("fractions of 1 to 9 digits, and more") {
    CHECK(parse("2023-01-02 03:04:05.1") == at(3, 4, 5, 100000000));
    CHECK(parse("2023-01-02 03:04:05.12") == at(3, 4, 5, 120000000));
    CHECK(parse("2023-01-02 03:04:05.123") == at(3, 4, 5, 123000000));
    CHECK(parse("2023-01-02 03:04:05.0001") == at(3, 4, 5, 100000));
    CHECK(parse("2023-01-02 03:04:05.12345") == at(3, 4, 5, 123450000));
    CHECK(parse("2023-01-02 03:04:05.123456") == at(3, 4, 5, 123456000));
    CHECK(parse("2023-01-02 03:04:05.1234567") == at(3, 4, 5, 123456700));
    CHECK(parse("2023-01-02 03:04:05.12345678") == at(3, 4, 5, 123456780));
    CHECK(parse("2023-01-02 03:04:05.123456789") == at(3, 4, 5, 123456789));
    CHECK(parse("2023-01-02 03:04:05.000000001") == at(3, 4, 5, 1));
    // Digits past nanoseconds are read and dropped.
    CHECK(parse("2023-01-02 03:04:05.1234567899") == at(3, 4, 5, 123456789));
    CHECK(parse("2023-01-02 03:04:05.123456789999999999999") == at(3, 4, 5, 123456789));
    CHECK(parse("2023-01-02 03:04:05.0000000009Z") == at(3, 4, 5));
  }
  SECTION("zones") {
    CHECK(parse("2023-01-02T03:04:05Z") == at(3, 4, 5));
    CHECK(parse("2023-01-02 03:04:05+00:00") == at(3, 4, 5));
    CHECK(parse("2023-01-02 03:04:05-00:00") == at(3, 4, 5));
    CHECK(parse("2023-01-02 03:04:05+02:00") == at(1, 4, 5));
    CHECK(parse("2023-01-02 03:04:05-0130") == at(4, 34, 5));
    CHECK(parse("2023-01-02 03:04:05+0530") == at(-3, 34, 5));
    CHECK(parse("2023-01-02 03:04+01:00") == at(2, 4));
    CHECK(parse("2023-01-02 03:04:05.5-07:00") == at(10, 4, 5, 500000000));
    CHECK(parse("2023-01-02 23:30:00-23:59") == at(47, 29));
    // The Go client's form.
    CHECK(parse("2006-01-02 15:04:05.999999999-07:00") == ns_time{sys_days{year{2006} / 1 / 2}} +
                                                              hours{22} + minutes{4} + seconds{5} +
                                                              nanoseconds{999999999});
  }
  SECTION("calendar edges") {
    CHECK(parse("2024-02-29") == ns_time{sys_days{year{2024} / 2 / 29}});
    CHECK(parse("2000-02-29") == ns_time{sys_days{year{2000} / 2 / 29}});
    CHECK(parse("2023-12-31 23:59:59") ==
          ns_time{sys_days{year{2023} / 12 / 31}} + hours{23} + minutes{59} + seconds{59});
    // A leap second reads as the next second.
    CHECK(parse("2016-12-31 23:59:60") == ns_time{sys_days{year{2017} / 1 / 1}});
    CHECK(parse("1970-01-01 00:00:00") == ns_time{});
  }
  SECTION("the range of nanosecond time points") {
    CHECK(parse("2262-04-11 23:47:15.999999999") ==
          ns_time{seconds{9223372035}} + nanoseconds{999999999});
    CHECK(parse("1677-09-21 00:12:44") == ns_time{seconds{-9223372036}});
    CHECK_FALSE(parse("2262-04-11 23:47:16"));
    CHECK_FALSE(parse("1677-09-21 00:12:43"));
    CHECK_FALSE(parse("9999-12-31 23:59:59"));
    CHECK_FALSE(parse("0000-01-01"));
    CHECK_FALSE(parse("2262-04-11 23:47:15-00:01"));
  }
}

TEST_CASE("time: rejected text", "[time]") {
  const char* bad[] = {
      "",
      "garbage",
      "2023",
      "2023-01",
      "2023-1-02",
      "2023-01-2",
      "23-01-02",
      "20230102",
      "2023/01/02",
      "2023-01-02x",
      "2023-01-02 ",
      "2023-01-02T",
      "2023-01-02  03:04",
      "2023-01-02 3:04",
      "2023-01-02 03",
      "2023-01-02 03:",
      "2023-01-02 03:4",
      "2023-01-02 03:04:",
      "2023-01-02 03:04:5",
      "2023-01-02 03:04:05.",
      "2023-01-02 03:04:05.Z",
      "2023-01-02 03:04:05,5",
      "2023-01-02 03:04:05 ",
      "2023-01-02 03:04:05+",
      "2023-01-02 03:04:05+1",
      "2023-01-02 03:04:05+02",
      "2023-01-02 03:04:05+02:0",
      "2023-01-02 03:04:05+24:00",
      "2023-01-02 03:04:05+02:60",
      "2023-01-02 03:04:05Zjunk",
      "2023-01-02 03:04:05+02:00junk",
      "2023-01-02 03:04:05z",
      "2023-01-02 24:00",
      "2023-01-02 12:60",
      "2023-01-02 12:00:61",
      "2023-02-30",
      "2023-02-29",
      "1900-02-29",
      "2023-13-01",
      "2023-00-10",
      "2023-01-00",
      "2023-01-32",
      "2023-04-31",
      "-2023-01-02",
      "+2023-01-02",
      " 2023-01-02",
      "2023-01-02\n",
      "２０２３-01-02",
      "2023-01-02 03:04:05.123abc",
  };
  for (const char* s : bad) {
    INFO(s);
    CHECK_FALSE(parse(s).has_value());
  }
  CHECK_FALSE(parse(std::string_view("2023-01-02\0", 11)).has_value());
  CHECK_FALSE(parse(std::string_view("2023-01-02", 9)).has_value());
}

// ---------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------

TEST_CASE("address: accepted", "[address]") {
  dqlite::host_port hp;
  REQUIRE_FALSE(dqlite::parse_address("127.0.0.1:9001", hp));
  CHECK(hp.host == "127.0.0.1");
  CHECK(hp.port == 9001);

  REQUIRE_FALSE(dqlite::parse_address("[::1]:9001", hp));
  CHECK(hp.host == "::1");
  CHECK(hp.port == 9001);

  REQUIRE_FALSE(dqlite::parse_address("[fe80::1%eth0]:1", hp));
  CHECK(hp.host == "fe80::1%eth0");
  CHECK(hp.port == 1);

  REQUIRE_FALSE(dqlite::parse_address("[2001:db8::ff00:42:8329]:65535", hp));
  CHECK(hp.host == "2001:db8::ff00:42:8329");
  CHECK(hp.port == 65535);

  REQUIRE_FALSE(dqlite::parse_address("localhost:1", hp));
  CHECK(hp.host == "localhost");
  CHECK(hp.port == 1);

  REQUIRE_FALSE(dqlite::parse_address("node-1.example.com:65535", hp));
  CHECK(hp.host == "node-1.example.com");
  CHECK(hp.port == 65535);

  REQUIRE_FALSE(dqlite::parse_address("db_2:09001", hp));
  CHECK(hp.host == "db_2");
  CHECK(hp.port == 9001);
}

TEST_CASE("address: rejected", "[address]") {
  const char* bad[] = {
      "",
      ":",
      "127.0.0.1",
      "localhost",
      "127.0.0.1:",
      ":9001",
      "host:0",
      "host:00",
      "host:65536",
      "host:99999",
      "host:4294967297",
      "host:99999999999999999999999",
      "host:-1",
      "host:+1",
      "host: 1",
      "host:0x10",
      "host:9001x",
      "host:9001 ",
      "host:9001:",
      "host:9001/",
      "::1:9001",
      "::1",
      "fe80::1:9001",
      "[::1]",
      "[::1]:",
      "[::1]9001",
      "[::1]:9001x",
      "[::1]:0",
      "[::1:9001",
      "[]:9001",
      "[[::1]]:9001",
      "[a b]:1",
      "ho st:1",
      " host:1",
      "host\t:1",
      "a/b:1",
      "[::1]]:9001",
  };
  for (const char* s : bad) {
    INFO(s);
    dqlite::host_port hp{"keep", 7};
    CHECK(dqlite::parse_address(s, hp) == make_error_code(errc::invalid_address));
    // A failure leaves the output as it was.
    CHECK(hp.host == "keep");
    CHECK(hp.port == 7);
  }
  dqlite::host_port hp;
  CHECK(dqlite::parse_address(std::string_view("host:1\0", 7), hp) ==
        make_error_code(errc::invalid_address));
  CHECK(dqlite::parse_address(std::string_view("ho\0st:1", 7), hp) ==
        make_error_code(errc::invalid_address));
}
