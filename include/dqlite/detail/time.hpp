// ISO-8601 formatting and parsing for DATETIME/DATE/TIMESTAMP values.
#pragma once

#include <dqlite/detail/config.hpp>

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
DQLITE_DECL std::optional<iso8601_time> parse_iso8601_time(std::string_view s);

/// parse_iso8601_time as one sys_time<nanoseconds>, which only spans the years 1677 to 2262:
/// nullopt outside them too.
DQLITE_DECL std::optional<std::chrono::sys_time<std::chrono::nanoseconds>> parse_iso8601(
    std::string_view s);

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

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/time.ipp>
#endif
