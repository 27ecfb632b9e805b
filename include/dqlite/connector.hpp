// How a cluster client and a pool reach their nodes: a connector makes a connection and
// connects it to the node behind an advertised address. TCP is the default; unix sockets
// here, TLS in dqlite/tls.hpp, and any user function (address mapping, proxies, custom
// sockets) through basic_connector's two members.
#pragma once

#include <dqlite/address.hpp>
#include <dqlite/connection.hpp>
#include <dqlite/detail/cluster/result.hpp>
#include <dqlite/detail/connect_op.hpp>
#include <dqlite/error.hpp>
#include <dqlite/options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dqlite {

/// Maps a node's advertised address (as the node store and the LEADER and CLUSTER answers
/// give it) to the address to dial: for clusters behind TLS terminators, NAT or a proxy.
using address_map = std::function<std::string(std::string_view advertised)>;

/// How basic_cluster<Stream> and basic_pool<Stream> reach a node.
///
/// make(opts, ex): a new connection, not connected, with options opts, doing its I/O on ex
/// (the cluster's strand). connect(conn, address): connects conn to the node that
/// advertises `address` (transport, TLS handshake if any, the dqlite handshake, opening
/// conn.options().database) and gives the error, with its text left in
/// conn.diagnostics(); a user function usually ends with conn.async_connect(...) or
/// conn.async_handshake(...). check_address(address): why an address given to the cluster
/// can never be dialled ("" when it can); empty: every address is accepted.
///
/// connect runs as a coroutine on the cluster's strand; both are called for every new
/// connection (probes, the leader, administration), so they must not block. Connections
/// are made rarely, so the functions are type-erased: one cluster type per stream type.
template <class Stream>
struct basic_connector {
  using stream_type = Stream;
  using connection_type = basic_connection<Stream>;

  std::function<connection_type(const connection_options& opts,
                                const boost::asio::any_io_executor& ex)>
      make;
  std::function<boost::asio::awaitable<error_code>(connection_type& conn, std::string address)>
      connect;
  std::function<std::string(std::string_view address)> check_address;
};

namespace detail {

/// Why address is not "host:port" ("" when it is).
inline std::string host_port_problem(std::string_view address) {
  host_port hp;
  if (parse_address(address, hp))
    return "invalid node address '" + printable(address) + "' (expected host:port)";
  return {};
}

inline std::string mapped(const address_map& map, std::string address) {
  return map ? map(address) : address;
}

}  // namespace detail

namespace detail {

// The body of tcp_connector and unix_connector, one per socket type. It is a template,
// although each public connector has one socket type, so that a unit compiles a
// connector's connect coroutine (an async_connect and the connection's opening loop) only
// when it makes that connector, not whenever it includes this header. With separate
// compilation, <dqlite/src.hpp> compiles both.

template <class Socket>
basic_connector<Socket> make_socket_connector(address_map map) {
  using conn_t = basic_connection<Socket>;
  constexpr bool unix_socket =
      std::is_same_v<typename Socket::protocol_type, boost::asio::local::stream_protocol>;
  basic_connector<Socket> c;
  c.make = [](const connection_options& o, const boost::asio::any_io_executor& ex) {
    return conn_t(o, ex);
  };
  c.connect = [map = std::move(map)](conn_t& conn,
                                     std::string address) -> boost::asio::awaitable<error_code> {
    std::string target = mapped(map, std::move(address));
    if constexpr (unix_socket) {
      auto [ec] = co_await conn.async_connect(unix_endpoint(target), as_tuple_awaitable);
      co_return ec;
    } else {
      auto [ec] = co_await conn.async_connect(std::move(target), as_tuple_awaitable);
      co_return ec;
    }
  };
  if constexpr (unix_socket)
    c.check_address = [](std::string_view a) -> std::string {
      return a.empty() ? "a node address is empty" : std::string();
    };
  else
    c.check_address = host_port_problem;
  return c;
}

#ifdef DQLITE_CLIENT_SEPARATE_COMPILATION
extern template basic_connector<boost::asio::ip::tcp::socket>
make_socket_connector<boost::asio::ip::tcp::socket>(address_map);
extern template basic_connector<boost::asio::local::stream_protocol::socket>
make_socket_connector<boost::asio::local::stream_protocol::socket>(address_map);
#endif

}  // namespace detail

/// Plain TCP (the default of dqlite::cluster and dqlite::pool). With `map` (an address_map,
/// or any callable std::string(std::string_view) it can hold), each advertised address is
/// dialled at map(address). Node addresses must be "host:port".
template <class Map = address_map>
  requires std::is_convertible_v<Map, address_map>
basic_connector<boost::asio::ip::tcp::socket> tcp_connector(Map map = {}) {
  return detail::make_socket_connector<boost::asio::ip::tcp::socket>(address_map(std::move(map)));
}

/// Unix sockets: the node that advertises `address` listens at path_of(address), a file
/// system path or "@name" for an abstract socket (Linux). Without path_of, the advertised
/// address is the path (nodes whose address is "@name" or "/path", as a node bound to a
/// unix socket advertises). Any non-empty address is accepted. path_of: an address_map, or
/// any callable it can hold.
template <class Map = address_map>
  requires std::is_convertible_v<Map, address_map>
basic_connector<boost::asio::local::stream_protocol::socket> unix_connector(Map path_of = {}) {
  return detail::make_socket_connector<boost::asio::local::stream_protocol::socket>(
      address_map(std::move(path_of)));
}

namespace detail {

/// The connector a cluster of Stream uses when none is given: TCP for TCP sockets. Other
/// streams need one (unix_connector, tls_connector, or the user's).
template <class Stream>
basic_connector<Stream> default_connector() {
  if constexpr (std::is_same_v<Stream, boost::asio::ip::tcp::socket>) {
    return tcp_connector();
  } else {
    return {};
  }
}

/// Whether c can be used: both functions are set.
template <class Stream>
void check_connector(const basic_connector<Stream>& c) {
  if (!c.make || !c.connect)
    throw error(make_error_code(errc::invalid_argument),
                diagnostics("the connector has no make or no connect function (streams other "
                            "than TCP need a connector: unix_connector, tls_connector, or one "
                            "of the caller's)"));
}

}  // namespace detail
}  // namespace dqlite
