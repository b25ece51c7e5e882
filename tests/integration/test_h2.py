"""HTTP/2 downstream: h2c with prior knowledge and h2 over TLS (ALPN), translated to HTTP/1.1
upstreams; gRPC local errors and deadlines; abuse limits (rapid reset, CONTINUATION flood,
PING flood) from a raw-frame client built on python3-h2/hpack, with the proxy still serving and
its memory bounded. Clients: curl --http2(-prior-knowledge), nghttp, h2load, python3-grpcio."""
import json
import os
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import yaml_out
from harness.client import curl, get
from harness.proxy import binary
from harness.testcase import ProxyTestCase
from harness.upstream import closed_port

import h2.config
import h2.connection
import h2.events
import hpack


def h2_config(endpoint, h2c=True, tls=None, **top):
  cfg = yaml_out.simple(endpoint, **top)
  cfg["listeners"][0]["h2c"] = h2c
  if tls:
    cfg["listeners"][0]["tls"] = tls
  return cfg


class RawH2:
  """A raw HTTP/2 client connection (python3-h2 for the state machine, hand-built frames for
  misbehaviour)."""

  def __init__(self, addr):
    self.sock = socket.create_connection(addr, timeout=5)
    self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding="utf-8"))
    self.conn.initiate_connection()
    self.flush()

  def flush(self):
    data = self.conn.data_to_send()
    if data:
      self.sock.sendall(data)

  def request(self, path="/", end=True, authority="test"):
    sid = self.conn.get_next_available_stream_id()
    self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", path),
                                 (":authority", authority)], end_stream=end)
    self.flush()
    return sid

  def events_until(self, pred, timeout=5.0):
    """Reads events until pred(events so far) or the connection ends; returns the events."""
    events = []
    deadline = time.monotonic() + timeout
    self.sock.settimeout(0.2)
    while time.monotonic() < deadline:
      try:
        data = self.sock.recv(65536)
      except socket.timeout:
        continue
      except OSError:
        break
      if not data:
        events.append("eof")
        break
      try:
        events.extend(self.conn.receive_data(data))
      except h2.exceptions.ProtocolError as e:
        events.append(e)
        break
      self.flush()
      if pred(events):
        break
    return events

  def response_events(self, sid, timeout=5.0):
    """Reads until stream sid has ended (or the connection has); returns the events."""
    return self.events_until(lambda es: any(isinstance(e, h2.events.StreamEnded) and
                                            e.stream_id == sid for e in es), timeout)

  def close(self):
    try:
      self.sock.close()
    except OSError:
      pass


class TrailerUpstream:
  """An h2c server (python3-h2) that records each stream's request (headers, body, trailers)
  and answers 200 "ok" with the trailer x-up-trailer: yes. One thread per connection; every
  loop is bounded in time."""

  def __init__(self):
    self.lsock = socket.socket()
    self.lsock.bind(("127.0.0.1", 0))
    self.lsock.listen(16)
    self.lsock.settimeout(0.2)
    self.address = "127.0.0.1:%d" % self.lsock.getsockname()[1]
    self.requests = []
    self.stop = threading.Event()
    threading.Thread(target=self._accept, daemon=True).start()

  def _accept(self):
    deadline = time.monotonic() + 60
    while not self.stop.is_set() and time.monotonic() < deadline:
      try:
        c, _ = self.lsock.accept()
      except socket.timeout:
        continue
      except OSError:
        return
      threading.Thread(target=self._serve, args=(c,), daemon=True).start()

  def _serve(self, sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sock.settimeout(0.2)
    streams = {}
    deadline = time.monotonic() + 30
    while not self.stop.is_set() and time.monotonic() < deadline:
      try:
        data = sock.recv(65536)
      except socket.timeout:
        continue
      except OSError:
        break
      if not data:
        break
      for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.RequestReceived):
          streams[ev.stream_id] = {"headers": dict(ev.headers), "raw_headers": list(ev.headers),
                                   "body": b"", "trailers": None}
        elif isinstance(ev, h2.events.DataReceived):
          streams[ev.stream_id]["body"] += ev.data
          conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
          streams[ev.stream_id]["trailers"] = dict(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
          self.requests.append(streams.pop(ev.stream_id))
          conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "text/plain")])
          conn.send_data(ev.stream_id, b"ok")
          conn.send_headers(ev.stream_id, [("x-up-trailer", "yes")], end_stream=True)
      sock.sendall(conn.data_to_send())
    sock.close()

  def close(self):
    self.stop.set()
    self.lsock.close()


def frame(ftype, flags, stream, payload):
  return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


class H2Basics(ProxyTestCase):
  def test_h2c_prior_knowledge_and_http1_on_the_same_port(self):
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    url = "http://%s:%d/echo" % p.addr()
    r = curl(url, "--http2-prior-knowledge", "-H", "x-a: 1", "--data-binary", "hello h2")
    self.assertEqual(r.status, 200, r.stderr)
    self.assertTrue(r.heads[-1].startswith("HTTP/2 200"), r.heads)
    seen = json.loads(r.body)
    self.assertEqual(seen["method"], "POST")
    self.assertEqual(seen["body"], "hello h2")
    self.assertIn(["x-a", "1"], [[k.lower(), v] for k, v in seen["headers"]])
    r1 = curl(url)
    self.assertEqual(r1.status, 200)
    self.assertTrue(r1.heads[-1].startswith("HTTP/1.1 200"))
    log = [e for e in p.wait_access_log(2) if e.get("protocol") == "HTTP/2"]
    self.assertEqual(len(log), 1)
    m = p.metrics()
    self.assertEqual(m.get("outrigger_downstream_h2_connections_total", listener="main"), 1)

  def test_chunked_upstream_body_and_large_bodies_stream_both_ways(self):
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    data = os.urandom(3 << 20)
    d = self.make_tmpdir()
    src = os.path.join(d, "up.bin")
    with open(src, "wb") as f:
      f.write(data)
    r = curl("http://%s:%d/echo" % p.addr(), "--http2-prior-knowledge", "--data-binary",
             "@" + src, timeout=60)
    self.assertEqual(r.status, 200, r.stderr)
    self.assertEqual(json.loads(r.body)["body_len"], len(data))
    r = curl("http://%s:%d/large?n=5000000&mode=chunked" % p.addr(), "--http2-prior-knowledge",
             timeout=60)
    self.assertEqual(r.status, 200, r.stderr)
    self.assertEqual(len(r.body), 5000000)

  def test_h2_over_tls_by_alpn(self):
    root = self.make_tmpdir()
    pki = os.path.join(root, "pki")
    subprocess.run([binary(), "pki", "init", pki], check=True, capture_output=True)
    subprocess.run([binary(), "pki", "issue", pki, "--name", "front", "--account", "222222222222",
                    "--dns", "localhost", "--server"], check=True, capture_output=True)
    up = self.start_upstream()
    tls = {"cert": os.path.join(pki, "front.pem"), "key": os.path.join(pki, "front.key"),
           "alpn": ["h2", "http/1.1"]}
    p = self.start_proxy(h2_config(up.address, h2c=False, tls=tls))
    url = "https://localhost:%d/x" % p.addr()[1]
    r = curl(url, "--http2", "--cacert", os.path.join(pki, "bundle.pem"))
    self.assertEqual(r.status, 200, r.stderr)
    self.assertTrue(r.heads[-1].startswith("HTTP/2 200"), r.heads)
    r = curl(url, "--http1.1", "--cacert", os.path.join(pki, "bundle.pem"))
    self.assertTrue(r.heads[-1].startswith("HTTP/1.1 200"), r.heads)
    n = subprocess.run(["nghttp", "-v", "--no-verify-peer", url], capture_output=True, text=True,
                       timeout=20)
    self.assertIn(":status: 200", n.stdout)
    self.assertIn("h2", n.stdout)

  def test_h2load_multiplexed_streams(self):
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "8",
                        "http://%s:%d/echo" % p.addr()], capture_output=True, text=True, timeout=120)
    self.assertIn("2000 succeeded, 0 failed", r.stdout, r.stdout)
    self.assertIn("status codes: 2000 2xx", r.stdout)

  def test_local_errors_are_http2_responses(self):
    p = self.start_proxy(h2_config("127.0.0.1:%d" % closed_port()))
    r = curl("http://%s:%d/" % p.addr(), "--http2-prior-knowledge")
    self.assertEqual(r.status, 502)
    self.assertEqual(r.header("x-outrigger-reason"), "upstream connection refused")

  def test_listener_head_limits_hold_for_http2_requests(self):
    """An HTTP/2 request's head is typed from its fields (no HTTP/1.1 text is parsed), under the
    listener's max_headers and max_request_headers_bytes all the same: 431 with the reason and
    the limit counted; a request within them goes through."""
    up = self.start_upstream()
    cfg = h2_config(up.address)
    cfg["listeners"][0]["limits"] = {"max_headers": 6, "max_request_headers_bytes": 512}
    p = self.start_proxy(cfg)
    url = "http://%s:%d/echo" % p.addr()

    def hits(limit):
      return p.metrics().get("outrigger_limit_hits_total", limit=limit) or 0

    many = []
    for i in range(8):
      many += ["-H", "x-n%d: %d" % (i, i)]
    r = curl(url, "--http2-prior-knowledge", *many)
    self.assertEqual(r.status, 431, r.stderr)
    self.assertEqual(r.header("x-outrigger-reason"), "too many header fields")
    self.assertEqual(hits("header_count"), 1)
    r = curl(url, "--http2-prior-knowledge", "-H", "x-big: " + "b" * 600)
    self.assertEqual(r.status, 431)
    self.assertEqual(r.header("x-outrigger-reason"), "request header fields too large")
    self.assertEqual(hits("header_bytes"), 1)
    r = curl(url, "--http2-prior-knowledge", "-H", "x-a: 1", "-H", "cookie: a=1",
             "-H", "cookie: b=2")
    self.assertEqual(r.status, 200, r.stderr)
    seen = {k.lower(): v for k, v in json.loads(r.body)["headers"]}
    self.assertEqual(seen["cookie"], "a=1; b=2")  # joined for the HTTP/1.1 side (RFC 9113 8.2.3)
    self.assertEqual(seen["host"], "%s:%d" % p.addr())

  def test_path_of_raw_non_ascii_bytes_gets_400_as_over_http1(self):
    """A :path holding raw UTF-8 is malformed (a URI has only ASCII; RFC 3986 2): the stream gets
    a 400 that says why and is counted, as the same bytes in an HTTP/1.1 request-target get a
    400, and the upstream sees neither. The percent-encoded form goes through."""
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    sid = c.request("/caf\u00e9")
    ev = [e for e in c.response_events(sid) if getattr(e, "stream_id", None) == sid]
    heads = [dict(e.headers) for e in ev if isinstance(e, h2.events.ResponseReceived)]
    self.assertEqual(len(heads), 1, ev)
    self.assertEqual(heads[0][":status"], "400")
    reason = "malformed HTTP/2 request: invalid :path"
    self.assertEqual(heads[0]["x-outrigger-reason"], reason)
    body = b"".join(e.data for e in ev if isinstance(e, h2.events.DataReceived))
    self.assertEqual(body, b"outrigger: " + reason.encode() + b"\n")
    self.assertFalse(any(isinstance(e, h2.events.StreamReset) for e in ev), ev)
    # Logged and counted as the HTTP/1.1 side's 400s are.
    log = p.wait_access_log(1)
    # (The log's JSON gives a byte that is not ASCII as \u00XX: bytes, not text.)
    self.assertEqual((log[0]["status"], log[0]["protocol"], log[0]["method"], log[0]["path"]),
                     (400, "HTTP/2", "GET", "/caf\u00c3\u00a9"), log)
    self.assertEqual(p.metrics().get("outrigger_downstream_bad_requests_total", listener="main",
                                     reason="malformed"), 1)
    sid = c.request("/caf%C3%A9")
    ev = c.response_events(sid)
    self.assertTrue(any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                        for e in ev), ev)
    c.close()  # a connection's HTTP/2 counters are folded into the listener's when it ends
    self.wait_until(lambda: p.metrics().get("outrigger_downstream_h2_events_total",
                                            event="invalid_headers") == 1, 5, msg="counted")
    with socket.create_connection(p.addr(), timeout=5) as s:
      s.sendall(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n")
      self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400 "))
    self.assertEqual([r.path for r in up.requests], ["/caf%C3%A9"])

  def assert_serves_and_stalled_end(self, p, c, msg):
    """A new request on c is answered, and the upstream exchanges left stalled end (their
    connections close): the proxy abandoned them, it did not leave them running."""
    sid = c.request("/echo")
    ev = c.response_events(sid)
    self.assertTrue(any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                        for e in ev), ev)
    self.wait_until(lambda: p.metrics().get("outrigger_upstream_connections_active") <= 1, 5,
                    msg=msg)

  def test_client_reset_stops_the_upstream_exchange(self):
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    sid = c.request("/stall")
    self.assertTrue(up.wait_requests(1))
    c.conn.reset_stream(sid)
    c.flush()
    # The stalled upstream exchange was abandoned, not left running.
    self.assert_serves_and_stalled_end(p, c, "the stalled upstream connection closed")

  def test_connection_gone_while_reset_streams_still_finish(self):
    """A stream the client reset is out of the session's table at once, but its exchange ends a
    little later (the upstream read is cancelled); a client that then drops the connection ends
    the session first. Those exchanges must not reach back into the ended session (with the
    sanitizer build, a use after free ends the proxy)."""
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    for rnd in range(10):
      c = RawH2(p.addr())
      sids = [c.request("/stall") for _ in range(8)]
      self.assertTrue(up.wait_requests(8 * (rnd + 1)), "round %d: requests reached upstream" % rnd)
      for sid in sids:
        c.conn.reset_stream(sid)
      c.flush()
      c.close()
    self.assertTrue(p.running(), p.stderr_text()[-2000:])
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    self.assert_serves_and_stalled_end(p, c, "the stalled upstream exchanges were abandoned")

  def test_body_must_match_content_length(self):
    """A body longer or shorter than its content-length is malformed (RFC 9113 8.1.1): the stream
    is reset with PROTOCOL_ERROR, the HTTP/1.1 upstream never gets a byte past the promise nor a
    short body as complete, and the connection and the upstream keep serving."""
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address))
    c = RawH2(p.addr())
    self.addCleanup(c.close)

    def post(length, body):
      sid = c.conn.get_next_available_stream_id()
      c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                                (":authority", "test"), ("content-length", str(length))])
      c.conn.send_data(sid, body, end_stream=True)
      c.flush()
      return sid

    def ended(sid):
      return lambda es: any(isinstance(e, (h2.events.StreamReset, h2.events.StreamEnded)) and
                            e.stream_id == sid for e in es)

    for length, body in ((3, b"abc GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"), (10, b"abc")):
      sid = post(length, body)
      ev = c.events_until(ended(sid))
      resets = [e for e in ev if isinstance(e, h2.events.StreamReset) and e.stream_id == sid]
      self.assertEqual(len(resets), 1, ev)
      self.assertEqual(resets[0].error_code, 1)  # PROTOCOL_ERROR
    sid = post(3, b"abc")
    ev = c.events_until(ended(sid))
    self.assertTrue(any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                        for e in ev), ev)
    self.assertTrue(up.wait_requests(1, complete=True))
    reqs = up.requests  # the long one may be reset before an upstream request starts
    self.assertEqual([r.parse_error for r in reqs], [None] * len(reqs), reqs)
    self.assertEqual([r.path for r in reqs], ["/echo"] * len(reqs))
    complete = [r.body for r in reqs if r.body_complete]
    self.assertEqual(complete, [b"abc"], [(r.body, r.body_error) for r in reqs])
    c.close()  # a connection's HTTP/2 counters are added to the listener's when it ends
    self.wait_until(lambda: p.metrics().get("outrigger_downstream_h2_events_total",
                                            listener="main", event="body_length_mismatch") == 2,
                    5, msg="both mismatches counted")

  def test_drain_sends_goaway(self):
    up = self.start_upstream()
    p = self.start_proxy(h2_config(up.address, drain={"delay": "1s", "timeout": "5s"}))
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    c.request("/echo")
    c.events_until(lambda es: any(isinstance(e, h2.events.StreamEnded) for e in es))
    import signal as _s
    p.signal(_s.SIGTERM)
    ev = c.events_until(lambda es: any(isinstance(e, h2.events.ConnectionTerminated) for e in es),
                        timeout=8)
    self.assertTrue(any(isinstance(e, h2.events.ConnectionTerminated) for e in ev), ev)


class H2Abuse(ProxyTestCase):
  def start(self):
    up = self.start_upstream()
    return up, self.start_proxy(h2_config(up.address))

  def assert_still_serving(self, p):
    r = curl("http://%s:%d/echo" % p.addr(), "--http2-prior-knowledge")
    self.assertEqual(r.status, 200, r.stderr)

  def test_rapid_reset_ends_the_connection(self):
    up, p = self.start()
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    for _ in range(300):  # HEADERS then RST_STREAM at once, CVE-2023-44487
      sid = c.conn.get_next_available_stream_id()
      c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", "/stall"),
                                (":authority", "t")], end_stream=True)
      c.conn.reset_stream(sid)
      try:
        c.flush()
      except OSError:
        break
    ev = c.events_until(lambda es: any(isinstance(e, h2.events.ConnectionTerminated) for e in es))
    term = [e for e in ev if isinstance(e, h2.events.ConnectionTerminated)]
    self.assertTrue(term, ev)
    self.assertEqual(term[0].error_code, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
    self.wait_until(lambda: p.metrics().get("outrigger_downstream_h2_events_total",
                                            event="rapid_reset") == 1, 5, msg="counted")
    self.assert_still_serving(p)

  def test_continuation_flood_ends_the_connection(self):
    up, p = self.start()
    s = socket.create_connection(p.addr(), timeout=5)
    self.addCleanup(s.close)
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                        (":authority", "t")])
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
    out += frame(1, 0, 1, block)  # HEADERS without END_HEADERS
    junk = enc.encode([("x-flood", "y" * 100)])
    for _ in range(200):
      out += frame(9, 0, 1, junk)  # CONTINUATION, never END_HEADERS
    try:
      s.sendall(out)
    except OSError:
      pass
    got = b""
    s.settimeout(5)
    try:
      while len(got) < 1 << 16:
        d = s.recv(65536)
        if not d:
          break
        got += d
    except OSError:
      pass
    self.assertIn(bytes([7]), got[3:])  # a GOAWAY frame came back
    self.wait_until(lambda: p.metrics().get("outrigger_downstream_h2_events_total",
                                            event="continuation_flood") == 1, 5, msg="counted")
    self.assert_still_serving(p)

  def test_ping_flood_and_memory_bounded(self):
    up, p = self.start()
    rss0 = p.rss_kb()
    s = socket.create_connection(p.addr(), timeout=5)
    self.addCleanup(s.close)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    ping = frame(6, 0, 0, b"12345678")
    sent = 0
    s.settimeout(0.5)
    try:
      for _ in range(200):  # never read: the ACKs pile up on our side
        s.sendall(ping * 500)
        sent += 500
    except OSError:
      pass
    self.wait_until(lambda: p.metrics().get("outrigger_downstream_h2_events_total",
                                            event="ping_flood") == 1, 10, msg="counted")
    self.assert_still_serving(p)
    if rss0 is not None:
      self.assertLess(p.rss_kb() - rss0, 64 * 1024)


class Grpc(ProxyTestCase):
  def grpc_call(self, addr, timeout=None):
    import grpc
    ch = grpc.insecure_channel("%s:%d" % addr)
    self.addCleanup(ch.close)
    fn = ch.unary_unary("/demo.Orders/Get", request_serializer=lambda b: b,
                        response_deserializer=lambda b: b)
    try:
      fn(b"\x08\x01", timeout=timeout)
    except grpc.RpcError as e:
      return e.code(), e.details()
    return grpc.StatusCode.OK, ""

  def test_no_upstream_is_unavailable(self):
    import grpc
    p = self.start_proxy(h2_config("127.0.0.1:%d" % closed_port()))
    code, details = self.grpc_call(p.addr(), timeout=5)
    self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
    self.assertIn("refused", details)

  def test_deadline_is_deadline_exceeded(self):
    import grpc
    up = self.start_upstream()
    up.force = "/stall"
    p = self.start_proxy(h2_config(up.address))
    t0 = time.monotonic()
    code, details = self.grpc_call(p.addr(), timeout=0.5)
    self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
    self.assertLess(time.monotonic() - t0, 3)

  def test_next_sidecars_local_error_reaches_the_caller_as_a_grpc_status(self):
    """Sidecar to sidecar over HTTP/1.1: the far one answers its local error as HTTP (its caller
    is not HTTP/2), the near one turns that answer (it carries x-outrigger-reason) into a
    trailers-only gRPC status with the far one's reason."""
    import grpc
    far = self.start_proxy(h2_config("127.0.0.1:%d" % closed_port(), h2c=False))
    near = self.start_proxy(h2_config("%s:%d" % far.addr()))
    code, details = self.grpc_call(near.addr(), timeout=5)
    self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
    self.assertIn("refused", details)


class Http2Upstream(ProxyTestCase):
  """Clusters with protocol: http2 (h2c here): gRPC through outrigger, and HTTP/1.1 clients
  translated to an HTTP/2 upstream."""

  def grpc_server(self, delay=0.0):
    import grpc
    from concurrent import futures

    def unary(req, ctx):
      md = dict(ctx.invocation_metadata())
      return req + b"|" + md.get("x-forwarded-proto", "").encode()

    def stream(req, ctx):
      for i in range(5):
        yield req + bytes([48 + i])

    def slow(req, ctx):
      time.sleep(2)
      return req

    def fail(req, ctx):
      ctx.abort(grpc.StatusCode.NOT_FOUND, "no such order")

    h = grpc.method_handlers_generic_handler("demo.Orders", {
        "Get": grpc.unary_unary_rpc_method_handler(unary),
        "List": grpc.unary_stream_rpc_method_handler(stream),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Fail": grpc.unary_unary_rpc_method_handler(fail)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((h,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    self.addCleanup(server.stop, 0)
    return "127.0.0.1:%d" % port

  def channel(self, p):
    import grpc
    ch = grpc.insecure_channel("%s:%d" % p.addr())
    self.addCleanup(ch.close)
    return ch

  def test_grpc_unary_streaming_status_and_deadline_pass_through(self):
    import grpc
    up = self.grpc_server()
    p = self.start_proxy(h2_config(up, cluster_extra={"protocol": "http2"}))
    ch = self.channel(p)
    get = ch.unary_unary("/demo.Orders/Get")
    self.assertEqual(get(b"order-7", timeout=5), b"order-7|http")
    lst = ch.unary_stream("/demo.Orders/List")
    self.assertEqual(list(lst(b"o", timeout=5)), [b"o0", b"o1", b"o2", b"o3", b"o4"])
    with self.assertRaises(grpc.RpcError) as cm:
      ch.unary_unary("/demo.Orders/Fail")(b"x", timeout=5)
    self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
    self.assertEqual(cm.exception.details(), "no such order")
    t0 = time.monotonic()
    with self.assertRaises(grpc.RpcError) as cm:
      ch.unary_unary("/demo.Orders/Slow")(b"x", timeout=0.5)
    self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
    self.assertLess(time.monotonic() - t0, 1.8)
    # Many calls share few upstream connections.
    for i in range(50):
      self.assertEqual(get(b"%d" % i, timeout=5), b"%d|http" % i)
    m = p.metrics()
    self.assertLessEqual(m.get("outrigger_upstream_connections_total", cluster="c1"), 2)
    log = p.wait_access_log(50)
    self.assertTrue(all(e.get("protocol") == "HTTP/2" and e.get("upstream_protocol") == "HTTP/2"
                        for e in log[-10:]), log[-1])

  def test_timed_out_http2_attempt_counts_for_outlier_detection(self):
    # An HTTP/2 attempt that ends at the request's overall deadline is a local-origin failure of
    # its endpoint, as on the HTTP/1.1 path.
    import grpc
    up = self.grpc_server()
    cfg = h2_config(up, cluster_extra={"protocol": "http2"})
    cfg["clusters"][0]["outlier_detection"] = {"consecutive_local_origin_failure": 1,
                                               "max_ejection_percent": 100}
    # The route's deadline ends the attempt, well before the client's (no race with its reset).
    cfg["listeners"][0]["routes"][0]["timeout"] = "300ms"
    p = self.start_proxy(cfg)
    ch = self.channel(p)
    self.assertEqual(ch.unary_unary("/demo.Orders/Get")(b"a", timeout=5), b"a|http")
    self.assertEqual(p.metrics().get("outrigger_upstream_outlier_ejections_total", cluster="c1"), 0)
    with self.assertRaises(grpc.RpcError) as cm:
      ch.unary_unary("/demo.Orders/Slow")(b"x", timeout=5)
    self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
    deadline = time.monotonic() + 5
    ejected = 0
    while time.monotonic() < deadline and ejected == 0:
      ejected = p.metrics().get("outrigger_upstream_outlier_ejections_total", cluster="c1")
      time.sleep(0.1)
    self.assertEqual(ejected, 1)

  def test_upstream_goaway_mid_load_loses_no_call(self):
    """One of two gRPC upstreams shuts down gracefully (GOAWAY) while calls flow: calls it had
    started finish, calls it never processed are retried on the other (refused-stream), the
    client sees no failure."""
    import grpc
    from concurrent import futures
    servers = []
    addrs = []
    for _ in range(2):
      h = grpc.method_handlers_generic_handler("demo.Orders", {
          "Get": grpc.unary_unary_rpc_method_handler(lambda req, ctx: (time.sleep(0.01), req)[1])})
      srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
      srv.add_generic_rpc_handlers((h,))
      port = srv.add_insecure_port("127.0.0.1:0")
      srv.start()
      self.addCleanup(srv.stop, 0)
      servers.append(srv)
      addrs.append("127.0.0.1:%d" % port)
    cfg = h2_config(addrs[0], cluster_extra={"protocol": "http2"})
    cfg["clusters"][0]["endpoints"] = addrs
    # The stopped endpoint is ejected at its first refused connection; retries are bounded by a
    # budget rather than Envoy's default of 3 concurrent ones.
    cfg["clusters"][0]["outlier_detection"] = {"consecutive_local_origin_failure": 1,
                                               "max_ejection_percent": 50}
    cfg["clusters"][0]["retry_budget"] = {"budget_percent": 50, "min_retry_concurrency": 8}
    # grpc-python answers calls that reach it while it shuts down, before its handler ran, with a
    # trailers-only CANCELLED (seen on the wire: grpc-status 1, grpc-message CANCELLED, then
    # RST_STREAM NO_ERROR), even for streams below the GOAWAY's last-stream-id: "cancelled"
    # retries them.
    cfg["listeners"][0]["routes"][0]["retry"] = {
        "retry_on": ["refused-stream", "connect-failure", "reset", "cancelled"], "num_retries": 3,
        "retry_non_idempotent": False, "backoff": {"base": "5ms", "max": "20ms"}}
    p = self.start_proxy(cfg)
    ch = self.channel(p)
    get = ch.unary_unary("/demo.Orders/Get")
    results = []
    stop = threading.Event()

    def load():
      n = 0
      deadline = time.monotonic() + 20
      while not stop.is_set() and time.monotonic() < deadline and n < 5000:
        try:
          results.append(get(b"%d" % n, timeout=5) == b"%d" % n)
        except grpc.RpcError as e:
          results.append((e.code(), e.details()))
        n += 1

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
      t.start()
    time.sleep(1.0)
    servers[0].stop(grace=2).wait(5)  # GOAWAY, in-flight calls finish
    time.sleep(1.0)
    stop.set()
    for t in threads:
      t.join(25)
    failures = [r for r in results if r is not True]
    self.assertGreater(len(results), 100)
    self.assertEqual(failures, [])

  def test_grpc_status_retry_conditions(self):
    """retry_on names gRPC statuses (Envoy's x-envoy-retry-grpc-on): a trailers-only UNAVAILABLE
    is retried though every gRPC call is a POST; a status not named (INTERNAL) is returned."""
    import grpc
    from concurrent import futures
    attempts = {}

    def handler(req, ctx):
      n = attempts[req] = attempts.get(req, 0) + 1
      if req.startswith(b"flaky") and n == 1:
        ctx.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
      if req.startswith(b"broken"):
        ctx.abort(grpc.StatusCode.INTERNAL, "broken")
      return req

    h = grpc.method_handlers_generic_handler(
        "demo.Orders", {"Get": grpc.unary_unary_rpc_method_handler(handler)})
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((h,))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    self.addCleanup(srv.stop, 0)
    cfg = h2_config("127.0.0.1:%d" % port, cluster_extra={"protocol": "http2"})
    cfg["listeners"][0]["routes"][0]["retry"] = {
        "retry_on": ["unavailable", "cancelled"], "num_retries": 2,
        "backoff": {"base": "1ms", "max": "2ms"}}
    p = self.start_proxy(cfg)
    get = self.channel(p).unary_unary("/demo.Orders/Get")
    self.assertEqual(get(b"flaky-1", timeout=5), b"flaky-1")
    self.assertEqual(attempts[b"flaky-1"], 2)
    with self.assertRaises(grpc.RpcError) as cm:
      get(b"broken-1", timeout=5)
    self.assertEqual(cm.exception.code(), grpc.StatusCode.INTERNAL)
    self.assertEqual(attempts[b"broken-1"], 1)
    self.assertEqual(p.metrics().get("outrigger_upstream_retries_total", reason="retried"), 1)

  def test_request_and_response_trailers_cross_to_an_http2_upstream(self):
    """Trailers end to end with an HTTP/2 upstream: an HTTP/2 client's request trailers and an
    HTTP/1.1 client's chunked trailers reach it as a trailing HEADERS frame; its response
    trailers come back to both."""
    up = TrailerUpstream()
    self.addCleanup(up.close)
    p = self.start_proxy(h2_config(up.address, cluster_extra={"protocol": "http2"}))
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/t"),
                              (":authority", "test")])
    c.conn.send_data(sid, b"hello")
    c.conn.send_headers(sid, [("x-checksum", "42")], end_stream=True)
    c.flush()
    evs = c.events_until(lambda e: any(isinstance(x, h2.events.StreamEnded) for x in e))
    trailers = [dict(x.headers) for x in evs if isinstance(x, h2.events.TrailersReceived)]
    self.assertEqual(trailers, [{"x-up-trailer": "yes"}], evs)
    self.assertEqual(len(up.requests), 1)
    self.assertEqual(up.requests[0]["body"], b"hello")
    self.assertEqual(up.requests[0]["trailers"], {"x-checksum": "42"})

    s = socket.create_connection(p.addr(), timeout=5)
    self.addCleanup(s.close)
    s.sendall(b"POST /t HTTP/1.1\r\nHost: test\r\nTE: trailers\r\nConnection: close\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\n"
              b"X-Checksum: 7\r\nContent-Length: 9\r\n\r\n")
    from harness.client import read_to_close
    raw = read_to_close(s)
    self.assertTrue(raw.startswith(b"HTTP/1.1 200"), raw)
    self.assertIn(b"\r\n\r\n2\r\nok\r\n0\r\nx-up-trailer: yes\r\n\r\n", raw)
    self.assertEqual(len(up.requests), 2)
    self.assertEqual(up.requests[1]["body"], b"world")
    # content-length is one of the fields RFC 9110 6.5.1 keeps out of trailers.
    self.assertEqual(up.requests[1]["trailers"], {"x-checksum": "7"})

  def test_request_ids_are_never_indexed_in_hpack(self):
    """x-request-id is new on every message: sent as a never-indexed literal both ways, so it
    does not churn the HPACK dynamic tables (and later hops know not to index it either). The
    first message on a connection (and one in 256 after it) indexes it, so that the later
    literals name the field by its table index."""
    import hpack.struct
    up = TrailerUpstream()
    self.addCleanup(up.close)
    p = self.start_proxy(h2_config(up.address, cluster_extra={"protocol": "http2"}))
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    for i in range(3):
      sid = c.request("/ids")
      evs = c.response_events(sid)
      heads = [x.headers for x in evs if isinstance(x, h2.events.ResponseReceived)]
      self.assertEqual(len(heads), 1, evs)
      rid = [h for h in heads[0] if h[0] == "x-request-id"]
      self.assertEqual(len(rid), 1, heads)
      self.assertEqual(isinstance(rid[0], hpack.struct.NeverIndexedHeaderTuple), i > 0, i)
      # A field that repeats is still indexed as usual.
      ctype = [h for h in heads[0] if h[0] == "content-type"]
      self.assertNotIsInstance(ctype[0], hpack.struct.NeverIndexedHeaderTuple)
      # The upstream's fields and ours reach the client intact (they are views until written).
      self.assertEqual(ctype[0][1], "text/plain")
      self.assertEqual(len(rid[0][1]), 36, rid)
      self.assertIn(("x-outrigger-attempts", "1"), [tuple(h) for h in heads[0]])
    self.assertEqual(len(up.requests), 3)
    for i, r in enumerate(up.requests):
      rid = [h for h in r["raw_headers"] if h[0] == "x-request-id"]
      self.assertEqual(len(rid), 1, r)
      self.assertEqual(isinstance(rid[0], hpack.struct.NeverIndexedHeaderTuple), i > 0, i)

  def test_request_id_not_returned_when_the_listener_says_so(self):
    """request_id_in_response: false with an HTTP/2 upstream: neither the HTTP/2 client nor the
    HTTP/1.1 client gets an x-request-id back; the upstream gets one on every request."""
    up = TrailerUpstream()
    self.addCleanup(up.close)
    cfg = h2_config(up.address, cluster_extra={"protocol": "http2"})
    cfg["listeners"][0]["request_id_in_response"] = False
    p = self.start_proxy(cfg)
    c = RawH2(p.addr())
    self.addCleanup(c.close)
    sid = c.request("/ids")
    heads = [x.headers for x in c.response_events(sid)
             if isinstance(x, h2.events.ResponseReceived)]
    self.assertEqual(len(heads), 1)
    names = [h[0] for h in heads[0]]
    self.assertNotIn("x-request-id", names)
    self.assertIn("x-outrigger-attempts", names)
    r = get(p.addr(), "/ids")
    self.assertEqual(r.status, 200)
    self.assertEqual(r.header_all("x-request-id"), [])
    self.assertEqual(len(up.requests), 2)
    for req in up.requests:
      self.assertEqual(len([h for h in req["raw_headers"] if h[0] == "x-request-id"]), 1, req)

  def test_grpc_upstream_down_is_unavailable(self):
    import grpc
    p = self.start_proxy(h2_config("127.0.0.1:%d" % closed_port(),
                                   cluster_extra={"protocol": "http2"}))
    with self.assertRaises(grpc.RpcError) as cm:
      self.channel(p).unary_unary("/demo.Orders/Get")(b"x", timeout=5)
    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

  def test_http1_client_to_http2_upstream(self):
    d = self.make_tmpdir()
    with open(os.path.join(d, "f.txt"), "wb") as f:
      f.write(b"x" * 100000)
    from harness.services import free_port
    port = free_port()
    proc = subprocess.Popen(["nghttpd", "--no-tls", "-d", d, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    self.addCleanup(lambda: (proc.terminate(), proc.wait(5)))
    from harness.services import wait_connectable
    wait_connectable(("127.0.0.1", port), 5, proc)
    p = self.start_proxy(h2_config("127.0.0.1:%d" % port, h2c=False,
                                   cluster_extra={"protocol": "http2"}))
    for _ in range(3):
      r = curl("http://%s:%d/f.txt" % p.addr())
      self.assertEqual(r.status, 200, r.stderr)
      self.assertEqual(len(r.body), 100000)
    self.assertEqual(curl("http://%s:%d/missing" % p.addr()).status, 404)
    self.assertEqual(p.metrics().get("outrigger_upstream_connections_total", cluster="c1"), 1)


if __name__ == "__main__":
  unittest.main()
