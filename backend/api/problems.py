"""RFC 9457 problem+json for every deliberate error (CairnError) and for request validation errors."""

from __future__ import annotations

import logging
from typing import Any

import requests
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cairn.core.errors import CairnError, ChainUnreachableError, DatabaseUnreachableError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://cairn.dev/problems/"
log = logging.getLogger("cairn.api")

_TITLES = {
    400: "Bad Request",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _jsonable(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


async def _cairn_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CairnError)
    status = exc.http_status  # an unreachable node or database is an UnavailableError: 503
    if status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    fields = {k: _jsonable(v) for k, v in exc.fields.items()}
    # Any error with a `retry_after` field (seconds) tells the client when to come back (RFC 9110 10.2.3).
    retry_after = fields.get("retry_after")
    headers = {"Retry-After": str(max(int(retry_after), 0))} if isinstance(retry_after, int) else {}
    headers.update(getattr(exc, "headers", None) or {})  # e.g. x402's PAYMENT-REQUIRED on a 402
    return problem(status, exc.code, exc.message, headers=headers or None, **fields)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _location(e.get("loc", ())), "message": str(e.get("msg", "invalid"))} for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem(422, "invalid_input", detail, errors=errors, fields=sorted({e["field"] for e in errors}))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
    return problem(exc.status_code, code, str(exc.detail))


async def _rpc_down(request: Request, exc: Exception) -> JSONResponse:
    chain = getattr(request.app.state, "chain", None)
    where = chain.rpc_url if chain is not None else "endpoint"
    log.error("RPC %s did not answer: %s", where, type(exc).__name__)
    return problem(503, ChainUnreachableError.code, f"RPC {where} did not answer: {type(exc).__name__}")


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, sqlalchemy.exc.DBAPIError)
    first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    log.error("database unavailable: %s", first)
    return problem(503, DatabaseUnreachableError.code, f"database unavailable: {first}")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return problem(500, "internal_error", f"internal error: {type(exc).__name__}")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CairnError, _cairn_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # A dependency that is down (node, database) is the service being unavailable (503), not a bug.
    app.add_exception_handler(requests.exceptions.ConnectionError, _rpc_down)
    app.add_exception_handler(requests.exceptions.Timeout, _rpc_down)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _database_down)
    app.add_exception_handler(sqlalchemy.exc.InterfaceError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
