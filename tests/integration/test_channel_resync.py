"""The corrective 402: an agent whose charged total is stale (its state lost, or another client of the same
channel paid meanwhile) sends a voucher that does not cover the channel's charged total plus the price; the
real API (uvicorn, the gateway, the world's SQLite database and mirror on anvil) answers 402 with the
channel's `channelState` and the latest accepted voucher's `voucherState` in the batch-settlement
requirement's `extra` (the official SDK server's field names); the `CairnChannelScheme` plugin checks that
voucher is its own, resyncs, and the official `x402Client` + `x402HttpxClient` pay again, once, and are
served. Each request is charged its price once: the claimer claims exactly what was served."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from sqlalchemy import text
from support.channels import (
    CHAT,
    PRICE,
    ChannelWorld,
    GatewayProcess,
    agent_key,
    build_world,
    official_client,
)
from x402.http.clients.httpx import x402HttpxClient

from cairn.agent.channel_client import CairnChannelScheme
from cairn.cli.devchain import Anvil
from cairn.core.channel import sign_digest

STALE = "invalid_batch_settlement_evm_voucher_amount"


@pytest.fixture
def world(anvil: Anvil, tmp_path: Path) -> Iterator[ChannelWorld]:
    w = build_world(anvil, tmp_path)
    try:
        yield w
    finally:
        w.engine.dispose()


def _pay(world: ChannelWorld, url: str, plugin: CairnChannelScheme, n: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        out = []
        async with x402HttpxClient(official_client(world, plugin), timeout=30) as http:
            for _ in range(n):
                out.append(await http.post(url, json=CHAT))
        return out

    return asyncio.run(run())


def _state(world: ChannelWorld, channel_id: str) -> tuple[int, int]:
    with world.engine.connect() as conn:
        charged, requests = conn.execute(
            text("SELECT charged, requests FROM channel_state WHERE channel_id = :c"), {"c": channel_id}
        ).one()
    return int(charged), int(requests)


def _charged_of(response: httpx.Response) -> int:
    body = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    assert body["success"] is True
    return int(body["extra"]["channelState"]["chargedCumulativeAmount"])


def test_a_stale_agent_gets_the_corrective_402_resyncs_and_is_served(
    world: ChannelWorld, tmp_path: Path
) -> None:
    agent = world.open_channel(agent_key(0), 100 * PRICE)
    world.index()
    cid = agent.channel_id
    gateway = GatewayProcess(world, tmp_path, "gw")
    try:
        first = _pay(world, gateway.url, agent.plugin, 3)
        assert [r.status_code for r in first] == [200] * 3 and _charged_of(first[-1]) == 3 * PRICE

        # the same key, its state lost (a restart): its first voucher is PRICE, the channel's total 3 PRICE
        fresh = CairnChannelScheme(agent.account)
        [resynced] = _pay(world, gateway.url, fresh, 1)  # 402 corrective, resync, paid again, served
        assert resynced.status_code == 200 and resynced.json()["model"]
        assert _charged_of(resynced) == 4 * PRICE and fresh.charged[cid] == 4 * PRICE

        # the first client is now stale in turn (another client of its channel paid): the same recovery
        [again] = _pay(world, gateway.url, agent.plugin, 1)
        assert again.status_code == 200 and _charged_of(again) == 5 * PRICE
        assert agent.plugin.charged[cid] == 5 * PRICE

        # the corrective 402 itself, on the fast path (one PAYMENT-SIGNATURE, no SDK transport)
        unpaid = httpx.post(gateway.url, json=CHAT, timeout=10)
        required = json.loads(base64.b64decode(unpaid.headers["PAYMENT-REQUIRED"]))
        [requirement] = [a for a in required["accepts"] if a["scheme"] == "batch-settlement"]
        assert "channelState" not in requirement["extra"]  # the plain 402 carries no channel's state
        lost = CairnChannelScheme(agent.account)
        stale = httpx.post(
            gateway.url,
            json=CHAT,
            headers={"PAYMENT-SIGNATURE": lost.payment_header(requirement)},
            timeout=30,
        )
        assert stale.status_code == 402
        corrective = json.loads(base64.b64decode(stale.headers["PAYMENT-REQUIRED"]))
        assert corrective["error"] == STALE
        [offer] = [a for a in corrective["accepts"] if a["scheme"] == "batch-settlement"]
        state, voucher = offer["extra"]["channelState"], offer["extra"]["voucherState"]
        assert state == {
            "channelId": cid, "balance": str(100 * PRICE), "totalClaimed": "0", "withdrawRequestedAt": 0,
            "refundNonce": "0", "chargedCumulativeAmount": str(5 * PRICE),
        }  # fmt: skip
        assert voucher["signedMaxClaimable"] == str(5 * PRICE) and voucher["signature"].startswith("0x")
        assert _state(world, cid) == (5 * PRICE, 5)  # the refused voucher charged nothing

        # a voucherState not signed by the agent's key is not believed
        other = Account.create()
        forged = json.loads(json.dumps(corrective))
        [f_offer] = [a for a in forged["accepts"] if a["scheme"] == "batch-settlement"]
        f_offer["extra"]["channelState"]["chargedCumulativeAmount"] = str(50 * PRICE)
        f_offer["extra"]["voucherState"] = {
            "signedMaxClaimable": str(50 * PRICE),
            "signature": sign_digest(bytes(other.key), world.scheme.domain.voucher_digest(cid, 50 * PRICE)),
        }
        assert lost.resync(forged) is False and cid not in lost.charged

        assert lost.resync_from_header(stale.headers["PAYMENT-REQUIRED"]) is True
        assert lost.charged[cid] == 5 * PRICE
        paid = httpx.post(
            gateway.url,
            json=CHAT,
            headers={"PAYMENT-SIGNATURE": lost.payment_header(requirement)},
            timeout=30,
        )
        assert paid.status_code == 200 and _charged_of(paid) == 6 * PRICE
    finally:
        gateway.stop()
    assert _state(world, cid) == (6 * PRICE, 6)  # six requests served, each charged its price once
    rounds = world.claimer().claim_all()
    assert sum(r.requests for r in rounds) == 6
    _, claimed = world.router.functions.channels(bytes.fromhex(cid[2:])).call()
    assert claimed == 6 * PRICE
