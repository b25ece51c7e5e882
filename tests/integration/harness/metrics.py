"""Parses Prometheus text exposition (0.0.4) into samples, and names the series the tests watch."""
import re

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?[0-9]+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v):
  return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


class Metrics:
  """Samples of one scrape. get()/find() sum every sample whose labels include the given ones."""

  def __init__(self, text):
    self.text = text
    self.samples = []  # (name, labels dict, value)
    self.types = {}
    for line in text.splitlines():
      line = line.strip()
      if not line:
        continue
      if line.startswith("#"):
        parts = line.split(None, 3)
        if len(parts) >= 4 and parts[1] == "TYPE":
          self.types[parts[2]] = parts[3]
        continue
      m = _SAMPLE.match(line)
      if not m:
        raise ValueError("unparsable metrics line %r" % line)
      labels = {}
      if m.group(3):
        pos = 0
        body = m.group(3)
        while pos < len(body):
          lm = _LABEL.match(body, pos)
          if not lm:
            raise ValueError("bad labels in %r" % line)
          labels[lm.group(1)] = _unescape(lm.group(2))
          pos = lm.end()
      self.samples.append((m.group(1), labels, float(m.group(4))))

  def names(self):
    return sorted({n for n, _, _ in self.samples})

  def get(self, name, **labels):
    return sum(v for n, l, v in self.samples
               if n == name and all(l.get(k) == str(x) for k, x in labels.items()))

  def find(self, pattern, **labels):
    rx = re.compile(pattern)
    return sum(v for n, l, v in self.samples
               if rx.search(n) and all(l.get(k) == str(x) for k, x in labels.items()))

  def has(self, pattern):
    rx = re.compile(pattern)
    return any(rx.search(n) for n, _, _ in self.samples)

  def __contains__(self, name):
    return any(n == name for n, _, _ in self.samples)


# The series the tests watch (names from proxy/stats/stats.cc; label values are the *_name()
# strings of stats.h's enums).
def upstream_errors(m, reason, **labels):
  return m.get("outrigger_upstream_errors_total", reason=reason, **labels)


def limit_hits(m, limit):
  return m.get("outrigger_limit_hits_total", limit=limit)


def bad_requests(m, reason=None):
  if reason is None:
    return m.get("outrigger_downstream_bad_requests_total")
  return m.get("outrigger_downstream_bad_requests_total", reason=reason)


def no_route(m):
  return m.get("outrigger_downstream_no_route_total")


def reloads(m, ok=True):
  return m.get("outrigger_config_reloads_total", result="ok" if ok else "failed")
