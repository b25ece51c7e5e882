// IP address literals as text. The config loader (config/syntax.cc) normalises host patterns with
// these and routing (proxy/router) compares request hosts with them, so the two always agree.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <string_view>

namespace outrigger::base {

using IpText = std::array<char, INET6_ADDRSTRLEN>;

namespace ip_detail {
// text as a C string in out; false when it does not fit or holds a NUL (inet_pton would stop
// there: "::1\0junk" is not ::1).
inline bool c_string(std::string_view text, IpText& out) noexcept {
  if (text.size() >= out.size() || text.find('\0') != std::string_view::npos) return false;
  std::memcpy(out.data(), text.data(), text.size());
  out[text.size()] = '\0';
  return true;
}
}  // namespace ip_detail

// An IPv6 address (no brackets) in its canonical form (RFC 5952, as inet_ntop writes it), written
// into out; empty when text is not an IPv6 address.
inline std::string_view canonical_ipv6(std::string_view text, IpText& out) noexcept {
  in6_addr a{};
  if (!ip_detail::c_string(text, out) || inet_pton(AF_INET6, out.data(), &a) != 1 ||
      inet_ntop(AF_INET6, &a, out.data(), out.size()) == nullptr) {
    return {};
  }
  return {out.data(), std::strlen(out.data())};
}

// A dotted-quad IPv4 address (inet_pton's strict form).
inline bool is_ipv4(std::string_view text) noexcept {
  IpText s;
  in_addr a{};
  return ip_detail::c_string(text, s) && inet_pton(AF_INET, s.data(), &a) == 1;
}

}  // namespace outrigger::base
