// Retry policy and budget, circuit breaker, outlier detection and load balancing: every decision
// rule, with the clock injected (no sleeps) and fixed random sequences.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxy/http/h1.h"
#include "proxy/upstream/circuit_breaker.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier.h"
#include "proxy/upstream/retry.h"

namespace outrigger::upstream {
namespace {

using namespace std::chrono_literals;
using boost::asio::ip::make_address;
using tcp = boost::asio::ip::tcp;

// A response head parsed by the real parser, so header views point into owned bytes.
struct Response {
  explicit Response(std::string text) : bytes(std::move(text)), head(new http::ResponseHead) {
    http::HeadParser p;
    EXPECT_EQ(p.parse_response(bytes, false, head.get()), http::ParseResult::kDone) << bytes;
  }
  AttemptOutcome outcome() const { return {AttemptResult::kResponse, head->status, head.get()}; }
  std::string bytes;
  std::unique_ptr<http::ResponseHead> head;
};

AttemptOutcome status(int s) { return {AttemptResult::kResponse, s, nullptr}; }
AttemptOutcome local(AttemptResult r) { return {r, 0, nullptr}; }

RetryPolicy policy(std::string_view on) {
  RetryPolicy p;
  p.retry_on = parse_retry_on(on).value();
  p.num_retries = 2;
  return p;
}

// ---------------------------------------------------------------------------------------------
// retry_on parsing

TEST(RetryOn, ParsesEveryEnvoyName) {
  EXPECT_EQ(parse_retry_on("connect-failure").value(), retry_on::kConnectFailure);
  EXPECT_EQ(parse_retry_on("refused-stream").value(), retry_on::kRefusedStream);
  EXPECT_EQ(parse_retry_on("reset").value(), retry_on::kReset);
  EXPECT_EQ(parse_retry_on("gateway-error").value(), retry_on::kGatewayError);
  EXPECT_EQ(parse_retry_on("5xx").value(), retry_on::k5xx);
  EXPECT_EQ(parse_retry_on("retriable-status-codes").value(), retry_on::kRetriableStatusCodes);
  EXPECT_EQ(parse_retry_on("retriable-headers").value(), retry_on::kRetriableHeaders);
  EXPECT_EQ(parse_retry_on("cancelled,deadline-exceeded,resource-exhausted,internal,unavailable")
                .value(),
            retry_on::kGrpcAny);
  EXPECT_EQ(parse_retry_on(" 5xx ,reset,, connect-failure ").value(),
            retry_on::k5xx | retry_on::kReset | retry_on::kConnectFailure);
  EXPECT_EQ(parse_retry_on("").value(), 0u);
}

TEST(RetryOn, UnknownNameIsAnErrorNamingIt) {
  const auto r = parse_retry_on("5xx,4xx");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("'4xx'"), std::string::npos) << r.error();
  EXPECT_FALSE(parse_retry_on("5XX").has_value());  // names are exact, as in Envoy
  const std::vector<std::string> names = {"reset", "gateway-error"};
  EXPECT_EQ(parse_retry_on(names).value(), retry_on::kReset | retry_on::kGatewayError);
  const std::vector<std::string> bad = {"reset", "sometimes"};
  EXPECT_FALSE(parse_retry_on(bad).has_value());
}

// ---------------------------------------------------------------------------------------------
// Which outcomes each condition retries

TEST(RetryRetriable, NothingWithoutConditions) {
  RetryPolicy p;
  for (auto r : {AttemptResult::kConnectFailure, AttemptResult::kRefusedStream,
                 AttemptResult::kReset, AttemptResult::kPerTryTimeout}) {
    EXPECT_FALSE(p.retriable(local(r)));
  }
  EXPECT_FALSE(p.retriable(status(503)));
}

TEST(RetryRetriable, ConnectFailureOnlyCoversConnectFailures) {
  const RetryPolicy p = policy("connect-failure");
  EXPECT_TRUE(p.retriable(local(AttemptResult::kConnectFailure)));
  EXPECT_FALSE(p.retriable(local(AttemptResult::kReset)));
  EXPECT_FALSE(p.retriable(local(AttemptResult::kPerTryTimeout)));
  EXPECT_FALSE(p.retriable(local(AttemptResult::kRefusedStream)));
  EXPECT_FALSE(p.retriable(status(503)));
}

TEST(RetryRetriable, FiveXxCoversEvery5xxAndEveryLocalFailure) {
  const RetryPolicy p = policy("5xx");
  for (int s : {500, 501, 502, 503, 504, 599}) EXPECT_TRUE(p.retriable(status(s))) << s;
  for (int s : {200, 204, 301, 404, 409, 429, 499, 600}) EXPECT_FALSE(p.retriable(status(s))) << s;
  for (auto r : {AttemptResult::kConnectFailure, AttemptResult::kRefusedStream,
                 AttemptResult::kReset, AttemptResult::kPerTryTimeout}) {
    EXPECT_TRUE(p.retriable(local(r)));
  }
}

TEST(RetryRetriable, GatewayErrorCovers502To504AndWhatWouldBecomeThem) {
  const RetryPolicy p = policy("gateway-error");
  for (int s : {502, 503, 504}) EXPECT_TRUE(p.retriable(status(s))) << s;
  for (int s : {500, 501, 505, 200}) EXPECT_FALSE(p.retriable(status(s))) << s;
  EXPECT_TRUE(p.retriable(local(AttemptResult::kConnectFailure)));
  EXPECT_TRUE(p.retriable(local(AttemptResult::kReset)));
  EXPECT_TRUE(p.retriable(local(AttemptResult::kPerTryTimeout)));
  EXPECT_FALSE(p.retriable(local(AttemptResult::kRefusedStream)));
}

TEST(RetryRetriable, ResetCoversDisconnectsAndPerTryTimeouts) {
  const RetryPolicy p = policy("reset");
  EXPECT_TRUE(p.retriable(local(AttemptResult::kReset)));
  EXPECT_TRUE(p.retriable(local(AttemptResult::kPerTryTimeout)));
  EXPECT_FALSE(p.retriable(local(AttemptResult::kConnectFailure)));
  EXPECT_FALSE(p.retriable(status(502)));
}

TEST(RetryRetriable, RefusedStream) {
  const RetryPolicy p = policy("refused-stream");
  EXPECT_TRUE(p.retriable(local(AttemptResult::kRefusedStream)));
  EXPECT_FALSE(p.retriable(local(AttemptResult::kReset)));
  EXPECT_FALSE(p.retriable(status(503)));
}

TEST(RetryRetriable, RetriableStatusCodesNeedTheCondition) {
  RetryPolicy p = policy("retriable-status-codes");
  p.retriable_status_codes = {409, 429};
  EXPECT_TRUE(p.retriable(status(409)));
  EXPECT_TRUE(p.retriable(status(429)));
  EXPECT_FALSE(p.retriable(status(410)));
  EXPECT_FALSE(p.retriable(status(503)));
  p.retry_on = retry_on::k5xx;  // the list alone does nothing
  EXPECT_FALSE(p.retriable(status(409)));
}

TEST(RetryRetriable, RetriableHeadersByNameAndOptionalValue) {
  RetryPolicy p = policy("retriable-headers");
  p.retriable_headers = {{"X-Try-Again", std::nullopt}, {"x-upstream-state", "draining"}};
  const Response named("HTTP/1.1 200 OK\r\nx-try-again: 1\r\ncontent-length: 0\r\n\r\n");
  const Response value(
      "HTTP/1.1 200 OK\r\nX-Upstream-State: draining\r\ncontent-length: 0\r\n\r\n");
  const Response other("HTTP/1.1 200 OK\r\nX-Upstream-State: busy\r\ncontent-length: 0\r\n\r\n");
  const Response none("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  EXPECT_TRUE(p.retriable(named.outcome()));
  EXPECT_TRUE(p.retriable(value.outcome()));
  EXPECT_FALSE(p.retriable(other.outcome()));
  EXPECT_FALSE(p.retriable(none.outcome()));
  EXPECT_FALSE(p.retriable(status(200)));  // no headers given
}

TEST(RetryRetriable, GrpcConditionsReadGrpcStatusOfATrailersOnlyResponse) {
  RetryPolicy p = policy("cancelled,unavailable");
  EXPECT_EQ(p.retry_on, retry_on::kGrpcCancelled | retry_on::kGrpcUnavailable);
  const Response cancelled(
      "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: 1\r\n"
      "grpc-message: CANCELLED\r\ncontent-length: 0\r\n\r\n");
  const Response unavailable("HTTP/1.1 200 OK\r\ngrpc-status: 14\r\ncontent-length: 0\r\n\r\n");
  const Response internal("HTTP/1.1 200 OK\r\ngrpc-status: 13\r\ncontent-length: 0\r\n\r\n");
  const Response ok("HTTP/1.1 200 OK\r\ngrpc-status: 0\r\ncontent-length: 0\r\n\r\n");
  const Response junk("HTTP/1.1 200 OK\r\ngrpc-status: 1x\r\ncontent-length: 0\r\n\r\n");
  const Response none("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  EXPECT_TRUE(p.retriable(cancelled.outcome()));
  EXPECT_TRUE(p.retriable(unavailable.outcome()));
  EXPECT_FALSE(p.retriable(internal.outcome()));
  EXPECT_FALSE(p.retriable(ok.outcome()));
  EXPECT_FALSE(p.retriable(junk.outcome()));
  EXPECT_FALSE(p.retriable(none.outcome()));
  // Each name is its own code.
  const std::pair<const char*, const char*> names[] = {
      {"cancelled", "1"}, {"deadline-exceeded", "4"}, {"resource-exhausted", "8"},
      {"internal", "13"}, {"unavailable", "14"}};
  for (const auto& [name, code] : names) {
    const RetryPolicy q = policy(name);
    for (const auto& [other, other_code] : names) {
      const Response r(std::string("HTTP/1.1 200 OK\r\ngrpc-status: ") + other_code +
                       "\r\ncontent-length: 0\r\n\r\n");
      EXPECT_EQ(q.retriable(r.outcome()), std::string_view(code) == other_code) << name << other;
    }
  }
  // gRPC conditions see only the response's grpc-status, not local failures or HTTP statuses.
  EXPECT_FALSE(p.retriable(local(AttemptResult::kReset)));
  EXPECT_FALSE(p.retriable(status(503)));
}

// ---------------------------------------------------------------------------------------------
// The whole decision

TEST(RetryDecision, SuccessIsNeverRetried) {
  const RetryPolicy p = policy("5xx,retriable-status-codes");
  EXPECT_EQ(p.should_retry(status(200), "GET", 0, true), RetryDecision::kNotRetriable);
  EXPECT_EQ(p.should_retry(status(404), "GET", 0, true), RetryDecision::kNotRetriable);
}

TEST(RetryDecision, CountsRetriesUpToNumRetries) {
  RetryPolicy p = policy("5xx");
  p.num_retries = 2;
  EXPECT_EQ(p.should_retry(status(503), "GET", 0, true), RetryDecision::kRetry);
  EXPECT_EQ(p.should_retry(status(503), "GET", 1, true), RetryDecision::kRetry);
  EXPECT_EQ(p.should_retry(status(503), "GET", 2, true), RetryDecision::kExhausted);
  p.num_retries = 0;
  EXPECT_EQ(p.should_retry(status(503), "GET", 0, true), RetryDecision::kExhausted);
}

TEST(RetryDecision, GrpcStatusIsRetriedForPostButNotTheOtherConditions) {
  // A named gRPC status is retried whatever the method (every gRPC call is a POST); a 5xx of
  // the same POST is not, under the default idempotent-only rule.
  RetryPolicy p = policy("cancelled,5xx");
  p.num_retries = 1;
  const Response cancelled("HTTP/1.1 200 OK\r\ngrpc-status: 1\r\ncontent-length: 0\r\n\r\n");
  EXPECT_EQ(p.should_retry(cancelled.outcome(), "POST", 0, true), RetryDecision::kRetry);
  EXPECT_EQ(p.should_retry(cancelled.outcome(), "POST", 1, true), RetryDecision::kExhausted);
  EXPECT_EQ(p.should_retry(cancelled.outcome(), "POST", 0, false),
            RetryDecision::kBodyNotReplayable);
  EXPECT_EQ(p.should_retry(status(503), "POST", 0, true), RetryDecision::kNotIdempotent);
}

TEST(RetryDecision, IdempotentMethodsOnlyOnceTheRequestMayHaveArrived) {
  const RetryPolicy p = policy("5xx");
  for (const char* m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) {
    EXPECT_EQ(p.should_retry(status(503), m, 0, true), RetryDecision::kRetry) << m;
    EXPECT_EQ(p.should_retry(local(AttemptResult::kReset), m, 0, true), RetryDecision::kRetry);
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get"}) {
    EXPECT_EQ(p.should_retry(status(503), m, 0, true), RetryDecision::kNotIdempotent) << m;
    EXPECT_EQ(p.should_retry(local(AttemptResult::kReset), m, 0, true),
              RetryDecision::kNotIdempotent);
    EXPECT_EQ(p.should_retry(local(AttemptResult::kPerTryTimeout), m, 0, true),
              RetryDecision::kNotIdempotent);
    // The upstream never saw it: safe for any method.
    EXPECT_EQ(p.should_retry(local(AttemptResult::kConnectFailure), m, 0, true),
              RetryDecision::kRetry);
    EXPECT_EQ(p.should_retry(local(AttemptResult::kRefusedStream), m, 0, true),
              RetryDecision::kRetry);
  }
}

TEST(RetryDecision, IdempotentOnlyIsConfigurable) {
  RetryPolicy p = policy("5xx");
  p.idempotent_only = false;
  EXPECT_EQ(p.should_retry(status(503), "POST", 0, true), RetryDecision::kRetry);
  p.idempotent_only = true;
  p.idempotent_methods = {"GET", "POST"};
  EXPECT_EQ(p.should_retry(status(503), "POST", 0, true), RetryDecision::kRetry);
  EXPECT_EQ(p.should_retry(status(503), "PUT", 0, true), RetryDecision::kNotIdempotent);
}

TEST(RetryDecision, BodyTooBigToReplayIsNotRetriedAndSaysSo) {
  const RetryPolicy p = policy("5xx");
  EXPECT_EQ(p.should_retry(status(503), "PUT", 0, false), RetryDecision::kBodyNotReplayable);
  // Reasons are checked in order: a non-retriable outcome is not reported as a body problem.
  EXPECT_EQ(p.should_retry(status(200), "PUT", 0, false), RetryDecision::kNotRetriable);
  EXPECT_EQ(p.should_retry(status(503), "PUT", 2, false), RetryDecision::kExhausted);
  EXPECT_EQ(retry_decision_name(RetryDecision::kBodyNotReplayable), "body_not_replayable");
}

// ---------------------------------------------------------------------------------------------
// Backoff

TEST(RetryBackoff, RangeIsEnvoysZeroTo2PowNMinus1TimesBaseCappedAtMax) {
  const RetryPolicy p;  // 25 ms base, 250 ms max
  const std::array<int64_t, 7> ceilings = {0, 25, 75, 175, 250, 250, 250};
  for (uint32_t n = 1; n <= 6; ++n) {
    EXPECT_EQ(p.next_backoff(n, 0).count(), 0) << n;
    EXPECT_EQ(p.next_backoff(n, UINT64_MAX).count(), ceilings[n] - 1) << n;
  }
  EXPECT_EQ(p.next_backoff(0, UINT64_MAX).count(), 24);  // retry 0 is taken as the first
  EXPECT_EQ(p.next_backoff(64, UINT64_MAX).count(), 249);
  EXPECT_EQ(p.next_backoff(1'000'000, UINT64_MAX).count(), 249);
}

TEST(RetryBackoff, FullJitterIsUniformOverTheRange) {
  RetryPolicy p;
  std::mt19937_64 rng(42);
  constexpr int kDraws = 25'000;
  std::array<int, 25> hist{};
  int64_t sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto d = p.next_backoff(1, rng);
    ASSERT_GE(d.count(), 0);
    ASSERT_LT(d.count(), 25);
    ++hist[static_cast<size_t>(d.count())];
    sum += d.count();
  }
  // Mean of uniform 0..24 is 12; every value turns up about 1000 times.
  EXPECT_NEAR(static_cast<double>(sum) / kDraws, 12.0, 0.3);
  for (int h : hist) {
    EXPECT_GT(h, 800);
    EXPECT_LT(h, 1200);
  }
  // Capped retries spread over the whole [0, max) range, not piled at the cap.
  int64_t capped_sum = 0, low = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto d = p.next_backoff(8, rng);
    ASSERT_LT(d.count(), 250);
    capped_sum += d.count();
    low += d.count() < 125;
  }
  EXPECT_NEAR(static_cast<double>(capped_sum) / kDraws, 124.5, 3.0);
  EXPECT_NEAR(static_cast<double>(low) / kDraws, 0.5, 0.03);
}

TEST(RetryBackoff, CustomAndDegenerateSettings) {
  RetryPolicy p;
  p.backoff_base = 100ms;
  p.backoff_max = 1000ms;
  EXPECT_EQ(p.next_backoff(2, UINT64_MAX).count(), 299);
  EXPECT_EQ(p.next_backoff(5, UINT64_MAX).count(), 999);
  p.backoff_base = 0ms;
  EXPECT_EQ(p.next_backoff(3, UINT64_MAX).count(), 0);
  p.backoff_base = 500ms;  // base above max: the max still caps
  p.backoff_max = 200ms;
  EXPECT_EQ(p.next_backoff(1, UINT64_MAX).count(), 199);
}

// ---------------------------------------------------------------------------------------------
// Retry-After

std::chrono::system_clock::time_point at(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  using namespace std::chrono;
  return sys_days(year{y} / month{mo} / day{d}) + hours(h) + minutes(mi) + seconds(s);
}

TEST(RetryAfter, DeltaSeconds) {
  const auto now = at(2024, 1, 15, 10, 0, 0);
  EXPECT_EQ(parse_retry_after("120", now), 120'000ms);
  EXPECT_EQ(parse_retry_after(" 5\t", now), 5'000ms);
  EXPECT_EQ(parse_retry_after("0", now), 0ms);
  EXPECT_EQ(parse_retry_after("99999999999999999999", now), std::chrono::seconds(int64_t{1} << 31));
  for (const char* bad : {"", " ", "-1", "+5", "1.5", "5s", "0x10", "1 2"}) {
    EXPECT_FALSE(parse_retry_after(bad, now).has_value()) << bad;
  }
}

TEST(RetryAfter, HttpDatesInAllThreeForms) {
  const auto now = at(2024, 1, 15, 10, 0, 0);
  EXPECT_EQ(parse_retry_after("Mon, 15 Jan 2024 10:00:30 GMT", now), 30'000ms);
  EXPECT_EQ(parse_retry_after("Monday, 15-Jan-24 10:01:00 GMT", now), 60'000ms);
  EXPECT_EQ(parse_retry_after("Mon Jan 15 10:00:07 2024", now), 7'000ms);
  EXPECT_EQ(parse_retry_after("Thu Feb  1 10:00:00 2024", now), std::chrono::hours(24 * 17));
  // The past (and the present) mean "now".
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 0ms);
  EXPECT_EQ(parse_retry_after("Mon, 15 Jan 2024 10:00:00 GMT", now), 0ms);
  // RFC 850's two-digit year: 94 is 1994 (not 2094), 30 is 2030 (within 50 years).
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 0ms);
  EXPECT_EQ(parse_retry_after("Tuesday, 15-Jan-30 10:00:00 GMT", now),
            std::chrono::ceil<std::chrono::milliseconds>(at(2030, 1, 15, 10, 0, 0) - now));
  // Past 2262 (where a nanosecond time_point ends) up to year 9999: as far off as a delta-seconds
  // can say, 2^31 s (found by tests/fuzz/values_fuzz.cc: signed overflow before).
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 4052 07:28:00 GMT", now),
            std::chrono::seconds(int64_t{1} << 31));
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            std::chrono::seconds(int64_t{1} << 31));
  EXPECT_EQ(parse_retry_after("Sun, 01 Jan 2090 00:00:00 GMT", now),  // 66 years: under 2^31 s
            std::chrono::ceil<std::chrono::milliseconds>(at(2090, 1, 1, 0, 0, 0) - now));
  // A fraction of a second in `now` rounds the wait up.
  EXPECT_EQ(parse_retry_after("Mon, 15 Jan 2024 10:00:30 GMT", now + 250ms), 29'750ms);
}

TEST(RetryAfter, MalformedDatesAreRejected) {
  const auto now = at(2024, 1, 15, 10, 0, 0);
  for (const char* bad : {
           "Mon, 15 Jan 2024 10:00:30",        // no GMT
           "Mon, 15 Jan 2024 10:00:30 UTC",    // only GMT
           "Mon, 31 Feb 2024 10:00:30 GMT",    // no such day
           "Mon, 15 Foo 2024 10:00:30 GMT",    // no such month
           "Mon, 15 Jan 2024 24:00:00 GMT",    // hour out of range
           "Mon, 15 Jan 2024 10:60:00 GMT",    // minute out of range
           "Mon, 5 Jan 2024 10:00:30 GMT",     // IMF-fixdate has two-digit days
           "Mon 15 Jan 2024 10:00:30 GMT",     // missing comma
           "Mon, 15 Jan 2024 10:00:30 GMT x",  // trailing garbage
           "Mon Jan 15 10:00:07",              // asctime without year
           "tomorrow",
       }) {
    EXPECT_FALSE(parse_retry_after(bad, now).has_value()) << bad;
  }
}

TEST(RetryAfter, DelayHonoursItUpToTheCap) {
  RetryPolicy p = policy("5xx");
  p.retry_after_max = 5s;
  const auto now = at(2024, 1, 15, 10, 0, 0);
  const Response two("HTTP/1.1 503 Busy\r\nRetry-After: 2\r\ncontent-length: 0\r\n\r\n");
  const Response date(
      "HTTP/1.1 503 Busy\r\nretry-after: Mon, 15 Jan 2024 10:00:04 GMT\r\ncontent-length: "
      "0\r\n\r\n");
  const Response long_wait("HTTP/1.1 503 Busy\r\nRetry-After: 60\r\ncontent-length: 0\r\n\r\n");
  const Response garbage("HTTP/1.1 503 Busy\r\nRetry-After: soon\r\ncontent-length: 0\r\n\r\n");
  EXPECT_EQ(p.retry_delay(two.outcome(), 1, now, UINT64_MAX), 2'000ms);
  EXPECT_EQ(p.retry_delay(date.outcome(), 1, now, UINT64_MAX), 4'000ms);
  EXPECT_FALSE(p.retry_delay(long_wait.outcome(), 1, now, UINT64_MAX).has_value());
  EXPECT_EQ(p.retry_delay(garbage.outcome(), 1, now, UINT64_MAX), 24ms);  // backoff instead
  EXPECT_EQ(p.retry_delay(local(AttemptResult::kReset), 2, now, UINT64_MAX), 74ms);
  p.honor_retry_after = false;
  EXPECT_EQ(p.retry_delay(long_wait.outcome(), 1, now, 0), 0ms);
}

TEST(RetryTimeouts, TimeoutHeaderAndAttemptDeadline) {
  EXPECT_EQ(parse_timeout_ms("1500"), 1500ms);
  EXPECT_EQ(parse_timeout_ms(" 1 "), 1ms);
  EXPECT_EQ(parse_timeout_ms("86400000"), 86'400'000ms);
  for (const char* bad : {"", "0", "-5", "86400001", "123456789", "1e3", "1.5", "abc"}) {
    EXPECT_FALSE(parse_timeout_ms(bad).has_value()) << bad;
  }
  const Clock::time_point t0 = Clock::time_point{} + 1h;
  EXPECT_EQ(attempt_deadline(t0, t0 + 10s, 0ms), t0 + 10s);
  EXPECT_EQ(attempt_deadline(t0, t0 + 10s, 2s), t0 + 2s);
  EXPECT_EQ(attempt_deadline(t0, t0 + 1s, 2s), t0 + 1s);
}

// ---------------------------------------------------------------------------------------------
// Retry budget

TEST(RetryBudget, MinimumConcurrencyWhenQuiet) {
  RetryBudget b;  // 20 %, min 3
  EXPECT_EQ(b.allowed(), 3u);
  EXPECT_TRUE(b.try_acquire());
  EXPECT_TRUE(b.try_acquire());
  EXPECT_TRUE(b.try_acquire());
  EXPECT_FALSE(b.try_acquire());
  EXPECT_EQ(b.overflows(), 1u);
  b.release();
  EXPECT_TRUE(b.try_acquire());
  EXPECT_EQ(b.active_retries(), 3u);
}

TEST(RetryBudget, PercentOfActiveRequests) {
  RetryBudget b;
  for (int i = 0; i < 10; ++i) b.request_started();
  EXPECT_EQ(b.allowed(), 3u);  // 20 % of 10 is 2, below the minimum
  for (int i = 0; i < 90; ++i) b.request_started();
  EXPECT_EQ(b.allowed(), 20u);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(b.try_acquire()) << i;
  EXPECT_FALSE(b.try_acquire());
  for (int i = 0; i < 50; ++i) b.request_finished();
  EXPECT_EQ(b.allowed(), 10u);  // retries in flight stay; new ones wait for room
  EXPECT_FALSE(b.try_acquire());
  for (int i = 0; i < 11; ++i) b.release();
  EXPECT_TRUE(b.try_acquire());
  EXPECT_EQ(b.overflows(), 2u);
}

TEST(RetryBudget, OptionsAndUnderflow) {
  RetryBudget b({50.0, 0});
  EXPECT_EQ(b.allowed(), 0u);
  EXPECT_FALSE(b.try_acquire());
  b.request_started();
  b.request_started();
  b.request_started();
  EXPECT_EQ(b.allowed(), 1u);  // floor(1.5)
  b.set_options({100.0, 1});
  EXPECT_EQ(b.allowed(), 3u);
  for (int i = 0; i < 5; ++i) b.request_finished();
  for (int i = 0; i < 5; ++i) b.release();
  EXPECT_EQ(b.active_requests(), 0u);
  EXPECT_EQ(b.active_retries(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

TEST(CircuitBreaker, EachThresholdOverflowsWithItsOwnName) {
  CircuitBreaker cb({2, 3, 4, 1});
  const std::array<std::pair<Resource, uint32_t>, 4> limits = {{{Resource::kConnections, 2},
                                                                {Resource::kPending, 3},
                                                                {Resource::kRequests, 4},
                                                                {Resource::kRetries, 1}}};
  for (auto [r, max] : limits) {
    for (uint32_t i = 0; i < max; ++i) ASSERT_EQ(cb.try_acquire(r), Overflow::kNone);
    EXPECT_EQ(cb.try_acquire(r), overflow_of(r));
    EXPECT_EQ(cb.try_acquire(r), overflow_of(r));
    EXPECT_EQ(cb.open(r), max);
    EXPECT_EQ(cb.overflows(r), 2u);
    EXPECT_EQ(cb.remaining(r), 0u);
    EXPECT_DOUBLE_EQ(cb.usage(r), 1.0);
    cb.release(r);
    EXPECT_EQ(cb.remaining(r), 1u);
    EXPECT_EQ(cb.try_acquire(r), Overflow::kNone);
  }
  // The other resources were not touched by each other's overflows.
  EXPECT_EQ(cb.overflows(Resource::kRetries), 2u);
  EXPECT_EQ(overflow_name(Overflow::kConnections), "connections");
  EXPECT_EQ(overflow_name(Overflow::kPending), "pending");
  EXPECT_EQ(overflow_name(Overflow::kRequests), "requests");
  EXPECT_EQ(overflow_name(Overflow::kRetries), "retries");
  EXPECT_EQ(overflow_name(Overflow::kNone), "");
  EXPECT_EQ(resource_name(Resource::kPending), "pending");
}

TEST(CircuitBreaker, DefaultsAreEnvoys) {
  CircuitBreaker cb;
  const auto t = cb.thresholds();
  EXPECT_EQ(t.max_connections, 1024u);
  EXPECT_EQ(t.max_pending_requests, 1024u);
  EXPECT_EQ(t.max_requests, 1024u);
  EXPECT_EQ(t.max_retries, 3u);
}

TEST(CircuitBreaker, UsageRatiosForGauges) {
  CircuitBreaker cb({10, 10, 4, 0});
  EXPECT_DOUBLE_EQ(cb.usage(Resource::kRequests), 0.0);
  cb.try_acquire(Resource::kRequests);
  EXPECT_DOUBLE_EQ(cb.usage(Resource::kRequests), 0.25);
  cb.try_acquire(Resource::kRequests);
  cb.try_acquire(Resource::kRequests);
  EXPECT_DOUBLE_EQ(cb.usage(Resource::kRequests), 0.75);
  EXPECT_EQ(cb.remaining(Resource::kRequests), 1u);
  // A zero limit refuses everything and reads as full.
  EXPECT_EQ(cb.try_acquire(Resource::kRetries), Overflow::kRetries);
  EXPECT_DOUBLE_EQ(cb.usage(Resource::kRetries), 1.0);
}

TEST(CircuitBreaker, LoweredThresholdRefusesUntilDrained) {
  CircuitBreaker cb({10, 10, 5, 3});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(cb.try_acquire(Resource::kRequests), Overflow::kNone);
  cb.set_thresholds({10, 10, 2, 3});
  EXPECT_EQ(cb.try_acquire(Resource::kRequests), Overflow::kRequests);
  cb.release(Resource::kRequests, 3);
  EXPECT_EQ(cb.try_acquire(Resource::kRequests), Overflow::kRequests);  // 2 open, limit 2
  cb.release(Resource::kRequests);
  EXPECT_EQ(cb.try_acquire(Resource::kRequests), Overflow::kNone);
  cb.force_acquire(Resource::kConnections, 12);  // already open before the breaker existed
  EXPECT_EQ(cb.try_acquire(Resource::kConnections), Overflow::kConnections);
  EXPECT_EQ(cb.remaining(Resource::kConnections), 0u);
}

TEST(CircuitBreaker, SlotGivesTheUnitBackOnEveryExit) {
  CircuitBreaker cb({1, 1, 1, 1});
  {
    BreakerSlot a(cb, Resource::kRequests);
    EXPECT_TRUE(a.held());
    BreakerSlot b(cb, Resource::kRequests);
    EXPECT_FALSE(b);
    EXPECT_EQ(b.overflow(), Overflow::kRequests);
    BreakerSlot moved = std::move(a);
    EXPECT_FALSE(a.held());
    EXPECT_TRUE(moved.held());
    EXPECT_EQ(cb.open(Resource::kRequests), 1u);
  }
  EXPECT_EQ(cb.open(Resource::kRequests), 0u);
  BreakerSlot c(cb, Resource::kRetries);
  c.release();
  c.release();  // twice is harmless
  EXPECT_EQ(cb.open(Resource::kRetries), 0u);
  BreakerSlot d(cb, Resource::kPending);
  d = BreakerSlot(cb, Resource::kConnections);  // assignment gives the pending unit back
  EXPECT_EQ(cb.open(Resource::kPending), 0u);
  EXPECT_EQ(cb.open(Resource::kConnections), 1u);
}

// Two threads racing on one breaker (the cluster-wide mode): never more units held than the limit.
TEST(CircuitBreaker, SharedBetweenThreadsNeverExceedsTheLimit) {
  CircuitBreaker cb({1024, 1024, 3, 3});
  std::atomic<int> held{0};
  std::atomic<int> max_held{0};
  std::atomic<uint64_t> admitted{0};
  auto work = [&] {
    for (int i = 0; i < 100'000; ++i) {
      if (cb.try_acquire(Resource::kRequests) != Overflow::kNone) continue;
      const int h = held.fetch_add(1) + 1;
      int m = max_held.load();
      while (h > m && !max_held.compare_exchange_weak(m, h)) {
      }
      admitted.fetch_add(1);
      held.fetch_sub(1);
      cb.release(Resource::kRequests);
    }
  };
  std::thread t1(work), t2(work);
  work();
  t1.join();
  t2.join();
  EXPECT_LE(max_held.load(), 3);
  EXPECT_GT(admitted.load(), 0u);
  EXPECT_EQ(cb.open(Resource::kRequests), 0u);
  EXPECT_EQ(admitted.load() + cb.overflows(Resource::kRequests), 300'000u);
}

// ---------------------------------------------------------------------------------------------
// Outlier detection

std::vector<tcp::endpoint> endpoints(size_t n, uint16_t first_port = 8000) {
  std::vector<tcp::endpoint> v;
  for (size_t i = 0; i < n; ++i) {
    v.emplace_back(make_address("10.0.0.1"), static_cast<uint16_t>(first_port + i));
  }
  return v;
}

OutlierOptions roomy() {
  OutlierOptions o;
  o.max_ejection_percent = 100;
  return o;
}

const Clock::time_point T0 = Clock::time_point{} + 1000h;

TEST(Outlier, FiveConsecutive5xxEjectForTheBaseTime) {
  OutlierDetector od(roomy());
  od.assign(endpoints(3), T0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_response(1, 500, T0), EjectReason::kNone);
  EXPECT_FALSE(od.is_ejected(1, T0));
  EXPECT_EQ(od.record_response(1, 500, T0), EjectReason::kConsecutive5xx);
  EXPECT_TRUE(od.is_ejected(1, T0));
  EXPECT_TRUE(od.is_ejected(1, T0 + 29'999ms));
  EXPECT_FALSE(od.is_ejected(1, T0 + 30s));  // time is up even before a sweep
  EXPECT_FALSE(od.is_ejected(0, T0));
  EXPECT_EQ(od.ejected_count(), 1u);
  EXPECT_EQ(od.state(1).multiplier, 1u);
  EXPECT_EQ(od.stats().ejections_enforced[0], 1u);
  EXPECT_FALSE(od.sweep(T0 + 29s));
  EXPECT_TRUE(od.sweep(T0 + 30s));
  EXPECT_EQ(od.ejected_count(), 0u);
  EXPECT_EQ(od.stats().unejections, 1u);
}

TEST(Outlier, SuccessResetsTheRun) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_response(0, 500, T0), EjectReason::kNone);
    EXPECT_EQ(od.record_response(0, 200, T0), EjectReason::kNone);  // breaks the run
  }
  for (int i = 0; i < 4; ++i) od.record_response(0, 503, T0);
  EXPECT_EQ(od.record_response(0, 404, T0), EjectReason::kNone);  // a 4xx is a success here
  EXPECT_EQ(od.state(0).consecutive_5xx, 0u);
  EXPECT_FALSE(od.is_ejected(0, T0));
}

TEST(Outlier, GatewayFailuresHaveTheirOwnRun) {
  OutlierOptions o = roomy();
  o.consecutive_5xx = 0;  // only the gateway detector
  OutlierDetector od(o);
  od.assign(endpoints(2), T0);
  for (int s : {502, 503, 504, 502}) EXPECT_EQ(od.record_response(0, s, T0), EjectReason::kNone);
  EXPECT_EQ(od.record_response(0, 500, T0), EjectReason::kNone);  // 500: not a gateway error
  EXPECT_EQ(od.state(0).consecutive_gateway_failure, 0u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_response(0, 503, T0), EjectReason::kNone);
  EXPECT_EQ(od.record_response(0, 504, T0), EjectReason::kConsecutiveGatewayFailure);
  EXPECT_EQ(od.state(0).last_reason, EjectReason::kConsecutiveGatewayFailure);
  EXPECT_EQ(eject_reason_name(od.state(0).last_reason), "consecutive_gateway_failure");
}

TEST(Outlier, MixedFiveHundredsEjectAs5xx) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  for (int s : {502, 502, 500, 502}) EXPECT_EQ(od.record_response(0, s, T0), EjectReason::kNone);
  EXPECT_EQ(od.record_response(0, 502, T0), EjectReason::kConsecutive5xx);
  // Five gateway errors in a row are reported as the gateway detector's.
  EXPECT_TRUE(od.sweep(T0 + 30s));
  for (int i = 0; i < 4; ++i) od.record_response(1, 503, T0 + 30s);
  EXPECT_EQ(od.record_response(1, 503, T0 + 30s), EjectReason::kConsecutiveGatewayFailure);
}

TEST(Outlier, LocalOriginFailuresInSplitMode) {
  OutlierDetector od(roomy());  // split by default
  od.assign(endpoints(2), T0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_local_origin_failure(0, T0), EjectReason::kNone);
  od.record_local_origin_success(0);  // connected once: the run starts over
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_local_origin_failure(0, T0), EjectReason::kNone);
  od.record_response(0, 503, T0);  // any response proves the connection
  EXPECT_EQ(od.state(0).consecutive_local_origin_failure, 0u);
  EXPECT_EQ(od.state(0).consecutive_5xx, 1u);  // local failures did not feed the 5xx run
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_local_origin_failure(0, T0), EjectReason::kNone);
  EXPECT_EQ(od.record_local_origin_failure(0, T0), EjectReason::kConsecutiveLocalOriginFailure);
  EXPECT_EQ(od.stats().ejections_enforced[2], 1u);
}

TEST(Outlier, LocalOriginFailuresCountAs503WhenNotSplit) {
  OutlierOptions o = roomy();
  o.split_external_local_origin_errors = false;
  OutlierDetector od(o);
  od.assign(endpoints(2), T0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_local_origin_failure(0, T0), EjectReason::kNone);
  EXPECT_EQ(od.state(0).consecutive_5xx, 4u);
  EXPECT_EQ(od.record_local_origin_failure(0, T0), EjectReason::kConsecutiveGatewayFailure);
}

TEST(Outlier, ZeroThresholdTurnsADetectorOff) {
  OutlierOptions o = roomy();
  o.consecutive_5xx = 0;
  o.consecutive_gateway_failure = 0;
  o.consecutive_local_origin_failure = 0;
  OutlierDetector od(o);
  od.assign(endpoints(1), T0);
  for (int i = 0; i < 50; ++i) {
    od.record_response(0, 503, T0);
    od.record_local_origin_failure(0, T0);
  }
  EXPECT_EQ(od.ejected_count(), 0u);
}

TEST(Outlier, EjectionTimeGrowsWithEachEjectionAndIsCapped) {
  OutlierDetector od(roomy());  // base 30 s, max 300 s, interval 10 s
  od.assign(endpoints(2), T0);
  Clock::time_point t = T0;
  for (uint32_t k = 1; k <= 12; ++k) {
    for (int i = 0; i < 5; ++i) od.record_response(0, 500, t);
    ASSERT_TRUE(od.is_ejected(0, t)) << k;
    const auto expected = std::min<std::chrono::milliseconds>(30s * k, 300s);
    EXPECT_EQ(od.state(0).until - t, expected) << k;
    EXPECT_EQ(od.state(0).multiplier, k);
    t = od.state(0).until;
    ASSERT_TRUE(od.sweep(t));  // back right at the end of its time, fails again at once
  }
  EXPECT_EQ(od.state(0).ejections, 12u);
}

TEST(Outlier, MultiplierDecaysWhileTheEndpointBehaves) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  Clock::time_point t = T0;
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 5; ++i) od.record_response(0, 500, t);
    t = od.state(0).until;
    od.sweep(t);
  }
  ASSERT_EQ(od.state(0).multiplier, 3u);
  // One decrement per interval spent back in service.
  od.sweep(t + 10s);
  EXPECT_EQ(od.state(0).multiplier, 2u);
  od.sweep(t + 20s);
  EXPECT_EQ(od.state(0).multiplier, 1u);
  od.sweep(t + 25s);  // less than an interval since the last decay
  EXPECT_EQ(od.state(0).multiplier, 1u);
  od.sweep(t + 30s);
  EXPECT_EQ(od.state(0).multiplier, 0u);
  // Back at the base time.
  const Clock::time_point t2 = t + 40s;
  for (int i = 0; i < 5; ++i) od.record_response(0, 500, t2);
  EXPECT_EQ(od.state(0).until - t2, 30s);
}

TEST(Outlier, MaxEjectionPercentCountsTheHostBeingEjected) {
  OutlierOptions o;  // 10 %
  OutlierDetector od(o);
  od.assign(endpoints(10), T0);
  for (int i = 0; i < 5; ++i) od.record_response(0, 500, T0);
  EXPECT_TRUE(od.is_ejected(0, T0));  // 1 of 10 = 10 %
  for (int i = 0; i < 5; ++i) od.record_response(1, 500, T0);
  EXPECT_FALSE(od.is_ejected(1, T0));  // 2 of 10 would be 20 %
  EXPECT_EQ(od.stats().ejections_overflow, 1u);
  // Endpoint 1 keeps failing; once 0 is back there is room, and its next failure ejects it.
  od.sweep(T0 + 30s);
  EXPECT_EQ(od.record_response(1, 500, T0 + 30s), EjectReason::kConsecutive5xx);
}

TEST(Outlier, SmallClustersEjectNothingAtTenPercentUnlessOneIsAlwaysAllowed) {
  OutlierOptions o;  // 10 %
  OutlierDetector od(o);
  od.assign(endpoints(5), T0);
  for (int i = 0; i < 5; ++i) od.record_response(0, 500, T0);
  EXPECT_FALSE(od.is_ejected(0, T0));
  o.always_eject_one_host = true;
  od.set_options(o);
  EXPECT_EQ(od.record_response(0, 500, T0), EjectReason::kConsecutive5xx);
  for (int i = 0; i < 5; ++i) od.record_response(1, 500, T0);
  EXPECT_FALSE(od.is_ejected(1, T0));  // only the first one is free
  EXPECT_EQ(od.ejected_count(), 1u);
}

TEST(Outlier, HalfOfFourMeansTwo) {
  OutlierOptions o;
  o.max_ejection_percent = 50;
  OutlierDetector od(o);
  od.assign(endpoints(4), T0);
  for (size_t e = 0; e < 4; ++e) {
    for (int i = 0; i < 5; ++i) od.record_response(e, 500, T0);
  }
  EXPECT_EQ(od.ejected_count(), 2u);
  EXPECT_TRUE(od.is_ejected(0, T0));
  EXPECT_TRUE(od.is_ejected(1, T0));
  EXPECT_EQ(od.stats().ejections_overflow, 2u);
}

TEST(Outlier, TrafficToAnEjectedEndpointDoesNotExtendIt) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  for (int i = 0; i < 5; ++i) od.record_response(0, 500, T0);
  const auto until = od.state(0).until;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(od.record_response(0, 500, T0 + 1s), EjectReason::kNone);
  EXPECT_EQ(od.state(0).until, until);
  EXPECT_EQ(od.state(0).ejections, 1u);
}

TEST(Outlier, ExpiredButUnsweptEjectionIsRenewedCorrectly) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  for (int i = 0; i < 5; ++i) od.record_response(0, 500, T0);
  // No sweep: the next run of failures after the time ran out ejects afresh.
  const Clock::time_point t = T0 + 31s;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(od.record_response(0, 500, t), EjectReason::kNone);
  EXPECT_EQ(od.record_response(0, 500, t), EjectReason::kConsecutive5xx);
  EXPECT_EQ(od.ejected_count(), 1u);
  EXPECT_EQ(od.state(0).until - t, 60s);
}

TEST(Outlier, SuccessfulHealthCheckUnejects) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  for (int i = 0; i < 5; ++i) od.record_response(0, 500, T0);
  const uint64_t gen = od.generation();
  EXPECT_FALSE(od.on_health_check_success(1, T0));  // not ejected
  EXPECT_TRUE(od.on_health_check_success(0, T0 + 1s));
  EXPECT_FALSE(od.is_ejected(0, T0 + 1s));
  EXPECT_NE(od.generation(), gen);
  EXPECT_EQ(od.state(0).consecutive_5xx, 0u);

  OutlierOptions o = roomy();
  o.successful_active_health_check_uneject_host = false;
  OutlierDetector strict(o);
  strict.assign(endpoints(2), T0);
  for (int i = 0; i < 5; ++i) strict.record_response(0, 500, T0);
  EXPECT_FALSE(strict.on_health_check_success(0, T0 + 1s));
  EXPECT_TRUE(strict.is_ejected(0, T0 + 1s));
}

TEST(Outlier, StateFollowsAddressesAcrossAssign) {
  OutlierDetector od(roomy());
  const auto eps = endpoints(3);
  od.assign(eps, T0);
  for (int i = 0; i < 5; ++i) od.record_response(2, 500, T0);
  for (int i = 0; i < 3; ++i) od.record_response(0, 500, T0);
  // DNS answers in another order, with one address gone and one new.
  const std::vector<tcp::endpoint> next = {eps[2], endpoints(1, 9000)[0], eps[0]};
  od.assign(next, T0 + 1s);
  EXPECT_TRUE(od.is_ejected(0, T0 + 1s));
  EXPECT_FALSE(od.is_ejected(1, T0 + 1s));
  EXPECT_EQ(od.state(2).consecutive_5xx, 3u);
  EXPECT_EQ(od.ejected_count(), 1u);
  EXPECT_TRUE(od.sweep(T0 + 30s));
  EXPECT_EQ(od.ejected_count(), 0u);
  // Out-of-range indices are ignored.
  EXPECT_EQ(od.record_response(7, 500, T0), EjectReason::kNone);
  EXPECT_FALSE(od.is_ejected(7, T0));
}

TEST(Outlier, ViewIsPublishedForOtherThreads) {
  OutlierDetector od(roomy());
  od.assign(endpoints(2), T0);
  for (int i = 0; i < 5; ++i) od.record_response(1, 502, T0);
  std::shared_ptr<const OutlierView> seen;
  std::thread reader([&] { seen = od.view(); });
  reader.join();
  ASSERT_TRUE(seen);
  ASSERT_EQ(seen->endpoints.size(), 2u);
  EXPECT_FALSE(seen->endpoints[0].ejected);
  EXPECT_TRUE(seen->endpoints[1].ejected);
  EXPECT_EQ(seen->endpoints[1].address, endpoints(2)[1]);
  EXPECT_EQ(seen->endpoints[1].until, T0 + 30s);
  EXPECT_EQ(seen->endpoints[1].last_reason, EjectReason::kConsecutiveGatewayFailure);
  EXPECT_EQ(seen->stats.ejections_enforced[1], 1u);
  EXPECT_EQ(seen->generation, od.generation());
  od.sweep(T0 + 30s);
  EXPECT_FALSE(od.view()->endpoints[1].ejected);
  EXPECT_TRUE(seen->endpoints[1].ejected);  // an old view stays as it was
}

// ---------------------------------------------------------------------------------------------
// Load balancing

std::vector<LbEndpoint> lb_endpoints(std::vector<uint32_t> weights,
                                     std::vector<std::string> zones = {}) {
  std::vector<LbEndpoint> v;
  for (size_t i = 0; i < weights.size(); ++i) {
    v.push_back({tcp::endpoint(make_address("10.1.0.1"), static_cast<uint16_t>(9000 + i)),
                 weights[i], i < zones.size() ? zones[i] : ""});
  }
  return v;
}

LoadBalancer make_lb(LbPolicy p, std::vector<uint32_t> weights, LbOptions o = {}) {
  o.policy = p;
  LoadBalancer lb(o);
  lb.assign(lb_endpoints(std::move(weights)), "");
  return lb;
}

std::vector<int> counts(LoadBalancer& lb, int picks, std::mt19937_64& rng,
                        uint32_t avoid = LoadBalancer::kNone) {
  std::vector<int> c(lb.size(), 0);
  for (int i = 0; i < picks; ++i) {
    const LbPick p = lb.pick(avoid, rng());
    EXPECT_TRUE(p);
    if (p) ++c[p.index];
  }
  return c;
}

TEST(LoadBalancer, PolicyNames) {
  EXPECT_EQ(parse_lb_policy("round_robin"), LbPolicy::kRoundRobin);
  EXPECT_EQ(parse_lb_policy("least_request"), LbPolicy::kLeastRequest);
  EXPECT_EQ(parse_lb_policy("random"), LbPolicy::kRandom);
  EXPECT_FALSE(parse_lb_policy("ROUND_ROBIN").has_value());
  EXPECT_FALSE(parse_lb_policy("maglev").has_value());
  EXPECT_EQ(lb_policy_name(LbPolicy::kLeastRequest), "least_request");
}

TEST(LoadBalancer, EmptyClusterHasNoPick) {
  for (auto p : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom}) {
    LoadBalancer lb(LbOptions{p});
    EXPECT_FALSE(lb.pick(LoadBalancer::kNone, 1));
    lb.assign({}, "");
    EXPECT_FALSE(lb.pick(0, 1));
    EXPECT_EQ(lb.counters().none, 2u);
  }
}

TEST(LoadBalancer, RoundRobinVisitsEachInTurn) {
  LoadBalancer lb = make_lb(LbPolicy::kRoundRobin, {1, 1, 1});
  std::vector<uint32_t> seq;
  for (int i = 0; i < 9; ++i) seq.push_back(lb.pick(LoadBalancer::kNone, 0).index);
  for (int i = 3; i < 9; ++i) EXPECT_EQ(seq[i], seq[i - 3]);
  EXPECT_NE(seq[0], seq[1]);
  EXPECT_NE(seq[1], seq[2]);
  EXPECT_NE(seq[0], seq[2]);
}

TEST(LoadBalancer, SmoothWeightedRoundRobinIsExactAndSpread) {
  LoadBalancer lb = make_lb(LbPolicy::kRoundRobin, {5, 1, 1});
  for (int cycle = 0; cycle < 100; ++cycle) {
    std::array<int, 3> c{};
    int run = 0, longest = 0;
    uint32_t last = LoadBalancer::kNone;
    for (int i = 0; i < 7; ++i) {
      const uint32_t k = lb.pick(LoadBalancer::kNone, 0).index;
      ++c[k];
      run = k == last ? run + 1 : 1;
      longest = std::max(longest, run);
      last = k;
    }
    ASSERT_EQ(c[0], 5) << cycle;
    ASSERT_EQ(c[1], 1);
    ASSERT_EQ(c[2], 1);
    // Smooth: the heavy endpoint is interleaved (a a b a c a a), never five in a row.
    ASSERT_LE(longest, 3);
  }
}

TEST(LoadBalancer, RandomFollowsWeights) {
  std::mt19937_64 rng(7);
  LoadBalancer lb = make_lb(LbPolicy::kRandom, {1, 2, 7});
  const auto c = counts(lb, 100'000, rng);
  EXPECT_NEAR(c[0] / 1e5, 0.1, 0.01);
  EXPECT_NEAR(c[1] / 1e5, 0.2, 0.01);
  EXPECT_NEAR(c[2] / 1e5, 0.7, 0.01);
  LoadBalancer uniform = make_lb(LbPolicy::kRandom, {1, 1, 1});
  for (int k : counts(uniform, 30'000, rng)) EXPECT_NEAR(k, 10'000, 500);
}

TEST(LoadBalancer, ZeroWeightIsTakenAsOne) {
  LoadBalancer lb = make_lb(LbPolicy::kRoundRobin, {0, 1});
  EXPECT_EQ(lb.weight(0), 1u);
  std::mt19937_64 rng(1);
  const auto c = counts(lb, 100, rng);
  EXPECT_EQ(c[0], 50);
}

TEST(LoadBalancer, LeastRequestNeverPicksTheBusiestOfThree) {
  std::mt19937_64 rng(3);
  LoadBalancer lb = make_lb(LbPolicy::kLeastRequest, {1, 1, 1});
  LbPick busy;
  busy.index = 0;
  busy.generation = lb.generation();
  for (int i = 0; i < 10; ++i) lb.on_request_start(busy);
  EXPECT_EQ(lb.active_requests(0), 10u);
  const auto c = counts(lb, 3000, rng);
  EXPECT_EQ(c[0], 0);  // two distinct candidates: the busy one always loses
  EXPECT_NEAR(c[1], 1500, 150);
}

TEST(LoadBalancer, LeastRequestPrefersLessLoadedOfFifty) {
  std::mt19937_64 rng(5);
  std::vector<uint32_t> w(50, 1);
  LoadBalancer lb = make_lb(LbPolicy::kLeastRequest, w);
  for (uint32_t i = 0; i < 25; ++i) {
    LbPick p{i, lb.generation(), false, false};
    for (int k = 0; k < 5; ++k) lb.on_request_start(p);
  }
  const auto c = counts(lb, 20'000, rng);
  int loaded = 0;
  for (int i = 0; i < 25; ++i) loaded += c[i];
  // A loaded endpoint wins only against another loaded one: (25/50) x (24/49) = 24.5 %.
  EXPECT_NEAR(loaded / 20'000.0, 0.245, 0.02);
}

TEST(LoadBalancer, LeastRequestKeepsLoadEven) {
  std::mt19937_64 rng(11);
  LoadBalancer lb = make_lb(LbPolicy::kLeastRequest, {1, 1, 1, 1, 1});
  std::vector<LbPick> in_flight;
  for (int i = 0; i < 500; ++i) {
    const LbPick p = lb.pick(LoadBalancer::kNone, rng());
    lb.on_request_start(p);
    in_flight.push_back(p);
    if (i % 3 == 0) {  // some finish
      lb.on_request_end(in_flight.front());
      in_flight.erase(in_flight.begin());
    }
  }
  uint32_t lo = UINT32_MAX, hi = 0;
  for (uint32_t i = 0; i < 5; ++i) {
    lo = std::min(lo, lb.active_requests(i));
    hi = std::max(hi, lb.active_requests(i));
  }
  EXPECT_LE(hi - lo, 3u) << lo << ".." << hi;
}

TEST(LoadBalancer, WeightedLeastRequestLoadsByWeight) {
  std::mt19937_64 rng(13);
  LoadBalancer lb = make_lb(LbPolicy::kLeastRequest, {1, 3});
  for (int i = 0; i < 400; ++i) lb.on_request_start(lb.pick(LoadBalancer::kNone, rng()));
  // weight / (active + 1) is kept level: active ends near 1 : 3.
  EXPECT_NEAR(lb.active_requests(1), 300, 3);
  EXPECT_NEAR(lb.active_requests(0), 100, 3);
}

TEST(LoadBalancer, RequestsFromAnOldEndpointSetEndWithoutEffect) {
  LoadBalancer lb = make_lb(LbPolicy::kLeastRequest, {1, 1});
  const LbPick old = lb.pick(LoadBalancer::kNone, 0);
  lb.on_request_start(old);
  EXPECT_EQ(lb.active_requests(old.index), 1u);
  lb.assign(lb_endpoints({1, 1, 1}), "");
  const LbPick now = lb.pick(LoadBalancer::kNone, 0);
  lb.on_request_start(now);
  lb.on_request_end(old);  // from the previous generation
  EXPECT_EQ(lb.active_requests(now.index), 1u);
  lb.on_request_end(now);
  lb.on_request_end(now);  // never below zero
  EXPECT_EQ(lb.active_requests(now.index), 0u);
}

TEST(LoadBalancer, UnavailableEndpointsAreSkipped) {
  for (auto policy : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom}) {
    std::mt19937_64 rng(17);
    LoadBalancer lb = make_lb(policy, {1, 2, 3, 4});
    lb.refresh([](uint32_t i) { return i != 2; });
    EXPECT_FALSE(lb.in_panic());
    const auto c = counts(lb, 2000, rng);
    EXPECT_EQ(c[2], 0) << lb_policy_name(policy);
    EXPECT_GT(c[0], 0);
    EXPECT_GT(c[3], 0);
    lb.set_available(2, true);
    lb.rebuild();
    EXPECT_GT(counts(lb, 2000, rng)[2], 0);
  }
}

TEST(LoadBalancer, PanicRoutesToAllWhenTooFewAreAvailable) {
  std::mt19937_64 rng(19);
  LoadBalancer lb = make_lb(LbPolicy::kRoundRobin, {1, 1, 1, 1});
  lb.refresh([](uint32_t i) { return i < 2; });  // 50 %: not below the threshold
  EXPECT_FALSE(lb.in_panic());
  auto c = counts(lb, 400, rng);
  EXPECT_EQ(c[2] + c[3], 0);
  EXPECT_EQ(lb.counters().panic, 0u);
  lb.set_available(1, false);  // 25 %
  lb.rebuild();
  EXPECT_TRUE(lb.in_panic());
  c = counts(lb, 400, rng);
  for (int k : c) EXPECT_EQ(k, 100);
  EXPECT_EQ(lb.counters().panic, 400u);
  EXPECT_TRUE(lb.pick(LoadBalancer::kNone, 0).panic);
  lb.refresh([](uint32_t) { return false; });  // none at all: still everyone
  EXPECT_TRUE(lb.pick(LoadBalancer::kNone, 0));
}

TEST(LoadBalancer, PanicThresholdZeroMeansNoEndpoint) {
  LbOptions o;
  o.healthy_panic_threshold = 0;
  LoadBalancer lb = make_lb(LbPolicy::kRandom, {1, 1, 1}, o);
  lb.refresh([](uint32_t i) { return i == 1; });
  EXPECT_FALSE(lb.in_panic());
  std::mt19937_64 rng(1);
  EXPECT_EQ(counts(lb, 50, rng)[1], 50);
  lb.refresh([](uint32_t) { return false; });
  EXPECT_FALSE(lb.pick(LoadBalancer::kNone, 5));
  EXPECT_EQ(lb.counters().none, 1u);
}

TEST(LoadBalancer, AvoidIsHonouredWhenAnotherCanServe) {
  for (auto policy : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom}) {
    for (const std::vector<uint32_t>& w :
         {std::vector<uint32_t>{1, 1, 1}, std::vector<uint32_t>{1, 5, 2},
          std::vector<uint32_t>(50, 1)}) {
      std::mt19937_64 rng(23);
      LoadBalancer lb = make_lb(policy, w);
      for (uint32_t avoid : {0u, 1u, static_cast<uint32_t>(w.size() - 1)}) {
        const auto c = counts(lb, 1000, rng, avoid);
        EXPECT_EQ(c[avoid], 0) << lb_policy_name(policy) << " n=" << w.size() << " avoid=" << avoid;
        int others = 0;
        for (size_t i = 0; i < c.size(); ++i) others += i == avoid ? 0 : (c[i] > 0);
        EXPECT_EQ(others, static_cast<int>(c.size()) - 1)
            << lb_policy_name(policy) << " n=" << w.size() << " avoid=" << avoid;
      }
    }
  }
}

TEST(LoadBalancer, AvoidingDoesNotSkewWeightedRoundRobinAfterwards) {
  LoadBalancer lb = make_lb(LbPolicy::kRoundRobin, {1, 5, 2});
  std::mt19937_64 rng(53);
  const auto during = counts(lb, 700, rng, 1);
  EXPECT_EQ(during[1], 0);
  EXPECT_NEAR(during[2], 467, 2);  // 2 : 1 between the others
  const auto after = counts(lb, 800, rng);
  EXPECT_EQ(after[0], 100);
  EXPECT_EQ(after[1], 500);
  EXPECT_EQ(after[2], 200);
}

TEST(LoadBalancer, AvoidedWeightedRandomKeepsTheOthersRatio) {
  std::mt19937_64 rng(29);
  LoadBalancer lb = make_lb(LbPolicy::kRandom, {1, 6, 3});
  const auto c = counts(lb, 40'000, rng, 1);
  EXPECT_EQ(c[1], 0);
  EXPECT_NEAR(c[2] / 40'000.0, 0.75, 0.015);  // 3 / (1 + 3)
}

TEST(LoadBalancer, AvoidedEndpointServesWhenItIsTheOnlyOne) {
  for (auto policy : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom}) {
    LoadBalancer single = make_lb(policy, {1});
    EXPECT_EQ(single.pick(0, 9).index, 0u);
    LoadBalancer two = make_lb(policy, {1, 1});
    two.refresh([](uint32_t i) { return i == 1; });  // 50 %: no panic, one available
    for (int i = 0; i < 10; ++i) EXPECT_EQ(two.pick(1, i).index, 1u) << lb_policy_name(policy);
    EXPECT_EQ(two.pick(0, 3).index, 1u);  // avoiding one that is out anyway
  }
}

std::vector<LbEndpoint> zoned() {
  return lb_endpoints({1, 1, 1, 1, 1, 1},
                      {"use1-az1", "use1-az1", "use1-az1", "use1-az2", "use1-az2", "use1-az3"});
}

TEST(LoadBalancer, LocalZoneIsPreferredWhileHealthyEnough) {
  std::mt19937_64 rng(31);
  LoadBalancer lb(LbOptions{LbPolicy::kRoundRobin});
  lb.assign(zoned(), "use1-az1");
  EXPECT_TRUE(lb.local_zone_only());
  auto c = counts(lb, 300, rng);
  EXPECT_EQ(c[0] + c[1] + c[2], 300);
  EXPECT_EQ(lb.counters().cross_zone, 0u);
  EXPECT_EQ(lb.zone(4), "use1-az2");
  // One local endpoint out: 2 of 3 = 67 % < 70 %: spill over to every available endpoint.
  lb.set_available(0, false);
  lb.rebuild();
  EXPECT_FALSE(lb.local_zone_only());
  c = counts(lb, 500, rng);
  EXPECT_EQ(c[0], 0);
  for (int i = 1; i < 6; ++i) EXPECT_EQ(c[i], 100) << i;
  EXPECT_EQ(lb.counters().cross_zone, 300u);
  // Recovery brings traffic home.
  lb.set_available(0, true);
  lb.rebuild();
  counts(lb, 300, rng);
  EXPECT_EQ(lb.counters().cross_zone, 300u);
}

TEST(LoadBalancer, LocalZoneThresholdIsConfigurable) {
  std::mt19937_64 rng(37);
  LbOptions o{LbPolicy::kRandom};
  o.local_zone_min_available = 60;
  LoadBalancer lb(o);
  lb.assign(zoned(), "use1-az1");
  lb.set_available(0, false);
  lb.rebuild();
  EXPECT_TRUE(lb.local_zone_only());  // 67 % >= 60 %
  const auto c = counts(lb, 1000, rng);
  EXPECT_EQ(c[1] + c[2], 1000);
  o.local_zone_min_available = 100;
  lb.set_options(o);
  EXPECT_FALSE(lb.local_zone_only());
}

TEST(LoadBalancer, AvoidingTheLastLocalEndpointGoesAcrossZones) {
  std::mt19937_64 rng(41);
  LoadBalancer lb(LbOptions{LbPolicy::kLeastRequest});
  lb.assign(lb_endpoints({1, 1, 1}, {"a", "b", "b"}), "a");
  EXPECT_TRUE(lb.local_zone_only());
  const LbPick p = lb.pick(0, rng());
  EXPECT_NE(p.index, 0u);
  EXPECT_TRUE(p.cross_zone);
  EXPECT_EQ(lb.counters().cross_zone, 1u);
}

TEST(LoadBalancer, NoLocalEndpointsMeansEveryPickIsCrossZone) {
  std::mt19937_64 rng(43);
  LoadBalancer lb(LbOptions{LbPolicy::kRoundRobin});
  lb.assign(lb_endpoints({1, 1}, {"b", "c"}), "a");
  EXPECT_FALSE(lb.local_zone_only());
  counts(lb, 10, rng);
  EXPECT_EQ(lb.counters().cross_zone, 10u);
  LoadBalancer unzoned(LbOptions{LbPolicy::kRoundRobin});
  unzoned.assign(lb_endpoints({1, 1}, {"b", "c"}), "");  // no local zone: nothing is cross-zone
  counts(unzoned, 10, rng);
  EXPECT_EQ(unzoned.counters().cross_zone, 0u);
}

TEST(LoadBalancer, PanicOverridesZonePreference) {
  LoadBalancer lb(LbOptions{LbPolicy::kRoundRobin});
  lb.assign(zoned(), "use1-az1");
  lb.refresh([](uint32_t i) { return i == 0 || i == 1; });  // 2 of 6 = 33 % < 50 %
  EXPECT_TRUE(lb.in_panic());
  std::mt19937_64 rng(47);
  for (int k : counts(lb, 600, rng)) EXPECT_EQ(k, 100);
  EXPECT_EQ(lb.counters().panic, 600u);
  EXPECT_EQ(lb.counters().cross_zone, 300u);
}

}  // namespace
}  // namespace outrigger::upstream
