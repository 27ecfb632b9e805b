// The result of a cluster or pool operation, cancellation, and the report of failed attempts.
#pragma once


#include <dqlite/detail/config.hpp>
#include <dqlite/address.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/error.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/node_store.hpp>
#include <dqlite/options.hpp>
#include <dqlite/wire/decode.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dqlite::detail {

inline constexpr auto as_tuple_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

/// T, spelled as a type that depends on D. A call on an object of it inside a template of
/// D is compiled when that template is, not where it is written: e.g. a timer's
/// `async_wait(as_tuple_awaitable)` inside a class template compiles Asio's whole wait
/// operation in every unit that includes the header, whether or not it uses the template.
template <class D, class T>
struct dependent_type {
  using type = T;
};
template <class D, class T>
using dependent_t = typename dependent_type<D, T>::type;

/// What a cluster operation produces: an error with its text, or a value.
template <class T>
struct cluster_result {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  error_code ec;
  std::string diag;
  std::optional<value_type> value;

  static cluster_result fail(error_code e, std::string text) {
    cluster_result r;
    r.ec = e;
    r.diag = std::move(text);
    return r;
  }

  /// An operation that the cluster client's close() ended: errc::cancelled.
  static cluster_result cluster_closed() {
    return fail(make_error_code(errc::cancelled), "the cluster client was closed");
  }

  /// An exception that escaped an operation's coroutine, as a failure.
  static cluster_result from_exception(std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::bad_alloc&) {
      return fail(make_error_code(boost::system::errc::not_enough_memory), "out of memory");
    } catch (const std::exception& e) {
      return fail(make_error_code(errc::invalid_argument), e.what());
    } catch (...) {
      return fail(make_error_code(errc::invalid_argument), "unknown exception");
    }
  }
};

/// True once the operation whose cancellation state this is has been cancelled.
inline bool was_cancelled(const boost::asio::cancellation_state& cs) noexcept {
  return cs.cancelled() != boost::asio::cancellation_type::none;
}

/// The failure of an operation its caller cancelled.
template <class T>
cluster_result<T> cancelled_by_caller(std::string detail = {}) {
  std::string text = "the operation was cancelled";
  if (!detail.empty()) text += " (" + detail + ")";
  return cluster_result<T>::fail(make_error_code(errc::cancelled), std::move(text));
}

/// The failure of an operation its caller cancelled reads as errc::cancelled, whatever
/// step it stopped in (a cancelled wait, a connection closed by the cancellation), except
/// an unknown outcome, which stays what it is. `ep`: the operation ended with this
/// exception (a cancelled co_await throws; its text says nothing more).
template <class T>
void settle_cancelled(cluster_result<T>& r, std::exception_ptr ep,
                      boost::asio::cancellation_type_t cancelled) {
  if (cancelled == boost::asio::cancellation_type::none) {
    if (ep) r = cluster_result<T>::from_exception(ep);
    return;
  }
  if (ep)
    r = cancelled_by_caller<T>();
  else if (r.ec && !is_cancelled(r.ec) && !is_outcome_unknown(r.ec))
    r = cancelled_by_caller<T>(std::move(r.diag));
}

/// Why each node that was asked did not lead to the leader, in the order first asked.
class attempt_report {
 public:
  /// Longest reason kept for a node, in bytes (a server's message may be much longer).
  static constexpr std::size_t max_reason_size = 512;

  /// Records why `address` failed; a node not asked (or asked when the time for retries
  /// had run out) keeps the reason of an earlier attempt.
  void note(const std::string& address, std::string reason, bool asked = true);
  void merge(const attempt_report& other);
  bool empty() const noexcept { return entries_.empty(); }
  std::string text() const;

 private:
  struct entry {
    std::string address;
    std::string reason;
    bool asked;
  };
  std::vector<entry> entries_;
};

DQLITE_DECL std::string error_text(const error_code& ec, const diagnostics& d);

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/result.ipp>
#endif
