// dqlite-app-node: runs one dqlite::app for the integration tests, controlled through
// its arguments and stdin.
//
//   dqlite-app-node --dir DIR [--address HOST:PORT] [--bind ADDR] [--join A,B,...] [--voters N]
//                   [--standbys N] [--latency-ms MS] [--failure-domain N] [--weight N]
//                   [--frequency-ms MS] [--no-roles]
//
// Writes one line per event to stdout, each starting with the steady clock in ms (the
// same clock as the test's: CLOCK_MONOTONIC):
//   T started ID ADDRESS      the node runs (after joining on a first start)
//   T ready                   a member, and a leader is known
//   T log TEXT                the app's log
//   T error TEXT              async_start failed (exit code 1)
//   T handover done / T stopped
// Commands on stdin, one per line: "handover" (handover, stop, exit 0), "stop" (stop
// without handover, exit 0), "stats" (prints "T stats leader=ID members=ID:ROLE,..."). End
// of input is "stop".
#include <dqlite/app.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

namespace {

std::mutex out_mutex;

void say(const std::string& text) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  std::lock_guard lock(out_mutex);
  std::printf("%lld %s\n", static_cast<long long>(now.count()), text.c_str());
  std::fflush(stdout);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from <= s.size()) {
    auto comma = s.find(',', from);
    if (comma == std::string::npos) comma = s.size();
    if (comma > from) out.push_back(s.substr(from, comma - from));
    from = comma + 1;
  }
  return out;
}

boost::asio::awaitable<void> command(dqlite::app& a, std::string cmd, int& exit_code,
                                     boost::asio::io_context& io) {
  try {
    if (cmd == "handover") {
      co_await a.async_handover();
      say("handover done");
    } else if (cmd == "stop") {
      co_await a.async_stop();
      say("stopped");
    } else if (cmd == "stats") {
      auto st = a.stats();
      std::string m;
      for (const auto& n : st.members)
        m += (m.empty() ? "" : ",") + std::to_string(n.id) + ":" + std::string(dqlite::to_string(n.role));
      say("stats leader=" + std::to_string(st.leader_id) + " members=" + m);
      co_return;
    } else {
      say("log unknown command: " + cmd);
      co_return;
    }
  } catch (const std::exception& e) {
    say(std::string("error ") + e.what());
    exit_code = 1;
  }
  io.stop();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  dqlite::app_options o;
  o.log = [](std::string_view text) { say("log " + std::string(text)); };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--no-roles") {
      o.adjust_roles = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "missing value for %s\n", arg.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (arg == "--dir") dir = v;
    else if (arg == "--address") o.address = v;
    else if (arg == "--bind") o.bind_address = v;
    else if (arg == "--join") o.cluster = split(v);
    else if (arg == "--voters") o.voters = static_cast<unsigned>(std::stoul(v));
    else if (arg == "--standbys") o.standbys = static_cast<unsigned>(std::stoul(v));
    else if (arg == "--latency-ms") o.network_latency = std::chrono::milliseconds(std::stoul(v));
    else if (arg == "--failure-domain") o.failure_domain = std::stoull(v);
    else if (arg == "--weight") o.weight = std::stoull(v);
    else if (arg == "--frequency-ms") o.roles_adjustment_frequency = std::chrono::milliseconds(std::stoul(v));
    else {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "--dir is required\n");
    return 2;
  }
  o.membership_check = std::chrono::milliseconds(200);
  o.probe_timeout = std::chrono::milliseconds(1000);
  o.ready_timeout = std::chrono::seconds(120);

  boost::asio::io_context io;
  int exit_code = 0;
  std::optional<dqlite::app> a;
  try {
    a.emplace(io.get_executor(), dir, o);
  } catch (const std::exception& e) {
    say(std::string("error ") + e.what());
    return 1;
  }
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        try {
          co_await a->async_start();
          say("started " + std::to_string(a->id()) + " " + a->address());
          co_await a->async_ready();
          say("ready");
        } catch (const std::exception& e) {
          say(std::string("error ") + e.what());
          exit_code = 1;
          io.stop();
        }
      },
      boost::asio::detached);
  auto work = boost::asio::make_work_guard(io);
  std::thread input([&] {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      boost::asio::post(io, [&, line] {
        boost::asio::co_spawn(io, command(*a, line, exit_code, io), boost::asio::detached);
      });
      if (line == "handover" || line == "stop") return;
    }
    boost::asio::post(io, [&] {
      boost::asio::co_spawn(io, command(*a, "stop", exit_code, io), boost::asio::detached);
    });
  });
  io.run();
  input.detach();  // may still wait for input; the process ends here
  a.reset();       // joins the app's thread; stops the node if it still runs
  std::fflush(stdout);
  std::_Exit(exit_code);
}
