#include "proxy/server/worker.h"

#include <malloc.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/base/log.h"
#include "proxy/net/drain_read.h"
#include "proxy/server/connection.h"

namespace outrigger::server {

namespace asio = boost::asio;

namespace {
constexpr auto kTick = std::chrono::milliseconds(50);
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
}  // namespace

Worker::Worker(uint32_t index, stats::Shard& stats, AccessLogSink* access_log)
    : index_(index), stats_(stats), access_log_(access_log) {
  rng_state_ = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
               (0x9e3779b97f4a7c15ull * (index + 1)) ^ reinterpret_cast<uintptr_t>(this);
}

Worker::~Worker() {
  stop();
  if (thread_.joinable()) thread_.join();
}

uint64_t Worker::random() noexcept {
  // splitmix64: fast, well mixed; request ids need uniqueness, not secrecy.
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void Worker::add_acceptor(size_t listener_index, std::unique_ptr<tcp::acceptor> acceptor) {
  acceptors_.emplace_back(listener_index, std::move(acceptor));
}

void Worker::start(std::shared_ptr<const Snapshot> first) {
  snapshot_ = std::move(first);
  for (auto& [index, acceptor] : acceptors_) {
    asio::co_spawn(io_, accept_loop(index, *acceptor), asio::detached);
  }
  schedule_tick();
  thread_ = std::thread([this] {
    const std::string name = "outrigger-w" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    const net::ThreadReactor bind(io_);
    io_.run();
  });
}

void Worker::post_snapshot(std::shared_ptr<const Snapshot> s) {
  asio::post(io_, [this, s = std::move(s)]() mutable {
    snapshot_ = std::move(s);
    cluster_cache_ = {};
  });
}

void Worker::post_drain() {
  asio::post(io_, [this] {
    draining_ = true;
    for (DownstreamConnection* c = head_; c != nullptr; c = c->next_) c->on_drain();
  });
}

void Worker::post_close_listeners() {
  asio::post(io_, [this] {
    for (auto& [index, acceptor] : acceptors_) {
      // Accept what the kernel already queued so no handshaken client is reset, then close.
      boost::system::error_code ec;
      acceptor->non_blocking(true, ec);
      for (int i = 0; i < 100'000; ++i) {
        tcp::socket s(io_);
        acceptor->accept(s, ec);
        if (ec) break;
        auto conn = std::make_unique<DownstreamConnection>(*this, index, std::move(s));
        conn->on_drain();
        active_.fetch_add(1, std::memory_order_relaxed);
        stats_.listener(snapshot_->listeners[index].stats_id).cx_active.add();
        stats_.listener(snapshot_->listeners[index].stats_id).cx_total.inc();
        asio::co_spawn(io_, DownstreamConnection::serve(std::move(conn)),
                       [this, index](std::exception_ptr) {
                         active_.fetch_sub(1, std::memory_order_relaxed);
                         stats_.listener(snapshot_->listeners[index].stats_id).cx_active.sub();
                       });
      }
      acceptor->close(ec);
    }
  });
}

void Worker::stop() {
  asio::post(io_, [this] {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ec;
    for (auto& [index, acceptor] : acceptors_) acceptor->close(ec);
    // Connections still open (drain timeout) are closed so their coroutines unwind normally and
    // give back buffers and pooled connections before the io_context goes away.
    for (DownstreamConnection* c = head_; c != nullptr; c = c->next_) c->abort();
    finish_stop(0);
  });
}

void Worker::finish_stop(int polls) {
  if (active_.load(std::memory_order_relaxed) == 0 || polls >= 1000) {
    access_log_.flush();
    cluster_cache_ = {};
    h2_pools_.clear();  // closes upstream HTTP/2 connections while the io_context is alive
    io_.stop();
    return;
  }
  tick_timer_.expires_after(std::chrono::milliseconds(1));
  tick_timer_.async_wait([this, polls](boost::system::error_code) { finish_stop(polls + 1); });
}

upstream::H2Pool& Worker::h2_pool(const ClusterState& cluster) {
  ClusterCache& e = cache_slot(cluster);
  if (e.h2_pool != nullptr) return *e.h2_pool;  // set up for this cluster state already
  upstream::H2PoolOptions o;
  // A few multiplexed connections carry what many HTTP/1.1 ones would.
  o.max_connections =
      std::max<uint32_t>(1, std::min<uint32_t>(cluster.cluster->max_connections, 16));
  o.connect_timeout = cluster.cluster->connect_timeout;
  o.connection.idle_timeout = cluster.cluster->idle_timeout;
  if (cluster.shared) {
    o.connection.breaker =
        std::shared_ptr<upstream::CircuitBreaker>(cluster.shared, &cluster.shared->breaker);
  }
  auto& slot = h2_pools_[cluster.cluster->name];
  if (!slot) slot = std::make_unique<upstream::H2Pool>(io_, o);
  slot->set_options(o);
  slot->set_stats(&stats_.cluster(cluster.stats_id));
  e.h2_pool = slot.get();
  return *slot;
}

upstream::ClusterPool& Worker::pool(const ClusterState& cluster) {
  ClusterCache& e = cache_slot(cluster);
  if (e.pool != nullptr) return *e.pool;  // its limits were set from this cluster state
  auto it = pools_.find(cluster.cluster->name);
  if (it == pools_.end()) {
    it = pools_
             .emplace(cluster.cluster->name, std::make_unique<upstream::ClusterPool>(
                                                 io_, &stats_.cluster(cluster.stats_id)))
             .first;
  }
  // Settings follow the newest config that used the pool (a reload may change them).
  it->second->set_limits(cluster.cluster->max_connections, cluster.cluster->idle_timeout);
  e.pool = it->second.get();
  return *it->second;
}

ClusterRuntime& Worker::runtime(const ClusterState& c, Clock::time_point now) {
  ClusterCache& e = cache_slot(c);
  if (e.runtime == nullptr) {
    auto& slot = runtimes_[c.cluster->name];
    if (!slot) slot = std::make_unique<ClusterRuntime>();
    e.runtime = slot.get();
  }
  ClusterRuntime& r = *e.runtime;
  bool refresh = false;
  // A request that still holds an older snapshot never rolls the state back.
  if (c.generation > r.generation) {
    r.generation = c.generation;
    r.lb.set_options(c.lb);
    r.lb.assign(c.lb_endpoints, c.local_zone);
    if (c.outlier) {
      if (!r.od) r.od = std::make_unique<upstream::OutlierDetector>(*c.outlier);
      r.od->set_options(*c.outlier);
      r.od->assign(c.endpoints, now);
    } else {
      r.od.reset();
    }
    r.has_budget = c.budget.has_value();
    if (c.budget) r.budget.set_options(*c.budget);
    refresh = true;
  }
  if (r.od && (r.od->sweep(now) || r.od->generation() != r.od_generation)) refresh = true;
  if (refresh) {
    const upstream::OutlierDetector* od = r.od.get();
    r.lb.refresh([&](uint32_t i) {
      return (i >= c.healthy.size() || c.healthy[i] != 0) && !(od && od->is_ejected(i, now));
    });
    if (od) {
      r.od_generation = od->generation();
      const auto ejected = static_cast<int64_t>(od->ejected_count());
      stats::ClusterStats& cs = stats_.cluster(c.stats_id);
      cs.ejected.add(ejected - r.ejected_reported);
      r.ejected_reported = ejected;
      if (c.shared && index_ < c.shared->worker_count) c.shared->views[index_].store(od->view());
    }
  }
  return r;
}

void Worker::spawn_stream(std::unique_ptr<DownstreamConnection> c, std::shared_ptr<void> keep) {
  active_.fetch_add(1, std::memory_order_relaxed);
  DownstreamConnection& conn = *c;  // the completion owns it: it outlives the exchange
  asio::co_spawn(io_, conn.stream_exchange(),
                 [this, c = std::move(c), keep = std::move(keep)](std::exception_ptr e) mutable {
                   c->finish_stream();  // also after an exception: the stream drops its pointer
                   c.reset();           // before `keep` lets the stream go
                   active_.fetch_sub(1, std::memory_order_relaxed);
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& x) {
                       log::error("stream failed", {{"error", x.what()}});
                     } catch (...) {
                     }
                   }
                 });
}

void Worker::link(DownstreamConnection* c) {
  c->next_ = head_;
  c->prev_ = nullptr;
  if (head_ != nullptr) head_->prev_ = c;
  head_ = c;
}

void Worker::unlink(DownstreamConnection* c) {
  if (c->prev_ != nullptr) c->prev_->next_ = c->next_;
  if (c->next_ != nullptr) c->next_->prev_ = c->prev_;
  if (head_ == c) head_ = c->next_;
  c->prev_ = c->next_ = nullptr;
}

asio::awaitable<void> Worker::accept_loop(size_t index, tcp::acceptor& acceptor) {
  asio::steady_timer backoff(io_);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    const ListenerState& ls = snapshot_->listeners[index];
    if (ec) {
      // EMFILE and friends: back off instead of spinning; the queued client waits.
      log::warn("accept failed", {{"listener", ls.listener->name}, {"error", ec.message()}});
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    stats::ListenerStats& lst = stats_.listener(ls.stats_id);
    if (static_cast<uint64_t>(lst.cx_active.value()) >= ls.listener->limits.max_connections) {
      stats_.limit(stats::Limit::kMaxConnections).inc();
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    lst.cx_active.add();
    lst.cx_total.inc();
    active_.fetch_add(1, std::memory_order_relaxed);
    auto conn = std::make_unique<DownstreamConnection>(*this, index, std::move(socket));
    if (draining_) conn->on_drain();
    const uint32_t stats_id = ls.stats_id;
    asio::co_spawn(io_, DownstreamConnection::serve(std::move(conn)),
                   [this, stats_id](std::exception_ptr e) {
                     active_.fetch_sub(1, std::memory_order_relaxed);
                     stats_.listener(stats_id).cx_active.sub();
                     if (e) {
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& x) {
                         log::error("connection ended by exception", {{"error", x.what()}});
                       }
                     }
                   });
  }
}

void Worker::schedule_tick() {
  tick_timer_.expires_after(kTick);
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;  // finish_stop reuses the timer
    tick();
    schedule_tick();
  });
}

void Worker::tick() {
  const auto now = Clock::now();
  for (DownstreamConnection* c = head_; c != nullptr;) {
    DownstreamConnection* next = c->next_;  // on_tick only cancels; nothing is destroyed here
    c->on_tick(now);
    c = next;
  }
  access_log_.flush();
  if (now - last_idle_sweep_ >= std::chrono::seconds(1)) {
    last_idle_sweep_ = now;
    for (auto& [name, pool] : pools_) pool->expire_idle(now);
    // Many buffers went back to the allocator (a burst of clients went idle): return the memory.
    if (buffers_.take_released() >= 64) malloc_trim(0);
  }
}

}  // namespace outrigger::server
