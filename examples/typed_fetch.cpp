// Typed rows: results decoded straight into your own structs.
//
//   typed_fetch 127.0.0.1:9001
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;

// A type of your own, stored as an INTEGER number of cents.
struct money {
  std::int64_t cents = 0;
};

// Reading it from a column...
template <>
struct dqlite::field_traits<money> {
  static dqlite::error_code read(const dqlite::wire::value_view& v, money& out) {
    if (v.type != dqlite::value_type::integer)
      return make_error_code(v.is_null() ? dqlite::errc::unexpected_null
                                         : dqlite::errc::type_mismatch);
    out.cents = v.integer;
    return {};
  }
};

// ...and binding it as a parameter.
template <>
struct dqlite::param_traits<money> {
  static dqlite::error_code bind(dqlite::wire::tuple_writer& w, const money& m) {
    w.integer(m.cents);
    return {};
  }
};

enum class plan : int { free = 0, pro = 1 };

// Fields are matched to columns by name: the select list may come in any order.
struct customer {
  std::int64_t id;
  std::string name;
  std::optional<std::string> email;  // NULL -> std::nullopt
  plan tier;                         // enums through their underlying integer
  money balance;                     // your own type
  std::chrono::sys_seconds since;    // DATETIME columns
};

asio::awaitable<void> run(std::string address) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await dqlite::async_connect(ex, address, {.database = "typed_example"});
  co_await conn.async_execute(
      "CREATE TABLE IF NOT EXISTS customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "email TEXT, tier INTEGER, balance INTEGER, since DATETIME)");
  co_await conn.async_execute("DELETE FROM customer");

  using namespace std::chrono;
  sys_seconds jan = sys_days{year{2024} / 1 / 15};
  co_await conn.async_execute("INSERT INTO customer VALUES (?, ?, ?, ?, ?, ?)", 1, "Ada",
                              "ada@example.org", plan::pro, money{12550}, jan);
  co_await conn.async_execute("INSERT INTO customer VALUES (?, ?, ?, ?, ?, ?)", 2, "Linus",
                              std::nullopt, plan::free, money{0}, jan + days{30});

  // SELECT * into a struct, by column name.
  for (const customer& c : co_await conn.async_fetch<customer>("SELECT * FROM customer")) {
    std::cout << c.id << " " << c.name << " <" << c.email.value_or("no email") << "> "
              << (c.tier == plan::pro ? "pro" : "free") << " balance " << c.balance.cents / 100
              << "." << (c.balance.cents % 100 < 10 ? "0" : "") << c.balance.cents % 100 << " since "
              << static_cast<int>(year_month_day{floor<days>(c.since)}.year()) << "-"
              << static_cast<unsigned>(year_month_day{floor<days>(c.since)}.month()) << "\n";
  }

  // Tuples map in order; a single type reads one column.
  auto pairs = co_await conn.async_fetch<std::tuple<std::string, money>>(
      "SELECT name, balance FROM customer ORDER BY id");
  std::cout << std::get<0>(pairs[0]) << " has " << std::get<1>(pairs[0]).cents << " cents\n";
  std::vector<std::string> names =
      co_await conn.async_fetch<std::string>("SELECT name FROM customer ORDER BY name");
  std::cout << names.size() << " names, first " << names.front() << "\n";

  // One row, or none.
  std::optional<customer> ada =
      co_await conn.async_fetchone<customer>("SELECT * FROM customer WHERE name = ?", "Ada");
  std::cout << "found Ada: " << std::boolalpha << ada.has_value() << "\n";

  // Columns and fields that do not match: one error that lists every problem.
  struct wrong {
    std::int64_t id;
    std::string nickname;
  };
  try {
    co_await conn.async_fetch<wrong>("SELECT id, name FROM customer");
  } catch (const dqlite::error& e) {
    std::cout << "mismatch reported: " << e.what() << "\n";
  }

  // Rows appended to a vector you keep: reserve once, reuse for every query.
  std::vector<customer> buffer;
  buffer.reserve(100);
  std::size_t n = co_await conn.async_fetch_into<customer>(buffer, "SELECT * FROM customer");
  std::cout << n << " rows appended\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: typed_fetch HOST:PORT\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run(argv[1]), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "typed_fetch failed: " << x.what() << "\n";
      status = 1;
    }
  });
  io.run();
  return status;
}
