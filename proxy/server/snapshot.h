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
#include "proxy/http/h1.h"
#include "proxy/router/router.h"
#include "proxy/tls/context.h"
#include "proxy/tls/identity.h"

namespace outrigger::server {

// The TLS material in use for one listener or cluster. The watcher (main thread) stores a new
// context when the files change; a handshake loads the current one and keeps it.
template <class Tls>
struct TlsSlot {
  std::atomic<std::shared_ptr<const Tls>> current;
};

struct ClusterState {
  const config::Cluster* cluster = nullptr;
  uint32_t stats_id = 0;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // empty until DNS answered
  std::shared_ptr<TlsSlot<tls::ClientTls>> tls;           // null = plaintext upstream
  std::string sni;  // tls.sni, else the endpoints' DNS name; "" = none
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
};

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::vector<ListenerState> listeners;  // same order as config->listeners
  std::vector<ClusterState> clusters;    // same order as config->clusters
  uint64_t generation = 0;
};

}  // namespace outrigger::server
