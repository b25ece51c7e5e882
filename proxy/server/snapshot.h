// The runtime view of one config generation: compiled routes, clusters with their resolved
// endpoints, and stats ids. Built on the main thread, posted to every worker.
//
// Thread affinity: immutable and shared (shared_ptr<const Snapshot>); an in-flight request keeps
// the snapshot it started with alive.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.h"
#include "proxy/aws/credentials.h"
#include "proxy/http/h1.h"
#include "proxy/router/router.h"
#include "proxy/tls/context.h"
#include "proxy/tls/identity.h"
#include "proxy/upstream/circuit_breaker.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier.h"
#include "proxy/upstream/retry.h"

namespace outrigger::server {

// The TLS material in use for one listener or cluster. The watcher (main thread) stores a new
// context when the files change; a handshake loads the current one and keeps it.
template <class Tls>
struct TlsSlot {
  std::atomic<std::shared_ptr<const Tls>> current;
};

// What lives as long as a cluster's name, across snapshots: the cluster-wide circuit breaker and
// each worker's latest outlier view (for /clusters).
struct ClusterShared {
  explicit ClusterShared(size_t workers)
      : views(std::make_unique<std::atomic<std::shared_ptr<const upstream::OutlierView>>[]>(workers)),
        worker_count(workers) {}
  upstream::CircuitBreaker breaker;
  std::unique_ptr<std::atomic<std::shared_ptr<const upstream::OutlierView>>[]> views;
  size_t worker_count;
};

// AWS credentials for signing, refreshed by the main thread; workers load the current ones.
struct CredentialSlot {
  std::atomic<std::shared_ptr<const aws::Credentials>> current;
  std::atomic<std::shared_ptr<const std::string>> error;  // why there are none (never a secret)
};

struct SigningState {
  std::string service;  // "vpc-lattice-svcs" or "execute-api"
  std::string region;   // "" = unknown (requests then fail with 503)
  bool sigv4a = false;
  std::shared_ptr<CredentialSlot> credentials;
};

struct ClusterState {
  const config::Cluster* cluster = nullptr;
  uint64_t generation = 0;  // the snapshot's
  uint32_t stats_id = 0;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // empty until DNS answered
  std::shared_ptr<TlsSlot<tls::ClientTls>> tls;           // null = plaintext upstream
  std::string sni;  // tls.sni, else the endpoints' DNS name; "" = none
  // Resilience (issue 5), parallel to endpoints where per endpoint.
  std::shared_ptr<ClusterShared> shared;
  std::vector<upstream::LbEndpoint> lb_endpoints;
  std::vector<uint8_t> healthy;  // 1 = may serve (health unknown or healthy)
  upstream::LbOptions lb;
  std::string local_zone;
  std::optional<upstream::OutlierOptions> outlier;
  std::optional<upstream::RetryBudgetOptions> budget;
  // AWS: SigV4 signing (lattice / apigateway with auth: iam) and an API Gateway stage prefix.
  std::shared_ptr<const SigningState> signing;
  std::string path_prefix;
  bool h2 = false;         // protocol: http2
  bool auto_alpn = false;  // protocol: auto-by-alpn (h2 false: attempts start on the HTTP/1.1 path)
};

struct ListenerState {
  const config::Listener* listener = nullptr;
  uint32_t stats_id = 0;
  router::RouteTable routes;
  http::HeadParser::Limits head_limits;
  std::string scheme = "http";
  std::shared_ptr<TlsSlot<tls::ServerTls>> tls;  // null = plaintext listener
  bool inbound = false;          // strips the client's identity header, adds the verified one
  tls::IdentityRules identity_rules;
  std::vector<std::optional<tls::AuthzPolicy>> authz;  // by route index; nullopt = no check
  std::vector<std::optional<upstream::RetryPolicy>> retry;  // by route index; nullopt = none
  std::vector<std::vector<uint32_t>> failover;  // by route index: lower-priority clusters
};

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::vector<ListenerState> listeners;  // same order as config->listeners
  std::vector<ClusterState> clusters;    // same order as config->clusters
  uint64_t generation = 0;
};

}  // namespace outrigger::server
