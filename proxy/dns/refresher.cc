#include <algorithm>

#include "proxy/dns/resolver.h"

namespace outrigger::dns {

using std::chrono::milliseconds;

// Answers and timer expiries carry the generation they were started in; add() of a new target
// and stop() bump it so that whatever was in flight before is ignored.
struct Refresher::Target {
  explicit Target(boost::asio::io_context& io) : timer(io) {}
  std::string key;
  config::HostPort target;
  config::DnsRefresh refresh;
  Endpoints endpoints;
  bool reported = false;  // on_change has seen this key
  std::string last_error;
  uint64_t ok = 0;
  uint64_t failed = 0;
  uint32_t consecutive_failures = 0;
  std::chrono::seconds ttl{0};
  bool resolving = false;
  uint64_t generation = 0;
  std::chrono::steady_clock::time_point next_refresh{};
  boost::asio::steady_timer timer;
};

Refresher::Refresher(boost::asio::io_context& io, Resolver& resolver, OnChange on_change,
                     OnResult on_result)
    : io_(io),
      resolver_(resolver),
      on_change_(std::move(on_change)),
      on_result_(std::move(on_result)) {}

Refresher::~Refresher() = default;

void Refresher::add(std::string key, config::HostPort target, config::DnsRefresh refresh) {
  auto it = targets_.find(key);
  if (it != targets_.end()) {
    auto& t = it->second;
    bool same_target = t->target.host == target.host && t->target.port == target.port;
    bool same_refresh =
        t->refresh.min_ttl == refresh.min_ttl && t->refresh.max_ttl == refresh.max_ttl;
    if (same_target && same_refresh) return;
    if (same_target) {
      t->refresh = refresh;
      ++t->generation;
      t->timer.cancel();
      if (running_) resolve_now(t);
      return;
    }
    targets_.erase(it);  // its timer and in-flight answer die with it
  }
  auto t = std::make_shared<Target>(io_);
  t->key = key;
  t->target = std::move(target);
  t->refresh = refresh;
  auto& slot = targets_[std::move(key)];
  slot = t;
  if (running_) resolve_now(t);
}

void Refresher::remove(const std::string& key) { targets_.erase(key); }

void Refresher::start() {
  if (running_) return;
  running_ = true;
  for (auto& [key, t] : targets_) resolve_now(t);
}

void Refresher::stop() {
  running_ = false;
  for (auto& [key, t] : targets_) {
    ++t->generation;
    t->timer.cancel();
    t->resolving = false;
    t->next_refresh = {};
  }
}

std::vector<TargetStatus> Refresher::snapshot() const {
  std::vector<TargetStatus> out;
  out.reserve(targets_.size());
  for (const auto& [key, t] : targets_) {
    out.push_back(TargetStatus{.key = key,
                               .target = t->target,
                               .endpoints = t->endpoints,
                               .last_error = t->last_error,
                               .resolutions_ok = t->ok,
                               .resolutions_failed = t->failed,
                               .consecutive_failures = t->consecutive_failures,
                               .ttl = t->ttl,
                               .resolving = t->resolving,
                               .next_refresh = t->next_refresh});
  }
  return out;
}

void Refresher::resolve_now(const std::shared_ptr<Target>& t) {
  t->resolving = true;
  t->next_refresh = {};
  // The weak_ptr proves `this` alive too: only targets_ owns a Target.
  resolver_.resolve(t->target.host, [this, weak = std::weak_ptr<Target>(t),
                                     generation = t->generation](ResolveResult r) {
    if (auto t = weak.lock()) on_resolved(t, generation, std::move(r));
  });
}

void Refresher::on_resolved(const std::shared_ptr<Target>& t, uint64_t generation,
                            ResolveResult r) {
  if (generation != t->generation || !running_) return;
  t->resolving = false;
  const milliseconds min_ttl = std::max(t->refresh.min_ttl, kMinInterval);
  const milliseconds max_ttl = std::max(t->refresh.max_ttl, min_ttl);
  bool changed = false;
  milliseconds delay;
  if (r) {
    ++t->ok;
    t->last_error.clear();
    t->consecutive_failures = 0;
    t->ttl = r->ttl;
    Endpoints eps;
    eps.reserve(r->addresses.size());
    for (const auto& a : r->addresses) eps.emplace_back(a, t->target.port);
    std::sort(eps.begin(), eps.end());
    eps.erase(std::unique(eps.begin(), eps.end()), eps.end());
    if (!t->reported || eps != t->endpoints) {
      t->endpoints = std::move(eps);
      t->reported = true;
      changed = true;
    }
    delay = std::clamp<milliseconds>(std::chrono::duration_cast<milliseconds>(r->ttl), min_ttl,
                                     max_ttl);
  } else {
    ++t->failed;
    t->last_error = std::move(r.error());
    ++t->consecutive_failures;
    // min_ttl, doubling per consecutive failure, capped (a 30 s cap keeps a recovered server
    // from waiting out a long max_ttl before anyone notices).
    const milliseconds cap = std::max(min_ttl, std::min(max_ttl, kMaxRetryBackoff));
    delay = min_ttl;
    for (uint32_t i = 1; i < t->consecutive_failures && delay < cap; ++i) delay *= 2;
    delay = std::min(delay, cap);
  }
  schedule(t, delay);

  // Last: the callbacks may add or remove targets, this one included.
  const std::string key = t->key;
  const bool ok = r.has_value();
  Endpoints eps = changed ? t->endpoints : Endpoints{};
  // Endpoints first: readiness (decided in on_result) must never be announced before the
  // snapshot with the addresses it waited for is published.
  if (changed && on_change_) on_change_(key, std::move(eps));
  if (on_result_) on_result_(key, ok);
}

void Refresher::schedule(const std::shared_ptr<Target>& t, milliseconds delay) {
  t->next_refresh = std::chrono::steady_clock::now() + delay;
  t->timer.expires_at(t->next_refresh);
  t->timer.async_wait([this, weak = std::weak_ptr<Target>(t),
                       generation = t->generation](boost::system::error_code ec) {
    if (ec) return;
    auto t = weak.lock();
    if (!t || generation != t->generation || !running_ || t->resolving) return;
    resolve_now(t);
  });
}

}  // namespace outrigger::dns
