// Sans-io decoding of dqlite responses from byte spans.
//
// Every read is bounds-checked: malformed input yields an errc, never a read out of
// bounds. Decoded text and blobs are views into the caller's bytes (zero-copy); they stay
// valid as long as those bytes do.
#pragma once

#include <dqlite/detail/config.hpp>
#include <dqlite/error.hpp>
#include <dqlite/wire/protocol.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// Forces inlining of the small per-value functions of the row decoders' inner loops.
#ifndef DQLITE_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define DQLITE_ALWAYS_INLINE [[gnu::always_inline]] inline
#else
#define DQLITE_ALWAYS_INLINE inline
#endif
#endif

namespace dqlite::wire {

using bytes_view = std::span<const std::byte>;

/// A decoded frame header.
struct frame_header {
  std::uint32_t words = 0;  ///< body length in 8-byte words
  std::uint8_t type = 0;    ///< response type
  std::uint8_t schema = 0;  ///< schema (format revision) of the body
  std::size_t body_size() const noexcept { return std::size_t{words} * 8; }
};

inline std::uint64_t load_u64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

inline std::uint32_t load_u32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

/// Decodes a frame header (exactly header_size bytes). Checks the type is a known response
/// and the body fits max_body.
inline error_code decode_header(bytes_view h, frame_header& out,
                                std::size_t max_body = default_max_frame_size) noexcept {
  if (h.size() < header_size) return make_error_code(errc::truncated);
  out.words = load_u32(h.data());
  out.type = static_cast<std::uint8_t>(h[4]);
  out.schema = static_cast<std::uint8_t>(h[5]);
  if (out.body_size() > max_body) return make_error_code(errc::frame_too_large);
  if (out.type > max_response_type) return make_error_code(errc::unknown_message_type);
  return {};
}

/// Bounds-checked reader over a frame body.
class reader {
 public:
  reader() = default;
  explicit reader(bytes_view body) noexcept
      : p_(body.data()), end_(body.data() + body.size()) {}

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  bool at_end() const noexcept { return p_ == end_; }
  const std::byte* position() const noexcept { return p_; }

  error_code u64(std::uint64_t& v) noexcept {
    if (remaining() < 8) return make_error_code(errc::truncated);
    v = load_u64(p_);
    p_ += 8;
    return {};
  }
  error_code u32(std::uint32_t& v) noexcept {
    if (remaining() < 4) return make_error_code(errc::truncated);
    v = load_u32(p_);
    p_ += 4;
    return {};
  }
  error_code i64(std::int64_t& v) noexcept {
    std::uint64_t u = 0;
    auto ec = u64(u);
    v = static_cast<std::int64_t>(u);
    return ec;
  }
  error_code f64(double& v) noexcept {
    std::uint64_t u = 0;
    auto ec = u64(u);
    std::memcpy(&v, &u, 8);
    return ec;
  }
  /// Text: bytes up to a NUL, then zero padding to a whole word.
  error_code text(std::string_view& v) noexcept {
    if (at_end()) return make_error_code(errc::missing_nul);  // p_ may be null
    const void* nul = std::memchr(p_, 0, remaining());
    if (nul == nullptr) return make_error_code(errc::missing_nul);
    std::size_t len = static_cast<std::size_t>(static_cast<const std::byte*>(nul) - p_);
    std::size_t padded = (len + 1 + 7) & ~std::size_t{7};
    if (padded > remaining()) return make_error_code(errc::truncated);
    for (std::size_t i = len + 1; i < padded; ++i)
      if (p_[i] != std::byte{0}) return make_error_code(errc::bad_padding);
    v = std::string_view(reinterpret_cast<const char*>(p_), len);
    p_ += padded;
    return {};
  }
  /// Blob: u64 length, bytes, zero padding to a whole word.
  error_code blob(bytes_view& v) noexcept {
    std::uint64_t len = 0;
    if (auto ec = u64(len)) return ec;
    if (len > remaining()) return make_error_code(errc::truncated);
    std::size_t padded = (static_cast<std::size_t>(len) + 7) & ~std::size_t{7};
    if (padded > remaining()) return make_error_code(errc::truncated);
    // The padding after a blob is not checked: servers leave it uninitialised.
    v = bytes_view(p_, static_cast<std::size_t>(len));
    p_ += padded;
    return {};
  }
  /// Raw bytes (no padding).
  error_code raw(std::size_t n, bytes_view& v) noexcept {
    if (n > remaining()) return make_error_code(errc::truncated);
    v = bytes_view(p_, n);
    p_ += n;
    return {};
  }
  error_code finish() const noexcept {
    return at_end() ? error_code{} : make_error_code(errc::trailing_bytes);
  }

 private:
  const std::byte* p_ = nullptr;
  const std::byte* end_ = nullptr;
};

// ---- simple responses ----

struct failure_response {
  std::uint64_t code = 0;
  /// The server's message, or its first max_message_size bytes (cut at a UTF-8 character
  /// boundary) when it is longer: see message_size.
  std::string_view message;
  /// Length in bytes of the whole message as the server sent it (> message.size() when it
  /// was cut).
  std::size_t message_size = 0;
  bool message_cut() const noexcept { return message_size > message.size(); }
};
struct server_response {
  std::uint64_t id = 0;
  std::string_view address;
};
struct welcome_response {
  std::uint64_t heartbeat_timeout_ms = 0;
};
struct db_response {
  std::uint32_t id = 0;
};
struct stmt_response {
  std::uint32_t db = 0;
  std::uint32_t id = 0;
  std::uint64_t params = 0;
  std::uint64_t tail_offset = 0;  ///< schema 1 only
  bool has_tail = false;
};
struct result_response {
  std::uint64_t last_insert_id = 0;
  std::uint64_t rows_affected = 0;
};
struct metadata_response {
  std::uint64_t failure_domain = 0;
  std::uint64_t weight = 0;
};
struct node_view {
  std::uint64_t id = 0;
  std::string_view address;
  std::uint64_t role = 0;
};
struct file_view {
  std::string_view name;
  bytes_view data;
};

namespace detail {
inline error_code check_type(const frame_header& h, response expected) noexcept {
  return h.type == static_cast<std::uint8_t>(expected) ? error_code{}
                                                       : make_error_code(errc::unexpected_response);
}
}  // namespace detail

/// The first `limit` bytes of a message, without splitting a UTF-8 sequence.
inline std::string_view message_prefix(std::string_view m,
                                       std::size_t limit = max_message_size) noexcept {
  if (m.size() <= limit) return m;
  std::size_t n = limit;
  // Back off over continuation bytes (10xxxxxx) to the start of the cut character.
  for (std::size_t k = 0; k < 3 && n > 0 &&
                          (static_cast<unsigned char>(m[n]) & 0xc0u) == 0x80u;
       ++k)
    --n;
  return m.substr(0, n);
}

/// A failure's text as the client reports it: the message, and when it was cut a note
/// saying how much was left out. At most max_message_size + 64 bytes.
DQLITE_DECL std::string failure_text(const failure_response& f);

/// FAILURE: u64 code, text message.
///
/// A failure that happens while a query is producing rows may arrive after the partly
/// written rows of that frame (server 1.11.1): the body is then [column count, names,
/// rows...][code][message]. Such a body is recognised by its tail: the message is the
/// run of NUL-free words ending in the word that holds its terminator, and the code is the
/// word before it.
///
/// Decodes the message whole (a view of any length into body): see decode_failure.
DQLITE_DECL error_code decode_failure_whole(bytes_view body, failure_response& out) noexcept;

/// Decodes a FAILURE. out.message views at most max_message_size bytes of the body (see
/// failure_response::message_size), so nothing built from it holds a longer text.
DQLITE_DECL error_code decode_failure(bytes_view body, failure_response& out) noexcept;

DQLITE_DECL error_code decode_server(bytes_view body, server_response& out) noexcept;

DQLITE_DECL error_code decode_welcome(bytes_view body, welcome_response& out) noexcept;

DQLITE_DECL error_code decode_db(bytes_view body, db_response& out) noexcept;

DQLITE_DECL error_code decode_stmt(bytes_view body, std::uint8_t schema, stmt_response& out) noexcept;

DQLITE_DECL error_code decode_result(bytes_view body, result_response& out) noexcept;

inline error_code decode_empty(bytes_view body) noexcept {
  reader r(body);
  std::uint64_t unused = 0;
  if (auto ec = r.u64(unused)) return ec;
  return r.finish();
}

DQLITE_DECL error_code decode_metadata(bytes_view body, metadata_response& out) noexcept;

/// SERVERS: u64 count, then per node u64 id, text address, u64 role (format 1).
DQLITE_DECL error_code decode_servers(bytes_view body, std::vector<node_view>& out);

/// FILES: u64 count, then per file text name, u64 size, raw bytes (size a multiple of 8).
DQLITE_DECL error_code decode_files(bytes_view body, std::vector<file_view>& out);

// ---- values and rows ----

/// A value inside a received frame: text and blob bytes are views into the frame.
struct value_view {
  value_type type = value_type::null;
  std::int64_t integer = 0;  ///< INTEGER, UNIXTIME, BOOLEAN (0/1)
  double floating = 0;       ///< FLOAT
  std::string_view bytes;    ///< TEXT, ISO8601 and BLOB contents

  bool is_null() const noexcept { return type == value_type::null; }
  std::span<const std::byte> blob() const noexcept {
    return {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()};
  }
};

/// Reads one value of type code at p (not past end) into v and moves p past it. Returns
/// errc{} (zero) on success, else what is wrong; p is then unspecified. The rules every
/// ROWS decoder shares: fixed-size values take a word, text ends at a NUL followed by zero
/// padding to a whole word, a blob is a length word and the bytes padded to a whole word
/// (that padding is not checked: servers leave it uninitialised), BOOLEAN reads as 0/1,
/// and an empty ISO8601 text is NULL (how released servers send a NULL date/time).
DQLITE_ALWAYS_INLINE errc decode_value(unsigned code, const std::byte*& p, const std::byte* end,
                                       value_view& v) noexcept {
  const std::size_t avail = static_cast<std::size_t>(end - p);
  switch (code) {
    case 1:   // INTEGER
    case 9:   // UNIXTIME
    case 11:  // BOOLEAN
      if (avail < 8) return errc::truncated;
      v.type = static_cast<value_type>(code);
      v.integer = static_cast<std::int64_t>(load_u64(p));
      if (code == 11) v.integer = v.integer != 0 ? 1 : 0;
      p += 8;
      return {};
    case 2: {
      if (avail < 8) return errc::truncated;
      v.type = value_type::floating;
      const std::uint64_t bits = load_u64(p);
      std::memcpy(&v.floating, &bits, 8);
      p += 8;
      return {};
    }
    case 3:     // TEXT
    case 10: {  // ISO8601
      // Most texts are short: look for the NUL a word at a time in the first words,
      // then let memchr scan the rest.
      constexpr std::uint64_t ones = 0x0101010101010101ULL;
      constexpr std::uint64_t highs = 0x8080808080808080ULL;
      std::size_t at = 0;
      std::size_t len = avail;  // avail: no NUL found yet
      for (; at + 8 <= avail && at < 32; at += 8) {
        const std::uint64_t w = load_u64(p + at);
        if (const std::uint64_t zero = (w - ones) & ~w & highs) {
          len = at + static_cast<std::size_t>(std::countr_zero(zero)) / 8;
          break;
        }
      }
      if (len == avail) {
        const void* nul = at < avail ? std::memchr(p + at, 0, avail - at) : nullptr;
        if (nul == nullptr) return errc::missing_nul;
        len = static_cast<std::size_t>(static_cast<const std::byte*>(nul) - p);
      }
      const std::size_t padded = (len + 8) & ~std::size_t{7};
      if (padded > avail) return errc::truncated;
      // The NUL and the padding after it, all in the last word, must be zero.
      if ((load_u64(p + padded - 8) >> (8 * (len % 8))) != 0) return errc::bad_padding;
      // Released servers (libdqlite 1.11.1 to 1.18.6) send a NULL of a DATETIME, DATE or
      // TIMESTAMP column as ISO8601 "": it is NULL, on every read path (docs/typed-rows.md).
      v.type = code == 10 && len == 0 ? value_type::null : static_cast<value_type>(code);
      v.bytes = std::string_view(reinterpret_cast<const char*>(p), len);
      p += padded;
      return {};
    }
    case 4: {
      if (avail < 8) return errc::truncated;
      const std::uint64_t len = load_u64(p);
      if (len > avail - 8) return errc::truncated;
      const std::size_t padded = (static_cast<std::size_t>(len) + 7) & ~std::size_t{7};
      if (padded > avail - 8) return errc::truncated;
      v.type = value_type::blob;
      v.bytes = std::string_view(reinterpret_cast<const char*>(p + 8), static_cast<std::size_t>(len));
      p += 8 + padded;
      return {};
    }
    case 5:
      if (avail < 8) return errc::truncated;
      v.type = value_type::null;
      p += 8;
      return {};
    default: return errc::unknown_value_type;
  }
}

/// Type code of column i in a row header.
DQLITE_ALWAYS_INLINE unsigned row_type_code(const std::byte* header, std::size_t i) noexcept {
  return (static_cast<unsigned>(header[i / 2]) >> ((i % 2) * 4)) & 0x0fu;
}

/// Whether a row header of n columns (header_words words) is well formed: every type
/// code is one the protocol defines, the unused nibble of an odd count and the bytes after
/// the codes are zero.
inline bool row_header_valid(const std::byte* header, std::size_t n,
                             std::size_t header_words) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned code = row_type_code(header, i);
    if (code == 0 || (code > 5 && code < 9) || code > 11) return false;
  }
  if (n % 2 == 1 && (static_cast<unsigned>(header[n / 2]) >> 4) != 0) return false;
  for (std::size_t i = (n + 1) / 2; i < header_words * 8; ++i)
    if (header[i] != std::byte{0}) return false;
  return true;
}

/// How a ROWS frame ended.
enum class rows_end { none, part, done };

/// Zero-copy reader of one ROWS frame body:
///   rows_reader rr;  rr.start(body);  rr.column_count(); rr.column_name(i);
///   while (rr.next(values)) {...}    // values: a span of column_count() value_views
///   rr.error(), rr.end()
///
/// Decoders that read values straight into their destination use the direct row access
/// instead of next(): while (rr.at_row()) { read the row from rr.row_data() (at most up to
/// rr.data_end()) with the rules of decode_value and row_header_valid, then
/// rr.skip_row_to(end of the row) - or, when anything is wrong, call next(), which reports
/// the problem exactly }.
class rows_reader {
 public:
  /// Parses the column count and names. Column names are kept as views (the vector is
  /// reused between frames, so reading frame after frame does not allocate). A count over
  /// max_columns fails with errc::too_many_columns before anything is allocated for it
  /// (see announced_columns()); the names' memory is then at most 2 bytes per byte of the
  /// body (a 16-byte view per name of at least 8 bytes).
  DQLITE_DECL error_code start(bytes_view body, std::size_t max_columns = default_max_columns);

  std::size_t column_count() const noexcept { return names_.size(); }
  /// The column count the frame announced (also when start() refused it).
  std::uint64_t announced_columns() const noexcept { return announced_; }
  std::string_view column_name(std::size_t i) const noexcept { return names_[i]; }
  const std::vector<std::string_view>& column_names() const noexcept { return names_; }

  /// Reads the next row into out (size must be column_count()). Returns false at the end
  /// marker or on error (see error() and end()).
  bool next(std::span<value_view> out) noexcept {
    if (ec_ || end_ != rows_end::none) return false;
    const std::byte* p = r_.position();
    const std::byte* const end = p + r_.remaining();
    if (end - p < 8) return fail(errc::invalid_row_marker);
    const std::uint64_t word = load_u64(p);
    if (word == rows_done_marker || word == rows_part_marker) return end_at_marker(p, end, word);
    const std::size_t n = names_.size();
    if (n == 0) return fail(errc::invalid_row_marker);
    if (out.size() < n) return fail(errc::truncated);
    const std::size_t header_bytes = header_words_ * 8;
    if (static_cast<std::size_t>(end - p) < header_bytes) return fail(errc::truncated);
    const std::byte* const header = p;
    p += header_bytes;
    for (std::size_t i = 0; i < n; ++i)
      if (const errc e = decode_value(row_type_code(header, i), p, end, out[i]); e != errc{})
        return fail(e);
    // The unused nibble of an odd count and the bytes after the types must be zero.
    if (n % 2 == 1 && (static_cast<unsigned>(header[n / 2]) >> 4) != 0)
      return fail(errc::bad_padding);
    for (std::size_t i = (n + 1) / 2; i < header_bytes; ++i)
      if (header[i] != std::byte{0}) return fail(errc::bad_padding);
    r_ = reader(bytes_view(p, static_cast<std::size_t>(end - p)));
    ++rows_read_;
    return true;
  }

  /// Direct row access: true when a row may follow (read it from row_data(), or with
  /// next()). At an end marker, consumes it as next() does and returns false; false too
  /// after the end or an error.
  bool at_row() noexcept {
    if (ec_ || end_ != rows_end::none) return false;
    const std::byte* p = r_.position();
    const std::byte* const end = p + r_.remaining();
    if (end - p >= 8) {
      const std::uint64_t word = load_u64(p);
      if (word == rows_done_marker || word == rows_part_marker) return end_at_marker(p, end, word);
    }
    return true;  // a row, or something next() will report
  }
  /// Start of the row ahead, and the end of the bytes it may use.
  const std::byte* row_data() const noexcept { return r_.position(); }
  const std::byte* data_end() const noexcept { return r_.position() + r_.remaining(); }
  /// Words of each row header (one per 16 columns).
  std::size_t header_words() const noexcept { return header_words_; }
  /// Moves past a row read directly; p is the end of that row, within [row_data(), data_end()].
  void skip_row_to(const std::byte* p) noexcept {
    r_ = reader(bytes_view(p, static_cast<std::size_t>(data_end() - p)));
    ++rows_read_;
  }

  /// Rows read (by next() or directly) since the reader was made, across frames.
  std::uint64_t rows_read() const noexcept { return rows_read_; }

  error_code error() const noexcept { return ec_; }
  rows_end end() const noexcept { return end_; }
  /// Size of the frame body being read.
  std::size_t frame_size() const noexcept { return frame_size_; }

 private:
  reader r_;
  std::vector<std::string_view> names_;
  bool fail(errc e) noexcept {
    ec_ = make_error_code(e);
    return false;
  }
  bool end_at_marker(const std::byte* p, const std::byte* end, std::uint64_t word) noexcept {
    r_ = reader(bytes_view(p + 8, static_cast<std::size_t>(end - p - 8)));
    end_ = word == rows_done_marker ? rows_end::done : rows_end::part;
    ec_ = r_.finish();
    return false;
  }

  std::size_t header_words_ = 0;
  std::uint64_t rows_read_ = 0;
  std::size_t frame_size_ = 0;
  std::uint64_t announced_ = 0;
  rows_end end_ = rows_end::none;
  error_code ec_;
};

}  // namespace dqlite::wire

#ifndef DQLITE_CLIENT_SEPARATE_COMPILATION
#include <dqlite/impl/decode.ipp>
#endif
