#!/usr/bin/env python3
"""TLS connection load generator for the tls-conn-* cases (an alternative to `openssl s_time`,
chosen with BENCH_TLS_CLIENT=python): PROCS processes, each opening one TLS 1.3 connection after
the other for SECONDS: handshake (resumed with the session of its previous connection in --resume
mode), an HTTP/1.0 GET with a Host header, read the answer until the server closes. Unlike s_time it keeps a session
even when the server closes without close_notify (Python treats that as a ragged EOF), and it
measures each connection's latency (connect to end of answer).

Prints one line: requests=N duration_us=N p50_us=N p99_us=N errors=N, where errors are failed
connections, non-200 answers and (with --resume) connections that were not resumed.
Standard library only; every loop is bounded by the deadline."""

import argparse
import multiprocessing
import socket
import ssl
import sys
import time


def worker(args, deadline, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(args.cafile)
    lat, errors, session = [], 0, None
    # Byte for byte what case_tls_handshake.sh makes s_time send.
    request = (f"GET / HTTP/1.0\r\nHost: {args.sni}\r\nX-Bench: s_time HTTP/1.0\r\n\r\n"
               .encode())
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            with socket.create_connection((args.host, args.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=args.sni,
                                     session=session if args.resume else None) as s:
                    s.sendall(request)
                    chunks = []
                    while True:
                        try:
                            d = s.recv(16384)
                        except ssl.SSLEOFError:
                            d = b""
                        if not d:
                            break
                        chunks.append(d)
                    reused = s.session_reused
                    session = s.session
        except (OSError, ssl.SSLError):
            errors += 1
            session = None
            continue
        lat.append(time.perf_counter() - t0)
        head = b"".join(chunks)[:16]
        if not head.startswith(b"HTTP/1.") or head[9:12] != b"200":
            errors += 1
        elif args.resume and not reused and len(lat) > 1:
            errors += 1  # the first connection of each process cannot be resumed
    out.put((lat, errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", default="proxy.bench.internal")
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    if not (0 < args.seconds <= 3600 and 1 <= args.procs <= 64):
        sys.exit("seconds must be in (0, 3600], procs in 1..64")
    out = multiprocessing.Queue()
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    procs = [multiprocessing.Process(target=worker, args=(args, deadline, out))
             for _ in range(args.procs)]
    for p in procs:
        p.start()
    results = [out.get(timeout=args.seconds + 30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    wall = time.monotonic() - t0
    lat = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    if not lat:
        sys.exit("no connection completed")

    def pct(q):
        return int(lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6)
    print(f"requests={len(lat)} duration_us={int(wall * 1e6)} p50_us={pct(0.50)} "
          f"p99_us={pct(0.99)} errors={errors}")


if __name__ == "__main__":
    main()
