#include "config/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <unordered_map>

#include "config/syntax.h"

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

constexpr std::string_view kTopKeys[] = {"workers", "admin", "access_log", "dns",     "drain",
                                         "limits",  "tls",   "listeners",  "clusters"};
constexpr std::string_view kAdminKeys[] = {"address"};
constexpr std::string_view kDnsKeys[] = {"resolvers", "timeout", "min_ttl", "max_ttl"};
constexpr std::string_view kDrainKeys[] = {"delay", "timeout"};
constexpr std::string_view kLimitsKeys[] = {"max_request_headers_bytes",
                                            "max_headers",
                                            "max_request_body_bytes",
                                            "header_timeout",
                                            "idle_timeout",
                                            "max_connections"};
constexpr std::string_view kListenerKeys[] = {"name", "address",  "role",  "limits",
                                              "tls",  "identity", "routes"};
constexpr std::string_view kRouteKeys[] = {"name", "match", "cluster", "timeout", "authz"};
constexpr std::string_view kMatchKeys[] = {"host", "hosts", "path_prefix"};
constexpr std::string_view kClusterKeys[] = {"name",
                                             "type",
                                             "endpoints",
                                             "host_rewrite",
                                             "connect_timeout",
                                             "idle_timeout",
                                             "max_connections",
                                             "dns",
                                             "tls"};
constexpr std::string_view kEndpointKeys[] = {"address"};
constexpr std::string_view kClusterDnsKeys[] = {"min_ttl", "max_ttl"};
constexpr std::string_view kTlsKeys[] = {"reload_interval"};
constexpr std::string_view kListenerTlsKeys[] = {"cert", "key", "client_ca", "client_cert", "alpn"};
constexpr std::string_view kIdentityKeys[] = {"header", "uri_template"};
constexpr std::string_view kAuthzKeys[] = {"allow_any_verified", "allow_accounts",
                                           "allow_services"};
constexpr std::string_view kClusterTlsKeys[] = {"sni", "ca", "cert", "key", "verify_san", "alpn"};

// ALPN protocols the data path speaks ("h2" joins when HTTP/2 lands).
constexpr std::string_view kAlpnProtocols[] = {"http/1.1"};
constexpr int64_t kMinReloadIntervalMs = 100;

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
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(std::string(text_));
    } catch (const YAML::DeepRecursion& e) {
      error(to_loc(e.mark), "yaml syntax error: nesting too deep");
      return finish(nullptr);
    } catch (const YAML::ParserException& e) {
      SourceLoc loc = e.mark.is_null() ? SourceLoc{file_, 0, 0} : to_loc(e.mark);
      error(loc, "yaml syntax error: " + e.msg);
      return finish(nullptr);
    }
    for (size_t i = 1; i < docs.size(); ++i) {
      if (!docs[i].IsNull()) {
        error(at(docs[i], {file_, 1, 1}), "only one yaml document is allowed");
        break;
      }
    }
    if (docs.empty() || docs[0].IsNull()) {
      error({file_, 1, 1}, "empty config; expected a map with listeners and clusters");
      return finish(nullptr);
    }
    load_config(docs[0], config.get());
    return finish(errors_.empty() ? config : nullptr);
  }

 private:
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
        std::string text;
        if (!get_string(*t, &text)) {
          type_known = false;
        } else if (text == "static") {
          cluster.type = ClusterType::kStatic;
        } else if (text == "dns") {
          cluster.type = ClusterType::kDns;
        } else {
          error(t->loc, "type: unknown cluster type " + quote(text) + " (expected static or dns)");
          type_known = false;
        }
      }
      if (require(*m, "endpoints", "cluster")) {
        load_endpoints(*m->get("endpoints"), type_known, &cluster);
      }
      if (const Entry* h = m->get("host_rewrite")) {
        std::string text;
        if (get_string(*h, &text)) {
          HostPort hp;
          std::string reason;
          bool ok = syntax::is_dns_name(text) || syntax::is_ipv4_literal(text) ||
                    (text.size() > 2 && text.front() == '[' && text.back() == ']' &&
                     syntax::is_ipv6_literal(std::string_view(text).substr(1, text.size() - 2))) ||
                    syntax::parse_host_port(text, false, &hp, &reason);
          if (ok) {
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
      if (node.IsMap()) {
        std::optional<Map> m = open_map(node, loc, "endpoint", kEndpointKeys);
        if (!m || !require(*m, "address", "endpoint")) continue;
        const Entry& a = *m->get("address");
        node = a.value;
        loc = a.loc;
        label = "address";
      } else if (!node.IsScalar()) {
        error(loc,
              "endpoints: expected \"host:port\" or a map with address, got " + describe(node));
        continue;
      }
      Endpoint endpoint;
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
      if (require(*m, "cluster", "route")) {
        const Entry& c = *m->get("cluster");
        if (get_string(c, &route.cluster) && clusters_known &&
            !cluster_names_.contains(route.cluster)) {
          std::string message = "cluster: unknown cluster " + quote(route.cluster);
          std::vector<std::string> known;
          for (const auto& [name, loc] : cluster_names_) known.push_back(name);
          std::sort(known.begin(), known.end());
          if (std::string hint = syntax::closest(route.cluster, known); !hint.empty()) {
            message += " (did you mean " + quote(hint) + "?)";
          }
          error(c.loc, message);
        }
      }
      if (const Entry* x = m->get("timeout")) get_duration(*x, Zero::kRejected, &route.timeout);
      if (const Entry* a = m->get("authz")) load_authz(*a, place, &route);
      listener->routes.push_back(std::move(route));
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
      } else if (p == "h2") {
        error(item.loc, "alpn: \"h2\" is not supported yet (HTTP/2 is not implemented)");
        ok = false;
      } else if (std::find(std::begin(kAlpnProtocols), std::end(kAlpnProtocols), p) ==
                 std::end(kAlpnProtocols)) {
        error(item.loc, "alpn: unknown protocol " + quote(p) + " (supported: http/1.1)");
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
    if (const Entry* a = m->get("alpn")) get_alpn(*a, &tls.alpn);
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
