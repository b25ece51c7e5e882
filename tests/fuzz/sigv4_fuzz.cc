// libFuzzer target for SigV4's canonical request (proxy/aws/sigv4.h): the client's path, query
// and header values go into what the proxy signs for VPC Lattice and API Gateway. Byte-for-byte
// agreement with botocore is checked elsewhere (tests/integration/test_sigv4_botocore.py); here
// arbitrary input, checked against the documented canonical form. Built and run like h1_fuzz.cc
// (tests/CMakeLists.txt, run.sh); by hand:
//   tests/fuzz/run.sh build/release/tests/sigv4_fuzz 600 tests/fuzz/corpus/sigv4
//
// Input: one byte of flags (bit 0: normalize the path; bit 1: SigV4A; bit 2: sign all headers),
// then path, query and header values separated by '\n'. Besides the sanitizers, the properties:
//  * a canonical path (of an origin-form path, as the proxy signs) is "/"-led and holds only
//    unreserved bytes, '/' and %XX (upper-case hex); normalized, it has no empty, "." or ".."
//    segment; not normalized, it is the path as given;
//  * a canonical query holds only unreserved bytes, %XX, '=' and '&', is sorted by name then
//    value, and is its own canonical form (decoding then encoding again changes nothing);
//  * the signer signs any such request (or refuses it with its documented error), its canonical
//    request holds those canonical path and query, and signing is deterministic.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/aws/sigv4.h"
#include "tests/fuzz/fuzz.h"

namespace {
using namespace outrigger::aws;


bool unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}
bool upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

// Only allowed bytes and well-formed %XX escapes.
void check_encoded(std::string_view s, std::string_view also) {
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      check(i + 2 < s.size() && upper_hex(s[i + 1]) && upper_hex(s[i + 2]));
      i += 2;
      continue;
    }
    check(unreserved(c) || also.find(c) != std::string_view::npos);
  }
}

void check_path(std::string_view path, bool normalize) {
  std::string out;
  append_canonical_path(out, path, normalize);
  if (!normalize) {
    check(out == path || (path.empty() && out == "/"));
    return;
  }
  if (path.empty() || path[0] != '/') return;  // the proxy signs origin-form targets only
  check(!out.empty() && out[0] == '/');
  check_encoded(out, "/");
  // Segments between slashes (the last may be empty: a trailing slash is kept).
  size_t start = 1;
  while (start <= out.size()) {
    const size_t end = std::min(out.find('/', start), out.size());
    const std::string_view seg(out.data() + start, end - start);
    if (end < out.size()) check(!seg.empty());
    check(seg != "." && seg != "..");
    start = end + 1;
  }
}

std::vector<std::pair<std::string_view, std::string_view>> pairs_of(std::string_view q) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  size_t start = 0;
  while (start <= q.size() && !q.empty()) {
    const size_t end = std::min(q.find('&', start), q.size());
    const std::string_view p = q.substr(start, end - start);
    const size_t eq = p.find('=');
    check(eq != std::string_view::npos);  // "name=" when there is no value
    out.emplace_back(p.substr(0, eq), p.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

std::string check_query(std::string_view query) {
  std::string out;
  append_canonical_query(out, query);
  check_encoded(out, "=&");
  const auto pairs = pairs_of(out);
  check(std::is_sorted(pairs.begin(), pairs.end()));
  std::string again;
  append_canonical_query(again, out);
  check(again == out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1 || size > 4096) return 0;
  const uint8_t flags = bytes[0];
  std::string_view in(reinterpret_cast<const char*>(bytes + 1), size - 1);
  auto next = [&in]() {
    const size_t nl = std::min(in.find('\n'), in.size());
    const std::string_view part = in.substr(0, nl);
    in.remove_prefix(std::min(nl + 1, in.size()));
    return part;
  };
  const std::string_view raw_path = next();
  const std::string_view query = next();
  const bool normalize = (flags & 1) != 0;
  check_path(raw_path, normalize);
  const std::string canonical_query = check_query(query);

  // The signer, as the proxy calls it (an origin-form path: the target up to '?').
  const std::string path = raw_path.empty() || raw_path[0] != '/' ? "/" + std::string(raw_path)
                                                                  : std::string(raw_path);
  std::vector<Header> headers{{"host", "svc-0123.7d67968.vpc-lattice-svcs.us-east-1.on.aws"}};
  std::vector<std::string_view> names = {"content-type", "x-amz-meta-a", "x-b", "X-Amz-Date",
                                         "Authorization", "te", "user-agent"};
  for (size_t i = 0; i < names.size() && !in.empty(); ++i) headers.push_back({names[i], next()});
  Credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token", {}};
  SignRequest rq;
  rq.method = "POST";
  rq.path = path;
  rq.query = query;
  rq.headers = headers;
  rq.service = kLatticeService;
  rq.region = "us-east-1";
  rq.time = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  SignOptions so;
  so.algorithm = (flags & 2) != 0 ? Algorithm::kSigV4A : Algorithm::kSigV4;
  so.sign_all_headers = (flags & 4) != 0;
  so.normalize_path = normalize;
  Signer signer;
  SignedHeaders out;
  const auto r = signer.sign(rq, creds, so, out);
  check(r.has_value());
  const std::string canonical(signer.canonical_request());
  std::string cpath;
  append_canonical_path(cpath, path, normalize);
  check(canonical.starts_with("POST\n" + cpath + "\n" + canonical_query + "\n"));
  if (so.algorithm == Algorithm::kSigV4) {  // SigV4A signatures are randomised (ECDSA)
    SignedHeaders twice;
    check(signer.sign(rq, creds, so, twice).has_value());
    check(twice.authorization == out.authorization);
  }
  return 0;
}
