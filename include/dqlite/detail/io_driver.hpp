// The event loop of a blocking cluster client or pool: an io_context of its own that the
// threads calling the object's blocking operations run themselves, one thread at a time.
// No thread is started. A thread that waits for its operation runs the io_context when no
// other thread does (and so completes the operations of other threads too); otherwise it
// sleeps on a condition variable until its own operation completes or the running thread
// stops running the io_context, and then takes over.
#pragma once

#include <dqlite/detail/blocking.hpp>
#include <dqlite/error.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

template <class R>
struct value_of {
  R operator()() const { return R{}; }
};

class io_driver {
 public:
  io_driver() = default;
  io_driver(const io_driver&) = delete;
  io_driver& operator=(const io_driver&) = delete;

  boost::asio::io_context& context() noexcept { return io_; }
  boost::asio::io_context::executor_type get_executor() noexcept { return io_.get_executor(); }

  /// run() for a blocking operation's optional error tail e (nothing, or error_code&,
  /// diagnostics&): with the tail a failure is reported there, without it thrown as
  /// dqlite::error.
  template <class R, class Start, class Empty, class... E>
  R run_for(Start start, Empty empty, E&... e) {
    return blocking_call(
        [&](error_code& ec, diagnostics& d) {
          return run<R>(std::move(start), ec, d, std::move(empty));
        },
        e...);
  }

  /// Calls start(token) on the io_context (so every initiation runs where the object's
  /// state lives), where token is a completion token for a void(error_code, R) operation
  /// (void(error_code) when R is void), and returns once the operation has completed:
  /// its result, or empty() (default: R{}) with ec and d set on failure.
  template <class R, class Start, class Empty = value_of<R>>
  R run(Start start, error_code& ec, diagnostics& d, Empty empty = {}) {
    if (io_.get_executor().running_in_this_thread())
      throw std::logic_error(
          "dqlite: a blocking call of a blocking_pool or blocking_cluster from inside one of "
          "its own callbacks (a log or trace function) would wait for itself");
    auto s = std::make_shared<slot<R>>();
    boost::asio::post(io_, [this, s, start = std::move(start)]() mutable {
      try {
        start(with_diagnostics(handler<R>{this, s}));
      } catch (...) {  // the initiation itself failed (a moved-from object, say)
        handler<R>{this, s}.finish(std::current_exception());
      }
    });
    wait_for(s->done);
    if (s->failure) {
      try {
        std::rethrow_exception(s->failure);
      } catch (const error& e) {
        ec = e.code();
        d = e.get_diagnostics();
      }
    } else {
      ec = {};
      d = {};
    }
    if constexpr (!std::is_void_v<R>) {
      if (s->value) return std::move(*s->value);
      return empty();
    }
  }

  /// Runs f() on the io_context and returns what it returns (at once when the calling
  /// thread is the one running it).
  template <class F>
  auto call(F f) -> decltype(f()) {
    using R = decltype(f());
    if (io_.get_executor().running_in_this_thread()) return f();
    error_code ec;
    diagnostics d;
    return run<R>(
        [f = std::move(f)](auto token) mutable {
          auto h = std::move(token.token);
          if constexpr (std::is_void_v<R>) {
            f();
            h(std::exception_ptr());
          } else {
            h(std::exception_ptr(), f());
          }
        },
        ec, d);
  }

 private:
  template <class R>
  struct slot {
    bool done = false;  // guarded by the driver's mutex
    std::exception_ptr failure;
    std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value;
  };

  template <class R>
  struct handler {
    io_driver* driver;
    std::shared_ptr<slot<R>> s;

    void operator()(std::exception_ptr ep) { finish(std::move(ep)); }
    template <class V>
    void operator()(std::exception_ptr ep, V&& v) {
      std::lock_guard<std::mutex> lk(driver->m_);
      if (s->done) return;  // (after an initiation that threw)
      if (!ep) s->value.emplace(std::forward<V>(v));
      settle(std::move(ep));
    }
    void finish(std::exception_ptr ep) {
      std::lock_guard<std::mutex> lk(driver->m_);
      if (s->done) return;
      settle(std::move(ep));
    }
    void settle(std::exception_ptr ep) {  // with m_ held
      s->failure = std::move(ep);
      s->done = true;
      driver->cv_.notify_all();
    }
  };

  // Returns once `done` (guarded by m_) is true. An exception thrown by a handler while
  // this thread ran the io_context (a user's log callback, say) is rethrown after that.
  void wait_for(const bool& done) {
    std::exception_ptr thrown;
    std::unique_lock<std::mutex> lk(m_);
    while (!done) {
      if (running_) {
        cv_.wait(lk);
        continue;
      }
      running_ = true;
      lk.unlock();
      for (;;) {
        try {
          if (io_.run_one() == 0) io_.restart();
        } catch (...) {
          if (!thrown) thrown = std::current_exception();
        }
        std::lock_guard<std::mutex> g(m_);
        if (done) break;
      }
      lk.lock();
      running_ = false;
      cv_.notify_all();  // another waiting thread takes over
    }
    lk.unlock();
    if (thrown) std::rethrow_exception(thrown);
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::mutex m_;
  std::condition_variable cv_;
  bool running_ = false;  // a thread runs io_ (guarded by m_)
};

}  // namespace dqlite::detail
