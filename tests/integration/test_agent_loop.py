"""The agent path end to end on the real stack (anvil, every contract, the indexer's mirror, `cairn train`,
the real API on uvicorn with its settler): an agent pays `POST /v1/chat/completions` with the official x402
Python client and gets an answer that names its datasets; an unpaid request gets a 402 that client parses;
the settler settles the payment; it is the model's revenue of epoch 0 in `GET /v1/epochs/0/revenue`; and
epoch 0's allocation pays it to the datasets' owners through the manifest's weights (issue 11, deliverable
8). And channel mode on the same route: the API's own claimer thread claims the vouchers it accepted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from support.agent_stack import EPOCH_LENGTH, NAME, PRICE, ROOT, SCORES, Loop, agent_stack
from support.api_stack import index_to
from web3 import Web3
from x402 import x402Client
from x402.http import x402HTTPClient
from x402.http.clients.httpx import x402HttpxClient
from x402.http.utils import decode_payment_required_header

from backend.api.x402 import store
from backend.inference.training import model_id_of
from backend.rewards.chainsource import end_block
from backend.rewards.lifecycle import EpochLifecycle
from backend.rewards.publication import read_allocation_file
from cairn.agent.channel_client import CairnChannelScheme, deposit
from cairn.cli.devchain import mint_test_tokens
from cairn.cli.x402_pay import pay_once, x402_client
from cairn.core.db import make_engine
from cairn.core.policy import BPS, POLICY_DIR, load_policy, median_floor
from cairn.core.settings import ANVIL_DEV_KEYS

QUESTION = "How does the indexer detect and roll back a reorg?"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    with agent_stack(tmp_path_factory.mktemp("agent")) as stack:
        yield stack


def _ask(loop: Loop) -> Any:
    return pay_once(
        loop.url + "/v1/chat/completions", loop.payer.key.hex(), asset=loop.token, network=loop.network,
        max_amount=PRICE, json_body={"model": NAME, "messages": [{"role": "user", "content": QUESTION}]},
    )  # fmt: skip


def test_unpaid_completion_is_a_402_the_official_client_parses_after_validation(loop: Loop) -> None:
    url = loop.url + "/v1/chat/completions"
    body = {"model": NAME, "messages": [{"role": "user", "content": QUESTION}]}
    resp = httpx.post(url, json=body, timeout=10)
    assert resp.status_code == 402 and resp.headers["cache-control"] == "no-store"
    client = x402HTTPClient(x402_client(loop.payer.key.hex(), asset=loop.token, network=loop.network,
                                        max_amount=PRICE))  # fmt: skip
    required = client.get_payment_required_response(resp.headers.get, resp.content)
    assert required.x402_version == 2 and required.resource is not None and required.resource.url == url
    [exact] = [r for r in required.accepts if r.scheme == "exact"]
    assert (exact.amount, exact.network, exact.asset) == (str(PRICE), loop.network, loop.token)
    assert exact.pay_to == loop.dep.address("PaymentRouter")
    # request validation and the model come first: no payment is asked for a request that cannot be served
    assert httpx.post(url, json={"model": NAME, "messages": []}, timeout=10).status_code == 422
    too_long = {**body, "max_tokens": loop.settings.api_max_tokens + 1}  # refused before it could be paid
    refused = httpx.post(url, json=too_long, timeout=10)
    assert refused.status_code == 422 and "payment-required" not in refused.headers
    missing = httpx.post(url, json={**body, "model": "gpt-4o"}, timeout=10)
    assert missing.status_code == 404 and "payment-required" not in missing.headers
    # the model list stays free
    assert httpx.get(loop.url + "/v1/models", timeout=10).status_code == 200


def test_paid_completion_names_its_datasets_and_the_revenue_reaches_their_owners(loop: Loop) -> None:
    paid = _ask(loop)
    assert paid.status == 200, paid.body
    assert paid.settlement is not None and paid.settlement["success"] is True
    assert paid.settlement["payer"] == loop.payer.address
    datasets = paid.body["cairn"]["datasets"]
    assert datasets and {d["id"] for d in datasets} <= set(loop.owners)
    assert paid.body["cairn"]["model_id"] == model_id_of(NAME)
    assert paid.body["choices"][0]["message"]["content"]

    # the API's settler settles it (settleExactBatch through the outbox)
    engine = make_engine(loop.settings.database_url)
    try:
        chain_id = loop.w3.eth.chain_id
        deadline = time.monotonic() + 60
        while True:
            rows = store.payments(engine, chain_id, payer=None, status=None, limit=10)
            if rows and all(r["status"] == store.SETTLED for r in rows):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        assert [int(r["amount"]) for r in rows] == [PRICE]

        # epoch 0 ends; the mirror reaches its end block; the revenue is the model's, net of the router's fee
        loop.w3.provider.make_request("evm_increaseTime", [EPOCH_LENGTH])  # type: ignore[arg-type]
        loop.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        index_to(loop.settings, loop.dep, engine, end_block(loop.w3, loop.dep, 0) or 0)
        revenue = httpx.get(loop.url + "/v1/epochs/0/revenue", timeout=10).json()
        [model] = revenue["models"]
        fee_bps = loop.dep.contract(loop.w3, "PaymentRouter").functions.feeBps().call()
        assert model["model_id"] == model_id_of(NAME) and int(model["amount"]) == PRICE
        assert int(model["fee"]) == -(-PRICE * fee_bps // BPS) and model["requests"] == 1  # rounded up
        net = int(model["net"])
        assert net == PRICE - int(model["fee"]) > 0

        # epoch 0's allocation: the contributors' share of the net revenue, split by manifest weight x median
        # score over the datasets' owners (no emission, no compute: the rest is the treasury's)
        raw = json.loads((POLICY_DIR / "v1.json").read_text())
        raw["account_cap_bps"] = BPS  # no cap here: the split itself is what is checked
        (loop.tmp / "policy.json").write_text(json.dumps(raw))
        policy = load_policy(loop.tmp / "policy.json")
        eng = EpochLifecycle(engine=engine, w3=loop.w3, deployment=loop.dep, policy=policy,
                             data_dir=loop.tmp / "data", publisher_key=ANVIL_DEV_KEYS[0], confirmations=0,
                             finality="confirmations", source="db")  # fmt: skip
        computed = eng.compute(0)
        doc = read_allocation_file(loop.tmp / "data", computed.allocation_file or "")
        amounts = {a: int(v) for a, v in doc["epoch_amounts"].items()}
        median = median_floor(list(SCORES))
        weights: dict[str, int] = {}
        for d in loop.report["datasets"]:  # the manifest `cairn train` registered (token shares)
            owner = loop.owners[d["id"]]
            weights[owner] = weights.get(owner, 0) + int(d["weight"]) * median
        pool = net * policy.revenue_split_bps.contributors // BPS
        total = sum(weights.values())
        for owner, w in weights.items():
            assert abs(amounts[owner] - pool * w // total) <= 1, (owner, amounts, weights)
        assert sum(amounts[o] for o in weights) == pool
        assert amounts[policy.treasury.lower()] == net - pool
        assert sum(amounts.values()) == net
    finally:
        engine.dispose()


def test_channel_mode_on_the_real_route_is_claimed_by_the_apis_claimer(loop: Loop) -> None:
    """An agent with the official client and the channel plugin pays three completions with vouchers; the
    claimer thread the API runs next to its settler (`api_channel_claim_in_api`, due at 3 requests here)
    claims them on chain through the settler key's outbox, with no action of the test."""
    url = loop.url + "/v1/chat/completions"
    body = {"model": NAME, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}
    required = decode_payment_required_header(
        httpx.post(url, json=body, timeout=10).headers["PAYMENT-REQUIRED"]
    )
    [channel_req] = [r for r in required.accepts if r.scheme == "batch-settlement"]
    requirement = channel_req.model_dump(by_alias=True)
    agent = Account.from_key(Web3.keccak(text="cairn-agent-loop-channel"))
    loop.w3.provider.make_request("anvil_setBalance", [agent.address, hex(10**20)])  # type: ignore[arg-type]
    mint_test_tokens(loop.w3, loop.dep, agent.address, 100 * PRICE)
    plugin = CairnChannelScheme(agent)
    deposit(loop.w3, agent, plugin.channel_config(requirement), 100 * PRICE)
    engine = make_engine(loop.settings.database_url)
    try:
        index_to(loop.settings, loop.dep, engine, loop.w3.eth.block_number)  # the deposit in the mirror
    finally:
        engine.dispose()
    client = x402Client()
    client.register(loop.network, plugin)  # type: ignore[arg-type]
    client.set_spend_controls({"allowed_assets": [
        {"network": loop.network, "asset": loop.token, "max_amount_per_payment": str(PRICE)}
    ]})  # fmt: skip

    async def three() -> list[httpx.Response]:
        async with x402HttpxClient(client, timeout=30) as http:
            return [await http.post(url, json=body) for _ in range(3)]

    responses = asyncio.run(three())
    assert [r.status_code for r in responses] == [200] * 3
    assert all(r.json()["cairn"]["datasets"] for r in responses)
    channel_id = bytes.fromhex(plugin.channel_id(requirement)[2:])
    router = loop.dep.contract(loop.w3, "PaymentRouter")
    deadline = time.monotonic() + 60
    while router.functions.channels(channel_id).call()[1] != 3 * PRICE:
        assert time.monotonic() < deadline, router.functions.channels(channel_id).call()
        time.sleep(0.3)


def test_claimer_runs_as_its_own_process_too(loop: Loop) -> None:
    """`python -m backend.api.x402.claimer --once` (for an API run with CAIRN_API_CHANNEL_CLAIM_IN_API=false):
    one forced round on the same settings; everything was claimed by the API's thread already."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(
        PYTHONPATH=str(ROOT), CAIRN_RPC_URLS=loop.settings.rpc_urls[0],
        CAIRN_DATABASE_URL=loop.settings.database_url,
        CAIRN_DEPLOYMENT_FILE=str(loop.settings.deployment_file),
        CAIRN_DATA_DIR=str(loop.settings.data_dir), CAIRN_CONFIRMATIONS="0",
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "backend.api.x402.claimer", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown == {"requests": 0, "outbox_id": None, "skipped": []}
