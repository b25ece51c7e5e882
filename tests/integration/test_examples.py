"""examples/: the Dockerfile, the compose file and the ECS task definition are checked against the
real tools and models, and against the one description of the mesh (examples/mesh/topology.json):

* docker-compose (Debian's, no engine needed) accepts the compose file, and its services, addresses,
  ports, DNS records, commands and config files are those of the namespace mesh;
* the Dockerfile is multi-stage on Debian 12, its runtime stage installs exactly the packages that
  own the shared libraries `ldd` names for the real binary, it runs as non-root with a /ready
  HEALTHCHECK and SIGTERM, and its COPY set is enough for CMake to configure the project;
* the ECS task definition validates against botocore's RegisterTaskDefinition input model (types,
  required and unknown keys, enums) and the documented bounds, with the sidecar wiring the mesh uses.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

from harness.proxy import binary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
EX = os.path.join(REPO, "examples")
MESH = os.path.join(EX, "mesh")
COMPOSE = os.path.join(EX, "compose", "docker-compose.yml")
DOCKERFILE = os.path.join(EX, "docker", "Dockerfile")
TASKDEF = os.path.join(EX, "ecs", "task-definition.json")
SYSTEM_PY = "/usr/bin/python3"  # docker-compose's own interpreter: PyYAML is there

with open(os.path.join(MESH, "topology.json")) as f:
  TOPO = json.load(f)
PORTS = TOPO["ports"]
ACCOUNTS = TOPO["accounts"]
PL = TOPO["hops"]["privatelink"]
LAT = TOPO["hops"]["lattice"]
DEFAULT = TOPO["default_variant"]  # the configs the mesh runs by default, and compose mounts


def yaml_to_obj(text):
  p = subprocess.run([SYSTEM_PY, "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
                     input=text, capture_output=True, text=True, timeout=30)
  if p.returncode != 0:
    raise AssertionError("YAML did not parse: %s" % p.stderr)
  return json.loads(p.stdout)


def compose_config():
  p = subprocess.run(["docker-compose", "-f", COMPOSE, "config"], capture_output=True, text=True,
                     timeout=60, cwd=REPO)
  if p.returncode != 0:
    raise AssertionError("docker-compose config failed:\n%s" % p.stderr)
  return yaml_to_obj(p.stdout)


def mounts_of(service):
  """target -> (source, read_only), whichever form `docker-compose config` printed."""
  out = {}
  for v in service.get("volumes", []):
    if isinstance(v, str):
      parts = v.split(":")
      out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
    else:
      out[v["target"]] = (v.get("source"), bool(v.get("read_only")))
  return out


def ip_of(hop):
  return hop["listen"].rsplit(":", 1)[0]


class Compose(unittest.TestCase):
  @classmethod
  def setUpClass(cls):
    cls.cfg = compose_config()
    cls.services = cls.cfg["services"]

  def test_config_quiet_succeeds_and_lists_every_service(self):
    p = subprocess.run(["docker-compose", "-f", COMPOSE, "config", "--services"], capture_output=True,
                       text=True, timeout=60, cwd=REPO)
    self.assertEqual(p.returncode, 0, p.stderr)
    expected = {"pki", "dns", "privatelink", "lattice"}
    for a in ACCOUNTS.values():
      expected |= {a["service"] + "-sidecar", a["service"] + "-app"}
    self.assertEqual(set(p.stdout.split()), expected)
    self.assertEqual(set(self.services), expected)

  def test_networks_are_the_vpcs_and_isolated(self):
    nets = self.cfg["networks"]
    for role, a in ACCOUNTS.items():
      net = nets["%s_vpc" % role]
      self.assertEqual(net["ipam"]["config"][0]["subnet"], a["cidr"])
      self.assertTrue(net.get("internal"), "%s_vpc must have no way out" % role)
    self.assertEqual(nets["service_network"]["ipam"]["config"][0]["subnet"],
                     ip_of(LAT).rsplit(".", 1)[0] + ".0/24")

  def test_sidecars_match_the_mesh(self):
    for role, a in ACCOUNTS.items():
      s = self.services[a["service"] + "-sidecar"]
      self.assertEqual(s["networks"]["%s_vpc" % role]["ipv4_address"], a["task_ip"])
      self.assertEqual(s["dns"], [a["resolver"]])
      self.assertEqual(sorted(int(p) for p in s["expose"]),
                       sorted([PORTS["inbound"], PORTS["outbound"], PORTS["admin"]]))
      self.assertEqual(s["healthcheck"]["test"],
                       ["CMD", "/usr/local/bin/outrigger", "probe",
                        "http://127.0.0.1:%d/ready" % PORTS["admin"]])
      self.assertEqual(s["stop_signal"], "SIGTERM")
      self.assertTrue(s["read_only"])
      self.assertGreaterEqual(s["ulimits"]["nofile"]["soft"], 65536)
      self.assertEqual(s["build"]["dockerfile"], "examples/docker/Dockerfile")
      self.assertEqual(os.path.realpath(s["build"]["context"]), REPO)
      # The very config file the namespace mesh runs (mTLS variant), at the image's default path.
      mounts = mounts_of(s)
      source, read_only = mounts["/etc/outrigger/outrigger.yaml"]
      self.assertEqual(os.path.realpath(source),
                       os.path.realpath(os.path.join(MESH, TOPO["configs"][DEFAULT][role])))
      self.assertTrue(read_only)
      self.assertIn("/etc/outrigger/certs", mounts)
      env = s["environment"]
      self.assertEqual(env["AWS_ACCESS_KEY_ID"], a["credentials"]["access_key_id"])
      self.assertEqual(env["AWS_SECRET_ACCESS_KEY"], a["credentials"]["secret_access_key"])
      self.assertEqual(env["AWS_REGION"], TOPO["region"])

  def test_apps_share_their_sidecars_namespace_and_call_through_it(self):
    for a in ACCOUNTS.values():
      app = self.services[a["service"] + "-app"]
      self.assertEqual(app["network_mode"], "service:%s-sidecar" % a["service"])
      self.assertEqual(app["command"], ["/opt/mesh/app.py", "--listen",
                                        "127.0.0.1:%d" % PORTS["app"], "--name", a["service"]])
      self.assertEqual(app["environment"]["HTTP_PROXY"], "http://127.0.0.1:%d" % PORTS["outbound"])
      self.assertEqual(app["depends_on"]["%s-sidecar" % a["service"]]["condition"], "service_healthy")

  def test_hops_match_the_mesh(self):
    pl = self.services["privatelink"]
    self.assertEqual(pl["networks"]["%s_vpc" % PL["from"]]["ipv4_address"], ip_of(PL))
    self.assertIn("%s_vpc" % PL["to"], pl["networks"])
    self.assertEqual(pl["command"], ["/opt/mesh/relay.py", "--listen", PL["listen"], "--to",
                                     PL["target"], "--name", "privatelink"])
    lat = self.services["lattice"]
    self.assertEqual(lat["networks"]["service_network"]["ipv4_address"], ip_of(LAT))
    self.assertIn("%s_vpc" % LAT["to"], lat["networks"])
    cmd = lat["command"]
    self.assertEqual(cmd[:2], ["/opt/mesh/lattice.py", "--topology"])
    args = dict(zip(cmd[1::2], cmd[2::2]))
    self.assertEqual(args["--listen"], LAT["listen"])
    self.assertEqual(args["--to"], LAT["target"])
    self.assertEqual(args["--to-sni"], ACCOUNTS[LAT["to"]]["service"])
    # The front requires signatures exactly when the caller's config signs (a lattice cluster).
    with open(os.path.join(MESH, TOPO["configs"][DEFAULT][LAT["from"]])) as f:
      signs = re.search(r"^\s*type:\s*lattice\b", f.read(), re.M) is not None
    self.assertEqual(args["--auth"], "iam" if signs else "optional")
    caller = self.services[ACCOUNTS[LAT["from"]]["service"] + "-sidecar"]
    self.assertIn("service_network", caller["networks"])
    # The helpers the mesh image copies are the mesh's own files.
    for f in ("relay.py", "lattice.py", "topology.json"):
      self.assertTrue(os.path.exists(os.path.join(MESH, f)))

  def test_dns_records_and_resolvers_match_the_mesh(self):
    dns = self.services["dns"]
    for role, a in ACCOUNTS.items():
      self.assertEqual(dns["networks"]["%s_vpc" % role]["ipv4_address"], a["resolver"])
    records = {}
    with open(mounts_of(dns)["/etc/mesh/hosts"][0]) as f:
      for line in f:
        line = line.split("#")[0].split()
        if line:
          records[line[1]] = line[0]
    expected = {n: ip_of(PL) for n in PL["names"]}
    expected.update({n: ip_of(LAT) for n in LAT["names"]})
    self.assertEqual(records, expected)
    for zone in ("mesh.internal", "amazonaws.com", "on.aws"):
      self.assertIn("--local=/%s/" % zone, dns["command"])

  def test_pki_issues_what_the_configs_and_hops_need(self):
    script = self.services["pki"]["command"][0]
    issued = {}
    for line in script.splitlines():
      words = shlex.split(line.strip())
      if words[:3] == ["outrigger", "pki", "issue"]:
        opts = words[4:]
        name = opts[opts.index("--name") + 1]
        issued[name] = {"account": opts[opts.index("--account") + 1],
                        "dns": [opts[i + 1] for i, w in enumerate(opts) if w == "--dns"]}
    for role, a in ACCOUNTS.items():
      self.assertEqual(issued[a["service"]]["account"], a["account_id"])
    self.assertEqual(issued[ACCOUNTS[PL["to"]]["service"]]["dns"], PL["names"])
    self.assertEqual(issued["lattice"], {"account": LAT["network_account_id"], "dns": LAT["names"]})
    self.assertEqual(issued[TOPO["outsider"]["service"]]["account"], TOPO["outsider"]["account_id"])
    # Every certificate file a config names is copied into that account's volume.
    for role, a in ACCOUNTS.items():
      with open(os.path.join(MESH, TOPO["configs"][DEFAULT][role])) as f:
        named = set(re.findall(r"certs/([\w.-]+)", f.read()))
      copy = [l for l in script.splitlines() if l.strip().endswith("/certs/%s/" % a["service"])]
      self.assertEqual(len(copy), 1, script)
      self.assertEqual({os.path.basename(w) for w in copy[0].split()[1:-1]}, named)


class Dockerfile(unittest.TestCase):
  @classmethod
  def setUpClass(cls):
    with open(DOCKERFILE) as f:
      text = f.read().replace("\\\n", " ")
    cls.stages = []
    for line in text.splitlines():
      line = line.strip()
      if not line or line.startswith("#"):
        continue
      word, _, rest = line.partition(" ")
      if word.upper() == "FROM":
        cls.stages.append({"from": rest.strip(), "lines": []})
      elif cls.stages:
        cls.stages[-1]["lines"].append((word.upper(), rest.strip()))

  def instr(self, stage, word):
    return [rest for w, rest in self.stages[stage]["lines"] if w == word]

  def apt_packages(self, stage):
    pkgs = []
    for run in self.instr(stage, "RUN"):
      for cmd in run.split("&&"):
        words = cmd.split()
        if "apt-get" in words and "install" in words:
          pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs

  def test_multi_stage_on_debian_12(self):
    self.assertEqual(len(self.stages), 2)
    self.assertEqual(self.stages[0]["from"], "debian:12 AS build")
    self.assertEqual(self.stages[1]["from"], "debian:12-slim AS runtime")
    copies = self.instr(1, "COPY")
    self.assertEqual(copies, ["--from=build /build/proxy/outrigger /usr/local/bin/outrigger"])

  def test_runtime_is_non_root_with_healthcheck_and_sigterm(self):
    user = self.instr(1, "USER")
    self.assertEqual(len(user), 1)
    self.assertNotIn(user[0].split(":")[0], ("0", "root"))
    self.assertEqual(self.instr(1, "STOPSIGNAL"), ["SIGTERM"])
    hc = self.instr(1, "HEALTHCHECK")
    self.assertEqual(len(hc), 1)
    self.assertIn('CMD ["/usr/local/bin/outrigger", "probe", "http://127.0.0.1:%d/ready"]'
                  % PORTS["admin"], hc[0])
    self.assertEqual(self.instr(1, "ENTRYPOINT"), ['["/usr/local/bin/outrigger"]'])
    self.assertEqual(json.loads(self.instr(1, "CMD")[0]),
                     ["run", "--config", "/etc/outrigger/outrigger.yaml"])
    exposed = {int(p) for e in self.instr(1, "EXPOSE") for p in e.split()}
    self.assertEqual(exposed, {PORTS["inbound"], PORTS["outbound"], PORTS["admin"]})

  def test_runtime_packages_are_what_ldd_of_the_real_binary_needs(self):
    # In debian:12-slim already (dependencies of apt and dpkg).
    base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
    # Installed ahead of the binary linking it, each with its reason.
    ahead = {"libnghttp2-14": "CMakeLists.txt requires libnghttp2; HTTP/2 (proxy/h2) links it"}
    runtime = set(self.apt_packages(1)) - {"ca-certificates"}
    out = subprocess.run(["ldd", binary()], capture_output=True, text=True, timeout=30).stdout
    needed = set()
    for line in out.splitlines():
      m = re.search(r"=>\s+(\S+)", line)
      if not m or m.group(1) == "not":
        continue
      path = os.path.realpath(m.group(1))
      # `make test-asan` runs this against a sanitizer build: its runtimes never ship.
      if re.search(r"/lib(a|ub|l|t|hwa)san\.so", path):
        continue
      for candidate in (path, path.replace("/usr/lib/", "/lib/", 1), m.group(1)):
        p = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, timeout=30)
        if p.returncode == 0:
          needed.add(p.stdout.split(":")[0])
          break
      else:
        self.fail("no Debian package owns %s (ldd: %s)" % (path, line.strip()))
    self.assertLessEqual(needed - base, runtime,
                         "the runtime stage lacks a package of a library ldd names")
    self.assertLessEqual(runtime - needed, set(ahead),
                         "the runtime stage installs a package no library of the binary needs")

  def test_build_and_runtime_packages_are_real_debian_packages(self):
    for pkg in self.apt_packages(0) + self.apt_packages(1):
      p = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg], capture_output=True,
                         text=True, timeout=30)
      self.assertIn("install ok installed", p.stdout, "%s: not a Debian package installed here "
                    "(scripts/install-deps.sh builds the same way)" % pkg)

  def test_build_stage_is_profile_guided_with_the_training_tools(self):
    """The build stage builds as `make build` does: scripts/pgo.sh trains an instrumented build
    under the bench's loads and its answer (use/off) goes to CMake with the counts' folder. So
    the stage must install every tool those loads require (bench_require in bench/run.sh and in
    the cases pgo.sh runs): each tool's owning package here is an installed package of the stage,
    one it depends on, or part of every Debian system."""
    runs = " ".join(self.instr(0, "RUN"))
    m = re.search(r'mode="\$\(scripts/pgo\.sh (\S+)\)"', runs)
    self.assertIsNotNone(m, runs)
    self.assertIn('-DOUTRIGGER_PGO="$mode"', runs)
    self.assertIn("-DOUTRIGGER_PGO_DIR=%s/data" % m.group(1), runs)
    with open(os.path.join(REPO, "scripts", "pgo.sh")) as f:
      cases = re.search(r"\nCASES=([a-z0-9,-]+)\n", f.read()).group(1).split(",")
    self.assertEqual(cases, ["h1-keepalive", "h1-mtls-upstream", "h2c-h1", "h2-h2",
                             "h1-resilience"])
    sources = ["run.sh", "lib/common.sh", "lib/case_h1_keepalive.sh",
               "lib/case_h1_mtls_upstream.sh", "lib/case_h2.sh", "lib/case_h1_resilience.sh"]
    tools = set()
    for src in sources:
      with open(os.path.join(REPO, "bench", src)) as f:
        for line in f:
          line = line.split("#")[0]
          # perf only with --syscalls; the proxies loop names peers (pgo.sh runs outrigger only)
          if "bench_require" not in line or "BENCH_SYSCALLS" in line or "$p" in line:
            continue
          words = line.split("bench_require", 1)[1].split()
          tools |= {w for w in words if re.fullmatch(r"[a-z0-9_.-]+", w)}
    self.assertLessEqual({"wrk", "nginx", "h2load", "nghttpd", "curl", "python3"}, tools)

    def depends(pkg):
      p = subprocess.run(["dpkg-query", "-W", "-f", "${Depends} ${Pre-Depends}", pkg],
                         capture_output=True, text=True, timeout=30)
      return {d.strip().split()[0].split(":")[0] for d in re.split(r"[,|]", p.stdout) if d.strip()}

    def essential(pkg):
      p = subprocess.run(["dpkg-query", "-W", "-f", "${Essential}", pkg], capture_output=True,
                         text=True, timeout=30)
      return p.stdout.strip() == "yes"

    stage = set(self.apt_packages(0))
    reach, frontier = set(stage), set(stage)
    for _ in range(3):  # python3 -> python3.11 -> python3.11-minimal
      frontier = set().union(*(depends(x) for x in frontier)) - reach
      reach |= frontier
    for tool in sorted(tools):
      path = shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")  # Debian's, not a venv's
      self.assertIsNotNone(path, tool)
      owner = None
      for candidate in (os.path.realpath(path), path):
        p = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, timeout=30)
        if p.returncode == 0:
          owner = p.stdout.split(":")[0]
          break
      self.assertIsNotNone(owner, "no package owns %s" % path)
      self.assertTrue(owner in reach or essential(owner),
                      "the build stage lacks %s (for %s, needed by the PGO training)" % (owner, tool))

  def test_copy_set_configures_and_dockerignore_keeps_it(self):
    sources = []
    for c in self.instr(0, "COPY"):
      sources += c.split()[:-1]
    with open(DOCKERFILE + ".dockerignore") as f:
      kept = {l.strip()[1:] for l in f if l.strip().startswith("!")}
    self.assertEqual(set(sources), kept)
    d = tempfile.mkdtemp(prefix="outrigger-docker-it-")
    self.addCleanup(shutil.rmtree, d, True)
    for s in sources:
      src = os.path.join(REPO, s)
      if os.path.isdir(src):
        shutil.copytree(src, os.path.join(d, s), ignore=shutil.ignore_patterns("__pycache__"))
      else:
        shutil.copy(src, os.path.join(d, s))
    p = subprocess.run(["cmake", "-S", d, "-B", os.path.join(d, "build"), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DOUTRIGGER_TESTS=OFF",
                        "-DOUTRIGGER_BENCH=OFF"], capture_output=True, text=True, timeout=120)
    self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
    self.assertIn("outrigger:", subprocess.run(
        ["ninja", "-C", os.path.join(d, "build"), "-t", "targets", "all"], capture_output=True,
        text=True, timeout=60).stdout)

  def test_mesh_image_copies_existing_files(self):
    with open(os.path.join(EX, "docker", "Dockerfile.mesh")) as f:
      text = f.read().replace("\\\n", " ")
    copied = []
    for line in text.splitlines():
      if line.startswith("COPY "):
        copied += line.split()[1:-1]
    self.assertTrue(copied)
    with open(os.path.join(EX, "docker", "Dockerfile.mesh.dockerignore")) as f:
      kept = {l.strip()[1:] for l in f if l.strip().startswith("!")}
    self.assertEqual(set(copied), kept)
    for c in copied:
      self.assertTrue(os.path.isfile(os.path.join(REPO, c)), c)


class EcsTaskDefinition(unittest.TestCase):
  @classmethod
  def setUpClass(cls):
    import botocore.session  # python3-botocore (scripts/install-deps.sh)
    cls.model = botocore.session.get_session().get_service_model("ecs")
    cls.shape = cls.model.operation_model("RegisterTaskDefinition").input_shape
    with open(TASKDEF) as f:
      cls.td = json.load(f)
    cls.c = {c["name"]: c for c in cls.td["containerDefinitions"]}

  def test_validates_against_the_register_task_definition_model(self):
    import botocore.validate
    report = botocore.validate.ParamValidator().validate(self.td, self.shape)
    self.assertFalse(report.has_errors(), report.generate_report())
    errors = []

    def enums(value, shape, path):
      if shape.type_name == "structure":
        for k, v in value.items():
          enums(v, shape.members[k], path + "." + k)
      elif shape.type_name == "list":
        for i, v in enumerate(value):
          enums(v, shape.member, "%s[%d]" % (path, i))
      elif shape.type_name == "map":
        for k, v in value.items():
          enums(v, shape.value, path + "." + k)
      elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        errors.append("%s: %r is not one of %s" % (path, value, shape.enum))

    enums(self.td, self.shape, "")
    self.assertEqual(errors, [])

  def test_a_broken_definition_is_caught(self):
    """The model check itself can fail: unknown key, wrong type, bad enum, missing name."""
    import botocore.validate
    bad = json.loads(json.dumps(self.td))
    bad["containerDefinitions"][1]["stopTimeOut"] = 90
    bad["containerDefinitions"][2]["cpu"] = "768"
    del bad["containerDefinitions"][0]["name"]
    report = botocore.validate.ParamValidator().validate(bad, self.shape).generate_report()
    self.assertIn("stopTimeOut", report)
    self.assertIn("cpu", report)
    self.assertIn("name", report)
    enum = self.shape.members["containerDefinitions"].member.members["dependsOn"].member \
        .members["condition"].enum
    self.assertNotIn("READY", enum)
    self.assertIn("HEALTHY", enum)

  def test_documented_bounds(self):
    td = self.td
    # Fargate: task cpu/memory as strings from the documented table (1 vCPU: 2..8 GB).
    fargate = {"256": (512, 2048), "512": (1024, 4096), "1024": (2048, 8192),
               "2048": (4096, 16384), "4096": (8192, 30720)}
    self.assertEqual(td["requiresCompatibilities"], ["FARGATE"])
    self.assertEqual(td["networkMode"], "awsvpc")
    lo, hi = fargate[td["cpu"]]
    self.assertTrue(lo <= int(td["memory"]) <= hi)
    self.assertLessEqual(sum(c.get("cpu", 0) for c in self.c.values()), int(td["cpu"]))
    self.assertLessEqual(sum(c.get("memoryReservation", 0) for c in self.c.values()),
                         int(td["memory"]))
    self.assertEqual(len(self.c), len(td["containerDefinitions"]), "container names are unique")
    volumes = {v["name"] for v in td.get("volumes", [])}
    for c in self.c.values():
      hc = c.get("healthCheck")
      if hc:
        self.assertTrue(5 <= hc["interval"] <= 300)
        self.assertTrue(2 <= hc["timeout"] <= 60)
        self.assertTrue(1 <= hc["retries"] <= 10)
        self.assertTrue(0 <= hc.get("startPeriod", 0) <= 300)
        self.assertIn(hc["command"][0], ("CMD", "CMD-SHELL"))
      if "stopTimeout" in c:
        self.assertTrue(0 < c["stopTimeout"] <= 120, "Fargate allows at most 120 s")
      for u in c.get("ulimits", []):
        self.assertLessEqual(u["softLimit"], u["hardLimit"])
        self.assertLessEqual(u["hardLimit"], 1048576)
      log = c["logConfiguration"]
      self.assertEqual(log["logDriver"], "awslogs")
      for k in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
        self.assertIn(k, log["options"])
      for d in c.get("dependsOn", []):
        target = self.c[d["containerName"]]
        if d["condition"] == "HEALTHY":
          self.assertIn("healthCheck", target)
        if d["condition"] in ("SUCCESS", "COMPLETE"):
          self.assertFalse(target["essential"])
      for m in c.get("mountPoints", []):
        self.assertIn(m["sourceVolume"], volumes)
      for p in c.get("portMappings", []):
        self.assertEqual(p.get("hostPort", p["containerPort"]), p["containerPort"],
                         "awsvpc: hostPort must equal containerPort")
    self.assertTrue(any(c["essential"] for c in self.c.values()))

  def test_sidecar_and_app_wiring_match_the_mesh(self):
    s = self.c["outrigger"]
    self.assertTrue(s["essential"])
    self.assertEqual(s["entryPoint"] + s["command"],
                     ["/usr/local/bin/outrigger", "run", "--config", "/etc/outrigger/outrigger.yaml"])
    self.assertEqual({p["containerPort"] for p in s["portMappings"]},
                     {PORTS["inbound"], PORTS["admin"]})
    self.assertEqual(s["healthCheck"]["command"],
                     ["CMD", "/usr/local/bin/outrigger", "probe",
                      "http://127.0.0.1:%d/ready" % PORTS["admin"]])
    self.assertGreaterEqual(s["stopTimeout"], 60, "time to drain on SIGTERM")
    self.assertTrue(s["readonlyRootFilesystem"])
    nofile = [u for u in s["ulimits"] if u["name"] == "nofile"]
    self.assertGreaterEqual(nofile[0]["softLimit"], 65536, "many connections")
    apps = [c for c in self.c.values() if c["name"] not in ("outrigger", "outrigger-config")]
    self.assertEqual(len(apps), 1)
    app = apps[0]
    self.assertIn({"containerName": "outrigger", "condition": "HEALTHY"}, app["dependsOn"])
    env = {e["name"]: e["value"] for e in app["environment"]}
    self.assertEqual(env["HTTP_PROXY"], "http://127.0.0.1:%d" % PORTS["outbound"])
    self.assertIn("127.0.0.1:%d" % PORTS["app"], " ".join(app["command"]))
    w = self.c["outrigger-config"]
    self.assertIn("/etc/outrigger/outrigger.yaml", w["command"][0])
    with open(os.path.join(MESH, TOPO["configs"][DEFAULT]["provider"])) as f:
      for cert in set(re.findall(r"certs/[\w.-]+", f.read())):
        self.assertIn("/etc/outrigger/" + cert, w["command"][0])


if __name__ == "__main__":
  unittest.main()
