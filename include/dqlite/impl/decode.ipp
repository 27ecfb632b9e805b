// Definitions of wire/decode.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/wire/decode.hpp>

namespace dqlite::wire {

DQLITE_DECL error_code rows_reader::start(bytes_view body, std::size_t max_columns) {
  r_ = reader(body);
  frame_size_ = body.size();
  end_ = rows_end::none;
  ec_ = {};
  names_.clear();
  announced_ = 0;
  std::uint64_t n = 0;
  if (auto ec = r_.u64(n)) return ec_ = ec;
  announced_ = n;
  if (n > max_columns) return ec_ = make_error_code(errc::too_many_columns);
  // Every name takes at least one word: refuse counts the body cannot hold.
  if (n > r_.remaining() / 8) return ec_ = make_error_code(errc::truncated);
  // A vector that held the names of a much wider frame gives its memory back.
  if (names_.capacity() > 2 * n + 64) std::vector<std::string_view>().swap(names_);
  names_.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string_view name;
    if (auto ec = r_.text(name)) {
      names_.clear();  // a frame that cannot be read has no columns
      return ec_ = ec;
    }
    names_.push_back(name);
  }
  header_words_ = (names_.size() + 15) / 16;
  return {};
}

}  // namespace dqlite::wire
