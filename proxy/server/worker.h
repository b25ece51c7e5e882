// A worker: one thread, one io_context, its own SO_REUSEPORT acceptors, connection pools,
// buffers, stats shard and access-log buffer. A connection never changes worker.
//
// Thread affinity: every member is worker-local except the few entry points documented as
// "any thread", which only post to the worker's io_context or read atomics.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/base/buffer.h"
#include "proxy/server/access_log.h"
#include "proxy/aws/sigv4.h"
#include "proxy/server/snapshot.h"
#include "proxy/tls/context.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/h2_pool.h"
#include "proxy/upstream/pool.h"

namespace outrigger::server {

using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

class DownstreamConnection;

// protocol auto-by-alpn: what an endpoint negotiated on its last new connection.
enum class AlpnSeen : uint8_t { kUnknown, kHttp1, kHttp2 };

// A worker's view of one cluster: its load balancer, outlier detector and retry budget.
struct ClusterRuntime {
  upstream::LoadBalancer lb;
  std::unique_ptr<upstream::OutlierDetector> od;  // null = outlier detection off
  upstream::RetryBudget budget;
  bool has_budget = false;
  uint64_t generation = 0;  // of the snapshot last assigned
  uint64_t od_generation = UINT64_MAX;
  int64_t ejected_reported = 0;
  // protocol auto-by-alpn only (untouched otherwise): per endpoint address, the protocol its last
  // new TLS connection negotiated; absent = unknown. Kept across snapshots (an address that
  // leaves the cluster and comes back is still the same server); bounded by kMaxAlpnSeen.
  std::vector<std::pair<tcp::endpoint, AlpnSeen>> alpn_seen;
  static constexpr size_t kMaxAlpnSeen = 4096;
  AlpnSeen alpn_of(const tcp::endpoint& ep) const noexcept {
    for (const auto& [e, p] : alpn_seen) {
      if (e == ep) return p;
    }
    return AlpnSeen::kUnknown;
  }
  void set_alpn(const tcp::endpoint& ep, AlpnSeen p) {
    for (auto it = alpn_seen.begin(); it != alpn_seen.end(); ++it) {
      if (it->first != ep) continue;
      if (p == AlpnSeen::kUnknown) {
        alpn_seen.erase(it);
      } else {
        it->second = p;
      }
      return;
    }
    if (p == AlpnSeen::kUnknown) return;
    if (alpn_seen.size() >= kMaxAlpnSeen) alpn_seen.clear();  // churn: relearn by probing
    alpn_seen.emplace_back(ep, p);
  }
};

class Worker {
 public:
  Worker(uint32_t index, stats::Shard& stats, AccessLogSink* access_log);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Main thread, before start(): the acceptors this worker serves, one per listener, bound on
  // this worker's io_context.
  void add_acceptor(size_t listener_index, std::unique_ptr<tcp::acceptor> acceptor);
  boost::asio::io_context& io() { return io_; }

  // Any thread.
  void start(std::shared_ptr<const Snapshot> first);
  void post_snapshot(std::shared_ptr<const Snapshot> s);
  void post_drain();            // keep-alive responses get Connection: close; idle ones close
  void post_close_listeners();  // accept what is queued, then close the acceptors
  void stop();                  // ends the thread (after drain or at the drain timeout)
  size_t active_connections() const { return active_.load(std::memory_order_relaxed); }

  // Worker thread.
  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  upstream::ClusterPool& pool(const ClusterState& cluster);
  // The cluster's HTTP/2 connections (protocol: http2).
  upstream::H2Pool& h2_pool(const ClusterState& cluster);
  // The cluster's balancer state, brought up to date with the snapshot, health and ejections.
  ClusterRuntime& runtime(const ClusterState& cluster, Clock::time_point now);
  base::BufferPool& buffers() { return buffers_; }
  // Resumable TLS sessions of upstream connections, by (endpoint, SNI).
  tls::ClientSessionCache& tls_sessions() { return tls_sessions_; }
  // SigV4/SigV4A signer with its per-worker signing-key cache.
  aws::Signer& signer() { return signer_; }
  stats::Shard& stats() { return stats_; }
  AccessLogBuffer& access_log() { return access_log_; }
  bool draining() const { return draining_; }
  uint32_t index() const { return index_; }
  // Fast per-worker random for request ids.
  uint64_t random() noexcept;

  // A connection not made by an acceptor (an HTTP/2 stream's): counted like accepted ones, so
  // stopping waits for it to unwind. keep: kept alive until it ends.
  void spawn_stream(std::unique_ptr<DownstreamConnection> c, std::shared_ptr<void> keep);

  void link(DownstreamConnection* c);
  void unlink(DownstreamConnection* c);

 private:
  tls::ClientSessionCache tls_sessions_;
  aws::Signer signer_;
  boost::asio::awaitable<void> accept_loop(size_t listener_index, tcp::acceptor& acceptor);
  void tick();
  void schedule_tick();
  void finish_stop(int polls);

  uint32_t index_;
  // One thread runs it, and every socket on it is used only from that thread (acceptors are
  // opened before the thread starts; everything else is created by the worker's own code), so
  // the reactor's per-socket I/O lock is not needed. The scheduler keeps its lock: other threads
  // post snapshots and drain/stop requests.
  boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::thread thread_;
  stats::Shard& stats_;
  AccessLogBuffer access_log_;
  base::BufferPool buffers_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<std::pair<size_t, std::unique_ptr<tcp::acceptor>>> acceptors_;
  std::unordered_map<std::string, std::unique_ptr<upstream::ClusterPool>> pools_;
  std::unordered_map<std::string, std::unique_ptr<ClusterRuntime>> runtimes_;
  std::unordered_map<std::string, std::unique_ptr<upstream::H2Pool>> h2_pools_;
  boost::asio::steady_timer tick_timer_{io_};
  // The per-cluster objects above for the cluster states requests use, by address: a request
  // asks for two of them (its pool and runtime), and each name lookup hashed the cluster's name
  // (about 1.3 % of an h2c request's instructions, 2.7 % of an HTTP/1.1 one). Cleared when the
  // worker takes a new snapshot: a state's address is only reused by a later snapshot's state,
  // which this worker sees after that. An entry whose slot another state takes is just looked up
  // again.
  struct ClusterCache {
    const ClusterState* key = nullptr;
    ClusterRuntime* runtime = nullptr;
    upstream::ClusterPool* pool = nullptr;
    upstream::H2Pool* h2_pool = nullptr;
  };
  std::array<ClusterCache, 16> cluster_cache_{};
  ClusterCache& cache_slot(const ClusterState& c) {
    ClusterCache& e = cluster_cache_[(reinterpret_cast<uintptr_t>(&c) >> 6) & 15];
    if (e.key != &c) e = ClusterCache{&c};
    return e;
  }
  DownstreamConnection* head_ = nullptr;  // intrusive list of live downstream connections
  std::atomic<size_t> active_{0};
  bool draining_ = false;
  bool stopped_ = false;
  uint64_t rng_state_;
  Clock::time_point last_idle_sweep_{};
};

}  // namespace outrigger::server
