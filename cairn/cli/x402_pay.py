"""An agent paying a Cairn endpoint over HTTP with the official x402 Python client, unmodified: `pay_once`.

The client's spend controls allow only the assets it knows (USDC and the like) up to $1 by default; paying in
Cairn's RewardToken is client configuration: `allowed_assets` names the token on its network with a cap in
atomic units (README "Agents").
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

from eth_account import Account


@dataclass(frozen=True)
class PaidResponse:
    status: int
    body: Any  # the decoded JSON body (or the text when it is not JSON)
    settlement: dict[str, Any] | None  # the decoded PAYMENT-RESPONSE header (x402 SettleResponse)


def x402_client(key: str, *, asset: str, network: str, max_amount: int) -> Any:
    """The official `x402Client` with the EVM exact scheme for `key` on `network`, allowed to pay `asset` up
    to `max_amount` atomic units per payment."""
    from x402 import x402Client
    from x402.mechanisms.evm.exact.register import register_exact_evm_client

    client = x402Client()
    register_exact_evm_client(client, Account.from_key(key), networks=network)
    client.set_spend_controls(
        {"allowed_assets": [{"network": network, "asset": asset, "max_amount_per_payment": str(max_amount)}]}
    )
    return client


_OFFER_MOVED = {"invalid_exact_evm_payload_authorization_valid_before"}


def _required_error(resp: Any) -> str | None:
    """The `error` of a 402's PAYMENT-REQUIRED header (None when absent or unreadable)."""
    try:
        error = json.loads(base64.b64decode(resp.headers.get("PAYMENT-REQUIRED", ""))).get("error")
    except (ValueError, AttributeError):
        return None
    return str(error) if error is not None else None


def pay_once(
    url: str,
    key: str,
    *,
    asset: str,
    network: str = "eip155:31337",
    max_amount: int = 10**18,
    json_body: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> PaidResponse:
    """POST `json_body` to `url`, answering its 402 with one x402 exact payment signed by `key`
    (`x402HttpxClient`: it pays and retries once). When that payment is refused because the offer it was
    signed against predates a jump of the chain's clock
    (`invalid_exact_evm_payload_authorization_valid_before`: the 402 it gets back carries the corrected
    `maxTimeoutSeconds`), it pays once more."""
    from x402.http.clients import x402HttpxClient

    client = x402_client(key, asset=asset, network=network, max_amount=max_amount)

    async def go() -> PaidResponse:
        async with x402HttpxClient(client, timeout=timeout) as http:
            resp = await http.post(url, json=json_body or {})
            if resp.status_code == 402 and _required_error(resp) in _OFFER_MOVED:
                resp = await http.post(url, json=json_body or {})
        header = resp.headers.get("PAYMENT-RESPONSE")
        settlement = json.loads(base64.b64decode(header)) if header else None
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        return PaidResponse(resp.status_code, body, settlement)

    return asyncio.run(go())
