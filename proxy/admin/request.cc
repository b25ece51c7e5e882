#include "proxy/admin/request.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "proxy/base/text.h"

namespace outrigger::admin {

using base::iequals;
using base::trim_ows;

namespace {

bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(c); });
}

// Next line of `rest` without its terminator; CRLF or a bare LF ends a line (RFC 9112 2.2).
std::string_view next_line(std::string_view& rest) {
  const size_t lf = rest.find('\n');
  std::string_view line = rest.substr(0, lf);
  rest.remove_prefix(lf == std::string_view::npos ? rest.size() : lf + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::expected<Request, int> parse_head(std::string_view head) {
  Request req;
  std::string_view rest = head;
  const std::string_view line = next_line(rest);

  // request-line = method SP request-target SP HTTP-version, single spaces only.
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return std::unexpected(400);
  }
  req.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(req.method) || target.empty()) return std::unexpected(400);

  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return std::unexpected(400);
  }
  if (version[5] != '1') return std::unexpected(505);
  const bool http10 = version[7] == '0';
  req.http10 = http10;
  req.keep_alive = !http10;

  // Visible ASCII only; a fragment never belongs in a request target.
  for (char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '#') return std::unexpected(400);
  }
  // absolute-form (as sent to a proxy): keep only the path and query.
  if (target.front() != '/' && target != "*") {
    const size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return std::unexpected(400);
    if (!iequals(target.substr(0, scheme_end), "http") &&
        !iequals(target.substr(0, scheme_end), "https")) {
      return std::unexpected(400);
    }
    const size_t path_start = target.find_first_of("/?", scheme_end + 3);
    target =
        path_start == std::string_view::npos ? std::string_view("/") : target.substr(path_start);
    if (target.front() == '?') return std::unexpected(400);
  }
  const size_t q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  int hosts = 0;
  bool has_length = false, has_te = false;
  uint64_t content_length = 0;
  bool conn_close = false, conn_keep_alive = false;
  while (!rest.empty()) {
    const std::string_view field = next_line(rest);
    if (field.empty()) return std::unexpected(400);  // the caller strips the final empty line
    if (field.front() == ' ' || field.front() == '\t') return std::unexpected(400);  // obs-fold
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) return std::unexpected(400);
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim_ows(field.substr(colon + 1));
    // No whitespace is allowed between the name and the colon (RFC 9112 5.1).
    if (!is_token(name) || !is_field_value(value)) return std::unexpected(400);

    if (iequals(name, "host")) {
      ++hosts;
    } else if (iequals(name, "content-length")) {
      uint64_t n = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || p != value.data() + value.size()) {
        return std::unexpected(400);
      }
      if (has_length && n != content_length) return std::unexpected(400);
      has_length = true;
      content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      has_te = true;
    } else if (iequals(name, "connection")) {
      std::string_view tokens = value;
      while (!tokens.empty()) {
        const size_t comma = tokens.find(',');
        const std::string_view t = trim_ows(tokens.substr(0, comma));
        if (iequals(t, "close")) conn_close = true;
        if (iequals(t, "keep-alive")) conn_keep_alive = true;
        tokens.remove_prefix(comma == std::string_view::npos ? tokens.size() : comma + 1);
      }
    }
  }
  // HTTP/1.1 requires exactly one Host (RFC 9112 3.2); both framings at once is a smuggling shape.
  if ((!http10 && hosts != 1) || hosts > 1) return std::unexpected(400);
  if (has_length && has_te) return std::unexpected(400);

  if (http10) req.keep_alive = conn_keep_alive;
  if (conn_close) req.keep_alive = false;
  // Bodies are not read: the connection cannot be reused once one was announced.
  if (has_te || content_length > 0) req.keep_alive = false;
  return req;
}

size_t find_head_end(std::string_view buf) {
  for (size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
    if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

}  // namespace outrigger::admin
