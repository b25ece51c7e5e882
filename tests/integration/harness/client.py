"""Raw-socket HTTP/1.1 client: send exact bytes, read responses with a strict parser.

Every read has a deadline; nothing here loops without a bound on time and size.
"""
import json
import re
import socket
import subprocess
import tempfile
import time
import os

_STATUS_LINE = re.compile(rb"^HTTP/1\.([01]) ([0-9]{3})(?: (.*))?$")
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_HEAD = 256 * 1024


class ProtocolError(Exception):
  """The peer sent bytes that are not a valid HTTP/1.1 response."""


class ConnectionClosed(Exception):
  """The peer closed (or reset) the connection before a complete response."""


class Response:
  def __init__(self, version, status, reason, headers, raw_head):
    self.version = version
    self.status = status
    self.reason = reason
    self.headers = headers  # list of (name, value) as received
    self.raw_head = raw_head
    self.body = b""
    self.body_len = 0
    self.framing = "none"  # "cl" | "chunked" | "close" | "none"
    self.interim = []  # 1xx responses seen before this one

  def header(self, name, default=None):
    name = name.lower()
    for k, v in self.headers:
      if k.lower() == name:
        return v
    return default

  def header_all(self, name):
    name = name.lower()
    return [v for k, v in self.headers if k.lower() == name]

  def has_header(self, name):
    return bool(self.header_all(name))

  def connection_tokens(self):
    toks = set()
    for v in self.header_all("connection"):
      toks.update(t.strip().lower() for t in v.split(",") if t.strip())
    return toks

  @property
  def closes(self):
    return "close" in self.connection_tokens()

  def json(self):
    return json.loads(self.body)

  def text(self):
    return self.body.decode("utf-8", "replace")

  def __repr__(self):
    return "<Response %d %r headers=%r body=%r>" % (
        self.status, self.reason, self.headers, self.body[:200])


def build_request(method, target, headers=None, body=b"", host="test", version="HTTP/1.1"):
  """Builds request bytes. headers: list of (name, value) or dict. Adds Host unless host is None
  and Content-Length when a body is given without a Transfer-Encoding/Content-Length header."""
  if isinstance(headers, dict):
    headers = list(headers.items())
  headers = list(headers or [])
  names = {k.lower() for k, _ in headers}
  lines = ["%s %s %s" % (method, target, version)]
  if host is not None and "host" not in names:
    lines.append("Host: %s" % host)
  for k, v in headers:
    lines.append("%s: %s" % (k, v))
  if isinstance(body, str):
    body = body.encode()
  if body and "content-length" not in names and "transfer-encoding" not in names:
    lines.append("Content-Length: %d" % len(body))
  return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(data, chunk_size=1024):
  """Encodes bytes with chunked transfer coding (with the final empty chunk)."""
  out = bytearray()
  for i in range(0, len(data), chunk_size):
    piece = data[i:i + chunk_size]
    out += b"%x\r\n" % len(piece) + piece + b"\r\n"
  out += b"0\r\n\r\n"
  return bytes(out)


class RawConn:
  """One client TCP connection with a receive buffer and deadline-bounded reads."""

  def __init__(self, addr, timeout=5.0, connect_timeout=3.0):
    self.addr = tuple(addr)
    self.timeout = timeout
    self.sock = socket.create_connection(self.addr, timeout=connect_timeout)
    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    self.buf = bytearray()
    self.eof = False

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self):
    try:
      self.sock.close()
    except OSError:
      pass

  def send(self, data):
    if isinstance(data, str):
      data = data.encode("latin-1")
    self.sock.sendall(data)

  def _fill(self, deadline, max_bytes=1 << 20):
    """Receives more bytes into buf. Returns False on EOF/reset; raises TimeoutError."""
    if self.eof:
      return False
    remaining = deadline - time.monotonic()
    if remaining <= 0:
      raise TimeoutError("no data from %s:%d before the deadline" % self.addr)
    self.sock.settimeout(remaining)
    try:
      data = self.sock.recv(max_bytes)
    except socket.timeout:
      raise TimeoutError("no data from %s:%d before the deadline" % self.addr) from None
    except ConnectionResetError:
      self.eof = True
      return False
    if not data:
      self.eof = True
      return False
    self.buf += data
    return True

  def _take_line(self, deadline, limit):
    while True:
      i = self.buf.find(b"\r\n")
      if i >= 0:
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line
      if len(self.buf) > limit:
        raise ProtocolError("line longer than %d bytes" % limit)
      if not self._fill(deadline):
        raise ConnectionClosed("connection closed in the middle of a line (have %r)" %
                               bytes(self.buf[:200]))

  def _take(self, n, deadline, sink=None):
    """Takes exactly n bytes (into sink if given, else returned)."""
    out = bytearray() if sink is None else None
    left = n
    while left > 0:
      if not self.buf:
        if not self._fill(deadline, min(left, 1 << 20)):
          raise ConnectionClosed("connection closed with %d of %d body bytes missing" % (left, n))
      piece = self.buf[:left]
      del self.buf[:len(piece)]
      left -= len(piece)
      if sink is None:
        out += piece
      else:
        sink(bytes(piece))
    return out if sink is None else n

  def read_exact(self, n, timeout=None):
    """Exactly n raw bytes (body bytes the caller frames itself)."""
    deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
    return bytes(self._take(n, deadline))

  def read_head(self, timeout=None, keep_interim=False):
    """Reads a response head. 1xx interim responses are skipped (and recorded in .interim)
    unless keep_interim is True, in which case a 1xx head is returned as is."""
    deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
    interim = []
    for _ in range(16):  # bounded number of interim responses
      while b"\r\n\r\n" not in self.buf:
        if len(self.buf) > MAX_HEAD:
          raise ProtocolError("response head larger than %d bytes" % MAX_HEAD)
        if not self._fill(deadline):
          if self.buf:
            raise ConnectionClosed("connection closed inside a response head: %r" %
                                   bytes(self.buf[:300]))
          raise ConnectionClosed("connection closed before any response byte")
      end = self.buf.find(b"\r\n\r\n")
      raw = bytes(self.buf[:end + 4])
      del self.buf[:end + 4]
      resp = _parse_head(raw)
      if 100 <= resp.status < 200 and not keep_interim:
        interim.append(resp)
        continue
      resp.interim = interim
      return resp
    raise ProtocolError("too many interim responses")

  def read_body(self, resp, method="GET", timeout=None, sink=None, max_close_body=64 << 20):
    """Reads resp's body per its framing. With sink, bytes go to sink(bytes) and are not kept."""
    deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
    body = bytearray()
    total = 0

    def put(b):
      nonlocal total
      total += len(b)
      if sink is None:
        body.extend(b)
      else:
        sink(b)

    te = [v.strip().lower() for v in resp.header_all("transfer-encoding")]
    cls = resp.header_all("content-length")
    if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
      resp.framing = "none"
    elif te:
      if te != ["chunked"]:
        raise ProtocolError("unsupported response transfer-encoding %r" % te)
      if cls:
        raise ProtocolError("response has both Content-Length and Transfer-Encoding")
      resp.framing = "chunked"
      for _ in range(1 << 24):
        line = self._take_line(deadline, 1024)
        size_txt = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", size_txt):
          raise ProtocolError("bad chunk size line %r" % line)
        size = int(size_txt, 16)
        if size == 0:
          for _ in range(64):  # trailers
            if self._take_line(deadline, 8192) == b"":
              break
          else:
            raise ProtocolError("too many trailer lines")
          break
        self._take(size, deadline, put)
        if self._take_line(deadline, 2) != b"":
          raise ProtocolError("missing CRLF after chunk data")
    elif cls:
      if len(set(cls)) != 1 or not re.fullmatch(r"[0-9]{1,18}", cls[0]):
        raise ProtocolError("bad response Content-Length %r" % cls)
      resp.framing = "cl"
      self._take(int(cls[0]), deadline, put)
    else:
      resp.framing = "close"
      while True:
        if self.buf:
          piece = bytes(self.buf)
          self.buf.clear()
          put(piece)
          if total > max_close_body:
            raise ProtocolError("close-delimited body larger than %d" % max_close_body)
        if not self._fill(deadline):
          break
    resp.body = bytes(body)
    resp.body_len = total
    return resp

  def read_response(self, method="GET", timeout=None, sink=None):
    t = timeout if timeout is not None else self.timeout
    deadline = time.monotonic() + t
    resp = self.read_head(timeout=t)
    return self.read_body(resp, method=method, timeout=max(0.01, deadline - time.monotonic()),
                          sink=sink)

  def request(self, method, target, headers=None, body=b"", host="test", timeout=None):
    self.send(build_request(method, target, headers, body, host))
    return self.read_response(method=method, timeout=timeout)

  def wait_closed(self, timeout=3.0):
    """True when the peer closes (FIN or RST) within timeout. Received bytes stay in buf."""
    deadline = time.monotonic() + timeout
    try:
      while True:
        if not self._fill(deadline):
          return True
        if len(self.buf) > MAX_HEAD:
          return False
    except TimeoutError:
      return False


def request(addr, method, target, headers=None, body=b"", host="test", timeout=5.0):
  """One request on a fresh connection, which is then closed."""
  with RawConn(addr, timeout=timeout) as c:
    return c.request(method, target, headers, body, host, timeout=timeout)


def get(addr, target, headers=None, host="test", timeout=5.0):
  return request(addr, "GET", target, headers, b"", host, timeout)


def _parse_head(raw):
  lines = raw[:-4].split(b"\r\n")
  m = _STATUS_LINE.match(lines[0])
  if not m:
    raise ProtocolError("bad status line %r" % lines[0])
  headers = []
  for line in lines[1:]:
    if not line or line[:1] in (b" ", b"\t"):
      raise ProtocolError("obs-fold or empty header line in response: %r" % raw[:500])
    if b"\n" in line or b"\r" in line or b"\0" in line:
      raise ProtocolError("bare CR/LF or NUL in response header %r" % line)
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN.match(name):
      raise ProtocolError("bad response header line %r" % line)
    headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
  reason = (m.group(3) or b"").decode("latin-1")
  return Response("HTTP/1." + m.group(1).decode(), int(m.group(2)), reason, headers, raw)


def read_to_close(sock, limit=4 << 20, seconds=10.0):
  """Everything a (TLS or TCP) socket sends until the peer closes it, bounded in bytes and time
  (AssertionError past either bound). Errors of the read itself (e.g. an EOF without TLS
  close_notify) propagate."""
  data = b""
  deadline = time.monotonic() + seconds
  while len(data) <= limit:
    if time.monotonic() > deadline:
      raise AssertionError("no close within %.1f s (%d bytes read)" % (seconds, len(data)))
    d = sock.recv(65536)
    if not d:
      return data
    data += d
  raise AssertionError("more than %d bytes before the close" % limit)


def connect_refused(addr, timeout=1.0):
  """True if a TCP connect to addr is refused (nothing listening)."""
  s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  s.settimeout(timeout)
  try:
    s.connect(tuple(addr))
    return False
  except ConnectionRefusedError:
    return True
  except OSError:
    return False
  finally:
    s.close()


class CurlResult:
  def __init__(self, rc, status, heads, body, stderr, elapsed):
    self.rc = rc
    self.status = status
    self.heads = heads  # every response head curl saw (interim ones too), raw text
    self.body = body
    self.stderr = stderr
    self.elapsed = elapsed

  def header(self, name, default=None):
    """Header of the final response."""
    if not self.heads:
      return default
    for line in self.heads[-1].split("\r\n")[1:]:
      k, sep, v = line.partition(":")
      if sep and k.strip().lower() == name.lower():
        return v.strip()
    return default

  def json(self):
    return json.loads(self.body)


def curl(url, *args, timeout=30.0):
  """Runs the real curl; returns its exit code, final status, all heads, body and stderr."""
  with tempfile.TemporaryDirectory(prefix="curl-") as d:
    hfile = os.path.join(d, "h")
    bfile = os.path.join(d, "b")
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-D", hfile, "-o", bfile,
           "-w", "%{http_code}", *args, url]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
    elapsed = time.monotonic() - t0
    heads = []
    if os.path.exists(hfile):
      with open(hfile, "rb") as f:
        text = f.read().decode("latin-1")
      heads = [h for h in text.split("\r\n\r\n") if h.strip()]
    body = b""
    if os.path.exists(bfile):
      with open(bfile, "rb") as f:
        body = f.read()
    out = p.stdout.decode().strip()
    status = int(out) if out.isdigit() else 0
    return CurlResult(p.returncode, status, heads, body, p.stderr.decode("latin-1"), elapsed)
