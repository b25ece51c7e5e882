// Parser tests: framing, hop-by-hop marking, limits, and every smuggling shape refused.
#include "proxy/http/h1.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <span>
#include <string>

#include "proxy/router/router.h"

namespace outrigger::http {
namespace {

struct Parsed {
  ParseResult result;
  Error error;
  RequestHead head;
};

Parsed parse(std::string_view raw, HeadParser::Limits limits = {}) {
  Parsed p;
  HeadParser parser(limits);
  p.result = parser.parse_request(raw, &p.head);
  p.error = parser.error();
  return p;
}

TEST(H1Request, SimpleGet) {
  auto p = parse("GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n");
  ASSERT_EQ(p.result, ParseResult::kDone);
  EXPECT_EQ(p.head.method, "GET");
  EXPECT_EQ(p.head.target, "/a/b?x=1");
  EXPECT_EQ(p.head.path, "/a/b");
  EXPECT_EQ(p.head.authority, "example.com");
  EXPECT_EQ(p.head.body, BodyKind::kNone);
  EXPECT_TRUE(p.head.keep_alive);
  EXPECT_EQ(p.head.header_count, 2u);
}

TEST(H1Request, EveryValueByteAtEveryPositionOfAnEightByteStep) {
  // Values are checked a word at a time (8 bytes, the last word overlapping; 4 bytes for values
  // of 4 to 7; bytes below that): each byte value, at each offset of values of every shape, is
  // refused exactly when it is not VCHAR, SP, HTAB or obs-text.
  for (int b = 0; b < 256; ++b) {
    if (b == '\n') continue;  // ends the line: a different shape (covered by the CR/LF tests)
    for (size_t len : {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 19})
      for (size_t at = 0; at < len; ++at) {
        std::string value(len, 'v');
        value[at] = static_cast<char>(b);
        const std::string raw = "GET / HTTP/1.1\r\nHost: h\r\nX-V: " + value + "\r\n\r\n";
        const auto p = parse(raw);
        const bool ok = b == '\t' || (b >= 0x20 && b != 0x7f);
        ASSERT_EQ(p.result == ParseResult::kDone, ok)
            << "byte " << b << " at " << at << " of " << len;
        if (!ok) {
          ASSERT_EQ(p.error, b == 0      ? Error::kNul
                             : b == '\r' ? Error::kBareCr
                                         : Error::kBadHeaderValue)
              << "byte " << b << " at " << at;
        }
      }
  }
}

// The headers the parser acts on are recognised in any letter case, and a name that differs
// from one in any byte, by any other tchar, is not (names are compared a word at a time with the
// 0x20 bit forced, which must not make another tchar match).
TEST(H1Response, KnownFieldNamesInAnyCaseAndNoNearMiss) {
  const std::pair<std::string_view, HeaderKind> known[] = {
      {"te", HeaderKind::kTe},
      {"host", HeaderKind::kHost},
      {"expect", HeaderKind::kExpect},
      {"trailer", HeaderKind::kTrailer},
      {"upgrade", HeaderKind::kUpgrade},
      {"connection", HeaderKind::kConnection},
      {"keep-alive", HeaderKind::kKeepAlive},
      {"x-request-id", HeaderKind::kXRequestId},
      {"content-length", HeaderKind::kContentLength},
      {"x-forwarded-for", HeaderKind::kXForwardedFor},
      {"proxy-connection", HeaderKind::kProxyConnection},
      {"transfer-encoding", HeaderKind::kTransferEncoding},
      {"x-forwarded-proto", HeaderKind::kXForwardedProto},
      {"proxy-authorization", HeaderKind::kProxyAuthorization},
  };
  std::string tchars = "!#$%&'*+-.^_`|~";
  for (char c = '0'; c <= '9'; ++c) tchars += c;
  for (char c = 'a'; c <= 'z'; ++c) tchars += {c, static_cast<char>(c - 32)};
  auto kind_of = [](const std::string& name) {
    HeadParser p;
    ResponseHead h;
    const std::string value = name.size() == 14 ? "5" : name.size() == 17 ? "chunked" : "x";
    const std::string raw = "HTTP/1.1 200 OK\r\n" + name + ": " + value + "\r\n\r\n";
    EXPECT_EQ(p.parse_response(raw, false, &h), ParseResult::kDone) << name;
    return h.header_count == 1 ? h.headers[0].kind : HeaderKind::kOther;
  };
  std::mt19937 rng(7);
  for (const auto& [name, kind] : known) {
    for (int round = 0; round < 8; ++round) {
      std::string n(name);
      for (char& c : n) {
        if (c >= 'a' && c <= 'z' && rng() % 2 == 0) c = static_cast<char>(c - 32);
      }
      ASSERT_EQ(kind_of(n), kind) << n;
    }
    for (size_t at = 0; at < name.size(); ++at) {
      for (char c : tchars) {
        if ((c | 0x20) == name[at] && (c == name[at] || (c >= 'A' && c <= 'Z'))) continue;
        std::string n(name);
        n[at] = c;
        ASSERT_EQ(kind_of(n), HeaderKind::kOther) << n;
      }
    }
  }
}

TEST(H1Request, IncrementalByteByByte) {
  const std::string raw = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  HeadParser parser;
  RequestHead head;
  ParseResult r = ParseResult::kNeedMore;
  size_t n = 0;
  while (r == ParseResult::kNeedMore && n < raw.size())
    r = parser.parse_request(std::string_view(raw).substr(0, ++n), &head);
  ASSERT_EQ(r, ParseResult::kDone);
  EXPECT_EQ(head.head_bytes, raw.size() - 5);
  EXPECT_EQ(head.body, BodyKind::kContentLength);
  EXPECT_EQ(head.content_length, 5u);
}

// The fuzz tests' edit: `edits` times, insert, delete or replace one byte (drawn from `bytes`)
// at a random place.
void mutate(std::string& s, size_t edits, std::span<const char> bytes, std::mt19937& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  for (; edits > 0 && !s.empty(); --edits) {
    const size_t at = pick(s.size());
    const char b = bytes[pick(bytes.size())];
    switch (pick(3)) {
      case 0:
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), b);
        break;
      case 1:
        s.erase(at, 1);
        break;
      default:
        s[at] = b;
    }
  }
}

// Differential: a head parsed in one call and the same bytes arriving in random pieces give the
// same result, error and fields. Inputs are valid requests and responses with 1-4 random byte
// edits (insert, delete, replace, from bytes that matter to the grammar), seeded and bounded.
template <class Head>
std::string describe(ParseResult r, Error e, const Head& h) {
  std::string d = std::to_string(static_cast<int>(r)) + "/" + std::to_string(static_cast<int>(e));
  if (r != ParseResult::kDone) return d;
  d += " bytes=" + std::to_string(h.head_bytes) +
       " body=" + std::to_string(static_cast<int>(h.body)) +
       " cl=" + std::to_string(h.content_length) + " ka=" + std::to_string(h.keep_alive);
  for (size_t i = 0; i < h.header_count; ++i) {
    d += " [" + std::string(h.headers[i].name) + "=" + std::string(h.headers[i].value) + "/" +
         std::to_string(static_cast<int>(h.headers[i].kind)) + std::to_string(h.headers[i].hop) +
         "]";
  }
  return d;
}

TEST(H1Fuzz, PiecesParseLikeTheWhole) {
  const std::string seeds[] = {
      "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n",
      "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\n"
      "X-Hop: 1\r\n\r\nhello",
      "PUT http://svc:8080/p HTTP/1.1\r\nHost: svc:8080\r\nTransfer-Encoding: chunked\r\n"
      "Expect: 100-continue\r\nTE: trailers\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "GET / HTTP/1.0\r\nHost: a\r\nConnection: close\r\nX-Tab:\t v\t\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.1 204 No Content\r\nDate: x\r\nKeep-Alive: timeout=5\r\n\r\n",
      "HTTP/1.0 302 Found\r\nLocation: /x\r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  static constexpr char kBytes[] = {' ',  ':',    '\r',   '\n', '\t', 'a', 'A', '0', '9', ',', '/',
                                    '\0', '\x7f', '\x80', 'H',  'T',  'P', '.', '1', ';', '='};
  std::mt19937 rng(1207);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int done = 0, errors = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string raw = seeds[pick(std::size(seeds))];
    mutate(raw, 1 + pick(4), kBytes, rng);
    const bool response = raw.rfind("HTTP/", 0) == 0;
    const bool head_request = pick(4) == 0;
    auto run = [&](auto head, auto parse_fn) {
      HeadParser whole;
      const ParseResult r1 = parse_fn(whole, std::string_view(raw), &head);
      const std::string a = describe(r1, whole.error(), head);
      HeadParser pieces;
      decltype(head) head2{};
      ParseResult r2 = ParseResult::kNeedMore;
      size_t n = 0;
      for (int steps = 0; r2 == ParseResult::kNeedMore && n < raw.size() && steps < 10000;
           ++steps) {
        n = std::min(raw.size(), n + 1 + pick(pick(3) == 0 ? 1 : 12));
        r2 = parse_fn(pieces, std::string_view(raw).substr(0, n), &head2);
      }
      const std::string b = describe(r2, pieces.error(), head2);
      EXPECT_EQ(a, b) << "input: " << testing::PrintToString(raw);
      done += r1 == ParseResult::kDone;
      errors += r1 == ParseResult::kError;
    };
    if (response) {
      run(ResponseHead{}, [&](HeadParser& p, std::string_view v, ResponseHead* h) {
        return p.parse_response(v, head_request, h);
      });
    } else {
      run(RequestHead{},
          [](HeadParser& p, std::string_view v, RequestHead* h) { return p.parse_request(v, h); });
    }
    if (HasFailure()) break;  // one readable failure, not thousands
  }
  EXPECT_GT(done, 200);  // both outcomes are exercised
  EXPECT_GT(errors, 200);
}

TEST(H1Request, AbsoluteFormUsesTargetAuthority) {
  auto p = parse("GET http://user-service:8080/orders?id=2 HTTP/1.1\r\nHost: ignored\r\n\r\n");
  ASSERT_EQ(p.result, ParseResult::kDone);
  EXPECT_EQ(p.head.authority, "user-service:8080");
  EXPECT_EQ(p.head.target, "/orders?id=2");
  EXPECT_EQ(p.head.path, "/orders");
}

TEST(H1Request, ConnectionTokensMarkHopByHop) {
  auto p = parse(
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n"
      "Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Keep: y\r\n\r\n");
  ASSERT_EQ(p.result, ParseResult::kDone);
  EXPECT_FALSE(p.head.keep_alive);
  for (size_t i = 0; i < p.head.header_count; ++i) {
    const Header& h = p.head.headers[i];
    EXPECT_EQ(h.hop, h.name != "Host" && h.name != "X-Keep") << h.name;
  }
}

TEST(H1Request, Http10DefaultsToClose) {
  auto p = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.result, ParseResult::kDone);
  EXPECT_FALSE(p.head.keep_alive);
  auto k = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(k.head.keep_alive);
}

TEST(H1Request, LeadingEmptyLinesTolerated) {
  auto p = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p.result, ParseResult::kDone);
  EXPECT_EQ(p.head.head_bytes, 4 + 27u);
}

struct Bad {
  const char* name;
  std::string raw;
  Error error;
  friend void PrintTo(const Bad& b, std::ostream* os) { *os << b.name; }
};

class H1Smuggling : public ::testing::TestWithParam<Bad> {};

TEST_P(H1Smuggling, Refused) {
  auto p = parse(GetParam().raw);
  EXPECT_EQ(p.result, ParseResult::kError) << GetParam().name;
  EXPECT_EQ(p.error, GetParam().error) << GetParam().name << ": " << error_reason(p.error);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, H1Smuggling,
    ::testing::Values(
        Bad{"ClAndTe",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Error::kContentLengthAndTe},
        Bad{"TeAndCl",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            Error::kContentLengthAndTe},
        Bad{"DuplicateClSame",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Error::kDuplicateContentLength},
        Bad{"DuplicateClDiff",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Error::kDuplicateContentLength},
        Bad{"ClList", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
            Error::kBadContentLength},
        Bad{"ClPlus", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
            Error::kBadContentLength},
        Bad{"ClHex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n",
            Error::kBadContentLength},
        Bad{"ClEmpty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
            Error::kBadContentLength},
        Bad{"ClOverflow",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            Error::kBadContentLength},
        Bad{"TeXchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
            Error::kBadTransferEncoding},
        Bad{"TeList", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            Error::kBadTransferEncoding},
        Bad{"TeVtab", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\x0b\r\n\r\n",
            Error::kBadHeaderValue},
        Bad{"TeTwice",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
            "chunked\r\n\r\n",
            Error::kBadTransferEncoding},
        Bad{"TeHttp10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Error::kBadTransferEncoding},
        Bad{"BareCr", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", Error::kBareCr},
        Bad{"BareLf", "GET / HTTP/1.1\nHost: h\r\n\r\n", Error::kBareLf},
        Bad{"BareLfHeader", "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", Error::kBareLf},
        Bad{"Nul", std::string("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 35), Error::kNul},
        Bad{"ObsFold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", Error::kObsFold},
        Bad{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n",
            Error::kSpaceBeforeColon},
        Bad{"TabBeforeColon", "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n",
            Error::kSpaceBeforeColon},
        Bad{"BadName", "GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", Error::kBadHeaderName},
        Bad{"MissingHost", "GET / HTTP/1.1\r\n\r\n", Error::kMissingHost},
        Bad{"DuplicateHost", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Error::kDuplicateHost},
        // Host is host[:port] (RFC 9110 7.2): brackets only around an IP-literal, one colon.
        Bad{"HostOpenBracket", "GET / HTTP/1.1\r\nHost: [eu.orders.internal\r\n\r\n",
            Error::kBadHost},
        Bad{"HostAfterBracket", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", Error::kBadHost},
        Bad{"HostEmptyBrackets", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", Error::kBadHost},
        Bad{"HostStrayBracket", "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n", Error::kBadHost},
        Bad{"HostUnbracketedV6", "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", Error::kBadHost},
        Bad{"HostPortLetters", "GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n", Error::kBadHost},
        Bad{"AbsoluteBadAuthority", "GET http://[x/ HTTP/1.1\r\nHost: h\r\n\r\n",
            Error::kBadTarget},
        Bad{"BadVersion", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", Error::kBadVersion},
        Bad{"GarbageVersion", "GET / FOO\r\nHost: h\r\n\r\n", Error::kBadRequestLine},
        Bad{"DoubleSpace", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", Error::kBadRequestLine},
        Bad{"TargetCtl", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", Error::kBadTarget},
        Bad{"Connect", "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", Error::kBadMethod}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(H1Parse, HostShapesAccepted) {
  for (std::string host : {"h", "h:", "h:8080", "192.0.2.1:80", "[::1]", "[::1]:8443",
                           "[v1.future]", "user-service.", ""}) {
    const std::string raw = "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
    auto p = parse(raw);
    EXPECT_EQ(p.result, ParseResult::kDone) << host;
    EXPECT_EQ(p.head.authority, host);
  }
  EXPECT_EQ(error_reason(Error::kBadHost), "invalid host header");
}

TEST(H1Limits, HeadTooLarge) {
  std::string raw = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(2000, 'a');
  auto p = parse(raw, {1024, 100});
  EXPECT_EQ(p.result, ParseResult::kError);
  EXPECT_EQ(p.error, Error::kHeadTooLarge);
}

TEST(H1Limits, TooManyHeaders) {
  std::string raw = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 20; ++i) raw += "X" + std::to_string(i) + ": v\r\n";
  raw += "\r\n";
  auto p = parse(raw, {16384, 10});
  EXPECT_EQ(p.error, Error::kTooManyHeaders);
  auto ok = parse(raw, {16384, 21});
  EXPECT_EQ(ok.result, ParseResult::kDone);
}

// The parser remembers where each line ended while it looked for the end of the head (up to 64
// lines); a longer head is split into lines again. Both give every field, in order, whole or in
// pieces.
TEST(H1Limits, LongHeadsSplitLikeShortOnes) {
  for (int count : {3, 62, 63, 64, 65, 99}) {
    std::string raw = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 1; i < count; ++i) {
      raw += "X-" + std::to_string(i) + ": v" + std::string(static_cast<size_t>(i % 7), 'x') + "\r\n";
    }
    raw += "\r\n";
    auto whole = parse(raw, {16384, 100});
    ASSERT_EQ(whole.result, ParseResult::kDone) << count;
    ASSERT_EQ(whole.head.header_count, static_cast<size_t>(count)) << count;
    EXPECT_EQ(whole.head.headers[0].name, "Host");
    for (int i = 1; i < count; ++i) {
      const Header& h = whole.head.headers[i];
      ASSERT_EQ(h.name, "X-" + std::to_string(i)) << count;
      ASSERT_EQ(h.value, "v" + std::string(static_cast<size_t>(i % 7), 'x')) << count;
    }
    HeadParser p({16384, 100});
    RequestHead head{};
    ParseResult r = ParseResult::kNeedMore;
    for (size_t n = 7; r == ParseResult::kNeedMore && n <= raw.size(); n += 7) {
      r = p.parse_request(std::string_view(raw).substr(0, n), &head);
    }
    if (r == ParseResult::kNeedMore) r = p.parse_request(raw, &head);
    ASSERT_EQ(r, ParseResult::kDone) << count;
    ASSERT_EQ(head.header_count, static_cast<size_t>(count));
    EXPECT_EQ(head.headers[count - 1].name, "X-" + std::to_string(count - 1));
  }
}

TEST(H1Response, Framing) {
  HeadParser parser;
  ResponseHead r;
  ASSERT_EQ(parser.parse_response("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false, &r),
            ParseResult::kDone);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, BodyKind::kContentLength);
  parser.reset();
  ASSERT_EQ(parser.parse_response("HTTP/1.1 200 OK\r\n\r\n", false, &r), ParseResult::kDone);
  EXPECT_EQ(r.body, BodyKind::kUntilClose);
  EXPECT_FALSE(r.keep_alive);
  parser.reset();
  ASSERT_EQ(
      parser.parse_response("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, &r),
      ParseResult::kDone);
  EXPECT_EQ(r.body, BodyKind::kNone);
  parser.reset();
  ASSERT_EQ(parser.parse_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, &r),
            ParseResult::kDone);
  EXPECT_EQ(r.body, BodyKind::kNone);  // answer to HEAD
  parser.reset();
  EXPECT_EQ(
      parser.parse_response(
          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false, &r),
      ParseResult::kError);
  parser.reset();
  EXPECT_EQ(parser.parse_response("HTTP/1.1 2x0 OK\r\n\r\n", false, &r), ParseResult::kError);
  parser.reset();
  ASSERT_EQ(parser.parse_response("HTTP/1.1 204\r\n\r\n", false, &r), ParseResult::kDone);
  EXPECT_EQ(r.status, 204);
}

std::string decode_all(std::string in, ChunkedDecoder::Status* st, size_t* consumed, size_t step) {
  ChunkedDecoder d;
  std::string out;
  size_t pos = 0;
  *st = ChunkedDecoder::Status::kMore;
  while (pos < in.size() && *st == ChunkedDecoder::Status::kMore) {
    std::string piece = in.substr(pos, step);
    auto r = d.decode(piece.data(), piece.size());
    out.append(piece.data(), r.data);
    pos += r.consumed;
    *st = r.status;
    if (r.consumed < piece.size() && r.status == ChunkedDecoder::Status::kMore) break;
  }
  *consumed = pos;
  return out;
}

TEST(H1Chunked, DecodesInPieces) {
  const std::string body = "5;ext=1\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nX-T: 1\r\n\r\nNEXT";
  for (size_t step : {1u, 2u, 3u, 7u, 64u}) {
    ChunkedDecoder::Status st;
    size_t consumed;
    EXPECT_EQ(decode_all(body, &st, &consumed, step), "hello, world!!!!") << step;
    EXPECT_EQ(st, ChunkedDecoder::Status::kDone);
    EXPECT_EQ(consumed, body.size() - 4);
  }
  ChunkedDecoder d;
  std::string b = body;
  auto r = d.decode(b.data(), b.size());
  EXPECT_EQ(d.trailers(), "X-T: 1\r\n");
  EXPECT_EQ(r.consumed, body.size() - 4);
}

// Differential, as H1Fuzz.PiecesParseLikeTheWhole: a chunked body decoded in one call and in
// random pieces gives the same data, outcome and bytes consumed.
TEST(H1Fuzz, ChunkedPiecesDecodeLikeTheWhole) {
  const std::string seeds[] = {
      "5;ext=1\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nX-T: 1\r\n\r\nNEXT",
      "a\r\n0123456789\r\n0\r\n\r\n",
      "1\r\nx\r\n1;a=b;c\r\ny\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
  };
  static constexpr char kBytes[] = {'\r', '\n', '0', '1', 'a', 'F', ';', '=', ' ', ':', 'x', '\0'};
  std::mt19937 rng(1208);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int done = 0, errors = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string in = seeds[pick(std::size(seeds))];
    mutate(in, pick(4), kBytes, rng);
    auto decode = [&](bool whole) {
      ChunkedDecoder d;
      std::string data;
      size_t pos = 0;
      ChunkedDecoder::Status st = ChunkedDecoder::Status::kMore;
      for (int steps = 0; pos < in.size() && st == ChunkedDecoder::Status::kMore && steps < 10000;
           ++steps) {
        const size_t take = whole ? in.size() - pos : std::min(in.size() - pos, 1 + pick(9));
        std::string piece = in.substr(pos, take);
        const auto r = d.decode(piece.data(), piece.size());
        data.append(piece.data(), r.data);
        pos += r.consumed;
        st = r.status;
        if (r.consumed < piece.size() && st == ChunkedDecoder::Status::kMore) break;
      }
      return std::to_string(static_cast<int>(st)) + "/" + std::to_string(pos) + "/" + data + "/" +
             std::string(st == ChunkedDecoder::Status::kDone ? d.trailers() : "");
    };
    const std::string a = decode(true), b = decode(false);
    EXPECT_EQ(a, b) << "input: " << testing::PrintToString(in);
    done += a[0] == '1';
    errors += a[0] == '2';
    if (HasFailure()) break;
  }
  EXPECT_GT(done, 200);
  EXPECT_GT(errors, 200);
}

TEST(H1Chunked, RejectsBadFraming) {
  for (std::string bad :
       {"0x5\r\nhello\r\n0\r\n\r\n", "-1\r\n", "5\r\nhelloXX0\r\n\r\n", "5\nhello\r\n",
        "1234567890123456\r\n", "5 \r\nhello\r\n", "\r\n", "0\r\n bad: fold\r\n\r\n"}) {
    ChunkedDecoder d;
    auto r = d.decode(bad.data(), bad.size());
    EXPECT_EQ(r.status, ChunkedDecoder::Status::kError) << bad;
  }
}

// append_field builds every forwarded head line; the string grows from empty through several
// reallocations here, where GCC 12's resize_and_overwrite would have appended garbage.
TEST(H1AppendField, ExactBytesAcrossGrowth) {
  std::string out, want;
  for (int i = 0; i < 200; ++i) {
    const std::string name = "x-field-" + std::to_string(i);
    const std::string value(static_cast<size_t>(i % 37), static_cast<char>('a' + i % 26));
    append_field(out, name, value);
    want += name + ": " + value + "\r\n";
    ASSERT_EQ(out, want) << "after field " << i;
  }
  std::string small;
  append_field(small, "", "");
  EXPECT_EQ(small, ": \r\n");
}

}  // namespace
}  // namespace outrigger::http

namespace outrigger::router {
namespace {

TEST(Router, HostsAndPrefixes) {
  config::Route r1, r2, r3;
  r1.name = "exact";
  r2.name = "wild";
  r3.name = "api";
  RouteTable t;
  CompiledRoute c1{&r1, 0, 0, 0, {compile_host_pattern("User-Service")}, "/"};
  CompiledRoute c2{&r2, 1, 1, 1, {compile_host_pattern("*.orders.internal")}, "/"};
  CompiledRoute c3{&r3, 2, 2, 2, {}, "/api"};
  t.add(c1);
  t.add(c2);
  t.add(c3);
  EXPECT_EQ(t.match("user-service", "/x")->route, &r1);
  EXPECT_EQ(t.match("USER-SERVICE:8080", "/x")->route, &r1);
  EXPECT_EQ(t.match("user-service.", "/x")->route, &r1);
  EXPECT_EQ(t.match("a.orders.internal", "/")->route, &r2);
  EXPECT_EQ(t.match("orders.internal", "/"), nullptr);
  EXPECT_EQ(t.match("other", "/api/v1")->route, &r3);
  EXPECT_EQ(t.match("other", "/ap"), nullptr);
  EXPECT_EQ(strip_port("[::1]:80"), "::1");
  EXPECT_EQ(strip_port("::1"), "::1");
}

// IPv6 host patterns come from the loader bracketed and canonical; a request's literal matches
// them in any spelling, with or without a port, and only bracketed.
TEST(Router, Ipv6Hosts) {
  config::Route r1, r2;
  RouteTable t;
  t.add(CompiledRoute{&r1, 0, 0, 0, {compile_host_pattern("[2001:db8::7]")}, "/"});
  t.add(CompiledRoute{&r2, 1, 1, 1, {compile_host_pattern("[::1]")}, "/"});
  for (std::string_view a : {"[2001:db8::7]", "[2001:DB8:0:0:0:0:0:7]:443", "[2001:db8:0::7]"}) {
    const CompiledRoute* m = t.match(a, "/");
    ASSERT_NE(m, nullptr) << a;
    EXPECT_EQ(m->route, &r1) << a;
  }
  ASSERT_NE(t.match("[0::1]:8080", "/"), nullptr);
  EXPECT_EQ(t.match("[0::1]:8080", "/")->route, &r2);
  for (std::string_view a : {"::1", "[::2]", "[::1", "[zz]", "[fe80::1%25eth0]", "[]"}) {
    EXPECT_EQ(t.match(a, "/"), nullptr) << a;
  }
  Ipv6Text buf;
  EXPECT_EQ(ipv6_host("[2001:DB8::0:7]:80", buf), "[2001:db8::7]");
  EXPECT_EQ(ipv6_host("[zz]:80", buf), "");
  EXPECT_EQ(ipv6_host("[::1", buf), "");
  EXPECT_EQ(ipv6_host(std::string_view("[::1\0x]", 7), buf), "");
  EXPECT_EQ(ipv6_host("[" + std::string(60, '1') + "]", buf), "");
  // A bracket that is no IPv6 literal reaches "*" only, never a name pattern (router_fuzz found
  // "[:na*.ore" routed by "*.ore").
  RouteTable w;
  w.add(CompiledRoute{&r1, 0, 0, 0, {compile_host_pattern("*.example.com")}, "/"});
  w.add(CompiledRoute{&r2, 1, 1, 1, {compile_host_pattern("*")}, "/"});
  for (std::string_view a : {"[x.example.com", "[:a.example.com", "[zz].example.com"}) {
    ASSERT_NE(w.match(a, "/"), nullptr) << a;
    EXPECT_EQ(w.match(a, "/")->route, &r2) << a;
  }
  EXPECT_EQ(w.match("a.example.com", "/")->route, &r1);
}

}  // namespace
}  // namespace outrigger::router
