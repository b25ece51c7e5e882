// Renders a Config as JSON whose keys and value spellings are those of the YAML schema, so the
// output (JSON being YAML) loads back into the same Config.
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/syntax.h"

namespace outrigger::config {
namespace {

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty) : pretty_(pretty) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  void key(std::string_view k) {
    separate();
    out_ += syntax::quote(k);
    out_ += pretty_ ? ": " : ":";
    after_key_ = true;
  }

  void string(std::string_view s) {
    separate();
    out_ += syntax::quote(s);
  }

  void number(uint64_t n) {
    separate();
    out_ += std::to_string(n);
  }

  void duration(Duration d) { string(syntax::format_duration(d)); }

  // A percentage such as 20 or 12.5 (at most 6 fraction digits, as the loader accepts).
  void decimal(double v) {
    separate();
    uint64_t micro = static_cast<uint64_t>(v * 1e6 + 0.5);
    out_ += std::to_string(micro / 1'000'000);
    if (uint64_t frac = micro % 1'000'000; frac != 0) {
      std::string digits = std::to_string(frac);
      digits.insert(0, 6 - digits.size(), '0');
      while (digits.back() == '0') digits.pop_back();
      out_ += '.';
      out_ += digits;
    }
  }

  void boolean(bool b) {
    separate();
    out_ += b ? "true" : "false";
  }

  void strings(const std::vector<std::string>& list) {
    begin_array();
    for (const std::string& s : list) string(s);
    end_array();
  }

  std::string take() {
    if (pretty_) out_ += '\n';
    return std::move(out_);
  }

 private:
  void open(char c) {
    separate();
    out_ += c;
    first_ = true;
    ++depth_;
  }

  void close(char c) {
    --depth_;
    if (!first_) newline();
    out_ += c;
    first_ = false;
  }

  // Emits the comma and line break that precede a value, unless it follows its key.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (depth_ == 0) return;
    if (!first_) out_ += ',';
    newline();
    first_ = false;
  }

  void newline() {
    if (!pretty_) return;
    out_ += '\n';
    out_.append(static_cast<size_t>(depth_) * 2, ' ');
  }

  bool pretty_;
  std::string out_;
  int depth_ = 0;
  bool first_ = true;
  bool after_key_ = false;
};

void write_limits(JsonWriter& w, const Limits& l) {
  w.begin_object();
  w.key("max_request_headers_bytes");
  w.number(l.max_request_headers_bytes);
  w.key("max_headers");
  w.number(l.max_headers);
  w.key("max_request_body_bytes");
  w.number(l.max_request_body_bytes);
  w.key("header_timeout");
  w.duration(l.header_timeout);
  w.key("idle_timeout");
  w.duration(l.idle_timeout);
  w.key("max_connections");
  w.number(l.max_connections);
  w.end_object();
}

void write_retry(JsonWriter& w, const RetryConfig& r) {
  w.key("retry");
  w.begin_object();
  w.key("retry_on");
  w.strings(r.retry_on);
  w.key("num_retries");
  w.number(r.num_retries);
  if (!r.retriable_status_codes.empty()) {
    w.key("retriable_status_codes");
    w.begin_array();
    for (uint16_t s : r.retriable_status_codes) w.number(s);
    w.end_array();
  }
  if (!r.retriable_headers.empty()) {
    w.key("retriable_headers");
    w.begin_array();
    for (const RetriableHeader& h : r.retriable_headers) {
      if (!h.value) {
        w.string(h.name);
        continue;
      }
      w.begin_object();
      w.key("name");
      w.string(h.name);
      w.key("value");
      w.string(*h.value);
      w.end_object();
    }
    w.end_array();
  }
  w.key("retry_non_idempotent");
  w.boolean(r.retry_non_idempotent);
  w.key("backoff");
  w.begin_object();
  w.key("base");
  w.duration(r.backoff_base);
  w.key("max");
  w.duration(r.backoff_max);
  w.end_object();
  w.key("honor_retry_after");
  w.boolean(r.honor_retry_after);
  if (r.honor_retry_after) {
    w.key("retry_after_max");
    w.duration(r.retry_after_max);
  }
  w.key("max_buffered_body_bytes");
  w.number(r.max_buffered_body_bytes);
  w.end_object();
}

void write_status_ranges(JsonWriter& w, const std::vector<StatusRange>& ranges) {
  w.begin_array();
  for (const StatusRange& r : ranges) {
    if (r.first == r.last) {
      w.number(r.first);
    } else {
      w.string(std::to_string(r.first) + "-" + std::to_string(r.last));
    }
  }
  w.end_array();
}

std::string_view auth_word(AwsAuth a) { return a == AwsAuth::kIam ? "iam" : "none"; }

// The resilience keys of a cluster: the always-present ones with their defaults, the optional
// blocks when set.
void write_resilience(JsonWriter& w, const Cluster& c) {
  w.key("protocol");
  w.string(upstream_protocol_name(c.protocol));
  w.key("lb_policy");
  w.string(lb_policy_name(c.lb_policy));
  w.key("panic_threshold_percent");
  w.number(c.panic_threshold_percent);
  w.key("zone_aware");
  w.begin_object();
  w.key("enabled");
  w.boolean(c.zone_aware.enabled);
  w.key("min_healthy_percent");
  w.number(c.zone_aware.min_healthy_percent);
  w.end_object();
  w.key("circuit_breakers");
  w.begin_object();
  w.key("max_connections");
  w.number(c.circuit_breakers.max_connections);
  w.key("max_pending_requests");
  w.number(c.circuit_breakers.max_pending_requests);
  w.key("max_requests");
  w.number(c.circuit_breakers.max_requests);
  if (!c.retry_budget) {
    w.key("max_retries");
    w.number(c.circuit_breakers.max_retries);
  }
  w.end_object();
  if (c.retry_budget) {
    w.key("retry_budget");
    w.begin_object();
    w.key("budget_percent");
    w.decimal(c.retry_budget->budget_percent);
    w.key("min_retry_concurrency");
    w.number(c.retry_budget->min_retry_concurrency);
    w.end_object();
  }
  if (const auto& od = c.outlier_detection) {
    w.key("outlier_detection");
    w.begin_object();
    w.key("consecutive_5xx");
    w.number(od->consecutive_5xx);
    w.key("consecutive_gateway_failure");
    w.number(od->consecutive_gateway_failure);
    w.key("split_external_local_origin_errors");
    w.boolean(od->split_external_local_origin_errors);
    if (od->split_external_local_origin_errors) {
      w.key("consecutive_local_origin_failure");
      w.number(od->consecutive_local_origin_failure);
    }
    w.key("interval");
    w.duration(od->interval);
    w.key("base_ejection_time");
    w.duration(od->base_ejection_time);
    w.key("max_ejection_time");
    w.duration(od->max_ejection_time);
    w.key("max_ejection_percent");
    w.number(od->max_ejection_percent);
    w.key("always_eject_one_host");
    w.boolean(od->always_eject_one_host);
    w.key("successful_active_health_check_uneject_host");
    w.boolean(od->successful_active_health_check_uneject_host);
    w.end_object();
  }
  if (const auto& hc = c.health_check) {
    w.key("health_check");
    w.begin_object();
    w.key("path");
    w.string(hc->path);
    if (!hc->host.empty()) {
      w.key("host");
      w.string(hc->host);
    }
    w.key("interval");
    w.duration(hc->interval);
    w.key("interval_jitter");
    w.duration(hc->interval_jitter);
    w.key("interval_jitter_percent");
    w.number(hc->interval_jitter_percent);
    w.key("initial_jitter");
    w.duration(hc->initial_jitter);
    w.key("timeout");
    w.duration(hc->timeout);
    w.key("healthy_threshold");
    w.number(hc->healthy_threshold);
    w.key("unhealthy_threshold");
    w.number(hc->unhealthy_threshold);
    w.key("expected_statuses");
    write_status_ranges(w, hc->expected_statuses);
    if (!hc->retriable_statuses.empty()) {
      w.key("retriable_statuses");
      write_status_ranges(w, hc->retriable_statuses);
    }
    w.end_object();
  }
}

// The privatelink / lattice / apigateway block (their endpoint is not rendered separately).
void write_aws_target(JsonWriter& w, const Cluster& c) {
  if (const auto& pl = c.privatelink) {
    w.key("privatelink");
    w.begin_object();
    w.key("endpoint");
    w.string(pl->endpoint);
    w.key("port");
    w.number(pl->port);
    if (!pl->service_name.empty()) {
      w.key("service_name");
      w.string(pl->service_name);
    }
    w.key("prefer_zonal");
    w.boolean(pl->prefer_zonal);
    w.end_object();
  }
  if (const auto& lat = c.lattice) {
    w.key("lattice");
    w.begin_object();
    w.key("service");
    w.string(lat->service);
    w.key("custom_domain");
    w.boolean(lat->custom_domain);
    w.key("port");
    w.number(lat->port);
    w.key("auth");
    w.string(auth_word(lat->auth));
    if (lat->auth == AwsAuth::kIam) {
      w.key("sigv4a");
      w.boolean(lat->sigv4a);
      if (!lat->region.empty()) {
        w.key("region");
        w.string(lat->region);
      }
    }
    w.end_object();
  }
  if (const auto& api = c.apigateway) {
    w.key("apigateway");
    w.begin_object();
    w.key("endpoint");
    w.string(api->host);
    w.key("api_id");
    w.string(api->api_id);
    w.key("region");
    w.string(api->region);
    if (!api->vpce_id.empty()) {
      w.key("vpc_endpoint");
      w.string(api->vpce_id);
    }
    if (!api->stage.empty()) {
      w.key("stage");
      w.string(api->stage);
    }
    w.key("port");
    w.number(api->port);
    w.key("auth");
    w.string(auth_word(api->auth));
    w.end_object();
  }
}

void write_route(JsonWriter& w, const Route& r) {
  w.begin_object();
  w.key("name");
  w.string(r.name);
  w.key("match");
  w.begin_object();
  if (!r.match.hosts.empty()) {
    w.key("hosts");
    w.begin_array();
    for (const std::string& h : r.match.hosts) w.string(h);
    w.end_array();
  }
  w.key("path_prefix");
  w.string(r.match.path_prefix);
  w.end_object();
  if (r.failover.empty()) {
    w.key("cluster");
    w.string(r.cluster);
  } else {
    w.key("clusters");
    w.begin_array();
    w.string(r.cluster);
    for (const std::string& c : r.failover) w.string(c);
    w.end_array();
  }
  w.key("timeout");
  w.duration(r.timeout);
  if (r.per_try_timeout.count() != 0) {
    w.key("per_try_timeout");
    w.duration(r.per_try_timeout);
  }
  if (r.idle_timeout) {
    w.key("idle_timeout");
    w.duration(*r.idle_timeout);
  }
  if (r.allow_timeout_header) {
    w.key("allow_timeout_header");
    w.boolean(true);
  }
  if (r.retry) write_retry(w, *r.retry);
  if (r.authz) {
    w.key("authz");
    w.begin_object();
    w.key("allow_any_verified");
    w.boolean(r.authz->allow_any_verified);
    if (!r.authz->allow_accounts.empty()) {
      w.key("allow_accounts");
      w.strings(r.authz->allow_accounts);
    }
    if (!r.authz->allow_services.empty()) {
      w.key("allow_services");
      w.strings(r.authz->allow_services);
    }
    w.end_object();
  }
  w.end_object();
}

std::string_view client_cert_word(ClientCertMode m) {
  switch (m) {
    case ClientCertMode::kOptional:
      return "optional";
    case ClientCertMode::kRequired:
      return "required";
    case ClientCertMode::kNone:
      break;
  }
  return "none";
}

void write_listener(JsonWriter& w, const Listener& l) {
  w.begin_object();
  w.key("name");
  w.string(l.name);
  w.key("address");
  w.string(l.address.to_string());
  w.key("role");
  w.string(l.role == ListenerRole::kInbound ? "inbound" : "outbound");
  w.key("limits");
  write_limits(w, l.limits);
  w.key("h2c");
  w.boolean(l.h2c);
  w.key("request_id_in_response");
  w.boolean(l.request_id_in_response);
  if (l.tls) {
    w.key("tls");
    w.begin_object();
    w.key("cert");
    w.string(l.tls->cert);
    w.key("key");
    w.string(l.tls->key);
    if (l.tls->client_cert != ClientCertMode::kNone) {
      w.key("client_ca");
      w.string(l.tls->client_ca);
    }
    w.key("client_cert");
    w.string(client_cert_word(l.tls->client_cert));
    w.key("alpn");
    w.strings(l.tls->alpn);
    w.end_object();
  }
  if (l.role == ListenerRole::kInbound) {
    w.key("identity");
    w.begin_object();
    w.key("header");
    w.string(l.identity.header);
    w.key("uri_template");
    w.string(l.identity.uri_template);
    w.end_object();
  }
  w.key("routes");
  w.begin_array();
  for (const Route& r : l.routes) write_route(w, r);
  w.end_array();
  w.end_object();
}

void write_cluster(JsonWriter& w, const Cluster& c) {
  w.begin_object();
  w.key("name");
  w.string(c.name);
  w.key("type");
  w.string(cluster_type_name(c.type));
  if (c.type == ClusterType::kStatic || c.type == ClusterType::kDns) {
    w.key("endpoints");
    w.begin_array();
    for (const Endpoint& e : c.endpoints) {
      if (e.weight == 1 && e.zone.empty()) {
        w.string(e.address.to_string());
        continue;
      }
      w.begin_object();
      w.key("address");
      w.string(e.address.to_string());
      w.key("weight");
      w.number(e.weight);
      if (!e.zone.empty()) {
        w.key("zone");
        w.string(e.zone);
      }
      w.end_object();
    }
    w.end_array();
  } else {
    write_aws_target(w, c);
  }
  if (c.host_rewrite) {
    w.key("host_rewrite");
    w.string(*c.host_rewrite);
  }
  w.key("connect_timeout");
  w.duration(c.connect_timeout);
  w.key("idle_timeout");
  w.duration(c.idle_timeout);
  w.key("max_connections");
  w.number(c.max_connections);
  if (c.resolves_names()) {
    w.key("dns");
    w.begin_object();
    w.key("min_ttl");
    w.duration(c.dns.min_ttl);
    w.key("max_ttl");
    w.duration(c.dns.max_ttl);
    w.end_object();
  }
  if (c.tls) {
    w.key("tls");
    w.begin_object();
    if (!c.tls->sni.empty()) {
      w.key("sni");
      w.string(c.tls->sni);
    }
    w.key("ca");
    w.string(c.tls->ca);
    if (!c.tls->cert.empty()) {
      w.key("cert");
      w.string(c.tls->cert);
      w.key("key");
      w.string(c.tls->key);
    }
    if (!c.tls->verify_san.empty()) {
      w.key("verify_san");
      w.strings(c.tls->verify_san);
    }
    w.key("alpn");
    w.strings(c.tls->alpn);
    w.end_object();
  }
  write_resilience(w, c);
  w.end_object();
}

}  // namespace

std::string to_json(const Config& config) { return to_json(config, JsonStyle::kPretty); }

std::string to_json(const Config& config, JsonStyle style) {
  JsonWriter w(style == JsonStyle::kPretty);
  w.begin_object();
  w.key("workers");
  w.number(config.workers);

  w.key("admin");
  w.begin_object();
  if (config.admin.address) {
    w.key("address");
    w.string(config.admin.address->to_string());
  }
  w.end_object();

  w.key("access_log");
  switch (config.access_log.mode) {
    case AccessLogMode::kOff:
      w.string("off");
      break;
    case AccessLogMode::kStdout:
      w.string("stdout");
      break;
    case AccessLogMode::kFile:
      w.string(config.access_log.path);
      break;
  }

  w.key("dns");
  w.begin_object();
  w.key("resolvers");
  w.begin_array();
  for (const HostPort& r : config.dns.resolvers) w.string(r.to_string());
  w.end_array();
  w.key("timeout");
  w.duration(config.dns.timeout);
  w.key("min_ttl");
  w.duration(config.dns.refresh.min_ttl);
  w.key("max_ttl");
  w.duration(config.dns.refresh.max_ttl);
  w.end_object();

  w.key("drain");
  w.begin_object();
  w.key("delay");
  w.duration(config.drain.delay);
  w.key("timeout");
  w.duration(config.drain.timeout);
  w.end_object();

  w.key("limits");
  write_limits(w, config.limits);

  w.key("tls");
  w.begin_object();
  w.key("reload_interval");
  w.duration(config.tls.reload_interval);
  w.end_object();

  w.key("aws");
  w.begin_object();
  if (!config.aws.region.empty()) {
    w.key("region");
    w.string(config.aws.region);
  }
  if (!config.aws.zone.empty()) {
    w.key("zone");
    w.string(config.aws.zone);
  }
  w.key("credentials");
  switch (config.aws.credentials) {
    case AwsCredentials::kEnv:
      w.string("env");
      break;
    case AwsCredentials::kEcs:
      w.string("ecs");
      break;
    case AwsCredentials::kAuto:
      w.string("auto");
      break;
  }
  w.end_object();

  w.key("listeners");
  w.begin_array();
  for (const Listener& l : config.listeners) write_listener(w, l);
  w.end_array();

  w.key("clusters");
  w.begin_array();
  for (const Cluster& c : config.clusters) write_cluster(w, c);
  w.end_array();
  w.end_object();
  return w.take();
}

}  // namespace outrigger::config
