// Response decoding: golden bodies written from the protocol description, every malformed
// case with its error code, and a deterministic mutation loop over valid frames.
#include <dqlite/wire/decode.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace wire = dqlite::wire;
using dqlite::errc;
using dqlite::error_code;
using dqlite::make_error_code;
using wire::value_type;

using bytes = std::vector<std::byte>;

error_code err(errc e) {
  return make_error_code(e);
}

// Bytes from hex text; whitespace is ignored.
bytes bx(std::string_view text) {
  std::string raw;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) raw += c;
  REQUIRE(raw.size() % 2 == 0);
  bytes out;
  for (std::size_t i = 0; i < raw.size(); i += 2)
    out.push_back(static_cast<std::byte>(std::stoul(raw.substr(i, 2), nullptr, 16)));
  return out;
}

// A small body builder for generated test data (independent of the encoder).
struct body_builder {
  bytes b;
  body_builder& u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::byte>(v >> (8 * i)));
    return *this;
  }
  body_builder& text(std::string_view s) {
    for (char c : s) b.push_back(static_cast<std::byte>(c));
    do b.push_back(std::byte{0});
    while (b.size() % 8 != 0);
    return *this;
  }
  body_builder& raw(std::initializer_list<unsigned> v) {
    for (unsigned x : v) b.push_back(static_cast<std::byte>(x));
    return *this;
  }
  body_builder& hex(std::string_view h) {
    auto more = bx(h);
    b.insert(b.end(), more.begin(), more.end());
    return *this;
  }
};

std::string str(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

wire::frame_header header_of(std::string_view h) {
  wire::frame_header out;
  auto b = bx(h);
  REQUIRE_FALSE(wire::decode_header(b, out));
  return out;
}

// Reads every row of a ROWS body; returns the rows (copied as values) and leaves rr at the end.
struct decoded_rows {
  std::vector<std::string> names;
  std::vector<std::vector<wire::value_view>> rows;
  error_code start_ec;
  error_code ec;
  wire::rows_end end = wire::rows_end::none;
};

decoded_rows read_rows(wire::rows_reader& rr, std::span<const std::byte> body) {
  decoded_rows out;
  out.start_ec = rr.start(body);
  if (out.start_ec) return out;
  for (auto n : rr.column_names()) out.names.emplace_back(n);
  std::vector<wire::value_view> vals(rr.column_count());
  while (rr.next(vals)) out.rows.push_back(vals);
  out.ec = rr.error();
  out.end = rr.end();
  return out;
}

decoded_rows read_rows(std::span<const std::byte> body) {
  wire::rows_reader rr;
  return read_rows(rr, body);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

TEST_CASE("decode: frame header", "[wire][decode]") {
  auto h = header_of("02000000 07 01 0000");
  CHECK(h.words == 2);
  CHECK(h.type == 7);
  CHECK(h.schema == 1);
  CHECK(h.body_size() == 16);

  REQUIRE_FALSE(wire::decode_header(bx("78563412 0a 00 0000"), h, SIZE_MAX));
  CHECK(h.words == 0x12345678);
  CHECK(h.body_size() == std::size_t{0x12345678} * 8);
  CHECK(h.type == static_cast<std::uint8_t>(wire::response::metadata));

  SECTION("body over the cap") {
    wire::frame_header out;
    // Exactly the default cap (64 MiB = 0x800000 words) is accepted, one word more is not.
    CHECK_FALSE(wire::decode_header(bx("00008000 07 00 0000"), out));
    CHECK(wire::decode_header(bx("01008000 07 00 0000"), out) == err(errc::frame_too_large));
    CHECK(wire::decode_header(bx("ffffffff 07 00 0000"), out) == err(errc::frame_too_large));
    CHECK_FALSE(wire::decode_header(bx("02000000 07 00 0000"), out, 16));
    CHECK(wire::decode_header(bx("03000000 07 00 0000"), out, 16) == err(errc::frame_too_large));
    CHECK_FALSE(wire::decode_header(bx("00000000 08 00 0000"), out, 0));
  }
  SECTION("unknown response type") {
    wire::frame_header out;
    for (unsigned t = 0; t <= 10; ++t) {
      auto b = bx("01000000 00 00 0000");
      b[4] = static_cast<std::byte>(t);
      CHECK_FALSE(wire::decode_header(b, out));
      CHECK(out.type == t);
    }
    CHECK(wire::decode_header(bx("01000000 0b 00 0000"), out) == err(errc::unknown_message_type));
    CHECK(wire::decode_header(bx("01000000 ff 00 0000"), out) == err(errc::unknown_message_type));
  }
  SECTION("short header") {
    wire::frame_header out;
    CHECK(wire::decode_header(bx("01000000 07 00 00"), out) == err(errc::truncated));
    CHECK(wire::decode_header({}, out) == err(errc::truncated));
  }
  SECTION("expected type") {
    CHECK_FALSE(wire::detail::check_type(header_of("01000000 08 00 0000"), wire::response::empty));
    CHECK(wire::detail::check_type(header_of("01000000 00 00 0000"), wire::response::empty) ==
          err(errc::unexpected_response));
  }
}

// ---------------------------------------------------------------------------------------
// Simple responses
// ---------------------------------------------------------------------------------------

TEST_CASE("decode: FAILURE", "[wire][decode]") {
  auto body = bx("0a28000000000000  6e6f74206c656164 6572000000000000");
  wire::failure_response f;
  REQUIRE_FALSE(wire::decode_failure(body, f));
  CHECK(f.code == 10250);
  CHECK(f.message == "not leader");
  // The message is a view into the body.
  CHECK(reinterpret_cast<const std::byte*>(f.message.data()) == body.data() + 8);

  auto empty_message = bx("0500000000000000 0000000000000000");
  REQUIRE_FALSE(wire::decode_failure(empty_message, f));
  CHECK(f.code == 5);
  CHECK(f.message.empty());

  // After partly written rows: [1 column "a", row INTEGER 5][code 1]["error"].
  auto after_rows = bx("0100000000000000 6100000000000000 0100000000000000 0500000000000000"
                       "0100000000000000 6572726f72000000");
  REQUIRE_FALSE(wire::decode_failure(after_rows, f));
  CHECK(f.code == 1);
  CHECK(f.message == "error");
  // A message of several words.
  auto long_tail = bx("0100000000000000 6100000000000000 0100000000000000 0500000000000000"
                      "0a28000000000000 6e6f74206c656164 6572000000000000");
  REQUIRE_FALSE(wire::decode_failure(long_tail, f));
  CHECK(f.code == 10250);
  CHECK(f.message == "not leader");

  CHECK(wire::decode_failure(bx("0a280000"), f) == err(errc::truncated));
  CHECK(wire::decode_failure(bx("0a28000000000000"), f) == err(errc::missing_nul));
  CHECK(wire::decode_failure(bx("0a28000000000000 6e6f74206c656164"), f) == err(errc::missing_nul));
  CHECK(wire::decode_failure(bx("0a28000000000000 6e6f7400"), f) == err(errc::truncated));
  CHECK(wire::decode_failure(bx("0a28000000000000 6e6f740000000100"), f) == err(errc::bad_padding));
  CHECK(wire::decode_failure(bx("0a28000000000000 6e6f740000000000 00"), f) ==
        err(errc::trailing_bytes));
}

TEST_CASE("decode: SERVER", "[wire][decode]") {
  wire::server_response s;
  auto body = bx("0100000000000000  3132372e302e302e 313a393030310000");
  REQUIRE_FALSE(wire::decode_server(body, s));
  CHECK(s.id == 1);
  CHECK(s.address == "127.0.0.1:9001");

  SECTION("no leader known: (0, \"\")") {
    auto none = bx("0000000000000000 0000000000000000");
    REQUIRE_FALSE(wire::decode_server(none, s));
    CHECK(s.id == 0);
    CHECK(s.address.empty());
  }
  SECTION("malformed") {
    CHECK(wire::decode_server({}, s) == err(errc::truncated));
    CHECK(wire::decode_server(bx("0100000000000000"), s) == err(errc::missing_nul));
    CHECK(wire::decode_server(bx("0100000000000000 3132372e302e302e 313a393030310001"), s) ==
          err(errc::bad_padding));
    CHECK(wire::decode_server(bx("0100000000000000 3132372e302e302e 313a393030310000"
                                 "0000000000000000"),
                              s) == err(errc::trailing_bytes));
  }
}

TEST_CASE("decode: WELCOME, DB, RESULT, EMPTY, METADATA", "[wire][decode]") {
  SECTION("WELCOME") {
    wire::welcome_response w;
    REQUIRE_FALSE(wire::decode_welcome(bx("983a000000000000"), w));
    CHECK(w.heartbeat_timeout_ms == 15000);
    CHECK(wire::decode_welcome({}, w) == err(errc::truncated));
    CHECK(wire::decode_welcome(bx("983a0000"), w) == err(errc::truncated));
    CHECK(wire::decode_welcome(bx("983a000000000000 0000000000000000"), w) ==
          err(errc::trailing_bytes));
  }
  SECTION("DB") {
    wire::db_response d;
    REQUIRE_FALSE(wire::decode_db(bx("00000000 00000000"), d));
    CHECK(d.id == 0);
    REQUIRE_FALSE(wire::decode_db(bx("05000000 00000000"), d));
    CHECK(d.id == 5);
    CHECK(wire::decode_db(bx("05000000"), d) == err(errc::truncated));
    CHECK(wire::decode_db(bx("05000000 000000"), d) == err(errc::truncated));
    CHECK(wire::decode_db(bx("05000000 00000000 00"), d) == err(errc::trailing_bytes));
  }
  SECTION("RESULT") {
    wire::result_response r;
    REQUIRE_FALSE(wire::decode_result(bx("0500000000000000 0100000000000000"), r));
    CHECK(r.last_insert_id == 5);
    CHECK(r.rows_affected == 1);
    REQUIRE_FALSE(wire::decode_result(bx("ffffffffffffffff 0201000000000000"), r));
    CHECK(r.last_insert_id == 0xffffffffffffffffULL);
    CHECK(r.rows_affected == 0x102);
    CHECK(wire::decode_result(bx("0500000000000000"), r) == err(errc::truncated));
    CHECK(wire::decode_result(bx("0500000000000000 01000000000000"), r) == err(errc::truncated));
    CHECK(wire::decode_result(bx("0500000000000000 0100000000000000 0000000000000000"), r) ==
          err(errc::trailing_bytes));
  }
  SECTION("EMPTY") {
    CHECK_FALSE(wire::decode_empty(bx("0000000000000000")));
    CHECK(wire::decode_empty({}) == err(errc::truncated));
    CHECK(wire::decode_empty(bx("00000000000000")) == err(errc::truncated));
    CHECK(wire::decode_empty(bx("0000000000000000 0000000000000000")) == err(errc::trailing_bytes));
  }
  SECTION("METADATA") {
    wire::metadata_response m;
    REQUIRE_FALSE(wire::decode_metadata(bx("0100000000000000 0a00000000000000"), m));
    CHECK(m.failure_domain == 1);
    CHECK(m.weight == 10);
    CHECK(wire::decode_metadata(bx("0100000000000000"), m) == err(errc::truncated));
    CHECK(wire::decode_metadata(bx("0100000000000000 0a00000000000000 00"), m) ==
          err(errc::trailing_bytes));
  }
}

TEST_CASE("decode: STMT schema 0 and 1", "[wire][decode]") {
  wire::stmt_response s;
  auto v0 = bx("00000000 03000000  0200000000000000");
  REQUIRE_FALSE(wire::decode_stmt(v0, 0, s));
  CHECK(s.db == 0);
  CHECK(s.id == 3);
  CHECK(s.params == 2);
  CHECK_FALSE(s.has_tail);

  auto v1 = bx("01000000 04000000  0000000000000000  0800000000000000");
  REQUIRE_FALSE(wire::decode_stmt(v1, 1, s));
  CHECK(s.db == 1);
  CHECK(s.id == 4);
  CHECK(s.params == 0);
  CHECK(s.has_tail);
  CHECK(s.tail_offset == 8);

  // Reading a schema-0 body after a schema-1 one clears has_tail.
  REQUIRE_FALSE(wire::decode_stmt(v0, 0, s));
  CHECK_FALSE(s.has_tail);

  CHECK(wire::decode_stmt(v1, 0, s) == err(errc::trailing_bytes));
  CHECK(wire::decode_stmt(v0, 1, s) == err(errc::truncated));
  CHECK(wire::decode_stmt(bx("00000000 03000000"), 0, s) == err(errc::truncated));
  CHECK(wire::decode_stmt(bx("00000000"), 0, s) == err(errc::truncated));
  CHECK(wire::decode_stmt({}, 0, s) == err(errc::truncated));
}

TEST_CASE("decode: SERVERS", "[wire][decode]") {
  std::vector<wire::node_view> nodes;
  auto body = bx("0200000000000000"
                 "0100000000000000 3132372e302e302e 313a393030310000 0000000000000000"
                 "0200000000000000 31302e302e302e32 3a39303032000000 0200000000000000");
  REQUIRE_FALSE(wire::decode_servers(body, nodes));
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[0].id == 1);
  CHECK(nodes[0].address == "127.0.0.1:9001");
  CHECK(nodes[0].role == 0);
  CHECK(nodes[1].id == 2);
  CHECK(nodes[1].address == "10.0.0.2:9002");
  CHECK(nodes[1].role == static_cast<std::uint64_t>(wire::role::spare));

  SECTION("zero nodes") {
    REQUIRE_FALSE(wire::decode_servers(bx("0000000000000000"), nodes));
    CHECK(nodes.empty());
  }
  SECTION("count far larger than the body fails fast") {
    CHECK(wire::decode_servers(bx("ffffffffffffffff 0100000000000000"), nodes) ==
          err(errc::truncated));
    CHECK(wire::decode_servers(bx("0000000000000010"), nodes) == err(errc::truncated));
    // One node claimed, less than one node's minimum size present.
    CHECK(wire::decode_servers(bx("0100000000000000 0100000000000000 6100000000000000"), nodes) ==
          err(errc::truncated));
    CHECK(nodes.capacity() < 1000);
  }
  SECTION("malformed node") {
    CHECK(wire::decode_servers(bx("0100000000000000 0100000000000000 6161616161616161"
                                  "6161616161616161"),
                               nodes) == err(errc::missing_nul));
    CHECK(wire::decode_servers(bx("0100000000000000 0100000000000000 6100000000000100"
                                  "0000000000000000"),
                               nodes) == err(errc::bad_padding));
    CHECK(wire::decode_servers(bx("0100000000000000 0100000000000000 6161616161616100"
                                  "0000000000000000 0000000000000000"),
                               nodes) == err(errc::trailing_bytes));
    CHECK(wire::decode_servers({}, nodes) == err(errc::truncated));
  }
}

TEST_CASE("decode: FILES", "[wire][decode]") {
  std::vector<wire::file_view> files;
  auto body = bx("0200000000000000"
                 "6462000000000000 1000000000000000 0102030405060708 090a0b0c0d0e0f10"
                 "64622d77616c0000 0000000000000000");
  REQUIRE_FALSE(wire::decode_files(body, files));
  REQUIRE(files.size() == 2);
  CHECK(files[0].name == "db");
  REQUIRE(files[0].data.size() == 16);
  CHECK(static_cast<unsigned>(files[0].data[0]) == 1);
  CHECK(static_cast<unsigned>(files[0].data[15]) == 16);
  CHECK(files[0].data.data() == body.data() + 24);
  CHECK(files[1].name == "db-wal");
  CHECK(files[1].data.empty());

  CHECK_FALSE(wire::decode_files(bx("0000000000000000"), files));
  CHECK(files.empty());

  SECTION("count far larger than the body fails fast") {
    CHECK(wire::decode_files(bx("ffffffffffffffff 6462000000000000 0000000000000000"), files) ==
          err(errc::truncated));
    CHECK(wire::decode_files(bx("0200000000000000 6462000000000000 0000000000000000"), files) ==
          err(errc::truncated));
    CHECK(files.capacity() < 1000);
  }
  SECTION("file size past the end") {
    CHECK(wire::decode_files(bx("0100000000000000 6462000000000000 1000000000000000"
                                "0102030405060708"),
                             files) == err(errc::truncated));
    CHECK(wire::decode_files(bx("0100000000000000 6462000000000000 ffffffffffffffff"
                                "0102030405060708"),
                             files) == err(errc::truncated));
  }
  SECTION("malformed name and trailing bytes") {
    CHECK(wire::decode_files(bx("0100000000000000 6464646464646464 6464646464646464"), files) ==
          err(errc::missing_nul));
    CHECK(wire::decode_files(bx("0100000000000000 6400000000ff0000 0000000000000000"), files) ==
          err(errc::bad_padding));
    CHECK(wire::decode_files(bx("0100000000000000 6400000000000000 0000000000000000"
                                "0000000000000000"),
                             files) == err(errc::trailing_bytes));
  }
}

// ---------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------

TEST_CASE("decode: reader primitives", "[wire][decode]") {
  auto body = bx("0807060504030201 feffffffffffffff 000000000000f83f 04030201");
  wire::reader r(body);
  std::uint64_t u = 0;
  std::int64_t i = 0;
  double d = 0;
  std::uint32_t u32 = 0;
  REQUIRE_FALSE(r.u64(u));
  CHECK(u == 0x0102030405060708ULL);
  REQUIRE_FALSE(r.i64(i));
  CHECK(i == -2);
  REQUIRE_FALSE(r.f64(d));
  CHECK(d == 1.5);
  CHECK(r.remaining() == 4);
  CHECK(r.u64(u) == err(errc::truncated));  // a truncated u64 does not move the reader
  CHECK(r.remaining() == 4);
  REQUIRE_FALSE(r.u32(u32));
  CHECK(u32 == 0x01020304);
  CHECK(r.at_end());
  CHECK_FALSE(r.finish());
  CHECK(r.u32(u32) == err(errc::truncated));
  CHECK(r.i64(i) == err(errc::truncated));
  CHECK(r.f64(d) == err(errc::truncated));

  SECTION("empty and default readers") {
    for (wire::reader e : {wire::reader{}, wire::reader{std::span<const std::byte>{}}}) {
      std::string_view t;
      wire::bytes_view bv;
      CHECK(e.remaining() == 0);
      CHECK(e.u64(u) == err(errc::truncated));
      CHECK(e.text(t) == err(errc::missing_nul));
      CHECK(e.blob(bv) == err(errc::truncated));
      CHECK_FALSE(e.raw(0, bv));
      CHECK(e.raw(1, bv) == err(errc::truncated));
      CHECK_FALSE(e.finish());
    }
  }
  SECTION("raw bytes") {
    auto b = bx("0102030405");
    wire::reader rr(b);
    wire::bytes_view v;
    REQUIRE_FALSE(rr.raw(3, v));
    CHECK(v.size() == 3);
    CHECK(rr.raw(3, v) == err(errc::truncated));
    CHECK(rr.remaining() == 2);
    CHECK(rr.finish() == err(errc::trailing_bytes));
  }
  SECTION("blob lengths") {
    wire::bytes_view v;
    auto b0 = bx("0000000000000000");
    wire::reader r0(b0);
    REQUIRE_FALSE(r0.blob(v));
    CHECK(v.empty());
    CHECK(r0.at_end());

    auto b8 = bx("0800000000000000 6162636465666768");
    wire::reader r8(b8);
    REQUIRE_FALSE(r8.blob(v));
    CHECK(str(v) == "abcdefgh");
    CHECK(r8.at_end());

    auto b9 = bx("0900000000000000 6162636465666768 6900000000000000");
    wire::reader r9(b9);
    REQUIRE_FALSE(r9.blob(v));
    CHECK(str(v) == "abcdefghi");
    CHECK(r9.at_end());

    // Length within the body, padding beyond it.
    auto b5 = bx("0500000000000000 6162636465");
    wire::reader r5(b5);
    CHECK(r5.blob(v) == err(errc::truncated));

    for (auto len : {"0900000000000000", "ffffffffffffffff", "f9ffffffffffffff", "0000000000000080",
                     "0000000001000000"}) {
      auto bad = bx(std::string(len) + "6162636465666768");
      wire::reader rb(bad);
      CHECK(rb.blob(v) == err(errc::truncated));
    }
    // Blob padding is skipped unchecked: servers leave it uninitialised.
    auto padded = bx("0300000000000000 6162630000010000 0100000000000000");
    wire::reader rp(padded);
    REQUIRE_FALSE(rp.blob(v));
    CHECK(str(v) == "abc");
    CHECK(rp.remaining() == 8);
  }
  SECTION("text") {
    std::string_view t;
    auto b = bx("6162636465666700 6100000000000000 0000000000000000");
    wire::reader rt(b);
    REQUIRE_FALSE(rt.text(t));
    CHECK(t == "abcdefg");
    REQUIRE_FALSE(rt.text(t));
    CHECK(t == "a");
    REQUIRE_FALSE(rt.text(t));
    CHECK(t.empty());
    CHECK(rt.at_end());

    auto nonul = bx("6162636465666768");
    wire::reader rn(nonul);
    CHECK(rn.text(t) == err(errc::missing_nul));
    auto pad = bx("6100000000000001");
    wire::reader rpad(pad);
    CHECK(rpad.text(t) == err(errc::bad_padding));
    auto shortpad = bx("610000");
    wire::reader rs(shortpad);
    CHECK(rs.text(t) == err(errc::truncated));
  }
}

// ---------------------------------------------------------------------------------------
// ROWS
// ---------------------------------------------------------------------------------------

TEST_CASE("decode: ROWS with two columns", "[wire][decode][rows]") {
  auto body = bx("0200000000000000"                   // 2 columns
                 "6964000000000000"                   // "id"
                 "6e616d6500000000"                   // "name"
                 "3100000000000000"                   // INTEGER, TEXT
                 "0100000000000000 616c696365000000"  // 1, "alice"
                 "3100000000000000"
                 "0200000000000000 0000000000000000"  // 2, ""
                 "ffffffffffffffff");                 // DONE
  wire::rows_reader rr;
  REQUIRE_FALSE(rr.start(body));
  CHECK(rr.frame_size() == body.size());
  REQUIRE(rr.column_count() == 2);
  CHECK(rr.column_name(0) == "id");
  CHECK(rr.column_name(1) == "name");
  CHECK(rr.column_names().size() == 2);
  CHECK(rr.end() == wire::rows_end::none);

  std::array<wire::value_view, 2> v;
  REQUIRE(rr.next(v));
  CHECK(v[0].type == value_type::integer);
  CHECK(v[0].integer == 1);
  CHECK(v[1].type == value_type::text);
  CHECK(v[1].bytes == "alice");
  REQUIRE(rr.next(v));
  CHECK(v[0].integer == 2);
  CHECK(v[1].type == value_type::text);
  CHECK(v[1].bytes.empty());
  CHECK_FALSE(rr.next(v));
  CHECK_FALSE(rr.error());
  CHECK(rr.end() == wire::rows_end::done);
  // Stays at the end.
  CHECK_FALSE(rr.next(v));
  CHECK(rr.end() == wire::rows_end::done);
}

TEST_CASE("decode: ROWS with every value type", "[wire][decode][rows]") {
  auto body = bx("0800000000000000"
                 "6100000000000000 6200000000000000 6300000000000000 6400000000000000"
                 "6500000000000000 6600000000000000 6700000000000000 6800000000000000"
                 "214395ba00000000"                                    // 1 2 3 4 5 9 10 11
                 "ffffffffffffffff"                                    // INTEGER -1
                 "0000000000000440"                                    // FLOAT 2.5
                 "68656c6c6f000000"                                    // TEXT "hello"
                 "0800000000000000 0102030405060708"                   // BLOB of 8
                 "0000000000000000"                                    // NULL
                 "e540b94300000000"                                    // UNIXTIME 1136214245
                 "323030362d30312d 30322031353a3034 3a30350000000000"  // ISO8601
                 "0100000000000000"                                    // BOOLEAN true
                 "214395ba00000000"
                 "0000000000000080"    // INTEGER min
                 "000000000000f0ff"    // FLOAT -inf
                 "0000000000000000"    // TEXT ""
                 "0000000000000000"    // BLOB of 0
                 "0000000000000000"    // NULL
                 "ffffffffffffffff"    // UNIXTIME -1
                 "0000000000000000"    // ISO8601 ""
                 "0700000000000000"    // BOOLEAN non-zero
                 "eeeeeeeeeeeeeeee");  // PART
  auto rows = read_rows(body);
  REQUIRE_FALSE(rows.start_ec);
  CHECK(rows.names == std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h"});
  CHECK_FALSE(rows.ec);
  CHECK(rows.end == wire::rows_end::part);
  REQUIRE(rows.rows.size() == 2);

  const auto& r = rows.rows[0];
  CHECK(r[0].type == value_type::integer);
  CHECK(r[0].integer == -1);
  CHECK(r[1].type == value_type::floating);
  CHECK(r[1].floating == 2.5);
  CHECK(r[2].type == value_type::text);
  CHECK(r[2].bytes == "hello");
  CHECK(r[3].type == value_type::blob);
  REQUIRE(r[3].blob().size() == 8);
  CHECK(static_cast<unsigned>(r[3].blob()[7]) == 8);
  CHECK(r[4].type == value_type::null);
  CHECK(r[4].is_null());
  CHECK(r[5].type == value_type::unixtime);
  CHECK(r[5].integer == 1136214245);
  CHECK(r[6].type == value_type::iso8601);
  CHECK(r[6].bytes == "2006-01-02 15:04:05");
  CHECK(r[7].type == value_type::boolean);
  CHECK(r[7].integer == 1);

  const auto& s = rows.rows[1];
  CHECK(s[0].integer == std::numeric_limits<std::int64_t>::min());
  CHECK(s[1].floating == -std::numeric_limits<double>::infinity());
  CHECK(s[2].type == value_type::text);
  CHECK(s[2].bytes.empty());
  CHECK(s[3].type == value_type::blob);
  CHECK(s[3].blob().empty());
  CHECK(s[4].is_null());
  CHECK(s[5].integer == -1);
  CHECK(s[6].type == value_type::null);  // ISO8601 "": how released servers send NULL
  CHECK(s[6].is_null());
  CHECK(s[7].type == value_type::boolean);
  CHECK(s[7].integer == 1);
}

TEST_CASE("decode: ROWS with an odd column count and blobs of 0, 8, 9 bytes",
          "[wire][decode][rows]") {
  auto body = bx("0300000000000000"
                 "6e00000000000000 6200000000000000 6300000000000000"
                 "4104000000000000"                                    // INTEGER, BLOB; BLOB
                 "0700000000000000"                                    // 7
                 "0000000000000000"                                    // blob of 0
                 "0900000000000000 0102030405060708 0900000000000000"  // blob of 9
                 "4104000000000000"
                 "0800000000000000"
                 "0800000000000000 0102030405060708"  // blob of 8
                 "0000000000000000"
                 "ffffffffffffffff");
  auto rows = read_rows(body);
  REQUIRE_FALSE(rows.start_ec);
  CHECK_FALSE(rows.ec);
  CHECK(rows.end == wire::rows_end::done);
  REQUIRE(rows.rows.size() == 2);
  CHECK(rows.rows[0][0].integer == 7);
  CHECK(rows.rows[0][1].blob().empty());
  CHECK(str(rows.rows[0][2].blob()) == str(bx("010203040506070809")));
  CHECK(rows.rows[1][0].integer == 8);
  CHECK(str(rows.rows[1][1].blob()) == str(bx("0102030405060708")));
  CHECK(rows.rows[1][2].blob().empty());
}

TEST_CASE("decode: ROWS with 16 and 17 columns", "[wire][decode][rows]") {
  for (std::size_t n : {15u, 16u, 17u, 32u, 33u}) {
    CAPTURE(n);
    body_builder b;
    b.u64(n);
    for (std::size_t i = 0; i < n; ++i) b.text("c" + std::to_string(i));
    // Header: one INTEGER nibble per column, padded to whole words.
    const std::size_t header_bytes = ((n + 15) / 16) * 8;
    for (std::size_t i = 0; i < header_bytes; ++i) {
      unsigned byte = 0;
      if (2 * i < n) byte |= 0x1;
      if (2 * i + 1 < n) byte |= 0x10;
      b.raw({byte});
    }
    for (std::size_t i = 0; i < n; ++i) b.u64(i * 100);
    b.u64(wire::rows_done_marker);

    auto rows = read_rows(b.b);
    REQUIRE_FALSE(rows.start_ec);
    CHECK_FALSE(rows.ec);
    CHECK(rows.end == wire::rows_end::done);
    REQUIRE(rows.names.size() == n);
    CHECK(rows.names[n - 1] == "c" + std::to_string(n - 1));
    REQUIRE(rows.rows.size() == 1);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(rows.rows[0][i].type == value_type::integer);
      CHECK(rows.rows[0][i].integer == static_cast<std::int64_t>(i * 100));
    }
  }

  SECTION("17 columns: the golden layout of the two header words") {
    auto body = bx("1100000000000000" + [] {
      std::string s;
      for (int i = 0; i < 17; ++i) s += "7800000000000000";  // "x"
      s += "1111111111111111 0100000000000000";              // 17 INTEGER nibbles
      for (int i = 0; i < 17; ++i) s += "0100000000000000";
      return s + "ffffffffffffffff";
    }());
    auto rows = read_rows(body);
    REQUIRE_FALSE(rows.ec);
    REQUIRE(rows.rows.size() == 1);
    CHECK(rows.rows[0][16].integer == 1);

    // Junk in the second header word past the last nibble.
    auto bad = body;
    bad[8 + 17 * 8 + 9] = std::byte{0x01};
    CHECK(read_rows(bad).ec == err(errc::bad_padding));
    // The unused high nibble of column 17's byte.
    bad = body;
    bad[8 + 17 * 8 + 8] = std::byte{0x11};
    CHECK(read_rows(bad).ec == err(errc::bad_padding));
  }
}

TEST_CASE("decode: ROWS markers and empty results", "[wire][decode][rows]") {
  SECTION("zero columns then DONE") {
    auto rows = read_rows(bx("0000000000000000 ffffffffffffffff"));
    REQUIRE_FALSE(rows.start_ec);
    CHECK(rows.names.empty());
    CHECK(rows.rows.empty());
    CHECK_FALSE(rows.ec);
    CHECK(rows.end == wire::rows_end::done);
  }
  SECTION("zero columns then PART") {
    auto rows = read_rows(bx("0000000000000000 eeeeeeeeeeeeeeee"));
    CHECK_FALSE(rows.ec);
    CHECK(rows.end == wire::rows_end::part);
  }
  SECTION("columns but no rows") {
    auto rows = read_rows(bx("0100000000000000 6100000000000000 ffffffffffffffff"));
    CHECK(rows.names == std::vector<std::string>{"a"});
    CHECK(rows.rows.empty());
    CHECK_FALSE(rows.ec);
    CHECK(rows.end == wire::rows_end::done);
  }
  SECTION("one reader over consecutive PART and DONE frames") {
    wire::rows_reader rr;
    auto part = bx("0100000000000000 6100000000000000 0100000000000000 0100000000000000"
                   "eeeeeeeeeeeeeeee");
    auto done = bx("0100000000000000 6100000000000000 0100000000000000 0200000000000000"
                   "ffffffffffffffff");
    auto a = read_rows(rr, part);
    CHECK(a.end == wire::rows_end::part);
    REQUIRE(a.rows.size() == 1);
    CHECK(a.rows[0][0].integer == 1);
    auto b = read_rows(rr, done);
    CHECK(b.end == wire::rows_end::done);
    CHECK_FALSE(b.ec);
    REQUIRE(b.rows.size() == 1);
    CHECK(b.rows[0][0].integer == 2);
    // A failed frame after a good one resets the state.
    auto c = read_rows(rr, bx("0100000000000000 6100000000000000"));
    CHECK(c.ec == err(errc::invalid_row_marker));
    CHECK(c.end == wire::rows_end::none);
  }
}

TEST_CASE("decode: malformed ROWS", "[wire][decode][rows]") {
  const std::string one_col = "0100000000000000 6100000000000000";

  SECTION("no marker") {
    auto rows = read_rows(bx(one_col + "0100000000000000 0500000000000000"));
    CHECK(rows.rows.size() == 1);
    CHECK(rows.ec == err(errc::invalid_row_marker));
    CHECK(rows.end == wire::rows_end::none);
    CHECK(read_rows(bx(one_col)).ec == err(errc::invalid_row_marker));
    CHECK(read_rows(bx(one_col + "ffffffff")).ec == err(errc::invalid_row_marker));
    CHECK(read_rows(bx("0000000000000000")).ec == err(errc::invalid_row_marker));
  }
  SECTION("zero columns followed by something other than a marker") {
    CHECK(read_rows(bx("0000000000000000 0100000000000000 ffffffffffffffff")).ec ==
          err(errc::invalid_row_marker));
  }
  SECTION("bytes after the marker") {
    auto rows = read_rows(bx(one_col + "ffffffffffffffff 0000000000000000"));
    CHECK(rows.ec == err(errc::trailing_bytes));
    CHECK(read_rows(bx(one_col + "eeeeeeeeeeeeeeee 00")).ec == err(errc::trailing_bytes));
  }
  SECTION("unknown value type nibbles") {
    for (unsigned code : {0u, 6u, 7u, 8u, 12u, 13u, 14u, 15u}) {
      CAPTURE(code);
      body_builder low;
      low.hex(one_col).raw({code, 0, 0, 0, 0, 0, 0, 0}).u64(0).u64(wire::rows_done_marker);
      CHECK(read_rows(low.b).ec == err(errc::unknown_value_type));

      body_builder high;  // second of two columns: the high nibble
      high.u64(2).text("a").text("b").raw({0x01 | (code << 4), 0, 0, 0, 0, 0, 0, 0});
      high.u64(1).u64(0).u64(wire::rows_done_marker);
      CHECK(read_rows(high.b).ec == err(errc::unknown_value_type));
    }
  }
  SECTION("odd column count with a non-zero high nibble") {
    CHECK(read_rows(bx(one_col + "1100000000000000 0100000000000000 ffffffffffffffff")).ec ==
          err(errc::bad_padding));
    CHECK(read_rows(bx("0300000000000000 6100000000000000 6200000000000000 6300000000000000"
                       "1151000000000000 0100000000000000 0100000000000000 0000000000000000"
                       "ffffffffffffffff"))
              .ec == err(errc::bad_padding));
  }
  SECTION("non-zero header padding") {
    CHECK(read_rows(bx(one_col + "0100000000000001 0100000000000000 ffffffffffffffff")).ec ==
          err(errc::bad_padding));
  }
  SECTION("text in a row") {
    CHECK(read_rows(bx(one_col + "0300000000000000 6161616161616161")).ec ==
          err(errc::missing_nul));
    CHECK(read_rows(bx(one_col + "0300000000000000 6161616161616161 ffffffffffffffff")).ec ==
          err(errc::missing_nul));
    CHECK(read_rows(bx(one_col + "0300000000000000 6100000000000100 ffffffffffffffff")).ec ==
          err(errc::bad_padding));
    CHECK(read_rows(bx(one_col + "0a00000000000000 6100000000000100 ffffffffffffffff")).ec ==
          err(errc::bad_padding));
  }
  SECTION("blob in a row") {
    // Uninitialised blob padding is accepted.
    auto body = bx(one_col + "0400000000000000 0300000000000000 616263ffeeddccbb"
                             "ffffffffffffffff");
    auto rows = read_rows(body);
    CHECK_FALSE(rows.ec);
    CHECK(rows.end == wire::rows_end::done);
    REQUIRE(rows.rows.size() == 1);
    CHECK(str(rows.rows[0][0].blob()) == "abc");
    for (auto len :
         {"1000000000000000", "ffffffffffffffff", "f9ffffffffffffff", "0000000000000001"}) {
      CAPTURE(len);
      CHECK(read_rows(bx(one_col + "0400000000000000" + len + "ffffffffffffffff")).ec ==
            err(errc::truncated));
    }
  }
  SECTION("values missing") {
    CHECK(read_rows(bx(one_col + "0100000000000000")).ec == err(errc::truncated));
    CHECK(read_rows(bx(one_col + "0200000000000000 0000")).ec == err(errc::truncated));
    CHECK(read_rows(bx(one_col + "0500000000000000")).ec == err(errc::truncated));
    CHECK(read_rows(bx(one_col + "0b00000000000000")).ec == err(errc::truncated));
    // 17 columns need two header words.
    body_builder b;
    b.u64(17);
    for (int i = 0; i < 17; ++i) b.text("x");
    b.hex("1111111111111111");
    CHECK(read_rows(b.b).ec == err(errc::truncated));
  }
  SECTION("column count far larger than the body fails fast") {
    wire::rows_reader rr;
    // Counts over the column limit are refused as such, before the body is looked at.
    for (auto [count, expected] : {std::pair{"ffffffffffffffff", errc::too_many_columns},
                                   std::pair{"0000000000010000", errc::too_many_columns},
                                   std::pair{"0300000000000000", errc::truncated}}) {
      CAPTURE(count);
      auto body = bx(std::string(count) + "6100000000000000 6200000000000000");
      CHECK(rr.start(body) == err(expected));
      CHECK(rr.error() == err(expected));
      CHECK(rr.column_count() == 0);
      std::array<wire::value_view, 1> v;
      CHECK_FALSE(rr.next(v));
    }
    CHECK(rr.column_names().capacity() < 1000);
  }
  SECTION("bad column names") {
    CHECK(read_rows(bx("0100000000000000 6161616161616161")).start_ec == err(errc::missing_nul));
    CHECK(read_rows(bx("0100000000000000 6100000000010000 ffffffffffffffff")).start_ec ==
          err(errc::bad_padding));
    CHECK(read_rows(bx("")).start_ec == err(errc::truncated));
    CHECK(read_rows(bx("01000000")).start_ec == err(errc::truncated));
  }
  SECTION("an output span shorter than the row") {
    wire::rows_reader rr;
    auto body = bx("0200000000000000 6100000000000000 6200000000000000"
                   "1100000000000000 0100000000000000 0200000000000000 ffffffffffffffff");
    REQUIRE_FALSE(rr.start(body));
    std::array<wire::value_view, 1> v;
    CHECK_FALSE(rr.next(v));
    CHECK(rr.error());
  }
  SECTION("a reader that was never started") {
    wire::rows_reader rr;
    std::array<wire::value_view, 1> v;
    CHECK_FALSE(rr.next(v));
    CHECK(rr.error() == err(errc::invalid_row_marker));
  }
}

// ---------------------------------------------------------------------------------------
// Mutations of valid frames
// ---------------------------------------------------------------------------------------

namespace {

struct sample {
  std::uint8_t type;
  std::uint8_t schema;
  bytes body;
};

std::vector<sample> samples() {
  std::vector<sample> s;
  s.push_back({0, 0, bx("0a28000000000000 6e6f74206c656164 6572000000000000")});
  s.push_back({0, 0,
               bx("0100000000000000 6100000000000000 0100000000000000 0500000000000000"
                  "0a28000000000000 6e6f74206c656164 6572000000000000")});
  s.push_back({1, 0, bx("0100000000000000 3132372e302e302e 313a393030310000")});
  s.push_back({1, 0, bx("0000000000000000 0000000000000000")});
  s.push_back({2, 0, bx("983a000000000000")});
  s.push_back({3, 0,
               bx("0200000000000000"
                  "0100000000000000 3132372e302e302e 313a393030310000 0000000000000000"
                  "0200000000000000 31302e302e302e32 3a39303032000000 0200000000000000")});
  s.push_back({4, 0, bx("00000000 00000000")});
  s.push_back({5, 0, bx("00000000 03000000 0200000000000000")});
  s.push_back({5, 1, bx("01000000 04000000 0000000000000000 0800000000000000")});
  s.push_back({6, 0, bx("0500000000000000 0100000000000000")});
  s.push_back({8, 0, bx("0000000000000000")});
  s.push_back({9, 0,
               bx("0200000000000000"
                  "6462000000000000 1000000000000000 0102030405060708 090a0b0c0d0e0f10"
                  "64622d77616c0000 0000000000000000")});
  s.push_back({10, 0, bx("0100000000000000 0a00000000000000")});
  s.push_back({7, 0,
               bx("0200000000000000 6964000000000000 6e616d6500000000"
                  "3100000000000000 0100000000000000 616c696365000000"
                  "3100000000000000 0200000000000000 0000000000000000"
                  "ffffffffffffffff")});
  s.push_back({7, 0,
               bx("0800000000000000"
                  "6100000000000000 6200000000000000 6300000000000000 6400000000000000"
                  "6500000000000000 6600000000000000 6700000000000000 6800000000000000"
                  "214395ba00000000 ffffffffffffffff 0000000000000440 68656c6c6f000000"
                  "0800000000000000 0102030405060708 0000000000000000 e540b94300000000"
                  "323030362d30312d 30322031353a3034 3a30350000000000 0100000000000000"
                  "eeeeeeeeeeeeeeee")});
  s.push_back({7, 0,
               bx("0300000000000000 6e00000000000000 6200000000000000 6300000000000000"
                  "4104000000000000 0700000000000000 0000000000000000"
                  "0900000000000000 0102030405060708 0900000000000000"
                  "ffffffffffffffff")});
  {
    body_builder b;
    b.u64(17);
    for (int i = 0; i < 17; ++i) b.text("x");
    b.hex("1111111111111111 0100000000000000");
    for (int i = 0; i < 17; ++i) b.u64(static_cast<std::uint64_t>(i));
    b.u64(wire::rows_done_marker);
    s.push_back({7, 0, b.b});
  }
  s.push_back({7, 0, bx("0000000000000000 ffffffffffffffff")});
  return s;
}

bool inside(const std::byte* begin, std::size_t size, const void* p, std::size_t n) {
  auto lo = reinterpret_cast<std::uintptr_t>(begin);
  auto at = reinterpret_cast<std::uintptr_t>(p);
  if (n == 0 && p == nullptr) return true;
  return at >= lo && at + n <= lo + size;
}

struct fuzz_stats {
  std::size_t runs = 0;
  std::size_t errors = 0;
  std::size_t escapes = 0;  // views outside the input
};

// Runs every decoder on a copy of data in an allocation of exactly its size.
void run_all(std::span<const std::byte> data, fuzz_stats& st) {
  std::unique_ptr<std::byte[]> copy(new std::byte[data.size() == 0 ? 1 : data.size()]);
  if (!data.empty()) std::memcpy(copy.get(), data.data(), data.size());
  const std::byte* p = data.empty() ? nullptr : copy.get();
  std::span<const std::byte> in(p, data.size());
  auto check_view = [&](std::string_view v) {
    if (!v.empty() && !inside(p, in.size(), v.data(), v.size())) ++st.escapes;
  };
  auto count = [&](error_code ec) {
    ++st.runs;
    if (ec) ++st.errors;
  };

  wire::frame_header h;
  count(wire::decode_header(in, h));
  if (in.size() >= 8) count(wire::decode_header(in.first(8), h, 1024));

  wire::failure_response f;
  if (!wire::decode_failure(in, f)) check_view(f.message);
  wire::server_response s;
  if (!wire::decode_server(in, s)) check_view(s.address);
  wire::welcome_response w;
  count(wire::decode_welcome(in, w));
  wire::db_response d;
  count(wire::decode_db(in, d));
  wire::stmt_response st0;
  count(wire::decode_stmt(in, 0, st0));
  count(wire::decode_stmt(in, 1, st0));
  wire::result_response r;
  count(wire::decode_result(in, r));
  count(wire::decode_empty(in));
  wire::metadata_response m;
  count(wire::decode_metadata(in, m));
  std::vector<wire::node_view> nodes;
  auto ec = wire::decode_servers(in, nodes);
  count(ec);
  if (!ec)
    for (const auto& n : nodes) check_view(n.address);
  std::vector<wire::file_view> files;
  ec = wire::decode_files(in, files);
  count(ec);
  if (!ec)
    for (const auto& fv : files) {
      check_view(fv.name);
      if (!fv.data.empty() && !inside(p, in.size(), fv.data.data(), fv.data.size())) ++st.escapes;
    }

  wire::rows_reader rr;
  ec = rr.start(in);
  count(ec);
  if (!ec) {
    for (auto n : rr.column_names()) check_view(n);
    std::vector<wire::value_view> vals(rr.column_count());
    std::size_t guard = 0;
    while (rr.next(vals) && ++guard < 100000)
      for (const auto& v : vals) check_view(v.bytes);
    count(rr.error());
  }
}

}  // namespace

TEST_CASE("decode: every decoder survives mutated and truncated frames", "[wire][decode][fuzz]") {
  const auto all = samples();
  fuzz_stats st;

  // The valid samples decode with their own decoder.
  for (const auto& smp : all) {
    bytes frame;
    body_builder hb;
    hb.raw({static_cast<unsigned>(smp.body.size() / 8 & 0xff),
            static_cast<unsigned>(smp.body.size() / 8 >> 8 & 0xff), 0, 0, smp.type, smp.schema, 0,
            0});
    frame = hb.b;
    frame.insert(frame.end(), smp.body.begin(), smp.body.end());
    wire::frame_header h;
    REQUIRE_FALSE(wire::decode_header(std::span(frame).first(8), h));
    CHECK(h.body_size() == smp.body.size());

    const std::uint8_t variants[] = {0x00, 0xff, 0xee, 0x80, 0x01, 0x0f};
    for (std::size_t i = 0; i < frame.size(); ++i) {
      // Truncated at i.
      run_all(std::span(frame).first(i), st);
      if (i >= 8) run_all(std::span(frame).subspan(8, i - 8), st);
      // Byte i replaced or flipped.
      for (auto v : variants) {
        auto m = frame;
        m[i] = static_cast<std::byte>(v);
        run_all(m, st);
        run_all(std::span(m).subspan(8), st);
      }
      auto m = frame;
      m[i] ^= std::byte{0xff};
      run_all(std::span(m).subspan(8), st);
    }
  }

  // Random multi-byte mutations with a fixed seed.
  std::mt19937_64 rng(0x5eed);
  for (int iter = 0; iter < 4000; ++iter) {
    const auto& smp = all[rng() % all.size()];
    auto m = smp.body;
    const auto flips = 1 + rng() % 4;
    for (std::uint64_t k = 0; k < flips && !m.empty(); ++k)
      m[rng() % m.size()] = static_cast<std::byte>(rng());
    if (rng() % 4 == 0 && !m.empty()) m.resize(rng() % m.size());
    if (rng() % 8 == 0)
      for (int k = 0; k < 8; ++k) m.push_back(static_cast<std::byte>(rng()));
    run_all(m, st);
  }

  CHECK(st.runs > 100000);
  CHECK(st.errors > 0);
  CHECK(st.escapes == 0);
}
