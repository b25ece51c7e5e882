#include "proxy/upstream/circuit_breaker.h"

namespace outrigger::upstream {

std::string_view overflow_name(Overflow o) noexcept {
  switch (o) {
    case Overflow::kNone:
      return "";
    case Overflow::kConnections:
      return "connections";
    case Overflow::kPending:
      return "pending";
    case Overflow::kRequests:
      return "requests";
    case Overflow::kRetries:
      return "retries";
  }
  return "";
}

std::string_view resource_name(Resource r) noexcept { return overflow_name(overflow_of(r)); }

void CircuitBreaker::set_thresholds(const CircuitBreakerThresholds& t) noexcept {
  cells_[static_cast<size_t>(Resource::kConnections)].max.store(t.max_connections,
                                                                std::memory_order_relaxed);
  cells_[static_cast<size_t>(Resource::kPending)].max.store(t.max_pending_requests,
                                                            std::memory_order_relaxed);
  cells_[static_cast<size_t>(Resource::kRequests)].max.store(t.max_requests,
                                                             std::memory_order_relaxed);
  cells_[static_cast<size_t>(Resource::kRetries)].max.store(t.max_retries,
                                                            std::memory_order_relaxed);
}

CircuitBreakerThresholds CircuitBreaker::thresholds() const noexcept {
  return {limit(Resource::kConnections), limit(Resource::kPending), limit(Resource::kRequests),
          limit(Resource::kRetries)};
}

uint32_t CircuitBreaker::remaining(Resource r) const noexcept {
  const uint32_t o = open(r), m = limit(r);
  return o >= m ? 0 : m - o;
}

double CircuitBreaker::usage(Resource r) const noexcept {
  const uint32_t o = open(r), m = limit(r);
  if (m == 0) return 1.0;
  return static_cast<double>(o) / static_cast<double>(m);
}

}  // namespace outrigger::upstream
