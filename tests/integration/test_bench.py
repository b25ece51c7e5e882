"""The benchmark scripts still run end to end (not how fast: bench/ measures that, never a test).
Each run is a second or two of load to loopback, bounded by timeouts."""

import csv
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness.proxy import binary

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sanitized(path):
  with open(path, "rb") as f:
    return b"__asan_init" in f.read()


class BenchScripts(unittest.TestCase):
  def tmpdir(self):
    d = tempfile.mkdtemp(prefix="bench-smoke-")
    self.addCleanup(shutil.rmtree, d, True)
    return d

  def test_run_sh_ab_pair_in_every_round(self):
    """-b BIN adds outrigger-base right after outrigger; both complete the HTTP/1.1 and the h2c
    case and land in rounds.csv with requests counted."""
    out = self.tmpdir()
    r = subprocess.run([os.path.join(REPO, "bench", "run.sh"), "-p", "outrigger",
                        "--case", "h1-keepalive,h2c-h1", "-d", "1", "-w", "0", "-r", "1",
                        "-b", binary(), "-o", out, binary()],
                       capture_output=True, text=True, timeout=240)
    self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
    with open(os.path.join(out, "rounds.csv")) as f:
      rows = list(csv.DictReader(f))
    seen = [(x["case"], x["proxy"]) for x in rows]
    self.assertEqual(seen, [("h1-keepalive", "outrigger"), ("h1-keepalive", "outrigger-base"),
                            ("h2c-h1", "outrigger"), ("h2c-h1", "outrigger-base")])
    for x in rows:
      self.assertEqual(x["status"], "ok", x)
      self.assertGreater(int(x["requests"]), 0, x)
      self.assertEqual(x["errors"], "0", x)
      # Kernel time is part of the CPU time: proxying over sockets always has some of it.
      self.assertGreater(float(x["sys_us_per_req"]), 0.0, x)
      self.assertLessEqual(float(x["sys_us_per_req"]), float(x["cpu_us_per_req"]), x)
      # The load generator and backend on the other CPU did work for every request too.
      self.assertGreater(float(x["load_cpu_us_per_req"]), 0.0, x)
      self.assertGreater(float(x["load_cpu_pct"]), 0.0, x)
      self.assertLessEqual(float(x["load_cpu_pct"]), 101.0, x)
    # The report pairs the two runs of each round (they ran back to back).
    with open(os.path.join(out, "results.md")) as f:
      md = f.read()
    paired = re.findall(r"Paired per round .*: outrigger-base ([0-9.]+)× \(([0-9.]+)-([0-9.]+), 1 rounds\)", md)
    self.assertEqual(len(paired), 2, md)
    for m, lo, hi in paired:
      self.assertEqual(m, lo)  # one round: the median is that round's ratio
      self.assertGreater(float(m), 0.2)
      self.assertLess(float(m), 5.0)

  def test_run_sh_counts_syscalls_per_request(self):
    """--syscalls: perf counts the proxy's system calls during the measured run. A proxied
    HTTP/1.1 request needs a read and a write on each side, so at least 2 per request (the load
    pipelines nothing), and the named reads and writes are listed."""
    if os.geteuid() != 0:
      self.skipTest("syscall tracepoints need root (CI and make test run as root)")
    out = self.tmpdir()
    r = subprocess.run([os.path.join(REPO, "bench", "run.sh"), "-p", "outrigger",
                        "--case", "h1-keepalive", "-d", "1", "-w", "0", "-r", "1", "--syscalls",
                        "-o", out, binary()],
                       capture_output=True, text=True, timeout=240)
    self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
    with open(os.path.join(out, "raw", "h1-keepalive-outrigger-r1.syscalls")) as f:
      line = f.read()
    m = re.fullmatch(r"syscalls/req: (\d+\.\d+) \((.*)\)\n", line)
    self.assertIsNotNone(m, line)
    self.assertGreaterEqual(float(m.group(1)), 2.0, line)
    names = dict(x.rsplit(" ", 1) for x in m.group(2).split(", "))
    self.assertGreaterEqual(float(names.get("recvmsg", 0)) + float(names.get("recvfrom", 0)), 1.0,
                            line)
    self.assertGreaterEqual(float(names.get("sendmsg", 0)) + float(names.get("sendto", 0)), 1.0,
                            line)
    self.assertIn("syscalls/req:", r.stderr)

  def test_run_sh_floor_runs_where_a_case_has_one(self):
    """-p ...,floor,floor-uring: bench_floor (the least work a proxy can do) passes the backend's
    body through in the two HTTP/1.1 cases and in h2c-h1 (the probe checks it), its io_uring mode
    in h1-keepalive; the cases without one skip it, and the report sets each against the peer per
    round."""
    floor = os.path.join(os.path.dirname(os.path.dirname(binary())), "bench", "bench_floor")
    self.assertTrue(os.access(floor, os.X_OK), floor)
    out = self.tmpdir()
    r = subprocess.run([os.path.join(REPO, "bench", "run.sh"), "-p", "nginx,floor,floor-uring",
                        "--case", "h1-keepalive,h1-mtls-upstream,h2c-h1,h2-h2", "-d", "1", "-w", "0",
                        "-r", "1", "-o", out, binary()],
                       capture_output=True, text=True, timeout=300)
    self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
    self.assertIn("case h2-h2: has no floor; skipped", r.stderr)
    self.assertIn("case h2c-h1: has no floor-uring; skipped", r.stderr)
    with open(os.path.join(out, "rounds.csv")) as f:
      rows = list(csv.DictReader(f))
    self.assertEqual([(x["case"], x["proxy"]) for x in rows],
                     [("h1-keepalive", "nginx"), ("h1-keepalive", "floor"),
                      ("h1-keepalive", "floor-uring"),
                      ("h1-mtls-upstream", "nginx"), ("h1-mtls-upstream", "floor"),
                      ("h2c-h1", "nginx"), ("h2c-h1", "floor"), ("h2-h2", "nginx")])
    for x in rows:
      self.assertEqual(x["status"], "ok", x)
      self.assertGreater(int(x["requests"]), 0, x)
      self.assertEqual(x["errors"], "0", x)
    with open(os.path.join(out, "results.md")) as f:
      md = f.read()
    ratios = re.findall(r"The floor ÷ peer per round .*: nginx ([0-9.]+)× ", md)
    self.assertEqual(len(ratios), 3, md)
    ratios += re.findall(r"Floor-uring ÷ peer per round .*: nginx ([0-9.]+)× ", md)
    self.assertEqual(len(ratios), 4, md)
    for m in ratios:
      self.assertGreater(float(m), 0.05)
      self.assertLess(float(m), 5.0)

  def test_run_sh_floor_needs_its_binary(self):
    env = dict(os.environ, BENCH_FLOOR_BIN="/nonexistent/bench_floor")
    r = subprocess.run([os.path.join(REPO, "bench", "run.sh"), "-p", "floor", "-o", self.tmpdir(),
                        binary()], capture_output=True, text=True, timeout=60, env=env)
    self.assertNotEqual(r.returncode, 0)
    self.assertIn("floor selected but no bench_floor binary", r.stderr)

  def test_run_sh_baseline_needs_outrigger_in_the_list(self):
    r = subprocess.run([os.path.join(REPO, "bench", "run.sh"), "-p", "haproxy",
                        "-b", binary(), "-o", self.tmpdir(), binary()],
                       capture_output=True, text=True, timeout=60)
    self.assertNotEqual(r.returncode, 0)
    self.assertIn("--baseline needs outrigger in the proxy list", r.stderr)

  def test_instructions_sh_reports_instructions_per_request(self):
    if sanitized(binary()):
      self.skipTest("valgrind cannot run an AddressSanitizer build (the release run covers it)")
    r = subprocess.run([os.path.join(REPO, "bench", "instructions.sh"), "-n", "200", binary()],
                       capture_output=True, text=True, timeout=240)
    self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
    m = re.fullmatch(r"(\S+) (\d+)\n", r.stdout)
    self.assertIsNotNone(m, r.stdout)
    self.assertEqual(m.group(1), binary())
    # An h2c request through the bridge is tens of thousands of instructions; a broken
    # measurement (nothing between zero and dump) would be a handful.
    self.assertGreater(int(m.group(2)), 5000)

  def test_instructions_sh_runs_the_floor_in_the_mtls_case(self):
    """A binary named bench_floor runs as the case's floor: in h1-mtls it needs outrigger's
    certificates (from the other binary) and does the TLS record work, thousands of instructions
    a request, and fewer than outrigger's whole request."""
    if sanitized(binary()):
      self.skipTest("valgrind cannot run an AddressSanitizer build (the release run covers it)")
    floor = os.path.join(os.path.dirname(os.path.dirname(binary())), "bench", "bench_floor")
    r = subprocess.run([os.path.join(REPO, "bench", "instructions.sh"), "--case", "h1-mtls",
                        "-n", "100", floor, binary()], capture_output=True, text=True, timeout=300)
    self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
    got = dict(line.split(" ") for line in r.stdout.splitlines())
    self.assertEqual(set(got), {floor, binary()}, r.stdout)
    self.assertGreater(int(got[floor]), 2000, r.stdout)
    self.assertLess(int(got[floor]), int(got[binary()]), r.stdout)

  def test_instructions_sh_measures_the_mtls_upstream_case(self):
    if sanitized(binary()):
      self.skipTest("valgrind cannot run an AddressSanitizer build (the release run covers it)")
    r = subprocess.run([os.path.join(REPO, "bench", "instructions.sh"), "--case", "h1-mtls",
                        "-n", "100", binary()], capture_output=True, text=True, timeout=240)
    self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
    m = re.fullmatch(r"(\S+) (\d+)\n", r.stdout)
    self.assertIsNotNone(m, r.stdout)
    # TLS on the upstream side (an SSL_write and an SSL_read per request) costs more than the
    # whole plaintext HTTP/1.1 request, which is about 14k.
    self.assertGreater(int(m.group(2)), 20000)


class ProfileGuidedBuild(unittest.TestCase):
  """The profile-guided release build (CMakeLists.txt OUTRIGGER_PGO, scripts/pgo.sh). That the
  profile makes the binary faster is measured in bench/RESULTS.md, not here."""

  def tmpdir(self):
    d = tempfile.mkdtemp(prefix="pgo-test-")
    self.addCleanup(shutil.rmtree, d, True)
    return d

  def configure(self, *args):
    build = os.path.join(self.tmpdir(), "build")
    r = subprocess.run(["cmake", "-S", REPO, "-B", build, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DOUTRIGGER_TESTS=OFF",
                        "-DOUTRIGGER_BENCH=OFF", *args],
                       capture_output=True, text=True, timeout=120)
    return build, r

  def core_flags(self, *args):
    """Configures with args; returns the build folder and how a core file is compiled."""
    build, r = self.configure(*args)
    self.assertEqual(r.returncode, 0, r.stderr[-2000:])
    with open(os.path.join(build, "compile_commands.json")) as f:
      for c in json.load(f):
        if c["file"].endswith("proxy/server/connection.cc"):
          return build, c["command"]
    self.fail("proxy/server/connection.cc not in compile_commands.json")

  def test_cmake_modes(self):
    """generate and use name their counts the same way in any build directory (the build
    directory is the prefix taken off object paths); off adds nothing; anything else is refused
    with the allowed values."""
    data = os.path.join(self.tmpdir(), "counts")
    build, cmd = self.core_flags("-DOUTRIGGER_PGO=generate", "-DOUTRIGGER_PGO_DIR=" + data)
    self.assertIn("-fprofile-generate=" + data, cmd)
    self.assertIn("-fprofile-prefix-path=" + build, cmd)
    self.assertIn("-fprofile-update=prefer-atomic", cmd)

    build, cmd = self.core_flags("-DOUTRIGGER_PGO=use", "-DOUTRIGGER_PGO_DIR=" + data)
    self.assertIn("-fprofile-use=" + data, cmd)
    self.assertIn("-fprofile-prefix-path=" + build, cmd)
    self.assertIn("-fprofile-partial-training", cmd)
    self.assertNotIn("-fprofile-generate", cmd)

    _, cmd = self.core_flags()
    self.assertNotIn("-fprofile", cmd)

    _, r = self.configure("-DOUTRIGGER_PGO=yes")
    self.assertNotEqual(r.returncode, 0)
    self.assertIn("OUTRIGGER_PGO must be off, generate or use, not 'yes'", r.stderr)

  def test_training_that_writes_no_counts_builds_without_a_profile(self):
    """A binary that is not instrumented runs the loads but leaves no counts: the script says
    so and answers "off", and leaves no data folder for -fprofile-use to read."""
    d = self.tmpdir()
    r = subprocess.run([os.path.join(REPO, "scripts", "pgo.sh"), "--train", binary(), d],
                       capture_output=True, text=True, timeout=280,
                       env=dict(os.environ, PGO_TRAIN_SECONDS="1"))
    self.assertEqual(r.returncode, 0, r.stderr[-2000:])
    self.assertEqual(r.stdout, "off\n", r.stderr[-2000:])
    self.assertIn("the training wrote no profile counts", r.stderr)
    self.assertFalse(os.path.exists(os.path.join(d, "data")))
    # The loads did run: every training case completed with requests and no errors.
    with open(os.path.join(d, "train", "rounds.csv")) as f:
      rows = list(csv.DictReader(f))
    self.assertEqual([(x["case"], x["proxy"]) for x in rows],
                     [("h1-keepalive", "outrigger"), ("h1-mtls-upstream", "outrigger"),
                      ("h2c-h1", "outrigger"), ("h2-h2", "outrigger"),
                      ("h1-resilience", "outrigger"), ("h1-resilience", "outrigger-resilient")])
    for x in rows:
      self.assertEqual((x["status"], x["errors"]), ("ok", "0"), x)
      self.assertGreater(int(x["requests"]), 0, x)

  def test_failed_training_builds_without_a_profile(self):
    d = self.tmpdir()
    os.makedirs(os.path.join(d, "data"))
    with open(os.path.join(d, "data", "stale.gcda"), "w") as f:
      f.write("x")
    fake = os.path.join(d, "outrigger")
    with open(fake, "w") as f:
      f.write("#!/bin/sh\nexit 3\n")
    os.chmod(fake, 0o755)
    r = subprocess.run([os.path.join(REPO, "scripts", "pgo.sh"), "--train", fake, d],
                       capture_output=True, text=True, timeout=280,
                       env=dict(os.environ, PGO_TRAIN_SECONDS="1"))
    self.assertEqual(r.returncode, 0, r.stderr[-2000:])
    self.assertEqual(r.stdout, "off\n")
    self.assertIn("training failed; building without a profile", r.stderr)
    self.assertFalse(os.path.exists(os.path.join(d, "data")))  # stale counts are not kept
    self.assertTrue(os.path.exists(os.path.join(d, "train.log")))

  def test_bad_arguments(self):
    script = os.path.join(REPO, "scripts", "pgo.sh")
    r = subprocess.run([script], capture_output=True, text=True, timeout=30)
    self.assertEqual(r.returncode, 2)
    self.assertIn("usage: scripts/pgo.sh", r.stderr)
    r = subprocess.run([script, "--train", binary(), self.tmpdir()], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, PGO_TRAIN_SECONDS="0"))
    self.assertEqual(r.returncode, 2)
    self.assertIn("PGO_TRAIN_SECONDS must be 1..99", r.stderr)


if __name__ == "__main__":
  unittest.main()
