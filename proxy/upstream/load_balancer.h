// Endpoint choice for one cluster: round robin (smooth weighted when weights differ), least
// request (power of two choices) and random (weighted), over the endpoints that are available
// (health and outlier state), with Envoy's panic threshold, local-zone preference with spill-over,
// and an `avoid` endpoint (the one that just failed) that is skipped whenever another one can
// serve.
//
// Thread affinity: worker-local, one per cluster per worker (cursor, weights state and per-endpoint
// active request counts belong to that worker). pick() never allocates: availability changes are
// pushed (refresh/rebuild, O(n), rare) and pick() works on the precomputed sets.
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::upstream {

enum class LbPolicy : uint8_t { kRoundRobin, kLeastRequest, kRandom };
// "round_robin", "least_request", "random" (Envoy's lb_policy names, lower case).
std::optional<LbPolicy> parse_lb_policy(std::string_view name) noexcept;
std::string_view lb_policy_name(LbPolicy p) noexcept;

struct LbOptions {
  LbPolicy policy = LbPolicy::kRoundRobin;
  // Envoy common_lb_config.healthy_panic_threshold (default 50 %): when fewer than this share of
  // the endpoints is available, availability is ignored and every endpoint takes traffic (counted
  // as a panic). 0 turns panic off: with no endpoint available, pick() finds none.
  uint32_t healthy_panic_threshold = 50;
  // Local-zone preference: the local zone alone serves while at least this share of its endpoints
  // is available; below it, every available endpoint serves (spill-over). Simpler than Envoy's
  // zone-aware routing, which weighs the zones' sizes on both sides.
  uint32_t local_zone_min_available = 70;
};

struct LbEndpoint {
  boost::asio::ip::tcp::endpoint address;
  uint32_t weight = 1;  // 0 is taken as 1
  std::string zone;     // "" when unknown
};

struct LbPick {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t index = kNone;   // into the cluster's endpoint vector
  uint32_t generation = 0;  // of the endpoint set the index belongs to
  bool panic = false;       // chosen while in panic mode
  bool cross_zone = false;  // a local zone is set and this endpoint is not in it
  explicit operator bool() const noexcept { return index != kNone; }
};

struct LbCounters {
  uint64_t picks = 0;
  uint64_t panic = 0;       // picks made in panic mode
  uint64_t cross_zone = 0;  // picks outside the local zone (local zone set)
  uint64_t none = 0;        // pick() found no endpoint
};

class LoadBalancer {
 public:
  static constexpr uint32_t kNone = LbPick::kNone;

  explicit LoadBalancer(const LbOptions& o = {}, uint64_t seed = 0x9e3779b97f4a7c15ULL);
  LoadBalancer(LoadBalancer&&) noexcept = default;
  LoadBalancer& operator=(LoadBalancer&&) noexcept = default;

  // Options change without an endpoint change: takes effect now.
  void set_options(const LbOptions& o) noexcept;
  const LbOptions& options() const noexcept { return opts_; }

  // A new endpoint set (all available). Allocates. Active request counts restart at zero and a
  // new generation begins; requests picked from the old set end without effect.
  void assign(std::span<const LbEndpoint> endpoints, std::string_view local_zone);

  // Availability: mark endpoints, then rebuild() once. Or refresh(pred) to do both.
  void set_available(uint32_t i, bool available) noexcept {
    if (i < available_.size()) available_[i] = available ? 1 : 0;
  }
  void rebuild() noexcept;
  template <class Pred>
  void refresh(Pred&& available) {
    for (uint32_t i = 0; i < available_.size(); ++i) available_[i] = available(i) ? 1 : 0;
    rebuild();
  }

  // The next endpoint. avoid: an index to skip when another one can serve (kNone for none).
  // random: a uniformly distributed 64-bit value (random and least request use it).
  LbPick pick(uint32_t avoid, uint64_t random) noexcept;

  // Least request's load signal: call around each request sent to a picked endpoint.
  void on_request_start(const LbPick& p) noexcept {
    if (p.generation == generation_ && p.index < active_.size()) ++active_[p.index];
  }
  void on_request_end(const LbPick& p) noexcept {
    if (p.generation == generation_ && p.index < active_.size() && active_[p.index] > 0) {
      --active_[p.index];
    }
  }

  size_t size() const noexcept { return addrs_.size(); }
  const boost::asio::ip::tcp::endpoint& address(uint32_t i) const noexcept { return addrs_[i]; }
  std::string_view zone(uint32_t i) const noexcept { return zones_[i]; }
  uint32_t weight(uint32_t i) const noexcept { return weights_[i]; }
  bool available(uint32_t i) const noexcept { return available_[i] != 0; }
  uint32_t active_requests(uint32_t i) const noexcept { return active_[i]; }
  uint32_t generation() const noexcept { return generation_; }
  bool in_panic() const noexcept { return panic_; }
  bool local_zone_only() const noexcept { return current_ == kLocal; }
  size_t available_count() const noexcept { return sets_[kAvailable].hosts.size(); }
  const LbCounters& counters() const noexcept { return counters_; }

 private:
  // One candidate set (positions are into hosts).
  struct HostSet {
    std::vector<uint32_t> hosts;       // endpoint indices
    std::vector<uint32_t> weights;     // per position
    std::vector<uint64_t> cumulative;  // per position: sum of weights up to and including it
    std::vector<int64_t> current;      // smooth weighted round robin state, per position
    std::vector<int32_t> pos;          // endpoint index -> position, -1 when absent
    uint64_t total_weight = 0;
    bool weighted = false;
    uint32_t rr = 0;
  };
  void reserve(HostSet& s, size_t n);
  template <class Keep>
  void fill(HostSet& s, Keep keep) noexcept;
  uint32_t pick_in(HostSet& s, uint32_t avoid, uint64_t random) noexcept;
  uint32_t pick_round_robin(HostSet& s, int32_t skip) noexcept;
  uint32_t pick_random(const HostSet& s, int32_t skip, uint64_t random) const noexcept;
  uint32_t pick_least_request(const HostSet& s, int32_t skip, uint64_t random) const noexcept;
  // A position drawn by weight, leaving out positions ex1 and ex2 (-1: none; distinct).
  static uint32_t weighted_position(const HostSet& s, uint64_t random, int32_t ex1,
                                    int32_t ex2) noexcept;
  uint32_t next_seed() noexcept;  // xorshift, for the round-robin starting points

  LbOptions opts_;
  std::vector<boost::asio::ip::tcp::endpoint> addrs_;
  std::vector<std::string> zones_;
  std::vector<uint32_t> weights_;
  std::vector<uint8_t> available_;
  std::vector<uint8_t> in_local_zone_;
  std::vector<uint32_t> active_;
  std::string local_zone_;
  // The candidate sets, by index (not pointers, so the balancer can move).
  static constexpr int kAll = 0;        // panic mode: every endpoint
  static constexpr int kAvailable = 1;  // every available endpoint
  static constexpr int kLocal = 2;      // available endpoints in the local zone
  static constexpr int kNoSet = -1;
  std::array<HostSet, 3> sets_;
  int current_ = kNoSet;
  bool panic_ = false;
  uint32_t generation_ = 0;
  uint64_t seed_;
  LbCounters counters_;
};

}  // namespace outrigger::upstream
