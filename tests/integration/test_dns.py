"""DNS clusters resolved by a real dnsmasq: the proxy follows record changes within the TTL bound
and spreads traffic over every A record. Upstream A listens on 127.0.0.1:P and B on
127.0.0.2:P (the same port: DNS only gives the address)."""
import time
import unittest

from harness import ProxyTestCase, Upstream, get, yaml_out

NAME = "svc.test"


class DnsCluster(ProxyTestCase):
  def setUp(self):
    for _ in range(5):  # bounded: retry when B's port happens to be taken on 127.0.0.2
      a = Upstream("A", "127.0.0.1", 0)
      try:
        b = Upstream("B", "127.0.0.2", a.port)
      except OSError:
        a.close()
        continue
      break
    else:
      self.fail("could not bind the same port on 127.0.0.1 and 127.0.0.2")
    self.addCleanup(a.close)
    self.addCleanup(b.close)
    self.a, self.b = a, b

  def start(self, ips, authoritative=True):
    self.dns = self.start_dnsmasq({NAME: ips}, authoritative)
    cfg = yaml_out.config(
        [yaml_out.route("r1", "svc")],
        [yaml_out.cluster("svc", ["%s:%d" % (NAME, self.a.port)], type_="dns")],
        dns={"resolvers": [self.dns.address], "timeout": "1s", "min_ttl": "1s", "max_ttl": "2s"})
    self.proxy = self.start_proxy(cfg)
    self.addr = self.proxy.addr("main")
    # The first resolution may finish after "ready": wait (bounded) for the first answer.
    self.wait_until(lambda: self.upstream_of() is not None, 5, 0.05, "first resolved request")

  def upstream_of(self):
    r = get(self.addr, "/echo")
    return r.header("x-upstream") if r.status == 200 else None

  def test_follows_a_record_change(self):
    self.start(["127.0.0.1"])
    self.assertEqual([self.upstream_of() for _ in range(5)], ["A"] * 5)
    self.assertEqual(self.b.requests, [])

    self.dns.set_records({NAME: ["127.0.0.2"]})
    t0 = time.monotonic()
    self.wait_until(lambda: self.upstream_of() == "B", 10, 0.1, "requests reaching B")
    self.assertLess(time.monotonic() - t0, 8, "min_ttl 1s / max_ttl 2s not honoured")
    self.assertEqual([self.upstream_of() for _ in range(5)], ["B"] * 5,
                     "traffic still goes to the endpoint DNS no longer returns")
    m = self.proxy.metrics()
    self.assertGreaterEqual(m.get("outrigger_dns_resolutions_total", result="ok"), 2)

  def test_a_records_used_when_aaaa_is_refused(self):
    # dnsmasq with no upstream servers answers AAAA with REFUSED; the A answer still counts.
    self.start(["127.0.0.1"], authoritative=False)
    self.assertEqual(self.upstream_of(), "A")

  def test_two_a_records_share_traffic(self):
    self.start(["127.0.0.1", "127.0.0.2"])
    seen = [self.upstream_of() for _ in range(20)]
    self.assertIn("A", seen)
    self.assertIn("B", seen)
    self.assertEqual(set(seen), {"A", "B"})


if __name__ == "__main__":
  unittest.main()
