// dqlite-admin: administer a dqlite cluster from the command line (built on this
// library's cluster client). Run with --help for the commands.
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;

namespace {

constexpr const char* usage_text = R"(usage: dqlite-admin [options] COMMAND [ARGS...]

Administers a dqlite cluster. The leader is found by asking the nodes given with
--cluster (the last known leader first, voters first, several at once); requests
that must go to the leader are sent there.

Options:
  -c, --cluster ADDR[,ADDR...]  nodes to ask for the leader (host:port or
                                [ipv6]:port); also $DQLITE_CLUSTER
  -t, --timeout SECONDS         give up finding the leader after this long
                                (default 10)
  -h, --help                    show this help

Commands:
  leader                        print the leader: ID ADDRESS
  cluster                       print the members: ID ADDRESS ROLE, one per line
  join ID ADDRESS [ROLE]        add the running node ID at ADDRESS and give it
                                ROLE (voter, standby or spare; default voter)
  assign ID ROLE                give node ID a new role
  remove ID                     remove node ID from the cluster
  transfer [ID]                 hand leadership to voter ID (default: any voter)
  describe ADDRESS              print the failure domain and weight of a node
  weight ADDRESS WEIGHT         set the weight of a node
  dump DATABASE [DIR]           copy DATABASE (and its WAL) from the leader into
                                DIR (default: the current directory)

Exit status: 0 on success, 1 when the request failed, 2 for bad usage.
Example:
  dqlite-admin -c 127.0.0.1:9001,127.0.0.1:9002 join 3 127.0.0.1:9003 voter
)";

struct usage_error {
  std::string message;
};

std::uint64_t parse_u64(std::string_view what, std::string_view text) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    throw usage_error{std::string(what) + " must be an unsigned integer, not '" +
                      std::string(text) + "'"};
  return v;
}

dqlite::node_role parse_role(std::string_view text) {
  auto r = dqlite::parse_node_role(text);
  if (!r)
    throw usage_error{"unknown role '" + std::string(text) + "' (voter, standby or spare)"};
  return *r;
}

std::vector<std::string> split_addresses(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = list.substr(0, comma);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

struct command_line {
  std::vector<std::string> cluster;
  std::chrono::seconds timeout{10};
  std::vector<std::string> args;  // command and its arguments
};

command_line parse_command_line(int argc, char** argv) {
  command_line cl;
  if (const char* env = std::getenv("DQLITE_CLUSTER")) cl.cluster = split_addresses(env);
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw usage_error{"missing value for " + std::string(a)};
      return argv[++i];
    };
    if (!cl.args.empty()) {
      cl.args.emplace_back(a);
    } else if (a == "-h" || a == "--help") {
      std::cout << usage_text;
      std::exit(0);
    } else if (a == "-c" || a == "--cluster") {
      cl.cluster = split_addresses(value());
    } else if (a == "-t" || a == "--timeout") {
      auto s = parse_u64("--timeout", value());
      if (s == 0 || s > 86400) throw usage_error{"--timeout must be in 1..86400"};
      cl.timeout = std::chrono::seconds(s);
    } else if (!a.empty() && a.front() == '-') {
      throw usage_error{"unknown option '" + std::string(a) + "'"};
    } else {
      cl.args.emplace_back(a);
    }
  }
  if (cl.args.empty()) throw usage_error{"no command given"};
  return cl;
}

void expect_args(const command_line& cl, std::size_t min, std::size_t max) {
  std::size_t n = cl.args.size() - 1;
  if (n < min || n > max)
    throw usage_error{"wrong number of arguments for '" + cl.args[0] + "'"};
}

asio::awaitable<void> run_command(asio::any_io_executor ex, const command_line& cl) {
  const auto& args = cl.args;
  const std::string& cmd = args[0];
  dqlite::cluster_options opts;
  opts.connection.database = {};
  opts.connection.connect_timeout = std::chrono::seconds(5);
  opts.connection.request_timeout = std::chrono::seconds(60);
  opts.retry_timeout = cl.timeout;

  // describe and weight talk to one node; the others need the cluster's nodes.
  std::vector<std::string> nodes = cl.cluster;
  if (nodes.empty() && (cmd == "describe" || cmd == "weight") && args.size() > 1)
    nodes.push_back(args[1]);
  if (nodes.empty()) throw usage_error{"no nodes given: use --cluster or $DQLITE_CLUSTER"};
  dqlite::cluster cluster(ex, nodes, opts);

  if (cmd == "leader") {
    expect_args(cl, 0, 0);
    auto l = co_await cluster.async_leader();
    std::cout << l.id << ' ' << l.address << '\n';
  } else if (cmd == "cluster") {
    expect_args(cl, 0, 0);
    auto members = co_await cluster.async_cluster();
    for (const auto& m : members)
      std::cout << m.id << ' ' << m.address << ' ' << dqlite::to_string(m.role) << '\n';
  } else if (cmd == "join") {
    expect_args(cl, 2, 3);
    dqlite::node_info n{parse_u64("ID", args[1]), args[2],
                        args.size() > 3 ? parse_role(args[3]) : dqlite::node_role::voter};
    if (n.id == 0) throw usage_error{"ID must be at least 1"};
    co_await cluster.async_add(n);
  } else if (cmd == "assign") {
    expect_args(cl, 2, 2);
    auto id = parse_u64("ID", args[1]);
    auto role = parse_role(args[2]);
    co_await cluster.async_assign(id, role);
  } else if (cmd == "remove") {
    expect_args(cl, 1, 1);
    co_await cluster.async_remove(parse_u64("ID", args[1]));
  } else if (cmd == "transfer") {
    expect_args(cl, 0, 1);
    co_await cluster.async_transfer(args.size() > 1 ? parse_u64("ID", args[1]) : 0);
  } else if (cmd == "describe") {
    expect_args(cl, 1, 1);
    auto m = co_await cluster.async_describe(args[1]);
    std::cout << "failure-domain " << m.failure_domain << "\nweight " << m.weight << '\n';
  } else if (cmd == "weight") {
    expect_args(cl, 2, 2);
    co_await cluster.async_weight(args[1], parse_u64("WEIGHT", args[2]));
  } else if (cmd == "dump") {
    expect_args(cl, 1, 2);
    std::string dir = args.size() > 2 ? args[2] : ".";
    auto files = co_await cluster.async_dump(args[1]);
    for (const auto& f : files) {
      if (f.name.empty() || f.name.find('/') != std::string::npos || f.name == "." ||
          f.name == "..")
        throw std::runtime_error("the server sent a file with an unusable name '" + f.name + "'");
      std::string path = dir + "/" + f.name;
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(f.data.data()),
                static_cast<std::streamsize>(f.data.size()));
      out.close();
      if (!out) throw std::runtime_error("cannot write " + path);
      std::cout << path << ' ' << f.data.size() << '\n';
    }
  } else {
    throw usage_error{"unknown command '" + cmd + "'"};
  }
}

}  // namespace

int main(int argc, char** argv) {
  command_line cl;
  try {
    cl = parse_command_line(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "dqlite-admin: " << e.message << " (see dqlite-admin --help)\n";
    return 2;
  }
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, run_command(io.get_executor(), cl), [&](std::exception_ptr ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const usage_error& e) {
      std::cerr << "dqlite-admin: " << e.message << " (see dqlite-admin --help)\n";
      status = 2;
    } catch (const std::exception& e) {
      std::cerr << "dqlite-admin: " << cl.args[0] << ": " << e.what() << '\n';
      status = 1;
    }
  });
  io.run();
  return status;
}
