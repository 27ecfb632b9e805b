// Decoding speed of result rows: a prepared sequence of 100 000 rows of
// (INTEGER, TEXT, FLOAT, BLOB) in ~4 KiB ROWS frames, decoded into a user struct through
// async_fetch<T>'s sink and into dynamic dqlite::row values. Prints ns/row and MB/s.
//
//   decode_rows [rows] [repetitions]
#include <dqlite/client.hpp>

#include "support/rows_frames.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct record {
  std::int64_t id;
  std::string name;
  double score;
  std::vector<std::byte> payload;
};

template <class Sink>
double best_seconds(const std::vector<std::vector<std::byte>>& frames, int reps, std::size_t expect) {
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    dqlite_test::sink_context ctx;
    dqlite::wire::rows_reader rr;
    Sink sink;
    auto t0 = std::chrono::steady_clock::now();
    auto ec = dqlite_test::run_sink(sink, frames, ctx, rr);
    auto result = sink.take();
    auto t1 = std::chrono::steady_clock::now();
    if (ec || result.size() != expect) {
      std::fprintf(stderr, "decode failed: %s (%zu rows)\n", ec.message().c_str(), result.size());
      std::exit(1);
    }
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  int reps = argc > 2 ? std::atoi(argv[2]) : 20;

  dqlite_test::rows_builder b({"id", "name", "score", "payload"});
  const std::string payload(24, 'p');
  for (std::size_t i = 0; i < rows; ++i) {
    std::string name = "name-" + std::to_string(i);
    b.row(static_cast<std::int64_t>(i), name, static_cast<double>(i) * 0.5,
          dqlite_test::rows_builder::blob_value{payload});
  }
  auto frames = b.finish();
  std::size_t bytes = 0;
  for (auto& f : frames) bytes += f.size() + 8;

  double typed = best_seconds<dqlite::detail::typed_rows_sink<record>>(frames, reps, rows);

  // fetch_into: the rows go to a vector the caller keeps and reuses between queries.
  std::vector<record> reused;
  double into = 1e9;
  for (int r = 0; r < reps; ++r) {
    reused.clear();
    dqlite_test::sink_context ctx;
    dqlite::wire::rows_reader rr;
    dqlite::detail::typed_rows_sink<record, false, true> sink(&reused);
    auto t0 = std::chrono::steady_clock::now();
    auto ec = dqlite_test::run_sink(sink, frames, ctx, rr);
    auto t1 = std::chrono::steady_clock::now();
    if (ec || reused.size() != rows) return 1;
    into = std::min(into, std::chrono::duration<double>(t1 - t0).count());
  }
  double dynamic = best_seconds<dqlite::detail::dynamic_rows_sink>(frames, reps, rows);

  auto report = [&](const char* what, double s) {
    std::printf("%-28s %8.1f ns/row %9.1f MB/s\n", what, s * 1e9 / static_cast<double>(rows),
                static_cast<double>(bytes) / s / 1e6);
  };
  std::printf("%zu rows of (INTEGER, TEXT, FLOAT, BLOB) in %zu frames, %zu bytes; best of %d\n",
              rows, frames.size(), bytes, reps);
  report("fetch<T> (struct by name)", typed);
  report("fetch_into<T> (reused vector)", into);
  report("fetch() (dynamic dqlite::row)", dynamic);
  std::printf("fetch<T> is %.1fx and fetch_into<T> %.1fx faster than dynamic rows\n",
              dynamic / typed, dynamic / into);
  return 0;
}
