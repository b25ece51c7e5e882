#!/usr/bin/env python3
"""Keep-alive HTTP/1.1 load for the mesh, run inside an account's namespace.

  load.py --to 127.0.0.1:15001 --host orders [--method POST --path /orders] \
      [--clients 4] [--duration 5] [--max-requests 2000]

Each client keeps one connection (a new one after a close or an error) and sends requests one
after another until the duration or the request budget is spent (both bound the run). Prints one
JSON object: counts by status, every failure (status, x-outrigger-reason, or the socket error),
the ids of created orders (POST /orders answers {"created": {"id": N}}), and latency percentiles
in milliseconds. Stdlib only.
"""
import argparse
import http.client
import json
import threading
import time


def percentile(sorted_values, p):
  if not sorted_values:
    return None
  i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
  return round(sorted_values[i], 2)


def run(args):
  host, _, port = args.to.rpartition(":")
  deadline = time.monotonic() + args.duration
  lock = threading.Lock()
  budget = [args.max_requests]
  out = {"statuses": {}, "failures": [], "created_ids": [], "latencies_ms": []}

  def take():
    with lock:
      if budget[0] <= 0 or time.monotonic() >= deadline:
        return False
      budget[0] -= 1
      return True

  def client(n):
    conn = None
    seq = 0
    while take():
      seq += 1
      if conn is None:
        conn = http.client.HTTPConnection(host, int(port), timeout=args.timeout)
      body = None
      headers = {"host": args.host}
      if args.method == "POST":
        body = json.dumps({"item": "paddle", "client": n, "seq": seq}).encode()
        headers["content-type"] = "application/json"
      start = time.monotonic()
      try:
        conn.request(args.method, args.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        ms = (time.monotonic() - start) * 1000
        status = resp.status
        reason = resp.getheader("x-outrigger-reason")
        if resp.getheader("connection", "").lower() == "close":
          conn.close()
          conn = None
      except (OSError, http.client.HTTPException) as e:
        with lock:
          out["failures"].append({"error": "%s: %s" % (type(e).__name__, e), "client": n,
                                  "seq": seq})
          out["statuses"]["error"] = out["statuses"].get("error", 0) + 1
        if conn is not None:
          conn.close()
        conn = None
        continue
      with lock:
        out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
        out["latencies_ms"].append(ms)
        if 200 <= status < 300:
          if args.method == "POST":
            try:
              out["created_ids"].append(json.loads(data)["created"]["id"])
            except (ValueError, KeyError, TypeError):
              out["failures"].append({"status": status, "error": "unparsable body"})
        else:
          out["failures"].append({"status": status, "reason": reason, "client": n, "seq": seq,
                                  "body": data[:200].decode("utf-8", "replace")})
    if conn is not None:
      conn.close()

  threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
  t0 = time.monotonic()
  for t in threads:
    t.start()
  for t in threads:
    t.join(args.duration + args.timeout + 5)
  lat = sorted(out.pop("latencies_ms"))
  out["requests"] = sum(out["statuses"].values())
  out["seconds"] = round(time.monotonic() - t0, 2)
  out["latency_ms"] = {"p50": percentile(lat, 50), "p90": percentile(lat, 90),
                       "p99": percentile(lat, 99), "max": percentile(lat, 100)}
  return out


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--to", required=True)
  ap.add_argument("--host", required=True)
  ap.add_argument("--method", default="GET", choices=["GET", "POST"])
  ap.add_argument("--path", default="/health")
  ap.add_argument("--clients", type=int, default=4)
  ap.add_argument("--duration", type=float, default=5.0)
  ap.add_argument("--max-requests", type=int, default=2000)
  ap.add_argument("--timeout", type=float, default=10.0)
  print(json.dumps(run(ap.parse_args()), sort_keys=True))


if __name__ == "__main__":
  main()
