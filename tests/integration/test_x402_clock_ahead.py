"""The demo's agent step on a chain whose clock ran ahead of wall time (`cairn demo` moves the local
chain past an epoch's end with evm_increaseTime, `Demo.travel_past`): the official clients sign validBefore
from this machine's clock plus `maxTimeoutSeconds`, so the gateway adds the chain clock's lead, in whole
hours, to the `maxTimeoutSeconds` it offers; `pay_once` (what the demo's agent calls) pays through the offer
made before the jump; the official client then pays straight, and the payments settle on chain (the token
judges validBefore by the chain's clock). Real anvil, contracts, app under uvicorn, official x402 client."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.x402_stack import PRICE, X402Stack, official_client, pay, settle_all, x402_stack

from backend.api.x402.exact import LEAD_STEP_S
from cairn.cli.devchain import rpc_call, start_anvil
from cairn.cli.x402_pay import pay_once

LEAD = 2 * 3600 + 17  # the demo's jump past an epoch's end and the challenge delay


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[X402Stack]:
    tmp: Path = tmp_path_factory.mktemp("x402c")
    with start_anvil() as anvil, x402_stack(anvil, tmp, api_x402_settle_in_api=False) as s:
        yield s


def _offer(stack: X402Stack) -> int:
    resp = httpx.post(stack.url, json={}, timeout=10)
    assert resp.status_code == 402
    [exact] = [r for r in json.loads(base64.b64decode(resp.headers["PAYMENT-REQUIRED"]))["accepts"]
               if r["scheme"] == "exact"]  # fmt: skip
    return int(exact["maxTimeoutSeconds"])


def test_agent_pays_on_a_chain_whose_clock_ran_ahead(stack: X402Stack) -> None:
    base = stack.settings.api_x402_max_timeout_s
    assert _offer(stack) == base  # the chain keeps wall time: the configured timeout
    # what Demo.travel_past does: the chain's clock jumps ahead of this machine's
    rpc_call(stack.anvil.url, "evm_increaseTime", [LEAD])
    rpc_call(stack.anvil.url, "evm_mine", [])
    chain_now = int(stack.w3.eth.get_block("latest")["timestamp"])
    assert chain_now - time.time() > LEAD - 60
    assert _offer(stack) == base  # the gateway has not read the clock since: a stale offer (no RPC for a 402)

    payer = stack.payers[0]
    out = pay_once(stack.url, payer.key.hex(), asset=stack.token, network=stack.network, max_amount=PRICE,
                   json_body={"q": "after the jump"})  # fmt: skip
    assert out.status == 200, out
    assert out.settlement is not None and out.settlement["success"] is True
    assert out.settlement["payer"] == payer.address

    offered = _offer(stack)  # the lead, as the verification read it, in whole hours
    assert offered == base + 2 * LEAD_STEP_S and offered > chain_now - time.time() + 60
    client = official_client(payer.key.hex(), stack.token, stack.network, 10 * PRICE)
    resp = pay(client, stack.url, {"q": "straight"})  # the official client, one try
    assert resp.status_code == 200, resp.text

    settle_all(stack)  # the token accepts the authorizations: validBefore is past the chain's clock
    r = httpx.get(
        stack.url.replace("/test/echo", "/v1/payments"), params={"payer": payer.address}, timeout=10
    )
    rows = r.json()["payments"]
    assert [p["status"] for p in rows] == ["settled", "settled"], rows
