// dqlite-client for C++: single-header distribution.
//
// GENERATED FILE - DO NOT EDIT BY HAND.
// It is generated from the headers under include/ by tools/amalgamate.py.
// Edit those headers instead, then run: python3 tools/amalgamate.py
//
// Copyright (c) 2026 The dqlite-client for C++ authors
// SPDX-License-Identifier: MIT (see LICENSE.md)
//
// Add-on: <dqlite/yaml_node_store.hpp>, which needs yaml-cpp (link -lyaml-cpp).

#ifndef DQLITE_SINGLE_INCLUDE_YAML_NODE_STORE_HPP
#define DQLITE_SINGLE_INCLUDE_YAML_NODE_STORE_HPP

#include "client.hpp"

// ---- begin dqlite/yaml_node_store.hpp ----
// A node store in a YAML file, in the format of go-dqlite's YamlNodeStore.
//
// Needs yaml-cpp (link the CMake target dqlite::yaml, or yaml-cpp yourself). Not included
// by <dqlite/client.hpp>.
//
// The file is a YAML sequence of maps, one per node:
//
//   - ID: 1
//     Address: 127.0.0.1:9001
//     Role: 0
//
// ID is the node's raft id (0: not known), Address the address the node advertises and
// Role 0 (voter), 1 (stand-by) or 2 (spare). go-dqlite reads and writes the same files.


#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dqlite {

namespace detail {

inline std::string yaml_where(const YAML::Node& n, std::size_t index) {
  std::string s = "node #" + std::to_string(index + 1);
  auto mark = n.Mark();
  if (mark.line >= 0) s += " (line " + std::to_string(mark.line + 1) + ")";
  return s;
}

inline const char* yaml_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Undefined: break;
  }
  return "an undefined node";
}

inline bool parse_yaml_u64(const YAML::Node& n, std::uint64_t& out) {
  if (!n.IsScalar()) return false;
  const std::string& s = n.Scalar();
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace detail

/// Parses the text of a node store file. `source` names the file in messages. Throws
/// node_store_error naming the source and the problem: not YAML, not a sequence of maps,
/// a missing or malformed ID or Address, a Role other than 0, 1 or 2, an ID given twice.
/// An empty document is an empty list. A missing Role means voter (files of go-dqlite
/// versions without roles); keys other than ID, Address and Role are ignored.
inline std::vector<node_info> parse_yaml_nodes(std::string_view text, std::string_view source) {
  const std::string src(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw node_store_error(src + ": not valid YAML: " + e.what());
  }
  std::vector<node_info> nodes;
  if (root.IsNull()) return nodes;
  if (!root.IsSequence())
    throw node_store_error(src + ": expected a sequence of nodes (maps with ID, Address and "
                           "Role), found " + detail::yaml_kind(root));
  std::set<std::uint64_t> ids;
  nodes.reserve(root.size());
  for (std::size_t i = 0; i < root.size(); ++i) {
    const YAML::Node item = root[i];
    const std::string where = src + ": " + detail::yaml_where(item, i);
    if (!item.IsMap())
      throw node_store_error(where + ": expected a map with ID, Address and Role, found " +
                             detail::yaml_kind(item));
    node_info info;
    const YAML::Node id = item["ID"];
    if (!id) throw node_store_error(where + ": the key ID is missing");
    if (!detail::parse_yaml_u64(id, info.id))
      throw node_store_error(where + ": ID must be an unsigned 64-bit integer, found " +
                             (id.IsScalar() ? "'" + id.Scalar() + "'" : detail::yaml_kind(id)));
    const YAML::Node address = item["Address"];
    if (!address) throw node_store_error(where + ": the key Address is missing");
    if (!address.IsScalar() || address.Scalar().empty())
      throw node_store_error(where + ": Address must be a non-empty string");
    info.address = address.Scalar();
    if (const YAML::Node role = item["Role"]) {
      std::uint64_t v = 0;
      std::optional<node_role> r;
      if (detail::parse_yaml_u64(role, v)) r = node_role_from_value(v);
      if (!r)
        throw node_store_error(
            where + ": Role must be 0 (voter), 1 (stand-by) or 2 (spare), found " +
            (role.IsScalar() ? "'" + role.Scalar() + "'" : detail::yaml_kind(role)));
      info.role = *r;
    }
    if (info.id != 0 && !ids.insert(info.id).second)
      throw node_store_error(where + ": ID " + std::to_string(info.id) +
                             " appears more than once");
    nodes.push_back(std::move(info));
  }
  return nodes;
}

/// The text of a node store file for `nodes` (what go-dqlite writes).
inline std::string format_yaml_nodes(const std::vector<node_info>& nodes) {
  YAML::Emitter out;
  out << YAML::BeginSeq;
  for (const auto& n : nodes) {
    out << YAML::BeginMap;
    out << YAML::Key << "ID" << YAML::Value << n.id;
    out << YAML::Key << "Address" << YAML::Value << n.address;
    out << YAML::Key << "Role" << YAML::Value << static_cast<unsigned>(n.role);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  std::string text = out.c_str();
  text += '\n';
  return text;
}

/// Reads a node store file; a file that does not exist is an empty list. Throws
/// node_store_error (see parse_yaml_nodes).
inline std::vector<node_info> read_yaml_nodes(const std::filesystem::path& path) {
  std::error_code dir_ec;
  if (std::filesystem::is_directory(path, dir_ec))
    throw node_store_error(path.string() + ": is a directory, not a node store file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) return {};
    throw node_store_error(path.string() + ": cannot open: " + std::strerror(err));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw node_store_error(path.string() + ": cannot read");
  return parse_yaml_nodes(text.str(), path.string());
}

/// How long a temporary file of write_yaml_nodes must have been left alone before another
/// write may remove it (a write takes milliseconds).
inline constexpr std::chrono::seconds yaml_stale_temporary_age{2};

/// Removes temporary files that earlier writes of `path` left behind when their process
/// was killed mid-write (".<name>.tmp-XXXXXX" beside it). A temporary file is stale when no
/// process holds its lock (write_yaml_nodes locks its own for the whole write, and a killed
/// process's lock is gone) and it was last modified yaml_stale_temporary_age ago or more.
/// Best effort: what cannot be examined or removed is left.
inline void remove_stale_yaml_temporaries(const std::filesystem::path& path) {
  const std::filesystem::path dir =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::string prefix = "." + path.filename().string() + ".tmp-";
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    std::error_code fec;
    if (!it->is_regular_file(fec) || fec) continue;
    const auto modified = std::filesystem::last_write_time(it->path(), fec);
    if (fec || now - modified < yaml_stale_temporary_age) continue;
    int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(it->path().c_str());
    ::close(fd);
  }
}

/// Writes a node store file atomically: a temporary file in the same directory is
/// written, flushed to disk and renamed over `path` (mode 0600, as go-dqlite). Temporary
/// files left by writes of killed processes are removed first (remove_stale_yaml_temporaries).
/// Throws node_store_error naming the file and the failed step.
inline void write_yaml_nodes(const std::filesystem::path& path, const std::vector<node_info>& nodes) {
  // Refuse what the file could not be read back from.
  std::set<std::uint64_t> ids;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto where = path.string() + ": cannot store node #" + std::to_string(i + 1);
    if (nodes[i].address.empty()) throw node_store_error(where + ": its address is empty");
    if (!node_role_from_value(static_cast<std::uint64_t>(nodes[i].role)))
      throw node_store_error(where + ": its role is not voter, standby or spare");
    if (nodes[i].id != 0 && !ids.insert(nodes[i].id).second)
      throw node_store_error(where + ": ID " + std::to_string(nodes[i].id) +
                             " appears more than once");
  }
  const std::string text = format_yaml_nodes(nodes);
  const std::filesystem::path dir =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::string tmp = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  auto fail = [&](const std::string& step, int err) {
    throw node_store_error(path.string() + ": cannot " + step + ": " + std::strerror(err));
  };
  remove_stale_yaml_temporaries(path);
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) fail("create a temporary file in " + dir.string(), errno);
  auto abandon = [&](const std::string& step) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(step, err);
  };
  // Held until the file is renamed or removed: tells other writers it is not stale.
  if (::flock(fd, LOCK_EX) != 0) abandon("lock " + tmp);
  if (::fchmod(fd, 0600) != 0) abandon("set the mode of " + tmp);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon("write " + tmp);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) abandon("flush " + tmp);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("close " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("rename " + tmp + " to it", err);
  }
  // Make the rename itself durable.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

/// A node store kept in a YAML file (go-dqlite's YamlNodeStore format, see the top of
/// this file). The file is read once, by the constructor (a missing file is an empty
/// store); set() rewrites it atomically. Thread-safe.
class yaml_node_store final : public node_store {
 public:
  /// Reads `path`. Throws node_store_error for a file that cannot be read or parsed.
  explicit yaml_node_store(std::filesystem::path path)
      : path_(std::move(path)), nodes_(read_yaml_nodes(path_)) {}

  const std::filesystem::path& path() const noexcept { return path_; }

  std::vector<node_info> get() override {
    std::lock_guard lock(mutex_);
    return nodes_;
  }

  /// Writes the nodes to the file, then keeps them. Throws node_store_error when the file
  /// cannot be written (the store keeps its previous nodes then).
  void set(std::vector<node_info> nodes) override {
    std::lock_guard lock(mutex_);
    write_yaml_nodes(path_, nodes);
    nodes_ = std::move(nodes);
  }

 private:
  std::mutex mutex_;
  std::filesystem::path path_;
  std::vector<node_info> nodes_;
};

}  // namespace dqlite
// ---- end dqlite/yaml_node_store.hpp ----

#endif // DQLITE_SINGLE_INCLUDE_YAML_NODE_STORE_HPP
