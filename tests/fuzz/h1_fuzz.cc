// libFuzzer target for the HTTP/1.1 parser (proxy/http/h1.h): the bytes every client and upstream
// controls. Built with clang (-fsanitize=fuzzer,address,undefined) by tests/CMakeLists.txt when
// clang is there; tests/fuzz/run.sh runs it (a bounded smoke run in `make test`; by hand:
// tests/fuzz/run.sh build/release/tests/h1_fuzz 600 tests/fuzz/corpus/h1).
//
// Input: one mode byte, then the message. Mode bit 0: a request (else a response); bit 1: for a
// response, the answer to a HEAD request; the other bits: where the request is cut in two (the
// parser is given the first part, then the whole, as a socket would deliver it). Besides memory
// errors and undefined behaviour (the sanitizers), the properties checked:
//  * a parsed head never claims more bytes than it was given, and its views lie inside them;
//  * the parse in two steps ends as the parse in one;
//  * a chunked body decodes to the same data, outcome and consumed bytes whole and byte by byte.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/http/h1.h"

namespace {
using namespace outrigger::http;

void check(bool ok) {
  if (!ok) std::abort();
}

void inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return;
  check(part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

std::string decode(const std::string& in, bool whole) {
  ChunkedDecoder d;
  std::string data;
  size_t pos = 0;
  auto st = ChunkedDecoder::Status::kMore;
  for (int steps = 0; pos < in.size() && st == ChunkedDecoder::Status::kMore && steps < 1 << 16;
       ++steps) {
    std::string piece = in.substr(pos, whole ? std::string::npos : 1);
    const auto r = d.decode(piece.data(), piece.size());
    check(r.consumed <= piece.size() && r.data <= r.consumed);
    data.append(piece.data(), r.data);
    pos += r.consumed;
    st = r.status;
    if (r.consumed < piece.size() && st == ChunkedDecoder::Status::kMore) break;
  }
  std::string out = std::to_string(static_cast<int>(st)) + "/" + std::to_string(pos) + "/" + data;
  if (st == ChunkedDecoder::Status::kDone) out += "/" + std::string(d.trailers());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1 || size > 8192) return 0;
  const uint8_t mode = bytes[0];
  const std::string buf(reinterpret_cast<const char*>(bytes + 1), size - 1);
  const std::string_view all(buf);
  if ((mode & 1) == 0) {
    HeadParser p;
    ResponseHead rs;
    if (p.parse_response(all, (mode & 2) != 0, &rs) == ParseResult::kDone) {
      check(rs.head_bytes <= buf.size());
      for (size_t i = 0; i < rs.header_count; ++i) {
        inside(rs.headers[i].name, all);
        inside(rs.headers[i].value, all);
      }
    }
    return 0;
  }
  RequestHead one;
  HeadParser p1;
  const ParseResult r1 = p1.parse_request(all, &one);
  RequestHead two;
  HeadParser p2;
  const size_t cut = buf.empty() ? 0 : (mode >> 1) % (buf.size() + 1);
  ParseResult r2 = p2.parse_request(all.substr(0, cut), &two);
  if (r2 == ParseResult::kNeedMore) r2 = p2.parse_request(all, &two);
  check(r1 == r2);
  if (r1 != ParseResult::kDone) return 0;
  check(one.head_bytes == two.head_bytes && one.header_count == two.header_count);
  check(one.head_bytes <= buf.size());
  check(one.method == two.method && one.target == two.target && one.body == two.body);
  inside(one.method, all);
  // An absolute-form target without a path ("GET http://host HTTP/1.1") becomes the literal "/".
  if (one.target != "/") inside(one.target, all);
  for (size_t i = 0; i < one.header_count; ++i) {
    inside(one.headers[i].name, all);
    inside(one.headers[i].value, all);
  }
  if (one.body == BodyKind::kChunked) {
    const std::string body = buf.substr(one.head_bytes);
    check(decode(body, true) == decode(body, false));
  }
  return 0;
}
