// NULL in BOOLEAN and DATETIME columns, through every read path, against the server the
// suite runs on (docs/typed-rows.md, "NULL in BOOLEAN and DATETIME columns").
//
// Released servers (1.11.1 .. 1.18.6) send a NULL in a BOOLEAN column as (BOOLEAN, 0) and a
// NULL in a DATETIME/DATE/TIMESTAMP column as (ISO8601, ""); servers with the upstream fix
// send (NULL). Which form this server sends is asked on a plain socket, without the client
// (and checked against the server label CTest gives: "null-fix" sends NULL, the others the
// released form). Then every read path of the client must give the documented answer for
// that form: the answer of a cell never depends on the operation that read it.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/run.hpp"
#include "support/test_node.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
using dqlite_test::run;
using namespace std::chrono_literals;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);

// ---- the server's form, asked without the client ----

void put_u64(std::vector<unsigned char>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_text(std::vector<unsigned char>& out, const std::string& s) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
  while (out.size() % 8 != 0) out.push_back(0);
}
std::vector<unsigned char> frame(unsigned char type, const std::vector<unsigned char>& body) {
  std::vector<unsigned char> out;
  const auto words = static_cast<std::uint32_t>(body.size() / 8);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(words >> (8 * i)));
  out.push_back(type);
  out.push_back(0);
  out.push_back(0);
  out.push_back(0);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
std::pair<unsigned, std::vector<unsigned char>> read_frame(asio::ip::tcp::socket& s) {
  std::array<unsigned char, 8> header{};
  asio::read(s, asio::buffer(header));
  std::uint32_t words = 0;
  for (int i = 0; i < 4; ++i) words |= static_cast<std::uint32_t>(header[static_cast<std::size_t>(i)]) << (8 * i);
  std::vector<unsigned char> body(std::size_t{words} * 8);
  asio::read(s, asio::buffer(body));
  return {header[4], std::move(body)};
}

/// The wire type codes of the first row of `sql` (at most 16 columns), as the server sends
/// them: a raw OPEN and QUERY_SQL on a plain socket.
std::vector<unsigned> wire_types(const std::string& address, const std::string& db,
                                 const std::string& sql) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  const auto colon = address.rfind(':');
  s.connect({asio::ip::make_address(address.substr(0, colon)),
             static_cast<unsigned short>(std::stoi(address.substr(colon + 1)))});
  std::vector<unsigned char> out;
  put_u64(out, 1);  // protocol version
  asio::write(s, asio::buffer(out));
  std::vector<unsigned char> open;
  put_text(open, db);
  put_u64(open, 0);
  put_text(open, "");
  asio::write(s, asio::buffer(frame(3, open)));
  auto [t1, b1] = read_frame(s);
  if (t1 != 4) throw std::runtime_error("raw OPEN: response type " + std::to_string(t1));
  std::vector<unsigned char> query;
  put_u64(query, 0);
  put_text(query, sql);
  asio::write(s, asio::buffer(frame(9, query)));
  auto [t2, b2] = read_frame(s);
  if (t2 != 7) throw std::runtime_error("raw QUERY_SQL: response type " + std::to_string(t2));
  std::uint64_t columns = 0;
  std::memcpy(&columns, b2.data(), 8);  // little-endian host (x86-64, arm64)
  if (columns == 0 || columns > 16) throw std::runtime_error("raw QUERY_SQL: column count");
  std::size_t at = 8;
  for (std::uint64_t c = 0; c < columns; ++c) {
    const std::size_t start = at;
    while (at < b2.size() && b2[at] != 0) ++at;
    at = start + ((at - start) / 8 + 1) * 8;
  }
  std::vector<unsigned> types;
  for (std::uint64_t c = 0; c < columns; ++c) {
    if (at + c / 2 >= b2.size()) throw std::runtime_error("raw QUERY_SQL: short frame");
    const unsigned byte = b2[at + c / 2];
    types.push_back(c % 2 == 0 ? (byte & 0x0f) : (byte >> 4));
  }
  return types;
}

// ---- answers, written the same way for every read path ----

std::string show(const dqlite::error_code& ec) {
  if (ec == dqlite::errc::unexpected_null) return "error: unexpected_null";
  return "error: " + ec.message();
}
std::string show(bool b) { return b ? "true" : "false"; }
std::string show(const std::string& s) { return "'" + s + "'"; }
std::string show(std::chrono::sys_seconds t) {
  return "time " + std::to_string(t.time_since_epoch().count());
}
std::string show(const dqlite::value& v) {
  switch (v.type()) {
    case dqlite::value_type::null: return "NULL";
    case dqlite::value_type::boolean: return std::string("BOOLEAN ") + (v.as_bool() ? "1" : "0");
    case dqlite::value_type::iso8601: return "ISO8601 '" + v.as_text() + "'";
    default: return "other " + v.to_string();
  }
}
template <class T>
std::string show(const std::optional<T>& o) {
  return o ? show(*o) : "nullopt";
}

template <class T>
struct named {  // mapped by column name: the column is selected AS v
  T v;
};

struct cell {
  std::string what;  // "column -> type via path"
  std::string got;
  std::string expected;
};

struct context {
  asio::any_io_executor ex;
  std::string address;
  dqlite::connection conn;
  dqlite::pool* pool = nullptr;
  std::vector<cell> cells;

  asio::awaitable<void> reopen() {
    if (!conn.is_open())
      conn = co_await dqlite::async_connect(ex, address, {.database = "nulls"});
  }
  void record(std::string what, std::string got, const std::string& expected) {
    cells.push_back({std::move(what), std::move(got), expected});
  }
};

/// Reads column `col` of the one row of `quirks` as T through every typed read path.
template <class T>
asio::awaitable<void> read_as(context& c, std::string col, std::string type,
                              std::string expected) {
  const std::string sql = "SELECT " + col + " AS v FROM quirks";
  const std::string what = col + " -> " + type + " via ";
  // The operations that return a std::vector<T> do not compile for T = bool (the
  // std::vector<bool> proxy reference): those paths are left out for bool.
  constexpr bool vector_ok = !std::is_same_v<T, bool>;
  // One cell: the error, or the value read (has: whether a row arrived).
  auto one = [&](const std::string& path, const dqlite::error_code& ec, bool has, const T& v) {
    c.record(what + path, ec ? show(ec) : has ? show(v) : "no row", expected);
  };
  // After an error in a row the rest of the result is drained: the connection stays open.
  auto still_open = [&](const std::string& path) {
    c.record(what + path + ": connection afterwards", c.conn.is_open() ? "open" : "closed",
             "open");
  };
  auto first = [](const auto& vec) {
    using E = typename std::decay_t<decltype(vec)>::value_type;
    return vec.empty() ? E{} : E(vec[0]);
  };
  if constexpr (vector_ok) {
    co_await c.reopen();
    auto [ec, v] = co_await c.conn.template async_fetch<T>(sql, tok);
    one("fetch<T>", ec, !v.empty(), first(v));
    still_open("fetch<T>");
  }
  {
    co_await c.reopen();
    auto [ec, v] = co_await c.conn.async_fetch<named<T>>(sql, tok);
    one("fetch<struct>", ec, !v.empty(), v.empty() ? T{} : v[0].v);
    still_open("fetch<struct>");
  }
  {
    co_await c.reopen();
    auto [ec, v] = co_await c.conn.async_fetch<dqlite::by_position<named<T>>>(sql, tok);
    one("fetch<by_position>", ec, !v.empty(), v.empty() ? T{} : v[0].v);
    still_open("fetch<by_position>");
  }
  {
    co_await c.reopen();
    auto [ec, v] = co_await c.conn.async_fetch<std::tuple<T>>(sql, tok);
    one("fetch<tuple>", ec, !v.empty(), v.empty() ? T{} : std::get<0>(v[0]));
    still_open("fetch<tuple>");
  }
  if constexpr (vector_ok) {
    co_await c.reopen();
    std::vector<T> into;
    auto [ec, n] = co_await c.conn.async_fetch_into<T>(into, sql, tok);
    one("fetch_into<T>", ec, !into.empty(), first(into));
    still_open("fetch_into<T>");
  }
  {
    co_await c.reopen();
    auto [ec, v] = co_await c.conn.async_fetchone<T>(sql, tok);
    one("fetchone<T>", ec, v.has_value(), v ? T(*v) : T{});
    still_open("fetchone<T>");
  }
  {
    co_await c.reopen();
    auto [ec, v] = co_await c.conn.async_fetchval<T>(sql, tok);
    one("fetchval<T>", ec, true, v);
    still_open("fetchval<T>");
  }
  if constexpr (vector_ok) {
    co_await c.reopen();
    auto [ec, cur] = co_await c.conn.template async_cursor<T>(sql, tok);
    if (ec) {
      one("cursor<T>", ec, false, T{});
    } else {
      auto [ec2, batch] = co_await cur.async_next(tok);
      one("cursor<T>", ec2, !batch.empty(), first(batch));
      if (!ec2) co_await cur.async_close(tok);
    }
    still_open("cursor<T>");
  }
  {
    co_await c.reopen();
    auto [ec, stmt] = co_await c.conn.async_prepare(sql, tok);
    if (ec) {
      one("prepared fetch<T>", ec, false, T{});
    } else {
      if constexpr (vector_ok) {
        auto [ec2, v] = co_await stmt.template async_fetch<T>(tok);
        one("prepared fetch<T>", ec2, !v.empty(), first(v));
        still_open("prepared fetch<T>");
      }
      if (stmt.is_open()) {
        auto [ec3, val] = co_await stmt.template async_fetchval<T>(tok);
        one("prepared fetchval<T>", ec3, true, val);
        still_open("prepared fetchval<T>");
      }
      if (stmt.is_open()) co_await stmt.async_close(tok);
    }
  }
  if constexpr (vector_ok) {
    auto [ec, v] = co_await c.pool->template async_fetch<T>(sql, tok);
    one("pool fetch<T>", ec, !v.empty(), first(v));
  }
  {
    auto [ec, v] = co_await c.pool->async_fetchval<T>(sql, tok);
    one("pool fetchval<T>", ec, true, v);
  }
  {
    auto [ec, v] = co_await c.pool->async_fetchone<T>(sql, tok);
    one("pool fetchone<T>", ec, v.has_value(), v ? T(*v) : T{});
  }
}

/// Reads column `col` as dynamic values through every dynamic read path.
asio::awaitable<void> read_dynamic(context& c, std::string col, std::string expected) {
  const std::string sql = "SELECT " + col + " AS v FROM quirks";
  const std::string what = col + " -> dynamic row via ";
  auto one = [&](const std::string& path, const dqlite::error_code& ec, const auto& rows) {
    c.record(what + path,
             ec ? show(ec) : rows.size() != 1 ? "rows " + std::to_string(rows.size())
                                              : show(rows[0]["v"]),
             expected);
  };
  {
    co_await c.reopen();
    auto [ec, r] = co_await c.conn.async_fetch(sql, tok);
    one("fetch()", ec, r);
  }
  {
    co_await c.reopen();
    auto [ec, r] = co_await c.conn.async_fetchall(sql, tok);
    one("fetchall", ec, r);
  }
  {
    co_await c.reopen();
    auto [ec, r] = co_await c.conn.async_fetch<dqlite::row>(sql, tok);
    one("fetch<row>", ec, r);
  }
  {
    co_await c.reopen();
    auto [ec, r] = co_await c.conn.async_fetchone(sql, tok);
    std::vector<dqlite::row> v;
    if (r) v.push_back(*r);
    one("fetchone()", ec, v);
  }
  {
    co_await c.reopen();
    auto [ec, cur] = co_await c.conn.async_cursor(sql, tok);
    if (ec) {
      one("cursor()", ec, std::vector<dqlite::row>{});
    } else {
      auto [ec2, batch] = co_await cur.async_next(tok);
      one("cursor()", ec2, batch);
      if (!ec2) co_await cur.async_close(tok);
    }
  }
  {
    co_await c.reopen();
    auto [ec, stmt] = co_await c.conn.async_prepare(sql, tok);
    if (ec) {
      one("prepared fetchall", ec, std::vector<dqlite::row>{});
    } else {
      auto [ec2, r] = co_await stmt.async_fetchall(tok);
      one("prepared fetchall", ec2, r);
      if (stmt.is_open()) co_await stmt.async_close(tok);
    }
  }
  {
    auto [ec, r] = co_await c.pool->async_fetch(sql, tok);
    one("pool fetch()", ec, r);
  }
}

}  // namespace

TEST_CASE("NULL in BOOLEAN and DATETIME columns reads the same through every read path",
          "[typed][null]") {
  dqlite_test::node_process node;
  using std::chrono::sys_seconds;
  using std::optional;

  std::vector<unsigned> types;
  std::vector<cell> cells;
  bool null_form = false;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect(ex, node.address(), {.database = "nulls"});
    co_await conn.async_execute(
        "CREATE TABLE quirks (b BOOLEAN, d DATETIME, dt DATE, ts TIMESTAMP)");
    co_await conn.async_execute("INSERT INTO quirks VALUES (NULL, NULL, NULL, NULL)");

    types = wire_types(node.address(), "nulls", "SELECT b, d, dt, ts FROM quirks");
    null_form = types.at(0) == 5;

    dqlite::pool_options po;
    po.database = "nulls";
    po.min_size = 1;
    po.max_size = 1;
    const std::vector<std::string> addresses{node.address()};
    auto pool = co_await dqlite::async_create_pool(ex, addresses, po);
    context c{ex, node.address(), std::move(conn), &pool, {}};

    // The documented answer for each form: {released form, NULL form}.
    auto pick = [&](std::string released, std::string fixed) {
      return null_form ? fixed : released;
    };
    const std::string unexpected_null = "error: unexpected_null";
    co_await read_as<optional<bool>>(c, "b", "optional<bool>", pick("false", "nullopt"));
    co_await read_as<bool>(c, "b", "bool", pick("false", unexpected_null));
    co_await read_as<dqlite::value>(c, "b", "value", pick("BOOLEAN 0", "NULL"));
    co_await read_dynamic(c, "b", pick("BOOLEAN 0", "NULL"));
    for (const char* col : {"d", "dt", "ts"}) {
      co_await read_as<optional<sys_seconds>>(c, col, "optional<sys_seconds>", "nullopt");
      co_await read_as<sys_seconds>(c, col, "sys_seconds", unexpected_null);
    }
    // One rule for both forms: an ISO8601 "" (what released servers send for a NULL
    // date/time) reads as NULL on every read path (docs/typed-rows.md).
    co_await read_as<std::string>(c, "d", "string", unexpected_null);
    co_await read_as<optional<std::string>>(c, "d", "optional<string>", "nullopt");
    co_await read_as<dqlite::value>(c, "d", "value", "NULL");
    co_await read_dynamic(c, "d", "NULL");
    cells = std::move(c.cells);
    co_await pool.async_close(tok);
  });

  // The server's form: a BOOLEAN NULL is (11) or (5), a DATETIME/DATE/TIMESTAMP NULL is
  // (10) or (5), all columns alike.
  INFO("wire types of NULL in BOOLEAN, DATETIME, DATE, TIMESTAMP: " << types.at(0) << ", "
                                                                     << types.at(1) << ", "
                                                                     << types.at(2) << ", "
                                                                     << types.at(3));
  if (null_form) {
    CHECK(types == std::vector<unsigned>{5, 5, 5, 5});
  } else {
    CHECK(types == std::vector<unsigned>{11, 10, 10, 10});
  }
  // The matrix's label says which form to expect.
  const std::string label = dqlite_test::server_label();
  if (!label.empty()) {
    INFO("server " << label);
    CHECK(null_form == (label.find("null-fix") != std::string::npos));
  }

  REQUIRE(cells.size() > 100);
  std::size_t wrong = 0;
  for (const auto& c : cells) {
    if (c.got != c.expected) ++wrong;
  }
  for (const auto& c : cells) {
    INFO((null_form ? "NULL form: " : "released form: ") << c.what);
    CHECK(c.got == c.expected);
  }
  INFO(wrong << " of " << cells.size() << " cells differ from the documented answer");
  CHECK(wrong == 0);
}
