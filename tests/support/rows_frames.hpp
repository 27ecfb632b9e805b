// Building ROWS frames in memory, as a server would send them, and running a result sink
// over them without any I/O.
#pragma once

#include <dqlite/client.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dqlite_test {

/// What a response processor and a result sink need of a connection: its session state,
/// with the default options.
struct sink_context : dqlite::detail::session_state {
  sink_context() : session_state(dqlite::connection_options{}) {}
};

/// Builds the bodies of ROWS frames: rows are added one by one; a frame is closed (PART)
/// when it passes frame_limit bytes, the last one with DONE.
class rows_builder {
 public:
  explicit rows_builder(std::vector<std::string> columns, std::size_t frame_limit = 4096)
      : columns_(std::move(columns)), limit_(frame_limit) {}

  /// Adds a row: a row header with one 4-bit type per column, then the values.
  template <class... V>
  void row(const V&... values) {
    if (current_.empty()) start_frame();
    std::size_t header_words = (columns_.size() + 15) / 16;
    std::size_t at = current_.size();
    current_.resize(at + header_words * 8, std::byte{0});
    std::size_t i = 0;
    (put_value(at, i++, values), ...);
    if (current_.size() >= limit_) end_frame(dqlite::wire::rows_part_marker);
  }

  /// Closes the last frame with DONE and returns all frame bodies.
  std::vector<std::vector<std::byte>> finish() {
    if (current_.empty()) start_frame();
    end_frame(dqlite::wire::rows_done_marker);
    return std::move(frames_);
  }

  struct null_value {};
  struct blob_value {
    std::string_view bytes;
  };
  struct typed_int {
    dqlite::value_type type;
    std::int64_t v;
  };
  struct iso_text {
    std::string_view text;
  };

 private:
  void start_frame() {
    dqlite::wire::put_u64(current_, columns_.size());
    for (auto& c : columns_) dqlite::wire::put_text(current_, c);
  }
  void end_frame(std::uint64_t marker) {
    dqlite::wire::put_u64(current_, marker);
    frames_.push_back(std::move(current_));
    current_.clear();
  }
  void set_type(std::size_t header_at, std::size_t i, dqlite::value_type t) {
    auto& b = current_[header_at + i / 2];
    b |= static_cast<std::byte>(static_cast<unsigned>(t) << (i % 2 == 0 ? 0 : 4));
  }
  void put_value(std::size_t h, std::size_t i, std::int64_t v) {
    set_type(h, i, dqlite::value_type::integer);
    dqlite::wire::put_i64(current_, v);
  }
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, std::int64_t>)
  void put_value(std::size_t h, std::size_t i, I v) {
    put_value(h, i, static_cast<std::int64_t>(v));
  }
  void put_value(std::size_t h, std::size_t i, double v) {
    set_type(h, i, dqlite::value_type::floating);
    dqlite::wire::put_double(current_, v);
  }
  void put_value(std::size_t h, std::size_t i, std::string_view v) {
    set_type(h, i, dqlite::value_type::text);
    dqlite::wire::put_text(current_, v);
  }
  void put_value(std::size_t h, std::size_t i, const char* v) { put_value(h, i, std::string_view(v)); }
  void put_value(std::size_t h, std::size_t i, const std::string& v) { put_value(h, i, std::string_view(v)); }
  void put_value(std::size_t h, std::size_t i, null_value) {
    set_type(h, i, dqlite::value_type::null);
    dqlite::wire::put_u64(current_, 0);
  }
  void put_value(std::size_t h, std::size_t i, blob_value v) {
    set_type(h, i, dqlite::value_type::blob);
    dqlite::wire::put_blob(current_, std::as_bytes(std::span(v.bytes.data(), v.bytes.size())));
  }
  void put_value(std::size_t h, std::size_t i, typed_int v) {
    set_type(h, i, v.type);
    dqlite::wire::put_i64(current_, v.v);
  }
  void put_value(std::size_t h, std::size_t i, iso_text v) {
    set_type(h, i, dqlite::value_type::iso8601);
    dqlite::wire::put_text(current_, v.text);
  }

  std::vector<std::string> columns_;
  std::size_t limit_;
  std::vector<std::byte> current_;
  std::vector<std::vector<std::byte>> frames_;
};

/// Feeds frame bodies to a response processor as the connection would, until it says the
/// response is complete or fails; returns that error. frames_read: how many it took.
template <class Proc>
dqlite::error_code run_proc(Proc& proc, const std::vector<std::vector<std::byte>>& frames,
                            sink_context& ctx, std::size_t* frames_read = nullptr) {
  dqlite::wire::frame_header h;
  h.type = static_cast<std::uint8_t>(dqlite::wire::response::rows);
  std::size_t n = 0;
  for (const auto& body : frames) {
    h.words = static_cast<std::uint32_t>(body.size() / 8);
    bool done = false;
    ++n;
    auto ec = proc.on_frame(ctx, h, body, done);
    if (ec || done) {
      if (frames_read) *frames_read = n;
      return ec;
    }
  }
  if (frames_read) *frames_read = n;
  return make_error_code(dqlite::errc::connection_closed);  // the response never ended
}

/// Runs a result sink over frame bodies through the connection's ROWS processor; the
/// sink's state (its result) is moved back into sink.
template <class Sink>
dqlite::error_code run_sink(Sink& sink, const std::vector<std::vector<std::byte>>& frames,
                            sink_context& ctx) {
  dqlite::detail::rows_proc<Sink> proc{std::move(sink)};
  auto ec = run_proc(proc, frames, ctx);
  sink = std::move(proc.sink);
  return ec;
}

}  // namespace dqlite_test
