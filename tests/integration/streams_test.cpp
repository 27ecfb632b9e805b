// Other streams than plain TCP: a unix socket to a node inside this process, and TLS
// (stunnel in front of a real node) with certificate verification on.
#include <dqlite/client.hpp>
#include <dqlite/tls.hpp>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include "support/inproc_node.hpp"
#include "support/run.hpp"
#include "support/test_node.hpp"
#include "support/tls_front.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using dqlite_test::run;

namespace {
struct pair_row {
  std::int64_t n;
  std::string s;
};
}  // namespace

TEST_CASE("a unix socket connection to a node in this process", "[streams]") {
  // The libdqlite linked into this process is the server under test too (CTest points
  // LD_LIBRARY_PATH at it for the servers of the matrix).
  CHECK(dqlite_version_number() == dqlite_test::server_version());
  dqlite_test::inproc_node node("dqlite-client-test-" + std::to_string(::getpid()));
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await dqlite::async_connect_unix(ex, node.address(), {.database = "unix"});
    co_await conn.async_execute("CREATE TABLE t (n INTEGER, s TEXT)");
    co_await conn.async_execute("INSERT INTO t VALUES (?, ?)", 1, "one");
    auto rows = co_await conn.async_fetch<pair_row>("SELECT n, s FROM t");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].s == "one");
    auto stmt = co_await conn.async_prepare("SELECT count(*) FROM t WHERE n = ?");
    auto count = co_await stmt.async_fetchval<std::int64_t>(1);
    CHECK(count == 1);

    // Nothing listens on another name: a clear connect error.
    auto [ec, none] = co_await dqlite::async_connect_unix(ex, "@no-such-dqlite-node", {},
                                                          asio::as_tuple(asio::use_awaitable));
    CHECK(ec);
    CHECK_FALSE(none.is_open());
    CHECK_THAT(none.diagnostics().message(), Catch::Contains("@no-such-dqlite-node"));
  });
}

TEST_CASE("TLS through stunnel with certificate verification", "[streams][tls]") {
  static dqlite_test::node_process node(1);
  dqlite_test::tls_front front(node.address());
  const std::string port = std::to_string(front.port());
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(front.ca_file());
    auto conn = co_await dqlite::async_connect_tls(ex, ctx, "localhost:" + port, {.database = "tls"});
    co_await conn.async_execute("CREATE TABLE t (n INTEGER, s TEXT)");
    co_await conn.async_execute("INSERT INTO t VALUES (?, ?)", 2, "two");
    auto rows = co_await conn.async_fetch<pair_row>("SELECT n, s FROM t");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].n == 2);
    // A cursor over TLS, closed early, leaves the connection usable.
    auto cur = co_await conn.async_cursor(
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 100000) "
        "SELECT x FROM s");
    auto batch = co_await cur.async_next();
    CHECK(batch.size() > 0);
    co_await cur.async_close();
    auto n = co_await conn.async_fetchval<std::int64_t>("SELECT count(*) FROM t");
    CHECK(n == 1);

    // The certificate names localhost, not 127.0.0.1: refused.
    auto [ec1, c1] = co_await dqlite::async_connect_tls(ex, ctx, "127.0.0.1:" + port, {},
                                                        asio::as_tuple(asio::use_awaitable));
    CHECK(ec1);
    CHECK_THAT(c1.diagnostics().message(), Catch::Contains("TLS handshake"));
    // Which check failed: the name, not the issuer.
    CHECK_THAT(c1.diagnostics().message(),
               Catch::Contains("the server's certificate does not name the host 127.0.0.1"));
    CHECK_THAT(c1.diagnostics().message(), !Catch::Contains("trusted CA"));
    CHECK_THAT(dqlite::tls_verify_failure(c1.stream(), "127.0.0.1"),
               Catch::Contains("does not name the host"));

    // A CA that did not issue the certificate: refused.
    ssl::context other(ssl::context::tls_client);
    other.load_verify_file(front.other_ca_file());
    auto [ec2, c2] = co_await dqlite::async_connect_tls(ex, other, "localhost:" + port, {},
                                                        asio::as_tuple(asio::use_awaitable));
    CHECK(ec2);
    CHECK_THAT(c2.diagnostics().message(), Catch::Contains("certificate verify failed"));
    // Which check failed: the issuer, not the name.
    CHECK_THAT(c2.diagnostics().message(),
               Catch::Contains("the server's certificate was not issued by a trusted CA"));
    CHECK_THAT(c2.diagnostics().message(), !Catch::Contains("does not name the host"));
    // Both wrong: the issuer is checked first.
    auto [ec4, c4] = co_await dqlite::async_connect_tls(ex, other, "127.0.0.1:" + port, {},
                                                        asio::as_tuple(asio::use_awaitable));
    CHECK(ec4);
    CHECK_THAT(c4.diagnostics().message(), Catch::Contains("not issued by a trusted CA"));

    // Verification turned off explicitly: accepted.
    ssl::context lax(ssl::context::tls_client);
    dqlite::tls_no_verify(lax);
    auto c3 = co_await dqlite::async_connect_tls(ex, lax, "127.0.0.1:" + port, {.database = "tls"});
    auto one = co_await c3.async_fetchval<std::int64_t>("SELECT 1");
    CHECK(one == 1);
  });
}
