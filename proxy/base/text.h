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

// Character classes of RFC 9110/9112 and RFC 9113, one table lookup per byte.
enum CharClass : uint8_t {
  kTchar = 1,        // token characters (field names, methods)
  kVchar = 2,        // field-value bytes: VCHAR, SP, HTAB, obs-text
  kTargetChar = 4,   // a request-target's bytes (HTTP/1.1, and an HTTP/2 :path): VCHAR
  kHex = 8,          // hex digits
  kHostChar = 16,    // host and port: unreserved, sub-delims, ':', '[', ']', '%'
  kLowerTchar = 32,  // an HTTP/2 field name's bytes: tchar without A-Z
};

inline constexpr std::array<uint8_t, 256> kCharClass = [] {
  std::array<uint8_t, 256> t{};
  auto in = [](int c, std::string_view set) { return set.find(static_cast<char>(c)) != set.npos; };
  for (int c = 0; c < 256; ++c) {
    const bool upper = c >= 'A' && c <= 'Z';
    const bool alpha = upper || (c >= 'a' && c <= 'z');
    const bool digit = c >= '0' && c <= '9';
    const bool vchar = c >= 0x21 && c <= 0x7e;
    uint8_t v = 0;
    if (alpha || digit || in(c, "!#$%&'*+-.^_`|~")) v |= upper ? kTchar : kTchar | kLowerTchar;
    if (vchar || c == ' ' || c == '\t' || c >= 0x80) v |= kVchar;
    if (vchar) v |= kTargetChar;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    if (alpha || digit || in(c, "-._~!$&'()*+,;=:[]%")) v |= kHostChar;
    t[c] = v;
  }
  return t;
}();

[[gnu::always_inline]] inline bool in_class(uint8_t cls, char c) noexcept {
  return (kCharClass[static_cast<uint8_t>(c)] & cls) != 0;
}

// The length of the run of bytes of class cls at the start of v; four bytes per step while all
// four are in it.
[[gnu::always_inline]] inline size_t span_of(uint8_t cls, std::string_view v) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  const size_t n = v.size();
  const auto& k = kCharClass;
  size_t i = 0;
  while (i + 4 <= n && (k[p[i]] & k[p[i + 1]] & k[p[i + 2]] & k[p[i + 3]] & cls)) i += 4;
  while (i < n && (k[p[i]] & cls)) ++i;
  return i;
}

namespace text_detail {
template <typename T>
[[gnu::always_inline]] inline T load(const char* p) noexcept {
  T x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
}  // namespace text_detail

// A value's bytes all kVchar (VCHAR, SP, HTAB, obs-text): a word at a time, look for a control
// byte (< 0x20) or DEL (the last word may overlap the one before); only a value with one (a tab,
// or an error) goes byte by byte. The "< 0x20" test flags a byte below 0x80 whose subtraction
// borrows; a flag can spill into higher bytes only after a real one, so "none flagged" is exact.
template <typename W>
[[gnu::always_inline]] inline bool word_has_ctl_or_del(const char* p) noexcept {
  constexpr W kOnes = static_cast<W>(0x0101010101010101ull);
  constexpr W kHigh = static_cast<W>(0x8080808080808080ull);
  const W x = text_detail::load<W>(p);
  const W ctl = (x - kOnes * 0x20) & ~x & kHigh;
  const W y = x ^ (kOnes * 0x7f);
  const W del = (y - kOnes) & ~y & kHigh;
  return (ctl | del) != 0;
}

// The host[:port] shape of a Host field or an :authority (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3),
// for text whose characters are known to be kHostChar: an IP-literal in brackets followed by
// nothing or a port, or a name or IPv4 address with no bracket and at most one colon, before the
// port. A port is digits (possibly none). Empty is allowed (a Host for a target without an
// authority). The HTTP/1.1 parser checks the two apart (they are answered with different
// reasons); everything else calls valid_authority().
inline bool authority_shape(std::string_view a) noexcept {
  // One pass: it runs for every request's Host (find_first_of("[]") and friends cost ~500
  // instructions per request here, a memchr call per character).
  const size_t n = a.size();
  size_t i = 0;
  if (n > 0 && a[0] == '[') {
    for (i = 1; i < n && a[i] != ']'; ++i) {
      if (a[i] == '[') return false;
    }
    if (i == n || i == 1) return false;  // no "]", or "[]"
    if (++i == n) return true;
    if (a[i] != ':') return false;
  } else {
    for (; i < n && a[i] != ':'; ++i) {
      if (a[i] == '[' || a[i] == ']') return false;
    }
    if (i == n) return true;
  }
  for (++i; i < n; ++i) {  // the port; a second colon is not a digit
    if (a[i] < '0' || a[i] > '9') return false;
  }
  return true;
}

// A Host or :authority value: kHostChar characters in the host[:port] shape above.
inline bool valid_authority(std::string_view a) noexcept {
  return span_of(kHostChar, a) == a.size() && authority_shape(a);
}

inline bool all_vchar(std::string_view v) noexcept {
  const char* p = v.data();
  const size_t n = v.size();
  bool flagged = false;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) flagged |= word_has_ctl_or_del<uint64_t>(p + i);
    flagged |= word_has_ctl_or_del<uint64_t>(p + n - 8);
  } else if (n >= 4) {
    flagged = word_has_ctl_or_del<uint32_t>(p) || word_has_ctl_or_del<uint32_t>(p + n - 4);
  } else {
    flagged = true;  // three bytes or fewer: the byte loop is as quick
  }
  if (!flagged) return true;
  for (size_t i = 0; i < n; ++i) {
    if (!in_class(kVchar, p[i])) return false;
  }
  return true;
}

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
