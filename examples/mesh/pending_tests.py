#!/usr/bin/env python3
"""Mesh tests that wait on data-path behaviour not there yet. NOT run by ctest (the file name does
not match tests/integration/test_*.py); they move into tests/integration/test_mesh.py as each
dependency lands. Run them by hand, as root:

  OUTRIGGER_BIN=build/<dir>/proxy/outrigger python3 examples/mesh/pending_tests.py -v

| test | waits on |
| --- | --- |
| RestartUnderLoad.test_get_with_retries_fails_nothing | retries of upstream TLS handshake failures: while the provider sidecar restarts, the L4 hop accepts and then resets, and the consumer answers 503 "upstream tls: handshake failed" (and sometimes 502 "upstream connect error") with x-outrigger-attempts 1, although checkout's route has retry_on [connect-failure, reset, gateway-error], num_retries 3 (Envoy counts a failed TLS handshake as a connect failure) |

Moved into test_mesh.py as they passed: the AWS cluster kinds both ways with SigV4 verified at the
Lattice front (aws: 5836ff1), 503 for a dead provider app (health checks: 1c7c4e1), and POST
failures only 502/503 across a provider restart (the identity lost mid-handshake, fixed in 5836ff1).
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
  variant = "auto"

  def test_get_with_retries_fails_nothing(self):
    res = load_during_restart(self.m, "GET", "/health")
    self.assertGreater(res["statuses"].get("200", 0), 50, res)
    self.assertEqual(res["failures"], [], res["statuses"])


if __name__ == "__main__":
  unittest.main()
