// libFuzzer target for the small parsers and encoders of untrusted values, each checked against
// its inverse or against the proxy's own reader of its output. Built and run like h1_fuzz.cc
// (tests/CMakeLists.txt, run.sh); by hand:
//   tests/fuzz/run.sh build/release/tests/values_fuzz 600 tests/fuzz/corpus/values
//
// Input: one mode byte, then the value. Modes and properties:
//  0 JSON from AWS endpoints (proxy/aws/json.h: credentials, task metadata): a document
//    parse_object accepts has members whose raw values parse again by their kind (strings
//    decode, unless they hold a lone surrogate escape; objects and arrays parse; numbers and
//    literals are what they say).
//  1 JSON strings in logs (base/log.h append_json_string, which every access-log field a client
//    sets goes through): the output is printable ASCII, a JSON reader takes it, and it decodes to
//    the input with each byte read as Latin-1 (so nothing is lost and nothing injected).
//  2 grpc-timeout (h2/grpc.h): a parsed value is not negative; formatting it gives a value that
//    parses to no less (rounded up to its unit) and formats to itself.
//  3 grpc-message percent-encoding: the encoding is printable ASCII without a bare '%' and
//    decodes to the input.
//  4 x-outrigger-timeout-ms and Retry-After (upstream/retry.h): a timeout is 1 to 86400000 ms of
//    plain digits; a Retry-After is never negative, and delta-seconds read as their number.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/aws/json.h"
#include "proxy/base/log.h"
#include "proxy/h2/grpc.h"
#include "proxy/upstream/retry.h"
#include "tests/fuzz/fuzz.h"

namespace {
using namespace outrigger;


void check_value(const aws::json::Value& v, int depth) {
  using aws::json::Kind;
  check(depth <= aws::json::kMaxDepth + 1);
  switch (v.kind) {
    case Kind::kString:
      check(v.raw.size() >= 2 && v.raw.front() == '"' && v.raw.back() == '"');
      // RFC 8259 8.2 lets a string hold a lone surrogate escape; decode_string refuses it (it
      // has no UTF-8), and nothing else.
      if (auto d = aws::json::decode_string(v.raw); !d) {
        check(d.error().find("surrogate") != std::string::npos);
      }
      break;
    case Kind::kObject: {
      auto members = aws::json::parse_object(v.raw);
      check(members.has_value());
      for (const auto& m : *members) check_value(m.value, depth + 1);
      break;
    }
    case Kind::kArray: {
      auto elems = aws::json::parse_array(v.raw);
      check(elems.has_value());
      for (const auto& e : *elems) check_value(e, depth + 1);
      break;
    }
    case Kind::kTrue:
      check(v.raw == "true");
      break;
    case Kind::kFalse:
      check(v.raw == "false");
      break;
    case Kind::kNull:
      check(v.raw == "null");
      break;
    case Kind::kNumber:
      check(!v.raw.empty() && (v.raw[0] == '-' || (v.raw[0] >= '0' && v.raw[0] <= '9')));
      break;
  }
}

void json_document(std::string_view in) {
  auto members = aws::json::parse_object(in);
  if (!members) {
    check(!members.error().empty());
    return;
  }
  for (const auto& m : *members) check_value(m.value, 1);
}

void log_string(std::string_view in) {
  std::string out;
  log::append_json_string(out, in);
  for (char c : out) check(c >= 0x20 && c <= 0x7e);
  std::string latin1;
  for (unsigned char c : in) {
    if (c < 0x80) {
      latin1 += static_cast<char>(c);
    } else {
      latin1 += static_cast<char>(0xc0 | (c >> 6));
      latin1 += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  auto decoded = aws::json::decode_string(out);
  check(decoded.has_value() && *decoded == latin1);
  auto doc = aws::json::parse_object("{\"k\":" + out + "}");
  check(doc.has_value() && doc->size() == 1);
}

void grpc_timeout(std::string_view in) {
  auto d = h2::parse_grpc_timeout(in);
  if (!d) return;
  check(d->count() >= 0);
  const std::string f = h2::format_grpc_timeout(*d);
  auto again = h2::parse_grpc_timeout(f);
  check(again.has_value() && *again >= *d);
  check(h2::format_grpc_timeout(*again) == f);
}

void grpc_message(std::string_view in) {
  const std::string e = h2::grpc_percent_encode(in);
  for (size_t i = 0; i < e.size(); ++i) {
    check(e[i] >= 0x20 && e[i] <= 0x7e);
    if (e[i] == '%') check(i + 2 < e.size());
  }
  check(h2::grpc_percent_decode(e) == in);
  (void)h2::grpc_percent_decode(in);  // any text: malformed escapes are kept
}

void retry_values(std::string_view in) {
  std::string_view trimmed = in;  // both take the field value with its whitespace
  while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
    trimmed.remove_prefix(1);
  }
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) {
    trimmed.remove_suffix(1);
  }
  if (auto t = upstream::parse_timeout_ms(in)) {
    check(t->count() >= 1 && t->count() <= 86'400'000);
    for (char c : trimmed) check(c >= '0' && c <= '9');
  }
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  if (auto r = upstream::parse_retry_after(in, now)) {
    check(r->count() >= 0);
    bool digits = !trimmed.empty() && trimmed.size() <= 6;
    for (char c : trimmed) digits = digits && c >= '0' && c <= '9';
    if (digits) check(r->count() == std::stoll(std::string(trimmed)) * 1000);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  return fuzz::by_mode(bytes, size, 8192,
                       {json_document, log_string, grpc_timeout, grpc_message, retry_values});
}
