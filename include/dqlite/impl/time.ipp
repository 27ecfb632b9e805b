// Definitions of detail/time.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/time.hpp>

namespace dqlite::detail {

DQLITE_DECL std::optional<iso8601_time> parse_iso8601_time(std::string_view s) {
  using namespace std::chrono;
  std::size_t i = 0;
  auto digits = [&](int n, int& out) {
    if (i + static_cast<std::size_t>(n) > s.size()) return false;
    int v = 0;
    for (int k = 0; k < n; ++k) {
      char c = s[i + static_cast<std::size_t>(k)];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = v;
    i += static_cast<std::size_t>(n);
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  std::int64_t frac_ns = 0;
  if (!digits(4, y) || !expect('-') || !digits(2, mo) || !expect('-') || !digits(2, d))
    return std::nullopt;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  if (i < s.size() && (s[i] == ' ' || s[i] == 'T')) {
    ++i;
    if (!digits(2, h) || !expect(':') || !digits(2, mi)) return std::nullopt;
    if (expect(':')) {
      if (!digits(2, sec)) return std::nullopt;
      if (expect('.')) {
        int n = 0;
        std::int64_t scale = 100000000;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
          if (n < 9) {
            frac_ns += (s[i] - '0') * scale;
            scale /= 10;
          }
          ++n;
          ++i;
        }
        if (n == 0) return std::nullopt;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  }
  int offset_min = 0;
  if (i < s.size()) {
    if (s[i] == 'Z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int oh = 0, om = 0;
      if (!digits(2, oh)) return std::nullopt;
      expect(':');
      if (!digits(2, om)) return std::nullopt;
      if (oh > 23 || om > 59) return std::nullopt;
      offset_min = sign * (oh * 60 + om);
    }
  }
  if (i != s.size()) return std::nullopt;
  return iso8601_time{sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - minutes{offset_min},
                      nanoseconds{frac_ns}};
}

DQLITE_DECL std::optional<std::chrono::sys_time<std::chrono::nanoseconds>> parse_iso8601(
    std::string_view s) {
  using namespace std::chrono;
  auto t = parse_iso8601_time(s);
  if (!t) return std::nullopt;
  constexpr auto limit = duration_cast<seconds>(nanoseconds::max()).count();
  auto count = t->seconds.time_since_epoch().count();
  if (count >= limit || count < -limit) return std::nullopt;
  return sys_time<nanoseconds>{t->seconds} + t->fraction;
}

}  // namespace dqlite::detail
