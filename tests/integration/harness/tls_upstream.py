"""A real HTTPS upstream (Python's ssl + http.server) that answers every request with JSON
describing what it saw: method, path, headers, the client certificate's SANs, TLS version.
Used to test TLS origination (SNI, chain and SAN checks, client certificates, resumption)."""
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"

  def log_message(self, *args):  # quiet
    pass

  def setup(self):
    super().setup()
    # The handshake now (not on the first read), so that the ALPN choice is recorded even when
    # the client then speaks a protocol this server does not (an h2 preface).
    self.connection.do_handshake()
    with self.server.owner.lock:
      self.server.owner.selected.append(self.connection.selected_alpn_protocol())

  def _answer(self):
    n = int(self.headers.get("content-length") or 0)
    body = self.rfile.read(n) if n else b""
    sans = []
    try:
      cert = self.connection.getpeercert()
      sans = [list(x) for x in (cert or {}).get("subjectAltName", ())]
    except (ValueError, AttributeError):
      pass
    out = json.dumps({
        "method": self.command,
        "path": self.path,
        "version": self.request_version,
        "alpn": self.connection.selected_alpn_protocol(),
        "headers": [[k.lower(), v] for k, v in self.headers.items()],
        "client_sans": sans,
        "tls_version": self.connection.version(),
        "sni": getattr(self.connection, "outrigger_sni", None),
        "body_len": len(body),
    }).encode()
    self.server.owner._count(self.connection, self.path)
    self.send_response(200)
    self.send_header("content-type", "application/json")
    self.send_header("content-length", str(len(out)))
    if self.path.startswith("/close"):
      self.send_header("connection", "close")
      self.close_connection = True
    self.end_headers()
    self.wfile.write(out)

  do_GET = do_POST = do_PUT = _answer


class _Server(ThreadingHTTPServer):
  daemon_threads = True
  allow_reuse_address = True

  def handle_error(self, request, client_address):
    pass  # refused handshakes are what the tests provoke; the proxy's side is asserted

  def get_request(self):
    sock, addr = self.socket.accept()
    # The handshake happens in the handler thread (its setup), never in the accept loop.
    tls = self.owner.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    with self.owner.lock:
      self.owner.socks.append(tls)
    return tls, addr


class TlsUpstream:
  """cert/key: the chain we present; client_ca: verify client certificates when given
  (require_client_cert makes one mandatory); port: 0 for any (a fixed one lets a test restart a
  server in place); alpn: the protocols it accepts, its own preference first (OpenSSL's
  SSL_select_next_proto); None or (): it takes part in no ALPN. `selected` lists the ALPN choice
  of each connection in order (None: no ALPN)."""

  def __init__(self, cert, key, client_ca=None, require_client_cert=False, host="127.0.0.1",
               port=0, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if alpn:
      ctx.set_alpn_protocols(list(alpn))
    if client_ca:
      ctx.load_verify_locations(client_ca)
      ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL

    def on_sni(sslobj, name, _ctx):
      sslobj.outrigger_sni = name
    ctx.sni_callback = on_sni
    self.ctx = ctx
    self.lock = threading.Lock()
    self.requests = 0
    self.paths = []  # of every request answered, in order
    self.connections = set()
    self.socks = []  # accepted connections, shut down by close()
    self.selected = []
    self.server = _Server((host, port), _Handler)
    self.server.owner = self
    self.port = self.server.server_address[1]
    self.address = "%s:%d" % (host, self.port)
    self._t = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                               daemon=True)
    self._t.start()

  def _count(self, conn, path):
    with self.lock:
      self.requests += 1
      self.paths.append(path)
      self.connections.add(id(conn))

  def close(self):
    """Stops listening and ends the connections it accepted (like a server process exiting)."""
    self.server.shutdown()
    self.server.server_close()
    with self.lock:
      socks, self.socks = self.socks, []
    for sock in socks:
      try:
        sock.shutdown(socket.SHUT_RDWR)
      except OSError:
        pass


class SilentServer:
  """Accepts TCP connections (the kernel does, via the backlog) and never says a word: a TLS
  handshake to it can only time out."""

  def __init__(self, host="127.0.0.1"):
    self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    self.sock.bind((host, 0))
    self.sock.listen(64)
    self.address = "%s:%d" % self.sock.getsockname()

  def close(self):
    self.sock.close()
