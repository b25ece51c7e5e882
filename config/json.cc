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
  w.key("cluster");
  w.string(r.cluster);
  w.key("timeout");
  w.duration(r.timeout);
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
  w.string(c.type == ClusterType::kDns ? "dns" : "static");
  w.key("endpoints");
  w.begin_array();
  for (const Endpoint& e : c.endpoints) w.string(e.address.to_string());
  w.end_array();
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
  if (c.type == ClusterType::kDns) {
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
