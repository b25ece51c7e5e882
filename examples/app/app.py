#!/usr/bin/env python3
"""A tiny sample service for demos and the local mesh: /health, /orders (GET, POST), /whoami.

It answers JSON, shows which headers the sidecar added (x-request-id, x-forwarded-for, caller
identity), and can call another service through its outbound sidecar (/call?url=...).
"""
import argparse
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORDERS = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sample-app/1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall

    def _send(self, status, obj):
        body = (json.dumps(obj, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _seen(self):
        keep = ("x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-client-cert", "host",
                "x-amzn-lattice-identity", "x-amzn-lattice-network", "x-amzn-lattice-target")
        return {k: v for k, v in self.headers.items() if k.lower() in keep}

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok", "service": self.server.name})
        if self.path.startswith("/orders"):
            with LOCK:
                return self._send(200, {"service": self.server.name, "orders": ORDERS, "seen": self._seen()})
        if self.path.startswith("/whoami"):
            return self._send(200, {"service": self.server.name, "seen": self._seen()})
        if self.path.startswith("/call?url="):
            url = self.path[len("/call?url="):]
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return self._send(200, {"called": url, "status": r.status, "answer": json.loads(r.read() or b"null")})
            except urllib.error.HTTPError as e:  # the callee (or a sidecar on the way) answered an error
                body = e.read().decode("utf-8", "replace")[:500]
                return self._send(502, {"called": url, "status": e.code, "error": str(e), "body": body,
                                        "reason": e.headers.get("x-outrigger-reason")})
            except Exception as e:  # noqa: BLE001 - the demo shows any failure as JSON
                return self._send(502, {"called": url, "error": str(e)})
        return self._send(404, {"error": "not found", "path": self.path})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/orders"):
            try:
                order = json.loads(body or b"{}")
            except ValueError:
                return self._send(400, {"error": "invalid json"})
            with LOCK:
                order["id"] = len(ORDERS) + 1
                ORDERS.append(order)
            return self._send(201, {"created": order, "seen": self._seen()})
        return self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:8080")
    ap.add_argument("--name", default="orders")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    srv.daemon_threads = True
    srv.name = a.name
    srv.serve_forever()


if __name__ == "__main__":
    main()
