"""The client plugin's resync from a corrective 402 (`CairnChannelScheme.resync`): it takes the gateway's
charged total only for its own channel, on a stale-voucher error, and only up to what a voucher signed by its
own key already covers; then its next voucher is that total plus the price."""

from __future__ import annotations

import copy
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from cairn.agent.channel_client import CairnChannelScheme
from cairn.core.channel import sign_digest

ROUTER = "0x" + "12" * 20
AGENT = Account.from_key(keccak(text="agent"))
REQUIREMENT = {
    "scheme": "batch-settlement", "network": "eip155:8453", "asset": "0x" + "34" * 20, "amount": "1000",
    "payTo": ROUTER, "maxTimeoutSeconds": 300,
    "extra": {"receiverAuthorizer": "0x" + "56" * 20, "withdrawDelay": 900},
}  # fmt: skip


def _corrective(plugin: CairnChannelScheme, charged: int, signed: int | None, key: bytes) -> dict[str, Any]:
    cid = plugin.channel_id(REQUIREMENT)
    requirement = copy.deepcopy(REQUIREMENT)
    requirement["extra"]["channelState"] = {
        "channelId": cid, "balance": "100000", "totalClaimed": "0", "withdrawRequestedAt": 0,
        "refundNonce": "0", "chargedCumulativeAmount": str(charged),
    }  # fmt: skip
    if signed is not None:
        digest = plugin.domain(REQUIREMENT).voucher_digest(cid, signed)
        requirement["extra"]["voucherState"] = {
            "signedMaxClaimable": str(signed),
            "signature": sign_digest(key, digest),
        }
    return {
        "x402Version": 2,
        "error": "invalid_batch_settlement_evm_voucher_amount",
        "accepts": [requirement],
    }


def _next_ceiling(plugin: CairnChannelScheme) -> int:
    return int(plugin.create_payment_payload(REQUIREMENT)["voucher"]["maxClaimableAmount"])


def test_resyncs_to_a_total_its_own_voucher_covers() -> None:
    plugin = CairnChannelScheme(AGENT)
    assert plugin.resync(_corrective(plugin, 5000, 5000, bytes(AGENT.key))) is True
    assert _next_ceiling(plugin) == 6000


def test_the_official_sdk_error_name_is_understood_too() -> None:
    plugin = CairnChannelScheme(AGENT)
    body = _corrective(plugin, 3000, 4000, bytes(AGENT.key))
    body["error"] = "invalid_batch_settlement_evm_cumulative_amount_mismatch"
    assert plugin.resync(body) is True and _next_ceiling(plugin) == 4000


def test_refuses_a_voucher_of_another_key_a_total_above_it_or_another_error() -> None:
    plugin = CairnChannelScheme(AGENT)
    other = Account.create()
    assert plugin.resync(_corrective(plugin, 5000, 5000, bytes(other.key))) is False
    assert plugin.resync(_corrective(plugin, 6000, 5000, bytes(AGENT.key))) is False  # above what it signed
    wrong = _corrective(plugin, 5000, 5000, bytes(AGENT.key))
    wrong["error"] = "invalid_batch_settlement_evm_insufficient_balance"
    assert plugin.resync(wrong) is False
    foreign = _corrective(plugin, 5000, 5000, bytes(AGENT.key))
    foreign["accepts"][0]["extra"]["channelState"]["channelId"] = "0x" + "ab" * 32  # not its channel
    assert plugin.resync(foreign) is False
    assert _next_ceiling(plugin) == 1000  # nothing was taken


def test_without_a_voucher_state_only_what_it_signed_itself() -> None:
    plugin = CairnChannelScheme(AGENT)
    assert plugin.resync(_corrective(plugin, 1000, None, bytes(AGENT.key))) is False  # signed nothing yet
    for _ in range(3):
        _next_ceiling(plugin)  # signs 1000 each time: its state was never updated by a response
    assert plugin.resync(_corrective(plugin, 1000, None, bytes(AGENT.key))) is True
    assert _next_ceiling(plugin) == 2000
