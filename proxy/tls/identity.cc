#include "proxy/tls/identity.h"

#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "proxy/tls/ossl.h"

namespace outrigger::tls {
namespace {

constexpr std::string_view kAccount = "{account}";
constexpr std::string_view kService = "{service}";
constexpr size_t kMaxPlaceholder = 128;

bool placeholder_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool valid_value(std::string_view v) {
  return !v.empty() && v.size() <= kMaxPlaceholder &&
         std::all_of(v.begin(), v.end(), placeholder_char);
}

// The template split at its placeholders: prefix P1 middle P2 suffix.
struct Parsed {
  std::string_view prefix, middle, suffix;
  bool account_first = true;
};

std::optional<Parsed> parse(std::string_view t) {
  if (check_uri_template(t)) return std::nullopt;
  size_t a = t.find(kAccount);
  size_t s = t.find(kService);
  Parsed p;
  p.account_first = a < s;
  size_t first = std::min(a, s), second = std::max(a, s);
  p.prefix = t.substr(0, first);
  p.middle = t.substr(first + kAccount.size(), second - first - kAccount.size());
  p.suffix = t.substr(second + kService.size());
  return p;
}

// Fills account and service when `uri` fits the template.
bool match(const Parsed& p, std::string_view uri, Identity* id) {
  if (!uri.starts_with(p.prefix) || !uri.ends_with(p.suffix) ||
      uri.size() < p.prefix.size() + p.suffix.size()) {
    return false;
  }
  std::string_view rest =
      uri.substr(p.prefix.size(), uri.size() - p.prefix.size() - p.suffix.size());
  size_t m = rest.find(p.middle);
  if (m == std::string_view::npos) return false;
  std::string_view first = rest.substr(0, m);
  std::string_view second = rest.substr(m + p.middle.size());
  if (!valid_value(first) || !valid_value(second)) return false;
  id->account = std::string(p.account_first ? first : second);
  id->service = std::string(p.account_first ? second : first);
  return true;
}

std::optional<std::string_view> san_text(const ASN1_STRING* s) {
  const char* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(s));
  size_t len = static_cast<size_t>(ASN1_STRING_length(s));
  if (data == nullptr || std::memchr(data, '\0', len) != nullptr) return std::nullopt;
  return std::string_view(data, len);
}

void append_element(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  bool quote = false;
  for (unsigned char c : value) {
    if (c < 0x20 || c >= 0x7f) return;  // never let a certificate split or smuggle a header
    if (c == ',' || c == ';' || c == '=' || c == '"' || c == '\\' || c == ' ') quote = true;
  }
  if (!out.empty()) out += ';';
  out += key;
  out += '=';
  if (!quote) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace

std::optional<std::string> check_uri_template(std::string_view t) {
  size_t a = t.find(kAccount);
  size_t s = t.find(kService);
  if (a == std::string_view::npos || s == std::string_view::npos) {
    return "must contain {account} and {service}";
  }
  if (t.find(kAccount, a + 1) != std::string_view::npos ||
      t.find(kService, s + 1) != std::string_view::npos) {
    return "{account} and {service} may appear only once each";
  }
  size_t braces = static_cast<size_t>(std::count(t.begin(), t.end(), '{') +
                                      std::count(t.begin(), t.end(), '}'));
  if (braces != 4) return "only {account} and {service} may use braces";
  size_t first = std::min(a, s), second = std::max(a, s);
  if (second == first + kAccount.size()) {
    return "{account} and {service} must be separated by some text, e.g. \"/\"";
  }
  for (unsigned char c : t) {
    if (c <= 0x20 || c >= 0x7f) return "must not contain spaces, control or non-ASCII characters";
  }
  return std::nullopt;
}

Identity extract_identity(X509* peer, const IdentityRules& rules) {
  Identity id;
  if (peer == nullptr) return id;
  std::optional<Parsed> parsed = parse(rules.uri_template);
  ossl::GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return id;
  std::string first_uri;
  bool matched = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_DNS && id.dns.empty()) {
      if (auto text = san_text(gn->d.dNSName)) id.dns = std::string(*text);
    } else if (gn->type == GEN_URI && !matched) {
      auto text = san_text(gn->d.uniformResourceIdentifier);
      if (!text) continue;
      if (first_uri.empty()) first_uri = std::string(*text);
      if (parsed && match(*parsed, *text, &id)) {
        id.uri = std::string(*text);
        matched = true;
      }
    }
  }
  if (!matched) id.uri = first_uri;
  return id;
}

Identity extract_identity(const SSL* ssl, const IdentityRules& rules) {
  if (ssl == nullptr) return {};
  X509* peer = SSL_get0_peer_certificate(ssl);
  Identity id = extract_identity(peer, rules);
  id.verified = peer != nullptr && SSL_get_verify_result(ssl) == X509_V_OK;
  return id;
}

std::string xfcc_value(const Identity& id, X509* peer, std::string_view by) {
  if (!id.verified || peer == nullptr) return {};
  std::string out;
  append_element(out, "By", by);
  append_element(out, "Hash", ossl::sha256_hex(peer));
  append_element(out, "URI", id.uri);
  append_element(out, "DNS", id.dns);
  append_element(out, "Account", id.account);
  append_element(out, "Service", id.service);
  return out;
}

AuthzDecision authorize(const Identity& id, const AuthzPolicy& policy) {
  if (!id.verified) return {false, "no_verified_identity"};
  if (policy.allow_any_verified) return {true, ""};
  if (!id.known()) return {false, "not_allowed"};
  auto contains = [](const std::vector<std::string>& list, std::string_view v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  };
  if (contains(policy.allow_accounts, id.account)) return {true, ""};
  if (contains(policy.allow_services, id.service)) return {true, ""};
  if (contains(policy.allow_services, id.account + "/" + id.service)) return {true, ""};
  return {false, "not_allowed"};
}

}  // namespace outrigger::tls
