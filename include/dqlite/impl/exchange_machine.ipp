// Definitions of detail/sansio/exchange_machine.hpp (see detail/config.hpp).
#pragma once

#include <dqlite/detail/sansio/exchange_machine.hpp>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>

namespace dqlite::detail {

DQLITE_DECL bool answer_lost(const error_code& ec) noexcept {
  if (!ec || ec.category() == server_category()) return false;
  if (ec.category() != client_category()) return true;  // transport errors
  switch (static_cast<errc>(ec.value())) {
    case errc::timeout:
    case errc::connection_closed:
    case errc::cancelled:
    case errc::interrupted: return true;
    default: return is_protocol_error(ec);
  }
}

DQLITE_DECL std::string foreign_peer_hint(wire::bytes_view start) {
  if (start.size() < 4) return {};
  if (start.size() >= 5 && start[0] == std::byte{0x15} && start[1] == std::byte{0x03} &&
      start[2] <= std::byte{0x04} && start[3] == std::byte{0x00} && start[4] == std::byte{0x02})
    return "; the answer is a TLS alert: the node may expect TLS (see dqlite/tls.hpp)";
  std::string text;
  for (std::byte b : start.first(std::min<std::size_t>(start.size(), 16))) {
    const auto c = static_cast<unsigned char>(b);
    if (c == '\r' || c == '\n' || c == '\t')
      text += ' ';
    else if (c >= 0x20 && c < 0x7f)
      text += static_cast<char>(c);
    else
      return {};
  }
  return "; the answer begins with the text \"" + text +
         "\": the peer may not be a dqlite node";
}

DQLITE_DECL io_action exchange_core::resume(const io_event& ev) {
  switch (ev.what) {
    case io_event::kind::start:
      if (init_ec_) return finish(init_ec_);
      return next_write();
    case io_event::kind::wrote:
      if (ph_ == phase::main && ev.n == out_size_) sent_ = true;
      if (ev.ec) {
        // Cancelled once the whole request was out: it can still be interrupted.
        if (is_aborted(ev.ec) && !s_->timed_out && ph_ == phase::main && sent_ &&
            interruptible_ && ev.cancel_requested)
          return start_interrupt();
        return transport_failed(ev, "sending the request");
      }
      if (ph_ == phase::main && interruptible_ && ev.cancel_requested)
        return start_interrupt();
      break;
    case io_event::kind::read:
      if (ev.ec) {
        if (is_aborted(ev.ec) && !s_->timed_out && ph_ == phase::main && interruptible_ &&
            ev.cancel_requested)
          return start_interrupt();
        return transport_failed(ev, "reading the response");
      }
      s_->rbuf.commit(ev.n);
      break;
    default:
      s_->diag.assign("internal error: unexpected event in a request exchange");
      return finish(make_error_code(errc::invalid_argument));
  }
  return read_frames(ev.cancel_requested);
}

DQLITE_DECL std::string exchange_core::peer_hint(wire::bytes_view start) const {
  return s_->state == conn_state::open ? std::string() : foreign_peer_hint(start);
}

DQLITE_DECL io_action exchange_core::next_write() {
  // Bytes already received belong to a cursor's result: the one holding the connection,
  // or one dropped (the drain below reads past them). Anything else came unasked.
  if (!s_->rbuf.empty() && s_->holder == 0 && !s_->drain_pending) return stray_bytes();
  // Not while a cursor holds the connection: its result is still arriving.
  if (drain_bounded_) {  // a housekeeping drain just ended: its bound ends with it
    drain_bounded_ = false;
    rearm_ = std::chrono::milliseconds(-1);
  }
  if (params_.needs_open && s_->holder == 0 && s_->has_housekeeping()) {
    s_->hbuf.clear();
    if (s_->drain_pending) {
      s_->drain_pending = false;
      ph_ = phase::drain;
      wire::encode_interrupt(s_->hbuf, s_->db_id);
      bound_drain();
    } else if (!s_->finalize_pending.empty()) {
      ph_ = phase::finalize;
      wire::encode_finalize(s_->hbuf, s_->db_id, s_->finalize_pending.back());
      s_->finalize_pending.pop_back();
    } else {
      s_->rollback_pending = false;
      s_->may_tx = false;  // whatever its answer, no transaction is open after it
      ph_ = phase::rollback;
      wire::frame_mark m{};
      (void)wire::begin_sql_request(s_->hbuf, wire::request::exec_sql, s_->db_id, "ROLLBACK",
                                    m);
      wire::end_frame(s_->hbuf, m);
    }
    return io_action::write(wire::bytes_view(s_->hbuf));
  }
  ph_ = phase::main;
  if (housekeeping_only_) return finish({});
  if (s_->wbuf.empty()) {  // nothing to send: read on
    sent_ = true;
    return read_frames(false);
  }
  out_size_ = s_->wbuf.size();
  return io_action::write(wire::bytes_view(s_->wbuf));
}

DQLITE_DECL io_action exchange_core::start_interrupt() {
  ph_ = phase::interrupt;
  s_->hbuf.clear();
  wire::encode_interrupt(s_->hbuf, s_->db_id);
  bound_drain();
  return io_action::write(wire::bytes_view(s_->hbuf));
}

DQLITE_DECL void exchange_core::bound_drain() {
  if (params_.timeout.count() <= 0 && s_->opts.interrupt_timeout.count() > 0) {
    rearm_ = s_->opts.interrupt_timeout;
    drain_bounded_ = true;
  }
}

DQLITE_DECL io_action exchange_core::read_frames(bool cancel_requested) {
  for (;;) {
    auto avail = s_->rbuf.data();
    std::size_t need = wire::header_size;
    if (avail.size() >= wire::header_size) {
      wire::frame_header h;
      if (auto e = wire::decode_header(avail.first(wire::header_size), h,
                                       s_->opts.max_frame_size)) {
        if (e == make_error_code(errc::frame_too_large))
          s_->diag.assign("a frame of " + std::to_string(h.body_size()) + " bytes from " +
                          s_->peer + " exceeds max_frame_size (" +
                          std::to_string(s_->opts.max_frame_size) + ")" +
                          peer_hint(avail));
        else
          s_->diag.assign("response type " + std::to_string(h.type) + " is not defined" +
                          peer_hint(avail));
        return finish(e);
      }
      need = wire::header_size + h.body_size();
      if (avail.size() >= need) {
        bool done = false;
        error_code e = handle_frame(h, avail.subspan(wire::header_size, h.body_size()), done);
        s_->rbuf.consume(need);
        if (e) return finish(e);
        if (done) {
          if (ph_ == phase::main) return finish_main();
          if (ph_ == phase::interrupt) return finish_interrupt();
          return next_write();  // housekeeping answered: go on
        }
        continue;
      }
    }
    // A cancellation that arrived while a read was completing reached no operation:
    // act on it before reading on.
    if (cancel_requested && ph_ != phase::interrupt) {
      if (ph_ == phase::main && interruptible_) return start_interrupt();
      io_event aborted{io_event::kind::read,
                       error_code(ECANCELED, boost::system::system_category()), 0, true};
      return transport_failed(aborted, "reading the response");
    }
    return io_action::read(need);
  }
}

DQLITE_DECL io_action exchange_core::finish_main() {
  const bool hold = holds();
  // A processor that ended the response early left the rest to the housekeeping drain.
  if (!hold && !s_->rbuf.empty() && !s_->drain_pending) return stray_bytes();
  return finish({});
}

DQLITE_DECL io_action exchange_core::finish_interrupt() {
  if (!s_->rbuf.empty()) return stray_bytes();
  s_->diag.assign("the operation was cancelled; the query was interrupted and the "
                  "connection remains usable");
  return finish(make_error_code(errc::interrupted));
}

DQLITE_DECL io_action exchange_core::stray_bytes() {
  s_->diag.assign("the server sent " + std::to_string(s_->rbuf.size()) +
                  " bytes after a complete response, unasked; the connection was closed");
  return finish(make_error_code(errc::trailing_bytes));
}

DQLITE_DECL error_code exchange_core::handle_frame(const wire::frame_header& h, wire::bytes_view body, bool& done) {
  using wire::response;
  const bool failure = h.type == static_cast<std::uint8_t>(response::failure);
  switch (ph_) {
    case phase::main: break;
    case phase::drain:
    case phase::interrupt:
      // Rows of the interrupted query (and its failure, if any) until EMPTY.
      if (h.type == static_cast<std::uint8_t>(response::empty)) {
        done = true;
        return {};
      }
      if (failure || h.type == static_cast<std::uint8_t>(response::rows)) return {};
      return unexpected(h, "an interrupted query");
    case phase::finalize:
      if (failure || h.type == static_cast<std::uint8_t>(response::empty)) {
        done = true;
        return {};
      }
      return unexpected(h, "FINALIZE");
    case phase::rollback:
      if (failure) {
        // "no transaction is active" is the expected refusal; any other leaves the
        // transaction's state unknown: the connection cannot be handed on.
        wire::failure_response f;
        if (auto e = wire::decode_failure(body, f)) return e;
        const std::string text = wire::failure_text(f);
        done = true;
        if (text.find("no transaction is active") != std::string::npos) return {};
        s_->diag.assign("the ROLLBACK of a transaction left open failed (" +
                        text + "); the connection was closed");
        error_code e = make_server_error(f.code);
        s_->break_connection(e);
        return e;
      }
      if (h.type == static_cast<std::uint8_t>(response::result)) {
        done = true;
        return {};
      }
      return unexpected(h, "ROLLBACK");
  }
  if (failure) {
    wire::failure_response f;
    if (auto e = wire::decode_failure(body, f)) return e;
    on_failure(*s_);
    // The one place a server's message becomes the diagnostics: empty or misleading texts
    // ("not an error") are explained from the request that was sent.
    s_->diag.assign(describe_failure(f.code, wire::failure_text(f), wire::bytes_view(s_->wbuf)));
    done = true;
    return make_server_error(f.code);
  }
  error_code e = on_frame(*s_, h, body, done);
  if (e == make_error_code(errc::unexpected_response) && s_->diag.empty())
    s_->diag.assign("unexpected response type " + std::to_string(h.type));
  return e;
}

DQLITE_DECL error_code exchange_core::unexpected(const wire::frame_header& h, const char* to) {
  s_->diag.assign("unexpected response type " + std::to_string(h.type) + " to " + to);
  return make_error_code(errc::unexpected_response);
}

DQLITE_DECL io_action exchange_core::transport_failed(const io_event& ev, const char* during) {
  if (s_->timed_out) {
    if (drain_bounded_ && (ph_ == phase::interrupt || ph_ == phase::drain))
      s_->diag.assign("the server " + s_->peer + " went on sending an interrupted result for " +
                      std::to_string(s_->opts.interrupt_timeout.count()) +
                      " ms (interrupt_timeout); the connection was closed");
    else
      s_->diag.assign("no response from " + s_->peer + " within " +
                      std::to_string(params_.timeout.count()) + " ms");
    return finish(make_error_code(errc::timeout));
  }
  if (is_aborted(ev.ec)) {
    // Cancelled through the operation's slot, or the connection was closed (or destroyed)
    // while the operation ran.
    const std::string at = s_->peer.empty() ? std::string() : " (" + s_->peer + ")";
    s_->diag.assign(ev.cancel_requested || ph_ == phase::interrupt
                        ? std::string("the operation was cancelled while ") + during + at +
                              "; the connection was closed"
                        : std::string("the connection was closed while ") + during + at);
    return finish(make_error_code(errc::cancelled));
  }
  if (is_eof_or_reset(ev.ec)) {
    s_->diag.assign("the server " + s_->peer + " closed the connection while " + during +
                    peer_hint(s_->rbuf.data()));
    return finish(make_error_code(errc::connection_closed));
  }
  s_->diag.assign(std::string(during) + " (" + s_->peer + "): " + ev.ec.message());
  return finish(ev.ec);
}

DQLITE_DECL bool exchange_core::is_eof_or_reset(const error_code& ec) {
  // asio::error::eof belongs to asio's misc category: compare by name, so that this file
  // needs no Asio header.
  if (ec == boost::system::errc::connection_reset) return true;
  return ec.value() == 2 && std::string_view(ec.category().name()) == "asio.misc";
}

DQLITE_DECL io_action exchange_core::finish(error_code ec) {
  if (owns_) {
    if (ec) ec = map_error(*s_, ec, sent_);
    if (ec && params_.may_write && sent_ && answer_lost(ec)) {
      s_->diag.assign("the request was sent but its answer was lost (" +
                      (s_->diag.empty() ? ec.message() : s_->diag.message()) +
                      "); it may or may not have been applied");
      ec = make_error_code(errc::outcome_unknown);
    }
    s_->note_tx_effect(params_.tx, ec, sent_);
    if (ec && !init_ec_ && is_connection_error(ec)) {
      if (ec.category() == server_category())
        s_->diag.assign(s_->diag.message() +
                        (is_not_leader(ec) || is_leadership_lost(ec)
                             ? " (the connection was closed: the node is not the leader)"
                             : " (the connection was closed: the node has no such database "
                               "or statement any more, e.g. after a leadership change)"));
      s_->break_connection(ec);
    } else if (ec && s_->state != conn_state::open && !s_->broken_by) {
      s_->broken_by = ec;  // an opening (handshake, OPEN) that failed
    }
    const bool hold = !ec && holds();
    if (hold)
      s_->holder = params_.holder;
    else if (params_.holder != 0 && s_->holder == params_.holder)
      s_->holder = 0;
    s_->busy = false;
    s_->release_buffers();
  }
  return io_action::done(ec);
}

}  // namespace dqlite::detail
