"""`GET /v1/channels?payer=` and `GET /v1/channels/{channel_id}` on the real API (`cairn api` in its own
process, tests/support/channels.py): an agent pays requests through its channel over HTTP with the official
x402 client and the channel plugin, and more through the gateway's scheme for a second model; the endpoint
reports the charged total, the requests, the usage per model and a voucher whose signature recovers to the
payer authorizer; after the claimer's claim, what was claimed. Keyset pages over the payer's channels, 422
problems for a bad address or cursor and a 404 for an unknown channel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.channels import (
    CHAT,
    MODEL,
    PRICE,
    ChannelWorld,
    GatewayProcess,
    agent_key,
    build_world,
    official_client,
)
from x402.http.clients.httpx import x402HttpxClient

from backend.inference.training import model_id_of
from cairn.cli.devchain import Anvil
from cairn.core.channel import recover, signature_bytes

HTTP_REQUESTS = 3
OTHER_MODEL = model_id_of("another-model")


@pytest.fixture
def world(anvil: Anvil, tmp_path: Path, database_url: str) -> Iterator[ChannelWorld]:
    w = build_world(anvil, tmp_path, database_url)  # SQLite and PostgreSQL (ids compared as text in SQL)
    try:
        yield w
    finally:
        w.engine.dispose()


def _pay_over_http(world: ChannelWorld, plugin: object, url: str, n: int) -> list[httpx.Response]:
    client = official_client(world, plugin)

    async def run() -> list[httpx.Response]:
        async with x402HttpxClient(client, timeout=30) as http:
            return [await http.post(url, json=CHAT) for _ in range(n)]

    return asyncio.run(run())


def test_channels_report_vouchers_charges_usage_and_claims(world: ChannelWorld, tmp_path: Path) -> None:
    account = agent_key(0)
    agent = world.open_channel(account, 100 * PRICE)
    second = world.open_channel(account, 10 * PRICE, salt="0x" + "00" * 31 + "01")
    other = world.open_channel(agent_key(1), 10 * PRICE)
    world.index()
    gateway = GatewayProcess(world, tmp_path, "gw")
    try:
        answers = _pay_over_http(world, agent.plugin, gateway.url, HTTP_REQUESTS)
        assert [r.status_code for r in answers] == [200] * HTTP_REQUESTS
        world.pay(agent, price=2 * PRICE, model=OTHER_MODEL)  # a second model, through the same scheme
        world.pay(second)
        world.pay(other)
        api = httpx.Client(base_url=gateway.base, timeout=10)

        page = api.get("/v1/channels", params={"payer": account.address.lower()})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["payer"] == account.address and body["next_cursor"] is None
        by_id = {c["channel_id"]: c for c in body["channels"]}
        assert set(by_id) == {agent.channel_id, second.channel_id}  # not the other payer's
        assert [c["channel_id"] for c in body["channels"]] == sorted(by_id)
        ch = by_id[agent.channel_id]
        charged = HTTP_REQUESTS * PRICE + 2 * PRICE
        assert ch["charged"] == str(charged) and ch["requests"] == HTTP_REQUESTS + 1
        assert ch["voucher"]["maxClaimableAmount"] == str(charged)  # the plugin signs exactly what is due
        ceiling = int(ch["voucher"]["maxClaimableAmount"])
        digest = world.scheme.domain.voucher_digest(agent.channel_id, ceiling)
        signer = recover(digest, signature_bytes(ch["voucher"]["signature"]))
        assert signer == agent.config.payer_authorizer == account.address.lower()
        assert ch["payer_authorizer"] == account.address and ch["router"] == world.router.address
        assert ch["token"] == world.token.address and ch["salt"] == agent.config.salt
        assert ch["withdraw_delay"] == agent.config.withdraw_delay
        assert sorted((u["model_id"], u["charged"], u["requests"]) for u in ch["usage"]) == sorted(
            [(MODEL, str(HTTP_REQUESTS * PRICE), HTTP_REQUESTS), (OTHER_MODEL, str(2 * PRICE), 1)]
        )
        assert ch["claimed"] == "0" and ch["claiming"] is None

        # keyset pages of one channel each walk both, in id order
        first = api.get("/v1/channels", params={"payer": account.address, "limit": 1}).json()
        assert len(first["channels"]) == 1 and first["next_cursor"]
        rest = api.get(
            "/v1/channels", params={"payer": account.address, "limit": 1, "cursor": first["next_cursor"]}
        ).json()
        assert [c["channel_id"] for c in first["channels"] + rest["channels"]] == sorted(by_id)
        assert rest["next_cursor"] is None

        rounds = world.claimer().claim_all()
        assert sum(r.requests for r in rounds) == HTTP_REQUESTS + 3
        one = api.get(f"/v1/channels/{agent.channel_id}")
        assert one.status_code == 200, one.text
        claimed = one.json()
        _, on_chain = world.router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert claimed["claimed"] == str(on_chain) == str(charged) and claimed["claiming"] is None
        assert {u["model_id"]: u["claimed"] for u in claimed["usage"]} == {
            MODEL: str(HTTP_REQUESTS * PRICE), OTHER_MODEL: str(2 * PRICE),
        }  # fmt: skip

        bad = api.get("/v1/channels", params={"payer": "0x1234"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["field"] == "payer"
        cursor = api.get("/v1/channels", params={"payer": account.address, "cursor": "x"})
        assert cursor.status_code == 422 and cursor.json()["field"] == "cursor"
        missing = api.get("/v1/channels/0x" + "ab" * 32)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        assert api.get("/v1/channels/0x12").status_code == 422
    finally:
        gateway.stop()
