"""The benchmarks' minimal HTTP/1.1 load client: asyncio streams, one keep-alive connection per client, one
request at a time on each (no pipelining), so a figure measures the server, not a client library (httpx
costs ~4 ms of CPU per request on this machine, more than the API spends on a proof lookup).

Responses are parsed as RFC 9112 says: the status line, the header fields, then a body delimited by
`Content-Length` or `Transfer-Encoding: chunked` (trailers read and dropped); a `Connection: close` answer
makes the next request open a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection to `base` (`http://host:port`)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, not {base!r}")
        self.host, self.port, self.authority = parts.hostname, parts.port, parts.netloc
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.authority}"]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        response = await _read_response(self._reader, head_only=method == "HEAD")
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader, *, head_only: bool) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *fields = head[:-4].decode("latin-1").split("\r\n")
    version, code, *_ = status_line.split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {status_line!r}")
    headers: dict[str, str] = {}
    for line in fields:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    status = int(code)
    if head_only or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, await _read_chunked(reader))
    if "content-length" in headers:
        return Response(status, headers, await reader.readexactly(int(headers["content-length"])))
    return Response(status, headers, await reader.read())  # delimited by the server closing


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, then the empty line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


async def closed_loop(
    base: str,
    paths: list[str],
    *,
    clients: int,
    seconds: float,
    warmup: float = 2.0,
    headers: dict[str, str] | None = None,
    check: Callable[[Response], str | None] | None = None,
) -> tuple[list[float], float]:
    """`clients` connections, each sending its next GET as soon as its last answer came, for `warmup` +
    `seconds`; only requests sent after the warm-up count. Every response must be a 200 that `check` (if
    given) returns None for; else RuntimeError. Returns the latencies in ms and the requests/s answered."""
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    counted_from = start + warmup
    stop = counted_from + seconds

    async def client(k: int) -> None:
        conn = Connection(base)
        i = k
        try:
            while (t := time.perf_counter()) < stop:
                response = await conn.request("GET", paths[i % len(paths)], headers=headers)
                done = time.perf_counter()
                i += clients
                problem = f"{response.status}" if response.status != 200 else check and check(response)
                if problem:
                    errors.append(f"{problem}: {response.body[:200]!r}")
                    return
                if t >= counted_from:
                    latencies.append((done - t) * 1000)
        finally:
            await conn.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    if errors:
        raise RuntimeError(f"{len(errors)} responses failed, e.g. {errors[0]}")
    return latencies, len(latencies) / seconds


def percentile(values: list[float], q: float) -> float:
    """The `q`-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
