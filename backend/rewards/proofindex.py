"""The proof index of an allocation file: a compact binary sidecar, built once per file, that answers "what is
account A's cumulative amount and proof under this root" with a few dozen small reads and no hashing.

`<data_dir>/rewards/0x<hash>.idx` sits next to `0x<hash>.json` (the file it indexes) and is derived from it:
the lifecycle writes it with the file (`backend.rewards.publication.store_publication`), and
`backend.rewards.publication.open_index` builds it once (file checked against its name, tree validated
node by node) for a file that came without one. Layout, all integers big-endian:

    b"CAIRNPX1" | u32 header length | header (JSON: allocation, root, count, policy_hash, policy)
    count records of 56 bytes, sorted by address: address (20) | cumulative amount (32) | tree index (u32)
    2*count-1 tree nodes of 32 bytes (OpenZeppelin's node array, root first)

The file is memory-mapped once per process (read-only): a lookup is a binary search over the records
(log2(count) comparisons of 20-byte slices, no system call) and a proof the log2(count) sibling nodes read by
offset. Memory per request is constant whatever the tree's size; the pages touched are the kernel's page cache
of the file (shared by every API process, reclaimable), not the process's heap.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cairn.core.merkle import MerkleTree
from cairn.core.merkle.leaves import to_hex

MAGIC = b"CAIRNPX1"
RECORD = 56  # address 20 + amount 32 + tree index 4
NODE = 32
MAX_HEADER = 1 << 20
_PREFIX = struct.Struct(">8sI")


class BadIndexError(ValueError):
    """The sidecar is missing a part, or its sizes disagree with its header (rebuilt by the caller)."""


def index_path(allocation: Path) -> Path:
    """The sidecar of `<dir>/0x<hash>.json`: `<dir>/0x<hash>.idx`."""
    return allocation.with_suffix(".idx")


def write_index(path: Path, *, allocation: str, tree: MerkleTree, policy: tuple[str, bytes] | None) -> None:
    """Write the sidecar of `tree` (atomically: a temporary file, fsynced, renamed). `policy` is the
    embedded policy's (hash, canonical JSON), if the file has one."""
    order = sorted(range(len(tree.values)), key=lambda i: tree.values[i][0])
    header = orjson.dumps(
        {
            "allocation": allocation,
            "root": tree.root,
            "count": len(tree.values),
            "policy_hash": policy[0] if policy else None,
            "policy": policy[1].decode() if policy else None,
        }
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_PREFIX.pack(MAGIC, len(header)) + header)
        step = 65_536
        for start in range(0, len(order), step):
            f.write(
                b"".join(
                    bytes.fromhex(tree.values[i][0][2:])
                    + tree.values[i][1].to_bytes(32, "big")
                    + tree.tree_index[i].to_bytes(4, "big")
                    for i in order[start : start + step]
                )
            )
        for start in range(0, len(tree.tree), step):
            f.write(b"".join(tree.tree[start : start + step]))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@dataclass(frozen=True)
class ProofIndex:
    """An opened sidecar: its header and a read-only map of the file that every lookup reads by offset."""

    path: Path
    allocation: str
    root: str
    count: int
    policy_hash: str | None
    policy: bytes | None
    records_at: int
    data: mmap.mmap = field(compare=False, repr=False)

    @property
    def nodes_at(self) -> int:
        return self.records_at + RECORD * self.count

    @classmethod
    def open(cls, path: Path) -> ProofIndex:
        """Read and check the header and the file's size; BadIndexError if they disagree."""
        with open(path, "rb") as f:
            prefix = f.read(_PREFIX.size)
            if len(prefix) != _PREFIX.size:
                raise BadIndexError(f"{path.name}: truncated")
            magic, size = _PREFIX.unpack(prefix)
            if magic != MAGIC or size > MAX_HEADER:
                raise BadIndexError(f"{path.name}: not a proof index")
            try:
                header: dict[str, Any] = orjson.loads(f.read(size))
                count = int(header["count"])
                policy = header.get("policy")
                records_at = _PREFIX.size + size
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise BadIndexError(f"{path.name}: bad header ({exc})") from None
            expected = records_at + RECORD * count + NODE * (2 * count - 1)
            if count < 1 or os.fstat(f.fileno()).st_size != expected:
                raise BadIndexError(f"{path.name}: size disagrees with its header")
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # the map outlives the descriptor
        return cls(
            path, str(header["allocation"]), str(header["root"]), count, header.get("policy_hash"),
            policy.encode() if isinstance(policy, str) else None, records_at, data,
        )  # fmt: skip

    def _record(self, account: str) -> bytes | None:
        """The binary search: `account`'s 56-byte record, or None."""
        key = bytes.fromhex(account[2:])
        data, base = self.data, self.records_at
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            at = base + RECORD * mid
            here = data[at : at + 20]
            if here < key:
                lo = mid + 1
            elif here > key:
                hi = mid
            else:
                return data[at : at + RECORD]
        return None

    def lookup(self, account: str) -> tuple[int, list[str]] | None:
        """(cumulative amount, proof leaf to root) of `account` (0x + 40 hex, any case), or None."""
        rec = self._record(account)
        if rec is None:
            return None
        amount = int.from_bytes(rec[20:52], "big")
        p = int.from_bytes(rec[52:56], "big") + 1  # 1-based heap position, as in MerkleTree
        data, nodes = self.data, self.nodes_at
        proof = []
        for k in range(p.bit_length() - 1):
            at = nodes + NODE * (((p >> k) ^ 1) - 1)
            proof.append(to_hex(data[at : at + NODE]))
        return amount, proof

    def amount(self, account: str) -> int | None:
        """`account`'s cumulative amount without its proof (the binary search only), or None."""
        rec = self._record(account)
        return None if rec is None else int.from_bytes(rec[20:52], "big")

    def records(self, chunk: int = 4096) -> Iterator[tuple[str, int]]:
        """Every (account, cumulative amount), sorted by address, `chunk` records at a time."""
        data = self.data
        for start in range(0, self.count, chunk):
            n = min(chunk, self.count - start)
            block = data[self.records_at + RECORD * start : self.records_at + RECORD * (start + n)]
            for i in range(n):
                rec = block[RECORD * i : RECORD * (i + 1)]
                yield "0x" + rec[:20].hex(), int.from_bytes(rec[20:52], "big")
