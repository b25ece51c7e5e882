#include "proxy/h2/fields.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

namespace outrigger::h2 {
namespace {

// A field name: lower-case tchar (RFC 9113 8.2.1 and RFC 9110 5.1), four bytes per step.
FieldError check_name(std::string_view n) noexcept {
  if (n.empty()) return FieldError::kBadName;
  if (base::span_of(base::kLowerTchar, n) == n.size()) return FieldError::kNone;
  for (char c : n) {
    if (c >= 'A' && c <= 'Z') return FieldError::kUpperCaseName;
  }
  return FieldError::kBadName;
}

// A field value: VCHAR, SP, HTAB, obs-text, without whitespace at either end (RFC 9113 8.2.1
// forbids NUL, CR and LF; like nghttp2 we refuse the other control bytes and DEL too, as the
// HTTP/1.1 side does).
bool check_value(std::string_view v) noexcept {
  if (v.empty()) return true;
  if (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t') return false;
  return base::all_vchar(v);
}

bool valid_content_length(std::string_view v) noexcept {
  if (v.empty() || v.size() > 18) return false;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Regular-field checks shared by requests, responses and trailers. *content_length counts the
// content-length fields seen (one at most).
FieldError check_regular(const Field& f, bool trailers, int* content_length) noexcept {
  if (auto e = check_name(f.name); e != FieldError::kNone) return e;
  if (!check_value(f.value)) return FieldError::kBadValue;
  if (is_connection_specific(f.name)) return FieldError::kConnectionSpecific;
  if (f.name == "te" && (trailers || f.value != "trailers")) return FieldError::kBadTe;
  if (f.name == "content-length" && (++*content_length > 1 || !valid_content_length(f.value))) {
    return FieldError::kBadContentLength;
  }
  return FieldError::kNone;
}

// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool valid_scheme(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    if (!alpha && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

namespace {

// Per byte b < 0x80: b + (0x80 - 'A') sets bit 7 from 'A' up, b + (0x80 - 'Z' - 1) from past
// 'Z'; their difference in bit 7 marks A-Z, and that bit moved to 0x20 lower-cases it.
inline uint64_t lower_word(uint64_t w) noexcept {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  const uint64_t low7 = w & ~kHigh;
  const uint64_t ge_a = low7 + kOnes * (0x80 - 'A');
  const uint64_t gt_z = low7 + kOnes * (0x80 - 'Z' - 1);
  const uint64_t upper = ge_a & ~gt_z & ~w & kHigh;
  return w | (upper >> 2);
}

}  // namespace

void lower_copy(const char* in, size_t n, char* out) noexcept {
  // Whole words; the tail as one more word (or two half words) overlapping what is done, since
  // lower-casing a byte twice changes nothing. Field names are short (most under 16 bytes), so
  // the tail is most of the work: no loop per byte but for names under four bytes.
  if (n >= 8) {
    size_t i = 0;
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
      std::memcpy(&w, in + i, 8);
      w = lower_word(w);
      std::memcpy(out + i, &w, 8);
    }
    if (i < n) {
      std::memcpy(&w, in + n - 8, 8);
      w = lower_word(w);
      std::memcpy(out + n - 8, &w, 8);
    }
    return;
  }
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, in, 4);
    std::memcpy(&b, in + n - 4, 4);
    a = static_cast<uint32_t>(lower_word(a));
    b = static_cast<uint32_t>(lower_word(b));
    std::memcpy(out, &a, 4);
    std::memcpy(out + n - 4, &b, 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const char c = in[i];
    out[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
  }
}

FieldList& FieldList::operator=(const FieldList& o) {
  if (this == &o) return *this;
  clear();
  for (const Field& f : o.fields_) add_lower(f.name, f.value);
  return *this;
}

char* FieldList::grow(size_t n) {
  if (fields_.capacity() == 0) fields_.reserve(16);
  // One allocation for a typical head (profiled: growth was ten of the ~36 allocations per
  // proxied HTTP/2 request), doubling after that.
  const size_t cap = std::max({size_t{512}, cap_ * 2, used_ + n});
  auto nb = std::make_unique_for_overwrite<char[]>(cap);  // no zero-fill: every byte is written
  if (used_ > 0) std::memcpy(nb.get(), buf_.get(), used_);
  const char* old = buf_.get();
  for (Field& f : fields_) {
    f.name = {nb.get() + (f.name.data() - old), f.name.size()};
    f.value = {nb.get() + (f.value.data() - old), f.value.size()};
  }
  buf_ = std::move(nb);
  cap_ = cap;
  return buf_.get() + used_;
}

std::optional<std::string_view> FieldList::get(std::string_view name) const {
  for (const Field& f : fields_) {
    if (f.name == name) return f.value;
  }
  return std::nullopt;
}

std::string_view field_error_name(FieldError e) noexcept {
  switch (e) {
    case FieldError::kNone:
      return "ok";
    case FieldError::kPseudoAfterRegular:
      return "pseudo-header after regular field";
    case FieldError::kUnknownPseudo:
      return "unknown pseudo-header";
    case FieldError::kDuplicatePseudo:
      return "duplicate pseudo-header";
    case FieldError::kMissingPseudo:
      return "missing pseudo-header";
    case FieldError::kUpperCaseName:
      return "upper-case field name";
    case FieldError::kBadName:
      return "invalid field name";
    case FieldError::kBadValue:
      return "invalid field value";
    case FieldError::kConnectionSpecific:
      return "connection-specific field";
    case FieldError::kBadTe:
      return "te other than trailers";
    case FieldError::kBadPath:
      return "invalid :path";
    case FieldError::kBadAuthority:
      return "invalid :authority";
    case FieldError::kBadContentLength:
      return "invalid content-length";
  }
  return "invalid";
}

FieldError validate_request(std::span<const Field> fields) noexcept {
  std::string_view method, scheme, authority, path, host;
  bool has_method = false, has_scheme = false, has_authority = false, has_path = false;
  bool has_host = false, regular_seen = false;
  int content_length = 0;
  for (const Field& f : fields) {
    if (!f.name.empty() && f.name[0] == ':') {
      if (regular_seen) return FieldError::kPseudoAfterRegular;
      if (!check_value(f.value)) return FieldError::kBadValue;
      bool* seen = nullptr;
      std::string_view* slot = nullptr;
      if (f.name == ":method") {
        seen = &has_method, slot = &method;
      } else if (f.name == ":scheme") {
        seen = &has_scheme, slot = &scheme;
      } else if (f.name == ":authority") {
        seen = &has_authority, slot = &authority;
      } else if (f.name == ":path") {
        seen = &has_path, slot = &path;
      } else {
        return FieldError::kUnknownPseudo;  // :protocol (RFC 8441) is not enabled
      }
      if (*seen) return FieldError::kDuplicatePseudo;
      *seen = true;
      *slot = f.value;
      continue;
    }
    regular_seen = true;
    if (auto e = check_regular(f, false, &content_length); e != FieldError::kNone) return e;
    if (f.name == "host") {
      if (has_host) return FieldError::kBadAuthority;
      has_host = true;
      host = f.value;
    }
  }
  if (!has_method || method.empty()) return FieldError::kMissingPseudo;
  if (base::span_of(base::kTchar, method) != method.size()) return FieldError::kBadValue;
  if (method == "CONNECT") {
    // RFC 9113 8.5: :authority only.
    if (has_scheme || has_path || !has_authority) return FieldError::kMissingPseudo;
  } else {
    if (!has_scheme || !has_path || scheme.empty()) return FieldError::kMissingPseudo;
    if (!valid_scheme(scheme)) return FieldError::kBadValue;
    if (path.empty()) return FieldError::kBadPath;
    if (path[0] != '/' && !(path == "*" && method == "OPTIONS")) return FieldError::kBadPath;
    // The bytes an HTTP/1.1 request-target may have (VCHAR: no space, control byte or raw
    // non-ASCII byte, which a URI cannot hold, RFC 3986 2): the path becomes an HTTP/1.1
    // request-target as it is, and a request is one set of paths to routing and authorization
    // whichever protocol it came by (the HTTP/1.1 parser refuses the same bytes with a 400).
    if (base::span_of(base::kTargetChar, path) != path.size()) return FieldError::kBadPath;
  }
  if (has_authority) {
    if (authority.find('@') != std::string_view::npos) return FieldError::kBadAuthority;
    if (!base::valid_authority(authority)) return FieldError::kBadAuthority;
    if (has_host && !base::iequals(host, authority)) return FieldError::kBadAuthority;
  } else if (!has_host || host.empty()) {
    return FieldError::kBadAuthority;
  }
  if (has_host && !base::valid_authority(host)) return FieldError::kBadAuthority;
  return FieldError::kNone;
}

FieldError validate_response(std::span<const Field> fields, bool trailers) noexcept {
  bool has_status = false, regular_seen = false;
  int content_length = 0;
  for (const Field& f : fields) {
    if (!f.name.empty() && f.name[0] == ':') {
      if (trailers) return FieldError::kUnknownPseudo;
      if (regular_seen) return FieldError::kPseudoAfterRegular;
      if (f.name != ":status") return FieldError::kUnknownPseudo;
      if (has_status) return FieldError::kDuplicatePseudo;
      if (f.value.size() != 3) return FieldError::kBadValue;
      for (char c : f.value) {
        if (c < '0' || c > '9') return FieldError::kBadValue;
      }
      has_status = true;
      continue;
    }
    regular_seen = true;
    if (auto e = check_regular(f, trailers, &content_length); e != FieldError::kNone) return e;
  }
  if (!trailers && !has_status) return FieldError::kMissingPseudo;
  return FieldError::kNone;
}

}  // namespace outrigger::h2
