"""The x402 v2 gateway against the official Python client (x402 2.25, unmodified), on real anvil, the real
contracts, the real app under uvicorn and SQLite: 402 parsed by the client, payment verified off-chain,
served, PAYMENT-RESPONSE, settled later through the outbox; cancelled authorizations refused further
service; the exposure limit; a front-run authorization still attributed; forged payloads rejected."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import text
from support.x402_stack import (
    ECHO_MODEL,
    PRICE,
    X402Stack,
    official_client,
    pay,
    settle_all,
    x402_stack,
)
from web3.logs import DISCARD
from x402.http import x402HTTPClient

from cairn.cli.devchain import start_anvil
from cairn.core import eip712
from cairn.core.db import make_engine

LIMIT = 3 * PRICE
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[X402Stack]:
    tmp: Path = tmp_path_factory.mktemp("x402")
    with (
        start_anvil() as anvil,
        x402_stack(anvil, tmp, api_x402_settle_in_api=False, api_x402_exposure_limit=LIMIT) as s,
    ):
        yield s


def _client(stack: X402Stack, i: int) -> Any:
    return official_client(stack.payers[i].key.hex(), stack.token, stack.network, 10 * PRICE)


def _payments(stack: X402Stack, payer: str) -> dict[str, Any]:
    r = httpx.get(stack.url.replace("/test/echo", "/v1/payments"), params={"payer": payer}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _required_error(resp: httpx.Response) -> str | None:
    body = json.loads(base64.b64decode(resp.headers["PAYMENT-REQUIRED"]))
    return body.get("error")


def test_unpaid_request_gets_a_402_the_official_client_parses(stack: X402Stack) -> None:
    resp = httpx.post(stack.url, json={"q": "hi"}, timeout=10)
    assert resp.status_code == 402
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert resp.json()["code"] == "payment_required"
    client = x402HTTPClient(_client(stack, 0))
    required = client.get_payment_required_response(resp.headers.get, resp.content)
    assert required.x402_version == 2
    assert required.resource is not None and required.resource.url == stack.url
    assert [r.scheme for r in required.accepts] == ["exact", "batch-settlement"]
    req, channel = required.accepts
    # channels on the same gateway: vouchers to the router, claimed by the settler key (receiverAuthorizer)
    settler = Account.from_key(stack.settings.signing_key("settler", stack.w3.eth.chain_id)).address
    assert (channel.pay_to, channel.asset, channel.amount) == (req.pay_to, req.asset, req.amount)
    assert channel.extra["receiverAuthorizer"] == settler
    token = stack.contract("RewardToken")
    assert (req.scheme, req.network, req.amount) == ("exact", stack.network, str(PRICE))
    assert req.asset == stack.token and req.pay_to == stack.deployment.address("PaymentRouter")
    # the EIP-712 domain as the token reports it (a wrong name gives signatures that fail on-chain)
    assert req.extra == {"name": token.functions.name().call(), "version": "1"}
    assert req.max_timeout_seconds == stack.settings.api_x402_max_timeout_s


def test_default_spend_controls_do_not_pay_an_unknown_token(stack: X402Stack) -> None:
    from x402 import x402Client
    from x402.http.clients import PaymentError
    from x402.mechanisms.evm.exact.register import register_exact_evm_client

    client = x402Client()
    register_exact_evm_client(client, Account.from_key(stack.payers[0].key), networks=stack.network)
    with pytest.raises(PaymentError, match=r"No payment requirements|filtered|spend"):
        pay(client, stack.url, {"q": "hi"})


def test_official_client_pays_is_served_and_settled_later(stack: X402Stack) -> None:
    payer = stack.payers[0]
    token, router = stack.contract("RewardToken"), stack.contract("PaymentRouter")
    before = token.functions.balanceOf(payer.address).call()
    resp = pay(_client(stack, 0), stack.url, {"q": "what is cairn?"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"echo": {"q": "what is cairn?"}, "payer": payer.address, "amount": str(PRICE)}
    settle = x402HTTPClient(_client(stack, 0)).get_payment_settle_response(resp.headers.get)
    assert settle.success is True and settle.payer == payer.address and settle.network == stack.network
    # served first: the payment is recorded, owed, and not yet on chain
    [row] = _payments(stack, payer.address)["payments"]
    assert row["status"] == "served" and row["amount"] == str(PRICE) and row["model_id"] == ECHO_MODEL
    assert token.functions.balanceOf(payer.address).call() == before
    assert _payments(stack, payer.address)["exposure"]["unsettled"] == str(PRICE)

    settle_all(stack)
    page = _payments(stack, payer.address)
    [row] = page["payments"]
    assert row["status"] == "settled" and row["tx_hash"], row
    assert page["exposure"]["unsettled"] == "0"
    assert token.functions.balanceOf(payer.address).call() == before - PRICE
    receipt = stack.w3.eth.get_transaction_receipt(row["tx_hash"])
    [ev] = router.events.PaymentSettled().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["payer"] == payer.address and ev["args"]["amount"] == PRICE
    assert "0x" + bytes(ev["args"]["requestHash"]).hex() == row["nonce"]  # exact: requestHash = nonce
    assert "0x" + bytes(ev["args"]["modelId"]).hex() == ECHO_MODEL


def _cancel(stack: X402Stack, key: str, nonce: str) -> None:
    token = stack.contract("RewardToken")
    acct = Account.from_key(key)
    typed = eip712.cancel_authorization_typed_data(
        token_name=token.functions.name().call(),
        chain_id=stack.w3.eth.chain_id,
        verifying_contract=token.address,
        authorizer=acct.address,
        nonce=nonce,
    )
    sig = Account.sign_typed_data(key, full_message=typed)
    stack.transact(
        acct,
        token.functions.cancelAuthorization(
            acct.address,
            bytes.fromhex(nonce[2:]),
            sig.v,
            sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"),
        ),
    )


def test_payer_who_cancels_after_being_served_is_refused(stack: X402Stack) -> None:
    payer = stack.payers[1]
    client = _client(stack, 1)
    assert pay(client, stack.url, {"q": 1}).status_code == 200
    [row] = _payments(stack, payer.address)["payments"]
    _cancel(stack, payer.key.hex(), row["nonce"])  # served, then the payer cancels its authorization

    settle_all(stack)
    page = _payments(stack, payer.address)
    [row] = page["payments"]
    assert row["status"] == "failed" and row["reason"] == "authorization_used_or_cancelled", row
    assert page["exposure"]["failed"] == 1 and page["exposure"]["refused"] is True
    failed = httpx.get(stack.url.replace("/test/echo", "/v1/payments/failed"), timeout=10).json()["payments"]
    assert row["id"] in [p["id"] for p in failed]

    again = pay(client, stack.url, {"q": 2})  # a fresh, valid authorization: still refused
    assert again.status_code == 402
    assert _required_error(again) == "payer_has_failed_settlements"
    assert "failed to settle" in again.json()["detail"]
    assert len(_payments(stack, payer.address)["payments"]) == 1  # nothing more recorded or served


def test_exposure_limit_refuses_until_settled(stack: X402Stack) -> None:
    payer = stack.payers[2]
    client = _client(stack, 2)
    for i in range(3):  # 3 x PRICE = the limit
        assert pay(client, stack.url, {"i": i}).status_code == 200
    over = pay(client, stack.url, {"i": 3})
    assert over.status_code == 402 and _required_error(over) == "exposure_limit"
    assert _payments(stack, payer.address)["exposure"]["unsettled"] == str(LIMIT)
    settle_all(stack)
    assert _payments(stack, payer.address)["exposure"]["unsettled"] == "0"
    assert pay(client, stack.url, {"i": 4}).status_code == 200


def test_front_run_authorization_is_still_attributed(stack: X402Stack) -> None:
    """Someone submits the served payment's signed authorization straight to the token before the settler:
    the router receives the funds with no event; the settler's row attributes it (payer, model) once."""
    payer = stack.payers[0]
    token, router = stack.contract("RewardToken"), stack.contract("PaymentRouter")
    assert pay(_client(stack, 0), stack.url, {"q": "front-run"}).status_code == 200
    engine = make_engine(stack.settings.database_url)
    with engine.connect() as conn:
        r = conn.execute(
            text("SELECT nonce, authorization FROM x402_payment WHERE status = 'served' AND payer = :p"),
            {"p": payer.address.lower()},
        ).one()
    engine.dispose()
    auth = json.loads(r.authorization)
    thief = Account.from_key("0x" + "11" * 32)
    stack.w3.provider.make_request("anvil_setBalance", [thief.address, hex(10**18)])  # type: ignore[arg-type]
    stack.transact(
        thief,
        token.functions.transferWithAuthorization(
            payer.address, router.address, PRICE, int(auth["validAfter"]), int(auth["validBefore"]),
            bytes.fromhex(r.nonce[2:]), bytes.fromhex(auth["signature"][2:]),
        ),
    )  # fmt: skip
    assert token.functions.balanceOf(router.address).call() == PRICE
    settle_all(stack)
    row = next(p for p in _payments(stack, payer.address)["payments"] if p["nonce"] == r.nonce)
    assert row["status"] == "settled", row
    receipt = stack.w3.eth.get_transaction_receipt(row["tx_hash"])
    [ev] = [
        e
        for e in router.events.PaymentSettled().process_receipt(receipt, errors=DISCARD)
        if "0x" + bytes(e["args"]["requestHash"]).hex() == r.nonce
    ]
    assert ev["args"]["payer"] == payer.address and ev["args"]["amount"] == PRICE
    assert token.functions.balanceOf(router.address).call() == 0  # paid out, nothing stranded


def _signed_payload(stack: X402Stack, i: int) -> dict[str, Any]:
    """A payload made by the official client for the current 402 (to tamper with)."""
    import asyncio

    resp = httpx.post(stack.url, json={}, timeout=10)
    http = x402HTTPClient(_client(stack, i))
    required = http.get_payment_required_response(resp.headers.get, resp.content)
    payload = asyncio.run(_client(stack, i).create_payment_payload(required))
    return dict(json.loads(payload.model_dump_json(by_alias=True, exclude_none=True)))


def _send(stack: X402Stack, payload: dict[str, Any]) -> httpx.Response:
    header = base64.b64encode(json.dumps(payload).encode()).decode()
    return httpx.post(stack.url, json={}, headers={"PAYMENT-SIGNATURE": header}, timeout=10)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda p: p["payload"]["authorization"].update(value=str(PRICE + 1)),
         "invalid_exact_evm_payload_signature"),
        (lambda p: p["payload"]["authorization"].update(value="1"), "requirements_mismatch_or_value"),
        (lambda p: p["accepted"].update(amount="1"), "requirements_mismatch"),
        (lambda p: p["accepted"].update(scheme="upto"), "unsupported_scheme"),
        (lambda p: p.update(x402Version=1), "invalid_x402_version"),
        (lambda p: p["payload"]["authorization"].update(to="0x" + "22" * 20),
         "invalid_exact_evm_payload_recipient_mismatch"),
        (lambda p: p["payload"]["authorization"].update(validBefore="1"),
         "invalid_exact_evm_payload_signature"),
    ],
)  # fmt: skip
def test_forged_or_altered_payloads_are_refused_with_a_402(
    stack: X402Stack, tamper: Any, reason: str
) -> None:
    payload = _signed_payload(stack, 0)
    tamper(payload)
    resp = _send(stack, payload)
    assert resp.status_code == 402 and resp.headers["cache-control"] == "no-store"
    got = _required_error(resp)
    if reason == "requirements_mismatch_or_value":
        assert got == "invalid_exact_evm_payload_authorization_value_mismatch"
    else:
        assert got == reason, resp.json()
    assert "PAYMENT-RESPONSE" not in resp.headers


def test_replayed_payment_is_refused(stack: X402Stack) -> None:
    payload = _signed_payload(stack, 0)
    assert _send(stack, payload).status_code == 200
    again = _send(stack, payload)
    assert again.status_code == 402 and _required_error(again) == "invalid_exact_evm_nonce_already_used"


def test_pay_once_helper_pays_with_the_official_client(stack: X402Stack) -> None:
    """`cairn.cli.x402_pay.pay_once` (what the demo's agent calls) pays over HTTP like any agent."""
    from cairn.cli.x402_pay import pay_once

    payer = stack.payers[0]
    out = pay_once(
        stack.url,
        payer.key.hex(),
        asset=stack.token,
        network=stack.network,
        max_amount=PRICE,
        json_body={"q": 7},
    )
    assert out.status == 200 and out.body["echo"] == {"q": 7}, out
    assert out.settlement is not None and out.settlement["success"] is True
    assert out.settlement["payer"] == payer.address and out.settlement["extra"]["settlement"] == "pending"


def test_route_returning_its_own_response_gets_payment_response(stack: X402Stack) -> None:
    """A streamed route (its own Response object) paid by a dependency still carries PAYMENT-RESPONSE."""
    url = stack.url.replace("/test/echo", "/test/stream")
    assert httpx.post(url, json={}, timeout=10).status_code == 402
    resp = pay(_client(stack, 0), url, {"stream": True})
    assert resp.status_code == 200 and resp.text.endswith("data: [DONE]\n\n")
    settle = x402HTTPClient(_client(stack, 0)).get_payment_settle_response(resp.headers.get)
    assert settle.success is True and settle.payer == stack.payers[0].address


def test_authorization_expiring_before_settlement_is_refused(stack: X402Stack) -> None:
    """The window is checked against the chain's clock: anvil moved 2 hours ahead makes the client's
    validBefore (its wall clock + maxTimeoutSeconds) too short to settle."""
    now = int(stack.w3.eth.get_block("latest")["timestamp"])
    payload = _signed_payload(stack, 0)
    stack.anvil.rpc("evm_setNextBlockTimestamp", [now + 7200])
    stack.anvil.rpc("evm_mine")
    time.sleep(1.2)  # the gateway re-reads the chain's clock every second (ChainView.clock_ttl)
    resp = _send(stack, payload)
    assert resp.status_code == 402
    assert _required_error(resp) == "invalid_exact_evm_payload_authorization_valid_before"
    assert "chain time" in resp.json()["detail"]
