"""Publication: cumulative leaves, refused decreases, content-addressed allocation file with the OZ tree."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from backend.rewards.publication import (
    build_publication,
    cumulative_from_document,
    read_allocation_file,
    write_allocation_file,
)
from cairn.core import merkle
from cairn.core.errors import InvalidInputError, PublishRefusedError
from cairn.core.policy import load_policy

A, B, C = (f"0x{i:040x}" for i in (0xA, 0xB, 0xC))


def test_file_is_content_addressed_and_proofs_verify(tmp_path: Path) -> None:
    policy = load_policy("v1")
    pub = build_publication(
        epoch=2, end_block=99, chain_id=31337, distributor="0x" + "11" * 20, policy=policy,
        previous={A: 5, B: 1}, epoch_amounts={A: 10, C: 7},
    )  # fmt: skip
    assert pub.cumulative == {A: 15, B: 1, C: 7}
    assert pub.total_cumulative == 23 and pub.epoch_total == 17
    blob = pub.to_bytes()
    assert blob == orjson.dumps(pub.document(), option=orjson.OPT_SORT_KEYS)  # the fast writer is exact
    name, uri = write_allocation_file(tmp_path, blob)
    assert uri == f"allocations/{name}"
    assert write_allocation_file(tmp_path, blob) == (name, uri)  # idempotent
    doc = read_allocation_file(tmp_path, name)
    assert doc["root"] == pub.root and doc["policy_hash"] == policy.content_hash()
    assert cumulative_from_document(doc) == pub.cumulative
    tree = merkle.MerkleTree.load(doc["tree"])
    for account, amount in pub.cumulative.items():
        got, proof = tree.proof_for(account)
        assert got == amount and merkle.verify(pub.root, (account, amount), proof)
    (tmp_path / "rewards" / name).write_bytes(blob + b" ")
    with pytest.raises(InvalidInputError, match="content hash"):
        read_allocation_file(tmp_path, name)


def test_publication_refuses_dropping_a_previous_account() -> None:
    with pytest.raises(PublishRefusedError):
        from backend.rewards.allocation import check_publishable

        check_publishable({A: 5}, [(B, 1)])
    empty = build_publication(
        epoch=0, end_block=1, chain_id=1, distributor="0x" + "11" * 20, policy=load_policy("v1"),
        previous={}, epoch_amounts={},
    )  # fmt: skip
    assert empty.cumulative == {load_policy("v1").treasury: 0} and int(empty.root, 16) != 0
