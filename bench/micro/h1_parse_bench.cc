// HTTP/1.1 head parsing (http::HeadParser) on the heads of the bench cases: wrk's request and the
// nginx backend's response. Run with callgrind for a per-line view of parse_fields.
#include <benchmark/benchmark.h>

#include <string_view>

#include "proxy/http/h1.h"

namespace {
using namespace outrigger::http;

constexpr std::string_view kRequest =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:18081\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";
constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 00:24:43 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 64\r\nConnection: keep-alive\r\n\r\n";

void BM_ParseRequest(benchmark::State& state) {
  HeadParser p;
  RequestHead head;
  for (auto _ : state) {
    p.reset();
    benchmark::DoNotOptimize(p.parse_request(kRequest, &head));
    benchmark::DoNotOptimize(head.header_count);
  }
}
BENCHMARK(BM_ParseRequest);

void BM_ParseResponse(benchmark::State& state) {
  HeadParser p;
  ResponseHead head;
  for (auto _ : state) {
    p.reset();
    benchmark::DoNotOptimize(p.parse_response(kResponse, false, &head));
    benchmark::DoNotOptimize(head.header_count);
  }
}
BENCHMARK(BM_ParseResponse);

}  // namespace
