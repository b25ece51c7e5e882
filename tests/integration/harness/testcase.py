"""unittest base class: starts what a test needs and always cleans it up (addCleanup)."""
import shutil
import signal
import tempfile
import time
import unittest

from .proxy import Proxy
from .services import Dnsmasq, Nginx
from .upstream import Blackhole, Upstream


class ProxyTestCase(unittest.TestCase):
  maxDiff = 4000

  def make_tmpdir(self):
    d = tempfile.mkdtemp(prefix="outrigger-it-")
    self.addCleanup(shutil.rmtree, d, True)
    return d

  def start_upstream(self, name="up", host="127.0.0.1", port=0):
    u = Upstream(name, host, port)
    self.addCleanup(u.close)
    return u

  def start_proxy(self, config=None, argv=None, ready_timeout=10.0):
    p = Proxy(config=config, argv=argv)
    self.addCleanup(self._stop_proxy, p)
    p.start(ready_timeout=ready_timeout)
    return p

  def _stop_proxy(self, p):
    rc = p.stop()
    # A crash is a bug whatever the test was about; SIGKILL after a stuck drain is reported too.
    if rc is not None and rc < 0 and not p.killed and rc != -signal.SIGTERM:
      self.fail("outrigger died with signal %d\n%s" % (-rc, p.stderr_text()))
    if p.killed:
      self.fail("outrigger did not exit within 10s of SIGTERM (killed)\n%s" % p.stderr_text())

  def start_nginx(self, names):
    n = Nginx(names)
    self.addCleanup(n.stop)
    return n.start()

  def start_dnsmasq(self, records, authoritative=True):
    d = Dnsmasq(records, authoritative)
    self.addCleanup(d.stop)
    return d.start()

  def blackhole(self):
    b = Blackhole()
    self.addCleanup(b.close)
    return b

  def assertLocalError(self, resp, status, reason_contains=None):
    """A locally generated error: status, x-outrigger-reason, body "outrigger: <reason>\\n"."""
    self.assertEqual(resp.status, status, resp)
    reason = resp.header("x-outrigger-reason")
    self.assertTrue(reason, "no x-outrigger-reason header: %r" % resp)
    self.assertEqual(resp.body, ("outrigger: %s\n" % reason).encode(), resp)
    if reason_contains:
      self.assertIn(reason_contains, reason)
    return reason

  def wait_until(self, fn, timeout, interval=0.05, msg="condition"):
    """Polls fn() (a readiness check) until truthy, at most timeout seconds; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
      v = fn()
      if v:
        return v
      if time.monotonic() >= deadline:
        self.fail("%s not met within %.1fs" % (msg, timeout))
      time.sleep(interval)
