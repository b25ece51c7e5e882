// Small ASCII text helpers for HTTP field names and values, shared by every module that reads
// them (the HTTP/1.1 and HTTP/2 codecs, the admin server, the AWS client, the retry policy).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace outrigger::base {

// ASCII lower case of every byte value.
inline constexpr std::array<char, 256> kAsciiLower = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
  return t;
}();

// Case-insensitive ASCII comparison of any two strings (inline: the HTTP/2 code calls it per
// field on the hot path).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (kAsciiLower[static_cast<uint8_t>(a[i])] != kAsciiLower[static_cast<uint8_t>(b[i])]) {
      return false;
    }
  }
  return true;
}

// Without leading and trailing optional whitespace (SP and HTAB, RFC 9110 5.6.3).
[[gnu::always_inline]] inline std::string_view trim_ows(std::string_view v) noexcept {
  size_t b = 0, e = v.size();
  while (b < e && (v[b] == ' ' || v[b] == '\t')) ++b;
  while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t')) --e;
  return {v.data() + b, e - b};
}

namespace text_detail {
template <typename T>
[[gnu::always_inline]] inline T load(const char* p) noexcept {
  T x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
}  // namespace text_detail

// A field name, in any case, against a lower-case literal made of letters, digits and '-', a
// word at a time. OR-ing 0x20 into a byte lower-cases A-Z and keeps digits and '-'; only control
// bytes (CR becomes '-', 0x10-0x19 become digits) could turn into another literal byte that way,
// so the compare is exact for any name without control bytes: a tchar name, or one nghttp2 has
// checked. Not for arbitrary text (use iequals).
[[gnu::always_inline]] inline bool name_is(std::string_view n, std::string_view lit) noexcept {
  using text_detail::load;
  const size_t len = lit.size();
  if (n.size() != len) return false;  // free where the caller switches on the size
  const char* a = n.data();
  const char* b = lit.data();
  if (len >= 8) {
    constexpr uint64_t k = 0x2020202020202020ull;
    for (size_t i = 0; i + 8 < len; i += 8) {
      if ((load<uint64_t>(a + i) | k) != load<uint64_t>(b + i)) return false;
    }
    return (load<uint64_t>(a + len - 8) | k) == load<uint64_t>(b + len - 8);
  }
  if (len >= 4) {
    constexpr uint32_t k = 0x20202020u;
    return (load<uint32_t>(a) | k) == load<uint32_t>(b) &&
           (load<uint32_t>(a + len - 4) | k) == load<uint32_t>(b + len - 4);
  }
  for (size_t i = 0; i < len; ++i) {
    if ((a[i] | 0x20) != b[i]) return false;
  }
  return true;
}

}  // namespace outrigger::base
