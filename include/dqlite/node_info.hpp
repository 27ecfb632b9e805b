// What the cluster administration requests return: nodes, roles, metadata, dump files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dqlite {

/// The role of a node in the cluster (the values are those of the wire protocol and of
/// go-dqlite's node stores).
enum class node_role : std::uint8_t {
  voter = 0,    ///< takes part in elections and in the write quorum
  standby = 1,  ///< replicates the log without voting; promoted when a voter fails
  spare = 2,    ///< a member that neither votes nor replicates
};

/// "voter", "standby" or "spare".
inline constexpr std::string_view to_string(node_role r) noexcept {
  switch (r) {
    case node_role::voter: return "voter";
    case node_role::standby: return "standby";
    case node_role::spare: return "spare";
  }
  return "unknown";
}

/// The role named by text: "voter", "standby" (also "stand-by", go-dqlite's spelling),
/// "spare", or the protocol's number "0", "1", "2". Empty when the text names no role.
inline constexpr std::optional<node_role> parse_node_role(std::string_view text) noexcept {
  if (text == "voter" || text == "0") return node_role::voter;
  if (text == "standby" || text == "stand-by" || text == "1") return node_role::standby;
  if (text == "spare" || text == "2") return node_role::spare;
  return std::nullopt;
}

/// The role with the protocol's number, or empty when the number is not a role.
inline constexpr std::optional<node_role> node_role_from_value(std::uint64_t v) noexcept {
  if (v > 2) return std::nullopt;
  return static_cast<node_role>(v);
}

/// One node of a cluster: its raft id, the address it advertises ("host:port", exactly as
/// the node was configured: leader detection compares addresses as plain strings) and its
/// role. LEADER answers with id 0 and an empty address when no leader is known.
struct node_info {
  std::uint64_t id = 0;
  std::string address;
  node_role role = node_role::voter;
  friend bool operator==(const node_info&, const node_info&) = default;
};

/// What DESCRIBE reports about a node.
struct node_metadata {
  std::uint64_t failure_domain = 0;  ///< set by the node's operator (dqlite_node_set_failure_domain)
  std::uint64_t weight = 0;          ///< set by WEIGHT; raft prefers low weights for roles
  friend bool operator==(const node_metadata&, const node_metadata&) = default;
};

/// One file of a DUMP: the database file and its write-ahead log ("name-wal").
struct dump_file {
  std::string name;
  std::vector<std::byte> data;
  friend bool operator==(const dump_file&, const dump_file&) = default;
};

}  // namespace dqlite
