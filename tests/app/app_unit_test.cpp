// dqlite::app without a cluster: the roles policy, the files in the data directory, options
// that cannot work, and a failed first start that leaves the directory new.
#include <dqlite/app.hpp>

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace {

using dqlite::member_health;
using dqlite::node_role;
using dqlite::role_change;

member_health m(std::uint64_t id, node_role r, bool online, std::uint64_t domain = 0,
                std::uint64_t weight = 0) {
  member_health h;
  h.node = dqlite::node_info{id, "127.0.0.1:" + std::to_string(9000 + id), r};
  h.online = online;
  h.failure_domain = domain;
  h.weight = weight;
  return h;
}

struct temp_dir {
  temp_dir() {
    std::string templ = std::filesystem::temp_directory_path().string() + "/dqlite-app-unit-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    path = buf.data();
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

}  // namespace

TEST_CASE("roles: nothing to do when the targets are met", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::voter, true),
                               m(3, node_role::voter, true)};
  CHECK_FALSE(dqlite::next_role_change(c, 1, 3, 3));
  CHECK_FALSE(dqlite::next_role_change(c, 1, 3, 0));
}

TEST_CASE("roles: an online spare becomes a voter while voters are missing", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::spare, true)};
  auto change = dqlite::next_role_change(c, 1, 3, 3);
  REQUIRE(change);
  CHECK(*change == role_change{2, node_role::voter});
}

TEST_CASE("roles: a dead voter is demoted first, then a spare promoted", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::voter, false),
                               m(3, node_role::voter, true), m(4, node_role::spare, true)};
  auto first = dqlite::next_role_change(c, 1, 3, 0);
  REQUIRE(first);
  CHECK(*first == role_change{2, node_role::spare});
  c[1].node.role = node_role::spare;
  auto second = dqlite::next_role_change(c, 1, 3, 0);
  REQUIRE(second);
  CHECK(*second == role_change{4, node_role::voter});
  c[3].node.role = node_role::voter;
  CHECK_FALSE(dqlite::next_role_change(c, 1, 3, 0));
}

TEST_CASE("roles: a dead voter stays when nobody can replace it", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::voter, false),
                               m(3, node_role::voter, true)};
  CHECK_FALSE(dqlite::next_role_change(c, 1, 3, 3));
}

TEST_CASE("roles: stand-bys are preferred to spares, new failure domains first", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true, 1), m(2, node_role::voter, true, 2),
                               m(3, node_role::spare, true, 1), m(4, node_role::spare, true, 3),
                               m(5, node_role::standby, true, 1)};
  auto change = dqlite::next_role_change(c, 1, 3, 1);
  REQUIRE(change);
  CHECK(*change == role_change{5, node_role::voter});
  c[4].online = false;
  change = dqlite::next_role_change(c, 1, 3, 1);
  REQUIRE(change);
  CHECK(*change == role_change{4, node_role::voter});  // domain 3 is new
}

TEST_CASE("roles: lower weight wins between equal domains", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::spare, true, 0, 9),
                               m(3, node_role::spare, true, 0, 1)};
  auto change = dqlite::next_role_change(c, 1, 3, 0);
  REQUIRE(change);
  CHECK(*change == role_change{3, node_role::voter});
}

TEST_CASE("roles: extra voters are demoted, never the leader", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::voter, true),
                               m(3, node_role::voter, true), m(4, node_role::voter, true)};
  auto change = dqlite::next_role_change(c, 4, 3, 1);
  REQUIRE(change);
  CHECK(change->id != 4);
  CHECK(change->role == node_role::standby);
  change = dqlite::next_role_change(c, 4, 3, 0);
  REQUIRE(change);
  CHECK(change->role == node_role::spare);
}

TEST_CASE("roles: spares fill the stand-by target, dead stand-bys make room", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(2, node_role::standby, false),
                               m(3, node_role::spare, true)};
  auto change = dqlite::next_role_change(c, 1, 1, 1);
  REQUIRE(change);
  CHECK(*change == role_change{2, node_role::spare});
  c[1].node.role = node_role::spare;
  change = dqlite::next_role_change(c, 1, 1, 1);
  REQUIRE(change);
  CHECK(*change == role_change{3, node_role::standby});
}

TEST_CASE("roles: a new member asks for voter, then stand-by, then nothing", "[app][roles]") {
  std::vector<member_health> c{m(1, node_role::voter, true), m(9, node_role::spare, true)};
  CHECK(dqlite::role_for_new_member(c, 9, 3, 3) == node_role::voter);
  c.push_back(m(2, node_role::voter, true));
  c.push_back(m(3, node_role::voter, true));
  CHECK(dqlite::role_for_new_member(c, 9, 3, 3) == node_role::standby);
  CHECK_FALSE(dqlite::role_for_new_member(c, 9, 3, 0));
  c[2].online = false;  // a dead voter does not count
  CHECK(dqlite::role_for_new_member(c, 9, 3, 0) == node_role::voter);
}

TEST_CASE("app files: identity and members round trip, damage is reported", "[app][files]") {
  temp_dir d;
  CHECK_FALSE(dqlite::detail::read_app_identity(d.path));
  dqlite::detail::write_app_identity(d.path, {42, "127.0.0.1:9001"});
  auto id = dqlite::detail::read_app_identity(d.path);
  REQUIRE(id);
  CHECK(id->id == 42);
  CHECK(id->address == "127.0.0.1:9001");
  std::vector<dqlite::node_info> nodes{{1, "127.0.0.1:9001", node_role::voter},
                                       {7, "[::1]:9002", node_role::standby}};
  dqlite::detail::write_app_members(d.path, nodes);
  CHECK(dqlite::detail::read_app_members(d.path) == nodes);
  dqlite::detail::write_file_atomically(d.path / dqlite::detail::app_info_file, "id: x\n");
  CHECK_THROWS_WITH(dqlite::detail::read_app_identity(d.path), Catch::Contains("damaged"));
}

TEST_CASE("app options: bad values are refused at construction", "[app][options]") {
  boost::asio::io_context io;
  temp_dir d;
  auto code = [&](dqlite::app_options o) {
    try {
      dqlite::app a(io.get_executor(), d.path, std::move(o));
    } catch (const dqlite::error& e) {
      return e.code();
    }
    return dqlite::error_code{};
  };
  CHECK(code({.address = "no-port"}) == dqlite::errc::invalid_address);
  CHECK(code({.address = "127.0.0.1:9001", .cluster = {"127.0.0.1"}}) == dqlite::errc::invalid_address);
  CHECK(code({.address = "127.0.0.1:9001", .voters = 0}) == dqlite::errc::invalid_argument);
  CHECK(code({.address = "127.0.0.1:9001", .network_latency = std::chrono::hours(2)}) ==
        dqlite::errc::invalid_argument);
  CHECK_FALSE(code({.address = "127.0.0.1:9001"}));
}

namespace {
dqlite::error_code start_once(boost::asio::io_context& io, dqlite::app& a, std::string& text) {
  dqlite::error_code got = dqlite::make_error_code(dqlite::errc::timeout);
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        try {
          co_await a.async_start();
          got = {};
        } catch (const dqlite::error& e) {
          got = e.code();
          text = e.what();
        }
      },
      boost::asio::detached);
  io.run();
  io.restart();
  return got;
}
}  // namespace

TEST_CASE("app: a first start without an address fails and leaves the directory new", "[app][start]") {
  boost::asio::io_context io;
  temp_dir d;
  dqlite::app a(io.get_executor(), d.path, {});
  std::string text;
  CHECK(start_once(io, a, text) == dqlite::errc::invalid_argument);
  CHECK_THAT(text, Catch::Contains("address is required"));
  CHECK_FALSE(std::filesystem::exists(d.path / dqlite::detail::app_info_file));
}

TEST_CASE("app: a data directory of another node is refused", "[app][start]") {
  boost::asio::io_context io;
  temp_dir d;
  dqlite::detail::write_app_identity(d.path, {5, "127.0.0.1:9005"});
  dqlite::app a(io.get_executor(), d.path, {.address = "127.0.0.1:9006"});
  std::string text;
  CHECK(start_once(io, a, text) == dqlite::errc::invalid_argument);
  CHECK_THAT(text, Catch::Contains("belongs to node 5") && Catch::Contains("127.0.0.1:9005"));
}

TEST_CASE("app: an unreachable join list fails the first start clearly", "[app][start]") {
  boost::asio::io_context io;
  temp_dir d;
  std::string port;
  {
    boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = std::to_string(probe.local_endpoint().port());
  }
  std::string own;
  {
    boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    own = "127.0.0.1:" + std::to_string(probe.local_endpoint().port());
  }
  dqlite::app a(io.get_executor(), d.path,
                {.address = own, .cluster = {"127.0.0.1:" + port},
                 .join_timeout = std::chrono::milliseconds(1500)});
  std::string text;
  CHECK(start_once(io, a, text) == dqlite::errc::no_leader);
  CHECK_THAT(text, Catch::Contains("cannot join the cluster through 127.0.0.1:" + port));
  CHECK_FALSE(std::filesystem::exists(d.path / dqlite::detail::app_info_file));
  CHECK_FALSE(dqlite::detail::has_raft_data(d.path));
}
