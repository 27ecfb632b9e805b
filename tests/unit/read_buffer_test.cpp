// The receive buffer: it grows with the bytes that arrive, never to the size a frame header
// announces, and a connection gives its big buffers back after the operation that needed
// them (a wide result or a huge message must not stay held by an idle connection).
#include <dqlite/client.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>

using dqlite::detail::read_buffer;

TEST_CASE("the read buffer grows with the bytes received, not with the bytes announced",
          "[read_buffer]") {
  read_buffer b;
  const std::size_t announced = std::size_t{64} << 20;  // a header announcing 64 MiB
  // 16 bytes arrive: the buffer stays at its initial size.
  auto space = b.prepare(announced);
  CHECK(space.size() <= read_buffer::min_size);
  b.commit(16);
  CHECK(b.capacity() <= read_buffer::min_size);
  // Every read fills what it was given; the buffer at most doubles per read, so it stays
  // within twice the bytes received.
  std::size_t received = 16;
  while (received < (std::size_t{8} << 20)) {
    auto s = b.prepare(announced);
    REQUIRE(s.size() > 0);
    b.commit(s.size());
    received += s.size();
    CHECK(b.capacity() <= std::max<std::size_t>(2 * received, read_buffer::min_size));
  }
  CHECK(b.size() == received);
  CHECK(b.capacity() < announced / 4);
}

TEST_CASE("a connection gives its big buffers back after the operation", "[read_buffer]") {
  dqlite::connection_options o;
  dqlite::detail::session_state s(o);
  // A wide result went through the read buffer, and a big request through the write one.
  std::size_t received = 0;
  while (received < (std::size_t{16} << 20)) {
    auto sp = s.rbuf.prepare(std::size_t{32} << 20);
    s.rbuf.commit(sp.size());
    received += sp.size();
  }
  s.wbuf.resize(std::size_t{8} << 20);
  s.rbuf.consume(s.rbuf.size());
  REQUIRE(s.rbuf.capacity() >= (std::size_t{16} << 20));
  s.release_buffers();
  CHECK(s.rbuf.capacity() == read_buffer::min_size);
  CHECK(s.wbuf.capacity() == 0);
  // Unread bytes (a cursor's next frames) are kept.
  auto sp = s.rbuf.prepare(std::size_t{4} << 20);
  s.rbuf.commit(sp.size());
  while (s.rbuf.capacity() < (std::size_t{4} << 20)) {
    auto more = s.rbuf.prepare(std::size_t{4} << 20);
    s.rbuf.commit(more.size());
  }
  const auto held = s.rbuf.size();
  s.release_buffers();
  CHECK(s.rbuf.size() == held);
}
