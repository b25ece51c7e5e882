#include "config/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <sstream>
#include <unordered_map>

#include "config/syntax.h"
#include "proxy/aws/names.h"

namespace outrigger::config {
namespace {

using syntax::quote;

constexpr size_t kMaxConfigBytes = 16u << 20;
constexpr size_t kMaxErrors = 1000;
constexpr size_t kMaxListeners = 256;
constexpr size_t kMaxRoutes = 4096;  // across all listeners
constexpr size_t kMaxClusters = 1024;
constexpr int64_t kMaxWorkers = 1024;
constexpr int64_t kMaxConnections = 1'000'000;

using Keys = std::span<const std::string_view>;

constexpr std::string_view kTopKeys[] = {"workers", "admin", "access_log", "dns",       "drain",
                                         "limits",  "tls",   "aws",        "listeners", "clusters"};
constexpr std::string_view kAdminKeys[] = {"address"};
constexpr std::string_view kDnsKeys[] = {"resolvers", "timeout", "min_ttl", "max_ttl"};
constexpr std::string_view kDrainKeys[] = {"delay", "timeout"};
constexpr std::string_view kLimitsKeys[] = {"max_request_headers_bytes",
                                            "max_headers",
                                            "max_request_body_bytes",
                                            "header_timeout",
                                            "idle_timeout",
                                            "max_connections"};
constexpr std::string_view kListenerKeys[] = {"name",   "address", "role",
                                              "limits", "tls",     "identity",
                                              "routes", "h2c",     "request_id_in_response"};
constexpr std::string_view kRouteKeys[] = {"name",         "match",
                                           "cluster",      "clusters",
                                           "timeout",      "per_try_timeout",
                                           "idle_timeout", "allow_timeout_header",
                                           "retry",        "authz"};
constexpr std::string_view kRetryKeys[] = {
    "retry_on",          "num_retries",          "retriable_status_codes",
    "retriable_headers", "retry_non_idempotent", "backoff",
    "honor_retry_after", "retry_after_max",      "max_buffered_body_bytes"};
constexpr std::string_view kBackoffKeys[] = {"base", "max"};
constexpr std::string_view kRetriableHeaderKeys[] = {"name", "value"};
constexpr std::string_view kMatchKeys[] = {"host", "hosts", "path_prefix"};
constexpr std::string_view kClusterKeys[] = {"name",
                                             "type",
                                             "endpoints",
                                             "host_rewrite",
                                             "connect_timeout",
                                             "idle_timeout",
                                             "max_connections",
                                             "dns",
                                             "tls",
                                             "lb_policy",
                                             "protocol",
                                             "panic_threshold_percent",
                                             "zone_aware",
                                             "circuit_breakers",
                                             "retry_budget",
                                             "outlier_detection",
                                             "health_check",
                                             "privatelink",
                                             "lattice",
                                             "apigateway"};
constexpr std::string_view kEndpointKeys[] = {"address", "weight", "zone"};
constexpr std::string_view kZoneAwareKeys[] = {"enabled", "min_healthy_percent"};
constexpr std::string_view kBreakerKeys[] = {"max_connections", "max_pending_requests",
                                             "max_requests", "max_retries"};
constexpr std::string_view kRetryBudgetKeys[] = {"budget_percent", "min_retry_concurrency"};
constexpr std::string_view kOutlierKeys[] = {"consecutive_5xx",
                                             "consecutive_gateway_failure",
                                             "consecutive_local_origin_failure",
                                             "split_external_local_origin_errors",
                                             "interval",
                                             "base_ejection_time",
                                             "max_ejection_time",
                                             "max_ejection_percent",
                                             "always_eject_one_host",
                                             "successful_active_health_check_uneject_host"};
constexpr std::string_view kHealthCheckKeys[] = {"path",
                                                 "host",
                                                 "interval",
                                                 "interval_jitter",
                                                 "interval_jitter_percent",
                                                 "initial_jitter",
                                                 "timeout",
                                                 "healthy_threshold",
                                                 "unhealthy_threshold",
                                                 "expected_statuses",
                                                 "retriable_statuses"};
constexpr std::string_view kPrivateLinkKeys[] = {"endpoint", "port", "service_name",
                                                 "prefer_zonal"};
constexpr std::string_view kLatticeKeys[] = {"service", "custom_domain", "port",
                                             "auth",    "sigv4a",        "region"};
constexpr std::string_view kApiGatewayKeys[] = {"endpoint", "api_id", "region", "vpc_endpoint",
                                                "stage",    "port",   "auth"};
constexpr std::string_view kAwsKeys[] = {"region", "zone", "credentials"};
constexpr std::string_view kClusterDnsKeys[] = {"min_ttl", "max_ttl"};
constexpr std::string_view kTlsKeys[] = {"reload_interval"};
constexpr std::string_view kListenerTlsKeys[] = {"cert", "key", "client_ca", "client_cert", "alpn"};
constexpr std::string_view kIdentityKeys[] = {"header", "uri_template"};
constexpr std::string_view kAuthzKeys[] = {"allow_any_verified", "allow_accounts",
                                           "allow_services"};
constexpr std::string_view kClusterTlsKeys[] = {"sni", "ca", "cert", "key", "verify_san", "alpn"};

// ALPN protocols the data path speaks (listeners offer them; clusters offer h2 with protocol
// http2 or auto-by-alpn).
constexpr std::string_view kAlpnProtocols[] = {"http/1.1", "h2"};
constexpr int64_t kMinReloadIntervalMs = 100;

// retry_on condition names (Envoy's x-envoy-retry-on), kept in step with
// upstream::retry_on_bit (tests/unit/policy_from_config_test.cc checks every name).
constexpr std::string_view kRetryOnNames[] = {
    "connect-failure",        "refused-stream",   "reset", "gateway-error", "5xx",
    "retriable-status-codes", "retriable-headers",
    // gRPC (Envoy's x-envoy-retry-grpc-on): the grpc-status of a trailers-only response.
    "cancelled", "deadline-exceeded", "resource-exhausted", "internal", "unavailable"};
constexpr int64_t kMaxRetries = 10;
constexpr uint64_t kMaxBufferedBodyBytes = 64u << 20;
constexpr size_t kMaxFailoverClusters = 8;
constexpr int64_t kMaxThreshold = 1000;  // health check and outlier detection counts

// Header names the proxy sets or frames messages with; none may carry the caller's identity.
constexpr std::string_view kReservedHeaders[] = {
    "host",         "content-length",  "transfer-encoding", "connection",       "keep-alive",
    "te",           "trailer",         "upgrade",           "proxy-connection", "expect",
    "x-request-id", "x-forwarded-for", "x-forwarded-proto"};

// Why an identity URI template is unusable, or "" (kept in step with
// tls::check_uri_template, which a unit test compares it with).
std::string uri_template_problem(std::string_view t) {
  constexpr std::string_view kAccount = "{account}";
  constexpr std::string_view kService = "{service}";
  size_t a = t.find(kAccount);
  size_t s = t.find(kService);
  if (a == std::string_view::npos || s == std::string_view::npos) {
    return "must contain {account} and {service}";
  }
  if (t.find(kAccount, a + 1) != std::string_view::npos ||
      t.find(kService, s + 1) != std::string_view::npos) {
    return "{account} and {service} may appear only once each";
  }
  size_t braces = static_cast<size_t>(std::count(t.begin(), t.end(), '{') +
                                      std::count(t.begin(), t.end(), '}'));
  if (braces != 4) return "only {account} and {service} may use braces";
  size_t first = std::min(a, s), second = std::max(a, s);
  if (second == first + kAccount.size()) {
    return "{account} and {service} must be separated by some text, e.g. \"/\"";
  }
  for (unsigned char c : t) {
    if (c <= 0x20 || c >= 0x7f) return "must not contain spaces, control or non-ASCII characters";
  }
  return "";
}

bool is_account_id(std::string_view s) {
  return s.size() == 12 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A service name as identity templates extract it: 1..128 of [A-Za-z0-9._-].
bool is_service_name(std::string_view s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool is_header_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

std::string lower_case(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// verify_san entries: "dns.name", "*.suffix", "scheme://..." (exact), or an IP literal.
bool parse_san_pattern(std::string_view text, std::string* out, std::string* reason) {
  if (size_t sep = text.find("://"); sep != std::string_view::npos) {
    std::string_view scheme = text.substr(0, sep);
    bool scheme_ok =
        !scheme.empty() && std::isalpha(static_cast<unsigned char>(scheme[0])) &&
        std::all_of(scheme.begin(), scheme.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
        });
    bool rest_ok =
        text.size() > sep + 3 && std::all_of(text.begin(), text.end(), [](char c) {
          return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
        });
    if (!scheme_ok || !rest_ok) {
      *reason = "invalid URI " + quote(text);
      return false;
    }
    *out = std::string(text);
    return true;
  }
  if (syntax::is_ipv4_literal(text) || syntax::is_ipv6_literal(text)) {
    *out = std::string(text);
    return true;
  }
  std::string_view name = text.starts_with("*.") ? text.substr(2) : text;
  if (!syntax::is_dns_name(name)) {
    *reason = "invalid name " + quote(text) +
              " (expected a DNS name, *.suffix, a URI such as spiffe://ACCOUNT/SERVICE, or an IP "
              "address)";
    return false;
  }
  std::string normalized = lower_case(text);
  if (normalized.ends_with('.')) normalized.pop_back();
  *out = std::move(normalized);
  return true;
}

// A Host header value: a DNS name or an IP literal (IPv6 in brackets), optionally with a port.
bool is_host_value(std::string_view text) {
  HostPort hp;
  std::string reason;
  return syntax::is_dns_name(text) || syntax::is_ipv4_literal(text) ||
         (text.size() > 2 && text.front() == '[' && text.back() == ']' &&
          syntax::is_ipv6_literal(text.substr(1, text.size() - 2))) ||
         syntax::parse_host_port(text, false, &hp, &reason);
}

// Lower case without the trailing dot (how DNS names are stored).
std::string dns_key(std::string_view name) {
  std::string out = lower_case(name);
  if (out.ends_with('.')) out.pop_back();
  return out;
}

// "a", "a or b", "a, b or c".
std::string word_list(Keys words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
    out += words[i];
  }
  return out;
}

// A non-negative decimal with up to 6 fraction digits ("20", "12.5").
bool parse_decimal(std::string_view t, double* out) {
  size_t dot = t.find('.');
  std::string_view whole = t.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
  auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (whole.empty() || whole.size() > 9 || !digits(whole) || !digits(frac) || frac.size() > 6 ||
      (dot != std::string_view::npos && frac.empty())) {
    return false;
  }
  double v = 0;
  for (char c : whole) v = v * 10 + (c - '0');
  double scale = 1;
  for (char c : frac) {
    scale /= 10;
    v += (c - '0') * scale;
  }
  *out = v;
  return true;
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Names meant as PrivateLink endpoint names: their first label starts with "vpce-", or they end
// in the vpce.amazonaws.com domain. Such names must parse as one; other names are private DNS
// names.
bool looks_like_vpce_name(std::string_view key) {
  return key.starts_with("vpce-") || key.ends_with(".vpce.amazonaws.com") ||
         key.ends_with(".vpce.amazonaws.com.cn");
}

// Names meant as generated VPC Lattice service names.
bool looks_like_lattice_name(std::string_view key) {
  return key.find(".vpc-lattice-svcs.") != std::string_view::npos || key.ends_with(".on.aws");
}

bool is_api_id(std::string_view s) {
  return s.size() == 10 && std::all_of(s.begin(), s.end(), is_lower_alnum);
}

// "vpce-" and 8 or 17 hex digits.
bool is_vpce_id(std::string_view s) {
  if (!s.starts_with("vpce-")) return false;
  std::string_view hex = s.substr(5);
  return (hex.size() == 8 || hex.size() == 17) && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// API Gateway stage names: 1..128 of letters, digits, '-' and '_'.
bool is_stage_name(std::string_view s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

// Where route authz may appear, decided per listener.
enum class AuthzPlace { kAllowed, kUnknown, kNotInbound, kNoTls, kNoClientCert };

// One key/value pair of a YAML map, with positions already converted to 1-based locations.
struct Entry {
  std::string key;
  YAML::Node value;
  SourceLoc key_loc;
  SourceLoc loc;  // of the value; the key's when the value is empty (`key:` with nothing after)
};

struct Map {
  SourceLoc loc;
  std::vector<Entry> entries;  // first occurrence of each known key, in file order

  const Entry* get(std::string_view key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

struct Item {
  YAML::Node node;
  SourceLoc loc;
};

struct NamedLoc {
  std::string name;
  SourceLoc loc;
};

bool is_wildcard(const HostPort& h) { return h.host == "0.0.0.0" || h.host == "::"; }
bool is_v6(const HostPort& h) { return h.host.find(':') != std::string::npos; }

// Whether binding both would collide (or silently share traffic under SO_REUSEPORT). An IPv6
// wildcard covers IPv4 too because Linux sockets are dual-stack unless IPV6_V6ONLY is set.
bool overlaps(const HostPort& a, const HostPort& b) {
  if (a.port != b.port || a.port == 0) return false;
  if (a.host == b.host) return true;
  auto covers = [](const HostPort& w, const HostPort& o) {
    return is_wildcard(w) && (is_v6(w) || !is_v6(o));
  };
  return covers(a, b) || covers(b, a);
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      return s.size() > 40 ? quote(s.substr(0, 37) + "...") : quote(s);
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "null";
  }
}

class Loader {
 public:
  Loader(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

  LoadResult run() {
    auto config = std::make_shared<Config>();
    config->source = file_;
    if (text_.size() > kMaxConfigBytes) {
      error({file_, 0, 0}, "config too large (more than 16 MiB)");
      return finish(nullptr);
    }
    YAML::Node doc;
    try {
      if (!one_document()) return finish(nullptr);
      doc = YAML::Load(std::string(text_));
    } catch (const YAML::DeepRecursion& e) {
      error(to_loc(e.mark), "yaml syntax error: nesting too deep");
      return finish(nullptr);
    } catch (const YAML::ParserException& e) {
      SourceLoc loc = e.mark.is_null() ? SourceLoc{file_, 0, 0} : to_loc(e.mark);
      error(loc, "yaml syntax error: " + e.msg);
      return finish(nullptr);
    }
    if (doc.IsNull()) {
      error({file_, 1, 1}, "empty config; expected a map with listeners and clusters");
      return finish(nullptr);
    }
    load_config(doc, config.get());
    return finish(errors_.empty() ? config : nullptr);
  }

 private:
  // What a document of the stream holds: where it starts and its first value that is not null.
  struct DocumentProbe final : YAML::EventHandler {
    YAML::Mark start = YAML::Mark::null_mark();
    YAML::Mark first = YAML::Mark::null_mark();
    void OnDocumentStart(const YAML::Mark& m) override {
      start = m;
      first = YAML::Mark::null_mark();
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { value(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  const std::string&) override {
      value(m);
    }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      value(m);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
      value(m);
    }
    void OnMapEnd() override {}
    void value(const YAML::Mark& m) {
      if (first.is_null()) first = m;
    }
  };

  // The stream holds one document (later ones may be empty), and every document parses. Walked
  // with yaml-cpp's event parser rather than YAML::LoadAll: on some malformed input (found by
  // tests/fuzz/config_fuzz.cc) yaml-cpp 0.7's parser stops consuming the text and keeps answering
  // empty documents, and LoadAll collects them until memory runs out. Here each document must
  // start past the one before. Parser errors propagate as from YAML::Load.
  bool one_document() {
    std::istringstream in{std::string(text_)};
    YAML::Parser parser(in);
    DocumentProbe probe;
    int last = -1;
    for (size_t n = 0; n < kMaxConfigBytes; ++n) {
      probe.start = YAML::Mark::null_mark();
      if (!parser.HandleNextDocument(probe)) return true;
      if (probe.start.is_null() || probe.start.pos <= last) {
        error(probe.start.is_null() ? SourceLoc{file_, 0, 0} : to_loc(probe.start),
              "yaml syntax error: the parser stopped making progress here");
        return false;
      }
      last = probe.start.pos;
      if (n > 0 && !probe.first.is_null()) {
        error(to_loc(probe.first), "only one yaml document is allowed");
        return false;
      }
    }
    return true;
  }
  // ---- positions and diagnostics ----

  SourceLoc to_loc(const YAML::Mark& m) const { return {file_, m.line + 1, m.column + 1}; }

  // yaml-cpp gives an empty value (`key:` and nothing) the position of the next token, which may
  // be lines later; such values are reported at `fallback` instead. An explicit `~`/`null` keeps
  // its own position.
  SourceLoc at(const YAML::Node& n, const SourceLoc& fallback) const {
    YAML::Mark m = n.Mark();
    if (m.is_null()) return fallback;
    if (n.IsNull() && !explicit_null_at(m.pos)) return fallback;
    return to_loc(m);
  }

  bool explicit_null_at(int pos) const {
    if (pos < 0 || static_cast<size_t>(pos) >= text_.size()) return false;
    std::string_view rest = text_.substr(pos);
    size_t len = 0;
    if (rest.starts_with("~")) {
      len = 1;
    } else if (rest.starts_with("null") || rest.starts_with("Null") || rest.starts_with("NULL")) {
      len = 4;
    } else {
      return false;
    }
    if (rest.size() == len) return true;
    char next = rest[len];
    return next == ' ' || next == '\t' || next == '\r' || next == '\n' || next == ',' ||
           next == ']' || next == '}' || next == '#';
  }

  // The position of the "- " that introduced an empty list item, found by scanning back from the
  // next token; `fallback` when it cannot be found.
  SourceLoc dash_before(const YAML::Node& n, const SourceLoc& fallback) const {
    int pos = n.Mark().pos;
    if (n.Mark().is_null() || pos <= 0 || static_cast<size_t>(pos) > text_.size()) {
      return fallback;
    }
    size_t i = static_cast<size_t>(pos);
    while (i > 0 && (text_[i - 1] == ' ' || text_[i - 1] == '\t' || text_[i - 1] == '\n' ||
                     text_[i - 1] == '\r')) {
      --i;
    }
    if (i == 0 || text_[i - 1] != '-') return fallback;
    size_t dash = i - 1;
    size_t line_start = text_.rfind('\n', dash);
    line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
    int line = 1 + static_cast<int>(std::count(text_.begin(), text_.begin() + dash, '\n'));
    return {file_, line, static_cast<int>(dash - line_start) + 1};
  }

  void error(SourceLoc loc, std::string message) {
    ++error_count_;
    if (errors_.size() < kMaxErrors) {
      errors_.push_back({std::move(loc), std::move(message)});
    } else {
      truncated_ = true;
    }
  }

  LoadResult finish(std::shared_ptr<const Config> config) {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.loc.line, a.loc.column) < std::tie(b.loc.line, b.loc.column);
    });
    if (truncated_) {
      errors_.push_back({{file_, 0, 0}, "too many errors; only the first 1000 are shown"});
    }
    LoadResult result;
    if (errors_.empty()) result.config = std::move(config);
    result.errors = std::move(errors_);
    return result;
  }

  static std::string where_line(const SourceLoc& loc) { return "line " + std::to_string(loc.line); }

  // ---- structural helpers ----

  // Checks that `node` is a map with string keys from `known`, reporting unknown and duplicate
  // keys. Returns nullopt (after reporting) when `node` is not a map.
  std::optional<Map> open_map(const YAML::Node& node, const SourceLoc& loc, std::string_view label,
                              Keys known) {
    if (!node.IsMap()) {
      error(loc, std::string(label) + ": expected a map, got " + describe(node));
      return std::nullopt;
    }
    Map map;
    map.loc = loc;
    std::vector<std::string> known_names(known.begin(), known.end());
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;  // a copy: `it->` yields a temporary proxy
      SourceLoc key_loc = at(key, loc);
      if (!key.IsScalar()) {
        error(key_loc, "invalid key " + describe(key) + "; keys are strings");
        continue;
      }
      const std::string& name = key.Scalar();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string message = "unknown key " + quote(name);
        if (name == "<<") {
          message += " (yaml merge keys are not supported)";
        } else if (std::string hint = syntax::closest(name, known_names); !hint.empty()) {
          message += " (did you mean " + quote(hint) + "?)";
        }
        error(key_loc, message);
        continue;
      }
      if (const Entry* first = map.get(name)) {
        error(key_loc,
              "duplicate key " + quote(name) + " (first at " + where_line(first->key_loc) + ")");
        continue;
      }
      const YAML::Node value = it->second;
      map.entries.push_back({name, value, key_loc, at(value, key_loc)});
    }
    return map;
  }

  std::optional<Map> open_map(const Entry& e, Keys known) {
    return open_map(e.value, e.loc, e.key, known);
  }

  bool require(const Map& map, std::string_view key, std::string_view context) {
    if (map.get(key)) return true;
    std::string message = "missing required key " + quote(key);
    if (!context.empty()) message += " in " + std::string(context);
    error(map.loc, message);
    return false;
  }

  std::optional<std::vector<Item>> open_list(const Entry& e) {
    if (!e.value.IsSequence()) {
      error(e.loc, e.key + ": expected a list, got " + describe(e.value));
      return std::nullopt;
    }
    std::vector<Item> items;
    for (auto it = e.value.begin(); it != e.value.end(); ++it) {
      const YAML::Node node = *it;
      items.push_back({node, node.IsNull() ? at(node, dash_before(node, e.loc)) : at(node, e.loc)});
    }
    return items;
  }

  bool scalar(const YAML::Node& n, const SourceLoc& loc, std::string_view label,
              std::string_view expected, std::string* out) {
    if (!n.IsScalar()) {
      error(loc,
            std::string(label) + ": expected " + std::string(expected) + ", got " + describe(n));
      return false;
    }
    if (syntax::first_bad_utf8(n.Scalar()) != std::string_view::npos) {
      // YAML text is Unicode (yaml-cpp checks escapes, not raw bytes); a value that is not would
      // come back from the admin /config as U+FFFD, no longer the value loaded.
      error(loc, std::string(label) + ": not valid UTF-8");
      return false;
    }
    *out = n.Scalar();
    return true;
  }

  bool get_string(const Entry& e, std::string* out) {
    return scalar(e.value, e.loc, e.key, "a string", out);
  }

  bool get_name(const Entry& e, std::string* out) {
    if (!get_string(e, out)) return false;
    if (!syntax::is_valid_name(*out)) {
      error(e.loc, e.key + ": invalid name " + quote(*out) +
                       " (use letters, digits, \"_\", \".\" and \"-\")");
      return false;
    }
    return true;
  }

  bool get_int(const Entry& e, int64_t min, int64_t max, int64_t* out) {
    std::string text;
    if (!scalar(e.value, e.loc, e.key, "an integer", &text)) return false;
    int64_t v = 0;
    if (!syntax::parse_int(text, &v)) {
      error(e.loc, e.key + ": expected an integer, got " + describe(e.value));
      return false;
    }
    if (v < min || v > max) {
      error(e.loc, e.key + ": " + text + " is out of range (" + std::to_string(min) + ".." +
                       std::to_string(max) + ")");
      return false;
    }
    *out = v;
    return true;
  }

  bool get_size(const Entry& e, uint64_t min, uint64_t max, uint64_t* out) {
    std::string text;
    if (!scalar(e.value, e.loc, e.key, "a size in bytes", &text)) return false;
    uint64_t v = 0;
    std::string reason;
    if (!syntax::parse_size(text, &v, &reason)) {
      error(e.loc, e.key + ": invalid size " + quote(text) + " (" + reason + ")");
      return false;
    }
    if (v < min || v > max) {
      error(e.loc, e.key + ": " + text + " is out of range (" + std::to_string(min) + ".." +
                       std::to_string(max) + ")");
      return false;
    }
    *out = v;
    return true;
  }

  enum class Zero { kAllowed, kRejected };

  bool get_duration(const Entry& e, Zero zero, Duration* out) {
    std::string text;
    if (!scalar(e.value, e.loc, e.key, "a duration", &text)) return false;
    Duration d{};
    std::string reason;
    if (!syntax::parse_duration(text, &d, &reason)) {
      error(e.loc, e.key + ": invalid duration " + quote(text) + " (" + reason + ")");
      return false;
    }
    if (zero == Zero::kRejected && d.count() == 0) {
      error(e.loc, e.key + ": must be greater than 0");
      return false;
    }
    *out = d;
    return true;
  }

  bool get_address(const YAML::Node& n, const SourceLoc& loc, std::string_view label,
                   bool require_ip, HostPort* out) {
    std::string text;
    if (!scalar(n, loc, label, "an address (host:port)", &text)) return false;
    std::string reason;
    if (!syntax::parse_host_port(text, require_ip, out, &reason)) {
      error(loc, std::string(label) + ": " + reason);
      return false;
    }
    return true;
  }

  bool get_bool(const Entry& e, bool* out) {
    std::string text;
    if (!scalar(e.value, e.loc, e.key, "true or false", &text)) return false;
    if (text != "true" && text != "false") {
      error(e.loc, e.key + ": expected true or false, got " + describe(e.value));
      return false;
    }
    *out = text == "true";
    return true;
  }

  bool get_u32(const Entry& e, int64_t min, int64_t max, uint32_t* out) {
    int64_t v = 0;
    if (!get_int(e, min, max, &v)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }

  bool get_port(const Entry& e, uint16_t* out) {
    int64_t v = 0;
    if (!get_int(e, 1, 65535, &v)) return false;
    *out = static_cast<uint16_t>(v);
    return true;
  }

  // One of `words`: its index, or -1 after reporting "KEY: unknown WHAT "x" (expected ...)".
  int get_choice(const Entry& e, std::string_view what, Keys words) {
    std::string text;
    if (!get_string(e, &text)) return -1;
    for (size_t i = 0; i < words.size(); ++i) {
      if (words[i] == text) return static_cast<int>(i);
    }
    error(e.loc, e.key + ": unknown " + std::string(what) + " " + quote(text) + " (expected " +
                     word_list(words) + ")");
    return -1;
  }

  // An HTTP status (100..599) or an inclusive range "200-299" of them.
  bool get_status_range(const YAML::Node& n, const SourceLoc& loc, std::string_view label,
                        StatusRange* out) {
    std::string text;
    if (!scalar(n, loc, label, "a status or a range of statuses", &text)) return false;
    size_t dash = text.find('-', 1);
    int64_t first = 0, last = 0;
    bool ok = dash == std::string::npos
                  ? syntax::parse_int(text, &first) && (last = first, true)
                  : syntax::parse_int(std::string_view(text).substr(0, dash), &first) &&
                        syntax::parse_int(std::string_view(text).substr(dash + 1), &last);
    if (!ok) {
      error(loc, std::string(label) + ": expected a status (200) or a range of statuses " +
                     "(200-299), got " + describe(n));
      return false;
    }
    if (first < 100 || first > 599 || last < 100 || last > 599) {
      error(loc, std::string(label) + ": " + quote(text) + " is not an HTTP status (100..599)");
      return false;
    }
    if (first > last) {
      error(loc, std::string(label) + ": range " + quote(text) + " is empty (first > last)");
      return false;
    }
    *out = {static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
    return true;
  }

  // A non-empty list of statuses and ranges.
  bool get_status_ranges(const Entry& e, std::vector<StatusRange>* out) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return false;
    if (items->empty()) {
      error(e.loc, e.key + ": must list at least one status (omit it otherwise)");
      return false;
    }
    std::vector<StatusRange> ranges;
    bool ok = true;
    for (const Item& item : *items) {
      StatusRange r;
      if (get_status_range(item.node, item.loc, e.key, &r)) {
        ranges.push_back(r);
      } else {
        ok = false;
      }
    }
    if (ok) *out = std::move(ranges);
    return ok;
  }

  // ---- sections ----

  void load_config(const YAML::Node& root, Config* config) {
    std::optional<Map> top = open_map(root, at(root, {file_, 1, 1}), "config", kTopKeys);
    if (!top) return;
    if (const Entry* e = top->get("workers")) load_workers(*e, config);
    if (const Entry* e = top->get("admin")) load_admin(*e, config);
    if (const Entry* e = top->get("access_log")) load_access_log(*e, config);
    if (const Entry* e = top->get("dns")) load_dns(*e, config);
    if (const Entry* e = top->get("drain")) load_drain(*e, config);
    if (const Entry* e = top->get("limits")) load_limits(*e, &config->limits);
    if (const Entry* e = top->get("tls")) load_tls(*e, config);
    if (const Entry* e = top->get("aws")) load_aws(*e, config);

    // Clusters load first so that routes can be checked against their names.
    bool has_listeners = require(*top, "listeners", "");
    bool has_clusters = require(*top, "clusters", "");
    bool clusters_known = has_clusters && load_clusters(*top->get("clusters"), config);
    if (has_listeners) load_listeners(*top->get("listeners"), clusters_known, config);
    check_admin_clash(*config);
  }

  void load_workers(const Entry& e, Config* config) {
    if (e.value.IsScalar() && e.value.Scalar() == "auto") {
      config->workers = 0;
      return;
    }
    std::string text;
    if (!scalar(e.value, e.loc, e.key, "an integer or \"auto\"", &text)) return;
    int64_t v = 0;
    if (!syntax::parse_int(text, &v)) {
      error(e.loc, "workers: expected an integer or \"auto\", got " + describe(e.value));
      return;
    }
    if (v < 0 || v > kMaxWorkers) {
      error(e.loc, "workers: " + text + " is out of range (0..1024)");
      return;
    }
    config->workers = static_cast<uint32_t>(v);
  }

  void load_admin(const Entry& e, Config* config) {
    std::optional<Map> m = open_map(e, kAdminKeys);
    if (!m) return;
    if (const Entry* a = m->get("address")) {
      HostPort hp;
      if (get_address(a->value, a->loc, a->key, true, &hp)) {
        config->admin.address = hp;
        admin_loc_ = a->loc;
      }
    }
  }

  void load_access_log(const Entry& e, Config* config) {
    std::string text;
    if (!scalar(e.value, e.loc, e.key, "off, stdout or a file path", &text)) return;
    if (text == "off") {
      config->access_log = {AccessLogMode::kOff, ""};
    } else if (text == "stdout") {
      config->access_log = {AccessLogMode::kStdout, ""};
    } else if (text.empty()) {
      error(e.loc, "access_log: expected off, stdout or a file path, got an empty string");
    } else if (std::any_of(text.begin(), text.end(),
                           [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      error(e.loc, "access_log: file path contains control characters");
    } else {
      config->access_log = {AccessLogMode::kFile, text};
    }
  }

  // min_ttl/max_ttl keys of `m` override *refresh; reports min_ttl > max_ttl.
  void load_dns_refresh(const Map& m, DnsRefresh* refresh) {
    bool ok = true;
    const Entry* min = m.get("min_ttl");
    const Entry* max = m.get("max_ttl");
    if (min) ok &= get_duration(*min, Zero::kRejected, &refresh->min_ttl);
    if (max) ok &= get_duration(*max, Zero::kRejected, &refresh->max_ttl);
    if (ok && refresh->min_ttl > refresh->max_ttl) {
      const Entry* culprit = min ? min : max;
      SourceLoc loc = culprit ? culprit->loc : m.loc;
      error(loc, "min_ttl " + syntax::format_duration(refresh->min_ttl) +
                     " is greater than max_ttl " + syntax::format_duration(refresh->max_ttl));
    }
  }

  void load_dns(const Entry& e, Config* config) {
    std::optional<Map> m = open_map(e, kDnsKeys);
    if (!m) return;
    if (const Entry* r = m->get("resolvers")) {
      if (auto items = open_list(*r)) {
        for (const Item& item : *items) {
          HostPort hp;
          if (!get_address(item.node, item.loc, "resolvers", true, &hp)) continue;
          if (hp.port == 0) {
            error(item.loc, "resolvers: port 0 is not allowed for a resolver");
            continue;
          }
          config->dns.resolvers.push_back(hp);
        }
      }
    }
    if (const Entry* t = m->get("timeout")) get_duration(*t, Zero::kRejected, &config->dns.timeout);
    load_dns_refresh(*m, &config->dns.refresh);
  }

  void load_drain(const Entry& e, Config* config) {
    std::optional<Map> m = open_map(e, kDrainKeys);
    if (!m) return;
    if (const Entry* d = m->get("delay")) get_duration(*d, Zero::kAllowed, &config->drain.delay);
    if (const Entry* t = m->get("timeout")) {
      get_duration(*t, Zero::kRejected, &config->drain.timeout);
    }
  }

  // Keys present in the map override *limits (which holds the defaults to inherit).
  void load_limits(const Entry& e, Limits* limits) {
    std::optional<Map> m = open_map(e, kLimitsKeys);
    if (!m) return;
    uint64_t size = 0;
    int64_t n = 0;
    if (const Entry* x = m->get("max_request_headers_bytes");
        x && get_size(*x, 256, 64 * 1024, &size)) {
      limits->max_request_headers_bytes = static_cast<uint32_t>(size);
    }
    if (const Entry* x = m->get("max_headers"); x && get_int(*x, 1, 256, &n)) {
      limits->max_headers = static_cast<uint32_t>(n);
    }
    if (const Entry* x = m->get("max_request_body_bytes");
        x && get_size(*x, 0, static_cast<uint64_t>(INT64_MAX), &size)) {
      limits->max_request_body_bytes = size;
    }
    if (const Entry* x = m->get("header_timeout")) {
      get_duration(*x, Zero::kRejected, &limits->header_timeout);
    }
    if (const Entry* x = m->get("idle_timeout")) {
      get_duration(*x, Zero::kRejected, &limits->idle_timeout);
    }
    if (const Entry* x = m->get("max_connections"); x && get_int(*x, 1, kMaxConnections, &n)) {
      limits->max_connections = static_cast<uint32_t>(n);
    }
  }

  // ---- clusters ----

  // Returns whether cluster names are known well enough to check route references against.
  bool load_clusters(const Entry& e, Config* config) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return false;
    if (items->empty()) {
      error(e.loc, "clusters: must list at least one cluster");
      return false;
    }
    if (items->size() > kMaxClusters) {
      error(e.loc, "too many clusters (" + std::to_string(items->size()) + ", at most " +
                       std::to_string(kMaxClusters) + ")");
    }
    for (const Item& item : *items) {
      std::optional<Map> m = open_map(item.node, item.loc, "cluster", kClusterKeys);
      if (!m) continue;
      Cluster cluster;
      cluster.loc = m->loc;
      cluster.dns = config->dns.refresh;
      if (require(*m, "name", "cluster")) {
        const Entry& n = *m->get("name");
        if (get_name(n, &cluster.name)) {
          auto [it, inserted] = cluster_names_.try_emplace(cluster.name, n.loc);
          if (!inserted) {
            error(n.loc, "duplicate cluster name " + quote(cluster.name) + " (first at " +
                             where_line(it->second) + ")");
          }
        }
      }
      bool type_known = true;
      if (const Entry* t = m->get("type")) {
        constexpr std::string_view kWords[] = {"static", "dns", "privatelink", "lattice",
                                               "apigateway"};
        constexpr ClusterType kTypes[] = {ClusterType::kStatic, ClusterType::kDns,
                                          ClusterType::kPrivateLink, ClusterType::kLattice,
                                          ClusterType::kApiGateway};
        int i = get_choice(*t, "cluster type", kWords);
        type_known = i >= 0;
        if (type_known) cluster.type = kTypes[i];
      }
      const bool aws_type =
          type_known && cluster.type != ClusterType::kStatic && cluster.type != ClusterType::kDns;
      if (aws_type) {
        if (const Entry* x = m->get("endpoints")) {
          error(x->key_loc, "endpoints: not allowed in clusters of type " +
                                std::string(cluster_type_name(cluster.type)) +
                                " (the endpoint comes from its " +
                                std::string(cluster_type_name(cluster.type)) + " block)");
        }
      } else if (!type_known) {
        if (const Entry* x = m->get("endpoints")) load_endpoints(*x, false, &cluster);
      } else if (require(*m, "endpoints", "cluster")) {
        load_endpoints(*m->get("endpoints"), type_known, &cluster);
      }
      if (const Entry* h = m->get("host_rewrite")) {
        std::string text;
        if (get_string(*h, &text)) {
          if (is_host_value(text)) {
            cluster.host_rewrite = text;
          } else {
            error(h->loc, "host_rewrite: invalid host " + quote(text));
          }
        }
      }
      if (const Entry* x = m->get("connect_timeout")) {
        get_duration(*x, Zero::kRejected, &cluster.connect_timeout);
      }
      if (const Entry* x = m->get("idle_timeout")) {
        get_duration(*x, Zero::kRejected, &cluster.idle_timeout);
      }
      int64_t n = 0;
      if (const Entry* x = m->get("max_connections"); x && get_int(*x, 1, kMaxConnections, &n)) {
        cluster.max_connections = static_cast<uint32_t>(n);
      }
      if (const Entry* d = m->get("dns")) {
        if (type_known && cluster.type == ClusterType::kStatic) {
          error(d->key_loc, "dns: only allowed in clusters of type dns");
        } else if (std::optional<Map> dm = open_map(*d, kClusterDnsKeys)) {
          load_dns_refresh(*dm, &cluster.dns);
        }
      }
      if (const Entry* t = m->get("tls")) load_cluster_tls(*t, type_known, &cluster);
      load_aws_target(*m, type_known, *config, &cluster);
      load_resilience(*m, type_known, &cluster);
      config->clusters.push_back(std::move(cluster));
    }
    return true;
  }

  void load_endpoints(const Entry& e, bool type_known, Cluster* cluster) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) {
      error(e.loc, "endpoints: must list at least one endpoint");
      return;
    }
    for (const Item& item : *items) {
      YAML::Node node = item.node;
      SourceLoc loc = item.loc;
      std::string label = "endpoints";
      Endpoint endpoint;
      if (node.IsMap()) {
        std::optional<Map> m = open_map(node, loc, "endpoint", kEndpointKeys);
        if (!m) continue;
        if (const Entry* w = m->get("weight")) get_u32(*w, 1, kMaxEndpointWeight, &endpoint.weight);
        if (const Entry* z = m->get("zone")) {
          std::string text;
          if (get_string(*z, &text)) {
            if (auto zone = aws::parse_availability_zone(text)) {
              endpoint.zone = zone->name;
            } else {
              error(z->loc, "zone: " + zone.error());
            }
          }
        }
        if (!require(*m, "address", "endpoint")) continue;
        const Entry& a = *m->get("address");
        node = a.value;
        loc = a.loc;
        label = "address";
      } else if (!node.IsScalar()) {
        error(loc,
              "endpoints: expected \"host:port\" or a map with address, got " + describe(node));
        continue;
      }
      if (!get_address(node, loc, label, false, &endpoint.address)) continue;
      const HostPort& hp = endpoint.address;
      bool ip = syntax::is_ipv4_literal(hp.host) || syntax::is_ipv6_literal(hp.host);
      if (type_known && cluster->type == ClusterType::kStatic && !ip) {
        error(loc, label + ": " + quote(hp.host) +
                       " is not an IP address (static clusters need IP literals; use type: dns "
                       "for names)");
        continue;
      }
      if (hp.port == 0) {
        error(loc, label + ": port 0 is not allowed for an endpoint");
        continue;
      }
      if (ip && is_wildcard(hp)) {
        error(loc, label + ": " + hp.host + " is not a valid endpoint address");
        continue;
      }
      cluster->endpoints.push_back(std::move(endpoint));
    }
  }

  // ---- AWS-native upstreams (issue 6) ----

  // The privatelink / lattice / apigateway block: required in a cluster of that type, refused in
  // the others.
  void load_aws_target(const Map& m, bool type_known, const Config& config, Cluster* cluster) {
    struct Block {
      std::string_view key;
      ClusterType type;
    };
    constexpr Block kBlocks[] = {{"privatelink", ClusterType::kPrivateLink},
                                 {"lattice", ClusterType::kLattice},
                                 {"apigateway", ClusterType::kApiGateway}};
    for (const Block& b : kBlocks) {
      const Entry* e = m.get(b.key);
      if (type_known && cluster->type != b.type) {
        if (e != nullptr) {
          error(e->key_loc,
                std::string(b.key) + ": only allowed in clusters of type " + std::string(b.key));
        }
        continue;
      }
      if (!type_known) {
        if (e == nullptr) continue;  // the type error says enough; still check the block
      } else if (!require(m, b.key, "cluster")) {
        continue;
      }
      switch (b.type) {
        case ClusterType::kPrivateLink:
          load_privatelink(*e, config, cluster);
          break;
        case ClusterType::kLattice:
          load_lattice(*e, cluster);
          break;
        default:
          load_apigateway(*e, m, config, cluster);
          break;
      }
    }
  }

  // Lower-cased, dot-stripped DNS name (not an IP literal), or an error.
  bool get_dns_name(const Entry& e, std::string* out) {
    std::string text;
    if (!get_string(e, &text)) return false;
    std::string_view bare = text;
    if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
      bare = bare.substr(1, bare.size() - 2);
    }
    if (syntax::is_ipv4_literal(bare) || syntax::is_ipv6_literal(bare)) {
      error(e.loc, e.key + ": must be a DNS name, not an IP address");
      return false;
    }
    if (!syntax::is_dns_name(text)) {
      error(e.loc, e.key + ": invalid DNS name " + quote(text));
      return false;
    }
    *out = dns_key(text);
    return true;
  }

  // `auth: none | iam`; kNone on errors.
  AwsAuth get_auth(const Map& m) {
    const Entry* a = m.get("auth");
    if (a == nullptr) return AwsAuth::kNone;
    constexpr std::string_view kWords[] = {"none", "iam"};
    return get_choice(*a, "auth", kWords) == 1 ? AwsAuth::kIam : AwsAuth::kNone;
  }

  void load_privatelink(const Entry& e, const Config& config, Cluster* cluster) {
    std::optional<Map> m = open_map(e, kPrivateLinkKeys);
    if (!m) return;
    PrivateLink pl;
    pl.port = cluster->tls ? 443 : 80;
    bool endpoint_ok = false;
    if (require(*m, "endpoint", "privatelink")) {
      const Entry& ep = *m->get("endpoint");
      std::string text;
      if (!get_string(ep, &text)) {
        // reported
      } else if (looks_like_vpce_name(dns_key(text))) {
        if (auto parsed = aws::parse_privatelink_endpoint_name(text); !parsed) {
          error(ep.loc, "endpoint: " + parsed.error());
        } else if (!config.aws.region.empty() && parsed->region != config.aws.region) {
          error(ep.loc, "endpoint: the endpoint is in region " + parsed->region +
                            " but aws.region is " + config.aws.region +
                            " (an interface endpoint lives in the task's own VPC)");
        } else {
          pl.endpoint = dns_key(text);
          pl.vpce_name = true;
          pl.region = parsed->region;
          pl.zone = parsed->availability_zone;
          endpoint_ok = true;
        }
      } else {
        endpoint_ok = get_dns_name(ep, &pl.endpoint);
      }
    }
    if (const Entry* p = m->get("port")) get_port(*p, &pl.port);
    if (const Entry* n = m->get("service_name")) get_dns_name(*n, &pl.service_name);
    pl.prefer_zonal = pl.vpce_name && pl.zone.empty();
    if (const Entry* z = m->get("prefer_zonal")) {
      bool want = false;
      if (get_bool(*z, &want) && want && endpoint_ok) {
        if (!pl.vpce_name) {
          error(z->loc,
                "prefer_zonal: needs a vpce-... endpoint name (a private DNS name has no zonal "
                "form)");
        } else if (!pl.zone.empty()) {
          error(z->loc, "prefer_zonal: the endpoint name is already zonal (" + pl.zone + ")");
        }
      }
      if (!want) pl.prefer_zonal = false;
    }
    if (endpoint_ok) cluster->endpoints.push_back({HostPort{pl.endpoint, pl.port}, 1, pl.zone});
    if (!pl.service_name.empty()) {
      if (!cluster->host_rewrite) cluster->host_rewrite = pl.service_name;
      if (cluster->tls && cluster->tls->sni.empty()) cluster->tls->sni = pl.service_name;
    } else if (cluster->tls && pl.vpce_name && cluster->tls->sni.empty() &&
               cluster->tls->verify_san.empty()) {
      error(cluster->tls->loc,
            "tls: the provider's certificate does not name the vpce-... endpoint; set "
            "privatelink.service_name (or tls.sni or tls.verify_san)");
    }
    cluster->privatelink = std::move(pl);
  }

  void load_lattice(const Entry& e, Cluster* cluster) {
    std::optional<Map> m = open_map(e, kLatticeKeys);
    if (!m) return;
    Lattice lat;
    const Entry* custom = m->get("custom_domain");
    bool custom_ok = custom == nullptr || get_bool(*custom, &lat.custom_domain);
    std::string name_region;
    bool service_ok = false;
    if (require(*m, "service", "lattice")) {
      const Entry& sv = *m->get("service");
      std::string text;
      if (!get_string(sv, &text)) {
        // reported
      } else if (looks_like_lattice_name(dns_key(text))) {
        if (auto parsed = aws::parse_lattice_service_name(text); !parsed) {
          error(sv.loc, "service: " + parsed.error());
        } else if (lat.custom_domain) {
          error(custom->loc, "custom_domain: " + quote(dns_key(text)) +
                                 " is the service's generated name, not a custom domain");
        } else {
          lat.service = dns_key(text);
          name_region = parsed->region;
          service_ok = true;
        }
      } else if (get_dns_name(sv, &lat.service)) {
        if (!lat.custom_domain && custom_ok) {
          error(sv.loc, "service: " + quote(text) +
                            " is not a VPC Lattice service name (<name>-<id>.<label>."
                            "vpc-lattice-svcs.<region>.on.aws); set custom_domain: true if it "
                            "is the service's custom domain name");
        } else {
          service_ok = true;
        }
      }
    }
    if (const Entry* p = m->get("port")) get_port(*p, &lat.port);
    lat.auth = get_auth(*m);
    const bool iam = lat.auth == AwsAuth::kIam;
    if (const Entry* a = m->get("sigv4a"); a && get_bool(*a, &lat.sigv4a) && lat.sigv4a && !iam) {
      error(a->loc, "sigv4a: only used with auth: iam");
    }
    lat.region = name_region;
    if (const Entry* r = m->get("region")) {
      std::string text;
      if (get_string(*r, &text)) {
        if (auto region = aws::parse_region(text); !region) {
          error(r->loc, "region: " + region.error());
        } else if (!iam) {
          error(r->key_loc, "region: only used for signing (auth: iam)");
        } else if (!name_region.empty() && region->name != name_region) {
          error(r->loc, "region: " + region->name + " differs from the service name's region " +
                            name_region);
        } else {
          lat.region = region->name;
        }
      }
    }
    if (service_ok) {
      cluster->endpoints.push_back({HostPort{lat.service, lat.port}, 1, ""});
      // Lattice routes by Host: it must name the service.
      if (!cluster->host_rewrite) cluster->host_rewrite = lat.service;
    }
    if (iam) cluster->signing = AwsSigning{"vpc-lattice-svcs", lat.region, lat.sigv4a};
    cluster->lattice = std::move(lat);
  }

  void load_apigateway(const Entry& e, const Map& cluster_map, const Config& config,
                       Cluster* cluster) {
    std::optional<Map> m = open_map(e, kApiGatewayKeys);
    if (!m) return;
    ApiGateway api;
    bool ok = true;
    // From `endpoint`, when given: the other keys may repeat its parts but not contradict them.
    std::optional<aws::ExecuteApiHost> from_endpoint;
    const Entry* ep = m->get("endpoint");
    if (ep != nullptr) {
      std::string text;
      ok = get_string(*ep, &text);
      if (ok) {
        auto parsed = aws::parse_execute_api_host(text);
        if (!parsed) {
          error(ep->loc, "endpoint: " + parsed.error());
          ok = false;
        } else {
          from_endpoint = std::move(*parsed);
          api.host = dns_key(text);
          api.api_id = from_endpoint->api_id;
          api.region = from_endpoint->region;
          api.vpce_id = from_endpoint->vpce_id;
        }
      }
    }
    auto differs = [&](const Entry& x, std::string_view given, std::string_view in_endpoint,
                       std::string_view what) {
      if (!from_endpoint || given == in_endpoint) return false;
      error(x.loc, x.key + ": " + quote(given) + " differs from the endpoint's " +
                       std::string(what) + " " +
                       (in_endpoint.empty() ? std::string("(none)") : quote(in_endpoint)));
      ok = false;
      return true;
    };
    if (const Entry* a = m->get("api_id")) {
      std::string text;
      if (!get_string(*a, &text)) {
        ok = false;
      } else if (!is_api_id(text)) {
        error(a->loc, "api_id: " + quote(text) +
                          " is not an API id (10 lower-case letters or "
                          "digits)");
        ok = false;
      } else if (!differs(*a, text, api.api_id, "API id")) {
        api.api_id = text;
      }
    } else if (ep == nullptr) {
      require(*m, "api_id", "apigateway");
      ok = false;
    }
    if (const Entry* r = m->get("region")) {
      std::string text;
      if (!get_string(*r, &text)) {
        ok = false;
      } else if (auto region = aws::parse_region(text); !region) {
        error(r->loc, "region: " + region.error());
        ok = false;
      } else if (!differs(*r, region->name, api.region, "region")) {
        api.region = region->name;
      }
    } else if (ep == nullptr) {
      if (config.aws.region.empty()) {
        error(m->loc, "missing required key \"region\" in apigateway (or set aws.region)");
        ok = false;
      } else {
        api.region = config.aws.region;
      }
    }
    if (const Entry* v = m->get("vpc_endpoint")) {
      std::string text;
      if (!get_string(*v, &text)) {
        ok = false;
      } else if (!is_vpce_id(text)) {
        error(v->loc, "vpc_endpoint: " + quote(text) +
                          " is not a VPC endpoint id (vpce- and 8 or 17 hex digits)");
        ok = false;
      } else if (!differs(*v, text, api.vpce_id, "VPC endpoint")) {
        api.vpce_id = text;
      }
    }
    if (ok && ep == nullptr) {
      // Compose the name and check it as if it had been given.
      auto region = aws::parse_region(api.region);
      std::string host = api.api_id + (api.vpce_id.empty() ? "" : "-" + api.vpce_id) +
                         ".execute-api." + api.region + ".amazonaws.com" +
                         (region && region->partition == "aws-cn" ? ".cn" : "");
      if (auto parsed = aws::parse_execute_api_host(host); !parsed) {
        error(m->loc, "apigateway: " + parsed.error());
        ok = false;
      } else {
        api.host = std::move(host);
      }
    }
    if (ok && !api.vpce_id.empty() && !config.aws.region.empty() &&
        api.region != config.aws.region) {
      error((ep                 ? ep
             : m->get("region") ? m->get("region")
                                : m->get("vpc_endpoint"))
                ->loc,
            "apigateway: a private API's VPC endpoint is in the task's region " +
                config.aws.region + ", not " + api.region);
      ok = false;
    }
    if (const Entry* st = m->get("stage")) {
      std::string text;
      if (get_string(*st, &text)) {
        if (is_stage_name(text)) {
          api.stage = text;
        } else {
          error(st->loc, "stage: invalid stage name " + quote(text) +
                             " (1..128 letters, digits, \"-\" and \"_\")");
        }
      }
    }
    if (const Entry* p = m->get("port")) get_port(*p, &api.port);
    api.auth = get_auth(*m);
    if (!cluster->tls) {
      error(cluster_map.loc,
            "missing required key \"tls\" in cluster (API Gateway only accepts HTTPS; e.g. tls: "
            "{ca: system})");
    }
    if (ok) {
      cluster->endpoints.push_back({HostPort{api.host, api.port}, 1, ""});
      if (!cluster->host_rewrite) cluster->host_rewrite = api.host;
    }
    if (api.auth == AwsAuth::kIam) cluster->signing = AwsSigning{"execute-api", api.region, false};
    cluster->apigateway = std::move(api);
  }

  // ---- resilience (issue 5) ----

  void load_resilience(const Map& m, bool type_known, Cluster* cluster) {
    if (const Entry* p = m.get("protocol")) {
      constexpr std::string_view kWords[] = {"http1", "http2", "auto-by-alpn"};
      constexpr UpstreamProtocol kProtocols[] = {UpstreamProtocol::kHttp1, UpstreamProtocol::kHttp2,
                                                 UpstreamProtocol::kAutoByAlpn};
      if (int i = get_choice(*p, "protocol", kWords); i >= 0) cluster->protocol = kProtocols[i];
      if (cluster->protocol == UpstreamProtocol::kAutoByAlpn && !cluster->tls &&
          m.get("tls") == nullptr) {
        error(p->loc, "protocol auto-by-alpn needs tls: ALPN is negotiated in the TLS handshake");
      }
    }
    if (cluster->tls) check_protocol_alpn(cluster);
    if (const Entry* p = m.get("lb_policy")) {
      constexpr std::string_view kWords[] = {"round_robin", "least_request", "random"};
      constexpr LbPolicy kPolicies[] = {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest,
                                        LbPolicy::kRandom};
      if (int i = get_choice(*p, "policy", kWords); i >= 0) cluster->lb_policy = kPolicies[i];
    }
    if (const Entry* p = m.get("panic_threshold_percent")) {
      get_u32(*p, 0, 100, &cluster->panic_threshold_percent);
    }
    if (const Entry* z = m.get("zone_aware")) {
      if (std::optional<Map> zm = open_map(*z, kZoneAwareKeys)) {
        if (const Entry* x = zm->get("enabled")) get_bool(*x, &cluster->zone_aware.enabled);
        if (const Entry* x = zm->get("min_healthy_percent")) {
          get_u32(*x, 0, 100, &cluster->zone_aware.min_healthy_percent);
        }
      }
    }
    const Entry* budget = m.get("retry_budget");
    if (budget != nullptr) {
      if (std::optional<Map> bm = open_map(*budget, kRetryBudgetKeys)) {
        RetryBudgetConfig b;
        if (const Entry* x = bm->get("budget_percent")) {
          std::string text;
          double v = 0;
          if (scalar(x->value, x->loc, x->key, "a percentage", &text)) {
            if (!parse_decimal(text, &v) || v > 100) {
              error(x->loc,
                    "budget_percent: expected a number from 0 to 100 (e.g. 20 or 12.5), "
                    "got " +
                        describe(x->value));
            } else {
              b.budget_percent = v;
            }
          }
        }
        if (const Entry* x = bm->get("min_retry_concurrency")) {
          get_u32(*x, 0, kMaxConnections, &b.min_retry_concurrency);
        }
        cluster->retry_budget = b;
      }
    }
    if (const Entry* c = m.get("circuit_breakers")) {
      if (std::optional<Map> cm = open_map(*c, kBreakerKeys)) {
        CircuitBreakers& cb = cluster->circuit_breakers;
        if (const Entry* x = cm->get("max_connections")) {
          get_u32(*x, 1, kMaxConnections, &cb.max_connections);
        }
        if (const Entry* x = cm->get("max_pending_requests")) {
          get_u32(*x, 0, kMaxConnections, &cb.max_pending_requests);
        }
        if (const Entry* x = cm->get("max_requests")) {
          get_u32(*x, 1, kMaxConnections, &cb.max_requests);
        }
        if (const Entry* x = cm->get("max_retries")) {
          if (budget != nullptr) {
            error(x->key_loc,
                  "max_retries: has no effect when the cluster has a retry_budget (the budget "
                  "replaces it)");
          } else {
            get_u32(*x, 0, kMaxConnections, &cb.max_retries);
          }
        }
      }
    }
    if (const Entry* o = m.get("outlier_detection")) load_outlier_detection(*o, cluster);
    if (const Entry* h = m.get("health_check")) {
      if (type_known &&
          (cluster->type == ClusterType::kLattice || cluster->type == ClusterType::kApiGateway)) {
        error(h->key_loc, "health_check: not supported on clusters of type " +
                              std::string(cluster_type_name(cluster->type)) +
                              " (AWS runs the endpoint and checks what is behind it)");
      } else {
        load_health_check(*h, cluster);
      }
    }
  }

  // What the TLS client offers must fit the protocol spoken after the handshake. Unwritten, it
  // follows the protocol: http1 [http/1.1], http2 [h2], auto-by-alpn [h2, http/1.1].
  void check_protocol_alpn(Cluster* cluster) {
    ClusterTls& tls = *cluster->tls;
    auto offers = [&](std::string_view p) {
      return std::find(tls.alpn.begin(), tls.alpn.end(), p) != tls.alpn.end();
    };
    const bool written = tls.alpn_loc.line != 0;
    switch (cluster->protocol) {
      case UpstreamProtocol::kHttp1:
        if (written && offers("h2")) {
          error(tls.alpn_loc,
                "alpn: a protocol http1 cluster cannot offer \"h2\" (it speaks HTTP/1.1 on every "
                "connection); use protocol http2 or auto-by-alpn");
        }
        break;
      case UpstreamProtocol::kHttp2:
        if (!written) {
          tls.alpn = {"h2"};
        } else if (!offers("h2")) {
          error(tls.alpn_loc, "alpn: a protocol http2 cluster must offer \"h2\"");
        }
        break;
      case UpstreamProtocol::kAutoByAlpn:
        if (!written) {
          tls.alpn = {"h2", "http/1.1"};
        } else if (!offers("h2") || !offers("http/1.1")) {
          error(tls.alpn_loc,
                "alpn: protocol auto-by-alpn offers both \"h2\" and \"http/1.1\"; list both (in "
                "order of preference) or leave alpn out");
        }
        break;
    }
  }

  void load_outlier_detection(const Entry& e, Cluster* cluster) {
    std::optional<Map> m = open_map(e, kOutlierKeys);
    if (!m) return;
    OutlierDetection od;
    bool counts_ok = true;
    auto count = [&](std::string_view key, uint32_t* out) {
      if (const Entry* x = m->get(key)) counts_ok &= get_u32(*x, 0, kMaxThreshold, out);
    };
    count("consecutive_5xx", &od.consecutive_5xx);
    count("consecutive_gateway_failure", &od.consecutive_gateway_failure);
    bool split_ok = true;
    if (const Entry* x = m->get("split_external_local_origin_errors")) {
      split_ok = get_bool(*x, &od.split_external_local_origin_errors);
    }
    if (const Entry* x = m->get("consecutive_local_origin_failure")) {
      if (split_ok && !od.split_external_local_origin_errors) {
        error(x->key_loc,
              "consecutive_local_origin_failure: has no effect unless "
              "split_external_local_origin_errors is true");
      } else {
        count("consecutive_local_origin_failure", &od.consecutive_local_origin_failure);
      }
    }
    if (counts_ok && split_ok && od.consecutive_5xx == 0 && od.consecutive_gateway_failure == 0 &&
        (!od.split_external_local_origin_errors || od.consecutive_local_origin_failure == 0)) {
      error(m->loc,
            "outlier_detection: every detector is off (its consecutive_* thresholds are 0); "
            "remove outlier_detection instead");
    }
    if (const Entry* x = m->get("interval")) get_duration(*x, Zero::kRejected, &od.interval);
    if (const Entry* x = m->get("base_ejection_time")) {
      get_duration(*x, Zero::kRejected, &od.base_ejection_time);
    }
    if (const Entry* x = m->get("max_ejection_time")) {
      get_duration(*x, Zero::kRejected, &od.max_ejection_time);
    }
    if (const Entry* x = m->get("max_ejection_percent")) {
      get_u32(*x, 0, 100, &od.max_ejection_percent);
    }
    if (const Entry* x = m->get("always_eject_one_host")) get_bool(*x, &od.always_eject_one_host);
    if (const Entry* x = m->get("successful_active_health_check_uneject_host")) {
      get_bool(*x, &od.successful_active_health_check_uneject_host);
    }
    cluster->outlier_detection = od;
  }

  void load_health_check(const Entry& e, Cluster* cluster) {
    std::optional<Map> m = open_map(e, kHealthCheckKeys);
    if (!m) return;
    HealthCheck hc;
    hc.loc = m->loc;
    if (const Entry* p = m->get("path")) {
      std::string text;
      if (get_string(*p, &text)) {
        if (!text.starts_with("/")) {
          error(p->loc, "path: must start with \"/\", got " + quote(text));
        } else if (text.size() > 1024) {
          error(p->loc, "path: longer than 1024 characters");
        } else if (std::any_of(text.begin(), text.end(), [](unsigned char c) {
                     return c <= 0x20 || c >= 0x7f || c == '#';
                   })) {
          error(p->loc, "path: must not contain spaces, control or non-ASCII characters, or \"#\"");
        } else {
          hc.path = text;
        }
      }
    }
    if (const Entry* h = m->get("host")) {
      std::string text;
      if (get_string(*h, &text)) {
        if (is_host_value(text)) {
          hc.host = text;
        } else {
          error(h->loc, "host: invalid host " + quote(text));
        }
      }
    }
    if (const Entry* x = m->get("interval")) get_duration(*x, Zero::kRejected, &hc.interval);
    if (const Entry* x = m->get("interval_jitter")) {
      get_duration(*x, Zero::kAllowed, &hc.interval_jitter);
    }
    if (const Entry* x = m->get("interval_jitter_percent")) {
      get_u32(*x, 0, 100, &hc.interval_jitter_percent);
    }
    if (const Entry* x = m->get("initial_jitter")) {
      get_duration(*x, Zero::kAllowed, &hc.initial_jitter);
    }
    if (const Entry* x = m->get("timeout")) get_duration(*x, Zero::kRejected, &hc.timeout);
    if (const Entry* x = m->get("healthy_threshold")) {
      get_u32(*x, 1, kMaxThreshold, &hc.healthy_threshold);
    }
    if (const Entry* x = m->get("unhealthy_threshold")) {
      get_u32(*x, 1, kMaxThreshold, &hc.unhealthy_threshold);
    }
    if (const Entry* x = m->get("expected_statuses")) {
      get_status_ranges(*x, &hc.expected_statuses);
    }
    if (const Entry* x = m->get("retriable_statuses")) {
      get_status_ranges(*x, &hc.retriable_statuses);
    }
    cluster->health_check = std::move(hc);
  }

  // ---- listeners ----

  void load_listeners(const Entry& e, bool clusters_known, Config* config) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) {
      error(e.loc, "listeners: must list at least one listener");
      return;
    }
    if (items->size() > kMaxListeners) {
      error(e.loc, "too many listeners (" + std::to_string(items->size()) + ", at most " +
                       std::to_string(kMaxListeners) + ")");
    }
    std::unordered_map<std::string, SourceLoc> names;
    for (const Item& item : *items) {
      std::optional<Map> m = open_map(item.node, item.loc, "listener", kListenerKeys);
      if (!m) continue;
      Listener listener;
      listener.loc = m->loc;
      listener.limits = config->limits;
      if (require(*m, "name", "listener")) {
        const Entry& n = *m->get("name");
        if (get_name(n, &listener.name)) {
          auto [it, inserted] = names.try_emplace(listener.name, n.loc);
          if (!inserted) {
            error(n.loc, "duplicate listener name " + quote(listener.name) + " (first at " +
                             where_line(it->second) + ")");
          }
        }
      }
      if (require(*m, "address", "listener")) {
        const Entry& a = *m->get("address");
        if (get_address(a.value, a.loc, a.key, true, &listener.address)) {
          check_listener_address(listener.name, listener.address, a.loc);
        }
      }
      bool role_known = true;
      if (const Entry* r = m->get("role")) {
        std::string text;
        role_known = false;
        if (get_string(*r, &text)) {
          if (text == "outbound") {
            listener.role = ListenerRole::kOutbound;
            role_known = true;
          } else if (text == "inbound") {
            listener.role = ListenerRole::kInbound;
            role_known = true;
          } else {
            error(r->loc, "role: unknown role " + quote(text) + " (expected outbound or inbound)");
          }
        }
      }
      if (const Entry* l = m->get("limits")) load_limits(*l, &listener.limits);
      if (const Entry* h = m->get("h2c")) get_bool(*h, &listener.h2c);
      if (const Entry* r = m->get("request_id_in_response")) {
        get_bool(*r, &listener.request_id_in_response);
      }
      bool tls_ok = true;
      if (const Entry* t = m->get("tls")) tls_ok = load_listener_tls(*t, &listener);
      if (const Entry* i = m->get("identity")) {
        if (role_known && listener.role != ListenerRole::kInbound) {
          error(i->key_loc, "identity: only allowed on inbound listeners");
        } else {
          load_identity(*i, &listener.identity);
        }
      }
      AuthzPlace place = AuthzPlace::kAllowed;
      if (!role_known || !tls_ok) {
        place = AuthzPlace::kUnknown;
      } else if (listener.role != ListenerRole::kInbound) {
        place = AuthzPlace::kNotInbound;
      } else if (!listener.tls) {
        place = AuthzPlace::kNoTls;
      } else if (listener.tls->client_cert == ClientCertMode::kNone) {
        place = AuthzPlace::kNoClientCert;
      }
      if (require(*m, "routes", "listener")) {
        load_routes(*m->get("routes"), clusters_known, place, &listener);
      }
      config->listeners.push_back(std::move(listener));
    }
  }

  void check_listener_address(const std::string& name, const HostPort& hp, const SourceLoc& loc) {
    for (const auto& [other_name, other, other_loc] : listener_addresses_) {
      if (!overlaps(hp, other)) continue;
      if (hp.host == other.host) {
        error(loc, "duplicate listener address " + hp.to_string() + " (listener " +
                       quote(other_name) + " at " + where_line(other_loc) + ")");
      } else {
        error(loc, "listener address " + hp.to_string() + " overlaps " + other.to_string() +
                       " of listener " + quote(other_name) + " (" + where_line(other_loc) + ")");
      }
      return;
    }
    listener_addresses_.push_back({name, hp, loc});
  }

  void check_admin_clash(const Config& config) {
    if (!config.admin.address) return;
    for (const auto& [name, hp, loc] : listener_addresses_) {
      if (overlaps(*config.admin.address, hp)) {
        error(admin_loc_, "admin address " + config.admin.address->to_string() +
                              " conflicts with listener " + quote(name) + " (" + where_line(loc) +
                              ")");
      }
    }
  }

  void load_routes(const Entry& e, bool clusters_known, AuthzPlace place, Listener* listener) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) {
      error(e.loc, "routes: must list at least one route");
      return;
    }
    size_t before = route_count_;
    route_count_ += items->size();
    if (before <= kMaxRoutes && route_count_ > kMaxRoutes) {
      error(e.loc, "too many routes (" + std::to_string(route_count_) + " so far, at most " +
                       std::to_string(kMaxRoutes) + " in total)");
    }
    std::unordered_map<std::string, SourceLoc> names;
    for (size_t index = 0; index < items->size(); ++index) {
      const Item& item = (*items)[index];
      std::optional<Map> m = open_map(item.node, item.loc, "route", kRouteKeys);
      if (!m) continue;
      Route route;
      route.loc = m->loc;
      route.name = listener->name + "-" + std::to_string(index);
      SourceLoc name_loc = m->loc;
      bool name_ok = true;
      if (const Entry* n = m->get("name")) {
        name_ok = get_name(*n, &route.name);
        name_loc = n->loc;
      }
      if (name_ok) {
        auto [it, inserted] = names.try_emplace(route.name, name_loc);
        if (!inserted) {
          error(name_loc, "duplicate route name " + quote(route.name) + " in listener " +
                              quote(listener->name) + " (first at " + where_line(it->second) + ")");
        }
      }
      if (const Entry* x = m->get("match")) load_match(*x, &route.match);
      const Entry* one = m->get("cluster");
      const Entry* list = m->get("clusters");
      if (one && list) {
        error(later(*one, *list).key_loc, "\"cluster\" and \"clusters\" are mutually exclusive");
      } else if (list) {
        load_route_clusters(*list, clusters_known, &route);
      } else if (require(*m, "cluster", "route")) {
        if (get_string(*one, &route.cluster) && clusters_known) {
          check_cluster_ref(route.cluster, one->loc, "cluster");
        }
      }
      const Entry* timeout = m->get("timeout");
      bool timeout_ok =
          timeout == nullptr || get_duration(*timeout, Zero::kRejected, &route.timeout);
      if (const Entry* x = m->get("per_try_timeout");
          x && get_duration(*x, Zero::kAllowed, &route.per_try_timeout) && timeout_ok &&
          route.per_try_timeout > route.timeout) {
        error(x->loc, "per_try_timeout " + syntax::format_duration(route.per_try_timeout) +
                          " is longer than the route timeout " +
                          syntax::format_duration(route.timeout) + " (it would never fire)");
      }
      if (const Entry* x = m->get("idle_timeout")) {
        Duration d{};
        if (get_duration(*x, Zero::kRejected, &d)) route.idle_timeout = d;
      }
      if (const Entry* x = m->get("allow_timeout_header")) {
        get_bool(*x, &route.allow_timeout_header);
      }
      if (const Entry* r = m->get("retry")) load_retry(*r, &route);
      if (const Entry* a = m->get("authz")) load_authz(*a, place, &route);
      listener->routes.push_back(std::move(route));
    }
  }

  static const Entry& later(const Entry& a, const Entry& b) {
    return std::tie(a.key_loc.line, a.key_loc.column) > std::tie(b.key_loc.line, b.key_loc.column)
               ? a
               : b;
  }

  // Reports a route's reference to a cluster that does not exist, with a "did you mean".
  void check_cluster_ref(const std::string& name, const SourceLoc& loc, std::string_view label) {
    if (cluster_names_.contains(name)) return;
    std::string message = std::string(label) + ": unknown cluster " + quote(name);
    std::vector<std::string> known;
    for (const auto& [n, l] : cluster_names_) known.push_back(n);
    std::sort(known.begin(), known.end());
    if (std::string hint = syntax::closest(name, known); !hint.empty()) {
      message += " (did you mean " + quote(hint) + "?)";
    }
    error(loc, message);
  }

  // `clusters: [a, b, ...]`: cluster = a, failover = the rest.
  void load_route_clusters(const Entry& e, bool clusters_known, Route* route) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) {
      error(e.loc, "clusters: must list at least one cluster");
      return;
    }
    if (items->size() > kMaxFailoverClusters) {
      error(e.loc, "clusters: too many clusters (" + std::to_string(items->size()) + ", at most " +
                       std::to_string(kMaxFailoverClusters) + ")");
    }
    std::vector<std::string> names;
    for (const Item& item : *items) {
      std::string name;
      if (!scalar(item.node, item.loc, "clusters", "a cluster name", &name)) continue;
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        error(item.loc, "clusters: " + quote(name) + " is listed twice");
        continue;
      }
      if (clusters_known) check_cluster_ref(name, item.loc, "clusters");
      names.push_back(std::move(name));
    }
    if (names.empty()) return;
    route->cluster = names.front();
    route->failover.assign(names.begin() + 1, names.end());
  }

  void load_retry(const Entry& e, Route* route) {
    std::optional<Map> m = open_map(e, kRetryKeys);
    if (!m) return;
    RetryConfig r;
    r.loc = m->loc;
    bool conditions_ok = require(*m, "retry_on", "retry") && load_retry_on(*m->get("retry_on"), &r);
    auto has = [&r](std::string_view name) {
      return std::find(r.retry_on.begin(), r.retry_on.end(), name) != r.retry_on.end();
    };
    if (const Entry* x = m->get("num_retries")) get_u32(*x, 0, kMaxRetries, &r.num_retries);
    if (const Entry* x = m->get("retriable_status_codes")) {
      if (conditions_ok && !has("retriable-status-codes")) {
        error(x->key_loc,
              "retriable_status_codes: has no effect unless retry_on includes "
              "retriable-status-codes");
      } else {
        load_status_codes(*x, &r.retriable_status_codes);
      }
    } else if (conditions_ok && has("retriable-status-codes")) {
      error(m->loc,
            "missing required key \"retriable_status_codes\" in retry (retry_on includes "
            "retriable-status-codes)");
    }
    if (const Entry* x = m->get("retriable_headers")) {
      if (conditions_ok && !has("retriable-headers")) {
        error(x->key_loc,
              "retriable_headers: has no effect unless retry_on includes retriable-headers");
      } else {
        load_retriable_headers(*x, &r.retriable_headers);
      }
    } else if (conditions_ok && has("retriable-headers")) {
      error(m->loc,
            "missing required key \"retriable_headers\" in retry (retry_on includes "
            "retriable-headers)");
    }
    if (const Entry* x = m->get("retry_non_idempotent")) get_bool(*x, &r.retry_non_idempotent);
    if (const Entry* b = m->get("backoff")) {
      if (std::optional<Map> bm = open_map(*b, kBackoffKeys)) {
        const Entry* base = bm->get("base");
        const Entry* max = bm->get("max");
        bool ok = true;
        if (base) ok &= get_duration(*base, Zero::kRejected, &r.backoff_base);
        if (max) {
          ok &= get_duration(*max, Zero::kRejected, &r.backoff_max);
        } else if (base && ok) {
          r.backoff_max = r.backoff_base * 10;  // Envoy's default
          if (r.backoff_max.count() > syntax::kMaxDurationMs) {
            r.backoff_max = Duration{syntax::kMaxDurationMs};
          }
        }
        if (ok && r.backoff_max < r.backoff_base) {
          error((max ? max : base)->loc, "backoff: max " + syntax::format_duration(r.backoff_max) +
                                             " is less than base " +
                                             syntax::format_duration(r.backoff_base));
        }
      }
    }
    bool honor_ok = true;
    if (const Entry* x = m->get("honor_retry_after")) {
      honor_ok = get_bool(*x, &r.honor_retry_after);
    }
    if (const Entry* x = m->get("retry_after_max")) {
      if (honor_ok && !r.honor_retry_after) {
        error(x->key_loc, "retry_after_max: has no effect when honor_retry_after is false");
      } else {
        get_duration(*x, Zero::kAllowed, &r.retry_after_max);
      }
    }
    if (const Entry* x = m->get("max_buffered_body_bytes")) {
      get_size(*x, 0, kMaxBufferedBodyBytes, &r.max_buffered_body_bytes);
    }
    route->retry = std::move(r);
  }

  // A list of condition names, or one comma-separated string of them (x-envoy-retry-on style).
  bool load_retry_on(const Entry& e, RetryConfig* r) {
    std::vector<std::pair<std::string, SourceLoc>> names;
    if (e.value.IsScalar()) {
      std::string_view text = e.value.Scalar();
      while (!text.empty()) {
        size_t comma = text.find(',');
        std::string_view part = text.substr(0, comma);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        if (!part.empty()) names.emplace_back(std::string(part), e.loc);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
      }
    } else if (e.value.IsSequence()) {
      std::optional<std::vector<Item>> items = open_list(e);
      for (const Item& item : *items) {
        std::string name;
        if (scalar(item.node, item.loc, "retry_on", "a condition name", &name)) {
          names.emplace_back(std::move(name), item.loc);
        }
      }
      if (names.size() != items->size()) return false;
    } else {
      error(e.loc, "retry_on: expected a list of conditions, got " + describe(e.value));
      return false;
    }
    if (names.empty()) {
      error(e.loc, "retry_on: must list at least one condition");
      return false;
    }
    bool ok = true;
    std::vector<std::string> known(std::begin(kRetryOnNames), std::end(kRetryOnNames));
    for (auto& [name, loc] : names) {
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string message = "retry_on: unknown condition " + quote(name);
        if (std::string hint = syntax::closest(name, known); !hint.empty()) {
          message += " (did you mean " + quote(hint) + "?)";
        } else {
          message += " (expected " + word_list(kRetryOnNames) + ")";
        }
        error(loc, message);
        ok = false;
      } else if (std::find(r->retry_on.begin(), r->retry_on.end(), name) != r->retry_on.end()) {
        error(loc, "retry_on: duplicate condition " + quote(name));
        ok = false;
      } else {
        r->retry_on.push_back(std::move(name));
      }
    }
    return ok;
  }

  void load_status_codes(const Entry& e, std::vector<uint16_t>* out) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) error(e.loc, e.key + ": must list at least one status");
    for (const Item& item : *items) {
      std::string text;
      int64_t v = 0;
      if (!scalar(item.node, item.loc, e.key, "an HTTP status", &text)) continue;
      if (!syntax::parse_int(text, &v) || v < 100 || v > 599) {
        error(item.loc, e.key + ": " + quote(text) + " is not an HTTP status (100..599)");
      } else if (std::find(out->begin(), out->end(), v) != out->end()) {
        error(item.loc, e.key + ": duplicate status " + text);
      } else {
        out->push_back(static_cast<uint16_t>(v));
      }
    }
  }

  // Items: "name", or {name, value} for an exact value.
  void load_retriable_headers(const Entry& e, std::vector<RetriableHeader>* out) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) error(e.loc, e.key + ": must list at least one header");
    for (const Item& item : *items) {
      RetriableHeader h;
      std::string name;
      SourceLoc name_loc = item.loc;
      if (item.node.IsMap()) {
        std::optional<Map> m =
            open_map(item.node, item.loc, "retriable header", kRetriableHeaderKeys);
        if (!m || !require(*m, "name", "retriable header")) continue;
        const Entry& n = *m->get("name");
        if (!get_string(n, &name)) continue;
        name_loc = n.loc;
        if (const Entry* v = m->get("value")) {
          std::string value;
          if (!get_string(*v, &value)) continue;
          if (std::any_of(value.begin(), value.end(),
                          [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; })) {
            error(v->loc, "value: header value contains control characters");
            continue;
          }
          h.value = std::move(value);
        }
      } else if (!scalar(item.node, item.loc, e.key, "a header name or a map with name", &name)) {
        continue;
      }
      if (!is_header_token(name)) {
        error(name_loc, e.key + ": invalid header name " + quote(name));
        continue;
      }
      h.name = lower_case(name);
      out->push_back(std::move(h));
    }
  }

  void load_host_pattern(const YAML::Node& n, const SourceLoc& loc, std::string_view label,
                         RouteMatch* match) {
    std::string text;
    if (!scalar(n, loc, label, "a host pattern", &text)) return;
    std::string normalized;
    std::string reason;
    if (!syntax::parse_host_pattern(text, &normalized, &reason)) {
      error(loc, std::string(label) + ": " + reason);
      return;
    }
    match->hosts.push_back(std::move(normalized));
  }

  void load_match(const Entry& e, RouteMatch* match) {
    std::optional<Map> m = open_map(e, kMatchKeys);
    if (!m) return;
    const Entry* host = m->get("host");
    const Entry* hosts = m->get("hosts");
    if (host && hosts) {
      const Entry* later = std::tie(host->key_loc.line, host->key_loc.column) >
                                   std::tie(hosts->key_loc.line, hosts->key_loc.column)
                               ? host
                               : hosts;
      error(later->key_loc, "\"host\" and \"hosts\" are mutually exclusive");
    } else if (host) {
      load_host_pattern(host->value, host->loc, "host", match);
    } else if (hosts) {
      if (auto items = open_list(*hosts)) {
        if (items->empty()) {
          error(hosts->loc, "hosts: must list at least one host pattern (omit it to match any)");
        }
        for (const Item& item : *items) load_host_pattern(item.node, item.loc, "hosts", match);
      }
    }
    if (const Entry* p = m->get("path_prefix")) {
      std::string text;
      if (get_string(*p, &text)) {
        if (!text.starts_with("/")) {
          error(p->loc, "path_prefix: must start with \"/\", got " + quote(text));
        } else if (std::any_of(text.begin(), text.end(), [](unsigned char c) {
                     return c <= 0x20 || c == 0x7f || c == '?' || c == '#';
                   })) {
          error(p->loc, "path_prefix: must not contain spaces, control characters, \"?\" or \"#\"");
        } else {
          match->path_prefix = text;
        }
      }
    }
  }

  // ---- tls ----

  void load_tls(const Entry& e, Config* config) {
    std::optional<Map> m = open_map(e, kTlsKeys);
    if (!m) return;
    if (const Entry* r = m->get("reload_interval")) {
      Duration d{};
      if (get_duration(*r, Zero::kRejected, &d)) {
        if (d.count() < kMinReloadIntervalMs) {
          error(r->loc, "reload_interval: must be at least 100ms");
        } else {
          config->tls.reload_interval = d;
        }
      }
    }
  }

  // ---- aws ----

  void load_aws(const Entry& e, Config* config) {
    std::optional<Map> m = open_map(e, kAwsKeys);
    if (!m) return;
    Aws& aws = config->aws;
    if (const Entry* r = m->get("region")) {
      std::string text;
      if (get_string(*r, &text)) {
        if (auto region = aws::parse_region(text)) {
          aws.region = region->name;
        } else {
          error(r->loc, "region: " + region.error());
        }
      }
    }
    if (const Entry* z = m->get("zone")) {
      std::string text;
      if (get_string(*z, &text)) {
        auto zone = aws::parse_availability_zone(text);
        if (!zone) {
          error(z->loc, "zone: " + zone.error());
        } else if (!aws.region.empty() && zone->region.name != aws.region) {
          error(z->loc, "zone: " + zone->name + " is not in region " + aws.region);
        } else {
          aws.zone = zone->name;
        }
      }
    }
    if (const Entry* c = m->get("credentials")) {
      constexpr std::string_view kWords[] = {"auto", "env", "ecs"};
      constexpr AwsCredentials kModes[] = {AwsCredentials::kAuto, AwsCredentials::kEnv,
                                           AwsCredentials::kEcs};
      if (int i = get_choice(*c, "credential source", kWords); i >= 0) aws.credentials = kModes[i];
    }
  }

  // Relative paths are relative to the config file's directory; the result is absolute, so the
  // JSON rendering loads back from anywhere.
  std::string resolve_path(std::string_view text) const {
    namespace fs = std::filesystem;
    fs::path p{std::string(text)};
    if (p.is_relative()) p = fs::path(file_).parent_path() / p;
    std::error_code ec;
    fs::path absolute = fs::absolute(p, ec);
    return (ec ? p : absolute).lexically_normal().string();
  }

  // A file the proxy reads later (certificate, key, trust bundle): it must be readable now, so
  // that a typo is a config error with a position rather than a surprise at run time.
  bool get_file(const Entry& e, std::string* out) {
    std::string text;
    if (!get_string(e, &text)) return false;
    if (text.empty()) {
      error(e.loc, e.key + ": expected a file path, got an empty string");
      return false;
    }
    if (std::any_of(text.begin(), text.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      error(e.loc, e.key + ": file path contains control characters");
      return false;
    }
    std::string path = resolve_path(text);
    std::string shown = quote(text);
    if (path != text) shown += " (" + quote(path) + ")";
    struct stat st {};
    int err = ::stat(path.c_str(), &st) == 0 ? 0 : errno;
    if (err == 0 && !S_ISREG(st.st_mode)) {
      error(e.loc, e.key + ": " + shown + " is not a regular file");
      return false;
    }
    if (err == 0 && ::access(path.c_str(), R_OK) != 0) err = errno;
    if (err != 0) {
      error(e.loc, e.key + ": cannot read " + shown + ": " + std::strerror(err));
      return false;
    }
    *out = std::move(path);
    return true;
  }

  void get_alpn(const Entry& e, std::vector<std::string>* out) {
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return;
    if (items->empty()) {
      error(e.loc, "alpn: must list at least one protocol");
      return;
    }
    std::vector<std::string> protocols;
    bool ok = true;
    for (const Item& item : *items) {
      std::string p;
      if (!scalar(item.node, item.loc, "alpn", "a protocol name", &p)) {
        ok = false;
      } else if (std::find(std::begin(kAlpnProtocols), std::end(kAlpnProtocols), p) ==
                 std::end(kAlpnProtocols)) {
        error(item.loc, "alpn: unknown protocol " + quote(p) + " (supported: http/1.1, h2)");
        ok = false;
      } else if (std::find(protocols.begin(), protocols.end(), p) != protocols.end()) {
        error(item.loc, "alpn: duplicate protocol " + quote(p));
        ok = false;
      } else {
        protocols.push_back(p);
      }
    }
    if (ok) *out = std::move(protocols);
  }

  // Returns false when the block had errors (route authz placement is then not judged).
  bool load_listener_tls(const Entry& e, Listener* listener) {
    size_t errors_before = error_count_;
    std::optional<Map> m = open_map(e, kListenerTlsKeys);
    if (!m) return false;
    ListenerTls tls;
    tls.loc = m->loc;
    if (require(*m, "cert", "tls")) get_file(*m->get("cert"), &tls.cert);
    if (require(*m, "key", "tls")) get_file(*m->get("key"), &tls.key);
    bool mode_known = true;
    std::string mode = "none";
    if (const Entry* c = m->get("client_cert")) {
      mode_known = get_string(*c, &mode);
      if (mode_known && mode == "none") {
        tls.client_cert = ClientCertMode::kNone;
      } else if (mode == "optional") {
        tls.client_cert = ClientCertMode::kOptional;
      } else if (mode == "required") {
        tls.client_cert = ClientCertMode::kRequired;
      } else if (mode_known) {
        error(c->loc, "client_cert: unknown mode " + quote(mode) +
                          " (expected none, optional or required)");
        mode_known = false;
      }
    }
    const Entry* ca = m->get("client_ca");
    if (mode_known && tls.client_cert != ClientCertMode::kNone && ca == nullptr) {
      error(m->loc, "missing required key \"client_ca\" in tls (client_cert is " + mode + ")");
    }
    if (mode_known && tls.client_cert == ClientCertMode::kNone && ca != nullptr) {
      error(ca->key_loc, "client_ca: has no effect unless client_cert is optional or required");
    } else if (ca != nullptr) {
      get_file(*ca, &tls.client_ca);
    }
    if (const Entry* a = m->get("alpn")) get_alpn(*a, &tls.alpn);
    listener->tls = std::move(tls);
    return error_count_ == errors_before;
  }

  void load_identity(const Entry& e, ListenerIdentity* identity) {
    std::optional<Map> m = open_map(e, kIdentityKeys);
    if (!m) return;
    if (const Entry* h = m->get("header")) {
      std::string text;
      if (get_string(*h, &text)) {
        std::string name = lower_case(text);
        if (!is_header_token(name)) {
          error(h->loc, "header: invalid header name " + quote(text));
        } else if (std::find(std::begin(kReservedHeaders), std::end(kReservedHeaders), name) !=
                   std::end(kReservedHeaders)) {
          error(h->loc, "header: " + quote(name) + " is used by the proxy itself");
        } else {
          identity->header = std::move(name);
        }
      }
    }
    if (const Entry* t = m->get("uri_template")) {
      std::string text;
      if (get_string(*t, &text)) {
        if (std::string why = uri_template_problem(text); !why.empty()) {
          error(t->loc, "uri_template: " + why);
        } else {
          identity->uri_template = std::move(text);
        }
      }
    }
  }

  // Loads a non-empty list of strings, each checked by `valid` (which explains a failure).
  template <class Check>
  std::vector<std::string> load_string_list(const Entry& e, std::string_view what, Check valid) {
    std::vector<std::string> out;
    std::optional<std::vector<Item>> items = open_list(e);
    if (!items) return out;
    if (items->empty()) {
      error(e.loc,
            e.key + ": must list at least one " + std::string(what) + " (omit it otherwise)");
    }
    for (const Item& item : *items) {
      std::string text;
      if (!scalar(item.node, item.loc, e.key, "a string", &text)) continue;
      std::string reason;
      if (!valid(text, &reason)) {
        error(item.loc, e.key + ": " + reason);
        continue;
      }
      out.push_back(std::move(text));
    }
    return out;
  }

  void load_authz(const Entry& e, AuthzPlace place, Route* route) {
    switch (place) {
      case AuthzPlace::kNotInbound:
        error(e.key_loc, "authz: only allowed on routes of inbound listeners");
        break;
      case AuthzPlace::kNoTls:
        error(e.key_loc, "authz: the listener has no tls (callers are identified by certificate)");
        break;
      case AuthzPlace::kNoClientCert:
        error(e.key_loc,
              "authz: the listener's tls.client_cert is none; set it to optional or required");
        break;
      case AuthzPlace::kAllowed:
      case AuthzPlace::kUnknown:
        break;
    }
    std::optional<Map> m = open_map(e, kAuthzKeys);
    if (!m) return;
    RouteAuthz authz;
    const Entry* any = m->get("allow_any_verified");
    bool any_ok = true;
    if (any != nullptr) {
      std::string text;
      any_ok = scalar(any->value, any->loc, any->key, "true or false", &text);
      if (any_ok && (text == "true" || text == "false")) {
        authz.allow_any_verified = text == "true";
      } else if (any_ok) {
        error(any->loc, "allow_any_verified: expected true or false, got " + describe(any->value));
        any_ok = false;
      }
    }
    const Entry* accounts = m->get("allow_accounts");
    const Entry* services = m->get("allow_services");
    if (accounts != nullptr) {
      authz.allow_accounts =
          load_string_list(*accounts, "account", [](const std::string& t, std::string* why) {
            if (is_account_id(t)) return true;
            *why = quote(t) + " is not an AWS account id (12 digits)";
            return false;
          });
    }
    if (services != nullptr) {
      authz.allow_services =
          load_string_list(*services, "service", [](const std::string& t, std::string* why) {
            size_t slash = t.find('/');
            bool ok = slash == std::string::npos
                          ? is_service_name(t)
                          : is_account_id(std::string_view(t).substr(0, slash)) &&
                                is_service_name(std::string_view(t).substr(slash + 1));
            if (!ok) {
              *why = quote(t) +
                     " is not \"service\" or \"account/service\" (a 12-digit account, "
                     "a name of letters, digits, \".\", \"_\" and \"-\")";
            }
            return ok;
          });
    }
    if (any_ok && authz.allow_any_verified && (accounts || services)) {
      error(any->loc,
            "allow_any_verified: true admits every verified caller; drop allow_accounts and "
            "allow_services, or set it to false");
    } else if (any_ok && !authz.allow_any_verified && !accounts && !services) {
      error(m->loc,
            "authz: admits no caller; set allow_any_verified: true, allow_accounts or "
            "allow_services");
    }
    route->authz = std::move(authz);
  }

  void load_cluster_tls(const Entry& e, bool type_known, Cluster* cluster) {
    std::optional<Map> m = open_map(e, kClusterTlsKeys);
    if (!m) return;
    ClusterTls tls;
    tls.loc = m->loc;
    if (require(*m, "ca", "tls")) {
      const Entry& ca = *m->get("ca");
      if (ca.value.IsScalar() && ca.value.Scalar() == "system") {
        tls.ca = "system";
      } else {
        get_file(ca, &tls.ca);
      }
    }
    const Entry* cert = m->get("cert");
    const Entry* key = m->get("key");
    if (cert && !key) error(m->loc, "missing required key \"key\" in tls (cert is set)");
    if (key && !cert) error(m->loc, "missing required key \"cert\" in tls (key is set)");
    if (cert) get_file(*cert, &tls.cert);
    if (key) get_file(*key, &tls.key);
    const Entry* sni = m->get("sni");
    if (sni != nullptr) {
      std::string text;
      if (get_string(*sni, &text)) {
        std::string_view bare = text;
        if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
          bare = bare.substr(1, bare.size() - 2);
        }
        if (syntax::is_ipv4_literal(bare) || syntax::is_ipv6_literal(bare)) {
          error(sni->loc, "sni: must be a DNS name, not an IP address");
        } else if (!syntax::is_dns_name(text)) {
          error(sni->loc, "sni: invalid DNS name " + quote(text));
        } else {
          tls.sni = lower_case(text);
          if (tls.sni.ends_with('.')) tls.sni.pop_back();
        }
      }
    }
    const Entry* san = m->get("verify_san");
    if (san != nullptr) {
      tls.verify_san = load_string_list(*san, "name", [](const std::string& t, std::string* why) {
        std::string normalized;
        return parse_san_pattern(t, &normalized, why);
      });
      for (std::string& p : tls.verify_san) {
        std::string normalized, ignored;
        if (parse_san_pattern(p, &normalized, &ignored)) p = std::move(normalized);
      }
    }
    if (const Entry* a = m->get("alpn")) {
      get_alpn(*a, &tls.alpn);
      tls.alpn_loc = a->loc;
    }
    if (type_known && cluster->type == ClusterType::kStatic && sni == nullptr && san == nullptr) {
      error(m->loc,
            "tls: a static cluster needs sni or verify_san (there is no DNS name to verify the "
            "upstream's certificate against)");
    }
    cluster->tls = std::move(tls);
  }

  struct ListenerAddress {
    std::string name;
    HostPort address;
    SourceLoc loc;
  };

  std::string_view text_;
  std::string file_;
  std::vector<Diagnostic> errors_;
  size_t error_count_ = 0;
  bool truncated_ = false;
  std::unordered_map<std::string, SourceLoc> cluster_names_;
  std::vector<ListenerAddress> listener_addresses_;
  SourceLoc admin_loc_;
  size_t route_count_ = 0;
};

}  // namespace

std::string Diagnostic::to_string() const {
  return loc.file + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column) + ": " +
         message;
}

LoadResult load_string(std::string_view yaml, std::string_view file_name) {
  try {
    return Loader(yaml, std::string(file_name)).run();
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(
        {{std::string(file_name), 0, 0}, std::string("internal error: ") + e.what()});
    return result;
  } catch (...) {
    LoadResult result;
    result.errors.push_back({{std::string(file_name), 0, 0}, "internal error"});
    return result;
  }
}

LoadResult load_file(const std::string& path) {
  auto fail = [&path](std::string message) {
    LoadResult result;
    result.errors.push_back({{path, 0, 0}, std::move(message)});
    return result;
  };
  try {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(std::string("cannot read: ") + std::strerror(errno));
    std::string text;
    char buf[64 * 1024];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return fail(std::string("cannot read: ") + std::strerror(err));
      }
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxConfigBytes) {
        ::close(fd);
        return fail("cannot read: file too large (more than 16 MiB)");
      }
    }
    ::close(fd);
    return load_string(text, path);
  } catch (const std::exception& e) {
    return fail(std::string("cannot read: ") + e.what());
  }
}

}  // namespace outrigger::config
