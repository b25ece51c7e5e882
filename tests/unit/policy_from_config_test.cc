// Tests of proxy/upstream/policy_from_config: configs loaded by the real loader, converted, and
// the results driven through the real primitives (retry decisions, breaker, outlier detector,
// load balancer picks) where a wrong conversion would show.
#include "proxy/upstream/policy_from_config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "config/loader.h"

namespace outrigger::upstream {
namespace {

using boost::asio::ip::make_address;
using boost::asio::ip::tcp;

std::shared_ptr<const config::Config> load(std::string_view text) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  config::LoadResult r = config::load_string(text, "t.yaml");
  for (const config::Diagnostic& d : r.errors) ADD_FAILURE() << d.to_string();
  return r.config;
}

// One listener with one route, whose extra YAML (indented for the route map) is `route`, to
// cluster "app".
std::shared_ptr<const config::Config> load_route(std::string_view route) {
  return load(std::string(R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    limits: {idle_timeout: 45s}
    routes:
      - cluster: app
)") + std::string(route) +
              R"(
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
  - name: backup
    endpoints: [127.0.0.1:8081]
)");
}

AttemptOutcome response(int status) { return {AttemptResult::kResponse, status, nullptr}; }

TEST(PolicyFromConfig, EveryRetryOnNameTheLoaderAcceptsIsUpstreamsBit) {
  const std::map<std::string, uint32_t> expected = {
      {"connect-failure", retry_on::kConnectFailure},
      {"refused-stream", retry_on::kRefusedStream},
      {"reset", retry_on::kReset},
      {"gateway-error", retry_on::kGatewayError},
      {"5xx", retry_on::k5xx},
      {"retriable-status-codes", retry_on::kRetriableStatusCodes},
      {"retriable-headers", retry_on::kRetriableHeaders},
      {"cancelled", retry_on::kGrpcCancelled},
      {"deadline-exceeded", retry_on::kGrpcDeadlineExceeded},
      {"resource-exhausted", retry_on::kGrpcResourceExhausted},
      {"internal", retry_on::kGrpcInternal},
      {"unavailable", retry_on::kGrpcUnavailable},
  };
  for (const auto& [name, bit] : expected) {
    std::string route = "        retry: {retry_on: [" + name + "]";
    if (name == "retriable-status-codes") route += ", retriable_status_codes: [409]";
    if (name == "retriable-headers") route += ", retriable_headers: [x-retry]";
    auto c = load_route(route + "}\n");
    ASSERT_TRUE(c) << name;
    EXPECT_EQ(retry_policy_from_config(c->listeners[0].routes[0]).retry_on, bit) << name;
    EXPECT_EQ(retry_on_bit(name), bit) << name;
  }
  // And a name upstream does not know is refused by the loader, with its position.
  config::LoadResult r = config::load_string(R"(listeners:
  - name: l
    address: 127.0.0.1:15001
    routes: [{cluster: app, retry: {retry_on: [retriable-4xx]}}]
clusters: [{name: app, endpoints: [127.0.0.1:1]}]
)",
                                             "t.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].loc.line, 4);
  EXPECT_EQ(r.errors[0].loc.column, 48);
  EXPECT_EQ(retry_on_bit("retriable-4xx"), 0u);
}

TEST(PolicyFromConfig, RetryPolicyFieldsAndDecisions) {
  auto c = load_route(R"(        per_try_timeout: 2s
        retry:
          retry_on: [gateway-error, retriable-status-codes, retriable-headers]
          num_retries: 2
          retriable_status_codes: [429]
          retriable_headers: [{name: X-State, value: busy}]
          backoff: {base: 10ms, max: 80ms}
          retry_after_max: 1s
          max_buffered_body_bytes: 4KiB
)");
  ASSERT_TRUE(c);
  const RetryPolicy p = retry_policy_from_config(c->listeners[0].routes[0]);
  EXPECT_EQ(p.retry_on, retry_on::kGatewayError | retry_on::kRetriableStatusCodes |
                            retry_on::kRetriableHeaders);
  EXPECT_EQ(p.num_retries, 2u);
  EXPECT_EQ(p.retriable_status_codes, (std::vector<uint16_t>{429}));
  ASSERT_EQ(p.retriable_headers.size(), 1u);
  EXPECT_EQ(p.retriable_headers[0].name, "x-state");
  EXPECT_EQ(p.retriable_headers[0].value, "busy");
  EXPECT_TRUE(p.idempotent_only);
  EXPECT_EQ(p.backoff_base.count(), 10);
  EXPECT_EQ(p.backoff_max.count(), 80);
  EXPECT_TRUE(p.honor_retry_after);
  EXPECT_EQ(p.retry_after_max.count(), 1'000);
  EXPECT_EQ(p.per_try_timeout.count(), 2'000);
  EXPECT_EQ(p.max_replay_body_bytes, 4096u);

  // The converted policy decides as the config says.
  EXPECT_EQ(p.should_retry(response(429), "GET", 0, true), RetryDecision::kRetry);
  EXPECT_EQ(p.should_retry(response(503), "GET", 1, true), RetryDecision::kRetry);
  EXPECT_EQ(p.should_retry(response(503), "GET", 2, true), RetryDecision::kExhausted);
  EXPECT_EQ(p.should_retry(response(500), "GET", 0, true), RetryDecision::kNotRetriable);
  EXPECT_EQ(p.should_retry(response(429), "POST", 0, true), RetryDecision::kNotIdempotent);
  EXPECT_EQ(p.should_retry(response(429), "GET", 0, false), RetryDecision::kBodyNotReplayable);
  for (uint64_t random : {0ull, ~0ull, 0x123456789abcdefull}) {
    EXPECT_LT(p.next_backoff(3, random).count(), 80);  // within [0, min(7 x 10ms, 80ms))
    EXPECT_LT(p.next_backoff(1, random).count(), 10);
  }

  auto idem = load_route(R"(        retry: {retry_on: [5xx], retry_non_idempotent: true,
                honor_retry_after: false}
)");
  ASSERT_TRUE(idem);
  const RetryPolicy q = retry_policy_from_config(idem->listeners[0].routes[0]);
  EXPECT_FALSE(q.idempotent_only);
  EXPECT_FALSE(q.honor_retry_after);
  EXPECT_EQ(q.num_retries, 1u);
  EXPECT_EQ(q.should_retry(response(500), "POST", 0, true), RetryDecision::kRetry);
}

TEST(PolicyFromConfig, NoRetryBlockMeansNoRetries) {
  auto c = load_route("        per_try_timeout: 500ms\n");
  ASSERT_TRUE(c);
  const RetryPolicy p = retry_policy_from_config(c->listeners[0].routes[0]);
  EXPECT_EQ(p.retry_on, 0u);
  EXPECT_EQ(p.per_try_timeout.count(), 500);
  EXPECT_EQ(p.should_retry(response(503), "GET", 0, true), RetryDecision::kNotRetriable);
  EXPECT_EQ(p.should_retry({AttemptResult::kConnectFailure, 0, nullptr}, "GET", 0, true),
            RetryDecision::kNotRetriable);
}

TEST(PolicyFromConfig, TimeoutsAndTheTimeoutHeader) {
  auto c = load_route("        timeout: 3s\n        allow_timeout_header: true\n");
  ASSERT_TRUE(c);
  const config::Listener& l = c->listeners[0];
  const config::Route& r = l.routes[0];
  RouteTimeouts t = route_timeouts(l, r);
  EXPECT_EQ(t.request.count(), 3'000);
  EXPECT_EQ(t.per_try.count(), 0);
  EXPECT_EQ(t.idle.count(), 45'000);  // the listener's
  EXPECT_TRUE(t.allow_timeout_header);
  EXPECT_EQ(request_timeout(r, std::nullopt).count(), 3'000);
  EXPECT_EQ(request_timeout(r, "250").count(), 250);
  EXPECT_EQ(request_timeout(r, "60000").count(), 60'000);  // may also lengthen it
  EXPECT_EQ(request_timeout(r, "0").count(), 3'000);       // invalid values are ignored
  EXPECT_EQ(request_timeout(r, "soon").count(), 3'000);

  auto no_header = load_route("        idle_timeout: 5s\n");
  ASSERT_TRUE(no_header);
  const config::Route& n = no_header->listeners[0].routes[0];
  EXPECT_EQ(route_timeouts(no_header->listeners[0], n).idle.count(), 5'000);
  EXPECT_EQ(request_timeout(n, "250").count(), 15'000);  // not allowed: the route's
}

TEST(PolicyFromConfig, RouteClustersInPriorityOrder) {
  auto c = load(R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes:
      - clusters: [b, a, c]
      - cluster: c
clusters:
  - {name: a, endpoints: [127.0.0.1:1]}
  - {name: b, endpoints: [127.0.0.1:2]}
  - {name: c, endpoints: [127.0.0.1:3]}
)");
  ASSERT_TRUE(c);
  EXPECT_EQ(route_clusters(c->listeners[0].routes[0]),
            (std::vector<std::string_view>{"b", "a", "c"}));
  EXPECT_EQ(route_clusters(c->listeners[0].routes[1]), (std::vector<std::string_view>{"c"}));
}

constexpr std::string_view kListener = R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes: [{cluster: app}]
)";

TEST(PolicyFromConfig, ClusterDefaultsAreEnvoys) {
  auto c = load(std::string(kListener) + "clusters: [{name: app, endpoints: [127.0.0.1:1]}]\n");
  ASSERT_TRUE(c);
  const ClusterPolicies p = cluster_policies(*c, c->clusters[0], "us-east-1a");
  EXPECT_EQ(p.lb.policy, LbPolicy::kRoundRobin);
  EXPECT_EQ(p.lb.healthy_panic_threshold, 50u);
  EXPECT_EQ(p.lb.local_zone_min_available, 70u);
  EXPECT_EQ(p.local_zone, "");  // no endpoint names a zone
  EXPECT_EQ(p.breaker.max_connections, 1024u);
  EXPECT_EQ(p.breaker.max_pending_requests, 1024u);
  EXPECT_EQ(p.breaker.max_requests, 1024u);
  EXPECT_EQ(p.breaker.max_retries, 3u);
  EXPECT_FALSE(p.retry_budget);
  EXPECT_FALSE(p.outlier);
  EXPECT_FALSE(p.health_check);
}

TEST(PolicyFromConfig, ClusterPoliciesDriveThePrimitives) {
  auto c = load(std::string(kListener) + R"(
clusters:
  - name: app
    endpoints:
      - {address: "127.0.0.1:1", weight: 3, zone: us-east-1a}
      - {address: "127.0.0.1:2", zone: us-east-1a}
      - {address: "127.0.0.1:3", zone: us-east-1b}
    lb_policy: least_request
    panic_threshold_percent: 0
    zone_aware: {min_healthy_percent: 100}
    circuit_breakers: {max_connections: 7, max_pending_requests: 0, max_requests: 2}
    retry_budget: {budget_percent: 50, min_retry_concurrency: 1}
    outlier_detection:
      consecutive_5xx: 2
      consecutive_local_origin_failure: 4
      base_ejection_time: 1s
      max_ejection_time: 4s
      interval: 3s
      max_ejection_percent: 50
      always_eject_one_host: true
    health_check:
      path: /ready
      host: app.internal
      interval: 2s
      timeout: 300ms
      interval_jitter: 5ms
      interval_jitter_percent: 0
      initial_jitter: 1s
      healthy_threshold: 1
      unhealthy_threshold: 4
      expected_statuses: [200-299, 304]
      retriable_statuses: [503]
)");
  ASSERT_TRUE(c);
  const config::Cluster& cl = c->clusters[0];
  const ClusterPolicies p = cluster_policies(*c, cl, "us-east-1a");
  EXPECT_EQ(p.lb.policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(p.lb.healthy_panic_threshold, 0u);
  EXPECT_EQ(p.lb.local_zone_min_available, 100u);
  EXPECT_EQ(p.local_zone, "us-east-1a");

  // Breaker: two requests, then an overflow; no pending slot at all.
  CircuitBreaker breaker(p.breaker);
  EXPECT_EQ(breaker.limit(Resource::kConnections), 7u);
  BreakerSlot a(breaker, Resource::kRequests), b(breaker, Resource::kRequests);
  BreakerSlot third(breaker, Resource::kRequests);
  EXPECT_TRUE(a && b);
  EXPECT_EQ(third.overflow(), Overflow::kRequests);
  EXPECT_EQ(BreakerSlot(breaker, Resource::kPending).overflow(), Overflow::kPending);

  // Budget: 50 % of 4 active requests = 2 concurrent retries.
  ASSERT_TRUE(p.retry_budget);
  RetryBudget budget(*p.retry_budget);
  for (int i = 0; i < 4; ++i) budget.request_started();
  EXPECT_TRUE(budget.try_acquire());
  EXPECT_TRUE(budget.try_acquire());
  EXPECT_FALSE(budget.try_acquire());

  // Outlier detection: two 5xx in a row eject (one host allowed whatever the percent says), for
  // base_ejection_time.
  ASSERT_TRUE(p.outlier);
  EXPECT_EQ(p.outlier->consecutive_local_origin_failure, 4u);
  EXPECT_EQ(p.outlier->max_ejection_time.count(), 4'000);
  EXPECT_EQ(p.outlier->interval.count(), 3'000);
  EXPECT_EQ(p.outlier->max_ejection_percent, 50u);
  OutlierDetector od(*p.outlier);
  std::vector<tcp::endpoint> eps = {{make_address("127.0.0.1"), 1}, {make_address("127.0.0.1"), 2}};
  const Clock::time_point now = Clock::now();
  od.assign(eps, now);
  EXPECT_EQ(od.record_response(0, 503, now), EjectReason::kNone);
  EXPECT_EQ(od.record_response(0, 503, now), EjectReason::kConsecutive5xx);
  EXPECT_TRUE(od.is_ejected(0, now + std::chrono::milliseconds(999)));
  EXPECT_FALSE(od.is_ejected(0, now + std::chrono::milliseconds(1'001)));

  // Health check options: inclusive YAML ranges become half-open ones.
  ASSERT_TRUE(p.health_check);
  const HealthCheckOptions& h = *p.health_check;
  EXPECT_EQ(h.path, "/ready");
  EXPECT_EQ(h.host, "app.internal");
  EXPECT_EQ(h.interval.count(), 2'000);
  EXPECT_EQ(h.timeout.count(), 300);
  EXPECT_EQ(h.interval_jitter.count(), 5);
  EXPECT_EQ(h.interval_jitter_percent, 0u);
  EXPECT_EQ(h.initial_jitter.count(), 1'000);
  EXPECT_EQ(h.healthy_threshold, 1u);
  EXPECT_EQ(h.unhealthy_threshold, 4u);
  ASSERT_EQ(h.expected_statuses.size(), 2u);
  EXPECT_TRUE(h.expected_statuses[0].contains(200));
  EXPECT_TRUE(h.expected_statuses[0].contains(299));
  EXPECT_FALSE(h.expected_statuses[0].contains(300));
  EXPECT_TRUE(h.expected_statuses[1].contains(304));
  EXPECT_FALSE(h.expected_statuses[1].contains(305));
  ASSERT_EQ(h.retriable_statuses.size(), 1u);
  EXPECT_TRUE(h.retriable_statuses[0].contains(503));
  EXPECT_FALSE(h.retriable_statuses[0].contains(504));

  // Load balancer: with the local zone us-east-1a, only its two endpoints serve, by weight 3:1
  // when idle (least request draws candidates by weight).
  std::vector<LbEndpoint> lb_eps;
  for (uint16_t i = 0; i < 3; ++i) {
    lb_eps.push_back(lb_endpoint_from_config(cl.endpoints[i], {make_address("127.0.0.1"), i}));
  }
  EXPECT_EQ(lb_eps[0].weight, 3u);
  EXPECT_EQ(lb_eps[2].zone, "us-east-1b");
  LoadBalancer lb(p.lb, 42);
  lb.assign(lb_eps, p.local_zone);
  std::array<int, 3> picks{};
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 4000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    LbPick pick = lb.pick(LoadBalancer::kNone, x);
    ASSERT_TRUE(pick);
    ++picks[pick.index];
  }
  EXPECT_EQ(picks[2], 0);
  EXPECT_GT(picks[0], 2 * picks[1]);  // 3:1 expected; well clear of 2:1
  EXPECT_EQ(lb.counters().cross_zone, 0u);
}

TEST(PolicyFromConfig, LocalZonePrecedence) {
  const std::string clusters = R"(
clusters:
  - name: app
    endpoints: [{address: "127.0.0.1:1", zone: us-east-1a}, "127.0.0.1:2"]
  - name: off
    endpoints: [{address: "127.0.0.1:1", zone: us-east-1a}]
    zone_aware: {enabled: false}
)";
  auto runtime = load(std::string(kListener) + clusters);
  ASSERT_TRUE(runtime);
  EXPECT_EQ(local_zone_for(*runtime, runtime->clusters[0], "us-east-1c"), "us-east-1c");
  EXPECT_EQ(local_zone_for(*runtime, runtime->clusters[0], ""), "");
  EXPECT_EQ(local_zone_for(*runtime, runtime->clusters[1], "us-east-1c"), "");
  auto configured = load("aws: {zone: us-east-1b}\n" + std::string(kListener) + clusters);
  ASSERT_TRUE(configured);
  EXPECT_EQ(local_zone_for(*configured, configured->clusters[0], "us-east-1c"), "us-east-1b");
}

TEST(PolicyFromConfig, PrivateLinkZonalNamesAndSigningRegions) {
  const std::string vpce =
      "vpce-0a1b2c3d4e5f6a7b8-abcdefgh.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com";
  const std::string clusters = R"(
clusters:
  - name: app
    type: privatelink
    privatelink: {endpoint: )" +
                               vpce + R"(}
  - name: regional_only
    type: privatelink
    privatelink: {endpoint: )" +
                               vpce + R"(, prefer_zonal: false}
  - name: private_dns
    type: privatelink
    privatelink: {endpoint: users.example.com}
  - name: lattice
    type: lattice
    lattice:
      service: orders-0123456789abcdef0.7d67968.vpc-lattice-svcs.eu-west-1.on.aws
      auth: iam
  - name: custom
    type: lattice
    lattice: {service: orders.example.com, custom_domain: true, auth: iam}
)";
  auto c = load(std::string(kListener) + clusters);
  ASSERT_TRUE(c);
  auto name = [&](size_t i, std::string_view zone) {
    return endpoint_name_to_resolve(*c, c->clusters[i], c->clusters[i].endpoints[0], zone);
  };
  EXPECT_EQ(name(0, "us-east-1b"),
            "vpce-0a1b2c3d4e5f6a7b8-abcdefgh-us-east-1b.vpce-svc-0123456789abcdef0.us-east-1.vpce."
            "amazonaws.com");
  EXPECT_EQ(name(0, ""), vpce);            // zone unknown
  EXPECT_EQ(name(0, "eu-west-1a"), vpce);  // a zone of another region
  EXPECT_EQ(name(1, "us-east-1b"), vpce);
  EXPECT_EQ(name(2, "us-east-1b"), "users.example.com");

  auto with_zone = load("aws: {zone: us-east-1c}\n" + std::string(kListener) + clusters);
  ASSERT_TRUE(with_zone);
  EXPECT_EQ(endpoint_name_to_resolve(*with_zone, with_zone->clusters[0],
                                     with_zone->clusters[0].endpoints[0], "us-east-1b"),
            "vpce-0a1b2c3d4e5f6a7b8-abcdefgh-us-east-1c.vpce-svc-0123456789abcdef0.us-east-1.vpce."
            "amazonaws.com");  // aws.zone wins over the run-time zone

  EXPECT_EQ(signing_region(*c, c->clusters[3], "us-west-2"), "eu-west-1");  // from the name
  EXPECT_EQ(signing_region(*c, c->clusters[4], "us-west-2"), "us-west-2");  // run time
  EXPECT_EQ(signing_region(*c, c->clusters[4], ""), "");
  auto with_region = load("aws: {region: us-east-1}\n" + std::string(kListener) + clusters);
  ASSERT_TRUE(with_region);
  EXPECT_EQ(signing_region(*with_region, with_region->clusters[4], "us-west-2"), "us-east-1");
}

}  // namespace
}  // namespace outrigger::upstream
