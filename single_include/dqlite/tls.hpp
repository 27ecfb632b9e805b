// dqlite-client for C++: single-header distribution.
//
// GENERATED FILE - DO NOT EDIT BY HAND.
// It is generated from the headers under include/ by tools/amalgamate.py.
// Edit those headers instead, then run: python3 tools/amalgamate.py
//
// Copyright (c) 2026 The dqlite-client for C++ authors
// SPDX-License-Identifier: MIT (see LICENSE.md)
//
// Add-on: <dqlite/tls.hpp>, which needs OpenSSL (link -lssl -lcrypto).

#ifndef DQLITE_SINGLE_INCLUDE_TLS_HPP
#define DQLITE_SINGLE_INCLUDE_TLS_HPP

#include "client.hpp"

// ---- begin dqlite/tls.hpp ----
// Connections over TLS (boost::asio::ssl::stream over TCP). Needs OpenSSL: link
// OpenSSL::SSL and OpenSSL::Crypto (CMake: the dqlite::tls target does).
//
// dqlite nodes do not speak TLS themselves in Debian's libdqlite; TLS is terminated in front
// of them (stunnel, a proxy), or by a node built with TLS support.
//
//   boost::asio::ssl::context tls(boost::asio::ssl::context::tls_client);
//   tls.load_verify_file("ca.pem");                      // verification is on by default
//   auto conn = co_await dqlite::async_connect_tls(ex, tls, "db.example:9001", {.database = "app"});


#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace dqlite {

/// A connection over TLS.
using tls_connection = basic_connection<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;

namespace detail {

template <class Next>
struct tls_setup<boost::asio::ssl::stream<Next>> {
  static constexpr bool is_tls = true;
  /// Sends the host name (SNI, when it is a name) and, unless the caller has set a verify
  /// mode of "none" on the context, verifies the peer's certificate against it.
  static error_code prepare(boost::asio::ssl::stream<Next>& s, const std::string& host) {
    error_code ec;
    if (!host.empty() && !is_ip_literal(host)) {
      if (!SSL_set_tlsext_host_name(s.native_handle(), host.c_str()))
        return error_code(static_cast<int>(::ERR_get_error()),
                          boost::asio::error::get_ssl_category());
    }
    if (SSL_get_verify_mode(s.native_handle()) == SSL_VERIFY_NONE &&
        !verify_none_requested(s))
      s.set_verify_mode(boost::asio::ssl::verify_peer, ec);
    if (!ec) s.set_verify_callback(boost::asio::ssl::host_name_verification(host), ec);
    return ec;
  }

 private:
  static bool is_ip_literal(const std::string& host) {
    error_code ec;
    (void)boost::asio::ip::make_address(host, ec);
    return !ec;
  }
  // A context whose verify mode was set to none explicitly keeps it (for tests on private
  // networks); the default context mode is none as well, so the explicit choice is marked
  // on the context with dqlite::tls_no_verify().
  static bool verify_none_requested(boost::asio::ssl::stream<Next>& s) {
    SSL_CTX* ctx = SSL_get_SSL_CTX(s.native_handle());
    return ctx && SSL_CTX_get_ex_data(ctx, no_verify_index()) != nullptr;
  }

 public:
  static int no_verify_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
};

}  // namespace detail

/// Turns certificate verification off for connections made with ctx (it is on by default:
/// the peer's certificate must be valid and name the host connected to). For tests only.
inline void tls_no_verify(boost::asio::ssl::context& ctx) {
  using setup = detail::tls_setup<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;
  static char marker = 1;
  SSL_CTX_set_ex_data(ctx.native_handle(), setup::no_verify_index(), &marker);
  ctx.set_verify_mode(boost::asio::ssl::verify_none);
}

/// Connects over TLS to address ("host:port" or "[ipv6]:port"), verifies the server's
/// certificate against the host name (or IP address) in address, and opens opts.database.
/// Signature: void(error_code, tls_connection).
template <class Executor, class Token = default_token_t>
auto async_connect_tls(const Executor& ex, boost::asio::ssl::context& ctx, std::string_view address,
                       const connection_options& opts = {}, Token&& token = {}) {
  return detail::connect_new(std::make_shared<tls_connection>(opts, ex, ctx),
                             std::string(address), token);
}

}  // namespace dqlite
// ---- end dqlite/tls.hpp ----

#endif // DQLITE_SINGLE_INCLUDE_TLS_HPP
