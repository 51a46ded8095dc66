"""Rate limits, one owner: token buckets per client and per account, for every endpoint.

* `RateLimitMiddleware` (pure ASGI) takes a token for the client (the TCP peer, or the trusted proxy's
  header, `client_of`) before anything reads the chain or the database;
* `RateLimiter.admit_account` is called by the credential dependencies (`backend.api.auth.deps`) once the
  session or API key is known, so one account cannot multiply its rate over many clients or sessions.
A refusal is 429 problem+json with `Retry-After` (whole seconds until a token is back). The relayer
(`backend.api.relay.guard`) keeps its own, stricter buckets of the same class on top of these.

Buckets are in memory, per process (several API processes each allow the rate); a lock guards only a dict
update, so a refused flood costs microseconds and never queues honest requests behind it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from backend.api.problems import problem
from backend.api.settings import ApiSettings
from cairn.core.errors import RateLimitedError

MAX_KEYS = 100_000  # buckets kept per limiter (least recently used dropped first)


class TokenBuckets:
    """One token bucket per key: `burst` tokens, refilled at `per_minute`."""

    def __init__(self, burst: int, per_minute: float, max_keys: int = MAX_KEYS) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> int:
        """Take one token: 0 if there was one, else the whole seconds until there is."""
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            wait = 0 if tokens >= 1 else max(math.ceil((1 - tokens) / self.rate), 1)
            self._buckets[key] = (tokens - 1 if wait == 0 else tokens, t)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


def client_of(headers: dict[str, str], peer: str | None, header: str) -> str:
    """The client a request counts against: the configured proxy header's last value (the address the
    trusted proxy appended), else the TCP peer."""
    if header and (value := headers.get(header.lower())):
        return value.split(",")[-1].strip() or "unknown"
    return peer or "unknown"


@dataclass(frozen=True)
class RateLimits:
    client_burst: int = 120
    client_per_minute: float = 600.0
    account_burst: int = 60
    account_per_minute: float = 300.0
    client_header: str = ""

    @classmethod
    def from_settings(cls, s: ApiSettings) -> RateLimits:
        return cls(
            client_burst=s.api_rate_client_burst, client_per_minute=s.api_rate_client_per_minute,
            account_burst=s.api_rate_account_burst, account_per_minute=s.api_rate_account_per_minute,
            client_header=s.api_relay.client_header,
        )  # fmt: skip


class RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.clients = TokenBuckets(limits.client_burst, limits.client_per_minute)
        self.accounts = TokenBuckets(limits.account_burst, limits.account_per_minute)

    def admit_client(self, client: str) -> None:
        if wait := self.clients.take(client):
            raise RateLimitedError(
                f"too many requests from this client; retry in {wait} s",
                reason="rate_client", retry_after=wait,
            )  # fmt: skip

    def admit_account(self, account: str) -> None:
        """`account`: a signed-in address (`0x...`) or an API key (`key:<id>`)."""
        if wait := self.accounts.take(account.lower()):
            raise RateLimitedError(
                f"too many requests for {account}; retry in {wait} s",
                reason="rate_account", retry_after=wait, account=account,
            )  # fmt: skip


class RateLimitMiddleware:
    """Every HTTP request takes a token of its client's bucket first; a refusal never reaches the app."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = self.limiter.limits.client_header
        headers = (
            {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])} if header else {}
        )  # read only behind a trusted proxy that names the client
        peer = scope.get("client")
        client = client_of(headers, peer[0] if peer else None, header)
        try:
            self.limiter.admit_client(client)
        except RateLimitedError as exc:
            response = problem(
                429, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)},
                reason=exc.reason, retry_after=exc.retry_after,
            )  # fmt: skip
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
