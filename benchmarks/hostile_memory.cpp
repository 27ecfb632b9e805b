// Peak memory of the client against a hostile server (a scripted server on loopback):
// results over their caps inside one frame, endless results, a frame of millions of
// empty column names, a FAILURE with a huge message. Each operation runs in a child
// process; the figure is its peak RSS growth (getrusage ru_maxrss).
//
//   hostile_memory            # every scenario
//   hostile_memory names      # the scenarios whose name contains "names"
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include "support/fake_server.hpp"
#include "support/hostile_frames.hpp"
#include "support/peak_memory.hpp"
#include "support/run.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using bytes = std::vector<unsigned char>;
using dqlite_test::fake_peer;
using dqlite_test::fake_server;
using dqlite_test::rows_frame;

namespace {

bytes frame(std::uint8_t type, const std::vector<std::byte>& body) {
  const auto words = static_cast<std::uint32_t>(body.size() / 8);
  bytes f{static_cast<unsigned char>(words),
          static_cast<unsigned char>(words >> 8),
          static_cast<unsigned char>(words >> 16),
          static_cast<unsigned char>(words >> 24),
          type,
          0,
          0,
          0};
  f.reserve(8 + body.size());
  for (auto b : body) f.push_back(static_cast<unsigned char>(b));
  return f;
}

bool accept_handshake(fake_peer& peer) {
  if (peer.read_exact(8).size() < 8) return false;
  if (peer.read_frame().size() < 8) return false;
  peer.write(frame(4, std::vector<std::byte>(8)));
  return true;
}

/// Answers each query with `once`, then `forever` until the client goes away.
fake_server::script answer(std::shared_ptr<const bytes> once,
                           std::shared_ptr<const bytes> forever) {
  return [once, forever](fake_peer& peer) {
    if (!accept_handshake(peer)) return;
    if (peer.read_frame().size() < 8) return;
    if (once && !peer.write(*once)) return;
    if (forever)
      while (!peer.stopping() && peer.write(*forever)) {
      }
    fake_server::silent()(peer);
  };
}

using operation = std::function<asio::awaitable<dqlite::error_code>(dqlite::connection&)>;

void measure(const std::string& scenario, const std::string& filter, fake_server& server,
             dqlite::connection_options o,
             const std::vector<std::pair<std::string, operation>>& ops) {
  if (!filter.empty() && scenario.find(filter) == std::string::npos) return;
  for (const auto& [name, op] : ops) {
    auto m = dqlite_test::peak_memory([&] {
      return dqlite_test::run([&](asio::any_io_executor ex) -> asio::awaitable<std::string> {
        dqlite::connection conn(o, ex);
        co_await conn.async_connect(server.address());
        auto ec = co_await op(conn);
        co_return ec.message() +
            " (diagnostics: " + std::to_string(conn.diagnostics().message().size()) + " bytes)";
      });
    });
    std::printf("%-28s %-10s peak growth %8.1f MiB  %s\n", scenario.c_str(), name.c_str(),
                m.growth_mib(), m.ok() ? m.message.c_str() : "(the child failed)");
    std::fflush(stdout);
  }
}

auto tok() {
  return asio::as_tuple(asio::use_awaitable);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string filter = argc > 1 ? argv[1] : "";
  auto base = [] {
    dqlite::connection_options o;
    o.database = "x";
    o.request_timeout = std::chrono::milliseconds(20000);
    return o;
  };

  // One 64 MiB frame of 1.2 M rows under max_result_rows 1000.
  {
    rows_frame f({"t"});
    const std::string text(40, 't');  // 56 bytes a row with its header
    const std::size_t n = (dqlite::wire::default_max_frame_size - 24) / 56;
    for (std::size_t i = 0; i < n; ++i) f.text(text);
    auto once = std::make_shared<const bytes>(frame(7, f.done()));
    fake_server server(answer(once, nullptr));
    auto o = base();
    o.max_result_rows = 1000;
    measure("rows cap in one 64 MiB frame", filter, server, o,
            {{"fetchall",
              [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_fetchall("SELECT", tok()));
              }},
             {"fetch<T>",
              [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_fetch<std::string>("SELECT", tok()));
              }},
             {"fetchone", [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_fetchone<std::string>("SELECT", tok()));
              }}});
  }

  // An endless result of 1 MiB frames of one-NULL rows, max_result_bytes 32 MiB.
  {
    rows_frame f({"n"});
    for (int i = 0; i < 65535; ++i) f.null();
    auto forever = std::make_shared<const bytes>(frame(7, f.part()));
    fake_server server(answer(nullptr, forever));
    auto o = base();
    o.max_result_bytes = 32u << 20;
    measure(
        "endless result, 32 MiB cap", filter, server, o,
        {{"fetchall",
          [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
            co_return std::get<0>(co_await c.async_fetchall("SELECT", tok()));
          }},
         {"fetch<T>", [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
            co_return std::get<0>(
                co_await c.async_fetch<std::tuple<std::optional<std::string>>>("SELECT", tok()));
          }}});
  }

  // One 64 MiB frame of 8.4 M empty column names.
  {
    const std::uint64_t names = (dqlite::wire::default_max_frame_size - 16) / 8;
    std::vector<std::byte> body;
    dqlite::wire::put_u64(body, names);
    body.resize(8 + names * 8, std::byte{0});
    dqlite::wire::put_u64(body, dqlite::wire::rows_done_marker);
    auto once = std::make_shared<const bytes>(frame(7, body));
    body = {};
    fake_server server(answer(once, nullptr));
    measure("8.4 M empty column names", filter, server, base(),
            {{"fetchall",
              [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_fetchall("SELECT", tok()));
              }},
             {"fetch<T>",
              [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_fetch<std::int64_t>("SELECT", tok()));
              }},
             {"cursor", [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_cursor("SELECT", tok()));
              }}});
  }

  // A FAILURE whose message is 60 MiB.
  {
    std::vector<std::byte> body;
    dqlite::wire::put_u64(body, 1);
    dqlite::wire::put_text(body, std::string(60u << 20, 'e'));
    auto once = std::make_shared<const bytes>(frame(0, body));
    body = {};
    fake_server server(answer(once, nullptr));
    measure("60 MiB FAILURE message", filter, server, base(),
            {{"fetchall",
              [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                co_return std::get<0>(co_await c.async_fetchall("SELECT", tok()));
              }},
             {"throwing", [](dqlite::connection& c) -> asio::awaitable<dqlite::error_code> {
                try {
                  co_await c.async_fetchall("SELECT");
                } catch (const dqlite::error& e) {
                  co_return e.code();
                }
                co_return dqlite::error_code{};
              }}});
  }
  return 0;
}
