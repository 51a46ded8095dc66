"""Verify a Sign-In with Ethereum message: every EIP-4361 check the server must make itself.

In order: the grammar (422 `siwe_malformed`); the domain and scheme against `CAIRN_API_SIWE_ORIGINS`, the URI
under that origin, the chain id, the times (Issued At not ahead of the clock, Expiration Time not passed,
Not Before reached); the nonce (issued here, unused, unexpired); the signature: an EOA's EIP-191
`personal_sign` recovered to the message's address, else, when the address has code, the contract wallet's
EIP-1271 `isValidSignature(hash, signature)` on this chain, with bounded gas. Each refusal is a 401 whose
`code` names the check. The nonce is consumed with the session (`store.open_session`), so a replay fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from sqlalchemy import Engine
from web3 import Web3

from backend.api.auth import eip4361, store
from backend.api.chain import Chain
from backend.api.relay.verify import EIP1271_ABI, EIP1271_MAGIC
from backend.api.settings import ApiSettings
from cairn.core.errors import InvalidInputError, SiweRejectedError


@dataclass(frozen=True)
class Verified:
    message: eip4361.SiweMessage
    address: str  # checksummed
    expires_at: int | None  # the message's Expiration Time, unix seconds
    wallet: bool  # signed through EIP-1271


def _origin_for(settings: ApiSettings, msg: eip4361.SiweMessage) -> str:
    for origin in settings.siwe_origins():
        parts = urlsplit(origin)
        if parts.netloc.lower() == msg.domain.lower() and (msg.scheme is None or msg.scheme == parts.scheme):
            return origin
    raise SiweRejectedError(
        "siwe_domain_mismatch",
        f"the message asks to sign in to {msg.domain!r}; this server is "
        + ", ".join(repr(urlsplit(o).netloc) for o in settings.siwe_origins()),
        domain=msg.domain,
    )


def check_message(
    msg: eip4361.SiweMessage, *, settings: ApiSettings, chain_id: int, now: int
) -> tuple[int | None]:
    """The checks that need no database or chain; returns (Expiration Time in unix seconds or None,)."""
    origin = _origin_for(settings, msg)
    if not (msg.uri == origin or msg.uri.startswith(origin + "/")):
        raise SiweRejectedError(
            "siwe_uri_mismatch", f"the message's URI {msg.uri!r} is not under {origin!r}", uri=msg.uri
        )
    if msg.chain_id != chain_id:
        raise SiweRejectedError(
            "siwe_chain_mismatch",
            f"the message is for chain {msg.chain_id}; this server signs in on chain {chain_id}",
            chain_id=msg.chain_id,
        )
    issued = eip4361.timestamp(msg.issued_at)
    if issued > now + settings.api_siwe_clock_skew_s:
        raise SiweRejectedError(
            "siwe_issued_in_future", f"the message was issued at {msg.issued_at}, in the future", now=now
        )
    expires = None
    if msg.expiration_time is not None:
        expires = eip4361.timestamp(msg.expiration_time)
        if expires <= now:
            raise SiweRejectedError("siwe_expired", f"the message expired at {msg.expiration_time}", now=now)
    if msg.not_before is not None and eip4361.timestamp(msg.not_before) > now:
        raise SiweRejectedError(
            "siwe_not_yet_valid", f"the message is not valid before {msg.not_before}", now=now
        )
    if not Web3.is_checksum_address(msg.address):
        raise SiweRejectedError(
            "siwe_address_checksum", f"{msg.address} is not EIP-55 checksummed", address=msg.address
        )
    return (expires,)


def verify(
    text: str, signature_hex: str, *, settings: ApiSettings, chain: Chain, engine: Engine,
    now: int | None = None,
) -> Verified:  # fmt: skip
    """Every check but consuming the nonce (the session does that, atomically)."""
    t = int(time.time()) if now is None else now
    msg = eip4361.parse(text)
    (expires,) = check_message(msg, settings=settings, chain_id=chain.chain_id, now=t)
    state = store.nonce_state(engine, msg.nonce, now=t)
    if state != "usable":
        what = {"unknown": "was not issued by this server", "used": "was used already",
                "expired": "has expired"}[state]  # fmt: skip
        raise SiweRejectedError(f"siwe_nonce_{state}", f"the nonce {msg.nonce} {what}: ask for a new one")
    signature = _signature_bytes(signature_hex)
    wallet = _verify_signature(chain, text=text, address=msg.address, signature=signature,
                               gas=settings.api_relay.verify_gas)  # fmt: skip
    return Verified(message=msg, address=msg.address, expires_at=expires, wallet=wallet)


def _signature_bytes(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise InvalidInputError("signature must be 0x-prefixed hex", field="signature") from None
    if not raw:
        raise InvalidInputError("signature is empty", field="signature")
    return raw


def _verify_signature(chain: Chain, *, text: str, address: str, signature: bytes, gas: int) -> bool:
    """True if a contract wallet (EIP-1271) signed, False for an EOA; SiweRejectedError otherwise."""
    signable = encode_defunct(text=text)
    signer = None
    if len(signature) == 65:
        try:
            signer = Account.recover_message(signable, signature=signature)
        except Exception:  # a malformed signature: maybe a contract wallet's, checked below
            signer = None
    if signer is not None and signer.lower() == address.lower():
        return False
    w3 = chain.w3
    if len(w3.eth.get_code(Web3.to_checksum_address(address))) > 0:
        wallet = w3.eth.contract(address=Web3.to_checksum_address(address), abi=EIP1271_ABI)
        try:
            answer = wallet.functions.isValidSignature(_hash_eip191_message(signable), signature).call(
                {"gas": gas}
            )
        except Exception:  # reverted, out of gas, or not an EIP-1271 wallet
            answer = b""
        if bytes(answer) == EIP1271_MAGIC:
            return True
        raise SiweRejectedError(
            "siwe_signature_invalid",
            f"{address} is a contract wallet whose isValidSignature did not accept the signature "
            f"(within {gas} gas)",
            address=address,
        )
    raise SiweRejectedError(
        "siwe_signature_invalid",
        f"the signature is not {address}'s" + (f"; it was made by {signer}" if signer else ""),
        address=address,
    )
