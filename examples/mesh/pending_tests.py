#!/usr/bin/env python3
"""Mesh tests that wait on data-path features not wired yet. NOT run by ctest (the file name does
not match tests/integration/test_*.py); they move into tests/integration/test_mesh.py as each
dependency lands. Run them by hand, as root:

  OUTRIGGER_BIN=build/<dir>/proxy/outrigger python3 examples/mesh/pending_tests.py -v

| test | waits on |
| --- | --- |
| RestartUnderLoad.test_get_with_retries_fails_nothing | (1) retries of TLS handshake failures: a reset during the upstream TLS handshake (the L4 hop accepts, the restarting provider is not there) gives 503 "upstream tls: handshake failed" with attempts=1, and 502 "upstream connect error" likewise, though the route has retry_on [connect-failure, reset, gateway-error]; (2) the identity bug below |
| RestartUnderLoad.test_post_failures_are_only_5xx | resumed TLS sessions on a restarted provider sidecar sometimes lose the caller identity: a pooled connection then gets 403 "caller identity not allowed on this route" (authz_denied not_allowed) for every request; seen in 2 of 3 runs, e.g. 4 inbound handshakes, 3 resumed, 1004 403s |
| AwsKinds.test_calls_both_ways_with_aws_cluster_kinds | `type: privatelink` / `type: lattice` clusters in the data path (today: 503 "no upstream endpoint") |
| AwsKinds.test_lattice_front_requires_and_verifies_sidecar_sigv4 | SigV4 signing of `lattice.auth: iam` clusters (proxy/aws/sigv4.h wired into forward()) |
| AwsKinds.test_sigterm_provider_sidecar_with_retries_loses_nothing | the AWS kinds, and (1) above |
"""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mesh as meshlib  # noqa: E402

BIN = os.environ.get("OUTRIGGER_BIN") or meshlib.find_binary()
TOPO = meshlib.load_topology()
C, P = TOPO["accounts"]["consumer"], TOPO["accounts"]["provider"]
OUT = "http://127.0.0.1:%d" % TOPO["ports"]["outbound"]
APP = "http://127.0.0.1:%d" % TOPO["ports"]["app"]


def body(r):
  return json.loads(r["body"])


class MeshCase(unittest.TestCase):
  variant = None

  @classmethod
  def setUpClass(cls):
    if os.geteuid() != 0:
      raise unittest.SkipTest("needs root (ip netns)")
    cls.m = meshlib.Mesh(binary=BIN, variant=cls.variant).up()

  @classmethod
  def tearDownClass(cls):
    cls.m.down()
    assert cls.m.leftovers() == [], cls.m.leftovers()

  def wait_for(self, fn, timeout, msg):
    deadline = time.monotonic() + timeout
    while not fn():
      if time.monotonic() > deadline:
        self.fail("%s not met within %ss" % (msg, timeout))
      time.sleep(0.1)


def load_during_restart(m, method, path):
  """Load through the consumer sidecar while the provider sidecar drains on SIGTERM and a new
  one starts; returns load.py's summary."""
  load = subprocess.Popen(
      m.netns_exec("consumer", [m.python, os.path.join(HERE, "load.py"), "--to",
                                OUT[len("http://"):], "--host", P["service"], "--method", method,
                                "--path", path, "--clients", "4", "--duration", "6",
                                "--max-requests", "4000"]),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    time.sleep(1.5)
    assert m.stop_proc("provider-sidecar", signal.SIGTERM, timeout=15) == 0
    m.start_sidecar("provider")
    out, _ = load.communicate(timeout=40)
  finally:
    if load.poll() is None:
      load.kill()
      load.wait(10)
  return json.loads(out)


class RestartUnderLoad(MeshCase):
  variant = "mtls"

  def test_get_with_retries_fails_nothing(self):
    res = load_during_restart(self.m, "GET", "/health")
    self.assertGreater(res["statuses"].get("200", 0), 50, res)
    self.assertEqual(res["failures"], [], res["statuses"])

  def test_post_failures_are_only_5xx(self):
    res = load_during_restart(self.m, "POST", "/orders")
    self.assertGreater(res["statuses"].get("201", 0), 50, res)
    for f in res["failures"]:
      self.assertIn(f.get("status"), (502, 503), f)


class AwsKinds(MeshCase):
  variant = "aws"

  def test_calls_both_ways_with_aws_cluster_kinds(self):
    m = self.m
    r = m.http("consumer", APP + "/call?url=http://%s/whoami" % P["service"])
    self.assertEqual(r["status"], 200, r)
    self.assertIn("Account=%s" % C["account_id"],
                  body(r)["answer"]["seen"]["x-forwarded-client-cert"])
    r = m.http("provider", APP + "/call?url=http://%s/whoami" % C["service"])
    self.assertEqual(r["status"], 200, r)

  def test_lattice_front_requires_and_verifies_sidecar_sigv4(self):
    m = self.m
    self.assertEqual(m.lattice_auth, "iam")
    r = m.http("provider", APP + "/call?url=http://%s/whoami" % C["service"])
    self.assertEqual(r["status"], 200, r)
    ident = body(r)["answer"]["seen"]["x-amzn-lattice-identity"]
    self.assertIn("arn:aws:sts::%s:" % P["account_id"], ident)

  def test_sigterm_provider_sidecar_with_retries_loses_nothing(self):
    res = load_during_restart(self.m, "GET", "/orders")
    self.assertGreater(res["statuses"].get("200", 0), 50, res)
    self.assertEqual(res["failures"], [], res["statuses"])


if __name__ == "__main__":
  unittest.main()
