#include "proxy/upstream/load_balancer.h"

#include <algorithm>
#include <array>
#include <climits>

namespace outrigger::upstream {

namespace {
// Uniform in [0, n) from random bits, without a division (Lemire's multiply-shift).
inline uint64_t scale64(uint64_t random, uint64_t n) noexcept {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(random) * n) >> 64);
}
inline uint32_t scale32(uint32_t random, uint32_t n) noexcept {
  return static_cast<uint32_t>((static_cast<uint64_t>(random) * n) >> 32);
}
// A second, independent-looking value from the first (splitmix64's finaliser).
inline uint64_t mix(uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

std::optional<LbPolicy> parse_lb_policy(std::string_view name) noexcept {
  if (name == "round_robin") return LbPolicy::kRoundRobin;
  if (name == "least_request") return LbPolicy::kLeastRequest;
  if (name == "random") return LbPolicy::kRandom;
  return std::nullopt;
}

std::string_view lb_policy_name(LbPolicy p) noexcept {
  switch (p) {
    case LbPolicy::kRoundRobin:
      return "round_robin";
    case LbPolicy::kLeastRequest:
      return "least_request";
    case LbPolicy::kRandom:
      return "random";
  }
  return "";
}

LoadBalancer::LoadBalancer(const LbOptions& o, uint64_t seed) : opts_(o), seed_(seed | 1) {}

void LoadBalancer::set_options(const LbOptions& o) noexcept {
  opts_ = o;
  rebuild();
}

void LoadBalancer::reserve(HostSet& s, size_t n) {
  s.hosts.clear();
  s.hosts.reserve(n);
  s.weights.reserve(n);
  s.cumulative.reserve(n);
  s.current.reserve(n);
  s.pos.assign(n, -1);
}

void LoadBalancer::assign(std::span<const LbEndpoint> endpoints, std::string_view local_zone) {
  const size_t n = endpoints.size();
  addrs_.clear();
  zones_.clear();
  weights_.clear();
  in_local_zone_.clear();
  addrs_.reserve(n);
  zones_.reserve(n);
  weights_.reserve(n);
  in_local_zone_.reserve(n);
  for (const LbEndpoint& e : endpoints) {
    addrs_.push_back(e.address);
    zones_.push_back(e.zone);
    weights_.push_back(std::max<uint32_t>(e.weight, 1));
    in_local_zone_.push_back(!local_zone.empty() && e.zone == local_zone ? 1 : 0);
  }
  local_zone_ = local_zone;
  available_.assign(n, 1);
  active_.assign(n, 0);
  ++generation_;
  for (HostSet& set : sets_) reserve(set, n);
  rebuild();
}

uint32_t LoadBalancer::next_seed() noexcept {
  seed_ ^= seed_ << 13;
  seed_ ^= seed_ >> 7;
  seed_ ^= seed_ << 17;
  return static_cast<uint32_t>(seed_ >> 32);
}

template <class Keep>
void LoadBalancer::fill(HostSet& s, Keep keep) noexcept {
  for (uint32_t h : s.hosts) s.pos[h] = -1;
  s.hosts.clear();
  s.weights.clear();
  s.cumulative.clear();
  s.current.clear();
  s.total_weight = 0;
  s.weighted = false;
  // Capacity was reserved for every endpoint in assign(), so none of these push_backs allocates.
  for (uint32_t i = 0; i < addrs_.size(); ++i) {
    if (!keep(i)) continue;
    s.pos[i] = static_cast<int32_t>(s.hosts.size());
    s.hosts.push_back(i);
    s.weights.push_back(weights_[i]);
    s.total_weight += weights_[i];
    s.cumulative.push_back(s.total_weight);
    s.current.push_back(0);
    if (weights_[i] != s.weights.front()) s.weighted = true;
  }
  // Workers start their rotations at different endpoints, so they do not move in lockstep.
  s.rr = s.hosts.empty() ? 0 : next_seed() % static_cast<uint32_t>(s.hosts.size());
}

void LoadBalancer::rebuild() noexcept {
  fill(sets_[kAll], [](uint32_t) { return true; });
  fill(sets_[kAvailable], [this](uint32_t i) { return available_[i] != 0; });
  fill(sets_[kLocal], [this](uint32_t i) { return available_[i] != 0 && in_local_zone_[i] != 0; });
  const uint64_t n = addrs_.size();
  const uint64_t avail = sets_[kAvailable].hosts.size();
  panic_ = n > 0 && opts_.healthy_panic_threshold > 0 &&
           avail * 100 < uint64_t{opts_.healthy_panic_threshold} * n;
  if (n == 0) {
    current_ = kNoSet;
  } else if (panic_) {
    current_ = kAll;
  } else if (avail == 0) {
    current_ = kNoSet;  // panic turned off and nothing available
  } else {
    const uint64_t local_total =
        static_cast<uint64_t>(std::count(in_local_zone_.begin(), in_local_zone_.end(), 1));
    const uint64_t local_avail = sets_[kLocal].hosts.size();
    const bool stay_local =
        local_avail > 0 &&
        local_avail * 100 >= uint64_t{opts_.local_zone_min_available} * local_total;
    current_ = stay_local ? kLocal : kAvailable;
  }
}

LbPick LoadBalancer::pick(uint32_t avoid, uint64_t random) noexcept {
  ++counters_.picks;
  if (current_ == kNoSet) {
    ++counters_.none;
    return {};
  }
  HostSet* s = &sets_[static_cast<size_t>(current_)];
  uint32_t idx = pick_in(*s, avoid, random);
  if (idx == kNone && current_ == kLocal) {
    // The local zone has nothing but the endpoint to avoid: another zone serves this one.
    s = &sets_[kAvailable];
    idx = pick_in(*s, avoid, random);
  }
  if (idx == kNone) {
    if (avoid < s->pos.size() && s->pos[avoid] >= 0) {
      idx = avoid;  // it is the only one left: better a second chance than no answer
    } else {
      ++counters_.none;
      return {};
    }
  }
  LbPick p;
  p.index = idx;
  p.generation = generation_;
  p.panic = panic_;
  p.cross_zone = !local_zone_.empty() && in_local_zone_[idx] == 0;
  if (p.panic) ++counters_.panic;
  if (p.cross_zone) ++counters_.cross_zone;
  return p;
}

uint32_t LoadBalancer::pick_in(HostSet& s, uint32_t avoid, uint64_t random) noexcept {
  const int32_t skip = avoid < s.pos.size() ? s.pos[avoid] : -1;
  const size_t m = s.hosts.size();
  if (m == 0 || (skip >= 0 && m == 1)) return kNone;
  switch (opts_.policy) {
    case LbPolicy::kRoundRobin:
      return pick_round_robin(s, skip);
    case LbPolicy::kLeastRequest:
      return pick_least_request(s, skip, random);
    case LbPolicy::kRandom:
      return pick_random(s, skip, random);
  }
  return kNone;
}

uint32_t LoadBalancer::pick_round_robin(HostSet& s, int32_t skip) noexcept {
  const uint32_t m = static_cast<uint32_t>(s.hosts.size());
  if (!s.weighted) {
    uint32_t p = s.rr;
    if (++s.rr == m) s.rr = 0;
    if (static_cast<int32_t>(p) == skip) {
      p = s.rr;
      if (++s.rr == m) s.rr = 0;
    }
    return s.hosts[p];
  }
  // Smooth weighted round robin (as nginx does): every endpoint gains its weight, the richest is
  // chosen and pays the total. Over total_weight picks each endpoint is chosen weight times, and
  // the heavy ones are spread out rather than bunched. A skipped endpoint sits the round out (no
  // gain, no pay), so avoiding it many times neither starves nor floods it afterwards.
  // The skipped endpoint is parked at the bottom for the loop and put back after, so the loop
  // itself has no test for it.
  int64_t total = static_cast<int64_t>(s.total_weight);
  int64_t parked = 0;
  if (skip >= 0) {
    const size_t k = static_cast<size_t>(skip);
    total -= s.weights[k];
    parked = s.current[k];
    s.current[k] = INT64_MIN / 2 - int64_t{s.weights[k]};
  }
  uint32_t best = 0;
  int64_t best_current = INT64_MIN;
  for (uint32_t j = 0; j < m; ++j) {
    const int64_t c = s.current[j] + s.weights[j];
    s.current[j] = c;
    if (c > best_current) {
      best = j;
      best_current = c;
    }
  }
  if (skip >= 0) s.current[static_cast<size_t>(skip)] = parked;
  s.current[best] -= total;
  return s.hosts[best];
}

uint32_t LoadBalancer::pick_random(const HostSet& s, int32_t skip, uint64_t random) const noexcept {
  const uint32_t m = static_cast<uint32_t>(s.hosts.size());
  if (!s.weighted) {
    // Draw among the others, then step over the skipped position.
    uint32_t p = static_cast<uint32_t>(scale64(random, m - (skip >= 0 ? 1 : 0)));
    if (skip >= 0 && p >= static_cast<uint32_t>(skip)) ++p;
    return s.hosts[p];
  }
  return s.hosts[weighted_position(s, random, skip, -1)];
}

uint32_t LoadBalancer::weighted_position(const HostSet& s, uint64_t random, int32_t ex1,
                                         int32_t ex2) noexcept {
  // Draw in the weight line with the left-out intervals removed, then map back by stepping over
  // them in ascending order.
  struct Gap {
    uint64_t lo = 0, w = 0;
  };
  std::array<Gap, 2> gaps{};
  size_t n = 0;
  uint64_t total = s.total_weight;
  for (int32_t ex : {ex1, ex2}) {
    if (ex < 0) continue;
    const uint64_t w = s.weights[static_cast<size_t>(ex)];
    gaps[n++] = {s.cumulative[static_cast<size_t>(ex)] - w, w};
    total -= w;
  }
  if (n == 2 && gaps[1].lo < gaps[0].lo) std::swap(gaps[0], gaps[1]);
  uint64_t r = scale64(random, total);
  for (size_t g = 0; g < n; ++g) {
    if (r >= gaps[g].lo) r += gaps[g].w;
  }
  return static_cast<uint32_t>(std::upper_bound(s.cumulative.begin(), s.cumulative.end(), r) -
                               s.cumulative.begin());
}

uint32_t LoadBalancer::pick_least_request(const HostSet& s, int32_t skip,
                                          uint64_t random) const noexcept {
  const uint32_t m = static_cast<uint32_t>(s.hosts.size());
  const uint32_t k = m - (skip >= 0 ? 1 : 0);  // candidates
  const auto unskip = [skip](uint32_t p) {
    return skip >= 0 && p >= static_cast<uint32_t>(skip) ? p + 1 : p;
  };
  if (k == 1) return s.hosts[unskip(0)];
  if (!s.weighted) {
    // Two distinct candidates from one random value: the low and high 32 bits.
    const uint32_t a = scale32(static_cast<uint32_t>(random), k);
    uint32_t b = scale32(static_cast<uint32_t>(random >> 32), k - 1);
    if (b >= a) ++b;
    const uint32_t ha = s.hosts[unskip(a)], hb = s.hosts[unskip(b)];
    return active_[hb] < active_[ha] ? hb : ha;
  }
  // Weighted: candidates drawn by weight, and the lower active / weight wins, ties going to the
  // first draw. Idle, traffic follows the weights (every comparison ties); loaded, active requests
  // settle in proportion to the weights. (Envoy uses a scheduler over weight / (active + 1); a
  // two-candidate comparison of that form would starve light endpoints when nothing is in flight.)
  const uint32_t pa = weighted_position(s, random, skip, -1);
  const uint32_t pb = weighted_position(s, mix(random), skip, static_cast<int32_t>(pa));
  const uint32_t ha = s.hosts[pa], hb = s.hosts[pb];
  const uint64_t load_a = uint64_t{active_[ha]} * s.weights[pb];
  const uint64_t load_b = uint64_t{active_[hb]} * s.weights[pa];
  return load_b < load_a ? hb : ha;
}

}  // namespace outrigger::upstream
