// Separate compilation: the parts of the library that do not depend on the user's types,
// compiled once. With DQLITE_CLIENT_SEPARATE_COMPILATION defined in every unit of a
// program (e.g. on the compiler's command line), exactly one unit includes this header:
//
//     // dqlite_client.cpp
//     #include <dqlite/src.hpp>
//
// The other units include <dqlite/client.hpp> (or the headers they need) as usual; they
// declare these parts and do not compile them again. A program built with the macro and
// without this unit fails to link with undefined references to the connections' members
// (dqlite::basic_connection<...>::~basic_connection()...), dqlite::detail::start_request,
// run_exchange, run_connect, dqlite::client_category()...
//
// What is compiled here: the functions of include/dqlite/impl/*.ipp (error categories and
// messages, node addresses, dynamic values and rows, SQL text scanning, frame encoding and
// decoding, the request exchange's handling of frames, failures and cancellation, column
// matching, ISO-8601 times, the logging and tracing events, the jitter of retry pauses, the
// cluster client's attempt reports, the pool's slot table and transaction retry rule, the
// blocking dqlite::connect and connect_unix), the start of
// every statement request (and the probe of the server some need first), the connections'
// construction from options and an executor (as async_connect and connect() do it),
// destruction, moves and closing, the members of their state, the TCP and unix connectors
// (dqlite/connector.hpp), and the I/O loops that run every request
// exchange and every connection opening (asynchronous and blocking), for TCP
// (boost::asio::ip::tcp::socket) and unix sockets (boost::asio::local::stream_protocol::
// socket) with Asio's default executor. Other streams (TLS, a custom executor) are
// compiled in the units that use them, as in header-only mode.
#pragma once

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#error "<dqlite/src.hpp> is for separate compilation: define DQLITE_CLIENT_SEPARATE_COMPILATION in every unit of the program"
#else  // the rest only with the macro: one clear error without it

#include <dqlite/client.hpp>

// The library's functions that do not depend on the user's types (declared only in the
// other units: detail/config.hpp).
#include <dqlite/impl/error.ipp>
#include <dqlite/impl/address.ipp>
#include <dqlite/impl/value.ipp>
#include <dqlite/impl/connection.ipp>
#include <dqlite/impl/time.ipp>
#include <dqlite/impl/field.ipp>
#include <dqlite/impl/observe.ipp>
#include <dqlite/impl/slots.ipp>
#include <dqlite/impl/backoff.ipp>
#include <dqlite/impl/result.ipp>
#include <dqlite/impl/transaction_retry.ipp>
#include <dqlite/impl/sql_text.ipp>
#include <dqlite/impl/encode.ipp>
#include <dqlite/impl/decode.ipp>
#include <dqlite/impl/mapping.ipp>
#include <dqlite/impl/procs.ipp>
#include <dqlite/impl/request.ipp>
#include <dqlite/impl/server_probe.ipp>
#include <dqlite/impl/session.ipp>
#include <dqlite/impl/exchange_machine.ipp>

namespace dqlite::detail {

template struct connection_impl<boost::asio::ip::tcp::socket>;
template struct connection_impl<boost::asio::local::stream_protocol::socket>;
template connection_impl<boost::asio::ip::tcp::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
template connection_impl<boost::asio::local::stream_protocol::socket>::connection_impl(
    const connection_options&, const boost::asio::any_io_executor&);
template void run_exchange<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, exchange_core&,
    std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
template void run_exchange<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    exchange_core&, std::chrono::milliseconds, loop_handler<boost::asio::any_io_executor>);
template void run_connect<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&, std::string,
    std::optional<boost::asio::ip::tcp::endpoint>, loop_handler<boost::asio::any_io_executor>);
template void run_connect<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    std::string, std::optional<boost::asio::local::stream_protocol::endpoint>, loop_handler<boost::asio::any_io_executor>);
template basic_connector<boost::asio::ip::tcp::socket>
make_socket_connector<boost::asio::ip::tcp::socket>(address_map);
template basic_connector<boost::asio::local::stream_protocol::socket>
make_socket_connector<boost::asio::local::stream_protocol::socket>(address_map);
template void start_request<boost::asio::ip::tcp::socket>(
    const std::shared_ptr<connection_impl<boost::asio::ip::tcp::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
template void start_request<boost::asio::local::stream_protocol::socket>(
    const std::shared_ptr<connection_impl<boost::asio::local::stream_protocol::socket>>&,
    request_core<boost::asio::any_io_executor>&, const request_start&);
template error_code run_blocking_exchange<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, exchange_core&, std::chrono::milliseconds,
    bool*);
template error_code run_blocking_exchange<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, exchange_core&,
    std::chrono::milliseconds, bool*);
template error_code run_blocking_connect<boost::asio::ip::tcp::socket>(
    connection_impl<boost::asio::ip::tcp::socket>&, std::string_view,
    const boost::asio::ip::tcp::endpoint*);
template error_code run_blocking_connect<boost::asio::local::stream_protocol::socket>(
    connection_impl<boost::asio::local::stream_protocol::socket>&, std::string_view,
    const boost::asio::local::stream_protocol::endpoint*);

}  // namespace dqlite::detail

/// @cond DQLITE_INTERNAL
namespace dqlite {

template class basic_connection<boost::asio::ip::tcp::socket>;
template class basic_connection<boost::asio::local::stream_protocol::socket>;
template basic_connection<boost::asio::ip::tcp::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);
template basic_connection<boost::asio::local::stream_protocol::socket>::basic_connection(
    const connection_options&, const boost::asio::any_io_executor&);

}  // namespace dqlite
/// @endcond

#endif  // DQLITE_CLIENT_SEPARATE_COMPILATION
