// libFuzzer target for the admin server's request heads (proxy/admin/request.h): the admin port
// (metrics, /ready, /config, /drain) is reachable by whatever shares the task's network, and by
// health checkers when it listens beyond loopback. Built and run like h1_fuzz.cc
// (tests/CMakeLists.txt, run.sh); by hand:
//   tests/fuzz/run.sh build/release/tests/admin_fuzz 600 tests/fuzz/corpus/admin
//
// The input is what a client sent; the harness does what the server does with it (skip leading
// empty lines, find the end of the head, drop its final empty line, parse). Besides memory
// errors and undefined behaviour, the properties checked:
//  * find_head_end() finds the first empty line (CRLF or bare LF), or says there is none;
//  * an error is 400 or 505, and 505 only for a well-formed HTTP version other than 1.x;
//  * a parsed request has a token method, a path of visible ASCII that is "*" or starts with
//    '/', holds no '?' or '#', a query of visible ASCII without '#', all views inside the head
//    (but the "/" of an absolute-form target without a path);
//  * keep-alive never follows a body announcement (Transfer-Encoding), and an HTTP/1.0 request
//    keeps the connection only when it asked for it;
//  * parsing is deterministic.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/admin/request.h"
#include "proxy/base/text.h"
#include "tests/fuzz/fuzz.h"

namespace {

using outrigger::admin::find_head_end;
using outrigger::admin::parse_head;

bool visible(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool contains_nocase(std::string_view hay, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (outrigger::base::iequals(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

// A field line whose name is `name` (any case) in the head.
bool has_field(std::string_view head, std::string_view name) {
  while (!head.empty()) {
    const size_t lf = head.find('\n');
    const std::string_view line = head.substr(0, lf);
    head.remove_prefix(lf == std::string_view::npos ? head.size() : lf + 1);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && outrigger::base::iequals(line.substr(0, colon), name)) {
      return true;
    }
  }
  return false;
}

bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void run(std::string_view data) {
  size_t skip = 0;
  while (skip < data.size() && (data[skip] == '\r' || data[skip] == '\n')) ++skip;
  data.remove_prefix(skip);
  const size_t end = find_head_end(data);
  if (end == std::string_view::npos) {
    check(data.find("\n\n") == std::string_view::npos);
    check(data.find("\n\r\n") == std::string_view::npos);
    return;
  }
  check(end >= 2 && end <= data.size() && data[end - 1] == '\n');
  check(data[end - 2] == '\n' || (end >= 3 && data[end - 2] == '\r' && data[end - 3] == '\n'));
  check(find_head_end(data.substr(0, end - 1)) == std::string_view::npos);  // the first one

  std::string_view head = data.substr(0, end);
  head.remove_suffix(head.ends_with("\n\r\n") ? 2 : 1);
  const auto req = parse_head(head);
  const auto again = parse_head(head);
  check(req.has_value() == again.has_value());
  if (!req) {
    check(req.error() == 400 || req.error() == 505);
    check(again.error() == req.error());
    if (req.error() == 505) {
      const std::string_view line = head.substr(0, head.find('\n'));
      const size_t sp = line.rfind(' ');
      std::string_view version = line.substr(sp + 1);
      if (version.ends_with('\r')) version.remove_suffix(1);
      check(version.size() == 8 && version.starts_with("HTTP/") && version[5] != '1');
    }
    return;
  }
  check(req->method == again->method && req->path == again->path && req->query == again->query &&
        req->keep_alive == again->keep_alive && req->http10 == again->http10);
  check(!req->method.empty());
  for (char c : req->method) check(is_tchar(c));
  check(!req->path.empty() && visible(req->path));
  check(req->path == "*" || req->path[0] == '/');
  check(req->path.find('?') == std::string_view::npos);
  check(req->path.find('#') == std::string_view::npos);
  check(visible(req->query) && req->query.find('#') == std::string_view::npos);
  // (An absolute-form target without a path, "http://host", gets the path "/" of the parser's own.)
  check(inside(req->method, head) && inside(req->query, head));
  check(inside(req->path, head) || req->path == "/");
  if (req->keep_alive) {
    check(!has_field(head, "transfer-encoding"));
    if (req->http10) check(contains_nocase(head, "keep-alive"));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
