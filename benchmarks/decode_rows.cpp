// Decoding speed of result rows: a prepared sequence of 100 000 rows of
// (INTEGER, TEXT, FLOAT, BLOB) in ~4 KiB ROWS frames, decoded through the result sinks
// the connection uses: into a user struct (async_fetch<T>, a fresh vector each time),
// into a user struct appended to a reused vector (async_fetch_into<T>), and into dynamic
// dqlite::row values (async_fetch()). Every mode decodes the very same frames. Prints
// ns/row and MB/s of each (best of the repetitions), the page faults of one run (new
// memory the allocator had to map: most of what a fresh result costs beyond decoding),
// and the ratios.
//
//   decode_rows [rows] [repetitions] [only: fetch | into | dynamic]
//
// glibc maps big blocks afresh for every run; MALLOC_MMAP_THRESHOLD_=4294967296 in the
// environment keeps them on the heap, which shows the decoding without the page faults.
#include <dqlite/client.hpp>

#include "support/rows_frames.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct record {
  std::int64_t id;
  std::string name;
  double score;
  std::vector<std::byte> payload;
};

using frames_t = std::vector<std::vector<std::byte>>;

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

/// The best time of the runs, and the page faults of the run that took it.
struct timing {
  double seconds = 0;
  long faults = 0;
  void add(double s, long f) {
    if (seconds == 0 || s < seconds) {
      seconds = s;
      faults = f;
    }
  }
};

[[noreturn]] void fail(const dqlite::error_code& ec, const dqlite_test::sink_context& ctx,
                       std::size_t got) {
  std::fprintf(stderr, "decode failed: %s (%s; %zu rows)\n", ec.message().c_str(),
               ctx.diag.message().c_str(), got);
  std::exit(1);
}

/// Best time of reps runs of a fresh Sink over the frames; the result is destroyed after
/// the clock stops.
template <class Sink>
timing best_fresh(const frames_t& frames, int reps, std::size_t expect) {
  timing best;
  for (int r = 0; r < reps; ++r) {
    dqlite_test::sink_context ctx;
    Sink sink;
    const long f0 = minor_faults();
    auto t0 = std::chrono::steady_clock::now();
    auto ec = dqlite_test::run_sink(sink, frames, ctx);
    auto result = sink.take();
    auto t1 = std::chrono::steady_clock::now();
    const long f1 = minor_faults();
    if (ec || result.size() != expect) fail(ec, ctx, result.size());
    best.add(std::chrono::duration<double>(t1 - t0).count(), f1 - f0);
  }
  return best;
}

/// fetch_into: the rows go to a vector the caller keeps and reuses between queries
/// (cleared before each run, outside the clock).
timing best_into(const frames_t& frames, int reps, std::size_t expect) {
  std::vector<record> reused;
  timing best;
  for (int r = 0; r < reps; ++r) {
    reused.clear();
    dqlite_test::sink_context ctx;
    dqlite::detail::typed_rows_sink<record, false, true> sink(&reused);
    const long f0 = minor_faults();
    auto t0 = std::chrono::steady_clock::now();
    auto ec = dqlite_test::run_sink(sink, frames, ctx);
    auto t1 = std::chrono::steady_clock::now();
    const long f1 = minor_faults();
    if (ec || reused.size() != expect) fail(ec, ctx, reused.size());
    best.add(std::chrono::duration<double>(t1 - t0).count(), f1 - f0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  std::string_view only = argc > 3 ? argv[3] : "";

  dqlite_test::rows_builder b({"id", "name", "score", "payload"});
  const std::string payload(24, 'p');
  for (std::size_t i = 0; i < rows; ++i) {
    std::string name = "name-" + std::to_string(i);
    b.row(static_cast<std::int64_t>(i), name, static_cast<double>(i) * 0.5,
          dqlite_test::rows_builder::blob_value{payload});
  }
  const frames_t frames = b.finish();
  std::size_t bytes = 0;
  for (auto& f : frames) bytes += f.size() + 8;  // with the frame headers

  auto wanted = [&](std::string_view mode) { return only.empty() || only == mode; };
  timing typed, into, dynamic;
  if (wanted("fetch")) typed = best_fresh<dqlite::detail::typed_rows_sink<record>>(frames, reps, rows);
  if (wanted("into")) into = best_into(frames, reps, rows);
  if (wanted("dynamic")) dynamic = best_fresh<dqlite::detail::dynamic_rows_sink>(frames, reps, rows);

  auto report = [&](const char* what, const timing& t) {
    if (t.seconds == 0) return;
    std::printf("%-31s %8.1f ns/row %9.1f MB/s %7ld page faults\n", what,
                t.seconds * 1e9 / static_cast<double>(rows),
                static_cast<double>(bytes) / t.seconds / 1e6, t.faults);
  };
  std::printf("%zu rows of (INTEGER, TEXT, FLOAT, BLOB) in %zu frames, %zu bytes; best of %d\n",
              rows, frames.size(), bytes, reps);
  report("fetch<T> (struct by name)", typed);
  report("fetch_into<T> (reused vector)", into);
  report("fetch() (dynamic dqlite::row)", dynamic);
  if (typed.seconds != 0 && into.seconds != 0 && dynamic.seconds != 0)
    std::printf("fetch<T> is %.1fx and fetch_into<T> %.1fx faster than dynamic rows\n",
                dynamic.seconds / typed.seconds, dynamic.seconds / into.seconds);
  return 0;
}
