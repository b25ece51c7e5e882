#!/usr/bin/env python3
"""The local mesh: the AWS layout of infra/ with real processes and real networking (no Docker).

  mesh.py up [--variant auto|plain|mtls] [--bin PATH]   build it, print its id, leave it running
  mesh.py status [ID]                                    what runs, where
  mesh.py down [ID | --all]                              remove everything (idempotent)
  mesh.py demo [--variant ...] [--oneshot]               up, calls both ways, report, down on exit

Network namespaces are the "accounts" (topology.json is the one description):

  consumer VPC 10.1.0.0/24          transit ("the AWS network")           provider VPC 10.2.0.0/24
  account 111111111111              no IP forwarding: only the hops       account 222222222222
  checkout app :8080                cross it                              orders app :8080
  outrigger 15001 out / 15000 in    10.1.0.2, 10.2.0.2  dnsmasq (VPC DNS) outrigger 15000 in / 15001 out
  10.1.0.10 ──veth── 10.1.0.1       10.1.0.50:443  PrivateLink-like L4 relay ─► 10.2.0.10:15000
                                    169.254.171.10:443  Lattice-like front (TLS, SigV4)
                                        ─► 10.1.0.10:15000              10.2.0.1 ──veth── 10.2.0.10

checkout calls orders through the PrivateLink-like endpoint (orders.pl.mesh.internal); orders
calls checkout through the Lattice-like service (checkout.lattice.mesh.internal). Every resource
is named orm<id>... (namespaces orm<id>-cons/-prov/-tran, veths orm<id>c/tc/p/tp), every process
is started by this script with its PID recorded in /tmp/outrigger-mesh-<id>/state.json, and
`down` removes exactly those: processes (by PID, then anything left inside our namespaces),
namespaces (their veths go with them), /etc/netns/<ns>/ (the per-namespace resolv.conf) and the
run directory. Needs root (ip netns). Stdlib only; lattice.py needs botocore.
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TOPOLOGY = os.path.join(HERE, "topology.json")
APP = os.path.join(REPO, "examples", "app", "app.py")
RUN_BASE = "/tmp"
RUN_PREFIX = "outrigger-mesh-"
NAME_RE = re.compile(r"^orm([0-9a-f]{5})-(cons|prov|tran)$")
ROLES = {"consumer": "cons", "provider": "prov", "transit": "tran"}
SYSTEM_PY = "/usr/bin/python3"  # Debian's, with python3-botocore (lattice.py needs it)


class MeshError(Exception):
  pass


def load_topology():
  with open(TOPOLOGY) as f:
    return json.load(f)


def run(argv, check=True, timeout=30, capture=True, env=None):
  p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=capture, text=True,
                     timeout=timeout, env=env)
  if check and p.returncode != 0:
    raise MeshError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                         (p.stderr or p.stdout or "").strip()[:2000]))
  return p


def find_binary():
  b = os.environ.get("OUTRIGGER_BIN")
  if b:
    return b
  found = [os.path.join(REPO, "build", d, "proxy", "outrigger")
           for d in os.listdir(os.path.join(REPO, "build"))] if os.path.isdir(
               os.path.join(REPO, "build")) else []
  found = [p for p in found if os.access(p, os.X_OK)]
  if not found:
    raise MeshError("no outrigger binary: pass --bin or set OUTRIGGER_BIN")
  return max(found, key=os.path.getmtime)


def has_pki(binary):
  """The mTLS variant needs `outrigger pki` (certificates) and TLS listeners in the binary."""
  p = run([binary, "--help"], check=False)
  return re.search(r"^\s*outrigger pki\b", p.stdout + p.stderr, re.M) is not None


def pid_alive(pid):
  try:
    os.kill(pid, 0)
    return True
  except ProcessLookupError:
    return False
  except PermissionError:
    return True


def pid_cmdline(pid):
  try:
    with open("/proc/%d/cmdline" % pid, "rb") as f:
      return f.read().split(b"\0")
  except OSError:
    return []


def pid_start_time(pid):
  """Field 22 of /proc/PID/stat: tells a recycled PID from ours."""
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


class Mesh:
  """One mesh instance. Mesh(...).up() builds it; down() removes it; Mesh.attach(id) finds a
  running one (for `down`/`status` from another process, or a test)."""

  def __init__(self, binary=None, variant="auto", run_id=None, verbose=False):
    self.topo = load_topology()
    self.id = run_id or secrets.token_hex(3)[:5]
    if not re.fullmatch(r"[0-9a-f]{5}", self.id):
      raise MeshError("bad mesh id %r (five hex digits)" % self.id)
    self.prefix = "orm" + self.id
    self.run_dir = os.path.join(RUN_BASE, RUN_PREFIX + self.id)
    self.ns = {role: "%s-%s" % (self.prefix, short) for role, short in ROLES.items()}
    self.binary = binary
    self.requested_variant = variant
    self.variant = None
    self.lattice_auth = None
    self.verbose = verbose
    self.procs = {}  # name -> {"pid", "start", "ns", "argv", "log"}
    self.owner = None  # {"pid", "start"} of a process whose exit orphans the mesh (tests, demo)
    self.python = SYSTEM_PY if os.access(SYSTEM_PY, os.X_OK) else sys.executable

  # ------------------------------------------------------------------ state
  @property
  def state_path(self):
    return os.path.join(self.run_dir, "state.json")

  def _save(self):
    if not os.path.isdir(self.run_dir):
      return
    tmp = self.state_path + ".tmp"
    with open(tmp, "w") as f:
      json.dump({"id": self.id, "variant": self.variant, "lattice_auth": self.lattice_auth,
                 "binary": self.binary, "namespaces": self.ns, "procs": self.procs,
                 "owner": self.owner}, f, indent=1, sort_keys=True)
    os.replace(tmp, self.state_path)

  @classmethod
  def attach(cls, run_id):
    m = cls(run_id=run_id)
    try:
      with open(m.state_path) as f:
        st = json.load(f)
      m.variant = st.get("variant")
      m.lattice_auth = st.get("lattice_auth")
      m.binary = st.get("binary")
      m.procs = st.get("procs", {})
      m.owner = st.get("owner")
    except (OSError, ValueError):
      pass  # a half-built mesh: names are derived from the id, so down() still finds them
    return m

  def log(self, msg):
    if self.verbose:
      print("mesh %s: %s" % (self.id, msg), file=sys.stderr, flush=True)

  # ------------------------------------------------------------------ helpers
  def account(self, role):
    return self.topo["accounts"][role]

  def account_dir(self, role):
    return os.path.join(self.run_dir, role)

  def netns_exec(self, role, argv):
    return ["ip", "netns", "exec", self.ns[role]] + list(argv)

  def ns_run(self, role, argv, check=True, timeout=30):
    return run(self.netns_exec(role, argv), check=check, timeout=timeout)

  def spawn(self, name, role, argv, env=None, cwd=None):
    """Starts argv inside a namespace (ip netns exec execs it: the PID is the program's own),
    stdout and stderr to files in the run dir. Recorded before anything else can fail."""
    out = os.path.join(self.run_dir, "logs", name + ".out")
    err = os.path.join(self.run_dir, "logs", name + ".err")
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    base.update(env or {})
    with open(out, "ab") as o, open(err, "ab") as e:
      p = subprocess.Popen(self.netns_exec(role, argv), stdin=subprocess.DEVNULL, stdout=o,
                           stderr=e, env=base, cwd=cwd or self.run_dir, start_new_session=True)
    self.procs[name] = {"pid": p.pid, "start": pid_start_time(p.pid), "ns": self.ns[role],
                        "role": role, "argv": list(argv), "out": out, "err": err}
    self._save()
    self._popen = getattr(self, "_popen", {})
    self._popen[name] = p
    return p

  def proc_alive(self, name):
    info = self.procs.get(name)
    if not info:
      return False
    pid = info["pid"]
    popen = getattr(self, "_popen", {}).get(name)
    if popen is not None:
      return popen.poll() is None
    return pid_alive(pid) and pid_start_time(pid) == info["start"]

  def wait_log(self, name, msg, timeout, stream="out"):
    """Until the process logs a JSON line with this msg (bounded); raises with its logs."""
    path = self.procs[name][stream]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      try:
        with open(path) as f:
          for line in f:
            if ('"msg": "%s"' % msg) in line or ('"msg":"%s"' % msg) in line:
              return
      except OSError:
        pass
      if not self.proc_alive(name):
        break
      time.sleep(0.05)
    raise MeshError("%s did not log %r within %ss\n%s" % (name, msg, timeout, self.tail(name)))

  def tail(self, name, lines=30):
    out = []
    for stream in ("err", "out"):
      try:
        with open(self.procs[name][stream], errors="replace") as f:
          out += ["  %s %s| %s" % (name, stream, x.rstrip()) for x in f.readlines()[-lines:]]
      except (OSError, KeyError):
        pass
    return "\n".join(out)

  def http(self, role, url, method="GET", headers=(), data=None, proxy=None, timeout=8,
           extra=()):
    """curl inside an account's namespace. Returns {"status", "headers", "body", "ms"};
    status 0 with "error" when curl itself failed (refused, reset, timeout)."""
    marker = "\n__mesh_curl__"
    argv = ["curl", "-sS", "-i", "-m", str(timeout), "-X", method, "-w",
            marker + "%{http_code} %{time_total}"]
    for h in headers:
      argv += ["-H", h]
    if data is not None:
      argv += ["--data-binary", data]
    if proxy:
      argv += ["-x", proxy]
    argv += list(extra) + [url]
    p = subprocess.run(self.netns_exec(role, argv), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout + 10)
    out = p.stdout.decode("utf-8", "replace")  # bytes: keep the CRLFs of the head
    p.stderr = p.stderr.decode("utf-8", "replace")
    head, _, tail = out.rpartition(marker)
    code, _, secs = tail.strip().partition(" ")
    resp = {"status": 0, "headers": {}, "body": "", "ms": None}
    if p.returncode != 0 or not code.isdigit() or int(code) == 0:
      resp["error"] = (p.stderr or "").strip() or "curl exit %d" % p.returncode
      return resp
    resp["ms"] = round(float(secs) * 1000, 1)
    text = head
    while True:  # skip interim 1xx heads
      block, _, rest = text.partition("\r\n\r\n")
      first = block.split("\r\n", 1)[0]
      if re.match(r"HTTP/\S+ 1\d\d", first) and rest:
        text = rest
        continue
      break
    lines = block.split("\r\n")
    resp["status"] = int(lines[0].split()[1])
    for line in lines[1:]:
      k, _, v = line.partition(":")
      resp["headers"][k.strip().lower()] = v.strip()
    resp["body"] = rest
    return resp

  # ------------------------------------------------------------------ up
  def up(self, ready_timeout=20, owned=True):
    """owned: the mesh belongs to this process (a test, the demo); if it dies without down(),
    sweep_orphans() removes the mesh later. `mesh.py up` passes False (it exits at once)."""
    if os.geteuid() != 0:
      raise MeshError("the mesh needs root (network namespaces)")
    if shutil.which("ip") is None or not os.path.exists("/usr/sbin/dnsmasq"):
      raise MeshError("the mesh needs iproute2 and dnsmasq (scripts/install-deps.sh)")
    self.binary = os.path.abspath(self.binary or find_binary())
    if self.requested_variant == "auto":
      self.variant = self.topo["default_variant"] if has_pki(self.binary) else "plain"
    else:
      self.variant = self.requested_variant
    if os.path.exists(self.run_dir):
      raise MeshError("%s exists already (mesh %s is up?)" % (self.run_dir, self.id))
    if owned:
      self.owner = {"pid": os.getpid(), "start": pid_start_time(os.getpid())}
    try:
      self._up(ready_timeout)
    except BaseException:
      self.down()
      raise
    return self

  def _up(self, ready_timeout):
    t = self.topo
    os.makedirs(os.path.join(self.run_dir, "logs"))
    os.chmod(self.run_dir, 0o755)  # dnsmasq reads its hosts file after dropping root
    for d in ("/run/netns", "/etc/netns"):
      if not os.path.isdir(d):  # made by the first mesh; removed by the last one that leaves it empty
        with open(created_marker(d), "w") as f:
          f.write("%s was created by outrigger mesh %s\n" % (d, self.id))
    self._save()
    self.log("variant %s, binary %s" % (self.variant, self.binary))

    # Namespaces, links, addresses, routes.
    for role in ("transit", "consumer", "provider"):
      run(["ip", "netns", "add", self.ns[role]])
      self._save()
      run(["ip", "-n", self.ns[role], "link", "set", "lo", "up"])
    tran = self.ns["transit"]
    run(["ip", "netns", "exec", tran, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
    for role, short in (("consumer", "c"), ("provider", "p")):
      a = self.account(role)
      inner, outer = self.prefix + short, self.prefix + "t" + short
      mask = a["cidr"].split("/")[1]
      run(["ip", "link", "add", inner, "netns", self.ns[role], "type", "veth", "peer", "name",
           outer, "netns", tran])
      run(["ip", "-n", self.ns[role], "addr", "add", "%s/%s" % (a["task_ip"], mask), "dev", inner])
      run(["ip", "-n", self.ns[role], "link", "set", inner, "up"])
      run(["ip", "-n", self.ns[role], "route", "add", "default", "via", a["gateway"]])
      for ip in (a["gateway"], a["resolver"]):
        run(["ip", "-n", tran, "addr", "add", "%s/%s" % (ip, mask), "dev", outer])
      run(["ip", "-n", tran, "link", "set", outer, "up"])
    pl = t["hops"]["privatelink"]
    lat = t["hops"]["lattice"]
    pl_ip = pl["listen"].rsplit(":", 1)[0]
    lat_ip = lat["listen"].rsplit(":", 1)[0]
    mask = self.account(pl["from"])["cidr"].split("/")[1]
    run(["ip", "-n", tran, "addr", "add", "%s/%s" % (pl_ip, mask), "dev",
         self.prefix + "tc"])  # the interface endpoint's ENI, in the consumer subnet
    run(["ip", "-n", tran, "addr", "add", lat_ip + "/32", "dev", "lo"])  # link-local, as Lattice

    # DNS: dnsmasq in transit answers on each VPC's resolver address (.2, as the VPC resolver);
    # each account's namespace gets a resolv.conf pointing at it (ip netns exec bind-mounts
    # /etc/netns/<ns>/resolv.conf over /etc/resolv.conf).
    dns_dir = os.path.join(self.run_dir, "dns")
    os.makedirs(dns_dir)
    os.chmod(dns_dir, 0o755)
    hosts = os.path.join(dns_dir, "hosts")
    with open(hosts, "w") as f:
      for name in pl["names"]:
        f.write("%s %s\n" % (pl_ip, name))
      for name in lat["names"]:
        f.write("%s %s\n" % (lat_ip, name))
    os.chmod(hosts, 0o644)
    for role in ("consumer", "provider"):
      d = os.path.join("/etc/netns", self.ns[role])
      os.makedirs(d, exist_ok=True)
      with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write("# outrigger mesh %s (removed by mesh.sh down)\nnameserver %s\n"
                "options timeout:1 attempts:2\n" % (self.id, self.account(role)["resolver"]))
    self._save()
    dnsmasq = ["/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
               "--no-hosts", "--addn-hosts=" + hosts, "--local-ttl=5", "--port=53",
               "--bind-interfaces", "--pid-file=", "--log-facility=-", "--log-queries"]
    dnsmasq += ["--listen-address=" + self.account(r)["resolver"] for r in ("consumer", "provider")]
    for zone in ("mesh.internal", "amazonaws.com", "on.aws"):
      dnsmasq.append("--local=/%s/" % zone)  # authoritative: never forwarded anywhere
    self.spawn("dnsmasq", "transit", dnsmasq)

    # Certificates (mTLS variant): one dev CA, a certificate per service, the Lattice front's
    # server certificate (network account) and an outsider from a non-allowed account.
    if self.variant in ("mtls", "aws"):
      self._pki()

    # Per account: config (verbatim), app, sidecar.
    for role in ("consumer", "provider"):
      a = self.account(role)
      d = self.account_dir(role)
      os.makedirs(d, exist_ok=True)
      cfg = os.path.join(d, "outrigger.yaml")
      shutil.copyfile(os.path.join(HERE, t["configs"][self.variant][role]), cfg)
      run([self.binary, "validate", "--config", cfg])
      self.start_app(role, wait=False)
    for role in ("consumer", "provider"):
      self.wait_app(role, ready_timeout)  # before the sidecars: their health checks see it up
      self.start_sidecar(role, wait=False)

    # The hops.
    self.spawn("privatelink", "transit", [self.python, os.path.join(HERE, "relay.py"),
                                          "--listen", pl["listen"], "--to", pl["target"],
                                          "--name", "privatelink"])
    with open(os.path.join(HERE, t["configs"][self.variant]["provider"])) as f:
      provider_cfg = f.read()
    # The front checks every signature it gets; it requires one once the provider's sidecar
    # signs (the `lattice` cluster kind), and lets unsigned requests through until then.
    self.lattice_auth = "iam" if re.search(r"^\s*type:\s*lattice\b", provider_cfg, re.M) \
        else "optional"
    argv = [self.python, os.path.join(HERE, "lattice.py"), "--topology", TOPOLOGY,
            "--listen", lat["listen"], "--to", lat["target"], "--auth", self.lattice_auth]
    if self.variant in ("mtls", "aws"):
      pki = os.path.join(self.run_dir, "pki")
      argv += ["--cert", os.path.join(pki, "lattice.pem"), "--key",
               os.path.join(pki, "lattice.key"), "--to-ca", os.path.join(pki, "bundle.pem"),
               "--to-sni", self.account(lat["to"])["service"]]
    self.spawn("lattice", "transit", argv)
    self._save()

    # Ready: every process says so, DNS answers in each VPC, apps answer /health.
    self.wait_log("privatelink", "listening", ready_timeout)
    self.wait_log("lattice", "listening", ready_timeout)
    for role in ("consumer", "provider"):
      self.wait_log(role + "-sidecar", "ready", ready_timeout, stream="err")
    deadline = time.monotonic() + ready_timeout
    for role, name in (("consumer", pl["names"][0]), ("provider", lat["names"][0])):
      while True:
        p = self.ns_run(role, ["getent", "ahostsv4", name], check=False, timeout=10)
        if p.returncode == 0:
          break
        if time.monotonic() > deadline or not self.proc_alive("dnsmasq"):
          raise MeshError("DNS: %s does not resolve in %s\n%s" % (name, role, self.tail("dnsmasq")))
        time.sleep(0.1)
    self.log("up")

  def _pki(self):
    t = self.topo
    pki = os.path.join(self.run_dir, "pki")
    run([self.binary, "pki", "init", pki])
    pl, lat = t["hops"]["privatelink"], t["hops"]["lattice"]
    issue = lambda *a: run([self.binary, "pki", "issue", pki] + list(a))
    for role in ("consumer", "provider"):
      a = self.account(role)
      extra = []
      if role == pl["to"]:
        for n in pl["names"]:
          extra += ["--dns", n]
      issue("--name", a["service"], "--account", a["account_id"], *extra)
      d = os.path.join(self.account_dir(role), "certs")
      os.makedirs(d)
      for f in ("bundle.pem", a["service"] + ".pem", a["service"] + ".key"):
        shutil.copyfile(os.path.join(pki, f), os.path.join(d, f))
        os.chmod(os.path.join(d, f), 0o600 if f.endswith(".key") else 0o644)
    lat_dns = []
    for n in lat["names"]:
      lat_dns += ["--dns", n]
    issue("--name", "lattice", "--account", lat["network_account_id"], "--server", *lat_dns)
    o = t["outsider"]
    issue("--name", o["service"], "--account", o["account_id"], "--client")

  # ------------------------------------------------------------------ apps and sidecars
  def start_app(self, role, wait=True):
    a = self.account(role)
    port = self.topo["ports"]
    self.spawn(role + "-app", role,
               [self.python, APP, "--listen", "127.0.0.1:%d" % port["app"], "--name", a["service"]],
               env={"HTTP_PROXY": "http://127.0.0.1:%d" % port["outbound"],
                    "http_proxy": "http://127.0.0.1:%d" % port["outbound"],
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    if wait:
      self.wait_app(role, 20)

  def wait_app(self, role, timeout):
    deadline = time.monotonic() + timeout
    url = "http://127.0.0.1:%d/health" % self.topo["ports"]["app"]
    while True:
      if self.http(role, url, timeout=2)["status"] == 200:
        return
      if time.monotonic() > deadline or not self.proc_alive(role + "-app"):
        raise MeshError("%s app not healthy\n%s" % (role, self.tail(role + "-app")))
      time.sleep(0.1)

  def start_sidecar(self, role, wait=True):
    a = self.account(role)
    c = a["credentials"]
    name = role + "-sidecar"
    self.spawn(name, role, [self.binary, "run", "--config",
                            os.path.join(self.account_dir(role), "outrigger.yaml")],
               env={"AWS_ACCESS_KEY_ID": c["access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": c["secret_access_key"],
                    "AWS_REGION": self.topo["region"], "OUTRIGGER_SERVICE": a["service"]},
               cwd=self.account_dir(role))
    if wait:
      self.wait_log(name, "ready", 20, stream="err")

  def stop_proc(self, name, sig=signal.SIGTERM, timeout=15):
    """Signals one of our processes by PID and waits for it (SIGKILL after timeout)."""
    info = self.procs.get(name)
    if not info or not self.proc_alive(name):
      return None
    os.kill(info["pid"], sig)
    return self.wait_proc(name, timeout)

  def wait_proc(self, name, timeout):
    info = self.procs[name]
    popen = getattr(self, "_popen", {}).get(name)
    deadline = time.monotonic() + timeout
    while self.proc_alive(name):
      if time.monotonic() > deadline:
        os.kill(info["pid"], signal.SIGKILL)
        if popen is not None:
          popen.wait(10)
        return "killed"
      time.sleep(0.02)
    return popen.wait(1) if popen is not None else "exited"

  # ------------------------------------------------------------------ down
  def down(self):
    """Removes everything this mesh made. Idempotent; safe on a half-built mesh."""
    for name in reversed(list(self.procs)):
      info = self.procs[name]
      if self.proc_alive(name):
        try:
          os.kill(info["pid"], signal.SIGTERM)
        except ProcessLookupError:
          pass
    deadline = time.monotonic() + 12
    for name in reversed(list(self.procs)):
      while self.proc_alive(name) and time.monotonic() < deadline:
        time.sleep(0.02)
      if self.proc_alive(name):
        try:
          os.kill(self.procs[name]["pid"], signal.SIGKILL)
        except ProcessLookupError:
          pass
      popen = getattr(self, "_popen", {}).get(name)
      if popen is not None:
        try:
          popen.wait(5)
        except subprocess.TimeoutExpired:
          pass
    existing = set(list_namespaces())
    for ns in self.ns.values():
      if ns not in existing:
        continue
      # Anything still inside one of our namespaces was started in it by us (or our children).
      for _ in range(3):
        p = run(["ip", "netns", "pids", ns], check=False)
        pids = [int(x) for x in p.stdout.split() if x.isdigit()]
        if not pids:
          break
        for pid in pids:
          try:
            os.kill(pid, signal.SIGKILL)
          except ProcessLookupError:
            pass
        time.sleep(0.1)
      run(["ip", "netns", "del", ns], check=False)
    for ns in self.ns.values():
      shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
    for d in ("/etc/netns", "/run/netns"):
      marker = created_marker(d)
      if not os.path.exists(marker):
        continue  # there before any mesh: not ours to remove
      if os.path.isdir(d) and not os.listdir(d):
        if d == "/run/netns":
          run(["umount", d], check=False)  # ip netns made it a bind mount of itself
        try_rmdir(d)
      if not os.path.isdir(d):
        try:
          os.unlink(marker)
        except FileNotFoundError:
          pass
    shutil.rmtree(self.run_dir, ignore_errors=True)
    self.log("down")

  def leftovers(self):
    """What of this mesh still exists (empty after down())."""
    left = []
    for ns in list_namespaces():
      if ns.startswith(self.prefix + "-"):
        left.append("namespace " + ns)
    for name, info in self.procs.items():
      if pid_alive(info["pid"]) and pid_start_time(info["pid"]) == info["start"]:
        left.append("process %s (pid %d)" % (name, info["pid"]))
    for ns in self.ns.values():
      if os.path.exists(os.path.join("/etc/netns", ns)):
        left.append("file /etc/netns/" + ns)
    if os.path.exists(self.run_dir):
      left.append("directory " + self.run_dir)
    if not any(NAME_RE.match(ns) for ns in list_namespaces()):  # no mesh at all any more
      for d in ("/run/netns", "/etc/netns"):
        if os.path.exists(created_marker(d)):
          left.append("%s (made by a mesh) and %s" % (d, created_marker(d)))
    p = run(["ip", "-o", "link", "show"], check=False)
    for line in p.stdout.splitlines():
      name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
      if name.startswith(self.prefix):
        left.append("link " + name)
    return left

  # ------------------------------------------------------------------ status
  def status(self):
    lines = ["mesh %s (%s, run dir %s, lattice auth %s)" % (
        self.id, self.variant, self.run_dir, self.lattice_auth)]
    existing = set(list_namespaces())
    for role, ns in self.ns.items():
      lines.append("  namespace %-16s %s" % (ns, "up" if ns in existing else "MISSING"))
    for name, info in self.procs.items():
      lines.append("  %-18s pid %-7d %-8s in %s" % (
          name, info["pid"], "running" if self.proc_alive(name) else "STOPPED", info["ns"]))
    return "\n".join(lines)


def created_marker(path):
  """A file telling that a mesh created path (/run/netns, /etc/netns), shared by all meshes."""
  return os.path.join(RUN_BASE, "outrigger-mesh.created" + path.replace("/", "-"))


def try_rmdir(path):
  try:
    os.rmdir(path)
  except OSError:
    pass


def list_namespaces():
  p = run(["ip", "netns", "list"], check=False)
  return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def sweep_orphans():
  """Removes meshes whose owner process is gone (a test killed by a timeout, say). Meshes made
  by `mesh.py up` have no owner and stay until `down`. Returns the ids removed."""
  removed = []
  for i in all_ids():
    m = Mesh.attach(i)
    o = m.owner
    if o and not (pid_alive(o["pid"]) and pid_start_time(o["pid"]) == o["start"]):
      m.down()
      removed.append(i)
  return removed


def all_ids():
  ids = set()
  for ns in list_namespaces():
    m = NAME_RE.match(ns)
    if m:
      ids.add(m.group(1))
  for d in os.listdir(RUN_BASE):
    if d.startswith(RUN_PREFIX) and re.fullmatch(r"[0-9a-f]{5}", d[len(RUN_PREFIX):]):
      ids.add(d[len(RUN_PREFIX):])
  return sorted(ids)


# ---------------------------------------------------------------------- the demo
def sigv4_headers(who, region, method, url, body=b""):
  """Headers of a request signed for vpc-lattice-svcs with an account's mesh credentials."""
  import botocore.auth
  import botocore.awsrequest
  import botocore.credentials
  r = botocore.awsrequest.AWSRequest(method=method, url=url, data=body,
                                     headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
  c = who["credentials"]
  botocore.auth.SigV4Auth(botocore.credentials.Credentials(
      c["access_key_id"], c["secret_access_key"]), "vpc-lattice-svcs", region).add_auth(r)
  return ["%s: %s" % (k, v) for k, v in r.headers.items()]


def demo(args):
  m = Mesh(binary=args.bin, variant=args.variant, run_id=args.id, verbose=True)
  stopping = {"flag": False}

  def on_signal(signum, _frame):
    stopping["flag"] = True
    raise KeyboardInterrupt

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)
  try:
    print("== building the mesh %s (variant %s) ..." % (m.id, args.variant), flush=True)
    m.up()
    report(m)
    if args.oneshot:
      return 0
    print("\nRunning. Try:  ip netns exec %s curl -s -x http://127.0.0.1:15001 http://orders/orders"
          % m.ns["consumer"])
    print("Ctrl-C stops and removes everything.", flush=True)
    while True:
      time.sleep(1)
      dead = [n for n in m.procs if not m.proc_alive(n)]
      if dead:
        print("stopped unexpectedly: %s" % ", ".join(dead))
        for n in dead:
          print(m.tail(n))
        return 1
  except KeyboardInterrupt:
    print("\nstopping", flush=True)
    return 0
  except MeshError as e:
    print("mesh: %s" % e, file=sys.stderr)
    return 1
  finally:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    m.down()
    left = m.leftovers()
    print("== torn down: %s" % ("nothing left behind" if not left else "LEFT: " + ", ".join(left)))


def report(m):
  t = m.topo
  c, p = m.account("consumer"), m.account("provider")
  proxy = "http://127.0.0.1:%d" % t["ports"]["outbound"]
  app = "http://127.0.0.1:%d" % t["ports"]["app"]
  tls = m.variant in ("mtls", "aws")
  print("\n== accounts (network namespaces)")
  for role in ("consumer", "provider"):
    a = m.account(role)
    print("  %-8s %-9s account %s  ns %-14s task %s  sidecar: out 127.0.0.1:15001, in :15000, "
          "admin :9901" % (role, a["service"], a["account_id"], m.ns[role], a["task_ip"]))
  pl, lat = t["hops"]["privatelink"], t["hops"]["lattice"]
  print("  transit  ns %s: dnsmasq on %s and %s, PrivateLink-like relay %s -> %s, "
        "Lattice-like front %s -> %s (SigV4 %s)" % (
            m.ns["transit"], c["resolver"], p["resolver"], pl["listen"], pl["target"],
            lat["listen"], lat["target"], m.lattice_auth))
  print("  transport between sidecars: %s" % (
      "mTLS (certificates from `outrigger pki`)" if tls else
      "PLAINTEXT (this outrigger has no `pki` subcommand yet; the mTLS configs are ready)"))

  def call(title, role, url, **kw):
    r = m.http(role, url, **kw)
    print("\n-- %s" % title)
    if r["status"] == 0:
      print("   failed: %s" % r.get("error"))
      return r
    print("   HTTP %d in %s ms" % (r["status"], r["ms"]))
    try:
      body = json.loads(r["body"])
    except ValueError:
      body = r["body"].strip()[:300]
    print("   " + json.dumps(body, sort_keys=True)[:700])
    return r

  print("\n== calls across accounts")
  call("checkout app -> its sidecar -> PrivateLink-like endpoint (%s) -> orders sidecar -> "
       "orders app: POST /orders" % pl["names"][0], "consumer",
       "http://orders/orders", method="POST", headers=["content-type: application/json"],
       data='{"item":"paddle","qty":2}', proxy=proxy)
  r = call("checkout app calls orders itself (GET /call?url=http://orders/whoami): the identity "
           "the orders app saw", "consumer", app + "/call?url=http://orders/whoami")
  try:
    seen = json.loads(r["body"])["answer"]["seen"]
    print("   orders app saw x-forwarded-client-cert: %s" % seen.get(
        "x-forwarded-client-cert", "(none: plaintext variant)"))
  except (ValueError, KeyError, TypeError):
    pass
  r = call("orders app -> its sidecar -> Lattice-like service (%s) -> checkout sidecar -> "
           "checkout app: GET /call?url=http://checkout/whoami" % lat["names"][0],
           "provider", app + "/call?url=http://checkout/whoami")
  try:
    seen = json.loads(r["body"])["answer"]["seen"]
    print("   checkout app saw host %s, x-forwarded-for %s,\n   x-amzn-lattice-identity %s" % (
        seen.get("host"), seen.get("x-forwarded-for"),
        seen.get("x-amzn-lattice-identity", "(none: the orders sidecar does not sign in this "
                 "variant)")))
  except (ValueError, KeyError, TypeError):
    pass
  lat_url = "%s://%s:%s/whoami" % ("https" if tls else "http", lat["names"][0],
                                   lat["listen"].rsplit(":", 1)[1])
  extra = ["--cacert", os.path.join(m.run_dir, "pki", "bundle.pem")] if tls else []
  hdrs = sigv4_headers(p, t["region"], "GET", "https://%s/whoami" % lat["names"][0])
  hdrs.append("host: " + lat["names"][0])
  r = call("a SigV4-signed call from orders' account straight to the Lattice-like service: "
           "identity added by Lattice", "provider", lat_url, headers=hdrs, extra=extra)
  try:
    seen = json.loads(r["body"])["seen"]
    print("   checkout app saw x-amzn-lattice-identity: %s" % seen.get("x-amzn-lattice-identity"))
  except (ValueError, KeyError, TypeError):
    pass
  o = t["outsider"]
  hdrs = sigv4_headers(o, t["region"], "GET", "https://%s/whoami" % lat["names"][0])
  hdrs.append("host: " + lat["names"][0])
  call("the same, signed by account %s (not in the auth policy): denied" % o["account_id"],
       "provider", lat_url, headers=hdrs, extra=extra)
  if tls:
    pki = os.path.join(m.run_dir, "pki")
    call("a caller with a certificate of account %s through the PrivateLink-like endpoint: "
         "denied by the orders sidecar" % o["account_id"], "consumer",
         "https://%s/orders" % pl["names"][0],
         extra=["--cacert", os.path.join(pki, "bundle.pem"), "--cert",
                os.path.join(pki, o["service"] + ".pem"), "--key",
                os.path.join(pki, o["service"] + ".key")])

  print("\n== latency: 3 s of keep-alive GET /orders, checkout -> orders through both sidecars")
  p_ = m.ns_run("consumer", [m.python, os.path.join(HERE, "load.py"), "--to",
                             "127.0.0.1:%d" % t["ports"]["outbound"], "--host", "orders",
                             "--path", "/orders", "--clients", "2", "--duration", "3"],
                check=False, timeout=30)
  try:
    res = json.loads(p_.stdout)
    print("   %d requests in %ss, statuses %s, latency ms %s" % (
        res["requests"], res["seconds"], res["statuses"], res["latency_ms"]))
  except ValueError:
    print("   load failed: %s" % p_.stderr.strip()[:300])

  print("\n== who called whom")
  by_ip = {m.account(r)["task_ip"]: m.account(r)["service"] for r in ("consumer", "provider")}

  def entries(path):
    out = []
    try:
      with open(path) as f:
        for line in f:
          if line.startswith("{"):
            try:
              out.append(json.loads(line))
            except ValueError:
              pass
    except OSError:
      pass
    return out

  def count(items):
    tally = {}
    for k in items:
      tally[k] = tally.get(k, 0) + 1
    return sorted(tally.items(), key=lambda kv: -kv[1])

  conns = [e for e in entries(m.procs["privatelink"]["out"]) if e.get("msg") == "open"]
  for (src, dst), n in count((e["client"].rsplit(":", 1)[0], e["target"]) for e in conns):
    print("  privatelink: %s (%s) -> %s: %d TCP connection(s), bytes not inspected" % (
        src, by_ip.get(src, "?"), dst, n))
  reqs = [e for e in entries(m.procs["lattice"]["out"]) if e.get("msg") == "request"]
  for (src, acct, decision, status), n in count(
      (e["client"], e.get("caller_account") or "unsigned", e["decision"], e["status"])
      for e in reqs):
    print("  lattice:     %s (%s) as %s: %s -> %s, %d request(s)" % (
        src, by_ip.get(src, "?"), acct, decision, status, n))
  for role in ("provider", "consumer"):
    a = m.account(role)
    log = [e for e in entries(m.procs[role + "-sidecar"]["out"]) if e.get("listener") == "inbound"]
    for (caller, status), n in count((e.get("caller", "(no client certificate)"), e["status"])
                                     for e in log):
      print("  %s sidecar inbound: caller %s -> %s, %d request(s)" % (
          a["service"], caller, status, n))
  print("\n== metrics (inside each account's namespace)")
  for role in ("consumer", "provider"):
    a = m.account(role)
    print("  %s:  ip netns exec %s curl -s http://%s:%d/metrics" % (
        a["service"], m.ns[role], a["task_ip"], t["ports"]["admin"]))
    r = m.http(role, "http://127.0.0.1:%d/metrics" % t["ports"]["admin"])
    for line in r["body"].splitlines():
      if line.startswith("outrigger_downstream_requests_total") and " 0" != line[-2:]:
        print("     " + line)
  print("  logs: %s/logs/" % m.run_dir, flush=True)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  sub = ap.add_subparsers(dest="cmd", required=True)
  u = sub.add_parser("up")
  u.add_argument("--variant", choices=["auto", "plain", "mtls", "aws"], default="auto")
  u.add_argument("--bin")
  u.add_argument("--id", help="five hex digits (default: random)")
  s = sub.add_parser("status")
  s.add_argument("id", nargs="?")
  d = sub.add_parser("down")
  d.add_argument("id", nargs="?")
  d.add_argument("--all", action="store_true")
  de = sub.add_parser("demo")
  de.add_argument("--variant", choices=["auto", "plain", "mtls", "aws"], default="auto")
  de.add_argument("--bin")
  de.add_argument("--oneshot", action="store_true")
  de.add_argument("--id", help="five hex digits (default: random)")
  args = ap.parse_args(argv)
  try:
    if args.cmd == "up":
      m = Mesh(binary=args.bin, variant=args.variant, run_id=args.id, verbose=True).up(owned=False)
      print(m.id)
      print(m.status(), file=sys.stderr)
      return 0
    if args.cmd == "demo":
      return demo(args)
    ids = [args.id] if getattr(args, "id", None) else all_ids()
    if args.cmd == "down" and not args.id and not args.all:
      if len(ids) > 1:
        raise MeshError("several meshes exist (%s): name one or use --all" % " ".join(ids))
    for i in ids:
      m = Mesh.attach(i)
      if args.cmd == "status":
        print(m.status())
      else:
        m.down()
        left = m.leftovers()
        print("mesh %s: down%s" % (i, "" if not left else "; LEFT: " + ", ".join(left)))
    if not ids:
      print("no mesh")
    return 0
  except MeshError as e:
    print("mesh: %s" % e, file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
