// The event loop behind blocking_pool and blocking_cluster (detail::io_driver), without
// sockets: threads that wait for their operations run the io_context one at a time, every
// operation completes, failures arrive as error codes or exceptions, and misuse is refused.
#include <dqlite/detail/io_driver.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using dqlite::detail::io_driver;

namespace {

// An operation completing with void(error_code, int) after a timer: n, or a failure with
// a text when n < 0.
struct timed_op {
  io_driver* d;
  int n;
  std::chrono::microseconds after;
  template <class Token>
  void operator()(Token token) const {
    auto h = std::move(token.token);
    auto t = std::make_shared<asio::steady_timer>(d->context(), after);
    const int v = n;
    t->async_wait([t, v, h = std::move(h)](dqlite::error_code) mutable {
      if (v < 0)
        std::move(h)(std::make_exception_ptr(dqlite::error(make_error_code(dqlite::errc::timeout),
                                                           dqlite::diagnostics("slow: " + std::to_string(v)))),
                     0);
      else
        std::move(h)(std::exception_ptr(), v);
    });
  }
};

}  // namespace

TEST_CASE("io_driver: eight threads share one io_context and every operation completes",
          "[io_driver]") {
  io_driver d;
  constexpr int threads = 8, ops = 300;
  std::atomic<int> wrong{0};
  std::vector<std::set<std::thread::id>> ran(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < ops; ++i) {
        dqlite::error_code ec;
        dqlite::diagnostics diag;
        const int want = t * 1000 + i;
        int got = d.run<int>(timed_op{&d, want, std::chrono::microseconds(i % 3 * 300)}, ec, diag);
        if (ec || got != want) ++wrong;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(wrong == 0);
}

TEST_CASE("io_driver: failures arrive as an error code and text, the result empty",
          "[io_driver]") {
  io_driver d;
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  int v = d.run<int>(timed_op{&d, -7, 0us}, ec, diag);
  CHECK(ec == dqlite::errc::timeout);
  CHECK(diag.message() == "slow: -7");
  CHECK(v == 0);
  // The next call clears them.
  v = d.run<int>(timed_op{&d, 3, 0us}, ec, diag);
  CHECK_FALSE(ec);
  CHECK(diag.message().empty());
  CHECK(v == 3);
  // What a failed call returns when R has no default value worth having.
  std::string s = d.run<std::string>(
      [&](auto token) {
        auto h = std::move(token.token);
        std::move(h)(std::make_exception_ptr(dqlite::error(make_error_code(dqlite::errc::no_leader))),
                     std::string("unused"));
      },
      ec, diag, [] { return std::string("empty"); });
  CHECK(ec == dqlite::errc::no_leader);
  CHECK(s == "empty");
}

TEST_CASE("io_driver: an initiation that throws reaches its caller, the driver stays usable",
          "[io_driver]") {
  io_driver d;
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  CHECK_THROWS_WITH(d.run<int>([](auto) { throw std::logic_error("moved-from"); }, ec, diag),
                    "moved-from");
  CHECK(d.run<int>(timed_op{&d, 5, 0us}, ec, diag) == 5);
}

TEST_CASE("io_driver: a handler that throws ends the call of the thread running it, once its "
          "own operation has completed, and nobody waits forever",
          "[io_driver]") {
  io_driver d;
  // Posted before the operation: it runs in the same run of the io_context.
  asio::post(d.context(), [] { throw std::runtime_error("from a callback"); });
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  int got = -1;
  CHECK_THROWS_WITH(got = d.run<int>(timed_op{&d, 9, 1000us}, ec, diag), "from a callback");
  CHECK(got == -1);
  // Another thread afterwards takes over.
  int other = 0;
  std::thread([&] {
    dqlite::error_code e;
    dqlite::diagnostics g;
    other = d.run<int>(timed_op{&d, 11, 0us}, e, g);
  }).join();
  CHECK(other == 11);
}

TEST_CASE("io_driver: a blocking call from inside one of its handlers is refused",
          "[io_driver]") {
  io_driver d;
  std::string what;
  dqlite::error_code ec;
  dqlite::diagnostics diag;
  d.run<int>(
      [&](auto token) {
        try {
          dqlite::error_code e;
          dqlite::diagnostics g;
          (void)d.run<int>(timed_op{&d, 1, 0us}, e, g);
        } catch (const std::logic_error& x) {
          what = x.what();
        }
        auto h = std::move(token.token);
        std::move(h)(std::exception_ptr(), 1);
      },
      ec, diag);
  CHECK_THAT(what, Catch::Contains("would wait for itself"));
  // call() from there runs at once.
  int inner = 0;
  d.run<int>(
      [&](auto token) {
        inner = d.call([] { return 42; });
        auto h = std::move(token.token);
        std::move(h)(std::exception_ptr(), 1);
      },
      ec, diag);
  CHECK(inner == 42);
}
