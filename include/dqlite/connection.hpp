// One connection to a dqlite node.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/admin_procs.hpp>
#include <dqlite/detail/blocking.hpp>
#include <dqlite/detail/config.hpp>
#include <dqlite/detail/connect_op.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/cursor.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/detail/ranges.hpp>
#include <dqlite/detail/request.hpp>
#include <dqlite/detail/request_api.hpp>
#include <dqlite/detail/session_procs.hpp>
#include <dqlite/detail/token.hpp>
#include <dqlite/error.hpp>
#include <dqlite/field.hpp>
#include <dqlite/mapping.hpp>
#include <dqlite/node_info.hpp>
#include <dqlite/options.hpp>
#include <dqlite/params.hpp>
#include <dqlite/statement.hpp>
#include <dqlite/transaction.hpp>
#include <dqlite/value.hpp>
#include <dqlite/wire/encode.hpp>
#include <dqlite/wire/protocol.hpp>
#include <dqlite/with_diagnostics.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite {

namespace detail {
/// The state behind a connection, for the library's own higher layers (cluster, pool,
/// add-ons) and its tests.
struct connection_access {
  template <class Conn>
  static const auto& impl(const Conn& c) noexcept {
    return c.impl_;
  }
};
}  // namespace detail

/// A connection to one dqlite node over any Asio stream (TCP, unix socket, TLS...).
///
/// Operations are asynchronous and accept any completion token; the default token makes
/// `co_await conn.async_x(...)` throw dqlite::error (code + server message) on failure.
/// One operation at a time: a second one started while another runs fails with
/// errc::operation_in_progress without disturbing the first. Not thread-safe.
template <class Stream>
class basic_connection {
  using impl_type = detail::connection_impl<Stream>;

 public:
  using stream_type = Stream;
  using executor_type = typename Stream::executor_type;

  /// Constructs the stream from args (e.g. an executor), with default options.
  template <class Arg0, class... Args>
    requires(std::is_constructible_v<Stream, Arg0, Args...> &&
             !std::is_same_v<std::remove_cvref_t<Arg0>, basic_connection>)
  explicit basic_connection(Arg0&& arg0, Args&&... args)
      : impl_(std::make_shared<impl_type>(connection_options{}, std::forward<Arg0>(arg0),
                                          std::forward<Args>(args)...)) {}

  /// Constructs the stream from args, with the given options.
  template <class... Args>
    requires std::is_constructible_v<Stream, Args...>
  basic_connection(const connection_options& opts, Args&&... args);

  /// With an io_context of its own, for blocking use: dqlite::connect needs no executor.
  /// Its asynchronous operations run when that context runs (get_executor().context()).
  explicit basic_connection(own_io_context_t, const connection_options& opts = {});

  /// A moved-from connection keeps only its executor: its operations fail with
  /// errc::not_connected (diagnostics say it was moved from), is_open() is false. It may be
  /// assigned a connection again.
  basic_connection(basic_connection&& other) noexcept;
  basic_connection& operator=(basic_connection&& other) noexcept;
  basic_connection(const basic_connection&) = delete;
  basic_connection& operator=(const basic_connection&) = delete;
  /// Closes the transport; a running operation completes with an error.
  ~basic_connection();

  executor_type get_executor() { return impl_ ? impl_->stream.get_executor() : *moved_ex_; }
  /// The stream. Precondition: the connection was not moved from.
  Stream& stream() noexcept { return impl_->stream; }
  const Stream& stream() const noexcept { return impl_->stream; }
  /// The options (default ones for a moved-from connection).
  const connection_options& options() const noexcept {
    static const connection_options none{};
    return impl_ ? impl_->opts : none;
  }

  /// True when the database is open and no error has broken the connection.
  bool is_open() const noexcept { return impl_ && impl_->state == detail::conn_state::open; }
  /// True while an operation runs (see errc::operation_in_progress; not to be confused
  /// with is_busy(ec), the server's SQLITE_BUSY).
  bool operation_in_progress() const noexcept { return impl_ && impl_->busy; }
  /// True when a transaction may be open on the server: a transaction object is active,
  /// or SQL text run on this connection opened one (BEGIN, SAVEPOINT, also inside a longer
  /// text) and no COMMIT, END or ROLLBACK has closed it since, or a dropped transaction is
  /// still to be rolled back. Conservative: a text that touched the transaction state and
  /// failed, or a RELEASE, counts as "may be open". async_reset sends a ROLLBACK only then.
  bool in_transaction() const noexcept { return impl_ && impl_->in_transaction(); }
  /// The text that goes with the last failed operation (server message or client detail).
  /// A moved-from connection has a fixed text that says so.
  const dqlite::diagnostics& diagnostics() const noexcept {
    return impl_ ? impl_->diag : *detail::moved_from_diagnostics();
  }
  /// The error that closed the connection, or that made its last connect, handshake or
  /// OPEN fail: errc::cancelled when close() ended a running operation. Success while it
  /// is open, before its first connect, and after a close() that ended nothing and that no
  /// error came before; errc::not_connected for a moved-from connection. A new connect or
  /// handshake clears it.
  error_code broken_by() const noexcept {
    return impl_ ? impl_->broken_by : make_error_code(errc::not_connected);
  }

  // ---- opening ----

  /// Resolves address ("host:port" or "[ipv6]:port"), connects, performs the TLS handshake
  /// (TLS streams, see dqlite/tls.hpp), then the dqlite handshake, and opens
  /// options().database, all within options().connect_timeout. For streams over TCP.
  /// Signature: void(error_code).
  template <class Token = default_token_t>
    requires detail::connect_steps<Stream>::is_tcp
  auto async_connect(std::string_view address, Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        connect_initiation{impl_, moved_ex_}, token, std::string(address), std::nullopt);
  }

  /// Connects to an endpoint of the stream's socket type (a unix socket path, a TCP
  /// endpoint), then as above. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_connect(const typename detail::connect_steps<Stream>::endpoint_type& endpoint,
                     Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        connect_initiation{impl_, moved_ex_}, token, detail::describe_endpoint(endpoint),
        std::optional(endpoint));
  }

  /// Performs the dqlite handshake and opens options().database over an already connected
  /// stream (for TLS or unix sockets). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_handshake(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(handshake_initiation{impl_, moved_ex_},
                                                                token);
  }

  // ---- statements ----
  //
  // Each takes the SQL text, its parameters (a variadic list, std::tuples of parameters, or
  // dqlite::params_from(range of dqlite::value)) and an optional completion token, last.
  // The SQL text and the parameters are read when the operation starts.

  /// Runs SQL that returns no rows (several statements separated by ';' are allowed; the
  /// result is the last one's). Signature: void(error_code, exec_result).
  template <class... Args>
  auto async_execute(std::string_view sql, Args&&... args) {
    return api(sql).async_execute(std::forward<Args>(args)...);
  }

  /// Runs a query and returns all its rows as dynamic values.
  /// Signature: void(error_code, dqlite::rows).
  template <class... Args>
  auto async_fetchall(std::string_view sql, Args&&... args) {
    return api(sql).async_fetchall(std::forward<Args>(args)...);
  }

  /// All rows. async_fetch<T>: a std::vector<T> of the user's row type T (an aggregate
  /// mapped by column name, dqlite::by_position<T>, a std::tuple, a single field type, or
  /// dqlite::row; see mapping.hpp). async_fetch without T: dynamic rows, as async_fetchall.
  /// Signature: void(error_code, std::vector<T>) (or dqlite::rows).
  template <class T = void, class... Args>
  auto async_fetch(std::string_view sql, Args&&... args) {
    return api(sql).template async_fetch<T>(std::forward<Args>(args)...);
  }

  /// Appends all rows, mapped into T as async_fetch<T> does, to a vector the caller owns
  /// (and may reserve and reuse: no allocation beyond the values themselves). The vector
  /// must stay alive until completion; rows read before an error stay in it.
  /// Signature: void(error_code, std::size_t rows_appended).
  template <class T, class... Args>
  auto async_fetch_into(std::vector<typename detail::row_mapper<T>::object_type>& out,
                        std::string_view sql, Args&&... args) {
    return api(sql).template async_fetch_into<T>(out, std::forward<Args>(args)...);
  }

  /// The first row as T (default: dqlite::row), or an empty optional when there is none.
  /// The remaining rows are read and dropped. Signature: void(error_code, std::optional<T>).
  template <class T = row, class... Args>
  auto async_fetchone(std::string_view sql, Args&&... args) {
    return api(sql).template async_fetchone<T>(std::forward<Args>(args)...);
  }

  /// The first column of the first row, as T. With no rows: errc::no_rows, or an empty
  /// std::optional when T is one. Signature: void(error_code, T).
  template <class T, class... Args>
  auto async_fetchval(std::string_view sql, Args&&... args) {
    return api(sql).template async_fetchval<T>(std::forward<Args>(args)...);
  }

  /// Runs a query and reads its result batch by batch through a cursor, in bounded memory
  /// (see basic_cursor). T: the row type as for async_fetch<T> (void: dynamic rows).
  /// Signature: void(error_code, basic_cursor<Stream, T>).
  template <class T = void, class... Args>
  auto async_cursor(std::string_view sql, Args&&... args) {
    return api(sql).template async_cursor<T>(std::forward<Args>(args)...);
  }

  /// Prepares a statement (see basic_statement). Signature:
  /// void(error_code, basic_statement<Stream>).
  template <class Token = default_token_t>
  auto async_prepare(std::string_view sql, Token&& token = {}) {
    using statement = basic_statement<Stream>;
    return async_with_diag<void(error_code, statement)>(
        detail::prepare_op<impl_type, statement>{impl_, sql}, token);
  }

  /// Runs one statement once per element of `sets` (one PREPARE, then one EXEC per set,
  /// then FINALIZE). An element is a std::tuple of parameters, a range of dqlite::value,
  /// or a single parameter. The range must stay alive until completion. The result adds up
  /// rows_affected and has the last set's last_insert_id. On failure the diagnostics name
  /// the failing set (counted from 0); sets before it have been applied (wrap the call in
  /// a transaction for all or nothing). Signature: void(error_code, exec_result).
  template <std::ranges::input_range Range, class Token = default_token_t>
  auto async_executemany(std::string_view sql, const Range& sets, Token&& token = {}) {
    return async_with_diag<void(error_code, exec_result)>(
        detail::executemany_op<impl_type, Range>{impl_, sql, &sets}, token);
  }

  // ---- transactions ----

  /// Starts a transaction (BEGIN). Signature: void(error_code, basic_transaction<Stream>).
  /// See also dqlite::async_transaction for a scoped form.
  template <class Token = default_token_t>
  auto async_begin(Token&& token = {}) {
    using transaction = basic_transaction<Stream>;
    return async_with_diag<void(error_code, transaction)>(
        detail::begin_op<impl_type, transaction>{impl_, "BEGIN"}, token);
  }

  /// Makes the connection as good as new for its next user: interrupts the rest of an
  /// abandoned cursor's result, finalizes statements dropped without async_close, and
  /// rolls back any open transaction (also one started with a plain "BEGIN"; see
  /// in_transaction()). Sends nothing when there is nothing to undo.
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_reset(Token&& token = {}) {
    mark_for_reset();
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{impl_, moved_ex_}, token, detail::flush_proc{},
        [](impl_type&) { return error_code{}; }, request_params());
  }

  // ---- blocking forms ----
  //
  // Each operation above has a blocking twin without the async_ prefix, for TCP and unix
  // socket connections: it runs the same state machines in the calling thread over
  // blocking socket I/O (every wait is bounded by the same timeouts), without any
  // io_context. The arguments are those of the asynchronous form without the completion
  // token, then optionally `error_code& ec, diagnostics& diag`: with them a failure is
  // reported there and the result is empty; without them it throws dqlite::error (code +
  // server text). As with the asynchronous forms, one operation at a time.
  //
  //   dqlite::connection conn = dqlite::connect("127.0.0.1:9001", {.database = "app"});
  //   conn.execute("INSERT INTO item (name) VALUES (?)", "apple");
  //   auto n = conn.fetchval<std::int64_t>("SELECT count(*) FROM item");

  /// Blocking async_connect (resolving "host:port"; TCP connections).
  template <class... E>
    requires detail::connect_steps<Stream>::is_tcp
  void connect(std::string_view address, E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) { blocking_connect(address, nullptr, ec, d); },
        e...);
  }

  /// Blocking async_connect to an endpoint of the stream's socket type.
  template <class... E>
  void connect(const typename detail::connect_steps<Stream>::endpoint_type& endpoint, E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          blocking_connect(detail::describe_endpoint(endpoint), &endpoint, ec, d);
        },
        e...);
  }

  /// Blocking async_execute.
  template <class... Args>
  exec_result execute(std::string_view sql, Args&&... args) {
    return api(sql).execute(std::forward<Args>(args)...);
  }
  /// Blocking async_fetchall.
  template <class... Args>
  rows fetchall(std::string_view sql, Args&&... args) {
    return api(sql).fetchall(std::forward<Args>(args)...);
  }
  /// Blocking async_fetch<T>.
  template <class T = void, class... Args>
  auto fetch(std::string_view sql, Args&&... args) {
    return api(sql).template fetch<T>(std::forward<Args>(args)...);
  }
  /// Blocking async_fetch_into<T>: returns how many rows were appended.
  template <class T, class... Args>
  std::size_t fetch_into(std::vector<typename detail::row_mapper<T>::object_type>& out,
                         std::string_view sql, Args&&... args) {
    return api(sql).template fetch_into<T>(out, std::forward<Args>(args)...);
  }
  /// Blocking async_fetchone<T>.
  template <class T = row, class... Args>
  auto fetchone(std::string_view sql, Args&&... args) {
    return api(sql).template fetchone<T>(std::forward<Args>(args)...);
  }
  /// Blocking async_fetchval<T>.
  template <class T, class... Args>
  T fetchval(std::string_view sql, Args&&... args) {
    return api(sql).template fetchval<T>(std::forward<Args>(args)...);
  }
  /// Blocking async_cursor<T>: read it with the cursor's blocking next().
  template <class T = void, class... Args>
  basic_cursor<Stream, T> cursor(std::string_view sql, Args&&... args) {
    return api(sql).template cursor<T>(std::forward<Args>(args)...);
  }

  /// Blocking async_prepare.
  template <class... E>
  basic_statement<Stream> prepare(std::string_view sql, E&... e) {
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return basic_statement<Stream>(detail::detached);
          }
          auto r = detail::blocking_exchange(*impl_, detail::prepare_proc{},
                                             detail::prepare_request(sql), request_params(), ec, d);
          return basic_statement<Stream>(impl_, r, !ec, detail::is_read_only_sql(sql),
                                         detail::scan_sql(sql));
        },
        e...);
  }

  /// Blocking async_executemany.
  template <std::ranges::input_range Range, class... E>
  exec_result executemany(std::string_view sql, const Range& sets, E&... e) {
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          exec_result total{};
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return total;
          }
          auto r = detail::blocking_exchange(*impl_, detail::prepare_proc{},
                                             detail::prepare_request(sql, true), request_params(),
                                             ec, d);
          if (ec) return total;
          const std::uint64_t gen = impl_->generation;
          detail::request_spec spec{true, {}, r.id, gen, 0, false, false,
                                    detail::scan_sql(sql).tx};
          std::size_t index = 0;
          for (const auto& set : sets) {
            auto one = detail::with_set(set, [&](const auto& p) {
              return detail::blocking_statement(*impl_, detail::exec_proc{}, spec, false, ec, d, p);
            });
            if (ec) {
              d.assign("parameter set #" + std::to_string(index) + ": " + d.message());
              if (impl_->state == detail::conn_state::open && impl_->generation == gen)
                impl_->finalize_pending.push_back(r.id);
              return total;
            }
            total.rows_affected += one.rows_affected;
            total.last_insert_id = one.last_insert_id;
            ++index;
          }
          detail::blocking_exchange(*impl_, detail::empty_proc{}, detail::finalize_request(r.id),
                                    request_params(), ec, d);
          return total;
        },
        e...);
  }

  /// Blocking async_begin.
  template <class... E>
  basic_transaction<Stream> begin(E&... e) {
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return basic_transaction<Stream>(detail::detached);
          }
          detail::blocking_exchange(*impl_, detail::exec_proc{}, detail::sql_request("BEGIN"),
                                    request_params(), ec, d);
          std::uint64_t id = 0;
          if (!ec) impl_->tx = id = ++impl_->next_id;
          return basic_transaction<Stream>(impl_, id);
        },
        e...);
  }

  /// Blocking async_reset.
  template <class... E>
  void reset(E&... e) {
    detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            return;
          }
          mark_for_reset();
          detail::blocking_exchange(*impl_, detail::flush_proc{},
                                    [](impl_type&) { return error_code{}; }, request_params(), ec,
                                    d);
        },
        e...);
  }

  // ---- cluster administration ----
  //
  // These requests need no database: a connection made with an empty
  // connection_options::database (whose handshake opens none) can send them. ADD, ASSIGN,
  // REMOVE and TRANSFER must reach the leader; other nodes answer "not leader"
  // (is_not_leader). basic_cluster (cluster.hpp) finds the leader and retries.

  /// Asks the node which node is the leader. Signature: void(error_code, node_info); the
  /// node_info has id 0 and an empty address when the node knows no leader (non-voters
  /// always answer so).
  template <class Token = default_token_t>
  auto async_leader(Token&& token = {}) {
    return admin_request(detail::leader_proc{}, detail::leader_request(), token);
  }

  /// The members of the cluster as this node knows them (the leader's view is the
  /// authoritative one). Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_cluster(Token&& token = {}) {
    return admin_request(detail::servers_proc{}, detail::cluster_request(), token);
  }

  /// Adds node `id` advertised at `address` ("host:port", or "@name" / "/path" for a node
  /// on a unix socket) to the cluster as a spare; make
  /// it a voter or stand-by with async_assign. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_add(std::uint64_t id, std::string_view address, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::add_request(id, address), token, true);
  }

  /// Gives node `id` a new role. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_assign(std::uint64_t id, node_role role, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::assign_request(id, role), token, true);
  }

  /// Removes node `id` from the cluster. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_remove(std::uint64_t id, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::remove_request(id), token, true);
  }

  /// Hands leadership over to voter `id` (0: a voter chosen by raft). Leader only; this
  /// connection's node is a follower afterwards. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_transfer(std::uint64_t id, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::transfer_request(id), token, true);
  }

  /// This node's failure domain and weight. Signature: void(error_code, node_metadata).
  template <class Token = default_token_t>
  auto async_describe(Token&& token = {}) {
    return admin_request(detail::metadata_proc{}, detail::describe_request(), token);
  }

  /// Sets this node's weight (raft prefers nodes of low weight when it assigns roles).
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_weight(std::uint64_t weight, Token&& token = {}) {
    return admin_request(detail::empty_proc{}, detail::weight_request(weight), token, true);
  }

  /// A copy of database `name`: its file and write-ahead log as the node has them.
  /// Signature: void(error_code, std::vector<dump_file>).
  template <class Token = default_token_t>
  auto async_dump(std::string_view name, Token&& token = {}) {
    return admin_request(detail::files_proc{}, detail::dump_request(name), token);
  }

  /// Opens database `name` on a connection made without one (empty
  /// connection_options::database). A connection opens one database at most; on failure
  /// the connection is closed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_open_database(std::string_view name, Token&& token = {}) {
    return admin_request(detail::open_proc{}, detail::open_request(name), token);
  }

  // Blocking forms of the administration requests: the same requests in the calling
  // thread; each takes an optional `error_code&, diagnostics&` last (without them a
  // failure throws dqlite::error).

  /// Blocking async_leader.
  template <class... E>
  node_info leader(E&... e) {
    return admin_blocking(detail::leader_proc{}, detail::leader_request(), false, e...);
  }
  /// Blocking async_cluster.
  template <class... E>
  std::vector<node_info> cluster(E&... e) {
    return admin_blocking(detail::servers_proc{}, detail::cluster_request(), false, e...);
  }
  /// Blocking async_add.
  template <class... E>
  void add(std::uint64_t id, std::string_view address, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::add_request(id, address), true, e...);
  }
  /// Blocking async_assign.
  template <class... E>
  void assign(std::uint64_t id, node_role role, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::assign_request(id, role), true, e...);
  }
  /// Blocking async_remove.
  template <class... E>
  void remove(std::uint64_t id, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::remove_request(id), true, e...);
  }
  /// Blocking async_transfer.
  template <class... E>
  void transfer(std::uint64_t id, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::transfer_request(id), true, e...);
  }
  /// Blocking async_describe.
  template <class... E>
  node_metadata describe(E&... e) {
    return admin_blocking(detail::metadata_proc{}, detail::describe_request(), false, e...);
  }
  /// Blocking async_weight.
  template <class... E>
  void weight(std::uint64_t weight, E&... e) {
    admin_blocking(detail::empty_proc{}, detail::weight_request(weight), true, e...);
  }
  /// Blocking async_dump.
  template <class... E>
  std::vector<dump_file> dump(std::string_view name, E&... e) {
    return admin_blocking(detail::files_proc{}, detail::dump_request(name), false, e...);
  }
  /// Blocking async_open_database.
  template <class... E>
  void open_database(std::string_view name, E&... e) {
    admin_blocking(detail::open_proc{}, detail::open_request(name), false, e...);
  }

  /// True when the connection is open and has a database open (false for a connection
  /// made for cluster administration only).
  bool has_database() const noexcept { return is_open() && !impl_->database.empty(); }

 private:
  struct admin_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler, class Proc, class Encode>
    void operator()(Handler&& h, Proc proc, Encode encode, bool may_write) {
      if (!c)
        return detail::complete_moved_from<detail::completion_sig_t<typename Proc::result_type>>(
            std::forward<Handler>(h), ex);
      detail::start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), true,
                             c->opts.request_timeout, may_write);
    }
  };

  detail::exchange_params request_params() const {
    return detail::exchange_params{true, options().request_timeout, 0};
  }

  // A transaction that may be open is rolled back by the next request (async_reset, reset).
  void mark_for_reset() {
    if (impl_ && impl_->state == detail::conn_state::open && !impl_->busy && impl_->holder == 0 &&
        impl_->in_transaction()) {
      impl_->tx = 0;
      impl_->rollback_pending = true;
    }
  }

  void blocking_connect(std::string_view address,
                        const typename detail::connect_steps<Stream>::endpoint_type* endpoint,
                        error_code& ec, dqlite::diagnostics& d) {
    if (!impl_) {
      ec = detail::fail_moved_from(d);
      return;
    }
    ec = detail::run_blocking_connect(*impl_, address, endpoint);
    d = ec ? impl_->diag : dqlite::diagnostics{};
  }

  template <class Proc, class Encode, class... E>
  auto admin_blocking(Proc proc, Encode encode, bool may_write, E&... e) {
    static_assert(detail::has_error_tail<E&...>() || sizeof...(E) == 0,
                  "dqlite: the last arguments of a blocking call are (error_code&, diagnostics&)");
    return detail::blocking_call(
        [&](error_code& ec, dqlite::diagnostics& d) {
          if (!impl_) {
            ec = detail::fail_moved_from(d);
            if constexpr (std::is_void_v<typename Proc::result_type>)
              return;
            else
              return typename Proc::result_type{};
          }
          return detail::blocking_exchange(
              *impl_, std::move(proc), std::move(encode),
              detail::exchange_params{true, impl_->opts.request_timeout, 0, may_write}, ec, d);
        },
        e...);
  }

  // may_write: the request changes the cluster (its outcome is unknown once it is sent and
  // its answer is lost).
  template <class Proc, class Encode, class Token>
  auto admin_request(Proc proc, Encode encode, Token& token, bool may_write = false) {
    using sig = detail::completion_sig_t<typename Proc::result_type>;
    return boost::asio::async_initiate<Token, sig>(admin_initiation{impl_, moved_ex_}, token,
                                                   std::move(proc), std::move(encode), may_write);
  }

 public:

  // ---- closing ----

  /// Closes the connection. A running operation completes with an error.
  void close() noexcept;

  /// Closes the connection; completes once closed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(close_initiation{impl_, moved_ex_}, token);
  }

  /// Runs a query whose rows go to a Sink (see detail/procs.hpp). For extensions.
  template <class Sink, class... Args>
  auto query(std::string_view sql, Args&&... args) {
    return api(sql).template query<Sink>(std::forward<Args>(args)...);
  }

  /// Same, with a sink object given by the caller.
  template <class Sink, class... Args>
  auto query_with(Sink sink, std::string_view sql, Args&&... args) {
    return api(sql).template query_with<Sink>(std::move(sink), std::forward<Args>(args)...);
  }


 private:
  void shut() noexcept;

  // Takes other's state; other keeps the executor, where its operations fail.
  void take(basic_connection& other) noexcept;

  detail::request_api<Stream> api(std::string_view sql) const {
    return {impl_, detail::request_spec{false, sql, 0, 0, 0}, moved_ex_ ? &*moved_ex_ : nullptr};
  }

  // A composed operation whose failures carry the connection's diagnostics.
  template <class Sig, class Op, class Token>
  auto async_with_diag(Op op, Token& token) {
    return boost::asio::async_initiate<Token, Sig>(
        detail::composed_initiation<impl_type, Op, Sig>{impl_, std::move(op), moved_ex_}, token);
  }

  struct handshake_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler>
    void operator()(Handler&& h) {
      if (!c) return detail::complete_moved_from<void(error_code)>(std::forward<Handler>(h), ex);
      detail::start_exchange(c, detail::handshake_proc{}, std::forward<Handler>(h),
                             [](impl_type& ci) {
                               ci.broken_by = {};  // a new opening, as a connect's start
                               return detail::encode_handshake(ci);
                             },
                             false,
                             c->opts.connect_timeout);
    }
  };

  struct close_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler>
    void operator()(Handler&& h) {
      if (!c) return detail::complete_moved_from<void(error_code)>(std::forward<Handler>(h), ex);
      c->close_transport();
      detail::failed_initiation<impl_type>{c}(std::forward<Handler>(h), error_code{},
                                              std::string());
    }
  };

  struct connect_initiation {
    std::shared_ptr<impl_type> c;
    std::optional<executor_type> ex{};  // a moved-from connection's
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
      return detail::diagnostics_of_impl(c);
    }

    template <class Handler, class Endpoint>
    void operator()(Handler&& h, std::string address, Endpoint endpoint) {
      if (!c) {
        using handler_type = std::decay_t<Handler>;
        if constexpr (detail::erasable_with_executor<handler_type, executor_type>) {
          // Through a target, as every other completion of such a handler, on the
          // handler's own executor (not the connection's, ex).
          const executor_type own = boost::asio::get_associated_executor(h);
          auto* t = detail::exchange_target<executor_type, detail::no_machine,
                                            handler_type>::create(std::forward<Handler>(h), own);
          return detail::post_completion<executor_type>(t, make_error_code(errc::not_connected));
        } else {
          return detail::complete_moved_from<void(error_code)>(std::forward<Handler>(h), ex);
        }
      }
      std::optional<typename detail::connect_steps<Stream>::endpoint_type> ep;
      if constexpr (!std::is_same_v<Endpoint, std::nullopt_t>) ep = std::move(endpoint);
      detail::start_connect(c, std::move(address), std::move(ep), std::forward<Handler>(h));
    }
  };

  friend struct detail::connection_access;
  std::shared_ptr<impl_type> impl_;
  /// Once moved from: what keeps moved_ex_'s io_context alive (a blocking cluster's or
  /// pool's state; declared first, so destroyed after moved_ex_).
  std::shared_ptr<void> moved_keep_;
  std::optional<executor_type> moved_ex_;  ///< set once moved from
};

/// A connection over TCP.
using connection = basic_connection<boost::asio::ip::tcp::socket>;
/// A connection over a unix socket (see async_connect_unix).
using unix_connection = basic_connection<boost::asio::local::stream_protocol::socket>;

namespace detail {

/// The handler of the connection's own async_connect inside a free async_connect:
/// completes the caller's handler with the new connection. Its executor, allocator and
/// cancellation slot are the caller's handler's (see the associator below).
template <class Conn, class Handler>
struct connected_handler {
  Handler handler;
  std::shared_ptr<Conn> holder;  ///< the new connection, until it is handed over

  void operator()(error_code ec) { std::move(handler)(ec, std::move(*holder)); }
};

template <class Conn>
struct free_connect_initiation {
  std::shared_ptr<Conn> holder;  // keeps the connection until the handler takes it
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
    const auto& c = connection_access::impl(*holder);
    return {c, &c->diag};
  }

  template <class Handler, class Target>
  void operator()(Handler&& h, Target target) {
    auto& c = *holder;
    c.async_connect(target, connected_handler<Conn, std::decay_t<Handler>>{
                                std::forward<Handler>(h), std::move(holder)});
  }
};

/// Connects a new connection (made by make()) to target.
template <class Conn, class Token, class Target>
auto connect_new(std::shared_ptr<Conn> holder, Target target, Token& token) {
  return boost::asio::async_initiate<Token, void(error_code, Conn)>(
      free_connect_initiation<Conn>{std::move(holder)}, token, std::move(target));
}

}  // namespace detail

/// Connects to the node at address ("host:port" or "[ipv6]:port") and opens opts.database,
/// in the calling thread (blocking), within opts.connect_timeout. The connection owns an
/// io_context of its own, so no executor is needed; use its blocking operations. Throws
/// dqlite::error; the overload with `error_code&, diagnostics&` reports failures there.
DQLITE_DECL connection connect(std::string_view address, const connection_options& opts = {});
DQLITE_DECL connection connect(std::string_view address, const connection_options& opts,
                               error_code& ec, dqlite::diagnostics& diag);

/// connect over a unix socket (path, or "@name" for an abstract socket).
DQLITE_DECL unix_connection connect_unix(std::string_view path,
                                         const connection_options& opts = {});
DQLITE_DECL unix_connection connect_unix(std::string_view path, const connection_options& opts,
                                         error_code& ec, dqlite::diagnostics& diag);

// Members of basic_connection defined here, outside the class: not inline, so that with
// DQLITE_CLIENT_SEPARATE_COMPILATION the explicit instantiation declarations below keep
// them out of the user's units (a member defined in the class is inline, and GCC compiles
// inline members of such a class in every unit that calls them, to inline them).

template <class Stream>
basic_connection<Stream>::basic_connection(own_io_context_t, const connection_options& opts)
    : impl_(std::make_shared<impl_type>(own_io_context, opts)) {}

template <class Stream>
basic_connection<Stream>::basic_connection(basic_connection&& other) noexcept {
  take(other);
}

template <class Stream>
basic_connection<Stream>& basic_connection<Stream>::operator=(basic_connection&& other) noexcept {
  if (this != &other) {
    shut();
    take(other);
  }
  return *this;
}

template <class Stream>
basic_connection<Stream>::~basic_connection() {
  shut();
}

template <class Stream>
void basic_connection<Stream>::close() noexcept {
  if (impl_) impl_->close_transport();
}

template <class Stream>
void basic_connection<Stream>::shut() noexcept {
  if (!impl_) return;
  impl_->close_transport();
  // A connection with an io_context of its own: the operations it was running hold the
  // connection's state, which holds that io_context; let them complete (with an error)
  // so that nothing is left behind.
  if (impl_->io) {
    try {
      impl_->io->restart();
      impl_->io->poll();
    } catch (...) {
    }
  }
}

template <class Stream>
void basic_connection<Stream>::take(basic_connection& other) noexcept {
  impl_ = std::move(other.impl_);
  if (impl_) {
    moved_ex_.reset();
    moved_keep_.reset();
    other.moved_ex_.emplace(impl_->stream.get_executor());
    other.moved_keep_ = impl_->keep_alive;  // the io_context behind that executor
  } else {
    moved_ex_ = other.moved_ex_;
    moved_keep_ = other.moved_keep_;
  }
}

template <class Stream>
template <class... Args>
  requires std::is_constructible_v<Stream, Args...>
basic_connection<Stream>::basic_connection(const connection_options& opts, Args&&... args)
    : impl_(std::make_shared<impl_type>(opts, std::forward<Args>(args)...)) {}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
// Compiled once, in the unit that includes <dqlite/src.hpp>: the members of the TCP and
// unix socket connections defined outside the class above, and their construction from
// options and a `const boost::asio::any_io_executor&` (the form async_connect and
// async_connect_unix use, whatever executor they are given: see make_connection).
extern template class basic_connection<boost::asio::ip::tcp::socket>;
extern template class basic_connection<boost::asio::local::stream_protocol::socket>;
extern template basic_connection<boost::asio::ip::tcp::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);
extern template basic_connection<boost::asio::local::stream_protocol::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);
#endif

namespace detail {

/// A new connection of type Conn over the executor ex, converted to the connection's
/// executor_type first, so that every call constructs the connection in the one form
/// <dqlite/src.hpp> compiles (separate compilation).
template <class Conn, class Executor>
std::shared_ptr<Conn> make_connection(const connection_options& opts, const Executor& ex) {
  const typename Conn::executor_type& converted = ex;
  return std::make_shared<Conn>(opts, converted);
}

}  // namespace detail

/// Connects to the node at address ("host:port" or "[ipv6]:port") and opens
/// opts.database. Signature: void(error_code, connection).
template <class Executor, class Token = default_token_t>
auto async_connect(const Executor& ex, std::string_view address,
                   const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(detail::make_connection<connection>(opts, ex), std::string(address),
                             token);
}

/// Connects over a unix socket and opens opts.database. path: a file system path, or
/// "@name" for an abstract socket (Linux). Signature: void(error_code, unix_connection).
template <class Executor, class Token = default_token_t>
auto async_connect_unix(const Executor& ex, std::string_view path,
                        const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(detail::make_connection<unix_connection>(opts, ex),
                             detail::unix_endpoint(path), token);
}

}  // namespace dqlite

namespace boost::asio {

/// A free async_connect's inner handler is associated with what the caller's handler is.
template <template <class, class> class Associator, class Conn, class Handler, class Default>
struct associator<Associator, ::dqlite::detail::connected_handler<Conn, Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type get(
      const ::dqlite::detail::connected_handler<Conn, Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(const ::dqlite::detail::connected_handler<Conn, Handler>& h,
                  const Default& d) noexcept -> decltype(Associator<Handler, Default>::get(h.handler, d)) {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/connection.ipp>
#endif
