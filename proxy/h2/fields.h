// HTTP/2 header fields: a view type, an owning list, and the RFC 9113 request checks.
//
// Thread affinity: none (plain values).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/base/text.h"

namespace outrigger::h2 {

struct Field {
  std::string_view name;
  std::string_view value;
};

// Lower-cases ASCII letters of n bytes from `in` into `out` (8 bytes per step).
void lower_copy(const char* in, size_t n, char* out) noexcept;

// An owning list of fields in one buffer; names are stored lower-cased. The views fields()
// returns are kept ready (no rebuild per call) and stay valid until the next add()/clear() or
// until the list is destroyed; moving a list keeps them valid (the buffer moves with it).
class FieldList {
 public:
  FieldList() = default;
  FieldList(const FieldList& o) { *this = o; }
  FieldList& operator=(const FieldList& o);
  FieldList(FieldList&& o) noexcept { *this = std::move(o); }
  FieldList& operator=(FieldList&& o) noexcept {
    buf_ = std::move(o.buf_);
    cap_ = std::exchange(o.cap_, 0);
    used_ = std::exchange(o.used_, 0);
    fields_ = std::move(o.fields_);
    o.fields_.clear();
    return *this;
  }

  void add(std::string_view name, std::string_view value) {
    char* out = room(name.size() + value.size());
    lower_copy(name.data(), name.size(), out);
    put(out, name.size(), value);
  }
  // For a name known to be lower case already (an HTTP/2 peer's, or a literal).
  void add_lower(std::string_view name, std::string_view value) {
    char* out = room(name.size() + value.size());
    if (!name.empty()) std::memcpy(out, name.data(), name.size());
    put(out, name.size(), value);
  }
  void clear() noexcept {
    used_ = 0;
    fields_.clear();
  }
  // Forgets the first n fields (their bytes stay in the buffer until clear()).
  void drop_front(size_t n) noexcept {
    fields_.erase(fields_.begin(),
                  fields_.begin() + static_cast<std::ptrdiff_t>(std::min(n, fields_.size())));
  }
  size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  size_t capacity_bytes() const noexcept { return cap_; }
  std::span<const Field> fields() const noexcept { return fields_; }
  // First value of a field (name in lower case).
  std::optional<std::string_view> get(std::string_view name) const;

 private:
  // Room for n more bytes; returns where they go (the buffer may move: views are re-based).
  char* room(size_t n) { return cap_ - used_ >= n ? buf_.get() + used_ : grow(n); }
  char* grow(size_t n);
  // The value after a name of name_len bytes written at out; records the field.
  void put(char* out, size_t name_len, std::string_view value) {
    if (!value.empty()) std::memcpy(out + name_len, value.data(), value.size());
    used_ += name_len + value.size();
    fields_.push_back({{out, name_len}, {out + name_len, value.size()}});
  }

  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t used_ = 0;
  std::vector<Field> fields_;
};

// What is wrong with a request's header list (RFC 9113 8.2 and 8.3), kNone when it is fine.
enum class FieldError : uint8_t {
  kNone,
  kPseudoAfterRegular,  // a pseudo-header after a regular field
  kUnknownPseudo,       // a pseudo-header that is not allowed (e.g. :status in a request)
  kDuplicatePseudo,
  kMissingPseudo,  // :method, and for non-CONNECT :scheme and :path
  kUpperCaseName,
  kBadName,             // empty or characters outside tchar
  kBadValue,            // NUL, CR, LF, or leading/trailing whitespace
  kConnectionSpecific,  // connection, keep-alive, proxy-connection, transfer-encoding, upgrade
  kBadTe,               // te other than "trailers"
  kBadPath,             // empty, or not starting with '/' (except "*" for OPTIONS)
  kBadAuthority,        // userinfo, or :authority and host that differ, or neither present
  kBadContentLength,    // not digits only, or more than one content-length field
};
std::string_view field_error_name(FieldError e) noexcept;

// Checks a request header block as received (pseudo-headers included, in order): every rule of
// RFC 9113 8.2 and 8.3 on names, values and pseudo-headers (nghttp2 runs with HTTP messaging off;
// these checks are the only ones).
FieldError validate_request(std::span<const Field> fields) noexcept;
// Checks a response or trailer block: no pseudo-headers except :status first (responses), same
// name/value/connection-specific rules.
FieldError validate_response(std::span<const Field> fields, bool trailers) noexcept;

// Name, in any case (an HTTP/1.1 peer's too), is a connection-specific field RFC 9113 8.2.2
// forbids (te handled separately). Names here are tchar (HTTP/1.1 parser, our own) or checked by
// nghttp2, which is what base::name_is needs.
inline bool is_connection_specific(std::string_view n) noexcept {
  switch (n.size()) {  // the length first: most names are none of these
    case 7:
      return base::name_is(n, "upgrade");
    case 10:
      return base::name_is(n, "connection") || base::name_is(n, "keep-alive");
    case 16:
      return base::name_is(n, "proxy-connection");
    case 17:
      return base::name_is(n, "transfer-encoding");
    default:
      return false;
  }
}

}  // namespace outrigger::h2
