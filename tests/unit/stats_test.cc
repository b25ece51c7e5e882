#include "proxy/stats/stats.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace outrigger::stats {
namespace {

using std::chrono::nanoseconds;

// The value of the sample line that starts with exactly `series` (name plus label block).
std::optional<double> sample(const std::string& text, const std::string& series) {
  const std::string needle = series + " ";
  size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') {
      return std::strtod(text.c_str() + pos + needle.size(), nullptr);
    }
    pos += needle.size();
  }
  return std::nullopt;
}

uint64_t bound_ns(size_t i) { return static_cast<uint64_t>(Histogram::kBounds[i] * 1e9 + 0.5); }

TEST(StatsHistogram, BucketEdgesAreInclusiveUpperBounds) {
  for (size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    Histogram h;
    h.observe(nanoseconds(bound_ns(i)));      // le is inclusive: lands in bucket i
    h.observe(nanoseconds(bound_ns(i) + 1));  // one nanosecond more: the next bucket
    h.observe(nanoseconds(bound_ns(i) - 1));
    EXPECT_EQ(h.bucket(i), 2u) << "bound " << Histogram::kBounds[i];
    EXPECT_EQ(h.bucket(i + 1), 1u) << "bound " << Histogram::kBounds[i];
    EXPECT_EQ(h.count(), 3u);
    EXPECT_EQ(h.sum_ns(), 3 * bound_ns(i));
  }
}

TEST(StatsHistogram, ZeroNegativeAndHugeDurations) {
  Histogram h;
  h.observe(nanoseconds(0));
  h.observe(nanoseconds(-5));
  h.observe(std::chrono::hours(2));
  EXPECT_EQ(h.bucket(0), 2u);
  EXPECT_EQ(h.bucket(Histogram::kBounds.size()), 1u);  // +Inf
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.sum_ns(), uint64_t{7200} * 1'000'000'000);
}

TEST(StatsHistogram, AgreesWithLowerBoundOverASweep) {
  std::vector<uint64_t> bounds;
  for (size_t i = 0; i < Histogram::kBounds.size(); ++i) bounds.push_back(bound_ns(i));
  // Geometric sweep from 1 ns to ~100 s plus each bound's neighbourhood: ~2,000 values.
  std::vector<uint64_t> values;
  for (double v = 1; v < 1e11; v *= 1.02) values.push_back(static_cast<uint64_t>(v));
  for (uint64_t b : bounds) {
    for (int64_t d = -2; d <= 2; ++d) values.push_back(b + d);
  }
  for (uint64_t v : values) {
    Histogram h;
    h.observe(nanoseconds(v));
    const size_t want =
        static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
    ASSERT_EQ(h.bucket(want), 1u) << v << " ns";
  }
}

TEST(StatsNames, LabelValuesAreUniqueSnakeCase) {
  const std::regex snake("[a-z][a-z0-9_]*");
  std::set<std::string_view> seen;
  auto check = [&](std::string_view n) {
    EXPECT_TRUE(std::regex_match(std::string(n), snake)) << n;
    EXPECT_TRUE(seen.insert(n).second) << "duplicate " << n;
  };
  for (size_t i = 0; i < static_cast<size_t>(Limit::kCount); ++i) {
    check(limit_name(static_cast<Limit>(i)));
  }
  seen.clear();
  for (size_t i = 0; i < static_cast<size_t>(UpstreamError::kCount); ++i) {
    check(upstream_error_name(static_cast<UpstreamError>(i)));
  }
  seen.clear();
  for (size_t i = 0; i < static_cast<size_t>(BadRequest::kCount); ++i) {
    check(bad_request_name(static_cast<BadRequest>(i)));
  }
  EXPECT_EQ(limit_name(Limit::kPoolWait), "pool_wait");
  EXPECT_EQ(upstream_error_name(UpstreamError::kConnectTimeout), "connect_timeout");
  EXPECT_EQ(bad_request_name(BadRequest::kSmuggling), "smuggling");
}

TEST(StatsNames, CodeClass) {
  EXPECT_EQ(code_class(101), CodeClass::k1xx);
  EXPECT_EQ(code_class(200), CodeClass::k2xx);
  EXPECT_EQ(code_class(399), CodeClass::k3xx);
  EXPECT_EQ(code_class(404), CodeClass::k4xx);
  EXPECT_EQ(code_class(503), CodeClass::k5xx);
}

TEST(StatsRegistry, IdsAreStableAndBounded) {
  Registry r(1);
  for (uint32_t i = 0; i < kMaxListeners; ++i) {
    ASSERT_EQ(r.listener_id("l" + std::to_string(i)), i);
  }
  EXPECT_EQ(r.listener_id("one-too-many"), UINT32_MAX);
  EXPECT_EQ(r.listener_id("l7"), 7u);  // known names keep their id at the bound

  for (uint32_t i = 0; i < kMaxRoutes; ++i) {
    ASSERT_EQ(r.route_id("outbound", "r" + std::to_string(i)), i);
  }
  EXPECT_EQ(r.route_id("inbound", "r0"), UINT32_MAX);
  EXPECT_EQ(r.route_id("outbound", "r4095"), 4095u);

  for (uint32_t i = 0; i < kMaxClusters; ++i) {
    ASSERT_EQ(r.cluster_id("c" + std::to_string(i)), i);
  }
  EXPECT_EQ(r.cluster_id("c-extra"), UINT32_MAX);
  EXPECT_EQ(r.cluster_id("c0"), 0u);
}

TEST(StatsRegistry, RouteKeyIsUnambiguous) {
  Registry r(1);
  const uint32_t a = r.route_id("a:b", "c");
  const uint32_t b = r.route_id("a", "b:c");
  const uint32_t c = r.route_id("1:a", "");
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(r.route_id("a", "b:c"), b);
}

TEST(StatsRegistry, ShardsAreWorkersPlusMain) {
  Registry r(3);
  EXPECT_EQ(r.shard_count(), 4u);
  EXPECT_EQ(&r.main_shard(), &r.shard(3));
  EXPECT_NE(&r.shard(0), &r.shard(1));
}

TEST(StatsRender, OnlyInternedSeriesAppear) {
  Registry r(2);
  std::string text = r.render_prometheus();
  EXPECT_EQ(text.find("outrigger_downstream_"), std::string::npos);
  EXPECT_EQ(text.find("outrigger_upstream_"), std::string::npos);
  EXPECT_EQ(sample(text, "outrigger_limit_hits_total{limit=\"header_bytes\"}"), 0.0);
  EXPECT_EQ(sample(text, "outrigger_build_info{version=\"" OUTRIGGER_VERSION "\"}"), 1.0);

  r.cluster_id("billing");
  text = r.render_prometheus();
  EXPECT_EQ(sample(text, "outrigger_upstream_requests_total{cluster=\"billing\"}"), 0.0);
  EXPECT_EQ(text.find("outrigger_downstream_"), std::string::npos);
}

TEST(StatsRender, SumsAcrossShards) {
  Registry r(2);
  const uint32_t l = r.listener_id("outbound");
  const uint32_t rt = r.route_id("outbound", "billing");
  const uint32_t c = r.cluster_id("billing");
  r.shard(0).listener(l).cx_total.inc(2);
  r.shard(1).listener(l).cx_total.inc(3);
  r.main_shard().listener(l).cx_total.inc(4);
  r.shard(0).listener(l).cx_active.add(3);
  r.shard(1).listener(l).cx_active.sub(1);  // a gauge share may go negative on one shard
  r.shard(0).route(rt).rq[static_cast<size_t>(CodeClass::k2xx)].inc(5);
  r.shard(1).route(rt).rq[static_cast<size_t>(CodeClass::k2xx)].inc(6);
  r.shard(0).route(rt).duration.observe(std::chrono::microseconds(300));  // le 0.0005
  r.shard(1).route(rt).duration.observe(std::chrono::milliseconds(2));    // le 0.0025
  r.shard(1).route(rt).duration.observe(std::chrono::seconds(90));        // +Inf
  r.shard(0).cluster(c).errors[static_cast<size_t>(UpstreamError::kReset)].inc();
  r.shard(1).cluster(c).errors[static_cast<size_t>(UpstreamError::kReset)].inc();
  r.shard(0).limit(Limit::kBodyBytes).inc();
  r.main_shard().limit(Limit::kBodyBytes).inc(2);
  r.main().config_reloads_failed.inc();
  r.main().draining.set(1);

  const std::string t = r.render_prometheus();
  EXPECT_EQ(sample(t, "outrigger_downstream_connections_total{listener=\"outbound\"}"), 9.0);
  EXPECT_EQ(sample(t, "outrigger_downstream_connections_active{listener=\"outbound\"}"), 2.0);
  EXPECT_EQ(sample(t,
                   "outrigger_downstream_requests_total{listener=\"outbound\",route=\"billing\","
                   "code_class=\"2xx\"}"),
            11.0);
  const std::string h = "outrigger_downstream_request_duration_seconds";
  const std::string lbl = "listener=\"outbound\",route=\"billing\"";
  EXPECT_EQ(sample(t, h + "_bucket{" + lbl + ",le=\"0.0005\"}"), 1.0);
  EXPECT_EQ(sample(t, h + "_bucket{" + lbl + ",le=\"0.001\"}"), 1.0);
  EXPECT_EQ(sample(t, h + "_bucket{" + lbl + ",le=\"0.0025\"}"), 2.0);  // cumulative
  EXPECT_EQ(sample(t, h + "_bucket{" + lbl + ",le=\"60\"}"), 2.0);
  EXPECT_EQ(sample(t, h + "_bucket{" + lbl + ",le=\"+Inf\"}"), 3.0);
  EXPECT_EQ(sample(t, h + "_count{" + lbl + "}"), 3.0);
  EXPECT_DOUBLE_EQ(*sample(t, h + "_sum{" + lbl + "}"), 90.0023);
  EXPECT_EQ(sample(t, "outrigger_upstream_errors_total{cluster=\"billing\",reason=\"reset\"}"),
            2.0);
  EXPECT_EQ(sample(t, "outrigger_limit_hits_total{limit=\"body_bytes\"}"), 3.0);
  EXPECT_EQ(sample(t, "outrigger_config_reloads_total{result=\"failed\"}"), 1.0);
  EXPECT_EQ(sample(t, "outrigger_draining"), 1.0);
  // One HELP and one TYPE per family.
  EXPECT_EQ(t.find("# TYPE " + h + " histogram"), t.rfind("# TYPE " + h + " histogram"));
}

TEST(StatsRender, EscapesLabelValues) {
  Registry r(1);
  r.cluster_id("say \"hi\"\\now\nnext");
  const std::string t = r.render_prometheus();
  EXPECT_NE(
      t.find("outrigger_upstream_requests_total{cluster=\"say \\\"hi\\\"\\\\now\\nnext\"} 0\n"),
      std::string::npos)
      << t;
  // Every line is a comment or a sample: the raw newline never leaks into the output.
  EXPECT_EQ(t.find("\nnext"), std::string::npos);
}

TEST(StatsRender, ProcessMetrics) {
  Registry r(1);
  const std::string t = r.render_prometheus();
  ASSERT_TRUE(sample(t, "process_resident_memory_bytes").has_value()) << t;
  EXPECT_GT(*sample(t, "process_resident_memory_bytes"), 100'000);
  EXPECT_GE(*sample(t, "process_open_fds"), 3);  // stdin, stdout, stderr at least
  EXPECT_GE(*sample(t, "process_cpu_seconds_total"), 0);
  const double now = static_cast<double>(std::time(nullptr));
  const double start = *sample(t, "process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600);  // this test process did not start yesterday
}

// Pages of [p, p+bytes) that are resident, as the kernel reports them.
size_t resident_pages(const void* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) & ~(page - 1);
  std::vector<unsigned char> v((end - begin) / page);
  if (mincore(reinterpret_cast<void*>(begin), end - begin, v.data()) != 0) return SIZE_MAX;
  return static_cast<size_t>(
      std::count_if(v.begin(), v.end(), [](unsigned char c) { return c & 1; }));
}

TEST(StatsShard, UntouchedCellsAreNotResident) {
  Shard s;
  const size_t route_bytes = sizeof(RouteStats) * kMaxRoutes;
  const size_t cluster_bytes = sizeof(ClusterStats) * kMaxClusters;
  const size_t listener_bytes = sizeof(ListenerStats) * kMaxListeners;
  ASSERT_GT(route_bytes, 100u * 4096);  // the test means something only if the array is large
  EXPECT_EQ(resident_pages(&s.route(0), route_bytes), 0u);
  EXPECT_EQ(resident_pages(&s.cluster(0), cluster_bytes), 0u);
  EXPECT_EQ(resident_pages(&s.listener(0), listener_bytes), 0u);

  s.route(2000).rq[0].inc();
  s.route(2000).duration.observe(std::chrono::seconds(100));
  const size_t touched = resident_pages(&s.route(0), route_bytes);
  EXPECT_GE(touched, 1u);
  EXPECT_LE(touched, 2u);  // one RouteStats may straddle a page boundary
  EXPECT_EQ(s.route(2000).rq[0].value(), 1u);
  EXPECT_EQ(s.route(1999).rq[0].value(), 0u);
}

// Two writers, each on its own shard as the contract says, while this thread scrapes. Every
// scrape must be self-consistent and never go backwards; the one after the writers stop must be
// exact. Writers run until the scraper has done kScrapes renders, so the two really overlap.
TEST(StatsConcurrency, WritersAndScraperDoNotTear) {
  Registry r(2);
  const uint32_t rt = r.route_id("outbound", "billing");
  const uint32_t c = r.cluster_id("billing");
  constexpr uint64_t kMaxIterations = 20'000'000;
  constexpr int kScrapes = 200;
  std::atomic<bool> stop{false};
  std::array<uint64_t, 2> written{};
  auto writer = [&](uint32_t worker) {
    Shard& s = r.shard(worker);
    uint64_t i = 0;
    for (; i < kMaxIterations && !stop.load(std::memory_order_relaxed); ++i) {
      s.route(rt).rq[static_cast<size_t>(CodeClass::k2xx)].inc();
      s.route(rt).duration.observe(nanoseconds((i % 64) * 1'000'000));  // 0..63 ms
      s.cluster(c).cx_active.add();
      s.cluster(c).rq_total.inc();
      s.cluster(c).cx_active.sub();
    }
    written[worker] = i;
  };
  std::thread w0(writer, 0), w1(writer, 1);

  const std::string h = "outrigger_downstream_request_duration_seconds";
  const std::string lbl = "listener=\"outbound\",route=\"billing\"";
  const std::string rq = "outrigger_downstream_requests_total{" + lbl + ",code_class=\"2xx\"}";
  int scrapes = 0;
  // A lambda, so that a failed ASSERT still reaches the join below.
  [&] {
    double last_rq = 0, last_count = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (scrapes < kScrapes && std::chrono::steady_clock::now() < deadline) {
      const std::string t = r.render_prometheus();
      ++scrapes;
      const double now_rq = *sample(t, rq);
      ASSERT_GE(now_rq, last_rq);
      last_rq = now_rq;
      // Cumulative buckets never decrease along le, and _count equals the +Inf bucket.
      const std::string bucket_prefix = h + "_bucket{" + lbl;
      size_t pos = 0;
      int buckets = 0;
      double prev = 0;
      while ((pos = t.find(bucket_prefix, pos)) != std::string::npos) {
        pos = t.find(' ', pos);
        const double v = std::strtod(t.c_str() + pos + 1, nullptr);
        ASSERT_GE(v, prev);
        prev = v;
        ++buckets;
      }
      ASSERT_EQ(buckets, static_cast<int>(Histogram::kBounds.size() + 1));
      ASSERT_EQ(*sample(t, h + "_count{" + lbl + "}"), prev);
      ASSERT_GE(prev, last_count);
      last_count = prev;
      // Each writer holds at most one connection open at a time.
      const double active =
          *sample(t, "outrigger_upstream_connections_active{cluster=\"billing\"}");
      ASSERT_GE(active, 0.0);
      ASSERT_LE(active, 2.0);
    }
  }();
  stop.store(true);
  w0.join();
  w1.join();
  EXPECT_EQ(scrapes, kScrapes);

  const double total = static_cast<double>(written[0] + written[1]);
  const double zero_ms = static_cast<double>((written[0] + 63) / 64 + (written[1] + 63) / 64);
  const std::string t = r.render_prometheus();
  EXPECT_EQ(sample(t, rq), total);
  EXPECT_EQ(sample(t, h + "_count{" + lbl + "}"), total);
  EXPECT_EQ(sample(t, h + "_bucket{" + lbl + ",le=\"0.0005\"}"), zero_ms);
  EXPECT_EQ(sample(t, "outrigger_upstream_requests_total{cluster=\"billing\"}"), total);
  EXPECT_EQ(sample(t, "outrigger_upstream_connections_active{cluster=\"billing\"}"), 0.0);
}

// The real promtool must parse a scrape with every family populated and have nothing to lint.
TEST(StatsRender, PromtoolCheckMetricsIsClean) {
  const char* promtool = "/usr/bin/promtool";
  ASSERT_EQ(access(promtool, X_OK), 0) << "promtool missing: apt-get install prometheus";

  Registry r(2);
  for (const char* name : {"outbound", "inbound \"tls\""}) {
    const uint32_t l = r.listener_id(name);
    r.shard(0).listener(l).cx_total.inc(3);
    r.shard(1).listener(l).cx_active.add(2);
    r.shard(0).listener(l).bad_requests[static_cast<size_t>(BadRequest::kSmuggling)].inc();
    r.shard(1).listener(l).no_route.inc();
    r.shard(0).listener(l).upgrade_refused.inc(2);
  }
  for (const char* route : {"billing", "a\\b\nc"}) {
    const uint32_t rt = r.route_id("outbound", route);
    r.shard(0).route(rt).rq[static_cast<size_t>(CodeClass::k2xx)].inc(7);
    r.shard(1).route(rt).rq[static_cast<size_t>(CodeClass::k5xx)].inc();
    r.shard(0).route(rt).duration.observe(std::chrono::milliseconds(12));
    r.shard(1).route(rt).duration.observe(std::chrono::seconds(75));
  }
  for (const char* cluster : {"billing", "ledger"}) {
    const uint32_t c = r.cluster_id(cluster);
    ClusterStats& cs = r.main_shard().cluster(c);
    cs.rq_total.inc(4);
    cs.rq[static_cast<size_t>(CodeClass::k2xx)].inc(3);
    cs.cx_total.inc();
    cs.cx_active.add();
    cs.cx_idle.add();
    cs.cx_reused.inc(2);
    cs.rq_pending.set(1);
    cs.errors[static_cast<size_t>(UpstreamError::kResponseTimeout)].inc();
    cs.duration.observe(std::chrono::microseconds(700));
  }
  r.shard(0).limit(Limit::kHeaderBytes).inc();
  r.main().config_reloads_ok.inc();
  r.main().dns_resolutions_ok.inc(5);
  r.main().dns_resolutions_failed.inc();
  r.main().access_log_dropped.inc();

  char path[] = "/tmp/outrigger_stats_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = r.render_prometheus();
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);

  const std::string cmd = std::string(promtool) + " check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  const int status = pclose(p);
  unlink(path);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << output << "\n--- scrape ---\n" << text;
  EXPECT_EQ(output, "") << "promtool lint findings:\n" << output;
}

}  // namespace
}  // namespace outrigger::stats
