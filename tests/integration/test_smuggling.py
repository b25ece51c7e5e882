"""Request smuggling shapes: each is answered 400, the connection is closed, and NOTHING reaches
the upstream. One proxy serves the whole table; a control request after each shape proves the
upstream path works and that only the control request arrived."""
import unittest

from harness import ProxyTestCase, RawConn, get, metrics, yaml_out


def req(head_lines, body=b"", version="HTTP/1.1", method="POST"):
  head = "%s /echo/smuggle %s\r\n" % (method, version)
  head = head.encode() + b"".join(l + b"\r\n" for l in head_lines) + b"\r\n"
  return head + body


H = b"Host: test"
GET_BODY = b"GET /echo/smuggled HTTP/1.1\r\nHost: test\r\n\r\n"

SHAPES = [
    # Both framings, either order.
    ("cl_and_te", req([H, b"Content-Length: 5", b"Transfer-Encoding: chunked"], b"0\r\n\r\n")),
    ("te_and_cl", req([H, b"Transfer-Encoding: chunked", b"Content-Length: 48"],
                      b"0\r\n\r\n" + GET_BODY)),
    # Duplicate Content-Length, even with equal values, and as a list.
    ("dup_cl_equal", req([H, b"Content-Length: 5", b"Content-Length: 5"], b"hello")),
    ("dup_cl_differ", req([H, b"Content-Length: 5", b"Content-Length: 6"], b"hello!")),
    ("cl_list", req([H, b"Content-Length: 5, 5"], b"hello")),
    # Malformed Content-Length.
    ("cl_plus", req([H, b"Content-Length: +5"], b"hello")),
    ("cl_minus", req([H, b"Content-Length: -5"], b"hello")),
    ("cl_trailing_x", req([H, b"Content-Length: 5x"], b"hello")),
    ("cl_space", req([H, b"Content-Length:  "], b"hello")),
    ("cl_inner_space", req([H, b"Content-Length: 5 5"], b"hello")),
    ("cl_hex", req([H, b"Content-Length: 0x5"], b"hello")),
    ("cl_overflow", req([H, b"Content-Length: 99999999999999999999999999999"], b"hello")),
    # Transfer-Encoding other than exactly "chunked".
    ("te_xchunked", req([H, b"Transfer-Encoding: xchunked"], b"0\r\n\r\n")),
    ("te_chunked_identity", req([H, b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n")),
    ("te_identity", req([H, b"Transfer-Encoding: identity"], b"hello")),
    ("te_gzip_chunked", req([H, b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n")),
    ("te_twice", req([H, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                     b"0\r\n\r\n")),
    ("te_vtab", req([H, b"Transfer-Encoding: chunked\x0b"], b"0\r\n\r\n")),
    ("te_http10", req([H, b"Transfer-Encoding: chunked"], b"0\r\n\r\n", version="HTTP/1.0")),
    # Bare CR, bare LF, NUL.
    ("bare_cr_in_value", req([H, b"X-A: b\rc"])),
    ("bare_cr_line_end", req([H + b"\rX-B: c"])),
    ("bare_lf_all", b"GET /echo/smuggle HTTP/1.1\nHost: test\n\n"),
    ("bare_lf_one_line", b"GET /echo/smuggle HTTP/1.1\r\nHost: test\nX-A: b\r\n\r\n"),
    ("nul_in_value", req([H, b"X-A: b\x00c"])),
    ("nul_in_target", b"GET /echo/\x00smuggle HTTP/1.1\r\nHost: test\r\n\r\n"),
    # obs-fold.
    ("obs_fold_space", req([H, b"X-A: b", b" c"])),
    ("obs_fold_tab", req([H, b"X-A: b", b"\tc"])),
    ("obs_fold_te", req([H, b"Transfer-Encoding:", b" chunked"], b"0\r\n\r\n")),
    # Whitespace before the colon.
    ("space_before_colon", req([H, b"Content-Length : 5"], b"hello")),
    ("tab_before_colon", req([H, b"Transfer-Encoding\t: chunked"], b"0\r\n\r\n")),
    ("space_before_colon_host", b"GET /echo/smuggle HTTP/1.1\r\nHost : test\r\n\r\n"),
    # Invalid header-name characters.
    ("name_paren", req([H, b"X(A): b"])),
    ("name_space", req([H, b"X A: b"])),
    ("name_at", req([H, b"X@A: b"])),
    ("name_slash", req([H, b"X/A: b"])),
    ("name_quote", req([H, b'X"A: b'])),
    ("name_high_bit", req([H, b"X\xc3\xa9: b"])),
    ("name_empty", req([H, b": b"])),
    # Bad chunk framing.
    ("chunk_0x", req([H, b"Transfer-Encoding: chunked"], b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk_negative", req([H, b"Transfer-Encoding: chunked"], b"-1\r\nhello\r\n0\r\n\r\n")),
    ("chunk_too_long", req([H, b"Transfer-Encoding: chunked"],
                           b"10000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk_not_hex", req([H, b"Transfer-Encoding: chunked"], b"g\r\nhello\r\n0\r\n\r\n")),
    ("chunk_no_crlf_after_data", req([H, b"Transfer-Encoding: chunked"],
                                     b"5\r\nhelloX\r\n0\r\n\r\n")),
]


# Malformed request lines and Host rules (RFC 9112 3.2: a missing or repeated Host is a 400):
# answered 400 with close and never forwarded either.
MALFORMED = [
    ("no_version", b"GET /echo/m\r\nHost: test\r\n\r\n"),
    ("double_space", b"GET  /echo/m HTTP/1.1\r\nHost: test\r\n\r\n"),
    ("space_in_target", b"GET /echo/m x HTTP/1.1\r\nHost: test\r\n\r\n"),
    ("lowercase_version", b"GET /echo/m http/1.1\r\nHost: test\r\n\r\n"),
    ("bad_method_char", b"G(T /echo/m HTTP/1.1\r\nHost: test\r\n\r\n"),
    ("missing_host_http11", b"GET /echo/m HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("duplicate_host", b"GET /echo/m HTTP/1.1\r\nHost: test\r\nHost: other\r\n\r\n"),
]

class Smuggling(ProxyTestCase):
  def setUp(self):
    self.up = self.start_upstream("A")
    self.proxy = self.start_proxy(yaml_out.simple(self.up.address))
    self.addr = self.proxy.addr("main")

  def check_rejected(self, data):
    """400 with a reason, connection closed, then nothing but the control request upstream."""
    self.up.clear()
    with RawConn(self.addr, timeout=3) as c:
      c.send(data)
      r = c.read_response()
      self.assertLocalError(r, 400)
      self.assertTrue(c.wait_closed(2), "connection not closed after 400")
    control = get(self.addr, "/echo/control")
    self.assertEqual(control.status, 200)
    self.assertTrue(self.up.wait_requests(1))
    seen = [(q.target, q.parse_error) for q in self.up.requests]
    self.assertEqual(seen, [("/echo/control", None)], "the upstream saw more than the control")

  def test_shapes(self):
    before = metrics.bad_requests(self.proxy.metrics())
    for name, data in SHAPES:
      with self.subTest(shape=name, bytes=data[:120]):
        self.check_rejected(data)
    after = metrics.bad_requests(self.proxy.metrics())
    self.assertEqual(after - before, len(SHAPES), "outrigger_downstream_bad_requests_total")

  def test_malformed_requests(self):
    for name, data in MALFORMED:
      with self.subTest(shape=name, bytes=data[:120]):
        self.check_rejected(data)

  def test_body_of_locally_answered_request_is_not_a_request(self):
    # A 404 (no route) for a request with a body: that body must be skipped or the connection
    # closed; it must never be parsed as the next request.
    up = self.start_upstream("B")
    p = self.start_proxy(yaml_out.config([yaml_out.route("only", "c", hosts=["test"])],
                                         [yaml_out.cluster("c", [up.address])]))
    evil = b"GET /echo/evil HTTP/1.1\r\nHost: test\r\n\r\n"
    as_chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(evil), evil)
    for framing, body in ((b"Content-Length: %d" % len(evil), evil),
                          (b"Transfer-Encoding: chunked", as_chunk)):
      with self.subTest(framing=framing):
        up.clear()
        with RawConn(p.addr("main"), timeout=3) as c:
          c.send(b"POST /x HTTP/1.1\r\nHost: nowhere\r\n" + framing + b"\r\n\r\n" + body +
                 b"GET /echo/ok HTTP/1.1\r\nHost: test\r\n\r\n")
          r = c.read_response()
          self.assertLocalError(r, 404)
          if not r.closes:
            r2 = c.read_response()
            self.assertEqual((r2.status, r2.json()["target"]), (200, "/echo/ok"))
        self.assertNotIn("/echo/evil", [q.target for q in up.requests])

  def test_chunked_is_case_insensitive(self):
    with RawConn(self.addr) as c:
      c.send(req([H, b"Transfer-Encoding: chunKed"], b"5\r\nhello\r\n0\r\n\r\n"))
      r = c.read_response()
    self.assertEqual(r.status, 200, r)
    self.assertEqual(r.json()["body"], "hello")

  def test_smuggled_request_in_body_stays_body(self):
    # A valid request whose body looks like a request: the upstream must get it as body bytes.
    with RawConn(self.addr) as c:
      c.send(req([H, b"Content-Length: %d" % len(GET_BODY)], GET_BODY))
      r = c.read_response()
      self.assertEqual(r.status, 200)
      self.assertEqual(r.json()["body"], GET_BODY.decode())
      again = c.request("GET", "/echo/after")
      self.assertEqual(again.json()["target"], "/echo/after")
    self.assertEqual([q.target for q in self.up.requests], ["/echo/smuggle", "/echo/after"])


class StrictUpstream(ProxyTestCase):
  """The harness upstream that every test's requests reach parses them strictly (RFC 9112): a
  malformed head is refused (connection closed, no answer, parse_error recorded), so a proxy bug
  that writes one fails the test that sent it instead of passing unnoticed."""

  BAD = [
      ("space_before_colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n"),
      ("space_in_name", b"GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n"),
      ("obs_fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n"),
      ("ctl_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x012\r\n\r\n"),
      ("bare_lf_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\n2\r\n\r\n"),
      ("nul_in_name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n"),
      ("no_colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n"),
      ("no_host", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"),
      ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
      ("cl_and_te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      ("cl_differ", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
      ("cl_not_digits", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\na"),
      ("double_space_request_line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
      ("version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
  ]

  def test_malformed_heads_are_refused(self):
    up = self.start_upstream("S")
    for name, data in self.BAD:
      with self.subTest(shape=name):
        up.clear()
        with RawConn(up.addr, timeout=3) as c:
          c.send(data)
          self.assertTrue(c.wait_closed(3), "connection not closed")
        self.assertTrue(up.wait_requests(1))
        self.assertIsNotNone(up.requests[0].parse_error, up.requests[0])
    # A well-formed head with the shapes a proxy legitimately writes is accepted.
    up.clear()
    with RawConn(up.addr, timeout=3) as c:
      c.send(b"GET /echo/ok HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Tab:\t v \t\r\n"
             b"X-Obs: \x80\xff\r\n\r\n")
      r = c.read_response()
    self.assertEqual(r.status, 200)
    self.assertIsNone(up.requests[0].parse_error)
    self.assertEqual(up.requests[0].header("x-tab"), "v")
    self.assertEqual(up.requests[0].header("x-empty"), "")


if __name__ == "__main__":
  unittest.main()
