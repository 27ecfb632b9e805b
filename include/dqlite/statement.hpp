// Prepared statements, and running one statement over many parameter sets.
#pragma once

#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/detail/ranges.hpp>
#include <dqlite/detail/request.hpp>
#include <dqlite/detail/request_api.hpp>
#include <dqlite/detail/session_procs.hpp>
#include <dqlite/detail/sql_text.hpp>
#include <dqlite/error.hpp>
#include <dqlite/params.hpp>
#include <dqlite/value.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dqlite {

/// A statement prepared on a connection (PREPARE), run any number of times with new
/// parameters: async_execute, async_fetch<T>, async_fetchone<T>, async_fetchval<T>,
/// async_fetch_into<T>, async_fetchall, async_cursor<T> take the parameters followed by an
/// optional completion token, as the connection's operations do after the SQL text.
///
/// The statement belongs to its connection: it runs there, one operation at a time with
/// the connection's other operations, and cannot be used once the connection has closed or
/// reconnected (errc::not_connected). async_close finalizes it on the server; a statement
/// destroyed without async_close is finalized before the connection's next request.
/// Statements are released by the server when the connection closes.
template <class Stream>
class basic_statement : public detail::request_api<Stream> {
  using base = detail::request_api<Stream>;
  using impl_type = detail::connection_impl<Stream>;

 public:
  basic_statement(basic_statement&& o) noexcept
      : base(o.c_, o.spec_), params_(o.params_), open_(std::exchange(o.open_, false)) {
    o.spec_.generation = 0;
  }
  basic_statement& operator=(basic_statement&& o) noexcept {
    if (this != &o) {
      release();
      this->c_ = o.c_;
      this->spec_ = o.spec_;
      params_ = o.params_;
      open_ = std::exchange(o.open_, false);
      o.spec_.generation = 0;
    }
    return *this;
  }
  /// For the library: a statement that belongs to no connection (what an operation on a
  /// moved-from connection completes with); its operations fail with errc::not_connected.
  explicit basic_statement(detail::detached_t) noexcept : base(nullptr, detail::request_spec{}) {}
  basic_statement(const basic_statement&) = delete;
  basic_statement& operator=(const basic_statement&) = delete;
  ~basic_statement() { release(); }

  /// The server's id of the statement.
  std::uint32_t id() const noexcept { return this->spec_.stmt; }
  /// How many parameters the statement takes.
  std::uint64_t param_count() const noexcept { return params_; }
  /// True until closed, and while its connection stays open (no reconnect since).
  bool is_open() const noexcept {
    return open_ && this->c_->state == detail::conn_state::open &&
           this->c_->generation == this->spec_.generation;
  }

  /// Finalizes the statement on the server. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    const bool live = is_open();
    open_ = false;
    // Never send the id again: a server may reuse it, and 1.11.1 crashes on an EXEC of a
    // finalized statement.
    this->spec_.generation = 0;
    if (!live) {  // nothing left on the server
      return boost::asio::async_initiate<Token, void(error_code)>(
          detail::failed_initiation<impl_type>{this->c_}, token, error_code{}, std::string());
    }
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{this->c_}, token, detail::empty_proc{},
        detail::finalize_request(id()),
        detail::exchange_params{true, this->c_->opts.request_timeout, 0});
  }

  /// Blocking async_close; takes an optional `error_code&, diagnostics&` (else throws).
  template <class... E>
  void close(E&... e) {
    detail::blocking_call(
        [this](error_code& ec, dqlite::diagnostics& d) {
          const bool live = is_open();
          open_ = false;
          this->spec_.generation = 0;  // never sent again (see async_close)
          if (!live) return;
          detail::blocking_exchange(*this->c_, detail::empty_proc{}, detail::finalize_request(id()),
                                    detail::exchange_params{true, this->c_->opts.request_timeout, 0},
                                    ec, d);
        },
        e...);
  }

  /// For the library: a statement prepared on connection c (open: PREPARE succeeded;
  /// read_only: it cannot change the database (detail::is_read_only_sql); shape: what
  /// detail::scan_sql found in its text).
  basic_statement(std::shared_ptr<impl_type> c, const wire::stmt_response& r, bool open,
                  bool read_only = false, const detail::sql_shape& shape = {})
      : base(c, detail::request_spec{true, {}, r.id, open ? c->generation : 0, 0, read_only,
                                     shape.returning, shape.tx}),
        params_(r.params), open_(open) {}

 private:
  void release() noexcept {
    if (is_open()) this->c_->finalize_pending.push_back(id());
    open_ = false;
    this->spec_.generation = 0;
  }

  std::uint64_t params_ = 0;
  bool open_ = false;
};

namespace detail {

/// Encodes PREPARE(sql). The text must hold exactly one statement: libdqlite 1.11.1
/// prepares the first and silently drops the rest (1.15 and later fail). For executemany
/// (runs: EXEC), a statement with a RETURNING clause is refused, as execute refuses it.
inline auto prepare_request(std::string_view sql, bool runs = false) {
  return [sql, runs](auto& ci) -> error_code {
    if (auto e = check_database(ci)) return e;
    const sql_shape shape = scan_sql(sql);
    if (shape.statements != 1) {
      ci.diag.assign(shape.statements == 0
                         ? std::string("the SQL text holds no statement")
                         : "the SQL text holds " + std::to_string(shape.statements) +
                               " statements, and a prepared statement holds exactly one (the "
                               "first ends at byte " + std::to_string(shape.first_end) +
                               "); prepare each on its own. Nothing was sent");
      return make_error_code(errc::invalid_argument);
    }
    if (runs && shape.returning) {
      ci.diag.assign("the statement has a RETURNING clause, so it returns rows: executemany "
                     "refuses it because libdqlite aborts on such a statement sent as EXEC "
                     "(1.11.1 on any RETURNING, 1.18.6 when it returns two rows or more); "
                     "prepare it and run it as a query for each set. Nothing was sent");
      return make_error_code(errc::invalid_argument);
    }
    if (auto e = wire::encode_prepare(ci.wbuf, ci.db_id, sql)) {
      ci.diag.assign("the SQL text contains a NUL byte");
      return e;
    }
    return {};
  };
}

/// Calls f(params) with one parameter set of executemany: a std::tuple of parameters, a
/// range of dqlite::value, or a single parameter.
template <class Set, class F>
decltype(auto) with_set(const Set& set, F&& f) {
  using E = std::remove_cvref_t<Set>;
  if constexpr (param_arg<E>) {
    return f(set);
  } else {
    static_assert(std::ranges::input_range<E>,
                  "dqlite: executemany: each element must be a parameter, a std::tuple of "
                  "parameters, or a range of dqlite::value");
    return f(params_from(set));
  }
}

/// PREPARE, then the statement object.
template <class Impl, class Statement>
struct prepare_op {
  std::shared_ptr<Impl> c;
  std::string_view sql;
  sql_shape shape{};
  bool read_only = false;

  template <class Self>
  void operator()(Self& self) {
    shape = scan_sql(sql);  // the text is only read while the op starts
    read_only = is_read_only_sql(sql);
    encoded_initiation<Impl>{c}(std::move(self), prepare_proc{}, prepare_request(sql),
                                exchange_params{true, c->opts.request_timeout, 0});
  }
  template <class Self>
  void operator()(Self& self, error_code ec, wire::stmt_response r) {
    self.complete(ec, Statement(c, r, !ec, read_only, shape));
  }
};

/// executemany: PREPARE once, EXEC per parameter set, FINALIZE. Each element of the range
/// is one parameter set: a std::tuple of parameters, a dqlite::params_from(...) range, or a
/// single parameter.
template <class Impl, class Range>
struct executemany_op {
  std::shared_ptr<Impl> c;
  std::string_view sql;
  const Range* range;
  std::ranges::iterator_t<const Range> it{};
  std::uint32_t stmt = 0;
  std::uint64_t gen = 0;
  std::size_t index = 0;
  exec_result total{};
  error_code failed{};
  tx_effect tx = tx_effect::none;  ///< what the text does to a transaction, per EXEC
  enum class step : std::uint8_t { prepare, exec, finalize } st = step::prepare;

  template <class Self>
  void operator()(Self& self) {
    tx = scan_sql(sql).tx;  // the text is only read while the op starts
    encoded_initiation<Impl>{c}(std::move(self), prepare_proc{}, prepare_request(sql, true),
                                exchange_params{true, c->opts.request_timeout, 0});
  }

  template <class Self>
  void operator()(Self& self, error_code ec, wire::stmt_response r) {  // prepared
    if (ec) return self.complete(ec, total);
    stmt = r.id;
    gen = c->generation;
    st = step::exec;
    it = std::ranges::begin(*range);
    next(self);
  }

  template <class Self>
  void operator()(Self& self, error_code ec, exec_result r) {  // one EXEC done
    if (ec) {
      c->diag.assign("parameter set #" + std::to_string(index) + ": " + c->diag.message());
      if (c->state == conn_state::open && c->generation == gen) c->finalize_pending.push_back(stmt);
      return self.complete(ec, total);
    }
    total.rows_affected += r.rows_affected;
    total.last_insert_id = r.last_insert_id;
    ++it;
    ++index;
    next(self);
  }

  template <class Self>
  void operator()(Self& self, error_code ec) {  // finalized
    self.complete(ec, total);
  }

 private:
  template <class Self>
  void next(Self& self) {
    if (it == std::ranges::end(*range)) {
      st = step::finalize;
      encoded_initiation<Impl>{c}(std::move(self), empty_proc{}, finalize_request(stmt),
                                  exchange_params{true, c->opts.request_timeout, 0});
      return;
    }
    const auto& set = *it;
    request_spec spec{true, {}, stmt, gen, 0, false, false, tx};
    using E = std::remove_cvref_t<decltype(set)>;
    if constexpr (param_arg<E>) {
      request_initiation<Impl>{c}(std::move(self), exec_proc{}, spec, false, set);
    } else {
      static_assert(std::ranges::input_range<E>,
                    "dqlite: executemany: each element must be a parameter, a std::tuple of "
                    "parameters, or a range of dqlite::value");
      request_initiation<Impl>{c}(std::move(self), exec_proc{}, spec, false, params_from(set));
    }
  }
};

}  // namespace detail
}  // namespace dqlite
