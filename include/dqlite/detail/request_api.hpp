// The statement operations shared by connections (SQL text) and prepared statements.
#pragma once

#include <dqlite/cursor.hpp>
#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/detail/request.hpp>
#include <dqlite/detail/session_procs.hpp>
#include <dqlite/detail/token.hpp>
#include <dqlite/field.hpp>
#include <dqlite/mapping.hpp>
#include <dqlite/value.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>

#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite::detail {

/// Opening a cursor: the request and its first ROWS frame, then the cursor. Params: the
/// statement's parameters, referenced only during the first (synchronous) call.
template <class Impl, class Sink, class Cursor, class Params>
struct open_cursor_op {
  std::shared_ptr<Impl> c;
  std::shared_ptr<cursor_shared> st;
  request_spec spec;
  Params params;  // a tuple of references

  template <class Self>
  void operator()(Self& self) {
    std::apply(
        [&](const auto&... p) {
          request_initiation<Impl>{c}(std::move(self), cursor_proc<Sink>{st, {}}, spec, true,
                                      p...);
        },
        params);
  }
  template <class Self>
  void operator()(Self& self, error_code ec, typename Sink::result_type first) {
    if (ec) st.reset();
    self.complete(ec, Cursor(c, std::move(st), spec.holder, std::move(first)));
  }
};

/// Statement operations on one request target (SQL text or a prepared statement). Every
/// operation takes the statement's parameters followed by an optional completion token.
template <class Stream>
class request_api {
 public:
  using impl_type = connection_impl<Stream>;

  /// ex: the executor of a moved-from connection (c null), where its failures complete.
  request_api(std::shared_ptr<impl_type> c, request_spec spec,
              const typename impl_type::executor_type* ex = nullptr)
      : c_(std::move(c)), spec_(spec), ex_(ex) {}

  /// Runs a statement that returns no rows. Signature: void(error_code, exec_result).
  template <class... Args>
  auto async_execute(Args&&... args) {
    return run<void(error_code, exec_result)>(exec_proc{}, false, std::forward<Args>(args)...);
  }

  /// All rows as dynamic values. Signature: void(error_code, dqlite::rows).
  template <class... Args>
  auto async_fetchall(Args&&... args) {
    return query<dynamic_rows_sink>(std::forward<Args>(args)...);
  }

  /// All rows as std::vector<T> (T = void: dynamic rows).
  template <class T = void, class... Args>
  auto async_fetch(Args&&... args) {
    if constexpr (std::is_void_v<T>)
      return query<dynamic_rows_sink>(std::forward<Args>(args)...);
    else
      return query<typed_rows_sink<T>>(std::forward<Args>(args)...);
  }

  /// All rows, appended to out. Signature: void(error_code, std::size_t rows_appended).
  template <class T, class... Args>
  auto async_fetch_into(std::vector<typename row_mapper<T>::object_type>& out, Args&&... args) {
    using sink = typed_rows_sink<T, false, true>;
    return query_with<sink>(sink(&out), std::forward<Args>(args)...);
  }

  /// The first row, or an empty optional. Signature: void(error_code, std::optional<T>).
  template <class T = row, class... Args>
  auto async_fetchone(Args&&... args) {
    return query<typed_rows_sink<T, true>>(std::forward<Args>(args)...);
  }

  /// The first column of the first row. Signature: void(error_code, T).
  template <class T, class... Args>
  auto async_fetchval(Args&&... args) {
    static_assert(field<T>, "dqlite: async_fetchval<T>: T is not a supported field type "
                            "(see dqlite/field.hpp, or specialise dqlite::field_traits<T>)");
    return query<value_sink<T>>(std::forward<Args>(args)...);
  }

  /// A cursor over the result (see basic_cursor). Signature:
  /// void(error_code, basic_cursor<Stream, T>).
  template <class T = void, class... Args>
  auto async_cursor(Args&&... args) {
    using cursor = basic_cursor<Stream, T>;
    using sink = typename cursor_sink<T>::type;
    return with_token<default_token_t, void(error_code, cursor)>(
        [this]<class Token, class... P>(Token&& token, P&&... params) {
          return boost::asio::async_initiate<Token, void(error_code, cursor)>(
              cursor_initiation<sink, cursor>{c_, moved_ex()}, token, spec_, std::forward<P>(params)...);
        },
        std::forward<Args>(args)...);
  }

  // ---- blocking forms ----
  //
  // The same operations in the calling thread, driven by the same state machines over
  // blocking socket I/O (TCP and unix socket connections). Each takes the statement's
  // parameters, then optionally `error_code&, diagnostics&`: with them a failure is
  // reported there (and the result is empty); without them it throws dqlite::error.

  /// Runs a statement that returns no rows.
  template <class... Args>
  exec_result execute(Args&&... args) {
    return blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d, const auto&... p) {
          return this->blocking_request(exec_proc{}, false, ec, d, p...);
        },
        std::forward<Args>(args)...);
  }

  /// All rows as dynamic values.
  template <class... Args>
  rows fetchall(Args&&... args) {
    return blocking_query<dynamic_rows_sink>({}, std::forward<Args>(args)...);
  }

  /// All rows as std::vector<T> (T = void: dynamic rows).
  template <class T = void, class... Args>
  auto fetch(Args&&... args) {
    if constexpr (std::is_void_v<T>)
      return blocking_query<dynamic_rows_sink>({}, std::forward<Args>(args)...);
    else
      return blocking_query<typed_rows_sink<T>>({}, std::forward<Args>(args)...);
  }

  /// All rows, appended to out; returns how many were appended.
  template <class T, class... Args>
  std::size_t fetch_into(std::vector<typename row_mapper<T>::object_type>& out, Args&&... args) {
    using sink = typed_rows_sink<T, false, true>;
    return blocking_query<sink>(sink(&out), std::forward<Args>(args)...);
  }

  /// The first row, or an empty optional.
  template <class T = row, class... Args>
  auto fetchone(Args&&... args) {
    return blocking_query<typed_rows_sink<T, true>>({}, std::forward<Args>(args)...);
  }

  /// The first column of the first row (errc::no_rows without rows, unless T is an
  /// optional).
  template <class T, class... Args>
  T fetchval(Args&&... args) {
    static_assert(field<T>, "dqlite: fetchval<T>: T is not a supported field type "
                            "(see dqlite/field.hpp, or specialise dqlite::field_traits<T>)");
    return blocking_query<value_sink<T>>({}, std::forward<Args>(args)...);
  }

  /// A cursor over the result, read with its blocking next().
  template <class T = void, class... Args>
  basic_cursor<Stream, T> cursor(Args&&... args) {
    using cursor_type = basic_cursor<Stream, T>;
    using sink = typename cursor_sink<T>::type;
    return blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d, const auto&... p) {
          if (!c_) {
            ec = fail_moved_from(d);
            return cursor_type(detached);
          }
          request_spec spec = spec_;
          spec.holder = ++c_->next_id;
          auto st = std::make_shared<cursor_shared>();
          auto first = blocking_statement(*c_, cursor_proc<sink>{st, {}}, spec, true, ec, d, p...);
          if (ec) st.reset();
          return cursor_type(c_, std::move(st), spec.holder, std::move(first));
        },
        std::forward<Args>(args)...);
  }

  template <class Sink, class... Args>
  auto query(Args&&... args) {
    return query_with<Sink>(Sink{}, std::forward<Args>(args)...);
  }

  template <class Sink, class... Args>
  auto query_with(Sink sink, Args&&... args) {
    using result = typename Sink::result_type;
    return run<void(error_code, result)>(rows_proc<Sink>{std::move(sink)}, true,
                                         std::forward<Args>(args)...);
  }

 protected:
  template <class Proc, class... P>
  auto blocking_request(Proc proc, bool is_query, error_code& ec, dqlite::diagnostics& d,
                        const P&... params) {
    if (!c_) {
      ec = fail_moved_from(d);
      return typename Proc::result_type{};
    }
    return blocking_statement(*c_, std::move(proc), spec_, is_query, ec, d, params...);
  }

  template <class Sink, class... Args>
  auto blocking_query(Sink sink, Args&&... args) {
    return blocking_call(
        [this, &sink](error_code& ec, dqlite::diagnostics& d, const auto&... p) {
          return this->blocking_request(rows_proc<Sink>{std::move(sink)}, true, ec, d, p...);
        },
        std::forward<Args>(args)...);
  }

  template <class Sig, class Proc, class... Args>
  auto run(Proc proc, bool is_query, Args&&... args) {
    return with_token<default_token_t, Sig>(
        [&]<class Token, class... P>(Token&& token, P&&... params) {
          return boost::asio::async_initiate<Token, Sig>(request_initiation<impl_type>{c_, moved_ex()}, token,
                                                         std::move(proc), spec_, is_query,
                                                         std::forward<P>(params)...);
        },
        std::forward<Args>(args)...);
  }

  template <class Sink, class Cursor>
  struct cursor_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<typename impl_type::executor_type> ex{};
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return diagnostics_of_impl(c);
    }

    template <class Handler, class... P>
    void operator()(Handler&& h, request_spec spec, const P&... params) {
      if (!c) return complete_moved_from<void(error_code, Cursor)>(std::forward<Handler>(h), ex);
      spec.holder = ++c->next_id;
      using op = open_cursor_op<impl_type, Sink, Cursor, std::tuple<const P&...>>;
      boost::asio::async_compose<Handler, void(error_code, Cursor)>(
          op{c, std::make_shared<cursor_shared>(), spec, std::tuple<const P&...>(params...)}, h,
          c->stream.get_executor());
    }
  };


 protected:
  std::optional<typename impl_type::executor_type> moved_ex() const {
    if (ex_) return *ex_;
    return std::nullopt;
  }

  std::shared_ptr<impl_type> c_;
  request_spec spec_;
  const typename impl_type::executor_type* ex_ = nullptr;
};

}  // namespace dqlite::detail
