// SigV4 signer: published AWS examples, canonical-form rules one by one, header selection, the
// Lattice unsigned-payload rule, errors and the signing-key cache. The randomized byte-for-byte
// comparison with botocore is tests/integration/test_sigv4_botocore.py.
#include "proxy/aws/sigv4.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace outrigger::aws {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
// 2015-08-30T12:36:00Z, the time of AWS's published examples.
const auto kExampleTime = std::chrono::system_clock::time_point(1440938160s);

Credentials example_credentials(std::string token = "") {
  return Credentials{"AKIDEXAMPLE", std::string(kSecret), std::move(token), std::nullopt};
}

std::string canonical_path(std::string_view p, bool normalize = true) {
  std::string out;
  append_canonical_path(out, p, normalize);
  return out;
}

std::string canonical_query(std::string_view q) {
  std::string out;
  append_canonical_query(out, q);
  return out;
}

struct Signed {
  SignedHeaders headers;
  std::string canonical;
  std::string string_to_sign;
};

Signed sign_ok(Signer& signer, const SignRequest& req, const SignOptions& opts = {},
               const Credentials& creds = example_credentials()) {
  Signed s;
  auto r = signer.sign(req, creds, opts, s.headers);
  EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
  s.canonical = signer.canonical_request();
  s.string_to_sign = signer.string_to_sign();
  return s;
}

// The AWS test suite's get-vanilla request.
TEST(SigV4, AwsTestSuiteGetVanilla) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "example.amazonaws.com"}};
  SignRequest req{"GET", "/", "", headers, kEmptyPayloadHash, "service", "us-east-1", kExampleTime};
  Signed s = sign_ok(signer, req);
  EXPECT_EQ(s.headers.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(s.headers.amz_date, "20150830T123600Z");
  EXPECT_TRUE(s.headers.security_token.empty());
  EXPECT_TRUE(s.headers.content_sha256.empty());
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

// The IAM User Guide's ListUsers example (query parameters, content-type signed by default).
TEST(SigV4, IamListUsersExample) {
  Signer signer;
  std::vector<Header> headers = {
      {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"Host", "iam.amazonaws.com"}};
  SignRequest req{"GET",
                  "/",
                  "Version=2010-05-08&Action=ListUsers",
                  headers,
                  kEmptyPayloadHash,
                  "iam",
                  "us-east-1",
                  kExampleTime};
  Signed s = sign_ok(signer, req);
  EXPECT_EQ(s.canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
            "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
            "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.headers.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

// Lattice with a session token; the expected value was computed by botocore 1.29 (SigV4Auth with
// the header and context the Lattice user guide prescribes).
TEST(SigV4, LatticeWithSessionTokenMatchesBotocoreVector) {
  Signer signer;
  std::string host = "orders-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
  std::vector<Header> headers = {{"Host", host}, {"Content-Type", "application/json"}};
  SignRequest req{"POST",
                  "/orders/42",
                  "",
                  headers,
                  sha256_hex("{}"),
                  "vpc-lattice-svcs",
                  "us-west-2",
                  std::chrono::system_clock::time_point(1763789897s)};
  Signed s = sign_ok(signer, req, {}, example_credentials("FQoGZXIvYXdzEXAMPLE"));
  EXPECT_EQ(s.headers.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251122/us-west-2/vpc-lattice-svcs/"
            "aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-security-token, "
            "Signature=38576a3917788ba4d3596781964577046156b673e593d57b0e09bbef9dbe3294");
  EXPECT_EQ(s.headers.security_token, "FQoGZXIvYXdzEXAMPLE");
  EXPECT_EQ(s.headers.content_sha256, "UNSIGNED-PAYLOAD");
}

TEST(SigV4, LatticeAlwaysUnsignedPayloadWhateverTheCallerPasses) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "h"}, {"x-amz-content-sha256", "stale"}};
  SignRequest req{"PUT",           "/",         "",          headers, sha256_hex("body"),
                  kLatticeService, "us-east-1", kExampleTime};
  SignOptions opts;
  opts.add_content_sha256 = false;  // overridden for Lattice
  Signed s = sign_ok(signer, req, opts);
  EXPECT_EQ(s.headers.content_sha256, "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(s.canonical.ends_with("\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"));
  EXPECT_NE(s.canonical.find("x-amz-content-sha256:UNSIGNED-PAYLOAD\n"), std::string::npos);
  EXPECT_EQ(s.canonical.find("stale"), std::string::npos);  // the caller's header is replaced
}

TEST(SigV4, ContentSha256HeaderIsOptionalForOtherServices) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "abcde12345.execute-api.us-east-1.amazonaws.com"}};
  std::string hash = sha256_hex("hello");
  SignRequest req{"POST", "/prod/x", "", headers, hash, "execute-api", "us-east-1", kExampleTime};
  Signed off = sign_ok(signer, req);
  EXPECT_TRUE(off.headers.content_sha256.empty());
  EXPECT_TRUE(off.canonical.ends_with("\nhost;x-amz-date\n" + hash));
  SignOptions on;
  on.add_content_sha256 = true;
  Signed with = sign_ok(signer, req, on);
  EXPECT_EQ(with.headers.content_sha256, hash);
  EXPECT_TRUE(with.canonical.ends_with("\nhost;x-amz-content-sha256;x-amz-date\n" + hash));
  // An unsigned payload always announces itself: the verifier could not guess it.
  req.payload_hash = kUnsignedPayload;
  Signed unsigned_payload = sign_ok(signer, req);
  EXPECT_EQ(unsigned_payload.headers.content_sha256, "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(unsigned_payload.canonical.ends_with(
      "\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"));
}

TEST(SigV4, PathIsNormalizedAndEncodedTwice) {
  EXPECT_EQ(canonical_path(""), "/");
  EXPECT_EQ(canonical_path("/"), "/");
  EXPECT_EQ(canonical_path("//"), "/");
  EXPECT_EQ(canonical_path("/a//b/../c"), "/a/c");
  EXPECT_EQ(canonical_path("/a/./b/"), "/a/b/");
  EXPECT_EQ(canonical_path("/a/b/.."), "/a");
  EXPECT_EQ(canonical_path("/.."), "/");
  EXPECT_EQ(canonical_path("/../../x"), "/x");
  EXPECT_EQ(canonical_path("/a/%2E%2E/b"), "/a/%252E%252E/b");  // encoded dots are not dots
  EXPECT_EQ(canonical_path("/%2F"), "/%252F");
  EXPECT_EQ(canonical_path("/a b"), "/a%20b");
  EXPECT_EQ(canonical_path("/a%20b"), "/a%2520b");
  EXPECT_EQ(canonical_path("/~user/-_.x"), "/~user/-_.x");
  EXPECT_EQ(canonical_path("/caf\xc3\xa9"), "/caf%C3%A9");
  EXPECT_EQ(canonical_path("/a+b=c;d:e@f"), "/a%2Bb%3Dc%3Bd%3Ae%40f");
  // S3 rules: exactly as given.
  EXPECT_EQ(canonical_path("/a//b/../%2F", false), "/a//b/../%2F");
}

TEST(SigV4, QueryIsDecodedReencodedAndSorted) {
  EXPECT_EQ(canonical_query(""), "");
  EXPECT_EQ(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");  // repeated names kept, by value
  EXPECT_EQ(canonical_query("a&b="), "a=&b=");
  EXPECT_EQ(canonical_query("&a=1&&b&"), "a=1&b=");      // empty pieces dropped
  EXPECT_EQ(canonical_query("a-b=2&a=1"), "a=1&a-b=2");  // by name first, not by "name=value"
  EXPECT_EQ(canonical_query("%41=%7e&x=%2f"), "A=~&x=%2F");
  EXPECT_EQ(canonical_query("k=a+b c"), "k=a%2Bb%20c");  // '+' is a literal plus
  EXPECT_EQ(canonical_query("k=%zz&k=%"), "k=%25&k=%25zz");
  EXPECT_EQ(canonical_query("k=x=y"), "k=x%3Dy");
  EXPECT_EQ(canonical_query("B=1&a=1"), "B=1&a=1");  // byte order: upper case first
  EXPECT_EQ(canonical_query("q=caf%C3%A9&r=caf\xc3\xa9"), "q=caf%C3%A9&r=caf%C3%A9");
}

TEST(SigV4, HeadersAreLowercasedTrimmedJoinedAndSorted) {
  Signer signer;
  std::vector<Header> headers = {{"X-Multi", "  one  "},
                                 {"host", "h"},
                                 {"x-multi", "two\t\tparts  here"},
                                 {"X-MULTI", ""},
                                 {"Accept", "*/*"},
                                 {"User-Agent", "app/1"},
                                 {"Connection", "close"},
                                 {"content-type", " a  b "}};
  SignRequest req{"get",         "/",         "",          headers, kEmptyPayloadHash,
                  "execute-api", "us-east-1", kExampleTime};
  SignOptions all;
  all.sign_all_headers = true;
  Signed s = sign_ok(signer, req, all);
  EXPECT_TRUE(s.canonical.starts_with("GET\n"));  // method upper-cased as botocore does
  EXPECT_NE(s.canonical.find("\naccept:*/*\ncontent-type:a b\nhost:h\nx-amz-date:20150830T123600Z\n"
                             "x-multi:one,two parts here,\n\n"),
            std::string::npos)
      << s.canonical;
  EXPECT_NE(s.headers.authorization.find("SignedHeaders=accept;content-type;host;x-amz-date;"
                                         "x-multi,"),
            std::string::npos);  // user-agent and connection never signed
}

TEST(SigV4, DefaultHeaderSelection) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "h"},
                                 {"Content-Type", "text/plain"},
                                 {"Content-Length", "5"},
                                 {"X-Amz-Target", "Svc.Op"},
                                 {"X-Amz-Date", "19990101T000000Z"},
                                 {"Authorization", "old"},
                                 {"X-Amz-Security-Token", "old-token"},
                                 {"Accept", "*/*"},
                                 {"X-Forwarded-For", "10.0.0.1"}};
  SignRequest req{"POST",        "/",         "",          headers, kEmptyPayloadHash,
                  "execute-api", "us-east-1", kExampleTime};
  Signed s = sign_ok(signer, req);
  EXPECT_NE(
      s.headers.authorization.find("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
      std::string::npos)
      << s.headers.authorization;
  EXPECT_EQ(s.canonical.find("old"), std::string::npos);  // stale auth headers never signed
  EXPECT_EQ(s.canonical.find("1999"), std::string::npos);
  EXPECT_TRUE(s.headers.security_token.empty());  // no token in the credentials

  SignOptions custom;
  std::vector<std::string_view> names = {"accept", "Content-Length"};
  custom.signed_headers = names;
  custom.sign_x_amz_headers = false;
  Signed c = sign_ok(signer, req, custom);
  EXPECT_NE(c.headers.authorization.find("SignedHeaders=accept;content-length;host;x-amz-date,"),
            std::string::npos)
      << c.headers.authorization;
}

TEST(SigV4, ForEachListsTheHeadersToAdd) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "h"}};
  SignRequest req{"GET",           "/",         "",          headers, kUnsignedPayload,
                  kLatticeService, "us-east-1", kExampleTime};
  Signed s = sign_ok(signer, req, {}, example_credentials("tok"));
  std::vector<std::string> names;
  s.headers.for_each([&](std::string_view n, std::string_view v) {
    names.push_back(std::string(n));
    EXPECT_FALSE(v.empty());
  });
  EXPECT_EQ(names, (std::vector<std::string>{"authorization", "x-amz-date", "x-amz-security-token",
                                             "x-amz-content-sha256"}));
}

TEST(SigV4, ErrorsAreValues) {
  Signer signer;
  SignedHeaders out;
  std::vector<Header> no_host = {{"Accept", "*/*"}};
  std::vector<Header> host = {{"HOST", "h"}};
  SignRequest base{"GET",         "/",         "",          host, kUnsignedPayload,
                   "execute-api", "us-east-1", kExampleTime};
  auto creds = example_credentials();
  auto err = [&](SignRequest r, Credentials c = example_credentials()) {
    auto res = signer.sign(r, c, {}, out);
    return res ? std::optional<SignError>() : std::optional<SignError>(res.error());
  };
  SignRequest r = base;
  r.headers = no_host;
  EXPECT_EQ(err(r), SignError::kMissingHost);
  r = base;
  r.payload_hash = "ABCDEF";
  EXPECT_EQ(err(r), SignError::kBadPayloadHash);
  const std::string upper_hex(64, 'A');  // upper-case hex is not what AWS computes
  r.payload_hash = upper_hex;
  EXPECT_EQ(err(r), SignError::kBadPayloadHash);
  r = base;
  r.region = "";
  EXPECT_EQ(err(r), SignError::kBadScope);
  r = base;
  r.service = "execute api";
  EXPECT_EQ(err(r), SignError::kBadScope);
  r = base;
  r.time = std::chrono::system_clock::time_point(-5s);
  EXPECT_EQ(err(r), SignError::kBadTime);
  r = base;
  r.method = "";
  EXPECT_EQ(err(r), SignError::kBadMethod);
  Credentials bad = creds;
  bad.secret_access_key.clear();
  EXPECT_EQ(err(base, bad), SignError::kBadCredentials);
  bad = creds;
  bad.access_key_id = "AKID/X";
  EXPECT_EQ(err(base, bad), SignError::kBadCredentials);
  EXPECT_EQ(err(base), std::nullopt);
  for (auto e :
       {SignError::kMissingHost, SignError::kBadPayloadHash, SignError::kBadCredentials,
        SignError::kBadScope, SignError::kBadTime, SignError::kBadMethod, SignError::kCrypto}) {
    EXPECT_FALSE(to_string(e).empty());
  }
}

TEST(SigV4, SigningKeyIsCachedPerSecretDateRegionService) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "h"}};
  SignRequest req{"GET",         "/",         "",          headers, kUnsignedPayload,
                  "execute-api", "us-east-1", kExampleTime};
  SignedHeaders out;
  auto creds = example_credentials();
  ASSERT_TRUE(signer.sign(req, creds, {}, out));
  std::string first = out.authorization;
  req.time += 3h;  // same day
  ASSERT_TRUE(signer.sign(req, creds, {}, out));
  EXPECT_EQ(signer.keys_derived(), 1u);
  req.time += 24h;  // next day: a new key
  ASSERT_TRUE(signer.sign(req, creds, {}, out));
  EXPECT_EQ(signer.keys_derived(), 2u);
  req.region = "eu-west-1";
  ASSERT_TRUE(signer.sign(req, creds, {}, out));
  EXPECT_EQ(signer.keys_derived(), 3u);
  Credentials rotated = creds;
  rotated.secret_access_key = "another-secret";
  ASSERT_TRUE(signer.sign(req, rotated, {}, out));
  EXPECT_EQ(signer.keys_derived(), 4u);
  // Back to the first request: still cached (4 slots), and the same signature as a fresh signer.
  req.time = kExampleTime;
  req.region = "us-east-1";
  ASSERT_TRUE(signer.sign(req, creds, {}, out));
  EXPECT_EQ(signer.keys_derived(), 4u);
  EXPECT_EQ(out.authorization, first);
  Signer fresh;
  SignedHeaders out2;
  ASSERT_TRUE(fresh.sign(req, creds, {}, out2));
  EXPECT_EQ(out2.authorization, first);
}

// SigV4A: the shape of the headers, and a signature made by awscrt 0.16.8 (botocore's
// CrtSigV4AsymAuth) for GET /a/b?x=1 verifies over our string to sign with our derived key.
TEST(SigV4A, SignsWithTheDerivedKeyAndVerifiesAwsCrtSignatures) {
  Signer signer;
  std::vector<Header> headers = {{"Host", "example.amazonaws.com"}};
  SignRequest req{"GET",     "/a/b",    "x=1",       headers, kEmptyPayloadHash,
                  "service", "ignored", kExampleTime};
  SignOptions opts;
  opts.algorithm = Algorithm::kSigV4A;
  Signed s = sign_ok(signer, req, opts);
  const std::string prefix =
      "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/service/aws4_request, "
      "SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=";
  ASSERT_TRUE(s.headers.authorization.starts_with(prefix)) << s.headers.authorization;
  EXPECT_EQ(s.headers.region_set, "*");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-ECDSA-P256-SHA256\n20150830T123600Z\n20150830/service/aws4_request\n"
            "039da023cf202fccc3a38d1c983c3adbdce0d71bf4d16669663504fba1c8d893");
  std::string ours = s.headers.authorization.substr(prefix.size());
  EXPECT_TRUE(verify_sigv4a_signature(example_credentials(), s.string_to_sign, ours));
  const std::string awscrt =
      "3046022100c4e652aafa86e00d47a06b2e3daf3009c8e42746873f32b865786c4c050425c5022100a1a3fcea89"
      "17587a33166359bf17763a3281765bdb1e17d199ba024df8e36f4e";
  EXPECT_TRUE(verify_sigv4a_signature(example_credentials(), s.string_to_sign, awscrt));
  Credentials other = example_credentials();
  other.secret_access_key += "x";
  EXPECT_FALSE(verify_sigv4a_signature(other, s.string_to_sign, awscrt));
  EXPECT_FALSE(verify_sigv4a_signature(example_credentials(), s.string_to_sign + "x", awscrt));
  EXPECT_FALSE(verify_sigv4a_signature(example_credentials(), s.string_to_sign, "zz"));

  // The key pair is derived once per credentials; the HMAC key cache is untouched.
  EXPECT_EQ(signer.keys_derived(), 1u);
  sign_ok(signer, req, opts);
  EXPECT_EQ(signer.keys_derived(), 1u);

  opts.region_set = "us-east-1,us-west-2";
  Signed two = sign_ok(signer, req, opts);
  EXPECT_EQ(two.headers.region_set, "us-east-1,us-west-2");
  EXPECT_NE(two.canonical.find("\nx-amz-region-set:us-east-1,us-west-2\n"), std::string::npos);
  opts.region_set = "us east";
  SignedHeaders out;
  auto bad = signer.sign(req, example_credentials(), opts, out);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error(), SignError::kBadScope);
}

TEST(SigV4, AmzDateFormatting) {
  char buf[16];
  ASSERT_TRUE(format_amz_date(std::chrono::system_clock::time_point(0s), buf));
  EXPECT_EQ(std::string_view(buf, 16), "19700101T000000Z");
  ASSERT_TRUE(format_amz_date(std::chrono::system_clock::time_point(951782399s + 500ms), buf));
  EXPECT_EQ(std::string_view(buf, 16), "20000228T235959Z");
  ASSERT_TRUE(format_amz_date(std::chrono::system_clock::time_point(951868800s), buf));
  EXPECT_EQ(std::string_view(buf, 16), "20000301T000000Z");  // after 29 February 2000
}

TEST(SigV4, Sha256Hex) {
  EXPECT_EQ(sha256_hex(""), kEmptyPayloadHash);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace outrigger::aws
