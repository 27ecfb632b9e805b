// Request encoding checked against golden bytes written from the protocol description.
#include <dqlite/wire/encode.hpp>

#include <catch2/catch.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace wire = dqlite::wire;
using dqlite::errc;
using dqlite::make_error_code;
using wire::buffer;

// Bytes as lowercase hex, one space between 8-byte words.
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

// A golden hex text in the layout of hex(): whitespace is ignored, then words regrouped.
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

// Hex of n repetitions of a two-digit byte.
std::string repeat(std::string_view byte, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += byte;
  return s;
}

std::vector<std::byte> byte_seq(std::initializer_list<unsigned> v) {
  std::vector<std::byte> out;
  for (unsigned x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

constexpr std::string_view with_nul("a\0b", 3);

}  // namespace

TEST_CASE("encode: primitive fields", "[wire][encode]") {
  buffer b;
  wire::put_u8(b, 0xab);
  wire::put_u32(b, 0x01020304);
  CHECK(hex(b) == golden("ab 04030201"));

  b.clear();
  wire::put_u64(b, 0x0102030405060708ULL);
  wire::put_i64(b, -2);
  wire::put_double(b, 1.5);
  CHECK(hex(b) == golden("0807060504030201 feffffffffffffff 000000000000f83f"));

  SECTION("text is NUL terminated and padded to a whole word") {
    const std::pair<std::string_view, std::string> cases[] = {
        {"", "0000000000000000"},
        {"a", "6100000000000000"},
        {"abcdefg", "6162636465666700"},
        {"abcdefgh", "6162636465666768 0000000000000000"},
        {"abcdefghi", "6162636465666768 6900000000000000"},
    };
    for (const auto& [text, bytes] : cases) {
      buffer t;
      wire::put_text(t, text);
      CHECK(hex(t) == golden(bytes));
    }
  }

  SECTION("blob is length prefixed and padded to a whole word") {
    buffer t;
    wire::put_blob(t, {});
    CHECK(hex(t) == golden("0000000000000000"));
    t.clear();
    auto eight = byte_seq({1, 2, 3, 4, 5, 6, 7, 8});
    wire::put_blob(t, eight);
    CHECK(hex(t) == golden("0800000000000000 0102030405060708"));
    t.clear();
    auto nine = byte_seq({1, 2, 3, 4, 5, 6, 7, 8, 9});
    wire::put_blob(t, nine);
    CHECK(hex(t) == golden("0900000000000000 0102030405060708 0900000000000000"));
  }

  SECTION("is_valid_text") {
    CHECK(wire::is_valid_text(""));
    CHECK(wire::is_valid_text(std::string_view{}));
    CHECK(wire::is_valid_text("plain"));
    CHECK_FALSE(wire::is_valid_text(with_nul));
    CHECK_FALSE(wire::is_valid_text(std::string_view("\0", 1)));
    CHECK_FALSE(wire::is_valid_text(std::string_view("abc\0", 4)));
  }
}

TEST_CASE("encode: handshake", "[wire][encode]") {
  buffer b;
  wire::encode_handshake(b);
  CHECK(hex(b) == golden("0100000000000000"));
  b.clear();
  wire::encode_handshake(b, 0x86104dd760433fe5ULL);
  CHECK(hex(b) == golden("e53f4360d74d1086"));
}

TEST_CASE("encode: requests without parameters", "[wire][encode]") {
  buffer b;

  SECTION("LEADER") {
    wire::encode_leader(b);
    CHECK(hex(b) == golden("01000000 00 00 0000  0000000000000000"));
  }
  SECTION("CLIENT") {
    wire::encode_client(b, 0x0102030405060708ULL);
    CHECK(hex(b) == golden("01000000 01 00 0000  0807060504030201"));
  }
  SECTION("OPEN with defaults") {
    REQUIRE_FALSE(wire::encode_open(b, "test"));
    CHECK(hex(b) == golden("03000000 03 00 0000"
                           "7465737400000000"     // "test"
                           "0000000000000000"     // flags
                           "0000000000000000"));  // vfs ""
  }
  SECTION("OPEN with an 8-character name, flags and vfs") {
    REQUIRE_FALSE(wire::encode_open(b, "database", 2, "unix"));
    CHECK(hex(b) == golden("04000000 03 00 0000"
                           "6461746162617365 0000000000000000"  // "database" + NUL word
                           "0200000000000000"
                           "756e697800000000"));  // "unix"
  }
  SECTION("PREPARE") {
    REQUIRE_FALSE(wire::encode_prepare(b, 0, "SELECT 1"));
    CHECK(hex(b) == golden("03000000 04 00 0000"
                           "0000000000000000"
                           "53454c4543542031 0000000000000000"));
  }
  SECTION("PREPARE with empty SQL and another db") {
    REQUIRE_FALSE(wire::encode_prepare(b, 0x11223344, ""));
    CHECK(hex(b) == golden("02000000 04 00 0000  4433221100000000  0000000000000000"));
  }
  SECTION("FINALIZE") {
    wire::encode_finalize(b, 1, 0x0a0b0c0d);
    CHECK(hex(b) == golden("01000000 07 00 0000  01000000 0d0c0b0a"));
  }
  SECTION("INTERRUPT") {
    wire::encode_interrupt(b, 0);
    CHECK(hex(b) == golden("01000000 0a 00 0000  0000000000000000"));
  }
  SECTION("ADD") {
    REQUIRE_FALSE(wire::encode_add(b, 2, "127.0.0.1:9002"));
    CHECK(hex(b) == golden("03000000 0c 00 0000"
                           "0200000000000000"
                           "3132372e302e302e 313a393030320000"));
  }
  SECTION("ASSIGN") {
    wire::encode_assign(b, 2, wire::role::spare);
    CHECK(hex(b) == golden("02000000 0d 00 0000  0200000000000000 0200000000000000"));
    b.clear();
    wire::encode_assign(b, 3, wire::role::voter);
    CHECK(hex(b) == golden("02000000 0d 00 0000  0300000000000000 0000000000000000"));
    b.clear();
    wire::encode_assign(b, 4, wire::role::standby);
    CHECK(hex(b) == golden("02000000 0d 00 0000  0400000000000000 0100000000000000"));
  }
  SECTION("REMOVE") {
    wire::encode_remove(b, 3);
    CHECK(hex(b) == golden("01000000 0e 00 0000  0300000000000000"));
  }
  SECTION("DUMP") {
    REQUIRE_FALSE(wire::encode_dump(b, "test"));
    CHECK(hex(b) == golden("01000000 0f 00 0000  7465737400000000"));
    b.clear();
    // 7 characters + NUL fill exactly one word.
    REQUIRE_FALSE(wire::encode_dump(b, "test.db"));
    CHECK(hex(b) == golden("01000000 0f 00 0000  746573742e646200"));
  }
  SECTION("CLUSTER") {
    wire::encode_cluster(b);
    CHECK(hex(b) == golden("01000000 10 00 0000  0100000000000000"));
  }
  SECTION("TRANSFER") {
    wire::encode_transfer(b, 2);
    CHECK(hex(b) == golden("01000000 11 00 0000  0200000000000000"));
    b.clear();
    wire::encode_transfer(b, 0);
    CHECK(hex(b) == golden("01000000 11 00 0000  0000000000000000"));
  }
  SECTION("DESCRIBE") {
    wire::encode_describe(b);
    CHECK(hex(b) == golden("01000000 12 00 0000  0000000000000000"));
  }
  SECTION("WEIGHT") {
    wire::encode_weight(b, 5);
    CHECK(hex(b) == golden("01000000 13 00 0000  0500000000000000"));
  }
}

TEST_CASE("encode: frames append after earlier content", "[wire][encode]") {
  buffer b;
  wire::encode_handshake(b);
  wire::encode_client(b, 7);
  REQUIRE_FALSE(wire::encode_open(b, "db"));
  CHECK(hex(b) ==
        golden("0100000000000000"
               "01000000 01 00 0000  0700000000000000"
               "03000000 03 00 0000  6462000000000000 0000000000000000 0000000000000000"));
}

TEST_CASE("encode: text with an embedded NUL is refused", "[wire][encode]") {
  buffer b;
  wire::encode_leader(b);
  const buffer before = b;
  const auto invalid = make_error_code(errc::invalid_argument);

  CHECK(wire::encode_open(b, with_nul) == invalid);
  CHECK(wire::encode_open(b, "db", 0, with_nul) == invalid);
  CHECK(wire::encode_prepare(b, 0, with_nul) == invalid);
  CHECK(wire::encode_add(b, 2, with_nul) == invalid);
  CHECK(wire::encode_dump(b, with_nul) == invalid);
  wire::frame_mark m{12345};
  CHECK(wire::begin_sql_request(b, wire::request::exec_sql, 0, with_nul, m) == invalid);
  CHECK(wire::begin_sql_request(b, wire::request::query_sql, 0, with_nul, m) == invalid);
  CHECK(m.start == 12345);
  CHECK(b == before);
}

TEST_CASE("encode: EXEC and QUERY of a prepared statement", "[wire][encode]") {
  buffer b;

  SECTION("no parameters: the tuple is omitted") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 1, 2);
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("01000000 05 00 0000  01000000 02000000"));
  }
  SECTION("one parameter") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 0, 3);
    wire::tuple_writer w(b, 1);
    w.integer(42);
    CHECK(w.schema() == 0);
    CHECK(w.count() == 1);
    CHECK(w.written() == 1);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("03000000 05 00 0000"
                           "00000000 03000000"
                           "01 01 000000000000"  // count, type, padding
                           "2a00000000000000"));
  }
  SECTION("seven parameters of every type: count and types fill one word") {
    auto m = wire::begin_stmt_request(b, wire::request::query, 0, 1);
    wire::tuple_writer w(b, 7);
    w.integer(-2);
    w.floating(1.5);
    w.text("hi");
    auto blob = byte_seq({1, 2, 3});
    w.blob(blob);
    w.null();
    w.iso8601("2006-01-02");
    w.boolean(true);
    CHECK(w.written() == 7);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("0b000000 06 00 0000"
                           "00000000 01000000"
                           "07 01 02 03 04 05 0a 0b"
                           "feffffffffffffff"                   // INTEGER -2
                           "000000000000f83f"                   // FLOAT 1.5
                           "6869000000000000"                   // TEXT "hi"
                           "0300000000000000 0102030000000000"  // BLOB 01 02 03
                           "0000000000000000"                   // NULL
                           "323030362d30312d 3032000000000000"  // ISO8601 "2006-01-02"
                           "0100000000000000"));                // BOOLEAN true
  }
  SECTION("eight parameters: count and types spill into a second word") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 0, 0);
    wire::tuple_writer w(b, 8);
    for (int i = 0; i < 8; ++i) w.integer(i);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("0b000000 05 00 0000"
                           "00000000 00000000"
                           "08 01 01 01 01 01 01 01  01 00 00 00 00 00 00 00"
                           "0000000000000000 0100000000000000 0200000000000000 0300000000000000"
                           "0400000000000000 0500000000000000 0600000000000000 0700000000000000"));
  }
  SECTION("boolean false, negative zero and empty values") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 0, 0);
    wire::tuple_writer w(b, 4);
    w.boolean(false);
    w.floating(-0.0);
    w.text("");
    w.blob({});
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("06000000 05 00 0000"
                           "00000000 00000000"
                           "04 0b 02 03 04 000000"
                           "0000000000000000 0000000000000080 0000000000000000 0000000000000000"));
  }
  SECTION("a tuple of zero parameters is one zero word") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 0, 0);
    wire::tuple_writer w(b, 0);
    CHECK(w.schema() == 0);
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("02000000 05 00 0000  00000000 00000000  0000000000000000"));
  }
}

TEST_CASE("encode: 255 parameters use schema 0, 256 use schema 1", "[wire][encode]") {
  buffer b;

  SECTION("255: u8 count, count + types fill 32 words exactly") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 0, 0);
    wire::tuple_writer w(b, 255);
    for (int i = 0; i < 255; ++i) w.null();
    CHECK(w.schema() == 0);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    // 1 word db/stmt + 32 words header + 255 values = 288 = 0x120 words.
    std::string want = "20010000 05 00 0000"
                       "00000000 00000000"
                       "ff" +
                       repeat("05", 255) + repeat("00", 255 * 8);
    CHECK(hex(b) == golden(want));
    CHECK(b.size() == 8 + 288 * 8);
  }
  SECTION("256: u32 count, header schema byte 1") {
    auto m = wire::begin_stmt_request(b, wire::request::query, 0, 0);
    wire::tuple_writer w(b, 256);
    for (int i = 0; i < 256; ++i) w.null();
    CHECK(w.schema() == 1);
    CHECK(w.count() == 256);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    // 1 word db/stmt + 33 words header (4 + 256 = 260, padded to 264) + 256 values = 290.
    std::string want = "22010000 06 01 0000"
                       "00000000 00000000"
                       "00010000" +
                       repeat("05", 256) + repeat("00", 4) + repeat("00", 256 * 8);
    CHECK(hex(b) == golden(want));
    CHECK(b.size() == 8 + 290 * 8);
  }
  SECTION("260: u32 count + types fill 33 words exactly") {
    auto m = wire::begin_stmt_request(b, wire::request::exec, 0, 0);
    wire::tuple_writer w(b, 260);
    for (int i = 0; i < 260; ++i) w.boolean(true);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    std::string want = "26010000 05 01 0000"
                       "00000000 00000000"
                       "04010000" +
                       repeat("0b", 260) + repeat("0100000000000000", 260);
    CHECK(hex(b) == golden(want));
  }
}

TEST_CASE("encode: EXEC_SQL and QUERY_SQL", "[wire][encode]") {
  buffer b;
  wire::frame_mark m{};

  SECTION("EXEC_SQL with one empty text parameter") {
    REQUIRE_FALSE(wire::begin_sql_request(b, wire::request::exec_sql, 0, "SELECT ?", m));
    wire::tuple_writer w(b, 1);
    w.text("");
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("05000000 08 00 0000"
                           "0000000000000000"
                           "53454c454354203f 0000000000000000"
                           "01 03 000000000000"
                           "0000000000000000"));
  }
  SECTION("QUERY_SQL without parameters") {
    REQUIRE_FALSE(wire::begin_sql_request(b, wire::request::query_sql, 0, "SELECT 1", m));
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("03000000 09 00 0000"
                           "0000000000000000"
                           "53454c4543542031 0000000000000000"));
  }
  SECTION("QUERY_SQL with two parameters after an odd-length SQL text") {
    REQUIRE_FALSE(wire::begin_sql_request(b, wire::request::query_sql, 5, "SELECT ?, ?", m));
    wire::tuple_writer w(b, 2);
    w.integer(1);
    w.boolean(false);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    CHECK(hex(b) == golden("06000000 09 00 0000"
                           "0500000000000000"
                           "53454c454354203f 2c203f0000000000"
                           "02 01 0b 0000000000"
                           "0100000000000000 0000000000000000"));
  }
  SECTION("EXEC_SQL with 256 parameters sets schema 1") {
    REQUIRE_FALSE(wire::begin_sql_request(b, wire::request::exec_sql, 0, "", m));
    wire::tuple_writer w(b, 256);
    for (int i = 0; i < 256; ++i) w.integer(-1);
    wire::set_frame_schema(b, m, w.schema());
    wire::end_frame(b, m);
    // 1 db + 1 sql + 33 header + 256 values = 291 = 0x123 words.
    std::string want = "23010000 08 01 0000"
                       "0000000000000000 0000000000000000"
                       "00010000" +
                       repeat("01", 256) + repeat("00", 4) + repeat("ff", 256 * 8);
    CHECK(hex(b) == golden(want));
  }
}

TEST_CASE("encode: frame helpers", "[wire][encode]") {
  buffer b;
  auto m = wire::begin_frame(b, wire::request::weight, 3);
  CHECK(m.start == 0);
  CHECK(hex(b) == golden("00000000 13 03 0000"));
  wire::set_frame_schema(b, m, 0);
  wire::put_u8(b, 1);
  wire::end_frame(b, m);  // pads the body to a whole word
  CHECK(hex(b) == golden("01000000 13 00 0000  0100000000000000"));

  auto m2 = wire::begin_frame(b, wire::request::leader);
  CHECK(m2.start == 16);
  wire::end_frame(b, m2);  // empty body
  CHECK(hex(b) == golden("01000000 13 00 0000  0100000000000000  00000000 00 00 0000"));
}
