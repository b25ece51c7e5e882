// Circuit breaker of a cluster: Envoy's four thresholds (connections, pending requests, active
// requests, active retries) as counters that refuse the unit over the limit, so an overload is
// answered at once (503 + x-outrigger-overflow) instead of queueing behind a failing upstream.
//
// Thread affinity: any thread. One CircuitBreaker per cluster is meant to be shared by every worker
// (shared_ptr kept across snapshots for the same cluster name), which gives cluster-wide limits as
// Envoy has them; the lead may equally give each worker its own with per-worker limits.
// Each resource is one atomic counter on its own cache line: taking a unit is one fetch_add, and
// the bound is exact (never exceeded): a unit is kept only when the count before it was below the
// limit, and a refused unit is given back. Racing refusals can only refuse early, by at most
// (workers - 1) units, and only at the limit itself. Thresholds may change at any time (reload).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace outrigger::upstream {

enum class Overflow : uint8_t { kNone, kConnections, kPending, kRequests, kRetries };
// The x-outrigger-overflow header value and metric label: "connections", "pending", "requests",
// "retries"; "" for kNone.
std::string_view overflow_name(Overflow o) noexcept;

enum class Resource : uint8_t { kConnections, kPending, kRequests, kRetries };
inline constexpr size_t kResources = 4;
constexpr Overflow overflow_of(Resource r) noexcept {
  return static_cast<Overflow>(static_cast<uint8_t>(r) + 1);
}
std::string_view resource_name(Resource r) noexcept;  // same names as overflow_name

// Envoy's cluster circuit_breakers.thresholds (default priority) and their defaults.
struct CircuitBreakerThresholds {
  uint32_t max_connections = 1024;       // upstream connections open (any state)
  uint32_t max_pending_requests = 1024;  // requests waiting for a connection
  uint32_t max_requests = 1024;          // requests in flight to the cluster
  uint32_t max_retries = 3;              // retries in flight to the cluster
};

class CircuitBreaker {
 public:
  explicit CircuitBreaker(const CircuitBreakerThresholds& t = {}) noexcept { set_thresholds(t); }
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  void set_thresholds(const CircuitBreakerThresholds& t) noexcept;
  CircuitBreakerThresholds thresholds() const noexcept;

  // Takes one unit of r, or returns r's Overflow (and counts it) when r is at its limit.
  Overflow try_acquire(Resource r) noexcept {
    Cell& c = cells_[static_cast<size_t>(r)];
    const uint32_t max = c.max.load(std::memory_order_relaxed);
    if (c.open.fetch_add(1, std::memory_order_relaxed) < max) return Overflow::kNone;
    c.open.fetch_sub(1, std::memory_order_relaxed);
    c.overflows.fetch_add(1, std::memory_order_relaxed);
    return overflow_of(r);
  }
  void release(Resource r, uint32_t n = 1) noexcept {
    cells_[static_cast<size_t>(r)].open.fetch_sub(n, std::memory_order_relaxed);
  }
  // A unit that the caller has for sure (a connection the pool opened before the breaker was in
  // place, say): counted without a check.
  void force_acquire(Resource r, uint32_t n = 1) noexcept {
    cells_[static_cast<size_t>(r)].open.fetch_add(n, std::memory_order_relaxed);
  }

  uint32_t open(Resource r) const noexcept {
    return cells_[static_cast<size_t>(r)].open.load(std::memory_order_relaxed);
  }
  uint32_t limit(Resource r) const noexcept {
    return cells_[static_cast<size_t>(r)].max.load(std::memory_order_relaxed);
  }
  uint64_t overflows(Resource r) const noexcept {
    return cells_[static_cast<size_t>(r)].overflows.load(std::memory_order_relaxed);
  }
  // Units left before the limit (Envoy's remaining_* gauges).
  uint32_t remaining(Resource r) const noexcept;
  // How close to the limit, open / limit: 0 idle, 1 at the limit (1 also for a zero limit).
  double usage(Resource r) const noexcept;

 private:
  struct alignas(64) Cell {
    std::atomic<uint32_t> open{0};
    std::atomic<uint32_t> max{0};
    std::atomic<uint64_t> overflows{0};
  };
  Cell cells_[kResources];
};

// One unit of one resource, given back when the slot is destroyed or released: every exit of a
// coroutine gives it back without bookkeeping. Move-only.
class BreakerSlot {
 public:
  BreakerSlot() = default;
  // Tries to take a unit; check overflow() (or operator bool) afterwards.
  BreakerSlot(CircuitBreaker& b, Resource r) noexcept : resource_(r) {
    overflow_ = b.try_acquire(r);
    if (overflow_ == Overflow::kNone) breaker_ = &b;
  }
  BreakerSlot(BreakerSlot&& o) noexcept
      : breaker_(std::exchange(o.breaker_, nullptr)),
        resource_(o.resource_),
        overflow_(o.overflow_) {}
  BreakerSlot& operator=(BreakerSlot&& o) noexcept {
    if (this != &o) {
      release();
      breaker_ = std::exchange(o.breaker_, nullptr);
      resource_ = o.resource_;
      overflow_ = o.overflow_;
    }
    return *this;
  }
  BreakerSlot(const BreakerSlot&) = delete;
  BreakerSlot& operator=(const BreakerSlot&) = delete;
  ~BreakerSlot() { release(); }

  void release() noexcept {
    if (breaker_ != nullptr) std::exchange(breaker_, nullptr)->release(resource_);
  }
  bool held() const noexcept { return breaker_ != nullptr; }
  explicit operator bool() const noexcept { return held(); }
  Overflow overflow() const noexcept { return overflow_; }

 private:
  CircuitBreaker* breaker_ = nullptr;
  Resource resource_ = Resource::kRequests;
  Overflow overflow_ = Overflow::kNone;
};

}  // namespace outrigger::upstream
