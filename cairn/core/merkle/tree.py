"""A built tree: OpenZeppelin's `standard-v1` node array, proofs derived from it on demand, dump and load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.core.errors import InvalidInputError
from cairn.core.merkle.leaves import (
    FORMAT,
    LEAF_ENCODING,
    hash_pair,
    leaf_hash,
    normalize_address,
    to_bytes32,
    to_hex,
)


@dataclass
class MerkleTree:
    """A built tree: `values` in input order, `tree` the node array, `tree_index[i]` where value i sits."""

    values: list[tuple[str, int]]
    tree: list[bytes]
    tree_index: list[int]
    _by_account: dict[str, int] | None = field(default=None, repr=False)

    @property
    def root(self) -> str:
        return to_hex(self.tree[0])

    @property
    def root_bytes(self) -> bytes:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.values)

    def proof_bytes(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self.values):
            raise InvalidInputError(f"leaf index {index} out of range")
        tree = self.tree
        # 1-based heap position p: the ancestors are p >> k, the sibling of q is q ^ 1 (array index q - 1)
        p = self.tree_index[index] + 1
        return [tree[((p >> k) ^ 1) - 1] for k in range(p.bit_length() - 1)]

    def proof(self, index: int) -> list[str]:
        """Proof for value `index` (input order), as `0x` hex strings, leaf to root (OZ `getProof`)."""
        return [to_hex(p) for p in self.proof_bytes(index)]

    def index_of(self, account: str) -> int:
        if self._by_account is None:
            self._by_account = {a: i for i, (a, _) in enumerate(self.values)}
        idx = self._by_account.get(normalize_address(account))
        if idx is None:
            raise InvalidInputError(f"no leaf for {account}")
        return idx

    def proof_for(self, account: str) -> tuple[int, list[str]]:
        """(cumulative amount, proof) for `account`."""
        idx = self.index_of(account)
        return self.values[idx][1], self.proof(idx)

    def leaf(self, index: int) -> bytes:
        return self.tree[self.tree_index[index]]

    def dump(self) -> dict[str, Any]:
        """OZ's `StandardMerkleTree.dump()` JSON (addresses lowercase, amounts as decimal strings)."""
        return {
            "format": FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": [to_hex(n) for n in self.tree],
            "values": [
                {"value": [a, str(n)], "treeIndex": ti}
                for (a, n), ti in zip(self.values, self.tree_index, strict=True)
            ],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> MerkleTree:
        """Rebuild from a dump (OZ's or ours) and check that the node array is consistent."""
        if data.get("format") != FORMAT or data.get("leafEncoding") != LEAF_ENCODING:
            raise InvalidInputError("not a standard-v1 [address,uint256] Merkle tree dump")
        tree = [to_bytes32(n) for n in data["tree"]]
        values = [(normalize_address(v["value"][0]), int(v["value"][1])) for v in data["values"]]
        tree_index = [int(v["treeIndex"]) for v in data["values"]]
        t = cls(values=values, tree=tree, tree_index=tree_index)
        t.validate()
        return t

    def validate(self) -> None:
        """Recompute every node; raise if any leaf or inner node does not match."""
        n = len(self.values)
        if len(self.tree) != max(2 * n - 1, 0):
            raise InvalidInputError("tree has the wrong number of nodes")
        for (a, amt), ti in zip(self.values, self.tree_index, strict=True):
            if self.tree[ti] != leaf_hash(a, amt):
                raise InvalidInputError(f"leaf hash mismatch at tree index {ti}")
        for i in range(n - 2, -1, -1):
            if self.tree[i] != hash_pair(self.tree[2 * i + 1], self.tree[2 * i + 2]):
                raise InvalidInputError(f"inner node mismatch at tree index {i}")


def process_proof(leaf: bytes, proof: Sequence[str | bytes]) -> bytes:
    node = leaf
    for p in proof:
        node = hash_pair(node, to_bytes32(p))
    return node


def verify(root: str | bytes, leaf: tuple[str, int] | bytes, proof: Sequence[str | bytes]) -> bool:
    """True when `proof` links `leaf` (an `(account, amount)` value or a leaf hash) to `root`."""
    lh = leaf if isinstance(leaf, bytes) else leaf_hash(normalize_address(leaf[0]), leaf[1])
    return process_proof(lh, proof) == to_bytes32(root)
