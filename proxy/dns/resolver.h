// Asynchronous DNS for dns clusters: resolves names with c-ares on the main io_context and keeps
// a set of cluster targets resolved, reporting each change of a target's endpoint set.
//
// Thread affinity: main-thread affine. A Resolver or Refresher belongs to one io_context that is
// run by exactly one thread (the proxy's main thread); every call must be made on that thread and
// every callback runs there, never inside the call that started it. Nothing here blocks: c-ares
// sockets are watched with non-owning posix::stream_descriptors and c-ares timeouts with a
// steady_timer. `resolve()` asks for A and AAAA separately (not ares_gethostbyname) because only
// the raw answers carry the record TTL, which drives re-resolution. A Refresher never empties a
// working target because DNS failed: on error it keeps the last good set and retries after
// min_ttl, doubling up to a small cap. Workers never see this module; the caller turns
// `on_change` into a new immutable snapshot and posts it to them.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/model.h"

struct ares_channeldata;

namespace outrigger::dns {

struct Resolution {
  std::vector<boost::asio::ip::address> addresses;  // A then AAAA, sorted, no duplicates
  std::chrono::seconds ttl{0};                      // smallest record TTL of the answer
};

using ResolveResult = std::expected<Resolution, std::string>;
using ResolveCallback = std::function<void(ResolveResult)>;

struct ResolverOptions {
  std::vector<config::HostPort> servers;  // IP literals, port 0 = 53; empty = /etc/resolv.conf
  // Per-server timeout of the first try; c-ares 1.18 doubles it on each later round, so one silent
  // server with 200 ms and 2 tries fails after ~600 ms (DnsResolverTest.SilentServerTimesOut...).
  // A and AAAA run in parallel: a resolution takes about as long as one query.
  std::chrono::milliseconds timeout{2'000};
  int tries = 2;  // attempts per server
};

ResolverOptions resolver_options(const config::Dns& dns);

// One c-ares channel. Destroying it with queries in flight is safe: each pending callback still
// runs exactly once (posted, with an error), provided the io_context keeps running. The
// io_context must outlive the Resolver.
class Resolver {
 public:
  // Fails on a server that is not an IP literal or when c-ares cannot initialise.
  static std::expected<std::unique_ptr<Resolver>, std::string> create(boost::asio::io_context& io,
                                                                      ResolverOptions options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Queries A and AAAA for `name` (no search domains). An IP literal completes without a query
  // (ttl = kLiteralTtl). NXDOMAIN, no records, timeout or any server error is an error string
  // that starts with the name. A hard error on one family fails the whole resolution even if the
  // other family answered, so that a flaky server cannot shrink a dual-stack set.
  void resolve(std::string name, ResolveCallback cb);

  static constexpr std::chrono::seconds kLiteralTtl{86'400};
  // Names found in the hosts file are looked up again after this long (the file may change).
  static constexpr std::chrono::seconds kHostsFileTtl{30};

  uint64_t queries_sent() const { return queries_sent_; }  // DNS questions (A and AAAA count 2)
  size_t in_flight() const { return in_flight_; }          // resolutions awaiting an answer

 private:
  struct Watch;
  struct Query;
  Resolver(boost::asio::io_context& io);
  static void on_sock_state(void* data, int fd, int readable, int writable);
  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen,
                        bool aaaa);
  void finish(Query* q);
  bool lookup_hosts_file(const std::string& name, Resolution* out);
  void arm(const std::shared_ptr<Watch>& w);
  void process(const std::shared_ptr<Watch>& w, bool write);
  void update_timer();

  boost::asio::io_context& io_;
  ares_channeldata* channel_ = nullptr;
  std::unordered_map<int, std::shared_ptr<Watch>> watches_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<int> alive_;  // handlers hold a weak_ptr: a handler queued before ~Resolver
                                // must not touch it after
  uint64_t queries_sent_ = 0;
  size_t in_flight_ = 0;
};

// Per-target state for an admin page.
struct TargetStatus {
  std::string key;
  config::HostPort target;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // last good set (empty before any)
  std::string last_error;                                 // empty after a success
  uint64_t resolutions_ok = 0;
  uint64_t resolutions_failed = 0;
  uint32_t consecutive_failures = 0;
  std::chrono::seconds ttl{0};  // record TTL of the last good answer
  bool resolving = false;
  std::chrono::steady_clock::time_point next_refresh{};  // unset while resolving or stopped
};

// Keeps targets resolved and calls on_change(key, endpoints) whenever a key's endpoint set
// changes, including its first resolution. Re-resolves after the record TTL clamped to
// [min_ttl, max_ttl]. The Resolver must outlive the Refresher; on_change may call add() and
// remove() but must not destroy the Refresher.
class Refresher {
 public:
  using Endpoints = std::vector<boost::asio::ip::tcp::endpoint>;
  using OnChange = std::function<void(const std::string& key, Endpoints endpoints)>;
  // Called after every completed resolution, for counters such as MainStats::dns_resolutions_*.
  using OnResult = std::function<void(const std::string& key, bool ok)>;

  // Longest wait between retries after consecutive failures (unless min_ttl is longer).
  static constexpr std::chrono::milliseconds kMaxRetryBackoff{30'000};
  // Floor under every wait, so that a min_ttl of 0 and a TTL-0 record cannot spin.
  static constexpr std::chrono::milliseconds kMinInterval{100};

  Refresher(boost::asio::io_context& io, Resolver& resolver, OnChange on_change,
            OnResult on_result = {});
  ~Refresher();
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // Adding an existing key with the same target and refresh is a no-op; a new refresh keeps the
  // key's state and re-resolves now; a new target starts the key over as if it were new.
  void add(std::string key, config::HostPort target, config::DnsRefresh refresh);
  void remove(const std::string& key);
  void start();  // resolves every target now, then on its own schedule
  void stop();   // cancels timers and ignores answers still in flight; keeps endpoints

  std::vector<TargetStatus> snapshot() const;  // ordered by key
  bool running() const { return running_; }

 private:
  struct Target;
  void resolve_now(const std::shared_ptr<Target>& t);
  void on_resolved(const std::shared_ptr<Target>& t, uint64_t generation, ResolveResult r);
  void schedule(const std::shared_ptr<Target>& t, std::chrono::milliseconds delay);

  boost::asio::io_context& io_;
  Resolver& resolver_;
  OnChange on_change_;
  OnResult on_result_;
  std::map<std::string, std::shared_ptr<Target>> targets_;
  bool running_ = false;
};

}  // namespace outrigger::dns
