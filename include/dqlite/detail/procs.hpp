// Response processors: how each kind of request reads its response frames.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/detail/exchange.hpp>
#include <dqlite/error.hpp>
#include <dqlite/exec_result.hpp>
#include <dqlite/field.hpp>
#include <dqlite/mapping.hpp>
#include <dqlite/value.hpp>
#include <dqlite/wire/decode.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqlite {


namespace detail {

inline error_code expect_type(const wire::frame_header& h, wire::response r) {
  return h.type == static_cast<std::uint8_t>(r) ? error_code{}
                                                : make_error_code(errc::unexpected_response);
}

/// EXEC / EXEC_SQL: one RESULT.
struct exec_proc {
  using result_type = exec_result;
  exec_result out;
  template <class Impl>
  error_code on_frame(Impl&, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::result)) return e;
    wire::result_response r;
    if (auto e = wire::decode_result(body, r)) return e;
    out = {r.last_insert_id, r.rows_affected};
    done = true;
    return {};
  }
  exec_result take() { return out; }
};

/// A ROWS frame the client cannot read: the diagnostics name the problem (replacing any
/// text a sink set for an earlier, lesser error: a protocol error always wins).
DQLITE_DECL error_code malformed_rows(session_state& c, error_code ec);

/// Starts reading a ROWS frame with the connection's column limit.
template <class Impl>
error_code start_rows(Impl& c, wire::bytes_view body) {
  if (auto e = c.rows.start(body, c.opts.max_result_columns)) return malformed_rows(c, e);
  return {};
}

/// Reads what is left of the frame without keeping anything, to find a malformed row
/// after a sink stopped early.
template <class Impl>
void scan_rest(Impl& c) {
  auto& rr = c.rows;
  if (!rr.error() && rr.end() == wire::rows_end::none) {
    c.scratch.resize(rr.column_count());
    while (rr.next(c.scratch)) {
    }
  }
}

/// QUERY / QUERY_SQL: ROWS frames until DONE, each handed to a Sink:
///   using result_type = ...;
///   error_code on_rows(wire::rows_reader&, Impl&);   reads rows of one frame (may stop early)
///   error_code finish(Impl&);                         after DONE
///   result_type take();
/// A sink error (a conversion failure, a cap crossed) ends the operation with that frame:
/// nothing more is decoded; the rest of the frame is still checked (a malformed frame is
/// the error then), and when more frames are to come the result is interrupted before
/// the connection's next request (the connection stays usable).
template <class Sink>
struct rows_proc {
  using result_type = typename Sink::result_type;
  static constexpr bool interruptible = true;  // cancellation: INTERRUPT, keep the connection
  Sink sink;

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::rows)) return e;
    auto& rr = c.rows;
    if (auto e = start_rows(c, body)) return e;
    error_code e = sink.on_rows(rr, c);
    if (e && is_protocol_error(e)) return malformed_rows(c, e);
    scan_rest(c);
    if (auto pe = rr.error()) return malformed_rows(c, pe);
    if (rr.end() == wire::rows_end::part) {
      if (!e) return {};
      done = true;
      c.drain_pending = true;
      return e;
    }
    done = true;
    if (!e) e = sink.finish(c);
    return e;
  }
  result_type take() { return sink.take(); }
};

/// What a result costs so far, checked against the caps of the connection's options
/// after each row, so that a cap stops the decoding at the row that crosses it.
struct result_budget {
  std::size_t rows = 0;     ///< rows read, kept or read past
  std::size_t held = 0;     ///< memory the kept rows hold outside their slots
  std::size_t dropped = 0;  ///< wire bytes of the rows read past
  bool batch = false;       ///< a cursor's batch: only the bytes cap applies

  /// slots: bytes of the storage of the kept row objects.
  DQLITE_DECL error_code check(session_state& c, std::size_t slots);

  /// Slots of v counted for the rows kept: what it grew by since it held `base`, at least
  /// one per row kept.
  template <class V>
  static std::size_t slots(const V& v, std::size_t base, std::size_t kept) noexcept {
    return std::max(v.capacity() - std::min(v.capacity(), base), kept);
  }

  /// Before a row is added to v: when v is full, grows it (doubling, as it would) no
  /// further than max_result_bytes allows; fails when not one more row fits.
  template <class Impl, class V>
  error_code make_room(Impl& c, V& v, std::size_t base, std::size_t kept) {
    const std::size_t max = c.opts.max_result_bytes;
    if (v.size() < v.capacity() || max == 0) return {};
    constexpr std::size_t elem = sizeof(typename V::value_type);
    const std::size_t s = slots(v, base, kept) * elem;
    const std::size_t used = held + dropped + s;
    const std::size_t room = used < max ? (max - used) / elem : 0;
    if (room == 0) return check(c, s + elem);  // over the cap with one more slot
    v.reserve(v.capacity() + std::min(std::max<std::size_t>(v.capacity(), 1), room));
    return {};
  }
};

/// All rows as dynamic values.
struct dynamic_rows_sink {
  using result_type = rows;
  rows out;
  result_budget budget;
  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    const auto& names = rr.column_names();
    if (!out.columns_ || out.columns_->size() != names.size() ||
        !std::equal(names.begin(), names.end(), out.columns_->begin())) {
      if (out.columns_ && !out.rows_.empty()) return make_error_code(errc::unexpected_response);
      out.columns_ = std::make_shared<const column_names>(names.begin(), names.end());
      budget.held = names_bytes(names);
    }
    c.scratch.resize(names.size());
    auto& v = out.rows_;
    while (rr.at_row()) {
      if (auto e = budget.make_room(c, v, 0, v.size())) return e;
      if (!rr.next(c.scratch)) break;
      v.push_back(row::from_views(out.columns_, c.scratch));
      const std::size_t h = heap_bytes(v.back());
      ++budget.rows;
      budget.held += h;
      if (auto e = budget.check(c, result_budget::slots(v, 0, v.size()) * sizeof(row))) {
        budget.held -= h;
        v.pop_back();
        return e;
      }
    }
    return rr.error();
  }
  template <class Impl>
  error_code finish(Impl&) {
    return {};
  }
  rows take() { return std::move(out); }
};

/// True when T (a field, or a row type's fields) holds a std::string_view.
template <class T>
constexpr bool has_view_fields() {
  if constexpr (std::is_same_v<T, std::string_view> ||
                std::is_same_v<T, std::optional<std::string_view>>) {
    return true;
  } else if constexpr (kind_of<T>() == row_kind::tuple ||
                       kind_of<T>() == row_kind::aggregate_by_name ||
                       kind_of<T>() == row_kind::aggregate_by_position) {
    using Obj = typename stored_type<T>::type;
    return []<std::size_t... I>(std::index_sequence<I...>) {
      return (has_view_fields<typename fields_of<Obj>::template type<I>>() || ...);
    }(std::make_index_sequence<fields_of<Obj>::size>{});
  } else {
    return false;
  }
}

template <class U>
struct is_optional : std::false_type {};
template <class U>
struct is_optional<std::optional<U>> : std::true_type {};

/// Rows mapped into T (see mapping.hpp), appended to a std::vector of T (of U for
/// by_position<U>): the sink's own vector (fetch), or the caller's (fetch_into, where the
/// result is the number of rows appended). With OneOnly, only the first row is kept.
template <class T, bool OneOnly = false, bool Into = false>
struct typed_rows_sink {
  using object_type = typename row_mapper<T>::object_type;
  static_assert(!has_view_fields<T>(),
                "dqlite: std::string_view fields view the received frame, which is gone when a "
                "fetch completes: use std::string in row types of fetch, fetchone, fetch_into "
                "and fetchval");
  using vector_type = std::vector<object_type>;
  using result_type = std::conditional_t<
      OneOnly, std::optional<object_type>,
      std::conditional_t<Into, std::size_t, vector_type>>;

  typed_rows_sink() = default;
  explicit typed_rows_sink(vector_type* target) : target_(target) {}

  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    if (!mapped_) {
      if (auto e = mapper_.map(rr.column_names(), c.opts, c.diag)) return e;
      mapped_ = true;
      budget.held = names_bytes(rr.column_names());
    } else if (!mapper_.same_columns(rr.column_names())) {
      return make_error_code(errc::unexpected_response);
    }
    c.scratch.resize(rr.column_count());
    if constexpr (OneOnly) {
      if (!one_) {
        // The first row is kept.
        if (!rr.at_row()) return rr.error();
        object_type obj{};
        if (!mapper_.read_direct(rr, obj)) {
          if (!rr.next(c.scratch)) return rr.error();
          if (auto e = mapper_.read(c.scratch, obj, c.diag, 1)) return e;
        }
        one_.emplace(std::move(obj));
        ++budget.rows;
        budget.held += row_mapper<T>::heap_bytes(*one_);
        if (auto e = budget.check(c, sizeof(object_type))) return e;
      }
      // The rest is read past: it costs its rows and its size on the wire.
      for (;;) {
        const std::byte* before = rr.row_data();
        if (!rr.next(c.scratch)) return rr.error();
        ++budget.rows;
        budget.dropped += static_cast<std::size_t>(rr.row_data() - before);
        if (auto e = budget.check(c, sizeof(object_type))) return e;
      }
    } else {
      vector_type& out = Into ? *target_ : own_;
      if (!started_) {
        started_ = true;
        base_slots_ = out.capacity();
      }
      // Each row is read straight from the frame when it can be, else (and to report any
      // problem) through the value array.
      while (rr.at_row()) {
        if (auto e = budget.make_room(c, out, base_slots_, count_)) return e;
        auto& obj = out.emplace_back();
        if (!mapper_.read_direct(rr, obj)) {
          if (!rr.next(c.scratch)) {
            out.pop_back();
            return rr.error();
          }
          if (auto e = mapper_.read(c.scratch, obj, c.diag, budget.rows + 1)) {
            out.pop_back();
            return e;
          }
        }
        ++budget.rows;
        ++count_;
        budget.held += row_mapper<T>::heap_bytes(obj);
        if (auto e = budget.check(
                c, result_budget::slots(out, base_slots_, count_) * sizeof(object_type))) {
          budget.held -= row_mapper<T>::heap_bytes(obj);
          out.pop_back();
          --count_;
          return e;
        }
      }
      return rr.error();
    }
  }
  template <class Impl>
  error_code finish(Impl&) {
    return {};
  }
  bool has_row() const noexcept { return one_.has_value(); }
  /// Every row wanted is there (fetchone): the rest of the result can be interrupted.
  result_type take() {
    if constexpr (OneOnly)
      return std::move(one_);
    else if constexpr (Into)
      return count_;
    else
      return std::move(own_);
  }

  vector_type own_;  ///< public so a caller may reserve before the rows arrive
  result_budget budget;

 private:
  row_mapper<T> mapper_;
  vector_type* target_ = nullptr;
  std::optional<object_type> one_;
  bool mapped_ = false;
  bool started_ = false;
  std::size_t base_slots_ = 0;  ///< capacity of the target vector before the first row
  std::size_t count_ = 0;       ///< rows appended
};

/// The first column of the first row, as T. std::optional<T>: empty on NULL or no rows.
template <class T>
struct value_sink {
  using result_type = T;
  typed_rows_sink<T, true> first;  // T is a single field type: it maps the first column

  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    return first.on_rows(rr, c);
  }
  template <class Impl>
  error_code finish(Impl& c) {
    if (first.has_row() || is_optional<T>::value) return {};
    c.diag.assign("the query returned no rows");
    return make_error_code(errc::no_rows);
  }
  T take() {
    auto row = first.take();
    return row ? std::move(*row) : T{};
  }
};

}  // namespace detail
}  // namespace dqlite

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/procs.ipp>
#endif
