"""Datasets registered in one `registerDatasetBatch` read back through the API one by one: the indexer stores
the batch log one row per item, `v_datasets` unions them with single registrations, and keyset pagination
walks inside a batch (cursor `<block>-<log index>-<item>`)."""

from __future__ import annotations

from support.api_stack import Stack, h32

from cairn.core import eip712
from cairn.core.registration import dataset_batch_calls


def test_batch_items_listed_and_paginated_one_by_one(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    registry = stack.contract("ContributionRegistry")
    owner = stack.payer  # owns no dataset in the seeded stack
    batch = eip712.DatasetBatch(
        content_hashes=tuple(h32(f"api-batch-{i}") for i in range(5)),
        sizes=tuple(700 + i for i in range(5)),
        license_id=4,
        metadata_hash=h32("api-batch-manifest"),
        uri="ipfs://bafyapibatch",
    )
    for step in dataset_batch_calls(registry, owner.address, batch.as_tuple()):  # commit, then reveal
        stack.transact(owner, step)
    stack.index()

    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"owner": owner.address, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = stack.api.get("/v1/datasets", params=params).json()
        seen += [d["content_hash"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(batch.content_hashes))  # newest first: the last item of the batch first

    d = stack.api.get(f"/v1/datasets/{batch.content_hashes[2]}").json()
    assert d["owner"] == owner.address
    assert (d["size"], d["license_id"], d["metadata_hash"], d["uri"]) == (
        702,
        4,
        batch.metadata_hash,
        "ipfs://bafyapibatch",
    )
    account = stack.api.get(f"/v1/accounts/{owner.address}").json()
    assert account["dataset_count"] == 5
