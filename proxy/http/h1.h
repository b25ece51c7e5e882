// HTTP/1.1 message heads and chunked bodies: a strict, zero-copy, incremental parser.
//
// Thread affinity: none; parsers are plain values owned by one connection (worker-local).
// The parser never allocates on the hot path: header views point into the caller's buffer and
// the header array is fixed-size. Anything ambiguous that could let two HTTP implementations
// disagree on message boundaries (request smuggling) is an error, never "repaired".
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/base/text.h"

namespace outrigger::http {

// Headers the proxy acts on; everything else is kOther and passes through untouched.
enum class HeaderKind : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kTrailer,
  kUpgrade,
  kExpect,
  kXForwardedFor,
  kXForwardedProto,
  kXRequestId,
  kProxyAuthorization,
};

struct Header {
  std::string_view name;
  std::string_view value;
  HeaderKind kind = HeaderKind::kOther;
  bool hop = false;  // hop-by-hop: never forwarded (fixed list + names listed in Connection)
};

enum class BodyKind : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

enum class Error : uint8_t {
  kNone,
  kHeadTooLarge,            // 431
  kTooManyHeaders,          // 431
  kBadRequestLine,          // 400
  kBadMethod,               // 400
  kBadTarget,               // 400
  kBadVersion,              // 505
  kBareCr,                  // 400
  kBareLf,                  // 400
  kNul,                     // 400
  kObsFold,                 // 400
  kSpaceBeforeColon,        // 400
  kBadHeaderName,           // 400
  kBadHeaderValue,          // 400
  kBadContentLength,        // 400
  kDuplicateContentLength,  // 400
  kContentLengthAndTe,      // 400
  kBadTransferEncoding,     // 400 (anything but exactly "chunked", or TE on HTTP/1.0)
  kMissingHost,             // 400
  kDuplicateHost,           // 400
  kBadStatusLine,           // responses: 502
  kTooManyConnectionTokens,
  kBadHost,  // 400: not host[:port] (base::authority_shape)
};
std::string_view error_reason(Error e) noexcept;
bool is_smuggling_shape(Error e) noexcept;  // for the bad-request counter's reason label

inline constexpr size_t kMaxHeaders = 256;  // hard cap on the configurable max_headers
inline constexpr size_t kMaxConnectionTokens = 16;

// Fields common to request and response heads.
struct MessageHead {
  int version_minor = 1;  // HTTP/1.x
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // after Connection tokens and version defaults
  bool has_te_chunked = false;
  size_t head_bytes = 0;  // bytes of the head including the final CRLF
  size_t header_count = 0;
  size_t connection_token_count = 0;
  std::array<std::string_view, kMaxConnectionTokens> connection_tokens;
  std::array<Header, kMaxHeaders> headers;

  const Header* find(HeaderKind k) const noexcept;
};

struct RequestHead : MessageHead {
  std::string_view method;
  std::string_view target;     // origin-form path+query (absolute-form is split below)
  std::string_view authority;  // Host header, or the authority of an absolute-form target
  std::string_view scheme;     // "http"/"https" from an absolute-form target, else empty
  std::string_view path;       // target without the query, for routing
  bool expect_continue = false;
  bool is_head = false;
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
};

enum class ParseResult : uint8_t { kDone, kNeedMore, kError };

// Incremental head scanner: call parse() each time more bytes arrived at the end of the same
// buffer; it resumes scanning where it stopped, so a head arriving byte by byte costs O(n).
class HeadParser {
 public:
  struct Limits {
    size_t max_head_bytes = 16 * 1024;
    size_t max_headers = 100;
  };
  HeadParser() = default;
  explicit HeadParser(Limits limits) : limits_(limits) {}
  void set_limits(Limits limits) noexcept { limits_ = limits; }
  void reset() noexcept {
    scanned_ = line_start_ = skip_ = 0;
    lf_count_ = 0;
    error_ = Error::kNone;
  }

  ParseResult parse_request(std::string_view buf, RequestHead* out);
  // request_method_head: the response to a HEAD request has no body.
  ParseResult parse_response(std::string_view buf, bool request_method_head, ResponseHead* out);
  Error error() const noexcept { return error_; }

 private:
  // Finds the end of the head, validating line endings; returns head length or 0.
  size_t scan(std::string_view buf);
  bool parse_fields(std::string_view lines, MessageHead* out, RequestHead* req);
  bool finish_framing(MessageHead* out, bool is_request);
  ParseResult fail(Error e) noexcept {
    error_ = e;
    return ParseResult::kError;
  }

  Limits limits_;
  size_t scanned_ = 0;     // bytes already checked for line endings
  size_t line_start_ = 0;  // start of the line being scanned
  size_t skip_ = 0;        // leading empty lines before a request line (RFC 9112 2.2)
  Error error_ = Error::kNone;
  // Where scan() found the LF of each non-empty line (offsets into its buffer), so that parsing
  // does not search for line ends a second time. A head of more lines than kMaxLines is parsed
  // by searching again (lf_count_ keeps counting past it).
  static constexpr size_t kMaxLines = 64;
  size_t lf_count_ = 0;
  const char* scan_base_ = nullptr;
  uint32_t lf_[kMaxLines];
};

// Decodes a chunked body in place: chunk framing is removed and the data bytes are compacted to
// the front of the span given, so the caller forwards one contiguous range per read.
// Chunk extensions are validated and dropped; trailer fields are validated and kept verbatim
// (bounded) so they can be forwarded.
class ChunkedDecoder {
 public:
  enum class Status : uint8_t { kMore, kDone, kError };
  struct Result {
    Status status = Status::kMore;
    size_t consumed = 0;  // input bytes used (the rest belongs to the next message)
    size_t data = 0;      // decoded data bytes now at the front of the input span
  };
  static constexpr size_t kMaxTrailerBytes = 4096;
  static constexpr size_t kMaxExtensionBytes = 256;
  // For the next message; a trailer buffer already made is kept.
  void reset() noexcept {
    state_ = State::kSize;
    remaining_ = total_ = 0;
    size_digits_ = 0;
    ext_len_ = trailer_len_ = line_start_ = 0;
  }
  Result decode(char* p, size_t n);
  std::string_view trailers() const noexcept { return {trailer_.get(), trailer_len_}; }
  uint64_t body_bytes() const noexcept { return total_; }

 private:
  enum class State : uint8_t {
    kSize,
    kSizeLf,
    kExt,
    kData,
    kDataCr,
    kDataLf,
    kTrailerLineStart,
    kTrailerLine,
    kTrailerLf,
    kFinalLf,
    kDone
  };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  uint64_t total_ = 0;
  int size_digits_ = 0;
  size_t ext_len_ = 0;
  size_t trailer_len_ = 0;
  size_t line_start_ = 0;
  // kMaxTrailerBytes, made at the first trailer line: most bodies have none, and a decoder sits
  // in every HTTP/2 stream and every exchange.
  std::unique_ptr<char[]> trailer_;
};

// Shared with the modules that do not depend on this one (proxy/base/text.h).
using base::iequals;
using base::kAsciiLower;
using base::name_is;
using base::trim_ows;

// Appends "name: value\r\n" (the head builders' inner loop): one growth check, no strlen.
// (Not resize_and_overwrite: in GCC 12's libstdc++, when it has to grow the string it hands the
// callback the grown capacity as the size, so returning that size appends garbage; nginx saw it
// as invalid header lines on each connection's first request.)
inline void append_field(std::string& out, std::string_view name, std::string_view value) {
  // One resize (its zero-fill of a few dozen bytes is cheaper than four out-of-line appends),
  // then plain copies into the new room.
  const size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
  p += name.size();
  p[0] = ':';
  p[1] = ' ';
  p += 2;
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  p[0] = '\r';
  p[1] = '\n';
}

// The reason phrase of a status code for an HTTP/1.1 status line: "OK", "Not Found", ...
// ("Unknown" for codes without one).
std::string_view reason_phrase(int status) noexcept;

}  // namespace outrigger::http
