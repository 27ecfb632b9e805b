// The files an embedded node (dqlite::app) keeps in its data directory beside libdqlite's
// own: its identity (id and address) and the last known members of the cluster.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/node_info.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace dqlite::detail {

/// "app-info": the node's identity, written once on its first start.
inline constexpr const char* app_info_file = "app-info";
/// "app-cluster": the members as last seen (one "id address role" line each).
inline constexpr const char* app_cluster_file = "app-cluster";

struct app_identity {
  std::uint64_t id = 0;
  std::string address;
};

/// Writes `text` to `path` through a temporary file and a rename, so that a crash leaves
/// the old or the new content, never a mix. Throws std::runtime_error naming the file.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp + " to " + path.string() + ": " + ec.message());
}

/// The identity stored in `dir`, or none when the file does not exist. Throws
/// std::runtime_error for a file that cannot be read or parsed.
inline std::optional<app_identity> read_app_identity(const std::filesystem::path& dir) {
  const auto path = dir / app_info_file;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  app_identity id;
  std::string line;
  bool have_id = false, have_address = false;
  while (std::getline(in, line)) {
    if (line.rfind("id: ", 0) == 0) {
      try {
        std::size_t used = 0;
        id.id = std::stoull(line.substr(4), &used);
        have_id = used == line.size() - 4 && id.id != 0;
      } catch (const std::exception&) {
        have_id = false;
      }
    } else if (line.rfind("address: ", 0) == 0) {
      id.address = line.substr(9);
      host_port hp;
      have_address = !parse_address(id.address, hp);
    }
  }
  if (!have_id || !have_address)
    throw std::runtime_error(path.string() + " is damaged: it must hold 'id: N' (N > 0) and "
                             "'address: HOST:PORT' lines");
  return id;
}

inline void write_app_identity(const std::filesystem::path& dir, const app_identity& id) {
  write_file_atomically(dir / app_info_file,
                        "id: " + std::to_string(id.id) + "\naddress: " + id.address + "\n");
}

/// The members stored in `dir` (empty when there is no such file or it cannot be read:
/// it is only a hint for finding the cluster).
inline std::vector<node_info> read_app_members(const std::filesystem::path& dir) {
  std::vector<node_info> out;
  std::ifstream in(dir / app_cluster_file, std::ios::binary);
  if (!in) return out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    node_info n;
    std::string role;
    if (!(fields >> n.id >> n.address >> role)) continue;
    auto r = parse_node_role(role);
    host_port hp;
    if (!r || n.id == 0 || parse_address(n.address, hp)) continue;
    n.role = *r;
    out.push_back(std::move(n));
  }
  return out;
}

inline void write_app_members(const std::filesystem::path& dir, const std::vector<node_info>& nodes) {
  std::string text;
  for (const auto& n : nodes)
    text += std::to_string(n.id) + " " + n.address + " " + std::string(to_string(n.role)) + "\n";
  write_file_atomically(dir / app_cluster_file, text);
}

/// True when `dir` holds files libdqlite wrote (raft metadata, segments, snapshots).
inline bool has_raft_data(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("metadata", 0) == 0 || name.rfind("snapshot-", 0) == 0 ||
        name.rfind("open-", 0) == 0 || (!name.empty() && name[0] >= '0' && name[0] <= '9'))
      return true;
  }
  return false;
}

}  // namespace dqlite::detail
