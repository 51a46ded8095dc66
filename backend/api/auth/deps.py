"""The credential dependencies other routes use: `CurrentAccount` (a signed-in person) and
`OperatorScope(scope)` (an operator's API key holding `scope`).

    @router.get("/v1/me")
    def me(account: CurrentAccount) -> ...: ...           # 401 without a live session

    @router.post("/v1/operator/...")
    def op(operator: Annotated[Operator, OperatorScope("epochs:write")]) -> ...: ...   # 401 / 403

A session is a cookie (`cairn_session`, httpOnly, SameSite=Strict) or `Authorization: Bearer <token>`; an
API key is `X-API-Key: <key>` or `Authorization: Bearer <key>`. Both count against the per-account rate
limit (`backend.api.ratelimit`) once known. The security schemes are declared in the OpenAPI document."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from web3 import Web3

from backend.api.auth import store
from backend.api.deps import SessionDep
from backend.api.ratelimit import RateLimiter
from cairn.core.errors import AuthenticationError, PermissionDeniedError

COOKIE = "cairn_session"
session_cookie = APIKeyCookie(
    name=COOKIE, auto_error=False, scheme_name="session_cookie",
    description="The session a browser gets from POST /v1/auth/siwe (httpOnly, SameSite=Strict).",
)  # fmt: skip
bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="A session token from POST /v1/auth/siwe with session=bearer, or an operator's API key.",
)  # fmt: skip
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="api_key",
    description="An operator's API key (`cairn apikey create --scope ...`).",
)  # fmt: skip


@dataclass(frozen=True)
class Account:
    """The signed-in account of a request."""

    address: str  # EIP-55 checksummed
    chain_id: int
    session: store.Session


@dataclass(frozen=True)
class Operator:
    """The API key of an operator's request."""

    key_id: str
    name: str
    scopes: frozenset[str]


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


async def current_account(  # on the event loop: one indexed lookup, cheaper than a worker thread's hop
    request: Request,
    db: SessionDep,
    cookie: Annotated[str | None, Security(session_cookie)],
    authorization: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Account:
    token = authorization.credentials if authorization is not None else cookie
    if not token:
        raise AuthenticationError(
            "sign in first: POST /v1/auth/nonce, sign the EIP-4361 message, POST /v1/auth/siwe; then send "
            f"the {COOKIE} cookie or Authorization: Bearer <token>"
        )
    session = store.session_for(db, token, now=int(time.time()))
    if session is None:
        raise AuthenticationError("the session is unknown, expired or signed out: sign in again")
    _limiter(request).admit_account(session.address)
    return Account(address=str(Web3.to_checksum_address(session.address)), chain_id=session.chain_id,
                   session=session)  # fmt: skip


CurrentAccount = Annotated[Account, Depends(current_account)]


def OperatorScope(scope: str) -> Any:  # reads like a type at the use site
    """A dependency (use as `Annotated[Operator, OperatorScope("epochs:write")]`): the request's API key,
    401 if there is none or it is unknown / revoked, 403 if it lacks `scope`."""
    if scope not in store.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def operator(
        request: Request,
        header: Annotated[str | None, Security(api_key_header)],
        authorization: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Operator:
        secret = header or (authorization.credentials if authorization is not None else None)
        if not secret:
            raise AuthenticationError(
                f"an operator API key with scope {scope} is required (X-API-Key or Authorization: Bearer)",
                scope=scope,
            )
        key = store.key_for(request.app.state.engine, secret, now=int(time.time()))
        if key is None:
            raise AuthenticationError("the API key is unknown or revoked", scope=scope)
        _limiter(request).admit_account(f"key:{key.key_id}")
        if scope not in key.scopes:
            raise PermissionDeniedError(
                f"API key {key.key_id} ({key.name}) lacks the scope {scope} "
                f"(it has {' '.join(sorted(key.scopes))})",
                scope=scope, key_id=key.key_id,
            )  # fmt: skip
        return Operator(key_id=key.key_id, name=key.name, scopes=key.scopes)

    operator.__name__ = f"operator_{scope.replace(':', '_')}"
    return Depends(operator)
