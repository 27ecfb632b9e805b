// Definitions of detail/sansio/session.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/sansio/session.hpp>

namespace dqlite::detail {

DQLITE_DECL error_code session_state::begin_op(bool needs_open, std::uint64_t as_holder) {
  if (forked()) {
    diag.assign("the connection was opened in another process (before fork()); open a new "
                "connection in this process");
    return make_error_code(errc::used_after_fork);
  }
  if (busy) {
    diag.assign("another operation is running on this connection; wait for it to complete "
                "(one operation at a time per connection)");
    return make_error_code(errc::operation_in_progress);
  }
  if (holder != 0 && holder != as_holder) {
    diag.assign("a cursor is reading a result on this connection; read it to the end or "
                "close it first");
    return make_error_code(errc::operation_in_progress);
  }
  if (needs_open && state != conn_state::open) {
    if (state == conn_state::broken)
      diag.assign("the connection is not open (it was closed after an earlier error: " +
                  broken_by.message() + ")");
    else if (broken_by)
      diag.assign("the connection is not open (its last error, which closed it or made its "
                  "connect fail: " + broken_by.message() + ")");
    else
      diag.assign("the connection is not open");
    return make_error_code(errc::not_connected);
  }
  busy = true;
  timed_out = false;
  ++op_seq;
  diag.clear();
  wbuf.clear();
  return {};
}

DQLITE_DECL void session_state::release_buffers() {
  rbuf.shrink();
  constexpr std::size_t retain = read_buffer::retain_size;
  // A traced request's SQL text is viewed in wbuf until its trace ends (trace_end
  // gives the memory back then).
  if (wbuf.capacity() > retain && !span.active) wire::buffer().swap(wbuf);
  if (hbuf.capacity() > retain) wire::buffer().swap(hbuf);
  if (scratch.capacity() > 4096) std::vector<wire::value_view>().swap(scratch);
}

}  // namespace dqlite::detail
