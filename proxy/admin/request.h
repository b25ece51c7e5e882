// The admin server's request heads (RFC 9112), parsed strictly and without allocating: the
// admin port answers a few GETs, so it reads no bodies and needs no more than this. Fuzzed by
// tests/fuzz/admin_fuzz.cc.
#pragma once

#include <cstddef>
#include <expected>
#include <string_view>

namespace outrigger::admin {

struct Request {  // views into the parsed head
  std::string_view method;
  std::string_view path;
  std::string_view query;
  bool http10 = false;
  bool keep_alive = true;
};

// `head` is the request line and header lines, without the empty line that ends them (a line
// ends with CRLF or a bare LF). The error is the status to answer with (400 or 505); the
// connection is closed after it.
std::expected<Request, int> parse_head(std::string_view head);

// A field-value: visible ASCII, obs-text, SP and HTAB; never CR, LF, NUL or other controls.
bool is_field_value(std::string_view s);

// Where the head ends (index just past the empty line) in `buf`, or npos while incomplete.
size_t find_head_end(std::string_view buf);

}  // namespace outrigger::admin
