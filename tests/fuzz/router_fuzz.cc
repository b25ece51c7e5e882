// libFuzzer target for routing (proxy/router): host patterns as the config loader normalises them
// (config/syntax.cc parse_host_pattern), matched against the Host / :authority a client sends.
// Built and run like h1_fuzz.cc (tests/CMakeLists.txt, run.sh).
//
// Input: lines. Each line "R <path_prefix> <pattern> <pattern>..." adds a route (patterns the
// loader refuses are dropped, as a config with them would not load); every other line is
// "<authority> <path>", a request. Each request is matched by the router and by the reference
// below, written from config/README.md ("A host pattern is..."), and they must agree:
//  * the host is the authority without its port (":port" after a name or IPv4 address, or after
//    the "]" of a bracketed IPv6 address), without one trailing dot, in any case;
//  * a bracketed IPv6 address matches the pattern of the same address in any spelling; an
//    unbracketed one matches no IPv6 pattern; an authority that opens a bracket but holds no
//    IPv6 address matches only "*";
//  * "*" matches any host, "*.suffix" a host that ends in ".suffix" with more before it, anything
//    else that exact host;
//  * the first route whose path prefix starts the path and whose patterns (if any) match wins.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/syntax.h"
#include "proxy/router/router.h"

namespace {
using namespace outrigger;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  return out;
}

// The host a request names, normalised as the patterns are.
std::string reference_host(std::string_view authority) {
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return "";
    const std::string inner(authority.substr(1, close - 1));
    if (inner.find('\0') != std::string::npos) return "";  // (c_str() would end at it)
    in6_addr a{};
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, inner.c_str(), &a) != 1 ||
        inet_ntop(AF_INET6, &a, text, sizeof text) == nullptr) {
      return "";
    }
    return "[" + std::string(text) + "]";
  }
  std::string_view host = authority;
  const size_t first = host.find(':');
  if (first != std::string_view::npos && first == host.rfind(':')) host = host.substr(0, first);
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return lower(host);
}

bool reference_pattern(const std::string& pattern, const std::string& host) {
  if (pattern == "*") return true;
  if (pattern.size() > 1 && pattern[0] == '*') {
    const std::string suffix = pattern.substr(1);
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return host == pattern;
}

struct RefRoute {
  std::string prefix;
  std::vector<std::string> patterns;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size > 4096) return 0;
  const std::string_view in(reinterpret_cast<const char*>(bytes), size);
  std::vector<RefRoute> refs;
  std::vector<std::pair<std::string_view, std::string_view>> requests;
  for (std::string_view line : split(in, '\n')) {
    std::vector<std::string_view> w = split(line, ' ');
    if (w.size() >= 2 && w[0] == "R" && refs.size() < 16) {
      RefRoute r;
      r.prefix = std::string(w[1]);
      for (size_t i = 2; i < w.size(); ++i) {
        std::string normalized, reason;
        if (config::syntax::parse_host_pattern(w[i], &normalized, &reason)) {
          r.patterns.push_back(normalized);
        }
      }
      refs.push_back(std::move(r));
    } else if (w.size() == 2 && requests.size() < 32) {
      requests.emplace_back(w[0], w[1]);
    }
  }
  std::vector<config::Route> routes(refs.size());
  router::RouteTable table;
  for (size_t i = 0; i < refs.size(); ++i) {
    router::CompiledRoute c;
    c.route = &routes[i];
    c.index = static_cast<uint32_t>(i);
    for (const std::string& p : refs[i].patterns) c.hosts.push_back(router::compile_host_pattern(p));
    c.path_prefix = refs[i].prefix;
    table.add(std::move(c));
  }
  for (const auto& [authority, path] : requests) {
    const std::string host = reference_host(authority);
    const RefRoute* want = nullptr;
    for (const RefRoute& r : refs) {
      if (!path.starts_with(r.prefix)) continue;
      bool hit = r.patterns.empty();
      for (const std::string& p : r.patterns) hit = hit || reference_pattern(p, host);
      if (hit) {
        want = &r;
        break;
      }
    }
    const router::CompiledRoute* got = table.match(authority, path);
    const size_t want_index = want ? static_cast<size_t>(want - refs.data()) : SIZE_MAX;
    const size_t got_index = got ? got->index : SIZE_MAX;
    if (want_index != got_index) std::abort();
  }
  return 0;
}
