"""Process lifecycle: admin endpoints, SIGTERM drain (alone and under load), SIGHUP reload (valid,
invalid, under load), and a live /metrics scrape checked by promtool."""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import (LoadClients, Proxy, ProxyTestCase, RawConn, build_request, connect_refused,
                     get, metrics, yaml_out)


def find_dicts(obj, pred):
  """Every dict inside a JSON value for which pred(dict) holds."""
  out = []
  stack = [obj]
  for _ in range(100000):
    if not stack:
      break
    x = stack.pop()
    if isinstance(x, dict):
      if pred(x):
        out.append(x)
      stack.extend(x.values())
    elif isinstance(x, list):
      stack.extend(x)
  return out


def two_cluster_config(a_addr, b_addr, to, **kw):
  return yaml_out.config([yaml_out.route("r1", to, timeout="20s")],
                         [yaml_out.cluster("ca", [a_addr]), yaml_out.cluster("cb", [b_addr])],
                         **kw)


class Admin(ProxyTestCase):
  def setUp(self):
    self.up = self.start_upstream("A")
    self.proxy = self.start_proxy(yaml_out.simple(self.up.address))
    self.addr = self.proxy.addr("main")

  def test_ready_and_healthz(self):
    r = self.proxy.admin_get("/ready")
    self.assertEqual((r.status, r.body.strip()), (200, b"ready"))
    self.assertEqual(self.proxy.admin_get("/healthz").status, 200)

  def test_config_endpoint(self):
    r = self.proxy.admin_get("/config")
    self.assertEqual(r.status, 200)
    cfg = r.json()
    self.assertTrue(find_dicts(cfg, lambda d: d.get("name") == "main"), cfg)
    routes = find_dicts(cfg, lambda d: d.get("name") == "r1")
    self.assertEqual([d.get("cluster") for d in routes], ["c1"], cfg)
    self.assertIn(self.up.address, json.dumps(cfg))

  def test_clusters_endpoint(self):
    get(self.addr, "/echo")
    r = self.proxy.admin_get("/clusters")
    self.assertEqual(r.status, 200)
    text = json.dumps(r.json())
    self.assertIn("c1", text)
    self.assertIn(self.up.address, text)

  def test_request_metrics(self):
    m0 = self.proxy.metrics()
    for _ in range(3):
      self.assertEqual(get(self.addr, "/echo").status, 200)
    # A request is counted once its last byte was written: the client may scrape a moment sooner.
    deadline = time.monotonic() + 5
    while True:
      m1 = self.proxy.metrics()
      d = lambda name, **l: m1.get(name, **l) - m0.get(name, **l)
      if d("outrigger_downstream_requests_total", route="r1", code_class="2xx") >= 3 or \
          time.monotonic() > deadline:
        break
      time.sleep(0.05)
    self.assertEqual(d("outrigger_downstream_requests_total", route="r1", code_class="2xx"), 3)
    self.assertEqual(d("outrigger_upstream_requests_total", cluster="c1"), 3)
    self.assertEqual(d("outrigger_upstream_responses_total", cluster="c1", code_class="2xx"), 3)
    self.assertGreaterEqual(d("outrigger_downstream_connections_total", listener="main"), 3)

  def test_promtool_check_metrics(self):
    # Traffic first, so that the per-route and per-cluster families have series and buckets.
    for path in ("/echo", "/status/503", "/status/404"):
      get(self.addr, path)
    r = self.proxy.admin_get("/metrics")
    self.assertEqual(r.status, 200)
    self.assertIn("text/plain", r.header("content-type", ""))
    p = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True,
                       timeout=30)
    self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())


class Drain(ProxyTestCase):
  def test_sigterm_drain_sequence(self):
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, route_timeout="20s",
                                         drain={"delay": "2s", "timeout": "15s"}))
    addr = p.addr("main")
    ka = RawConn(addr, timeout=10)
    self.addCleanup(ka.close)
    self.assertFalse(ka.request("GET", "/echo/ka1").closes)
    slow = RawConn(addr, timeout=15)
    self.addCleanup(slow.close)
    slow.send(build_request("GET", "/delay?ms=5000"))
    self.assertTrue(up.wait_requests(2), "the slow request never reached the upstream")

    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    self.wait_until(lambda: p.admin_get("/ready").status == 503, 1.0, 0.02,
                    "/ready 503 right after SIGTERM")
    self.assertEqual(p.metrics().get("outrigger_draining"), 1)

    # During drain.delay new connections are still accepted and served ...
    during = get(addr, "/echo/during-delay")
    self.assertEqual(during.status, 200)
    self.assertTrue(during.closes, "responses while draining carry Connection: close")
    # ... and a keep-alive connection gets Connection: close on its next response.
    r = ka.request("GET", "/echo/ka2")
    self.assertEqual(r.status, 200)
    self.assertTrue(r.closes, "keep-alive response while draining lacks Connection: close")
    self.assertTrue(ka.wait_closed(3))

    # After the delay the listener is gone while the slow request is still in flight.
    self.wait_until(lambda: connect_refused(addr), 4.0, 0.05, "listener closed after delay")
    self.assertGreater(time.monotonic() - t0, 1.9, "listener closed before drain.delay")
    r = slow.read_response(timeout=15)
    self.assertEqual(r.status, 200, "in-flight request must complete")
    self.assertEqual(r.json()["target"], "/delay?ms=5000")
    self.assertEqual(p.wait(10), 0)

  def test_response_in_flight_at_sigterm_leaves_connection_usable(self):
    # The response head left before SIGTERM (so it could not say Connection: close) and its body
    # after. The client may send its next request at once; it must be answered (with close),
    # not dropped: this is the race that loses requests in a draining fleet.
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, drain={"delay": "2s", "timeout": "10s"}))
    with RawConn(p.addr("main"), timeout=10) as c:
      c.send(build_request("GET", "/slow-body?ms=800&n=1000"))
      head = c.read_head()
      self.assertEqual(head.status, 200)
      self.assertFalse(head.closes)
      p.signal(signal.SIGTERM)
      self.wait_until(lambda: p.admin_get("/ready").status == 503, 1, 0.02, "draining")
      c.read_body(head)
      self.assertEqual(head.body_len, 1000)
      c.send(build_request("GET", "/echo/next"))
      r = c.read_response()
      self.assertEqual(r.status, 200)
      self.assertTrue(r.closes, "the next response while draining carries Connection: close")
    self.assertEqual(p.wait(10), 0)

  def test_idle_keepalive_closed_on_drain(self):
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, drain={"delay": "2s", "timeout": "10s"}))
    with RawConn(p.addr("main"), timeout=5) as c:
      self.assertEqual(c.request("GET", "/echo").status, 200)
      t0 = time.monotonic()
      p.signal(signal.SIGTERM)
      self.assertTrue(c.wait_closed(4.5), "idle keep-alive connection left open while draining")
      self.assertEqual(bytes(c.buf), b"")
    self.assertEqual(p.wait(10), 0)
    self.assertGreater(time.monotonic() - t0, 1.8, "exited before drain.delay")

  def test_drain_timeout_bounds_the_exit(self):
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, route_timeout="30s",
                                         drain={"delay": "0s", "timeout": "1s"}))
    stuck = RawConn(p.addr("main"), timeout=10)
    self.addCleanup(stuck.close)
    stuck.send(build_request("GET", "/stall"))
    self.assertTrue(up.wait_requests(1))
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    self.assertEqual(p.wait(8), 0)
    elapsed = time.monotonic() - t0
    self.assertGreater(elapsed, 0.8, "exited before drain.timeout with a request in flight")
    self.assertLess(elapsed, 5, "drain.timeout 1s not enforced")

  def test_drain_timeout_after_traffic_exits_cleanly(self):
    # As above, plus one completed request before SIGTERM (there always is one in real life).
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, route_timeout="30s",
                                         drain={"delay": "0s", "timeout": "1s"}))
    stuck = RawConn(p.addr("main"), timeout=10)
    self.addCleanup(stuck.close)
    stuck.send(build_request("GET", "/stall"))
    self.assertTrue(up.wait_requests(1))
    self.assertEqual(get(p.addr("main"), "/echo").status, 200)
    p.signal(signal.SIGTERM)
    rc = p.wait(8)
    self.assertEqual(rc, 0, "exit after drain.timeout: code %d\n%s" % (rc, p.stderr_text()))

  def test_drain_under_load_loses_nothing(self):
    ng = self.start_nginx(["N"])
    p = self.start_proxy(yaml_out.simple(ng.address(0), drain={"delay": "500ms",
                                                                "timeout": "10s"}))
    load = LoadClients(p.addr("main"), threads=4, stop_on_close=True, duration=30)
    self.addCleanup(load.finish, 5)
    load.start()
    self.assertTrue(load.wait_ok(200, 15), "load did not get going: %r" % load.lost[:5])
    t_term = time.monotonic()
    p.signal(signal.SIGTERM)
    self.assertTrue(load.join(20), "clients did not stop after the drain")
    self.assertEqual(p.wait(10), 0)
    self.assertEqual(["thread %d request %d: %s, %.3fs after SIGTERM" % (i, n, e, t - t_term)
                      for i, n, e, t in load.lost], [], "requests lost during drain")
    self.assertTrue(set(load.stopped_because) <= {"connection: close", "refused"},
                    load.stopped_because)
    self.assertGreater(load.ok, 200)


class Reload(ProxyTestCase):
  def setUp(self):
    self.a = self.start_upstream("A")
    self.b = self.start_upstream("B")

  def cfg(self, to):
    return two_cluster_config(self.a.address, self.b.address, to)

  def test_reload_changes_routing_without_dropping_inflight(self):
    p = self.start_proxy(self.cfg("ca"))
    addr = p.addr("main")
    self.assertEqual(get(addr, "/echo").header("x-upstream"), "A")
    ka = RawConn(addr, timeout=10)
    self.addCleanup(ka.close)
    self.assertEqual(ka.request("GET", "/echo/ka").header("x-upstream"), "A")
    slow = RawConn(addr, timeout=15)
    self.addCleanup(slow.close)
    slow.send(build_request("GET", "/delay?ms=1500"))
    self.assertTrue(self.a.wait_requests(3))
    before = metrics.reloads(p.metrics(), ok=True)

    line = p.reload(self.cfg("cb"))
    self.assertIsNotNone(line, "no reload result logged\n" + p.stderr_text())
    self.assertEqual(line.get("msg"), "config reloaded", line)

    self.assertEqual(get(addr, "/echo/new").header("x-upstream"), "B")
    r = ka.request("GET", "/echo/ka-after")
    self.assertEqual((r.status, r.header("x-upstream")), (200, "B"),
                     "a kept-alive connection uses the new routes for new requests")
    r = slow.read_response(timeout=15)
    self.assertEqual((r.status, r.header("x-upstream")), (200, "A"),
                     "in-flight request finishes on its old route")
    self.assertEqual(metrics.reloads(p.metrics(), ok=True) - before, 1)
    routes = find_dicts(p.admin_get("/config").json(), lambda d: d.get("name") == "r1")
    self.assertEqual([d.get("cluster") for d in routes], ["cb"])

  def test_reload_of_a_cluster_under_the_same_name(self):
    """A worker keeps each cluster's pool and runtime at hand by cluster state; a reload that
    keeps the cluster's name but changes its endpoints and max_connections must take effect."""
    def cfg(addr, max_conns):
      return yaml_out.config([yaml_out.route("r1", "ca", timeout="20s")],
                             [yaml_out.cluster("ca", [addr], max_connections=max_conns,
                                               connect_timeout="5s")])

    def three_at_once():
      results = []
      threads = [threading.Thread(target=lambda: results.append(
          get(p.addr("main"), "/delay?ms=500", timeout=15))) for _ in range(3)]
      t0 = time.monotonic()
      for t in threads:
        t.start()
      for t in threads:
        t.join(20)
      return time.monotonic() - t0, sorted((r.status, r.header("x-upstream")) for r in results)

    p = self.start_proxy(cfg(self.a.address, 1))
    took, got = three_at_once()
    self.assertEqual(got, [(200, "A")] * 3)
    self.assertGreater(took, 1.4, "max_connections 1: one at a time")
    self.assertEqual((p.reload(cfg(self.b.address, 4)) or {}).get("msg"), "config reloaded")
    took, got = three_at_once()
    self.assertEqual(got, [(200, "B")] * 3, "the new endpoints")
    self.assertLess(took, 1.3, "max_connections 4: all at once")

  def test_reload_applies_new_limits(self):
    p = self.start_proxy(self.cfg("ca"))
    hs = [("X-H-%d" % i, "v") for i in range(10)]
    self.assertEqual(get(p.addr("main"), "/echo", headers=hs).status, 200)
    cfg = two_cluster_config(self.a.address, self.b.address, "ca", limits={"max_headers": 5})
    self.assertEqual((p.reload(cfg) or {}).get("msg"), "config reloaded")
    self.assertLocalError(get(p.addr("main"), "/echo", headers=hs), 431)

  def test_invalid_config_refused_and_old_kept(self):
    p = self.start_proxy(self.cfg("ca"))
    addr = p.addr("main")
    before = metrics.reloads(p.metrics(), ok=False)
    for bad in ("listeners: [\n  {name: main,\n",  # YAML syntax
                yaml_out.to_yaml(self.cfg("no-such-cluster"))):  # semantics
      with self.subTest(bad=bad[:40]):
        line = p.reload(bad)
        self.assertIsNotNone(line, "no reload result logged\n" + p.stderr_text())
        self.assertEqual((line.get("msg"), line.get("level")), ("config reload failed", "error"))
        self.assertTrue(p.running())
        self.assertEqual(get(addr, "/echo").header("x-upstream"), "A", "old routing kept")
        self.assertEqual(p.admin_get("/ready").status, 200)
    self.assertEqual(metrics.reloads(p.metrics(), ok=False) - before, 2)
    self.assertEqual(self.b.requests, [])

  def test_reload_with_missing_file_refused(self):
    p = self.start_proxy(self.cfg("ca"))
    mark = p.log_mark()
    os.remove(p.config_path)
    p.signal(signal.SIGHUP)
    line = p.wait_log("config reload failed", since=mark, level="error")
    self.assertIsNotNone(line, p.stderr_text())
    self.assertEqual(get(p.addr("main"), "/echo").header("x-upstream"), "A")

  def test_signals_handled_as_soon_as_ready(self):
    # "ready" promises the process is manageable: a SIGHUP sent the moment it is logged must
    # reload, not kill by the default action. The race is narrow, so try a few times.
    for i in range(15):
      p = Proxy(self.cfg("ca")).start()
      try:
        p.signal(signal.SIGHUP)
        line = p.wait_log("config reloaded", timeout=3)
        if line is None:
          try:
            rc = p.wait(2)
          except TimeoutError:
            rc = "still running"
          self.fail("attempt %d: no reload after a SIGHUP sent right after \"ready\" (exit: %s)"
                    "\n%s" % (i, rc, p.stderr_text()))
      finally:
        p.stop()

  def test_reload_under_load_loses_nothing(self):
    ng = self.start_nginx(["A", "B"])
    cfg = lambda to: two_cluster_config(ng.address(0), ng.address(1), to)
    p = self.start_proxy(cfg("ca"))
    load = LoadClients(p.addr("main"), threads=4, stop_on_close=False, duration=40)
    self.addCleanup(load.finish, 5)
    load.start()
    self.assertTrue(load.wait_ok(100, 15), "load did not get going: %r" % load.lost[:5])
    for i, to in enumerate(["cb", "ca", "cb", "ca"]):
      line = p.reload(cfg(to))
      self.assertEqual((line or {}).get("msg"), "config reloaded", (i, line, p.stderr_text()))
      self.assertTrue(load.wait_ok(100, 15), "load stalled after reload %d" % i)
    self.assertTrue(load.finish(15))
    self.assertEqual([x[:3] for x in load.lost], [], "requests lost across reloads")
    self.assertGreater(load.bodies.get(b"A\n", 0), 0)
    self.assertGreater(load.bodies.get(b"B\n", 0), 0)
    self.assertEqual(set(load.bodies), {b"A\n", b"B\n"})


if __name__ == "__main__":
  unittest.main()
