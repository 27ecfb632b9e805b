// The YAML node store: go-dqlite's file format, atomic writes, bad files refused.
#include <dqlite/yaml_node_store.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

using dqlite::node_info;
using dqlite::node_role;
namespace fs = std::filesystem;

namespace {

/// A fresh directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string templ = (fs::temp_directory_path() / "dqlite-yaml-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = templ;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The message of the node_store_error that parsing `text` throws ("" if none).
std::string rejection(const std::string& text) {
  try {
    dqlite::parse_yaml_nodes(text, "/etc/app/cluster.yaml");
  } catch (const dqlite::node_store_error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("yaml store: round trip through the file", "[yaml]") {
  temp_dir dir;
  auto file = dir.path / "cluster.yaml";
  std::vector<node_info> nodes{{1, "127.0.0.1:9001", node_role::voter},
                               {2, "[::1]:9002", node_role::standby},
                               {3, "node-3.example.com:9003", node_role::spare}};
  {
    dqlite::yaml_node_store store(file);  // the file does not exist yet: empty
    CHECK(store.get().empty());
    CHECK_FALSE(fs::exists(file));
    store.set(nodes);
    CHECK(store.get() == nodes);
  }
  CHECK((fs::status(file).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  dqlite::yaml_node_store again(file);
  CHECK(again.get() == nodes);
  // No temporary file is left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  // The text is what go-dqlite writes (yaml.Marshal of []NodeInfo).
  CHECK(read_file(file) ==
        "- ID: 1\n  Address: 127.0.0.1:9001\n  Role: 0\n"
        "- ID: 2\n  Address: \"[::1]:9002\"\n  Role: 1\n"
        "- ID: 3\n  Address: node-3.example.com:9003\n  Role: 2\n");
  again.set({});
  CHECK(dqlite::yaml_node_store(file).get().empty());
}

TEST_CASE("yaml store: reads files written by go-dqlite", "[yaml]") {
  temp_dir dir;
  auto file = dir.path / "cluster.yaml";
  // As written by go-dqlite's YamlNodeStore (gopkg.in/yaml.v2), plus hand edits that
  // YAML allows: comments, flow style, quoting, a key order of its own.
  write_file(file,
             "# written by go-dqlite\n"
             "- ID: 3297041220608546238\n"
             "  Address: 10.0.0.1:9001\n"
             "  Role: 0\n"
             "- {ID: 2, Address: '10.0.0.2:9001', Role: 1}\n"
             "- Role: 2\n"
             "  Address: \"10.0.0.3:9001\"\n"
             "  ID: 3\n"
             "- ID: 4\n"
             "  Address: 10.0.0.4:9001\n");  // no Role: older go-dqlite, a voter
  dqlite::yaml_node_store store(file);
  std::vector<node_info> expected{{3297041220608546238ULL, "10.0.0.1:9001", node_role::voter},
                                  {2, "10.0.0.2:9001", node_role::standby},
                                  {3, "10.0.0.3:9001", node_role::spare},
                                  {4, "10.0.0.4:9001", node_role::voter}};
  CHECK(store.get() == expected);
  // An empty file and an empty sequence are empty stores.
  write_file(file, "");
  CHECK(dqlite::yaml_node_store(file).get().empty());
  write_file(file, "[]\n");
  CHECK(dqlite::yaml_node_store(file).get().empty());
}

TEST_CASE("yaml store: bad files are refused with the file and the problem", "[yaml]") {
  struct bad_case {
    const char* text;
    const char* problem;
  };
  const bad_case cases[] = {
      {"- ID: 1\n  Address: [a\n", "not valid YAML"},
      {"ID: 1\nAddress: a:1\n", "expected a sequence of nodes"},
      {"just text", "expected a sequence of nodes"},
      {"- 127.0.0.1:9001\n", "node #1 (line 1): expected a map"},
      {"- ID: 1\n  Address: a:1\n- [1, 2]\n", "node #2 (line 3): expected a map"},
      {"- Address: a:1\n  Role: 0\n", "node #1 (line 1): the key ID is missing"},
      {"- ID: 1\n  Role: 0\n", "the key Address is missing"},
      {"- ID: 1\n  Address: ''\n", "Address must be a non-empty string"},
      {"- ID: 1\n  Address: [a, b]\n", "Address must be a non-empty string"},
      {"- ID: one\n  Address: a:1\n", "ID must be an unsigned 64-bit integer, found 'one'"},
      {"- ID: -1\n  Address: a:1\n", "found '-1'"},
      {"- ID: 18446744073709551616\n  Address: a:1\n", "ID must be an unsigned 64-bit integer"},
      {"- ID: 1\n  Address: a:1\n  Role: 3\n", "Role must be 0 (voter), 1 (stand-by) or 2 "
                                              "(spare), found '3'"},
      {"- ID: 1\n  Address: a:1\n  Role: voter\n", "found 'voter'"},
      {"- ID: 1\n  Address: a:1\n- ID: 2\n  Address: b:1\n- ID: 1\n  Address: c:1\n",
       "node #3 (line 5): ID 1 appears more than once"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto msg = rejection(c.text);
    INFO(msg);
    CHECK(msg.rfind("/etc/app/cluster.yaml: ", 0) == 0);
    CHECK(msg.find(c.problem) != std::string::npos);
  }

  temp_dir dir;
  auto file = dir.path / "bad.yaml";
  write_file(file, "- ID: 1\n  Address: a:1\n  Role: 9\n");
  try {
    dqlite::yaml_node_store store(file);
    FAIL("a bad file was accepted");
  } catch (const dqlite::node_store_error& e) {
    CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
  }
  // A directory is not a file.
  CHECK_THROWS_AS(dqlite::yaml_node_store(dir.path), dqlite::node_store_error);
}

TEST_CASE("yaml store: what cannot be stored is refused, the old file stays", "[yaml]") {
  temp_dir dir;
  auto file = dir.path / "cluster.yaml";
  dqlite::yaml_node_store store(file);
  std::vector<node_info> good{{1, "a:1", node_role::voter}};
  store.set(good);
  const auto before = read_file(file);
  CHECK_THROWS_AS(store.set({{1, "a:1", node_role::voter}, {1, "b:1", node_role::voter}}),
                  dqlite::node_store_error);
  CHECK_THROWS_AS(store.set({{2, "", node_role::voter}}), dqlite::node_store_error);
  CHECK(read_file(file) == before);
  CHECK(store.get() == good);

  // A directory that cannot be written: the error names the file.
  if (::geteuid() != 0) {
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    try {
      store.set({{2, "b:1", node_role::voter}});
      FAIL("writing into a read-only directory succeeded");
    } catch (const dqlite::node_store_error& e) {
      CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
    }
    fs::permissions(dir.path, fs::perms::owner_all);
    CHECK(store.get() == good);
  }
  auto missing_dir = dir.path / "no" / "such" / "dir" / "cluster.yaml";
  dqlite::yaml_node_store elsewhere(missing_dir);
  CHECK_THROWS_AS(elsewhere.set(good), dqlite::node_store_error);
}

TEST_CASE("yaml store: temporary files of killed writers are removed by the next write",
          "[yaml]") {
  temp_dir dir;
  auto file = dir.path / "cluster.yaml";
  dqlite::yaml_node_store store(file);
  // What a process killed during a rewrite leaves: a temporary file nobody holds.
  auto stale = dir.path / ".cluster.yaml.tmp-AbC123";
  write_file(stale, "- ID: 1\n");
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(5);
  fs::last_write_time(stale, old);
  // One being written right now (locked by its writer), one just created, and files that
  // are not temporaries of this store: all kept.
  auto live = dir.path / ".cluster.yaml.tmp-Live01";
  write_file(live, "");
  fs::last_write_time(live, old);
  int live_fd = ::open(live.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(live_fd >= 0);
  REQUIRE(::flock(live_fd, LOCK_EX) == 0);
  auto fresh = dir.path / ".cluster.yaml.tmp-New001";
  write_file(fresh, "");
  auto other = dir.path / ".other.yaml.tmp-AbC123";
  write_file(other, "");
  fs::last_write_time(other, old);
  auto unrelated = dir.path / ".cluster.yaml.tmp-toolongname";
  write_file(unrelated, "");
  fs::last_write_time(unrelated, old);

  store.set({{1, "a:1", node_role::voter}});
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(live));
  CHECK(fs::exists(fresh));
  CHECK(fs::exists(other));
  CHECK(fs::exists(unrelated));
  ::close(live_fd);  // its writer is gone now
  store.set({{1, "a:1", node_role::voter}, {2, "b:1", node_role::standby}});
  CHECK_FALSE(fs::exists(live));
  CHECK(fs::exists(fresh));  // too recent to be taken for stale
  // The store's own writes leave nothing behind.
  std::size_t temporaries = 0;
  for (const auto& e : fs::directory_iterator(dir.path))
    if (e.path().filename().string().rfind(".cluster.yaml.tmp-", 0) == 0) ++temporaries;
  CHECK(temporaries == 2);  // fresh and unrelated
  CHECK(dqlite::yaml_node_store(file).get().size() == 2);
}
