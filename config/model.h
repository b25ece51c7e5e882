// The configuration model: immutable, validated values that the proxy runs from (never YAML).
//
// Thread affinity: immutable and shared. A Config is built once by the loader (config/loader.h)
// or by the reverse-proxy quick mode, wrapped in shared_ptr<const Config>, and never changed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::config {

using Duration = std::chrono::milliseconds;

// Where a value came from, for error messages (1-based line and column; file may be "<flags>").
struct SourceLoc {
  std::string file;
  int line = 0;
  int column = 0;
};

// "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0" (listeners, admin, static endpoints), or
// "name.example.com:443" for DNS endpoints. host never carries the IPv6 brackets.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const;  // brackets IPv6 literals again
};

// Bounds on what a downstream may send. Every field has a safe default.
struct Limits {
  uint32_t max_request_headers_bytes = 16 * 1024;  // request line + all header lines -> 431
  uint32_t max_headers = 100;                      // header field count -> 431
  uint64_t max_request_body_bytes = 1ull << 30;    // 0 = unlimited -> 413
  Duration header_timeout{10'000};                 // first byte to end of head -> 408
  Duration idle_timeout{60'000};                   // keep-alive idle downstream -> close
  uint32_t max_connections = 100'000;              // per listener per worker; accept pauses above
};

enum class ListenerRole { kOutbound, kInbound };

// Matches a request by authority (Host) and path prefix. Hosts compare case-insensitively with
// any port stripped; "*.example.com" matches any name ending in ".example.com"; "*" matches all.
struct RouteMatch {
  std::vector<std::string> hosts;  // empty = any host; the loader stores them lower case
  std::string path_prefix = "/";
};

// Which callers an inbound route admits (403 otherwise). Only on inbound listeners whose tls asks
// for client certificates. At least one of the three admits someone; allow_any_verified excludes
// the lists.
struct RouteAuthz {
  bool allow_any_verified = false;          // any caller whose certificate verified
  std::vector<std::string> allow_accounts;  // 12-digit AWS account ids
  std::vector<std::string> allow_services;  // "service" (any account) or "account/service"
};

// A retriable-headers entry: a response carrying this header (and this exact value, when one is
// given) is retried under retry_on "retriable-headers".
struct RetriableHeader {
  std::string name;                  // lower case
  std::optional<std::string> value;  // absent = any value
};

// A route's retry policy (Envoy's route retry_policy; proxy/upstream/retry.h). Built by
// upstream::retry_policy_from_config (proxy/upstream/policy_from_config.h).
struct RetryConfig {
  // Condition names exactly as in Envoy's x-envoy-retry-on: "connect-failure", "refused-stream",
  // "reset", "gateway-error", "5xx", "retriable-status-codes", "retriable-headers", and the gRPC
  // ones of x-envoy-retry-grpc-on: "cancelled", "deadline-exceeded", "resource-exhausted",
  // "internal", "unavailable". Non-empty, no duplicates, in file order.
  std::vector<std::string> retry_on;
  uint32_t num_retries = 1;                        // retries after the first attempt, 0..10
  std::vector<uint16_t> retriable_status_codes;    // non-empty exactly with retriable-status-codes
  std::vector<RetriableHeader> retriable_headers;  // non-empty exactly with retriable-headers
  bool retry_non_idempotent = false;  // false: only GET HEAD OPTIONS PUT DELETE TRACE are retried
                                      // once the request may have reached the upstream
  Duration backoff_base{25};
  Duration backoff_max{250};  // default 10 x backoff_base when only the base is set (Envoy)
  bool honor_retry_after = true;
  Duration retry_after_max{5'000};               // a longer Retry-After means "do not retry"
  uint64_t max_buffered_body_bytes = 64 * 1024;  // larger request bodies are not retried
  SourceLoc loc;                                 // of the retry map
};

struct Route {
  std::string name;
  RouteMatch match;
  // The cluster the route sends to (validated to exist). With failover it is the first of the
  // YAML `clusters:` list, the preferred one.
  std::string cluster;
  // YAML `clusters: [a, b, c]`: cluster = a, failover = {b, c}, in priority order (each validated
  // to exist, no repeats). Empty with `cluster: a`. A request goes to the first cluster of
  // cluster + failover that has an available endpoint (see config/README.md).
  std::vector<std::string> failover;
  // Deadline for the upstream response head, counted from when the request is routed, across
  // every attempt and backoff wait -> 504. Replaced by x-outrigger-timeout-ms when
  // allow_timeout_header is set and the header is valid (1 ms..24 h).
  Duration timeout{15'000};
  Duration per_try_timeout{0};  // deadline of each attempt's response head; 0 = none
  // How long the request's stream may be idle (no body bytes either way); absent = the
  // listener's limits.idle_timeout.
  std::optional<Duration> idle_timeout;
  bool allow_timeout_header = false;  // honour x-outrigger-timeout-ms from the caller
  std::optional<RetryConfig> retry;   // absent = no retries (beyond the built-in replay of a
                                      // bodiless request on a stale pooled connection)
  std::optional<RouteAuthz> authz;    // absent = no caller check
  SourceLoc loc;
};

enum class ClientCertMode { kNone, kOptional, kRequired };

// TLS termination on a listener. Paths are absolute (the loader resolves them against the config
// file's directory) and named readable files when the config was loaded; their content is
// checked when the TLS context is built (errors then belong at `loc`).
struct ListenerTls {
  std::string cert;       // PEM chain: leaf first, then intermediates
  std::string key;        // PEM private key
  std::string client_ca;  // PEM trust bundle; set exactly when client_cert is not kNone
  ClientCertMode client_cert = ClientCertMode::kNone;
  std::vector<std::string> alpn = {"http/1.1"};  // preference order
  SourceLoc loc;                                 // of the tls map
};

// How an inbound listener tells the app who called (see proxy/tls/README.md).
struct ListenerIdentity {
  std::string header = "x-forwarded-client-cert";             // lower case; always stripped inbound
  std::string uri_template = "spiffe://{account}/{service}";  // the URI SAN naming the caller
};

struct Listener {
  std::string name;
  HostPort address;  // host must be an IP literal
  ListenerRole role = ListenerRole::kOutbound;
  Limits limits;
  std::optional<ListenerTls> tls;  // absent = plaintext
  // Cleartext HTTP/2 with prior knowledge on this listener (a connection opening with the h2
  // preface); HTTP/1.1 keeps working beside it. Over TLS, HTTP/2 is chosen by ALPN "h2".
  bool h2c = false;
  // The request id (kept or minted) returned to the client as x-request-id on every response
  // (Envoy: always_set_request_id_in_response, off there by default). Upstreams get it either way.
  bool request_id_in_response = true;
  ListenerIdentity identity;       // inbound listeners only
  std::vector<Route> routes;       // first match wins
  SourceLoc loc;
};

// kStatic: IP endpoints. Every other type resolves endpoint names (Cluster::resolves_names());
// the AWS types derive their single endpoint from their own block (privatelink, lattice,
// apigateway) and the loader fills `endpoints` with it.
enum class ClusterType { kStatic, kDns, kPrivateLink, kLattice, kApiGateway };
// "static", "dns", "privatelink", "lattice", "apigateway".
std::string_view cluster_type_name(ClusterType t);

inline constexpr uint32_t kMaxEndpointWeight = 128;

struct Endpoint {
  HostPort address;  // IP literal for static clusters, DNS name for the other types
  // Load-balancing weight, 1..128 (Envoy's load_balancing_weight). Every address a DNS name
  // resolves to carries its endpoint's weight.
  uint32_t weight = 1;
  std::string zone;  // availability zone name ("us-east-1a"), "" = unknown
};

struct DnsRefresh {
  Duration min_ttl{5'000};    // floor on the record TTL before re-resolving
  Duration max_ttl{300'000};  // ceiling
};

// TLS origination to a cluster's endpoints. Paths as in ListenerTls.
struct ClusterTls {
  std::string sni;   // "" = the endpoint's DNS name (dns clusters) / none
  std::string ca;    // absolute path of a PEM trust bundle, or "system"
  std::string cert;  // optional client certificate chain (mTLS), with key
  std::string key;
  std::vector<std::string> verify_san;  // exact DNS (lower case), "*.suffix", URI or IP; empty =
                                        // the SNI must match
  std::vector<std::string> alpn = {"http/1.1"};
  SourceLoc alpn_loc;  // of the alpn list when written out (line 0: not written; the default
                       // follows the cluster's protocol)
  SourceLoc loc;       // of the tls map
};

// ---- resilience (issue 5); the option structs of proxy/upstream/ are built from these by
// proxy/upstream/policy_from_config.h ----

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom };
// kAutoByAlpn: TLS offering h2 and http/1.1; each endpoint is spoken to in the protocol it
// negotiated (HAProxy's `alpn h2,http/1.1`, Envoy's auto_config).
enum class UpstreamProtocol { kHttp1, kHttp2, kAutoByAlpn };
std::string_view upstream_protocol_name(UpstreamProtocol p);  // "http1", "http2", "auto-by-alpn"
std::string_view lb_policy_name(LbPolicy p);  // "round_robin", "least_request", "random"

// Local-zone preference. The local zone is aws.zone, else the task's AZ from ECS task metadata
// at run time; without one (or without endpoint zones) there is no preference.
struct ZoneAware {
  bool enabled = true;
  // The local zone alone serves while at least this share of its endpoints is available.
  uint32_t min_healthy_percent = 70;
};

// Envoy's circuit_breakers.thresholds (default priority); cluster-wide, shared by all workers.
struct CircuitBreakers {
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_requests = 1024;
  uint32_t max_retries = 3;  // unused when the cluster has a retry_budget
};

// Envoy's circuit_breakers retry_budget; present = replaces max_retries.
struct RetryBudgetConfig {
  double budget_percent = 20.0;  // of the cluster's active requests, 0..100
  uint32_t min_retry_concurrency = 3;
};

// Envoy's outlier_detection; present in the YAML = enabled. A threshold of 0 turns its
// detector off.
struct OutlierDetection {
  uint32_t consecutive_5xx = 5;
  uint32_t consecutive_gateway_failure = 5;
  uint32_t consecutive_local_origin_failure = 5;  // used with split_external_local_origin_errors
  bool split_external_local_origin_errors = true;
  Duration interval{10'000};
  Duration base_ejection_time{30'000};
  Duration max_ejection_time{300'000};  // the cap is the larger of this and base_ejection_time
  uint32_t max_ejection_percent = 10;
  bool always_eject_one_host = false;
  bool successful_active_health_check_uneject_host = true;
};

// An inclusive range of HTTP statuses ("200-299" in YAML; a single status has first == last).
struct StatusRange {
  uint16_t first = 200;
  uint16_t last = 399;
};

// Active HTTP health checks (Envoy's health_checks with http_health_check); present = enabled.
struct HealthCheck {
  std::string path = "/health";  // origin-form: "/" then path (and query) characters
  std::string host;              // Host header; "" = the endpoint's "ip:port"
  Duration interval{5'000};
  Duration interval_jitter{0};            // each wait adds a random [0, interval_jitter]
  uint32_t interval_jitter_percent = 10;  // ... and a random [0, interval x percent / 100]
  Duration initial_jitter{0};             // the first check waits a random [0, initial_jitter]
  Duration timeout{1'000};                // connect + request + response head
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 3;
  std::vector<StatusRange> expected_statuses = {{200, 399}};
  std::vector<StatusRange> retriable_statuses;  // count towards unhealthy_threshold
  SourceLoc loc;                                // of the health_check map
};

// ---- AWS-native upstreams (issue 6) ----

enum class AwsAuth { kNone, kIam };

// A PrivateLink interface endpoint in the task's VPC.
struct PrivateLink {
  // The endpoint's DNS name as configured (lower case, no trailing dot): a regional or zonal
  // "vpce-<id>-<suffix>[-<az>].vpce-svc-<id>.<region>.vpce.amazonaws.com" name, or the
  // service's private DNS name.
  std::string endpoint;
  bool vpce_name = false;  // endpoint has the vpce-... shape (parse it with aws/names.h)
  std::string region;      // of a vpce name; "" for a private DNS name
  std::string zone;        // the AZ of a zonal vpce name; "" otherwise
  uint16_t port = 443;     // default 443 with tls, 80 without
  // The provider's name for its service: the default Host (host_rewrite) and, with tls, the
  // default SNI. The loader copies it into host_rewrite and tls.sni when those are unset.
  std::string service_name;
  // Connect to the zonal name of the local zone (aws/names.h zonal_endpoint_name) when the local
  // zone is known, falling back to the regional name. Only for regional vpce names (default
  // true for them, false otherwise).
  bool prefer_zonal = false;
};

// A VPC Lattice service reached through the task VPC's service network association.
struct Lattice {
  std::string service;  // lower case: the generated name or, with custom_domain, any DNS name
  bool custom_domain = false;
  uint16_t port = 443;
  AwsAuth auth = AwsAuth::kNone;
  bool sigv4a = false;  // sign with SigV4A (region set "*") instead of SigV4; auth iam only
  // Signing region: `region`, else the generated name's, else "" (the run-time AWS region).
  std::string region;
};

// An API Gateway REST/HTTP API; a private API through an interface endpoint of execute-api.
struct ApiGateway {
  std::string api_id;  // 10 of a-z 0-9
  std::string region;
  std::string vpce_id;  // "vpce-..." for a private API's endpoint-specific name; "" otherwise
  // The name connected to (and the default Host):
  // "<api_id>[-<vpce_id>].execute-api.<region>.amazonaws.com[.cn]".
  std::string host;
  uint16_t port = 443;
  std::string stage;  // "" = none; else the data path prefixes "/<stage>" to request paths
  AwsAuth auth = AwsAuth::kNone;
};

// SigV4 signing of requests to a cluster (lattice or apigateway with auth: iam).
struct AwsSigning {
  std::string service;  // "vpc-lattice-svcs" or "execute-api"
  std::string region;   // "" = the run-time AWS region (see Aws)
  bool sigv4a = false;
};

struct Cluster {
  std::string name;
  ClusterType type = ClusterType::kStatic;
  std::vector<Endpoint> endpoints;
  std::optional<std::string> host_rewrite;  // sets Host on requests to this cluster
  Duration connect_timeout{5'000};          // -> 503 with x-outrigger-reason
  Duration idle_timeout{60'000};            // pooled idle upstream connections are closed after
  uint32_t max_connections = 1024;          // per worker; requests wait (connect_timeout) beyond
  DnsRefresh dns;                           // clusters that resolve names only
  std::optional<ClusterTls> tls;            // absent = plaintext upstream

  // HTTP/1.1 or HTTP/2 (h2c in cleartext, ALPN h2 with tls) to the endpoints, or (auto-by-alpn,
  // tls only) whichever of the two each endpoint negotiates.
  UpstreamProtocol protocol = UpstreamProtocol::kHttp1;
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  uint32_t panic_threshold_percent = 50;  // Envoy's healthy_panic_threshold; 0 = never panic
  ZoneAware zone_aware;
  CircuitBreakers circuit_breakers;
  std::optional<RetryBudgetConfig> retry_budget;      // absent: circuit_breakers.max_retries
  std::optional<OutlierDetection> outlier_detection;  // absent = no outlier detection
  std::optional<HealthCheck> health_check;            // absent = no active health checks

  // Exactly the one matching `type` is set for the AWS types.
  std::optional<PrivateLink> privatelink;
  std::optional<Lattice> lattice;
  std::optional<ApiGateway> apigateway;
  std::optional<AwsSigning> signing;  // set when lattice/apigateway has auth: iam

  SourceLoc loc;

  bool resolves_names() const { return type != ClusterType::kStatic; }
};

enum class AccessLogMode { kOff, kStdout, kFile };

struct AccessLog {
  AccessLogMode mode = AccessLogMode::kStdout;
  std::string path;  // kFile only
};

struct Dns {
  std::vector<HostPort> resolvers;  // empty = system resolv.conf
  Duration timeout{2'000};
  DnsRefresh refresh;  // default for dns clusters
};

struct Drain {
  Duration delay{0};         // /ready is 503 at once; listeners close after delay
  Duration timeout{30'000};  // then exit even if requests remain
};

struct TlsSettings {
  Duration reload_interval{1'000};  // how often certificate, key and bundle files are checked
};

struct Admin {
  std::optional<HostPort> address;  // no admin listener when absent
};

enum class AwsCredentials {
  kAuto,  // the container credentials endpoint if configured, else the AWS_ACCESS_KEY_ID family
  kEnv,   // only AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
  kEcs,   // only the container credentials endpoint (the ECS task role)
};

// Where the proxy runs in AWS. Unset values are found at run time: region from AWS_REGION, else
// AWS_DEFAULT_REGION, else the ECS task metadata (task ARN); zone from the ECS task metadata.
struct Aws {
  std::string region;  // "" = at run time
  std::string zone;    // "" = at run time; the local zone of zone-aware clusters
  AwsCredentials credentials = AwsCredentials::kAuto;
};

struct Config {
  std::string source;    // file path, or "<flags>" for quick mode
  uint32_t workers = 0;  // 0 = CPUs the process may use (cgroup cpu.max aware)
  Admin admin;
  AccessLog access_log;
  Dns dns;
  Drain drain;
  Limits limits;  // defaults for listeners that set none
  TlsSettings tls;
  Aws aws;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  const Cluster* find_cluster(std::string_view name) const;
};

}  // namespace outrigger::config
