// HTTP/2 header fields: a view type, an owning list, and the RFC 9113 request checks.
//
// Thread affinity: none (plain values).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::h2 {

struct Field {
  std::string_view name;
  std::string_view value;
};

// An owning list of fields in one buffer; names are stored lower-cased.
class FieldList {
 public:
  void add(std::string_view name, std::string_view value);
  void clear() noexcept;
  size_t size() const noexcept { return refs_.size(); }
  bool empty() const noexcept { return refs_.empty(); }
  // Valid until the next add()/clear().
  std::span<const Field> fields() const;
  // First value of a field (name in lower case).
  std::optional<std::string_view> get(std::string_view name) const;

 private:
  struct Ref {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string buf_;
  std::vector<Ref> refs_;
  mutable std::vector<Field> view_;
  mutable bool dirty_ = false;
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
  kBadContentLength,
};
std::string_view field_error_name(FieldError e) noexcept;

// Checks a request header block as received (pseudo-headers included, in order).
FieldError validate_request(std::span<const Field> fields) noexcept;
// Checks a response or trailer block: no pseudo-headers except :status first (responses), same
// name/value/connection-specific rules.
FieldError validate_response(std::span<const Field> fields, bool trailers) noexcept;

// Name is a connection-specific field RFC 9113 8.2.2 forbids (te handled separately).
bool is_connection_specific(std::string_view lower_name) noexcept;

}  // namespace outrigger::h2
