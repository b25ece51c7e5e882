// Per-request cost of the resilience primitives: a load balancer pick for each policy with 3 and
// 50 endpoints (equal and unequal weights, zone-aware, with an endpoint to avoid), a circuit
// breaker unit taken and given back (alone and with threads racing on one shared breaker), the
// outlier detector's success path and a retry decision.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/upstream/circuit_breaker.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier.h"
#include "proxy/upstream/retry.h"

namespace outrigger::upstream {
namespace {

using boost::asio::ip::make_address;
using tcp = boost::asio::ip::tcp;

// xorshift64: the cost of a random value the worker would pass in, near zero.
struct Rng {
  uint64_t x = 88172645463325252ULL;
  uint64_t operator()() noexcept {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

enum Shape : int64_t { kEqual = 0, kWeighted = 1, kZoned = 2 };

std::unique_ptr<LoadBalancer> make(LbPolicy policy, int64_t n, int64_t shape) {
  std::vector<LbEndpoint> eps;
  for (int64_t i = 0; i < n; ++i) {
    LbEndpoint e;
    e.address = tcp::endpoint(make_address("10.0.0.1"), static_cast<uint16_t>(8000 + i));
    e.weight = shape == kWeighted ? static_cast<uint32_t>(1 + i % 4) : 1;
    e.zone = "use1-az" + std::to_string(1 + i % 3);
    eps.push_back(std::move(e));
  }
  LbOptions o;
  o.policy = policy;
  auto lb = std::make_unique<LoadBalancer>(o);
  lb->assign(eps, shape == kZoned ? "use1-az1" : "");
  return lb;
}

void pick_loop(benchmark::State& state, LbPolicy policy, bool avoid) {
  auto lb = make(policy, state.range(0), state.range(1));
  Rng rng;
  const uint32_t skip = avoid ? 1 : LoadBalancer::kNone;
  for (auto _ : state) {
    const LbPick p = lb->pick(skip, rng());
    benchmark::DoNotOptimize(p);
  }
  state.SetLabel(state.range(1) == kWeighted ? "weighted"
                 : state.range(1) == kZoned  ? "zoned"
                                             : "equal");
}

void BM_PickRoundRobin(benchmark::State& s) { pick_loop(s, LbPolicy::kRoundRobin, false); }
void BM_PickLeastRequest(benchmark::State& s) { pick_loop(s, LbPolicy::kLeastRequest, false); }
void BM_PickRandom(benchmark::State& s) { pick_loop(s, LbPolicy::kRandom, false); }
void BM_PickRoundRobinAvoid(benchmark::State& s) { pick_loop(s, LbPolicy::kRoundRobin, true); }
void BM_PickLeastRequestAvoid(benchmark::State& s) { pick_loop(s, LbPolicy::kLeastRequest, true); }
void BM_PickRandomAvoid(benchmark::State& s) { pick_loop(s, LbPolicy::kRandom, true); }

#define LB_ARGS ArgsProduct({{3, 50}, {kEqual, kWeighted, kZoned}})
BENCHMARK(BM_PickRoundRobin)->LB_ARGS;
BENCHMARK(BM_PickLeastRequest)->LB_ARGS;
BENCHMARK(BM_PickRandom)->LB_ARGS;
BENCHMARK(BM_PickRoundRobinAvoid)->LB_ARGS;
BENCHMARK(BM_PickLeastRequestAvoid)->LB_ARGS;
BENCHMARK(BM_PickRandomAvoid)->LB_ARGS;

// What a request adds for least request: pick, start, end.
void BM_LeastRequestPickStartEnd(benchmark::State& state) {
  auto lb = make(LbPolicy::kLeastRequest, state.range(0), kEqual);
  Rng rng;
  for (auto _ : state) {
    const LbPick p = lb->pick(LoadBalancer::kNone, rng());
    lb->on_request_start(p);
    lb->on_request_end(p);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_LeastRequestPickStartEnd)->Arg(3)->Arg(50);

// Availability changes are rare; this is what one costs.
void BM_Rebuild(benchmark::State& state) {
  auto lb = make(LbPolicy::kRoundRobin, state.range(0), kZoned);
  uint32_t i = 0;
  for (auto _ : state) {
    lb->set_available(i % static_cast<uint32_t>(state.range(0)), (i & 1) != 0);
    lb->rebuild();
    ++i;
  }
}
BENCHMARK(BM_Rebuild)->Arg(3)->Arg(50);

// One breaker shared by every thread, as the cluster-wide thresholds are.
CircuitBreaker& shared_breaker() {
  static CircuitBreaker cb;
  return cb;
}
void BM_BreakerRequestSlot(benchmark::State& state) {
  CircuitBreaker& cb = shared_breaker();
  for (auto _ : state) {
    BreakerSlot slot(cb, Resource::kRequests);
    benchmark::DoNotOptimize(slot);
  }
}
BENCHMARK(BM_BreakerRequestSlot)->Threads(1)->Threads(2);

void BM_OutlierSuccessAndSweep(benchmark::State& state) {
  OutlierDetector od;
  std::vector<tcp::endpoint> eps;
  for (int i = 0; i < 50; ++i) eps.emplace_back(make_address("10.0.0.1"), 8000 + i);
  const auto now = Clock::now();
  od.assign(eps, now);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(od.record_response(i++ % 50, 200, now));
    benchmark::DoNotOptimize(od.sweep(now));
  }
}
BENCHMARK(BM_OutlierSuccessAndSweep);

void BM_RetryDecisionOnSuccess(benchmark::State& state) {
  RetryPolicy p;
  p.retry_on = retry_on::k5xx | retry_on::kConnectFailure;
  const AttemptOutcome ok{AttemptResult::kResponse, 200, nullptr};
  for (auto _ : state) benchmark::DoNotOptimize(p.should_retry(ok, "GET", 0, true));
}
BENCHMARK(BM_RetryDecisionOnSuccess);

void BM_RetryBudgetRequest(benchmark::State& state) {
  RetryBudget b;
  for (auto _ : state) {
    b.request_started();
    benchmark::DoNotOptimize(b);
    b.request_finished();
  }
}
BENCHMARK(BM_RetryBudgetRequest);

}  // namespace
}  // namespace outrigger::upstream
