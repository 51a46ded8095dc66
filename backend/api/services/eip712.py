"""Typed data a wallet signs for a relayed registration, with the owner's current nonce."""

from __future__ import annotations

import time
from typing import Any

from backend.api.chain import Chain
from cairn.core.eip712 import Dataset, register_dataset_typed_data

DEFAULT_VALIDITY = 3600


def register_dataset_request(
    *,
    chain: Chain,
    owner: str,
    content_hash: str | None,
    size: int | None,
    license_id: int | None,
    metadata_hash: str | None,
    uri: str | None,
    deadline: int | None,
) -> dict[str, Any]:
    registry = chain.contract("ContributionRegistry")
    nonce = int(registry.functions.nonces(owner).call())
    if deadline is None:
        head = chain.latest_block()
        deadline = max(int(head["timestamp"]), int(time.time())) + DEFAULT_VALIDITY
    zero = "0x" + "00" * 32
    dataset = Dataset(
        content_hash=content_hash or zero,
        size=size or 0,
        license_id=license_id or 0,
        metadata_hash=metadata_hash or zero,
        uri=uri or "",
    )
    return register_dataset_typed_data(
        chain_id=chain.chain_id,
        verifying_contract=registry.address,
        dataset=dataset,
        owner=owner,
        nonce=nonce,
        deadline=deadline,
    )
