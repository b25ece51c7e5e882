#!/usr/bin/env python3
"""Measures the time from spawning a proxy to its admin /ready answering 200, polling every
0.5 ms. The command is a template: {listen} and {admin} become fresh 127.0.0.1 ports each run.
Prints one JSON object on stdout. Stops only the processes it started; every wait is bounded."""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def ready_status(port):
    """Status code of GET /ready, or None while nothing accepts on the port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
    except OSError:
        return None
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def one_run(template, cpu, timeout, log):
    listen, admin = free_ports(2)
    cmd = [a.format(listen=listen, admin=admin) for a in template]
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            preexec_fn=pin)
    try:
        deadline = start + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None, f"exited with status {proc.returncode} before /ready"
            if ready_status(admin) == 200:
                return (time.monotonic() - start) * 1000.0, None
            time.sleep(0.0005)
        return None, f"/ready not 200 within {timeout} s"
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=None, help="pin the proxy to this CPU")
    ap.add_argument("--timeout", type=float, default=10.0, help="per run, seconds")
    ap.add_argument("--log", default=os.devnull, help="proxy stdout+stderr go here")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND with {listen} and {admin}")
    args = ap.parse_args()
    template = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not template:
        ap.error("no command given")
    times, errors = [], []
    with open(args.log, "ab") as log:
        for _ in range(max(1, min(args.runs, 100))):
            ms, err = one_run(template, args.cpu, args.timeout, log)
            if err:
                errors.append(err)
                break  # a binary that does not start will not start on the next try either
            times.append(ms)
    out = {"runs": len(times), "errors": errors}
    if times:
        out.update(median_ms=round(statistics.median(times), 2), min_ms=round(min(times), 2),
                   max_ms=round(max(times), 2), all_ms=[round(t, 2) for t in times])
    print(json.dumps(out))
    sys.exit(0 if times and not errors else 1)


if __name__ == "__main__":
    main()
