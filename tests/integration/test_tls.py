"""TLS termination and origination with certificates from `outrigger pki` (and openssl): mTLS,
caller identity, route authorization, verification failures by reason, resumption, hot reload,
and what sslscan sees on a TLS listener. Real handshakes over loopback only."""
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import yaml_out
from harness.client import curl, read_to_close
from harness.proxy import binary
from harness.testcase import ProxyTestCase
from harness.tls_upstream import SilentServer, TlsUpstream
from harness.upstream import pattern_sha256

CONSUMER = "111111111111"
PROVIDER = "222222222222"
STRANGER = "333333333333"


def pki(*args, check=True):
  p = subprocess.run([binary(), "pki", *args], capture_output=True, text=True, timeout=30)
  if check and p.returncode != 0:
    raise AssertionError("outrigger pki %s failed: %s" % (" ".join(args), p.stderr))
  return p


class Pki:
  """A dev PKI made by `outrigger pki` plus a second, unrelated one (the "wrong CA")."""

  def __init__(self, root):
    self.dir = os.path.join(root, "pki")
    self.other = os.path.join(root, "other-pki")
    pki("init", self.dir)
    pki("init", self.other)
    self.bundle = os.path.join(self.dir, "bundle.pem")

  def issue(self, name, account, *extra, ca=None, out=None):
    ca = ca or self.dir
    args = ["issue", ca, "--name", name, "--account", account, *extra]
    if out:
      os.makedirs(out, exist_ok=True)
      args += ["--out-dir", out]
    pki(*args)
    d = out or ca
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def tls_metric(m, side, reason, **labels):
  return m.get("outrigger_%s_tls_handshake_errors_total" % side, reason=reason, **labels) or 0


class TlsCase(ProxyTestCase):
  @classmethod
  def setUpClass(cls):
    import tempfile
    cls.root = tempfile.mkdtemp(prefix="outrigger-tls-")
    cls.pki = Pki(cls.root)
    p = cls.pki
    cls.server = p.issue("user-service", PROVIDER, "--dns", "localhost", "--server")
    cls.consumer = p.issue("checkout", CONSUMER, "--client")
    cls.stranger = p.issue("intruder", STRANGER, "--client")
    cls.expired_client = p.issue("old-checkout", CONSUMER, "--client", "--expired")
    cls.foreign_client = p.issue("checkout", CONSUMER, "--client", ca=p.other,
                                 out=os.path.join(cls.root, "foreign"))
    # What sidecars present to upstreams, and what upstreams present.
    cls.sidecar = p.issue("orders", CONSUMER, "--client")
    cls.upstream = p.issue("inventory", PROVIDER, "--server")
    cls.upstream_expired = p.issue("inventory", PROVIDER, "--server", "--expired",
                                   out=os.path.join(cls.root, "expired"))
    cls.upstream_future = p.issue("inventory", PROVIDER, "--server", "--not-yet-valid",
                                  out=os.path.join(cls.root, "future"))
    cls.upstream_foreign = p.issue("inventory", PROVIDER, "--server", ca=p.other,
                                   out=os.path.join(cls.root, "foreign-up"))
    cls.upstream_other_name = p.issue("billing", PROVIDER, "--server",
                                      out=os.path.join(cls.root, "billing"))
    # Leaf without the subordinate CA: the chain cannot be built from the root alone.
    cls.upstream_leaf_only = (os.path.join(p.dir, "inventory.leaf.pem"), cls.upstream[1])

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, True)


class Termination(TlsCase):
  """An inbound listener: TLS with required client certificates, identity header, authz."""

  def start_inbound(self, app, client_cert="required", extra_route=None):
    cfg = yaml_out.simple(app.address)
    lst = cfg["listeners"][0]
    lst["role"] = "inbound"
    lst["tls"] = {"cert": self.server[0], "key": self.server[1], "client_ca": self.pki.bundle,
                  "client_cert": client_cert}
    routes = [{"name": "orders", "match": {"hosts": ["*"], "path_prefix": "/orders"},
               "cluster": "c1", "authz": {"allow_accounts": [CONSUMER]}},
              {"name": "any", "match": {"hosts": ["*"], "path_prefix": "/"}, "cluster": "c1",
               "authz": {"allow_any_verified": True}}]
    lst["routes"] = routes
    cfg["tls"] = {"reload_interval": "200ms"}
    return self.start_proxy(cfg)

  def url(self, proxy, path):
    return "https://localhost:%d%s" % (proxy.listeners["main"][1], path)

  def curl_as(self, proxy, path, who=None, *args):
    extra = ["--cacert", self.pki.bundle]
    if who:
      extra += ["--cert", who[0], "--key", who[1]]
    return curl(self.url(proxy, path), *extra, *args, timeout=10)

  def test_allowed_caller_gets_identity_header_and_spoof_is_stripped(self):
    app = self.start_upstream()
    p = self.start_inbound(app)
    r = self.curl_as(p, "/orders/1", self.consumer, "-H",
                     "x-forwarded-client-cert: By=spiffe://evil;Account=999999999999")
    self.assertEqual(r.status, 200, r.stderr)
    self.assertTrue(app.wait_requests(1))
    req = app.requests[-1]
    values = [v for k, v in req.headers if k.lower() == "x-forwarded-client-cert"]
    self.assertEqual(len(values), 1, req.headers)
    xfcc = values[0]
    self.assertIn("Account=%s" % CONSUMER, xfcc)
    self.assertIn("Service=checkout", xfcc)
    self.assertIn("URI=spiffe://%s/checkout" % CONSUMER, xfcc)
    self.assertIn("By=spiffe://%s/user-service" % PROVIDER, xfcc)
    self.assertNotIn("999999999999", xfcc)
    self.assertRegex(xfcc, r"Hash=[0-9a-f]{64}")
    xfp = [v for k, v in req.headers if k.lower() == "x-forwarded-proto"]
    self.assertEqual(xfp, ["https"])
    m = p.metrics()
    self.assertEqual(m.get("outrigger_downstream_tls_handshakes_total", listener="main"), 1)

  def test_caller_from_another_account_is_denied_403(self):
    app = self.start_upstream()
    p = self.start_inbound(app)
    r = self.curl_as(p, "/orders/1", self.stranger)
    self.assertEqual(r.status, 403, r.stderr)
    self.assertIn(b"not allowed", r.body)
    self.assertEqual(r.header("x-outrigger-reason"), "caller identity not allowed on this route")
    # The same caller may use the route that admits any verified caller.
    self.assertEqual(self.curl_as(p, "/health", self.stranger).status, 200)
    self.assertEqual(len(app.requests), 1)  # the denied call never reached the app
    m = p.metrics()
    self.assertEqual(m.get("outrigger_downstream_authz_denied_total", route="orders",
                             reason="not_allowed"), 1)

  def test_optional_client_cert_without_cert_is_denied_by_authz(self):
    app = self.start_upstream()
    p = self.start_inbound(app, client_cert="optional")
    r = self.curl_as(p, "/orders/1")
    self.assertEqual(r.status, 403, r.stderr)
    self.assertEqual(r.header("x-outrigger-reason"), "caller has no verified client certificate")
    m = p.metrics()
    self.assertEqual(m.get("outrigger_downstream_authz_denied_total", route="orders",
                             reason="no_verified_identity"), 1)
    self.assertEqual(len(app.requests), 0)

  def test_bad_client_certificates_are_refused_by_reason(self):
    app = self.start_upstream()
    p = self.start_inbound(app)
    cases = [(None, "no_client_certificate"), (self.expired_client, "expired"),
             (self.foreign_client, "unknown_ca")]
    for who, reason in cases:
      r = self.curl_as(p, "/orders/1", who)
      self.assertNotEqual(r.status, 200, (reason, r.stderr))
      self.wait_until(lambda: tls_metric(p.metrics(), "downstream", reason) >= 1, 5,
                      msg="downstream tls error %s counted" % reason)
    self.assertEqual(len(app.requests), 0)

  def test_plaintext_client_on_tls_port_is_closed_and_counted(self):
    app = self.start_upstream()
    p = self.start_inbound(app)
    s = socket.create_connection(p.listeners["main"], timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    data = b""
    try:
      while len(data) < 65536:
        chunk = s.recv(4096)
        if not chunk:
          break
        data += chunk
    except ConnectionResetError:
      pass
    s.close()
    self.assertLess(time.monotonic() - t0, 3.0, "the proxy must close, not hang")
    self.assertNotIn(b"HTTP/1.1 200", data)
    self.wait_until(lambda: tls_metric(p.metrics(), "downstream", "not_tls") == 1, 5,
                    msg="not_tls counted")

  def test_old_protocol_versions_are_refused(self):
    app = self.start_upstream()
    p = self.start_inbound(app)
    host, port = p.listeners["main"]
    for flag in ("-tls1_1", "-tls1"):
      r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (host, port), flag,
                          "-cert", self.consumer[0], "-key", self.consumer[1]],
                         input="", capture_output=True, text=True, timeout=15)
      self.assertNotEqual(r.returncode, 0, r.stdout)
      self.assertNotRegex(r.stdout, r"Protocol\s*:\s*TLSv1(\.1)?\s*$")

  def test_slow_reader_over_tls_gets_every_byte(self):
    # TLS records are sent at once when the socket takes them, and through Asio's write when it
    # is full: a client that reads slowly with a small receive buffer makes most records take
    # the second path, part-sent. Every byte must arrive, in order.
    app = self.start_upstream()
    p = self.start_inbound(app)
    n = 24 << 20
    ctx = ssl.create_default_context(cafile=self.pki.bundle)
    ctx.load_cert_chain(self.consumer[0], self.consumer[1])
    raw = socket.create_connection(p.listeners["main"], timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    with ctx.wrap_socket(raw, server_hostname="localhost") as c:
      c.sendall(b"GET /large?n=%d&mode=cl HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n" % n)
      buf = b""
      while b"\r\n\r\n" not in buf and len(buf) < 65536:
        piece = c.recv(4096)
        self.assertTrue(piece, buf)
        buf += piece
      head, _, body = buf.partition(b"\r\n\r\n")
      self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
      h = hashlib.sha256(body)
      got = len(body)
      deadline = time.monotonic() + 120
      for i in range(1000000):
        if got >= n:
          break
        self.assertLess(time.monotonic(), deadline, "slow download did not finish")
        piece = c.recv(16 * 1024)
        self.assertTrue(piece, "closed after %d of %d bytes" % (got, n))
        h.update(piece)
        got += len(piece)
        if i < 200:
          time.sleep(0.005)  # slow at first: the proxy's socket buffer fills
    self.assertEqual(got, n)
    self.assertEqual(h.hexdigest(), pattern_sha256(n))
    self.assertTrue(p.running())

  def test_s_client_tls13_alpn_and_session_resumption(self):
    app = self.start_upstream()
    p = self.start_inbound(app)
    host, port = p.listeners["main"]
    sess = os.path.join(self.make_tmpdir(), "sess.pem")
    base = ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-servername", "localhost",
            "-CAfile", self.pki.bundle, "-verify_return_error", "-alpn", "http/1.1",
            "-cert", self.consumer[0], "-key", self.consumer[1]]
    req = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    r1 = subprocess.run(base + ["-sess_out", sess, "-ign_eof"], input=req, capture_output=True,
                        text=True, timeout=15)
    self.assertIn("TLSv1.3", r1.stdout)
    self.assertIn("ALPN protocol: http/1.1", r1.stdout)
    self.assertIn("Verify return code: 0 (ok)", r1.stdout)
    self.assertIn("HTTP/1.1 200", r1.stdout)
    r2 = subprocess.run(base + ["-sess_in", sess, "-ign_eof"], input=req, capture_output=True,
                        text=True, timeout=15)
    self.assertIn("Reused, TLSv1.3", r2.stdout)
    self.assertIn("HTTP/1.1 200", r2.stdout)
    m = p.metrics()
    self.assertEqual(m.get("outrigger_downstream_tls_resumed_total", listener="main"), 1)
    # A resumed session keeps the identity it was verified with.
    self.assertTrue(app.wait_requests(2))
    for req_ in app.requests[:2]:
      xfcc = [v for k, v in req_.headers if k.lower() == "x-forwarded-client-cert"]
      self.assertEqual(len(xfcc), 1)
      self.assertIn("Service=checkout", xfcc[0])

  def test_clean_close_lets_openssl_3_clients_resume(self):
    # The proxy ends a TLS connection with close_notify: the client sees a clean EOF (no ragged
    # EOF error), keeps its session and resumes it on the next connection.
    app = self.start_upstream()
    p = self.start_inbound(app)
    ctx = ssl.create_default_context(cafile=self.pki.bundle)
    ctx.load_cert_chain(*self.consumer)
    session = None
    reused = []
    for _ in range(3):
      with socket.create_connection(p.addr(), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session,
                             suppress_ragged_eofs=False) as t:
          t.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
          data = read_to_close(t)  # raises SSLEOFError on an EOF without close_notify
          self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
          reused.append(t.session_reused)
          session = t.session
    self.assertEqual(reused, [False, True, True])

  @unittest.skipUnless(shutil.which("sslscan"), "sslscan is installed by make deps")
  def test_sslscan_sees_no_old_protocol_and_no_weak_cipher(self):
    app = self.start_upstream()
    p = self.start_inbound(app, client_cert="optional")
    host, port = p.listeners["main"]
    r = subprocess.run(["sslscan", "--no-colour", "--no-heartbleed", "%s:%d" % (host, port)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout
    self.assertEqual(r.returncode, 0, out + r.stderr)
    self.assertRegex(out, r"TLSv1\.3\s+enabled")
    self.assertRegex(out, r"TLSv1\.2\s+enabled")
    for old in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
      self.assertRegex(out, r"%s\s+disabled" % re.escape(old))
    ciphers = [l for l in out.splitlines() if l.startswith(("Preferred", "Accepted"))]
    self.assertTrue(ciphers, out)
    for line in ciphers:
      self.assertNotRegex(line, r"TLSv1\.[01]|SSLv|RC4|DES|NULL|EXP|MD5|CBC|anon|SHA\s*$", line)
      self.assertRegex(line, r"GCM|CHACHA20", line)


class Origination(TlsCase):
  """A cluster with TLS: SNI, chain and SAN verified, client certificate, resumption."""

  def start_tls_upstream(self, chain=None, require_client_cert=True):
    chain = chain or self.upstream
    # Without a client CA the server's store is empty, so OpenSSL cannot complete a short chain
    # on its own: the upstream sends exactly the file's chain.
    u = TlsUpstream(chain[0], chain[1], client_ca=self.pki.bundle if require_client_cert else None,
                    require_client_cert=require_client_cert)
    self.addCleanup(u.close)
    return u

  def start_sidecar(self, address, verify_san=None, sni="inventory", connect_timeout="2s",
                    client_cert=True, ca=None, health_check=None):
    tls = {"sni": sni, "ca": ca or self.pki.bundle}
    if client_cert:
      tls.update(cert=self.sidecar[0], key=self.sidecar[1])
    if verify_san:
      tls["verify_san"] = verify_san
    extra = {"tls": tls, "connect_timeout": connect_timeout}
    if health_check is not None:
      extra["health_check"] = health_check
    if isinstance(address, (list, tuple)):
      cfg = yaml_out.simple(address[0], cluster_extra=extra)
      cfg["clusters"][0]["endpoints"] = list(address)
    else:
      cfg = yaml_out.simple(address, cluster_extra=extra)
    cfg["tls"] = {"reload_interval": "200ms"}
    return self.start_proxy(cfg)

  def get(self, p, path="/x"):
    return curl("http://%s:%d%s" % (*p.listeners["main"], path), timeout=10)

  def test_mtls_upstream_with_sni_san_and_client_cert(self):
    u = self.start_tls_upstream()
    p = self.start_sidecar(u.address, verify_san=["spiffe://%s/inventory" % PROVIDER])
    r = self.get(p)
    self.assertEqual(r.status, 200, r.body)
    seen = r.json()
    self.assertEqual(seen["sni"], "inventory")
    self.assertIn(["URI", "spiffe://%s/orders" % CONSUMER], seen["client_sans"])
    self.assertEqual(seen["tls_version"], "TLSv1.3")
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_tls_handshakes_total", cluster="c1"), 1)

  def test_sessions_resume_across_pooled_connections(self):
    u = self.start_tls_upstream()
    p = self.start_sidecar(u.address)
    for i in range(4):  # the upstream closes after each answer: a new connection every time
      r = self.get(p, "/close/%d" % i)
      self.assertEqual(r.status, 200, r.body)
    m = p.metrics()
    self.assertEqual(m.get("outrigger_upstream_tls_handshakes_total", cluster="c1"), 4)
    self.assertGreaterEqual(m.get("outrigger_upstream_tls_resumed_total", cluster="c1"), 2)

  def assert_refused(self, p, reason, text):
    r = self.get(p)
    self.assertEqual(r.status, 503, r.body)
    self.assertEqual(r.header("x-outrigger-reason"), text)
    m = p.metrics()
    self.assertEqual(tls_metric(m, "upstream", reason, cluster="c1"), 1, reason)
    self.assertEqual(m.get("outrigger_upstream_errors_total", cluster="c1",
                             reason="tls_handshake"), 1)
    self.assertTrue(any(isinstance(l, dict) and l.get("msg") == "upstream tls handshake failed"
                        and l.get("reason") == reason for l in p.logs), p.stderr_text())

  def test_san_mismatch_is_503(self):
    u = self.start_tls_upstream(self.upstream_other_name)
    p = self.start_sidecar(u.address)
    self.assert_refused(p, "san_mismatch", "upstream tls: certificate name mismatch")

  def test_unknown_ca_is_503(self):
    u = self.start_tls_upstream(self.upstream_foreign)
    p = self.start_sidecar(u.address)
    self.assert_refused(p, "unknown_ca", "upstream tls: certificate not from a trusted ca")

  def test_expired_is_503(self):
    u = self.start_tls_upstream(self.upstream_expired)
    p = self.start_sidecar(u.address)
    self.assert_refused(p, "expired", "upstream tls: certificate expired")

  def test_not_yet_valid_is_503(self):
    u = self.start_tls_upstream(self.upstream_future)
    p = self.start_sidecar(u.address)
    self.assert_refused(p, "not_yet_valid", "upstream tls: certificate not yet valid")

  def test_subordinate_missing_from_chain_is_503(self):
    # Trusting only the root (as with an AWS Private CA root), the upstream must send the
    # subordinate: with the full chain it verifies, with the leaf alone it cannot.
    root = os.path.join(self.pki.dir, "root.pem")
    good = self.start_tls_upstream()
    self.assertEqual(self.get(self.start_sidecar(good.address, ca=root)).status, 200)
    u = self.start_tls_upstream(self.upstream_leaf_only, require_client_cert=False)
    p = self.start_sidecar(u.address, ca=root)
    self.assert_refused(p, "unknown_ca", "upstream tls: certificate not from a trusted ca")

  def test_handshake_timeout_is_503(self):
    silent = SilentServer()
    self.addCleanup(silent.close)
    p = self.start_sidecar(silent.address, connect_timeout="300ms")
    t0 = time.monotonic()
    self.assert_refused(p, "handshake_timeout", "upstream tls: handshake timeout")
    self.assertLess(time.monotonic() - t0, 5)

  def test_upstream_refusing_our_client_cert(self):
    u = self.start_tls_upstream()
    p = self.start_sidecar(u.address, client_cert=False)
    r = self.get(p)
    # TLS 1.3: the server's refusal may only show after the handshake, on the first read.
    self.assertIn(r.status, (502, 503), r.body)
    self.assertEqual(u.requests, 0)

  HC = {"path": "/health", "interval": "100ms", "timeout": "1s", "healthy_threshold": 1,
        "unhealthy_threshold": 1, "interval_jitter_percent": 0}

  def endpoint_health(self, p):
    return {e["address"]: e["health"] for e in
            json.loads(p.admin_get("/clusters").body)["clusters"][0]["endpoints"]}

  def test_health_checks_go_over_mtls_and_fail_on_a_bad_certificate(self):
    """A TLS cluster's checks: the good upstream (which requires our client certificate) answers
    them over TLS with our SNI and is healthy; one whose certificate is from another CA fails
    them as tls_failure, is unhealthy and takes no requests."""
    good = self.start_tls_upstream()
    bad = self.start_tls_upstream(self.upstream_foreign)
    p = self.start_sidecar([good.address, bad.address], health_check=dict(self.HC))
    self.wait_until(lambda: good.paths.count("/health") >= 2, 5, msg="checks reach the upstream")
    self.wait_until(lambda: self.endpoint_health(p).get(bad.address) == "unhealthy", 5,
                    msg="bad certificate unhealthy")
    self.assertEqual(self.endpoint_health(p)[good.address], "healthy")
    self.assertEqual(bad.requests, 0)  # its handshake never completed
    down = [l for l in p.logs if isinstance(l, dict) and l.get("msg") == "health check transition"
            and l.get("endpoint") == bad.address and l.get("to") == "unhealthy"]
    self.assertTrue(down and down[0].get("check") == "tls_failure", p.stderr_text())
    self.assertEqual(p.metrics().get("outrigger_upstream_health_transitions_total",
                                     cluster="c1", to="unhealthy"), 1)
    before = good.paths.count("/x")
    for _ in range(6):
      self.assertEqual(self.get(p).status, 200)  # never sent to the unhealthy endpoint
    self.assertEqual(good.paths.count("/x"), before + 6)

  def test_quick_mode_https_with_resolve(self):
    u = self.start_tls_upstream()
    p = self.start_proxy(argv=["reverse-proxy", "--listen", "127.0.0.1:0", "--workers", "1",
                               "--admin", "127.0.0.1:0",
                               "--to", "https://inventory:%d" % u.port,
                               "--resolve", "inventory:127.0.0.1", "--ca", self.pki.bundle,
                               "--cert", self.sidecar[0], "--key", self.sidecar[1]])
    r = self.get(p)
    self.assertEqual(r.status, 200, r.body)
    self.assertEqual(r.json()["sni"], "inventory")

  def test_quick_mode_https_needs_ca(self):
    r = subprocess.run([binary(), "reverse-proxy", "--listen", "127.0.0.1:0", "--to",
                        "https://inventory:443"], capture_output=True, text=True, timeout=10)
    self.assertEqual(r.returncode, 2)
    self.assertIn("--ca", r.stderr)


class SidecarToSidecar(TlsCase):
  """Two outrigger processes: a consumer sidecar originating mTLS (with session resumption) to a
  provider sidecar's inbound listener that authorizes by account."""

  def test_resumed_sessions_keep_the_callers_identity(self):
    app = self.start_upstream()
    provider_cfg = yaml_out.simple(app.address)
    lst = provider_cfg["listeners"][0]
    lst["role"] = "inbound"
    lst["tls"] = {"cert": self.server[0], "key": self.server[1], "client_ca": self.pki.bundle,
                  "client_cert": "optional"}
    lst["limits"] = {"idle_timeout": "150ms"}  # closes the pooled connection between requests
    lst["routes"][0]["authz"] = {"allow_accounts": [CONSUMER]}
    provider = self.start_proxy(provider_cfg)
    consumer_cfg = yaml_out.simple("127.0.0.1:%d" % provider.addr()[1], cluster_extra={
        "tls": {"sni": "user-service", "ca": self.pki.bundle, "cert": self.sidecar[0],
                "key": self.sidecar[1],
                "verify_san": ["spiffe://%s/user-service" % PROVIDER]}})
    consumer = self.start_proxy(consumer_cfg)
    statuses = []
    for i in range(6):
      statuses.append(curl("http://%s:%d/x%d" % (*consumer.addr(), i), timeout=10).status)
      time.sleep(0.3)
    self.assertEqual(statuses, [200] * 6)
    m = provider.metrics()
    self.assertGreaterEqual(m.get("outrigger_downstream_tls_resumed_total", listener="main"), 3)
    for r in app.requests:
      xfcc = r.header("x-forwarded-client-cert")
      self.assertIn("Account=%s;Service=orders" % CONSUMER, xfcc)


class Reload(TlsCase):
  """Certificate rotation and broken files, on a listener, while handshakes go on."""

  def test_rotation_under_load_and_broken_file_keeps_old(self):
    d = self.make_tmpdir()
    cert, key = self.pki.issue("user-service", PROVIDER, "--dns", "localhost", "--server", out=d)
    app = self.start_upstream()
    cfg = yaml_out.simple(app.address)
    lst = cfg["listeners"][0]
    lst["tls"] = {"cert": cert, "key": key}
    cfg["tls"] = {"reload_interval": "100ms"}
    p = self.start_proxy(cfg)
    addr = p.listeners["main"]
    ctx = ssl.create_default_context(cafile=self.pki.bundle)

    def serial():
      with socket.create_connection(addr, timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
          return t.getpeercert()["serialNumber"]

    first = serial()
    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    serials = set()

    def load():
      deadline = time.monotonic() + 30
      while not stop.is_set() and time.monotonic() < deadline and results["ok"] < 5000:
        try:
          with socket.create_connection(addr, timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
              serials.add(t.getpeercert()["serialNumber"])
              t.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
              data = read_to_close(t)
              if data.startswith(b"HTTP/1.1 200"):
                results["ok"] += 1
              else:
                results["failed"].append(data[:80])
        except (OSError, ssl.SSLError) as e:
          results["failed"].append(repr(e))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for t in threads:
      t.start()
    time.sleep(0.5)
    self.pki.issue("user-service", PROVIDER, "--dns", "localhost", "--server", "--force", out=d)
    self.wait_until(lambda: serial() != first, 5, msg="new certificate served")
    rotated = serial()
    time.sleep(0.5)
    stop.set()
    for t in threads:
      t.join(35)
    self.assertEqual(results["failed"], [])
    self.assertGreater(results["ok"], 20)
    self.assertIn(first, serials)
    self.assertIn(rotated, serials)
    m = p.metrics()
    self.assertEqual(m.get("outrigger_tls_material_reloads_total", listener="main",
                             result="ok"), 1)
    expiry = m.get("outrigger_tls_certificate_expiry_seconds", listener="main")
    self.assertTrue(29 * 86400 < expiry <= 30 * 86400 + 600, expiry)

    # A broken file is refused, logged and counted; the rotated certificate stays in use.
    with open(cert, "w") as f:
      f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    self.wait_until(lambda: p.metrics().get(
        "outrigger_tls_material_reloads_total", listener="main", result="failed") >= 1, 5, msg="broken certificate refused")
    self.assertEqual(serial(), rotated)
    self.assertTrue(any(isinstance(l, dict) and "refused" in l.get("msg", "") for l in p.logs))

  def test_broken_tls_material_at_start_is_a_located_error(self):
    d = self.make_tmpdir()
    bad = os.path.join(d, "bad.pem")
    with open(bad, "w") as f:
      f.write("garbage\n")
    app = self.start_upstream()
    cfg = yaml_out.simple(app.address)
    cfg["listeners"][0]["tls"] = {"cert": bad, "key": self.server[1]}
    from harness.proxy import Proxy, ProxyError
    px = Proxy(config=cfg)
    with self.assertRaises(ProxyError) as cm:
      px.start(ready_timeout=5)
    self.assertRegex(str(cm.exception), r"outrigger\.yaml:\d+:\d+: listener main: tls:")


class WebSocketOverTls(TlsCase):
  def test_wss_both_sides_with_the_caller_identity(self):
    """A WebSocket over mutual TLS to an inbound listener, tunnelled to a TLS upstream: the
    handshake carries the verified caller's identity header, messages go both ways through two
    TLS sessions, and a close ends both."""
    import websocket  # python3-websocket
    from test_websocket import WsUpstream
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(self.upstream[0], self.upstream[1])
    up = WsUpstream(ssl_context=ctx)
    self.addCleanup(up.close)
    cfg = yaml_out.simple(up.address, cluster_extra={"tls": {"sni": "inventory",
                                                             "ca": self.pki.bundle}})
    lst = cfg["listeners"][0]
    lst["role"] = "inbound"
    lst["tls"] = {"cert": self.server[0], "key": self.server[1], "client_ca": self.pki.bundle,
                  "client_cert": "required"}
    p = self.start_proxy(cfg)
    c = websocket.create_connection(
        "wss://localhost:%d/live" % p.listeners["main"][1], timeout=5,
        sslopt={"ca_certs": self.pki.bundle, "certfile": self.consumer[0],
                "keyfile": self.consumer[1]})
    self.addCleanup(c.close)
    for i in range(20):
      c.send("tick %d" % i)
      self.assertEqual(c.recv(), "tick %d" % i)
    big = os.urandom(200000)
    c.send_binary(big)
    self.assertEqual(c.recv(), big)
    path, headers = up.requests[0]
    self.assertEqual(path, "/live")
    self.assertIn("Account=%s" % CONSUMER, headers["x-forwarded-client-cert"])
    self.assertEqual(headers["x-forwarded-proto"], "https")
    self.assertEqual(p.metrics().get("outrigger_downstream_tunnels_active", listener="main"), 1)
    c.close()
    self.wait_until(lambda: p.metrics().get("outrigger_downstream_tunnels_active",
                                            listener="main") == 0, 5, msg="tunnel closed")


class TlsMetrics(TlsCase):
  @unittest.skipUnless(shutil.which("promtool"), "promtool is installed by make deps")
  def test_tls_metrics_pass_promtool(self):
    u = TlsUpstream(self.upstream[0], self.upstream[1])
    self.addCleanup(u.close)
    app = self.start_upstream()
    cfg = yaml_out.simple(u.address, cluster_extra={"tls": {"sni": "inventory",
                                                            "ca": self.pki.bundle}})
    cfg["listeners"][0]["tls"] = {"cert": self.server[0], "key": self.server[1]}
    p = self.start_proxy(cfg)
    r = curl("https://localhost:%d/x" % p.listeners["main"][1], "--cacert", self.pki.bundle)
    self.assertEqual(r.status, 200, r.stderr)
    text = p.metrics().text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    self.assertIn("outrigger_tls_certificate_expiry_seconds{listener=\"main\"}", text)


if __name__ == "__main__":
  unittest.main()
