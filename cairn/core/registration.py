"""The registry's id and commitment arithmetic, the single Python source of it (mirrors
`ContributionRegistry.computeId`, `commitmentOf` and `batchDigest`;
`tests/integration/test_contracts_registry.py` checks them against the deployed contract).

Dataset registration is commit-reveal: first `commit([commitment(owner, content_hash, salt)])` (or one
commitment over `batch_digest(content_hashes)` for a batch), then, in a later block, the reveal
(`registerDataset*(..., salt)`). The salt keeps the content hash hidden until the reveal, so it must be secret
and unpredictable (`new_salt()`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

COMPUTE_DOMAIN = keccak(b"Cairn.ComputeContribution")
MAX_COMMITMENT_AGE = 7200  # ContributionRegistry.MAX_COMMITMENT_AGE: blocks an unrevealed commitment lives


def _b32(value: bytes | str) -> bytes:
    out = bytes.fromhex(value[2:] if value.startswith("0x") else value) if isinstance(value, str) else value
    if len(out) != 32:
        raise ValueError(f"expected 32 bytes, got {len(out)}")
    return out


def compute_id(provider: str, job_id: bytes | str) -> bytes:
    """`keccak256(abi.encode(COMPUTE_DOMAIN, provider, jobId))`: a compute contribution's id."""
    return keccak(encode(["bytes32", "address", "bytes32"], [COMPUTE_DOMAIN, provider, _b32(job_id)]))


def batch_digest(content_hashes: Sequence[bytes | str]) -> bytes:
    """`keccak256(abi.encodePacked(contentHashes))`: what one commitment for a batch hides."""
    return keccak(b"".join(_b32(h) for h in content_hashes))


def commitment(owner: str, content_hash_or_digest: bytes | str, salt: bytes | str) -> bytes:
    """`keccak256(abi.encode(owner, contentHashOrDigest, salt))`."""
    values = [owner, _b32(content_hash_or_digest), _b32(salt)]
    return keccak(encode(["address", "bytes32", "bytes32"], values))


def new_salt() -> bytes:
    """A fresh secret salt."""
    return secrets.token_bytes(32)


def _salt(salt: bytes | None) -> bytes:
    return salt if salt is not None else new_salt()


def dataset_calls(
    registry: Any,
    owner: str,
    content_hash: bytes | str,
    size: int,
    license_id: int,
    metadata_hash: bytes | str,
    uri: str,
    *,
    salt: bytes | None = None,
) -> tuple[Any, Any]:
    """(commit, reveal) web3 contract calls of a direct `registerDataset` by `owner`; send the reveal once the
    commit is mined."""
    s = _salt(salt)
    commit = registry.functions.commit([commitment(owner, content_hash, s)])
    reveal = registry.functions.registerDataset(
        _b32(content_hash), size, license_id, _b32(metadata_hash), uri, s
    )
    return commit, reveal


def dataset_list_calls(
    registry: Any, owner: str, items: Sequence[Sequence[Any]], *, salt: bytes | None = None
) -> tuple[Any, Any]:
    """(commit, reveal) of `registerDatasets(items, salt)` (items: `DatasetInput` tuples), one commitment."""
    s = _salt(salt)
    digest = batch_digest([item[0] for item in items])
    return (
        registry.functions.commit([commitment(owner, digest, s)]),
        registry.functions.registerDatasets([tuple(item) for item in items], s),
    )


def dataset_batch_calls(
    registry: Any, owner: str, batch: Sequence[Any], *, salt: bytes | None = None
) -> tuple[Any, Any]:
    """(commit, reveal) of `registerDatasetBatch(batch, salt)` (batch: a `DatasetBatch` tuple whose first
    field is the content hashes), one commitment for the whole batch."""
    s = _salt(salt)
    return (
        registry.functions.commit([commitment(owner, batch_digest(batch[0]), s)]),
        registry.functions.registerDatasetBatch(tuple(batch), s),
    )
