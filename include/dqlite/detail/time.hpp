// ISO-8601 formatting and parsing for DATETIME/DATE/TIMESTAMP values.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ratio>
#include <string_view>

namespace dqlite::detail {

/// Longest text format_iso8601 writes.
inline constexpr std::size_t iso8601_max_size = 48;

/// Formats a UTC time as "2006-01-02 15:04:05.999999999+00:00" (the fraction without
/// trailing zeros, and without the dot when zero), the form the Go client sends.
template <class Duration>
std::string_view format_iso8601(std::chrono::time_point<std::chrono::system_clock, Duration> tp,
                                char (&out)[iso8601_max_size]) {
  using namespace std::chrono;
  // Split without converting tp to nanoseconds: a coarser tp may lie outside their range.
  auto day = floor<days>(tp);
  year_month_day ymd{day};
  auto tod = tp - day;  // [0, 24h)
  auto secs = floor<seconds>(tod);
  auto secs_of_day = secs.count();
  auto frac = static_cast<std::uint64_t>(duration_cast<nanoseconds>(tod - secs).count());
  char* p = out;
  auto put = [&](std::uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    p += width;
  };
  int y = static_cast<int>(ymd.year());
  if (y < 0) {
    *p++ = '-';
    y = -y;
  }
  put(static_cast<std::uint64_t>(y), y > 9999 ? 5 : 4);
  *p++ = '-';
  put(static_cast<unsigned>(ymd.month()), 2);
  *p++ = '-';
  put(static_cast<unsigned>(ymd.day()), 2);
  *p++ = ' ';
  put(static_cast<std::uint64_t>(secs_of_day / 3600), 2);
  *p++ = ':';
  put(static_cast<std::uint64_t>(secs_of_day / 60 % 60), 2);
  *p++ = ':';
  put(static_cast<std::uint64_t>(secs_of_day % 60), 2);
  if (frac != 0) {
    *p++ = '.';
    int digits = 9;
    while (frac % 10 == 0) {
      frac /= 10;
      --digits;
    }
    put(frac, digits);
  }
  for (char c : std::string_view("+00:00")) *p++ = c;
  return std::string_view(out, static_cast<std::size_t>(p - out));
}

/// A date/time read from an ISO-8601 text: whole seconds and the fraction of a second.
struct iso8601_time {
  std::chrono::sys_seconds seconds;
  std::chrono::nanoseconds fraction{0};  ///< in [0, 1 s)
};

/// The years format_iso8601 writes and parse_iso8601_time reads: those of SQLite's date and
/// time functions (four digits).
inline constexpr int iso8601_min_year = 0;
inline constexpr int iso8601_max_year = 9999;

/// Parses the forms SQLite and the Go client use: "YYYY-MM-DD", optionally followed by
/// ' ' or 'T' and "HH:MM", ":SS", ".fraction" (up to 9 digits are kept), then optionally
/// 'Z' or a "+HH:MM" / "-HH:MM" / "+HHMM" offset. Without an offset the time is UTC. Every
/// date of the years 0000 to 9999 is read; nullopt when the text is not such a time.
inline std::optional<iso8601_time> parse_iso8601_time(std::string_view s) {
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
  return iso8601_time{
      sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - minutes{offset_min},
      nanoseconds{frac_ns}};
}

/// parse_iso8601_time as one sys_time<nanoseconds>, which only spans the years 1677 to 2262:
/// nullopt outside them too.
inline std::optional<std::chrono::sys_time<std::chrono::nanoseconds>> parse_iso8601(
    std::string_view s) {
  using namespace std::chrono;
  auto t = parse_iso8601_time(s);
  if (!t) return std::nullopt;
  constexpr auto limit = duration_cast<seconds>(nanoseconds::max()).count();
  auto count = t->seconds.time_since_epoch().count();
  if (count >= limit || count < -limit) return std::nullopt;
  return sys_time<nanoseconds>{t->seconds} + t->fraction;
}

/// Whether a time of `secs` seconds since the epoch (plus a fraction of a second when
/// `fraction`) fits a system_clock time point of Duration.
template <class Duration>
constexpr bool seconds_fit(std::int64_t secs, bool fraction = false) noexcept {
  using namespace std::chrono;
  using rep = typename Duration::rep;
  if constexpr (treat_as_floating_point_v<rep>) {
    return true;
  } else if constexpr (std::ratio_less_equal_v<typename Duration::period, std::ratio<1>>) {
    // Whole seconds of Duration::max() / min(): exact, and no overflow.
    const auto hi = duration_cast<seconds>(Duration::max()).count();
    const auto lo = duration_cast<seconds>(Duration::min()).count();
    return fraction ? secs < hi && secs > lo : secs <= hi && secs >= lo;
  } else {
    const double hi = duration<double>(Duration::max()).count();
    const double lo = duration<double>(Duration::min()).count();
    const auto s = static_cast<double>(secs);
    return s < hi && s > lo;
  }
}

}  // namespace dqlite::detail
