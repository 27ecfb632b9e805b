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


#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

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
    if (!ec) s.set_verify_callback(verify_with_reason{boost::asio::ssl::host_name_verification(host),
                                                      is_ip_literal(host)},
                                   ec);
    return ec;
  }

  /// Host name verification that leaves the reason of a refusal where OpenSSL keeps the
  /// verification result (SSL_get_verify_result): a certificate that does not name the host
  /// is X509_V_ERR_HOSTNAME_MISMATCH (X509_V_ERR_IP_ADDRESS_MISMATCH for an address); a
  /// chain that does not verify keeps OpenSSL's own reason (issuer unknown, expired...).
  struct verify_with_reason {
    boost::asio::ssl::host_name_verification check;
    bool ip = false;
    bool operator()(bool preverified, boost::asio::ssl::verify_context& ctx) {
      if (!preverified) return false;
      if (check(preverified, ctx)) return true;
      X509_STORE_CTX_set_error(ctx.native_handle(), ip ? X509_V_ERR_IP_ADDRESS_MISMATCH
                                                       : X509_V_ERR_HOSTNAME_MISMATCH);
      return false;
    }
  };

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

/// Why the server's certificate was refused during the TLS handshake of `s`, or an empty
/// string when it was not (or not verified): which check failed, from OpenSSL's
/// verification result. A certificate that does not name the host connected to: "the
/// server's certificate does not name the host ...". A certificate not issued by a CA of
/// the context's verify paths: "the server's certificate was not issued by a trusted CA
/// ...". Other reasons (expired, not yet valid, revoked...) are named by OpenSSL's text.
template <class Next>
std::string tls_verify_failure(const boost::asio::ssl::stream<Next>& s,
                               std::string_view host = {}) {
  SSL* ssl = const_cast<boost::asio::ssl::stream<Next>&>(s).native_handle();
  const long r = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (r == X509_V_OK) return {};
  const std::string what =
      std::string(X509_verify_cert_error_string(r)) + ", X509 error " + std::to_string(r);
  const std::string name = host.empty() ? std::string() : " " + std::string(host);
  switch (r) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
      return "the server's certificate does not name the host" + name +
             " (" + what + "): connect with a name the certificate lists";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return "the server's certificate was not issued by a trusted CA (" + what +
             "): check the CA the context verifies with (load_verify_file)";
    default: return "the server's certificate was refused (" + what + ")";
  }
}

namespace detail {

/// After a failed TLS connect to address: a handshake refused on the certificate gets the
/// reason (tls_verify_failure) added to the connection's diagnostics.
inline void add_verify_failure(tls_connection& conn, const std::string& address, error_code ec) {
  if (!ec || ec.category() != boost::asio::error::get_ssl_category()) return;
  host_port hp;
  std::string host = parse_address(address, hp) ? std::string() : hp.host;
  auto why = tls_verify_failure(conn.stream(), host);
  if (!why.empty())
    connection_access::impl(conn)->diag.assign(conn.diagnostics().message() + ": " + why);
}

/// Connects a new TLS connection; a handshake that failed on the certificate gets the
/// reason (tls_verify_failure) added to its diagnostics.
struct tls_connect_op {
  std::shared_ptr<tls_connection> conn;
  std::string address;
  bool started = false;

  template <class Self>
  void operator()(Self& self, error_code ec = {}) {
    if (!started) {
      started = true;
      auto& c = *conn;
      c.async_connect(address, std::move(self));
      return;
    }
    add_verify_failure(*conn, address, ec);
    self.complete(ec, std::move(*conn));
  }
};

struct tls_connect_initiation {
  std::shared_ptr<tls_connection> conn;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const {
    const auto& c = connection_access::impl(*conn);
    return {c, &c->diag};
  }
  template <class Handler>
  void operator()(Handler&& h, std::string address) {
    auto ex = conn->get_executor();
    boost::asio::async_compose<Handler, void(error_code, tls_connection)>(
        tls_connect_op{conn, std::move(address)}, h, ex);
  }
};

}  // namespace detail

/// Connects over TLS to address ("host:port" or "[ipv6]:port"), verifies the server's
/// certificate against the host name (or IP address) in address, and opens opts.database.
/// A certificate refused by the verification fails with the TLS error ("certificate
/// verify failed"), and the diagnostics say which check failed (see tls_verify_failure:
/// the host name, or the issuer). Signature:
/// void(error_code, tls_connection).
template <class Executor, class Token = default_token_t>
auto async_connect_tls(const Executor& ex, boost::asio::ssl::context& ctx, std::string_view address,
                       const connection_options& opts = {}, Token&& token = {}) {
  return boost::asio::async_initiate<Token, void(error_code, tls_connection)>(
      detail::tls_connect_initiation{std::make_shared<tls_connection>(opts, ex, ctx)}, token,
      std::string(address));
}

/// TLS over TCP for basic_cluster and basic_pool: each connection is made with `ctx`
/// (which must outlive the cluster or pool) and verifies the node's certificate against the
/// host name (or IP address) of the address it dials, as async_connect_tls does; the
/// diagnostics of a refused certificate say which check failed. With `map`, the node that
/// advertises an address is dialled at map(address) (a TLS terminator in front of each
/// node: the certificate must then name the mapped host). Node addresses must be
/// "host:port".
///
///   boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
///   ctx.load_verify_file("ca.pem");
///   dqlite::tls_pool pool(ex, dqlite::tls_connector(ctx), {"db1.example:9001"},
///                         {.database = "app"});
///
/// `map`: an address_map, or any callable it can hold. (A template, like tcp_connector, so
/// that a unit compiles the connect coroutine only when it makes a connector.)
template <class Map = address_map>
  requires std::is_convertible_v<Map, address_map>
basic_connector<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> tls_connector(
    boost::asio::ssl::context& ctx, Map m = {}) {
  address_map map(std::move(m));
  basic_connector<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> c;
  c.make = [ctx = &ctx](const connection_options& o, const boost::asio::any_io_executor& ex) {
    return tls_connection(o, ex, *ctx);
  };
  c.connect = [map = std::move(map)](tls_connection& conn,
                                     std::string address) -> boost::asio::awaitable<error_code> {
    std::string target = detail::mapped(map, std::move(address));
    auto [ec] = co_await conn.async_connect(target, detail::as_tuple_awaitable);
    detail::add_verify_failure(conn, target, ec);
    co_return ec;
  };
  c.check_address = detail::host_port_problem;
  return c;
}

template <class Stream>
class basic_cluster;
template <class Stream>
class basic_pool;

/// A cluster client over TLS (constructed with a tls_connector; include dqlite/cluster.hpp).
using tls_cluster = basic_cluster<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;
/// A pool over TLS (constructed with a tls_connector; include dqlite/pool.hpp). Its
/// connections: tls_pool::pooled_connection_type.
using tls_pool = basic_pool<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;

}  // namespace dqlite
// ---- end dqlite/tls.hpp ----

#endif // DQLITE_SINGLE_INCLUDE_TLS_HPP
