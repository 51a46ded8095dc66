"""A bound on the HTTP requests one API process handles at once (pure ASGI middleware).

Sync endpoints run on AnyIO's worker threads (40) and each holds a pooled database connection from its first
query until its session closes, after the response; FastAPI validates a sync endpoint's response on a worker
thread too. With more requests in flight than connections, every thread can end up waiting for a connection
that only a request waiting for a thread would return: the process stalls, then answers pool timeouts. Holding
requests beyond `limit` on the event loop (where waiting costs no thread and no connection) keeps every
admitted request able to finish; `limit` is half the pool, so a request may hold two connections at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class InFlightLimit:
    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = max(limit, 1)
        self._semaphores: dict[Any, asyncio.Semaphore] = {}  # one per event loop (test clients run several)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores.setdefault(loop, asyncio.Semaphore(self.limit))
        async with sem:
            await self.app(scope, receive, send)
