"""The local multi-account mesh (examples/mesh): network namespaces as accounts, outrigger sidecars
with mTLS from `outrigger pki`, a PrivateLink-like L4 hop and a Lattice-like TLS + SigV4 hop.

Needs root (ip netns); without it every test is skipped and says why. One mesh is built for the
module; the teardown tests build and remove their own. Every wait is bounded.
"""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

from harness.proxy import binary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MESH_DIR = os.path.join(REPO, "examples", "mesh")
sys.path.insert(0, MESH_DIR)
import mesh as meshlib  # noqa: E402  (examples/mesh/mesh.py)

M = None
SKIP = None
if os.geteuid() != 0:
  SKIP = "the mesh needs root for network namespaces (ip netns); running as uid %d" % os.geteuid()


def setUpModule():
  global M
  if SKIP:
    raise unittest.SkipTest(SKIP)
  meshlib.sweep_orphans()  # meshes of earlier runs killed before their teardown
  M = meshlib.Mesh(binary=binary(), variant="auto")
  M.up()


def tearDownModule():
  if M is None:
    return
  M.down()
  left = M.leftovers()
  if left:
    raise AssertionError("the module's mesh left: %s" % ", ".join(left))


def topo():
  return meshlib.load_topology()


def outbound():
  return "http://127.0.0.1:%d" % topo()["ports"]["outbound"]


def app_url(path):
  return "http://127.0.0.1:%d%s" % (topo()["ports"]["app"], path)


def json_body(resp):
  try:
    return json.loads(resp["body"])
  except ValueError:
    raise AssertionError("not JSON: %r" % (resp,)) from None


def hop_log(name):
  out = []
  with open(M.procs[name]["out"]) as f:
    for line in f:
      if line.startswith("{"):
        out.append(json.loads(line))
  return out


class MeshTestCase(unittest.TestCase):
  maxDiff = 4000

  def wait_for(self, fn, timeout, msg, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
      v = fn()
      if v:
        return v
      if time.monotonic() > deadline:
        self.fail("%s not met within %.0fs" % (msg, timeout))
      time.sleep(interval)


class CallsBothWays(MeshTestCase):
  def test_variant_is_the_aws_one(self):
    # With `outrigger pki` in the binary the mesh runs the default configs: privatelink and
    # lattice clusters, mTLS between sidecars, SigV4 required by the Lattice front.
    self.assertEqual(M.variant, topo()["default_variant"], "this outrigger has no `pki` subcommand")
    self.assertEqual(M.variant, "aws")
    self.assertEqual(M.lattice_auth, "iam")

  def test_consumer_to_provider_over_privatelink_with_mtls_identity(self):
    t = topo()
    c, p = t["accounts"]["consumer"], t["accounts"]["provider"]
    mark = len(hop_log("privatelink"))
    r = M.http("consumer", app_url("/call?url=http://%s/whoami" % p["service"]))
    self.assertEqual(r["status"], 200, r)
    body = json_body(r)
    self.assertEqual(body["status"], 200)
    answer = body["answer"]
    self.assertEqual(answer["service"], p["service"])
    seen = answer["seen"]
    # The provider app sees the consumer's verified identity (mTLS through an L4 hop).
    xfcc = seen.get("x-forwarded-client-cert", "")
    self.assertIn("URI=spiffe://%s/%s" % (c["account_id"], c["service"]), xfcc)
    self.assertIn("Account=%s" % c["account_id"], xfcc)
    self.assertIn("By=spiffe://%s/%s" % (p["account_id"], p["service"]), xfcc)
    self.assertEqual(seen["x-forwarded-proto"], "https")
    # The PrivateLink-like relay carried it (from the consumer task to the provider sidecar).
    opened = [e for e in hop_log("privatelink")[mark:] if e.get("msg") == "open"]
    self.assertTrue(any(e["client"].startswith(c["task_ip"] + ":") for e in opened), opened)

  def test_post_orders_through_privatelink(self):
    p = topo()["accounts"]["provider"]
    r = M.http("consumer", "http://%s/orders" % p["service"], method="POST",
               headers=["content-type: application/json"], data='{"item":"oar","qty":1}',
               proxy=outbound())
    self.assertEqual(r["status"], 201, r)
    created = json_body(r)["created"]
    self.assertEqual(created["item"], "oar")
    listed = json_body(M.http("provider", app_url("/orders")))["orders"]
    self.assertIn(created, listed)

  def test_provider_to_consumer_over_lattice(self):
    t = topo()
    c = t["accounts"]["consumer"]
    p = t["accounts"]["provider"]
    mark = len(hop_log("lattice"))
    r = M.http("provider", app_url("/call?url=http://%s/whoami" % c["service"]))
    self.assertEqual(r["status"], 200, r)
    answer = json_body(r)["answer"]
    self.assertEqual(answer["service"], c["service"])
    seen = answer["seen"]
    self.assertEqual(seen["x-forwarded-proto"], "https")  # TLS into the consumer sidecar
    self.assertIn("x-amzn-lattice-target", seen)
    # The orders sidecar signed with its account's credentials; the front verified it.
    self.assertTrue(seen["x-amzn-lattice-identity"].startswith(
        "Principal=arn:aws:sts::%s:assumed-role/%s-task/" % (p["account_id"], p["service"])),
        seen["x-amzn-lattice-identity"])
    self.assertIn("SourceVpcArn=arn:aws:ec2:%s:%s:" % (t["region"], p["account_id"]),
                  seen["x-amzn-lattice-network"])
    reqs = [e for e in hop_log("lattice")[mark:] if e.get("msg") == "request"]
    self.assertTrue(any(e["client"] == p["task_ip"] and e["status"] == 200 and
                        e["decision"] == "allow" and e["caller_account"] == p["account_id"]
                        for e in reqs), reqs)

  def test_no_route_between_vpcs_but_the_hops(self):
    p = topo()["accounts"]["provider"]
    r = M.http("consumer", "http://%s:%d/health" % (p["task_ip"], topo()["ports"]["inbound"]),
               timeout=2)
    self.assertEqual(r["status"], 0, r)


class Authorization(MeshTestCase):
  def lattice_url(self):
    lat = topo()["hops"]["lattice"]
    return "https://%s:%s/whoami" % (lat["names"][0], lat["listen"].rsplit(":", 1)[1])

  def signed(self, who):
    t = topo()
    name = t["hops"]["lattice"]["names"][0]
    return meshlib.sigv4_headers(who, t["region"], "GET", "https://%s/whoami" % name) + [
        "host: " + name]

  def ca(self):
    return ["--cacert", os.path.join(M.run_dir, "pki", "bundle.pem")]

  def test_privatelink_caller_from_other_account_gets_403(self):
    t = topo()
    pl = t["hops"]["privatelink"]
    o = t["outsider"]
    pki = os.path.join(M.run_dir, "pki")
    before = len(json_body(M.http("provider", app_url("/orders")))["orders"])
    r = M.http("consumer", "https://%s/orders" % pl["names"][0], method="POST",
               data='{"item":"stolen"}', headers=["content-type: application/json"],
               extra=self.ca() + ["--cert", os.path.join(pki, o["service"] + ".pem"),
                                  "--key", os.path.join(pki, o["service"] + ".key")])
    self.assertEqual(r["status"], 403, r)
    self.assertTrue(r["headers"].get("x-outrigger-reason"), r)
    after = len(json_body(M.http("provider", app_url("/orders")))["orders"])
    self.assertEqual(before, after, "a denied request reached the provider app")

  def test_privatelink_caller_without_certificate_is_refused(self):
    pl = topo()["hops"]["privatelink"]
    r = M.http("consumer", "https://%s/health" % pl["names"][0], extra=self.ca())
    self.assertEqual(r["status"], 0, r)  # handshake refused: client_cert required

  def test_lattice_caller_from_other_account_gets_403(self):
    r = M.http("provider", self.lattice_url(), headers=self.signed(topo()["outsider"]),
               extra=self.ca())
    self.assertEqual(r["status"], 403, r)
    self.assertEqual(r["headers"].get("x-amzn-errortype"), "AccessDeniedException")
    self.assertIn(topo()["outsider"]["account_id"], r["body"])

  def test_lattice_allowed_account_gets_identity_and_forgery_is_removed(self):
    p = topo()["accounts"]["provider"]
    r = M.http("provider", self.lattice_url(), extra=self.ca(),
               headers=self.signed(p) + ["x-amzn-lattice-identity: Principal=forged"])
    self.assertEqual(r["status"], 200, r)
    ident = json_body(r)["seen"]["x-amzn-lattice-identity"]
    self.assertTrue(ident.startswith("Principal=arn:aws:sts::%s:assumed-role/" % p["account_id"]),
                    ident)
    self.assertNotIn("forged", ident)

  def test_lattice_unsigned_call_gets_403(self):
    lat = topo()["hops"]["lattice"]
    r = M.http("provider", self.lattice_url(), headers=["host: " + lat["names"][0]],
               extra=self.ca())
    self.assertEqual(r["status"], 403, r)
    self.assertIn("not signed", r["body"])

  def test_lattice_bad_signature_gets_403(self):
    p = topo()["accounts"]["provider"]
    hdrs = [h if not h.lower().startswith("authorization:") else h[:-4] + "0000"
            for h in self.signed(p)]
    r = M.http("provider", self.lattice_url(), headers=hdrs, extra=self.ca())
    self.assertEqual(r["status"], 403, r)
    self.assertIn("signature does not match", r["body"])


class Failures(MeshTestCase):
  def test_provider_app_killed_gives_503_then_recovers(self):
    """The provider sidecar health-checks its app every second (orders.mtls.yaml): once the app
    is dead the consumer gets 503 "no healthy upstream endpoint" at once, never a hang; every
    answer meanwhile is a sidecar's 5xx within the route timeout; a restarted app serves again."""
    t = topo()
    p = t["accounts"]["provider"]
    route_timeout = 5.0  # routes[].timeout in the configs
    M.stop_proc("provider-app", signal.SIGKILL, timeout=10)
    seen = []
    try:
      deadline = time.monotonic() + 10
      while True:
        start = time.monotonic()
        r = M.http("consumer", "http://%s/health" % p["service"], proxy=outbound(),
                   timeout=route_timeout + 5)
        elapsed = time.monotonic() - start
        seen.append((r["status"], r["headers"].get("x-outrigger-reason"), round(elapsed, 2)))
        self.assertIn(r["status"], (502, 503), r)
        self.assertTrue(r["headers"].get("x-outrigger-reason"), r)
        self.assertLess(elapsed, route_timeout + 1.0, seen)
        if r["status"] == 503 and "no healthy" in r["headers"]["x-outrigger-reason"]:
          break
        self.assertLess(time.monotonic(), deadline, "no 503 within 10 s: %s" % seen)
        time.sleep(0.2)
      # Once seen unhealthy, the answer comes without waiting on the app: only the consumer's
      # retries of the 503 (5, backoff at most 100+300+700+1000+1000 ms) stand between.
      start = time.monotonic()
      r = M.http("consumer", "http://%s/health" % p["service"], proxy=outbound())
      self.assertEqual(r["status"], 503, r)
      self.assertLess(time.monotonic() - start, 4.0)
    finally:
      M.start_app("provider")
    ok = lambda: M.http("consumer", "http://%s/health" % p["service"], proxy=outbound(),
                        timeout=5)["status"] == 200
    self.wait_for(ok, 15, "recovery after the provider app restarted")

  def load_during_provider_restart(self, method, path):
    t = topo()
    p = t["accounts"]["provider"]
    load = subprocess.Popen(
        M.netns_exec("consumer", [M.python, os.path.join(MESH_DIR, "load.py"), "--to",
                                  "127.0.0.1:%d" % t["ports"]["outbound"], "--host", p["service"],
                                  "--method", method, "--path", path, "--clients", "4",
                                  "--duration", "6", "--max-requests", "20000"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
      time.sleep(1.5)
      self.assertIsNone(load.poll(), "the load ended before the SIGTERM")
      rc = M.stop_proc("provider-sidecar", signal.SIGTERM, timeout=15)
      self.assertEqual(rc, 0, "the provider sidecar must drain and exit 0\n%s" %
                       M.tail("provider-sidecar"))
      M.start_sidecar("provider")
      out, err = load.communicate(timeout=40)
    finally:
      if load.poll() is None:
        load.kill()
        load.wait(10)
    res = json.loads(out)
    print("\n  %s load during the provider sidecar's SIGTERM and restart: %s" % (
        method, json.dumps({k: res[k] for k in ("statuses", "latency_ms")})), file=sys.stderr)
    # And the provider is back: requests succeed again.
    ok = lambda: M.http("consumer", "http://%s/health" % p["service"], proxy=outbound(),
                        timeout=5)["status"] == 200
    self.wait_for(ok, 15, "requests succeed after the provider sidecar restarted")
    return res

  def test_sigterm_provider_sidecar_under_post_load_loses_nothing_processed(self):
    """POSTs (not idempotent: retried only when they cannot have reached the provider) while
    orders' sidecar drains on SIGTERM and a new one starts. Every order the orders app created
    was answered 201 to the client (nothing dropped after the provider did the work), and every
    failure is a 502/503 a sidecar made (x-outrigger-reason), never a broken or truncated
    response, nor a 403 from a restarted provider that lost the caller's identity."""
    before = len(json_body(M.http("provider", app_url("/orders")))["orders"])
    res = self.load_during_provider_restart("POST", "/orders")
    after = len(json_body(M.http("provider", app_url("/orders")))["orders"])
    self.assertGreater(res["statuses"].get("201", 0), 50, res)
    self.assertEqual(after - before, len(res["created_ids"]),
                     "orders the provider created vs. 201s the consumer got: %s" % res)
    self.assertNotIn("error", res["statuses"], "a client connection broke: %s" % res["failures"])
    for f in res["failures"]:
      self.assertIn(f.get("status"), (502, 503), f)
      self.assertTrue(f.get("reason"), "not an answer made by a sidecar: %s" % f)

  def test_sigterm_provider_sidecar_under_get_load_fails_nothing(self):
    """GETs may be retried: across the provider sidecar's drain and restart the consumer sidecar
    retries what failed (refused connections, TLS handshakes reset by the L4 hop, resets) within
    its retry budget, so the clients see no failure at all."""
    res = self.load_during_provider_restart("GET", "/health")
    self.assertGreater(res["statuses"].get("200", 0), 50, res)
    self.assertEqual(res["failures"], [], res["statuses"])


class Teardown(MeshTestCase):
  def test_cli_up_then_down_leaves_nothing(self):
    up = subprocess.run([sys.executable, os.path.join(MESH_DIR, "mesh.py"), "up", "--variant",
                         "plain", "--bin", binary()], capture_output=True, text=True, timeout=120)
    self.assertEqual(up.returncode, 0, up.stderr)
    mid = up.stdout.split()[0]
    m = meshlib.Mesh.attach(mid)
    try:
      self.assertIn(m.ns["consumer"], meshlib.list_namespaces())
      self.assertTrue(all(m.proc_alive(n) for n in m.procs), m.status())
      pids = [info["pid"] for info in m.procs.values()]
      r = m.http("consumer", "http://orders/health", proxy=outbound())
      self.assertEqual(r["status"], 200, r)
    finally:
      down = subprocess.run([os.path.join(MESH_DIR, "mesh.sh"), "down", mid],
                            capture_output=True, text=True, timeout=120)
    self.assertEqual(down.returncode, 0, down.stderr)
    self.assertEqual(m.leftovers(), [])
    self.assertFalse([pid for pid in pids if meshlib.pid_alive(pid) and
                      any(b"outrigger" in a or b"mesh" in a or b"dnsmasq" in a or b"app.py" in a
                          for a in meshlib.pid_cmdline(pid))])
    self.assertFalse([ns for ns in meshlib.list_namespaces() if ns.startswith(m.prefix)])
    self.assertFalse(os.path.exists(m.run_dir))
    # Idempotent: a second down finds nothing and says so without failing.
    again = subprocess.run([os.path.join(MESH_DIR, "mesh.sh"), "down", mid],
                           capture_output=True, text=True, timeout=60)
    self.assertEqual(again.returncode, 0, again.stderr)

  def test_mesh_of_a_killed_owner_is_swept(self):
    code = ("import sys, time; sys.path.insert(0, %r); import mesh; "
            "m = mesh.Mesh(binary=%r, variant='plain').up(); print(m.id, flush=True); "
            "time.sleep(120)") % (MESH_DIR, binary())
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
      mid = owner.stdout.readline().strip()  # bounded: up() fails or finishes within ~60 s
      self.assertRegex(mid, r"^[0-9a-f]{5}$")
      m = meshlib.Mesh.attach(mid)
      self.assertTrue(m.procs and all(m.proc_alive(n) for n in m.procs), m.status())
    finally:
      owner.kill()  # SIGKILL: no teardown of its own
      owner.wait(10)
      owner.stdout.close()
    self.assertIn(mid, meshlib.sweep_orphans())
    self.assertEqual(m.leftovers(), [])
    self.assertNotIn(M.id, meshlib.sweep_orphans(), "a live owner's mesh must stay")
    self.assertIn(M.ns["consumer"], meshlib.list_namespaces())

  def test_demo_oneshot_runs_and_cleans_up(self):
    env = dict(os.environ, DEMO_ONESHOT="1")
    p = subprocess.run([os.path.join(MESH_DIR, "mesh.sh"), "demo", "--bin", binary()],
                       capture_output=True, text=True, timeout=180, env=env)
    self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
    out = p.stdout
    self.assertIn("HTTP 201", out)
    self.assertIn("x-forwarded-client-cert: By=spiffe://", out)
    self.assertIn("HTTP 403", out)
    self.assertIn("/metrics", out)
    self.assertIn("torn down: nothing left behind", out)
    mid = [l.split()[4] for l in out.splitlines() if l.startswith("== building the mesh")]
    self.assertTrue(mid, out[-2000:])
    self.assertEqual(meshlib.Mesh.attach(mid[0]).leftovers(), [])

  def test_interrupted_demo_cleans_up(self):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while the demo runs."""
    p = subprocess.Popen([os.path.join(MESH_DIR, "mesh.sh"), "demo", "--bin", binary()],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    lines = []
    try:
      deadline = time.monotonic() + 90
      for line in p.stdout:  # bounded by the deadline and by the demo's own end
        lines.append(line)
        if "Ctrl-C stops" in line or time.monotonic() > deadline:
          break
      self.assertTrue(any("Ctrl-C stops" in l for l in lines), "".join(lines[-40:]))
      os.killpg(p.pid, signal.SIGINT)
      rest, _ = p.communicate(timeout=60)
    finally:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
    out = "".join(lines) + rest
    self.assertIn("torn down: nothing left behind", out)
    mid = [l.split()[4] for l in lines if l.startswith("== building the mesh")]
    self.assertTrue(mid, out[-2000:])
    self.assertEqual(meshlib.Mesh.attach(mid[0]).leftovers(), [])


if __name__ == "__main__":
  unittest.main()
