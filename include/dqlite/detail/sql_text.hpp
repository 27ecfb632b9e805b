// What the client needs to know about an SQL text before sending it: how many statements it
// holds, and whether one of them has a RETURNING clause. The text is split into tokens the
// way SQLite's tokenizer does, so that a ';' or a word inside a string, a quoted identifier
// or a comment is not taken for a separator or a keyword.
#pragma once

#include <dqlite/detail/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dqlite::detail {

/// What an SQL text does to the connection's transaction, read from its statements' first
/// words in order (the last one that says something wins): BEGIN or SAVEPOINT open one;
/// COMMIT, END and ROLLBACK (not ROLLBACK ... TO, which stays inside) close it. RELEASE
/// closes it only when it releases the outermost savepoint of a transaction that SAVEPOINT
/// opened, which the text alone does not say: it counts as "opens" (may be open).
enum class tx_effect : std::uint8_t { none, opens, closes };

/// The shape of an SQL text.
struct sql_shape {
  /// Statements holding at least one token. Whitespace, comments and ';' between, before
  /// and after statements do not count ("SELECT 1;  -- done" is one statement).
  std::size_t statements = 0;
  /// Offset of the first byte after the end of the first statement (its ';', or the end of
  /// the text); the text's size when it holds no statement.
  std::size_t first_end = 0;
  /// The keyword RETURNING appears as a token (not inside a string, a quoted identifier or
  /// a comment) in some statement: the statement returns rows.
  bool returning = false;
  /// What the text does to the connection's transaction.
  tx_effect tx = tx_effect::none;
};

namespace sql_scan {

inline bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}
/// Characters of an unquoted word (identifier, keyword or number); SQLite takes every byte
/// of a multi-byte UTF-8 character as one.
inline bool is_word_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
         u == '_' || u == '$' || u >= 0x80;
}
inline bool word_is(std::string_view w, std::string_view keyword) noexcept {
  if (w.size() != keyword.size()) return false;
  for (std::size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != keyword[i]) return false;
  }
  return true;
}

}  // namespace sql_scan

/// Scans an SQL text as SQLite's tokenizer does:
/// - '...' strings (a doubled '' inside), "..." and `...` identifiers (doubled quote
///   inside), [...] identifiers, "-- ..." comments to the end of the line and "/* ... */"
///   comments (an unterminated one runs to the end of the text) are single tokens or
///   nothing; a ';' or a word inside them is not seen;
/// - ';' ends a statement, except inside the body of CREATE [TEMP] TRIGGER ... BEGIN ...
///   END, whose statements end with ';' too: there only a ';' right after the word END ends
///   the statement (the rule of sqlite3_complete()), where an END that closes a CASE
///   expression does not count.
/// An unterminated string or quoted identifier runs to the end of the text (the server
/// reports the syntax error).
DQLITE_DECL sql_shape scan_sql(std::string_view sql) noexcept;

/// True when SQL text is a statement that cannot change the database: its main keyword
/// is SELECT, VALUES or EXPLAIN, after white space, comments and (for WITH) the common
/// table expressions, whose bodies are skipped as balanced parentheses with strings,
/// quoted identifiers and comments taken whole. Anything else may write (INSERT, UPDATE,
/// DELETE, REPLACE, also after WITH; PRAGMA may set a value; BEGIN, COMMIT...).
DQLITE_DECL bool is_read_only_sql(std::string_view sql) noexcept;

}  // namespace dqlite::detail

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/sql_text.ipp>
#endif
