// Binding C++ values as parameters (checked on the encoded bytes) and reading received values
// into C++ types.
#include <dqlite/field.hpp>
#include <dqlite/params.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace {

namespace wire = dqlite::wire;
using dqlite::errc;
using dqlite::error_code;
using dqlite::make_error_code;
using dqlite::value;
using dqlite::value_type;
using namespace std::chrono;

error_code err(errc e) {
  return make_error_code(e);
}

std::string hex(std::span<const std::byte> b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i != 0 && i % 8 == 0) s += ' ';
    auto v = static_cast<unsigned>(b[i]);
    s += digits[v >> 4];
    s += digits[v & 15];
  }
  return s;
}

std::string golden(std::string_view text) {
  std::string raw;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) raw += c;
  std::string s;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (i != 0 && i % 16 == 0) s += ' ';
    s += raw[i];
  }
  return s;
}

// An EXEC frame (db 0, stmt 0) carrying args.
struct encoded {
  wire::buffer frame;
  error_code ec;

  std::uint8_t schema() const { return static_cast<std::uint8_t>(frame.at(5)); }
  std::uint32_t words() const {
    std::uint32_t w = 0;
    for (int i = 3; i >= 0; --i)
      w = (w << 8) | static_cast<std::uint32_t>(frame.at(static_cast<std::size_t>(i)));
    return w;
  }
  // The parameter tuple: everything after the header and the db/stmt word.
  std::string tuple() const { return hex(std::span(frame).subspan(16)); }
  // The text of a single TEXT/ISO8601 parameter, with its type code.
  std::pair<unsigned, std::string> single_text() const {
    REQUIRE(frame.size() >= 32);
    REQUIRE(static_cast<unsigned>(frame[16]) == 1);
    std::string s;
    std::size_t i = 24;
    while (i < frame.size() && frame[i] != std::byte{0}) s += static_cast<char>(frame[i++]);
    REQUIRE(i < frame.size());
    for (; i < frame.size(); ++i) REQUIRE(frame[i] == std::byte{0});
    return {static_cast<unsigned>(frame[17]), s};
  }
};

template <class... Args>
encoded encode(const Args&... args) {
  encoded e;
  auto m = wire::begin_stmt_request(e.frame, wire::request::exec, 0, 0);
  e.ec = dqlite::detail::write_params(e.frame, m, args...);
  if (!e.ec) wire::end_frame(e.frame, m);
  return e;
}

// The tuple of args, which must bind without error.
template <class... Args>
std::string tuple_of(const Args&... args) {
  auto e = encode(args...);
  REQUIRE_FALSE(e.ec);
  CHECK(e.words() * 8 + 8 == e.frame.size());
  return e.tuple();
}

template <class... Args>
error_code bind_error(const Args&... args) {
  return encode(args...).ec;
}

template <class... Args>
std::string time_text(const Args&... args) {
  auto e = encode(args...);
  REQUIRE_FALSE(e.ec);
  auto [type, text] = e.single_text();
  CHECK(type == 10);
  return text;
}

enum class color : std::uint8_t { red = 1, green = 200 };
enum plain_enum { plain_a = -3, plain_b = 7 };
enum fixed_plain : short { fixed_a = -3, fixed_b = 7 };
enum class big : std::uint64_t { small = 5, huge = 0x8000000000000000ULL };

constexpr sys_days go_day = sys_days{year{2006} / 1 / 2};
constexpr auto go_time = go_day + hours{15} + minutes{4} + seconds{5};

}  // namespace

// ---------------------------------------------------------------------------------------
// params.hpp
// ---------------------------------------------------------------------------------------

static_assert(dqlite::parameter<int>);
static_assert(dqlite::parameter<bool>);
static_assert(dqlite::parameter<std::uint64_t>);
static_assert(dqlite::parameter<double>);
static_assert(dqlite::parameter<std::string>);
static_assert(dqlite::parameter<std::string_view>);
static_assert(dqlite::parameter<const char*>);
static_assert(dqlite::parameter<char[6]>);
static_assert(dqlite::parameter<const std::string&>);
static_assert(dqlite::parameter<std::vector<std::byte>>);
static_assert(dqlite::parameter<std::vector<unsigned char>>);
static_assert(dqlite::parameter<std::span<const std::byte>>);
static_assert(dqlite::parameter<std::nullptr_t>);
static_assert(dqlite::parameter<std::nullopt_t>);
static_assert(dqlite::parameter<dqlite::null_t>);
static_assert(dqlite::parameter<std::optional<int>>);
static_assert(dqlite::parameter<color>);
static_assert(dqlite::parameter<system_clock::time_point>);
static_assert(dqlite::parameter<value>);
static_assert(!dqlite::parameter<std::vector<int>>);
static_assert(!dqlite::parameter<void*>);

TEST_CASE("params: no parameters omit the tuple", "[params]") {
  CHECK(tuple_of() == "");
  CHECK(tuple_of(std::tuple<>{}) == "");
  CHECK(tuple_of(dqlite::params_from(std::vector<value>{})) == "");
  auto e = encode();
  CHECK(hex(e.frame) == golden("01000000 05 00 0000  00000000 00000000"));
}

TEST_CASE("params: bool and integers", "[params]") {
  CHECK(tuple_of(true) == golden("0101000000000000 0100000000000000"));
  CHECK(tuple_of(false) == golden("0101000000000000 0000000000000000"));
  CHECK(tuple_of(std::int8_t{-1}) == golden("0101000000000000 ffffffffffffffff"));
  CHECK(tuple_of(static_cast<signed char>(-5)) == golden("0101000000000000 fbffffffffffffff"));
  CHECK(tuple_of(std::uint8_t{255}) == golden("0101000000000000 ff00000000000000"));
  CHECK(tuple_of(std::int16_t{-32768}) == golden("0101000000000000 0080ffffffffffff"));
  CHECK(tuple_of(std::uint16_t{65535}) == golden("0101000000000000 ffff000000000000"));
  CHECK(tuple_of(std::numeric_limits<std::int32_t>::min()) ==
        golden("0101000000000000 00000080ffffffff"));
  CHECK(tuple_of(std::numeric_limits<std::uint32_t>::max()) ==
        golden("0101000000000000 ffffffff00000000"));
  CHECK(tuple_of(std::numeric_limits<std::int64_t>::min()) ==
        golden("0101000000000000 0000000000000080"));
  CHECK(tuple_of(std::numeric_limits<std::int64_t>::max()) ==
        golden("0101000000000000 ffffffffffffff7f"));
  CHECK(tuple_of(42LL) == golden("0101000000000000 2a00000000000000"));
  CHECK(tuple_of(42L) == golden("0101000000000000 2a00000000000000"));
  CHECK(tuple_of(std::size_t{7}) == golden("0101000000000000 0700000000000000"));

  constexpr auto int64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  CHECK(tuple_of(int64_max) == golden("0101000000000000 ffffffffffffff7f"));
  CHECK(bind_error(int64_max + 1) == err(errc::out_of_range));
  CHECK(bind_error(std::numeric_limits<std::uint64_t>::max()) == err(errc::out_of_range));
  CHECK(bind_error(static_cast<unsigned long long>(int64_max) + 1) == err(errc::out_of_range));
  CHECK(bind_error(std::size_t{int64_max} + 1) == err(errc::out_of_range));
}

TEST_CASE("params: float and double", "[params]") {
  CHECK(tuple_of(0.5f) == golden("0102000000000000 000000000000e03f"));
  CHECK(tuple_of(-3.25) == golden("0102000000000000 0000000000000ac0"));
  CHECK(tuple_of(0.0) == golden("0102000000000000 0000000000000000"));
  CHECK(tuple_of(std::numeric_limits<double>::infinity()) ==
        golden("0102000000000000 000000000000f07f"));
}

TEST_CASE("params: text", "[params]") {
  const std::string want = golden("0103000000000000 6162630000000000");
  CHECK(tuple_of(std::string("abc")) == want);
  CHECK(tuple_of(std::string_view("abc")) == want);
  const char* p = "abc";
  CHECK(tuple_of(p) == want);
  char mutable_text[] = "abc";
  char* mp = mutable_text;
  CHECK(tuple_of(mp) == want);
  CHECK(tuple_of("abc") == want);
  CHECK(tuple_of(mutable_text) == want);
  CHECK(tuple_of("") == golden("0103000000000000 0000000000000000"));
  CHECK(tuple_of(std::string("abcdefgh")) ==
        golden("0103000000000000 6162636465666768 0000000000000000"));

  SECTION("a null const char* binds NULL") {
    const char* none = nullptr;
    CHECK(tuple_of(none) == golden("0105000000000000 0000000000000000"));
  }
  SECTION("an embedded NUL is refused") {
    const std::string bad("a\0b", 3);
    CHECK(bind_error(bad) == err(errc::invalid_argument));
    CHECK(bind_error(std::string_view(bad)) == err(errc::invalid_argument));
    CHECK(bind_error(1, bad) == err(errc::invalid_argument));
    CHECK(bind_error(std::optional<std::string>(bad)) == err(errc::invalid_argument));
  }
}

TEST_CASE("params: blobs", "[params]") {
  const std::string want3 = golden("0104000000000000 0300000000000000 0102030000000000");
  std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{3}};
  std::vector<unsigned char> uchars{1, 2, 3};
  std::array<unsigned char, 3> arr{1, 2, 3};
  CHECK(tuple_of(bytes) == want3);
  CHECK(tuple_of(uchars) == want3);
  CHECK(tuple_of(std::span<const std::byte>(bytes)) == want3);
  CHECK(tuple_of(std::span<std::byte>(bytes)) == want3);
  CHECK(tuple_of(std::span<const unsigned char, 3>(arr)) == want3);
  CHECK(tuple_of(std::span<unsigned char>(uchars)) == want3);
  CHECK(tuple_of(std::vector<std::byte>{}) == golden("0104000000000000 0000000000000000"));
  std::vector<unsigned char> eight{1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(tuple_of(eight) == golden("0104000000000000 0800000000000000 0102030405060708"));
  std::vector<unsigned char> nine{1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK(tuple_of(nine) ==
        golden("0104000000000000 0900000000000000 0102030405060708 0900000000000000"));
}

TEST_CASE("params: NULL and optionals", "[params]") {
  const std::string null_tuple = golden("0105000000000000 0000000000000000");
  CHECK(tuple_of(nullptr) == null_tuple);
  CHECK(tuple_of(std::nullopt) == null_tuple);
  CHECK(tuple_of(dqlite::null) == null_tuple);
  CHECK(tuple_of(std::optional<int>{}) == null_tuple);
  CHECK(tuple_of(std::optional<std::string>{}) == null_tuple);
  CHECK(tuple_of(std::optional<int>{5}) == golden("0101000000000000 0500000000000000"));
  CHECK(tuple_of(std::optional<std::string>{"x"}) == golden("0103000000000000 7800000000000000"));
  CHECK(tuple_of(std::optional<double>{1.5}) == golden("0102000000000000 000000000000f83f"));
  CHECK(bind_error(std::optional<std::uint64_t>{~std::uint64_t{0}}) == err(errc::out_of_range));
}

TEST_CASE("params: enums bind their underlying integer", "[params]") {
  CHECK(tuple_of(color::green) == golden("0101000000000000 c800000000000000"));
  CHECK(tuple_of(plain_a) == golden("0101000000000000 fdffffffffffffff"));
  CHECK(tuple_of(big::small) == golden("0101000000000000 0500000000000000"));
  CHECK(bind_error(big::huge) == err(errc::out_of_range));
}

TEST_CASE("params: time points bind as ISO-8601 text", "[params]") {
  SECTION("golden bytes of a whole second") {
    CHECK(tuple_of(go_time) == golden("010a000000000000"
                                      "323030362d30312d 30322031353a3034 3a30352b30303a30"
                                      "3000000000000000"));
  }
  SECTION("the fraction without trailing zeros") {
    CHECK(time_text(go_time) == "2006-01-02 15:04:05+00:00");
    CHECK(time_text(go_time + nanoseconds{999999999}) == "2006-01-02 15:04:05.999999999+00:00");
    CHECK(time_text(go_time + milliseconds{500}) == "2006-01-02 15:04:05.5+00:00");
    CHECK(time_text(go_time + microseconds{120}) == "2006-01-02 15:04:05.00012+00:00");
    CHECK(time_text(go_time + nanoseconds{1}) == "2006-01-02 15:04:05.000000001+00:00");
    CHECK(time_text(go_time + nanoseconds{100000010}) == "2006-01-02 15:04:05.10000001+00:00");
  }
  SECTION("other durations and dates") {
    CHECK(time_text(sys_seconds{go_time}) == "2006-01-02 15:04:05+00:00");
    CHECK(time_text(go_day) == "2006-01-02 00:00:00+00:00");
    CHECK(time_text(time_point_cast<milliseconds>(go_time) + milliseconds{123}) ==
          "2006-01-02 15:04:05.123+00:00");
    CHECK(time_text(system_clock::time_point{}) == "1970-01-01 00:00:00+00:00");
    CHECK(time_text(system_clock::time_point{} - milliseconds{500}) ==
          "1969-12-31 23:59:59.5+00:00");
    CHECK(time_text(sys_days{year{2024} / 2 / 29} + hours{23} + minutes{59} + seconds{59}) ==
          "2024-02-29 23:59:59+00:00");
    // Outside the range of nanosecond time points.
    CHECK(time_text(sys_days{year{9999} / 12 / 31}) == "9999-12-31 00:00:00+00:00");
    CHECK(time_text(sys_days{year{1} / 1 / 1}) == "0001-01-01 00:00:00+00:00");
    CHECK(time_text(std::optional<sys_seconds>{sys_seconds{go_time}}) ==
          "2006-01-02 15:04:05+00:00");
  }
}

TEST_CASE("params: dqlite::value", "[params]") {
  CHECK(tuple_of(value{}) == golden("0105000000000000 0000000000000000"));
  CHECK(tuple_of(value{7}) == golden("0101000000000000 0700000000000000"));
  CHECK(tuple_of(value{std::int64_t{-1}}) == golden("0101000000000000 ffffffffffffffff"));
  CHECK(tuple_of(value{2.5}) == golden("0102000000000000 0000000000000440"));
  CHECK(tuple_of(value{true}) == golden("0101000000000000 0100000000000000"));
  CHECK(tuple_of(value{false}) == golden("0101000000000000 0000000000000000"));
  CHECK(tuple_of(value{"hi"}) == golden("0103000000000000 6869000000000000"));
  CHECK(tuple_of(value{dqlite::blob{std::byte{9}}}) ==
        golden("0104000000000000 0100000000000000 0900000000000000"));
  CHECK(tuple_of(value::unixtime(100)) == golden("0101000000000000 6400000000000000"));
  CHECK(tuple_of(value::iso8601("2006-01-02")) ==
        golden("010a000000000000 323030362d30312d 3032000000000000"));
  CHECK(bind_error(value{std::string("a\0b", 3)}) == err(errc::invalid_argument));
  CHECK(bind_error(value::iso8601(std::string("a\0b", 3))) == err(errc::invalid_argument));
}

TEST_CASE("params: tuples, ranges and mixed lists", "[params]") {
  CHECK(tuple_of(std::tuple<int, std::string, dqlite::null_t>{1, "a", dqlite::null}) ==
        golden("03 01 03 05 00000000"
               "0100000000000000 6100000000000000 0000000000000000"));
  std::vector<value> vals{value{4}, value{"x"}, value{}};
  CHECK(tuple_of(dqlite::params_from(vals)) ==
        golden("03 01 03 05 00000000"
               "0400000000000000 7800000000000000 0000000000000000"));
  // Arguments, tuples and ranges concatenate in order.
  std::vector<value> two{value{5}, value{6}};
  CHECK(tuple_of(1, std::make_tuple(2, 3.0), dqlite::params_from(two), "z") ==
        golden("06 01 01 02 01 01 03 00"
               "0100000000000000 0200000000000000 0000000000000840"
               "0500000000000000 0600000000000000 7a00000000000000"));
  // Nested tuples and ranges inside tuples count every parameter they hold.
  CHECK(tuple_of(std::make_tuple(std::make_tuple(1), 2)) ==
        golden("02 01 01 0000000000 0100000000000000 0200000000000000"));
  CHECK(tuple_of(std::make_tuple(1, std::make_tuple(2, 3)),
                 std::make_tuple(dqlite::params_from(two))) ==
        golden("05 01 01 01 01 01 0000"
               "0100000000000000 0200000000000000 0300000000000000"
               "0500000000000000 0600000000000000"));
  CHECK(tuple_of(std::make_tuple(std::tuple<>{}, dqlite::params_from(std::vector<value>{}))) == "");

  SECTION("the first error stops binding") {
    CHECK(bind_error(std::make_tuple(1, ~std::uint64_t{0}, std::string("ok"))) ==
          err(errc::out_of_range));
    std::vector<value> bad{value{1}, value{std::string("\0", 1)}};
    CHECK(bind_error(dqlite::params_from(bad)) == err(errc::invalid_argument));
  }
  SECTION("more than 255 parameters switch the frame to schema 1") {
    std::vector<value> v255(255, value{1});
    auto e = encode(dqlite::params_from(v255));
    REQUIRE_FALSE(e.ec);
    CHECK(e.schema() == 0);
    CHECK(e.words() == 1 + 32 + 255);
    CHECK(static_cast<unsigned>(e.frame[16]) == 255);

    std::vector<value> v256(256, value{1});
    e = encode(dqlite::params_from(v256));
    REQUIRE_FALSE(e.ec);
    CHECK(e.schema() == 1);
    CHECK(e.words() == 1 + 33 + 256);
    CHECK(hex(std::span(e.frame).subspan(16, 8)) == golden("00010000 01010101"));

    // 255 from the range and one more argument.
    e = encode(dqlite::params_from(v255), 7);
    REQUIRE_FALSE(e.ec);
    CHECK(e.schema() == 1);
  }
}

// ---------------------------------------------------------------------------------------
// field.hpp
// ---------------------------------------------------------------------------------------

namespace {

wire::value_view of_int(std::int64_t i, value_type t = value_type::integer) {
  wire::value_view v;
  v.type = t;
  v.integer = i;
  return v;
}
wire::value_view of_float(double d) {
  wire::value_view v;
  v.type = value_type::floating;
  v.floating = d;
  return v;
}
wire::value_view of_text(std::string_view s, value_type t = value_type::text) {
  wire::value_view v;
  v.type = t;
  v.bytes = s;
  return v;
}
wire::value_view of_null() {
  return {};
}

template <class T>
error_code read_err(const wire::value_view& v) {
  T out{};
  return dqlite::field_traits<T>::read(v, out);
}

template <class T>
T read_ok(const wire::value_view& v) {
  T out{};
  auto ec = dqlite::field_traits<T>::read(v, out);
  REQUIRE_FALSE(ec);
  return out;
}

}  // namespace

static_assert(dqlite::field<int>);
static_assert(dqlite::field<bool>);
static_assert(dqlite::field<std::string>);
static_assert(dqlite::field<std::optional<std::string>>);
static_assert(dqlite::field<system_clock::time_point>);
static_assert(dqlite::field<value>);
static_assert(!dqlite::field<void*>);

TEST_CASE("field: integers with range checks", "[field]") {
  CHECK(read_ok<int>(of_int(42)) == 42);
  CHECK(read_ok<std::int8_t>(of_int(-128)) == -128);
  CHECK(read_ok<std::int8_t>(of_int(127)) == 127);
  CHECK(read_err<std::int8_t>(of_int(300)) == err(errc::out_of_range));
  CHECK(read_err<std::int8_t>(of_int(-129)) == err(errc::out_of_range));
  CHECK(read_ok<std::uint8_t>(of_int(255)) == 255);
  CHECK(read_err<std::uint8_t>(of_int(256)) == err(errc::out_of_range));
  CHECK(read_err<std::uint8_t>(of_int(-1)) == err(errc::out_of_range));
  CHECK(read_ok<std::int16_t>(of_int(-32768)) == -32768);
  CHECK(read_err<std::int16_t>(of_int(32768)) == err(errc::out_of_range));
  CHECK(read_ok<std::uint16_t>(of_int(65535)) == 65535);
  CHECK(read_err<std::uint16_t>(of_int(65536)) == err(errc::out_of_range));
  CHECK(read_ok<std::int32_t>(of_int(std::numeric_limits<std::int32_t>::min())) ==
        std::numeric_limits<std::int32_t>::min());
  CHECK(read_err<std::int32_t>(of_int(std::int64_t{1} << 31)) == err(errc::out_of_range));
  CHECK(read_ok<std::uint32_t>(of_int(0xffffffffLL)) == 0xffffffffu);
  CHECK(read_err<std::uint32_t>(of_int(-1)) == err(errc::out_of_range));
  CHECK(read_err<std::uint32_t>(of_int(std::int64_t{1} << 32)) == err(errc::out_of_range));
  CHECK(read_ok<std::int64_t>(of_int(std::numeric_limits<std::int64_t>::min())) ==
        std::numeric_limits<std::int64_t>::min());
  CHECK(read_ok<std::uint64_t>(of_int(std::numeric_limits<std::int64_t>::max())) ==
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  CHECK(read_err<std::uint64_t>(of_int(-1)) == err(errc::out_of_range));
  CHECK(read_ok<long long>(of_int(-7)) == -7);
  CHECK(read_ok<unsigned long>(of_int(7)) == 7u);

  SECTION("UNIXTIME and BOOLEAN read as integers") {
    CHECK(read_ok<std::int64_t>(of_int(1136214245, value_type::unixtime)) == 1136214245);
    CHECK(read_ok<int>(of_int(1, value_type::boolean)) == 1);
  }
  SECTION("enums") {
    CHECK(read_ok<color>(of_int(200)) == color::green);
    CHECK(read_ok<fixed_plain>(of_int(-3)) == fixed_a);
    // Any value of the underlying type is a value of such an enum.
    CHECK(static_cast<int>(read_ok<fixed_plain>(of_int(1000))) == 1000);
    CHECK(read_err<fixed_plain>(of_int(40000)) == err(errc::out_of_range));
    CHECK(read_err<color>(of_int(300)) == err(errc::out_of_range));
    // An unscoped enum without a fixed underlying type is refused at compile time
    // (tests/compile_fail/unfixed_enum_field.cpp): it is not a field type it can read.
    STATIC_REQUIRE_FALSE(dqlite::detail::enum_with_fixed_type<plain_enum>);
    STATIC_REQUIRE(dqlite::detail::enum_with_fixed_type<fixed_plain>);
    STATIC_REQUIRE(dqlite::detail::enum_with_fixed_type<color>);
    CHECK(read_err<color>(of_null()) == err(errc::unexpected_null));
  }
  SECTION("NULL and other types") {
    CHECK(read_err<int>(of_null()) == err(errc::unexpected_null));
    CHECK(read_err<int>(of_text("12")) == err(errc::type_mismatch));
    CHECK(read_err<int>(of_text("12", value_type::iso8601)) == err(errc::type_mismatch));
    CHECK(read_err<int>(of_float(1.0)) == err(errc::type_mismatch));
    CHECK(read_err<int>(of_text("", value_type::blob)) == err(errc::type_mismatch));
  }
}

TEST_CASE("field: bool", "[field]") {
  CHECK(read_ok<bool>(of_int(1, value_type::boolean)));
  CHECK_FALSE(read_ok<bool>(of_int(0, value_type::boolean)));
  CHECK(read_ok<bool>(of_int(2)));
  CHECK(read_ok<bool>(of_int(-1)));
  CHECK_FALSE(read_ok<bool>(of_int(0)));
  CHECK(read_err<bool>(of_null()) == err(errc::unexpected_null));
  CHECK(read_err<bool>(of_text("true")) == err(errc::type_mismatch));
  CHECK(read_err<bool>(of_float(1.0)) == err(errc::type_mismatch));
}

TEST_CASE("field: floating point", "[field]") {
  CHECK(read_ok<double>(of_float(2.5)) == 2.5);
  CHECK(read_ok<float>(of_float(0.5)) == 0.5f);
  CHECK(read_ok<double>(of_int(3)) == 3.0);
  CHECK(read_ok<double>(of_int(-(std::int64_t{1} << 53))) == -9007199254740992.0);
  CHECK(read_err<double>(of_null()) == err(errc::unexpected_null));
  CHECK(read_err<double>(of_text("1.5")) == err(errc::type_mismatch));
  CHECK(read_err<double>(of_text("", value_type::blob)) == err(errc::type_mismatch));
}

TEST_CASE("field: text and blobs", "[field]") {
  const std::string storage = "hello";
  CHECK(read_ok<std::string>(of_text(storage)) == "hello");
  CHECK(read_ok<std::string>(of_text("2006-01-02", value_type::iso8601)) == "2006-01-02");
  CHECK(read_ok<std::string>(of_text("")).empty());
  auto view = read_ok<std::string_view>(of_text(storage));
  CHECK(view == "hello");
  CHECK(view.data() == storage.data());
  CHECK(read_err<std::string>(of_null()) == err(errc::unexpected_null));
  CHECK(read_err<std::string>(of_int(1)) == err(errc::type_mismatch));
  CHECK(read_err<std::string>(of_text("x", value_type::blob)) == err(errc::type_mismatch));
  CHECK(read_err<std::string_view>(of_null()) == err(errc::unexpected_null));

  const std::string raw("\x01\x00\x02", 3);
  auto blob = read_ok<std::vector<std::byte>>(of_text(raw, value_type::blob));
  CHECK(blob == std::vector<std::byte>{std::byte{1}, std::byte{0}, std::byte{2}});
  auto uchars = read_ok<std::vector<unsigned char>>(of_text(raw, value_type::blob));
  CHECK(uchars == std::vector<unsigned char>{1, 0, 2});
  CHECK(read_ok<std::vector<std::byte>>(of_text("", value_type::blob)).empty());
  CHECK(read_err<std::vector<std::byte>>(of_text("abc")) == err(errc::type_mismatch));
  CHECK(read_err<std::vector<std::byte>>(of_null()) == err(errc::unexpected_null));
}

TEST_CASE("field: optionals", "[field]") {
  std::optional<int> oi = 3;
  REQUIRE_FALSE(dqlite::field_traits<std::optional<int>>::read(of_null(), oi));
  CHECK_FALSE(oi.has_value());
  REQUIRE_FALSE(dqlite::field_traits<std::optional<int>>::read(of_int(5), oi));
  CHECK(oi == 5);
  CHECK(dqlite::field_traits<std::optional<int>>::read(of_text("x"), oi) ==
        err(errc::type_mismatch));
  CHECK(read_err<std::optional<std::int8_t>>(of_int(300)) == err(errc::out_of_range));
  CHECK(read_ok<std::optional<std::string>>(of_text("s")) == "s");
  CHECK_FALSE(read_ok<std::optional<std::string>>(of_null()).has_value());
  CHECK_FALSE(read_ok<std::optional<double>>(of_null()).has_value());
}

TEST_CASE("field: time points", "[field]") {
  using tp = system_clock::time_point;
  CHECK(read_ok<tp>(of_int(1136214245, value_type::unixtime)) == go_time);
  CHECK(read_ok<sys_seconds>(of_int(1136214245, value_type::unixtime)) == go_time);
  CHECK(read_ok<tp>(of_int(1136214245)) == go_time);
  CHECK(read_ok<tp>(of_int(-1, value_type::unixtime)) == tp{} - seconds{1});
  CHECK(read_ok<tp>(of_text("2006-01-02 15:04:05", value_type::iso8601)) == go_time);
  CHECK(read_ok<tp>(of_text("2006-01-02T15:04:05.5Z")) == go_time + milliseconds{500});
  CHECK(read_ok<sys_seconds>(of_text("2006-01-02 15:04:05.9+00:00", value_type::iso8601)) ==
        go_time);
  CHECK(read_ok<sys_days>(of_text("2006-01-02 15:04:05", value_type::iso8601)) == go_day);

  SECTION("the DATETIME NULL quirk: ISO8601 \"\"") {
    CHECK(read_err<tp>(of_text("", value_type::iso8601)) == err(errc::unexpected_null));
    std::optional<tp> o = go_time;
    REQUIRE_FALSE(
        dqlite::field_traits<std::optional<tp>>::read(of_text("", value_type::iso8601), o));
    CHECK_FALSE(o.has_value());
    CHECK_FALSE(read_ok<std::optional<tp>>(of_null()).has_value());
    CHECK(read_ok<std::optional<tp>>(of_text("2006-01-02 15:04:05", value_type::iso8601)) ==
          go_time);
  }
  SECTION("errors") {
    CHECK(read_err<tp>(of_null()) == err(errc::unexpected_null));
    CHECK(read_err<tp>(of_text("yesterday")) == err(errc::invalid_time));
    CHECK(read_err<tp>(of_text("2023-02-30", value_type::iso8601)) == err(errc::invalid_time));
    CHECK(read_err<tp>(of_text("")) == err(errc::invalid_time));
    CHECK(read_err<std::optional<tp>>(of_text("yesterday")) == err(errc::invalid_time));
    CHECK(read_err<tp>(of_float(1.5)) == err(errc::type_mismatch));
    CHECK(read_err<tp>(of_text("", value_type::blob)) == err(errc::type_mismatch));
    CHECK(read_err<tp>(of_int(1, value_type::boolean)) == err(errc::type_mismatch));
  }
  SECTION("seconds a nanosecond time point cannot hold") {
    constexpr std::int64_t limit = 9223372036;  // seconds in nanoseconds::max()
    CHECK(read_ok<tp>(of_int(limit, value_type::unixtime)) ==
          tp{} + duration_cast<system_clock::duration>(seconds{limit}));
    CHECK(read_ok<tp>(of_int(-limit, value_type::unixtime)) ==
          tp{} - duration_cast<system_clock::duration>(seconds{limit}));
    CHECK(read_err<tp>(of_int(limit + 1, value_type::unixtime)) == err(errc::out_of_range));
    CHECK(read_err<tp>(of_int(-limit - 1)) == err(errc::out_of_range));
    CHECK(read_err<tp>(of_int(std::numeric_limits<std::int64_t>::max())) ==
          err(errc::out_of_range));
    CHECK(read_err<tp>(of_int(std::numeric_limits<std::int64_t>::min())) ==
          err(errc::out_of_range));
    // A time point in seconds holds them all.
    CHECK(read_ok<sys_seconds>(of_int(std::numeric_limits<std::int64_t>::max()))
              .time_since_epoch()
              .count() == std::numeric_limits<std::int64_t>::max());
    CHECK(read_err<std::optional<tp>>(of_int(limit + 1)) == err(errc::out_of_range));
  }
}

TEST_CASE("field: dqlite::value", "[field]") {
  CHECK(read_ok<value>(of_int(5)) == value{5});
  CHECK(read_ok<value>(of_float(2.5)) == value{2.5});
  CHECK(read_ok<value>(of_text("t")) == value{"t"});
  CHECK(read_ok<value>(of_null()) == value{});
  CHECK(read_ok<value>(of_int(9, value_type::unixtime)) == value::unixtime(9));
  CHECK(read_ok<value>(of_text("2006", value_type::iso8601)) == value::iso8601("2006"));
  CHECK(read_ok<value>(of_int(1, value_type::boolean)) == value{true});
  CHECK(read_ok<value>(of_text("ab", value_type::blob)) ==
        value{dqlite::blob{std::byte{'a'}, std::byte{'b'}}});
}

TEST_CASE("time: the first and last second of SQLite's years round-trip", "[field][params]") {
  const sys_seconds first = sys_days{year{1} / 1 / 1};
  const sys_seconds last = sys_days{year{9999} / 12 / 31} + hours{23} + minutes{59} + seconds{59};
  const sys_seconds zero = sys_days{year{0} / 1 / 1};
  for (sys_seconds t : {first, last, zero, sys_seconds{go_time}}) {
    INFO(time_text(t));
    // The ISO-8601 form a parameter is written as, read back as TEXT or ISO8601.
    const std::string text = time_text(t);
    CHECK(read_ok<sys_seconds>(of_text(text, value_type::iso8601)) == t);
    CHECK(read_ok<sys_seconds>(of_text(text)) == t);
    CHECK(read_ok<sys_days>(of_text(text, value_type::iso8601)) == floor<days>(t));
    CHECK(read_ok<sys_time<milliseconds>>(of_text(text, value_type::iso8601)) == t);
    CHECK(read_ok<sys_time<microseconds>>(of_text(text, value_type::iso8601)) == t);
    CHECK(read_ok<std::optional<sys_seconds>>(of_text(text, value_type::iso8601)) == t);
    // The UNIXTIME form (integer seconds, as a DATETIME column holding an integer sends).
    const auto secs = t.time_since_epoch().count();
    CHECK(read_ok<sys_seconds>(of_int(secs, value_type::unixtime)) == t);
    CHECK(read_ok<sys_days>(of_int(secs, value_type::unixtime)) == floor<days>(t));
    CHECK(read_ok<sys_time<microseconds>>(of_int(secs, value_type::unixtime)) == t);
  }
  // Fractions below the field's unit are rounded down, also before 1970.
  CHECK(read_ok<sys_seconds>(of_text("0001-01-01 00:00:00.75+00:00", value_type::iso8601)) ==
        first);
  CHECK(read_ok<sys_time<milliseconds>>(
            of_text("0001-01-01 00:00:00.75+00:00", value_type::iso8601)) ==
        first + milliseconds{750});
  CHECK(read_ok<sys_time<milliseconds>>(of_text("9999-12-31 23:59:59.999999999Z")) ==
        last + milliseconds{999});
}

TEST_CASE("time: a value the field type cannot hold is out of range, not invalid",
          "[field]") {
  using tp = sys_time<nanoseconds>;  // spans 1677-09-21 .. 2262-04-11
  CHECK(read_err<tp>(of_text("0001-01-01 00:00:00+00:00", value_type::iso8601)) ==
        err(errc::out_of_range));
  CHECK(read_err<tp>(of_text("9999-12-31 23:59:59+00:00")) == err(errc::out_of_range));
  CHECK(read_err<std::optional<tp>>(of_text("9999-12-31 23:59:59", value_type::iso8601)) ==
        err(errc::out_of_range));
  CHECK(read_err<tp>(of_int(-62135596800, value_type::unixtime)) == err(errc::out_of_range));
  using small = std::chrono::time_point<system_clock, duration<std::int32_t>>;  // 1901..2038
  CHECK(read_err<small>(of_text("2100-01-01", value_type::iso8601)) == err(errc::out_of_range));
  CHECK(read_ok<small>(of_text("2000-01-01", value_type::iso8601)) ==
        small{duration<std::int32_t>{946684800}});
  // Inside the range: read.
  CHECK(read_ok<tp>(of_text("2262-04-11 23:47:16+00:00")) ==
        tp{seconds{9223372036}});
  // Not a date/time at all: invalid_time.
  CHECK(read_err<sys_seconds>(of_text("0001-13-01", value_type::iso8601)) ==
        err(errc::invalid_time));
  CHECK(read_err<sys_seconds>(of_text("10000-01-01", value_type::iso8601)) ==
        err(errc::invalid_time));
  CHECK(dqlite::field_type_name<tp>() == "std::chrono::sys_time<nanoseconds>");
  CHECK(dqlite::field_type_name<sys_days>() == "std::chrono::sys_time<days>");
  CHECK(dqlite::field_type_name<small>() == "std::chrono::sys_time<seconds (32-bit)>");
}

TEST_CASE("params: a time outside the years 0000 to 9999 is refused", "[params]") {
  CHECK(bind_error(sys_seconds{sys_days{year{10000} / 1 / 1}}) == err(errc::out_of_range));
  CHECK(bind_error(sys_seconds{sys_days{year{-1} / 12 / 31}}) == err(errc::out_of_range));
  CHECK(time_text(sys_seconds{sys_days{year{0} / 1 / 1}}) == "0000-01-01 00:00:00+00:00");
}
