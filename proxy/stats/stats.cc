#include "proxy/stats/stats.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <new>
#include <sstream>
#include <type_traits>

#ifndef OUTRIGGER_VERSION
#define OUTRIGGER_VERSION "unknown"
#endif

namespace outrigger::stats {

// ZeroPageArray treats fresh zero pages as value-initialised cells; these are the conditions.
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
              std::atomic<int64_t>::is_always_lock_free);
static_assert(sizeof(Counter) == sizeof(uint64_t) && sizeof(Gauge) == sizeof(int64_t));
static_assert(std::is_trivially_destructible_v<ListenerStats> &&
              std::is_trivially_destructible_v<RouteStats> &&
              std::is_trivially_destructible_v<ClusterStats>);
static_assert(std::is_standard_layout_v<ListenerStats> && std::is_standard_layout_v<RouteStats> &&
              std::is_standard_layout_v<ClusterStats>);

namespace {

// Bucket bounds in integer nanoseconds, so observe() compares integers only.
constexpr std::array<uint64_t, Histogram::kBounds.size()> kBoundsNs = [] {
  std::array<uint64_t, Histogram::kBounds.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint64_t>(Histogram::kBounds[i] * 1e9 + 0.5);
  }
  return out;
}();
static_assert(kBoundsNs.size() == 16, "observe() searches a power-of-two table");
static_assert(kBoundsNs[0] == 500'000 && kBoundsNs[15] == 60'000'000'000);

}  // namespace

namespace detail {

void* map_zero_pages(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // With THP "always", one write could fault in 2 MiB; the whole point is sparse residency.
  madvise(p, bytes, MADV_NOHUGEPAGE);
  return p;
}

void unmap_pages(void* p, size_t bytes) noexcept { munmap(p, bytes); }

}  // namespace detail

void Histogram::observe(std::chrono::nanoseconds d) noexcept {
  const uint64_t ns = d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0;
  // Branchless lower_bound over 16 bounds: four conditional moves and one final compare; the
  // result is the first bucket whose le >= ns (le is inclusive), or 16 for +Inf.
  const uint64_t* base = kBoundsNs.data();
  size_t n = kBoundsNs.size();
  while (n > 1) {
    const size_t half = n / 2;
    base = base[half] < ns ? base + half : base;
    n -= half;
  }
  const size_t i = static_cast<size_t>(base - kBoundsNs.data()) + (*base < ns ? 1 : 0);
  buckets_[i].inc();
  sum_ns_.inc(ns);
}

uint64_t Histogram::count() const noexcept {
  uint64_t total = 0;
  for (const Counter& b : buckets_) total += b.value();
  return total;
}

std::string_view limit_name(Limit l) noexcept {
  switch (l) {
    case Limit::kHeaderBytes:
      return "header_bytes";
    case Limit::kHeaderCount:
      return "header_count";
    case Limit::kBodyBytes:
      return "body_bytes";
    case Limit::kHeaderTimeout:
      return "header_timeout";
    case Limit::kIdleTimeout:
      return "idle_timeout";
    case Limit::kMaxConnections:
      return "max_connections";
    case Limit::kUpstreamHeaderBytes:
      return "upstream_header_bytes";
    case Limit::kPoolWait:
      return "pool_wait";
    case Limit::kCount:
      break;
  }
  return "unknown";
}

std::string_view tls_error_name(TlsError e) noexcept {
  static constexpr std::array<std::string_view, static_cast<size_t>(TlsError::kCount)> kNames = {
      "not_tls",     "no_client_certificate", "protocol_version", "no_shared_cipher",
      "unknown_ca",  "expired",               "not_yet_valid",    "san_mismatch",
      "peer_alert",  "eof",                   "handshake_timeout", "handshake_failed"};
  const auto i = static_cast<size_t>(e);
  return i < kNames.size() ? kNames[i] : "handshake_failed";
}

TlsError tls_error_from_reason(std::string_view reason) noexcept {
  for (size_t i = 0; i < static_cast<size_t>(TlsError::kCount); ++i) {
    if (tls_error_name(static_cast<TlsError>(i)) == reason) return static_cast<TlsError>(i);
  }
  return TlsError::kHandshakeFailed;  // "other" and anything new
}

std::string_view retry_outcome_name(RetryOutcome r) noexcept {
  static constexpr std::array<std::string_view, static_cast<size_t>(RetryOutcome::kCount)> kNames =
      {"retried", "exhausted", "not_idempotent", "body_too_large", "budget_exhausted",
       "retry_after_too_long"};
  const auto i = static_cast<size_t>(r);
  return i < kNames.size() ? kNames[i] : "retried";
}

std::string_view h2_event_name(size_t i) noexcept {
  static constexpr std::array<std::string_view, kH2Events> kNames = {
      "streams",       "invalid_headers",  "header_list_too_large", "refused_streams",
      "peer_resets",   "rapid_reset",      "continuation_flood",    "settings_flood",
      "ping_flood",    "empty_frame_flood", "connection_errors",    "goaway_received",
      "body_length_mismatch"};
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::string_view authz_denial_name(AuthzDenial d) noexcept {
  return d == AuthzDenial::kNoVerifiedIdentity ? "no_verified_identity" : "not_allowed";
}

std::string_view upstream_error_name(UpstreamError e) noexcept {
  switch (e) {
    case UpstreamError::kConnectTimeout:
      return "connect_timeout";
    case UpstreamError::kTlsHandshake:
      return "tls_handshake";
    case UpstreamError::kSigning:
      return "signing";
    case UpstreamError::kAlpnChanged:
      return "alpn_changed";
    case UpstreamError::kConnectRefused:
      return "connect_refused";
    case UpstreamError::kConnectFailed:
      return "connect_failed";
    case UpstreamError::kReset:
      return "reset";
    case UpstreamError::kResponseTimeout:
      return "response_timeout";
    case UpstreamError::kProtocol:
      return "protocol";
    case UpstreamError::kPoolTimeout:
      return "pool_timeout";
    case UpstreamError::kNoEndpoint:
      return "no_endpoint";
    case UpstreamError::kCount:
      break;
  }
  return "unknown";
}

std::string_view bad_request_name(BadRequest b) noexcept {
  switch (b) {
    case BadRequest::kMalformed:
      return "malformed";
    case BadRequest::kSmuggling:
      return "smuggling";
    case BadRequest::kBadVersion:
      return "bad_version";
    case BadRequest::kCount:
      break;
  }
  return "unknown";
}

Shard::Shard() : listeners_(kMaxListeners), routes_(kMaxRoutes), clusters_(kMaxClusters) {}

Registry::Registry(uint32_t workers) {
  shards_.reserve(size_t{workers} + 1);
  for (uint32_t i = 0; i <= workers; ++i) shards_.push_back(std::make_unique<Shard>());
}

uint32_t Registry::intern(Names& names, uint32_t max, std::vector<std::string> labels) {
  // Length-prefixed parts, so ("a:b", "c") and ("a", "b:c") cannot share a key.
  std::string key;
  for (const std::string& l : labels) {
    key += std::to_string(l.size());
    key += ':';
    key += l;
  }
  std::lock_guard lock(names_mu_);
  if (auto it = names.ids.find(key); it != names.ids.end()) return it->second;
  if (names.labels.size() >= max) return UINT32_MAX;
  const auto id = static_cast<uint32_t>(names.labels.size());
  names.ids.emplace(std::move(key), id);
  names.labels.push_back(std::move(labels));
  return id;
}

uint32_t Registry::listener_id(std::string_view listener) {
  return intern(listeners_, kMaxListeners, {std::string(listener)});
}

uint32_t Registry::route_id(std::string_view listener, std::string_view route) {
  return intern(routes_, kMaxRoutes, {std::string(listener), std::string(route)});
}

uint32_t Registry::cluster_id(std::string_view cluster) {
  return intern(clusters_, kMaxClusters, {std::string(cluster)});
}

// ---- Prometheus text exposition format 0.0.4 ---------------------------------------------------

namespace {

constexpr std::string_view kCodeClassNames[kCodeClasses] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// Plain sums of one entity's cells over all shards, taken once per scrape.
struct HistogramSum {
  std::array<uint64_t, Histogram::kBounds.size() + 1> buckets{};
  uint64_t sum_ns = 0;

  void add(const Histogram& h) {
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += h.bucket(i);
    sum_ns += h.sum_ns();
  }
};

struct TlsSum {
  uint64_t handshakes = 0;
  uint64_t resumed = 0;
  std::array<uint64_t, static_cast<size_t>(TlsError::kCount)> errors{};
  void add(const TlsStats& s) {
    handshakes += s.handshakes.value();
    resumed += s.resumed.value();
    for (size_t i = 0; i < errors.size(); ++i) errors[i] += s.errors[i].value();
  }
};

struct ListenerSum {
  int64_t cx_active = 0;
  uint64_t cx_total = 0;
  uint64_t no_route = 0;
  uint64_t upgrade_refused = 0;
  int64_t tunnels_active = 0;
  std::array<uint64_t, static_cast<size_t>(BadRequest::kCount)> bad{};
  TlsSum tls;
  uint64_t h2_connections = 0;
  std::array<uint64_t, kH2Events> h2{};
};

struct RouteSum {
  std::array<uint64_t, kCodeClasses> rq{};
  HistogramSum duration;
  std::array<uint64_t, static_cast<size_t>(AuthzDenial::kCount)> denied{};
};

struct ClusterSum {
  std::array<uint64_t, kCodeClasses> rq{};
  uint64_t rq_total = 0;
  uint64_t cx_total = 0;
  int64_t cx_active = 0;
  int64_t cx_idle = 0;
  uint64_t cx_reused = 0;
  int64_t rq_pending = 0;
  std::array<uint64_t, static_cast<size_t>(UpstreamError::kCount)> errors{};
  HistogramSum duration;
  TlsSum tls;
  std::array<uint64_t, kAlpnNames.size()> alpn{};
  std::array<uint64_t, static_cast<size_t>(RetryOutcome::kCount)> retries{};
  std::array<uint64_t, kBreakerThresholds> overflows{};
  std::array<uint64_t, kEjectReasons> ejections{};
  uint64_t ejections_overflow = 0;
  int64_t ejected = 0;
  uint64_t lb_panic = 0, lb_cross_zone = 0, hc_healthy = 0, hc_unhealthy = 0, failover = 0;
};

// The le="..." strings, in the shortest fixed notation ("0.0005", "1", "60").
const std::array<std::string, Histogram::kBounds.size()>& le_strings() {
  static const auto table = [] {
    std::array<std::string, Histogram::kBounds.size()> out;
    for (size_t i = 0; i < out.size(); ++i) {
      char buf[32];
      auto r =
          std::to_chars(buf, buf + sizeof buf, Histogram::kBounds[i], std::chars_format::fixed);
      out[i].assign(buf, r.ptr);
    }
    return out;
  }();
  return table;
}

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Appends into one growing string; label values are escaped per the text format
// (backslash, double quote and line feed).
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  // name{k1="v1",k2="v2"[,le="..."]}; call value() next. `le` is only for histogram buckets.
  void series(std::string_view name, std::string_view suffix, Labels labels,
              std::string_view le = {}) {
    out_ += name;
    out_ += suffix;
    if (labels.size() == 0 && le.empty()) return;
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      escape(v);
      out_ += '"';
    }
    if (!le.empty()) {
      if (!first) out_ += ',';
      out_ += "le=\"";
      out_ += le;
      out_ += '"';
    }
    out_ += '}';
  }

  void value(uint64_t v) { number(v); }
  void value(int64_t v) { number(v); }
  void value(double v) {
    if (std::isnan(v)) {
      out_ += " NaN\n";
    } else if (std::isinf(v)) {
      out_ += v > 0 ? " +Inf\n" : " -Inf\n";
    } else {
      number(v);
    }
  }

 private:
  template <class T>
  void number(T v) {
    char buf[40];
    buf[0] = ' ';
    auto r = std::to_chars(buf + 1, buf + sizeof buf - 1, v);
    *r.ptr++ = '\n';
    out_.append(buf, r.ptr);
  }

  void escape(std::string_view v) {
    for (char c : v) {
      switch (c) {
        case '\\':
          out_ += "\\\\";
          break;
        case '"':
          out_ += "\\\"";
          break;
        case '\n':
          out_ += "\\n";
          break;
        default:
          out_ += c;
      }
    }
  }

  std::string& out_;
};

void write_histogram(Writer& w, std::string_view name, Labels labels, const HistogramSum& h) {
  const auto& le = le_strings();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i];
    w.series(name, "_bucket", labels, i < le.size() ? std::string_view(le[i]) : "+Inf");
    w.value(cumulative);
  }
  w.series(name, "_sum", labels);
  w.value(static_cast<double>(h.sum_ns) / 1e9);
  // _count is the +Inf bucket by construction, even when a writer is mid-observe.
  w.series(name, "_count", labels);
  w.value(cumulative);
}

// outrigger_<side>_tls_handshakes_total / _resumed_total / _errors_total{reason} per owner
// (listener or cluster). Written for every owner so the series exist before the first failure.
template <class NameOf, class SumOf>
void write_tls(Writer& w, std::string_view side, std::string_view label, size_t n, NameOf name_of,
               SumOf sum_of) {
  const std::string hs = "outrigger_" + std::string(side) + "_tls_handshakes_total";
  const std::string rs = "outrigger_" + std::string(side) + "_tls_resumed_total";
  const std::string es = "outrigger_" + std::string(side) + "_tls_handshake_errors_total";
  w.family(hs, "counter", "TLS handshakes completed.");
  for (size_t id = 0; id < n; ++id) {
    w.series(hs, "", {{label, name_of(id)}});
    w.value(sum_of(id).handshakes);
  }
  w.family(rs, "counter", "TLS handshakes that resumed a session.");
  for (size_t id = 0; id < n; ++id) {
    w.series(rs, "", {{label, name_of(id)}});
    w.value(sum_of(id).resumed);
  }
  w.family(es, "counter", "Failed TLS handshakes, by reason.");
  for (size_t id = 0; id < n; ++id) {
    const TlsSum& t = sum_of(id);
    for (size_t i = 0; i < t.errors.size(); ++i) {
      w.series(es, "", {{label, name_of(id)}, {"reason", tls_error_name(static_cast<TlsError>(i))}});
      w.value(t.errors[i]);
    }
  }
}

// Everything read from /proc/self for the standard process_* metrics; -1 where unreadable.
struct ProcessInfo {
  double cpu_seconds = -1;
  double start_time_seconds = -1;
  int64_t resident_bytes = -1;
  int64_t open_fds = -1;
  int64_t max_fds = -1;
};

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double boot_time_seconds() {
  static const double btime = [] {
    std::istringstream in(read_file("/proc/stat"));
    std::string key;
    while (in >> key) {
      if (key == "btime") {
        double v = -1;
        in >> v;
        return v;
      }
      in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return -1.0;
  }();
  return btime;
}

ProcessInfo read_process_info() {
  ProcessInfo p;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const auto page = static_cast<int64_t>(sysconf(_SC_PAGESIZE));

  // The command name (field 2) may hold spaces and parentheses, so fields are counted from the
  // last ')': field k (proc(5) numbering) is tok[k - 3]; utime 14, stime 15, starttime 22, rss 24.
  const std::string stat = read_file("/proc/self/stat");
  if (auto close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream in(stat.substr(close + 1));
    std::vector<std::string> tok;
    std::string t;
    while (tok.size() < 22 && in >> t) tok.push_back(t);
    if (tok.size() == 22) {
      const double utime = std::strtod(tok[11].c_str(), nullptr);
      const double stime = std::strtod(tok[12].c_str(), nullptr);
      const double start = std::strtod(tok[19].c_str(), nullptr);
      p.cpu_seconds = (utime + stime) / ticks;
      if (double bt = boot_time_seconds(); bt >= 0) p.start_time_seconds = bt + start / ticks;
      p.resident_bytes = std::strtoll(tok[21].c_str(), nullptr, 10) * page;
    }
  }

  if (DIR* d = opendir("/proc/self/fd")) {
    int64_t n = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    p.open_fds = n - 1;  // the directory stream's own descriptor
  }

  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    p.max_fds = static_cast<int64_t>(rl.rlim_cur);
  }
  return p;
}

}  // namespace

std::string Registry::render_prometheus() const {
  std::lock_guard lock(names_mu_);
  const size_t n_listeners = listeners_.labels.size();
  const size_t n_routes = routes_.labels.size();
  const size_t n_clusters = clusters_.labels.size();

  // Sum once, then write each family from the sums: one pass over the shards per scrape.
  std::vector<ListenerSum> ls(n_listeners);
  std::vector<RouteSum> rs(n_routes);
  std::vector<ClusterSum> cs(n_clusters);
  std::array<uint64_t, static_cast<size_t>(Limit::kCount)> limits{};
  for (const auto& shard_ptr : shards_) {
    const Shard& sh = *shard_ptr;
    for (size_t id = 0; id < n_listeners; ++id) {
      const ListenerStats& s = sh.listener(static_cast<uint32_t>(id));
      ListenerSum& t = ls[id];
      t.cx_active += s.cx_active.value();
      t.cx_total += s.cx_total.value();
      t.no_route += s.no_route.value();
      t.upgrade_refused += s.upgrade_refused.value();
      t.tunnels_active += s.tunnels_active.value();
      for (size_t i = 0; i < t.bad.size(); ++i) t.bad[i] += s.bad_requests[i].value();
      t.tls.add(s.tls);
      t.h2_connections += s.h2_connections.value();
      for (size_t i = 0; i < kH2Events; ++i) t.h2[i] += s.h2[i].value();
    }
    for (size_t id = 0; id < n_routes; ++id) {
      const RouteStats& s = sh.route(static_cast<uint32_t>(id));
      RouteSum& t = rs[id];
      for (size_t i = 0; i < kCodeClasses; ++i) t.rq[i] += s.rq[i].value();
      t.duration.add(s.duration);
      for (size_t i = 0; i < t.denied.size(); ++i) t.denied[i] += s.authz_denied[i].value();
    }
    for (size_t id = 0; id < n_clusters; ++id) {
      const ClusterStats& s = sh.cluster(static_cast<uint32_t>(id));
      ClusterSum& t = cs[id];
      for (size_t i = 0; i < kCodeClasses; ++i) t.rq[i] += s.rq[i].value();
      t.rq_total += s.rq_total.value();
      t.cx_total += s.cx_total.value();
      t.cx_active += s.cx_active.value();
      t.cx_idle += s.cx_idle.value();
      t.cx_reused += s.cx_reused.value();
      t.rq_pending += s.rq_pending.value();
      for (size_t i = 0; i < t.errors.size(); ++i) t.errors[i] += s.errors[i].value();
      t.duration.add(s.duration);
      t.tls.add(s.tls);
      for (size_t i = 0; i < t.alpn.size(); ++i) t.alpn[i] += s.alpn[i].value();
      for (size_t i = 0; i < t.retries.size(); ++i) t.retries[i] += s.retries[i].value();
      for (size_t i = 0; i < t.overflows.size(); ++i) t.overflows[i] += s.overflows[i].value();
      for (size_t i = 0; i < t.ejections.size(); ++i) t.ejections[i] += s.ejections[i].value();
      t.ejections_overflow += s.ejections_overflow.value();
      t.ejected += s.ejected.value();
      t.lb_panic += s.lb_panic.value();
      t.lb_cross_zone += s.lb_cross_zone.value();
      t.hc_healthy += s.health_transitions_healthy.value();
      t.hc_unhealthy += s.health_transitions_unhealthy.value();
      t.failover += s.failover.value();
    }
    for (size_t i = 0; i < limits.size(); ++i) limits[i] += sh.limit(static_cast<Limit>(i)).value();
  }

  std::string out;
  out.reserve(4096 + n_listeners * 1024 + n_routes * 2048 + n_clusters * 4096);
  Writer w(out);
  auto name_of = [](const Names& n, size_t id, size_t part) -> std::string_view {
    return n.labels[id][part];
  };

  // Downstream, per listener.
  if (n_listeners > 0) {
    // One series per listener, its value from that listener's sums.
    auto per_listener = [&](std::string_view name, std::string_view type, std::string_view help,
                            auto value_of) {
      w.family(name, type, help);
      for (size_t id = 0; id < n_listeners; ++id) {
        w.series(name, "", {{"listener", name_of(listeners_, id, 0)}});
        w.value(value_of(ls[id]));
      }
    };
    per_listener("outrigger_downstream_connections_active", "gauge",
                 "Open downstream connections.", [](const ListenerSum& l) { return l.cx_active; });
    per_listener("outrigger_downstream_connections_total", "counter",
                 "Downstream connections accepted.",
                 [](const ListenerSum& l) { return l.cx_total; });
    per_listener("outrigger_downstream_no_route_total", "counter",
                 "Downstream requests answered 404 because no route matched.",
                 [](const ListenerSum& l) { return l.no_route; });
    per_listener("outrigger_downstream_upgrades_refused_total", "counter",
                 "Downstream WebSocket handshakes refused: with a body (400), or routed to a "
                 "cluster that is not http1 (501).",
                 [](const ListenerSum& l) { return l.upgrade_refused; });
    per_listener("outrigger_downstream_tunnels_active", "gauge",
                 "WebSocket connections joined to their upstream (after a 101).",
                 [](const ListenerSum& l) { return l.tunnels_active; });
    constexpr std::string_view kBad = "outrigger_downstream_bad_requests_total";
    w.family(kBad, "counter", "Downstream requests rejected with 400, by reason.");
    for (size_t id = 0; id < n_listeners; ++id) {
      for (size_t i = 0; i < ls[id].bad.size(); ++i) {
        w.series(kBad, "",
                 {{"listener", name_of(listeners_, id, 0)},
                  {"reason", bad_request_name(static_cast<BadRequest>(i))}});
        w.value(ls[id].bad[i]);
      }
    }
    per_listener("outrigger_downstream_h2_connections_total", "counter",
                 "Downstream connections that spoke HTTP/2 (ALPN h2 or h2c).",
                 [](const ListenerSum& l) { return l.h2_connections; });
    constexpr std::string_view kH2 = "outrigger_downstream_h2_events_total";
    w.family(kH2, "counter",
             "HTTP/2 streams and the limits and protocol errors that reset streams or ended "
             "connections, by event.");
    for (size_t id = 0; id < n_listeners; ++id) {
      for (size_t i = 0; i < kH2Events; ++i) {
        w.series(kH2, "", {{"listener", name_of(listeners_, id, 0)}, {"event", h2_event_name(i)}});
        w.value(ls[id].h2[i]);
      }
    }
    write_tls(w, "downstream", "listener", n_listeners,
              [&](size_t id) { return name_of(listeners_, id, 0); },
              [&](size_t id) -> const TlsSum& { return ls[id].tls; });
  }

  // Downstream, per (listener, route).
  if (n_routes > 0) {
    constexpr std::string_view kRq = "outrigger_downstream_requests_total";
    w.family(kRq, "counter", "Downstream requests answered, by route and status class.");
    for (size_t id = 0; id < n_routes; ++id) {
      for (size_t c = 0; c < kCodeClasses; ++c) {
        w.series(kRq, "",
                 {{"listener", name_of(routes_, id, 0)},
                  {"route", name_of(routes_, id, 1)},
                  {"code_class", kCodeClassNames[c]}});
        w.value(rs[id].rq[c]);
      }
    }
    constexpr std::string_view kDur = "outrigger_downstream_request_duration_seconds";
    w.family(kDur, "histogram",
             "Time from the first byte of the request head to the last byte of the response.");
    for (size_t id = 0; id < n_routes; ++id) {
      write_histogram(w, kDur,
                      {{"listener", name_of(routes_, id, 0)}, {"route", name_of(routes_, id, 1)}},
                      rs[id].duration);
    }
    constexpr std::string_view kDenied = "outrigger_downstream_authz_denied_total";
    w.family(kDenied, "counter", "Requests refused with 403 by a route's caller allow-list, by reason.");
    for (size_t id = 0; id < n_routes; ++id) {
      for (size_t i = 0; i < rs[id].denied.size(); ++i) {
        w.series(kDenied, "",
                 {{"listener", name_of(routes_, id, 0)},
                  {"route", name_of(routes_, id, 1)},
                  {"reason", authz_denial_name(static_cast<AuthzDenial>(i))}});
        w.value(rs[id].denied[i]);
      }
    }
  }

  // Upstream, per cluster.
  if (n_clusters > 0) {
    auto per_cluster = [&](std::string_view name, std::string_view type, std::string_view help,
                           auto get) {
      w.family(name, type, help);
      for (size_t id = 0; id < n_clusters; ++id) {
        w.series(name, "", {{"cluster", name_of(clusters_, id, 0)}});
        w.value(get(cs[id]));
      }
    };
    per_cluster("outrigger_upstream_requests_total", "counter", "Requests sent upstream.",
                [](const ClusterSum& c) { return c.rq_total; });
    constexpr std::string_view kResp = "outrigger_upstream_responses_total";
    w.family(kResp, "counter", "Upstream responses received, by status class.");
    for (size_t id = 0; id < n_clusters; ++id) {
      for (size_t c = 0; c < kCodeClasses; ++c) {
        w.series(kResp, "",
                 {{"cluster", name_of(clusters_, id, 0)}, {"code_class", kCodeClassNames[c]}});
        w.value(cs[id].rq[c]);
      }
    }
    per_cluster("outrigger_upstream_connections_total", "counter", "Upstream connections opened.",
                [](const ClusterSum& c) { return c.cx_total; });
    per_cluster("outrigger_upstream_connections_active", "gauge",
                "Open upstream connections, busy and idle.",
                [](const ClusterSum& c) { return c.cx_active; });
    per_cluster("outrigger_upstream_connections_idle", "gauge",
                "Idle upstream connections in the pools.",
                [](const ClusterSum& c) { return c.cx_idle; });
    per_cluster("outrigger_upstream_connections_reused_total", "counter",
                "Upstream requests sent on a reused pooled connection.",
                [](const ClusterSum& c) { return c.cx_reused; });
    per_cluster("outrigger_upstream_requests_pending", "gauge",
                "Requests waiting for an upstream connection.",
                [](const ClusterSum& c) { return c.rq_pending; });
    constexpr std::string_view kErr = "outrigger_upstream_errors_total";
    w.family(kErr, "counter", "Upstream request failures, by reason.");
    for (size_t id = 0; id < n_clusters; ++id) {
      for (size_t i = 0; i < cs[id].errors.size(); ++i) {
        w.series(kErr, "",
                 {{"cluster", name_of(clusters_, id, 0)},
                  {"reason", upstream_error_name(static_cast<UpstreamError>(i))}});
        w.value(cs[id].errors[i]);
      }
    }
    constexpr std::string_view kDur = "outrigger_upstream_request_duration_seconds";
    w.family(kDur, "histogram",
             "Time from sending the upstream request to the last byte of its response.");
    for (size_t id = 0; id < n_clusters; ++id) {
      write_histogram(w, kDur, {{"cluster", name_of(clusters_, id, 0)}}, cs[id].duration);
    }
    auto labelled = [&](std::string_view name, std::string_view help, std::string_view label,
                        size_t n, auto value_of, auto label_of) {
      w.family(name, "counter", help);
      for (size_t id = 0; id < n_clusters; ++id) {
        for (size_t i = 0; i < n; ++i) {
          w.series(name, "", {{"cluster", name_of(clusters_, id, 0)}, {label, label_of(i)}});
          w.value(value_of(cs[id], i));
        }
      }
    };
    labelled("outrigger_upstream_retries_total",
             "Failed attempts that were retried (reason=retried) or not, by reason.", "reason",
             static_cast<size_t>(RetryOutcome::kCount),
             [](const ClusterSum& c, size_t i) { return c.retries[i]; },
             [](size_t i) { return retry_outcome_name(static_cast<RetryOutcome>(i)); });
    static constexpr std::array<std::string_view, kBreakerThresholds> kThresholds = {
        "connections", "pending", "requests", "retries"};
    labelled("outrigger_upstream_circuit_breaker_overflows_total",
             "Requests refused (503) or retries skipped because a circuit breaker threshold was full.",
             "threshold", kBreakerThresholds,
             [](const ClusterSum& c, size_t i) { return c.overflows[i]; },
             [](size_t i) { return kThresholds[i]; });
    static constexpr std::array<std::string_view, kEjectReasons> kEject = {
        "consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure"};
    labelled("outrigger_upstream_outlier_ejections_total",
             "Endpoints ejected by outlier detection (counted by each worker), by reason.", "reason",
             kEjectReasons, [](const ClusterSum& c, size_t i) { return c.ejections[i]; },
             [](size_t i) { return kEject[i]; });
    per_cluster("outrigger_upstream_outlier_ejections_overflow_total", "counter",
                "Ejections refused by max_ejection_percent.",
                [](const ClusterSum& c) { return c.ejections_overflow; });
    per_cluster("outrigger_upstream_outlier_ejected", "gauge",
                "Endpoints ejected now, summed over workers.",
                [](const ClusterSum& c) { return c.ejected; });
    per_cluster("outrigger_upstream_lb_panic_total", "counter",
                "Endpoint picks made in panic mode (too few available endpoints: all serve).",
                [](const ClusterSum& c) { return c.lb_panic; });
    per_cluster("outrigger_upstream_cross_zone_requests_total", "counter",
                "Endpoint picks outside the local availability zone.",
                [](const ClusterSum& c) { return c.lb_cross_zone; });
    labelled("outrigger_upstream_health_transitions_total",
             "Active health check state changes, by new state.", "to", 2,
             [](const ClusterSum& c, size_t i) { return i == 0 ? c.hc_healthy : c.hc_unhealthy; },
             [](size_t i) { return i == 0 ? std::string_view("healthy") : "unhealthy"; });
    per_cluster("outrigger_upstream_failover_requests_total", "counter",
                "Requests sent to this cluster as a lower-priority failover of their route.",
                [](const ClusterSum& c) { return c.failover; });
    labelled("outrigger_upstream_alpn_total",
             "New TLS connections of protocol auto-by-alpn clusters, by the protocol the endpoint "
             "negotiated (none: no ALPN, spoken to as HTTP/1.1).",
             "protocol", kAlpnNames.size(),
             [](const ClusterSum& c, size_t i) { return c.alpn[i]; },
             [](size_t i) { return kAlpnNames[i]; });
    write_tls(w, "upstream", "cluster", n_clusters,
              [&](size_t id) { return name_of(clusters_, id, 0); },
              [&](size_t id) -> const TlsSum& { return cs[id].tls; });
  }

  constexpr std::string_view kLimit = "outrigger_limit_hits_total";
  w.family(kLimit, "counter", "Times a configured limit was reached, by limit.");
  for (size_t i = 0; i < limits.size(); ++i) {
    w.series(kLimit, "", {{"limit", limit_name(static_cast<Limit>(i))}});
    w.value(limits[i]);
  }

  constexpr std::string_view kReload = "outrigger_config_reloads_total";
  w.family(kReload, "counter", "Configuration reloads, by result.");
  w.series(kReload, "", {{"result", "ok"}});
  w.value(main_.config_reloads_ok.value());
  w.series(kReload, "", {{"result", "failed"}});
  w.value(main_.config_reloads_failed.value());

  constexpr std::string_view kDns = "outrigger_dns_resolutions_total";
  w.family(kDns, "counter", "DNS resolutions of cluster endpoints, by result.");
  w.series(kDns, "", {{"result", "ok"}});
  w.value(main_.dns_resolutions_ok.value());
  w.series(kDns, "", {{"result", "failed"}});
  w.value(main_.dns_resolutions_failed.value());

  w.family("outrigger_draining", "gauge", "1 while the proxy drains before exiting, else 0.");
  w.series("outrigger_draining", "", {});
  w.value(main_.draining.value());

  w.family("outrigger_access_log_dropped_total", "counter",
           "Access log lines dropped because the log sink was full.");
  w.series("outrigger_access_log_dropped_total", "", {});
  w.value(main_.access_log_dropped.value());

  w.family("outrigger_build_info", "gauge", "Build information; the value is always 1.");
  w.series("outrigger_build_info", "", {{"version", OUTRIGGER_VERSION}});
  w.value(uint64_t{1});

  const ProcessInfo p = read_process_info();
  if (p.cpu_seconds >= 0) {
    w.family("process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
    w.series("process_cpu_seconds_total", "", {});
    w.value(p.cpu_seconds);
  }
  if (p.resident_bytes >= 0) {
    w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    w.series("process_resident_memory_bytes", "", {});
    w.value(p.resident_bytes);
  }
  if (p.open_fds >= 0) {
    w.family("process_open_fds", "gauge", "Number of open file descriptors.");
    w.series("process_open_fds", "", {});
    w.value(p.open_fds);
  }
  if (p.max_fds >= 0) {
    w.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    w.series("process_max_fds", "", {});
    w.value(p.max_fds);
  }
  if (p.start_time_seconds >= 0) {
    w.family("process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
    w.series("process_start_time_seconds", "", {});
    w.value(p.start_time_seconds);
  }
  return out;
}

}  // namespace outrigger::stats
