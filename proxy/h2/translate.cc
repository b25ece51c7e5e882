#include "proxy/h2/translate.h"

#include <charconv>

namespace outrigger::h2 {
namespace {

// Does a TE value list the "trailers" token (with or without parameters)?
bool te_has_trailers(std::string_view v) noexcept {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view item = http::trim_ows(v.substr(0, comma));
    item = http::trim_ows(item.substr(0, item.find(';')));
    if (http::iequals(item, "trailers")) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

// The fields of an h1 head that HTTP/2 may carry, to add(name, value).
template <class Add>
void each_h2_field(const http::MessageHead& h, uint32_t skip_kinds, Add&& add) {
  for (size_t i = 0; i < h.header_count; ++i) {
    const http::Header& f = h.headers[i];
    if (f.kind == http::HeaderKind::kTe) {
      if ((skip_kinds & kind_bit(f.kind)) == 0 && te_has_trailers(f.value)) add("te", "trailers");
      continue;
    }
    if (f.hop || f.kind == http::HeaderKind::kHost || (skip_kinds & kind_bit(f.kind)) != 0) {
      continue;
    }
    // Names the h1 parser does not mark but HTTP/2 forbids (RFC 9113 8.2.2).
    if (is_connection_specific(f.name)) continue;
    add(f.name, f.value);
  }
}

void append_fields(const http::MessageHead& h, FieldList* out, uint32_t skip_kinds) {
  each_h2_field(h, skip_kinds, [&](std::string_view n, std::string_view v) { out->add(n, v); });
}

// Kinds of lower-case h2 field names the h1 forwarding code acts on.
http::HeaderKind classify(std::string_view n) noexcept {
  using K = http::HeaderKind;
  if (n == "host") return K::kHost;
  if (n == "content-length") return K::kContentLength;
  if (n == "te") return K::kTe;
  if (n == "expect") return K::kExpect;
  if (n == "trailer") return K::kTrailer;
  if (n == "x-forwarded-for") return K::kXForwardedFor;
  if (n == "x-forwarded-proto") return K::kXForwardedProto;
  if (n == "x-request-id") return K::kXRequestId;
  if (n == "proxy-authorization") return K::kProxyAuthorization;
  return K::kOther;
}

void append_line(std::string* out, std::string_view name, std::string_view value) {
  http::append_field(*out, name, value);
}

// Appends a response's fields for HTTP/1.1 (pseudo-headers and connection-specific ones dropped).
void append_h1_fields(std::span<const Field> fields, std::string* out) {
  for (const Field& f : fields) {
    if (f.name.empty() || f.name[0] == ':' || is_connection_specific(f.name)) continue;
    append_line(out, f.name, f.value);
  }
}

}  // namespace

void h1_request_to_h2(const http::RequestHead& rq, std::string_view scheme, FieldList* out,
                      uint32_t skip_kinds) {
  out->add(":method", rq.method);
  if (rq.method == "CONNECT") {
    out->add(":authority", rq.authority.empty() ? rq.target : rq.authority);
  } else {
    out->add(":scheme", rq.scheme.empty() ? scheme : rq.scheme);
    if (!rq.authority.empty()) out->add(":authority", rq.authority);
    out->add(":path", rq.target.empty() ? std::string_view("/") : rq.target);
  }
  append_fields(rq, out, skip_kinds);
}

bool own_h1_request_to_h2(std::string* head_text, std::string_view scheme,
                          std::vector<Field>* out) {
  char* const base = head_text->data();
  const std::string_view head(*head_text);
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return false;
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 <= sp1 + 1 || sp1 == 0) return false;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  // One pass over the lines: four slots for the pseudo-headers first (filled once host is
  // known; an unused one is removed at the end), regular fields after them in order.
  out->resize(4);
  std::string_view authority;
  std::string_view rest = head.substr(eol + 2);
  bool ended = false;
  for (size_t lines = 0; lines <= http::kMaxHeaders; ++lines) {
    const size_t e = rest.find("\r\n");
    if (e == std::string_view::npos) return false;
    if (e == 0) {
      ended = true;
      break;
    }
    const std::string_view l = rest.substr(0, e);
    rest.remove_prefix(e + 2);
    const size_t colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    char* name_at = base + (l.data() - head.data());
    lower_copy(name_at, colon, name_at);
    const std::string_view n(name_at, colon);
    const std::string_view v = http::trim_ows(l.substr(colon + 1));
    if (n == "host") {
      if (authority.empty()) authority = v;
    } else if (n == "te") {
      if (te_has_trailers(v)) out->push_back({"te", "trailers"});
    } else if (!is_connection_specific(n)) {
      out->push_back({n, v});
    }
  }
  if (!ended) return false;
  Field* p = out->data();
  p[0] = {":method", method};
  if (method == "CONNECT") {
    p[1] = {":authority", authority.empty() ? target : authority};
    out->erase(out->begin() + 2, out->begin() + 4);
  } else {
    p[1] = {":scheme", scheme};
    p[2] = {":authority", authority};
    p[3] = {":path", target};
    if (authority.empty()) out->erase(out->begin() + 2);
  }
  return true;
}

void h1_response_to_h2(const http::ResponseHead& rs, std::vector<Field>* out, uint32_t skip_kinds) {
  out->clear();
  each_h2_field(rs, skip_kinds | kind_bit(http::HeaderKind::kTe),
                [&](std::string_view n, std::string_view v) {
                  out->push_back({n, v});
                });
}

H1Framing h1_framing(bool end_stream, int64_t content_length) noexcept {
  if (end_stream) return H1Framing::kNone;
  return content_length >= 0 ? H1Framing::kContentLength : H1Framing::kChunked;
}

void append_h1_response_head(int status, std::span<const Field> fields, H1Framing framing,
                             std::string* out) {
  char code[4];
  std::to_chars(code, code + 3, status);
  out->append("HTTP/1.1 ");
  out->append(code, 3);
  out->push_back(' ');
  out->append(http::reason_phrase(status));
  out->append("\r\n");
  append_h1_fields(fields, out);
  if (framing == H1Framing::kChunked) out->append("transfer-encoding: chunked\r\n");
}

bool to_h1_request_head(const Request& rq, http::RequestHead* out, std::string* cookie_scratch) {
  out->version_minor = 1;
  out->keep_alive = true;
  out->head_bytes = 0;
  out->connection_token_count = 0;
  out->method = rq.method;
  out->target = rq.method == "CONNECT" ? rq.authority : rq.path;
  out->path = out->target.substr(0, out->target.find('?'));
  out->authority = rq.authority;
  out->scheme = rq.scheme;
  out->is_head = rq.method == "HEAD";
  out->expect_continue = false;
  cookie_scratch->clear();
  size_t n = 0, cookies = 0;
  for (const Field& f : rq.headers) {
    // Crumbs joined with "; " (RFC 9113 8.2.3); an empty one adds nothing (joined, it would
    // leave a dangling "; " that an HTTP/1.1 reader trims as whitespace).
    if (f.name == "cookie" && !f.value.empty()) {
      if (cookies++ > 0) cookie_scratch->append("; ");
      cookie_scratch->append(f.value);
    }
  }
  bool cookie_done = false;
  for (const Field& f : rq.headers) {
    http::Header h;
    h.name = f.name;
    h.value = f.value;
    h.kind = classify(f.name);
    h.hop = h.kind == http::HeaderKind::kTe || h.kind == http::HeaderKind::kTrailer ||
            h.kind == http::HeaderKind::kProxyAuthorization;
    if (f.name == "cookie") {
      if (cookie_done) continue;
      cookie_done = true;
      h.value = *cookie_scratch;
    }
    if (h.kind == http::HeaderKind::kExpect && http::iequals(f.value, "100-continue")) {
      out->expect_continue = true;
    }
    if (n == http::kMaxHeaders) return false;
    out->headers[n++] = h;
  }
  out->header_count = n;
  switch (h1_framing(rq.end_stream, rq.content_length)) {
    case H1Framing::kNone:
      out->body = http::BodyKind::kNone;
      out->content_length = 0;
      out->has_te_chunked = false;
      break;
    case H1Framing::kContentLength:
      out->body = http::BodyKind::kContentLength;
      out->content_length = static_cast<uint64_t>(rq.content_length);
      out->has_te_chunked = false;
      break;
    case H1Framing::kChunked:
      out->body = http::BodyKind::kChunked;
      out->content_length = 0;
      out->has_te_chunked = true;
      break;
  }
  return true;
}

bool forbidden_in_trailers(std::string_view n) noexcept {
  static constexpr std::string_view kNames[] = {"age",
                                                "authorization",
                                                "cache-control",
                                                "connection",
                                                "content-encoding",
                                                "content-length",
                                                "content-range",
                                                "content-type",
                                                "cookie",
                                                "date",
                                                "expect",
                                                "expires",
                                                "host",
                                                "keep-alive",
                                                "location",
                                                "max-forwards",
                                                "pragma",
                                                "proxy-authenticate",
                                                "proxy-authorization",
                                                "proxy-connection",
                                                "retry-after",
                                                "set-cookie",
                                                "te",
                                                "trailer",
                                                "transfer-encoding",
                                                "upgrade",
                                                "vary",
                                                "warning",
                                                "www-authenticate"};
  for (std::string_view k : kNames) {
    if (http::iequals(k, n)) return true;
  }
  return false;
}

void h1_trailers_to_h2(std::string_view block, FieldList* out) {
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    const std::string_view name = line.substr(0, colon);
    if (forbidden_in_trailers(name)) continue;
    out->add(name, http::trim_ows(line.substr(colon + 1)));  // lower-cases the name
  }
}

void append_h1_last_chunk(std::span<const Field> trailers, std::string* out) {
  out->append("0\r\n");
  for (const Field& f : trailers) {
    if (f.name.empty() || f.name[0] == ':' || forbidden_in_trailers(f.name)) continue;
    append_line(out, f.name, f.value);
  }
  out->append("\r\n");
}

}  // namespace outrigger::h2
