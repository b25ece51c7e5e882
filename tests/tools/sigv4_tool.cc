// Signs requests described as JSON lines on stdin and prints one JSON line per request with the
// headers our signer adds (and its canonical request and string to sign, for diagnosis), so that
// tests/integration/test_sigv4_botocore.py can compare them with botocore's.
//
// Input line: {"method","path","query","headers":[[name,value],...],"payload_hash","service",
//   "region","time":<unix seconds>,"access_key","secret_key","token","sign_all":bool,
//   "add_content_sha256":bool,"signed_headers":[names],"normalize_path":bool,
//   "algorithm":"v4"|"v4a","region_set","verify_signature":<hex DER>}
// Output line: {"authorization","x-amz-date","x-amz-security-token","x-amz-content-sha256",
//   "x-amz-region-set","canonical_request","string_to_sign"[,"verified":"true"|"false"]} or
//   {"error": "..."}. With verify_signature (SigV4A), "verified" says whether that signature (from
//   another implementation) verifies over our string to sign with our derived key.
#include <charconv>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "proxy/aws/json.h"
#include "proxy/aws/sigv4.h"
#include "proxy/base/log.h"

namespace {

using outrigger::aws::Header;
namespace json = outrigger::aws::json;

struct Input {
  std::string method, path, query, payload_hash, service, region;
  std::string access_key, secret_key, token;
  std::string algorithm = "v4", region_set = "*", verify_signature;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> signed_headers;
  long long time = 0;
  bool sign_all = false, add_content_sha256 = false, normalize_path = true;
};

std::string parse(std::string_view line, Input& in) {
  auto members = json::parse_object(line);
  if (!members) return members.error();
  for (const json::Member& m : *members) {
    const json::Value& v = m.value;
    auto str = [&](std::string& dst) -> std::string {
      auto s = json::decode_string(v.raw);
      if (!s) return m.key + ": " + s.error();
      dst = std::move(*s);
      return {};
    };
    std::string err;
    const std::pair<std::string_view, std::string*> strings[] = {
        {"method", &in.method},         {"path", &in.path},
        {"query", &in.query},           {"payload_hash", &in.payload_hash},
        {"service", &in.service},       {"region", &in.region},
        {"access_key", &in.access_key}, {"secret_key", &in.secret_key},
        {"token", &in.token},           {"algorithm", &in.algorithm},
        {"region_set", &in.region_set}, {"verify_signature", &in.verify_signature}};
    std::string* dst = nullptr;
    for (const auto& [key, field] : strings) {
      if (m.key == key) dst = field;
    }
    if (dst != nullptr)
      err = str(*dst);
    else if (m.key == "sign_all")
      in.sign_all = v.kind == json::Kind::kTrue;
    else if (m.key == "add_content_sha256")
      in.add_content_sha256 = v.kind == json::Kind::kTrue;
    else if (m.key == "normalize_path")
      in.normalize_path = v.kind != json::Kind::kFalse;
    else if (m.key == "time") {
      auto r = std::from_chars(v.raw.data(), v.raw.data() + v.raw.size(), in.time);
      if (r.ec != std::errc() || r.ptr != v.raw.data() + v.raw.size()) err = "time: not an integer";
    } else if (m.key == "headers") {
      auto pairs = json::parse_array(v.raw);
      if (!pairs) return "headers: " + pairs.error();
      for (const json::Value& p : *pairs) {
        auto nv = json::parse_array(p.raw);
        if (!nv || nv->size() != 2) return "headers: each must be [name, value]";
        auto n = json::decode_string((*nv)[0].raw);
        auto val = json::decode_string((*nv)[1].raw);
        if (!n || !val) return "headers: name and value must be strings";
        in.headers.emplace_back(std::move(*n), std::move(*val));
      }
    } else if (m.key == "signed_headers") {
      auto names = json::parse_array(v.raw);
      if (!names) return "signed_headers: " + names.error();
      for (const json::Value& n : *names) {
        auto s = json::decode_string(n.raw);
        if (!s) return "signed_headers: names must be strings";
        in.signed_headers.push_back(std::move(*s));
      }
    } else {
      err = "unknown field " + m.key;
    }
    if (!err.empty()) return err;
  }
  return {};
}

void field(std::string& out, std::string_view key, std::string_view value) {
  if (out.size() > 1) out += ',';
  outrigger::log::append_json_string(out, key);
  out += ':';
  outrigger::log::append_json_string(out, value);
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  outrigger::aws::Signer signer;
  outrigger::aws::SignedHeaders signed_headers;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    std::string out = "{";
    Input in;
    std::string err = parse(line, in);
    if (err.empty()) {
      std::vector<Header> headers;
      for (const auto& [n, v] : in.headers) headers.push_back(Header{n, v});
      std::vector<std::string_view> names(in.signed_headers.begin(), in.signed_headers.end());
      outrigger::aws::SignRequest req;
      req.method = in.method;
      req.path = in.path;
      req.query = in.query;
      req.headers = headers;
      req.payload_hash = in.payload_hash;
      req.service = in.service;
      req.region = in.region;
      req.time = std::chrono::system_clock::time_point(std::chrono::seconds(in.time));
      outrigger::aws::Credentials creds{in.access_key, in.secret_key, in.token, std::nullopt};
      outrigger::aws::SignOptions opts;
      opts.signed_headers = names;
      opts.sign_all_headers = in.sign_all;
      opts.add_content_sha256 = in.add_content_sha256;
      opts.normalize_path = in.normalize_path;
      opts.region_set = in.region_set;
      if (in.algorithm == "v4a") {
        opts.algorithm = outrigger::aws::Algorithm::kSigV4A;
      } else if (in.algorithm != "v4") {
        err = "algorithm must be v4 or v4a";
      }
      auto r = signer.sign(req, creds, opts, signed_headers);
      if (!err.empty()) {
        // reported below
      } else if (!r) {
        err = std::string(outrigger::aws::to_string(r.error()));
      } else {
        signed_headers.for_each([&](std::string_view n, std::string_view v) { field(out, n, v); });
        field(out, "canonical_request", signer.canonical_request());
        field(out, "string_to_sign", signer.string_to_sign());
        if (!in.verify_signature.empty()) {
          bool ok = outrigger::aws::verify_sigv4a_signature(creds, signer.string_to_sign(),
                                                            in.verify_signature);
          field(out, "verified", ok ? "true" : "false");
        }
      }
    }
    if (!err.empty()) field(out, "error", err);
    out += "}\n";
    std::cout << out << std::flush;
  }
  return 0;
}
