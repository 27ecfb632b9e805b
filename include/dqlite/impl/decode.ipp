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

DQLITE_DECL bool rows_reader::next(std::span<value_view> out) noexcept {
  if (ec_ || end_ != rows_end::none) return false;
  const std::byte* p = r_.position();
  const std::byte* const end = p + r_.remaining();
  if (end - p < 8) return fail(errc::invalid_row_marker);
  const std::uint64_t word = load_u64(p);
  if (word == rows_done_marker || word == rows_part_marker) return end_at_marker(p, end, word);
  const std::size_t n = names_.size();
  if (n == 0) return fail(errc::invalid_row_marker);
  if (out.size() < n) return fail(errc::truncated);
  const std::size_t header_bytes = header_words_ * 8;
  if (static_cast<std::size_t>(end - p) < header_bytes) return fail(errc::truncated);
  const std::byte* const header = p;
  p += header_bytes;
  for (std::size_t i = 0; i < n; ++i)
    if (const errc e = decode_value(row_type_code(header, i), p, end, out[i]); e != errc{})
      return fail(e);
  // The unused nibble of an odd count and the bytes after the types must be zero.
  if (n % 2 == 1 && (static_cast<unsigned>(header[n / 2]) >> 4) != 0)
    return fail(errc::bad_padding);
  for (std::size_t i = (n + 1) / 2; i < header_bytes; ++i)
    if (header[i] != std::byte{0}) return fail(errc::bad_padding);
  r_ = reader(bytes_view(p, static_cast<std::size_t>(end - p)));
  ++rows_read_;
  return true;
}

}  // namespace dqlite::wire
