"""Retries, timeouts, circuit breakers, outlier detection, health checks, load balancing and zone
preference, against real upstreams on loopback that misbehave on command (harness Upstream's
`force`). Timing bounds are generous; counts are exact where the design makes them exact."""
import http.client
import json
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import yaml_out
from harness.client import get, request
from harness.testcase import ProxyTestCase
from harness.upstream import closed_port


def http_call(addr, method="GET", path="/x", body=None, headers=None, timeout=10):
  c = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
  try:
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data
  finally:
    c.close()


class Base(ProxyTestCase):
  def start(self, endpoints, route_extra=None, cluster_extra=None, **top):
    route = yaml_out.route("r1", "c1")
    route.update(route_extra or {})
    cluster = yaml_out.cluster("c1", endpoints)
    cluster.update(cluster_extra or {})
    cfg = yaml_out.config([route], [cluster], **top)
    return self.start_proxy(cfg)

  def upstreams(self, n):
    return [self.start_upstream("u%d" % i) for i in range(n)]


class Retries(Base):
  def test_attempts_header_on_every_proxied_response(self):
    (a,) = self.upstreams(1)
    p = self.start([a.address])
    st, h, _ = http_call(p.addr())
    self.assertEqual(st, 200)
    self.assertEqual(h.get("x-outrigger-attempts"), "1")

  def test_gateway_error_retried_on_another_endpoint(self):
    a, b = self.upstreams(2)
    a.force = "/status/503"
    p = self.start([a.address, b.address],
                   {"retry": {"retry_on": ["gateway-error"], "num_retries": 2,
                              "backoff": {"base": "5ms", "max": "20ms"}}})
    attempts = []
    for _ in range(10):
      st, h, body = http_call(p.addr())
      self.assertEqual(st, 200, body)
      self.assertEqual(json.loads(body)["upstream"], "u1")
      attempts.append(int(h["x-outrigger-attempts"]))
    # Round robin sends some first attempts to u0; each of those is retried once, on u1.
    self.assertEqual(sum(attempts), 10 + len(a.requests))
    self.assertGreater(len(a.requests), 0)
    self.assertTrue(all(x in (1, 2) for x in attempts), attempts)
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_retries_total", cluster="c1", reason="retried"),
                     len(a.requests))
    log = [e for e in p.wait_access_log(10) if e.get("attempts") == 2]
    self.assertEqual(len(log), len(a.requests))
    self.assertTrue(all(e["upstream"] == b.address and e["cluster"] == "c1" for e in log))

  def test_post_not_replayed_unless_allowed(self):
    (a,) = self.upstreams(1)
    a.force = "/status/503"
    retry = {"retry_on": ["5xx"], "num_retries": 2, "backoff": {"base": "1ms", "max": "2ms"}}
    p = self.start([a.address], {"retry": retry})
    st, h, _ = http_call(p.addr(), "POST", body=b"payload")
    self.assertEqual(st, 503)
    self.assertEqual(h["x-outrigger-attempts"], "1")
    self.assertEqual(len(a.requests), 1)
    self.assertEqual(p.metrics().get("outrigger_upstream_retries_total", cluster="c1",
                                     reason="not_idempotent"), 1)
    a.clear()
    st, h, _ = http_call(p.addr(), "GET")
    self.assertEqual(st, 503)
    self.assertEqual(h["x-outrigger-attempts"], "3")
    self.assertEqual(len(a.requests), 3)
    self.assertEqual(p.metrics().get("outrigger_upstream_retries_total", cluster="c1",
                                     reason="exhausted"), 1)

  def test_post_replayed_with_its_body_when_allowed(self):
    a, b = self.upstreams(2)
    a.force = "/status/503"
    retry = {"retry_on": ["5xx"], "num_retries": 1, "retry_non_idempotent": True,
             "backoff": {"base": "1ms", "max": "2ms"}}
    p = self.start([a.address, b.address], {"retry": retry})
    body = b"x" * 5000
    for _ in range(4):
      st, h, data = http_call(p.addr(), "POST", body=body)
      self.assertEqual(st, 200, data)
      self.assertEqual(json.loads(data)["body_len"], len(body))
    for r in a.requests + b.requests:
      self.assertEqual(r.body_len, len(body))

  def test_body_larger_than_replay_buffer_is_not_retried(self):
    a, b = self.upstreams(2)
    a.force = "/status/503"
    retry = {"retry_on": ["5xx"], "num_retries": 1, "retry_non_idempotent": True,
             "max_buffered_body_bytes": 1024, "backoff": {"base": "1ms", "max": "2ms"}}
    p = self.start([a.address, b.address], {"retry": retry})
    statuses = [http_call(p.addr(), "PUT", body=b"y" * 4096)[0] for _ in range(4)]
    self.assertIn(503, statuses)
    self.assertEqual(p.metrics().get("outrigger_upstream_retries_total", cluster="c1",
                                     reason="body_too_large"), statuses.count(503))

  def test_connect_failure_retried_for_any_method(self):
    (b,) = self.upstreams(1)
    dead = "127.0.0.1:%d" % closed_port()
    p = self.start([dead, b.address],
                   {"retry": {"retry_on": ["connect-failure"], "num_retries": 1,
                              "backoff": {"base": "1ms", "max": "2ms"}}})
    for _ in range(6):
      st, _, data = http_call(p.addr(), "POST", body=b"abc")
      self.assertEqual(st, 200, data)
    self.assertEqual(len(b.requests), 6)

  def test_reset_and_per_try_timeout_retried(self):
    a, b = self.upstreams(2)
    a.force = "/stall"
    p = self.start([a.address, b.address],
                   {"per_try_timeout": "300ms", "timeout": "5s",
                    "retry": {"retry_on": ["reset"], "num_retries": 1,
                              "backoff": {"base": "1ms", "max": "2ms"}}})
    t0 = time.monotonic()
    for _ in range(4):
      st, _, data = http_call(p.addr())
      self.assertEqual(st, 200, data)
    self.assertLess(time.monotonic() - t0, 4.0)
    a.force = "/reset?at=head"
    for _ in range(4):
      st, _, data = http_call(p.addr())
      self.assertEqual(st, 200, data)

  def test_retry_after_honoured_and_capped(self):
    (a,) = self.upstreams(1)
    a.force = "/status/503?retry_after=1"
    p = self.start([a.address], {"retry": {"retry_on": ["5xx"], "num_retries": 1}})
    t0 = time.monotonic()
    st, h, _ = http_call(p.addr())
    elapsed = time.monotonic() - t0
    self.assertEqual(st, 503)
    self.assertEqual(h["x-outrigger-attempts"], "2")
    self.assertGreaterEqual(elapsed, 0.9)
    a.force = "/status/503?retry_after=60"  # beyond retry_after_max (5 s): not retried
    t0 = time.monotonic()
    st, h, _ = http_call(p.addr())
    self.assertLess(time.monotonic() - t0, 1.0)
    self.assertEqual(h["x-outrigger-attempts"], "1")
    self.assertEqual(p.metrics().get("outrigger_upstream_retries_total", cluster="c1",
                                     reason="retry_after_too_long"), 1)

  def test_timeout_header_honoured_when_route_allows(self):
    (a,) = self.upstreams(1)
    a.force = "/stall"
    p = self.start([a.address], {"timeout": "10s", "allow_timeout_header": True})
    t0 = time.monotonic()
    st, h, _ = http_call(p.addr(), headers={"x-outrigger-timeout-ms": "300"})
    self.assertEqual(st, 504)
    self.assertLess(time.monotonic() - t0, 3.0)

  def test_route_idle_timeout_bounds_a_stalled_body(self):
    (a,) = self.upstreams(1)
    p = self.start([a.address], {"idle_timeout": "300ms"})
    t0 = time.monotonic()
    with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
      http_call(p.addr(), path="/slow-body?ms=3000&n=10")
    self.assertLess(time.monotonic() - t0, 2.5)

  def test_retry_storm_stays_within_budget(self):
    upstreams = self.upstreams(2)
    for u in upstreams:
      u.force = "/status/503"
    p = self.start([u.address for u in upstreams],
                   {"retry": {"retry_on": ["5xx"], "num_retries": 3,
                              "backoff": {"base": "20ms", "max": "40ms"}}},
                   {"retry_budget": {"budget_percent": 20, "min_retry_concurrency": 2}})
    n = 300
    addr = p.addr()
    with ThreadPoolExecutor(max_workers=20) as pool:
      statuses = list(pool.map(lambda _: http_call(addr)[0], range(n)))
    self.assertEqual(statuses.count(503), n)
    sent = sum(len(u.requests) for u in upstreams)
    m = p.metrics()
    retried = m.get("outrigger_upstream_retries_total", cluster="c1", reason="retried")
    refused = m.get("outrigger_upstream_retries_total", cluster="c1", reason="budget_exhausted")
    self.assertEqual(sent, n + retried)
    self.assertGreater(refused, 0)
    # Without the budget every request would have made 4 attempts (1200 upstream requests).
    self.assertLess(sent, n * 2.5, (sent, retried, refused))


class Breakers(Base):
  def concurrent(self, p, n, path="/delay?ms=600"):
    addr = p.addr()
    with ThreadPoolExecutor(max_workers=n) as pool:
      return list(pool.map(lambda _: http_call(addr, path=path), range(n)))

  def test_max_requests_overflow_is_503_at_once(self):
    (a,) = self.upstreams(1)
    p = self.start([a.address], cluster_extra={"circuit_breakers": {"max_requests": 2}})
    results = self.concurrent(p, 5)
    ok = [r for r in results if r[0] == 200]
    over = [r for r in results if r[0] == 503]
    self.assertEqual(len(ok), 2)
    self.assertEqual(len(over), 3)
    for _, h, _ in over:
      self.assertEqual(h["x-outrigger-overflow"], "requests")
    self.assertEqual(p.metrics().get("outrigger_upstream_circuit_breaker_overflows_total",
                                     cluster="c1", threshold="requests"), 3)

  def test_max_connections_overflow(self):
    (a,) = self.upstreams(1)
    p = self.start([a.address], cluster_extra={"circuit_breakers": {"max_connections": 1}})
    results = self.concurrent(p, 3)
    self.assertEqual([r[0] for r in results].count(200), 1)
    for st, h, _ in results:
      if st != 200:
        self.assertEqual(h["x-outrigger-overflow"], "connections")

  def test_max_pending_overflow(self):
    (a,) = self.upstreams(1)
    p = self.start([a.address], cluster_extra={"max_connections": 1,
                                               "circuit_breakers": {"max_pending_requests": 1}})
    results = self.concurrent(p, 4)
    statuses = [r[0] for r in results]
    self.assertEqual(statuses.count(200), 2)  # one on the connection, one waiting for it
    for st, h, _ in results:
      if st != 200:
        self.assertEqual(h["x-outrigger-overflow"], "pending")

  def test_max_retries_breaker_without_budget(self):
    (a,) = self.upstreams(1)
    a.force = "/delay?ms=0"
    a.force = "/status/503"
    p = self.start([a.address], {"retry": {"retry_on": ["5xx"], "num_retries": 1}},
                   {"circuit_breakers": {"max_retries": 0}})
    st, h, _ = http_call(p.addr())
    self.assertEqual(st, 503)
    self.assertEqual(h["x-outrigger-attempts"], "1")
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_circuit_breaker_overflows_total", cluster="c1",
                           threshold="retries"), 1)

  def test_breaker_gauges_and_clusters_endpoint(self):
    (a,) = self.upstreams(1)
    p = self.start([a.address], cluster_extra={"circuit_breakers": {"max_requests": 7}})
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_circuit_breaker_limit", cluster="c1",
                           threshold="requests"), 7)
    c = json.loads(p.admin_get("/clusters").body)["clusters"][0]
    self.assertEqual(c["circuit_breakers"]["requests"]["limit"], 7)
    self.assertEqual(c["lb_policy"], "round_robin")


class Outliers(Base):
  def test_ejection_and_return(self):
    a, b = self.upstreams(2)
    a.force = "/status/500"
    p = self.start([a.address, b.address], cluster_extra={
        "outlier_detection": {"consecutive_5xx": 3, "base_ejection_time": "1s",
                              "max_ejection_percent": 50, "interval": "1s"}})
    for _ in range(20):
      http_call(p.addr())
    self.assertEqual(len(a.requests), 3)  # ejected after its third 5xx
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_outlier_ejections_total", cluster="c1",
                           reason="consecutive_5xx"), 1)
    self.assertEqual(m.get("outrigger_upstream_outlier_ejected", cluster="c1"), 1)
    ep = {e["address"]: e for e in
          json.loads(p.admin_get("/clusters").body)["clusters"][0]["endpoints"]}
    self.assertEqual(ep[a.address]["state"], "ejected")
    self.assertEqual(ep[b.address]["state"], "active")
    a.force = None
    time.sleep(1.3)
    for _ in range(10):
      self.assertEqual(http_call(p.addr())[0], 200)
    self.assertGreater(len(a.requests), 3)  # back in rotation

  def test_connect_failures_eject(self):
    (b,) = self.upstreams(1)
    dead = "127.0.0.1:%d" % closed_port()
    p = self.start([dead, b.address], cluster_extra={
        "outlier_detection": {"consecutive_local_origin_failure": 2, "max_ejection_percent": 50}})
    statuses = [http_call(p.addr())[0] for _ in range(20)]
    self.assertEqual(statuses.count(502), 2)
    self.assertEqual(p.metrics().get("outrigger_upstream_outlier_ejections_total", cluster="c1",
                                     reason="consecutive_local_origin_failure"), 1)


class HealthChecks(Base):
  HC = {"path": "/health", "interval": "100ms", "timeout": "500ms", "unhealthy_threshold": 2,
        "healthy_threshold": 1, "interval_jitter_percent": 0}

  def test_unhealthy_taken_out_and_back(self):
    a, b = self.upstreams(2)
    b.force = "/status/503"
    p = self.start([a.address, b.address], cluster_extra={"health_check": dict(self.HC)})
    self.wait_until(lambda: p.metrics().get("outrigger_upstream_health_transitions_total",
                                            cluster="c1", to="unhealthy") >= 1, 5,
                    msg="b marked unhealthy")
    time.sleep(0.2)
    b.clear()
    for _ in range(10):
      self.assertEqual(http_call(p.addr())[0], 200)
    self.assertEqual([r for r in b.requests if r.path != "/health"], [])
    ep = {e["address"]: e for e in
          json.loads(p.admin_get("/clusters").body)["clusters"][0]["endpoints"]}
    self.assertEqual(ep[b.address]["health"], "unhealthy")
    b.force = None
    self.wait_until(lambda: p.metrics().get("outrigger_upstream_health_transitions_total",
                                            cluster="c1", to="healthy") >= 1, 5,
                    msg="b healthy again")
    time.sleep(0.2)
    b.clear()
    for _ in range(10):
      http_call(p.addr())
    self.assertGreater(len([r for r in b.requests if r.path != "/health"]), 0)

  def test_reload_applies_changed_check_settings(self):
    """A reload that changes a cluster's health_check (here its path) takes effect: the checks
    start over with the new settings and none with the old ones goes on."""
    (a,) = self.upstreams(1)
    route = yaml_out.route("r1", "c1")
    cluster = yaml_out.cluster("c1", [a.address])
    cluster["health_check"] = dict(self.HC)
    p = self.start_proxy(yaml_out.config([route], [cluster]))
    self.wait_until(lambda: any(r.path == "/health" for r in a.requests), 5, msg="first checks")
    cluster["health_check"] = dict(self.HC, path="/ready")
    self.assertEqual((p.reload(yaml_out.config([route], [cluster])) or {}).get("msg"),
                     "config reloaded")
    self.wait_until(lambda: any(r.path == "/ready" for r in a.requests), 5,
                    msg="checks with the new path")
    time.sleep(0.3)  # three intervals: an old checker, had it lived on, would show here
    a.clear()
    time.sleep(0.35)
    paths = {r.path for r in a.requests}
    self.assertEqual(paths, {"/ready"})

  def test_panic_routes_to_all_when_all_unhealthy(self):
    a, b = self.upstreams(2)
    # The health check's path fails for good while requests succeed: no check can mark an
    # endpoint healthy again between the six calls (with a forced failure lifted for the calls,
    # the next check did, 1 run in 7).
    hc = dict(self.HC, path="/status/503")
    p = self.start([a.address, b.address], cluster_extra={"health_check": hc})
    self.wait_until(lambda: p.metrics().get("outrigger_upstream_health_transitions_total",
                                            cluster="c1", to="unhealthy") >= 2, 5,
                    msg="both unhealthy")
    statuses = [http_call(p.addr())[0] for _ in range(6)]
    self.assertEqual(statuses, [200] * 6)
    self.assertEqual(p.metrics().get("outrigger_upstream_lb_panic_total", cluster="c1"), 6)


class Zones(Base):
  def test_local_zone_preferred_then_spill_over(self):
    a, b = self.upstreams(2)
    eps = [{"address": a.address, "zone": "us-east-1a"},
           {"address": b.address, "zone": "us-east-1b"}]
    p = self.start(eps, cluster_extra={"health_check": dict(HealthChecks.HC)},
                   aws={"zone": "us-east-1a"})
    for _ in range(10):
      self.assertEqual(json.loads(http_call(p.addr())[2])["upstream"], "u0")
    self.assertEqual(p.metrics().get("outrigger_upstream_cross_zone_requests_total",
                                     cluster="c1"), 0)
    a.force = "/status/503"  # the local zone's only endpoint fails its health checks
    self.wait_until(lambda: p.metrics().get("outrigger_upstream_health_transitions_total",
                                            cluster="c1", to="unhealthy") >= 1, 5,
                    msg="local endpoint unhealthy")
    # It keeps failing them during the calls: lifting the failure let the next check (every
    # 100 ms, healthy threshold 1) bring it back in the middle of the five, 1 run in ~10.
    for _ in range(5):
      self.assertEqual(json.loads(http_call(p.addr())[2])["upstream"], "u1")
    self.assertEqual(p.metrics().get("outrigger_upstream_cross_zone_requests_total",
                                     cluster="c1"), 5)


class Balancing(Base):
  def test_least_request_avoids_the_slow_endpoint(self):
    a, b = self.upstreams(2)
    a.force = "/delay?ms=300"
    p = self.start([a.address, b.address], cluster_extra={"lb_policy": "least_request"})
    addr = p.addr()
    with ThreadPoolExecutor(max_workers=8) as pool:
      statuses = list(pool.map(lambda _: http_call(addr)[0], range(80)))
    self.assertEqual(statuses, [200] * 80)
    self.assertGreater(len(b.requests), 2 * len(a.requests))

  def test_weights(self):
    a, b = self.upstreams(2)
    eps = [{"address": a.address, "weight": 3}, {"address": b.address, "weight": 1}]
    p = self.start(eps)
    for _ in range(40):
      http_call(p.addr())
    self.assertEqual((len(a.requests), len(b.requests)), (30, 10))


class Failover(ProxyTestCase):
  def test_route_fails_over_to_the_next_cluster(self):
    primary = "127.0.0.1:%d" % closed_port()
    b = self.start_upstream("backup")
    route = yaml_out.route("r1", "ignored")
    del route["cluster"]
    route["clusters"] = ["primary", "backup"]
    cfg = yaml_out.config([route], [
        yaml_out.cluster("primary", [primary], outlier_detection={
            "consecutive_local_origin_failure": 1, "max_ejection_percent": 100}),
        yaml_out.cluster("backup", [b.address])])
    p = self.start_proxy(cfg)
    statuses = [http_call(p.addr())[0] for _ in range(5)]
    self.assertEqual(statuses[1:], [200] * 4)
    self.assertEqual(p.metrics().get("outrigger_upstream_failover_requests_total",
                                     cluster="backup"), 4)


if __name__ == "__main__":
  unittest.main()
