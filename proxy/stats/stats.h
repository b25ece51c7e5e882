// Our own metrics: per-worker shards written without locks, merged into Prometheus text on scrape.
//
// Thread affinity: a Shard has exactly one writer (its worker thread, or the main thread for
// Registry::main_shard()) and any number of readers (the scrape on the main thread).
// Cells are std::atomic with relaxed load+store (no read-modify-write), so a write is a plain
// add on x86 and a scrape never tears a value. Ids are handed out by the Registry on the main
// thread, never reused, and bounded (kMax*), so label cardinality is bounded by construction.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace outrigger::stats {

class Counter {
 public:
  void inc(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Per-shard gauges are summed on scrape, so a worker adds and subtracts only its own share.
class Gauge {
 public:
  void add(int64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(int64_t n = 1) noexcept { add(-n); }
  void set(int64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
  int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Latency histogram in seconds with fixed bucket bounds (le) shared by every histogram.
class Histogram {
 public:
  static constexpr std::array<double, 16> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  // Negative durations count as zero.
  void observe(std::chrono::nanoseconds d) noexcept;
  // Non-cumulative bucket counts; index kBounds.size() is the +Inf overflow bucket.
  uint64_t bucket(size_t i) const noexcept { return buckets_[i].value(); }
  // The sum of the buckets rather than a separate cell: one store less per observation, and a
  // scrape taken mid-observe still shows _count equal to the +Inf bucket.
  uint64_t count() const noexcept;
  uint64_t sum_ns() const noexcept { return sum_ns_.value(); }

 private:
  std::array<Counter, kBounds.size() + 1> buckets_;
  Counter sum_ns_;
};

enum class CodeClass : uint8_t { k1xx, k2xx, k3xx, k4xx, k5xx, kCount };
constexpr CodeClass code_class(int status) noexcept {
  return status < 200   ? CodeClass::k1xx
         : status < 300 ? CodeClass::k2xx
         : status < 400 ? CodeClass::k3xx
         : status < 500 ? CodeClass::k4xx
                        : CodeClass::k5xx;
}
constexpr size_t kCodeClasses = static_cast<size_t>(CodeClass::kCount);

// Limit hits; label limit="<name>" with the names in limit_name().
enum class Limit : uint8_t {
  kHeaderBytes,          // 431
  kHeaderCount,          // 431
  kBodyBytes,            // 413
  kHeaderTimeout,        // 408
  kIdleTimeout,          // keep-alive downstream closed
  kMaxConnections,       // listener accept paused
  kUpstreamHeaderBytes,  // upstream response head too large -> 502
  kPoolWait,             // request waited for a pooled connection (cluster max_connections)
  kCount
};
std::string_view limit_name(Limit l) noexcept;

// Upstream errors; label reason="<name>" with the names in upstream_error_name().
enum class UpstreamError : uint8_t {
  kConnectTimeout,   // 503
  kConnectRefused,   // 502
  kConnectFailed,    // other connect errors, 502
  kReset,            // reset/EOF before a complete response, 502
  kResponseTimeout,  // 504
  kProtocol,         // malformed response, 502
  kPoolTimeout,      // no connection within connect_timeout at max_connections, 503
  kNoEndpoint,       // cluster has no resolved endpoint, 503
  kTlsHandshake,     // TLS origination failed (reason in the TLS error counter), 503
  kSigning,          // no AWS credentials or region, or a body that cannot be signed
  kAlpnChanged,      // protocol auto-by-alpn: an endpoint negotiated another protocol than before
  kCount
};
std::string_view upstream_error_name(UpstreamError e) noexcept;

// Label values of outrigger_upstream_alpn_total, indexes of ClusterStats::alpn.
inline constexpr std::array<std::string_view, 3> kAlpnNames = {"h2", "http/1.1", "none"};

// Bad downstream requests answered 400 (smuggling shapes and other malformed input).
enum class BadRequest : uint8_t { kMalformed, kSmuggling, kBadVersion, kCount };
std::string_view bad_request_name(BadRequest b) noexcept;

// Failed TLS handshakes, both sides; label reason="<name>" with the names in tls_error_name(),
// which are the reasons proxy/tls reports (plus handshake_timeout).
enum class TlsError : uint8_t {
  kNotTls,               // plaintext on a TLS port
  kNoClientCertificate,  // required but not sent
  kProtocolVersion,      // e.g. TLS 1.1
  kNoSharedCipher,
  kUnknownCa,
  kExpired,
  kNotYetValid,
  kSanMismatch,
  kPeerAlert,  // the peer refused us (e.g. our certificate)
  kEof,        // closed mid-handshake
  kHandshakeTimeout,
  kHandshakeFailed,  // anything else
  kCount
};
std::string_view tls_error_name(TlsError e) noexcept;
TlsError tls_error_from_reason(std::string_view reason) noexcept;

// Route authorization denials (403); label reason="no_verified_identity" | "not_allowed".
enum class AuthzDenial : uint8_t { kNoVerifiedIdentity, kNotAllowed, kCount };
std::string_view authz_denial_name(AuthzDenial d) noexcept;

// Why a failed attempt was not retried (or that it was); label reason="<name>".
enum class RetryOutcome : uint8_t {
  kRetried,            // another attempt was made
  kExhausted,          // num_retries used up
  kNotIdempotent,      // the method may not be replayed once the upstream may have seen it
  kBodyNotReplayable,  // the request body outgrew the replay buffer
  kBudgetExhausted,    // the cluster's retry budget (or max_retries breaker) said no
  kRetryAfterTooLong,  // Retry-After beyond retry_after_max, or past the request deadline
  kCount
};
std::string_view retry_outcome_name(RetryOutcome r) noexcept;

// Circuit breaker overflows; label threshold="connections" | "pending" | "requests" | "retries".
inline constexpr size_t kBreakerThresholds = 4;
// Outlier ejections; label reason="consecutive_5xx" | "consecutive_gateway_failure" |
// "consecutive_local_origin_failure".
inline constexpr size_t kEjectReasons = 3;

struct TlsStats {
  Counter handshakes;  // completed
  Counter resumed;     // of which resumed a session
  std::array<Counter, static_cast<size_t>(TlsError::kCount)> errors;
};

// HTTP/2 downstream events, label event="<name>" with the names in h2_event_name(): streams, and
// each abuse limit or protocol error that reset a stream or ended a connection.
inline constexpr size_t kH2Events = 13;
std::string_view h2_event_name(size_t i) noexcept;

struct ListenerStats {
  Gauge cx_active;
  Counter h2_connections;
  std::array<Counter, kH2Events> h2;
  Counter cx_total;
  Counter no_route;  // 404 for lack of a route
  Counter upgrade_refused;  // a WebSocket handshake refused (a body, or no HTTP/1.1 cluster)
  Gauge tunnels_active;     // WebSocket connections joined to their upstream
  std::array<Counter, static_cast<size_t>(BadRequest::kCount)> bad_requests;
  TlsStats tls;
};

// Keyed by (listener, route): downstream requests and their latency.
struct RouteStats {
  std::array<Counter, kCodeClasses> rq;
  Histogram duration;  // first byte of request head to last byte of response
  std::array<Counter, static_cast<size_t>(AuthzDenial::kCount)> authz_denied;
};

struct ClusterStats {
  std::array<Counter, kCodeClasses> rq;  // upstream responses by class
  Counter rq_total;                      // upstream requests sent
  Counter cx_total;                      // connections opened
  Gauge cx_active;                       // open connections (busy + idle)
  Gauge cx_idle;                         // idle pooled connections
  Counter cx_reused;                     // requests sent on a reused connection
  Gauge rq_pending;                      // requests waiting for a connection
  std::array<Counter, static_cast<size_t>(UpstreamError::kCount)> errors;
  Histogram duration;  // request sent to last byte of response
  TlsStats tls;        // origination
  // protocol auto-by-alpn: new TLS connections by the protocol negotiated (kAlpnNames order).
  std::array<Counter, 3> alpn;
  // resilience
  std::array<Counter, static_cast<size_t>(RetryOutcome::kCount)> retries;
  std::array<Counter, kBreakerThresholds> overflows;
  std::array<Counter, kEjectReasons> ejections;
  Counter ejections_overflow;  // refused by max_ejection_percent
  Gauge ejected;               // endpoints ejected now (per worker, summed)
  Counter lb_panic;            // picks made in panic mode
  Counter lb_cross_zone;       // picks outside the local zone
  Counter health_transitions_healthy;    // main thread
  Counter health_transitions_unhealthy;  // main thread
  Counter failover;            // requests sent to a lower-priority cluster of their route
};

constexpr uint32_t kMaxListeners = 256;
constexpr uint32_t kMaxRoutes = 4096;  // (listener, route) pairs
constexpr uint32_t kMaxClusters = 1024;

namespace detail {
// Anonymous private mapping: the kernel hands out zero-filled pages on first touch. Throws
// std::bad_alloc on failure.
void* map_zero_pages(size_t bytes);
void unmap_pages(void* p, size_t bytes) noexcept;

// A fixed array whose untouched pages cost no RSS. `new T[n]()` would run T's constructor over
// every element, writing zeros and faulting in the whole array (~1.1 MiB per shard, measured with
// mincore). The cells are lock-free atomics whose value-initialised state is all-zero bytes and
// whose destructor is trivial (static_asserts in stats.cc), so fresh zero pages already hold
// that state and no constructor runs (C++23 std::start_lifetime_as_array, which states this
// formally, is not in libstdc++ 12).
template <class T>
class ZeroPageArray {
 public:
  explicit ZeroPageArray(size_t n) : data_(static_cast<T*>(map_zero_pages(n * sizeof(T)))), n_(n) {}
  ~ZeroPageArray() { unmap_pages(data_, n_ * sizeof(T)); }
  ZeroPageArray(const ZeroPageArray&) = delete;
  ZeroPageArray& operator=(const ZeroPageArray&) = delete;
  T& operator[](size_t i) noexcept { return data_[i]; }
  const T& operator[](size_t i) const noexcept { return data_[i]; }

 private:
  T* data_;
  size_t n_;
};
}  // namespace detail

// One worker's cells. Arrays are sized to the kMax* bounds up front; untouched pages cost no RSS.
class Shard {
 public:
  Shard();
  ListenerStats& listener(uint32_t id) noexcept { return listeners_[id]; }
  RouteStats& route(uint32_t id) noexcept { return routes_[id]; }
  ClusterStats& cluster(uint32_t id) noexcept { return clusters_[id]; }
  Counter& limit(Limit l) noexcept { return limits_[static_cast<size_t>(l)]; }
  const ListenerStats& listener(uint32_t id) const noexcept { return listeners_[id]; }
  const RouteStats& route(uint32_t id) const noexcept { return routes_[id]; }
  const ClusterStats& cluster(uint32_t id) const noexcept { return clusters_[id]; }
  const Counter& limit(Limit l) const noexcept { return limits_[static_cast<size_t>(l)]; }

 private:
  detail::ZeroPageArray<ListenerStats> listeners_;
  detail::ZeroPageArray<RouteStats> routes_;
  detail::ZeroPageArray<ClusterStats> clusters_;
  std::array<Counter, static_cast<size_t>(Limit::kCount)> limits_;
};

// Stats written by the main thread only (reloads, DNS, drain).
struct MainStats {
  Counter config_reloads_ok;
  Counter config_reloads_failed;
  Counter dns_resolutions_ok;  // summed over clusters
  Counter dns_resolutions_failed;
  Gauge draining;              // 1 while draining
  Counter access_log_dropped;  // lines dropped because the log sink was full
};

// Owns the shards and the name -> id tables. id functions are main-thread only; a name keeps its
// id for the life of the process (a reload that keeps a route keeps its series).
// Returns UINT32_MAX when the bound is reached (config validation keeps configs below it).
// Shards 0..workers-1 belong to the workers; one more, main_shard(), to the main thread (health
// checks, DNS), so that every shard keeps a single writer.
class Registry {
 public:
  explicit Registry(uint32_t workers);
  uint32_t listener_id(std::string_view listener);
  uint32_t route_id(std::string_view listener, std::string_view route);
  uint32_t cluster_id(std::string_view cluster);

  // workers + 1 (the main thread's shard is last).
  uint32_t shard_count() const noexcept { return static_cast<uint32_t>(shards_.size()); }
  Shard& shard(uint32_t worker) noexcept { return *shards_[worker]; }
  Shard& main_shard() noexcept { return *shards_.back(); }
  MainStats& main() noexcept { return main_; }

  // Prometheus text exposition format 0.0.4 of every series, shards summed, plus
  // outrigger_build_info, process_* (resident memory, cpu seconds, open fds, start time).
  std::string render_prometheus() const;

 private:
  struct Names {
    std::unordered_map<std::string, uint32_t> ids;
    std::vector<std::vector<std::string>> labels;  // id -> label values in order
  };
  uint32_t intern(Names& names, uint32_t max, std::vector<std::string> labels);

  mutable std::mutex names_mu_;  // guards the name tables against a concurrent scrape
  Names listeners_, routes_, clusters_;
  std::vector<std::unique_ptr<Shard>> shards_;
  MainStats main_;
};

}  // namespace outrigger::stats
