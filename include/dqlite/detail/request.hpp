// Starting a statement request (SQL text or a prepared statement) with parameters.
#pragma once

#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/config.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/server_probe.hpp>
#include <dqlite/detail/sql_text.hpp>
#include <dqlite/detail/token.hpp>
#include <dqlite/error.hpp>
#include <dqlite/params.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/associator.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite::detail {

/// What a request runs: SQL text (EXEC_SQL / QUERY_SQL) or a prepared statement (EXEC /
/// QUERY) of one opening of the connection.
struct request_spec {
  bool prepared = false;
  std::string_view sql;          ///< SQL text, when not prepared
  std::uint32_t stmt = 0;        ///< statement id, when prepared
  std::uint64_t generation = 0;  ///< the opening the statement belongs to
  std::uint64_t holder = 0;      ///< the cursor that will hold the connection, if any
  bool read_only = false;        ///< a prepared statement that cannot write (is_read_only_sql)
  bool returning = false;        ///< the prepared statement has a RETURNING clause
  tx_effect tx = tx_effect::none;  ///< what the prepared statement does to a transaction

  /// The shape of what the request runs (a prepared statement is one statement).
  sql_shape shape() const noexcept {
    if (prepared) return sql_shape{1, 0, returning, tx};
    return scan_sql(sql);
  }

  wire::request type(bool query) const noexcept {
    if (prepared) return query ? wire::request::query : wire::request::exec;
    return query ? wire::request::query_sql : wire::request::exec_sql;
  }
};

/// Statements need a database: a connection made without one (an empty
/// connection_options::database, for administration) has none until async_open_database.
template <class Impl>
error_code check_database(Impl& ci) {
  if (!ci.database.empty()) return {};
  ci.diag.assign("no database is open on this connection (connection_options::database was "
                 "empty): call async_open_database first");
  return make_error_code(errc::not_connected);
}

/// The operations that run a query, for messages.
inline constexpr const char* query_operations =
    "fetch, fetchall, fetchone, fetchval, fetch_into, cursor";

/// Refuses, before anything is sent, a statement request the server would run wrongly:
/// - a query whose SQL text holds no statement, or more than one: libdqlite 1.11.1 runs the
///   first and silently ignores the rest (1.15 and later fail with "nonempty statement
///   tail");
/// - an execute of a statement with a RETURNING clause: libdqlite aborts on it through
///   EXEC/EXEC_SQL (1.11.1 on any, 1.18.6 on one that returns two rows or more);
/// - on a server found not to read the parameter encoding for more than 255 parameters
///   (server_probe.hpp: libdqlite before 1.12), more than 255 parameters, which would be
///   bound wrong, and a query with a RETURNING clause, whose changes 1.11.1 does not store.
DQLITE_DECL error_code check_statement(session_state& ci, const request_spec& spec,
                                        const sql_shape& shape, bool query, std::size_t params);

/// Writes a request's parameters (a std::tuple<const P&...>) into a frame being built.
using params_writer = error_code (*)(wire::buffer& out, wire::frame_mark m, const void* params);

template <class... P>
error_code write_params_tuple(wire::buffer& out, wire::frame_mark m, const void* params) {
  return std::apply([&](const P&... p) { return write_params(out, m, p...); },
                    *static_cast<const std::tuple<const P&...>*>(params));
}

/// Encodes the request into out (the connection's wbuf, or a buffer of its own while the
/// server is probed first), its parameters written by write from params.
DQLITE_DECL error_code encode_request(wire::buffer& out, session_state& ci,
                                      const request_spec& spec, bool query, params_writer write,
                                      const void* params);

/// The same, with the parameters given.
template <class... P>
error_code encode_request_to(wire::buffer& out, session_state& ci, const request_spec& spec,
                             bool query, const P&... params) {
  const std::tuple<const P&...> refs(params...);
  return encode_request(out, ci, spec, query, &write_params_tuple<P...>, &refs);
}

/// Encodes EXEC_SQL of a fixed SQL text without parameters (BEGIN, COMMIT, ROLLBACK).
inline auto sql_request(std::string_view sql) {
  return [sql](auto& ci) -> error_code {
    wire::frame_mark m{};
    (void)wire::begin_sql_request(ci.wbuf, wire::request::exec_sql, ci.db_id, sql, m);
    wire::end_frame(ci.wbuf, m);
    return {};
  };
}

/// Encodes FINALIZE of statement `id`.
inline auto finalize_request(std::uint32_t id) {
  return [id](auto& ci) -> error_code {
    wire::encode_finalize(ci.wbuf, ci.db_id, id);
    return {};
  };
}

/// Checks (check_statement) and encodes the request into impl.wbuf. shape and n (the
/// number of parameters) as the caller computed them: the SQL text is scanned once.
template <class Impl, class... P>
error_code encode_statement(Impl& ci, const request_spec& spec, const sql_shape& shape,
                            bool query, std::size_t n, const P&... params) {
  if (auto e = check_statement(ci, spec, shape, query, n)) return e;
  return encode_request_to(ci.wbuf, ci, spec, query, params...);
}

/// How a statement request runs: bounded by request_timeout, held by its cursor (if any),
/// and whether it may write (its outcome is unknown once sent and its answer lost).
template <class Impl>
exchange_params statement_params(const Impl& c, const request_spec& spec, const sql_shape& shape,
                                 bool query) {
  // An EXEC may write; a query may too unless its text cannot (read from its first words).
  const bool may_write =
      !query || !(spec.prepared ? spec.read_only : is_read_only_sql(spec.sql));
  return exchange_params{true, c.opts.request_timeout, spec.holder, may_write, shape.tx};
}

/// Whether a request must wait for the wide-parameter probe (server_probe.hpp): it has
/// more than 255 parameters, or is a query with RETURNING, on an open connection whose
/// server has not been probed yet, and nothing else runs on the connection.
DQLITE_DECL bool needs_probe(const session_state& c, const sql_shape& shape, bool query,
                             std::size_t n);

/// The probe's answer: what the server reads, unless the probe failed otherwise than by
/// the server's refusal (false: the connection failed, ec says how).
inline bool record_probe(session_state& c, const error_code& ec, const wide_params_answer& answer) {
  const bool refused = ec.category() == server_category() ||
                       ec == make_error_code(errc::server_failure);
  if (ec && !refused) return false;
  remember_wide_params(c, !ec && answer.echoed ? wide_params::supported : wide_params::unsupported);
  return true;
}

/// Encodes the wide-parameter probe into ci.wbuf (when a database is open).
DQLITE_DECL error_code encode_probe(session_state& ci);

/// A statement request encoded before the probe that runs first, with what its start
/// needs after the probe (when its SQL text is gone).
struct encoded_request {
  request_spec spec;  ///< without its SQL text
  sql_shape shape;
  bool query;
  std::size_t n;  ///< the number of parameters
  wire::buffer request;
  std::uint64_t generation;  ///< the opening the request was encoded for
  exchange_params exchange;  ///< the request's, found while it started

  /// Keeps what a request on connection c needs of its SQL text, found now.
  static encoded_request make(const session_state& c, const request_spec& spec,
                              const sql_shape& shape, bool query, std::size_t n,
                              wire::buffer request, const exchange_params& exchange) {
    encoded_request r{spec, shape, query, n, std::move(request), c.generation, exchange};
    r.spec.sql = {};  // only valid while the operation starts
    return r;
  }
};

/// Makes r's request the connection's request, after the checks that depend on what the
/// probe found (check_statement) and on the opening it was encoded for (a reopened
/// connection has other statement ids).
DQLITE_DECL error_code adopt_encoded_request(session_state& ci, encoded_request& r);

/// What start_request needs of a statement request: its parameters only while it starts.
struct request_start {
  request_spec spec;
  bool query;
  std::size_t n;  ///< the number of parameters
  params_writer write;
  const void* params;
};

/// The wide-parameter probe before a request (start_request), and then the request: the
/// target of the probe's exchange. Its executor and cancellation slot are those of the
/// request's target, which it owns until it starts the request (or completes it, when the
/// probe failed).
template <class Stream>
class probe_then_start final : public loop_target<typename Stream::executor_type> {
  using io_executor = typename Stream::executor_type;
  using impl = connection_impl<Stream>;

 public:
  /// Starts the probe, and takes the request's target from owner; r: the request, encoded
  /// (its parameters are gone after this).
  static void run(const std::shared_ptr<impl>& c, target_guard<io_executor>& owner,
                  encoded_request r) {
    boost::asio::recycling_allocator<probe_then_start> alloc;
    probe_then_start* const mem = alloc.allocate(1);
    auto* p = ::new (static_cast<void*>(mem)) probe_then_start(c, owner.release(), std::move(r));
    loop_handler<io_executor> done(p);  // frees p, and the target, if the start throws
    const exchange_params probe{true, c->opts.request_timeout, 0};
    bool owns = false;
    const error_code ec = claim_and_encode(*c, encode_probe, probe, owns);
    p->m_.emplace(*c, wide_params_probe_proc{}, ec, owns, probe);
    run_exchange(c, *p->m_, probe.timeout, std::move(done));
  }

  void complete(error_code ec, bool inline_done) override {
    const wide_params_answer answer = m_->take();
    target_guard<io_executor> owner(std::exchange(t_, nullptr));
    std::shared_ptr<impl> c = std::move(c_);
    encoded_request r = std::move(r_);
    destroy();
    if (!record_probe(*c, ec, answer)) return owner.release().complete_empty(ec, inline_done);
    begin_request(
        c, owner, [&](impl& ci) { return adopt_encoded_request(ci, r); }, r.exchange);
  }
  void destroy() noexcept override {
    if (t_) std::exchange(t_, nullptr)->destroy();  // abandoned: the request never starts
    this->~probe_then_start();
    boost::asio::recycling_allocator<probe_then_start>().deallocate(this, 1);
  }
  io_executor executor() const noexcept override { return t_->executor(); }
  boost::asio::cancellation_slot slot() const noexcept override { return t_->slot(); }

 private:
  probe_then_start(const std::shared_ptr<impl>& c, request_core<io_executor>& t,
                   encoded_request r) noexcept
      : c_(c), t_(&t), r_(std::move(r)) {}
  ~probe_then_start() = default;

  std::shared_ptr<impl> c_;
  request_core<io_executor>* t_;  ///< owned until the request starts
  encoded_request r_;
  std::optional<exchange_machine<wide_params_probe_proc>> m_;
};

/// Starts statement request s on connection c, completing target t, which it owns (an
/// exception thrown while the request starts frees it, and destroys the caller's handler):
/// the probe first when the request needs it (needs_probe), then the request. Compiled
/// once per stream type,
/// whatever the caller's handler and the response processor (with
/// DQLITE_CLIENT_SEPARATE_COMPILATION, the TCP and unix socket forms in the unit that
/// includes <dqlite/src.hpp>).
template <class Stream>
void start_request(const std::shared_ptr<connection_impl<Stream>>& c,
                   request_core<typename Stream::executor_type>& t, const request_start& s) {
  target_guard<typename Stream::executor_type> owner(&t);
  const sql_shape shape = s.spec.shape();
  const exchange_params exchange = statement_params(*c, s.spec, shape, s.query);
  if (needs_probe(*c, shape, s.query, s.n) &&
      !check_statement(*c, s.spec, shape, s.query, s.n)) {
    wire::buffer request;
    if (!encode_request(request, *c, s.spec, s.query, s.write, s.params))
      return probe_then_start<Stream>::run(
          c, owner,
          encoded_request::make(*c, s.spec, shape, s.query, s.n, std::move(request), exchange));
    c->diag.clear();  // the same error is found again below, and reported there
  }
  begin_request(
      c, owner,
      [&](connection_impl<Stream>& ci) -> error_code {
        if (auto e = check_statement(ci, s.spec, shape, s.query, s.n)) return e;
        return encode_request(ci.wbuf, ci, s.spec, s.query, s.write, s.params);
      },
      exchange);
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>.
extern template void start_request<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
extern template void start_request<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
#endif

/// The completion of the wide-parameter probe (server_probe.hpp) that runs before a
/// request that needs it, for a caller's handler that start_request cannot take (see
/// erasable_handler): records what the server reads, then starts the request, encoded
/// beforehand (its parameters are only referenced while it starts), with the caller's
/// handler. A plain handler rather than a composed operation: its executor, allocator and
/// cancellation slot are the caller's handler's (see the associator below), and the
/// request's exchange is the one compiled for that handler anyway.
template <class Impl, class Proc, class Handler>
struct probe_then_request {
  Handler handler;
  std::shared_ptr<Impl> c;
  Proc proc;
  encoded_request r;
  using result_type = typename Proc::result_type;

  /// Called as an exchange's handler is (never inside the initiating function).
  void operator()(error_code ec, wide_params_answer answer) {
    if (!record_probe(*c, ec, answer)) {  // the connection failed: report that
      if constexpr (std::is_void_v<result_type>)
        return std::move(handler)(ec);
      else
        return std::move(handler)(ec, result_type{});
    }
    auto conn = c;
    start_exchange(
        conn, std::move(proc), std::move(handler),
        [this](Impl& ci) { return adopt_encoded_request(ci, r); }, r.exchange);
  }
};

/// The blocking twin of the probe start_request runs first when a request needs it
/// (more than 255 parameters, or a query with RETURNING, on a server not probed yet).
/// False when the probe itself failed (ec, diag say why).
template <class Impl>
bool blocking_probe(Impl& c, const request_spec& spec, const sql_shape& shape, bool query,
                    std::size_t n, error_code& ec, dqlite::diagnostics& d) {
  if (!needs_probe(c, shape, query, n) || check_statement(c, spec, shape, query, n))
    return true;
  auto answer = blocking_exchange(
      c, wide_params_probe_proc{},
      encode_probe,
      exchange_params{true, c.opts.request_timeout, 0}, ec, d);
  if (!record_probe(c, ec, answer)) return false;
  ec = {};
  d = {};
  return true;
}

/// A blocking statement request: the probe when needed, then the request.
template <class Impl, class Proc, class... P>
auto blocking_statement(Impl& c, Proc proc, const request_spec& spec, bool query,
                        error_code& ec, dqlite::diagnostics& d, const P&... params) {
  if constexpr (!(param_arg<const P&> && ...)) {
    check_params<const P&...>();  // fails with the list of supported types
    return typename Proc::result_type{};
  } else {
    const std::size_t n = (std::size_t{0} + ... + param_count(params));
    const sql_shape shape = spec.shape();  // for the probe and the exchange's parameters
    if (!blocking_probe(c, spec, shape, query, n, ec, d)) return typename Proc::result_type{};
    return blocking_exchange(
        c, std::move(proc),
        [&](Impl& ci) { return encode_statement(ci, spec, shape, query, n, params...); },
        statement_params(c, spec, shape, query), ec, d);
  }
}

/// Tag of the objects that belong to no connection: the statement, cursor or transaction
/// an operation on a moved-from connection completes with. Their operations fail with
/// errc::not_connected.
struct detached_t {
  explicit detached_t() = default;
};
inline constexpr detached_t detached{};

/// The diagnostics of an operation on a moved-from connection (or on an object that
/// belongs to none). One object for the whole program, never changed.
inline const std::shared_ptr<const dqlite::diagnostics>& moved_from_diagnostics() {
  static const auto d = std::make_shared<const dqlite::diagnostics>(
      "the connection was moved from: it has no state and no stream left. Nothing was sent");
  return d;
}

/// The failure of an operation on a moved-from connection: errc::not_connected, with
/// moved_from_diagnostics() in diag.
inline error_code fail_moved_from(dqlite::diagnostics& diag) {
  diag = *moved_from_diagnostics();
  return make_error_code(errc::not_connected);
}

/// The empty result a failed operation completes with: R{}, or for the library's objects
/// that belong to a connection, one that belongs to none.
template <class R>
R empty_result() {
  if constexpr (std::is_default_constructible_v<R>)
    return R{};
  else
    return R(detached);
}

/// Completes h with (ec, results...), posted (never invoked inline) to the handler's
/// associated executor, whose default is ex, or the system executor when ex is empty.
/// Sig: void(error_code, R...).
template <class Sig, class Handler, class Executor, class... R>
void complete_posted(Handler&& h, const std::optional<Executor>& ex, error_code ec,
                     R... results) {
  // A post (deliver's), not a composed operation: these completions are rare, and a
  // composed operation per handler type is a lot of code to compile for them.
  // Not Executor(system_executor()): for any_io_executor that conversion instantiates the
  // whole type erasure of the system executor, in every unit that connects.
  if (ex) {
    deliver(std::forward<Handler>(h), *ex, true, ec, std::move(results)...);
  } else {
    deliver(std::forward<Handler>(h), boost::asio::system_executor(), true, ec,
            std::move(results)...);
  }
}

/// Completes h with errc::not_connected and empty results, for an operation started on a
/// moved-from connection, which has no stream to run it on (Sig: void(error_code, R...)).
/// Posted to the handler's associated executor; its default is ex, the executor the
/// connection had, or the system executor when there is none.
template <class Sig, class Handler, class Executor>
void complete_moved_from(Handler&& h, const std::optional<Executor>& ex) {
  [&]<class... R>(void (*)(error_code, R...)) {
    complete_posted<Sig>(std::forward<Handler>(h), ex, make_error_code(errc::not_connected),
                         empty_result<R>()...);
  }(static_cast<Sig*>(nullptr));
}

/// The diagnostics an operation on connection c reports: c's, or for a moved-from
/// connection (c null), moved_from_diagnostics().
template <class Impl>
std::shared_ptr<const dqlite::diagnostics> diagnostics_of_impl(const std::shared_ptr<Impl>& c) {
  if (!c) return moved_from_diagnostics();
  return {c, &c->diag};
}

/// Initiation of a statement request whose response goes to a Proc.
template <class Impl>
struct request_initiation {
  std::shared_ptr<Impl> c;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler, class Proc, class... P>
  void operator()(Handler&& h, Proc proc, request_spec spec, bool query, const P&... params) {
    using executor = typename Impl::executor_type;
    using handler_type = std::decay_t<Handler>;
    if (!c) {
      if constexpr (erasable_with_executor<handler_type, executor>) {
        // Through a target, as every other completion of such a handler: no code of its own.
        // The handler's executor is the one it completes on (not the connection's, ex).
        const executor own = boost::asio::get_associated_executor(h);
        auto* t = request_target<executor, Proc, handler_type>::create(std::forward<Handler>(h),
                                                                       own, std::move(proc));
        return post_completion<executor>(t, make_error_code(errc::not_connected), true);
      } else {
        return complete_moved_from<completion_sig_t<typename Proc::result_type>>(
            std::forward<Handler>(h), ex);
      }
    }
    const std::size_t n = (std::size_t{0} + ... + param_count(params));
    if constexpr (erasable_handler<handler_type, executor>) {
      // What depends on the handler and the processor is the target; the rest is compiled
      // once (start_request).
      auto* t = request_target<executor, Proc, handler_type>::create(
          std::forward<Handler>(h), c->stream.get_executor(), std::move(proc));
      const std::tuple<const P&...> refs(params...);
      start_request(c, *t, request_start{spec, query, n, &write_params_tuple<P...>, &refs});
    } else {
      const sql_shape shape = spec.shape();
      // More than 255 parameters, or a query with RETURNING, on a connection whose server has
      // not been probed yet: probe first.
      if (needs_probe(*c, shape, query, n) && !check_statement(*c, spec, shape, query, n)) {
        wire::buffer request;
        if (!encode_request_to(request, *c, spec, query, params...)) {
          using then = probe_then_request<Impl, Proc, std::decay_t<Handler>>;
          auto conn = c;
          const auto timeout = c->opts.request_timeout;
          start_exchange(
              conn, wide_params_probe_proc{},
              then{std::forward<Handler>(h), c, std::move(proc),
                   encoded_request::make(*c, spec, shape, query, n, std::move(request),
                                         statement_params(*c, spec, shape, query))},
              encode_probe, exchange_params{true, timeout, 0});
          return;
        }
        c->diag.clear();  // the same error is found again below, and reported there
      }
      start_exchange(
          c, std::move(proc), std::forward<Handler>(h),
          [&](Impl& ci) { return encode_statement(ci, spec, shape, query, n, params...); },
          statement_params(*c, spec, shape, query));
    }
  }
};

/// Initiation of an exchange with a request encoded by a function of the connection.
template <class Impl>
struct encoded_initiation {
  std::shared_ptr<Impl> c;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler, class Proc, class Encode>
  void operator()(Handler&& h, Proc proc, Encode encode, exchange_params params) {
    if (!c)
      return complete_moved_from<completion_sig_t<typename Proc::result_type>>(
          std::forward<Handler>(h), ex);
    start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), params);
  }
};

/// Initiation of a composed operation Op (async_compose) on the connection.
template <class Impl, class Op, class Sig>
struct composed_initiation {
  std::shared_ptr<Impl> c;
  Op op;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler>
  void operator()(Handler&& h) {
    if (!c) return complete_moved_from<Sig>(std::forward<Handler>(h), ex);
    boost::asio::async_compose<Handler, Sig>(std::move(op), h, c->stream.get_executor());
  }
};

/// Completes a handler with an error found before anything could start (posted to the
/// handler's executor, never invoked inline).
template <class Impl>
struct failed_initiation {
  std::shared_ptr<Impl> c;
  std::optional<typename Impl::executor_type> ex{};  ///< a moved-from connection's executor
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return diagnostics_of_impl(c); }

  template <class Handler, class... R>
  void operator()(Handler&& h, error_code ec, std::string diag, R... results) {
    if (!c) return complete_moved_from<void(error_code, R...)>(std::forward<Handler>(h), ex);
    if (!diag.empty()) c->diag.assign(diag);
    complete_posted<void(error_code, R...)>(std::forward<Handler>(h),
                                            std::optional(c->stream.get_executor()), ec,
                                            std::move(results)...);
  }
};

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/request.ipp>
#endif

namespace boost::asio {

/// The probe's completion before a request is associated with what the caller's handler
/// is.
template <template <class, class> class Associator, class Impl, class Proc, class Handler,
          class Default>
struct associator<Associator, ::dqlite::detail::probe_then_request<Impl, Proc, Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type get(
      const ::dqlite::detail::probe_then_request<Impl, Proc, Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(const ::dqlite::detail::probe_then_request<Impl, Proc, Handler>& h,
                  const Default& d) noexcept -> decltype(Associator<Handler, Default>::get(h.handler, d)) {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio
