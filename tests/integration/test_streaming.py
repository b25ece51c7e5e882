"""Bodies are streamed, never buffered whole: big uploads and downloads pass with the proxy's
resident memory bounded, and a slow reader gets backpressure instead of a growing buffer."""
import hashlib
import socket
import time
import unittest

from harness import (ProxyTestCase, RawConn, RssSampler, build_request, pattern_iter,
                     pattern_sha256, sanitized, yaml_out)

MiB = 1 << 20
RSS_LIMIT_KB = 64 * 1024


class Streaming(ProxyTestCase):
  def setUp(self):
    self.up = self.start_upstream("A")
    self.proxy = self.start_proxy(yaml_out.simple(self.up.address, route_timeout="120s"))
    self.addr = self.proxy.addr("main")

  def assertMemoryBounded(self, sampler):
    if sanitized():
      return  # ASan's shadow memory and quarantine make RSS meaningless as a bound
    self.assertGreater(sampler.samples, 0)
    self.assertLess(sampler.max_kb, RSS_LIMIT_KB,
                    "proxy VmRSS reached %d KiB while streaming" % sampler.max_kb)
    self.assertLess(self.proxy.hwm_kb(), RSS_LIMIT_KB, "proxy VmHWM over the bound")

  def upload(self, n, chunked_encoding, path="/echo/upload", deadline_s=150):
    h = hashlib.sha256()
    deadline = time.monotonic() + deadline_s
    with RawConn(self.addr, timeout=60) as c, RssSampler(self.proxy) as rss:
      framing = ([("Transfer-Encoding", "chunked")] if chunked_encoding else
                 [("Content-Length", str(n))])
      c.send(build_request("POST", path, framing))
      try:
        for piece in pattern_iter(n, 4):
          h.update(piece)
          left = deadline - time.monotonic()
          self.assertGreater(left, 0, "upload did not finish within %ds" % deadline_s)
          c.sock.settimeout(left)
          if chunked_encoding:
            c.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
          else:
            c.sock.sendall(piece)
        if chunked_encoding:
          c.send(b"0\r\n\r\n")
      except OSError as e:
        # The proxy answered early or hung up: show what it said.
        try:
          early = c.read_response(timeout=2)
        except Exception as e2:  # pylint: disable=broad-except
          early = e2
        self.fail("upload interrupted (%s); proxy said %r" % (e, early))
      r = c.read_response(timeout=60)
    self.assertEqual(r.status, 200, r)
    j = r.json()
    self.assertEqual(j["body_len"], n)
    self.assertEqual(j["body_sha256"], h.hexdigest())
    self.assertMemoryBounded(rss)

  def download(self, path, n):
    with RawConn(self.addr, timeout=60) as c, RssSampler(self.proxy) as rss:
      c.send(build_request("GET", path))
      resp = c.read_head(timeout=30)
      self.assertEqual(resp.status, 200, resp)
      h = hashlib.sha256()
      c.read_body(resp, timeout=120, sink=h.update)
    self.assertEqual(resp.body_len, n)
    self.assertEqual(h.hexdigest(), pattern_sha256(n))
    self.assertMemoryBounded(rss)
    return resp

  def test_chunked_request_body_256mib(self):
    self.upload(256 * MiB, chunked_encoding=True)

  def test_content_length_request_body_64mib(self):
    self.upload(64 * MiB, chunked_encoding=False)

  def test_slow_upstream_reader_backpressures_the_client(self):
    # The upstream reads nothing for 3 s: the proxy must stop reading the client meanwhile.
    self.upload(128 * MiB, chunked_encoding=False, path="/pause-read?ms=3000")

  def test_large_content_length_response(self):
    n = 128 * MiB
    resp = self.download("/large?n=%d&mode=cl" % n, n)
    self.assertEqual(resp.framing, "cl")

  def test_large_chunked_response(self):
    n = 96 * MiB
    self.download("/chunked?n=%d&chunk=%d" % (n, 48 * 1024), n)

  def test_slow_reader_gets_backpressure(self):
    n = 192 * MiB
    h = hashlib.sha256()
    with RawConn(self.addr, timeout=60) as c, RssSampler(self.proxy) as rss:
      c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
      c.send(build_request("GET", "/large?n=%d&mode=cl" % n))
      resp = c.read_head(timeout=30)
      self.assertEqual(resp.status, 200, resp)
      self.assertEqual(resp.header("content-length"), str(n))
      got = len(c.buf)
      h.update(bytes(c.buf))
      c.buf.clear()
      # Trickle 4 MiB, then stop reading for 3 s: a proxy without backpressure would pull the
      # rest from the fast upstream into its memory meanwhile.
      c.sock.settimeout(30)
      for _ in range(10000):
        if got >= 4 * MiB:
          break
        piece = c.sock.recv(64 * 1024)
        self.assertTrue(piece, "connection closed early")
        h.update(piece)
        got += len(piece)
        time.sleep(0.002)
      time.sleep(3)  # the stall under test, not a synchronisation
      self.assertTrue(self.proxy.running())
      deadline = time.monotonic() + 120
      while got < n:
        self.assertLess(time.monotonic(), deadline, "slow download did not finish")
        piece = c.sock.recv(1 << 20)
        self.assertTrue(piece, "connection closed after %d of %d bytes" % (got, n))
        h.update(piece)
        got += len(piece)
    self.assertEqual(got, n)
    self.assertEqual(h.hexdigest(), pattern_sha256(n))
    self.assertMemoryBounded(rss)


if __name__ == "__main__":
  unittest.main()
