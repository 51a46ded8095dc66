"""Leaves: `["address", "uint256"]` values, their 64-byte `abi.encode` by hand, leaf and pair hashes."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.core.errors import InvalidInputError
from cairn.core.merkle.keccak import keccak256, leaf_hasher

FORMAT = "standard-v1"
LEAF_ENCODING = ["address", "uint256"]
MAX_UINT256 = (1 << 256) - 1
_ZERO12 = bytes(12)


def normalize_address(address: str) -> str:
    a = address.lower()
    if len(a) != 42 or not a.startswith("0x"):
        raise InvalidInputError(f"not an address: {address!r}")
    try:
        if len(bytes.fromhex(a[2:])) != 20:  # fromhex skips whitespace
            raise ValueError
    except ValueError:
        raise InvalidInputError(f"not an address: {address!r}") from None
    return a


def encode_leaf(address: str, amount: int) -> bytes:
    """abi.encode(address, uint256) by hand: 12 zero bytes, 20 address bytes, 32-byte big-endian amount."""
    return _ZERO12 + bytes.fromhex(address[2:]) + amount.to_bytes(32, "big")


def leaf_hash(address: str, amount: int) -> bytes:
    return leaf_hasher()(encode_leaf(address, amount))


def hash_leaves(values: Sequence[tuple[str, int]]) -> list[bytes]:
    h2 = leaf_hasher()
    z = _ZERO12
    fromhex = bytes.fromhex
    return [h2(z + fromhex(a[2:]) + n.to_bytes(32, "big")) for a, n in values]


def hash_leaves_chunk(values: list[tuple[str, int]]) -> bytes:
    return b"".join(hash_leaves(values))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a < b else b + a)


def to_bytes32(x: str | bytes) -> bytes:
    if isinstance(x, bytes):
        b = x
    else:
        s = x[2:] if x.startswith("0x") else x
        b = bytes.fromhex(s)
    if len(b) != 32:
        raise InvalidInputError("expected 32 bytes")
    return b


def to_hex(b: bytes) -> str:
    return "0x" + b.hex()
