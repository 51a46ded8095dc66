"""`cairn.core.channel` against an independent EIP-712 implementation (eth_account's `encode_typed_data`),
and the client plugin's guard: a gateway cannot make it sign more than the price per request."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from cairn.agent.channel_client import CairnChannelScheme
from cairn.core.channel import ChannelConfig, ChannelDomain, recover, signature_bytes

ROUTER = "0x" + "12" * 20
AGENT = Account.from_key(keccak(text="agent"))
REQUIREMENT = {
    "scheme": "batch-settlement", "network": "eip155:8453", "asset": "0x" + "34" * 20, "amount": "1000",
    "payTo": ROUTER, "maxTimeoutSeconds": 300,
    "extra": {"receiverAuthorizer": "0x" + "56" * 20, "withdrawDelay": 900},
}  # fmt: skip
DOMAIN = {"name": "x402 Batch Settlement", "version": "1", "chainId": 8453, "verifyingContract": ROUTER}
CONFIG_TYPES = {
    "ChannelConfig": [
        {"name": n, "type": t}
        for n, t in [("payer", "address"), ("payerAuthorizer", "address"), ("receiver", "address"),
                     ("receiverAuthorizer", "address"), ("token", "address"), ("withdrawDelay", "uint40"),
                     ("salt", "bytes32")]
    ]
}  # fmt: skip
VOUCHER_TYPES = {
    "Voucher": [{"name": "channelId", "type": "bytes32"}, {"name": "maxClaimableAmount", "type": "uint128"}]
}


def _digest(types: dict, message: dict) -> bytes:
    s = encode_typed_data(domain_data=DOMAIN, message_types=types, message_data=message)
    return keccak(b"\x19" + s.version + s.header + s.body)


def test_channel_id_and_voucher_digest_match_eth_account() -> None:
    plugin = CairnChannelScheme(AGENT)
    config = plugin.channel_config(REQUIREMENT)
    message = dict(config.to_wire(), salt=bytes(32))
    expected_id = "0x" + _digest(CONFIG_TYPES, message).hex()
    domain = ChannelDomain(8453, ROUTER)
    assert domain.channel_id(config) == expected_id == plugin.channel_id(REQUIREMENT)
    digest = domain.voucher_digest(expected_id, 7000)
    assert digest == _digest(
        VOUCHER_TYPES, {"channelId": bytes.fromhex(expected_id[2:]), "maxClaimableAmount": 7000}
    )


def test_plugin_vouchers_are_cumulative_low_s_and_recover_to_the_agent() -> None:
    plugin = CairnChannelScheme(AGENT)
    first = plugin.create_payment_payload(REQUIREMENT)
    cid = first["voucher"]["channelId"]
    assert first["type"] == "voucher" and first["voucher"]["maxClaimableAmount"] == "1000"
    raw = signature_bytes(first["voucher"]["signature"])  # raises on high s
    assert recover(ChannelDomain(8453, ROUTER).voucher_digest(cid, 1000), raw) == AGENT.address.lower()
    plugin.record({"channelId": cid, "chargedCumulativeAmount": "1000"})
    assert plugin.create_payment_payload(REQUIREMENT)["voucher"]["maxClaimableAmount"] == "2000"


def test_a_gateway_cannot_inflate_the_next_voucher() -> None:
    plugin = CairnChannelScheme(AGENT)
    cid = plugin.create_payment_payload(REQUIREMENT)["voucher"]["channelId"]  # signed up to 1000
    plugin.record({"channelId": cid, "chargedCumulativeAmount": str(10**30)})  # a lying PAYMENT-RESPONSE
    assert plugin.charged[cid] == 1000
    assert plugin.create_payment_payload(REQUIREMENT)["voucher"]["maxClaimableAmount"] == "2000"
    other = CairnChannelScheme(AGENT)
    other.record({"channelId": cid, "chargedCumulativeAmount": "5000"})  # nothing signed for it: ignored
    assert other.charged == {}
    assert ChannelConfig.from_wire(first_config()) == plugin.channel_config(REQUIREMENT)


def first_config() -> dict:
    return CairnChannelScheme(AGENT).create_payment_payload(REQUIREMENT)["channelConfig"]
