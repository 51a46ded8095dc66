"""The x402 v2 HTTP gateway (github.com/coinbase/x402/specs/transports-v2/http.md): a FastAPI dependency that
makes a route paid.

    from backend.api.x402.gateway import require_payment
    @router.post("/v1/chat/completions")
    def chat(..., paid: Annotated[Accepted, Depends(require_payment(charge_of))]): ...

`charge_of(request) -> Charge` (sync or async) prices the request and names the model paid for. A charge of
0 (a model priced 0 in `CAIRN_API_PRICES`) is free: the route runs with `Accepted(scheme="free")`, no payment
is asked for or recorded. Without a
`PAYMENT-SIGNATURE` header the route answers 402: problem+json, `Cache-Control: no-store` and
`PAYMENT-REQUIRED` = standard base64 of `{x402Version: 2, error?, resource: {url, description, mimeType},
accepts: [one requirement per registered scheme]}` (the clients read the header, not the body). With one, the
base64 JSON `PaymentPayload` is decoded, its `accepted` requirement must be one we offer for this charge, and
the scheme it names (`accepted.scheme`, looked up in the registry: "exact", "batch-settlement", ...) verifies
and records it; the route runs and its response carries `PAYMENT-RESPONSE` = base64 JSON SettleResponse
(`{success, transaction, network, payer, ...}`); the payment is settled only once the route has produced its
whole response (`served`); if the route fails instead (5xx, raises, or a stream fails midway) the payment is
void (never settled) and, when the response has not started yet, PAYMENT-RESPONSE says `success: false`
(`PaymentResponseMiddleware`). A rejected payment
is a 402 again, with the reason as the PAYMENT-REQUIRED `error`. The unpaid 402 is built from memory (the
requirements are fixed per charge): no database, no RPC, no worker thread, so a flood of unpaid requests
costs the server only the charge's own work (for a chat completion: parsing the body and the model
catalogue, cached for a second).

The gateway lives in `app.state.x402` (see `build_gateway`); `install_payment_response(app)` makes sure the
PAYMENT-RESPONSE header reaches routes that return their own Response object (e.g. a stream).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.x402.scheme import Accepted, Charge, PaymentRejectedError, Scheme
from cairn.core.errors import CairnError

X402_VERSION = 2
PAYMENT_REQUIRED = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE = "PAYMENT-RESPONSE"
_STATE_KEY = "x402_payment_response"
_ACCEPTED_KEY = "x402_accepted"  # the request's accepted payment, voided if the route fails
FREE = "free"  # `Accepted.scheme` of a request whose charge is 0 (no payment asked, no PAYMENT-RESPONSE)
# Fields of a requirement the client's `accepted` copy must repeat exactly (addresses case-insensitively).
_MATCHED = ("scheme", "network", "amount", "maxTimeoutSeconds")
_MATCHED_ADDRESSES = ("asset", "payTo")

ChargeOf = Callable[[Request], Charge | Awaitable[Charge]]


class PaymentRequiredError(CairnError):
    """HTTP 402 with the x402 PAYMENT-REQUIRED header (problem+json body for people and logs)."""

    code = "payment_required"
    http_status = 402
    exit_code = 3

    def __init__(self, message: str, header: str, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.headers = {PAYMENT_REQUIRED: header, "Cache-Control": "no-store"}


def encode(obj: dict[str, Any]) -> str:
    """Standard base64 (with padding) of compact JSON: the encoding of every x402 v2 HTTP header."""
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def decode(value: str) -> dict[str, Any]:
    try:
        obj = json.loads(base64.b64decode(value.encode(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise PaymentRejectedError(
            "invalid_payload", "PAYMENT-SIGNATURE is not base64 of a JSON object"
        ) from None
    if not isinstance(obj, dict):
        raise PaymentRejectedError("invalid_payload", "PAYMENT-SIGNATURE is not base64 of a JSON object")
    return obj


class Gateway:
    """A registry of x402 schemes (by their `scheme` value) and the 402 / payment exchange for one charge."""

    def __init__(self, schemes: list[Scheme] | None = None, *, mime_type: str = "application/json") -> None:
        self.schemes: dict[str, Scheme] = {}
        self.mime_type = mime_type
        for s in schemes or []:
            self.register(s)

    def register(self, scheme: Scheme) -> None:
        """Offer `scheme` in every 402 (in registration order) and accept payloads that name it."""
        self.schemes[scheme.name] = scheme

    def payment_required(
        self, charge: Charge, error: str | None = None, enrich: tuple[str, dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The PAYMENT-REQUIRED body; `enrich` = (scheme, fields): a corrective 402, whose requirement of that
        scheme carries `fields` in its `extra` (e.g. a channel's `channelState` / `voucherState`)."""
        body: dict[str, Any] = {"x402Version": X402_VERSION}
        if error:
            body["error"] = error
        body["resource"] = {
            "url": charge.resource,
            "description": charge.description,
            "mimeType": self.mime_type,
        }
        accepts = [s.requirement(charge) for s in self.schemes.values()]
        if enrich is not None:
            for requirement in accepts:
                if requirement["scheme"] == enrich[0]:
                    requirement["extra"] = {**requirement.get("extra", {}), **enrich[1]}
        body["accepts"] = accepts
        return body

    def refuse(
        self,
        charge: Charge,
        message: str,
        reason: str | None = None,
        enrich: tuple[str, dict[str, Any]] | None = None,
    ) -> PaymentRequiredError:
        body = self.payment_required(charge, reason, enrich)
        return PaymentRequiredError(message, encode(body), reason=reason)

    def pay(self, header: str | None, charge: Charge) -> tuple[Accepted, str]:
        """Verify and record the payment in `header` (blocking: RPC and database). Returns the accepted
        payment and the PAYMENT-RESPONSE header value; raises PaymentRequiredError (402)."""
        if not header:
            raise self.refuse(charge, f"payment required: send {PAYMENT_SIGNATURE} (x402 v2) to pay")
        try:
            payload = decode(header)
            if payload.get("x402Version") != X402_VERSION:
                raise PaymentRejectedError("invalid_x402_version", "only x402Version 2 payloads are accepted")
            accepted = payload.get("accepted")
            if not isinstance(accepted, dict):
                raise PaymentRejectedError("invalid_payload", "the payload has no `accepted` requirement")
            scheme = self.schemes.get(str(accepted.get("scheme")))
            if scheme is None:
                raise PaymentRejectedError(
                    "unsupported_scheme", f"scheme {accepted.get('scheme')!r} is not offered here"
                )
            requirement = scheme.requirement(charge)
            _check_matches(accepted, requirement)
            inner = payload.get("payload")
            if not isinstance(inner, dict):
                raise PaymentRejectedError("invalid_payload", "the payload has no scheme `payload` object")
            try:
                paid = scheme.accept(inner, requirement, charge)
            except PaymentRejectedError as exc:
                if exc.extra:
                    raise self.refuse(charge, exc.message, exc.reason, (scheme.name, exc.extra)) from None
                raise
        except PaymentRejectedError as exc:
            raise self.refuse(charge, exc.message, exc.reason) from None
        return paid, encode(scheme.response(paid))

    def served(self, accepted: Accepted) -> None:
        """`accepted`'s route produced its whole response (blocking: database): the payment may be settled.
        Channels: the request is no longer in flight, so its charge becomes claimable."""
        scheme = self.schemes.get(accepted.scheme)
        mark = getattr(scheme, "served", None)
        if mark is not None:
            mark(accepted)

    def void(self, accepted: Accepted, reason: str) -> str | None:
        """Release `accepted` because its route failed (blocking: database). Returns the PAYMENT-RESPONSE
        header value (success false), or None when the scheme keeps the payment."""
        scheme = self.schemes.get(accepted.scheme)
        body = scheme.void(accepted, reason) if scheme is not None else None
        return encode(body) if body is not None else None


def _check_matches(accepted: dict[str, Any], requirement: dict[str, Any]) -> None:
    for key in _MATCHED:
        if accepted.get(key) != requirement[key]:
            raise PaymentRejectedError(
                "requirements_mismatch", f"accepted.{key} {accepted.get(key)!r} is not {requirement[key]!r}"
            )
    for key in _MATCHED_ADDRESSES:
        if str(accepted.get(key, "")).lower() != str(requirement[key]).lower():
            raise PaymentRejectedError(
                "requirements_mismatch", f"accepted.{key} {accepted.get(key)!r} is not {requirement[key]!r}"
            )


def require_payment(charge_of: ChargeOf) -> Callable[..., Awaitable[Accepted]]:
    """A FastAPI dependency (route or router level) that lets the request through only once it is paid."""

    async def paid(request: Request, response: Response) -> Accepted:
        gateway: Gateway = request.app.state.x402
        charge = charge_of(request)
        if inspect.isawaitable(charge):
            charge = await charge
        assert isinstance(charge, Charge)
        if charge.amount == 0:  # a free model (price 0 in the price table): nothing to pay, nothing recorded
            return Accepted(scheme=FREE, payer="", amount=0)
        signature = request.headers.get(PAYMENT_SIGNATURE)
        if not signature:  # the unpaid path: requirements from memory, no thread, database or RPC
            raise gateway.refuse(charge, f"payment required: send {PAYMENT_SIGNATURE} (x402 v2) to pay")
        accepted, header = await run_in_threadpool(gateway.pay, signature, charge)
        response.headers[PAYMENT_RESPONSE] = header
        request.state.x402_payment_response = header
        request.state.x402_accepted = accepted
        return accepted

    return paid


class PaymentResponseMiddleware:
    """ASGI middleware: the PAYMENT-RESPONSE of a paid request on its response, even when the route returned
    its own Response object (FastAPI copies dependency headers only onto responses it builds); and the
    payment's outcome, since a payment is recorded `accepted` before its route runs and is settled only once
    the route has served it:

    - served (`Gateway.served`): the route handed its last body message (a JSON answer, or the end of a
      stream) with a status below 500; the payment is marked served before that message is sent on, so a
      client that has its whole answer finds the payment served. Only served payments are ever settled.
    - void (`Gateway.void`): the route answered 5xx (e.g. an upstream's 502/503; released before the response
      starts, and PAYMENT-RESPONSE says success false), raised before or after its response started (a
      stream that fails midway: its 200 and PAYMENT-RESPONSE success are already sent, the payment is void
      all the same), or returned without finishing its body (a stream cut off by a client disconnect).

    A process killed in between leaves the payment `accepted`: the settler voids it once it is older than
    `api_x402_serve_timeout_s` (backend.api.x402.settle), so an unserved request is never charged; the
    price of that rule is that a request served in full just before the kill, whose `served` mark was not
    written, is not charged either. A channel request is the same: in flight until `served`, released by the
    channel claimer past the serve timeout, never claimed while in flight."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = PAYMENT_RESPONSE.lower().encode()
        started = False

        def take() -> Accepted | None:
            state = scope.get("state", {})
            accepted = state.pop(_ACCEPTED_KEY, None)
            if not isinstance(accepted, Accepted) or accepted.scheme == FREE:
                return None
            return accepted

        async def void(reason: str) -> str | None:
            accepted = take()
            if accepted is None:
                return None
            gateway: Gateway = scope["app"].state.x402
            return await run_in_threadpool(gateway.void, accepted, reason)

        async def send_with_header(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                value = scope.get("state", {}).get(_STATE_KEY)
                headers = list(message.get("headers", []))
                status = int(message.get("status", 200))
                if status >= 500:
                    voided = await void(f"route_failed_{status}")
                    if voided:
                        value = voided
                        headers = [(k, v) for k, v in headers if k.lower() != name]
                if value and not any(k.lower() == name for k, _ in headers):
                    message = {**message, "headers": [*headers, (name, str(value).encode())]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                accepted = take()  # the route's whole response is produced: the request is served
                if accepted is not None:
                    gateway: Gateway = scope["app"].state.x402
                    await run_in_threadpool(gateway.served, accepted)
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        except BaseException:
            # before the start the 500 that follows is built outside this middleware; after it, a stream
            # that raised midway: either way the request was not served
            await asyncio.shield(void("stream_failed" if started else "route_failed"))
            raise
        await void("response_incomplete")  # returned without its last body message (e.g. a disconnect)


def install_payment_response(app: Any) -> None:
    app.add_middleware(PaymentResponseMiddleware)
