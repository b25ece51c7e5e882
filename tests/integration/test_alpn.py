"""Clusters with `protocol: auto-by-alpn`: TLS offering h2 and http/1.1, each endpoint spoken to
in the protocol it negotiated. Upstreams: nghttpd over TLS (ALPN h2 only), a Python HTTP/1.1 TLS
server (ALPN http/1.1, or no ALPN at all), and one port that switches between them across
restarts. Certificates from `outrigger pki`; clients curl (HTTP/1.1 and h2c prior knowledge)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import yaml_out
from harness.client import curl
from harness.proxy import binary
from harness.services import free_port, wait_connectable
from harness.testcase import ProxyTestCase
from harness.tls_upstream import TlsUpstream

PROVIDER = "222222222222"
CLUSTER = "c1"


def pki(*args):
  p = subprocess.run([binary(), "pki", *args], capture_output=True, text=True, timeout=30)
  if p.returncode != 0:
    raise AssertionError("outrigger pki %s failed: %s" % (" ".join(args), p.stderr))


def seen(r):
  """What the HTTP/1.1 upstream (harness TlsUpstream) saw of a request: path, HTTP version and
  the ALPN protocol of its connection."""
  j = r.json()
  return {"path": j["path"], "version": j["version"], "alpn": j["alpn"]}


class Nghttpd:
  """nghttpd (Debian nghttp2-server) over TLS on `port`: ALPN h2 only. Serves files from docroot;
  -v logs every frame it receives to a file (what the server saw)."""

  def __init__(self, cert, key, docroot, port, logdir):
    self.log_path = os.path.join(logdir, "nghttpd-%d-%d.log" % (port, time.monotonic_ns()))
    self.log = open(self.log_path, "wb")
    self.proc = subprocess.Popen(["nghttpd", "-v", "-d", docroot, str(port), key, cert],
                                 stdout=self.log, stderr=subprocess.STDOUT)
    self.port = port
    if not wait_connectable(("127.0.0.1", port), 5, self.proc):
      self.stop()
      raise AssertionError("nghttpd did not start on port %d" % port)

  def seen(self):
    self.log.flush()
    with open(self.log_path, "rb") as f:
      return f.read().decode("utf-8", "replace")

  def stop(self):
    if self.proc.poll() is None:
      self.proc.terminate()
      try:
        self.proc.wait(5)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait(5)
    self.log.close()


class AutoByAlpn(ProxyTestCase):
  @classmethod
  def setUpClass(cls):
    cls.root = tempfile.mkdtemp(prefix="outrigger-alpn-")
    cls.pki_dir = os.path.join(cls.root, "pki")
    pki("init", cls.pki_dir)
    pki("issue", cls.pki_dir, "--name", "inventory", "--account", PROVIDER, "--server")
    cls.cert = os.path.join(cls.pki_dir, "inventory.pem")
    cls.key = os.path.join(cls.pki_dir, "inventory.key")
    cls.bundle = os.path.join(cls.pki_dir, "bundle.pem")
    cls.docroot = os.path.join(cls.root, "htdocs")
    os.makedirs(cls.docroot)
    with open(os.path.join(cls.docroot, "f.txt"), "wb") as f:
      f.write(b"x" * 100000)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, True)

  # ---- helpers
  def nghttpd(self, port=None):
    n = Nghttpd(self.cert, self.key, self.docroot, port or free_port(), self.root)
    self.addCleanup(n.stop)
    return n

  def h1_upstream(self, port=0, alpn=("http/1.1",)):
    u = TlsUpstream(self.cert, self.key, port=port, alpn=alpn)
    self.addCleanup(u.close)
    return u

  def config(self, endpoint, retry=None, h2c=False, tls=True, protocol="auto-by-alpn"):
    cluster = {"protocol": protocol, "connect_timeout": "2s"}
    if tls:
      cluster["tls"] = {"sni": "inventory", "ca": self.bundle}
    cfg = yaml_out.simple(endpoint, cluster_extra=cluster)
    if retry:
      cfg["listeners"][0]["routes"][0]["retry"] = retry
    cfg["listeners"][0]["h2c"] = h2c
    return cfg

  def alpn_counts(self, p):
    m = p.metrics()
    return {proto: m.get("outrigger_upstream_alpn_total", cluster=CLUSTER, protocol=proto)
            for proto in ("h2", "http/1.1", "none")}

  def upstream_protocols(self, p, count):
    log = p.wait_access_log(count)
    self.assertGreaterEqual(len(log), count, log)
    return [e.get("upstream_protocol") for e in log[:count]]

  # ---- tests
  def test_h2_upstream_is_spoken_to_over_http2_on_the_probed_connection(self):
    n = self.nghttpd()
    p = self.start_proxy(self.config("127.0.0.1:%d" % n.port))
    for i in range(4):
      r = curl(p.url("/f.txt"))
      self.assertEqual(r.status, 200, r.stderr)
      self.assertEqual(len(r.body), 100000)
      self.assertEqual(r.header("x-outrigger-attempts"), "1")
    self.assertEqual(curl(p.url("/missing")).status, 404)
    self.assertEqual(self.upstream_protocols(p, 5), ["HTTP/2"] * 5)
    m = p.metrics()
    self.assertEqual(self.alpn_counts(p), {"h2": 1, "http/1.1": 0, "none": 0})
    # One connection, one handshake: the probe's connection became the HTTP/2 connection.
    self.assertEqual(m.get("outrigger_upstream_tls_handshakes_total", cluster=CLUSTER), 1)
    self.assertEqual(m.get("outrigger_upstream_connections_total", cluster=CLUSTER), 1)
    self.assertEqual(m.get("outrigger_upstream_requests_total", cluster=CLUSTER), 5)
    # nghttpd's view: HTTP/2 HEADERS frames carrying our requests.
    seen = n.seen()
    self.assertEqual(seen.count(":path: /f.txt"), 4, seen[-3000:])
    self.assertIn("recv HEADERS frame", seen)

  def test_request_bodies_reach_an_h2_upstream_on_the_probed_and_the_known_path(self):
    n = self.nghttpd()
    p = self.start_proxy(self.config("127.0.0.1:%d" % n.port))
    # The first request's body follows the probe onto the HTTP/2 path (content-length), the
    # second goes there at once (chunked: decoded to DATA frames).
    r = curl(p.url("/f.txt"), "--data-binary", "x" * 70000)
    self.assertEqual(r.status, 200, r.stderr)
    r = curl(p.url("/f.txt"), "--data-binary", "y" * 5000, "-H", "transfer-encoding: chunked")
    self.assertEqual(r.status, 200, r.stderr)
    self.assertEqual(self.upstream_protocols(p, 2), ["HTTP/2"] * 2)
    received = {}
    for length, stream in re.findall(r"recv DATA frame <length=(\d+), flags=0x[0-9a-f]+, "
                                     r"stream_id=(\d+)>", n.seen()):
      received[int(stream)] = received.get(int(stream), 0) + int(length)
    self.assertEqual(received, {1: 70000, 3: 5000})

  def test_concurrent_first_requests_all_succeed(self):
    n = self.nghttpd()
    p = self.start_proxy(self.config("127.0.0.1:%d" % n.port))
    results = []
    lock = threading.Lock()

    def one():
      r = curl(p.url("/f.txt"))
      with lock:
        results.append((r.status, len(r.body)))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(30)
    self.assertEqual(results, [(200, 100000)] * 12)
    self.assertEqual(self.upstream_protocols(p, 12), ["HTTP/2"] * 12)
    counts = self.alpn_counts(p)
    self.assertGreaterEqual(counts["h2"], 1)
    self.assertEqual(counts["http/1.1"] + counts["none"], 0)

  def test_http11_upstream_is_spoken_to_over_http11_and_pooled(self):
    u = self.h1_upstream()
    p = self.start_proxy(self.config(u.address))
    for i in range(3):
      r = curl(p.url("/a%d" % i))
      self.assertEqual(r.status, 200, r.stderr)
      self.assertEqual(seen(r), {"path": "/a%d" % i, "version": "HTTP/1.1", "alpn": "http/1.1"})
    self.assertEqual(self.upstream_protocols(p, 3), ["HTTP/1.1"] * 3)
    self.assertEqual(self.alpn_counts(p), {"h2": 0, "http/1.1": 1, "none": 0})
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_connections_total", cluster=CLUSTER), 1)
    self.assertEqual(m.get("outrigger_upstream_connections_reused_total", cluster=CLUSTER), 2)
    self.assertEqual(len(u.connections), 1)

  def test_upstream_without_alpn_is_spoken_to_over_http11(self):
    u = self.h1_upstream(alpn=())
    p = self.start_proxy(self.config(u.address))
    for i in range(2):
      r = curl(p.url("/n%d" % i))
      self.assertEqual(r.status, 200, r.stderr)
      self.assertEqual(seen(r), {"path": "/n%d" % i, "version": "HTTP/1.1", "alpn": None})
    self.assertEqual(self.upstream_protocols(p, 2), ["HTTP/1.1"] * 2)
    self.assertEqual(self.alpn_counts(p), {"h2": 0, "http/1.1": 0, "none": 1})

  def test_h2c_downstream_client_with_either_upstream(self):
    n = self.nghttpd()
    u = self.h1_upstream()
    for endpoint, protocol in (("127.0.0.1:%d" % n.port, "HTTP/2"), (u.address, "HTTP/1.1")):
      with self.subTest(upstream=protocol):
        p = self.start_proxy(self.config(endpoint, h2c=True))
        path = "/f.txt" if protocol == "HTTP/2" else "/h2c"
        for _ in range(2):
          r = curl(p.url(path), "--http2-prior-knowledge")
          self.assertEqual(r.status, 200, r.stderr)
          if protocol == "HTTP/2":
            self.assertEqual(len(r.body), 100000)
          else:
            self.assertEqual(r.json()["version"], "HTTP/1.1")
        log = p.wait_access_log(2)
        self.assertEqual([e.get("protocol") for e in log[:2]], ["HTTP/2"] * 2)
        self.assertEqual([e.get("upstream_protocol") for e in log[:2]], [protocol] * 2)

  def test_auto_by_alpn_without_tls_is_a_config_error_with_its_position(self):
    d = self.make_tmpdir()
    path = os.path.join(d, "outrigger.yaml")
    with open(path, "w") as f:
      f.write(yaml_out.to_yaml(self.config("127.0.0.1:1", tls=False)) + "\n")
    with open(path) as f:
      line = next(i for i, text in enumerate(f, 1) if "auto-by-alpn" in text)
    for cmd in (["validate", "--config", path], ["run", "--config", path]):
      with self.subTest(cmd=cmd[0]):
        out = subprocess.run([binary(), *cmd], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("%s:%d:" % (path, line), out.stderr)
        self.assertIn("protocol auto-by-alpn needs tls: ALPN is negotiated in the TLS handshake",
                      out.stderr)

  def switch_h2_to_h1(self, retry):
    """nghttpd on a port, one request over HTTP/2, then an HTTP/1.1-only server on the same port
    once the proxy saw the HTTP/2 connection close. Returns (proxy, the first response after the
    switch, the HTTP/1.1 server)."""
    port = free_port()
    n = self.nghttpd(port)
    p = self.start_proxy(self.config("127.0.0.1:%d" % port, retry=retry))
    r = curl(p.url("/f.txt"))
    self.assertEqual(r.status, 200, r.stderr)
    n.stop()
    # The HTTP/2 connection's end is seen at once (its reader gets EOF); wait for it so the next
    # request does not race the old connection.
    self.wait_until(lambda: p.metrics().get("outrigger_upstream_connections_active",
                                            cluster=CLUSTER) == 0, 5, msg="h2 connection closed")
    u = None
    for _ in range(50):  # the port was ours a moment ago; bind retries are bounded
      try:
        u = self.h1_upstream(port)
        break
      except OSError:
        time.sleep(0.1)
    self.assertIsNotNone(u, "could not bind port %d again" % port)
    return p, curl(p.url("/after")), u

  def test_upstream_switching_h2_to_h1_recovers_within_the_retry(self):
    retry = {"retry_on": ["connect-failure"], "num_retries": 1,
             "backoff": {"base": "1ms", "max": "2ms"}}
    p, r, u = self.switch_h2_to_h1(retry)
    # The attempt over HTTP/2 failed (ALPN http/1.1 now), the retry probed and used HTTP/1.1.
    self.assertEqual(r.status, 200, r)
    self.assertEqual(r.header("x-outrigger-attempts"), "2")
    self.assertEqual(r.json()["version"], "HTTP/1.1")
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_errors_total", cluster=CLUSTER,
                           reason="alpn_changed"), 1)
    self.assertEqual(m.get("outrigger_upstream_retries_total", cluster=CLUSTER,
                           reason="retried"), 1)
    # Both handshakes after the switch negotiated http/1.1 (the failed one and the probe).
    self.assertEqual(self.alpn_counts(p), {"h2": 1, "http/1.1": 2, "none": 0})
    self.assertEqual(self.upstream_protocols(p, 2), ["HTTP/2", "HTTP/1.1"])
    # From now on HTTP/1.1 straight away.
    r = curl(p.url("/again"))
    self.assertEqual(r.status, 200)
    self.assertEqual(r.header("x-outrigger-attempts"), "1")
    self.assertEqual(u.requests, 2)

  def test_upstream_switching_h2_to_h1_without_retries_is_one_503_with_the_reason(self):
    p, r, u = self.switch_h2_to_h1(None)
    self.assertLocalError(r, 503, "upstream alpn changed: no longer negotiates h2")
    self.assertEqual(u.requests, 0)
    # The failure reset what the proxy knew: the next request probes and succeeds over HTTP/1.1.
    r = curl(p.url("/next"))
    self.assertEqual(r.status, 200, r)
    self.assertEqual(r.json()["version"], "HTTP/1.1")
    self.assertEqual(self.upstream_protocols(p, 3), ["HTTP/2", "HTTP/2", "HTTP/1.1"])
    self.assertEqual(p.metrics().get("outrigger_upstream_errors_total", cluster=CLUSTER,
                                     reason="alpn_changed"), 1)

  def test_upstream_switching_h1_to_h2_recovers_within_the_retry(self):
    retry = {"retry_on": ["connect-failure"], "num_retries": 1,
             "backoff": {"base": "1ms", "max": "2ms"}}
    port = free_port()
    u = self.h1_upstream(port)
    p = self.start_proxy(self.config("127.0.0.1:%d" % port, retry=retry))
    self.assertEqual(curl(p.url("/before")).status, 200)
    u.close()
    n = self.nghttpd(port)
    # A pooled connection idle for over a second is probed before reuse (proxy/upstream/pool.cc):
    # after that the closed one is dropped and the next attempt opens a new connection.
    time.sleep(1.2)
    r = curl(p.url("/f.txt"))
    self.assertEqual(r.status, 200, r)
    self.assertEqual(len(r.body), 100000)
    self.assertEqual(r.header("x-outrigger-attempts"), "2")
    self.assertEqual(self.upstream_protocols(p, 2), ["HTTP/1.1", "HTTP/2"])
    self.assertEqual(p.metrics().get("outrigger_upstream_errors_total", cluster=CLUSTER,
                                     reason="alpn_changed"), 1)
    self.assertEqual(n.seen().count(":path: /f.txt"), 1)

  def test_each_protocol_offers_what_it_speaks(self):
    # Servers accepting both, each preferring one: what they select shows what was offered.
    prefers_h2 = self.h1_upstream(alpn=("h2", "http/1.1"))
    prefers_h1 = self.h1_upstream(alpn=("http/1.1", "h2"))
    # http1: http/1.1 only (a server preferring h2 still selects http/1.1).
    p = self.start_proxy(self.config(prefers_h2.address, protocol="http1"))
    self.assertEqual(curl(p.url("/a")).status, 200)
    self.assertEqual(prefers_h2.selected, ["http/1.1"])
    self.assertEqual(self.alpn_counts(p), {"h2": 0, "http/1.1": 0, "none": 0})  # auto only
    # http2: h2 only (a server preferring http/1.1 still selects h2; it cannot speak it: 502).
    p = self.start_proxy(self.config(prefers_h1.address, protocol="http2"))
    self.assertEqual(curl(p.url("/b")).status, 502)
    self.assertEqual(prefers_h1.selected, ["h2"])
    self.assertEqual(prefers_h1.requests, 0)
    # auto-by-alpn: both (the server's preference decides).
    p = self.start_proxy(self.config(prefers_h1.address))
    r = curl(p.url("/c"))
    self.assertEqual(r.status, 200, r)
    self.assertEqual(prefers_h1.selected, ["h2", "http/1.1"])
    self.assertEqual(self.alpn_counts(p), {"h2": 0, "http/1.1": 1, "none": 0})

if __name__ == "__main__":
  unittest.main()
