"""Two hardenings of the x402 gateway on the real stack (anvil, the contracts, the app under uvicorn, SQLite),
with the app's JSON-RPC going through a counting proxy in front of anvil: a forged payload is refused on its
signature before any of the payer's chain state is read; a paid request whose route fails (5xx) is voided,
never settled."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from support.channels import PRICE as CHANNEL_PRICE
from support.channels import agent_key, build_world
from support.rpc_counter import RpcCounter, rpc_counter
from support.x402_stack import PRICE, X402Stack, official_client, pay, settle_all, x402_stack
from x402.http import x402HTTPClient

from cairn.cli.devchain import Anvil, free_port, mint_test_tokens, start_anvil
from cairn.core.contracts import load_artifact
from cairn.core.eip712 import transfer_authorization_typed_data
from cairn.core.settings import ANVIL_DEV_KEYS, REPO_ROOT

SIG = "invalid_exact_evm_payload_signature"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[X402Stack, RpcCounter]]:
    tmp: Path = tmp_path_factory.mktemp("x402h")
    down = {"down": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "timeout_s": 5}}  # a closed port
    with start_anvil() as anvil, rpc_counter(anvil.url) as rpc, x402_stack(
        anvil, tmp, rpc_urls=[rpc.url], api_x402_settle_in_api=False, api_upstreams=down,
        api_prices={"down": PRICE},
    ) as s:  # fmt: skip
        yield s, rpc


def _client(stack: X402Stack, i: int) -> Any:
    return official_client(stack.payers[i].key.hex(), stack.token, stack.network, 10 * PRICE)


def _signed_payload(stack: X402Stack, i: int) -> dict[str, Any]:
    resp = httpx.post(stack.url, json={}, timeout=10)
    http = x402HTTPClient(_client(stack, i))
    required = http.get_payment_required_response(resp.headers.get, resp.content)
    payload = asyncio.run(_client(stack, i).create_payment_payload(required))
    return dict(json.loads(payload.model_dump_json(by_alias=True, exclude_none=True)))


def _send(stack: X402Stack, payload: dict[str, Any]) -> httpx.Response:
    header = base64.b64encode(json.dumps(payload).encode()).decode()
    return httpx.post(stack.url, json={}, headers={"PAYMENT-SIGNATURE": header}, timeout=10)


def _error(resp: httpx.Response) -> Any:
    return json.loads(base64.b64decode(resp.headers["PAYMENT-REQUIRED"])).get("error")


def test_forged_payload_is_refused_before_the_payers_state_is_read(
    world: tuple[X402Stack, RpcCounter],
) -> None:
    stack, rpc = world
    fresh = Account.create().address  # never seen by the app: nothing about it is cached
    forged = _signed_payload(stack, 0)  # signed by payer 0 ...
    forged["payload"]["authorization"]["from"] = fresh  # ... naming someone else as the payer
    resp = _send(stack, forged)
    assert resp.status_code == 402 and _error(resp) == SIG, resp.text
    # no balanceOf / authorizationState / eth_getBalance for it: only the one code lookup that tells an
    # EOA (refused) from a contract wallet (EIP-1271), since ECDSA did not recover `from`
    assert [c["method"] for c in rpc.mentioning(fresh)] == ["eth_getCode"]
    # the code lookup is cached per payer: another forgery naming it costs the chain nothing
    again = _signed_payload(stack, 1)
    again["payload"]["authorization"]["from"] = fresh
    resp = _send(stack, again)
    assert resp.status_code == 402 and _error(resp) == SIG
    assert [c["method"] for c in rpc.mentioning(fresh)] == ["eth_getCode"]
    # a genuine payment: its signature checks first, then its state is read in one batch (balance, nonce)
    payer = stack.payers[2].address
    before = len(rpc.mentioning(payer))
    assert _send(stack, _signed_payload(stack, 2)).status_code == 200
    methods = sorted(c["method"] for c in rpc.mentioning(payer)[before:])
    assert methods == ["eth_call", "eth_call", "eth_getCode"], methods


def _payments(stack: X402Stack, payer: str) -> dict[str, Any]:
    r = httpx.get(stack.url.replace("/test/echo", "/v1/payments"), params={"payer": payer}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_paid_request_whose_upstream_is_down_is_void_and_never_settled(
    world: tuple[X402Stack, RpcCounter],
) -> None:
    stack, _ = world
    payer = stack.payers[1]
    token = stack.contract("RewardToken")
    before = token.functions.balanceOf(payer.address).call()
    chat = stack.url.replace("/test/echo", "/v1/chat/completions")
    resp = pay(_client(stack, 1), chat, {"model": "down", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 503 and resp.json()["code"] == "upstream_unavailable", resp.text
    settle = x402HTTPClient(_client(stack, 1)).get_payment_settle_response(resp.headers.get)
    assert settle.success is False and settle.error_reason == "route_failed_503"
    assert settle.payer == payer.address and settle.transaction == "" and settle.amount == "0"
    page = _payments(stack, payer.address)
    [row] = page["payments"]
    assert row["status"] == "void" and row["reason"] == "route_failed_503" and row["amount"] == str(PRICE)
    assert page["exposure"]["unsettled"] == "0"
    settle_all(stack)  # a real settler round: the void payment is not submitted
    [row] = _payments(stack, payer.address)["payments"]
    assert row["status"] == "void" and row["tx_hash"] is None
    assert token.functions.balanceOf(payer.address).call() == before
    nonce = bytes.fromhex(row["nonce"][2:])
    assert token.functions.authorizationState(payer.address, nonce).call() is False  # never used on chain


def test_paid_route_that_raises_is_void(world: tuple[X402Stack, RpcCounter]) -> None:
    stack, _ = world
    payer = stack.payers[0]
    resp = pay(_client(stack, 0), stack.url.replace("/test/echo", "/test/boom"), {})
    assert resp.status_code == 500
    [row] = [p for p in _payments(stack, payer.address)["payments"] if p["resource"].endswith("/test/boom")]
    assert row["status"] == "void" and row["reason"] == "route_failed"
    settle_all(stack)
    [row] = [p for p in _payments(stack, payer.address)["payments"] if p["resource"].endswith("/test/boom")]
    assert row["status"] == "void" and row["tx_hash"] is None


def test_failed_requests_voucher_increment_is_not_claimed(anvil: Anvil, tmp_path: Path) -> None:
    """Channel mode, against the real router and the real claimer: a voided request's charge is released
    (the claim takes only the served requests); a request in flight when the claimer runs is not claimed, so
    it too is released when it fails (tests/integration/test_channel_in_flight.py runs that over HTTP)."""
    world = build_world(anvil, tmp_path)
    try:
        agent = world.open_channel(agent_key(0), 100 * CHANNEL_PRICE)
        world.index()
        world.pay(agent)
        world.pay(agent)
        failed = world.pay(agent, served=False)  # its route fails
        body = world.scheme.void(failed, "route_failed_503")
        assert body is not None and body["success"] is False
        assert body["extra"]["channelState"]["chargedCumulativeAmount"] == str(2 * CHANNEL_PRICE)
        world.pay(agent)  # the client's next voucher (cumulative, above the released total) still pays
        world.claimer().claim_all()
        router = world.router
        _, claimed = router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert claimed == 3 * CHANNEL_PRICE  # three served requests, not four
        running = world.pay(agent, served=False)  # accepted, its route still running
        world.claimer().claim_all()
        _, claimed = router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert claimed == 3 * CHANNEL_PRICE  # not claimed while in flight
        body = world.scheme.void(running, "route_failed_503")
        assert body is not None and body["extra"]["channelState"]["chargedCumulativeAmount"] == str(
            3 * CHANNEL_PRICE
        )
        world.pay(agent)
        world.claimer().claim_all()
        _, claimed = router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert claimed == 4 * CHANNEL_PRICE
    finally:
        world.engine.dispose()


def test_contract_wallet_pays_through_eip1271_after_ecdsa_misses(world: tuple[X402Stack, RpcCounter]) -> None:
    """The path a forgery falls into, for a real contract wallet: ECDSA does not recover `from`, the code
    lookup finds code, EIP-1271 says yes; served, then settled on chain (the token checks the same way)."""
    stack, rpc = world
    owner = Account.create()
    art = load_artifact("Wallet1271", REPO_ROOT / "artifacts" / "contracts" / "test" / "handlers")
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    ctor = stack.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(owner.address)
    tx = ctor.build_transaction(
        {"from": admin.address, "nonce": stack.w3.eth.get_transaction_count(admin.address, "pending")}
    )
    h = stack.w3.eth.send_raw_transaction(admin.sign_transaction(tx).raw_transaction)
    wallet = str(stack.w3.eth.wait_for_transaction_receipt(h)["contractAddress"])
    mint_test_tokens(stack.w3, stack.deployment, wallet, 10 * PRICE)
    token = stack.contract("RewardToken")
    payload = _signed_payload(stack, 0)  # the official client's payload, as a template
    nonce = "0x" + os.urandom(32).hex()
    auth = dict(payload["payload"]["authorization"], **{"from": wallet, "nonce": nonce})
    typed = transfer_authorization_typed_data(
        token_name=token.functions.name().call(), chain_id=stack.w3.eth.chain_id,
        verifying_contract=stack.token, from_=wallet, to=auth["to"], value=int(auth["value"]),
        valid_after=int(auth["validAfter"]), valid_before=int(auth["validBefore"]), nonce=nonce,
    )  # fmt: skip
    signature = Account.sign_typed_data(owner.key, full_message=typed).signature.hex()
    payload["payload"] = {"authorization": auth, "signature": "0x" + signature.removeprefix("0x")}
    resp = _send(stack, payload)
    assert resp.status_code == 200, resp.text
    methods = [c["method"] for c in rpc.mentioning(wallet) if c["method"] in ("eth_getCode", "eth_call")]
    assert methods[:2] == ["eth_getCode", "eth_call"], methods  # code lookup, then isValidSignature
    settle_all(stack)
    [row] = _payments(stack, wallet)["payments"]
    assert row["status"] == "settled", row
    assert token.functions.balanceOf(wallet).call() == 10 * PRICE - PRICE
