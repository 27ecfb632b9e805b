// What the client needs to know about an SQL text before sending it: how many statements it
// holds, and whether one of them has a RETURNING clause. The text is split into tokens the
// way SQLite's tokenizer does, so that a ';' or a word inside a string, a quoted identifier
// or a comment is not taken for a separator or a keyword.
#pragma once

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
inline sql_shape scan_sql(std::string_view sql) noexcept {
  using namespace sql_scan;
  sql_shape out;
  out.first_end = sql.size();
  const std::size_t n = sql.size();
  std::size_t i = 0;
  // The statement being read.
  std::size_t tokens = 0;     // tokens so far
  std::size_t words = 0;      // leading words examined for CREATE [TEMP] TRIGGER
  bool trigger = false;       // a CREATE TRIGGER statement: ';' ends it only after END
  bool after_end = false;     // the last token was the word END
  bool leading = true;        // still in the statement's leading words
  std::size_t case_depth = 0;  // CASE expressions open (their END ends no trigger)
  // Transaction control: 1 after a leading ROLLBACK, 2 after ROLLBACK TRANSACTION.
  int rollback = 0;
  auto end_statement = [&](std::size_t at) {
    if (tokens > 0) {
      if (++out.statements == 1) out.first_end = at;
    }
    if (rollback != 0) out.tx = tx_effect::closes;
    rollback = 0;
    tokens = 0;
    words = 0;
    trigger = false;
    after_end = false;
    leading = true;
    case_depth = 0;
  };
  auto token = [&](std::string_view word) {
    ++tokens;
    after_end = false;
    if (tokens == 1 && !word.empty()) {
      if (word_is(word, "BEGIN") || word_is(word, "SAVEPOINT") || word_is(word, "RELEASE"))
        out.tx = tx_effect::opens;
      else if (word_is(word, "COMMIT") || word_is(word, "END"))
        out.tx = tx_effect::closes;
      else if (word_is(word, "ROLLBACK"))
        rollback = 1;
    } else if (rollback != 0 && !word.empty()) {
      if (word_is(word, "TO"))
        rollback = 0;  // ROLLBACK [TRANSACTION] TO savepoint: the transaction stays open
      else if (rollback == 1 && word_is(word, "TRANSACTION"))
        rollback = 2;
    }
    if (!word.empty() && word_is(word, "CASE")) {
      ++case_depth;
    } else if (!word.empty() && word_is(word, "END")) {
      if (case_depth > 0)
        --case_depth;  // the END of a CASE expression
      else
        after_end = true;
    }
    if (!word.empty() && word_is(word, "RETURNING")) out.returning = true;
    if (!leading) return;
    // Leading words: [EXPLAIN [QUERY PLAN]] CREATE [TEMP | TEMPORARY] TRIGGER.
    if (word.empty()) {
      leading = false;
      return;
    }
    ++words;
    if (word_is(word, "EXPLAIN") || word_is(word, "QUERY") || word_is(word, "PLAN") ||
        word_is(word, "CREATE") || word_is(word, "TEMP") || word_is(word, "TEMPORARY")) {
      if (words > 6) leading = false;
      return;
    }
    if (word_is(word, "TRIGGER")) trigger = true;
    leading = false;
  };
  while (i < n) {
    const char c = sql[i];
    if (is_space(c)) {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      i += 2;
      while (i < n && !(sql[i] == '*' && i + 1 < n && sql[i + 1] == '/')) ++i;
      i = i < n ? i + 2 : n;
    } else if (c == ';') {
      if (!trigger || after_end) end_statement(i + 1);
      else after_end = false;
      ++i;
    } else if (c == '\'' || c == '"' || c == '`') {
      // A quoted string or identifier: the quote doubled inside stands for itself.
      ++i;
      for (;;) {
        if (i >= n) break;
        if (sql[i] == c) {
          if (i + 1 < n && sql[i + 1] == c) {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
      token({});
    } else if (c == '[') {
      while (i < n && sql[i] != ']') ++i;
      i = i < n ? i + 1 : n;
      token({});
    } else if (is_word_char(c)) {
      const std::size_t start = i;
      while (i < n && is_word_char(sql[i])) ++i;
      token(sql.substr(start, i - start));
    } else {
      ++i;  // an operator or punctuation, a parameter marker...
      token({});
    }
  }
  end_statement(n);
  return out;
}

}  // namespace dqlite::detail
