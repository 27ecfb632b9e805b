// The SQL text scanner (statements, RETURNING) and the text of server failures that say
// nothing by themselves.
#include <dqlite/detail/sql_text.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/encode.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace {

using dqlite::detail::scan_sql;

std::size_t statements(std::string_view sql) {
  return scan_sql(sql).statements;
}
bool returning(std::string_view sql) {
  return scan_sql(sql).returning;
}

}  // namespace

TEST_CASE("scan_sql counts statements as SQLite's tokenizer splits them", "[sql_text]") {
  SECTION("no statement") {
    CHECK(statements("") == 0);
    CHECK(statements("   \n\t") == 0);
    CHECK(statements(";") == 0);
    CHECK(statements(" ; ;; ") == 0);
    CHECK(statements("-- only a comment") == 0);
    CHECK(statements("/* only a comment */") == 0);
    CHECK(statements("/* unterminated comment ; SELECT 1") == 0);
  }
  SECTION("one statement, with what may follow it") {
    CHECK(statements("SELECT 1") == 1);
    CHECK(statements("SELECT 1;") == 1);
    CHECK(statements("SELECT 1;;  ;") == 1);
    CHECK(statements("SELECT 1; -- done") == 1);
    CHECK(statements("SELECT 1; /* done; really */ ") == 1);
    CHECK(statements("-- lead\nSELECT 1 -- trail ; not a separator\n;") == 1);
    CHECK(statements("SELECT 1 /* ; */ + 2") == 1);
  }
  SECTION("';' inside strings and quoted identifiers") {
    CHECK(statements("SELECT 'a;b'") == 1);
    CHECK(statements("SELECT 'it''s; fine'") == 1);
    CHECK(statements("SELECT '';") == 1);
    CHECK(statements("SELECT \"odd;name\" FROM t") == 1);
    CHECK(statements("SELECT \"a\"\";b\" FROM t") == 1);
    CHECK(statements("SELECT `x;y` FROM t") == 1);
    CHECK(statements("SELECT `x``;y` FROM t") == 1);
    CHECK(statements("SELECT [x;y] FROM t") == 1);
    CHECK(statements("SELECT x'3b3b'") == 1);
    CHECK(statements("SELECT 'unterminated; SELECT 2") == 1);
    CHECK(statements("SELECT -1 - -2; ") == 1);
    CHECK(statements("SELECT 4/2; ") == 1);
  }
  SECTION("several statements") {
    CHECK(statements("SELECT 1; SELECT 2") == 2);
    CHECK(statements("SELECT 1;SELECT 2;") == 2);
    CHECK(statements("SELECT 'a;'; SELECT \"b;\"; SELECT [c;]") == 3);
    CHECK(statements("SELECT 1 -- c\n; INSERT INTO t VALUES (1)") == 2);
    CHECK(statements("SELECT 1 /* c */; x") == 2);
  }
  SECTION("where the first statement ends") {
    CHECK(scan_sql("SELECT 1; SELECT 2").first_end == 9);
    CHECK(scan_sql("SELECT 'a;b'").first_end == 12);
    CHECK(scan_sql(";; SELECT 1 ; x").first_end == 13);
    CHECK(scan_sql("").first_end == 0);
  }
  SECTION("a trigger's body holds statements of its own") {
    CHECK(statements("CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
                     "INSERT INTO log VALUES (new.id); UPDATE c SET n = n + 1; END") == 1);
    CHECK(statements("create temp trigger tr after insert on t begin "
                     "insert into log values (1); end; SELECT 1") == 2);
    CHECK(statements("CREATE TEMPORARY TRIGGER IF NOT EXISTS tr BEFORE DELETE ON t BEGIN "
                     "SELECT 1; END;") == 1);
    CHECK(statements("EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;") == 1);
    CHECK(statements("CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
                     "UPDATE c SET n = CASE WHEN n > 9 THEN 0 ELSE n + 1 END; "
                     "SELECT CASE 1 WHEN 1 THEN CASE 2 WHEN 2 THEN 3 END END; END; SELECT 1") == 2);
    // Not a trigger: a column or a string named so does not start one.
    CHECK(statements("CREATE TABLE \"trigger\" (x); SELECT 1") == 2);
    CHECK(statements("SELECT 'CREATE TRIGGER'; SELECT 2") == 2);
  }
}

TEST_CASE("scan_sql finds a RETURNING clause outside strings, identifiers and comments",
          "[sql_text]") {
  CHECK(returning("INSERT INTO t (v) VALUES (1) RETURNING id"));
  CHECK(returning("insert into t (v) values (1) returning *;"));
  CHECK(returning("UPDATE t SET v = 2 ReTuRnInG id, v"));
  CHECK(returning("DELETE FROM t WHERE id = 1\nRETURNING\tid"));
  CHECK(returning("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING rowid"));
  CHECK(returning("CREATE TABLE a (x); INSERT INTO a VALUES (1) RETURNING x"));
  CHECK_FALSE(returning("INSERT INTO t (v) VALUES ('RETURNING id')"));
  CHECK_FALSE(returning("INSERT INTO t (\"returning\") VALUES (1)"));
  CHECK_FALSE(returning("INSERT INTO t ([returning]) VALUES (1)"));
  CHECK_FALSE(returning("INSERT INTO t (`returning`) VALUES (1)"));
  CHECK_FALSE(returning("INSERT INTO t (v) VALUES (1) -- RETURNING id"));
  CHECK_FALSE(returning("INSERT INTO t (v) VALUES (1) /* RETURNING id */"));
  CHECK_FALSE(returning("SELECT returning_count FROM t"));
  CHECK_FALSE(returning("SELECT x_returning FROM t"));
  CHECK_FALSE(returning(""));
}

TEST_CASE("scan_sql reads what a text does to the transaction", "[sql_text]") {
  using dqlite::detail::tx_effect;
  auto tx = [](std::string_view sql) { return dqlite::detail::scan_sql(sql).tx; };
  CHECK(tx("SELECT 1") == tx_effect::none);
  CHECK(tx("INSERT INTO t VALUES ('BEGIN')") == tx_effect::none);
  CHECK(tx("/* BEGIN */ SELECT 1 -- COMMIT") == tx_effect::none);
  CHECK(tx("SELECT begin FROM t") == tx_effect::none);
  CHECK(tx("BEGIN") == tx_effect::opens);
  CHECK(tx("  begin immediate transaction;") == tx_effect::opens);
  CHECK(tx("SAVEPOINT a") == tx_effect::opens);
  CHECK(tx("RELEASE a") == tx_effect::opens);  // may leave one open: counted as open
  CHECK(tx("COMMIT") == tx_effect::closes);
  CHECK(tx("END TRANSACTION") == tx_effect::closes);
  CHECK(tx("ROLLBACK") == tx_effect::closes);
  CHECK(tx("rollback transaction;") == tx_effect::closes);
  CHECK(tx("ROLLBACK TO a") == tx_effect::none);
  CHECK(tx("ROLLBACK TRANSACTION TO SAVEPOINT a") == tx_effect::none);
  // Statement by statement, the last one that says something wins.
  CHECK(tx("BEGIN; INSERT INTO t VALUES (1); COMMIT") == tx_effect::closes);
  CHECK(tx("COMMIT; BEGIN; INSERT INTO t VALUES (1)") == tx_effect::opens);
  // A trigger's body is one statement: its BEGIN ... END open and close nothing.
  CHECK(tx("CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = 1; END") ==
        tx_effect::none);
}

TEST_CASE("a FAILURE with code 0 is an error", "[errors]") {
  auto ec = dqlite::make_server_error(0);
  CHECK(ec);
  CHECK(ec == dqlite::errc::server_failure);
  CHECK_FALSE(dqlite::is_connection_error(ec));
  CHECK(dqlite::make_server_error(1) == dqlite::error_code(1, dqlite::server_category()));
  CHECK(dqlite::make_server_error(10250).value() == 10250);
}

namespace {

std::string describe(std::uint64_t code, std::string_view msg, dqlite::wire::request type,
                     std::uint8_t schema = 0) {
  dqlite::wire::buffer b;
  auto m = dqlite::wire::begin_frame(b, type, schema);
  dqlite::wire::put_u64(b, 0);
  dqlite::wire::end_frame(b, m);
  return dqlite::detail::describe_failure(code, msg, b);
}

}  // namespace

TEST_CASE("failures that say nothing are explained from what was sent", "[errors]") {
  using dqlite::wire::request;
  SECTION("a server message is kept as it is") {
    CHECK(describe(1, "no such table: t", request::query_sql) == "no such table: t");
    CHECK(describe(19, "UNIQUE constraint failed: t.id", request::exec_sql) ==
          "UNIQUE constraint failed: t.id");
    CHECK(describe(1, "nonempty statement tail", request::query_sql) ==
          "nonempty statement tail");
  }
  SECTION("a query of a statement that returns no rows (libdqlite 1.11.1)") {
    for (auto type : {request::query_sql, request::query}) {
      auto text = describe(1, "not an error", type);
      CHECK_THAT(text, Catch::Contains("returns no rows"));
      CHECK_THAT(text, Catch::Contains("use execute") || Catch::Contains("with execute"));
      CHECK_THAT(text, Catch::Contains("nothing was applied"));
      CHECK_THAT(text, !Catch::Contains("not an error"));
    }
  }
  SECTION("DQLITE_PARSE without a message") {
    auto wide = describe(1005, "not an error", request::exec_sql, 1);
    CHECK_THAT(wide, Catch::Contains("EXEC_SQL"));
    CHECK_THAT(wide, Catch::Contains("more than 255 parameters"));
    CHECK_THAT(wide, Catch::Contains("nothing was applied"));
    auto other = describe(1005, "", request::describe);
    CHECK_THAT(other, Catch::Contains("could not read the DESCRIBE request"));
    CHECK_THAT(other, Catch::Contains("no message"));
  }
  SECTION("code 0, empty messages") {
    CHECK_THAT(describe(0, "empty statement", request::prepare),
               Catch::Contains("holds no statement"));
    auto zero = describe(0, "", request::exec);
    CHECK_THAT(zero, Catch::Contains("without an error code"));
    CHECK_THAT(zero, Catch::Contains("to EXEC"));
    auto busy = describe(5, "", request::exec_sql);
    CHECK_THAT(busy, Catch::Contains("code 5"));
    CHECK_THAT(busy, Catch::Contains("SQLITE_BUSY"));
    // A cursor's later frames answer an earlier request: nothing was sent now.
    auto later = dqlite::detail::describe_failure(1, "not an error", {});
    CHECK_THAT(later, Catch::Contains("code 1"));
    CHECK_FALSE(later.empty());
  }
}
