// Definitions of detail/sql_text.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/sql_text.hpp>

namespace dqlite::detail {

DQLITE_DECL sql_shape scan_sql(std::string_view sql) noexcept {
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

DQLITE_DECL bool is_read_only_sql(std::string_view sql) noexcept {
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

}  // namespace dqlite::detail
