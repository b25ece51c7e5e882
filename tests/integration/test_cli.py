"""The command line: --help/--version everywhere, validate on examples and bad fixtures."""
import glob
import os
import re
import subprocess
import unittest

from harness import REPO, ProxyTestCase, binary, yaml_out

SUBCOMMANDS = ["run", "validate", "reverse-proxy"]


_timed_out = False


def run(args, cwd=None, timeout=10):
  """Runs the binary; once one call has hung, later calls get 1 s (the suite must stay short)."""
  global _timed_out
  try:
    return subprocess.run([binary()] + args, capture_output=True, cwd=cwd,
                          timeout=1 if _timed_out else timeout, stdin=subprocess.DEVNULL)
  except subprocess.TimeoutExpired:
    _timed_out = True
    raise


def project_version():
  with open(os.path.join(REPO, "CMakeLists.txt")) as f:
    m = re.search(r"project\(outrigger\s+VERSION\s+([0-9.]+)", f.read())
  return m.group(1)


class HelpAndVersion(unittest.TestCase):
  def test_help_on_every_subcommand(self):
    for sub in [None] + SUBCOMMANDS:
      with self.subTest(subcommand=sub):
        p = run(([sub] if sub else []) + ["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = (p.stdout + p.stderr).decode()
        self.assertRegex(out.lower(), r"usage", "help text should say how to call it")
        if sub:
          self.assertIn(sub, out)
        else:
          for s in SUBCOMMANDS:
            self.assertIn(s, out, "top-level help should list %s" % s)

  def test_version_on_every_subcommand(self):
    version = project_version()
    for sub in [None] + SUBCOMMANDS:
      with self.subTest(subcommand=sub):
        p = run(([sub] if sub else []) + ["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(version, (p.stdout + p.stderr).decode())

  def test_help_documents_reverse_proxy_flags(self):
    p = run(["reverse-proxy", "--help"])
    out = (p.stdout + p.stderr).decode()
    for flag in ("--listen", "--to", "--workers", "--admin", "--access-log"):
      self.assertIn(flag, out)

  def test_unknown_subcommand_fails(self):
    p = run(["no-such-command"])
    self.assertNotEqual(p.returncode, 0)
    self.assertTrue(p.stderr.strip(), "an error message on stderr")

  def test_reverse_proxy_needs_its_flags(self):
    p = run(["reverse-proxy", "--listen", "127.0.0.1:0"])
    self.assertNotEqual(p.returncode, 0)
    self.assertTrue(p.stderr.strip())


class Validate(ProxyTestCase):
  def test_examples_are_valid(self):
    files = sorted(glob.glob(os.path.join(REPO, "config", "examples", "*.yaml")))
    if not files:
      self.skipTest("config/examples/*.yaml not present yet")
    for f in files:
      with self.subTest(file=os.path.basename(f)):
        p = run(["validate", "--config", f])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stderr.decode(), "", "a valid config prints no diagnostics")

  def test_bad_fixtures_print_exact_diagnostics(self):
    d = os.path.join(REPO, "tests", "fixtures", "config")
    if not os.path.isdir(d):
      self.skipTest("SKIPPED: tests/fixtures/config is absent")
    files = sorted(glob.glob(os.path.join(d, "bad_*.yaml")))
    self.assertTrue(files, "no bad_*.yaml fixtures in %s" % d)
    for f in files:
      name = os.path.basename(f)
      with self.subTest(file=name):
        with open(f[:-len(".yaml")] + ".expected") as e:
          expected = e.read()
        # The fixtures' README: run from the fixture directory with the bare file name.
        p = run(["validate", "--config", name], cwd=d)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.decode(), expected)

  def test_missing_file(self):
    p = run(["validate", "--config", "/nonexistent/outrigger.yaml"])
    self.assertEqual(p.returncode, 1)
    self.assertIn("/nonexistent/outrigger.yaml", p.stderr.decode())

  def test_generated_test_config_is_valid(self):
    # The configs this suite writes must pass the validator (else every test is meaningless).
    d = self.make_tmpdir()
    path = os.path.join(d, "c.yaml")
    cfg = yaml_out.config(
        [yaml_out.route("r1", "c1", hosts=["user-service", "*.orders.internal"],
                        path_prefix="/api/", timeout="300ms")],
        [yaml_out.cluster("c1", ["127.0.0.1:8080"], host_rewrite="backend.internal",
                          connect_timeout="300ms")],
        limits={"max_request_headers_bytes": 4096, "max_headers": 20,
                "max_request_body_bytes": 1000, "header_timeout": "1s", "idle_timeout": "1s"})
    with open(path, "w") as f:
      f.write(yaml_out.to_yaml(cfg) + "\n")
    p = run(["validate", "--config", path])
    self.assertEqual(p.returncode, 0, p.stderr.decode())

  def test_run_refuses_invalid_config(self):
    d = self.make_tmpdir()
    path = os.path.join(d, "bad.yaml")
    with open(path, "w") as f:
      f.write("listeners:\n  - name: main\n    address: 127.0.0.1:0\n"
              "    routes:\n      - cluster: nope\nclusters: []\n")
    p = run(["run", "--config", path], timeout=10)
    self.assertNotEqual(p.returncode, 0)
    self.assertIn("bad.yaml:", p.stderr.decode())


if __name__ == "__main__":
  unittest.main()
