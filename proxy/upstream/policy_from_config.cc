#include "proxy/upstream/policy_from_config.h"

#include <algorithm>

#include "proxy/aws/names.h"

namespace outrigger::upstream {

RetryPolicy retry_policy_from_config(const config::Route& route) {
  RetryPolicy p;
  p.per_try_timeout = route.per_try_timeout;
  if (!route.retry) return p;  // retry_on 0: no retries
  const config::RetryConfig& r = *route.retry;
  // The loader accepts exactly the names parse_retry_on knows (a unit test checks each).
  p.retry_on = parse_retry_on(std::span<const std::string>(r.retry_on)).value_or(0);
  p.num_retries = r.num_retries;
  p.retriable_status_codes = r.retriable_status_codes;
  p.retriable_headers.reserve(r.retriable_headers.size());
  for (const config::RetriableHeader& h : r.retriable_headers) {
    p.retriable_headers.push_back({h.name, h.value});
  }
  p.idempotent_only = !r.retry_non_idempotent;
  p.backoff_base = r.backoff_base;
  p.backoff_max = r.backoff_max;
  p.honor_retry_after = r.honor_retry_after;
  p.retry_after_max = r.retry_after_max;
  p.max_replay_body_bytes = r.max_buffered_body_bytes;
  return p;
}

RouteTimeouts route_timeouts(const config::Listener& listener, const config::Route& route) {
  RouteTimeouts t;
  t.request = route.timeout;
  t.per_try = route.per_try_timeout;
  t.idle = route.idle_timeout.value_or(listener.limits.idle_timeout);
  t.allow_timeout_header = route.allow_timeout_header;
  return t;
}

milliseconds request_timeout(const config::Route& route,
                             std::optional<std::string_view> header_value) noexcept {
  if (route.allow_timeout_header && header_value) {
    if (std::optional<milliseconds> t = parse_timeout_ms(*header_value)) return *t;
  }
  return route.timeout;
}

std::vector<std::string_view> route_clusters(const config::Route& route) {
  std::vector<std::string_view> out;
  out.reserve(1 + route.failover.size());
  out.push_back(route.cluster);
  for (const std::string& c : route.failover) out.push_back(c);
  return out;
}

LbPolicy lb_policy_from_config(config::LbPolicy p) noexcept {
  switch (p) {
    case config::LbPolicy::kLeastRequest:
      return LbPolicy::kLeastRequest;
    case config::LbPolicy::kRandom:
      return LbPolicy::kRandom;
    case config::LbPolicy::kRoundRobin:
      break;
  }
  return LbPolicy::kRoundRobin;
}

LbOptions lb_options_from_config(const config::Cluster& cluster) {
  LbOptions o;
  o.policy = lb_policy_from_config(cluster.lb_policy);
  o.healthy_panic_threshold = cluster.panic_threshold_percent;
  o.local_zone_min_available = cluster.zone_aware.min_healthy_percent;
  return o;
}

std::string local_zone_for(const config::Config& config, const config::Cluster& cluster,
                           std::string_view runtime_zone) {
  if (!cluster.zone_aware.enabled) return "";
  const bool any_zone = std::any_of(cluster.endpoints.begin(), cluster.endpoints.end(),
                                    [](const config::Endpoint& e) { return !e.zone.empty(); });
  if (!any_zone) return "";
  return config.aws.zone.empty() ? std::string(runtime_zone) : config.aws.zone;
}

LbEndpoint lb_endpoint_from_config(const config::Endpoint& endpoint,
                                   const boost::asio::ip::tcp::endpoint& address) {
  return LbEndpoint{address, endpoint.weight, endpoint.zone};
}

CircuitBreakerThresholds breaker_thresholds_from_config(const config::Cluster& cluster) noexcept {
  const config::CircuitBreakers& c = cluster.circuit_breakers;
  return CircuitBreakerThresholds{c.max_connections, c.max_pending_requests, c.max_requests,
                                  c.max_retries};
}

std::optional<RetryBudgetOptions> retry_budget_from_config(
    const config::Cluster& cluster) noexcept {
  if (!cluster.retry_budget) return std::nullopt;
  return RetryBudgetOptions{cluster.retry_budget->budget_percent,
                            cluster.retry_budget->min_retry_concurrency};
}

std::optional<OutlierOptions> outlier_options_from_config(const config::Cluster& cluster) noexcept {
  if (!cluster.outlier_detection) return std::nullopt;
  const config::OutlierDetection& d = *cluster.outlier_detection;
  OutlierOptions o;
  o.consecutive_5xx = d.consecutive_5xx;
  o.consecutive_gateway_failure = d.consecutive_gateway_failure;
  o.consecutive_local_origin_failure = d.consecutive_local_origin_failure;
  o.split_external_local_origin_errors = d.split_external_local_origin_errors;
  o.interval = d.interval;
  o.base_ejection_time = d.base_ejection_time;
  o.max_ejection_time = d.max_ejection_time;
  o.max_ejection_percent = d.max_ejection_percent;
  o.always_eject_one_host = d.always_eject_one_host;
  o.successful_active_health_check_uneject_host = d.successful_active_health_check_uneject_host;
  return o;
}

namespace {

// Inclusive config ranges to the half-open ranges of health_check.h.
std::vector<StatusRange> half_open(const std::vector<config::StatusRange>& ranges) {
  std::vector<StatusRange> out;
  out.reserve(ranges.size());
  for (const config::StatusRange& r : ranges) out.push_back({r.first, r.last + 1});
  return out;
}

}  // namespace

std::optional<HealthCheckOptions> health_check_options_from_config(const config::Cluster& cluster) {
  if (!cluster.health_check) return std::nullopt;
  const config::HealthCheck& h = *cluster.health_check;
  HealthCheckOptions o;
  o.path = h.path;
  o.host = h.host;
  o.interval = h.interval;
  o.timeout = h.timeout;
  o.initial_jitter = h.initial_jitter;
  o.interval_jitter = h.interval_jitter;
  o.interval_jitter_percent = h.interval_jitter_percent;
  o.unhealthy_threshold = h.unhealthy_threshold;
  o.healthy_threshold = h.healthy_threshold;
  o.expected_statuses = half_open(h.expected_statuses);
  o.retriable_statuses = half_open(h.retriable_statuses);
  return o;
}

ClusterPolicies cluster_policies(const config::Config& config, const config::Cluster& cluster,
                                 std::string_view runtime_zone) {
  ClusterPolicies p;
  p.lb = lb_options_from_config(cluster);
  p.local_zone = local_zone_for(config, cluster, runtime_zone);
  p.breaker = breaker_thresholds_from_config(cluster);
  p.retry_budget = retry_budget_from_config(cluster);
  p.outlier = outlier_options_from_config(cluster);
  p.health_check = health_check_options_from_config(cluster);
  return p;
}

std::string endpoint_name_to_resolve(const config::Config& config, const config::Cluster& cluster,
                                     const config::Endpoint& endpoint,
                                     std::string_view runtime_zone) {
  const std::string& name = endpoint.address.host;
  if (!cluster.privatelink || !cluster.privatelink->prefer_zonal) return name;
  const std::string_view zone = config.aws.zone.empty() ? runtime_zone : config.aws.zone;
  if (zone.empty()) return name;
  auto parsed = aws::parse_privatelink_endpoint_name(name);
  if (!parsed) return name;
  auto zonal = aws::zonal_endpoint_name(*parsed, zone);
  return zonal ? *zonal : name;  // a zone of another region: the regional name
}

std::string signing_region(const config::Config& config, const config::Cluster& cluster,
                           std::string_view runtime_region) {
  if (cluster.signing && !cluster.signing->region.empty()) return cluster.signing->region;
  if (!config.aws.region.empty()) return config.aws.region;
  return std::string(runtime_region);
}

}  // namespace outrigger::upstream
