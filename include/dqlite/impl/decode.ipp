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

DQLITE_DECL std::string failure_text(const failure_response& f) {
  std::string s(f.message);
  if (f.message_cut())
    s += " [... message cut: " + std::to_string(f.message_size - f.message.size()) +
         " more bytes]";
  return s;
}

DQLITE_DECL error_code decode_failure_whole(bytes_view body, failure_response& out) noexcept {
  reader r(body);
  error_code ec = r.u64(out.code);
  if (!ec) ec = r.text(out.message);
  if (!ec) ec = r.finish();
  if (ec != make_error_code(errc::trailing_bytes)) return ec;

  const std::size_t words = body.size() / 8;
  auto word_has_nul = [&](std::size_t w) {
    for (std::size_t i = 0; i < 8; ++i)
      if (body[w * 8 + i] == std::byte{0}) return true;
    return false;
  };
  std::size_t first = words - 1;  // the last word holds the message's terminator
  if (!word_has_nul(first)) return ec;
  while (first > 0 && !word_has_nul(first - 1)) --first;
  if (first < 2) return ec;  // room for a rows prefix and the code
  reader tail(body.subspan((first - 1) * 8));
  failure_response f;
  if (tail.u64(f.code) || tail.text(f.message) || tail.finish()) return ec;
  out = f;
  return {};
}

DQLITE_DECL error_code decode_failure(bytes_view body, failure_response& out) noexcept {
  error_code ec = decode_failure_whole(body, out);
  if (!ec) {
    out.message_size = out.message.size();
    out.message = message_prefix(out.message);
  }
  return ec;
}

DQLITE_DECL error_code decode_server(bytes_view body, server_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.id)) return ec;
  if (auto ec = r.text(out.address)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_welcome(bytes_view body, welcome_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.heartbeat_timeout_ms)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_db(bytes_view body, db_response& out) noexcept {
  reader r(body);
  std::uint32_t unused = 0;
  if (auto ec = r.u32(out.id)) return ec;
  if (auto ec = r.u32(unused)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_stmt(bytes_view body, std::uint8_t schema, stmt_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u32(out.db)) return ec;
  if (auto ec = r.u32(out.id)) return ec;
  if (auto ec = r.u64(out.params)) return ec;
  out.has_tail = false;
  if (schema >= 1) {
    if (auto ec = r.u64(out.tail_offset)) return ec;
    out.has_tail = true;
  }
  return r.finish();
}

DQLITE_DECL error_code decode_result(bytes_view body, result_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.last_insert_id)) return ec;
  if (auto ec = r.u64(out.rows_affected)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_metadata(bytes_view body, metadata_response& out) noexcept {
  reader r(body);
  if (auto ec = r.u64(out.failure_domain)) return ec;
  if (auto ec = r.u64(out.weight)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_servers(bytes_view body, std::vector<node_view>& out) {
  reader r(body);
  std::uint64_t n = 0;
  if (auto ec = r.u64(n)) return ec;
  // Each node takes at least 24 bytes: refuse counts the body cannot hold before reserving.
  if (n > r.remaining() / 24) return make_error_code(errc::truncated);
  out.clear();
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    node_view v;
    if (auto ec = r.u64(v.id)) return ec;
    if (auto ec = r.text(v.address)) return ec;
    if (auto ec = r.u64(v.role)) return ec;
    out.push_back(v);
  }
  return r.finish();
}

DQLITE_DECL error_code decode_files(bytes_view body, std::vector<file_view>& out) {
  reader r(body);
  std::uint64_t n = 0;
  if (auto ec = r.u64(n)) return ec;
  if (n > r.remaining() / 16) return make_error_code(errc::truncated);
  out.clear();
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    file_view f;
    std::uint64_t size = 0;
    if (auto ec = r.text(f.name)) return ec;
    if (auto ec = r.u64(size)) return ec;
    if (size > r.remaining()) return make_error_code(errc::truncated);
    if (auto ec = r.raw(static_cast<std::size_t>(size), f.data)) return ec;
    out.push_back(f);
  }
  return r.finish();
}

}  // namespace dqlite::wire
