#include "proxy/http/h1.h"

#include <cstring>

namespace outrigger::http {
namespace {

using base::all_vchar;
using base::kHex;
using base::kHostChar;
using base::kTargetChar;
using base::kTchar;
using base::kVchar;
using base::span_of;

inline bool is(uint8_t cls, char c) noexcept { return base::in_class(cls, c); }

inline bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// Hop-by-hop headers (RFC 9110 7.6.1) plus the framing header we regenerate. n is a field name
// already checked to be all tchar (see base::name_is).
HeaderKind classify(std::string_view n, bool* hop) noexcept {
  *hop = false;
  switch (n.size()) {
    case 2:
      if (name_is(n, "te")) {
        *hop = true;
        return HeaderKind::kTe;
      }
      break;
    case 4:
      if (name_is(n, "host")) return HeaderKind::kHost;
      break;
    case 6:
      if (name_is(n, "expect")) return HeaderKind::kExpect;
      break;
    case 7:
      if (name_is(n, "trailer")) {
        *hop = true;
        return HeaderKind::kTrailer;
      }
      if (name_is(n, "upgrade")) {
        *hop = true;
        return HeaderKind::kUpgrade;
      }
      break;
    case 10:
      if (name_is(n, "connection")) {
        *hop = true;
        return HeaderKind::kConnection;
      }
      if (name_is(n, "keep-alive")) {
        *hop = true;
        return HeaderKind::kKeepAlive;
      }
      break;
    case 12:
      if (name_is(n, "x-request-id")) return HeaderKind::kXRequestId;
      break;
    case 14:
      if (name_is(n, "content-length")) return HeaderKind::kContentLength;
      break;
    case 15:
      if (name_is(n, "x-forwarded-for")) return HeaderKind::kXForwardedFor;
      break;
    case 16:
      if (name_is(n, "proxy-connection")) {
        *hop = true;
        return HeaderKind::kProxyConnection;
      }
      break;
    case 17:
      if (name_is(n, "transfer-encoding")) {
        *hop = true;
        return HeaderKind::kTransferEncoding;
      }
      if (name_is(n, "x-forwarded-proto")) return HeaderKind::kXForwardedProto;
      break;
    case 19:
      if (name_is(n, "proxy-authorization")) {
        *hop = true;
        return HeaderKind::kProxyAuthorization;
      }
      break;
    default:
      break;
  }
  return HeaderKind::kOther;
}

bool parse_content_length(std::string_view v, uint64_t* out) noexcept {
  if (v.empty() || v.size() > 18) return false;  // 18 digits cannot overflow uint64
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = n;
  return true;
}

}  // namespace

std::string_view error_reason(Error e) noexcept {
  switch (e) {
    case Error::kNone:
      return "ok";
    case Error::kHeadTooLarge:
      return "request header fields too large";
    case Error::kTooManyHeaders:
      return "too many header fields";
    case Error::kBadRequestLine:
      return "malformed request line";
    case Error::kBadMethod:
      return "invalid method";
    case Error::kBadTarget:
      return "invalid request target";
    case Error::kBadVersion:
      return "http version not supported";
    case Error::kBareCr:
      return "bare CR in header";
    case Error::kBareLf:
      return "bare LF line ending";
    case Error::kNul:
      return "NUL byte in header";
    case Error::kObsFold:
      return "obsolete line folding";
    case Error::kSpaceBeforeColon:
      return "whitespace before colon in header";
    case Error::kBadHeaderName:
      return "invalid header name";
    case Error::kBadHeaderValue:
      return "invalid header value";
    case Error::kBadContentLength:
      return "invalid content-length";
    case Error::kDuplicateContentLength:
      return "duplicate content-length";
    case Error::kContentLengthAndTe:
      return "both content-length and transfer-encoding";
    case Error::kBadTransferEncoding:
      return "unsupported transfer-encoding";
    case Error::kMissingHost:
      return "missing host header";
    case Error::kDuplicateHost:
      return "duplicate host header";
    case Error::kBadStatusLine:
      return "malformed status line";
    case Error::kTooManyConnectionTokens:
      return "too many connection tokens";
    case Error::kBadHost:
      return "invalid host header";
  }
  return "bad request";
}

bool is_smuggling_shape(Error e) noexcept {
  switch (e) {
    case Error::kBareCr:
    case Error::kBareLf:
    case Error::kNul:
    case Error::kObsFold:
    case Error::kSpaceBeforeColon:
    case Error::kBadContentLength:
    case Error::kDuplicateContentLength:
    case Error::kContentLengthAndTe:
    case Error::kBadTransferEncoding:
    case Error::kDuplicateHost:
      return true;
    default:
      return false;
  }
}

const Header* MessageHead::find(HeaderKind k) const noexcept {
  for (size_t i = 0; i < header_count; ++i) {
    if (headers[i].kind == k) return &headers[i];
  }
  return nullptr;
}

size_t HeadParser::scan(std::string_view buf) {
  const char* base = buf.data();
  scan_base_ = base;
  size_t pos = scanned_;
  while (pos < buf.size()) {
    const void* hit = std::memchr(base + pos, '\n', buf.size() - pos);
    if (hit == nullptr) {
      pos = buf.size();
      break;
    }
    const size_t lf = static_cast<size_t>(static_cast<const char*>(hit) - base);
    if (lf == 0 || base[lf - 1] != '\r') {
      error_ = Error::kBareLf;
      return 0;
    }
    if (lf - 1 == line_start_) {
      if (line_start_ == skip_) {
        // An empty line before any request line: tolerated, bounded by the head limit.
        skip_ = lf + 1;
      } else {
        scanned_ = lf + 1;
        return lf + 1;
      }
    } else {
      if (lf_count_ < kMaxLines) lf_[lf_count_] = static_cast<uint32_t>(lf);
      ++lf_count_;
    }
    line_start_ = lf + 1;
    pos = lf + 1;
  }
  scanned_ = pos;
  if (buf.size() > limits_.max_head_bytes) error_ = Error::kHeadTooLarge;
  return 0;
}

ParseResult HeadParser::parse_request(std::string_view buf, RequestHead* out) {
  const size_t end = scan(buf);
  if (end == 0) return error_ == Error::kNone ? ParseResult::kNeedMore : ParseResult::kError;
  if (end > limits_.max_head_bytes) return fail(Error::kHeadTooLarge);
  std::string_view head = buf.substr(skip_, end - skip_);
  const size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);

  // method SP request-target SP HTTP-version, single spaces, nothing else.
  size_t i = 0;
  while (i < line.size() && is(kTchar, line[i])) ++i;
  if (i == 0 || i >= line.size() || line[i] != ' ') {
    return fail(i == 0 || i >= line.size() ? Error::kBadRequestLine : Error::kBadMethod);
  }
  out->method = line.substr(0, i);
  const size_t t0 = ++i;
  while (i < line.size() && is(kTargetChar, line[i])) ++i;
  if (i == t0 || i >= line.size() || line[i] != ' ') {
    return fail(i == t0 || i >= line.size() ? Error::kBadRequestLine : Error::kBadTarget);
  }
  out->target = line.substr(t0, i - t0);
  std::string_view version = line.substr(i + 1);
  if (version == "HTTP/1.1") {
    out->version_minor = 1;
  } else if (version == "HTTP/1.0") {
    out->version_minor = 0;
  } else if (version.size() == 8 && version.starts_with("HTTP/") && version[5] >= '0' &&
             version[5] <= '9' && version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
    return fail(Error::kBadVersion);
  } else {
    return fail(Error::kBadRequestLine);
  }
  if (out->method == "CONNECT") return fail(Error::kBadMethod);  // tunnels are not proxied

  out->scheme = {};
  out->authority = {};
  bool asterisk = false;
  std::string_view target = out->target;
  if (target.front() != '/') {
    // absolute-form (a client using us as its HTTP proxy): scheme://authority[path]
    const size_t sep = target.find("://");
    if (sep == std::string_view::npos) {
      if (target == "*" && out->method == "OPTIONS") {
        asterisk = true;
      } else {
        return fail(Error::kBadTarget);
      }
    } else {
      std::string_view scheme = target.substr(0, sep);
      if (!iequals(scheme, "http") && !iequals(scheme, "https")) return fail(Error::kBadTarget);
      out->scheme = scheme;
      std::string_view rest = target.substr(sep + 3);
      const size_t a_end = rest.find_first_of("/?");
      out->authority = rest.substr(0, a_end);
      if (out->authority.empty() || out->authority.find('@') != std::string_view::npos ||
          !base::valid_authority(out->authority)) {
        return fail(Error::kBadTarget);
      }
      out->target = a_end == std::string_view::npos ? std::string_view("/") : rest.substr(a_end);
    }
  }
  if (out->target.front() == '?') return fail(Error::kBadTarget);
  out->path = asterisk ? out->target : out->target.substr(0, out->target.find('?'));

  out->head_bytes = end;
  out->expect_continue = false;
  out->is_head = out->method == "HEAD";
  if (!parse_fields(head.substr(line_end + 2, head.size() - line_end - 4), out, out)) {
    return ParseResult::kError;
  }
  if (!finish_framing(out, true)) return ParseResult::kError;
  return ParseResult::kDone;
}

ParseResult HeadParser::parse_response(std::string_view buf, bool request_method_head,
                                       ResponseHead* out) {
  skip_ = 0;  // responses never start with empty lines
  const size_t end = scan(buf);
  if (end == 0) return error_ == Error::kNone ? ParseResult::kNeedMore : ParseResult::kError;
  if (end > limits_.max_head_bytes) return fail(Error::kHeadTooLarge);
  std::string_view head = buf.substr(0, end);
  const size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  // HTTP-version SP 3DIGIT SP [reason]
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    return fail(Error::kBadStatusLine);
  }
  out->version_minor = line[7] - '0';
  int status = 0;
  for (int k = 9; k < 12; ++k) {
    if (line[k] < '0' || line[k] > '9') return fail(Error::kBadStatusLine);
    status = status * 10 + (line[k] - '0');
  }
  if (status < 100) return fail(Error::kBadStatusLine);
  out->status = status;
  out->reason = line.size() > 13 ? line.substr(13) : std::string_view();
  for (char c : out->reason) {
    if (!is(kVchar, c)) return fail(Error::kBadStatusLine);
  }
  out->head_bytes = end;
  if (!parse_fields(head.substr(line_end + 2, head.size() - line_end - 4), out, nullptr)) {
    return ParseResult::kError;
  }
  if (!finish_framing(out, false)) return ParseResult::kError;
  if (status < 200 || status == 204 || status == 304 || request_method_head) {
    out->body = BodyKind::kNone;
  }
  return ParseResult::kDone;
}

bool HeadParser::parse_fields(std::string_view lines, MessageHead* out, RequestHead* req) {
  out->header_count = 0;
  out->connection_token_count = 0;
  out->content_length = 0;
  out->has_te_chunked = false;
  bool have_cl = false, have_te = false, have_host = false;
  bool conn_close = false, conn_keep_alive = false;
  const bool is_request = req != nullptr;

  // The LFs scan() recorded: lf_[0] ends the start line, lf_[k] field line k (offsets into the
  // buffer scan() saw, which lines is part of).
  const bool recorded = lf_count_ <= kMaxLines && scan_base_ != nullptr;
  const size_t lines_at = static_cast<size_t>(lines.data() - scan_base_);
  size_t k = 1;
  size_t pos = 0;
  while (pos < lines.size()) {
    // scan() saw a CR before every LF, so the LF alone ends a line (a bare CR inside one is an
    // error the name and value checks report).
    size_t eol;
    if (recorded && k < lf_count_) {
      eol = lf_[k++] - lines_at - 1;
    } else {
      const void* lf = std::memchr(lines.data() + pos, '\n', lines.size() - pos);
      eol = lf == nullptr ? lines.size()
                          : static_cast<size_t>(static_cast<const char*>(lf) - lines.data()) - 1;
    }
    std::string_view line(lines.data() + pos, eol - pos);
    pos = eol + 2;
    if (is_ows(line.front())) {
      error_ = Error::kObsFold;
      return false;
    }
    size_t i = span_of(kTchar, line);
    if (i == line.size() || line[i] != ':') {
      if (i < line.size() && is_ows(line[i]) && i > 0) {
        size_t j = i;
        while (j < line.size() && is_ows(line[j])) ++j;
        error_ =
            j < line.size() && line[j] == ':' ? Error::kSpaceBeforeColon : Error::kBadHeaderName;
      } else if (i < line.size() && line[i] == '\0') {
        error_ = Error::kNul;
      } else if (i < line.size() && line[i] == '\r') {
        error_ = Error::kBareCr;
      } else {
        error_ = Error::kBadHeaderName;
      }
      return false;
    }
    if (i == 0) {
      error_ = Error::kBadHeaderName;
      return false;
    }
    std::string_view name = line.substr(0, i);
    std::string_view value = line.substr(i + 1);
    if (!all_vchar(value)) [[unlikely]] {
      for (char c : value) {
        if (!is(kVchar, c)) {
          error_ = c == '\0' ? Error::kNul : c == '\r' ? Error::kBareCr : Error::kBadHeaderValue;
          return false;
        }
      }
    }
    value = trim_ows(value);
    if (out->header_count >= limits_.max_headers || out->header_count >= kMaxHeaders) {
      error_ = Error::kTooManyHeaders;
      return false;
    }
    Header& h = out->headers[out->header_count++];
    h.name = name;
    h.value = value;
    h.kind = classify(name, &h.hop);
    switch (h.kind) {
      case HeaderKind::kContentLength:
        if (have_cl) {
          error_ = Error::kDuplicateContentLength;
          return false;
        }
        have_cl = true;
        if (!parse_content_length(value, &out->content_length)) {
          error_ = Error::kBadContentLength;
          return false;
        }
        break;
      case HeaderKind::kTransferEncoding:
        if (have_te || !iequals(value, "chunked")) {
          error_ = Error::kBadTransferEncoding;
          return false;
        }
        have_te = true;
        out->has_te_chunked = true;
        break;
      case HeaderKind::kConnection: {
        std::string_view rest = value;
        while (!rest.empty()) {
          const size_t comma = rest.find(',');
          std::string_view tok = trim_ows(rest.substr(0, comma));
          rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
          if (tok.empty()) continue;
          if (iequals(tok, "close")) {
            conn_close = true;
          } else if (iequals(tok, "keep-alive")) {
            conn_keep_alive = true;
          } else if (out->connection_token_count < kMaxConnectionTokens) {
            out->connection_tokens[out->connection_token_count++] = tok;
          } else {
            error_ = Error::kTooManyConnectionTokens;
            return false;
          }
        }
        break;
      }
      case HeaderKind::kHost:
        if (is_request) {
          if (have_host) {
            error_ = Error::kDuplicateHost;
            return false;
          }
          have_host = true;
          if (base::span_of(kHostChar, value) != value.size()) {
            error_ = Error::kBadHeaderValue;
            return false;
          }
          if (!base::authority_shape(value)) {
            error_ = Error::kBadHost;
            return false;
          }
          if (req->authority.empty()) req->authority = value;
        }
        break;
      case HeaderKind::kExpect:
        if (is_request && iequals(value, "100-continue")) req->expect_continue = true;
        break;
      default:
        break;
    }
  }
  if (out->connection_token_count > 0) {
    // Headers named by Connection are hop-by-hop too (RFC 9110 7.6.1).
    for (size_t k = 0; k < out->header_count; ++k) {
      Header& h = out->headers[k];
      for (size_t t = 0; t < out->connection_token_count && !h.hop; ++t) {
        if (iequals(h.name, out->connection_tokens[t])) h.hop = true;
      }
    }
  }
  if (is_request && out->version_minor == 1 && !have_host) {
    error_ = Error::kMissingHost;
    return false;
  }
  if (have_te && have_cl) {
    error_ = Error::kContentLengthAndTe;
    return false;
  }
  if (have_te && out->version_minor == 0) {
    error_ = Error::kBadTransferEncoding;
    return false;
  }
  out->keep_alive = out->version_minor == 1 ? !conn_close : (conn_keep_alive && !conn_close);
  return true;
}

bool HeadParser::finish_framing(MessageHead* out, bool is_request) {
  if (out->has_te_chunked) {
    out->body = BodyKind::kChunked;
  } else if (out->find(HeaderKind::kContentLength) != nullptr) {
    out->body = out->content_length > 0 ? BodyKind::kContentLength : BodyKind::kNone;
  } else if (is_request) {
    out->body = BodyKind::kNone;
  } else {
    out->body = BodyKind::kUntilClose;
    out->keep_alive = false;
  }
  return true;
}

ChunkedDecoder::Result ChunkedDecoder::decode(char* p, size_t n) {
  size_t i = 0, w = 0;
  auto error = [&] { return Result{Status::kError, i, w}; };
  while (i < n) {
    const char c = p[i];
    switch (state_) {
      case State::kSize:
        if (is(kHex, c)) {
          if (size_digits_ >= 15) return error();  // > 2^60 bytes: refuse rather than overflow
          const int v = c <= '9' ? c - '0' : (kAsciiLower[static_cast<uint8_t>(c)] - 'a' + 10);
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
          ++size_digits_;
        } else if (size_digits_ > 0 && c == ';') {
          state_ = State::kExt;
          ext_len_ = 0;
        } else if (size_digits_ > 0 && c == '\r') {
          state_ = State::kSizeLf;
        } else {
          return error();
        }
        ++i;
        break;
      case State::kExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (!is(kVchar, c) || ++ext_len_ > kMaxExtensionBytes) {
          return error();
        }
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') return error();
        ++i;
        size_digits_ = 0;
        state_ = remaining_ == 0 ? State::kTrailerLineStart : State::kData;
        break;
      case State::kData: {
        const size_t k = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        if (w != i) std::memmove(p + w, p + i, k);
        w += k;
        i += k;
        remaining_ -= k;
        total_ += k;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c != '\r') return error();
        ++i;
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return error();
        ++i;
        state_ = State::kSize;
        break;
      case State::kTrailerLineStart:
        if (c == '\r') {
          state_ = State::kFinalLf;
          ++i;
          break;
        }
        if (!is(kTchar, c)) return error();  // no obs-fold, no leading whitespace
        if (trailer_ == nullptr)
          trailer_ = std::make_unique_for_overwrite<char[]>(kMaxTrailerBytes);
        line_start_ = trailer_len_;
        state_ = State::kTrailerLine;
        [[fallthrough]];
      case State::kTrailerLine:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (!is(kVchar, c) || trailer_len_ + 2 >= kMaxTrailerBytes) {
          return error();
        } else {
          trailer_[trailer_len_++] = c;
        }
        ++i;
        break;
      case State::kTrailerLf: {
        if (c != '\n') return error();
        ++i;
        // name ":" value with a token name and no whitespace before the colon
        std::string_view line(trailer_.get() + line_start_, trailer_len_ - line_start_);
        size_t k = 0;
        while (k < line.size() && is(kTchar, line[k])) ++k;
        if (k == 0 || k == line.size() || line[k] != ':') return error();
        trailer_[trailer_len_++] = '\r';
        trailer_[trailer_len_++] = '\n';
        state_ = State::kTrailerLineStart;
        break;
      }
      case State::kFinalLf:
        if (c != '\n') return error();
        ++i;
        state_ = State::kDone;
        return {Status::kDone, i, w};
      case State::kDone:
        return {Status::kDone, i, w};
    }
  }
  return {Status::kMore, i, w};
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace outrigger::http
