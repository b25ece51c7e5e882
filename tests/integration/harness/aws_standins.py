"""Local stand-ins that speak AWS's real formats, for the AWS-upstream tests:

  CredentialsEndpoint  the ECS container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI
                       with AWS_CONTAINER_AUTHORIZATION_TOKEN): AWS's documented JSON, keys that
                       can be rotated while a load runs
  TaskMetadataEndpoint the ECS task metadata endpoint v4 (${ECS_CONTAINER_METADATA_URI_V4}/task)
  SigV4Front           a Lattice- or API-Gateway-like TLS front: checks every request's SigV4
                       signature with botocore's own signer, answers 403 AccessDeniedException on a
                       bad one, else 200 with JSON of what it saw
"""
import datetime
import hmac
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.auth
import botocore.awsrequest
import botocore.credentials


class _Server(ThreadingHTTPServer):
  daemon_threads = True
  allow_reuse_address = True

  def handle_error(self, request, client_address):
    pass


def _start(handler, owner, host="127.0.0.1", ctx=None):
  srv = _Server((host, 0), handler)
  srv.owner = owner
  if ctx is not None:
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
  t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
  t.start()
  return srv


class _Json(BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"

  def log_message(self, *args):
    pass

  def send_json(self, status, obj, extra=()):
    body = json.dumps(obj).encode()
    self.send_response(status)
    self.send_header("content-type", "application/json")
    self.send_header("content-length", str(len(body)))
    for k, v in extra:
      self.send_header(k, v)
    self.end_headers()
    self.wfile.write(body)


class CredentialsEndpoint:
  """GET /creds with Authorization: <token> -> the current keys (AWS's container credentials
  JSON). expires_in: seconds until the advertised Expiration."""

  def __init__(self, token="tok-123", expires_in=3600):
    self.token = token
    self.expires_in = expires_in
    self.lock = threading.Lock()
    self.fetches = 0
    self.keys = ("AKIDSTANDIN00000001", "secret-one/abc+def", "session-token-one")
    owner = self

    class H(_Json):
      def do_GET(self):
        if self.headers.get("authorization") != owner.token:
          return self.send_json(401, {"message": "bad token"})
        with owner.lock:
          owner.fetches += 1
          akid, secret, token = owner.keys
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=owner.expires_in)
        self.send_json(200, {"AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                             "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "RoleArn": "arn:aws:iam::111111111111:role/task"})
    self.srv = _start(H, self)
    self.url = "http://127.0.0.1:%d/creds" % self.srv.server_address[1]

  def rotate(self, akid, secret, token):
    with self.lock:
      self.keys = (akid, secret, token)

  def env(self):
    return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.token}

  def close(self):
    self.srv.shutdown()
    self.srv.server_close()


class TaskMetadataEndpoint:
  """${ECS_CONTAINER_METADATA_URI_V4}/task -> a Fargate task's documented JSON."""

  def __init__(self, zone="us-east-1a", account="111111111111", region="us-east-1"):
    owner = self
    self.task = {
        "Cluster": "arn:aws:ecs:%s:%s:cluster/mesh" % (region, account),
        "TaskARN": "arn:aws:ecs:%s:%s:task/mesh/0123456789abcdef0123456789abcdef" % (region,
                                                                                     account),
        "Family": "orders", "Revision": "7", "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING", "AvailabilityZone": zone, "LaunchType": "FARGATE",
        "Containers": []}

    class H(_Json):
      def do_GET(self):
        if self.path.rstrip("/").endswith("/task"):
          return self.send_json(200, owner.task)
        return self.send_json(200, {"DockerId": "abc", "Name": "outrigger"})
    self.srv = _start(H, self)
    self.uri = "http://127.0.0.1:%d/v4/0123456789abcdef" % self.srv.server_address[1]

  def close(self):
    self.srv.shutdown()
    self.srv.server_close()


_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def verify_sigv4(method, target, headers, body, secrets, service, region):
  """Recomputes the signature with botocore; returns (ok, why, access key id)."""
  auth = headers.get("authorization", "")
  m = _AUTH.match(auth)
  if not m:
    return False, "no or malformed Authorization", None
  akid, _date, reg, svc, signed, signature = m.groups()
  if akid not in secrets:
    return False, "unknown access key", akid
  if reg != region or svc != service:
    return False, "wrong scope %s/%s" % (reg, svc), akid
  names = signed.split(";")
  if "host" not in names or "x-amz-date" not in names:
    return False, "host and x-amz-date must be signed", akid
  hs = {n: headers[n] for n in names if n in headers}
  req = botocore.awsrequest.AWSRequest(method=method, url="https://%s%s" % (headers["host"], target),
                                       headers=hs, data=body)
  creds = botocore.credentials.Credentials(akid, secrets[akid], headers.get("x-amz-security-token"))
  signer = botocore.auth.SigV4Auth(creds, service, region)
  req.context["timestamp"] = headers["x-amz-date"]
  canonical = signer.canonical_request(req)
  expected = signer.signature(signer.string_to_sign(req, canonical), req)
  if not hmac.compare_digest(expected, signature):
    return False, "signature mismatch", akid
  when = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(
      tzinfo=datetime.timezone.utc)
  if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
    return False, "request time too skewed", akid
  return True, "", akid


class SigV4Front:
  """TLS front checking SigV4 (service, region) against secrets {akid: secret}."""

  def __init__(self, cert, key, secrets, service="vpc-lattice-svcs", region="us-east-1",
               host="127.0.0.1", retry_after=None):
    self.secrets = dict(secrets)
    self.retry_after = retry_after  # sent with 403s (seconds), to pace a client's retries
    self.service = service
    self.region = region
    self.lock = threading.Lock()
    self.seen = []  # dicts: method, target, headers, ok, why, akid
    owner = self
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    class H(_Json):
      def handle_one(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok, why, akid = verify_sigv4(self.command, self.path, headers, body, owner.secrets,
                                     owner.service, owner.region)
        with owner.lock:
          owner.seen.append({"method": self.command, "target": self.path, "headers": headers,
                             "ok": ok, "why": why, "akid": akid, "body_len": len(body)})
        if not ok:
          extra = [("retry-after", str(owner.retry_after))] if owner.retry_after else []
          return self.send_json(403, {"__type": "AccessDeniedException", "message": why}, extra)
        self.send_json(200, {"target": self.path, "akid": akid, "host": headers.get("host")})
      do_GET = do_POST = do_PUT = do_DELETE = handle_one
    self.srv = _start(H, self, host, ctx)
    self.port = self.srv.server_address[1]

  def close(self):
    self.srv.shutdown()
    self.srv.server_close()
