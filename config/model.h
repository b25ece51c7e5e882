// The configuration model: immutable, validated values that the proxy runs from (never YAML).
//
// Thread affinity: immutable and shared. A Config is built once by the loader (config/loader.h)
// or by the reverse-proxy quick mode, wrapped in shared_ptr<const Config>, and never changed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
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

struct Route {
  std::string name;
  RouteMatch match;
  std::string cluster;       // validated to exist
  Duration timeout{15'000};  // upstream response timeout (first byte of response head) -> 504
  std::optional<RouteAuthz> authz;  // absent = no caller check
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
  ListenerIdentity identity;       // inbound listeners only
  std::vector<Route> routes;       // first match wins
  SourceLoc loc;
};

enum class ClusterType { kStatic, kDns };

struct Endpoint {
  HostPort address;  // IP literal for static clusters, DNS name for dns clusters
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
  SourceLoc loc;  // of the tls map
};

struct Cluster {
  std::string name;
  ClusterType type = ClusterType::kStatic;
  std::vector<Endpoint> endpoints;
  std::optional<std::string> host_rewrite;  // sets Host on requests to this cluster
  Duration connect_timeout{5'000};          // -> 503 with x-outrigger-reason
  Duration idle_timeout{60'000};            // pooled idle upstream connections are closed after
  uint32_t max_connections = 1024;          // per worker; requests wait (connect_timeout) beyond
  DnsRefresh dns;                           // dns clusters only
  std::optional<ClusterTls> tls;            // absent = plaintext upstream
  SourceLoc loc;
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

struct Config {
  std::string source;    // file path, or "<flags>" for quick mode
  uint32_t workers = 0;  // 0 = CPUs the process may use (cgroup cpu.max aware)
  Admin admin;
  AccessLog access_log;
  Dns dns;
  Drain drain;
  Limits limits;  // defaults for listeners that set none
  TlsSettings tls;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  const Cluster* find_cluster(std::string_view name) const;
};

}  // namespace outrigger::config
