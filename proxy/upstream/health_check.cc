#include "proxy/upstream/health_check.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <random>

#include "proxy/http/h1.h"
#include "proxy/net/tls_stream.h"

namespace outrigger::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxResponseHead = size_t{16} * 1024;

std::string host_port(const tcp::endpoint& ep) {
  const std::string ip = ep.address().to_string();
  return ep.address().is_v6() ? "[" + ip + "]:" + std::to_string(ep.port())
                              : ip + ":" + std::to_string(ep.port());
}

struct Probe {
  explicit Probe(asio::io_context& io) : socket(io), wait(io), deadline(io) {}
  void cancel() {
    stopped = true;
    wait.cancel();
    deadline.cancel();
    boost::system::error_code ignored;
    socket.close(ignored);
  }

  EndpointHealth h;
  size_t index = 0;
  bool stopped = false;
  bool timed_out = false;
  uint64_t check_seq = 0;  // tells a stale timeout (of a finished check) from the current one
  std::string request;
  tcp::socket socket;
  asio::steady_timer wait;      // between checks
  asio::steady_timer deadline;  // the timeout of the check in progress
  std::string buf;              // the response head, bounded
  std::unique_ptr<http::ResponseHead> head;
};

}  // namespace

struct HealthChecker::Core {
  Core(asio::io_context& i, HealthCheckOptions o, TransitionCallback t, CheckCallback c,
       uint64_t seed)
      : io(i), opts(std::move(o)), on_change(std::move(t)), on_check(std::move(c)), rng(seed) {}

  milliseconds random_upto(milliseconds m) {
    if (m.count() <= 0) return milliseconds(0);
    return milliseconds(std::uniform_int_distribution<int64_t>(0, m.count())(rng));
  }
  milliseconds next_wait() {
    const milliseconds pct(opts.interval.count() * opts.interval_jitter_percent / 100);
    return opts.interval + random_upto(opts.interval_jitter) + random_upto(pct);
  }
  CheckResult classify(int status) const {
    const auto in = [status](const std::vector<StatusRange>& rs) {
      return std::any_of(rs.begin(), rs.end(),
                         [status](const StatusRange& r) { return r.contains(status); });
    };
    if (in(opts.expected_statuses)) return CheckResult::kSuccess;
    if (in(opts.retriable_statuses)) return CheckResult::kRetriableStatus;
    return CheckResult::kUnexpectedStatus;
  }
  void apply(Probe& p, CheckResult r, int status);

  asio::io_context& io;
  HealthCheckOptions opts;
  TransitionCallback on_change;
  CheckCallback on_check;
  std::mt19937_64 rng;
  std::vector<std::shared_ptr<Probe>> probes;
};

void HealthChecker::Core::apply(Probe& p, CheckResult r, int status) {
  EndpointHealth& h = p.h;
  ++h.checks;
  h.last_result = r;
  h.last_status = status;
  const HealthState before = h.state;
  if (r == CheckResult::kSuccess) {
    ++h.successes;
    ++h.consecutive_successes;
    h.consecutive_failures = 0;
    if (h.state == HealthState::kUnknown ||
        (h.state == HealthState::kUnhealthy &&
         h.consecutive_successes >= std::max<uint32_t>(opts.healthy_threshold, 1))) {
      h.state = HealthState::kHealthy;
    }
  } else {
    ++h.failures;
    ++h.consecutive_failures;
    h.consecutive_successes = 0;
    if (h.state == HealthState::kUnknown ||
        (h.state == HealthState::kHealthy &&
         (r == CheckResult::kUnexpectedStatus ||
          h.consecutive_failures >= std::max<uint32_t>(opts.unhealthy_threshold, 1)))) {
      h.state = HealthState::kUnhealthy;
    }
  }
  // Copies: a callback may stop or destroy the checker, or replace the endpoints.
  const size_t index = p.index;
  const tcp::endpoint address = h.address;
  const HealthState after = h.state;
  if (on_check && !p.stopped) {
    CheckCallback cb = on_check;
    cb(index, r);
  }
  if (after != before && on_change && !p.stopped) {
    TransitionCallback cb = on_change;
    cb(HealthTransition{index, address, before, after, r});
  }
}

namespace {

struct Checked {
  CheckResult result;
  int status;
};

asio::awaitable<Checked> check_once(HealthChecker::Core& core, std::shared_ptr<Probe> p) {
  const uint64_t seq = ++p->check_seq;
  p->timed_out = false;
  p->deadline.expires_after(core.opts.timeout);
  p->deadline.async_wait([p, seq](const boost::system::error_code& ec) {
    if (ec || p->check_seq != seq || p->stopped) return;
    p->timed_out = true;
    boost::system::error_code ignored;
    p->socket.close(ignored);  // fails the pending connect/write/read at once
  });
  auto finish = [&](CheckResult r, int status) {
    p->deadline.cancel();
    boost::system::error_code ignored;
    p->socket.close(ignored);
    return Checked{r, status};
  };

  auto [cec] = co_await p->socket.async_connect(p->h.address, use_nothrow);
  if (cec) {
    co_return finish(p->timed_out ? CheckResult::kTimeout : CheckResult::kConnectFailure, 0);
  }
  // A TLS cluster's check verifies what its requests verify; the stream lives in this frame and
  // ends with the check (finish() closes the socket under it). No session cache: a check every
  // few seconds gains little from resumption, and a full handshake checks the whole chain.
  net::TlsStreamPtr tls;
  if (core.opts.tls) {
    std::string sni;
    if (std::shared_ptr<const tls::ClientTls> material = core.opts.tls(&sni)) {
      auto ssl = material->new_ssl(sni);
      if (!ssl) co_return finish(CheckResult::kTlsFailure, 0);
      tls = net::make_client_stream(p->socket, std::move(*ssl), std::move(material));
      const boost::system::error_code hec = co_await net::handshake(*tls, false);
      if (hec) co_return finish(p->timed_out ? CheckResult::kTimeout : CheckResult::kTlsFailure, 0);
    }
  }
  // (No co_await inside ?: : GCC 12 miscompiles it.)
  net::IoResult wrote;
  if (tls) {
    wrote = co_await net::write(*tls, asio::buffer(p->request));
  } else {
    wrote = co_await asio::async_write(p->socket, asio::buffer(p->request), use_nothrow);
  }
  if (const auto [wec, wn] = wrote; wec)
    co_return finish(p->timed_out ? CheckResult::kTimeout : CheckResult::kBadResponse, 0);

  if (p->buf.size() != kMaxResponseHead) p->buf.resize(kMaxResponseHead);
  if (!p->head) p->head = std::make_unique<http::ResponseHead>();
  http::HeadParser parser({kMaxResponseHead, http::kMaxHeaders});
  size_t len = 0;
  for (;;) {
    if (len > 0) {
      const auto r = parser.parse_response({p->buf.data(), len}, false, p->head.get());
      if (r == http::ParseResult::kError) co_return finish(CheckResult::kBadResponse, 0);
      if (r == http::ParseResult::kDone) {
        const int status = p->head->status;
        if (status >= 200) co_return finish(core.classify(status), status);
        // An interim (1xx) response: the final one follows.
        const size_t used = p->head->head_bytes;
        std::memmove(p->buf.data(), p->buf.data() + used, len - used);
        len -= used;
        parser.reset();
        continue;
      }
    }
    if (len == kMaxResponseHead) co_return finish(CheckResult::kBadResponse, 0);
    const asio::mutable_buffer room(p->buf.data() + len, kMaxResponseHead - len);
    net::IoResult got;
    if (tls) {
      got = co_await net::read_some(*tls, room);
    } else {
      got = co_await p->socket.async_read_some(room, use_nothrow);
    }
    const auto [rec, n] = got;
    if (rec || n == 0) {
      co_return finish(p->timed_out ? CheckResult::kTimeout : CheckResult::kBadResponse, 0);
    }
    len += n;
  }
}

asio::awaitable<void> run_probe(std::shared_ptr<HealthChecker::Core> core,
                                std::shared_ptr<Probe> p) {
  const milliseconds first = core->random_upto(core->opts.initial_jitter);
  if (first.count() > 0) {
    p->wait.expires_after(first);
    co_await p->wait.async_wait(use_nothrow);
  }
  // Bounded by stop(): every wait and every check ends when the probe is cancelled.
  while (!p->stopped) {
    const Checked c = co_await check_once(*core, p);
    if (p->stopped) break;
    core->apply(*p, c.result, c.status);
    if (p->stopped) break;
    p->wait.expires_after(core->next_wait());
    co_await p->wait.async_wait(use_nothrow);
  }
}

}  // namespace

std::string_view health_state_name(HealthState s) noexcept {
  switch (s) {
    case HealthState::kUnknown:
      return "unknown";
    case HealthState::kHealthy:
      return "healthy";
    case HealthState::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

std::string_view check_result_name(CheckResult r) noexcept {
  switch (r) {
    case CheckResult::kSuccess:
      return "success";
    case CheckResult::kUnexpectedStatus:
      return "unexpected_status";
    case CheckResult::kRetriableStatus:
      return "retriable_status";
    case CheckResult::kConnectFailure:
      return "connect_failure";
    case CheckResult::kTimeout:
      return "timeout";
    case CheckResult::kBadResponse:
      return "bad_response";
    case CheckResult::kTlsFailure:
      return "tls_failure";
  }
  return "unknown";
}

HealthChecker::HealthChecker(asio::io_context& io, HealthCheckOptions opts,
                             TransitionCallback on_change, CheckCallback on_check, uint64_t seed)
    : core_(std::make_shared<Core>(io, std::move(opts), std::move(on_change), std::move(on_check),
                                   seed != 0 ? seed : std::random_device{}())) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::stop() {
  for (auto& p : core_->probes) p->cancel();
}

void HealthChecker::set_endpoints(std::span<const tcp::endpoint> endpoints) {
  std::vector<std::shared_ptr<Probe>> next;
  std::vector<std::shared_ptr<Probe>> started;
  next.reserve(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    auto it = std::find_if(core_->probes.begin(), core_->probes.end(),
                           [&](const auto& p) { return p && p->h.address == endpoints[i]; });
    std::shared_ptr<Probe> p;
    if (it != core_->probes.end() && !(*it)->stopped) {
      p = std::move(*it);  // keeps its state and its schedule
    } else {
      p = std::make_shared<Probe>(core_->io);
      if (it != core_->probes.end()) p->h = (*it)->h;  // stopped earlier: the state carries over
      p->h.address = endpoints[i];
      p->request = "GET " + core_->opts.path + " HTTP/1.1\r\nHost: " +
                   (core_->opts.host.empty() ? host_port(endpoints[i]) : core_->opts.host) +
                   "\r\nUser-Agent: outrigger-health-check\r\nConnection: close\r\n\r\n";
      started.push_back(p);
    }
    p->index = i;
    next.push_back(std::move(p));
  }
  for (auto& old : core_->probes) {
    if (old) old->cancel();  // endpoints that are gone (moved-from entries are null)
  }
  core_->probes = std::move(next);
  for (auto& p : started) asio::co_spawn(core_->io, run_probe(core_, p), asio::detached);
}

size_t HealthChecker::size() const noexcept { return core_->probes.size(); }

const EndpointHealth& HealthChecker::endpoint(size_t i) const noexcept {
  return core_->probes[i]->h;
}

size_t HealthChecker::healthy_count() const noexcept {
  return static_cast<size_t>(
      std::count_if(core_->probes.begin(), core_->probes.end(),
                    [](const auto& p) { return p->h.state != HealthState::kUnhealthy; }));
}

}  // namespace outrigger::upstream
