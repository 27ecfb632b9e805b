// Reading a large result batch by batch.
#pragma once

#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/detail/request.hpp>
#include <dqlite/detail/session_procs.hpp>
#include <dqlite/error.hpp>
#include <dqlite/mapping.hpp>
#include <dqlite/value.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/async_result.hpp>

#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {

namespace detail {
template <class T>
struct cursor_sink {
  using type = typed_rows_sink<T>;
};
template <>
struct cursor_sink<void> {
  using type = dynamic_rows_sink;
};
}  // namespace detail

/// A query result read batch by batch, as the server sends it (one batch per ROWS frame,
/// about 4 KiB of rows), so that results of any size are processed in bounded memory.
/// Obtained from async_cursor<T>() on a connection or a prepared statement. T is a row
/// type as for async_fetch<T> (void: dynamic rows).
///
/// While a cursor is open it holds its connection: other operations fail with
/// errc::operation_in_progress until the cursor has been read to the end or closed.
/// Closing early (async_close, or destroying the cursor) interrupts the query; the
/// connection remains usable. Cancelling async_next (Asio cancellation slot) interrupts
/// the query as well and completes with errc::interrupted.
template <class Stream, class T = void>
class basic_cursor {
  using impl_type = detail::connection_impl<Stream>;
  using sink_type = typename detail::cursor_sink<T>::type;

 public:
  /// What async_next yields: std::vector of the row type, or dqlite::rows for T = void.
  using batch_type = typename sink_type::result_type;

  basic_cursor(basic_cursor&& o) noexcept
      : c_(o.c_), st_(std::move(o.st_)), first_(std::move(o.first_)),
        has_first_(std::exchange(o.has_first_, false)), id_(std::exchange(o.id_, 0)) {}
  basic_cursor& operator=(basic_cursor&& o) noexcept {
    if (this != &o) {
      abandon();
      c_ = o.c_;
      st_ = std::move(o.st_);
      first_ = std::move(o.first_);
      has_first_ = std::exchange(o.has_first_, false);
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  /// For the library: a cursor that belongs to no connection (what an operation on a
  /// moved-from connection completes with); it is done, and async_next fails with
  /// errc::not_connected.
  explicit basic_cursor(detail::detached_t) noexcept {}
  basic_cursor(const basic_cursor&) = delete;
  basic_cursor& operator=(const basic_cursor&) = delete;
  /// An unfinished cursor interrupts its query before the connection's next request.
  ~basic_cursor() { abandon(); }

  /// True once every batch has been handed out (or the cursor failed or was closed).
  bool done() const noexcept { return !has_first_ && (!st_ || st_->finished); }

  /// The next batch: the rows of the next response frame that has rows (frames without
  /// rows are read past). An empty batch means the result is complete, and comes only
  /// then. A batch whose rows hold more than max_result_bytes fails with
  /// errc::result_too_large (the rest of the result is interrupted; the cursor is done).
  /// Signature: void(error_code, batch_type).
  template <class Token = default_token_t>
  auto async_next(Token&& token = {}) {
    if (has_first_ || !st_ || st_->finished) {
      batch_type out{};
      error_code ec;
      std::string diag;
      if (has_first_) {
        has_first_ = false;
        out = std::move(first_);
        first_ = batch_type{};
      } else if (!st_) {
        ec = make_error_code(errc::not_connected);
        diag = "the cursor is not open (it was moved from, or its query failed)";
      }
      return boost::asio::async_initiate<Token, void(error_code, batch_type)>(
          detail::failed_initiation<impl_type>{c_}, token, ec, std::move(diag), std::move(out));
    }
    return boost::asio::async_initiate<Token, void(error_code, batch_type)>(
        detail::encoded_initiation<impl_type>{c_}, token,
        detail::cursor_proc<sink_type>{st_, {}}, still_held(id_),
        detail::exchange_params{true, c_->opts.request_timeout, id_});
  }

  /// Stops reading: interrupts the query if it is still running and waits until the
  /// connection is usable again. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    has_first_ = false;
    first_ = batch_type{};
    if (!st_ || st_->finished) {
      st_.reset();
      return boost::asio::async_initiate<Token, void(error_code)>(
          detail::failed_initiation<impl_type>{c_}, token, error_code{}, std::string());
    }
    abandon_keep();
    st_.reset();
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{c_}, token, detail::flush_proc{},
        [](impl_type&) { return error_code{}; },
        detail::exchange_params{true, c_->opts.request_timeout, 0});
  }

  /// Blocking async_next: the next batch (empty once the result is complete). Takes an
  /// optional `error_code&, diagnostics&` (else a failure throws dqlite::error).
  template <class... E>
  batch_type next(E&... e) {
    return detail::blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d) -> batch_type {
          if (has_first_) {
            has_first_ = false;
            return std::exchange(first_, batch_type{});
          }
          if (!st_) {
            ec = make_error_code(errc::not_connected);
            d.assign("the cursor is not open (it was moved from, or its query failed)");
            return {};
          }
          if (st_->finished) return {};
          return detail::blocking_exchange(
              *c_, detail::cursor_proc<sink_type>{st_, {}}, still_held(id_),
              detail::exchange_params{true, c_->opts.request_timeout, id_}, ec, d);
        },
        e...);
  }

  /// Blocking async_close. Takes an optional `error_code&, diagnostics&`.
  template <class... E>
  void close(E&... e) {
    detail::blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d) {
          has_first_ = false;
          first_ = batch_type{};
          if (!st_ || st_->finished) {
            st_.reset();
            return;
          }
          abandon_keep();
          st_.reset();
          detail::blocking_exchange(*c_, detail::flush_proc{},
                                    [](impl_type&) { return error_code{}; },
                                    detail::exchange_params{true, c_->opts.request_timeout, 0}, ec, d);
        },
        e...);
  }

  /// For the library: a cursor over connection c (st empty: a cursor whose query failed).
  basic_cursor(std::shared_ptr<impl_type> c, std::shared_ptr<detail::cursor_shared> st,
               std::uint64_t id, batch_type first)
      : c_(std::move(c)), st_(std::move(st)), first_(std::move(first)), has_first_(st_ != nullptr),
        id_(id) {}

 private:
  // Reads on only while the connection still holds this cursor's result: after a close or
  // a reconnect it holds nothing, and a read would wait for bytes nobody owes.
  static auto still_held(std::uint64_t id) {
    return [id](impl_type& ci) -> error_code {
      if (ci.holder == id) return {};
      ci.diag.assign("the cursor's connection was closed or opened again since the cursor was "
                     "opened; its result is gone");
      return make_error_code(errc::not_connected);
    };
  }

  // Hands the rest of the result to the connection's housekeeping.
  void abandon_keep() noexcept {
    if (c_ && st_ && !st_->finished) {
      st_->finished = true;
      if (c_->holder == id_) {
        c_->holder = 0;
        c_->drain_pending = true;
      }
    }
  }
  void abandon() noexcept {
    abandon_keep();
    st_.reset();
  }

  std::shared_ptr<impl_type> c_;
  std::shared_ptr<detail::cursor_shared> st_;
  batch_type first_{};
  bool has_first_ = false;
  std::uint64_t id_ = 0;
};

}  // namespace dqlite
