#!/usr/bin/env python3
"""Per-request system calls from `perf stat -x,` output (bench/run.sh --syscalls).

usage: syscalls_report.py PERF_CSV REQUESTS
Prints one line: "syscalls/req: 4.71 (recvfrom 2.50, sendto 1.00, ...)", the named calls
largest first, those under 0.01 per request left out.
"""
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, requests = sys.argv[1], int(sys.argv[2])
    if requests <= 0:
        print("syscalls_report.py: no requests", file=sys.stderr)
        return 1
    total, named = None, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) < 3 or line.startswith("#"):
                continue
            value, event = fields[0], fields[2]
            if not value.isdigit():  # "<not counted>" / "<not supported>"
                continue
            if event == "raw_syscalls:sys_enter":
                total = int(value)
            elif event.startswith("syscalls:sys_enter_"):
                named[event[len("syscalls:sys_enter_"):]] = int(value)
    if total is None:
        print(f"syscalls_report.py: no raw_syscalls:sys_enter count in {path}", file=sys.stderr)
        return 1
    parts = [f"{name} {count / requests:.2f}"
             for name, count in sorted(named.items(), key=lambda kv: -kv[1])
             if count / requests >= 0.01]
    print(f"syscalls/req: {total / requests:.2f} ({', '.join(parts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
