// ROWS frame bodies written word by word, for what a server should never send: frames
// without rows, rows of undefined types, columns that change, huge column counts.
#pragma once

#include <dqlite/client.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dqlite_test {

class rows_frame {
 public:
  explicit rows_frame(const std::vector<std::string>& columns) {
    dqlite::wire::put_u64(b_, columns.size());
    for (const auto& c : columns) dqlite::wire::put_text(b_, c);
  }
  /// A row of one INTEGER column.
  rows_frame& integer(std::int64_t v) {
    word(1);
    dqlite::wire::put_i64(b_, v);
    return *this;
  }
  /// A row of one TEXT column.
  rows_frame& text(std::string_view s) {
    word(3);
    dqlite::wire::put_text(b_, s);
    return *this;
  }
  /// A row of one NULL column.
  rows_frame& null() {
    word(5);
    word(0);
    return *this;
  }
  rows_frame& word(std::uint64_t w) {
    dqlite::wire::put_u64(b_, w);
    return *this;
  }
  std::vector<std::byte> part() {
    word(dqlite::wire::rows_part_marker);
    return b_;
  }
  std::vector<std::byte> done() {
    word(dqlite::wire::rows_done_marker);
    return b_;
  }
  /// The body so far, without an end marker.
  const std::vector<std::byte>& body() const noexcept { return b_; }

 private:
  std::vector<std::byte> b_;
};

/// Frame bodies of n one-column INTEGER rows (values 0..n-1), at most per_frame rows a
/// frame: PART frames, the last one DONE.
inline std::vector<std::vector<std::byte>> integer_frames(std::size_t n, std::size_t per_frame) {
  std::vector<std::vector<std::byte>> out;
  std::size_t i = 0;
  do {
    rows_frame f({"v"});
    for (std::size_t k = 0; k < per_frame && i < n; ++k, ++i)
      f.integer(static_cast<std::int64_t>(i));
    out.push_back(i < n ? f.part() : f.done());
  } while (i < n);
  return out;
}

}  // namespace dqlite_test
