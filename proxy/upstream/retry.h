// Retry policy of a route: which attempt outcomes are retried and how often, how long to wait
// between attempts (full-jitter exponential backoff or the upstream's Retry-After), and the
// per-cluster retry budget that keeps retries from multiplying a failure.
//
// Thread affinity: RetryPolicy is immutable once built (part of the config snapshot) and may be
// read by every worker at once; its methods are const and pure. RetryBudget is worker-local (one
// per cluster per worker, plain integers, no atomics). Nothing here allocates after construction.
//
// Semantics follow Envoy's router retry policy (x-envoy-retry-on names, 25 ms / 250 ms backoff,
// retry_budget 20 % / 3); the differences are listed in proxy/upstream/README.md.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/h1.h"

namespace outrigger::upstream {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// retry_on conditions, a bit each (names as in Envoy's x-envoy-retry-on).
namespace retry_on {
inline constexpr uint32_t kConnectFailure = 1u << 0;        // "connect-failure"
inline constexpr uint32_t kRefusedStream = 1u << 1;         // "refused-stream"
inline constexpr uint32_t kReset = 1u << 2;                 // "reset"
inline constexpr uint32_t kGatewayError = 1u << 3;          // "gateway-error"
inline constexpr uint32_t k5xx = 1u << 4;                   // "5xx"
inline constexpr uint32_t kRetriableStatusCodes = 1u << 5;  // "retriable-status-codes"
inline constexpr uint32_t kRetriableHeaders = 1u << 6;      // "retriable-headers"
// gRPC conditions (Envoy's x-envoy-retry-grpc-on names): the grpc-status of a trailers-only
// response, i.e. a grpc-status field in the response head.
inline constexpr uint32_t kGrpcCancelled = 1u << 7;           // "cancelled" (1)
inline constexpr uint32_t kGrpcDeadlineExceeded = 1u << 8;    // "deadline-exceeded" (4)
inline constexpr uint32_t kGrpcResourceExhausted = 1u << 9;   // "resource-exhausted" (8)
inline constexpr uint32_t kGrpcInternal = 1u << 10;           // "internal" (13)
inline constexpr uint32_t kGrpcUnavailable = 1u << 11;        // "unavailable" (14)
inline constexpr uint32_t kGrpcAny = kGrpcCancelled | kGrpcDeadlineExceeded |
                                     kGrpcResourceExhausted | kGrpcInternal | kGrpcUnavailable;
}  // namespace retry_on

// One condition name to its bit; 0 when the name is unknown.
uint32_t retry_on_bit(std::string_view name) noexcept;
// A comma-separated list ("5xx, reset") or a list of names to a mask; an unknown name is an error
// naming it. Empty items are ignored, so "" is a valid empty mask.
std::expected<uint32_t, std::string> parse_retry_on(std::string_view list);
std::expected<uint32_t, std::string> parse_retry_on(std::span<const std::string> names);

// What one attempt came to.
enum class AttemptResult : uint8_t {
  kResponse,        // a complete response head arrived: its status and headers decide
  kConnectFailure,  // no connection: refused, unreachable, connect timeout (nothing was sent)
  kRefusedStream,   // the upstream refused the stream before processing it (HTTP/2 REFUSED_STREAM)
  kReset,           // the connection closed or reset before a complete response head
  kPerTryTimeout,   // no response head within the per-try timeout
};

struct AttemptOutcome {
  AttemptResult result = AttemptResult::kResponse;
  int status = 0;                              // kResponse only
  const http::MessageHead* headers = nullptr;  // kResponse: for retriable-headers and Retry-After
};

enum class RetryDecision : uint8_t {
  kRetry,
  kNotRetriable,       // the outcome matches no retry_on condition (every success lands here)
  kExhausted,          // num_retries already used
  kNotIdempotent,      // the method is not retried and the request may have reached the upstream
  kBodyNotReplayable,  // the body outgrew the replay buffer: counted, the failure is returned
};
std::string_view retry_decision_name(RetryDecision d) noexcept;

// A response header that makes a response retriable under "retriable-headers": matched by name
// (case-insensitive), and by exact value when one is given.
struct RetriableHeader {
  std::string name;
  std::optional<std::string> value;
};

struct RetryPolicy {
  // Envoy: no retries unless a policy names conditions; num_retries defaults to 1.
  uint32_t retry_on = 0;
  uint32_t num_retries = 1;
  std::vector<uint16_t> retriable_status_codes;    // used with retry_on::kRetriableStatusCodes
  std::vector<RetriableHeader> retriable_headers;  // used with retry_on::kRetriableHeaders
  // Only these methods are retried once a request may have reached the upstream (RFC 9110 9.2.2
  // idempotent methods). Connect failures and refused streams are retried for every method: the
  // upstream never saw the request. Envoy has no such rule; set idempotent_only = false for it.
  bool idempotent_only = true;
  std::vector<std::string> idempotent_methods = {"GET", "HEAD",   "OPTIONS",
                                                 "PUT", "DELETE", "TRACE"};
  // Full-jitter exponential backoff (Envoy retry_back_off: base 25 ms, max 10 x base).
  milliseconds backoff_base{25};
  milliseconds backoff_max{250};
  // Retry-After on a retried response (delta-seconds or HTTP-date) replaces the backoff when it is
  // at most retry_after_max; a longer one means no retry (retrying sooner than the upstream asked
  // only earns another refusal). Envoy reads it only with rate_limited_retry_back_off.
  bool honor_retry_after = true;
  milliseconds retry_after_max{5'000};
  // Per-try timeout; 0 = none (the route's request timeout bounds all attempts together).
  milliseconds per_try_timeout{0};
  // Largest request body kept for replay; a larger body disables retries for that request.
  uint64_t max_replay_body_bytes = 64 * 1024;

  // Is this outcome one that retry_on asks to retry? Pure; ignores counts, method and body.
  bool retriable(const AttemptOutcome& o) const noexcept;
  // Does a gRPC condition (cancelled, unavailable, ...) match the response's grpc-status? Such a
  // response is retried whatever the method (every gRPC call is a POST): naming a gRPC status is
  // the route owner saying that status is safe to retry, as in gRPC's own retry policy (gRFC A6).
  bool grpc_retriable(const AttemptOutcome& o) const noexcept;
  // The whole decision for the attempt that just ended. retries_done: retries already made for
  // this request (0 after the first attempt). The stateful checks (budget, breaker, deadline)
  // come after a kRetry, in the caller.
  RetryDecision should_retry(const AttemptOutcome& o, std::string_view method,
                             uint32_t retries_done, bool body_replayable) const noexcept;
  bool method_retriable(std::string_view method) const noexcept;

  // Full jitter: uniform in [0, min((2^n - 1) x base, max)) for retry number n >= 1 (Envoy's
  // documented range). random: any uniformly distributed 64-bit value.
  milliseconds next_backoff(uint32_t retry_number, uint64_t random) const noexcept;
  template <class Rng>
  requires std::invocable<Rng&> milliseconds next_backoff(uint32_t retry_number, Rng& rng)
  const { return next_backoff(retry_number, static_cast<uint64_t>(rng())); }
  // The wait before retry number n: Retry-After when the outcome carries one that parses and
  // honor_retry_after is set, else next_backoff. nullopt: Retry-After exceeds retry_after_max,
  // so do not retry.
  std::optional<milliseconds> retry_delay(const AttemptOutcome& o, uint32_t retry_number,
                                          std::chrono::system_clock::time_point now,
                                          uint64_t random) const noexcept;
};

// Retry-After (RFC 9110 10.2.3): delta-seconds or an HTTP-date (IMF-fixdate, and the obsolete
// RFC 850 and asctime forms recipients must accept). A date in the past is 0 ms. nullopt when the
// value is neither.
std::optional<milliseconds> parse_retry_after(std::string_view value,
                                              std::chrono::system_clock::time_point now) noexcept;

// x-outrigger-timeout-ms: decimal milliseconds, 1 to 86400000; anything else is ignored (nullopt).
// The caller applies it only when the route allows it.
std::optional<milliseconds> parse_timeout_ms(std::string_view value) noexcept;

// The deadline of one attempt: the per-try timeout from now, never past the request's deadline.
inline Clock::time_point attempt_deadline(Clock::time_point now, Clock::time_point request_deadline,
                                          milliseconds per_try_timeout) noexcept {
  if (per_try_timeout.count() <= 0) return request_deadline;
  const Clock::time_point t = now + per_try_timeout;
  return t < request_deadline ? t : request_deadline;
}

// Envoy's retry_budget: concurrent retries may not exceed budget_percent of the active requests
// (pending included), but the limit never drops below min_retry_concurrency. Envoy lets a budget
// replace the cluster's max_retries breaker; README.md says how the lead combines them.
struct RetryBudgetOptions {
  double budget_percent = 20.0;
  uint32_t min_retry_concurrency = 3;
};

// Thread affinity: worker-local, one per cluster per worker.
class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetOptions o = {}) : opts_(o) {}
  void set_options(RetryBudgetOptions o) noexcept { opts_ = o; }
  const RetryBudgetOptions& options() const noexcept { return opts_; }

  // Every downstream request to the cluster, from admission to its end (once, however many
  // attempts it makes).
  void request_started() noexcept { ++active_requests_; }
  void request_finished() noexcept {
    if (active_requests_ > 0) --active_requests_;
  }
  // Room for one more concurrent retry? Takes it, or counts an overflow.
  bool try_acquire() noexcept;
  // The retry attempt ended (whatever its outcome).
  void release() noexcept {
    if (active_retries_ > 0) --active_retries_;
  }

  uint32_t allowed() const noexcept;  // the current limit on concurrent retries
  uint32_t active_requests() const noexcept { return active_requests_; }
  uint32_t active_retries() const noexcept { return active_retries_; }
  uint64_t overflows() const noexcept { return overflows_; }

 private:
  RetryBudgetOptions opts_;
  uint32_t active_requests_ = 0;
  uint32_t active_retries_ = 0;
  uint64_t overflows_ = 0;
};

}  // namespace outrigger::upstream
