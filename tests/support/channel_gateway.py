"""TEST WIRING ONLY, replaced by the real x402 gateway at merge: the smallest HTTP 402 handling around the
`batch-settlement` scheme, so the channel tests and benches pay over real HTTP (uvicorn) with the official
client. `GET /paid` costs `price`: without PAYMENT-SIGNATURE it answers 402 with the PAYMENT-REQUIRED header
(base64 JSON x402 v2 PaymentRequired); with one it decodes the base64 JSON PaymentPayload, calls
`scheme.accept`, and answers 200 with PAYMENT-RESPONSE (base64 JSON of `scheme.response`), or 402 with the
requirements and the rejection's reason as `error`.

`uvicorn --factory support.channel_gateway:app_from_env` builds it from CHANNEL_GW_* variables (two processes
on one database race in tests/integration/test_channel_race.py)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from web3 import Web3

from backend.api.x402.channel import BatchSettlementScheme
from backend.api.x402.scheme import Charge, PaymentRejectedError
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment


def _b64(obj: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def gateway_app(scheme: BatchSettlementScheme, *, price: int, model_id: str) -> FastAPI:
    app = FastAPI()

    def _required(url: str, requirement: dict[str, Any], error: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {
            "x402Version": 2,
            "resource": {"url": url, "description": "test route", "mimeType": "application/json"},
            "accepts": [requirement],
        }
        if error:
            body["error"] = error
        headers = {"PAYMENT-REQUIRED": _b64(body), "Cache-Control": "no-store"}
        return JSONResponse({}, status_code=402, headers=headers)

    @app.get("/paid")
    async def paid(request: Request) -> JSONResponse:
        charge = Charge(amount=price, resource=str(request.url), model_id=model_id)
        requirement = scheme.requirement(charge)
        header = request.headers.get("PAYMENT-SIGNATURE")
        if not header:
            return _required(str(request.url), requirement)
        try:
            payload = json.loads(base64.b64decode(header))
        except ValueError:
            return _required(str(request.url), requirement, "invalid_payment_signature_header")
        if not isinstance(payload, dict) or (payload.get("accepted") or {}).get("scheme") != scheme.name:
            return _required(str(request.url), requirement, "unsupported_scheme")
        started = time.perf_counter()
        try:
            accepted = scheme.accept(payload, requirement, charge)
        except PaymentRejectedError as exc:
            resp = _required(str(request.url), requirement, exc.reason)
            resp.headers["Server-Timing"] = f"accept;dur={(time.perf_counter() - started) * 1000:.3f}"
            return resp
        charged = accepted.extra["chargedCumulativeAmount"]
        timing = f"accept;dur={(time.perf_counter() - started) * 1000:.3f}"
        headers = {"PAYMENT-RESPONSE": _b64(scheme.response(accepted)), "Server-Timing": timing}
        return JSONResponse({"ok": True, "charged": charged}, headers=headers)

    return app


def app_from_env() -> FastAPI:
    """CHANNEL_GW_DB (database URL), CHANNEL_GW_DEPLOYMENT (deployment file), CHANNEL_GW_AUTHORIZER (the
    receiver authorizer address), CHANNEL_GW_PRICE, CHANNEL_GW_MODEL, CHANNEL_GW_RPC (only to read the token's
    name once at start-up; the request path makes no RPC)."""
    dep = load_deployment(Path(os.environ["CHANNEL_GW_DEPLOYMENT"]))
    engine = make_engine(os.environ["CHANNEL_GW_DB"])
    w3 = Web3(Web3.HTTPProvider(os.environ["CHANNEL_GW_RPC"]))
    token = dep.contract(w3, "RewardToken")
    scheme = BatchSettlementScheme(
        engine=engine,
        chain_id=dep.chain_id,
        router=dep.address("PaymentRouter"),
        token=token.address,
        receiver_authorizer=os.environ["CHANNEL_GW_AUTHORIZER"],
        token_name=str(token.functions.name().call()),
    )
    return gateway_app(
        scheme, price=int(os.environ["CHANNEL_GW_PRICE"]), model_id=os.environ["CHANNEL_GW_MODEL"]
    )
