"""Runs the real outrigger binary: config in a temp dir, ports learned from its JSON stderr lines,
access log captured from stdout, signals and shutdown by PID.

Thread affinity: two reader threads per process (stdout, stderr) append to lists guarded by one
condition; everything else is called from the test thread.
"""
import glob
import json
import os
import signal as _signal
import subprocess
import tempfile
import threading
import time

from . import client
from .metrics import Metrics
from .yaml_out import to_yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


class ProxyError(Exception):
  pass


def binary():
  """The binary under test: $OUTRIGGER_BIN, else the newest build/*/proxy/outrigger."""
  b = os.environ.get("OUTRIGGER_BIN")
  if b:
    if not os.access(b, os.X_OK):
      raise ProxyError("OUTRIGGER_BIN=%s is not an executable file" % b)
    return b
  found = [p for p in glob.glob(os.path.join(REPO, "build", "*", "proxy", "outrigger"))
           if os.access(p, os.X_OK)]
  if not found:
    raise ProxyError("no outrigger binary: set OUTRIGGER_BIN or build the `outrigger` target")
  return max(found, key=os.path.getmtime)


_sanitized = None


def sanitized():
  """True when the binary is built with AddressSanitizer (memory bounds do not apply then)."""
  global _sanitized
  if _sanitized is None:
    try:
      with open(binary(), "rb") as f:
        _sanitized = b"__asan_init" in f.read()
    except (OSError, ProxyError):
      _sanitized = False
  return _sanitized


# After this many starts that never logged "ready" (while the process kept running), later starts
# in the same test process fail at once: a binary that hangs must not cost every test 10 s.
_HUNG_STARTS_LIMIT = 2
_hung_starts = 0


def parse_address(text):
  host, _, port = text.rpartition(":")
  return (host.strip("[]"), int(port))


class Proxy:
  """One outrigger process. Either config (dict or YAML text, run mode) or argv (the arguments
  after the binary, e.g. ["reverse-proxy", "--listen", ...])."""

  def __init__(self, config=None, argv=None, workdir=None, env=None):
    if (config is None) == (argv is None):
      raise ValueError("give exactly one of config or argv")
    self._own_dir = workdir is None
    self.workdir = workdir or tempfile.mkdtemp(prefix="outrigger-it-")
    self.config_path = os.path.join(self.workdir, "outrigger.yaml")
    if config is not None:
      self.write_config(config)
      argv = ["run", "--config", self.config_path]
    self.argv = [binary()] + list(argv)
    self.env = dict(os.environ, **(env or {}))
    self.proc = None
    self.listeners = {}  # name -> (host, port)
    self.logs = []  # stderr lines: dicts (JSON) or {"raw": text}
    self.access_log = []  # stdout lines: dicts (JSON) or {"raw": text}
    self._cv = threading.Condition()
    self._ready = False
    self._stderr_eof = False
    self._readers = []
    self.returncode = None
    self.killed = False

  # ---- lifecycle
  def write_config(self, config):
    text = config if isinstance(config, str) else to_yaml(config) + "\n"
    tmp = self.config_path + ".tmp"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, self.config_path)  # a reload never sees a half-written file

  def start(self, ready_timeout=10.0):
    global _hung_starts
    if _hung_starts >= _HUNG_STARTS_LIMIT:
      raise ProxyError("outrigger never logged \"ready\" in %d earlier starts; not waiting again"
                       % _hung_starts)
    self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=self.env, cwd=self.workdir)
    for pipe, fn in ((self.proc.stderr, self._on_stderr), (self.proc.stdout, self._on_stdout)):
      t = threading.Thread(target=self._read, args=(pipe, fn), daemon=True)
      t.start()
      self._readers.append(t)
    deadline = time.monotonic() + ready_timeout
    with self._cv:
      while not self._ready:
        if self._stderr_eof or self.proc.poll() is not None:
          break
        left = deadline - time.monotonic()
        if left <= 0:
          break
        self._cv.wait(min(left, 0.2))
    if not self._ready:
      exited = self.proc.poll()
      self.stop(timeout=2)
      if exited is not None:
        why = "exited with code %s before logging \"ready\"" % exited
      else:
        why = "did not log \"ready\" within %.0fs" % ready_timeout
        _hung_starts += 1
      raise ProxyError("outrigger %s\n  argv: %s\n  stderr:\n%s\n  stdout:\n%s" % (
          why, " ".join(self.argv), self.stderr_text() or "    (empty)",
          "\n".join(json.dumps(x) for x in self.access_log[:20]) or "    (empty)"))
    return self

  def __enter__(self):
    if self.proc is None:
      self.start()
    return self

  def __exit__(self, *exc):
    self.stop()

  def _read(self, pipe, fn):
    for line in iter(pipe.readline, b""):
      text = line.decode("utf-8", "replace").rstrip("\n")
      try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
          obj = {"raw": text}
      except ValueError:
        obj = {"raw": text}
      fn(obj)
    if fn == self._on_stderr:
      with self._cv:
        self._stderr_eof = True
        self._cv.notify_all()

  def _on_stderr(self, obj):
    with self._cv:
      self.logs.append(obj)
      if obj.get("msg") == "listening" and "listener" in obj and "address" in obj:
        try:
          self.listeners[obj["listener"]] = parse_address(obj["address"])
        except ValueError:
          pass
      if obj.get("msg") == "ready":
        self._ready = True
      self._cv.notify_all()

  def _on_stdout(self, obj):
    with self._cv:
      self.access_log.append(obj)
      self._cv.notify_all()

  @property
  def pid(self):
    return self.proc.pid

  def running(self):
    return self.proc is not None and self.proc.poll() is None

  def signal(self, sig):
    if self.running():
      os.kill(self.proc.pid, sig)

  def wait(self, timeout=10.0):
    """Waits for exit; returns the exit code; raises TimeoutError."""
    try:
      self.returncode = self.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      raise TimeoutError("outrigger (pid %d) still running after %.1fs" %
                         (self.proc.pid, timeout)) from None
    for t in self._readers:
      t.join(2)
    return self.returncode

  def stop(self, timeout=10.0):
    """SIGTERM, then SIGKILL after timeout. Returns the exit code. Idempotent."""
    if self.proc is None:
      return None
    if self.proc.poll() is None:
      try:
        os.kill(self.proc.pid, _signal.SIGTERM)
      except ProcessLookupError:
        pass
      try:
        self.proc.wait(timeout=timeout)
      except subprocess.TimeoutExpired:
        self.killed = True
        os.kill(self.proc.pid, _signal.SIGKILL)
        self.proc.wait(timeout=10)
    self.returncode = self.proc.returncode
    for t in self._readers:
      t.join(2)
    for p in (self.proc.stdout, self.proc.stderr):
      try:
        p.close()
      except OSError:
        pass
    if self._own_dir:
      subprocess.run(["rm", "-rf", self.workdir], check=False)
      self._own_dir = False
    return self.returncode

  # ---- addresses
  def addr(self, listener=None):
    """(host, port) of a data listener; with no name, the only non-admin listener."""
    with self._cv:
      if listener is not None:
        return self.listeners[listener]
      data = {k: v for k, v in self.listeners.items() if k != "admin"}
    if len(data) == 1:
      return next(iter(data.values()))
    if "main" in data:
      return data["main"]
    raise ProxyError("ambiguous or no data listener: %r" % self.listeners)

  @property
  def admin_addr(self):
    return self.listeners["admin"]

  def url(self, path="/", listener=None):
    h, p = self.addr(listener)
    return "http://%s:%d%s" % (h, p, path)

  # ---- admin
  def admin_get(self, path, timeout=5.0):
    return client.get(self.admin_addr, path, host="127.0.0.1", timeout=timeout)

  def metrics(self):
    r = self.admin_get("/metrics")
    if r.status != 200:
      raise ProxyError("/metrics answered %d" % r.status)
    return Metrics(r.text())

  # ---- logs
  def stderr_text(self):
    with self._cv:
      return "\n".join("    " + (x["raw"] if set(x) == {"raw"} else json.dumps(x))
                       for x in self.logs[-60:])

  def log_mark(self):
    with self._cv:
      return len(self.logs)

  def wait_log(self, msg, since=0, timeout=5.0, level=None):
    """The first stderr JSON line with this msg (and level) at index >= since, or None."""
    deadline = time.monotonic() + timeout
    with self._cv:
      while True:
        for x in self.logs[since:]:
          if x.get("msg") == msg and (level is None or x.get("level") == level):
            return x
        left = deadline - time.monotonic()
        if left <= 0 or self._stderr_eof:
          return None
        self._cv.wait(left)

  def wait_access_log(self, count, timeout=5.0):
    """Waits for at least count access log lines; returns a copy of them."""
    deadline = time.monotonic() + timeout
    with self._cv:
      while len(self.access_log) < count:
        left = deadline - time.monotonic()
        if left <= 0:
          break
        self._cv.wait(left)
      return list(self.access_log)

  # ---- reload
  def reload(self, config, timeout=5.0):
    """Writes config, sends SIGHUP, returns the "config reloaded"/"config reload failed" line."""
    mark = self.log_mark()
    self.write_config(config)
    self.signal(_signal.SIGHUP)
    deadline = time.monotonic() + timeout
    with self._cv:
      while True:
        for x in self.logs[mark:]:
          if x.get("msg") in ("config reloaded", "config reload failed"):
            return x
        left = deadline - time.monotonic()
        if left <= 0 or self._stderr_eof:
          return None
        self._cv.wait(left)

  # ---- memory
  def _status_kb(self, field):
    with open("/proc/%d/status" % self.proc.pid) as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
    raise ProxyError("no %s in /proc/%d/status" % (field, self.proc.pid))

  def rss_kb(self):
    return self._status_kb("VmRSS")

  def hwm_kb(self):
    return self._status_kb("VmHWM")


class RssSampler:
  """Samples a process's VmRSS every interval seconds on a thread, keeping the maximum."""

  def __init__(self, proxy, interval=0.05):
    self.proxy = proxy
    self.interval = interval
    self.max_kb = 0
    self.samples = 0
    self._stop = threading.Event()
    self._t = threading.Thread(target=self._run, daemon=True)

  def __enter__(self):
    self._t.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._t.join(2)

  def _run(self):
    while not self._stop.is_set():
      try:
        self.max_kb = max(self.max_kb, self.proxy.rss_kb())
        self.samples += 1
      except (OSError, ProxyError):
        return
      self._stop.wait(self.interval)
