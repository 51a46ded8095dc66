"""Agents keep the official x402 client: `x402Client` + `x402HttpxClient` (x402 2.25) with the
`CairnChannelScheme` plugin registered through `x402Client.register` pay the real API's
`POST /v1/chat/completions` (the embedded model, on a real uvicorn) in channel mode, with spend controls that
allow the RewardToken; the claimer then claims what they paid. And why the plugin: the official SDK's
`BatchSettlementEvmScheme` signs under the canonical x402BatchSettlement address, so its channel id is not the
router's and the gateway refuses its voucher."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from support.channels import (
    CHAT,
    MODEL_NAME,
    PRICE,
    ChannelWorld,
    GatewayProcess,
    agent_key,
    build_world,
    official_client,
)
from x402.http.clients.httpx import x402HttpxClient
from x402.mechanisms.evm.batch_settlement.client import BatchSettlementEvmScheme
from x402.mechanisms.evm.batch_settlement.client.config import BatchSettlementEvmSchemeOptions
from x402.mechanisms.evm.batch_settlement.client.storage import (
    BatchSettlementClientContext,
    InMemoryClientChannelStorage,
)
from x402.mechanisms.evm.batch_settlement.constants import BATCH_SETTLEMENT_ADDRESS
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
from x402.schemas import PaymentRequirements

from cairn.cli.devchain import Anvil

REQUESTS = 12


@pytest.fixture
def world(anvil: Anvil, tmp_path: Path) -> Iterator[ChannelWorld]:
    w = build_world(anvil, tmp_path)
    try:
        yield w
    finally:
        w.engine.dispose()


def test_official_client_with_the_plugin_pays_in_channel_mode(world: ChannelWorld, tmp_path: Path) -> None:
    agent = world.open_channel(agent_key(0), 100 * PRICE)
    world.index()
    gateway = GatewayProcess(world, tmp_path, "gw")
    try:

        async def run() -> list[httpx.Response]:
            client = official_client(world, agent.plugin)
            out = []
            async with x402HttpxClient(client, timeout=30) as http:
                for _ in range(REQUESTS):
                    out.append(await http.post(gateway.url, json=CHAT))
            return out

        responses = asyncio.run(run())
    finally:
        gateway.stop()
    assert [r.status_code for r in responses] == [200] * REQUESTS
    answer = responses[-1].json()  # a chat completion of the trained model, naming the dataset it drew on
    assert answer["model"] == MODEL_NAME and answer["cairn"]["datasets"]
    last = json.loads(base64.b64decode(responses[-1].headers["PAYMENT-RESPONSE"]))
    assert last["success"] is True and last["payer"] == agent.account.address
    assert last["extra"]["channelState"]["chargedCumulativeAmount"] == str(REQUESTS * PRICE)
    assert agent.plugin.charged[agent.channel_id] == REQUESTS * PRICE  # the response hook kept the total
    rounds = world.claimer().claim_all()
    assert sum(r.requests for r in rounds) == REQUESTS
    _, claimed = world.router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
    assert claimed == REQUESTS * PRICE


def test_an_unpaid_request_gets_a_402_the_official_client_parses(world: ChannelWorld, tmp_path: Path) -> None:
    gateway = GatewayProcess(world, tmp_path, "gw")
    try:
        r = httpx.post(gateway.url, json=CHAT)
    finally:
        gateway.stop()
    assert r.status_code == 402 and r.headers["cache-control"] == "no-store"
    from x402.http.utils import decode_payment_required_header

    required = decode_payment_required_header(r.headers["PAYMENT-REQUIRED"])
    exact, req = required.accepts  # the real gateway offers both schemes
    assert exact.scheme == "exact" and exact.amount == str(PRICE)
    assert req.scheme == "batch-settlement" and req.pay_to.lower() == world.router.address.lower()
    assert req.extra["receiverAuthorizer"] == world.settler.address and req.amount == str(PRICE)


def test_the_official_sdk_scheme_cannot_pay_the_router(world: ChannelWorld) -> None:
    account = Account.from_key(agent_key(0).key)
    agent = world.open_channel(account, 100 * PRICE)
    world.index()
    requirement = world.requirement()
    requirements = PaymentRequirements.model_validate(requirement)
    sdk = BatchSettlementEvmScheme(account)
    # a fresh SDK client first deposits through the SDK's ERC-3009 deposit collector (not the router)
    first = sdk.create_payment_payload(requirements)
    assert first["type"] == "deposit"
    from backend.api.x402.scheme import PaymentRejectedError

    with pytest.raises(PaymentRejectedError) as info:
        world.scheme.accept(first, requirement, world.charge())
    assert info.value.reason == "invalid_batch_settlement_evm_deposit_unsupported"
    # told that its channel is funded, it signs a voucher
    storage = InMemoryClientChannelStorage()
    sdk = BatchSettlementEvmScheme(account, BatchSettlementEvmSchemeOptions(storage=storage))
    sdk_id = compute_channel_id(sdk.build_channel_config(requirements), requirements.network)
    storage.set(sdk_id.lower(), BatchSettlementClientContext(balance=str(100 * PRICE)))
    inner = sdk.create_payment_payload(requirements)
    assert inner["type"] == "voucher"
    # the SDK's channel config is ours, field for field (payer, receiver = router, token, delay, salt) ...
    assert {k: str(v).lower() for k, v in inner["channelConfig"].items()} == {
        k: str(v).lower() for k, v in agent.config.to_wire().items()
    }
    # ... but its channel id is bound to the canonical contract, not to the router that holds the deposit
    router_id = "0x" + bytes(world.router.functions.channelId(agent.config.as_tuple()).call()).hex()
    assert (
        inner["voucher"]["channelId"].lower() != router_id
        and world.router.address != BATCH_SETTLEMENT_ADDRESS
    )
    from backend.api.x402.scheme import PaymentRejectedError

    with pytest.raises(PaymentRejectedError) as info:
        world.scheme.accept(inner, requirement, world.charge())
    assert info.value.reason == "invalid_batch_settlement_evm_channel_id"
    # relabelled with the router's channel id, its signature (over the canonical domain) still fails
    relabelled = dict(inner, voucher=dict(inner["voucher"], channelId=router_id))
    with pytest.raises(PaymentRejectedError) as info:
        world.scheme.accept(relabelled, requirement, world.charge())
    assert info.value.reason == "invalid_batch_settlement_evm_voucher_signature"
