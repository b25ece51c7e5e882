// Active HTTP health checking of a cluster's endpoints: every interval (plus jitter) each endpoint
// gets a fresh connection (over TLS when the cluster originates TLS: the same chain, name and
// client-certificate checks as its requests) and `GET <path> HTTP/1.1`; the status decides, healthy
// and unhealthy thresholds debounce, and every state change is reported through a callback (the
// lead rebuilds the snapshot's availability from it).
//
// Thread affinity: the io_context given (the main thread's); every method and both callbacks run
// on it. Nothing here touches the request path. Destroying the checker stops it: no callback runs
// afterwards, and in-flight checks wind down on their own when the io_context next runs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tls/context.h"

namespace outrigger::upstream {

using std::chrono::milliseconds;

// Half-open [begin, end), as Envoy's Int64Range in expected_statuses.
struct StatusRange {
  int begin = 200;
  int end = 400;
  bool contains(int s) const noexcept { return s >= begin && s < end; }
};

// Envoy's core.v3.HealthCheck with http_health_check. Envoy requires interval, timeout and both
// thresholds; the defaults below are ours.
struct HealthCheckOptions {
  std::string path = "/health";
  std::string host;  // Host header; empty: the endpoint's "ip:port" (Envoy: the cluster name)
  milliseconds interval{5'000};
  milliseconds timeout{1'000};            // connect + request + response head, together
  milliseconds initial_jitter{0};         // first check after a random [0, initial_jitter]
  milliseconds interval_jitter{0};        // each wait adds a random [0, interval_jitter]
  uint32_t interval_jitter_percent = 10;  // ... and a random [0, interval x percent / 100]
  uint32_t unhealthy_threshold = 3;
  uint32_t healthy_threshold = 2;
  // Envoy's default is 200 only; we take any 2xx or 3xx as healthy, as the issue asks.
  std::vector<StatusRange> expected_statuses = {{200, 400}};
  // Statuses that count towards unhealthy_threshold like a timeout; any other status outside
  // expected_statuses makes a healthy endpoint unhealthy at once (Envoy's rule).
  std::vector<StatusRange> retriable_statuses;
  // TLS clusters (Envoy: the cluster's transport socket; HAProxy: check-ssl): asked at each check
  // for the material to originate with and the SNI, so rotated certificates and reloads apply to
  // checks as they do to requests. Unset, or returning null: a plaintext check.
  std::function<std::shared_ptr<const tls::ClientTls>(std::string* sni)> tls;
};

// kUnknown: not checked yet. The lead routes to it (so traffic flows before the first round); the
// first result decides at once either way, as a single success does at startup in Envoy.
enum class HealthState : uint8_t { kUnknown, kHealthy, kUnhealthy };
std::string_view health_state_name(HealthState s) noexcept;  // "unknown", "healthy", "unhealthy"

enum class CheckResult : uint8_t {
  kSuccess,
  kUnexpectedStatus,  // a status in neither list: unhealthy at once
  kRetriableStatus,   // a status in retriable_statuses
  kConnectFailure,    // refused, unreachable
  kTimeout,           // no complete response head within timeout
  kBadResponse,       // closed early, malformed, or a head over 16 KiB
  kTlsFailure,        // TLS cluster: the handshake failed (chain, name, client certificate)
};
std::string_view check_result_name(CheckResult r) noexcept;

struct HealthTransition {
  size_t index = 0;  // into the endpoint list last given to set_endpoints
  boost::asio::ip::tcp::endpoint address;
  HealthState from = HealthState::kUnknown;
  HealthState to = HealthState::kUnknown;
  CheckResult result = CheckResult::kSuccess;  // of the check that made the change
};

struct EndpointHealth {
  boost::asio::ip::tcp::endpoint address;
  HealthState state = HealthState::kUnknown;
  uint32_t consecutive_successes = 0;
  uint32_t consecutive_failures = 0;
  uint64_t checks = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  CheckResult last_result = CheckResult::kSuccess;
  int last_status = 0;  // 0 when no response came
};

class HealthChecker {
 public:
  using TransitionCallback = std::function<void(const HealthTransition&)>;
  // Every finished check; optional. For Envoy's successful_active_health_check_uneject_host the
  // lead forwards kSuccess to the workers' outlier detectors.
  using CheckCallback = std::function<void(size_t index, CheckResult result)>;

  HealthChecker(boost::asio::io_context& io, HealthCheckOptions opts, TransitionCallback on_change,
                CheckCallback on_check = {}, uint64_t seed = 0);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The endpoints to check (index = position). An address checked before keeps its state and
  // schedule; new ones start kUnknown and are checked after initial_jitter; gone ones stop.
  void set_endpoints(std::span<const boost::asio::ip::tcp::endpoint> endpoints);
  // Stops every check; no callback runs after it. set_endpoints() starts again.
  void stop();

  size_t size() const noexcept;
  const EndpointHealth& endpoint(size_t i) const noexcept;
  HealthState state(size_t i) const noexcept { return endpoint(i).state; }
  size_t healthy_count() const noexcept;  // kHealthy or kUnknown

  struct Core;  // shared with the running checks, so they outlive neither it nor the checker

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace outrigger::upstream
