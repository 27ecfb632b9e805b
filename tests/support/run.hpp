// Running coroutines to completion in tests.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace dqlite_test {

/// Runs the coroutine made by f(executor) on a fresh io_context and returns its result
/// (rethrowing its exception). Fails if it does not finish within the limit.
template <class F>
auto run(F&& f, std::chrono::seconds limit = std::chrono::seconds(120)) {
  boost::asio::io_context io;
  using awaitable_t = decltype(f(io.get_executor()));
  using T = typename awaitable_t::value_type;
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> result;
  if constexpr (std::is_void_v<T>)
    boost::asio::co_spawn(io, f(io.get_executor()), [&](std::exception_ptr e) {
      error = e;
      result.emplace(true);
    });
  else
    boost::asio::co_spawn(io, f(io.get_executor()), [&](std::exception_ptr e, T v) {
      error = e;
      result.emplace(std::move(v));
    });
  io.run_for(limit);
  if (!result && !error) throw std::runtime_error("the test coroutine did not finish in time");
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

/// Milliseconds since start.
inline long long elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace dqlite_test
