"""Real third-party helpers the tests start and stop by PID: nginx (a fast fixed-response
upstream) and dnsmasq (an authoritative answer for test names from a hosts file)."""
import os
import random
import signal
import socket
import struct
import subprocess
import tempfile
import time

NGINX = "/usr/sbin/nginx"
DNSMASQ = "/usr/sbin/dnsmasq"


def free_port(host="127.0.0.1", udp_too=False):
  """A port that is free now on host for TCP (and UDP). Racy by nature: callers retry."""
  for _ in range(50):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    if udp_too:
      u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      try:
        u.bind((host, port))
      except OSError:
        s.close()
        continue
      u.close()
    s.close()
    return port
  raise RuntimeError("no free port found")


def wait_connectable(addr, timeout, proc=None):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc is not None and proc.poll() is not None:
      return False
    try:
      socket.create_connection(addr, timeout=0.5).close()
      return True
    except OSError:
      time.sleep(0.02)  # polling the readiness signal itself (the port), bounded by deadline
  return False


class _Process:
  def __init__(self):
    self.proc = None
    self.dir = tempfile.mkdtemp(prefix=self.__class__.__name__.lower() + "-it-")

  def _log(self):
    """A fresh file for the child's stderr (a pipe nobody reads could fill and block it)."""
    return open(os.path.join(self.dir, "stderr.log"), "wb")

  def _log_text(self):
    try:
      with open(os.path.join(self.dir, "stderr.log"), "rb") as f:
        return f.read()
    except OSError:
      return b""

  def stop(self):
    if self.proc is not None and self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
      try:
        self.proc.wait(5)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait(5)
    subprocess.run(["rm", "-rf", self.dir], check=False)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.stop()


class Nginx(_Process):
  """nginx with one server per name; each answers every request with 200 "<name>\\n" and
  header x-upstream: <name>. addrs[i] is server i's (host, port)."""

  def __init__(self, names):
    super().__init__()
    self.names = list(names)
    self.addrs = []

  def start(self):
    for _attempt in range(5):
      ports = [free_port() for _ in self.names]
      servers = "\n".join(
          "  server { listen 127.0.0.1:%d reuseport; keepalive_requests 1000000;\n"
          "    location / { add_header x-upstream %s always; return 200 \"%s\\n\"; } }" %
          (p, n, n) for p, n in zip(ports, self.names))
      d = self.dir
      conf = (
          "worker_processes 1;\nerror_log %s/error.log warn;\npid %s/nginx.pid;\n"
          "events { worker_connections 1024; }\n"
          "http {\n  access_log off;\n  keepalive_timeout 60s;\n"
          "  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
          "  fastcgi_temp_path %s/fcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
          "%s\n}\n") % (d, d, d, d, d, d, d, servers)
      path = os.path.join(d, "nginx.conf")
      with open(path, "w") as f:
        f.write(conf)
      with self._log() as log:
        self.proc = subprocess.Popen(
          [NGINX, "-p", d, "-e", os.path.join(d, "error.log"), "-c", path,
           "-g", "daemon off; master_process off;"],
          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
      if all(wait_connectable(("127.0.0.1", p), 5, self.proc) for p in ports):
        self.addrs = [("127.0.0.1", p) for p in ports]
        return self
      if self.proc.poll() is None:
        self.proc.kill()
        self.proc.wait(5)
      err = self._log_text()
      try:
        with open(os.path.join(d, "error.log"), "rb") as f:
          err += f.read()
      except OSError:
        pass
      if b"Address already in use" not in err:
        raise RuntimeError("nginx did not start: %s" % err.decode(errors="replace"))
    raise RuntimeError("nginx: no free ports after 5 attempts")

  def address(self, i=0):
    return "%s:%d" % self.addrs[i]


def dns_query(server, name, timeout=0.5):
  """A records for name from server (host, port) over UDP: list of dotted quads ([] = none)."""
  qid = random.randrange(65536)
  q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
  for label in name.rstrip(".").split("."):
    q += bytes([len(label)]) + label.encode()
  q += b"\0" + struct.pack(">HH", 1, 1)
  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
  s.settimeout(timeout)
  try:
    s.sendto(q, server)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      data, _ = s.recvfrom(4096)
      if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
        return _parse_a(data)
    raise socket.timeout()
  finally:
    s.close()


def _skip_name(data, pos):
  for _ in range(128):
    n = data[pos]
    if n == 0:
      return pos + 1
    if n & 0xC0 == 0xC0:
      return pos + 2
    pos += 1 + n
  raise ValueError("name too long")


def _parse_a(data):
  _, _, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
  pos = 12
  for _ in range(qd):
    pos = _skip_name(data, pos) + 4
  out = []
  for _ in range(an):
    pos = _skip_name(data, pos)
    rtype, _, _, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
    pos += 10
    if rtype == 1 and rdlen == 4:
      out.append(socket.inet_ntoa(data[pos:pos + 4]))
    pos += rdlen
  return sorted(out)


class Dnsmasq(_Process):
  """dnsmasq answering from a hosts file on 127.0.0.1:<free port>, TTL 1s. records: name -> [ip].
  authoritative: answer AAAA for those names with NODATA, as a real resolver does; without it
  dnsmasq (having no upstream servers) answers AAAA with REFUSED."""

  def __init__(self, records, authoritative=True):
    super().__init__()
    self.authoritative = authoritative
    os.chmod(self.dir, 0o755)  # dnsmasq re-reads the hosts file after dropping root
    self.hosts = os.path.join(self.dir, "hosts")
    self.records = {}
    self._write(records)
    self.port = None

  @property
  def server(self):
    return ("127.0.0.1", self.port)

  @property
  def address(self):
    return "127.0.0.1:%d" % self.port

  def _write(self, records):
    self.records = {k: sorted(v) for k, v in records.items()}
    tmp = self.hosts + ".tmp"
    with open(tmp, "w") as f:
      for name, ips in records.items():
        for ip in ips:
          f.write("%s %s\n" % (ip, name))
    os.chmod(tmp, 0o644)
    os.replace(tmp, self.hosts)

  def start(self):
    for _attempt in range(5):
      self.port = free_port(udp_too=True)
      with self._log() as log:
        self.proc = subprocess.Popen(
          [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
           "--addn-hosts=" + self.hosts, "--local-ttl=1", "--port=%d" % self.port,
           "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
           "--log-facility=-"] + (["--local=/test/"] if self.authoritative else []),
          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=self.dir)
      if self._wait_answers(5):
        return self
      if self.proc.poll() is None:
        self.proc.kill()
        self.proc.wait(5)
      err = self._log_text()
      if b"in use" not in err:
        raise RuntimeError("dnsmasq did not start: %s" % err.decode(errors="replace"))
    raise RuntimeError("dnsmasq: no free port after 5 attempts")

  def _wait_answers(self, timeout):
    """Until every name answers with exactly its records (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self.proc.poll() is not None:
        return False
      try:
        if all(dns_query(self.server, n) == ips for n, ips in self.records.items()):
          return True
      except OSError:
        pass
      time.sleep(0.05)  # polling the readiness signal itself (a DNS answer), bounded
    return False

  def set_records(self, records, timeout=5):
    """Rewrites the hosts file, SIGHUPs dnsmasq, and waits until it answers the new records."""
    self._write(records)
    self.proc.send_signal(signal.SIGHUP)
    if not self._wait_answers(timeout):
      raise RuntimeError("dnsmasq did not serve %r within %ss" % (records, timeout))
