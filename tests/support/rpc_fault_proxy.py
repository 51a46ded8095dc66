"""A fault-injecting JSON-RPC proxy: a real HTTP server on 127.0.0.1 between the indexer and anvil.

Faults (each with its own probability, from a seeded RNG so runs reproduce): hangs longer than the client's
timeout, HTTP 429 (with Retry-After), HTTP 5xx, a URL that refuses every request (401/403/404),
"query returned more than N results" errors for eth_getLogs
answers above `max_results` (with or without a suggested block range, like Infura/Alchemy), and truncated
bodies (cut short with a lying Content-Length, or cut short but consistent, i.e. invalid JSON).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse


@dataclass
class Faults:
    hang: float = 0.0  # probability of not answering for `hang_seconds`
    hang_seconds: float = 1.5
    http_429: float = 0.0
    http_5xx: float = 0.0
    http_refused: int | None = None  # answer every request with this 4xx (401/403/404: a bad URL or key)
    truncate: float = 0.0
    max_results: int | None = None  # eth_getLogs answers above this become "too many results" errors
    suggest_range: bool = True
    seed: int = 1
    counts: dict[str, int] = field(default_factory=dict)

    def hit(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        self.upstream = urlparse(upstream)
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.lock = threading.Lock()
        self.local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _roll(self, p: float) -> bool:
        with self.lock:
            return p > 0 and self.rng.random() < p

    def _forward(self, body: bytes) -> bytes:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        for _ in range(2):
            if conn is None:
                conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
                self.local.conn = conn
            try:
                conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                return conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = None
                self.local.conn = None
        raise OSError("upstream unreachable")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", headers.pop("content_length", str(len(body))))
        for k, v in headers.items():
            handler.send_header(k.replace("_", "-"), v)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        f = self.faults
        if self._roll(f.hang):
            f.hit("hang")
            time.sleep(f.hang_seconds)
            handler.close_connection = True
            return
        if f.http_refused is not None:
            f.hit("refused")
            self._send(handler, f.http_refused, b'{"error":"unauthorized"}')
            return
        if self._roll(f.http_429):
            f.hit("429")
            self._send(handler, 429, b'{"error":"rate limited"}', Retry_After="0")
            return
        if self._roll(f.http_5xx):
            f.hit("5xx")
            with self.lock:
                status = self.rng.choice([500, 502, 503, 504])
            self._send(handler, status, b"upstream error")
            return
        request = json.loads(body)
        reply = self._forward(body)
        if f.max_results is not None and isinstance(request, dict) and request.get("method") == "eth_getLogs":
            parsed = json.loads(reply)
            result = parsed.get("result")
            if isinstance(result, list) and len(result) > f.max_results:
                f.hit("too_many_results")
                flt = request["params"][0]
                message = f"query returned more than {f.max_results} results"
                numeric = str(flt.get("fromBlock", "")).startswith("0x") and str(
                    flt.get("toBlock", "")
                ).startswith("0x")
                if f.suggest_range and numeric:
                    lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
                    span = max(1, (hi - lo + 1) * f.max_results // (2 * len(result)))
                    message += f". Try with this block range [{hex(lo)}, {hex(lo + span - 1)}]."
                err = {
                    "jsonrpc": "2.0",
                    "id": request.get("id"),
                    "error": {"code": -32005, "message": message},
                }
                self._send(handler, 200, json.dumps(err).encode())
                return
        if self._roll(f.truncate):
            f.hit("truncate")
            cut = reply[: max(1, len(reply) // 2)]
            if self._roll(0.5):
                self._send(handler, 200, cut, content_length=str(len(reply)))  # lying length, then close
                handler.close_connection = True
            else:
                self._send(handler, 200, cut)  # consistent length, invalid JSON
            return
        self._send(handler, 200, reply)
