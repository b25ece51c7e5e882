"""Keep-alive load from a few client threads that account for every request they send.

A request is "lost" when it was written and no complete 2xx response came back. Each thread
stops on its stop condition, the shared stop event, its request budget or its deadline.
"""
import threading
import time

from .client import ConnectionClosed, ProtocolError, RawConn, build_request


class LoadClients:
  def __init__(self, addr, threads=4, path="/", stop_on_close=True, max_requests=20000,
               duration=30.0, timeout=5.0):
    self.addr = addr
    self.path = path
    self.stop_on_close = stop_on_close
    self.max_requests = max_requests
    self.duration = duration
    self.timeout = timeout
    self.stop = threading.Event()
    self._lock = threading.Condition()
    self.ok = 0
    self.lost = []  # (thread, request number, what happened, time.monotonic() of the loss)
    self.bodies = {}  # response body -> count
    self.stopped_because = []
    self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                     for i in range(threads)]

  def start(self):
    for t in self._threads:
      t.start()
    return self

  def wait_ok(self, n, timeout):
    """Until n more requests have succeeded (bounded); returns whether they did."""
    deadline = time.monotonic() + timeout
    with self._lock:
      target = self.ok + n
      while self.ok < target:
        left = deadline - time.monotonic()
        if left <= 0 or not any(t.is_alive() for t in self._threads):
          return False
        self._lock.wait(min(left, 0.2))
      return True

  def join(self, timeout=30.0):
    deadline = time.monotonic() + timeout
    for t in self._threads:
      t.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in self._threads)

  def finish(self, timeout=30.0):
    self.stop.set()
    return self.join(timeout)

  def _done(self, why):
    with self._lock:
      self.stopped_because.append(why)
      self._lock.notify_all()

  def _run(self, idx):
    req = build_request("GET", self.path)
    deadline = time.monotonic() + self.duration
    conn = None
    try:
      for n in range(self.max_requests):
        if self.stop.is_set():
          return self._done("stop")
        if time.monotonic() > deadline:
          return self._done("deadline")
        if conn is None:
          try:
            conn = RawConn(self.addr, timeout=self.timeout)
          except ConnectionRefusedError:
            return self._done("refused")
          except OSError as e:
            return self._done("connect error %r" % e)
        try:
          conn.send(req)
          r = conn.read_response()
        except (ConnectionClosed, ProtocolError, TimeoutError, OSError) as e:
          with self._lock:
            self.lost.append((idx, n, repr(e), time.monotonic()))
          conn.close()
          conn = None
          if self.stop_on_close:
            return self._done("lost")
          continue
        with self._lock:
          if 200 <= r.status < 300:
            self.ok += 1
            self.bodies[r.body] = self.bodies.get(r.body, 0) + 1
          else:
            self.lost.append((idx, n, "status %d %r" % (r.status, r.body[:100]),
                              time.monotonic()))
          self._lock.notify_all()
        if r.closes:
          conn.close()
          conn = None
          if self.stop_on_close:
            return self._done("connection: close")
      return self._done("budget")
    finally:
      if conn is not None:
        conn.close()
