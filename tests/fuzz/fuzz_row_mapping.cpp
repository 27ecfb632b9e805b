// libFuzzer harness: ROWS frames through the connection's response processors and result
// sinks: typed rows (read straight from the frame where they can be), dynamic rows,
// fetchone, fetchval and cursor batches, under caps chosen by the input.
//
// Input: one byte of options (bits 0-1: max_result_rows 0/1/5/100; bits 2-3:
// max_result_bytes 0/256/4096/1 MiB; bit 4: reject_extra_columns; bits 5-6:
// max_result_columns default/1/3/17), then frames, each a little-endian u16 count of
// words and that many words of body.
//
// Without caps, the typed sink must give exactly what reading every row through next()
// and row_mapper::read() gives (same error, same rows): the direct path is an
// optimisation, never a difference. With a bytes cap, what a sink keeps stays within it.
#include <dqlite/client.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace wire = dqlite::wire;
namespace detail = dqlite::detail;

namespace {

struct context {
  std::vector<wire::value_view> scratch;
  dqlite::connection_options opts;
  dqlite::diagnostics diag;
  wire::rows_reader rows;
  bool drain_pending = false;
};

struct record {
  std::int64_t id;
  std::optional<std::string> name;
  std::chrono::sys_seconds at;
  std::vector<std::byte> data;
  bool flag;
  friend bool operator==(const record&, const record&) = default;
};

using tuple_row = std::tuple<std::int64_t, std::optional<std::string>, std::vector<unsigned char>,
                             std::optional<std::int32_t>>;

using frames_t = std::vector<std::vector<std::byte>>;

/// Runs a processor over the frames as the connection would; returns its error.
template <class Proc>
dqlite::error_code run(Proc& proc, const frames_t& frames, context& c, std::size_t& used) {
  wire::frame_header h;
  h.type = static_cast<std::uint8_t>(wire::response::rows);
  used = 0;
  for (const auto& body : frames) {
    h.words = static_cast<std::uint32_t>(body.size() / 8);
    bool done = false;
    ++used;
    auto ec = proc.on_frame(c, h, body, done);
    if (ec || done) return ec;
  }
  return make_error_code(dqlite::errc::connection_closed);
}

/// The reference: every row through next() and read(), no caps.
template <class T>
struct reference_sink {
  using object_type = typename detail::row_mapper<T>::object_type;
  using result_type = std::vector<object_type>;
  detail::row_mapper<T> mapper;
  bool mapped = false;
  std::size_t count = 0;
  result_type out;
  template <class Impl>
  dqlite::error_code on_rows(wire::rows_reader& rr, Impl& c) {
    if (!mapped) {
      if (auto e = mapper.map(rr.column_names(), c.opts, c.diag)) return e;
      mapped = true;
    } else if (!mapper.same_columns(rr.column_names())) {
      return make_error_code(dqlite::errc::unexpected_response);
    }
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
      ++count;
      auto& obj = out.emplace_back();
      if (auto e = mapper.read(c.scratch, obj, c.diag, count)) {
        out.pop_back();
        return e;
      }
    }
    return rr.error();
  }
  template <class Impl>
  dqlite::error_code finish(Impl&) {
    return {};
  }
  result_type take() { return std::move(out); }
};

template <class T>
void typed(const frames_t& frames, const dqlite::connection_options& o) {
  context c;
  c.opts = o;
  detail::rows_proc<detail::typed_rows_sink<T>> proc{{}};
  std::size_t used = 0;
  const auto ec = run(proc, frames, c, used);
  auto got = proc.take();
  using object_type = typename detail::row_mapper<T>::object_type;
  if (o.max_result_bytes != 0 && got.capacity() * sizeof(object_type) > o.max_result_bytes)
    std::abort();
  if (o.max_result_rows != 0 && got.size() > o.max_result_rows) std::abort();
  if (o.max_result_rows != 0 || o.max_result_bytes != 0) return;
  context rc;
  rc.opts = o;
  detail::rows_proc<reference_sink<T>> ref{{}};
  std::size_t ref_used = 0;
  const auto ref_ec = run(ref, frames, rc, ref_used);
  auto want = ref.take();
  if (ec != ref_ec || used != ref_used || !(got == want)) std::abort();
}

void dynamic(const frames_t& frames, const dqlite::connection_options& o) {
  context c;
  c.opts = o;
  detail::rows_proc<detail::dynamic_rows_sink> proc{{}};
  std::size_t used = 0;
  (void)run(proc, frames, c, used);
  auto got = proc.take();
  if (o.max_result_bytes != 0 &&
      got.size() * (sizeof(dqlite::row) + sizeof(dqlite::value)) > o.max_result_bytes)
    std::abort();
  if (o.max_result_rows != 0 && got.size() > o.max_result_rows) std::abort();
  for (const auto& r : got)
    if (r.size() != got.columns().size()) std::abort();
}

void one(const frames_t& frames, const dqlite::connection_options& o) {
  context c;
  c.opts = o;
  detail::rows_proc<detail::typed_rows_sink<tuple_row, true>> proc{{}};
  std::size_t used = 0;
  (void)run(proc, frames, c, used);
  (void)proc.take();
  context v;
  v.opts = o;
  detail::rows_proc<detail::value_sink<std::optional<std::int64_t>>> val{{}};
  (void)run(val, frames, v, used);
  (void)val.take();
}

void cursor(const frames_t& frames, const dqlite::connection_options& o) {
  context c;
  c.opts = o;
  auto st = std::make_shared<detail::cursor_shared>();
  std::size_t at = 0;
  while (at < frames.size() && !st->finished) {
    detail::cursor_proc<detail::typed_rows_sink<record>> proc{st, {}};
    frames_t rest(frames.begin() + static_cast<std::ptrdiff_t>(at), frames.end());
    std::size_t used = 0;
    const auto ec = run(proc, rest, c, used);
    at += used;
    auto batch = proc.take();
    if (ec) break;
    // An empty batch is the end of the result, and only that.
    if (batch.empty() != st->finished && batch.empty()) std::abort();
    if (batch.empty()) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr std::size_t row_caps[] = {0, 1, 5, 100};
  static constexpr std::size_t byte_caps[] = {0, 256, 4096, 1u << 20};
  static constexpr std::size_t column_caps[] = {wire::default_max_columns, 1, 3, 17};
  dqlite::connection_options o;
  o.max_result_rows = row_caps[data[0] & 3u];
  o.max_result_bytes = byte_caps[(data[0] >> 2) & 3u];
  o.reject_extra_columns = (data[0] & 16u) != 0;
  o.max_result_columns = column_caps[(data[0] >> 5) & 3u];

  frames_t frames;
  std::size_t i = 1;
  while (i + 2 <= size && frames.size() < 64) {
    const std::size_t words = data[i] | (std::size_t{data[i + 1]} << 8);
    i += 2;
    const std::size_t n = std::min(words * 8, (size - i) & ~std::size_t{7});
    const auto* p = reinterpret_cast<const std::byte*>(data + i);
    frames.emplace_back(p, p + n);
    i += n;
  }
  if (frames.empty()) return 0;

  typed<tuple_row>(frames, o);
  typed<dqlite::by_position<record>>(frames, o);
  typed<std::optional<std::string>>(frames, o);
  dynamic(frames, o);
  one(frames, o);
  cursor(frames, o);
  return 0;
}
