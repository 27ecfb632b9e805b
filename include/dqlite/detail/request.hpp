// Starting a statement request (SQL text or a prepared statement) with parameters.
#pragma once

#include <dqlite/detail/exchange.hpp>
#include <dqlite/error.hpp>
#include <dqlite/params.hpp>
#include <dqlite/wire/encode.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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
  bool read_only = false;        ///< a prepared statement that cannot write (see below)

  wire::request type(bool query) const noexcept {
    if (prepared) return query ? wire::request::query : wire::request::exec;
    return query ? wire::request::query_sql : wire::request::exec_sql;
  }
};

/// True when SQL text is a statement that cannot change the database: its main keyword
/// is SELECT, VALUES or EXPLAIN, after white space, comments and (for WITH) the common
/// table expressions, whose bodies are skipped as balanced parentheses with strings,
/// quoted identifiers and comments taken whole. Anything else may write (INSERT, UPDATE,
/// DELETE, REPLACE, also after WITH; PRAGMA may set a value; BEGIN, COMMIT...).
inline bool is_read_only_sql(std::string_view sql) noexcept {
  const std::size_t n = sql.size();
  std::size_t i = 0;
  auto lower = [](char ch) { return static_cast<char>(ch | 0x20); };
  auto is_word_char = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || static_cast<unsigned char>(ch) >= 0x80;
  };
  // Skips one token that is not a word: white space, a comment, a string or quoted
  // identifier, or one punctuation character. False at the end or in an unclosed token.
  auto skip_other = [&]() -> bool {
    char ch = sql[i];
    if (ch == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
      return true;
    }
    if (ch == '/' && i + 1 < n && sql[i + 1] == '*') {
      auto end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return false;
      i = end + 2;
      return true;
    }
    if (ch == '\'' || ch == '"' || ch == '`' || ch == '[') {
      char close = ch == '[' ? ']' : ch;
      for (++i; i < n; ++i) {
        if (sql[i] != close) continue;
        if (close != ']' && i + 1 < n && sql[i + 1] == close) {  // doubled quote
          ++i;
          continue;
        }
        ++i;
        return true;
      }
      return false;
    }
    ++i;
    return true;
  };
  int depth = 0;
  bool first = true;
  while (i < n) {
    if (!is_word_char(sql[i])) {
      char ch = sql[i];
      if (!skip_other()) return false;
      if (ch == '(') ++depth;
      if (ch == ')') --depth;
      continue;
    }
    std::size_t j = i;
    while (j < n && is_word_char(sql[j])) ++j;
    auto word = sql.substr(i, j - i);
    i = j;
    if (depth != 0) continue;
    auto is = [&](std::string_view kw) {
      if (word.size() != kw.size()) return false;
      for (std::size_t k = 0; k < kw.size(); ++k)
        if (lower(word[k]) != kw[k]) return false;
      return true;
    };
    if (is("select") || is("values") || (first && is("explain"))) return true;
    if (!(first && is("with"))) {
      // After WITH: the names, RECURSIVE, AS, MATERIALIZED... until the main keyword.
      if (first || is("insert") || is("update") || is("delete") || is("replace")) return false;
    }
    first = false;
  }
  return false;
}

/// Encodes the request into impl.wbuf.
/// Statements need a database: a connection made without one (an empty
/// connection_options::database, for administration) has none until async_open_database.
template <class Impl>
error_code check_database(Impl& ci) {
  if (!ci.database.empty()) return {};
  ci.diag.assign("no database is open on this connection (connection_options::database was "
                 "empty): call async_open_database first");
  return make_error_code(errc::not_connected);
}

template <class Impl, class... P>
error_code encode_request(Impl& ci, const request_spec& spec, bool query, const P&... params) {
  if (auto e = check_database(ci)) return e;
  wire::frame_mark m{};
  if (spec.prepared) {
    if (spec.generation != ci.generation) {
      ci.diag.assign("the prepared statement was closed, or belongs to an earlier opening of "
                     "this connection; prepare it again");
      return make_error_code(errc::not_connected);
    }
    m = wire::begin_stmt_request(ci.wbuf, spec.type(query), ci.db_id, spec.stmt);
  } else if (auto e = wire::begin_sql_request(ci.wbuf, spec.type(query), ci.db_id, spec.sql, m)) {
    ci.diag.assign("the SQL text contains a NUL byte");
    return e;
  }
  if (auto e = write_params(ci.wbuf, m, params...)) {
    ci.diag.assign(e == make_error_code(errc::invalid_argument)
                       ? "a text parameter contains a NUL byte"
                       : "a parameter could not be bound: " + e.message());
    return e;
  }
  wire::end_frame(ci.wbuf, m);
  return {};
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

/// Initiation of a statement request whose response goes to a Proc.
template <class Impl>
struct request_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class Proc, class... P>
  void operator()(Handler&& h, Proc proc, request_spec spec, bool query, const P&... params) {
    start_exchange(
        c, std::move(proc), std::forward<Handler>(h),
        [&](Impl& ci) { return encode_request(ci, spec, query, params...); },
        exchange_params{true, c->opts.request_timeout, spec.holder,
                        !query || !(spec.prepared ? spec.read_only : is_read_only_sql(spec.sql))});
  }
};

/// Initiation of an exchange with a request encoded by a function of the connection.
template <class Impl>
struct encoded_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class Proc, class Encode>
  void operator()(Handler&& h, Proc proc, Encode encode, exchange_params params) {
    start_exchange(c, std::move(proc), std::forward<Handler>(h), std::move(encode), params);
  }
};

/// Initiation of a composed operation Op (async_compose) on the connection.
template <class Impl, class Op, class Sig>
struct composed_initiation {
  std::shared_ptr<Impl> c;
  Op op;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler>
  void operator()(Handler&& h) {
    auto ex = c->stream.get_executor();
    boost::asio::async_compose<Handler, Sig>(std::move(op), h, ex);
  }
};

/// Completes a handler with an error found before anything could start (posted to the
/// handler's executor, never invoked inline).
template <class Impl>
struct failed_initiation {
  std::shared_ptr<Impl> c;
  std::shared_ptr<const dqlite::diagnostics> diagnostics_ptr() const { return {c, &c->diag}; }

  template <class Handler, class... R>
  void operator()(Handler&& h, error_code ec, std::string diag, R... results) {
    if (!diag.empty()) c->diag.assign(diag);
    auto ex = c->stream.get_executor();
    boost::asio::async_compose<Handler, void(error_code, R...)>(
        [ec, posted = false, ... r = std::move(results)](auto& self) mutable {
          if (!posted) {
            posted = true;
            boost::asio::post(std::move(self));
            return;
          }
          self.complete(ec, std::move(r)...);
        },
        h, ex);
  }
};

}  // namespace dqlite::detail
