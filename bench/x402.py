"""Signed inputs for the PaymentRouter: x402 batch-settlement channels (EIP-712 ChannelConfig and Voucher)
and x402 `exact` payments (EIP-3009 TransferWithAuthorization, what the official x402 clients sign)."""

from __future__ import annotations

from typing import Any

from eth_account import Account

from cairn.core import eip712

CHANNEL_DOMAIN_NAME = "x402 Batch Settlement"
CHANNEL_DOMAIN_VERSION = "1"
CHANNEL_CONFIG_FIELDS = [
    {"name": "payer", "type": "address"},
    {"name": "payerAuthorizer", "type": "address"},
    {"name": "receiver", "type": "address"},
    {"name": "receiverAuthorizer", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "withdrawDelay", "type": "uint40"},
    {"name": "salt", "type": "bytes32"},
]
VOUCHER_FIELDS = [{"name": "channelId", "type": "bytes32"}, {"name": "maxClaimableAmount", "type": "uint128"}]


def channel_domain(chain_id: int, router: str) -> dict[str, Any]:
    return {
        "name": CHANNEL_DOMAIN_NAME,
        "version": CHANNEL_DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": router,
    }


def channel_config(
    payer: str, payer_authorizer: str, router: str, gateway: str, token: str
) -> dict[str, Any]:
    return {
        "payer": payer,
        "payerAuthorizer": payer_authorizer,
        "receiver": router,
        "receiverAuthorizer": gateway,
        "token": token,
        "withdrawDelay": 900,
        "salt": b"\x00" * 32,
    }


def config_tuple(cfg: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(cfg[f["name"]] for f in CHANNEL_CONFIG_FIELDS)


def channel_id(chain_id: int, router: str, cfg: dict[str, Any]) -> bytes:
    """x402 channel id: the EIP-712 hash of the ChannelConfig under the router's domain."""
    typed = {
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, "ChannelConfig": CHANNEL_CONFIG_FIELDS},
        "primaryType": "ChannelConfig",
        "domain": channel_domain(chain_id, router),
        "message": cfg,
    }
    return eip712.digest(typed)


def voucher_typed_data(chain_id: int, router: str, cid: bytes, max_claimable: int) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, "Voucher": VOUCHER_FIELDS},
        "primaryType": "Voucher",
        "domain": channel_domain(chain_id, router),
        "message": {"channelId": cid, "maxClaimableAmount": max_claimable},
    }


def split_sig(sig: bytes) -> tuple[int, bytes, bytes]:
    return sig[64], sig[:32], sig[32:64]


def exact_payment(
    *,
    key: str,
    token_name: str,
    chain_id: int,
    token: str,
    router: str,
    value: int,
    nonce: bytes,
    now: int,
    model_id: bytes,
    valid_before: int | None = None,
) -> tuple[Any, ...]:
    """A signed EIP-3009 TransferWithAuthorization to the router, as the router's `ExactPayment` tuple; valid
    until `valid_before` (default: an hour after `now`)."""
    payer = Account.from_key(key).address
    valid_after = 0
    valid_before = now + 3600 if valid_before is None else valid_before
    typed = eip712.transfer_authorization_typed_data(
        token_name=token_name,
        chain_id=chain_id,
        verifying_contract=token,
        from_=payer,
        to=router,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce="0x" + nonce.hex(),
    )
    v, r, s = split_sig(eip712.sign_typed_data(key, typed))
    return (payer, value, valid_after, valid_before, nonce, v, r, s, model_id)
