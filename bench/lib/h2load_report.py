#!/usr/bin/env python3
"""Reads one h2load run (its stdout and its --log-file) and prints the line every case's load hook
returns: "requests=N duration_us=N p50_us=N p99_us=N errors=N". Also appends a BENCH_RESULT line
with more detail (p90, max, mean, h2load's own counters) to the stdout file, like wrk_report.lua.

h2load 1.52 prints only min/max/mean/sd of request times, so the percentiles come from the
--log-file: one row per finished request, tab-separated "start (µs since epoch)", "status (-1:
failed)", "µs from start to the end of the response". Percentiles are nearest-rank over the rows
whose status is not -1. The duration is the span of those rows (first start to last end), which
excludes connection set-up, like wrk's own run time; without rows, h2load's "finished in".
Errors are h2load's "failed" counter: stream errors, timeouts and answers other than 2xx/3xx.
Standard library only."""

import math
import re
import sys


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0
    rank = max(1, math.ceil(p / 100 * len(sorted_vals)))
    return sorted_vals[rank - 1]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: h2load_report.py H2LOAD_STDOUT H2LOAD_LOG_FILE")
    out_path, log_path = sys.argv[1:]
    with open(out_path, errors="replace") as f:
        text = f.read()
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if not m:
        sys.exit(f"h2load_report: no 'requests:' line in {out_path}")
    total, started, done, succeeded, failed, errored, timeout = map(int, m.groups())
    fin = re.search(r"^finished in ([0-9.]+)s", text, re.M)
    finished_us = int(float(fin.group(1)) * 1e6) if fin else 0

    lat, first_start, last_end, rows_failed = [], None, None, 0
    try:
        with open(log_path) as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) < 3:
                    continue
                start, status, elapsed = int(cols[0]), int(cols[1]), int(cols[2])
                if status == -1:
                    rows_failed += 1
                    continue
                lat.append(elapsed)
                first_start = start if first_start is None else min(first_start, start)
                last_end = start + elapsed if last_end is None else max(last_end, start + elapsed)
    except FileNotFoundError:
        pass
    lat.sort()
    requests = len(lat)
    duration_us = (last_end - first_start) if requests > 1 else finished_us
    if duration_us <= 0:
        duration_us = finished_us
    p50, p90, p99 = (percentile(lat, p) for p in (50, 90, 99))
    mean = sum(lat) / requests if requests else 0.0
    detail = (f"BENCH_RESULT requests={requests} duration_us={duration_us} p50_us={p50} "
              f"p90_us={p90} p99_us={p99} max_us={lat[-1] if lat else 0} mean_us={mean:.1f} "
              f"h2load_total={total} h2load_started={started} h2load_done={done} "
              f"h2load_succeeded={succeeded} h2load_failed={failed} h2load_errored={errored} "
              f"h2load_timeout={timeout} log_rows_failed={rows_failed} "
              f"h2load_finished_us={finished_us}")
    with open(out_path, "a") as f:
        f.write(detail + "\n")
    print(f"requests={requests} duration_us={duration_us} p50_us={p50} p99_us={p99} "
          f"errors={failed}")


if __name__ == "__main__":
    main()
