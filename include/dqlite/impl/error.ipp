// Definitions of error.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/error.hpp>

namespace dqlite {

DQLITE_DECL const boost::system::error_category& client_category() noexcept {
  static const detail::client_category_impl cat;
  return cat;
}

DQLITE_DECL const boost::system::error_category& server_category() noexcept {
  static const detail::server_category_impl cat;
  return cat;
}

DQLITE_DECL std::string error::format(const error_code& ec, const diagnostics& d) {
  std::string msg = ec.message();
  std::string out = d.message();
  if (out.empty())
    out = msg;
  else if (out.find(msg) == std::string::npos)
    out += ": " + msg;
  out += " [";
  out += ec.category().name();
  out += ':';
  out += std::to_string(ec.value());
  out += ']';
  return out;
}

namespace detail {

DQLITE_DECL std::exception_ptr make_error_ptr(const error_code& ec, const diagnostics* d) {
  return std::make_exception_ptr(error(ec, d ? *d : diagnostics{}));
}

DQLITE_DECL std::string describe_failure(std::uint64_t code, std::string_view message,
                                       std::span<const std::byte> request) {
const bool has_request = request.size() >= 8;
const unsigned type = has_request ? static_cast<unsigned>(request[4]) : 256u;
const unsigned schema = has_request ? static_cast<unsigned>(request[5]) : 0u;
const char* name = request_name(type);
const std::string to = name != nullptr ? std::string(" to ") + name : std::string();
const bool is_query = type == 6 || type == 9;
const bool says_nothing = message.empty() || message == "not an error";
const std::string server_text =
    message.empty() ? std::string("no message") : "\"" + std::string(message) + "\"";

if (code == 0 && message == "empty statement")
  return "the SQL text holds no statement (the server answered" + to + ": empty statement)";
if (!says_nothing && code != 0) return std::string(message);
if (code == 1005) {
  std::string out = "the server could not read the" + (name ? " " + std::string(name) : std::string()) +
                    " request (code 1005, DQLITE_PARSE: unknown request type, schema or format; "
                    "the server's text: " + server_text + ")";
  if (schema == 1)
    out += ": it does not understand the parameter encoding used for more than 255 "
           "parameters (schema 1, understood from libdqlite 1.12; 1.11.1 does not); nothing "
           "was applied";
  return out;
}
if (code == 1 && is_query && message == "not an error")
  return "the statement returns no rows, and this server version cannot run such a "
         "statement as a query (libdqlite 1.11.1 answers so; 1.18 runs it): nothing was "
         "applied; run it with execute";
if (code == 0)
  return "the server reported a failure without an error code" + to + " (the server's text: " +
         server_text + ")";
return "the server reported code " + std::to_string(code) + " (" +
       server_category().message(static_cast<int>(code & 0x7fffffff)) + ")" + to +
       " without an explanation (the server's text: " + server_text + ")";
}

}  // namespace detail

}  // namespace dqlite
