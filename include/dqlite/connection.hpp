// One connection to a dqlite node.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/detail/admin_procs.hpp>
#include <dqlite/detail/connect_op.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/cursor.hpp>
#include <dqlite/detail/procs.hpp>
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
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite {

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
  basic_connection(const connection_options& opts, Args&&... args)
      : impl_(std::make_shared<impl_type>(opts, std::forward<Args>(args)...)) {}

  basic_connection(basic_connection&&) noexcept = default;
  basic_connection& operator=(basic_connection&& other) noexcept {
    if (this != &other) {
      shut();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  basic_connection(const basic_connection&) = delete;
  basic_connection& operator=(const basic_connection&) = delete;
  /// Closes the transport; a running operation completes with an error.
  ~basic_connection() { shut(); }

  executor_type get_executor() { return impl_->stream.get_executor(); }
  Stream& stream() noexcept { return impl_->stream; }
  const Stream& stream() const noexcept { return impl_->stream; }
  const connection_options& options() const noexcept { return impl_->opts; }

  /// True when the database is open and no error has broken the connection.
  bool is_open() const noexcept { return impl_ && impl_->state == detail::conn_state::open; }
  /// True while an operation runs.
  bool busy() const noexcept { return impl_ && impl_->busy; }
  /// The text that goes with the last failed operation (server message or client detail).
  const dqlite::diagnostics& diagnostics() const noexcept { return impl_->diag; }
  /// The error that closed the connection, if one did.
  error_code broken_by() const noexcept { return impl_->broken_by; }

  // ---- opening ----

  /// Resolves address ("host:port" or "[ipv6]:port"), connects, performs the TLS handshake
  /// (TLS streams, see dqlite/tls.hpp), then the dqlite handshake, and opens
  /// options().database, all within options().connect_timeout. For streams over TCP.
  /// Signature: void(error_code).
  template <class Token = default_token_t>
    requires detail::connect_op<impl_type>::is_tcp
  auto async_connect(std::string_view address, Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        connect_initiation{impl_}, token, std::string(address), std::nullopt);
  }

  /// Connects to an endpoint of the stream's socket type (a unix socket path, a TCP
  /// endpoint), then as above. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_connect(const typename detail::connect_op<impl_type>::endpoint_type& endpoint,
                     Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        connect_initiation{impl_}, token, detail::describe_endpoint(endpoint),
        std::optional(endpoint));
  }

  /// Performs the dqlite handshake and opens options().database over an already connected
  /// stream (for TLS or unix sockets). Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_handshake(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(handshake_initiation{impl_},
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
  /// rolls back any open transaction (also one started with a plain "BEGIN").
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_reset(Token&& token = {}) {
    if (impl_->state == detail::conn_state::open && !impl_->busy && impl_->holder == 0) {
      impl_->tx = 0;
      impl_->rollback_pending = true;
    }
    return boost::asio::async_initiate<Token, void(error_code)>(
        detail::encoded_initiation<impl_type>{impl_}, token, detail::flush_proc{},
        [](impl_type&) { return error_code{}; },
        detail::exchange_params{true, impl_->opts.request_timeout, 0});
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
    return admin_request(
        detail::leader_proc{},
        [](impl_type& c) -> error_code {
          wire::encode_leader(c.wbuf);
          return {};
        },
        token);
  }

  /// The members of the cluster as this node knows them (the leader's view is the
  /// authoritative one). Signature: void(error_code, std::vector<node_info>).
  template <class Token = default_token_t>
  auto async_cluster(Token&& token = {}) {
    return admin_request(
        detail::servers_proc{},
        [](impl_type& c) -> error_code {
          wire::encode_cluster(c.wbuf, 1);
          return {};
        },
        token);
  }

  /// Adds node `id` advertised at `address` ("host:port") to the cluster as a spare; make
  /// it a voter or stand-by with async_assign. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_add(std::uint64_t id, std::string_view address, Token&& token = {}) {
    return admin_request(
        detail::empty_proc{},
        [id, address = std::string(address)](impl_type& c) -> error_code {
          if (auto e = detail::check_node_id(c, id)) return e;
          host_port hp;
          if (!wire::is_valid_text(address) || parse_address(address, hp)) {
            c.diag.assign("invalid node address '" + detail::printable(address) + "'");
            return make_error_code(errc::invalid_address);
          }
          return wire::encode_add(c.wbuf, id, address);
        },
        token);
  }

  /// Gives node `id` a new role. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_assign(std::uint64_t id, node_role role, Token&& token = {}) {
    return admin_request(
        detail::empty_proc{},
        [id, role](impl_type& c) -> error_code {
          if (auto e = detail::check_node_id(c, id)) return e;
          if (!node_role_from_value(static_cast<std::uint64_t>(role))) {
            c.diag.assign("invalid node role " + std::to_string(static_cast<unsigned>(role)) +
                          " (expected voter, standby or spare)");
            return make_error_code(errc::invalid_argument);
          }
          wire::encode_assign(c.wbuf, id, static_cast<wire::role>(role));
          return {};
        },
        token);
  }

  /// Removes node `id` from the cluster. Leader only. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_remove(std::uint64_t id, Token&& token = {}) {
    return admin_request(
        detail::empty_proc{},
        [id](impl_type& c) -> error_code {
          if (auto e = detail::check_node_id(c, id)) return e;
          wire::encode_remove(c.wbuf, id);
          return {};
        },
        token);
  }

  /// Hands leadership over to voter `id` (0: a voter chosen by raft). Leader only; this
  /// connection's node is a follower afterwards. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_transfer(std::uint64_t id, Token&& token = {}) {
    return admin_request(
        detail::empty_proc{},
        [id](impl_type& c) -> error_code {
          wire::encode_transfer(c.wbuf, id);
          return {};
        },
        token);
  }

  /// This node's failure domain and weight. Signature: void(error_code, node_metadata).
  template <class Token = default_token_t>
  auto async_describe(Token&& token = {}) {
    return admin_request(
        detail::metadata_proc{},
        [](impl_type& c) -> error_code {
          wire::encode_describe(c.wbuf, 0);
          return {};
        },
        token);
  }

  /// Sets this node's weight (raft prefers nodes of low weight when it assigns roles).
  /// Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_weight(std::uint64_t weight, Token&& token = {}) {
    return admin_request(
        detail::empty_proc{},
        [weight](impl_type& c) -> error_code {
          wire::encode_weight(c.wbuf, weight);
          return {};
        },
        token);
  }

  /// A copy of database `name`: its file and write-ahead log as the node has them.
  /// Signature: void(error_code, std::vector<dump_file>).
  template <class Token = default_token_t>
  auto async_dump(std::string_view name, Token&& token = {}) {
    return admin_request(
        detail::files_proc{},
        [name = std::string(name)](impl_type& c) -> error_code {
          if (auto e = wire::encode_dump(c.wbuf, name)) {
            c.diag.assign("the database name contains a NUL byte");
            return e;
          }
          return {};
        },
        token);
  }

  /// Opens database `name` on a connection made without one (empty
  /// connection_options::database). A connection opens one database at most; on failure
  /// the connection is closed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_open_database(std::string_view name, Token&& token = {}) {
    return admin_request(
        detail::open_proc{},
        [name = std::string(name)](impl_type& c) -> error_code {
          if (!c.database.empty()) {
            c.diag.assign("database '" + c.database + "' is already open on this connection");
            return make_error_code(errc::invalid_argument);
          }
          if (name.empty()) {
            c.diag.assign("the database name is empty");
            return make_error_code(errc::invalid_argument);
          }
          if (auto e = wire::encode_open(c.wbuf, name)) {
            c.diag.assign("the database name contains a NUL byte");
            return e;
          }
          c.database = name;
          c.opts.database = c.database;
          return {};
        },
        token);
  }

  /// True when the connection is open and has a database open (false for a connection
  /// made for cluster administration only).
  bool has_database() const noexcept { return is_open() && !impl_->database.empty(); }

 private:
  struct admin_initiation {
    std::shared_ptr<impl_type> c;
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

    template <class Handler, class Proc, class Encode>
    void operator()(Handler&& h, Proc proc, Encode encode) {
      detail::start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), true,
                             c->opts.request_timeout);
    }
  };

  template <class Proc, class Encode, class Token>
  auto admin_request(Proc proc, Encode encode, Token& token) {
    using sig = detail::completion_sig_t<typename Proc::result_type>;
    return boost::asio::async_initiate<Token, sig>(admin_initiation{impl_}, token,
                                                   std::move(proc), std::move(encode));
  }

 public:

  // ---- closing ----

  /// Closes the connection. A running operation completes with an error.
  void close() noexcept {
    if (impl_) impl_->close_transport();
  }

  /// Closes the connection; completes once closed. Signature: void(error_code).
  template <class Token = default_token_t>
  auto async_close(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(error_code)>(close_initiation{impl_}, token);
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

  /// The shared state (for the library's own higher layers).
  const std::shared_ptr<impl_type>& impl() const noexcept { return impl_; }

 private:
  void shut() noexcept {
    if (impl_) impl_->close_transport();
  }

  detail::request_api<Stream> api(std::string_view sql) const {
    return {impl_, detail::request_spec{false, sql, 0, 0, 0}};
  }

  // A composed operation whose failures carry the connection's diagnostics.
  template <class Sig, class Op, class Token>
  auto async_with_diag(Op op, Token& token) {
    return boost::asio::async_initiate<Token, Sig>(
        detail::composed_initiation<impl_type, Op, Sig>{impl_, std::move(op)}, token);
  }

  struct handshake_initiation {
    std::shared_ptr<impl_type> c;
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

    template <class Handler>
    void operator()(Handler&& h) {
      detail::start_exchange(c, detail::handshake_proc{}, std::forward<Handler>(h),
                             detail::encode_handshake<impl_type>, false,
                             c->opts.connect_timeout);
    }
  };

  struct close_initiation {
    std::shared_ptr<impl_type> c;
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

    template <class Handler>
    void operator()(Handler&& h) {
      c->close_transport();
      boost::asio::async_compose<Handler, void(error_code)>(
          [c = c, posted = false](auto& self) mutable {
            if (!posted) {
              posted = true;
              auto ex = c->stream.get_executor();
              boost::asio::post(ex, std::move(self));
              return;
            }
            self.complete(error_code{});
          },
          h, c->stream);
    }
  };

  struct connect_initiation {
    std::shared_ptr<impl_type> c;
    std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

    template <class Handler, class Endpoint>
    void operator()(Handler&& h, std::string address, Endpoint endpoint) {
      detail::connect_op<impl_type> op{c, std::move(address)};
      if constexpr (!std::is_same_v<Endpoint, std::nullopt_t>) op.endpoint = std::move(endpoint);
      boost::asio::async_compose<Handler, void(error_code)>(std::move(op), h, c->stream);
    }
  };

  std::shared_ptr<impl_type> impl_;
};

/// A connection over TCP.
using connection = basic_connection<boost::asio::ip::tcp::socket>;
/// A connection over a unix socket (see async_connect_unix).
using unix_connection = basic_connection<boost::asio::local::stream_protocol::socket>;

namespace detail {

template <class Conn, class Target>
struct free_connect_op {
  Conn conn;
  Target target;
  bool started = false;

  template <class Self>
  void operator()(Self& self, error_code ec = {}) {
    if (!started) {
      started = true;
      auto& c = conn;
      c.async_connect(target, std::move(self));
      return;
    }
    self.complete(ec, std::move(conn));
  }
};

template <class Conn>
struct free_connect_initiation {
  std::shared_ptr<Conn> holder;  // keeps the connection until the op takes it
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
    return {holder->impl(), &holder->impl()->diag};
  }

  template <class Handler, class Target>
  void operator()(Handler&& h, Target target) {
    auto& c = *holder;
    auto ex = c.get_executor();
    boost::asio::async_compose<Handler, void(error_code, Conn)>(
        free_connect_op<Conn, Target>{std::move(c), std::move(target)}, h, ex);
  }
};

/// Connects a new connection (made by make()) to target.
template <class Conn, class Token, class Target>
auto connect_new(std::shared_ptr<Conn> holder, Target target, Token& token) {
  return boost::asio::async_initiate<Token, void(error_code, Conn)>(
      free_connect_initiation<Conn>{std::move(holder)}, token, std::move(target));
}

}  // namespace detail

/// Connects to the node at address ("host:port" or "[ipv6]:port") and opens
/// opts.database. Signature: void(error_code, connection).
template <class Executor, class Token = default_token_t>
auto async_connect(const Executor& ex, std::string_view address,
                   const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(std::make_shared<connection>(opts, ex), std::string(address), token);
}

/// Connects over a unix socket and opens opts.database. path: a file system path, or
/// "@name" for an abstract socket (Linux). Signature: void(error_code, unix_connection).
template <class Executor, class Token = default_token_t>
auto async_connect_unix(const Executor& ex, std::string_view path,
                        const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(std::make_shared<unix_connection>(opts, ex),
                             detail::unix_endpoint(path), token);
}

}  // namespace dqlite
