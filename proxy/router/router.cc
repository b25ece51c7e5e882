#include "proxy/router/router.h"

#include <cstring>

#include "proxy/base/ip.h"
#include "proxy/http/h1.h"

namespace outrigger::router {

std::string_view strip_port(std::string_view a) noexcept {
  if (!a.empty() && a.front() == '[') {
    const size_t close = a.find(']');
    return close == std::string_view::npos ? a : a.substr(1, close - 1);
  }
  const size_t colon = a.rfind(':');
  if (colon != std::string_view::npos && a.find(':') == colon) return a.substr(0, colon);
  return a;
}

HostPattern compile_host_pattern(std::string_view p) {
  HostPattern h;
  std::string lower(p);
  for (char& c : lower) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
  if (lower == "*") {
    h.kind = HostPattern::Kind::kAny;
  } else if (lower.starts_with("*")) {
    h.kind = HostPattern::Kind::kSuffix;
    h.text = lower.substr(1);
  } else {
    h.kind = HostPattern::Kind::kExact;
    h.text = std::move(lower);
  }
  return h;
}

namespace {
bool host_matches(const HostPattern& p, std::string_view host) noexcept {
  switch (p.kind) {
    case HostPattern::Kind::kAny:
      return true;
    case HostPattern::Kind::kExact:
      return http::iequals(host, p.text);
    case HostPattern::Kind::kSuffix:
      // "*.example.com" needs at least one character before the suffix.
      return host.size() > p.text.size() &&
             http::iequals(host.substr(host.size() - p.text.size()), p.text);
  }
  return false;
}
}  // namespace

std::string_view ipv6_host(std::string_view authority, Ipv6Text& out) noexcept {
  const size_t close = authority.find(']');
  if (close == std::string_view::npos) return {};
  base::IpText text;
  const std::string_view c = base::canonical_ipv6(authority.substr(1, close - 1), text);
  if (c.empty()) return {};
  out[0] = '[';
  std::memcpy(out.data() + 1, c.data(), c.size());
  out[c.size() + 1] = ']';
  return {out.data(), c.size() + 2};
}

const CompiledRoute* RouteTable::match(std::string_view authority, std::string_view path) const noexcept {
  std::string_view host = strip_port(authority);
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // FQDN form
  // An IPv6 literal is compared bracketed and in the canonical form the config's patterns are
  // normalised to (RFC 5952, as inet_ntop writes it): any spelling of the address matches its
  // pattern, and an unbracketed one ("::1", not a valid URI host) matches none. An authority
  // that opens a bracket but is no IPv6 literal ("[zz]", "[x.example.com") gets an empty host,
  // which only "*" matches: it must not reach a name pattern such as "*.example.com".
  Ipv6Text v6;
  if (!authority.empty() && authority.front() == '[') host = ipv6_host(authority, v6);
  for (const CompiledRoute& r : routes_) {
    if (!path.starts_with(r.path_prefix)) continue;
    if (r.hosts.empty()) return &r;
    for (const HostPattern& p : r.hosts) {
      if (host_matches(p, host)) return &r;
    }
  }
  return nullptr;
}

}  // namespace outrigger::router
