"""Publication of an epoch: cumulative leaves, the Merkle tree, and the content-addressed allocation file.

The allocation file (JSON, `format: cairn-allocation-v1`) holds the epoch, end block, chain, distributor,
policy (and its hash), this epoch's amounts, the totals and the full OpenZeppelin `standard-v1` tree dump
of the cumulative leaves (from which any proof is derived: `StandardMerkleTree.load(tree).getProof(i)` in JS,
`cairn.core.merkle.MerkleTree.load(tree).proof_for(account)` in Python).

Files are stored as `<data_dir>/rewards/0x<keccak256 of the file bytes>.json` and never
rewritten; the on-chain `uri` of the root is `allocations/0x<keccak>.json`, served by the API under the same
relative path. Anyone can check a downloaded file against its name, its root against the chain, and
recompute both from the chain alone (the audit path).

This module is the only reader and writer of those files: the lifecycle and payouts read them with
`read_allocation_file`, the API finds them by reference (`find_allocation_file`, checked against its name once
per file, hashed in pieces) and answers proofs and amounts from each file's proof index (`open_index`, see
`backend.rewards.proofindex`): written with the file by `store_publication`, or built once from a file that
came without one. No request re-hashes a file or re-validates a tree, and nothing is cached per request;
`COUNTERS` counts the expensive operations (file hashes, tree validations, index builds) for tests and
metrics.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from backend.rewards.allocation import check_publishable, cumulate
from backend.rewards.proofindex import BadIndexError, ProofIndex, index_path, write_index
from cairn.core.errors import AllocationMismatchError, CairnError, InvalidInputError, NotFoundError
from cairn.core.merkle import FORMAT as TREE_FORMAT
from cairn.core.merkle import MerkleTree, build_tree
from cairn.core.policy import Policy, parse_policy

FORMAT = "cairn-allocation-v1"
SUBDIR = Path("rewards")
VERIFIED_CACHE_SIZE = 4096  # paths already checked against their names (a few hundred bytes each)
HASH_CHUNK = 1 << 20
_HASH = re.compile(r"(0x)?([0-9a-fA-F]{64})")
# Expensive operations, counted: "file_hashes" (a whole allocation file hashed), "tree_validations" (a tree
# loaded and re-hashed node by node), "index_builds" (a proof index written).
COUNTERS: Counter[str] = Counter()
_BUILD_LOCK = threading.Lock()


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


def _keccak_file(path: Path) -> str:
    """keccak256 of the file's bytes, read in HASH_CHUNK pieces (bounded memory)."""
    from Crypto.Hash import keccak as _keccak

    COUNTERS["file_hashes"] += 1
    h = _keccak.new(digest_bits=256)
    with open(path, "rb") as f:
        while piece := f.read(HASH_CHUNK):
            h.update(piece)
    return "0x" + h.hexdigest()


def _matches_name(name: str, blob: bytes) -> bool:
    from Crypto.Hash import keccak as _keccak

    COUNTERS["file_hashes"] += 1
    return "0x" + _keccak.new(data=blob, digest_bits=256).hexdigest() + ".json" == name


def read_allocation_file(data_dir: Path, name: str) -> dict[str, Any]:
    """Load a stored allocation file and check it against its content address."""
    path = allocations_dir(data_dir) / name
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"allocation file {name} not found under {allocations_dir(data_dir)}") from None
    if not _matches_name(name, blob):
        raise InvalidInputError(f"allocation file {name} does not match its content hash")
    doc: dict[str, Any] = orjson.loads(blob)
    return doc


def allocation_name(ref: str) -> str:
    """The file name `0x<hash>.json` of a reference: a content hash, `<hash>.json`, or a URI ending in one."""
    name = ref.rstrip("/").rsplit("/", 1)[-1]
    m = _HASH.fullmatch(name.removesuffix(".json"))
    if m is None:
        raise InvalidInputError(
            f"allocation reference {ref!r} is not a content hash (0x + 64 hex), "
            "<hash>.json or a URI ending in one",
            field="ref",
        )
    return f"0x{m.group(2).lower()}.json"


def find_allocation_file(data_dir: Path, ref: str) -> Path:
    """The stored file that `ref` names (see `allocation_name`), once its bytes hash to its name."""
    name = allocation_name(ref)
    path = allocations_dir(data_dir) / name
    if not path.is_file():
        raise NotFoundError(
            f"no allocation file with hash {name.removesuffix('.json')} on this server", ref=ref
        )
    return _verified(path)


@lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _verified(path: Path) -> Path:
    """`path` if its bytes hash to its name (remembered, a refusal is not: content-addressed files never
    change)."""
    if _keccak_file(path) + ".json" != path.name:
        raise AllocationMismatchError(
            f"allocation file {path.name} does not hash to its name; refusing to serve it"
        )
    return path


def load_document(path: Path) -> dict[str, Any]:
    """The JSON document of an allocation file found by `find_allocation_file`."""
    doc = orjson.loads(path.read_bytes())
    if not isinstance(doc, dict):
        raise InvalidInputError(f"allocation file {path.name} is not a JSON object")
    return doc


def load_tree(doc: dict[str, Any], name: str) -> MerkleTree:
    """The Merkle tree of an allocation document (its `tree`, or the document itself when it is a bare
    `standard-v1` dump), checked node by node (counted in COUNTERS["tree_validations"])."""
    COUNTERS["tree_validations"] += 1
    if doc.get("format") == TREE_FORMAT:
        return MerkleTree.load(doc)
    if isinstance(doc.get("tree"), dict):
        return MerkleTree.load(doc["tree"])
    raise InvalidInputError(f"allocation file {name} holds no standard-v1 Merkle tree dump")


def _embedded_policy(doc: dict[str, Any]) -> tuple[str, bytes] | None:
    try:
        policy = parse_policy(doc["policy"])
    except (CairnError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return policy.content_hash(), policy.canonical_json()


def store_publication(data_dir: Path, pub: Publication) -> tuple[str, str]:
    """Write the allocation file of `pub` (`write_allocation_file`) and its proof index: (name, uri)."""
    name, uri = write_allocation_file(data_dir, pub.chunks())
    policy = (pub.policy.content_hash(), pub.policy.canonical_json())
    write_index(index_path(allocations_dir(data_dir) / name), allocation=name, tree=pub.tree, policy=policy)
    COUNTERS["index_builds"] += 1
    return name, uri


def open_index(data_dir: Path, ref: str) -> ProofIndex:
    """The proof index of the allocation file `ref` names (see `allocation_name`). An index on disk is
    opened (a header read); a file without one (or with a damaged one) is found and checked against its
    name (`find_allocation_file`), its tree validated, and its index written, once, under a lock."""
    sidecar, name = _sidecar_of(data_dir, ref)
    try:
        return _opened(sidecar, name)
    except (FileNotFoundError, BadIndexError):
        pass
    with _BUILD_LOCK:  # one build per file: the others wait for it, then open what it wrote
        try:
            return _opened(sidecar, name)
        except (FileNotFoundError, BadIndexError):
            pass
        doc = load_document(find_allocation_file(data_dir, ref))
        write_index(sidecar, allocation=name, tree=load_tree(doc, name), policy=_embedded_policy(doc))
        COUNTERS["index_builds"] += 1
        del doc
    return _opened(sidecar, name)


@lru_cache(maxsize=4096)
def _sidecar_of(data_dir: Path, ref: str) -> tuple[Path, str]:
    """(the sidecar's path, the allocation file's name) of `ref`: a pure function, memoised, because the
    account views resolve one per epoch on every request."""
    name = allocation_name(ref)
    return index_path(allocations_dir(data_dir) / name), name


_OPENED: dict[tuple[Path, int, int], ProofIndex] = {}  # sidecars are immutable once written (renamed in)


def _opened(sidecar: Path, name: str) -> ProofIndex:
    """The opened sidecar, its header parsed and the file mapped once per file version (path, mtime, size)
    per process. The version is stat'ed on every call, so a sidecar replaced or damaged on disk is never read
    through a stale map."""
    st = os.stat(sidecar)
    key = (sidecar, st.st_mtime_ns, st.st_size)
    found = _OPENED.get(key)
    if found is None:
        found = ProofIndex.open(sidecar)
        if len(_OPENED) >= 4096:
            _OPENED.clear()
        _OPENED[key] = found
    if found.allocation != name:
        raise BadIndexError(f"{sidecar.name} indexes {found.allocation}, not {name}")
    return found


def cumulative_from_document(doc: dict[str, Any]) -> dict[str, int]:
    return {v["value"][0]: int(v["value"][1]) for v in doc["tree"]["values"]}
