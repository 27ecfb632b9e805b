// libFuzzer harness: a frame header, then each response decoder over the body.
//
// Input: 8 bytes of frame header, then the body (as much as follows, rounded down to whole
// words, whatever the header announces). Every decoder must return an error or a result
// within its body, never read outside it; a FAILURE's message stays within its bound.
#include <dqlite/wire/decode.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace wire = dqlite::wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < wire::header_size) return 0;
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  wire::frame_header h;
  (void)wire::decode_header(wire::bytes_view(bytes, wire::header_size), h);
  const std::size_t body_size = (size - wire::header_size) & ~std::size_t{7};
  // A copy of exactly the body: reads past it are caught by the address sanitizer.
  std::vector<std::byte> body(bytes + wire::header_size, bytes + wire::header_size + body_size);
  const wire::bytes_view b(body.data(), body.size());

  wire::failure_response f;
  if (!wire::decode_failure(b, f)) {
    if (f.message.size() > wire::max_message_size) std::abort();
    if (f.message_size < f.message.size()) std::abort();
    if (wire::failure_text(f).size() > wire::max_message_size + 64) std::abort();
  }
  wire::server_response srv;
  (void)wire::decode_server(b, srv);
  wire::welcome_response w;
  (void)wire::decode_welcome(b, w);
  wire::db_response db;
  (void)wire::decode_db(b, db);
  wire::stmt_response st;
  (void)wire::decode_stmt(b, 0, st);
  (void)wire::decode_stmt(b, 1, st);
  wire::result_response res;
  (void)wire::decode_result(b, res);
  (void)wire::decode_empty(b);
  wire::metadata_response md;
  (void)wire::decode_metadata(b, md);
  std::vector<wire::node_view> nodes;
  if (!wire::decode_servers(b, nodes) && nodes.size() * 24 > body.size()) std::abort();
  std::vector<wire::file_view> files;
  if (!wire::decode_files(b, files) && files.size() * 16 > body.size()) std::abort();
  return 0;
}
