"""AWS-native upstreams against local stand-ins that speak the real formats: a Lattice-like and
an API-Gateway-like TLS front that check SigV4 with botocore, the ECS container credentials
endpoint (keys rotated mid-load), the ECS task metadata endpoint v4 (the task's zone), and
dnsmasq answering PrivateLink (regional and zonal) and Lattice names."""
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import yaml_out
from harness.aws_standins import CredentialsEndpoint, SigV4Front, TaskMetadataEndpoint
from harness.client import curl, read_to_close
from harness.proxy import Proxy, binary
from harness.testcase import ProxyTestCase
from harness.upstream import Upstream

REGION = "us-east-1"
LATTICE = "orders-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws"
VPCE = "vpce-0123456789abcdef0-abcdefgh.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com"
VPCE_1A = "vpce-0123456789abcdef0-abcdefgh-us-east-1a.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com"
API = "abcde12345-vpce-0123456789abcdef0.execute-api.us-east-1.amazonaws.com"


def call(addr, method="GET", path="/x", body=None, headers=None, host="orders"):
  c = http.client.HTTPConnection(addr[0], addr[1], timeout=10)
  try:
    h = {"Host": host}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
  finally:
    c.close()


class AwsCase(ProxyTestCase):
  @classmethod
  def setUpClass(cls):
    cls.root = tempfile.mkdtemp(prefix="outrigger-aws-")
    pki = os.path.join(cls.root, "pki")
    subprocess.run([binary(), "pki", "init", pki], check=True, capture_output=True)
    subprocess.run([binary(), "pki", "issue", pki, "--name", "orders", "--account",
                    "222222222222", "--dns", LATTICE, "--dns", API, "--server"],
                   check=True, capture_output=True)
    cls.bundle = os.path.join(pki, "bundle.pem")
    cls.cert = (os.path.join(pki, "orders.pem"), os.path.join(pki, "orders.key"))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, True)

  def proxy(self, cfg, env=None):
    p = Proxy(config=cfg, env=env or {})
    self.addCleanup(self._stop_proxy, p)
    return p.start(ready_timeout=30)  # readiness waits for DNS, credentials and task metadata

  def standin(self, obj):
    self.addCleanup(obj.close)
    return obj

  def config(self, clusters, route_clusters, dns, **top):
    route = {"name": "r1", "match": {"hosts": ["*"], "path_prefix": "/"}}
    if len(route_clusters) == 1:
      route["cluster"] = route_clusters[0]
    else:
      route["clusters"] = route_clusters
    cfg = yaml_out.config([route], clusters, **top)
    cfg["dns"] = {"resolvers": [dns.address]}
    return cfg


class Lattice(AwsCase):
  def lattice_cluster(self, port, **extra):
    c = {"name": "orders", "type": "lattice",
         "lattice": {"service": LATTICE, "port": port, "auth": "iam"},
         "tls": {"ca": self.bundle}}
    c["lattice"].update(extra)
    return c

  def test_signed_requests_verify_with_botocore_and_survive_key_rotation(self):
    creds = self.standin(CredentialsEndpoint(expires_in=300 + 2))  # refresh due in ~2 s
    front = self.standin(SigV4Front(*self.cert, secrets={
        "AKIDSTANDIN00000001": "secret-one/abc+def", "AKIDSTANDIN00000002": "secret-two"}))
    dns = self.start_dnsmasq({LATTICE: ["127.0.0.1"]})
    p = self.proxy(self.config([self.lattice_cluster(front.port)], ["orders"], dns),
                   env=creds.env())
    st, h, body = call(p.addr(), "GET", "/orders/7?b=2&a=1&a=0",
                       headers={"authorization": "Bearer app-token", "x-amz-date": "19990101T000000Z"})
    self.assertEqual(st, 200, body)
    seen = front.seen[-1]
    self.assertTrue(seen["ok"], seen)
    self.assertEqual(seen["headers"]["host"], LATTICE)
    self.assertEqual(seen["headers"]["x-amz-content-sha256"], "UNSIGNED-PAYLOAD")
    self.assertEqual(seen["headers"]["x-amz-security-token"], "session-token-one")
    self.assertNotIn("Bearer", seen["headers"]["authorization"])
    st, _, body = call(p.addr(), "POST", "/orders", body=b'{"item": 1}',
                       headers={"content-type": "application/json"})
    self.assertEqual(st, 200, body)
    # Keys rotate while requests flow: every request verifies, with the old keys then the new.
    creds.rotate("AKIDSTANDIN00000002", "secret-two", "session-token-two")
    failures, oks = [], 0
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and oks < 5000:
      st, _, body = call(p.addr(), "GET", "/orders/%d" % oks)
      if st == 200:
        oks += 1
      else:
        failures.append((st, body))
      if front.seen[-1]["akid"] == "AKIDSTANDIN00000002" and oks > 20:
        break
      time.sleep(0.01)
    self.assertEqual(failures, [])
    self.assertEqual(front.seen[-1]["akid"], "AKIDSTANDIN00000002")
    self.assertGreaterEqual(creds.fetches, 2)
    self.assertTrue(all(s["ok"] for s in front.seen))
    # Never logged: no secret in anything the proxy wrote.
    text = p.stderr_text() + json.dumps(p.access_log)
    for secret in ("secret-one", "secret-two", "session-token-one", "session-token-two"):
      self.assertNotIn(secret, text)

  def test_retries_are_signed_afresh(self):
    creds = self.standin(CredentialsEndpoint())
    front = self.standin(SigV4Front(*self.cert, secrets={"AKIDSTANDIN00000001": "wrong"},
                                    retry_after=1))
    dns = self.start_dnsmasq({LATTICE: ["127.0.0.1"]})
    cfg = self.config([self.lattice_cluster(front.port)], ["orders"], dns)
    cfg["listeners"][0]["routes"][0]["retry"] = {
        "retry_on": ["retriable-status-codes"], "retriable_status_codes": [403],
        "num_retries": 1}  # Retry-After: 1 paces the retry into the next second
    p = self.proxy(cfg, env=creds.env())
    st, h, _ = call(p.addr())
    self.assertEqual(st, 403)  # the front's secret is wrong: both attempts are refused
    self.assertEqual(h["x-outrigger-attempts"], "2")
    self.assertEqual(len(front.seen), 2)
    d1, d2 = (s["headers"]["x-amz-date"] for s in front.seen)
    self.assertNotEqual(d1, d2)  # each attempt carries its own signature time

  def test_no_credentials_is_503_with_reason(self):
    front = self.standin(SigV4Front(*self.cert, secrets={}))
    dns = self.start_dnsmasq({LATTICE: ["127.0.0.1"]})
    env = {k: "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                           "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")}
    p = self.proxy(self.config([self.lattice_cluster(front.port)], ["orders"], dns), env=env)
    st, h, body = call(p.addr())
    self.assertEqual(st, 503)
    self.assertEqual(h["x-outrigger-reason"], "no AWS credentials to sign the request")
    self.assertEqual(front.seen, [])
    self.assertEqual(p.metrics().get("outrigger_upstream_errors_total", cluster="orders",
                                     reason="signing"), 1)

  def test_environment_credentials_and_sigv4a_shape(self):
    front = self.standin(SigV4Front(*self.cert, secrets={"AKIDENV0000000000001": "envsecret"}))
    dns = self.start_dnsmasq({LATTICE: ["127.0.0.1"]})
    env = {"AWS_ACCESS_KEY_ID": "AKIDENV0000000000001", "AWS_SECRET_ACCESS_KEY": "envsecret",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ""}
    p = self.proxy(self.config([self.lattice_cluster(front.port)], ["orders"], dns), env=env)
    self.assertEqual(call(p.addr())[0], 200)
    self.assertTrue(front.seen[-1]["ok"])
    self.assertNotIn("x-amz-security-token", front.seen[-1]["headers"])
    p.stop()
    q = self.proxy(self.config([self.lattice_cluster(front.port, sigv4a=True)], ["orders"], dns),
                   env=env)
    call(q.addr())
    h = front.seen[-1]["headers"]
    self.assertTrue(h["authorization"].startswith("AWS4-ECDSA-P256-SHA256 Credential=AKIDENV"), h)
    self.assertEqual(h["x-amz-region-set"], "*")


class ApiGateway(AwsCase):
  def test_execute_api_signed_with_body_hash_and_stage(self):
    front = self.standin(SigV4Front(*self.cert, secrets={"AKIDENV0000000000001": "envsecret"},
                                    service="execute-api"))
    dns = self.start_dnsmasq({API: ["127.0.0.1"]})
    cluster = {"name": "api", "type": "apigateway",
               "apigateway": {"endpoint": API, "port": front.port, "stage": "prod", "auth": "iam"},
               "tls": {"ca": self.bundle}}
    env = {"AWS_ACCESS_KEY_ID": "AKIDENV0000000000001", "AWS_SECRET_ACCESS_KEY": "envsecret",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ""}
    p = self.proxy(self.config([cluster], ["api"], dns), env=env)
    st, _, body = call(p.addr(), "POST", "/orders?x=1", body=b'{"n": 42}',
                       headers={"content-type": "application/json"})
    self.assertEqual(st, 200, body)
    seen = front.seen[-1]
    self.assertTrue(seen["ok"], seen)
    self.assertEqual(seen["target"], "/prod/orders?x=1")
    self.assertEqual(seen["headers"]["host"], API)
    self.assertNotIn("x-amz-content-sha256", seen["headers"])  # the hash is in the signature
    # A body sent after its head (a separate write, later) is waited for, then hashed.
    import socket as _socket
    body = b'{"n": 43}'
    with _socket.create_connection(p.addr(), timeout=10) as c:
      c.sendall(b"POST /orders HTTP/1.1\r\nHost: orders\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
      time.sleep(0.3)
      c.sendall(body)
      data = read_to_close(c)
    self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
    self.assertTrue(front.seen[-1]["ok"], front.seen[-1])
    self.assertEqual(front.seen[-1]["body_len"], len(body))


class PrivateLink(AwsCase):
  def two_upstreams(self):
    regional = Upstream("regional", "127.0.0.1")
    self.addCleanup(regional.close)
    zonal = Upstream("zonal", "127.0.0.2", regional.port)
    self.addCleanup(zonal.close)
    return regional, zonal

  def endpoints(self, p):
    c = json.loads(p.admin_get("/clusters").body)["clusters"][0]
    return [e["address"] for e in c["endpoints"]]

  def cluster(self, port):
    return {"name": "inventory", "type": "privatelink",
            "privatelink": {"endpoint": VPCE, "port": port, "service_name": "inventory.internal"}}

  def test_zonal_name_preferred_in_the_local_zone(self):
    regional, zonal = self.two_upstreams()
    dns = self.start_dnsmasq({VPCE: ["127.0.0.1"], VPCE_1A: ["127.0.0.2"]})
    p = self.proxy(self.config([self.cluster(regional.port)], ["inventory"], dns,
                               aws={"zone": "us-east-1a"}))
    self.wait_until(lambda: self.endpoints(p) == ["127.0.0.2:%d" % regional.port], 5,
                    msg="the zonal name's address in use")
    for _ in range(4):
      st, _, body = call(p.addr())
      self.assertEqual(st, 200, body)
      self.assertEqual(json.loads(body)["upstream"], "zonal")
    self.assertEqual(zonal.requests[-1].header("host"), "inventory.internal")

  def test_zone_from_ecs_task_metadata_and_regional_fallback(self):
    regional, zonal = self.two_upstreams()
    md = self.standin(TaskMetadataEndpoint(zone="us-east-1a"))
    dns = self.start_dnsmasq({VPCE: ["127.0.0.1"], VPCE_1A: ["127.0.0.2"]})
    p = self.proxy(self.config([self.cluster(regional.port)], ["inventory"], dns),
                   env={"ECS_CONTAINER_METADATA_URI_V4": md.uri})
    self.wait_until(lambda: self.endpoints(p) == ["127.0.0.2:%d" % regional.port], 5,
                    msg="the zonal name's address in use")
    self.assertEqual(json.loads(call(p.addr())[2])["upstream"], "zonal")
    self.assertTrue(any(isinstance(l, dict) and l.get("msg") == "ecs task metadata" and
                        l.get("availability_zone") == "us-east-1a" for l in p.logs))
    self.assertEqual(p.metrics().get("outrigger_task_info", availability_zone="us-east-1a",
                                     region="us-east-1"), 1)
    # A zone whose name does not resolve: the regional name serves.
    md2 = self.standin(TaskMetadataEndpoint(zone="us-east-1b"))
    q = self.proxy(self.config([self.cluster(regional.port)], ["inventory"], dns),
                   env={"ECS_CONTAINER_METADATA_URI_V4": md2.uri})
    self.assertEqual(json.loads(call(q.addr())[2])["upstream"], "regional")

  def test_lattice_fails_over_to_privatelink(self):
    regional, _ = self.two_upstreams()
    dns = self.start_dnsmasq({VPCE: ["127.0.0.1"], LATTICE: ["127.0.0.1"]})
    from harness.upstream import closed_port
    lattice = {"name": "orders-lattice", "type": "lattice",
               "lattice": {"service": LATTICE, "port": closed_port()}, "tls": {"ca": self.bundle},
               "outlier_detection": {"consecutive_local_origin_failure": 1,
                                     "max_ejection_percent": 100}}
    p = self.proxy(self.config([lattice, self.cluster(regional.port)],
                               ["orders-lattice", "inventory"], dns))
    statuses = [call(p.addr())[0] for _ in range(4)]
    self.assertEqual(statuses[1:], [200, 200, 200])
    self.assertEqual(len(regional.requests), 3)


class ServiceNames(ProxyTestCase):
  def test_http_proxy_absolute_form_routes_by_service_name(self):
    users = self.start_upstream("users")
    route = yaml_out.route("users", "users", hosts=("user-service",))
    cfg = yaml_out.config([route], [yaml_out.cluster("users", [users.address])])
    p = self.start_proxy(cfg)
    proxy_url = "http://%s:%d" % p.addr()
    r = curl("http://user-service/orders?id=3", "-x", proxy_url)
    self.assertEqual(r.status, 200, r.stderr)
    req = users.requests[-1]
    self.assertEqual(req.target, "/orders?id=3")  # origin-form upstream
    self.assertEqual(req.header("host"), "user-service")
    r = curl("http://other-service/", "-x", proxy_url)
    self.assertEqual(r.status, 404)

  def test_validate_checks_aws_names(self):
    d = self.make_tmpdir()
    path = os.path.join(d, "bad.yaml")
    with open(path, "w") as f:
      f.write("listeners:\n  - name: out\n    address: 127.0.0.1:0\n    routes:\n"
              "      - name: r\n        cluster: pl\nclusters:\n  - name: pl\n"
              "    type: privatelink\n    privatelink:\n"
              "      endpoint: vpce-0123456789abcdef0-abcdefgh.vpce-svc-0123456789abcdef0.mars-west-9.vpce.amazonaws.com\n")
    r = subprocess.run([binary(), "validate", "--config", path], capture_output=True, text=True,
                       timeout=10)
    self.assertEqual(r.returncode, 1)
    self.assertRegex(r.stderr, r"bad\.yaml:\d+:\d+: .*region")


if __name__ == "__main__":
  unittest.main()
