#include "proxy/aws/sigv4.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>

namespace outrigger::aws {
namespace {

constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kAlgorithmA = "AWS4-ECDSA-P256-SHA256";

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

void append_encoded(std::string& out, std::string_view s, bool keep_slash) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHexUpper[c >> 4];
      out += kHexUpper[c & 15];
    }
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes s and encodes the result with the unreserved set, in one pass. A '%' not
// followed by two hex digits is a literal '%' (what Python's unquote does too).
void append_reencoded(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%' && i + 2 < s.size()) {
      int hi = hex_digit(s[i + 1]);
      int lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = static_cast<unsigned char>(hi * 16 + lo);
        i += 2;
      }
    }
    if (is_unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHexUpper[c >> 4];
      out += kHexUpper[c & 15];
    }
  }
}

// Python's str.split() whitespace for ASCII (botocore trims with it).
bool is_space(unsigned char c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
}

// Lowercase(value) is not applied: values keep their case; runs of whitespace become one space.
void append_trimmed(std::string& out, std::string_view v) {
  bool pending_space = false;
  bool any = false;
  for (char ch : v) {
    if (is_space(static_cast<unsigned char>(ch))) {
      pending_space = any;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    any = true;
    out += ch;
  }
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// a in any case, b already lower case.
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != b[i]) return false;
  }
  return true;
}

bool is_reserved_header(std::string_view lower) {
  return lower == "authorization" || lower == "x-amz-date" || lower == "x-amz-security-token" ||
         lower == "x-amz-content-sha256" || lower == "x-amz-region-set";
}

bool valid_scope_part(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool valid_region_set(std::string_view s) {
  if (s.empty() || s.size() > 512) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == ',' || c == '*';
  });
}

bool valid_payload_hash(std::string_view h) {
  if (h == kUnsignedPayload) return true;
  if (h.size() != 64) return false;
  return std::all_of(h.begin(), h.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void append_hex(std::string& out, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    out += kHexLower[p[i] >> 4];
    out += kHexLower[p[i] & 15];
  }
}

// RFC 3986 5.2.4 dot-segment removal as botocore does it, which also drops empty segments (AWS
// collapses "//"). segs is scratch.
void append_normalized_path(std::string& out, std::string_view path,
                            std::vector<std::string_view>& segs) {
  if (path.empty()) {
    out += '/';
    return;
  }
  segs.clear();
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (!seg.empty() && seg != ".") {
      if (seg == "..") {
        if (!segs.empty()) segs.pop_back();
      } else {
        segs.push_back(seg);
      }
    }
    start = end + 1;
  }
  if (path.front() == '/') out += '/';
  for (size_t i = 0; i < segs.size(); ++i) {
    if (i > 0) out += '/';
    append_encoded(out, segs[i], false);
  }
  if (path.back() == '/' && !segs.empty()) out += '/';
}

// query pairs are views into scratch, which must have capacity for 3x the query (no realloc).
void build_query(std::string_view query, std::string& scratch,
                 std::vector<std::pair<std::string_view, std::string_view>>& pairs) {
  pairs.clear();
  scratch.clear();
  scratch.reserve(query.size() * 3 + 1);
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view piece = query.substr(start, end - start);
    start = end + 1;
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string_view k = piece.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    size_t k_off = scratch.size();
    append_reencoded(scratch, k);
    size_t v_off = scratch.size();
    append_reencoded(scratch, v);
    std::string_view base(scratch.data(), scratch.size());
    pairs.emplace_back(base.substr(k_off, v_off - k_off), base.substr(v_off));
  }
  std::sort(pairs.begin(), pairs.end());
}

void append_query_pairs(std::string& out,
                        const std::vector<std::pair<std::string_view, std::string_view>>& pairs) {
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i > 0) out += '&';
    out += pairs[i].first;
    out += '=';
    out += pairs[i].second;
  }
}

struct BnCtxFree {
  void operator()(BN_CTX* c) const { BN_CTX_free(c); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }
};
struct GroupFree {
  void operator()(EC_GROUP* g) const { EC_GROUP_free(g); }
};
struct PointFree {
  void operator()(EC_POINT* p) const { EC_POINT_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// The SigV4A key pair (AWS docs, "SigV4a key derivation"): NIST SP 800-108 HMAC-SHA256 counter
// mode KDF over "AWS4A" + secret with label "AWS4-ECDSA-P256-SHA256" and context access key id +
// counter byte; the first output c <= n - 2 gives the private key c + 1. Rare (once per
// credentials), so allocation and the one-shot HMAC are fine here.
EVP_PKEY* derive_sigv4a_key(const Credentials& creds) {
  std::unique_ptr<EC_GROUP, GroupFree> group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  std::unique_ptr<BN_CTX, BnCtxFree> bn_ctx(BN_CTX_new());
  if (!group || !bn_ctx) return nullptr;
  std::unique_ptr<BIGNUM, BnFree> limit(BN_dup(EC_GROUP_get0_order(group.get())));
  if (!limit || BN_sub_word(limit.get(), 2) != 1) return nullptr;
  std::string key = "AWS4A" + creds.secret_access_key;
  std::string msg;
  std::unique_ptr<BIGNUM, BnFree> d;
  for (int counter = 1; counter <= 254 && !d; ++counter) {
    msg.assign("\x00\x00\x00\x01", 4);
    msg += kAlgorithmA;
    msg += '\0';
    msg += creds.access_key_id;
    msg += static_cast<char>(counter);
    msg.append("\x00\x00\x01\x00", 4);  // output length in bits: 256
    unsigned char out[32];
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &n) == nullptr ||
        n != 32) {
      break;
    }
    std::unique_ptr<BIGNUM, BnFree> c(BN_bin2bn(out, 32, nullptr));
    OPENSSL_cleanse(out, sizeof out);
    if (!c) break;
    if (BN_cmp(c.get(), limit.get()) <= 0) {
      if (BN_add_word(c.get(), 1) != 1) break;
      d = std::move(c);
    }
  }
  OPENSSL_cleanse(key.data(), key.size());
  if (!d) return nullptr;
  std::unique_ptr<EC_POINT, PointFree> pub(EC_POINT_new(group.get()));
  unsigned char pub_bytes[65];
  if (!pub || EC_POINT_mul(group.get(), pub.get(), d.get(), nullptr, nullptr, bn_ctx.get()) != 1 ||
      EC_POINT_point2oct(group.get(), pub.get(), POINT_CONVERSION_UNCOMPRESSED, pub_bytes,
                         sizeof pub_bytes, bn_ctx.get()) != sizeof pub_bytes) {
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  char group_name[] = "prime256v1";
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub_bytes,
                                       sizeof pub_bytes) != 1) {
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    return nullptr;
  }
  return pkey;
}

}  // namespace

bool verify_sigv4a_signature(const Credentials& credentials, std::string_view string_to_sign,
                             std::string_view signature_hex) {
  if (signature_hex.size() % 2 != 0 || signature_hex.size() > 2 * 80) return false;
  unsigned char sig[80];
  for (size_t i = 0; i < signature_hex.size(); i += 2) {
    int hi = hex_digit(signature_hex[i]), lo = hex_digit(signature_hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    sig[i / 2] = static_cast<unsigned char>(hi * 16 + lo);
  }
  EVP_PKEY* key = derive_sigv4a_key(credentials);
  if (key == nullptr) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
  bool ok =
      md &&
      EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) == 1 &&
      EVP_DigestVerify(md.get(), sig, signature_hex.size() / 2,
                       reinterpret_cast<const unsigned char*>(string_to_sign.data()),
                       string_to_sign.size()) == 1;
  EVP_PKEY_free(key);
  return ok;
}

std::string_view to_string(SignError e) {
  switch (e) {
    case SignError::kMissingHost:
      return "request has no Host header";
    case SignError::kBadPayloadHash:
      return "payload hash is neither hex SHA-256 nor UNSIGNED-PAYLOAD";
    case SignError::kBadCredentials:
      return "credentials lack an access key id or secret";
    case SignError::kBadScope:
      return "service or region is empty or malformed";
    case SignError::kBadTime:
      return "signing time outside 1970..9999";
    case SignError::kBadMethod:
      return "empty method";
    case SignError::kCrypto:
      return "OpenSSL SHA-256/HMAC unavailable";
  }
  return "unknown signing error";
}

bool format_amz_date(std::chrono::system_clock::time_point t, char out[16]) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto day = floor<days>(secs);
  year_month_day ymd{day};
  int y = static_cast<int>(ymd.year());
  if (y < 1970 || y > 9999) return false;
  hh_mm_ss hms{secs - day};
  unsigned m = static_cast<unsigned>(ymd.month());
  unsigned d = static_cast<unsigned>(ymd.day());
  auto put2 = [&](int at, unsigned v) {
    out[at] = static_cast<char>('0' + v / 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  put2(0, static_cast<unsigned>(y / 100));
  put2(2, static_cast<unsigned>(y % 100));
  put2(4, m);
  put2(6, d);
  out[8] = 'T';
  put2(9, static_cast<unsigned>(hms.hours().count()));
  put2(11, static_cast<unsigned>(hms.minutes().count()));
  put2(13, static_cast<unsigned>(hms.seconds().count()));
  out[15] = 'Z';
  return true;
}

void append_canonical_path(std::string& out, std::string_view path, bool normalize) {
  if (!normalize) {
    out += path.empty() ? std::string_view("/") : path;
    return;
  }
  std::vector<std::string_view> segs;
  append_normalized_path(out, path, segs);
}

void append_canonical_query(std::string& out, std::string_view query) {
  std::string scratch;
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  build_query(query, scratch, pairs);
  append_query_pairs(out, pairs);
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  std::string out;
  if (EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr) != 1) return out;
  append_hex(out, md, n);
  return out;
}

Signer::Signer() {
  md_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  md_ctx_ = EVP_MD_CTX_new();
  ecdsa_ctx_ = EVP_MD_CTX_new();
  mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac_ != nullptr) mac_ctx_ = EVP_MAC_CTX_new(mac_);
  if (mac_ctx_ != nullptr) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac_ctx_, params) != 1) {
      EVP_MAC_CTX_free(mac_ctx_);
      mac_ctx_ = nullptr;
    }
  }
  canonical_.reserve(1024);
  string_to_sign_.reserve(160);
}

Signer::~Signer() {
  for (EcdsaEntry& e : ecdsa_keys_) {
    EVP_PKEY_free(e.key);
    if (!e.secret.empty()) OPENSSL_cleanse(e.secret.data(), e.secret.size());
  }
  EVP_MAC_CTX_free(mac_ctx_);
  EVP_MAC_free(mac_);
  EVP_MD_CTX_free(md_ctx_);
  EVP_MD_CTX_free(ecdsa_ctx_);
  EVP_MD_free(md_);
  // Signing keys and secrets are wiped, not just freed.
  for (KeyEntry& k : keys_) {
    OPENSSL_cleanse(k.key, sizeof k.key);
    if (!k.secret.empty()) OPENSSL_cleanse(k.secret.data(), k.secret.size());
  }
}

bool Signer::sha256_hex(std::string_view data, char out[64]) {
  unsigned char md[32];
  unsigned int n = 0;
  if (md_ctx_ == nullptr || md_ == nullptr) return false;
  if (EVP_DigestInit_ex2(md_ctx_, md_, nullptr) != 1 ||
      EVP_DigestUpdate(md_ctx_, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(md_ctx_, md, &n) != 1 || n != 32) {
    return false;
  }
  for (int i = 0; i < 32; ++i) {
    out[2 * i] = kHexLower[md[i] >> 4];
    out[2 * i + 1] = kHexLower[md[i] & 15];
  }
  return true;
}

bool Signer::hmac(std::span<const unsigned char> key, std::string_view data,
                  unsigned char out[32]) {
  if (mac_ctx_ == nullptr) return false;
  size_t n = 0;
  return EVP_MAC_init(mac_ctx_, key.data(), key.size(), nullptr) == 1 &&
         EVP_MAC_update(mac_ctx_, reinterpret_cast<const unsigned char*>(data.data()),
                        data.size()) == 1 &&
         EVP_MAC_final(mac_ctx_, out, &n, 32) == 1 && n == 32;
}

const unsigned char* Signer::signing_key(const Credentials& c, std::string_view date,
                                         std::string_view region, std::string_view service) {
  for (KeyEntry& k : keys_) {
    if (k.used && std::string_view(k.date, 8) == date && k.region == region &&
        k.service == service && k.secret == c.secret_access_key) {
      return k.key;
    }
  }
  // Miss: derive kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
  // "aws4_request"). Rare (daily, or on rotation), so the temporary string is fine.
  std::string seed = "AWS4";
  seed += c.secret_access_key;
  unsigned char a[32], b[32];
  bool ok = hmac({reinterpret_cast<const unsigned char*>(seed.data()), seed.size()}, date, a) &&
            hmac(a, region, b) && hmac(b, service, a) && hmac(a, "aws4_request", b);
  OPENSSL_cleanse(seed.data(), seed.size());
  if (!ok) return nullptr;
  KeyEntry& slot = keys_[next_key_slot_];
  next_key_slot_ = (next_key_slot_ + 1) % keys_.size();
  if (!slot.secret.empty()) OPENSSL_cleanse(slot.secret.data(), slot.secret.size());
  slot.secret = c.secret_access_key;
  slot.region = region;
  slot.service = service;
  std::memcpy(slot.date, date.data(), 8);
  std::memcpy(slot.key, b, 32);
  slot.used = true;
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  ++keys_derived_;
  return slot.key;
}

EVP_PKEY* Signer::ecdsa_key(const Credentials& c) {
  for (EcdsaEntry& e : ecdsa_keys_) {
    if (e.key != nullptr && e.access_key_id == c.access_key_id && e.secret == c.secret_access_key) {
      return e.key;
    }
  }
  EVP_PKEY* key = derive_sigv4a_key(c);
  if (key == nullptr) return nullptr;
  EcdsaEntry& slot = ecdsa_keys_[next_ecdsa_slot_];
  next_ecdsa_slot_ = (next_ecdsa_slot_ + 1) % ecdsa_keys_.size();
  EVP_PKEY_free(slot.key);
  if (!slot.secret.empty()) OPENSSL_cleanse(slot.secret.data(), slot.secret.size());
  slot.access_key_id = c.access_key_id;
  slot.secret = c.secret_access_key;
  slot.key = key;
  ++keys_derived_;
  return key;
}

std::expected<void, SignError> Signer::sign(const SignRequest& req, const Credentials& creds,
                                            const SignOptions& opts, SignedHeaders& out) {
  if (req.method.empty()) return std::unexpected(SignError::kBadMethod);
  if (creds.access_key_id.empty() || creds.secret_access_key.empty() ||
      creds.access_key_id.find_first_of("/, \t\r\n") != std::string::npos) {
    return std::unexpected(SignError::kBadCredentials);
  }
  const bool v4a = opts.algorithm == Algorithm::kSigV4A;
  if (!valid_scope_part(req.service) ||
      (v4a ? !valid_region_set(opts.region_set) : !valid_scope_part(req.region))) {
    return std::unexpected(SignError::kBadScope);
  }
  const bool lattice = req.service == kLatticeService;
  std::string_view payload = lattice ? kUnsignedPayload : req.payload_hash;
  if (!valid_payload_hash(payload)) return std::unexpected(SignError::kBadPayloadHash);
  char date[16];
  if (!format_amz_date(req.time, date)) return std::unexpected(SignError::kBadTime);
  if (md_ctx_ == nullptr || md_ == nullptr || mac_ctx_ == nullptr) {
    return std::unexpected(SignError::kCrypto);
  }

  out.amz_date.assign(date, 16);
  out.security_token.assign(creds.session_token);
  if (lattice || opts.add_content_sha256 || payload == kUnsignedPayload) {
    out.content_sha256.assign(payload);
  } else {
    out.content_sha256.clear();
  }
  if (v4a) {
    out.region_set.assign(opts.region_set);
  } else {
    out.region_set.clear();
  }

  // Select and lower-case the signed headers; names are kept as offsets into names_, so growing it
  // is harmless, but after warm-up it never needs to.
  std::span<const std::string_view> allow = opts.signed_headers;
  if (allow.empty()) allow = kDefaultSignedHeaders;
  size_t name_bytes = 128;  // room for the names the signer adds
  for (const Header& h : req.headers) name_bytes += h.name.size();
  names_.clear();
  names_.reserve(name_bytes);
  headers_.clear();
  bool have_host = false;
  auto add = [&](std::string_view name, std::string_view value) {
    auto off = static_cast<uint32_t>(names_.size());
    names_ += name;
    headers_.push_back(SignedHeader{off, static_cast<uint32_t>(name.size()), value,
                                    static_cast<uint32_t>(headers_.size())});
  };
  for (const Header& h : req.headers) {
    const size_t mark = names_.size();
    for (char c : h.name) names_ += to_lower(c);
    std::string_view lower(names_.data() + mark, h.name.size());
    bool sign = false;
    if (is_reserved_header(lower)) {
      sign = false;
    } else if (lower == "host") {
      sign = true;
      have_host = true;
    } else if (opts.sign_all_headers) {
      sign = std::find(kNeverSignedHeaders.begin(), kNeverSignedHeaders.end(), lower) ==
             kNeverSignedHeaders.end();
    } else if (opts.sign_x_amz_headers && lower.starts_with("x-amz-")) {
      sign = true;
    } else {
      sign = std::any_of(allow.begin(), allow.end(),
                         [&](std::string_view a) { return iequals(a, lower); });
    }
    if (sign) {
      headers_.push_back(SignedHeader{static_cast<uint32_t>(mark),
                                      static_cast<uint32_t>(h.name.size()), h.value,
                                      static_cast<uint32_t>(headers_.size())});
    } else {
      names_.resize(mark);
    }
  }
  if (!have_host) return std::unexpected(SignError::kMissingHost);
  add("x-amz-date", out.amz_date);
  if (!out.security_token.empty()) add("x-amz-security-token", out.security_token);
  if (!out.content_sha256.empty()) add("x-amz-content-sha256", out.content_sha256);
  if (!out.region_set.empty()) add("x-amz-region-set", out.region_set);

  auto name_of = [&](const SignedHeader& h) {
    return std::string_view(names_.data() + h.name_off, h.name_len);
  };
  std::sort(headers_.begin(), headers_.end(), [&](const SignedHeader& a, const SignedHeader& b) {
    int c = name_of(a).compare(name_of(b));
    return c != 0 ? c < 0 : a.order < b.order;
  });

  // Canonical request.
  canonical_.clear();
  for (char c : req.method) canonical_ += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
  canonical_ += '\n';
  if (opts.normalize_path) {
    append_normalized_path(canonical_, req.path, segments_);
  } else {
    canonical_ += req.path.empty() ? std::string_view("/") : req.path;
  }
  canonical_ += '\n';
  build_query(req.query, scratch_, query_);
  append_query_pairs(canonical_, query_);
  canonical_ += '\n';
  for (size_t i = 0; i < headers_.size(); ++i) {
    std::string_view name = name_of(headers_[i]);
    bool first_of_name = i == 0 || name_of(headers_[i - 1]) != name;
    if (first_of_name) {
      canonical_ += name;
      canonical_ += ':';
    } else {
      canonical_ += ',';
    }
    append_trimmed(canonical_, headers_[i].value);
    bool last_of_name = i + 1 == headers_.size() || name_of(headers_[i + 1]) != name;
    if (last_of_name) canonical_ += '\n';
  }
  canonical_ += '\n';
  const size_t signed_start = canonical_.size();
  for (size_t i = 0; i < headers_.size(); ++i) {
    std::string_view name = name_of(headers_[i]);
    if (i > 0 && name_of(headers_[i - 1]) == name) continue;
    if (i > 0) canonical_ += ';';
    canonical_ += name;
  }
  const size_t signed_len = canonical_.size() - signed_start;
  canonical_ += '\n';
  canonical_ += payload;

  // String to sign.
  char hash[64];
  if (!sha256_hex(canonical_, hash)) return std::unexpected(SignError::kCrypto);
  std::string_view day(date, 8);
  string_to_sign_.clear();
  string_to_sign_ += v4a ? kAlgorithmA : kAlgorithm;
  string_to_sign_ += '\n';
  string_to_sign_.append(date, 16);
  string_to_sign_ += '\n';
  const size_t scope_start = string_to_sign_.size();
  string_to_sign_ += day;
  string_to_sign_ += '/';
  if (!v4a) {  // SigV4A scopes carry no region: the region set header says where it is valid
    string_to_sign_ += req.region;
    string_to_sign_ += '/';
  }
  string_to_sign_ += req.service;
  string_to_sign_ += "/aws4_request";
  const size_t scope_len = string_to_sign_.size() - scope_start;
  string_to_sign_ += '\n';
  string_to_sign_.append(hash, 64);

  // ECDSA signatures are DER, at most 72 bytes for P-256.
  unsigned char sig[80];
  size_t sig_len = 0;
  if (v4a) {
    EVP_PKEY* pkey = ecdsa_key(creds);
    if (pkey == nullptr || ecdsa_ctx_ == nullptr) return std::unexpected(SignError::kCrypto);
    sig_len = sizeof sig;
    if (EVP_DigestSignInit_ex(ecdsa_ctx_, nullptr, "SHA256", nullptr, nullptr, pkey, nullptr) !=
            1 ||
        EVP_DigestSign(ecdsa_ctx_, sig, &sig_len,
                       reinterpret_cast<const unsigned char*>(string_to_sign_.data()),
                       string_to_sign_.size()) != 1) {
      return std::unexpected(SignError::kCrypto);
    }
  } else {
    const unsigned char* key = signing_key(creds, day, req.region, req.service);
    if (key == nullptr) return std::unexpected(SignError::kCrypto);
    if (!hmac({key, 32}, string_to_sign_, sig)) return std::unexpected(SignError::kCrypto);
    sig_len = 32;
  }

  out.authorization.clear();
  out.authorization += v4a ? kAlgorithmA : kAlgorithm;
  out.authorization += " Credential=";
  out.authorization += creds.access_key_id;
  out.authorization += '/';
  out.authorization.append(string_to_sign_, scope_start, scope_len);
  out.authorization += ", SignedHeaders=";
  out.authorization.append(canonical_, signed_start, signed_len);
  out.authorization += ", Signature=";
  append_hex(out.authorization, sig, sig_len);
  return {};
}

}  // namespace outrigger::aws
