#include "config/syntax.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "config/loader.h"
#include "proxy/base/ip.h"

namespace outrigger::config {
namespace syntax {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

// Parses decimal digits into *out; false on empty input, non-digits or uint64 overflow.
bool parse_digits(std::string_view s, uint64_t* out) {
  if (!all_digits(s)) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

struct Unit {
  std::string_view name;
  int64_t ms;
};
constexpr Unit kDurationUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

const Unit* find_unit(std::string_view name) {
  for (const Unit& u : kDurationUnits) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

// For "1.5s": the same duration in whole milliseconds ("1500ms"), or "" when not exact.
std::string exact_ms_hint(std::string_view whole, std::string_view frac, const Unit& unit) {
  uint64_t w = 0;
  uint64_t f = 0;
  if (!parse_digits(whole.empty() ? "0" : whole, &w) || !parse_digits(frac, &f)) return "";
  if (frac.size() > 9) return "";
  uint64_t scale = 1;
  for (size_t i = 0; i < frac.size(); ++i) scale *= 10;
  uint64_t total = 0;
  uint64_t frac_ms = 0;
  if (mul_overflows(w, unit.ms, &total) || mul_overflows(f, unit.ms, &frac_ms)) return "";
  if (frac_ms % scale != 0) return "";
  return std::to_string(total + frac_ms / scale) + "ms";
}

}  // namespace

bool parse_duration(std::string_view text, Duration* out, std::string* reason) {
  constexpr std::string_view kUnits = "use ms, s, m or h";
  if (text.empty()) {
    *reason = "empty; expected an integer and a unit, e.g. 5s";
    return false;
  }
  if (text[0] == '-') {
    *reason = "negative durations are not allowed";
    return false;
  }
  if (text[0] == '+') {
    *reason = "expected an integer and a unit, e.g. 5s";
    return false;
  }
  size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  std::string_view number = text.substr(0, i);
  if (i < text.size() && text[i] == '.') {
    size_t j = i + 1;
    while (j < text.size() && is_digit(text[j])) ++j;
    std::string_view frac = text.substr(i + 1, j - i - 1);
    const Unit* unit = find_unit(text.substr(j));
    std::string hint = unit && !frac.empty() ? exact_ms_hint(number, frac, *unit) : "";
    *reason = "fractions are not allowed; use a smaller unit";
    if (!hint.empty()) *reason += ", e.g. " + hint;
    return false;
  }
  if (number.empty()) {
    *reason = "expected an integer and a unit, e.g. 5s";
    return false;
  }
  std::string_view unit_name = text.substr(i);
  if (unit_name.empty()) {
    *reason = "missing unit; " + std::string(kUnits);
    return false;
  }
  const Unit* unit = find_unit(unit_name);
  if (unit == nullptr) {
    bool plausible = std::all_of(unit_name.begin(), unit_name.end(), [](char c) {
      return std::isalpha(static_cast<unsigned char>(c));
    });
    *reason = plausible ? "unknown unit " + quote(unit_name) + "; " + std::string(kUnits)
                        : "expected an integer and a unit, e.g. 5s";
    return false;
  }
  uint64_t n = 0;
  uint64_t ms = 0;
  if (!parse_digits(number, &n) || mul_overflows(n, static_cast<uint64_t>(unit->ms), &ms) ||
      ms > static_cast<uint64_t>(kMaxDurationMs)) {
    *reason = "too large";
    return false;
  }
  *out = Duration(static_cast<int64_t>(ms));
  return true;
}

std::string format_duration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms < 0) return std::to_string(ms) + "ms";  // never produced by the loader
  for (const Unit& u : kDurationUnits) {
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + std::string(u.name);
  }
  return std::to_string(ms) + "ms";
}

bool parse_size(std::string_view text, uint64_t* out, std::string* reason) {
  struct SizeUnit {
    std::string_view name;
    int shift;
  };
  static constexpr SizeUnit kUnits[] = {
      {"", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
  if (!text.empty() && text[0] == '-') {
    *reason = "negative sizes are not allowed";
    return false;
  }
  size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  std::string_view number = text.substr(0, i);
  std::string_view unit = text.substr(i);
  if (number.empty()) {
    *reason = "expected a byte count or a size such as 64KiB, 16MiB, 1GiB";
    return false;
  }
  for (const SizeUnit& u : kUnits) {
    if (u.name != unit) continue;
    uint64_t n = 0;
    if (!parse_digits(number, &n) || (u.shift > 0 && n > (UINT64_MAX >> u.shift))) {
      *reason = "too large";
      return false;
    }
    *out = n << u.shift;
    return true;
  }
  *reason = "unknown unit " + quote(unit) + "; use KiB, MiB, GiB or TiB";
  return false;
}

bool parse_int(std::string_view text, int64_t* out) {
  bool negative = !text.empty() && text[0] == '-';
  std::string_view digits = negative ? text.substr(1) : text;
  if (!all_digits(digits)) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (ec == std::errc::result_out_of_range) {
    *out = negative ? INT64_MIN : INT64_MAX;  // callers report it as out of range
    return true;
  }
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool is_ipv4_literal(std::string_view text) { return base::is_ipv4(text); }

bool is_ipv6_literal(std::string_view text) {
  base::IpText buf;
  return !base::canonical_ipv6(text, buf).empty();
}

namespace {

// (Callers have checked is_ipv6_literal.)
std::string canonical_ipv6(std::string_view text) {
  base::IpText buf;
  const std::string_view c = base::canonical_ipv6(text, buf);
  return std::string(c.empty() ? text : c);
}

bool looks_like_ipv4(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return is_digit(c) || c == '.'; });
}

}  // namespace

bool is_dns_name(std::string_view text) {
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  if (text.empty() || text.size() > 253) return false;
  std::string_view last_label;
  size_t start = 0;
  while (start <= text.size()) {
    size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) dot = text.size();
    std::string_view label = text.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    }
    last_label = label;
    start = dot + 1;
  }
  return !all_digits(last_label);
}

bool parse_host_port(std::string_view text, bool require_ip, HostPort* out, std::string* reason) {
  if (text.empty()) {
    *reason = "empty address; expected host:port";
    return false;
  }
  std::string host;
  std::string_view port_text;
  bool v6 = false;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      *reason = "missing \"]\" in " + quote(text);
      return false;
    }
    std::string_view inner = text.substr(1, close - 1);
    if (!is_ipv6_literal(inner)) {
      *reason = "invalid IPv6 address " + quote(inner);
      return false;
    }
    std::string_view rest = text.substr(close + 1);
    if (rest.empty()) {
      *reason = "missing port in " + quote(text) + "; expected [address]:port";
      return false;
    }
    if (rest.front() != ':') {
      *reason = "expected \":\" after \"]\" in " + quote(text);
      return false;
    }
    host = canonical_ipv6(inner);
    port_text = rest.substr(1);
    v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *reason = "missing port in " + quote(text) + "; expected host:port";
      return false;
    }
    if (text.find(':') != colon) {
      *reason = "IPv6 addresses need brackets and a port, e.g. [::1]:8080";
      return false;
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) {
    *reason = "missing host in " + quote(text);
    return false;
  }
  uint64_t port = 0;
  if (port_text.empty()) {
    *reason = "missing port in " + quote(text);
    return false;
  }
  if (!parse_digits(port_text, &port)) {
    *reason = "invalid port " + quote(port_text);
    return false;
  }
  if (port > 65535) {
    *reason = "port " + std::string(port_text) + " out of range (0..65535)";
    return false;
  }
  if (!v6 && !is_ipv4_literal(host)) {
    if (looks_like_ipv4(host)) {
      *reason = "invalid IPv4 address " + quote(host);
      return false;
    }
    if (require_ip) {
      *reason = quote(host) + " is not an IP address";
      return false;
    }
    if (!is_dns_name(host)) {
      *reason = "invalid dns name " + quote(host);
      return false;
    }
  }
  out->host = std::move(host);
  out->port = static_cast<uint16_t>(port);
  return true;
}

bool is_valid_name(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool parse_host_pattern(std::string_view text, std::string* normalized, std::string* reason) {
  if (text.empty()) {
    *reason = "empty host pattern";
    return false;
  }
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view name = lower;
  if (name == "*") {
    *normalized = lower;
    return true;
  }
  bool wildcard = name.starts_with("*.");
  if (wildcard) name.remove_prefix(2);
  if (name.find('*') != std::string_view::npos) {
    *reason = "invalid host pattern " + quote(text) +
              "; \"*\" is allowed only alone or as a leading \"*.\"";
    return false;
  }
  if (!wildcard && name.size() > 2 && name.front() == '[' && name.back() == ']' &&
      is_ipv6_literal(name.substr(1, name.size() - 2))) {
    *normalized = "[" + canonical_ipv6(name.substr(1, name.size() - 2)) + "]";
    return true;
  }
  if (!wildcard && is_ipv4_literal(name)) {
    *normalized = lower;
    return true;
  }
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && all_digits(name.substr(colon + 1)) &&
      name.find(':') == colon) {
    *reason = "host pattern " + quote(text) + " must not include a port";
    return false;
  }
  if (!is_dns_name(name)) {
    *reason = "invalid host pattern " + quote(text);
    return false;
  }
  *normalized = lower;
  return true;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  // Typos are a letter or two; beyond that (relative to length) a hint misleads more than helps.
  size_t limit = std::min<size_t>(3, std::max<size_t>(1, word.size() / 3));
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    if (word.size() > 64) break;
    size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Copy a well-formed UTF-8 sequence as is; replace any malformed byte with U+FFFD so the
    // result is always valid JSON.
    if (const size_t len = utf8_length_at(text, i); len > 0) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
  return out;
}

size_t utf8_length_at(std::string_view text, size_t i) noexcept {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) return 1;
  const size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
  if (len == 0 || i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 0;
  }
  const auto c1 = static_cast<unsigned char>(text[i + 1]);
  if (c == 0xe0 && c1 < 0xa0) return 0;   // overlong
  if (c == 0xed && c1 >= 0xa0) return 0;  // surrogate
  if (c == 0xf0 && c1 < 0x90) return 0;   // overlong
  if (c == 0xf4 && c1 >= 0x90) return 0;  // > U+10FFFF
  return len;
}

size_t first_bad_utf8(std::string_view text) noexcept {
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_length_at(text, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace syntax

bool parse_duration(std::string_view text, Duration* out) {
  std::string reason;
  Duration d{};
  if (!syntax::parse_duration(text, &d, &reason)) return false;
  if (out) *out = d;
  return true;
}

bool parse_host_port(std::string_view text, bool require_ip, HostPort* out, std::string* error) {
  std::string reason;
  HostPort hp;
  if (!syntax::parse_host_port(text, require_ip, &hp, &reason)) {
    if (error) *error = std::move(reason);
    return false;
  }
  if (out) *out = std::move(hp);
  return true;
}

}  // namespace outrigger::config
