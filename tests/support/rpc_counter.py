"""A counting JSON-RPC proxy: a real HTTP server (in a thread) that forwards every POST body to the chain's
RPC unchanged and records each JSON-RPC call it carried (batches included), so a test can tell how many
calls, and which, a request to the app cost the chain."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RpcCounter:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[dict[str, Any]] = []  # every JSON-RPC request object forwarded, in order
        self._lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = []
                with counter._lock:
                    counter.calls.extend(p for p in (parsed if isinstance(parsed, list) else [parsed])
                                         if isinstance(p, dict))  # fmt: skip
                req = urllib.request.Request(
                    counter.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=30) as resp:
                    answer = resp.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def mentioning(self, address: str) -> list[dict[str, Any]]:
        """The calls whose params name `address` (as itself or as an ABI word in call data)."""
        needle = address.lower()[2:]
        with self._lock:
            return [c for c in self.calls if needle in json.dumps(c.get("params", [])).lower()]


@contextmanager
def rpc_counter(upstream: str) -> Iterator[RpcCounter]:
    counter = RpcCounter(upstream)
    thread = threading.Thread(target=counter.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield counter
    finally:
        counter.server.shutdown()
        counter.server.server_close()
