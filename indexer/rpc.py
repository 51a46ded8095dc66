"""Raw JSON-RPC over persistent HTTP connections (httpx + orjson), with retries, backoff and failover.

Transport faults (timeouts, connection errors, HTTP 408, 429 and 5xx, truncated or non-JSON bodies) are
retried with exponential backoff; after `switch_after` consecutive faults on one URL the client fails over to
the next URL of `Settings.rpc_urls` (round robin). Other HTTP 4xx answers (a wrong URL or API key) fail over
at once, and when every URL refuses, the call fails with one clear error. `generation` increases on every
failover so that a caller can tell whether two answers came from the same node. JSON-RPC errors that say a
log query is too large become `RangeTooLargeError` (with the provider's suggested range when the message
names one).
"""

from __future__ import annotations

import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
import orjson

from cairn.core.errors import ChainUnreachableError, RangeTooLargeError, RpcError

_RANGE_PATTERNS = (
    "more than",
    "too many",
    "range too large",
    "range is too large",
    "block range",
    "response size",
    "limit exceeded",
    "exceed",
    "too large",
    "max results",
)
_TRANSIENT_PATTERNS = ("rate limit", "too many requests", "timeout", "timed out", "temporarily", "busy")
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")


def _num(s: str) -> int:
    return int(s, 16) if s.lower().startswith("0x") else int(s)


def parse_suggested_range(message: str) -> tuple[int, int] | None:
    """`... Try with this block range [0x10, 0x20].` -> (16, 32)."""
    m = _SUGGESTED.search(message)
    if not m:
        return None
    lo, hi = _num(m.group(1)), _num(m.group(2))
    return (lo, hi) if hi >= lo else None


class _Transient(Exception):
    pass


class _Refused(Exception):
    """HTTP 4xx other than 408/429 (bad URL, missing or wrong API key): retrying this URL will not help."""


class _TooBig(Exception):
    pass


class RpcClient:
    """JSON-RPC client over a list of URLs (later ones are failovers)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 10.0,
        max_attempts: int = 12,
        switch_after: int = 2,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        on_error: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        max_response_bytes: int | None = 32 * 1024 * 1024,
    ) -> None:
        if not urls:
            raise ChainUnreachableError("no RPC URL configured (CAIRN_RPC_URLS)")
        self.urls = list(urls)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.switch_after = switch_after
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.on_error = on_error or (lambda kind: None)
        self.stop = stop
        self.max_response_bytes = max_response_bytes
        self.index = 0
        self.generation = 0
        self._ids = itertools.count(1)  # next() is atomic: the prefetch thread and the main thread share it
        self._clients: dict[str, httpx.Client] = {}

    @property
    def url(self) -> str:
        return self.urls[self.index]

    def _client(self, url: str) -> httpx.Client:
        client = self._clients.get(url)
        if client is None:
            client = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
                headers={"Content-Type": "application/json"},
                limits=httpx.Limits(max_keepalive_connections=4, max_connections=6),  # prefetch + foreground
            )
            self._clients[url] = client
        return client

    def failover(self) -> None:
        """Move to the next URL (used on transport faults and when a node is behind)."""
        if len(self.urls) > 1:
            self.index = (self.index + 1) % len(self.urls)
        self.generation += 1

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def _post(self, payload: bytes, limit: int | None = None) -> Any:
        """POST one request; with `limit`, stop reading a body larger than `limit` bytes (_TooBig)."""
        url = self.url
        try:
            with self._client(url).stream("POST", url, content=payload) as resp:
                status = resp.status_code
                if status in (408, 429) or status >= 500:
                    self.on_error(f"http_{status}")
                    ra = resp.headers.get("retry-after")
                    raise _Transient(f"HTTP {status}" + (f" retry-after={ra}" if ra else ""))
                if status >= 400:
                    self.on_error(f"http_{status}")
                    raise _Refused(f"HTTP {status} from {url}")
                if limit is None:
                    body = resp.read()
                else:
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in resp.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise _TooBig(size)
                        chunks.append(chunk)
                    body = b"".join(chunks)
                    del chunks
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            self.on_error("timeout" if isinstance(exc, httpx.TimeoutException) else "transport")
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            self.on_error("bad_body")
            raise _Transient("truncated or invalid JSON body") from None

    def _check(self, method: str, reply: Any) -> Any:
        if not isinstance(reply, dict):
            self.on_error("bad_body")
            raise _Transient("reply is not a JSON-RPC object")
        err = reply.get("error")
        if err is None:
            if "result" not in reply:
                self.on_error("bad_body")
                raise _Transient("reply without result")
            return reply["result"]
        message = str(err.get("message", err)) if isinstance(err, dict) else str(err)
        code = err.get("code") if isinstance(err, dict) else None
        data = err.get("data") if isinstance(err, dict) else None
        full = f"{message} {data}" if data else message
        low = full.lower()
        if any(p in low for p in _TRANSIENT_PATTERNS) and "result" not in low:
            self.on_error("rpc_transient")
            raise _Transient(f"{method}: {message}")
        if method == "eth_getLogs" and (code == -32005 or any(p in low for p in _RANGE_PATTERNS)):
            self.on_error("range_too_large")
            raise RangeTooLargeError(
                f"{method}: {message}", parse_suggested_range(full), rpc_code=code, method=method
            )
        self.on_error("rpc_error")
        raise RpcError(f"{method} failed on {self.url}: {message}", rpc_code=code, method=method)

    def _with_retries(self, method: str, fn: Callable[[], Any]) -> Any:
        faults = 0
        refused: set[str] = set()
        last = ""
        for attempt in range(self.max_attempts):
            try:
                return fn()
            except _Refused as exc:  # this URL will keep refusing: the next one at once, no backoff
                last = str(exc)
                refused.add(self.url)
                if len(refused) >= len(self.urls):
                    raise ChainUnreachableError(
                        f"{method}: every RPC URL refused the request (last: {last}); check the URLs and keys"
                    ) from None
                self.failover()
                faults = 0
                continue
            except _Transient as exc:
                last = str(exc)
                faults += 1
                if faults >= self.switch_after:
                    self.failover()
                    faults = 0
                delay = min(self.backoff_cap, self.backoff_base * (2 ** min(attempt, 10)))
                delay *= 0.5 + random.random() / 2
                if self.stop is not None:
                    if self.stop.wait(delay):
                        break
                else:
                    time.sleep(delay)
        raise ChainUnreachableError(
            f"{method}: no RPC URL answered after {self.max_attempts} attempts (last: {last})"
        )

    def call(self, method: str, params: list[Any] | None = None, *, bounded: bool = True) -> Any:
        """One call. eth_getLogs answers above `max_response_bytes` raise RangeTooLargeError unless not
        `bounded` (used for a single block, which cannot be split)."""
        limit = self.max_response_bytes if method == "eth_getLogs" and bounded else None

        def once() -> Any:
            payload = orjson.dumps(
                {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
            )
            try:
                reply = self._post(payload, limit)
            except _TooBig:
                # our own memory bound: a range whose answer is too large is split like a provider's refusal
                self.on_error("response_too_large")
                raise RangeTooLargeError(
                    f"{method}: response larger than {limit} bytes", None, method=method
                ) from None
            return self._check(method, reply)

        return self._with_retries(method, once)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP request (one round trip); results in order."""
        if not calls:
            return []

        def once() -> list[Any]:
            ids = [next(self._ids) for _ in calls]
            payload = orjson.dumps(
                [{"jsonrpc": "2.0", "id": ids[i], "method": m, "params": p} for i, (m, p) in enumerate(calls)]
            )
            reply = self._post(payload)
            if not isinstance(reply, list) or len(reply) != len(calls):
                self.on_error("bad_body")
                raise _Transient("batch reply has the wrong shape")
            by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
            return [self._check(calls[i][0], by_id.get(ids[i])) for i in range(len(calls))]

        return self._with_retries(calls[0][0], once)  # type: ignore[no-any-return]

    # --- typed helpers -------------------------------------------------------------------------------
    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def headers(self, blocks: Iterable[int | str]) -> list[dict[str, Any] | None]:
        """The headers of `blocks` (numbers, 0x-hex numbers or tags) in one round trip; None where the node
        has no such block."""
        refs = [hex(b) if isinstance(b, int) else b for b in blocks]
        return self.batch([("eth_getBlockByNumber", [ref, False]) for ref in refs])

    def header(self, tag: int | str) -> dict[str, Any] | None:
        ref = hex(tag) if isinstance(tag, int) else tag
        result = self.call("eth_getBlockByNumber", [ref, False])
        return result if isinstance(result, dict) else None
