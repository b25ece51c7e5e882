// AWS Signature Version 4 request signing: canonical request, string to sign, derived signing key
// and HMAC-SHA256 (OpenSSL), giving the headers to add; byte-for-byte what botocore's SigV4Auth
// computes for the same request (tests/integration/test_sigv4_botocore.py checks it). Also SigV4A
// (ECDSA P-256 over the same canonical request, a region set instead of one region), checked
// against botocore's CRT signer (awscrt) by verifying its signatures with our derived key.
//
// Thread affinity: a Signer is worker-local (its scratch buffers, OpenSSL contexts and signing-key
// cache are not shared); give each worker its own. The free functions are pure, any thread.
// No exceptions: errors are values; after warm-up a signature allocates nothing but the grown
// capacity of the caller's output strings.
//
// Canonical form (AWS SigV4 docs, as botocore applies it for non-S3 services):
// * path: dot segments removed and empty segments collapsed ("/a//b/../c" -> "/a/c"; a trailing
//   slash kept), then every byte but A-Z a-z 0-9 - _ . ~ / percent-encoded, so an already-encoded
//   path is encoded a second time ("%2F" -> "%252F"). With normalize_path off (S3 rules) the path
//   is used exactly as given.
// * query: split on '&' (empty pieces dropped), each name and value percent-decoded then encoded
//   with the unreserved set only ('+' is a literal plus: %2B), sorted by name then value,
//   repeated names kept, a missing value is "name=".
// * headers: names lower-cased, values trimmed with inner runs of whitespace collapsed to one
//   space, repeated names joined with ',' in their order, sorted by name.
#pragma once

#include <openssl/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/aws/credentials.h"

namespace outrigger::aws {

struct Header {
  std::string_view name;
  std::string_view value;
};

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
// The hex SHA-256 of an empty body.
inline constexpr std::string_view kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kLatticeService = "vpc-lattice-svcs";

// Signed by default besides host and the headers the signer adds (x-amz-date,
// x-amz-security-token, x-amz-content-sha256) and, with sign_x_amz_headers, every x-amz-* header:
// content-type, because a service may interpret the body by it. Not content-length: the proxy
// re-frames bodies (chunked <-> length, HTTP/2 has none), so it may not survive to the verifier;
// not user-agent, x-amzn-trace-id, hop-by-hop headers or anything a load balancer rewrites
// (x-forwarded-*, via), which botocore leaves out for the same reason.
inline constexpr std::array<std::string_view, 1> kDefaultSignedHeaders = {"content-type"};

// Never signed in sign_all_headers mode (botocore's SIGNED_HEADERS_BLACKLIST): hop-by-hop headers
// and ones that proxies add or rewrite.
inline constexpr std::array<std::string_view, 11> kNeverSignedHeaders = {"connection",
                                                                         "expect",
                                                                         "keep-alive",
                                                                         "proxy-authenticate",
                                                                         "proxy-authorization",
                                                                         "te",
                                                                         "trailer",
                                                                         "transfer-encoding",
                                                                         "upgrade",
                                                                         "user-agent",
                                                                         "x-amzn-trace-id"};

enum class Algorithm {
  kSigV4,   // AWS4-HMAC-SHA256, one region
  kSigV4A,  // AWS4-ECDSA-P256-SHA256, a region set (x-amz-region-set), e.g. "*"
};

struct SignOptions {
  Algorithm algorithm = Algorithm::kSigV4;
  // SigV4A only: the regions the signature is valid in, comma-separated, "*" for all. The
  // request's region is then not part of the scope.
  std::string_view region_set = "*";
  // Lower-case names signed when present (host is always signed). Empty: kDefaultSignedHeaders.
  std::span<const std::string_view> signed_headers = {};
  // Sign every header present except kNeverSignedHeaders (what botocore does); overrides the list.
  bool sign_all_headers = false;
  // Sign every x-amz-* header present (services expect it; S3 requires it).
  bool sign_x_amz_headers = true;
  // Add and sign x-amz-content-sha256 carrying the payload hash. Always on when the hash is
  // UNSIGNED-PAYLOAD (the verifier cannot know otherwise; botocore does the same) and for
  // vpc-lattice-svcs, which also forces the hash to UNSIGNED-PAYLOAD (Lattice does not support
  // payload signing).
  bool add_content_sha256 = false;
  // false = S3 rules: the path is signed exactly as given (no normalisation, no second encoding).
  bool normalize_path = true;
};

struct SignRequest {
  std::string_view method;  // as sent (upper case expected; not changed)
  std::string_view path;    // origin-form path, already percent-encoded, without the query
  std::string_view query;   // raw query without '?', may be empty
  // The request's headers as they will be sent upstream (Host included, with the upstream's
  // name). Authorization, x-amz-date, x-amz-security-token and x-amz-content-sha256 given here are
  // ignored: the signer's values replace them and the caller must not forward the old ones.
  std::span<const Header> headers;
  // Hex SHA-256 of the body (lower case, 64 digits) or UNSIGNED-PAYLOAD. Ignored for Lattice.
  std::string_view payload_hash = kUnsignedPayload;
  std::string_view service;  // "vpc-lattice-svcs", "execute-api", ...
  std::string_view region;   // "us-east-1" (unused by SigV4A)
  std::chrono::system_clock::time_point time;
};

// The headers to add to the request (values owned here; strings keep their capacity when reused).
struct SignedHeaders {
  std::string authorization;
  std::string amz_date;        // x-amz-date, e.g. 20261122T053817Z
  std::string security_token;  // x-amz-security-token; empty: do not add
  std::string content_sha256;  // x-amz-content-sha256; empty: do not add
  std::string region_set;      // x-amz-region-set (SigV4A); empty: do not add

  // Calls fn(name, value) for each header to add, lower-case names.
  template <class Fn>
  void for_each(Fn&& fn) const {
    fn(std::string_view("authorization"), std::string_view(authorization));
    fn(std::string_view("x-amz-date"), std::string_view(amz_date));
    if (!security_token.empty())
      fn(std::string_view("x-amz-security-token"), std::string_view(security_token));
    if (!content_sha256.empty())
      fn(std::string_view("x-amz-content-sha256"), std::string_view(content_sha256));
    if (!region_set.empty()) fn(std::string_view("x-amz-region-set"), std::string_view(region_set));
  }
};

enum class SignError {
  kMissingHost,     // no Host header among the request's headers
  kBadPayloadHash,  // neither 64 lower-case hex digits nor UNSIGNED-PAYLOAD
  kBadCredentials,  // empty access key id or secret, or an access key id with '/', ',' or space
  kBadScope,        // empty or malformed service, region or region set
  kBadTime,         // before 1970 or after 9999
  kBadMethod,       // empty method
  kCrypto,          // OpenSSL failed (e.g. SHA-256/HMAC not available)
};
std::string_view to_string(SignError e);

class Signer {
 public:
  Signer();
  ~Signer();
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;

  std::expected<void, SignError> sign(const SignRequest& request, const Credentials& credentials,
                                      const SignOptions& options, SignedHeaders& out);

  // The last signature's canonical request and string to sign, for debugging and tests.
  std::string_view canonical_request() const { return canonical_; }
  std::string_view string_to_sign() const { return string_to_sign_; }
  // Signing keys derived so far (a cache miss each, SigV4 and SigV4A); tests use it to see the
  // cache work.
  uint64_t keys_derived() const { return keys_derived_; }

 private:
  struct SignedHeader {
    uint32_t name_off, name_len;  // lower-case name in names_
    std::string_view value;
    uint32_t order;
  };
  struct KeyEntry {
    std::string secret;
    std::string region;
    std::string service;
    char date[8];
    unsigned char key[32];
    bool used = false;
  };

  bool sha256_hex(std::string_view data, char out[64]);
  bool hmac(std::span<const unsigned char> key, std::string_view data, unsigned char out[32]);
  const unsigned char* signing_key(const Credentials& c, std::string_view date,
                                   std::string_view region, std::string_view service);
  // The SigV4A key pair for the credentials (derived once per access key id and secret).
  EVP_PKEY* ecdsa_key(const Credentials& c);

  struct EcdsaEntry {
    std::string access_key_id;
    std::string secret;
    EVP_PKEY* key = nullptr;
  };
  std::array<EcdsaEntry, 2> ecdsa_keys_{};
  size_t next_ecdsa_slot_ = 0;

  EVP_MD* md_ = nullptr;
  EVP_MD_CTX* md_ctx_ = nullptr;
  EVP_MD_CTX* ecdsa_ctx_ = nullptr;
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* mac_ctx_ = nullptr;

  std::string canonical_;
  std::string string_to_sign_;
  std::string names_;    // lower-cased header names
  std::string scratch_;  // decoded/encoded query parts
  std::vector<SignedHeader> headers_;
  std::vector<std::string_view> segments_;
  std::vector<std::pair<std::string_view, std::string_view>> query_;
  std::array<KeyEntry, 4> keys_{};
  size_t next_key_slot_ = 0;
  uint64_t keys_derived_ = 0;
};

// Pure helpers behind the canonical request, exposed for tests. Each appends to out.
void append_canonical_path(std::string& out, std::string_view path, bool normalize);
void append_canonical_query(std::string& out, std::string_view query);
// Lower-case hex SHA-256 of data (convenience for callers hashing a buffered body).
std::string sha256_hex(std::string_view data);
// Checks a SigV4A signature (hex DER ECDSA) over string_to_sign with the key pair AWS derives
// from the credentials. For tests and diagnosis (the tool cross-checks awscrt's signatures).
bool verify_sigv4a_signature(const Credentials& credentials, std::string_view string_to_sign,
                             std::string_view signature_hex);

// "YYYYMMDDTHHMMSSZ"; false outside years 1970..9999.
bool format_amz_date(std::chrono::system_clock::time_point t, char out[16]);

}  // namespace outrigger::aws
