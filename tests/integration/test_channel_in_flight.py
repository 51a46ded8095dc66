"""A channel request's charge is claimable only once its route has served it: on the real stack (anvil, the
contracts, the real app and its x402 gateway middleware under uvicorn, the world's SQLite database and
indexer mirror, the real claimer and outbox), a paid request held in flight by its route while the claimer
claims, then failing with a 503, is voided, its charge released, and never claimed on chain; and a request
left in flight by a killed API process is released by the claimer after the serve timeout."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from support.channels import MODEL, PRICE, ChannelWorld, agent_key, build_world
from support.uvicorn_thread import serve

from backend.api.app import create_app
from backend.api.x402.gateway import require_payment
from backend.api.x402.scheme import Accepted, Charge
from cairn.cli.devchain import Anvil


@pytest.fixture
def world(anvil: Anvil, tmp_path: Path) -> Iterator[ChannelWorld]:
    w = build_world(anvil, tmp_path)
    try:
        yield w
    finally:
        w.engine.dispose()


def _charge(request: Request) -> Charge:
    return Charge(amount=PRICE, resource=str(request.url), model_id=MODEL, description="held route (test)")


def _requests_in_flight(world: ChannelWorld) -> int:
    with world.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM channel_request")).scalar_one())


def _claimed(world: ChannelWorld, channel_id: str) -> int:
    _, claimed = world.router.functions.channels(bytes.fromhex(channel_id[2:])).call()
    return int(claimed)


def _charged(world: ChannelWorld, channel_id: str) -> int:
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT charged FROM channel_state WHERE channel_id = :c"), {"c": channel_id}
            ).scalar_one()
        )


def test_a_request_failing_after_the_claimer_ran_is_void_and_never_claimed(world: ChannelWorld) -> None:
    agent = world.open_channel(agent_key(0), 100 * PRICE)
    world.index()
    release = threading.Event()
    settings = world.settings.model_copy(
        update={"api_run_indexer": False, "api_migrate": False, "api_x402_settle_in_api": False,
                "api_channel_claim_in_api": False}
    )  # fmt: skip
    app = create_app(settings)

    @app.post("/test/ok")
    def ok(paid: Annotated[Accepted, Depends(require_payment(_charge))]) -> Any:
        return {"amount": str(paid.amount)}

    @app.post("/test/held")
    def held(paid: Annotated[Accepted, Depends(require_payment(_charge))]) -> Any:
        assert release.wait(60)  # in flight until the test lets it fail
        return JSONResponse({"error": "upstream unavailable"}, status_code=503)

    with serve(app) as base:
        unpaid = httpx.post(base + "/test/ok", timeout=10)
        assert unpaid.status_code == 402
        required = json.loads(base64.b64decode(unpaid.headers["PAYMENT-REQUIRED"]))
        [requirement] = [a for a in required["accepts"] if a["scheme"] == "batch-settlement"]

        def paid_post(path: str) -> httpx.Response:
            header = agent.plugin.payment_header(requirement)
            r = httpx.post(base + path, headers={"PAYMENT-SIGNATURE": header}, timeout=60)
            if r.headers.get("PAYMENT-RESPONSE"):
                agent.plugin.record_response_header(r.headers["PAYMENT-RESPONSE"])
            return r

        assert [paid_post("/test/ok").status_code for _ in range(2)] == [200, 200]
        out: dict[str, httpx.Response] = {}
        runner = threading.Thread(target=lambda: out.setdefault("r", paid_post("/test/held")))
        runner.start()
        deadline = time.monotonic() + 30
        while _requests_in_flight(world) == 0:  # accepted: charged, the route running
            assert time.monotonic() < deadline and runner.is_alive()
            time.sleep(0.02)
        assert _charged(world, agent.channel_id) == 3 * PRICE
        rounds = world.claimer().claim_all()  # the claimer runs while the request is in flight
        assert sum(r.requests for r in rounds) == 2
        assert _claimed(world, agent.channel_id) == 2 * PRICE  # the request in flight is not claimed
        release.set()  # the route fails
        runner.join(60)
        failed = out["r"]
        assert failed.status_code == 503
        body = json.loads(base64.b64decode(failed.headers["PAYMENT-RESPONSE"]))
        assert body["success"] is False and body["errorReason"] == "route_failed_503"
        assert body["extra"]["channelState"]["chargedCumulativeAmount"] == str(2 * PRICE)  # released
        assert _requests_in_flight(world) == 0 and _charged(world, agent.channel_id) == 2 * PRICE
        assert paid_post("/test/ok").status_code == 200  # the client's next voucher still pays
    world.claimer().claim_all()
    assert _claimed(world, agent.channel_id) == 3 * PRICE  # three served requests; the failed one never
    assert _charged(world, agent.channel_id) == 3 * PRICE and _requests_in_flight(world) == 0


def test_a_request_left_in_flight_is_released_after_the_serve_timeout(world: ChannelWorld) -> None:
    """An API process killed mid-request leaves its `channel_request` row: not claimed while it is younger
    than the serve timeout, then released (not charged) by the claimer; a `served` mark arriving after that
    does not make it claimable."""
    agent = world.open_channel(agent_key(1), 100 * PRICE)
    world.index()
    world.pay(agent)
    orphan = world.pay(agent, served=False)
    first = world.claimer(serve_timeout_s=300).run_once(force=True)
    assert first.released == 0 and first.requests == 1
    world.claimer().claim_all()
    assert _claimed(world, agent.channel_id) == PRICE
    with world.engine.begin() as conn:  # the request was accepted 301 s ago
        conn.execute(text("UPDATE channel_request SET accepted_at = accepted_at - 301"))
    late = world.claimer(serve_timeout_s=300).run_once(force=True)
    assert late.released == 1 and late.lines == []
    assert _charged(world, agent.channel_id) == PRICE and _requests_in_flight(world) == 0
    world.scheme.served(orphan)  # the killed process's mark, too late: nothing to claim
    body = world.scheme.void(orphan, "route_failed")  # or its void: nothing more to release
    assert body is not None and body["extra"]["channelState"]["chargedCumulativeAmount"] == str(PRICE)
    world.pay(agent)
    world.claimer().claim_all()
    assert _claimed(world, agent.channel_id) == 2 * PRICE and _charged(world, agent.channel_id) == 2 * PRICE
