// Response processors of the cluster administration requests (see exchange.hpp for the
// Proc interface).
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/sansio/session.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/wire/protocol.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dqlite::detail {

/// Text for a message: control characters and bytes >= 0x7f shown as \xNN.
inline std::string printable(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u >= 0x7f) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

/// Node ids start at 1.
template <class Impl>
error_code check_node_id(Impl& c, std::uint64_t id) {
  if (id != 0) return {};
  c.diag.assign("node id 0 is not valid (node ids start at 1)");
  return make_error_code(errc::invalid_argument);
}

inline error_code expect_response(const wire::frame_header& h, wire::response r) {
  return h.type == static_cast<std::uint8_t>(r) ? error_code{}
                                                : make_error_code(errc::unexpected_response);
}

/// LEADER: one SERVER (id 0 and "" when no leader is known).
struct leader_proc {
  using result_type = node_info;
  node_info out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::server)) return e;
    wire::server_response r;
    if (auto e = wire::decode_server(body, r)) return e;
    out.id = r.id;
    out.address.assign(r.address.data(), r.address.size());
    out.role = node_role::voter;  // a leader is always a voter
    done = true;
    return {};
  }
  node_info take() { return std::move(out); }
};

/// CLUSTER: one SERVERS.
struct servers_proc {
  using result_type = std::vector<node_info>;
  std::vector<node_info> out;
  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::servers)) return e;
    std::vector<wire::node_view> nodes;
    if (auto e = wire::decode_servers(body, nodes)) return e;
    out.clear();
    out.reserve(nodes.size());
    for (const auto& n : nodes) {
      auto role = node_role_from_value(n.role);
      if (!role) {
        c.diag.assign("the server described node " + std::to_string(n.id) +
                      " with an unknown role " + std::to_string(n.role));
        out.clear();
        return make_error_code(errc::unexpected_response);
      }
      out.push_back(node_info{n.id, std::string(n.address), *role});
    }
    done = true;
    return {};
  }
  std::vector<node_info> take() { return std::move(out); }
};

/// ADD, ASSIGN, REMOVE, TRANSFER, WEIGHT: one EMPTY.
struct empty_proc {
  using result_type = void;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::empty)) return e;
    if (auto e = wire::decode_empty(body)) return e;
    done = true;
    return {};
  }
};

/// DESCRIBE: one METADATA.
struct metadata_proc {
  using result_type = node_metadata;
  node_metadata out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::metadata)) return e;
    wire::metadata_response r;
    if (auto e = wire::decode_metadata(body, r)) return e;
    out = {r.failure_domain, r.weight};
    done = true;
    return {};
  }
  node_metadata take() { return out; }
};

/// DUMP: one FILES.
struct files_proc {
  using result_type = std::vector<dump_file>;
  std::vector<dump_file> out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_response(h, wire::response::files)) return e;
    std::vector<wire::file_view> files;
    if (auto e = wire::decode_files(body, files)) return e;
    out.clear();
    out.reserve(files.size());
    for (const auto& f : files)
      out.push_back(dump_file{std::string(f.name),
                              std::vector<std::byte>(f.data.begin(), f.data.end())});
    done = true;
    return {};
  }
  std::vector<dump_file> take() { return std::move(out); }
};

// ---- the administration requests, each as an encoder of a connection's request ----

inline auto leader_request() {
  return [](session_state& c) -> error_code {
    wire::encode_leader(c.wbuf);
    return {};
  };
}

inline auto cluster_request() {
  return [](session_state& c) -> error_code {
    wire::encode_cluster(c.wbuf, 1);
    return {};
  };
}

inline auto add_request(std::uint64_t id, std::string_view address) {
  return [id, address = std::string(address)](session_state& c) -> error_code {
    if (auto e = check_node_id(c, id)) return e;
    host_port hp;
    // Nodes listen on TCP ("host:port") or on a unix socket ("@name" abstract, "/path").
    const bool unix_socket =
        address.size() > 1 && (address.front() == '@' || address.front() == '/');
    if (!wire::is_valid_text(address) || (!unix_socket && parse_address(address, hp))) {
      c.diag.assign("invalid node address '" + printable(address) +
                    "' (expected host:port, [ipv6]:port, @name or /path)");
      return make_error_code(errc::invalid_address);
    }
    return wire::encode_add(c.wbuf, id, address);
  };
}

inline auto assign_request(std::uint64_t id, node_role role) {
  return [id, role](session_state& c) -> error_code {
    if (auto e = check_node_id(c, id)) return e;
    if (!node_role_from_value(static_cast<std::uint64_t>(role))) {
      c.diag.assign("invalid node role " + std::to_string(static_cast<unsigned>(role)) +
                    " (expected voter, standby or spare)");
      return make_error_code(errc::invalid_argument);
    }
    wire::encode_assign(c.wbuf, id, static_cast<wire::role>(role));
    return {};
  };
}

inline auto remove_request(std::uint64_t id) {
  return [id](session_state& c) -> error_code {
    if (auto e = check_node_id(c, id)) return e;
    wire::encode_remove(c.wbuf, id);
    return {};
  };
}

inline auto transfer_request(std::uint64_t id) {
  return [id](session_state& c) -> error_code {
    wire::encode_transfer(c.wbuf, id);
    return {};
  };
}

inline auto describe_request() {
  return [](session_state& c) -> error_code {
    wire::encode_describe(c.wbuf, 0);
    return {};
  };
}

inline auto weight_request(std::uint64_t weight) {
  return [weight](session_state& c) -> error_code {
    wire::encode_weight(c.wbuf, weight);
    return {};
  };
}

inline auto dump_request(std::string_view name) {
  return [name = std::string(name)](session_state& c) -> error_code {
    if (auto e = wire::encode_dump(c.wbuf, name)) {
      c.diag.assign("the database name contains a NUL byte");
      return e;
    }
    return {};
  };
}

/// OPEN of a database on a connection made without one.
inline auto open_request(std::string_view name) {
  return [name = std::string(name)](session_state& c) -> error_code {
    if (!c.database.empty()) {
      c.diag.assign("database '" + c.database + "' is already open on this connection");
      return make_error_code(errc::invalid_argument);
    }
    if (name.empty()) {
      c.diag.assign("the database name is empty");
      return make_error_code(errc::invalid_argument);
    }
    if (auto e = wire::encode_open(c.wbuf, name)) {
      c.diag.assign("the database name contains a NUL byte");
      return e;
    }
    c.database = name;
    c.opts.database = c.database;
    return {};
  };
}

}  // namespace dqlite::detail
