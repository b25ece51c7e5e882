// libFuzzer target for the translation between HTTP/1.1 heads and HTTP/2 fields
// (proxy/h2/translate.h), checked against the proxy's own parser and validators on the other
// side: what one side accepts and the proxy translates, the other side must accept as the same
// message, or a peer would refuse it, or read another request than the one the proxy checked.
// Built and run like h1_fuzz.cc (tests/CMakeLists.txt, run.sh); by hand:
//   tests/fuzz/run.sh build/release/tests/translate_fuzz 600 tests/fuzz/corpus/translate
//
// Input: one mode byte, then the mode's text. Modes and properties:
//  0 h2 request -> h1 (a client's HTTP/2 request to an HTTP/1.1 upstream). Fields as
//    [name length][name][value length][value]...; when validate_request accepts them,
//    to_h1_request_head's head, written out as the proxy writes a request line and fields, parses
//    as HTTP/1.1 in one piece with the same method, target, host and fields.
//  1 h1 response -> h2 (an HTTP/1.1 upstream's answer to an HTTP/2 client). When the parser
//    accepts a final response, its translation (as the session sends it) passes
//    validate_response, carries the content-length the h1 framing had (none for chunked).
//  2 h1 request -> h2 (a client's HTTP/1.1 request to an HTTP/2 upstream). When the parser
//    accepts it, h1_request_to_h2 passes validate_request; the proxy's shortcut for a head it
//    wrote itself (own_h1_request_to_h2) gives the same fields whenever it accepts the text.
//  3 h1 trailers -> h2. When a chunked body's trailers decode, their translation passes
//    validate_response as trailers.
//  4 h2 response and trailers -> h1 (an HTTP/2 upstream's answer to an HTTP/1.1 client). Fields
//    as in mode 0 (a ":status" among them); when validate_response accepts them, the head
//    append_h1_response_head writes parses with the same status and fields, and trailers that
//    validate come back whole from the chunked decoder after append_h1_last_chunk.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/h2/translate.h"
#include "tests/fuzz/fuzz.h"

namespace {
using namespace outrigger;
using namespace outrigger::h2;


struct Owned {
  std::vector<std::string> text;
  std::vector<Field> fields;
};

// [name length][name][value length][value]..., lengths one byte each.
Owned read_fields(std::string_view in) {
  Owned o;
  while (in.size() >= 2 && o.text.size() < 2 * 64) {
    const size_t nl = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    o.text.emplace_back(in.substr(0, nl));
    in.remove_prefix(std::min(nl, in.size()));
    if (in.empty()) break;
    const size_t vl = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    o.text.emplace_back(in.substr(0, vl));
    in.remove_prefix(std::min(vl, in.size()));
  }
  if (o.text.size() % 2 != 0) o.text.pop_back();
  for (size_t i = 0; i < o.text.size(); i += 2) o.fields.push_back({o.text[i], o.text[i + 1]});
  return o;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return r;
}

void h2_request_to_h1(std::string_view in) {
  Owned o = read_fields(in);
  if (validate_request(o.fields) != FieldError::kNone) return;
  const Request rq = request_of(o.fields);  // what on_request gets
  http::RequestHead head;
  std::string cookies;
  if (!to_h1_request_head(rq, &head, &cookies)) return;
  if (head.method == "CONNECT") return;  // not forwarded over HTTP/1.1 (no tunnels)
  // As forward() writes it: request line, host, the fields that are not hop-by-hop.
  std::string text;
  text += head.method;
  text += ' ';
  text += head.target;
  text += " HTTP/1.1\r\nhost: ";
  text += head.authority;
  text += "\r\n";
  std::vector<std::pair<std::string, std::string>> sent;
  for (size_t i = 0; i < head.header_count; ++i) {
    const http::Header& h = head.headers[i];
    if (h.hop || h.kind == http::HeaderKind::kHost) continue;
    text += h.name;
    text += ": ";
    text += h.value;
    text += "\r\n";
    sent.emplace_back(lower(h.name), std::string(h.value));
  }
  if (head.body == http::BodyKind::kChunked) text += "transfer-encoding: chunked\r\n";
  text += "\r\n";
  http::HeadParser parser({64 * 1024, http::kMaxHeaders});
  http::RequestHead back;
  const auto r = parser.parse_request(text, &back);
  if (r != http::ParseResult::kDone) {
    std::fprintf(stderr, "refused (%d): %s\n", static_cast<int>(parser.error()), text.c_str());
  }
  check(r == http::ParseResult::kDone);
  check(back.head_bytes == text.size());
  check(back.method == head.method);
  check(back.target == head.target);
  check(back.authority == head.authority);
  size_t k = 0;
  for (size_t i = 0; i < back.header_count; ++i) {
    const http::Header& h = back.headers[i];
    if (h.kind == http::HeaderKind::kHost || lower(h.name) == "transfer-encoding") continue;
    check(k < sent.size() && lower(h.name) == sent[k].first && h.value == sent[k].second);
    ++k;
  }
  check(k == sent.size());
}

// Regular fields a session puts on the wire (sendable), names lower-cased as nghttp2 lower-cases
// them.
void wire_fields(std::span<const Field> in, std::vector<std::string>& text, std::vector<Field>& out) {
  for (const Field& f : in) {
    if (!sendable(f)) continue;
    text.push_back(lower(f.name));
    text.emplace_back(f.value);
  }
  for (size_t i = 0; i < text.size(); i += 2) out.push_back({text[i], text[i + 1]});
}

void h1_response_to_h2_checked(std::string_view in) {
  if (in.empty()) return;
  const bool head_request = (in[0] & 1) != 0;
  in.remove_prefix(1);
  http::HeadParser parser({64 * 1024, http::kMaxHeaders});
  http::ResponseHead rs;
  if (parser.parse_response(in, head_request, &rs) != http::ParseResult::kDone) return;
  if (rs.status < 200) return;  // interim: not forwarded over HTTP/2
  std::vector<Field> f;
  h1_response_to_h2(rs, &f);
  std::vector<std::string> text{":status", std::to_string(rs.status)};
  std::vector<Field> sent;
  std::vector<std::string> regular_text;
  std::vector<Field> regular;
  wire_fields(f, regular_text, regular);
  sent.push_back({text[0], text[1]});
  sent.insert(sent.end(), regular.begin(), regular.end());
  const FieldError e = validate_response(sent, false);
  if (e != FieldError::kNone) std::fprintf(stderr, "refused: %d\n", static_cast<int>(e));
  check(e == FieldError::kNone);
  int lengths = 0;
  for (const Field& x : regular) {
    if (x.name != "content-length") continue;
    ++lengths;
    check(rs.body == http::BodyKind::kContentLength || head_request || rs.status == 304 ||
          rs.body == http::BodyKind::kNone);
    if (rs.body == http::BodyKind::kContentLength) {
      uint64_t v = 0;  // the digits as received ("06" is 6), validated above
      for (char c : x.value) v = v * 10 + static_cast<uint64_t>(c - '0');
      check(v == rs.content_length);
    }
  }
  if (rs.body == http::BodyKind::kChunked || rs.body == http::BodyKind::kUntilClose) {
    check(lengths == 0);
  }
}

void h1_request_to_h2_checked(std::string_view in) {
  http::HeadParser parser({64 * 1024, http::kMaxHeaders});
  http::RequestHead rq;
  if (parser.parse_request(in, &rq) != http::ParseResult::kDone) return;
  if (rq.method == "CONNECT") return;  // not forwarded (no tunnels)
  // An HTTP/1.0 request without Host: forward() names the upstream itself (its SNI or address).
  if (rq.authority.empty()) return;
  FieldList fl;
  h1_request_to_h2(rq, "http", &fl);
  // Its regular fields as the client session sends them (sendable), pseudo-headers first.
  std::vector<std::string> text;
  std::vector<Field> sent;
  for (const Field& x : fl.fields()) {
    if (x.name[0] == ':') sent.push_back(x);
  }
  std::vector<Field> regular;
  wire_fields(fl.fields(), text, regular);
  sent.insert(sent.end(), regular.begin(), regular.end());
  const FieldError e = validate_request(sent);
  if (e != FieldError::kNone) std::fprintf(stderr, "refused: %d\n", static_cast<int>(e));
  check(e == FieldError::kNone);

  // own_h1_request_to_h2 on the same text: when it takes it, it must agree with the parse.
  std::string own(in.substr(0, rq.head_bytes));
  std::vector<Field> mine;
  // It takes origin-form only (an absolute-form target is rewritten before it gets there).
  if (!rq.scheme.empty() || rq.target.empty() || rq.target[0] != '/') return;
  if (rq.body == http::BodyKind::kChunked) return;       // the h2 path drops it (framing)
  for (size_t i = 0; i < rq.header_count; ++i) {
    if (rq.headers[i].hop && rq.headers[i].kind != http::HeaderKind::kTe) return;  // not ours
  }
  if (!own_h1_request_to_h2(&own, "http", &mine)) return;
  std::vector<std::string> t2;
  std::vector<Field> a, b;
  for (const Field& x : fl.fields()) {
    if (x.name[0] == ':') a.push_back(x);
  }
  a.insert(a.end(), regular.begin(), regular.end());
  for (const Field& x : mine) {
    if (x.name[0] == ':') b.push_back(x);
  }
  wire_fields(mine, t2, b);
  check(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    check(a[i].name == b[i].name);
    check(a[i].value == b[i].value);
  }
}

void trailers_checked(std::string_view in) {
  std::string body = "0\r\n";
  body += in;
  http::ChunkedDecoder d;
  const auto r = d.decode(body.data(), body.size());
  if (r.status != http::ChunkedDecoder::Status::kDone) return;
  FieldList t;
  h1_trailers_to_h2(d.trailers(), &t);
  const FieldError e = validate_response(t.fields(), true);
  if (e != FieldError::kNone) std::fprintf(stderr, "refused: %d\n", static_cast<int>(e));
  check(e == FieldError::kNone);
}

void h2_response_to_h1(std::string_view in) {
  if (in.empty()) return;
  const uint8_t framing_byte = static_cast<uint8_t>(in[0]);
  in.remove_prefix(1);
  Owned o = read_fields(in);
  if (validate_response(o.fields, false) != FieldError::kNone) return;
  const std::string_view st = o.fields[0].value;
  const int status = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
  if (status < 200) return;
  int64_t content_length = -1;
  for (const Field& f : o.fields) {
    if (f.name == "content-length") content_length = std::stoll(std::string(f.value));
  }
  const H1Framing framing = h1_framing((framing_byte & 1) != 0, content_length);
  std::string head;
  append_h1_response_head(status, o.fields, framing, &head);
  head += "\r\n";
  http::HeadParser parser({64 * 1024, http::kMaxHeaders});
  http::ResponseHead back;
  const auto r = parser.parse_response(head, false, &back);
  if (r != http::ParseResult::kDone) {
    std::fprintf(stderr, "refused (%d): %s\n", static_cast<int>(parser.error()), head.c_str());
  }
  check(r == http::ParseResult::kDone);
  check(back.head_bytes == head.size());
  check(back.status == status);
  std::vector<Field> want;
  for (size_t i = 1; i < o.fields.size(); ++i) {
    if (!is_connection_specific(o.fields[i].name)) want.push_back(o.fields[i]);
  }
  size_t k = 0;
  for (size_t i = 0; i < back.header_count; ++i) {
    const http::Header& h = back.headers[i];
    if (lower(h.name) == "transfer-encoding") {
      check(framing == H1Framing::kChunked);
      continue;
    }
    check(k < want.size() && lower(h.name) == want[k].name && h.value == want[k].value);
    ++k;
  }
  check(k == want.size());

  // Trailers: the rest of the fields after a ":status"-less split are not modelled; take the
  // regular fields as trailers when they are valid ones.
  std::vector<Field> trailers(o.fields.begin() + 1, o.fields.end());
  if (validate_response(trailers, true) != FieldError::kNone) return;
  std::string last;
  append_h1_last_chunk(trailers, &last);
  // Our decoder keeps at most kMaxTrailerBytes of trailers (a limit, answered as an error).
  if (last.size() > http::ChunkedDecoder::kMaxTrailerBytes) return;
  http::ChunkedDecoder d;
  const auto dr = d.decode(last.data(), last.size());
  check(dr.status == http::ChunkedDecoder::Status::kDone && dr.consumed == last.size());
  FieldList again;
  h1_trailers_to_h2(d.trailers(), &again);
  std::vector<Field> kept;
  for (const Field& f : trailers) {
    if (!forbidden_in_trailers(f.name)) kept.push_back(f);
  }
  check(again.size() == kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    check(again.fields()[i].name == kept[i].name && again.fields()[i].value == kept[i].value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  return fuzz::by_mode(bytes, size, 8192,
                       {h2_request_to_h1, h1_response_to_h2_checked, h1_request_to_h2_checked,
                        trailers_checked, h2_response_to_h1});
}
