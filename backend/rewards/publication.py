"""Publication of an epoch: cumulative leaves, the Merkle tree, and the content-addressed allocation file.

The allocation file (JSON, `format: cairn-allocation-v1`) holds the epoch, end block, chain, distributor,
policy (and its hash), this epoch's amounts, the totals and the full OpenZeppelin `standard-v1` tree dump
of the cumulative leaves (from which any proof is derived: `StandardMerkleTree.load(tree).getProof(i)` in JS,
`cairn.core.merkle.MerkleTree.load(tree).proof_for(account)` in Python).

Files are stored as `<data_dir>/rewards/0x<keccak256 of the file bytes>.json` and never
rewritten; the on-chain `uri` of the root is `allocations/0x<keccak>.json`, served by the API under the same
relative path. Anyone can check a downloaded file against its name, its root against the chain, and
recompute both from the chain alone (the audit path).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from backend.rewards.allocation import check_publishable, cumulate
from cairn.core.errors import InvalidInputError, NotFoundError
from cairn.core.merkle import MerkleTree, build_tree, keccak256
from cairn.core.policy import Policy

FORMAT = "cairn-allocation-v1"
SUBDIR = Path("rewards")


@dataclass
class Publication:
    epoch: int
    end_block: int
    chain_id: int
    distributor: str
    policy: Policy
    epoch_amounts: dict[str, int]
    cumulative: dict[str, int]
    tree: MerkleTree

    @property
    def root(self) -> str:
        return self.tree.root

    @property
    def total_cumulative(self) -> int:
        return sum(self.cumulative.values())

    @property
    def epoch_total(self) -> int:
        return sum(self.epoch_amounts.values())

    def document(self, *, with_tree: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "distributor": self.distributor.lower(),
            "epoch": self.epoch,
            "end_block": self.end_block,
            "policy_hash": self.policy.content_hash(),
            "policy": self.policy.model_dump(mode="json"),
            "root": self.root,
            "epoch_total": str(self.epoch_total),
            "total_cumulative": str(self.total_cumulative),
            "epoch_amounts": {a: str(v) for a, v in sorted(self.epoch_amounts.items())},
        }
        if with_tree:
            doc["tree"] = self.tree.dump()
        return doc

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes in pieces: `document()` as JSON with sorted keys ("tree" sorts last), the large
        tree written without intermediate dicts. Joined, equal to orjson.dumps(document(), OPT_SORT_KEYS)."""
        body = orjson.dumps(self.document(with_tree=False), option=orjson.OPT_SORT_KEYS)
        yield body[:-1] + b',"tree":{"format":"standard-v1","leafEncoding":["address","uint256"],"tree":['
        t = self.tree
        step = 65_536
        for i in range(0, len(t.tree), step):
            # every node is 32 bytes: hex the whole slice at once, a separator every 64 hex digits
            hx = b"".join(t.tree[i : i + step]).hex("|", 32).replace("|", '","0x')
            yield ('"0x' if i == 0 else ',"0x').encode() + hx.encode() + b'"'
        yield b'],"values":['
        for i in range(0, len(t.values), step):
            part = ",".join(
                f'{{"treeIndex":{ti},"value":["{a}","{v}"]}}'
                for (a, v), ti in zip(t.values[i : i + step], t.tree_index[i : i + step], strict=True)
            )
            yield (part if i == 0 else "," + part).encode()
        yield b"]}}"

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks())


def build_publication(
    *,
    epoch: int,
    end_block: int,
    chain_id: int,
    distributor: str,
    policy: Policy,
    previous: dict[str, int],
    epoch_amounts: dict[str, int],
    workers: int | None = None,
) -> Publication:
    """Cumulate, check (no decrease, no duplicate, nobody dropped) and build the tree (leaves by address).

    An epoch before any allocation publishes the single leaf (treasury, 0)."""
    cumulative = cumulate(previous, epoch_amounts)
    if not cumulative:  # nothing ever allocated: one zero leaf keeps the epoch sequence going (root != 0)
        cumulative = {policy.treasury: 0}
    leaves = sorted(cumulative.items())
    check_publishable(previous, leaves)
    tree = build_tree(leaves, workers=workers)
    return Publication(epoch, end_block, chain_id, distributor, policy, dict(epoch_amounts), cumulative, tree)


def allocations_dir(data_dir: Path) -> Path:
    return Path(data_dir) / SUBDIR


def write_allocation_file(data_dir: Path, blob: bytes | Iterable[bytes]) -> tuple[str, str]:
    """Store the file content-addressed (streamed, fsynced, renamed, idempotent). Returns (name, uri)."""
    from Crypto.Hash import keccak as _keccak

    folder = allocations_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".allocation.{os.getpid()}.tmp"
    h = _keccak.new(digest_bits=256)
    with open(tmp, "wb") as f:
        for piece in [blob] if isinstance(blob, bytes) else blob:
            h.update(piece)
            f.write(piece)
        f.flush()
        os.fsync(f.fileno())
    name = "0x" + h.hexdigest() + ".json"
    path = folder / name
    if path.exists():
        tmp.unlink()
    else:
        tmp.replace(path)
    return name, f"allocations/{name}"


def read_allocation_file(data_dir: Path, name: str) -> dict[str, Any]:
    """Load a stored allocation file and check it against its content address."""
    path = allocations_dir(data_dir) / name
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"allocation file {name} not found under {allocations_dir(data_dir)}") from None
    if "0x" + keccak256(blob).hex() + ".json" != name:
        raise InvalidInputError(f"allocation file {name} does not match its content hash")
    doc: dict[str, Any] = orjson.loads(blob)
    return doc


def cumulative_from_document(doc: dict[str, Any]) -> dict[str, int]:
    return {v["value"][0]: int(v["value"][1]) for v in doc["tree"]["values"]}
