#!/usr/bin/env python3
"""Turns bench/run.sh's per-round CSV into the median table (stdout + results.md), results.csv and
one gnuplot PNG per case. Single-threaded; standard library only."""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys

PEERS = ("haproxy", "nginx", "nghttpx")
METRICS = ("rps", "p50_us", "p99_us", "cpu_us_per_req", "sys_us_per_req", "proxy_cpu_pct",
           "proxy_cpu_other_pct", "errors", "load_cpu_us_per_req", "load_cpu_pct")


def fmt_latency(us):
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_num(v, digits=0):
    return "-" if v is None else f"{v:,.{digits}f}"


def load_rounds(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def medians(rows, cases, proxies):
    """Returns {(case, proxy): {metric: median or None, 'ok': n, 'failed': n}}."""
    out = {}
    for case in cases:
        for proxy in proxies:
            mine = [r for r in rows if r["case"] == case and r["proxy"] == proxy]
            ok = [r for r in mine if r["status"] == "ok"]
            entry = {"ok": len(ok), "failed": len(mine) - len(ok)}
            for m in METRICS:
                # Empty: not measured by that case's load generator (e.g. no latency from s_time).
                # (sys_us_per_req and load_cpu_* are missing from rounds files of older runs.)
                vals = [float(r[m]) for r in ok if r.get(m) not in ("", None)]
                entry[m] = statistics.median(vals) if vals else None
            cpu = [float(r["cpu_us_per_req"]) for r in ok]
            entry["cpu_min"] = min(cpu) if cpu else None
            entry["cpu_max"] = max(cpu) if cpu else None
            out[(case, proxy)] = entry
    return out


def best_peer(med, case, proxies):
    vals = [(med[(case, p)]["cpu_us_per_req"], p) for p in proxies
            if p in PEERS and med[(case, p)]["cpu_us_per_req"] is not None]
    return min(vals) if vals else (None, None)


def baseline(med, case, proxies):
    """(CPU-µs/req, name, label) that the ratio column divides by: the best peer, or in a case
    without peers (outrigger variants only) the first proxy of the case that finished."""
    best, name = best_peer(med, case, proxies)
    if best is not None:
        return best, name, "best peer"
    for p in proxies:
        if med[(case, p)]["ok"] and p not in PEERS:
            return med[(case, p)]["cpu_us_per_req"], p, p
    return None, None, "best peer"


def case_proxies(rows, case, proxies):
    """The selected proxies that ran in this case, then the case's own variants (e.g.
    outrigger-resilient), in order of first appearance in the rounds."""
    seen = [r["proxy"] for r in rows if r["case"] == case]
    return [p for p in proxies if p in seen] + list(dict.fromkeys(
        p for p in seen if p not in proxies))


def table(med, case, proxies):
    best, best_name, label = baseline(med, case, proxies)
    lines = [
        f"| proxy | req/s | p50 | p99 | CPU-µs/req | of it in the kernel | ratio to {label} | "
        "proxy CPU | other load on proxy CPU | load side CPU-µs/req | rounds ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in proxies:
        e = med[(case, p)]
        total = e["ok"] + e["failed"]
        if e["ok"] == 0:
            lines.append(f"| {p} | FAILED | - | - | - | - | - | - | - | - | 0/{total} |")
            continue
        ratio = "-" if best is None else f"{e['cpu_us_per_req'] / best:.2f}×"
        errs = "" if not e["errors"] else f" ({e['errors']:.0f} errors)"
        lines.append(
            f"| {p} | {fmt_num(e['rps'])}{errs} | {fmt_latency(e['p50_us'])} | "
            f"{fmt_latency(e['p99_us'])} | {e['cpu_us_per_req']:.2f} | "
            f"{fmt_num(e['sys_us_per_req'], 2)} | {ratio} | "
            f"{e['proxy_cpu_pct']:.0f}% | {e['proxy_cpu_other_pct']:.0f}% | "
            f"{fmt_num(e['load_cpu_us_per_req'], 2)} | {e['ok']}/{total} |")
    if best is None:
        note = "No peer finished, so there is no ratio."
    elif label == "best peer":
        note = (f"Ratio = CPU-µs/req ÷ that of the best peer ({best_name}, {best:.2f}); below 1.00 "
                "means less proxy CPU per request than every peer.")
    else:
        note = (f"No peer runs in this case; ratio = CPU-µs/req ÷ that of {best_name} "
                f"({best:.2f}).")
    note += (" 'proxy CPU' is the proxy's share of its CPU during the run (about 100% means the proxy"
             " was the bottleneck); 'other load' is time on that CPU not charged to the proxy (other"
             " processes, interrupts) and should be near 0 for clean numbers. 'of it in the kernel' is"
             " the system-time part of CPU-µs/req (stime in /proc), the part that system calls and"
             " the network stack cost. 'load side' is the busy time of the other CPU (load generator and"
             " backend, with their kernel work) per request: when it differs between proxies, a"
             " proxy makes the client or the backend work harder (more packets, more frames).")
    return "\n".join(lines), note


def write_csv(med, cases, path):
    """cases: [(case, [proxies of that case])]."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "proxy", "rounds_ok", "rounds_failed", "rps", "p50_us", "p99_us",
                    "cpu_us_per_req", "cpu_us_per_req_min", "cpu_us_per_req_max", "sys_us_per_req",
                    "ratio_to_best_peer", "proxy_cpu_pct", "proxy_cpu_other_pct", "errors",
                    "ratio_to_baseline", "baseline", "load_cpu_us_per_req", "load_cpu_pct"])
        for case, case_list in cases:
            best, _ = best_peer(med, case, case_list)
            base, base_name, _ = baseline(med, case, case_list)
            for p in case_list:
                e = med[(case, p)]
                ratio = (e["cpu_us_per_req"] / best
                         if best and e["cpu_us_per_req"] is not None else None)
                ratio_base = (e["cpu_us_per_req"] / base
                              if base and e["cpu_us_per_req"] is not None else None)

                def c(v, d=2):
                    return "" if v is None else f"{v:.{d}f}"
                w.writerow([case, p, e["ok"], e["failed"], c(e["rps"], 0), c(e["p50_us"], 0),
                            c(e["p99_us"], 0), c(e["cpu_us_per_req"]), c(e["cpu_min"]),
                            c(e["cpu_max"]), c(e["sys_us_per_req"]), c(ratio, 3), c(e["proxy_cpu_pct"], 1),
                            c(e["proxy_cpu_other_pct"], 1), c(e["errors"], 0),
                            c(ratio_base, 3), base_name or "", c(e["load_cpu_us_per_req"]),
                            c(e["load_cpu_pct"], 1)])


def chart(med, case, proxies, out_dir):
    """One PNG per case: CPU-µs/req (bars, min..max of rounds as error bars) and req/s."""
    gnuplot = shutil.which("gnuplot")
    rows = [(p, med[(case, p)]) for p in proxies if med[(case, p)]["ok"]]
    if not gnuplot or not rows:
        return None
    dat = os.path.join(out_dir, f"{case}.dat")
    png = os.path.join(out_dir, f"{case}.png")
    with open(dat, "w") as f:
        f.write("# proxy cpu_us_per_req cpu_min cpu_max rps color\n")
        for p, e in rows:
            color = 14034728 if p == "outrigger" else 2062260  # 0xd62728, 0x1f77b4
            f.write(f"{p} {e['cpu_us_per_req']:.3f} {e['cpu_min']:.3f} {e['cpu_max']:.3f} "
                    f"{e['rps']:.0f} {color}\n")
    terms = subprocess.run([gnuplot, "-e", "set terminal"], capture_output=True, text=True)
    term = "pngcairo" if "pngcairo" in (terms.stdout + terms.stderr) else "png"
    script = f"""
set terminal {term} size 1000,460
set output '{png}'
set multiplot layout 1,2 title "{case}: median of rounds (outrigger in red)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set xrange [-0.6:{len(rows) - 0.4}]
unset key
set title "proxy CPU-µs per request (lower is better; bars: min..max)"
plot '{dat}' using 0:2:6:xtic(1) with boxes lc rgb variable, \\
     '' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0, \\
     '' using 0:2:(sprintf('%.2f', $2)) with labels offset 0,1.2
set title "requests per second (higher is better)"
plot '{dat}' using 0:5:6:xtic(1) with boxes lc rgb variable, \\
     '' using 0:5:(sprintf('%.0f', $5)) with labels offset 0,1.2
unset multiplot
"""
    res = subprocess.run([gnuplot], input=script, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        print(f"report: gnuplot failed: {res.stderr.strip()}", file=sys.stderr)
        return None
    return png


def paired(rows, case, proxies, subject="outrigger"):
    """Per-round ratios of the subject's CPU-µs/req to each other proxy's in the same round:
    [(proxy, median, min, max, rounds)]. On a shared machine the load drifts between rounds, so
    the two runs of one round (back to back) compare better than the medians of all rounds do."""
    def by_round(p):
        return {r["round"]: float(r["cpu_us_per_req"]) for r in rows
                if r["case"] == case and r["proxy"] == p and r["status"] == "ok"}
    mine = by_round(subject)
    out = []
    for p in proxies:
        if p == subject:
            continue
        theirs = by_round(p)
        ratios = [mine[k] / theirs[k] for k in mine if k in theirs and theirs[k] > 0]
        if ratios:
            out.append((p, statistics.median(ratios), min(ratios), max(ratios), len(ratios)))
    return out


def paired_note(rows, case, proxies):
    pairs = paired(rows, case, proxies)
    if not pairs:
        return None
    parts = [f"{p} {m:.2f}× ({lo:.2f}-{hi:.2f}, {n} rounds)" for p, m, lo, hi, n in pairs]
    return ("Paired per round (outrigger's CPU-µs/req ÷ the other's in the same round; median, "
            "range): " + "; ".join(parts) + ".")


def floor_note(rows, case, proxies, floor="floor"):
    """A floor (bench_floor: the least work any proxy can do in the case; floor-uring: the same on
    io_uring) against each peer, paired per round: a goal below these ratios cannot be met by any
    proxy on this machine."""
    if floor not in proxies:
        return None
    pairs = [t for t in paired(rows, case, proxies, subject=floor) if t[0] in PEERS]
    if not pairs:
        return None
    parts = [f"{p} {m:.2f}× ({lo:.2f}-{hi:.2f}, {n} rounds)" for p, m, lo, hi, n in pairs]
    # Against the best peer of each round: the figure a goal "≤ N× the best peer" is about.
    cpu = {}
    for r in rows:
        if r["case"] == case and r["status"] == "ok":
            cpu.setdefault(r["round"], {})[r["proxy"]] = float(r["cpu_us_per_req"])
    best = [v[floor] / min(v[p] for p in PEERS if p in v) for v in cpu.values()
            if floor in v and any(p in v for p in PEERS)]
    what = "the floor" if floor == "floor" else f"{floor}"
    text = (f"{what[0].upper()}{what[1:]} ÷ peer per round (the least work any proxy can do in this "
            "case, bench/floor/floor.cc; no proxy can go below it): " + "; ".join(parts))
    if len(pairs) > 1:
        text += (f"; the best peer of each round {statistics.median(best):.2f}× "
                 f"({min(best):.2f}-{max(best):.2f}, {len(best)} rounds)")
    return text + "."


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds-csv", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--cases", required=True, help="comma-separated, in order")
    ap.add_argument("--proxies", required=True, help="comma-separated, in order")
    ap.add_argument("--meta", help="file of 'key: value' lines for the report header")
    ap.add_argument("--describe", action="append", default=[], help="case=one-line description")
    args = ap.parse_args()

    cases = args.cases.split(",")
    proxies = args.proxies.split(",")
    described = dict(d.split("=", 1) for d in args.describe)
    rows = load_rounds(args.rounds_csv)
    # Per case: the proxies that ran in it (a case may skip some or add variants of outrigger).
    per_case = [(c, case_proxies(rows, c, proxies)) for c in cases]
    per_case = [(c, pl) for c, pl in per_case if pl]
    med = {}
    for c, pl in per_case:
        med.update(medians(rows, [c], pl))

    md = ["# Outrigger side-by-side benchmark", ""]
    if args.meta and os.path.exists(args.meta):
        with open(args.meta) as f:
            md += [f"- {line.rstrip()}" for line in f if line.strip()]
        md.append("")
    for case, case_list in per_case:
        body, note = table(med, case, case_list)
        md += [f"## {case}", ""]
        if case in described:
            md += [described[case], ""]
        md += [body, "", note, ""]
        for pn in (paired_note(rows, case, case_list), floor_note(rows, case, case_list),
                   floor_note(rows, case, case_list, "floor-uring")):
            if pn:
                md += [pn, ""]
        png = chart(med, case, case_list, args.out_dir)
        if png:
            md += [f"![{case}]({os.path.basename(png)})", ""]
    text = "\n".join(md)
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write(text)
    write_csv(med, per_case, os.path.join(args.out_dir, "results.csv"))
    print(text)


if __name__ == "__main__":
    main()
