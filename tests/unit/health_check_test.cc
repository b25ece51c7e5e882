// Active health checking against real loopback servers that answer 200, answer 503, stall,
// answer garbage, or refuse connections. Every wait is bounded by a deadline and ends as soon as
// the awaited transition arrives (the io_context runs until then; no sleeps).
#include "proxy/upstream/health_check.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace outrigger::upstream {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// A loopback HTTP server whose answer can change while it runs.
class TestServer {
 public:
  enum class Mode { kOk, kUnavailable, kNoContent, kStall, kGarbage, kHugeHead, kInterimThenOk };

  TestServer(asio::io_context& io, Mode mode) : s_(std::make_shared<State>(io)) {
    s_->mode = mode;
    asio::co_spawn(io, accept_loop(s_), asio::detached);
  }
  ~TestServer() {
    boost::system::error_code ignored;
    s_->acceptor.close(ignored);
    for (auto& h : s_->held) h->close(ignored);
  }
  tcp::endpoint endpoint() const { return s_->acceptor.local_endpoint(); }
  void set_mode(Mode m) { s_->mode = m; }
  int requests() const { return s_->requests; }
  const std::string& last_request() const { return s_->last_request; }

 private:
  struct State {
    explicit State(asio::io_context& io)
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
    tcp::acceptor acceptor;
    Mode mode = Mode::kOk;
    int requests = 0;
    std::string last_request;
    std::vector<std::shared_ptr<tcp::socket>> held;  // stalled connections stay open
  };

  static asio::awaitable<void> accept_loop(std::shared_ptr<State> s) {
    for (;;) {
      auto [ec, sock] = co_await s->acceptor.async_accept(use_nothrow);
      if (ec) co_return;
      asio::co_spawn(s->acceptor.get_executor(),
                     serve(s, std::make_shared<tcp::socket>(std::move(sock))), asio::detached);
    }
  }

  static asio::awaitable<void> serve(std::shared_ptr<State> s, std::shared_ptr<tcp::socket> sock) {
    std::string req;
    char buf[1024];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
      auto [ec, n] = co_await sock->async_read_some(asio::buffer(buf), use_nothrow);
      if (ec) co_return;
      req.append(buf, n);
    }
    ++s->requests;
    s->last_request = req;
    std::string answer;
    switch (s->mode) {
      case Mode::kOk:
        answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        break;
      case Mode::kUnavailable:
        answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        break;
      case Mode::kNoContent:
        answer = "HTTP/1.1 204 No Content\r\n\r\n";
        break;
      case Mode::kGarbage:
        answer = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
        break;
      case Mode::kHugeHead:
        answer = "HTTP/1.1 200 OK\r\nx-big: " + std::string(20'000, 'a') + "\r\n\r\n";
        break;
      case Mode::kInterimThenOk:
        answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        break;
      case Mode::kStall:
        s->held.push_back(sock);
        co_return;
    }
    co_await asio::async_write(*sock, asio::buffer(answer), use_nothrow);
    boost::system::error_code ignored;
    sock->shutdown(tcp::socket::shutdown_both, ignored);
    sock->close(ignored);
  }

  std::shared_ptr<State> s_;
};

// A port with nothing listening: bound once, then closed.
tcp::endpoint refused_endpoint(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const tcp::endpoint ep = a.local_endpoint();
  a.close();
  return ep;
}

HealthCheckOptions fast() {
  HealthCheckOptions o;
  o.interval = 20ms;
  o.interval_jitter_percent = 0;
  o.timeout = 150ms;
  o.unhealthy_threshold = 3;
  o.healthy_threshold = 2;
  return o;
}

// Runs the io_context until pred holds or the deadline passes; true when pred held.
bool run_until(asio::io_context& io, const std::function<bool()>& pred,
               std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_one_for(10ms);
  }
  return true;
}

struct Recorder {
  std::vector<HealthTransition> transitions;
  std::vector<std::pair<size_t, CheckResult>> checks;
  HealthChecker::TransitionCallback on_change() {
    return [this](const HealthTransition& t) { transitions.push_back(t); };
  }
  HealthChecker::CheckCallback on_check() {
    return [this](size_t i, CheckResult r) { checks.emplace_back(i, r); };
  }
  size_t checks_of(size_t i) const {
    size_t n = 0;
    for (auto& c : checks) n += c.first == i;
    return n;
  }
};

TEST(HealthCheck, HealthyServerBecomesHealthyOnTheFirstCheck) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kOk);
  Recorder rec;
  HealthCheckOptions o = fast();
  o.path = "/ping?deep=1";
  HealthChecker hc(io, o, rec.on_change(), rec.on_check(), 1);
  const tcp::endpoint ep = server.endpoint();
  hc.set_endpoints(std::span(&ep, 1));
  EXPECT_EQ(hc.state(0), HealthState::kUnknown);
  ASSERT_TRUE(run_until(io, [&] { return !rec.transitions.empty(); }));
  EXPECT_EQ(rec.transitions[0].from, HealthState::kUnknown);
  EXPECT_EQ(rec.transitions[0].to, HealthState::kHealthy);
  EXPECT_EQ(rec.transitions[0].result, CheckResult::kSuccess);
  EXPECT_EQ(rec.transitions[0].index, 0u);
  EXPECT_EQ(rec.transitions[0].address, ep);
  EXPECT_EQ(hc.endpoint(0).last_status, 200);
  // The request a health check sends.
  const std::string& req = server.last_request();
  EXPECT_EQ(req.rfind("GET /ping?deep=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nHost: 127.0.0.1:" + std::to_string(ep.port()) + "\r\n"),
            std::string::npos)
      << req;
  // It keeps checking at the interval, without further transitions.
  ASSERT_TRUE(run_until(io, [&] { return hc.endpoint(0).checks >= 4; }));
  EXPECT_EQ(rec.transitions.size(), 1u);
  EXPECT_EQ(hc.endpoint(0).successes, hc.endpoint(0).checks);
  EXPECT_EQ(hc.healthy_count(), 1u);
}

TEST(HealthCheck, HostHeaderAndExpectedStatusesAreConfigurable) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kNoContent);
  Recorder rec;
  HealthCheckOptions o = fast();
  o.host = "orders.internal";
  o.expected_statuses = {{200, 201}};  // Envoy's default: 200 only
  HealthChecker hc(io, o, rec.on_change(), rec.on_check(), 2);
  const tcp::endpoint ep = server.endpoint();
  hc.set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return !rec.transitions.empty(); }));
  EXPECT_EQ(rec.transitions[0].to, HealthState::kUnhealthy);  // 204 is not 200
  EXPECT_EQ(rec.transitions[0].result, CheckResult::kUnexpectedStatus);  // what made the change
  EXPECT_EQ(hc.endpoint(0).last_result, CheckResult::kUnexpectedStatus);
  EXPECT_NE(server.last_request().find("\r\nHost: orders.internal\r\n"), std::string::npos);
}

TEST(HealthCheck, UnavailableServerIsUnhealthyThenRecoversAfterTheHealthyThreshold) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kUnavailable);
  Recorder rec;
  HealthChecker hc(io, fast(), rec.on_change(), rec.on_check(), 3);
  const tcp::endpoint ep = server.endpoint();
  hc.set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return !rec.transitions.empty(); }));
  EXPECT_EQ(rec.transitions[0].to, HealthState::kUnhealthy);
  EXPECT_EQ(hc.endpoint(0).last_status, 503);
  EXPECT_EQ(hc.healthy_count(), 0u);

  server.set_mode(TestServer::Mode::kOk);
  const size_t checks_before = rec.checks.size();
  ASSERT_TRUE(run_until(io, [&] { return rec.transitions.size() >= 2; }));
  EXPECT_EQ(rec.transitions[1].from, HealthState::kUnhealthy);
  EXPECT_EQ(rec.transitions[1].to, HealthState::kHealthy);
  // Two successes were needed (healthy_threshold 2); a check in flight while the mode changed may
  // still have answered 503, so count the successes at the end.
  ASSERT_GE(rec.checks.size() - checks_before, 2u);
  EXPECT_EQ(rec.checks.back().second, CheckResult::kSuccess);
  EXPECT_EQ(rec.checks[rec.checks.size() - 2].second, CheckResult::kSuccess);
  EXPECT_EQ(hc.endpoint(0).consecutive_successes, 2u);
}

TEST(HealthCheck, UnexpectedStatusMakesAHealthyEndpointUnhealthyAtOnce) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kOk);
  Recorder rec;
  HealthChecker hc(io, fast(), rec.on_change(), rec.on_check(), 4);
  const tcp::endpoint ep = server.endpoint();
  hc.set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kHealthy; }));
  server.set_mode(TestServer::Mode::kUnavailable);
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kUnhealthy; }));
  // Envoy's rule: a status outside the expected ones does not wait for unhealthy_threshold.
  EXPECT_EQ(hc.endpoint(0).consecutive_failures, 1u);
  EXPECT_EQ(rec.transitions.back().to, HealthState::kUnhealthy);
}

TEST(HealthCheck, RetriableStatusesCountTowardsTheUnhealthyThreshold) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kOk);
  Recorder rec;
  HealthCheckOptions o = fast();
  o.retriable_statuses = {{503, 504}};
  HealthChecker hc(io, o, rec.on_change(), rec.on_check(), 5);
  const tcp::endpoint ep = server.endpoint();
  hc.set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kHealthy; }));
  server.set_mode(TestServer::Mode::kUnavailable);
  ASSERT_TRUE(run_until(io, [&] { return hc.endpoint(0).consecutive_failures >= 2; }));
  EXPECT_EQ(hc.state(0), HealthState::kHealthy);
  EXPECT_EQ(hc.endpoint(0).last_result, CheckResult::kRetriableStatus);
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kUnhealthy; }));
  EXPECT_EQ(hc.endpoint(0).consecutive_failures, 3u);
}

TEST(HealthCheck, StalledServerTimesOutAndFailsAfterTheThreshold) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kOk);
  Recorder rec;
  HealthChecker hc(io, fast(), rec.on_change(), rec.on_check(), 6);
  const tcp::endpoint ep = server.endpoint();
  hc.set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kHealthy; }));
  server.set_mode(TestServer::Mode::kStall);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(io, [&] { return hc.endpoint(0).consecutive_failures >= 2; }));
  EXPECT_EQ(hc.state(0), HealthState::kHealthy);  // two timeouts are not three
  EXPECT_EQ(hc.endpoint(0).last_result, CheckResult::kTimeout);
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kUnhealthy; }));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(hc.endpoint(0).consecutive_failures, 3u);
  // Three checks that each waited for the 150 ms timeout (a check already in flight when the mode
  // changed may have been answered, so at least two full timeouts and at most four).
  EXPECT_GE(took, 2 * 150ms);
  EXPECT_LT(took, 4 * (150ms + 20ms) + 500ms);
}

TEST(HealthCheck, RefusedConnectionIsAConnectFailure) {
  asio::io_context io;
  Recorder rec;
  HealthChecker hc(io, fast(), rec.on_change(), rec.on_check(), 7);
  const tcp::endpoint ep = refused_endpoint(io);
  hc.set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return !rec.transitions.empty(); }));
  EXPECT_EQ(rec.transitions[0].to, HealthState::kUnhealthy);
  EXPECT_EQ(rec.transitions[0].result, CheckResult::kConnectFailure);
  EXPECT_EQ(hc.endpoint(0).last_result, CheckResult::kConnectFailure);
  EXPECT_EQ(hc.endpoint(0).last_status, 0);
}

TEST(HealthCheck, MalformedOrOversizedResponsesAreBad) {
  asio::io_context io;
  TestServer garbage(io, TestServer::Mode::kGarbage);
  TestServer huge(io, TestServer::Mode::kHugeHead);
  TestServer interim(io, TestServer::Mode::kInterimThenOk);
  Recorder rec;
  HealthChecker hc(io, fast(), rec.on_change(), rec.on_check(), 8);
  const std::vector<tcp::endpoint> eps = {garbage.endpoint(), huge.endpoint(), interim.endpoint()};
  hc.set_endpoints(eps);
  ASSERT_TRUE(run_until(io, [&] { return rec.transitions.size() >= 3; }));
  EXPECT_EQ(hc.state(0), HealthState::kUnhealthy);
  EXPECT_EQ(hc.endpoint(0).last_result, CheckResult::kBadResponse);
  EXPECT_EQ(hc.state(1), HealthState::kUnhealthy);  // a head over 16 KiB is not read to its end
  EXPECT_EQ(hc.endpoint(1).last_result, CheckResult::kBadResponse);
  EXPECT_EQ(hc.state(2), HealthState::kHealthy);  // 100 Continue, then the real answer
  EXPECT_EQ(hc.endpoint(2).last_status, 200);
}

TEST(HealthCheck, EndpointChangesKeepStateForAddressesThatStay) {
  asio::io_context io;
  TestServer a(io, TestServer::Mode::kOk);
  TestServer b(io, TestServer::Mode::kUnavailable);
  TestServer c(io, TestServer::Mode::kOk);
  Recorder rec;
  HealthChecker hc(io, fast(), rec.on_change(), rec.on_check(), 9);
  std::vector<tcp::endpoint> eps = {a.endpoint(), b.endpoint()};
  hc.set_endpoints(eps);
  ASSERT_TRUE(run_until(io, [&] { return rec.transitions.size() >= 2; }));
  EXPECT_EQ(hc.state(0), HealthState::kHealthy);
  EXPECT_EQ(hc.state(1), HealthState::kUnhealthy);

  // b goes away, c arrives, a moves to index 1.
  eps = {c.endpoint(), a.endpoint()};
  hc.set_endpoints(eps);
  ASSERT_EQ(hc.size(), 2u);
  EXPECT_EQ(hc.state(0), HealthState::kUnknown);
  EXPECT_EQ(hc.state(1), HealthState::kHealthy);
  const uint64_t a_checks = hc.endpoint(1).checks;
  ASSERT_TRUE(run_until(io, [&] { return hc.state(0) == HealthState::kHealthy; }));
  EXPECT_EQ(rec.transitions.back().index, 0u);
  EXPECT_EQ(rec.transitions.back().address, c.endpoint());
  const int b_requests = b.requests();
  ASSERT_TRUE(run_until(io, [&] { return hc.endpoint(1).checks >= a_checks + 3; }));
  EXPECT_LE(b.requests(), b_requests + 1);  // at most one check was already on its way
  for (auto it = rec.checks.end() - 3; it != rec.checks.end(); ++it) EXPECT_LT(it->first, 2u);
}

TEST(HealthCheck, NoCallbackAfterStopOrDestruction) {
  asio::io_context io;
  TestServer server(io, TestServer::Mode::kStall);
  Recorder rec;
  auto hc = std::make_unique<HealthChecker>(io, fast(), rec.on_change(), rec.on_check(), 10);
  const tcp::endpoint ep = server.endpoint();
  hc->set_endpoints(std::span(&ep, 1));
  ASSERT_TRUE(run_until(io, [&] { return server.requests() >= 1; }));  // a check is in flight
  hc.reset();
  const size_t seen = rec.checks.size();
  // The cancelled check winds down; nothing is reported and nothing runs on.
  run_until(
      io, [] { return false; }, 300ms);
  EXPECT_EQ(rec.checks.size(), seen);
  EXPECT_TRUE(rec.transitions.empty());
  EXPECT_EQ(server.requests(), 1);

  // stop() from inside a callback is safe too.
  TestServer ok(io, TestServer::Mode::kOk);
  HealthChecker* self = nullptr;
  int calls = 0;
  HealthChecker hc2(
      io, fast(), [&](const HealthTransition&) { ++calls; },
      [&](size_t, CheckResult) {
        ++calls;
        self->stop();
      },
      11);
  self = &hc2;
  const tcp::endpoint ep2 = ok.endpoint();
  hc2.set_endpoints(std::span(&ep2, 1));
  ASSERT_TRUE(run_until(io, [&] { return calls > 0; }));
  run_until(
      io, [] { return false; }, 200ms);
  EXPECT_EQ(calls, 1);  // the transition after the stopping check is not reported
  EXPECT_EQ(ok.requests(), 1);
}

TEST(HealthCheck, NamesForLogsAndMetrics) {
  EXPECT_EQ(health_state_name(HealthState::kUnknown), "unknown");
  EXPECT_EQ(health_state_name(HealthState::kHealthy), "healthy");
  EXPECT_EQ(health_state_name(HealthState::kUnhealthy), "unhealthy");
  EXPECT_EQ(check_result_name(CheckResult::kTimeout), "timeout");
  EXPECT_EQ(check_result_name(CheckResult::kConnectFailure), "connect_failure");
  EXPECT_TRUE(StatusRange({200, 400}).contains(399));
  EXPECT_FALSE(StatusRange({200, 400}).contains(400));
}

}  // namespace
}  // namespace outrigger::upstream
