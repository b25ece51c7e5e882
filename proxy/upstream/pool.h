// Per-worker upstream connection pools: keep-alive reuse per endpoint, a max-connections bound
// with a wait queue, round-robin endpoint choice, and idle expiry.
//
// Thread affinity: worker-local. A pooled connection never leaves its worker.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/net/tls_stream.h"
#include "proxy/upstream/circuit_breaker.h"
#include "proxy/stats/stats.h"

namespace outrigger::upstream {

using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Connection {
  explicit Connection(boost::asio::io_context& io) : socket(io) {}
  ~Connection() {
    if (breaker) breaker->release(Resource::kConnections);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // The cluster-wide max_connections slot this connection holds (null: none taken).
  std::shared_ptr<CircuitBreaker> breaker;
  tcp::socket socket;
  tcp::endpoint endpoint;
  std::string name;  // "ip:port", formatted once per connection for logs
  Clock::time_point idle_since{};
  uint64_t requests = 0;
  net::TlsStreamPtr tls;  // TLS origination; wraps `socket` (declared after it: destroyed first)
};

class ClusterPool {
 public:
  ClusterPool(boost::asio::io_context& io, stats::ClusterStats* stats) : io_(io), stats_(stats) {}
  ClusterPool(const ClusterPool&) = delete;
  ClusterPool& operator=(const ClusterPool&) = delete;
  ~ClusterPool();

  void set_limits(uint32_t max_connections, std::chrono::milliseconds idle_timeout) {
    max_connections_ = max_connections;
    idle_timeout_ = idle_timeout;
  }
  void set_stats(stats::ClusterStats* s) { stats_ = s; }
  stats::ClusterStats& stats() { return *stats_; }

  // Next endpoint in round-robin order; endpoints must be non-empty.
  const tcp::endpoint& pick(const std::vector<tcp::endpoint>& endpoints) {
    return endpoints[rr_++ % endpoints.size()];
  }
  // A live idle connection to ep, or null. Connections idle for long are probed first
  // (a peeked EOF means the upstream closed it while it sat in the pool).
  std::unique_ptr<Connection> take_idle(const tcp::endpoint& ep, Clock::time_point now);
  // Room for one more connection? Closes an idle connection to another endpoint if that makes room.
  bool reserve_new();
  std::unique_ptr<Connection> make_connection() { return std::make_unique<Connection>(io_); }
  // A connection reserved or taken goes back: pooled when reusable, else closed. Wakes a waiter.
  void release(std::unique_ptr<Connection> c, bool reusable, Clock::time_point now);
  // A reservation that never became a connection (connect failed).
  void unreserve();

  // Waiting for room: the waiter's timer is cancelled when a slot may be free.
  void add_waiter(boost::asio::steady_timer* t) { waiters_.push_back(t); }
  void remove_waiter(boost::asio::steady_timer* t);

  void expire_idle(Clock::time_point now);
  size_t open() const { return open_; }
  size_t idle() const { return idle_count_; }

 private:
  void wake_one();
  boost::asio::io_context& io_;
  stats::ClusterStats* stats_;
  uint32_t max_connections_ = 1024;
  std::chrono::milliseconds idle_timeout_{60'000};
  size_t rr_ = 0;
  size_t open_ = 0;        // reserved + busy + idle
  size_t idle_count_ = 0;
  std::vector<std::pair<tcp::endpoint, std::vector<std::unique_ptr<Connection>>>> idle_;
  std::deque<boost::asio::steady_timer*> waiters_;
};

}  // namespace outrigger::upstream
