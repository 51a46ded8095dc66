"""A real stack for the x402 tests: anvil, every contract, the real app (its lifespan builds the gateway, the
outbox, the settler) with one extra priced route, served by a real uvicorn; payers funded with RewardToken.

`POST /test/echo` is paid with `require_payment(echo_charge)`: the price comes from the `X-Test-Price` header
(default PRICE), so a test can price requests differently; the model is ECHO_MODEL. The inference API attaches
the same dependency to `/v1/chat/completions`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from backend.api.x402.gateway import require_payment
from backend.api.x402.scheme import Accepted, Charge
from cairn.cli.devchain import Anvil, mint_test_tokens
from cairn.core.deployment import Deployment
from cairn.core.settings import ANVIL_DEV_KEYS
from support.api_stack import deploy, h32
from support.uvicorn_thread import serve

PRICE = 10**16  # 0.01 CAIRN per request
ECHO_MODEL = h32("echo-model")
PAYER_KEYS = [ANVIL_DEV_KEYS[k] for k in (6, 7, 8)]


def echo_charge(request: Request) -> Charge:
    """The price of one echo request (the `Charge` callable the gateway asks)."""
    return Charge(
        amount=int(request.headers.get("x-test-price", PRICE)),
        resource=str(request.url),
        model_id=ECHO_MODEL,
        description="priced echo (test route)",
    )


def priced_app(settings: ApiSettings) -> FastAPI:
    app = create_app(settings)

    @app.post("/test/echo")
    def echo(body: dict[str, Any], paid: Annotated[Accepted, Depends(require_payment(echo_charge))]) -> Any:
        return {"echo": body, "payer": paid.payer, "amount": str(paid.amount)}

    @app.post("/test/boom", dependencies=[Depends(require_payment(echo_charge))])
    def boom(body: dict[str, Any]) -> Any:
        """A paid route that raises after the payment was recorded (its payment must be void)."""
        raise RuntimeError("the route failed after being paid")

    @app.post("/test/stream", dependencies=[Depends(require_payment(echo_charge))])
    def stream(body: dict[str, Any]) -> StreamingResponse:
        """A route returning its own Response (as a streamed completion does), paid at router level."""
        return StreamingResponse(iter([b"data: 1\n\n", b"data: [DONE]\n\n"]), media_type="text/event-stream")

    return app


@dataclass
class X402Stack:
    anvil: Anvil
    w3: Web3
    deployment: Deployment
    settings: ApiSettings
    url: str
    payers: list[LocalAccount]

    def contract(self, name: str) -> Any:
        return self.deployment.contract(self.w3, name)

    @property
    def token(self) -> str:
        return str(self.deployment.address("RewardToken"))

    @property
    def network(self) -> str:
        return f"eip155:{self.w3.eth.chain_id}"

    def transact(self, account: LocalAccount, fn: Any) -> dict[str, Any]:
        tx = fn.build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                "gas": fn.estimate_gas({"from": account.address}, "pending"),
            }
        )
        h = self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        receipt = dict(self.w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.02))
        assert receipt["status"] == 1, receipt
        return receipt


def settings_for(anvil: Anvil, tmp: Path, **overrides: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "rpc_urls": [anvil.url],
        "database_url": f"sqlite:///{tmp}/x402.db",
        "deployment_file": tmp / "deployment.json",
        "data_dir": tmp / "data",
        "confirmations": 0,
    }
    return ApiSettings(**(base | overrides))  # overrides may replace any of these (e.g. rpc_urls)


def fund_payers(w3: Web3, dep: Deployment, amount: int = 10**20) -> list[LocalAccount]:
    payers = [Account.from_key(k) for k in PAYER_KEYS]
    for p in payers:
        mint_test_tokens(w3, dep, p.address, amount)
    return payers


@contextmanager
def x402_stack(anvil: Anvil, tmp: Path, **overrides: Any) -> Iterator[X402Stack]:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    dep = deploy(w3, admin, tmp)
    payers = fund_payers(w3, dep)
    settings = settings_for(anvil, tmp, **overrides)
    with serve(priced_app(settings)) as url:
        yield X402Stack(anvil, w3, dep, settings, url + "/test/echo", payers)


def official_client(key: str, token: str, network: str, max_amount: int) -> Any:
    """The official x402 Python client, unmodified: the EVM exact scheme with an eth-account signer, and its
    spend controls configured to allow our RewardToken up to `max_amount` atomic units per payment."""
    from x402 import x402Client
    from x402.mechanisms.evm.exact.register import register_exact_evm_client

    client = x402Client()
    register_exact_evm_client(client, Account.from_key(key), networks=network)
    client.set_spend_controls(
        {"allowed_assets": [{"network": network, "asset": token, "max_amount_per_payment": str(max_amount)}]}
    )
    return client


def pay(client: Any, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """POST through `x402HttpxClient` (it answers the 402 by paying and retrying once)."""
    from x402.http.clients import x402HttpxClient

    async def go() -> Any:
        async with x402HttpxClient(client, timeout=30) as http:
            return await http.post(url, json=body, headers=headers or {})

    return asyncio.run(go())


def settle_all(stack: X402Stack, timeout: float = 60) -> None:
    """Run settlement rounds (the real settler, in this process) until no payment is accepted, served or
    settling."""
    from backend.api.chain import connect_chain
    from backend.api.x402 import store
    from backend.api.x402.settle import build_settler
    from cairn.core.db import make_engine

    engine = make_engine(stack.settings.database_url)
    try:
        settler = build_settler(stack.settings, connect_chain(stack.settings), engine)
        deadline = time.monotonic() + timeout
        while True:
            settler.round()
            open_ = [
                p
                for p in store.payments(engine, settler.chain_id, payer=None, status=None, limit=10_000)
                if p["status"] in (store.ACCEPTED, store.SERVED, store.SETTLING)
            ]
            if not open_:
                return
            assert time.monotonic() < deadline, f"payments still open: {open_[:3]}"
            time.sleep(0.1)
    finally:
        engine.dispose()
