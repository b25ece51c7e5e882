// The runtime view of one config generation: compiled routes, clusters with their resolved
// endpoints, and stats ids. Built on the main thread, posted to every worker.
//
// Thread affinity: immutable and shared (shared_ptr<const Snapshot>); an in-flight request keeps
// the snapshot it started with alive.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "proxy/http/h1.h"
#include "proxy/router/router.h"

namespace outrigger::server {

struct ClusterState {
  const config::Cluster* cluster = nullptr;
  uint32_t stats_id = 0;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // empty until DNS answered
};

struct ListenerState {
  const config::Listener* listener = nullptr;
  uint32_t stats_id = 0;
  router::RouteTable routes;
  http::HeadParser::Limits head_limits;
  std::string scheme = "http";
};

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::vector<ListenerState> listeners;  // same order as config->listeners
  std::vector<ClusterState> clusters;    // same order as config->clusters
  uint64_t generation = 0;
};

}  // namespace outrigger::server
