#include "proxy/upstream/pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace outrigger::upstream {

namespace {
// Probing costs a syscall, so only connections idle for longer than this are probed; a recently
// used one that turns out closed is retried by the caller when the request can be replayed.
constexpr auto kProbeAfter = std::chrono::seconds(1);

bool still_open(tcp::socket& s) {
  char c;
  const ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
}  // namespace

ClusterPool::~ClusterPool() {
  for (auto* w : waiters_) w->cancel();
}

std::unique_ptr<Connection> ClusterPool::take_idle(const tcp::endpoint& ep, Clock::time_point now) {
  for (auto& [endpoint, conns] : idle_) {
    if (endpoint != ep) continue;
    while (!conns.empty()) {
      std::unique_ptr<Connection> c = std::move(conns.back());
      conns.pop_back();
      --idle_count_;
      stats_->cx_idle.sub();
      if (now - c->idle_since < kProbeAfter || still_open(c->socket)) return c;
      boost::system::error_code ignored;
      c->socket.close(ignored);
      --open_;
      stats_->cx_active.sub();
    }
    return nullptr;
  }
  return nullptr;
}

bool ClusterPool::reserve_new() {
  if (open_ >= max_connections_ && idle_count_ > 0) {
    // Make room by closing the oldest idle connection to some other endpoint.
    for (auto& [endpoint, conns] : idle_) {
      if (conns.empty()) continue;
      boost::system::error_code ignored;
      conns.front()->socket.close(ignored);
      conns.erase(conns.begin());
      --idle_count_;
      --open_;
      stats_->cx_idle.sub();
      stats_->cx_active.sub();
      break;
    }
  }
  if (open_ >= max_connections_) return false;
  ++open_;
  stats_->cx_active.add();
  return true;
}

void ClusterPool::unreserve() {
  --open_;
  stats_->cx_active.sub();
  wake_one();
}

void ClusterPool::release(std::unique_ptr<Connection> c, bool reusable, Clock::time_point now) {
  if (!c) return;
  if (!reusable || !c->socket.is_open()) {
    boost::system::error_code ignored;
    c->socket.close(ignored);
    unreserve();
    return;
  }
  c->idle_since = now;
  auto it = std::find_if(idle_.begin(), idle_.end(), [&](auto& p) { return p.first == c->endpoint; });
  if (it == idle_.end()) {
    idle_.emplace_back(c->endpoint, std::vector<std::unique_ptr<Connection>>{});
    it = idle_.end() - 1;
  }
  it->second.push_back(std::move(c));
  ++idle_count_;
  stats_->cx_idle.add();
  wake_one();
}

void ClusterPool::remove_waiter(boost::asio::steady_timer* t) {
  auto it = std::find(waiters_.begin(), waiters_.end(), t);
  if (it != waiters_.end()) waiters_.erase(it);
}

void ClusterPool::wake_one() {
  if (waiters_.empty()) return;
  boost::asio::steady_timer* t = waiters_.front();
  waiters_.pop_front();
  t->cancel();
}

void ClusterPool::expire_idle(Clock::time_point now) {
  for (auto& [endpoint, conns] : idle_) {
    // Oldest first: the vector is used as a LIFO stack, so expired ones sit at the front.
    size_t expired = 0;
    while (expired < conns.size() && now - conns[expired]->idle_since >= idle_timeout_) ++expired;
    for (size_t i = 0; i < expired; ++i) {
      boost::system::error_code ignored;
      conns[i]->socket.close(ignored);
    }
    if (expired > 0) {
      conns.erase(conns.begin(), conns.begin() + static_cast<std::ptrdiff_t>(expired));
      idle_count_ -= expired;
      open_ -= expired;
      stats_->cx_idle.sub(static_cast<int64_t>(expired));
      stats_->cx_active.sub(static_cast<int64_t>(expired));
    }
  }
  std::erase_if(idle_, [](auto& p) { return p.second.empty(); });
}

}  // namespace outrigger::upstream
