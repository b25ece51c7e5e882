"""Our upstream test server: a threaded raw-socket HTTP/1.1 server that records every request.

What a request does is chosen by its path: the first path segment that names a behaviour below
(so "/api/v1/echo" and "/echo" are the same), else echo. Parameters come from the query string.

  echo                 200, JSON of what arrived (headers, body length, sha256, small bodies)
  status/<code>        that status with a short body
  chunked?n=&chunk=    chunked response of n pattern bytes
  large?n=&mode=cl|chunked   n pattern bytes streamed (never held in memory)
  delay?ms=            waits ms before the head, then echo
  stall                reads the request and never answers
  close                reads the request and closes without a response
  reset?at=head|body   RST (SO_LINGER 0) inside the head, or after the head and part of the body
  conn-close           echo with "Connection: close", then closes
  expect-417           answers 417 without reading the body (with Expect: 100-continue)
  cl-te                malformed response carrying both Content-Length and Transfer-Encoding
  hop-resp             response carrying hop-by-hop headers (Connection-named, Keep-Alive)
  eof-body?n=          response without Content-Length or chunking: n bytes, then close
  slow-body?ms=&n=     head (Content-Length n) at once, the n body bytes ms later
  huge-head?n=         a response head with an n-byte header value
  early                answers 403 + close before reading the request body, then drains it
  pause-read?ms=       waits ms before reading the request body, then echo

HEAD gets the head only; 1xx/204/304 statuses carry no body.

Requests with "Expect: 100-continue" get "100 Continue" before the body is read (except 417).
Thread affinity: one accept thread plus one thread per connection; the records are guarded by
a lock, and tests read them through the methods below.
"""
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
import urllib.parse

BLOCK = 64 * 1024
_BASE = random.Random(20240601).randbytes(BLOCK)
STORE_LIMIT = 1 << 20  # bodies above this are hashed and counted, not stored


def pattern_block(i):
  return i.to_bytes(8, "big") + _BASE[8:]


def pattern_iter(n, block_multiple=1):
  """Yields the deterministic test pattern of n bytes in pieces of BLOCK*block_multiple."""
  i = 0
  sent = 0
  while sent < n:
    piece = b"".join(pattern_block(i + k) for k in range(block_multiple))
    i += block_multiple
    piece = piece[:n - sent]
    sent += len(piece)
    yield piece


_sha_cache = {}


def pattern_sha256(n):
  if n not in _sha_cache:
    h = hashlib.sha256()
    for piece in pattern_iter(n, 16):
      h.update(piece)
    _sha_cache[n] = h.hexdigest()
  return _sha_cache[n]


class Request:
  """One request as the upstream saw it."""

  def __init__(self, conn_id, raw_head):
    self.conn_id = conn_id
    self.raw_head = raw_head
    self.method = self.target = self.version = None
    self.path = ""
    self.query = {}
    self.headers = []
    self.parse_error = None
    self.body = b""  # first STORE_LIMIT bytes
    self.body_len = 0
    self.body_sha256 = None
    self.body_complete = False
    self.body_error = None
    self.framing = "none"
    self.time = time.monotonic()

  def header(self, name, default=None):
    name = name.lower()
    for k, v in self.headers:
      if k.lower() == name:
        return v
    return default

  def header_all(self, name):
    name = name.lower()
    return [v for k, v in self.headers if k.lower() == name]

  def header_names(self):
    return {k.lower() for k, _ in self.headers}

  def __repr__(self):
    return "<Request conn=%s %r>" % (self.conn_id, self.raw_head[:300])


# RFC 9112 3 and 5: method SP request-target SP HTTP-version; field-name ":" OWS field-value OWS
# (field-value: VCHAR, obs-text, and SP/HTAB between them).
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21-\x7e\x80-\xff]+) (HTTP/1\.[01])")
_FIELD_LINE = re.compile(rb"(" + _TCHAR + rb"+):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*")


class _Bad(Exception):
  pass


class Upstream:
  """Raw-socket HTTP/1.1 server on host:port (port 0 = ephemeral); see the module docstring."""

  def __init__(self, name="up", host="127.0.0.1", port=0, backlog=256):
    self.name = name
    self.force = None  # see _behaviour
    self._lock = threading.Condition()
    self._stop = threading.Event()
    self._requests = []
    self._conns = {}
    self._idle = set()  # connection ids waiting for their next request with nothing buffered
    self._threads = []
    self.connections_accepted = 0
    self.bytes_received = 0
    self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    self._lsock.bind((host, port))
    self._lsock.listen(backlog)
    self._lsock.settimeout(0.2)
    self.host, self.port = self._lsock.getsockname()[:2]
    self._acceptor = threading.Thread(target=self._accept_loop, name="upstream-%s" % name,
                                      daemon=True)
    self._acceptor.start()

  # ---- test-facing API
  @property
  def addr(self):
    return (self.host, self.port)

  @property
  def address(self):
    return "%s:%d" % (self.host, self.port)

  @property
  def requests(self):
    with self._lock:
      return list(self._requests)

  def clear(self):
    with self._lock:
      self._requests.clear()
      self.connections_accepted = 0
      self.bytes_received = 0

  def wait_requests(self, n, timeout=5.0, complete=False):
    """Waits until at least n requests arrived (with complete bodies if complete)."""
    deadline = time.monotonic() + timeout
    with self._lock:
      while True:
        got = [r for r in self._requests if r.body_complete or not complete]
        if len(got) >= n:
          return True
        left = deadline - time.monotonic()
        if left <= 0:
          return False
        self._lock.wait(left)

  def wait_idle(self, n, timeout=5.0):
    """Waits until at least n connections sit idle between requests."""
    deadline = time.monotonic() + timeout
    with self._lock:
      while len(self._idle) < n:
        left = deadline - time.monotonic()
        if left <= 0:
          return False
        self._lock.wait(left)
      return True

  def close_idle(self):
    """Closes (FIN) every connection that sits idle between requests; returns how many."""
    with self._lock:
      socks = [self._conns[i] for i in self._idle if i in self._conns]
      self._idle.clear()
    for c in socks:
      try:
        c.shutdown(socket.SHUT_RDWR)
      except OSError:
        pass
    return len(socks)

  def close(self):
    self._stop.set()
    try:
      self._lsock.close()
    except OSError:
      pass
    with self._lock:
      conns = list(self._conns.values())
    for c in conns:
      try:
        c.shutdown(socket.SHUT_RDWR)
      except OSError:
        pass
      try:
        c.close()
      except OSError:
        pass
    self._acceptor.join(2)
    for t in list(self._threads):
      t.join(2)

  # ---- server internals
  def _accept_loop(self):
    while not self._stop.is_set():
      try:
        c, _ = self._lsock.accept()
      except socket.timeout:
        continue
      except OSError:
        return
      with self._lock:
        self.connections_accepted += 1
        cid = self.connections_accepted
        self._conns[cid] = c
        self._lock.notify_all()
      t = threading.Thread(target=self._serve, args=(c, cid), daemon=True)
      self._threads = [x for x in self._threads if x.is_alive()]
      self._threads.append(t)
      t.start()

  def _recv(self, c, buf):
    data = c.recv(1 << 20)
    if data:
      with self._lock:
        self.bytes_received += len(data)
      buf += data
    return bool(data)

  def _serve(self, c, cid):
    c.settimeout(60)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    try:
      for _ in range(1 << 20):  # requests per connection
        if self._stop.is_set():
          return
        keep = self._one(c, cid, buf)
        if not keep:
          return
    except (OSError, _Bad):
      return
    finally:
      with self._lock:
        self._conns.pop(cid, None)
        self._idle.discard(cid)
      try:
        c.close()
      except OSError:
        pass

  def _one(self, c, cid, buf):
    if not buf:
      with self._lock:
        self._idle.add(cid)
        self._lock.notify_all()
    try:
      if not buf and not self._recv(c, buf):
        return False
    finally:
      with self._lock:
        self._idle.discard(cid)
    while b"\r\n\r\n" not in buf:
      if len(buf) > (1 << 20):
        self._record_raw(cid, bytes(buf), "head too large")
        return False
      if not self._recv(c, buf):
        if buf:
          self._record_raw(cid, bytes(buf), "eof inside head")
        return False
    end = buf.find(b"\r\n\r\n")
    raw = bytes(buf[:end + 4])
    del buf[:end + 4]
    req = Request(cid, raw)
    try:
      self._parse(req)
    except _Bad as e:
      req.parse_error = str(e)
    with self._lock:
      self._requests.append(req)
      self._lock.notify_all()
    if req.parse_error:
      return False
    behaviour, arg = self._behaviour(req.path)
    expect = (req.header("expect") or "").lower() == "100-continue"
    if behaviour == "expect-417":
      self._finish(req)
      c.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n"
                b"x-upstream: " + self.name.encode() + b"\r\n\r\n")
      return False
    if behaviour == "early":
      self._finish(req)
      c.sendall(self._head(403, "Forbidden", [("Content-Length", 6), ("Connection", "close")]) +
                b"early\n")
      # Half-close and drain, so the unread body does not turn our close into an RST.
      c.shutdown(socket.SHUT_WR)
      deadline = time.monotonic() + 10
      c.settimeout(1)
      while time.monotonic() < deadline and not self._stop.is_set():
        try:
          if not c.recv(1 << 20):
            break
        except socket.timeout:
          continue
      return False
    if expect:
      c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if behaviour == "pause-read":
      if self._stop.wait(int(req.query.get("ms", "1000")) / 1000.0):
        return False
      behaviour = "echo"
    try:
      self._read_body(c, req, buf)
    finally:
      self._finish(req)
    return self._respond(c, req, behaviour, arg)

  def _record_raw(self, cid, raw, err):
    req = Request(cid, raw)
    req.parse_error = err
    with self._lock:
      self._requests.append(req)
      self._lock.notify_all()

  def _finish(self, req):
    with self._lock:
      req.body_complete = req.body_error is None
      self._lock.notify_all()

  def _parse(self, req):
    """Strict RFC 9112 parsing of what a proxy sends: a request this server accepts is one any
    upstream must accept, so a proxy bug that writes a malformed head fails the test that sent it
    (the connection is closed without an answer and parse_error says why)."""
    lines = req.raw_head[:-4].split(b"\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if not m:
      raise _Bad("bad request line %r" % lines[0])
    req.method, req.target, req.version = (g.decode("latin-1") for g in m.groups())
    u = urllib.parse.urlsplit(req.target)
    req.path = u.path
    req.query = dict(urllib.parse.parse_qsl(u.query))
    for line in lines[1:]:
      m = _FIELD_LINE.fullmatch(line)  # token ":" OWS value OWS; no obs-fold, no bare CR/LF
      if not m:
        raise _Bad("bad header line %r" % line)
      req.headers.append((m.group(1).decode("latin-1"), m.group(2).decode("latin-1")))
    hosts = req.header_all("host")
    if req.version == "HTTP/1.1" and len(hosts) != 1:
      raise _Bad("%d Host fields" % len(hosts))
    lengths = req.header_all("content-length")
    if lengths and (len(set(lengths)) != 1 or not lengths[0].isdigit()):
      raise _Bad("bad Content-Length %r" % lengths)
    if lengths and req.header("transfer-encoding") is not None:
      raise _Bad("both Content-Length and Transfer-Encoding")

  def _read_body(self, c, req, buf):
    h = hashlib.sha256()
    stored = bytearray()

    def put(b):
      h.update(b)
      req.body_len += len(b)
      if len(stored) < STORE_LIMIT:
        stored.extend(b[:STORE_LIMIT - len(stored)])

    try:
      te = req.header_all("transfer-encoding")
      cl = req.header_all("content-length")
      if te:
        req.framing = "chunked"
        if te[-1].strip().lower() != "chunked":
          raise _Bad("transfer-encoding %r" % te)
        self._read_chunked(c, buf, put)
      elif cl:
        req.framing = "cl"
        n = int(cl[0])
        while n > 0:
          if not buf and not self._recv(c, buf):
            raise _Bad("eof with %d body bytes missing" % n)
          piece = bytes(buf[:n])
          del buf[:len(piece)]
          n -= len(piece)
          put(piece)
    except (_Bad, ValueError, OSError) as e:
      req.body_error = str(e)
      raise _Bad(str(e))
    finally:
      req.body = bytes(stored)
      req.body_sha256 = h.hexdigest()

  def _line(self, c, buf, limit=4096):
    while True:
      i = buf.find(b"\r\n")
      if i >= 0:
        line = bytes(buf[:i])
        del buf[:i + 2]
        return line
      if len(buf) > limit:
        raise _Bad("line too long")
      if not self._recv(c, buf):
        raise _Bad("eof inside chunked body")

  def _read_chunked(self, c, buf, put):
    for _ in range(1 << 30):
      line = self._line(c, buf)
      size_txt = line.split(b";", 1)[0].strip()
      if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", size_txt):
        raise _Bad("bad chunk size %r" % line)
      size = int(size_txt, 16)
      if size == 0:
        for _ in range(64):
          if self._line(c, buf) == b"":
            return
        raise _Bad("too many trailers")
      while size > 0:
        if not buf and not self._recv(c, buf):
          raise _Bad("eof inside chunk")
        piece = bytes(buf[:size])
        del buf[:len(piece)]
        size -= len(piece)
        put(piece)
      if self._line(c, buf, 2) != b"":
        raise _Bad("missing CRLF after chunk")

  _NAMES = ("echo", "status", "chunked", "large", "delay", "stall", "close", "reset",
            "conn-close", "expect-417", "cl-te", "hop-resp", "eof-body",
            "slow-body", "huge-head", "early", "pause-read")

  def _behaviour(self, path):
    # A test may make this upstream misbehave whatever the path: `force` is a path such as
    # "/status/503?retry_after=1" or "/reset?at=head" (None = follow the request's path).
    forced = self.force
    if forced:
      path = forced.split("?", 1)[0]
    segs = [s for s in path.split("/") if s]
    for i, s in enumerate(segs):
      if s in self._NAMES:
        return s, (segs[i + 1] if i + 1 < len(segs) else None)
    return "echo", None

  def _head(self, status, reason, headers):
    lines = ["HTTP/1.1 %d %s" % (status, reason), "x-upstream: %s" % self.name]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

  def _echo_body(self, req):
    return json.dumps({
        "upstream": self.name, "conn_id": req.conn_id, "method": req.method,
        "target": req.target, "version": req.version, "headers": req.headers,
        "body_len": req.body_len, "body_sha256": req.body_sha256, "framing": req.framing,
        "body": req.body.decode("latin-1") if req.body_len <= 65536 else None,
    }).encode()

  def _respond(self, c, req, behaviour, arg):
    q = req.query
    forced = self.force
    if forced and "?" in forced:
      import urllib.parse as _up
      q = dict(_up.parse_qsl(forced.split("?", 1)[1]))
    head_only = req.method == "HEAD"
    if behaviour == "delay":
      if self._stop.wait(int(q.get("ms", "1000")) / 1000.0):
        return False
      behaviour = "echo"
    if behaviour == "echo":
      body = self._echo_body(req)
      c.sendall(self._head(200, "OK", [("Content-Type", "application/json"),
                                       ("Content-Length", len(body))]) +
                (b"" if head_only else body))
      return True
    if behaviour == "conn-close":
      body = self._echo_body(req)
      c.sendall(self._head(200, "OK", [("Content-Length", len(body)),
                                       ("Connection", "close")]) + body)
      return False
    if behaviour == "status":
      code = int(arg or q.get("code", "200"))
      if code < 200 or code in (204, 304):
        c.sendall(self._head(code, "Status", []))
        return True
      body = b"status %d\n" % code
      extra = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
      c.sendall(self._head(code, "Status", [("Content-Length", len(body))] + extra) +
                (b"" if head_only else body))
      return True
    if behaviour in ("chunked", "large"):
      n = int(q.get("n", "100000"))
      mode = "chunked" if behaviour == "chunked" else q.get("mode", "cl")
      if mode == "chunked":
        csize = int(q.get("chunk", str(BLOCK)))
        c.sendall(self._head(200, "OK", [("Transfer-Encoding", "chunked")]))
        if head_only:
          return True
        pending = bytearray()
        for piece in pattern_iter(n, 4):
          pending += piece
          while len(pending) >= csize:
            c.sendall(b"%x\r\n" % csize + pending[:csize] + b"\r\n")
            del pending[:csize]
          if self._stop.is_set():
            return False
        if pending:
          c.sendall(b"%x\r\n" % len(pending) + pending + b"\r\n")
        c.sendall(b"0\r\n\r\n")
      else:
        c.sendall(self._head(200, "OK", [("Content-Length", n)]))
        if head_only:
          return True
        for piece in pattern_iter(n, 4):
          c.sendall(piece)
          if self._stop.is_set():
            return False
      return True
    if behaviour == "stall":
      self._stop.wait(120)
      return False
    if behaviour == "close":
      return False
    if behaviour == "reset":
      if q.get("at", "body") == "head":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
      else:
        c.sendall(self._head(200, "OK", [("Content-Length", 1 << 20)]) + b"x" * 1000)
      time.sleep(0.05)  # let the partial bytes leave before the RST
      c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
      return False
    if behaviour == "cl-te":
      c.sendall(self._head(200, "OK", [("Content-Length", 3), ("Transfer-Encoding", "chunked")])
                + b"5\r\nhello\r\n0\r\n\r\n")
      return False
    if behaviour == "hop-resp":
      body = b"hop\n"
      c.sendall(self._head(200, "OK", [("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "1"),
                                       ("Keep-Alive", "timeout=5"), ("X-End", "kept"),
                                       ("Content-Length", len(body))]) + body)
      return True
    if behaviour == "huge-head":
      n = int(q.get("n", str(1 << 20)))
      c.sendall(self._head(200, "OK", [("X-Huge", "h" * n), ("Content-Length", 2)]) + b"ok")
      return True
    if behaviour == "slow-body":
      n = int(q.get("n", "1000"))
      c.sendall(self._head(200, "OK", [("Content-Length", n)]))
      if self._stop.wait(int(q.get("ms", "1000")) / 1000.0):
        return False
      c.sendall(b"s" * n)
      return True
    if behaviour == "eof-body":
      n = int(q.get("n", "10000"))
      c.sendall(self._head(200, "OK", []))
      for piece in pattern_iter(n, 4):
        c.sendall(piece)
      c.shutdown(socket.SHUT_WR)
      return False
    raise _Bad("unknown behaviour " + behaviour)


class Blackhole:
  """A listening socket whose accept queue is full, so new connects hang in SYN_SENT; used to
  provoke upstream connect timeouts on loopback."""

  def __init__(self):
    self._l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    self._l.bind(("127.0.0.1", 0))
    self._l.listen(0)
    self.host, self.port = self._l.getsockname()
    self._fill = []
    for _ in range(16):  # bounded: the queue holds at most a couple of connections
      if self._probe_hangs():
        return
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.setblocking(False)
      try:
        s.connect((self.host, self.port))
      except BlockingIOError:
        pass
      self._fill.append(s)
    raise RuntimeError("could not fill the accept queue of a listen(0) socket")

  def _probe_hangs(self):
    p = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    p.settimeout(0.2)
    try:
      p.connect((self.host, self.port))
      self._fill.append(p)
      return False
    except socket.timeout:
      p.close()
      return True

  @property
  def address(self):
    return "%s:%d" % (self.host, self.port)

  def close(self):
    for s in self._fill:
      s.close()
    self._l.close()


def closed_port():
  """A loopback port with nothing listening (bound then closed)."""
  s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()
  return port
