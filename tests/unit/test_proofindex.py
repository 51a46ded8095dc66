"""The proof index of an allocation file (backend/rewards/proofindex.py): the same amounts and proofs as the
tree, read by offset; a damaged index is refused and rebuilt once from its (checked) allocation file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backend.rewards import publication
from backend.rewards.proofindex import BadIndexError, ProofIndex, index_path, write_index
from cairn.core import merkle
from cairn.core.policy import load_policy


def _leaves(rng: random.Random, n: int) -> dict[str, int]:
    return {"0x" + rng.randbytes(20).hex(): rng.randrange(2**256) for _ in range(n)}


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
def test_lookups_match_the_tree(tmp_path: Path, n: int) -> None:
    rng = random.Random(n)
    tree = merkle.build_tree(sorted(_leaves(rng, n).items()))
    path = tmp_path / "0xab.idx"
    write_index(path, allocation="0xab.json", tree=tree, policy=None)
    index = ProofIndex.open(path)
    assert index.root == tree.root and index.count == n and index.policy is None
    for account, amount in rng.sample(tree.values, min(n, 50)):
        got = index.lookup(account)
        assert got == (amount, tree.proof_for(account)[1])
        assert merkle.verify(tree.root, (account, amount), got[1])
    assert index.lookup("0x" + "00" * 20) is None and index.lookup("0x" + "ff" * 20) is None


def test_a_damaged_index_is_rebuilt_once_from_its_file(tmp_path: Path) -> None:
    rng = random.Random(5)
    pub = publication.build_publication(
        epoch=0, end_block=1, chain_id=31337, distributor="0x" + "11" * 20, policy=load_policy("v1"),
        previous={}, epoch_amounts=_leaves(rng, 300),
    )  # fmt: skip
    name, uri = publication.store_publication(tmp_path, pub)
    sidecar = index_path(publication.allocations_dir(tmp_path) / name)
    assert publication.open_index(tmp_path, uri).policy == pub.policy.canonical_json()
    sidecar.write_bytes(sidecar.read_bytes()[:-1])  # truncated
    with pytest.raises(BadIndexError):
        ProofIndex.open(sidecar)
    before = dict(publication.COUNTERS)
    rebuilt = publication.open_index(tmp_path, uri)
    assert publication.COUNTERS["index_builds"] == before.get("index_builds", 0) + 1
    assert publication.COUNTERS["tree_validations"] == before.get("tree_validations", 0) + 1
    account, amount = pub.tree.values[17]
    assert rebuilt.root == pub.root and rebuilt.lookup(account) == (amount, pub.tree.proof_for(account)[1])
    assert publication.open_index(tmp_path, name).root == pub.root  # by name: opened, not rebuilt
    assert publication.COUNTERS["index_builds"] == before.get("index_builds", 0) + 1
