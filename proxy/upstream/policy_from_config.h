// Pure conversions from the validated configuration (config/model.h) to the option and policy
// structs the upstream primitives take (retry.h, circuit_breaker.h, outlier.h, load_balancer.h,
// health_check.h), so the data path builds them once per config snapshot and never reads YAML
// words or config defaults itself.
//
// Thread affinity: none (pure functions; the results are plain values). Call them when a snapshot
// is built (main thread) or when a worker adopts one; none is meant for the request path except
// request_timeout(), which does not allocate.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"
#include "proxy/upstream/circuit_breaker.h"
#include "proxy/upstream/health_check.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier.h"
#include "proxy/upstream/retry.h"

namespace outrigger::upstream {

// ---- routes ----

// The route's retry policy: its `retry` block (retry_on 0, i.e. no retries, without one) plus the
// route's per_try_timeout. Immutable; share it among workers.
RetryPolicy retry_policy_from_config(const config::Route& route);

struct RouteTimeouts {
  milliseconds request{15'000};  // all attempts together, to the response head (504)
  milliseconds per_try{0};       // each attempt's response head; 0 = none
  milliseconds idle{60'000};     // stream idle: the route's idle_timeout, else the listener's
  bool allow_timeout_header = false;
};
RouteTimeouts route_timeouts(const config::Listener& listener, const config::Route& route);

// The request's overall timeout: a valid x-outrigger-timeout-ms value (1 ms..24 h) when the route
// allows the header, else the route's timeout. header_value: the header's value, if present.
milliseconds request_timeout(const config::Route& route,
                             std::optional<std::string_view> header_value) noexcept;

// cluster, then failover: the route's clusters in priority order.
std::vector<std::string_view> route_clusters(const config::Route& route);

// ---- clusters ----

LbPolicy lb_policy_from_config(config::LbPolicy p) noexcept;
LbOptions lb_options_from_config(const config::Cluster& cluster);

// The local zone to give LoadBalancer::assign for this cluster: aws.zone, else runtime_zone (the
// ECS task metadata AZ; "" when unknown); "" (no zone preference) when zone_aware is disabled or
// none of the cluster's endpoints names a zone.
std::string local_zone_for(const config::Config& config, const config::Cluster& cluster,
                           std::string_view runtime_zone);

// One load-balancer endpoint: `address` is the configured endpoint itself (static clusters) or
// one of the addresses its name resolved to, which all share its weight and zone.
LbEndpoint lb_endpoint_from_config(const config::Endpoint& endpoint,
                                   const boost::asio::ip::tcp::endpoint& address);

CircuitBreakerThresholds breaker_thresholds_from_config(const config::Cluster& cluster) noexcept;
// nullopt: no budget; the breaker's max_retries bounds retries instead.
std::optional<RetryBudgetOptions> retry_budget_from_config(const config::Cluster& cluster) noexcept;
// nullopt: outlier detection is off for the cluster (no OutlierDetector verdicts to apply).
std::optional<OutlierOptions> outlier_options_from_config(const config::Cluster& cluster) noexcept;
// nullopt: no active health checks (every endpoint counts as healthy).
std::optional<HealthCheckOptions> health_check_options_from_config(const config::Cluster& cluster);

// Everything above for one cluster, for a snapshot to keep beside it.
struct ClusterPolicies {
  LbOptions lb;
  std::string local_zone;  // for LoadBalancer::assign
  CircuitBreakerThresholds breaker;
  std::optional<RetryBudgetOptions> retry_budget;
  std::optional<OutlierOptions> outlier;
  std::optional<HealthCheckOptions> health_check;
};
ClusterPolicies cluster_policies(const config::Config& config, const config::Cluster& cluster,
                                 std::string_view runtime_zone);

// ---- AWS-native clusters ----

// The DNS name to resolve for a cluster's endpoint: for a privatelink cluster with prefer_zonal
// and a known local zone (as local_zone_for, without the zone_aware and endpoint conditions) in
// the endpoint's region, the endpoint's zonal name; otherwise the configured name. The caller
// falls back to the regional name (endpoint.address.host) when the zonal one fails to resolve
// or has no available address.
std::string endpoint_name_to_resolve(const config::Config& config, const config::Cluster& cluster,
                                     const config::Endpoint& endpoint,
                                     std::string_view runtime_zone);

// The region to sign requests to a cluster for (cluster.signing must be set): the cluster's
// signing region, else aws.region, else runtime_region (AWS_REGION, AWS_DEFAULT_REGION or the
// task metadata's). "" when none is known: the data path must then refuse to send (503) rather
// than send unsigned.
std::string signing_region(const config::Config& config, const config::Cluster& cluster,
                           std::string_view runtime_region);

}  // namespace outrigger::upstream
