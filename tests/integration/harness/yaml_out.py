"""A tiny YAML writer (block style) for the configs the tests hand to the proxy, and builders for
the common config shapes."""
import json
import re

_PLAIN = re.compile(r"^[A-Za-z0-9_/][A-Za-z0-9_./:-]*$")
_AMBIGUOUS = re.compile(r"^(true|false|yes|no|on|off|null|~|[-+]?[0-9.]+([eE][-+]?[0-9]+)?|0x.*)$",
                        re.I)


def scalar(v):
  if v is True:
    return "true"
  if v is False:
    return "false"
  if v is None:
    return "null"
  if isinstance(v, (int, float)):
    return str(v)
  s = str(v)
  if _PLAIN.match(s) and not _AMBIGUOUS.match(s):
    return s
  return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _is_complex(v):
  return isinstance(v, (dict, list)) and bool(v)


def _flow(v):
  if isinstance(v, list):
    return "[" + ", ".join(_flow(x) for x in v) + "]"
  if isinstance(v, dict):
    return "{" + ", ".join("%s: %s" % (k, _flow(x)) for k, x in v.items()) + "}"
  return scalar(v)


def to_yaml(value, indent=0):
  pad = "  " * indent
  lines = []
  if isinstance(value, dict):
    for k, v in value.items():
      if isinstance(v, dict) and v:
        lines.append("%s%s:" % (pad, k))
        lines.append(to_yaml(v, indent + 1))
      elif isinstance(v, list) and any(_is_complex(x) for x in v):
        lines.append("%s%s:" % (pad, k))
        lines.append(to_yaml(v, indent + 1))
      else:
        lines.append("%s%s: %s" % (pad, k, _flow(v)))
  elif isinstance(value, list):
    for item in value:
      if _is_complex(item):
        body = to_yaml(item, indent + 1)
        lines.append(pad + "- " + body[len(pad) + 2:])
      else:
        lines.append("%s- %s" % (pad, _flow(item)))
  else:
    lines.append(pad + scalar(value))
  return "\n".join(lines)


def route(name, cluster, hosts=("*",), path_prefix="/", timeout=None):
  r = {"name": name, "match": {"hosts": list(hosts), "path_prefix": path_prefix},
       "cluster": cluster}
  if timeout:
    r["timeout"] = timeout
  return r


def cluster(name, endpoints, type_="static", **extra):
  c = {"name": name, "type": type_, "endpoints": list(endpoints)}
  c.update(extra)
  return c


def config(routes, clusters, listener="main", limits=None, drain=None, **top):
  """A one-listener config with test-friendly defaults (1 worker, admin on port 0, access log on
  stdout, short drain)."""
  cfg = {
      "workers": 1,
      "admin": {"address": "127.0.0.1:0"},
      "access_log": "stdout",
      "drain": drain or {"delay": "0s", "timeout": "5s"},
  }
  if limits:
    cfg["limits"] = limits
  cfg.update(top)
  cfg["listeners"] = [{"name": listener, "address": "127.0.0.1:0", "role": "outbound",
                       "routes": list(routes)}]
  cfg["clusters"] = list(clusters)
  return cfg


def simple(endpoint, route_timeout=None, cluster_extra=None, **top):
  """Everything to one static cluster "c1" at endpoint ("ip:port")."""
  return config([route("r1", "c1", timeout=route_timeout)],
                [cluster("c1", [endpoint], **(cluster_extra or {}))], **top)
