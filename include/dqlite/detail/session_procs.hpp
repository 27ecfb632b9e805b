// Response processors for prepared statements, transactions and cursors.
#pragma once

#include <dqlite/detail/admin_procs.hpp>  // empty_proc
#include <dqlite/detail/exchange.hpp>
#include <dqlite/detail/procs.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/decode.hpp>

#include <memory>
#include <string>
#include <utility>

namespace dqlite::detail {

/// PREPARE: one STMT.
struct prepare_proc {
  using result_type = wire::stmt_response;
  wire::stmt_response out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::stmt)) return e;
    if (auto e = wire::decode_stmt(body, h.schema, out)) return e;
    done = true;
    return {};
  }
  wire::stmt_response take() { return out; }
};

/// No request of its own: runs the connection's pending housekeeping (a dropped cursor's
/// INTERRUPT, FINALIZE of dropped statements, ROLLBACK of a dropped transaction).
struct flush_proc {
  using result_type = void;
  static constexpr bool housekeeping_only = true;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header&, wire::bytes_view, bool&) {
    return make_error_code(errc::unexpected_response);
  }
};

/// COMMIT. A failure that leaves the outcome open is reported as errc::outcome_unknown:
/// leadership lost while the commit was being replicated, or the connection lost once the
/// request had been sent. After any other failure the transaction may still be open on the
/// server: it is rolled back before the connection's next request.
/// The end of a transaction: one RESULT, reported as success only.
struct end_tx_proc {
  using result_type = void;
  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    return exec_proc{}.on_frame(c, h, body, done);
  }
};

struct commit_proc : end_tx_proc {
  template <class Impl>
  error_code map_error(Impl& c, error_code ec, bool sent) {
    if (is_leadership_lost(ec)) {
      c.diag.assign("COMMIT: leadership was lost while the commit was being replicated; it may "
                    "or may not have been applied (server: " + c.diag.message() + ")");
      return make_error_code(errc::outcome_unknown);
    }
    const bool transport = ec.category() != server_category() &&
                           ec != make_error_code(errc::not_connected) &&
                           ec != make_error_code(errc::operation_in_progress) &&
                           ec != make_error_code(errc::used_after_fork);
    if (sent && transport) {
      c.diag.assign("COMMIT: the connection failed after the commit was sent (" +
                    c.diag.message() + "); it may or may not have been applied");
      return make_error_code(errc::outcome_unknown);
    }
    if (ec.category() == server_category() && !is_not_leader(ec)) c.rollback_pending = true;
    return ec;
  }
};

/// ROLLBACK of a transaction object: a failure that says no transaction is open (it was
/// already rolled back by the server, e.g. after an error inside it) is not an error.
struct rollback_proc : end_tx_proc {
  template <class Impl>
  error_code map_error(Impl& c, error_code ec, bool) {
    if (ec.category() == server_category() &&
        c.diag.message().find("no transaction is active") != std::string::npos)
      return {};
    return ec;
  }
};

/// What a cursor keeps between its reads.
struct cursor_shared {
  bool finished = false;  ///< DONE seen, or the cursor failed or was closed
};

/// One batch of a cursor's result per exchange: the rows of one ROWS frame go to a fresh
/// Sink, whose memory cap (max_result_bytes) applies to the batch. A PART frame without
/// rows is read past (an empty batch means the result is complete, so it is handed out at
/// DONE only); after a PART frame with rows the connection stays claimed by the cursor.
template <class Sink>
struct cursor_proc {
  using result_type = typename Sink::result_type;
  static constexpr bool interruptible = true;

  std::shared_ptr<cursor_shared> st;
  Sink sink{};

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::rows)) return e;
    auto& rr = c.rows;
    if (auto e = start_rows(c, body)) return e;
    if (!rr.at_row()) {  // no rows: at the end marker, or malformed
      if (auto pe = rr.error()) return malformed_rows(c, pe);
      if (rr.end() == wire::rows_end::part) return {};  // read on
    }
    sink.budget.batch = true;
    error_code e = sink.on_rows(rr, c);
    if (e && is_protocol_error(e)) return malformed_rows(c, e);
    scan_rest(c);
    if (auto pe = rr.error()) return malformed_rows(c, pe);
    done = true;
    if (rr.end() == wire::rows_end::done) {
      st->finished = true;
      if (!e) e = sink.finish(c);
    } else if (e) {
      // The batch cannot be delivered: the rest of the result is interrupted before the
      // connection's next request.
      st->finished = true;
      c.drain_pending = true;
    }
    return e;
  }
  template <class Impl>
  error_code map_error(Impl&, error_code ec, bool) {
    st->finished = true;
    return ec;
  }
  bool holds() const noexcept { return !st->finished; }
  result_type take() { return sink.take(); }
};

}  // namespace dqlite::detail
