"""Locally generated errors: limits (431, 413, 408, idle close) and upstream failures (502, 503,
504), each with x-outrigger-reason, the "outrigger: <reason>" body and its metric."""
import random
import select
import socket
import threading
import time
import unittest

from harness import (ConnectionClosed, ProxyTestCase, RawConn, build_request, chunked,
                     closed_port, get, metrics, request, yaml_out)


class Limits(ProxyTestCase):
  def setUp(self):
    self.up = self.start_upstream("A")
    self.proxy = self.start_proxy(yaml_out.simple(self.up.address, limits={
        "max_request_headers_bytes": 4096, "max_headers": 20, "max_request_body_bytes": 1000,
        "header_timeout": "1s", "idle_timeout": "1s"}))
    self.addr = self.proxy.addr("main")

  def limit_delta(self, limit, action):
    before = metrics.limit_hits(self.proxy.metrics(), limit)
    out = action()
    return out, metrics.limit_hits(self.proxy.metrics(), limit) - before

  def test_431_header_block_too_large(self):
    r, d = self.limit_delta("header_bytes", lambda: get(self.addr, "/echo",
                                                        headers=[("X-Big", "a" * 5000)]))
    self.assertLocalError(r, 431)
    self.assertEqual(d, 1)
    self.assertEqual(self.up.requests, [])

  def test_431_request_line_too_long(self):
    r, d = self.limit_delta("header_bytes", lambda: get(self.addr, "/echo?" + "q" * 5000))
    self.assertLocalError(r, 431)
    self.assertEqual(d, 1)
    self.assertEqual(self.up.requests, [])

  def test_431_too_many_headers(self):
    hs = [("X-H-%d" % i, "v") for i in range(30)]
    r, d = self.limit_delta("header_count", lambda: get(self.addr, "/echo", headers=hs))
    self.assertLocalError(r, 431)
    self.assertEqual(d, 1)
    self.assertEqual(self.up.requests, [])

  def test_under_the_header_limits_passes(self):
    hs = [("X-H-%d" % i, "v" * 100) for i in range(15)]
    self.assertEqual(get(self.addr, "/echo", headers=hs).status, 200)

  def test_near_the_header_limit_passes(self):
    r = get(self.addr, "/echo", headers=[("X-Fill", "f" * 3800)])
    self.assertEqual(r.status, 200)
    self.assertEqual(len(self.up.requests[-1].header("x-fill")), 3800)

  def test_413_content_length_over_limit(self):
    r, d = self.limit_delta("body_bytes",
                            lambda: request(self.addr, "POST", "/echo", body=b"b" * 2000))
    self.assertLocalError(r, 413)
    self.assertEqual(d, 1)
    self.assertEqual(self.up.requests, [], "nothing may reach the upstream")
    self.assertEqual(self.up.connections_accepted, 0)

  def test_413_chunked_body_over_limit(self):
    before = metrics.limit_hits(self.proxy.metrics(), "body_bytes")
    with RawConn(self.addr, timeout=5) as c:
      c.send(build_request("POST", "/echo/big", [("Transfer-Encoding", "chunked")]) +
             chunked(b"c" * 1800, 600))
      r = c.read_response()
      self.assertLocalError(r, 413)
      self.assertTrue(c.wait_closed(3), "the rest of an over-limit body cannot be framed: close")
    self.assertEqual(metrics.limit_hits(self.proxy.metrics(), "body_bytes") - before, 1)
    complete = [q for q in self.up.requests if q.body_complete]
    self.assertEqual(complete, [], "an over-limit body must never reach the upstream whole")

  def test_body_at_the_limit_passes(self):
    r = request(self.addr, "POST", "/echo", body=b"b" * 1000)
    self.assertEqual(r.status, 200)
    self.assertEqual(r.json()["body_len"], 1000)

  def test_408_slow_head(self):
    before = metrics.limit_hits(self.proxy.metrics(), "header_timeout")
    with RawConn(self.addr, timeout=8) as c:
      c.send(b"GET /echo HTTP/1.1\r\nHost: test\r\nX-Partial: ")
      t0 = time.monotonic()
      r = c.read_response(timeout=8)
      elapsed = time.monotonic() - t0
      self.assertLocalError(r, 408)
      self.assertTrue(c.wait_closed(3), "408 must close the connection")
    self.assertGreater(elapsed, 0.8, "408 before header_timeout (1s)")
    self.assertLess(elapsed, 5, "408 long after header_timeout (1s)")
    self.assertEqual(metrics.limit_hits(self.proxy.metrics(), "header_timeout") - before, 1)
    self.assertEqual(self.up.requests, [])

  def test_408_slow_loris(self):
    # One byte every 150 ms: the header timeout runs from the first byte, not per read.
    head = b"GET /echo HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"s" * 40
    with RawConn(self.addr, timeout=8) as c:
      t0 = time.monotonic()
      for i in range(len(head)):
        try:
          c.send(head[i:i + 1])
        except OSError:
          break
        if select.select([c.sock], [], [], 0.15)[0]:
          break
      r = c.read_response(timeout=5)
      elapsed = time.monotonic() - t0
    self.assertLocalError(r, 408)
    self.assertGreater(elapsed, 0.8)
    self.assertLess(elapsed, 3, "header_timeout (1s) restarted by each byte")
    self.assertEqual(self.up.requests, [])

  def test_413_with_expect_answers_without_waiting_for_body(self):
    with RawConn(self.addr, timeout=5) as c:
      c.send(build_request("POST", "/echo", [("Content-Length", "2000"),
                                             ("Expect", "100-continue")]))
      t0 = time.monotonic()
      r = c.read_response(timeout=5)
    self.assertLocalError(r, 413)
    self.assertEqual(r.interim, [], "no 100 Continue for a body that will be refused")
    self.assertLess(time.monotonic() - t0, 2)
    self.assertEqual(self.up.requests, [])

  def test_idle_keepalive_connection_closed(self):
    before = metrics.limit_hits(self.proxy.metrics(), "idle_timeout")
    with RawConn(self.addr, timeout=8) as c:
      self.assertEqual(c.request("GET", "/echo").status, 200)
      t0 = time.monotonic()
      closed = c.wait_closed(8)
      elapsed = time.monotonic() - t0
      self.assertTrue(closed, "idle connection still open after 8s (idle_timeout 1s)")
      self.assertEqual(bytes(c.buf), b"", "an idle close sends no response")
    self.assertGreater(elapsed, 0.8)
    self.assertLess(elapsed, 5)
    self.assertEqual(metrics.limit_hits(self.proxy.metrics(), "idle_timeout") - before, 1)


class UpstreamFailures(ProxyTestCase):
  def setUp(self):
    self.up = self.start_upstream("A")
    self.hole = self.blackhole()
    r = yaml_out.route
    cfg = yaml_out.config(
        [r("refused", "refused", path_prefix="/refused/"),
         r("hole", "hole", path_prefix="/hole/"),
         r("slow", "up", path_prefix="/stall", timeout="300ms"),
         r("rest", "up", timeout="10s")],
        [yaml_out.cluster("up", [self.up.address]),
         yaml_out.cluster("refused", ["127.0.0.1:%d" % closed_port()], connect_timeout="2s"),
         yaml_out.cluster("hole", [self.hole.address], connect_timeout="300ms")])
    self.proxy = self.start_proxy(cfg)
    self.addr = self.proxy.addr("main")

  def error_delta(self, reason, cluster, action):
    before = metrics.upstream_errors(self.proxy.metrics(), reason, cluster=cluster)
    t0 = time.monotonic()
    out = action()
    elapsed = time.monotonic() - t0
    d = metrics.upstream_errors(self.proxy.metrics(), reason, cluster=cluster) - before
    return out, d, elapsed

  def test_502_connect_refused(self):
    r, d, _ = self.error_delta("connect_refused", "refused", lambda: get(self.addr, "/refused/x"))
    self.assertLocalError(r, 502)
    self.assertEqual(d, 1)

  def test_503_connect_timeout(self):
    r, d, elapsed = self.error_delta("connect_timeout", "hole",
                                     lambda: get(self.addr, "/hole/x", timeout=10))
    self.assertLocalError(r, 503, reason_contains="connect timeout")
    self.assertEqual(d, 1)
    self.assertGreater(elapsed, 0.25, "answered before connect_timeout (300ms)")
    self.assertLess(elapsed, 3, "connect_timeout 300ms not enforced")

  def test_504_response_timeout(self):
    r, d, elapsed = self.error_delta("response_timeout", "up",
                                     lambda: get(self.addr, "/stall", timeout=10))
    self.assertLocalError(r, 504)
    self.assertEqual(d, 1)
    self.assertGreater(elapsed, 0.25, "answered before the route timeout (300ms)")
    self.assertLess(elapsed, 3, "route timeout 300ms not enforced")
    self.assertEqual(len(self.up.requests), 1)

  def test_502_close_without_response(self):
    r, d, _ = self.error_delta("reset", "up", lambda: get(self.addr, "/close"))
    self.assertLocalError(r, 502)
    self.assertGreaterEqual(d, 1)

  def test_502_reset_inside_response_head(self):
    r, d, _ = self.error_delta("reset", "up", lambda: get(self.addr, "/reset?at=head"))
    self.assertLocalError(r, 502)
    self.assertGreaterEqual(d, 1)

  def test_reset_mid_body_aborts_downstream(self):
    before = metrics.upstream_errors(self.proxy.metrics(), "reset", cluster="up")
    with RawConn(self.addr, timeout=10) as c:
      c.send(build_request("GET", "/reset?at=body"))
      head = c.read_head()
      self.assertEqual(head.status, 200)
      # The head was already relayed: the only honest signal left is to cut the connection
      # before the declared length.
      with self.assertRaises(ConnectionClosed):
        c.read_body(head, timeout=10)
    self.assertEqual(metrics.upstream_errors(self.proxy.metrics(), "reset", cluster="up") - before,
                     1)
    self.assertEqual(get(self.addr, "/echo").status, 200, "proxy healthy afterwards")

  def test_upstream_answers_before_reading_the_body(self):
    n = 8 << 20
    with RawConn(self.addr, timeout=10) as c:
      c.send(build_request("POST", "/early", [("Content-Length", str(n))]))
      sender_error = []

      def send_body():
        try:
          c.sock.sendall(b"e" * n)
        except OSError as e:  # the proxy may close once the response is relayed
          sender_error.append(e)

      t = threading.Thread(target=send_body, daemon=True)
      t.start()
      r = c.read_response(timeout=10)
      self.assertEqual((r.status, r.body), (403, b"early\n"), r)
      c.close()
      t.join(10)
    self.assertEqual(get(self.addr, "/echo").status, 200)

  def test_502_upstream_head_too_large(self):
    before = metrics.limit_hits(self.proxy.metrics(), "upstream_header_bytes")
    r = get(self.addr, "/huge-head?n=%d" % (1 << 20), timeout=10)
    self.assertLocalError(r, 502)
    self.assertEqual(metrics.limit_hits(self.proxy.metrics(), "upstream_header_bytes") - before, 1)

  def test_client_aborts_release_connections(self):
    addr = self.addr
    with RawConn(addr) as c:  # abandons an upload
      c.send(build_request("POST", "/echo/upload", [("Content-Length", "100000")]) + b"u" * 1000)
      self.assertTrue(self.up.wait_requests(1))
    with RawConn(addr) as c:  # leaves while the upstream stalls
      c.send(build_request("GET", "/stall"))
      self.assertTrue(self.up.wait_requests(2))
    with RawConn(addr, timeout=10) as c:  # leaves in the middle of a big download
      c.send(build_request("GET", "/large?n=%d" % (64 << 20)))
      head = c.read_head()
      self.assertEqual(head.status, 200)
      c.read_exact(1 << 20)
    active = lambda: self.proxy.metrics().get("outrigger_downstream_connections_active",
                                              listener="main")
    self.wait_until(lambda: active() == 0, 5, 0.1, "downstream connections released")
    self.assertEqual(get(addr, "/echo").status, 200)
    self.assertTrue(self.proxy.running())

  def test_malformed_response_with_cl_and_te(self):
    before = metrics.upstream_errors(self.proxy.metrics(), "protocol", cluster="up")
    with RawConn(self.addr, timeout=10) as c:
      c.send(build_request("GET", "/cl-te"))
      r = c.read_response()
    if r.status == 502:
      self.assertLocalError(r, 502)
      self.assertEqual(
          metrics.upstream_errors(self.proxy.metrics(), "protocol", cluster="up") - before, 1)
    else:
      # RFC 9112 6.3 also allows forwarding with Transfer-Encoding winning; then exactly one
      # framing reaches the client (read_response rejects both) and the body is the decoded one.
      self.assertEqual(r.status, 200)
      self.assertEqual(r.body, b"hello")


class PoolLimits(ProxyTestCase):
  def test_max_connections_queues_requests(self):
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, cluster_extra={
        "max_connections": 1, "connect_timeout": "5s"}))
    before = metrics.limit_hits(p.metrics(), "pool_wait")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        get(p.addr("main"), "/delay?ms=300", timeout=10).status)) for _ in range(3)]
    t0 = time.monotonic()
    for t in threads:
      t.start()
    for t in threads:
      t.join(15)
    self.assertEqual(results, [200, 200, 200])
    self.assertGreater(time.monotonic() - t0, 0.85, "not serialised: max_connections 1 exceeded")
    self.assertGreaterEqual(metrics.limit_hits(p.metrics(), "pool_wait") - before, 1)
    self.assertEqual(up.connections_accepted, 1,
                     "a waiting request must take the idle pooled connection, not close it and "
                     "connect anew")

  def test_pool_timeout_503(self):
    up = self.start_upstream("A")
    p = self.start_proxy(yaml_out.simple(up.address, route_timeout="10s", cluster_extra={
        "max_connections": 1, "connect_timeout": "300ms"}))
    stuck = RawConn(p.addr("main"), timeout=10)
    self.addCleanup(stuck.close)
    stuck.send(build_request("GET", "/stall"))
    self.assertTrue(up.wait_requests(1))
    before = metrics.upstream_errors(p.metrics(), "pool_timeout")
    t0 = time.monotonic()
    r = get(p.addr("main"), "/echo", timeout=10)
    elapsed = time.monotonic() - t0
    self.assertLocalError(r, 503)
    self.assertGreater(elapsed, 0.25)
    self.assertLess(elapsed, 3)
    self.assertEqual(metrics.upstream_errors(p.metrics(), "pool_timeout") - before, 1)
    self.assertEqual(up.connections_accepted, 1)


class MangledRequests(ProxyTestCase):
  """Seeded random byte edits of valid requests, each on its own connection that the client then
  half-closes: every connection ends (an answer, or a close) within seconds, the proxy keeps
  serving, and the strict test upstream never receives a head it refuses. Under make test-asan
  this also runs the proxy's parser and forwarding code on these inputs with AddressSanitizer."""

  SEEDS = [
      b"GET /echo/a?x=1 HTTP/1.1\r\nHost: test\r\nX-A: 1\r\n\r\n",
      b"POST /echo/p HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
      b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nhello",
      b"PUT /echo/c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"
      b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
      b"GET http://test/echo/abs HTTP/1.1\r\nHost: test\r\nX-Tab:\t v\t\r\n\r\n",
      b"GET /echo/two HTTP/1.1\r\nHost: test\r\n\r\nGET /echo/second HTTP/1.1\r\nHost: test\r\n\r\n",
  ]
  EDIT_BYTES = b" :\r\n\taA09,/\x00\x7f\x80HTP.1;=-"

  def test_mangled_requests_end_cleanly(self):
    up = self.start_upstream("M")
    proxy = self.start_proxy(yaml_out.simple(up.address, limits={"header_timeout": "2s"}))
    addr = proxy.addr("main")
    rng = random.Random(20261207)
    statuses = {}
    started = time.monotonic()
    for i in range(250):
      self.assertLess(time.monotonic() - started, 120, "too slow")
      data = bytearray(rng.choice(self.SEEDS))
      for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        b = self.EDIT_BYTES[rng.randrange(len(self.EDIT_BYTES))]
        op = rng.randrange(3)
        if op == 0:
          data.insert(at, b)
        elif op == 1:
          del data[at]
        else:
          data[at] = b
      with RawConn(addr, timeout=5) as c:
        c.send(bytes(data))
        try:
          c.sock.shutdown(socket.SHUT_WR)
        except OSError:
          pass  # the proxy closed first (an early 400)
        closed = c.wait_closed(5)
        self.assertTrue(closed, "connection %d still open: %r" % (i, bytes(data)))
        head = bytes(c.buf[:12])
      if head.startswith(b"HTTP/1.1 "):
        code = int(head[9:12])
        statuses[code] = statuses.get(code, 0) + 1
        self.assertTrue(100 <= code < 600, head)
    # Both kinds of outcome happened, and the proxy still serves.
    self.assertGreater(sum(n for c, n in statuses.items() if c == 200), 10, statuses)
    self.assertGreater(sum(n for c, n in statuses.items() if c == 400), 10, statuses)
    self.assertEqual(get(addr, "/echo/control").status, 200)
    bad = [(r.raw_head, r.parse_error) for r in up.requests if r.parse_error]
    self.assertEqual(bad, [], "the proxy forwarded heads the upstream refused")


if __name__ == "__main__":
  unittest.main()
