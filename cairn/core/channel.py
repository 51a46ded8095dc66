"""x402 `batch-settlement` channels on the PaymentRouter: the one Python definition of the channel id, the
voucher digest and voucher signatures, shared by the gateway (`backend.api.x402.channel`) and the agents'
client plugin (`cairn.agent.channel_client`).

EIP-712 domain ("x402 Batch Settlement", "1", chainId, verifyingContract = the PaymentRouter), types
`ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer, address
token,uint40 withdrawDelay,bytes32 salt)` and `Voucher(bytes32 channelId,uint128 maxClaimableAmount)`, exactly
as `PaymentRouter.channelId` / `voucherDigest` (tests/integration/test_channel_scheme.py compares them with
the deployed router). The domain separator is computed once per (chain, router), so a voucher digest is two
keccak256 calls; signatures are recovered with libsecp256k1 (coincurve), high-s rejected as OpenZeppelin's
ECDSA does."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import coincurve
from eth_utils.crypto import keccak

DOMAIN_NAME = "x402 Batch Settlement"
DOMAIN_VERSION = "1"
SCHEME = "batch-settlement"
MIN_WITHDRAW_DELAY = 15 * 60
MAX_WITHDRAW_DELAY = 30 * 24 * 3600
ZERO_ADDRESS = "0x" + "00" * 20

_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
CHANNEL_CONFIG_TYPEHASH = keccak(
    text="ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,"
    "address token,uint40 withdrawDelay,bytes32 salt)"
)
VOUCHER_TYPEHASH = keccak(text="Voucher(bytes32 channelId,uint128 maxClaimableAmount)")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2
_UINT128 = 2**128


class VoucherFormatError(ValueError):
    """A channel config, voucher or signature that is malformed (not a signature mismatch)."""


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith(("0x", "0X")):
        raise VoucherFormatError(f"{what} must be a 0x-prefixed 20-byte address")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise VoucherFormatError(f"{what} must be a 0x-prefixed 20-byte address") from None
    return "0x" + value[2:].lower()


def _bytes32(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith(("0x", "0X")):
        raise VoucherFormatError(f"{what} must be a 0x-prefixed 32-byte hex string")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise VoucherFormatError(f"{what} must be a 0x-prefixed 32-byte hex string") from None
    return "0x" + value[2:].lower()


def _word(value: bytes | int) -> bytes:
    return value.to_bytes(32, "big") if isinstance(value, int) else value.rjust(32, b"\x00")


@dataclass(frozen=True)
class ChannelConfig:
    """x402 `ChannelConfig`; addresses and salt `0x`-lowercase."""

    payer: str
    payer_authorizer: str
    receiver: str
    receiver_authorizer: str
    token: str
    withdraw_delay: int
    salt: str

    @classmethod
    def from_wire(cls, data: object) -> ChannelConfig:
        """The payload's `channelConfig` object (x402 field names)."""
        if not isinstance(data, dict):
            raise VoucherFormatError("channelConfig must be an object")
        delay = data.get("withdrawDelay")
        if isinstance(delay, str) and delay.isdigit():
            delay = int(delay)
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay < 2**40:
            raise VoucherFormatError("channelConfig.withdrawDelay must be a uint40")
        return cls(
            payer=_address(data.get("payer"), "channelConfig.payer"),
            payer_authorizer=_address(data.get("payerAuthorizer"), "channelConfig.payerAuthorizer"),
            receiver=_address(data.get("receiver"), "channelConfig.receiver"),
            receiver_authorizer=_address(data.get("receiverAuthorizer"), "channelConfig.receiverAuthorizer"),
            token=_address(data.get("token"), "channelConfig.token"),
            withdraw_delay=delay,
            salt=_bytes32(data.get("salt"), "channelConfig.salt"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "payer": self.payer, "payerAuthorizer": self.payer_authorizer, "receiver": self.receiver,
            "receiverAuthorizer": self.receiver_authorizer, "token": self.token,
            "withdrawDelay": self.withdraw_delay, "salt": self.salt,
        }  # fmt: skip

    def as_tuple(self) -> tuple[str, str, str, str, str, int, bytes]:
        """The Solidity struct as web3 encodes it (`claim`, `deposit`, `initiateWithdraw`)."""
        from eth_utils.address import to_checksum_address

        return (
            to_checksum_address(self.payer), to_checksum_address(self.payer_authorizer),
            to_checksum_address(self.receiver), to_checksum_address(self.receiver_authorizer),
            to_checksum_address(self.token), self.withdraw_delay, bytes.fromhex(self.salt[2:]),
        )  # fmt: skip

    def struct_hash(self) -> bytes:
        return keccak(
            CHANNEL_CONFIG_TYPEHASH
            + b"".join(
                _word(bytes.fromhex(a[2:]))
                for a in (
                    self.payer,
                    self.payer_authorizer,
                    self.receiver,
                    self.receiver_authorizer,
                    self.token,
                )
            )
            + _word(self.withdraw_delay)
            + bytes.fromhex(self.salt[2:])
        )


class ChannelDomain:
    """The router's EIP-712 domain with its separator precomputed."""

    def __init__(self, chain_id: int, router: str) -> None:
        self.chain_id = chain_id
        self.router = _address(router, "router")
        self.separator = keccak(
            _DOMAIN_TYPEHASH
            + keccak(text=DOMAIN_NAME)
            + keccak(text=DOMAIN_VERSION)
            + _word(chain_id)
            + _word(bytes.fromhex(self.router[2:]))
        )

    def _typed(self, struct_hash: bytes) -> bytes:
        return keccak(b"\x19\x01" + self.separator + struct_hash)

    def channel_id(self, config: ChannelConfig) -> str:
        return "0x" + self._typed(config.struct_hash()).hex()

    def voucher_digest(self, channel_id: str, max_claimable: int) -> bytes:
        if not 0 <= max_claimable < _UINT128:
            raise VoucherFormatError("maxClaimableAmount must be a uint128")
        return self._typed(keccak(VOUCHER_TYPEHASH + bytes.fromhex(channel_id[2:]) + _word(max_claimable)))


def parse_amount(value: object, what: str) -> int:
    """A decimal string (x402 wire form) or an int, as a uint128."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 39:
        amount = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = value
    else:
        raise VoucherFormatError(f"{what} must be a decimal string")
    if not 0 <= amount < _UINT128:
        raise VoucherFormatError(f"{what} must be a uint128")
    return amount


def signature_bytes(signature: object) -> bytes:
    """A 65-byte `r || s || v` hex signature with v in {27, 28} (or {0, 1}) and low s."""
    if not isinstance(signature, str) or not signature.startswith("0x") or len(signature) != 132:
        raise VoucherFormatError("voucher.signature must be a 65-byte 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError:
        raise VoucherFormatError("voucher.signature must be a 65-byte 0x-prefixed hex string") from None
    if int.from_bytes(raw[32:64], "big") > _HALF_N:
        raise VoucherFormatError("voucher.signature has a high s value (malleable); sign with low s")
    if raw[64] not in (0, 1, 27, 28):
        raise VoucherFormatError("voucher.signature has an invalid v")
    return raw


def recover(digest: bytes, raw: bytes) -> str | None:
    """The `0x`-lowercase signer of `digest`, or None when the signature recovers to no key."""
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    try:
        pub = coincurve.PublicKey.from_signature_and_message(raw[:64] + bytes([v]), digest, hasher=None)
    except (ValueError, TypeError):
        return None
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()


@functools.lru_cache(maxsize=64)
def _signing_key(private_key: bytes) -> coincurve.PrivateKey:
    """The parsed key, kept for the agents that sign a voucher per request (parsing is ~40% of a signature);
    the caller holds the same key bytes anyway."""
    return coincurve.PrivateKey(private_key)


def sign_digest(private_key: bytes, digest: bytes) -> str:
    """`r || s || v` (v 27/28, low s: libsecp256k1 always normalises) over an EIP-712 digest."""
    sig = _signing_key(bytes(private_key)).sign_recoverable(digest, hasher=None)
    return "0x" + sig[:64].hex() + bytes([sig[64] + 27]).hex()
