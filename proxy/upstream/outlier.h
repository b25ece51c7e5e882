// Outlier detection of a cluster (passive health checking): consecutive 5xx, consecutive gateway
// failures and consecutive local-origin failures eject an endpoint for base_ejection_time x the
// times it was ejected in a row (capped), within max_ejection_percent; the time running out, or a
// successful active health check, brings it back.
//
// Thread affinity: worker-local. Each worker runs its own detector per cluster, fed by the requests
// that worker forwards, and ejects at once on its own counts: no cross-thread traffic on the
// request path. Envoy instead aggregates every worker's results on the main thread. The
// consequence, which we accept: a failing endpoint is ejected by each worker after `threshold`
// failures seen by that worker (so up to workers x threshold failures in all), and
// max_ejection_percent holds per worker. The one exception is view(): an immutable summary,
// republished on every ejection change, that any thread (the admin's /clusters) may read.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace outrigger::upstream {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Envoy's cluster.outlier_detection fields of the same names, with Envoy's defaults except where
// noted. A threshold of 0 turns its detector off.
struct OutlierOptions {
  uint32_t consecutive_5xx = 5;
  // Envoy detects gateway failures by default but enforces them at 0 %
  // (enforcing_consecutive_gateway_failure); here they eject, as issue 5 asks.
  uint32_t consecutive_gateway_failure = 5;
  // Used when split_external_local_origin_errors: connect failures, resets and timeouts.
  uint32_t consecutive_local_origin_failure = 5;
  // Envoy defaults to false, folding local-origin failures into the 5xx and gateway counters as if
  // they were 503s. We default to true so a dead endpoint (refused, timing out) has its own
  // detector and a 5xx-answering application its own; false gives Envoy's behaviour.
  bool split_external_local_origin_errors = true;
  milliseconds interval{10'000};  // how often an endpoint in good standing has its multiplier decay
  milliseconds base_ejection_time{30'000};
  milliseconds max_ejection_time{300'000};  // the cap is max(max_ejection_time, base_ejection_time)
  uint32_t max_ejection_percent = 10;
  // Envoy (always_eject_one_host, default false): with it, the first ejection is always allowed,
  // whatever max_ejection_percent says. Without it, a cluster of fewer than 10 endpoints ejects
  // nothing at 10 %; small clusters want it on, or a higher percent.
  bool always_eject_one_host = false;
  bool successful_active_health_check_uneject_host = true;
};

enum class EjectReason : uint8_t {
  kNone,
  kConsecutive5xx,
  kConsecutiveGatewayFailure,
  kConsecutiveLocalOriginFailure,
};
inline constexpr size_t kEjectReasons = 3;  // not counting kNone
// Metric label / JSON value: "consecutive_5xx", "consecutive_gateway_failure",
// "consecutive_local_origin_failure"; "" for kNone.
std::string_view eject_reason_name(EjectReason r) noexcept;

struct EndpointOutlierState {
  uint32_t consecutive_5xx = 0;
  uint32_t consecutive_gateway_failure = 0;
  uint32_t consecutive_local_origin_failure = 0;
  uint32_t multiplier = 0;  // ejections in a row; decays by one per interval out of ejection
  uint64_t ejections = 0;   // in total
  bool ejected = false;     // may have expired already: use is_ejected(i, now)
  Clock::time_point until{};
  Clock::time_point back_since{};  // last return to service
  EjectReason last_reason = EjectReason::kNone;
};

struct OutlierStats {
  std::array<uint64_t, kEjectReasons> ejections_enforced{};  // index: reason - 1
  uint64_t ejections_overflow = 0;  // an ejection max_ejection_percent refused
  uint64_t unejections = 0;
};

// Immutable summary for readers on other threads.
struct OutlierView {
  struct Endpoint {
    boost::asio::ip::tcp::endpoint address;
    bool ejected = false;
    Clock::time_point until{};
    uint32_t multiplier = 0;
    uint64_t ejections = 0;
    EjectReason last_reason = EjectReason::kNone;
  };
  std::vector<Endpoint> endpoints;
  OutlierStats stats;
  uint64_t generation = 0;
};

class OutlierDetector {
 public:
  explicit OutlierDetector(const OutlierOptions& o = {});
  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;

  void set_options(const OutlierOptions& o) noexcept { opts_ = o; }
  const OutlierOptions& options() const noexcept { return opts_; }

  // The endpoint set (index = position); state carries over for addresses in both sets, so a DNS
  // refresh giving the same answer changes nothing. Allocates; not on the request path.
  void assign(std::span<const boost::asio::ip::tcp::endpoint> endpoints, Clock::time_point now);
  size_t size() const noexcept { return eps_.size(); }

  // A response from endpoint i (any status; a response also proves the connection worked).
  // Returns the reason when this response ejected it.
  EjectReason record_response(size_t i, int status, Clock::time_point now) noexcept;
  // Connect failure, reset or timeout talking to i.
  EjectReason record_local_origin_failure(size_t i, Clock::time_point now) noexcept;
  // A connection to i was established.
  void record_local_origin_success(size_t i) noexcept;
  // An active health check of i passed: with successful_active_health_check_uneject_host, an
  // ejected i comes back and its counters clear (Envoy). True when it was unejected.
  bool on_health_check_success(size_t i, Clock::time_point now) noexcept;

  bool is_ejected(size_t i, Clock::time_point now) const noexcept {
    return i < eps_.size() && eps_[i].ejected && now < eps_[i].until;
  }
  // Brings back endpoints whose time is up, and decays multipliers once per interval. Costs a
  // comparison when nothing is due, so it can run on every request or worker tick. True when the
  // ejected set changed (the load balancer's availability must be refreshed).
  bool sweep(Clock::time_point now) noexcept;

  size_t ejected_count() const noexcept { return ejected_count_; }
  // Changes with every ejection and unejection: compare to know when to refresh availability.
  uint64_t generation() const noexcept { return generation_; }
  const EndpointOutlierState& state(size_t i) const noexcept { return eps_[i]; }
  const OutlierStats& stats() const noexcept { return stats_; }
  // Any thread.
  std::shared_ptr<const OutlierView> view() const noexcept {
    return view_.load(std::memory_order_acquire);
  }

 private:
  EjectReason try_eject(size_t i, EjectReason why, Clock::time_point now) noexcept;
  void uneject(size_t i, Clock::time_point now) noexcept;
  void changed() noexcept;  // generation + republish (allocates; only on ejection changes)
  void recompute_next_unejection() noexcept;

  OutlierOptions opts_;
  std::vector<boost::asio::ip::tcp::endpoint> addrs_;
  std::vector<EndpointOutlierState> eps_;
  size_t ejected_count_ = 0;
  Clock::time_point next_unejection_ = Clock::time_point::max();
  Clock::time_point next_decay_ = Clock::time_point::max();
  uint64_t generation_ = 0;
  OutlierStats stats_;
  std::atomic<std::shared_ptr<const OutlierView>> view_;
};

}  // namespace outrigger::upstream
