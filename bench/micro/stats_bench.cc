// Hot-path cost of the stats cells, and the cost of one scrape at a realistic size.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <string>

#include "proxy/stats/stats.h"

namespace outrigger::stats {
namespace {

void BM_CounterInc(benchmark::State& state) {
  Counter c;
  for (auto _ : state) {
    c.inc();
    benchmark::DoNotOptimize(c);
  }
  benchmark::DoNotOptimize(c.value());
}
BENCHMARK(BM_CounterInc);

void BM_GaugeAddSub(benchmark::State& state) {
  Gauge g;
  for (auto _ : state) {
    g.add();
    g.sub();
    benchmark::DoNotOptimize(g);
  }
}
BENCHMARK(BM_GaugeAddSub);

// Durations spread over every bucket, so the branch predictor cannot learn one answer.
void BM_HistogramObserve(benchmark::State& state) {
  std::array<std::chrono::nanoseconds, 64> durations;
  uint64_t x = 88172645463325252ULL;  // xorshift: a fixed, cheap, spread-out sequence
  for (auto& d : durations) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d = std::chrono::nanoseconds(100'000 << (x % 20));  // 100 us .. ~52 s
  }
  Histogram h;
  size_t i = 0;
  for (auto _ : state) {
    h.observe(durations[i++ & 63]);
    benchmark::DoNotOptimize(h);
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramObserve);

// One scrape: 4 workers, 4 listeners, 64 routes, 32 clusters, all populated.
void BM_RenderPrometheus(benchmark::State& state) {
  Registry r(4);
  for (int l = 0; l < 4; ++l)
    r.shard(0).listener(r.listener_id("l" + std::to_string(l))).cx_total.inc();
  for (int rt = 0; rt < 64; ++rt) {
    const uint32_t id = r.route_id("l0", "route-" + std::to_string(rt));
    for (uint32_t w = 0; w < 4; ++w)
      r.shard(w).route(id).duration.observe(std::chrono::milliseconds(rt));
  }
  for (int c = 0; c < 32; ++c)
    r.main_shard().cluster(r.cluster_id("c" + std::to_string(c))).rq_total.inc();
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = r.render_prometheus();
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderPrometheus);

}  // namespace
}  // namespace outrigger::stats
