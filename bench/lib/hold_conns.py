#!/usr/bin/env python3
"""Opens N HTTP/1.1 keep-alive connections to a proxy, completes one request on each, keeps them
all open and idle, then reads the proxy's memory from /proc and checks the connections still work.
Prints one JSON object on stdout. Single-threaded (asyncio); every wait is bounded."""

import argparse
import asyncio
import json
import os
import sys
import time

REQUEST = b"GET /footprint HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: outrigger-bench\r\n\r\n"


def proc_kib(pids, field):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            raise SystemExit(f"hold_conns: process {pid} is gone")
    return total


def open_fds(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return n


async def one_request(reader, writer, timeout):
    """Sends REQUEST and reads one response with a Content-Length body; returns the status."""
    writer.write(REQUEST)
    await asyncio.wait_for(writer.drain(), timeout)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() == "connection" and "close" in value.lower():
            raise ConnectionError("proxy asked to close the connection")
    if length:
        await asyncio.wait_for(reader.readexactly(length), timeout)
    return status


async def open_one(port, timeout, sem, conns, errors):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, limit=16384), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            errors.append(f"connect: {e!r}")
            return
        try:
            status = await one_request(reader, writer, timeout)
            if status != 200:
                raise ConnectionError(f"status {status}")
            conns.append((reader, writer))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                ValueError, IndexError) as e:
            errors.append(f"request: {e!r}")
            writer.close()


async def main_async(args):
    pids = [int(p) for p in args.pids.split(",")]
    result = {"target": args.count, "rss_before_kib": proc_kib(pids, "VmRSS")}
    sem = asyncio.Semaphore(args.concurrency)
    conns, errors = [], []
    start = time.monotonic()
    tasks = [open_one(args.port, args.timeout, sem, conns, errors) for _ in range(args.count)]
    await asyncio.wait_for(asyncio.gather(*tasks), args.deadline)
    result["open_seconds"] = round(time.monotonic() - start, 2)
    result["open"] = len(conns)
    result["failed"] = len(errors)
    result["first_errors"] = errors[:5]
    # Let the proxy go idle (timers, freed request buffers) before reading its memory.
    await asyncio.sleep(args.settle)
    result["rss_kib"] = proc_kib(pids, "VmRSS")
    result["hwm_kib"] = proc_kib(pids, "VmHWM")
    result["proxy_fds"] = open_fds(pids)
    # The connections must still be usable keep-alive connections, not closed by the proxy.
    sample = conns[:: max(1, len(conns) // args.recheck)][: args.recheck]
    still_ok = 0
    for reader, writer in sample:
        try:
            if await one_request(reader, writer, args.timeout) == 200:
                still_ok += 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                ValueError, IndexError):
            pass
    result["rechecked"] = len(sample)
    result["recheck_ok"] = still_ok
    for _, writer in conns:
        writer.close()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pids", required=True, help="comma-separated PIDs of the proxy's processes")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=200, help="connections being set up at once")
    ap.add_argument("--timeout", type=float, default=10.0, help="per connect/request, seconds")
    ap.add_argument("--deadline", type=float, default=180.0, help="for opening all, seconds")
    ap.add_argument("--settle", type=float, default=1.0, help="idle time before reading RSS")
    ap.add_argument("--recheck", type=int, default=100, help="connections re-used at the end")
    args = ap.parse_args()
    try:
        result = asyncio.run(main_async(args))
    except asyncio.TimeoutError:
        print(json.dumps({"error": f"not done within {args.deadline} s"}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
