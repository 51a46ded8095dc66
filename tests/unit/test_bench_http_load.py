"""bench/http_load.py, the benchmarks' load client, against a real HTTP/1.1 server on loopback (asyncio
streams): Content-Length and chunked bodies on one keep-alive connection, `Connection: close`, the closed
loop's checks."""

from __future__ import annotations

import asyncio

import pytest

from bench.http_load import Connection, closed_loop, percentile

ANSWERS = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;ext=1\r\nproo\r\n3\r\nf!!\r\n0\r\nT: x\r\n\r\n",
    "/close": b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
    "/empty": b"HTTP/1.1 204 No Content\r\n\r\n",
}


async def _serve(connections: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            path = head.split(b" ")[1].decode()
            length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if length:
                await reader.readexactly(int(length[0].split(b":")[1]))
            writer.write(ANSWERS[path])
            await writer.drain()
            if path == "/close":
                break
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_keep_alive_content_length_chunked_and_close() -> None:
    async def main() -> list[object]:
        connections: list[int] = []
        server = await _serve(connections)
        port = server.sockets[0].getsockname()[1]
        conn = Connection(f"http://127.0.0.1:{port}")
        got: list[object] = []
        for path in ("/length", "/chunked", "/empty", "/length"):
            r = await conn.request("GET", path)
            got.append((r.status, r.body))
        got.append(len(connections))  # all four on one connection
        r = await conn.request("POST", "/close", b"{}", {"Content-Type": "application/json"})
        got.append((r.status, r.body))
        r = await conn.request("GET", "/length")  # a new connection after the server's close
        got.append((r.status, r.headers["x-a"], len(connections)))
        await conn.close()
        server.close()
        return got

    assert asyncio.run(main()) == [
        (200, b"hello"), (200, b"proof!!"), (204, b""), (200, b"hello"), 1, (404, b"no"), (200, "1", 2),
    ]  # fmt: skip


def test_closed_loop_counts_and_checks_answers() -> None:
    async def main(path: str, check: object) -> tuple[list[float], float]:
        server = await _serve([])
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            return await closed_loop(base, [path], clients=4, seconds=0.3, warmup=0.1, check=check)  # type: ignore[arg-type]
        finally:
            server.close()

    lat, rps = asyncio.run(main("/chunked", lambda r: None if r.body == b"proof!!" else "bad"))
    assert len(lat) > 10 and rps == len(lat) / 0.3 and percentile(lat, 0.5) <= percentile(lat, 0.99)
    with pytest.raises(RuntimeError, match="bad"):
        asyncio.run(main("/length", lambda r: None if r.body == b"proof!!" else "bad"))
    with pytest.raises(RuntimeError, match="404"):
        asyncio.run(main("/close", None))
