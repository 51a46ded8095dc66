"""Parsers for path/query/body values; each rejects bad input with one specific InvalidInputError."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path
from web3 import Web3

from cairn.core.errors import InvalidInputError

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
EPOCH_MAX = 2**63 - 1  # epochs are BIGINT in the backend's tables (and SQLite binds at most 2^63-1)
# An epoch in a path: its range declared in the OpenAPI document, checked by `parse_epoch` (one message).
EpochPath = Annotated[int, Path(json_schema_extra={"minimum": 0, "maximum": EPOCH_MAX})]


def parse_address(value: str, *, field: str = "address") -> str:
    """Return the checksummed address; reject non-hex, wrong length and wrong mixed-case checksums."""
    if not isinstance(value, str) or not _HEX.match(value):
        raise InvalidInputError(f"{field} must be a 0x-prefixed hex address, got {value!r}", field=field)
    if len(value) != 42:
        raise InvalidInputError(
            f"{field} must be 20 bytes (42 characters with 0x), got {len(value)} characters", field=field
        )
    body = value[2:]
    mixed = body != body.lower() and body != body.upper()
    if mixed and not Web3.is_checksum_address(value):
        raise InvalidInputError(f"{field} {value} has an invalid EIP-55 checksum", field=field)
    return str(Web3.to_checksum_address(value))


def parse_bytes32(value: str, *, field: str) -> str:
    """Return 0x-lowercase 32-byte hex."""
    return parse_hex(value, field=field, size=32)


def parse_hex(value: str, *, field: str, size: int) -> str:
    if not isinstance(value, str) or not _HEX.match(value):
        raise InvalidInputError(f"{field} must be 0x-prefixed hex, got {value!r}", field=field)
    n = (len(value) - 2) / 2
    if n != size:
        raise InvalidInputError(
            f"{field} must be {size} bytes ({2 + 2 * size} characters with 0x), got {n:g} bytes", field=field
        )
    return value.lower()


def parse_epoch(value: int) -> int:
    if value < 0 or value > EPOCH_MAX:
        raise InvalidInputError(f"epoch must be between 0 and 2^63-1, got {value}", field="epoch")
    return value
