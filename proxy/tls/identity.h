// Caller identity from a verified client certificate (account and service, read from a URI SAN
// through a template), the header value that tells the app who called, and the allow-list check
// of inbound routes.
//
// Thread affinity: none (pure functions; IdentityRules and AuthzPolicy are immutable values).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::tls {

inline constexpr std::string_view kDefaultIdentityHeader = "x-forwarded-client-cert";
inline constexpr std::string_view kDefaultUriTemplate = "spiffe://{account}/{service}";

// uri_template holds "{account}" and "{service}" exactly once each, separated by a non-empty
// literal, and no other braces. A placeholder matches 1..128 characters of [A-Za-z0-9._-]
// (so never a '/'); the rest of the template must match the URI exactly.
struct IdentityRules {
  std::string uri_template = std::string(kDefaultUriTemplate);
};

// Why a template is unusable, or nullopt when it is fine.
std::optional<std::string> check_uri_template(std::string_view uri_template);

struct Identity {
  std::string account;  // from the URI SAN that matched the template ("" when none matched)
  std::string service;
  std::string uri;  // that URI SAN (or the first URI SAN when none matched)
  std::string dns;  // the first DNS SAN
  // The chain was verified by the TLS handshake (only the SSL* overload can know; the X509*
  // overload leaves it false).
  bool verified = false;

  // A caller the allow-lists can name: verified, with an account and a service.
  bool known() const { return verified && !account.empty() && !service.empty(); }
};

Identity extract_identity(X509* peer, const IdentityRules& rules);
// After a server-side handshake: the peer's leaf (SSL_get0_peer_certificate, which on a resumed
// session is the one verified when the session was made) and whether verification succeeded.
Identity extract_identity(const SSL* ssl, const IdentityRules& rules);

// The value of the forwarded-identity header, in the spirit of Envoy's x-forwarded-client-cert:
//   By=<our URI SAN>;Hash=<hex SHA-256 of the peer leaf's DER>;URI=<uri>;DNS=<dns>;
//   Account=<account>;Service=<service>
// Elements in that order, empty ones left out (By when `by` is empty). A value holding ',', ';',
// '=', '"', '\\' or a space is double-quoted with '"' and '\\' escaped; a value holding a
// control or non-ASCII byte is left out entirely, so the header can never be split. Returns ""
// for an identity that is not verified: send no header then (and always strip the client's).
std::string xfcc_value(const Identity& identity, X509* peer, std::string_view by = {});

// A route's allow-list. allow_services entries are "service" (from any account) or
// "account/service".
struct AuthzPolicy {
  bool allow_any_verified = false;
  std::vector<std::string> allow_accounts;
  std::vector<std::string> allow_services;
};

struct AuthzDecision {
  bool allowed = false;
  // "" when allowed; "no_verified_identity" (no certificate, or one that did not verify) or
  // "not_allowed" (verified, but neither its account nor its service is listed, or its URI SAN
  // does not fit the template). allow_any_verified needs only a verified certificate.
  std::string_view reason;
};

AuthzDecision authorize(const Identity& identity, const AuthzPolicy& policy);

}  // namespace outrigger::tls
