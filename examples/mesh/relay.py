#!/usr/bin/env python3
"""The PrivateLink-like hop of the local mesh: plain L4 (TCP) forwarding, as an interface endpoint
and the provider's NLB do. It never looks inside the bytes (TLS passes through untouched).

  relay.py --listen 10.1.0.50:443 --to 10.2.0.10:15000 [--name privatelink]

One JSON line per connection on stdout: who connected, to where, bytes each way, duration, and
how it ended. When the target refuses, the client's connection is reset (as an NLB with no
healthy target does), so a sidecar sees "connection reset" and not a half-open socket.
Stdlib only (asyncio); SIGTERM/SIGINT stop it at once.
"""
import argparse
import asyncio
import json
import signal
import socket
import struct
import sys
import time


def log(**fields):
  fields.setdefault("ts", round(time.time(), 3))
  sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
  sys.stdout.flush()


def parse_addr(text):
  host, _, port = text.rpartition(":")
  return host.strip("[]"), int(port)


async def pump(reader, writer, counter, key):
  try:
    while True:
      data = await reader.read(65536)
      if not data:
        break
      counter[key] += len(data)
      writer.write(data)
      await writer.drain()
    if writer.can_write_eof():
      writer.write_eof()  # half-close: the other side may still answer
  except (ConnectionError, OSError):
    counter["reset"] = True
    abort(writer)


def abort(writer):
  """Closes with RST (SO_LINGER 0), as a load balancer does when the target goes away."""
  sock = writer.get_extra_info("socket")
  try:
    if sock is not None:
      sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
  except OSError:
    pass
  writer.close()


class Relay:
  def __init__(self, name, target, connect_timeout):
    self.name = name
    self.target = target
    self.connect_timeout = connect_timeout

  async def handle(self, creader, cwriter):
    peer = cwriter.get_extra_info("peername")
    start = time.monotonic()
    counter = {"up": 0, "down": 0, "reset": False}
    try:
      ureader, uwriter = await asyncio.wait_for(asyncio.open_connection(*self.target),
                                                self.connect_timeout)
    except (OSError, asyncio.TimeoutError) as e:
      log(msg="target unreachable", hop=self.name, client="%s:%d" % peer[:2],
          target="%s:%d" % self.target, error=str(e) or type(e).__name__)
      abort(cwriter)
      return
    log(msg="open", hop=self.name, client="%s:%d" % peer[:2], target="%s:%d" % self.target)
    up = asyncio.ensure_future(pump(creader, uwriter, counter, "up"))
    down = asyncio.ensure_future(pump(ureader, cwriter, counter, "down"))
    await asyncio.gather(up, down)
    for w in (uwriter, cwriter):
      w.close()
    log(msg="connection", hop=self.name, client="%s:%d" % peer[:2], target="%s:%d" % self.target,
        bytes_up=counter["up"], bytes_down=counter["down"], reset=counter["reset"],
        ms=round((time.monotonic() - start) * 1000, 1))


async def main_async(args):
  relay = Relay(args.name, parse_addr(args.to), args.connect_timeout)
  host, port = parse_addr(args.listen)
  server = await asyncio.start_server(relay.handle, host, port, reuse_address=True, backlog=1024)
  stop = asyncio.Event()
  loop = asyncio.get_running_loop()
  for sig in (signal.SIGTERM, signal.SIGINT):
    loop.add_signal_handler(sig, stop.set)
  log(msg="listening", hop=args.name, address=args.listen, target=args.to)
  await stop.wait()
  server.close()
  log(msg="stopped", hop=args.name)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--listen", required=True)
  ap.add_argument("--to", required=True)
  ap.add_argument("--name", default="privatelink")
  ap.add_argument("--connect-timeout", type=float, default=3.0)
  asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
  main()
