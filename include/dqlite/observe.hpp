// Logging and tracing hooks: what a connection, a cluster client and a pool say about
// what they do (docs/observability.md lists every event).
#pragma once

#include <dqlite/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

namespace dqlite {

/// Severity of a log event. A hook is called for the events at or above the threshold
/// of the options that set it (log_threshold); `off` as a threshold silences every event.
enum class log_level : std::uint8_t { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

/// "debug", "info", "warning", "error" or "off".
constexpr std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
    case log_level::off: return "off";
  }
  return "?";
}

namespace detail {

/// A non-owning reference to a callable of signature R(A...), called through a noexcept
/// thunk: an exception escaping the callable calls std::terminate. Trivially copyable, so
/// that the options structs that hold one stay free of owning members.
template <class R, class... A>
class basic_hook_ref {
  using fn_type = R (*)(A...);

 public:
  constexpr basic_hook_ref() noexcept = default;
  constexpr basic_hook_ref(std::nullptr_t) noexcept {}

  /// A plain function, or a lambda without captures (converted to a function pointer).
  template <class F>
    requires std::is_convertible_v<F, fn_type> &&
             (!std::is_same_v<std::decay_t<F>, basic_hook_ref>)
  constexpr basic_hook_ref(F&& f) noexcept : fn_(static_cast<fn_type>(f)), thunk_(&call_fn) {}

  /// Any other callable, by reference: it must outlive every object the hook is given to.
  template <class F>
    requires(!std::is_convertible_v<F&, fn_type>) &&
            (!std::is_same_v<std::remove_const_t<F>, basic_hook_ref>) &&
            std::is_invocable_r_v<R, F&, A...>
  constexpr basic_hook_ref(F& f) noexcept
      : obj_(static_cast<const void*>(std::addressof(f))), thunk_(&call_obj<F>) {}

  /// A temporary callable with state would dangle: refused.
  template <class F>
    requires(!std::is_convertible_v<F, fn_type>) && (!std::is_lvalue_reference_v<F>) &&
            (!std::is_same_v<std::decay_t<F>, basic_hook_ref>) &&
            std::is_invocable_r_v<R, F&, A...>
  basic_hook_ref(F&& f) = delete;

  constexpr explicit operator bool() const noexcept { return thunk_ != nullptr; }

  R operator()(A... a) const noexcept { return thunk_(*this, a...); }

 private:
  static R call_fn(const basic_hook_ref& h, A... a) noexcept { return h.fn_(a...); }
  template <class F>
  static R call_obj(const basic_hook_ref& h, A... a) noexcept {
    return (*static_cast<F*>(const_cast<void*>(h.obj_)))(a...);
  }

  fn_type fn_ = nullptr;
  const void* obj_ = nullptr;
  R (*thunk_)(const basic_hook_ref&, A...) noexcept = nullptr;
};

/// A hook that returns nothing.
template <class... A>
using hook_ref = basic_hook_ref<void, A...>;

}  // namespace detail

/// The logging hook: `void(log_level level, std::string_view event, std::string_view
/// message)`. `event` is a short fixed name (the list is in docs/observability.md, e.g.
/// "connect_failed", "redirect", "leader_changed"), `message` a sentence for people that
/// names the node and the cause. Both views are valid during the call only.
///
/// It refers to the callable without owning it: a plain function or a lambda without
/// captures is kept as a function pointer; any other callable is referred to, and must
/// outlive every connection, cluster and pool whose options hold the hook (a temporary
/// with state is refused at compile time). The library never throws through a hook: an
/// exception escaping it calls std::terminate (make it noexcept).
///
/// When no hook is set, or the event's level is below the threshold, nothing is
/// formatted: the message is built only for the events that are delivered.
using log_function = detail::hook_ref<log_level, std::string_view, std::string_view>;

/// What the tracing hook receives, twice per request: when it starts (phase::start) and
/// when it ends (phase::end: the outcome fields are set).
struct request_trace {
  enum class phase : std::uint8_t { start, end };
  phase at = phase::start;
  /// The request: "EXEC_SQL" or "QUERY_SQL" (SQL text), "EXEC" or "QUERY" (a prepared
  /// statement), "PREPARE", "FINALIZE", "OPEN", "LEADER", "CLUSTER", "ADD", "ASSIGN",
  /// "REMOVE", "TRANSFER", "DESCRIBE", "WEIGHT", "DUMP"; "ROWS" for the next batch of a
  /// cursor (nothing is sent: more rows of the result are read); "HANDSHAKE" for
  /// async_handshake over a stream connected by the caller (the protocol version and OPEN);
  /// "NONE" when the request failed before it could be encoded.
  std::string_view request;
  /// The SQL text (EXEC_SQL, QUERY_SQL, PREPARE), empty otherwise.
  std::string_view sql;
  /// The statement id (EXEC, QUERY, FINALIZE), 0 otherwise.
  std::uint32_t statement_id = 0;
  /// Parameters bound to the statement.
  std::size_t parameters = 0;
  /// The node ("host:port", "unix:path") and the database of the connection.
  std::string_view node;
  std::string_view database;
  /// Identify the request across its two calls: the connection (an address, stable while
  /// it lives) and the request's number on it (increasing).
  const void* connection = nullptr;
  std::uint64_t sequence = 0;
  /// Run by a blocking call (in the calling thread) rather than an asynchronous one.
  bool blocking = false;

  // ---- set at phase::end ----
  /// Time from the start of the request to its end (including requests the client sent
  /// first to clean up after dropped objects, and the drain of an interrupted query).
  std::chrono::nanoseconds duration{0};
  /// Result rows received (kept or read past) by this request.
  std::uint64_t rows = 0;
  /// Bytes sent (the request) and received (frame headers included) by this request.
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  /// How it ended: a default error_code on success.
  error_code error{};
  /// The diagnostics text of a failure (the server's message or the client's
  /// explanation), empty on success.
  std::string_view message;
};

/// The tracing hook: `void(const request_trace&)`, called at the start and at the end of
/// every request a connection runs (statements, prepared statement requests, cursor
/// batches, administration requests, asynchronous and blocking). The trace and its views
/// are valid during the call only. Same ownership and exception rules as log_function.
using trace_function = detail::hook_ref<const request_trace&>;

namespace detail {

/// A log hook and its threshold; builds a message only for an event it delivers.
struct logger {
  log_function fn{};
  log_level threshold = log_level::info;

  bool on(log_level l) const noexcept { return fn && l >= threshold && l != log_level::off; }

  /// Calls the hook with make() (a callable returning the message) if l passes.
  template <class Make>
  void operator()(log_level l, std::string_view event, Make&& make) const {
    if (!on(l)) [[likely]]
      return;
    fn(l, event, std::string_view(make()));
  }
};

}  // namespace detail
}  // namespace dqlite
