// Peak memory of a piece of work, measured in a child process so that nothing else the
// test program did (or will do) is counted: the child's peak resident set size
// (getrusage ru_maxrss) minus its size when the work starts.
//
//   auto m = dqlite_test::peak_memory([] { ...work...; return std::string(); });
//   CHECK(m.ok());  CHECK(m.message == "");  CHECK(m.growth_mib() < 100);
//
// The work returns a text that the parent receives (e.g. what went wrong, or a result to
// check); it must not use Catch2 assertions (they would report in the child).
//
// The child allocates every block of 128 KiB or more with its own mapping, given back
// when freed (a fixed M_MMAP_THRESHOLD): glibc's default moves that threshold up to the
// largest block freed so far, after which freed blocks stay resident, so the figure would
// depend on the allocator's history instead of on what the work holds.
//
// Under AddressSanitizer the figure means nothing (freed blocks stay in its quarantine,
// every block carries shadow memory, realloc() always copies): the work then runs in the
// calling process, measured() is false and a test checks only what the work returned.
#pragma once

#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

namespace dqlite_test {

#if defined(__SANITIZE_ADDRESS__)
#define DQLITE_TEST_MEMORY_MEASURED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DQLITE_TEST_MEMORY_MEASURED 0
#endif
#endif
#ifndef DQLITE_TEST_MEMORY_MEASURED
#define DQLITE_TEST_MEMORY_MEASURED 1
#endif

/// Whether peak_memory() measures anything in this build.
inline constexpr bool memory_measured = DQLITE_TEST_MEMORY_MEASURED != 0;

struct peak_memory_result {
  bool exited = false;   ///< the child ended normally (no crash, no signal)
  long growth_kib = -1;  ///< peak RSS during the work minus RSS before it, in KiB
  std::string message;   ///< what the work returned
  bool ok() const noexcept { return exited && growth_kib >= 0; }
  double growth_mib() const noexcept { return static_cast<double>(growth_kib) / 1024.0; }
  /// growth_mib() < limit, or true when nothing was measured (see memory_measured).
  bool growth_below_mib(double limit) const noexcept {
    return !memory_measured || growth_mib() < limit;
  }
};

namespace detail {
inline long max_rss_kib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}
inline long current_rss_kib() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}
}  // namespace detail

/// Runs work() in a child process and reports how much its peak memory grew.
template <class Work>
peak_memory_result peak_memory(Work&& work) {
  peak_memory_result out;
  if constexpr (!memory_measured) {
    try {
      out.message = work();
    } catch (const std::exception& e) {
      out.message = std::string("exception: ") + e.what();
    } catch (...) {
      out.message = "unknown exception";
    }
    out.exited = true;
    out.growth_kib = 0;
    return out;
  }
  int fds[2];
  if (::pipe(fds) != 0) return out;
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return out;
  }
  if (child == 0) {
    ::close(fds[0]);
    ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    // The peak so far may be above what is resident now: start from the larger.
    const long before = std::max(detail::current_rss_kib(), detail::max_rss_kib());
    std::string msg;
    try {
      msg = work();
    } catch (const std::exception& e) {
      msg = std::string("exception: ") + e.what();
    } catch (...) {
      msg = "unknown exception";
    }
    const long growth = detail::max_rss_kib() - before;
    std::string report = std::to_string(growth) + "\n" + msg;
    const char* p = report.data();
    std::size_t left = report.size();
    while (left > 0) {
      const ssize_t n = ::write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    ::close(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string report;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    report.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  out.exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const auto nl = report.find('\n');
  if (nl != std::string::npos) {
    out.growth_kib = std::stol(report.substr(0, nl));
    out.message = report.substr(nl + 1);
  }
  return out;
}

}  // namespace dqlite_test
