"""WebSocket through outrigger (RFC 6455 over HTTP/1.1): the handshake is forwarded with its own
Upgrade and Connection, a 101 joins the client's connection to the upstream's until they close.
Real parts: python3-websocket (websocket-client) as the client, python3-websockets' asyncio
server as the upstream."""

import asyncio
import logging
import signal
import socket
import threading
import time
import unittest

import websocket  # python3-websocket
import websockets  # python3-websockets

from harness import ProxyTestCase, RawConn, build_request, get, yaml_out


# A client that vanishes (one test's point) makes the server log a traceback; not a failure.
logging.getLogger("websockets").setLevel(logging.CRITICAL)


class WsUpstream:
  """An echo server (python3-websockets) on its own event loop thread. A text message "close"
  makes it close with code 4000; "push N" makes it send N messages unasked. Records each
  handshake's path and headers."""

  def __init__(self, ssl_context=None):
    self.ssl_context = ssl_context  # TLS (wss) when set
    self.requests = []
    self.loop = asyncio.new_event_loop()
    self._ready = threading.Event()
    self._stop = None
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    if not self._ready.wait(10):
      raise RuntimeError("websocket upstream did not start")
    self.address = "127.0.0.1:%d" % self.port

  def _run(self):
    asyncio.set_event_loop(self.loop)

    async def handler(ws, path=None):
      self.requests.append((ws.path, {k.lower(): v for k, v in ws.request_headers.raw_items()}))
      if ws.path == "/greet":
        await ws.send("welcome")  # right behind the 101, often in the same segment
      async for msg in ws:
        if msg == "close":
          await ws.close(code=4000, reason="asked to")
          return
        if isinstance(msg, str) and msg.startswith("push "):
          for i in range(int(msg[5:])):
            await ws.send("pushed %d" % i)
          continue
        await ws.send(msg)

    async def main():
      self._stop = asyncio.Event()
      async with websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                  ssl=self.ssl_context) as server:
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()

    self.loop.run_until_complete(main())
    self.loop.close()

  def close(self):
    if self._stop is not None:
      self.loop.call_soon_threadsafe(self._stop.set)
    self._thread.join(5)


class WebSocketTunnel(ProxyTestCase):
  def setUp(self):
    self.ws_up = WsUpstream()
    self.addCleanup(self.ws_up.close)

  def proxy_to(self, address, **top):
    p = self.start_proxy(yaml_out.simple(address, **top))
    host, port = p.addr("main")
    return p, "ws://%s:%d" % (host, port)

  def tunnels(self, p):
    return p.metrics().get("outrigger_downstream_tunnels_active", listener="main")

  def connect(self, url, **kw):
    c = websocket.create_connection(url, timeout=5, **kw)
    self.addCleanup(c.close)
    return c

  def test_messages_both_ways_then_a_clean_close(self):
    p, url = self.proxy_to(self.ws_up.address)
    c = self.connect(url + "/chat?room=1", header=["X-Caller: test"])
    c.send("hello")
    self.assertEqual(c.recv(), "hello")
    c.send_binary(bytes(range(256)) * 4)
    self.assertEqual(c.recv(), bytes(range(256)) * 4)
    c.send("push 50")  # messages the client did not ask for, one by one
    self.assertEqual([c.recv() for _ in range(50)], ["pushed %d" % i for i in range(50)])
    self.assertEqual(self.tunnels(p), 1)
    path, headers = self.ws_up.requests[0]
    self.assertEqual(path, "/chat?room=1")
    self.assertEqual(headers["upgrade"], "websocket")
    self.assertEqual(headers["connection"].lower(), "upgrade")
    self.assertIn("sec-websocket-key", headers)  # end to end: the server's accept depends on it
    self.assertEqual(headers["x-caller"], "test")
    self.assertEqual(headers["x-forwarded-for"], "127.0.0.1")
    self.assertIn("x-request-id", headers)
    c.close()  # the close handshake goes through the tunnel, then both connections end
    self.wait_until(lambda: self.tunnels(p) == 0, 5, msg="tunnel closed")
    log = p.wait_access_log(1)
    self.assertEqual((log[0]["status"], log[0]["path"], log[0]["protocol"]),
                     (101, "/chat?room=1", "HTTP/1.1"), log)
    self.assertGreater(log[0]["bytes_received"], 1024)  # the client's frames, masked
    self.assertGreater(log[0]["bytes_sent"], 1024)

  def test_large_messages_stream_through(self):
    _, url = self.proxy_to(self.ws_up.address)
    c = self.connect(url + "/big")
    big = bytes((i * 7) % 251 for i in range(3 << 20))  # 3 MiB, many buffers' worth each way
    c.send_binary(big)
    self.assertEqual(c.recv(), big)

  def test_upstream_close_reaches_the_client(self):
    p, url = self.proxy_to(self.ws_up.address)
    c = self.connect(url + "/bye")
    c.send("close")
    opcode, data = c.recv_data(control_frame=True)
    self.assertEqual(opcode, websocket.ABNF.OPCODE_CLOSE)
    self.assertEqual(int.from_bytes(data[:2], "big"), 4000)
    self.wait_until(lambda: self.tunnels(p) == 0, 5, msg="tunnel closed")

  def test_idle_tunnel_is_closed(self):
    p, url = self.proxy_to(self.ws_up.address, limits={"idle_timeout": "1s"})
    c = self.connect(url + "/idle")
    c.send("ping")
    self.assertEqual(c.recv(), "ping")
    started = time.monotonic()
    self.wait_until(lambda: self.tunnels(p) == 0, 6, msg="idle tunnel closed")
    self.assertGreaterEqual(time.monotonic() - started, 0.9)
    c.settimeout(3)
    with self.assertRaises((websocket.WebSocketConnectionClosedException, ConnectionError,
                            OSError)):
      c.recv()  # the proxy closed the connection

  def test_a_client_that_vanishes_frees_the_upstream(self):
    p, _ = self.proxy_to(self.ws_up.address)
    hs = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
    c = RawConn(p.addr("main"))
    c.send(build_request("GET", "/gone", hs))
    head = c.read_head(keep_interim=True)  # (a 101 is a 1xx head, with no body)
    self.assertEqual(head.status, 101)
    self.assertEqual(head.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    self.assertEqual(self.tunnels(p), 1)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # a reset, no close handshake
    self.wait_until(lambda: self.tunnels(p) == 0, 5, msg="tunnel closed")

  def test_drain_ends_an_open_tunnel_at_its_deadline(self):
    """SIGTERM: a tunnel has no end of its own, so the drain's deadline closes it and the
    process exits (with the tunnel's access log line), rather than waiting for the client."""
    p, url = self.proxy_to(self.ws_up.address, drain={"delay": "0s", "timeout": "1s"})
    c = self.connect(url + "/long")
    c.send("still here")
    self.assertEqual(c.recv(), "still here")
    started = time.monotonic()
    p.signal(signal.SIGTERM)
    self.assertEqual(p.wait(timeout=8), 0)
    self.assertLess(time.monotonic() - started, 6)
    c.settimeout(3)
    with self.assertRaises((websocket.WebSocketConnectionClosedException, ConnectionError,
                            OSError)):
      c.recv()
    self.assertEqual([e["status"] for e in p.access_log if "status" in e], [101])

  def test_bytes_on_either_side_of_the_101_are_not_lost(self):
    """A frame the client sends with its handshake (before the 101) reaches the upstream, and
    one the upstream sends right behind its 101 reaches the client."""
    p, _ = self.proxy_to(self.ws_up.address)
    hs = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
    mask = b"\x01\x02\x03\x04"
    payload = b"early"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    c = RawConn(p.addr("main"))
    self.addCleanup(c.close)
    c.send(build_request("GET", "/greet", hs) + frame)
    head = c.read_head(keep_interim=True)
    self.assertEqual(head.status, 101)
    want = b"\x81\x07welcome" + b"\x81\x05early"  # the greeting, then the echo
    deadline = time.monotonic() + 5
    while len(c.buf) < len(want) and time.monotonic() < deadline:
      c._fill(deadline)
    self.assertEqual(bytes(c.buf[:len(want)]), want)

  def test_upstream_that_does_not_switch_answers_as_usual(self):
    up = self.start_upstream("plain")  # answers every request with 200, no upgrade
    p, url = self.proxy_to(up.address)
    with self.assertRaises(websocket.WebSocketBadStatusException) as cm:
      websocket.create_connection(url + "/echo/ws", timeout=5)
    self.assertEqual(cm.exception.status_code, 200)
    self.assertEqual(up.requests[0].header("upgrade"), "websocket")
    self.assertEqual(self.tunnels(p), 0)
    self.assertEqual(get(p.addr("main"), "/echo/after").status, 200)

  def test_handshakes_that_cannot_be_tunnelled_get_a_clear_answer(self):
    hs = [("Connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket/13"),
          ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
    # To an HTTP/2 cluster: no Upgrade there (RFC 8441's extended CONNECT would be needed).
    p = self.start_proxy(yaml_out.simple(self.ws_up.address, cluster_extra={"protocol": "http2"}))
    c = RawConn(p.addr("main"))
    self.addCleanup(c.close)
    c.send(build_request("GET", "/ws", hs))
    self.assertLocalError(c.read_response(), 501, "http1 cluster")
    # With a body: not a handshake anyone can complete.
    c.send(build_request("GET", "/ws", hs, body=b"data"))
    self.assertLocalError(c.read_response(), 400, "websocket handshake with a body")
    self.assertEqual(p.metrics().get("outrigger_downstream_upgrades_refused_total",
                                     listener="main"), 2)
    self.assertEqual(self.ws_up.requests, [])

  def test_other_upgrades_are_ignored(self):
    # curl --http2 on an http:// URL asks for h2c this way; an Upgrade without the Connection
    # token is not a handshake either. Both are served over HTTP/1.1, without Upgrade.
    up = self.start_upstream("plain")
    p = self.start_proxy(yaml_out.simple(up.address))
    for hs in ([("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")],
               [("Upgrade", "websocket")]):
      r = get(p.addr("main"), "/echo/plain", headers=hs)
      self.assertEqual(r.status, 200, r)
      self.assertIsNone(up.requests[-1].header("upgrade"))


if __name__ == "__main__":
  unittest.main()
