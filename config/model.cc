#include "config/model.h"

namespace outrigger::config {

std::string HostPort::to_string() const {
  std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

std::string_view cluster_type_name(ClusterType t) {
  switch (t) {
    case ClusterType::kDns:
      return "dns";
    case ClusterType::kPrivateLink:
      return "privatelink";
    case ClusterType::kLattice:
      return "lattice";
    case ClusterType::kApiGateway:
      return "apigateway";
    case ClusterType::kStatic:
      break;
  }
  return "static";
}

std::string_view lb_policy_name(LbPolicy p) {
  switch (p) {
    case LbPolicy::kLeastRequest:
      return "least_request";
    case LbPolicy::kRandom:
      return "random";
    case LbPolicy::kRoundRobin:
      break;
  }
  return "round_robin";
}

std::string_view upstream_protocol_name(UpstreamProtocol p) {
  switch (p) {
    case UpstreamProtocol::kHttp2:
      return "http2";
    case UpstreamProtocol::kAutoByAlpn:
      return "auto-by-alpn";
    case UpstreamProtocol::kHttp1:
      break;
  }
  return "http1";
}

const Cluster* Config::find_cluster(std::string_view name) const {
  for (const Cluster& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

}  // namespace outrigger::config
