"""`outrigger probe`: the container health-check command (exit 0 only on a 2xx answer)."""
import os
import socket
import subprocess
import unittest

from harness.proxy import Proxy  # noqa: F401  (import proves the harness is importable)

BIN = os.environ.get("OUTRIGGER_BIN", "outrigger")


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Probe(unittest.TestCase):
  def test_probe_ready_notfound_refused_and_bad_url(self):
    admin = free_port()
    p = subprocess.Popen([BIN, "reverse-proxy", "--listen", "127.0.0.1:0", "--to", "http://127.0.0.1:9",
                          "--admin", "127.0.0.1:%d" % admin, "--access-log", "off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    self.addCleanup(lambda: (p.kill(), p.wait()))
    for line in p.stderr:  # bounded by the process: it prints "ready" or exits
      if '"msg":"ready"' in line:
        break
    run = lambda *a: subprocess.run([BIN, "probe", *a], capture_output=True, text=True, timeout=10)
    self.assertEqual(run("http://127.0.0.1:%d/ready" % admin).returncode, 0)
    nf = run("http://127.0.0.1:%d/nope" % admin)
    self.assertEqual(nf.returncode, 1)
    self.assertIn("404", nf.stderr)
    refused = run("http://127.0.0.1:%d/ready" % free_port())
    self.assertEqual(refused.returncode, 1)
    self.assertIn("refused", refused.stderr.lower())
    self.assertEqual(run("ftp://x/").returncode, 2)
    self.assertEqual(run("--help").returncode, 0)


if __name__ == "__main__":
  unittest.main()
