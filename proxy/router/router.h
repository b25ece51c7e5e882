// Routing: picks the first route of a listener whose host pattern and path prefix match.
//
// Thread affinity: immutable and shared (part of a Snapshot).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"

namespace outrigger::router {

struct HostPattern {
  enum class Kind : uint8_t { kAny, kExact, kSuffix } kind = Kind::kAny;
  std::string text;  // lower-case; for kSuffix the part after '*', e.g. ".example.com"
};

struct CompiledRoute {
  const config::Route* route = nullptr;
  uint32_t index = 0;          // position in the listener's route list
  uint32_t cluster = 0;        // index into Snapshot::clusters
  uint32_t stats_id = 0;       // stats::RouteStats id
  std::vector<HostPattern> hosts;  // empty = any
  std::string path_prefix;
};

class RouteTable {
 public:
  void add(CompiledRoute r) { routes_.push_back(std::move(r)); }
  // authority may carry a port ("host:8080", "[::1]:8080"); matching ignores it and case.
  const CompiledRoute* match(std::string_view authority, std::string_view path) const noexcept;
  const std::vector<CompiledRoute>& routes() const noexcept { return routes_; }

 private:
  std::vector<CompiledRoute> routes_;
};

// A host pattern as the config loader normalised it (lower case; an IPv6 address bracketed and
// canonical, "[2001:db8::7]").
HostPattern compile_host_pattern(std::string_view pattern);
// For an authority that starts with "[": its IPv6 literal ("[2001:DB8:0::7]:443"), bracketed
// and canonical ("[2001:db8::7]"), written into `out`; empty when there is none (no "]", or not
// an IPv6 address between the brackets).
using Ipv6Text = std::array<char, 48>;  // INET6_ADDRSTRLEN (46) + 2 brackets
std::string_view ipv6_host(std::string_view authority, Ipv6Text& out) noexcept;
// "Host:port" -> "host" (brackets of an IPv6 literal removed), not lower-cased.
std::string_view strip_port(std::string_view authority) noexcept;

}  // namespace outrigger::router
