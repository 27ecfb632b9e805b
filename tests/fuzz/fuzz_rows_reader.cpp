// libFuzzer harness: the ROWS reader, through next() and through the direct row access.
//
// Input: one byte choosing the column limit (0: the default; n: n - 1 columns), then a
// ROWS frame body. Both ways of reading must agree on where the rows end, and the column
// names may not take more memory than a small multiple of the body.
#include <dqlite/wire/decode.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace wire = dqlite::wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t limit = data[0] == 0 ? wire::default_max_columns : data[0] - 1u;
  const auto* p = reinterpret_cast<const std::byte*>(data + 1);
  std::vector<std::byte> body(p, p + ((size - 1) & ~std::size_t{7}));

  wire::rows_reader rr;
  if (auto ec = rr.start(body, limit)) {
    if (rr.column_count() != 0) std::abort();
    return 0;
  }
  if (rr.column_count() > limit) std::abort();
  if (rr.column_names().capacity() * sizeof(std::string_view) > 2 * body.size() + 64 * 16)
    std::abort();
  std::vector<wire::value_view> values(rr.column_count());
  std::size_t rows = 0;
  std::vector<const std::byte*> ends;
  while (rr.next(values)) {
    ++rows;
    ends.push_back(rr.row_data());
    for (const auto& v : values)
      if (!v.bytes.empty() && (reinterpret_cast<const std::byte*>(v.bytes.data()) < body.data() ||
                               reinterpret_cast<const std::byte*>(v.bytes.data()) + v.bytes.size() >
                                   body.data() + body.size()))
        std::abort();
  }
  const auto end1 = rr.end();
  const auto err1 = rr.error();

  // Again through at_row(): the same rows, the same end.
  wire::rows_reader again;
  if (again.start(body, limit)) std::abort();
  std::size_t rows2 = 0;
  while (again.at_row()) {
    if (!again.next(values)) break;
    if (rows2 >= ends.size() || again.row_data() != ends[rows2]) std::abort();
    ++rows2;
  }
  if (rows2 != rows || again.end() != end1 || again.error() != err1) std::abort();
  return 0;
}
