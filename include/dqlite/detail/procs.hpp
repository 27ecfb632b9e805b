// Response processors: how each kind of request reads its response frames.
#pragma once

#include <dqlite/detail/exchange.hpp>
#include <dqlite/error.hpp>
#include <dqlite/field.hpp>
#include <dqlite/mapping.hpp>
#include <dqlite/value.hpp>
#include <dqlite/wire/decode.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace dqlite {

/// What a statement that does not return rows reports.
struct exec_result {
  std::uint64_t last_insert_id = 0;  ///< rowid of the last inserted row
  std::uint64_t rows_affected = 0;   ///< rows changed by the (last) statement
  friend bool operator==(const exec_result&, const exec_result&) = default;
};

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

/// QUERY / QUERY_SQL: ROWS frames until DONE, each handed to a Sink:
///   using result_type = ...;
///   error_code on_rows(wire::rows_reader&, Impl&);   reads rows of one frame (may stop early)
///   error_code finish(Impl&);                         after DONE
///   result_type take();
/// A sink error (a conversion failure, a cap exceeded) does not stop the reading: the
/// remaining frames are read and dropped so the connection stays usable, then the op fails.
template <class Sink>
struct rows_proc {
  using result_type = typename Sink::result_type;
  static constexpr bool interruptible = true;  // cancellation: INTERRUPT, keep the connection
  Sink sink;
  error_code deferred;

  template <class Impl>
  error_code on_frame(Impl& c, const wire::frame_header& h, wire::bytes_view body, bool& done) {
    if (auto e = expect_type(h, wire::response::rows)) return e;
    auto& rr = c.rows;
    if (auto e = rr.start(body)) return e;
    if (!deferred) deferred = sink.on_rows(rr, c);
    if (!rr.error() && rr.end() == wire::rows_end::none) {
      c.scratch.resize(rr.column_count());
      while (rr.next(c.scratch)) {
      }
    }
    if (auto e = rr.error()) return e;
    if (rr.end() == wire::rows_end::part) return {};
    done = true;
    if (!deferred) deferred = sink.finish(c);
    return deferred;
  }
  /// The rest of the result is not needed (a failure to report, or the one row wanted is
  /// there): the exchange interrupts the query and drains it, then calls on_interrupted.
  bool wants_interrupt() const noexcept {
    if (deferred) return true;
    if constexpr (requires { sink.satisfied(); })
      return sink.satisfied();
    else
      return false;
  }
  template <class Impl>
  error_code on_interrupted(Impl& c) {
    if (!deferred) deferred = sink.finish(c);
    return deferred;
  }
  result_type take() { return sink.take(); }
};

/// Checks the fetch-all caps of the connection's options.
template <class Impl>
error_code check_caps(Impl& c, std::size_t rows, std::size_t bytes) {
  if (c.opts.max_result_rows != 0 && rows > c.opts.max_result_rows) {
    c.diag.assign("the result has more than max_result_rows (" +
                  std::to_string(c.opts.max_result_rows) + ") rows; raise the cap or narrow the query");
    return make_error_code(errc::result_too_large);
  }
  if (c.opts.max_result_bytes != 0 && bytes > c.opts.max_result_bytes) {
    c.diag.assign("the result is larger than max_result_bytes (" +
                  std::to_string(c.opts.max_result_bytes) + "); raise the cap or narrow the query");
    return make_error_code(errc::result_too_large);
  }
  return {};
}

/// All rows as dynamic values.
struct dynamic_rows_sink {
  using result_type = rows;
  rows out;
  std::size_t bytes = 0;
  template <class Impl>
  error_code on_rows(wire::rows_reader& rr, Impl& c) {
    if (auto e = out.append(rr, c.scratch)) return e;
    bytes += rr.frame_size();
    return check_caps(c, out.size(), bytes);
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
    } else if (!mapper_.same_columns(rr.column_names())) {
      c.diag.assign("the columns changed between the frames of one result");
      return make_error_code(errc::unexpected_response);
    }
    if constexpr (OneOnly) {
      if (one_) return {};
    }
    c.scratch.resize(rr.column_count());
    vector_type& out = Into ? *target_ : own_;
    // Each row is read straight from the frame when it can be, else (and to report any
    // problem) through the value array.
    while (rr.at_row()) {
      ++count_;
      if constexpr (OneOnly) {
        object_type obj{};
        if (!mapper_.read_direct(rr, obj)) {
          if (!rr.next(c.scratch)) break;
          if (auto e = mapper_.read(c.scratch, obj, c.diag, count_)) return e;
        }
        one_.emplace(std::move(obj));
        return {};
      } else {
        auto& obj = out.emplace_back();
        if (!mapper_.read_direct(rr, obj)) {
          if (!rr.next(c.scratch)) {
            out.pop_back();
            break;
          }
          if (auto e = mapper_.read(c.scratch, obj, c.diag, count_)) {
            out.pop_back();
            return e;
          }
        }
      }
    }
    bytes_ += rr.frame_size();
    return check_caps(c, count_, bytes_);
  }
  template <class Impl>
  error_code finish(Impl&) {
    return {};
  }
  bool has_row() const noexcept { return one_.has_value(); }
  /// Every row wanted is there (fetchone): the rest of the result can be interrupted.
  bool satisfied() const noexcept { return OneOnly && one_.has_value(); }
  result_type take() {
    if constexpr (OneOnly)
      return std::move(one_);
    else if constexpr (Into)
      return count_;
    else
      return std::move(own_);
  }

  vector_type own_;  ///< public so a caller may reserve before the rows arrive

 private:
  row_mapper<T> mapper_;
  vector_type* target_ = nullptr;
  std::optional<object_type> one_;
  bool mapped_ = false;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
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
  bool satisfied() const noexcept { return first.has_row(); }
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
