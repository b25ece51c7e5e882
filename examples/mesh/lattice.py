#!/usr/bin/env python3
"""The Lattice-like hop of the local mesh: a service network data plane in miniature.

  lattice.py --topology topology.json --listen 169.254.171.10:443 --to 10.1.0.10:15000 \
      [--cert lattice.pem --key lattice.key]          # terminate TLS (else plaintext)
      [--to-ca bundle.pem --to-sni checkout]           # re-encrypt to the target (else plaintext)
      [--auth iam|optional|none]

For every request, as VPC Lattice with an IAM auth policy does:
  * terminates TLS with the service's certificate (custom domain and generated name);
  * checks the SigV4 signature (AWS4-HMAC-SHA256, service vpc-lattice-svcs, the mesh region)
    with botocore's own signer against the credentials of topology.json, the request time within
    5 minutes, then the auth policy: the caller's account must be in hops.lattice.allow_accounts.
    Anything else is 403 AccessDeniedException. `--auth optional` checks a signature when one is
    present and lets unsigned requests through (the plaintext stepping stone, while sidecars do
    not sign yet); `--auth none` checks nothing;
  * removes caller-supplied identity headers and adds x-amzn-lattice-identity (Principal,
    PrincipalOrgID, SessionName), x-amzn-lattice-network, x-amzn-lattice-target and the
    x-forwarded-for/-port/-proto headers, then forwards to the target (the consumer sidecar's
    inbound listener), re-encrypting with TLS when --to-ca is given (no client certificate,
    as Lattice does). A target that cannot be reached gives 503.

One JSON line per request on stdout (caller account, principal, decision, status, latency).
Needs botocore (Debian's python3-botocore); everything else is the standard library.
"""
import argparse
import datetime
import hmac
import http.client
import json
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.auth
import botocore.awsrequest
import botocore.credentials

SERVICE = "vpc-lattice-svcs"
MAX_BODY = 16 << 20
MAX_SKEW = datetime.timedelta(minutes=5)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate"}
SPOOFABLE = {"x-amzn-lattice-identity", "x-amzn-lattice-network", "x-amzn-lattice-target",
             "x-forwarded-for-port", "x-forwarded-for-proto", "x-forwarded-client-cert"}
LOG_LOCK = threading.Lock()


def log(**fields):
  fields.setdefault("ts", round(time.time(), 3))
  with LOG_LOCK:
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


class Denied(Exception):
  pass


def parse_authorization(value):
  """'AWS4-HMAC-SHA256 Credential=A/D/R/S/aws4_request, SignedHeaders=a;b, Signature=hex'."""
  algo, _, rest = value.strip().partition(" ")
  if algo != "AWS4-HMAC-SHA256":
    raise Denied("unsupported signature algorithm %r" % algo[:40])
  parts = {}
  for piece in rest.split(","):
    k, eq, v = piece.strip().partition("=")
    if not eq:
      raise Denied("malformed Authorization header")
    parts[k] = v
  try:
    akid, date, region, service, term = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    signature = parts["Signature"]
  except (KeyError, ValueError):
    raise Denied("malformed Authorization header") from None
  if term != "aws4_request":
    raise Denied("malformed credential scope")
  return akid, date, region, service, signed, signature


def verify_sigv4(method, target, headers, body, identities, region, now=None):
  """Returns the caller's identity (a dict from topology.json) or raises Denied.

  headers: list of (name, value) as received. target: the request target (path and query).
  """
  now = now or datetime.datetime.now(datetime.timezone.utc)
  values = {}
  for k, v in headers:
    values.setdefault(k.lower(), []).append(v.strip())
  auth = values.get("authorization")
  if not auth:
    raise Denied("the request is not signed (IAM auth policy)")
  akid, date, scope_region, service, signed, signature = parse_authorization(auth[0])
  if scope_region != region or service != SERVICE:
    raise Denied("credential scope %s/%s is not %s/%s" % (scope_region, service, region, SERVICE))
  who = identities.get(akid)
  if who is None:
    raise Denied("unknown access key")
  amz_date = (values.get("x-amz-date") or [""])[0]
  try:
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
  except ValueError:
    raise Denied("missing or malformed x-amz-date") from None
  if abs(now - when) > MAX_SKEW or date != amz_date[:8]:
    raise Denied("signature expired or not yet valid (x-amz-date %s)" % amz_date)
  if "host" not in signed:
    raise Denied("host is not signed")
  missing = [h for h in signed if h not in values]
  if missing:
    raise Denied("signed header %s is absent" % missing[0])
  host = values["host"][0]
  request = botocore.awsrequest.AWSRequest(
      method=method, url="https://%s%s" % (host, target),
      headers={h: ",".join(values[h]) for h in signed}, data=body)
  request.context["timestamp"] = amz_date
  creds = botocore.credentials.Credentials(akid, who["credentials"]["secret_access_key"])
  signer = botocore.auth.SigV4Auth(creds, SERVICE, region)
  canonical = signer.canonical_request(request)
  if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(signed):
    raise Denied("signed headers do not match what was signed")
  expected = signer.signature(signer.string_to_sign(request, canonical), request)
  if not hmac.compare_digest(expected, signature):
    raise Denied("signature does not match")
  return who


class TargetConnection(http.client.HTTPConnection):
  """HTTP/1.1 to the target, over TLS (server verified, SNI) when a context is given."""

  def __init__(self, host, port, ctx, sni, timeout):
    super().__init__(host, port, timeout=timeout)
    self._ctx = ctx
    self._sni = sni

  def connect(self):
    super().connect()
    if self._ctx is not None:
      self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._sni)


class Handler(BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"
  server_version = "lattice-mesh/1"
  disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall

  def setup(self):
    self.request.settimeout(30)
    if isinstance(self.request, ssl.SSLSocket):
      self.request.do_handshake()
    super().setup()

  def log_message(self, fmt, *args):
    pass

  def _body(self):
    if self.headers.get("transfer-encoding", "").lower() == "chunked":
      out = bytearray()
      for _ in range(100000):
        size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
        if size == 0:
          while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass
          return bytes(out)
        out += self.rfile.read(size)
        self.rfile.readline(1024)
        if len(out) > MAX_BODY:
          raise ValueError("body too large")
      raise ValueError("too many chunks")
    n = int(self.headers.get("content-length") or 0)
    if n > MAX_BODY:
      raise ValueError("body too large")
    return self.rfile.read(n) if n else b""

  def _answer(self, status, body, headers=()):
    self.send_response(status)
    for k, v in headers:
      self.send_header(k, v)
    self.send_header("content-length", str(len(body)))
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _handle(self):
    srv = self.server
    start = time.monotonic()
    try:
      body = self._body()
    except ValueError as e:
      self.close_connection = True
      return self._answer(400, (str(e) + "\n").encode())
    headers = list(self.headers.items())
    entry = {"msg": "request", "hop": "lattice", "method": self.command, "path": self.path,
             "client": self.client_address[0]}
    who = None
    signed = any(k.lower() == "authorization" for k, _ in headers)
    if srv.auth == "iam" or (srv.auth == "optional" and signed):
      try:
        who = verify_sigv4(self.command, self.path, headers, body, srv.identities, srv.region)
        if who["account_id"] not in srv.allow_accounts:
          raise Denied("account %s is not allowed by the auth policy" % who["account_id"])
      except Denied as e:
        entry.update(decision="deny", reason=str(e), status=403,
                     caller_account=(who or {}).get("account_id"))
        log(**entry)
        msg = {"Message": "AccessDeniedException: %s (vpc-lattice-svcs:Invoke on %s)" % (
            e, srv.service_arn)}
        return self._answer(403, (json.dumps(msg) + "\n").encode(),
                            [("content-type", "application/json"),
                             ("x-amzn-errortype", "AccessDeniedException")])
    out = [(k, v) for k, v in headers
           if k.lower() not in HOP_BY_HOP and k.lower() not in SPOOFABLE
           and k.lower() != "content-length"]
    xff = [v for k, v in headers if k.lower() == "x-forwarded-for"]
    out = [(k, v) for k, v in out if k.lower() != "x-forwarded-for"]
    out.append(("x-forwarded-for", ", ".join(xff + [self.client_address[0]])))
    out.append(("x-forwarded-for-port", str(srv.server_address[1])))
    out.append(("x-forwarded-for-proto", "https" if srv.tls else "http"))
    if who is not None:
      principal = "arn:aws:sts::%s:assumed-role/%s-task/%s" % (
          who["account_id"], who["service"], who["service"])
      out.append(("x-amzn-lattice-identity", "Principal=%s;PrincipalOrgID=%s;SessionName=%s" % (
          principal, srv.org_id, who["service"])))
      entry.update(caller_account=who["account_id"], principal=principal)
    out.append(("x-amzn-lattice-network", "SourceVpcArn=arn:aws:ec2:%s:%s:vpc/vpc-mesh%s" % (
        srv.region, srv.source_account, srv.source_account[-4:])))
    out.append(("x-amzn-lattice-target", "ServiceArn=%s;ServiceNetworkArn=%s;TargetGroupArn=%s" % (
        srv.service_arn, srv.network_arn, srv.target_group_arn)))
    out.append(("content-length", str(len(body))))
    try:
      conn = TargetConnection(srv.target[0], srv.target[1], srv.target_ctx, srv.target_sni, 10)
      try:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in out:
          conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        rbody = resp.read(MAX_BODY + 1)
        rheaders = [(k, v) for k, v in resp.getheaders()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
        status = resp.status
      finally:
        conn.close()
    except (OSError, http.client.HTTPException) as e:
      entry.update(decision="allow" if who else "pass", status=503, error=str(e))
      log(**entry)
      return self._answer(503, b"lattice: target unavailable\n",
                          [("x-amzn-errortype", "ServiceUnavailableException")])
    entry.update(decision="allow" if who else "pass", status=status,
                 ms=round((time.monotonic() - start) * 1000, 1))
    log(**entry)
    self._answer(status, rbody, rheaders)

  do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class Front(ThreadingHTTPServer):
  daemon_threads = True
  allow_reuse_address = True
  request_queue_size = 256

  def __init__(self, address, tls_ctx):
    self.tls = tls_ctx
    super().__init__(address, Handler)

  def get_request(self):
    sock, addr = self.socket.accept()
    if self.tls is not None:
      sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    return sock, addr

  def handle_error(self, request, client_address):
    e = sys.exc_info()[1]
    log(msg="connection error", hop="lattice", client=client_address[0],
        error="%s: %s" % (type(e).__name__, e))


def parse_addr(text):
  host, _, port = text.rpartition(":")
  return host.strip("[]"), int(port)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--topology", required=True)
  ap.add_argument("--listen", required=True)
  ap.add_argument("--to", required=True)
  ap.add_argument("--cert")
  ap.add_argument("--key")
  ap.add_argument("--to-ca")
  ap.add_argument("--to-sni")
  ap.add_argument("--auth", choices=["iam", "optional", "none"], default="iam")
  a = ap.parse_args()
  with open(a.topology) as f:
    topo = json.load(f)
  hop = topo["hops"]["lattice"]
  callers = list(topo["accounts"].values()) + [topo["outsider"]]
  tls_ctx = None
  if a.cert:
    tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    tls_ctx.load_cert_chain(a.cert, a.key)
    tls_ctx.set_alpn_protocols(["http/1.1"])
  srv = Front(parse_addr(a.listen), tls_ctx)
  srv.auth = a.auth
  srv.region = topo["region"]
  srv.identities = {c["credentials"]["access_key_id"]: c for c in callers}
  srv.allow_accounts = set(hop["allow_accounts"])
  srv.target = parse_addr(a.to)
  srv.target_ctx = None
  if a.to_ca:
    srv.target_ctx = ssl.create_default_context(cafile=a.to_ca)
    srv.target_ctx.set_alpn_protocols(["http/1.1"])
  srv.target_sni = a.to_sni or srv.target[0]
  net = hop["network_account_id"]
  dest = topo["accounts"][hop["to"]]
  srv.source_account = topo["accounts"][hop["from"]]["account_id"]
  srv.org_id = "o-mesh0000000"
  srv.service_arn = "arn:aws:vpc-lattice:%s:%s:service/svc-0123456789abcdef0" % (
      srv.region, dest["account_id"])
  srv.network_arn = "arn:aws:vpc-lattice:%s:%s:servicenetwork/sn-0123456789abcdef0" % (
      srv.region, net)
  srv.target_group_arn = "arn:aws:vpc-lattice:%s:%s:targetgroup/tg-0123456789abcdef0" % (
      srv.region, dest["account_id"])

  def stop(*_):
    threading.Thread(target=srv.shutdown, daemon=True).start()

  signal.signal(signal.SIGTERM, stop)
  signal.signal(signal.SIGINT, stop)
  log(msg="listening", hop="lattice", address=a.listen, target=a.to, auth=a.auth,
      tls=bool(tls_ctx), reencrypt=bool(srv.target_ctx))
  srv.serve_forever(poll_interval=0.2)
  srv.server_close()
  log(msg="stopped", hop="lattice")


if __name__ == "__main__":
  main()
