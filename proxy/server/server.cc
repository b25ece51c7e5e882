#include "proxy/server/server.h"

#include <malloc.h>
#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <csignal>

#include "config/loader.h"
#include "proxy/base/cpu.h"
#include "proxy/aws/names.h"
#include "proxy/base/log.h"
#include "proxy/tls/identity.h"
#include "proxy/upstream/policy_from_config.h"

namespace outrigger::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kDrainPoll = std::chrono::milliseconds(25);

tcp::endpoint to_endpoint(const config::HostPort& hp) {
  return tcp::endpoint(asio::ip::make_address(hp.host), hp.port);
}

std::string endpoint_string(const tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

std::string dns_key(const config::Cluster& c, size_t i) { return c.name + "#" + std::to_string(i); }

tls::ServerTlsSettings server_settings(const config::ListenerTls& t) {
  tls::ServerTlsSettings s;
  s.cert_chain = t.cert;
  s.key = t.key;
  s.client_ca = t.client_ca;
  s.client_cert = t.client_cert == config::ClientCertMode::kRequired   ? tls::ServerTlsSettings::kRequired
                  : t.client_cert == config::ClientCertMode::kOptional ? tls::ServerTlsSettings::kOptional
                                                                        : tls::ServerTlsSettings::kNone;
  s.alpn = t.alpn;
  return s;
}

tls::ClientTlsSettings client_settings(const config::Cluster& c) {
  tls::ClientTlsSettings s;
  const config::ClusterTls& t = *c.tls;
  s.ca = t.ca;
  s.cert = t.cert;
  s.key = t.key;
  s.sni = t.sni;
  s.verify_san = t.verify_san;
  s.alpn = t.alpn;
  // HTTP/2 over TLS is chosen by ALPN: offer h2 unless the alpn list was written out.
  if (c.protocol == config::UpstreamProtocol::kHttp2 && s.alpn == std::vector<std::string>{"http/1.1"}) {
    s.alpn = {"h2"};
  }
  return s;
}

std::string joined(const std::vector<std::string>& v) {
  std::string o;
  for (const auto& x : v) o += x + "\x1f";
  return o;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Server::Server(std::shared_ptr<const config::Config> config, std::string config_path)
    : config_(std::move(config)), config_path_(std::move(config_path)) {
  worker_count_ = config_->workers != 0 ? config_->workers : base::usable_cpus();
  registry_ = std::make_unique<stats::Registry>(worker_count_);
}

Server::~Server() = default;

std::shared_ptr<const Snapshot> Server::build_snapshot() {
  auto s = std::make_shared<Snapshot>();
  s->config = config_;
  s->generation = ++generation_;
  const config::Config& cfg = *config_;
  std::map<std::string_view, uint32_t> cluster_index;
  for (const config::Cluster& c : cfg.clusters) {
    ClusterState cs;
    cs.cluster = &c;
    cs.stats_id = registry_->cluster_id(c.name);
    if (c.tls) {
      cs.tls = cluster_tls_.at(c.name)->slot;  // prepare_tls ran for this config
      cs.sni = c.tls->sni;
      if (cs.sni.empty() && !c.endpoints.empty() && !is_ip_literal(c.endpoints[0].address.host)) {
        cs.sni = c.endpoints[0].address.host;
      }
    }
    cs.generation = s->generation;
    cs.h2 = c.protocol == config::UpstreamProtocol::kHttp2;
    cs.auto_alpn = c.protocol == config::UpstreamProtocol::kAutoByAlpn;
    if (c.signing) {
      auto sg = std::make_shared<SigningState>();
      sg->service = c.signing->service;
      sg->region = upstream::signing_region(cfg, c, aws_region_);
      sg->sigv4a = c.signing->sigv4a;
      sg->credentials = credentials_;
      cs.signing = std::move(sg);
    }
    if (c.apigateway && !c.apigateway->stage.empty()) cs.path_prefix = "/" + c.apigateway->stage;
    auto& shared = cluster_shared_[c.name];
    if (!shared) shared = std::make_shared<ClusterShared>(worker_count_);
    upstream::ClusterPolicies pol = upstream::cluster_policies(cfg, c, local_zone_);
    shared->breaker.set_thresholds(pol.breaker);
    cs.shared = shared;
    cs.lb = pol.lb;
    cs.local_zone = std::move(pol.local_zone);
    cs.outlier = pol.outlier;
    cs.budget = pol.retry_budget;
    // Per address: weight and zone of the endpoint it came from; health from the checker.
    cs.endpoints.clear();
    for (size_t i = 0; i < c.endpoints.size(); ++i) {
      std::vector<tcp::endpoint> addrs;
      if (c.type == config::ClusterType::kStatic) {
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(c.endpoints[i].address.host, ec);
        if (!ec) addrs.emplace_back(addr, c.endpoints[i].address.port);
      } else if (auto z = dns_endpoints_.find(dns_key(c, i) + "#zonal");
                 z != dns_endpoints_.end() && !z->second.empty()) {
        addrs = z->second;  // the zonal name of a PrivateLink endpoint answered
      } else if (auto it = dns_endpoints_.find(dns_key(c, i)); it != dns_endpoints_.end()) {
        addrs = it->second;
      }
      for (const auto& a : addrs) {
        cs.endpoints.push_back(a);
        cs.lb_endpoints.push_back(upstream::lb_endpoint_from_config(c.endpoints[i], a));
      }
    }
    cs.healthy.assign(cs.endpoints.size(), 1);
    if (auto h = health_.find(c.name); h != health_.end()) {
      for (size_t i = 0; i < cs.endpoints.size(); ++i) {
        if (auto st = h->second.find(endpoint_string(cs.endpoints[i])); st != h->second.end()) {
          cs.healthy[i] = st->second == upstream::HealthState::kUnhealthy ? 0 : 1;
        }
      }
    }
    cluster_index[c.name] = static_cast<uint32_t>(s->clusters.size());
    s->clusters.push_back(std::move(cs));
  }
  for (const config::Listener& l : cfg.listeners) {
    ListenerState ls;
    ls.listener = &l;
    ls.stats_id = registry_->listener_id(l.name);
    ls.head_limits.max_head_bytes =
        std::min<size_t>(l.limits.max_request_headers_bytes, base::kBufferSize);
    ls.head_limits.max_headers = std::min<size_t>(l.limits.max_headers, http::kMaxHeaders);
    if (l.tls) {
      ls.tls = listener_tls_.at(l.name)->slot;
      ls.scheme = "https";
    }
    ls.inbound = l.role == config::ListenerRole::kInbound;
    ls.identity_rules.uri_template = l.identity.uri_template;
    ls.authz.resize(l.routes.size());
    ls.retry.resize(l.routes.size());
    ls.failover.resize(l.routes.size());
    for (size_t i = 0; i < l.routes.size(); ++i) {
      const config::Route& r = l.routes[i];
      router::CompiledRoute cr;
      cr.route = &r;
      cr.index = static_cast<uint32_t>(i);
      cr.cluster = cluster_index.at(r.cluster);  // validated by the loader
      cr.stats_id = registry_->route_id(l.name, r.name);
      for (const std::string& h : r.match.hosts) cr.hosts.push_back(router::compile_host_pattern(h));
      cr.path_prefix = r.match.path_prefix;
      if (r.retry || r.per_try_timeout.count() > 0) {
        ls.retry[i] = upstream::retry_policy_from_config(r);
      }
      for (const std::string& f : r.failover) ls.failover[i].push_back(cluster_index.at(f));
      if (r.authz) {
        ls.authz[i] = tls::AuthzPolicy{r.authz->allow_any_verified, r.authz->allow_accounts,
                                       r.authz->allow_services};
      }
      ls.routes.add(std::move(cr));
    }
    s->listeners.push_back(std::move(ls));
  }
  return s;
}

bool Server::prepare_tls(const config::Config& cfg, std::string* error) {
  const auto interval = std::chrono::milliseconds(cfg.tls.reload_interval);
  // Material whose settings did not change is kept (its watcher goes on); new material is built
  // now, so a broken file fails the start-up or the reload instead of the first handshake. On
  // failure the maps in use are untouched.
  auto keep_or_build = [&](const auto& old_map, auto& new_map, const std::string& name,
                           auto settings, const std::string& fingerprint, std::string_view kind,
                           const config::SourceLoc& loc) -> bool {
    using Entry = typename std::decay_t<decltype(old_map)>::mapped_type::element_type;
    using Watcher = typename decltype(Entry::watcher)::element_type;
    if (auto it = old_map.find(name); it != old_map.end() && it->second->fingerprint == fingerprint) {
      new_map[name] = it->second;
      return true;
    }
    auto e = std::make_shared<Entry>();
    e->fingerprint = fingerprint;
    e->slot = std::make_shared<std::decay_t<decltype(*e->slot)>>();
    std::weak_ptr slot_ref = e->slot;
    const std::string who = std::string(kind) + " " + name;
    typename Watcher::Options opts;
    opts.interval = interval;
    opts.on_update = [slot_ref, who](typename Watcher::Ptr p) {
      if (auto slot = slot_ref.lock()) slot->current.store(std::move(p));
      log::info("tls material reloaded", {{"for", who}});
    };
    opts.on_error = [who](const std::string& err) {
      log::error("tls material refused; the previous one stays in use",
                 {{"for", who}, {"error", err}});
    };
    auto w = Watcher::start(io_.get_executor(), std::move(settings), std::move(opts));
    if (!w) {
      *error = (loc.line > 0 ? loc.file + ":" + std::to_string(loc.line) + ":" +
                                   std::to_string(loc.column) + ": "
                             : std::string()) +
               who + ": tls: " + w.error();
      return false;
    }
    e->slot->current.store((*w)->current());
    e->watcher = std::move(*w);
    new_map[name] = std::move(e);
    return true;
  };
  std::map<std::string, std::shared_ptr<ServerTlsEntry>> listeners;
  std::map<std::string, std::shared_ptr<ClientTlsEntry>> clusters;
  for (const config::Listener& l : cfg.listeners) {
    if (!l.tls) continue;
    const auto st = server_settings(*l.tls);
    const std::string fp = st.cert_chain + "\n" + st.key + "\n" + st.client_ca + "\n" +
                           std::to_string(static_cast<int>(st.client_cert)) + joined(st.alpn) +
                           std::to_string(interval.count());
    if (!keep_or_build(listener_tls_, listeners, l.name, st, fp, "listener", l.tls->loc)) return false;
  }
  for (const config::Cluster& c : cfg.clusters) {
    if (!c.tls) continue;
    const auto st = client_settings(c);
    const std::string fp = st.ca + "\n" + st.cert + "\n" + st.key + "\n" + st.sni + "\n" +
                           joined(st.verify_san) + "\n" + joined(st.alpn) +
                           std::to_string(interval.count());
    if (!keep_or_build(cluster_tls_, clusters, c.name, st, fp, "cluster", c.tls->loc)) return false;
  }
  listener_tls_ = std::move(listeners);
  cluster_tls_ = std::move(clusters);
  return true;
}

std::string Server::tls_metrics() const {
  std::string o;
  // Where the task runs (ECS task metadata, or aws.zone/region): labels to join other series on.
  if (!task_arn_.empty() || !local_zone_.empty() || !aws_region_.empty()) {
    o += "# HELP outrigger_task_info The ECS task, availability zone and region; the value is 1.\n";
    o += "# TYPE outrigger_task_info gauge\n";
    o += "outrigger_task_info{task_arn=";
    log::append_json_string(o, task_arn_);
    o += ",availability_zone=";
    log::append_json_string(o, local_zone_);
    o += ",region=";
    log::append_json_string(o, aws_region_);
    o += "} 1\n";
  }
  // Circuit breaker usage: how close each threshold is (open / limit), cluster-wide.
  o += "# HELP outrigger_upstream_circuit_breaker_open Resources in use per circuit breaker threshold.\n";
  o += "# TYPE outrigger_upstream_circuit_breaker_open gauge\n";
  static constexpr const char* kNames[] = {"connections", "pending", "requests", "retries"};
  std::string limits;
  for (const ClusterState& c : snapshot_->clusters) {
    if (!c.shared) continue;
    for (size_t r = 0; r < upstream::kResources; ++r) {
      const auto res = static_cast<upstream::Resource>(r);
      std::string labels = "{cluster=";
      log::append_json_string(labels, c.cluster->name);
      labels += ",threshold=\"";
      labels += kNames[r];
      labels += "\"} ";
      o += "outrigger_upstream_circuit_breaker_open" + labels +
           std::to_string(c.shared->breaker.open(res)) + "\n";
      limits += "outrigger_upstream_circuit_breaker_limit" + labels +
                std::to_string(c.shared->breaker.limit(res)) + "\n";
    }
  }
  o += "# HELP outrigger_upstream_circuit_breaker_limit Circuit breaker thresholds.\n";
  o += "# TYPE outrigger_upstream_circuit_breaker_limit gauge\n";
  o += limits;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto series = [&](std::string_view name, std::string_view kind, const std::string& owner,
                    std::string_view extra, std::string_view value) {
    o += name;
    o += '{';
    o += kind;  // the label: listener="..." or cluster="..."
    o += '=';
    log::append_json_string(o, owner);  // a JSON string is a valid Prometheus label value here
    o += extra;
    o += "} ";
    o += value;
    o += '\n';
  };
  o += "# HELP outrigger_tls_certificate_expiry_seconds Seconds until the loaded certificate's notAfter (negative once expired).\n";
  o += "# TYPE outrigger_tls_certificate_expiry_seconds gauge\n";
  for (const auto& [name, e] : listener_tls_) {
    if (auto na = e->watcher->not_after()) series("outrigger_tls_certificate_expiry_seconds", "listener", name, "", std::to_string(*na - now));
  }
  for (const auto& [name, e] : cluster_tls_) {
    if (auto na = e->watcher->not_after()) series("outrigger_tls_certificate_expiry_seconds", "cluster", name, "", std::to_string(*na - now));
  }
  o += "# HELP outrigger_tls_material_reloads_total Reloads of TLS certificate, key and trust-bundle files, by result.\n";
  o += "# TYPE outrigger_tls_material_reloads_total counter\n";
  for (const auto& [name, e] : listener_tls_) {
    series("outrigger_tls_material_reloads_total", "listener", name, ",result=\"ok\"", std::to_string(e->watcher->reloads()));
    series("outrigger_tls_material_reloads_total", "listener", name, ",result=\"failed\"", std::to_string(e->watcher->failures()));
  }
  for (const auto& [name, e] : cluster_tls_) {
    series("outrigger_tls_material_reloads_total", "cluster", name, ",result=\"ok\"", std::to_string(e->watcher->reloads()));
    series("outrigger_tls_material_reloads_total", "cluster", name, ",result=\"failed\"", std::to_string(e->watcher->failures()));
  }
  return o;
}

bool Server::bind_listeners(std::string* error) {
  for (uint32_t w = 0; w < worker_count_; ++w) {
    workers_.push_back(std::make_unique<Worker>(w, registry_->shard(w), access_log_.get()));
  }
  for (size_t li = 0; li < config_->listeners.size(); ++li) {
    const config::Listener& l = config_->listeners[li];
    tcp::endpoint ep;
    try {
      ep = to_endpoint(l.address);
    } catch (const std::exception& e) {
      *error = "listener " + l.name + ": bad address " + l.address.to_string();
      return false;
    }
    // Every worker gets its own SO_REUSEPORT socket on the same port (the first one picks the
    // port when the config says 0), so the kernel spreads connections without a shared lock.
    for (uint32_t w = 0; w < worker_count_; ++w) {
      auto acceptor = std::make_unique<tcp::acceptor>(workers_[w]->io());
      boost::system::error_code ec;
      acceptor->open(ep.protocol(), ec);
      if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) {
        const int one = 1;
        if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
          ec.assign(errno, boost::system::system_category());
        }
      }
      if (!ec && ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(false), ec);
      if (!ec) acceptor->bind(ep, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        *error = "listener " + l.name + " on " + endpoint_string(ep) + ": " + ec.message();
        return false;
      }
      if (w == 0) ep = acceptor->local_endpoint();
      workers_[w]->add_acceptor(li, std::move(acceptor));
    }
    log::info("listening", {{"listener", l.name}, {"address", endpoint_string(ep)}});
  }
  return true;
}

std::string Server::clusters_json() const {
  std::string o = "{\"clusters\":[";
  const auto dns_status = refresher_ ? refresher_->snapshot() : std::vector<dns::TargetStatus>{};
  bool first = true;
  for (const ClusterState& c : snapshot_->clusters) {
    if (!first) o += ",";
    first = false;
    o += "{\"name\":";
    log::append_json_string(o, c.cluster->name);
    o += ",\"type\":\"";
    o += config::cluster_type_name(c.cluster->type);
    o += "\",\"endpoints\":[";
    // Per endpoint: active health (when checked) and how many workers eject it now.
    std::vector<std::shared_ptr<const upstream::OutlierView>> views;
    if (c.shared) {
      for (size_t w = 0; w < c.shared->worker_count; ++w) views.push_back(c.shared->views[w].load());
    }
    const auto now = Clock::now();
    const auto hit = health_.find(c.cluster->name);
    for (size_t i = 0; i < c.endpoints.size(); ++i) {
      if (i) o += ",";
      const std::string addr = endpoint_string(c.endpoints[i]);
      o += "{\"address\":";
      log::append_json_string(o, addr);
      std::string_view health = c.cluster->health_check ? "unknown" : "unchecked";
      if (hit != health_.end()) {
        if (auto st = hit->second.find(addr); st != hit->second.end()) {
          health = upstream::health_state_name(st->second);
        }
      }
      int ejected_by = 0;
      uint64_t ejections = 0;
      for (const auto& v : views) {
        if (!v) continue;
        for (const auto& e : v->endpoints) {
          if (e.address != c.endpoints[i]) continue;
          ejections += e.ejections;
          if (e.ejected && now < e.until) ++ejected_by;
        }
      }
      o += ",\"health\":\"";
      o += health;
      o += "\",\"weight\":" + std::to_string(i < c.lb_endpoints.size() ? c.lb_endpoints[i].weight : 1);
      o += ",\"zone\":";
      log::append_json_string(o, i < c.lb_endpoints.size() ? c.lb_endpoints[i].zone : "");
      o += ",\"ejected_by_workers\":" + std::to_string(ejected_by);
      o += ",\"ejections\":" + std::to_string(ejections);
      o += ",\"state\":\"";
      o += health == "unhealthy" ? "unhealthy" : ejected_by > 0 ? "ejected" : "active";
      o += "\"}";
    }
    o += "]";
    o += ",\"lb_policy\":\"";
    o += config::lb_policy_name(c.cluster->lb_policy);
    o += "\",\"local_zone\":";
    log::append_json_string(o, c.local_zone);
    if (c.shared) {
      static constexpr const char* kNames[] = {"connections", "pending", "requests", "retries"};
      o += ",\"circuit_breakers\":{";
      for (size_t r = 0; r < upstream::kResources; ++r) {
        const auto res = static_cast<upstream::Resource>(r);
        if (r) o += ",";
        o += "\"";
        o += kNames[r];
        o += "\":{\"open\":" + std::to_string(c.shared->breaker.open(res)) +
             ",\"limit\":" + std::to_string(c.shared->breaker.limit(res)) +
             ",\"overflows\":" + std::to_string(c.shared->breaker.overflows(res)) + "}";
      }
      o += "}";
    }
    int64_t active = 0, idle = 0, pending = 0;
    uint64_t requests = 0;
    for (uint32_t w = 0; w < registry_->shard_count(); ++w) {
      const auto& st = registry_->shard(w).cluster(c.stats_id);
      active += st.cx_active.value();
      idle += st.cx_idle.value();
      pending += st.rq_pending.value();
      requests += st.rq_total.value();
    }
    o += ",\"connections_active\":" + std::to_string(active);
    o += ",\"connections_idle\":" + std::to_string(idle);
    o += ",\"requests_pending\":" + std::to_string(pending);
    o += ",\"requests_total\":" + std::to_string(requests);
    if (c.cluster->resolves_names()) {
      o += ",\"dns\":[";
      bool f2 = true;
      for (const auto& t : dns_status) {
        if (!t.key.starts_with(c.cluster->name + "#")) continue;
        if (!f2) o += ",";
        f2 = false;
        o += "{\"name\":";
        log::append_json_string(o, t.target.to_string());
        o += ",\"addresses\":" + std::to_string(t.endpoints.size());
        o += ",\"ttl_seconds\":" + std::to_string(t.ttl.count());
        o += ",\"resolutions_ok\":" + std::to_string(t.resolutions_ok);
        o += ",\"resolutions_failed\":" + std::to_string(t.resolutions_failed);
        o += ",\"last_error\":";
        log::append_json_string(o, t.last_error);
        o += "}";
      }
      o += "]";
    }
    o += "}";
  }
  o += "]}\n";
  return o;
}

void Server::start_admin() {
  if (!config_->admin.address) return;
  admin_ = std::make_unique<admin::AdminServer>(io_, to_endpoint(*config_->admin.address));
  admin_->handle("/ready", [this](std::string_view, std::string_view) {
    const bool ready = listening_ && dns_pending_first_ == 0 && !aws_pending_ && !draining_;
    return admin::Response{ready ? 200 : 503, "text/plain; charset=utf-8",
                           ready ? "ready\n" : (draining_ ? "draining\n" : "starting\n")};
  });
  admin_->handle("/healthz", [](std::string_view, std::string_view) {
    return admin::Response{200, "text/plain; charset=utf-8", "ok\n"};
  });
  admin_->handle("/metrics", [this](std::string_view, std::string_view) {
    return admin::Response{200, "text/plain; version=0.0.4; charset=utf-8",
                           registry_->render_prometheus() + tls_metrics()};
  });
  admin_->handle("/config", [this](std::string_view, std::string_view) {
    return admin::Response{200, "application/json", config::to_json(*config_)};
  });
  admin_->handle("/clusters", [this](std::string_view, std::string_view) {
    return admin::Response{200, "application/json", clusters_json()};
  });
  admin_->start();
  log::info("listening", {{"listener", "admin"}, {"address", endpoint_string(admin_->local_endpoint())}});
}

void Server::sync_dns_targets() {
  std::map<std::string, std::pair<config::HostPort, config::DnsRefresh>> wanted;
  for (const config::Cluster& c : config_->clusters) {
    if (!c.resolves_names()) continue;
    for (size_t i = 0; i < c.endpoints.size(); ++i) {
      wanted[dns_key(c, i)] = {c.endpoints[i].address, c.dns};
      // PrivateLink: the local zone's own name of the endpoint, preferred while it resolves.
      const std::string zonal =
          upstream::endpoint_name_to_resolve(*config_, c, c.endpoints[i], local_zone_);
      if (!zonal.empty() && zonal != c.endpoints[i].address.host) {
        wanted[dns_key(c, i) + "#zonal"] = {config::HostPort{zonal, c.endpoints[i].address.port},
                                            c.dns};
      }
    }
  }
  for (auto it = dns_targets_.begin(); it != dns_targets_.end();) {
    auto w = wanted.find(it->first);
    if (w == wanted.end() || w->second.first.to_string() != it->second.first.to_string() ||
        w->second.second.min_ttl != it->second.second.min_ttl ||
        w->second.second.max_ttl != it->second.second.max_ttl) {
      refresher_->remove(it->first);
      dns_endpoints_.erase(it->first);
      it = dns_targets_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [key, target] : wanted) {
    if (dns_targets_.contains(key)) continue;
    dns_targets_[key] = target;
    if (!ready_logged_) ++dns_pending_first_;  // readiness waits for its first answer
    refresher_->add(key, target.first, target.second);
  }
}

void Server::start_dns() {
  bool any = false;
  for (const auto& c : config_->clusters) any |= c.resolves_names();
  if (!any && config_path_.empty()) return;  // flags never gain DNS clusters later
  auto r = dns::Resolver::create(io_, dns::resolver_options(config_->dns));
  if (!r) {
    log::error("dns resolver unavailable", {{"error", r.error()}});
    return;
  }
  resolver_ = std::move(*r);
  refresher_ = std::make_unique<dns::Refresher>(
      io_, *resolver_,
      [this](const std::string& key, dns::Refresher::Endpoints eps) {
        dns_endpoints_[key] = std::move(eps);
        publish();
      },
      [this](const std::string& key, bool ok) {
        (ok ? registry_->main().dns_resolutions_ok : registry_->main().dns_resolutions_failed).inc();
        if (!ok) log::warn("dns resolution failed", {{"target", key}});
        if (dns_targets_.contains(key) && dns_pending_first_ > 0 && !seen_first_.contains(key)) {
          seen_first_.insert(key);
          --dns_pending_first_;
          maybe_ready();
        }
      });
  sync_dns_targets();
  refresher_->start();
}

void Server::maybe_ready() {
  if (dns_pending_first_ == 0 && !aws_pending_ && listening_ && !ready_logged_) {
    ready_logged_ = true;
    log::info("ready");
  }
}

// Where we run in AWS: the availability zone and region (config, else the environment, else the
// ECS task metadata endpoint v4), and credentials for clusters that sign with SigV4. Readiness
// waits for the metadata answer and the first credentials attempt, so the first requests are
// not refused for want of them.
void Server::start_aws() {
  const aws::Environment env = aws::process_environment();
  local_zone_ = config_->aws.zone;
  aws_region_ = config_->aws.region;
  if (aws_region_.empty()) aws_region_ = env("AWS_REGION").value_or(env("AWS_DEFAULT_REGION").value_or(""));
  bool signing = false;
  for (const auto& c : config_->clusters) signing |= c.signing.has_value();
  credentials_ = std::make_shared<CredentialSlot>();
  if (signing) {
    aws::SourceOptions so;
    if (auto h = env("OUTRIGGER_CONTAINER_CREDENTIALS_HOST")) so.container_host_override = *h;
    auto source = aws::resolve_credential_source(env, so);
    if (config_->aws.credentials == config::AwsCredentials::kEcs && source &&
        source->kind != aws::CredentialSource::Kind::kContainer) {
      source = std::unexpected(std::string("aws.credentials is ecs but no container credentials "
                                           "endpoint is set (AWS_CONTAINER_CREDENTIALS_*_URI)"));
    } else if (config_->aws.credentials == config::AwsCredentials::kEnv && source &&
               source->kind != aws::CredentialSource::Kind::kStatic) {
      auto fixed = aws::resolve_credential_source(
          [&](std::string_view n) -> std::optional<std::string> {
            if (n.starts_with("AWS_CONTAINER_")) return std::nullopt;
            return env(n);
          },
          so);
      source = std::move(fixed);
    }
    if (!source) {
      credentials_->error.store(std::make_shared<const std::string>(source.error()));
      log::error("no AWS credentials for signing", {{"error", source.error()}});
    } else {
      log::info("aws credentials", {{"source", source->describe()}});
      aws_pending_creds_ = true;
      std::weak_ptr<CredentialSlot> slot = credentials_;
      credentials_provider_ = std::make_unique<aws::CredentialsProvider>(
          io_, std::move(*source), aws::CredentialsProvider::Options{},
          aws::CredentialsProvider::Callbacks{
              [this, slot](std::shared_ptr<const aws::Credentials> c) {
                if (auto s = slot.lock()) {
                  s->current.store(std::move(c));
                  s->error.store(nullptr);
                }
                aws_pending_creds_ = false;
                update_aws_pending();
              },
              [this, slot](std::string_view err) {
                if (auto s = slot.lock()) s->error.store(std::make_shared<const std::string>(err));
                log::warn("aws credentials refresh failed", {{"error", std::string(err)}});
                aws_pending_creds_ = false;
                update_aws_pending();
              }});
      credentials_provider_->start();
    }
  }
  auto uri = aws::metadata_uri_v4(env);
  if (uri && (local_zone_.empty() || aws_region_.empty())) {
    aws_pending_meta_ = true;
    metadata_ = std::make_unique<aws::TaskMetadataFetcher>(
        io_, *uri, aws::TaskMetadataFetcher::Options{},
        [this](std::expected<aws::TaskMetadata, std::string> md) {
          aws_pending_meta_ = false;
          if (!md) {
            log::warn("ecs task metadata unavailable", {{"error", md.error()}});
          } else {
            if (local_zone_.empty()) local_zone_ = md->availability_zone;
            if (aws_region_.empty()) aws_region_ = md->region;
            task_arn_ = md->task_arn;
            log::info("ecs task metadata", {{"availability_zone", md->availability_zone},
                                            {"region", md->region},
                                            {"task_arn", md->task_arn},
                                            {"cluster", md->cluster}});
            if (refresher_) sync_dns_targets();
            publish();
          }
          update_aws_pending();
        });
    metadata_->start();
  }
  update_aws_pending();
}

void Server::update_aws_pending() {
  aws_pending_ = aws_pending_creds_ || aws_pending_meta_;
  maybe_ready();
}

void Server::publish() {
  if (workers_.empty()) return;
  snapshot_ = build_snapshot();
  for (auto& w : workers_) w->post_snapshot(snapshot_);
  sync_health_checks();
}

void Server::sync_health_checks() {
  for (auto it = checkers_.begin(); it != checkers_.end();) {
    const config::Cluster* c = config_->find_cluster(it->first);
    if (c == nullptr || !c->health_check) {
      it->second->stop();
      health_.erase(it->first);
      it = checkers_.erase(it);
    } else {
      ++it;
    }
  }
  for (const ClusterState& cs : snapshot_->clusters) {
    const config::Cluster& c = *cs.cluster;
    if (!c.health_check) continue;
    auto& checker = checkers_[c.name];
    if (!checker) {
      const std::string name = c.name;
      const uint32_t stats_id = cs.stats_id;
      upstream::HealthCheckOptions options = *upstream::health_check_options_from_config(c);
      // A TLS cluster's checks use the material its slot holds at each check, so rotated files
      // apply as they do to requests; a reload makes new checkers from the new snapshot.
      if (cs.tls) {
        options.tls = [slot = cs.tls, sni = cs.sni](std::string* out) {
          *out = sni;
          return slot->current.load();
        };
      }
      checker = std::make_unique<upstream::HealthChecker>(
          io_, std::move(options),
          [this, name, stats_id](const upstream::HealthTransition& t) {
            const bool healthy = t.to != upstream::HealthState::kUnhealthy;
            health_[name][endpoint_string(t.address)] = t.to;
            auto& st = registry_->main_shard().cluster(stats_id);
            (t.to == upstream::HealthState::kHealthy ? st.health_transitions_healthy
                                                     : st.health_transitions_unhealthy)
                .inc();
            log::info("health check transition",
                      {{"cluster", name},
                       {"endpoint", endpoint_string(t.address)},
                       {"from", std::string(upstream::health_state_name(t.from))},
                       {"to", std::string(upstream::health_state_name(t.to))},
                       {"check", std::string(upstream::check_result_name(t.result))}});
            (void)healthy;
            // Not from inside the checker's callback: set_endpoints() runs again in publish().
            asio::post(io_, [this] {
              if (!finished_) publish();
            });
          });
    }
    checker->set_endpoints(cs.endpoints);
  }
}

void Server::reload() {
  if (config_path_.empty()) {
    log::warn("reload ignored: the config came from flags");
    return;
  }
  config::LoadResult r = config::load_file(config_path_);
  std::string problems;
  if (r.ok()) {
    // Listener sockets are bound once; changing them needs a restart (said, not half-applied).
    const auto& old_l = config_->listeners;
    const auto& new_l = r.config->listeners;
    if (old_l.size() != new_l.size()) {
      problems = "\"listeners cannot be added or removed by reload; restart instead\"";
    } else {
      for (size_t i = 0; i < old_l.size(); ++i) {
        if (old_l[i].name != new_l[i].name ||
            old_l[i].address.to_string() != new_l[i].address.to_string()) {
          problems = "\"listener names and addresses cannot change by reload; restart instead\"";
        }
      }
    }
  } else {
    problems = "[";
    for (size_t i = 0; i < r.errors.size(); ++i) {
      if (i) problems += ",";
      log::append_json_string(problems, r.errors[i].to_string());
    }
    problems += "]";
  }
  if (problems.empty()) {
    std::string err;
    if (!prepare_tls(*r.config, &err)) {
      problems = "[";
      log::append_json_string(problems, err);
      problems += "]";
    }
  }
  if (!problems.empty()) {
    registry_->main().config_reloads_failed.inc();
    log::error("config reload failed", {log::raw("errors", problems)});
    return;
  }
  config_ = r.config;
  // Health checks restart with the new settings (their state starts over as unknown).
  for (auto& [name, checker] : checkers_) checker->stop();
  checkers_.clear();
  health_.clear();
  if (refresher_) sync_dns_targets();
  publish();
  registry_->main().config_reloads_ok.inc();
  log::info("config reloaded", {log::num("generation", static_cast<long long>(generation_))});
}

void Server::begin_drain() {
  if (draining_) {
    log::warn("second signal: exiting without waiting for the drain");
    finish();
    return;
  }
  draining_ = true;
  registry_->main().draining.set(1);
  log::info("draining", {log::num("delay_ms", config_->drain.delay.count()),
                         log::num("timeout_ms", config_->drain.timeout.count())});
  for (auto& w : workers_) w->post_drain();
  drain_timer_.expires_after(config_->drain.delay);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& w : workers_) w->post_close_listeners();
    check_drained();
  });
  drain_deadline_.expires_after(config_->drain.timeout);
  drain_deadline_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    size_t left = 0;
    for (auto& w : workers_) left += w->active_connections();
    log::warn("drain timeout: exiting with connections open", {log::num("connections", static_cast<long long>(left))});
    finish();
  });
}

void Server::check_drained() {
  size_t left = 0;
  for (auto& w : workers_) left += w->active_connections();
  if (left == 0) {
    log::info("drained");
    finish();
    return;
  }
  drain_poll_.expires_after(kDrainPoll);
  drain_poll_.async_wait([this](boost::system::error_code ec) {
    if (!ec) check_drained();
  });
}

void Server::finish() {
  if (finished_) return;
  finished_ = true;
  drain_timer_.cancel();
  drain_poll_.cancel();
  drain_deadline_.cancel();
  for (auto& w : workers_) w->stop();
  workers_.clear();  // joins
  if (refresher_) refresher_->stop();
  for (auto& [name, checker] : checkers_) checker->stop();
  if (credentials_provider_) credentials_provider_->stop();
  if (metadata_) metadata_->stop();
  if (admin_) admin_->stop();
  boost::system::error_code ec;
  signals_.cancel(ec);
  io_.stop();
}

int Server::run() {
  std::signal(SIGPIPE, SIG_IGN);
  // glibc would trim the heap top on nearly every burst and fault the pages back in on the
  // next one (measured: 0.2-0.6 page faults per HTTP/2 request). Memory of idle connections is
  // still returned by the workers' explicit malloc_trim (see Worker::tick).
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  if (config_->access_log.mode == config::AccessLogMode::kStdout) {
    access_log_ = AccessLogSink::open_stdout();
  } else if (config_->access_log.mode == config::AccessLogMode::kFile) {
    std::string err;
    access_log_ = AccessLogSink::open_file(config_->access_log.path, &err);
    if (!access_log_) {
      log::error("cannot open access log", {{"error", err}});
      return 1;
    }
  }
  // Signals first: a SIGHUP or SIGTERM that arrives as soon as we log "ready" must be ours to
  // handle, not the default action.
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  std::string error;
  if (!prepare_tls(*config_, &error)) {
    log::error("tls material unusable", {{"error", error}});
    return 1;
  }
  start_aws();
  try {
    start_dns();
    if (!bind_listeners(&error)) {
      log::error("cannot bind listener", {{"error", error}});
      return 1;
    }
    start_admin();
  } catch (const std::exception& e) {
    log::error("startup failed", {{"error", e.what()}});
    return 1;
  }
  snapshot_ = build_snapshot();
  for (auto& w : workers_) w->start(snapshot_);
  sync_health_checks();
  listening_ = true;
  log::info("started", {log::num("workers", worker_count_), {"config", config_->source}});
  maybe_ready();
  std::function<void(boost::system::error_code, int)> on_signal =
      [this, &on_signal](boost::system::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          reload();
        } else {
          begin_drain();
        }
        if (!finished_) signals_.async_wait(on_signal);
      };
  signals_.async_wait(on_signal);
  io_.run();
  finish();
  log::info("exited");
  return 0;
}

}  // namespace outrigger::server
