"""OpenZeppelin StandardMerkleTree-compatible Merkle tree for `["address", "uint256"]` leaves.

Compatible with `@openzeppelin/merkle-tree` (`StandardMerkleTree.of(values, ["address","uint256"])`, default
`sortLeaves: true`) and with OpenZeppelin's `MerkleProof.verify` on-chain:

* leaf  = keccak256(keccak256(abi.encode(address, uint256)))   (double hash: no 64-byte leaf forgery)
* node  = keccak256(sort(a, b))                                 (sorted pairs, no position bits)
* layout: a complete binary tree in one array of 2n-1 nodes, root at index 0, children of i at 2i+1 and
  2i+2; the leaf hashes, sorted ascending, fill the array from its end backwards
  (`tree[2n-2-k] = sorted_leaf_hashes[k]`); `values[i].treeIndex` says where value i's leaf sits.

Speed: the 64-byte `abi.encode` is written by hand, and keccak256 calls pycryptodome's compiled Keccak
directly through ctypes with one reused state (about 4x faster than `keccak.new(...)` per call). Leaf
hashing is spread over processes for big trees. Proofs are derived from the node array on demand.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import operator
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import InvalidInputError

FORMAT = "standard-v1"
LEAF_ENCODING = ["address", "uint256"]
_MAX_UINT256 = (1 << 256) - 1
_ZERO12 = bytes(12)

Hasher = Callable[[bytes], bytes]


# --- keccak256 ---------------------------------------------------------------------------------------
def _make_fast_hashers() -> tuple[Hasher, Hasher] | None:
    """keccak256 and the double keccak256 of a leaf over pycryptodome's raw library with one state; None if
    the library is unusable."""
    try:
        from Crypto.Hash import keccak as _k

        lib = ctypes.CDLL(_k._raw_keccak_lib._name)  # type: ignore[attr-defined]
        state = ctypes.c_void_p()
        if lib.keccak_init(ctypes.byref(state), ctypes.c_size_t(64), ctypes.c_ubyte(24)) != 0:
            return None
        # No argtypes: every argument is passed as a ready ctypes object (pointer, size_t, ubyte) or as bytes
        # (char *), which skips ctypes' per-call conversions (~1.4x the hashes per second).
        reset = lib.keccak_reset
        absorb = lib.keccak_absorb
        digest = lib.keccak_digest
        out = ctypes.create_string_buffer(32)
        s = ctypes.c_void_p(state.value)
        sizes = {n: ctypes.c_size_t(n) for n in range(129)}
        n32 = ctypes.c_size_t(32)
        pad = ctypes.c_ubyte(1)

        def keccak_fast(data: bytes) -> bytes:
            size = sizes.get(len(data))
            if size is None:
                size = ctypes.c_size_t(len(data))
            reset(s)
            absorb(s, data, size)
            digest(s, out, n32, pad)
            return out.raw

        def keccak_twice(data: bytes) -> bytes:
            """keccak256(keccak256(data)); the inner digest is absorbed from the output buffer."""
            keccak_fast(data)
            reset(s)
            absorb(s, out, n32)
            digest(s, out, n32, pad)
            return out.raw

        if keccak_fast(b"") != bytes.fromhex(
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        ) or keccak_twice(b"") != keccak_fast(keccak_fast(b"")):
            return None
        return keccak_fast, keccak_twice
    except Exception:  # pragma: no cover - exotic builds of pycryptodome
        return None


def _slow_keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak as _k

    return _k.new(data=data, digest_bits=256).digest()


_local = threading.local()


def _slow_twice(data: bytes) -> bytes:
    return _slow_keccak(_slow_keccak(data))


def _hashers() -> tuple[Hasher, Hasher]:
    pair: tuple[Hasher, Hasher] | None = getattr(_local, "h", None)
    if pair is None:
        pair = _make_fast_hashers() or (_slow_keccak, _slow_twice)
        _local.h = pair
    return pair


def hasher() -> Hasher:
    """This thread's keccak256 function (the fast one holds a state, so one per thread)."""
    return _hashers()[0]


def leaf_hasher() -> Hasher:
    """This thread's keccak256(keccak256(x)) function (the leaf hash of an encoded value)."""
    return _hashers()[1]


def keccak256(data: bytes) -> bytes:
    return hasher()(data)


# --- values and leaves --------------------------------------------------------------------------------
def normalize_address(address: str) -> str:
    a = address.lower()
    if len(a) != 42 or not a.startswith("0x"):
        raise InvalidInputError(f"not an address: {address!r}")
    try:
        if len(bytes.fromhex(a[2:])) != 20:  # fromhex skips whitespace
            raise ValueError
    except ValueError:
        raise InvalidInputError(f"not an address: {address!r}") from None
    return a


def encode_leaf(address: str, amount: int) -> bytes:
    """abi.encode(address, uint256) by hand: 12 zero bytes, 20 address bytes, 32-byte big-endian amount."""
    return _ZERO12 + bytes.fromhex(address[2:]) + amount.to_bytes(32, "big")


def leaf_hash(address: str, amount: int) -> bytes:
    return leaf_hasher()(encode_leaf(address, amount))


def _hash_leaves(values: Sequence[tuple[str, int]]) -> list[bytes]:
    h2 = leaf_hasher()
    z = _ZERO12
    fromhex = bytes.fromhex
    return [h2(z + fromhex(a[2:]) + n.to_bytes(32, "big")) for a, n in values]


def _hash_leaves_chunk(values: list[tuple[str, int]]) -> bytes:
    return b"".join(_hash_leaves(values))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a < b else b + a)


def _to_bytes32(x: str | bytes) -> bytes:
    if isinstance(x, bytes):
        b = x
    else:
        s = x[2:] if x.startswith("0x") else x
        b = bytes.fromhex(s)
    if len(b) != 32:
        raise InvalidInputError("expected 32 bytes")
    return b


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


# --- the tree -----------------------------------------------------------------------------------------
@dataclass
class MerkleTree:
    """A built tree: `values` in input order, `tree` the node array, `tree_index[i]` where value i sits."""

    values: list[tuple[str, int]]
    tree: list[bytes]
    tree_index: list[int]
    _by_account: dict[str, int] | None = field(default=None, repr=False)

    @property
    def root(self) -> str:
        return _hex(self.tree[0])

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
        return [_hex(p) for p in self.proof_bytes(index)]

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
            "tree": [_hex(n) for n in self.tree],
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
        tree = [_to_bytes32(n) for n in data["tree"]]
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


def build_tree(
    leaves: Iterable[tuple[str, int]],
    *,
    workers: int | None = None,
    allow_duplicates: bool = False,
) -> MerkleTree:
    """Build the tree over `(account, cumulative amount)` leaves, in OZ's layout with sorted leaves.

    Refuses an empty list, a bad address or amount, and (unless allowed) two leaves for one account.
    `workers` > 1 spreads the leaf hashing over that many processes (default: in-process).
    """
    items = leaves if isinstance(leaves, list) else list(leaves)
    bulk = _checked_in_bulk(items)
    if bulk is None:  # some leaf is not plain: check one by one (and name the bad one)
        values = _checked_one_by_one(items)
        encoded: tuple[bytes, bytes] | None = None
    else:
        values, encoded = bulk[0], bulk[1:]
    count = len(values)
    if count == 0:
        raise InvalidInputError("cannot build a Merkle tree with no leaves")
    if not allow_duplicates:
        accounts = [a for a, _ in values]
        # strictly ascending (the usual, sorted input) has no duplicate; otherwise count them
        if not all(map(operator.lt, accounts, accounts[1:])) and len(set(accounts)) != count:
            raise InvalidInputError("two leaves for one account")

    if workers is None:  # measured: on 2 shared cores the pickling costs about what the second core gains
        workers = 1
    if workers == 1:
        built = _native_tree(values, encoded)
        if built is not None:
            return MerkleTree(values=values, tree=built[0], tree_index=built[1])
    return _python_tree(values, workers)


def _checked_one_by_one(items: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    values: list[tuple[str, int]] = []
    for a, n in items:
        if not isinstance(n, int) or not 0 <= n <= _MAX_UINT256:
            raise InvalidInputError(f"amount out of uint256 range for {a}: {n!r}")
        values.append((normalize_address(a), n))
    return values


def _checked_in_bulk(items: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], bytes, bytes] | None:
    """Check every leaf with a few whole-list operations: each address `0x` + 40 hex digits (any case), each
    amount an `int` in uint256 range. Returns (values with lowercase addresses, the addresses' hex digits, the
    32-byte big-endian amounts), or None when any leaf fails or is not a plain str / int."""
    try:
        accounts = [a for a, _ in items]
        amounts = [n for _, n in items]
        count = len(accounts)
        if (
            set(map(type, accounts)) - {str}
            or set(map(type, amounts)) - {int}
            or set(map(len, accounts)) - {42}
        ):
            return None
        joined = "".join(accounts)
        low = joined.lower()
        if low[0::42] != "0" * count or low[1::42] != "x" * count:
            return None
        digits = low.replace("0x", "")  # only the prefixes: "x" is no hex digit, any other one fails below
        if len(digits) != 40 * count or len(bytes.fromhex(digits)) != 20 * count:  # fromhex skips spaces
            return None
        be = b"".join([n.to_bytes(32, "big") for n in amounts])  # OverflowError: negative or > uint256
    except (TypeError, ValueError, OverflowError):
        return None
    if low != joined:
        accounts = [low[i : i + 42] for i in range(0, 42 * count, 42)]
    return list(zip(accounts, amounts, strict=True)), digits.encode("ascii"), be


def _python_tree(values: list[tuple[str, int]], workers: int) -> MerkleTree:
    """The tree through pycryptodome's keccak (leaf hashing in `workers` processes when > 1)."""
    count = len(values)
    if workers > 1:
        step = -(-count // (workers * 4))
        chunks = [values[i : i + step] for i in range(0, count, step)]
        # forkserver: the workers do not inherit (and count in their RSS) the caller's memory
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            blob = b"".join(pool.map(_hash_leaves_chunk, chunks))
        hashes = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    else:
        hashes = _hash_leaves(values)

    order = sorted(range(count), key=hashes.__getitem__)
    size = 2 * count - 1
    last = size - 1
    # the sorted leaf hashes fill the array from its end backwards: tree[last - k] = k-th smallest
    tree: list[bytes] = [b""] * (count - 1) + [hashes[vi] for vi in reversed(order)]
    tree_index = [0] * count
    for k, vi in enumerate(order):
        tree_index[vi] = last - k
    del hashes, order
    _fill_inner_nodes(tree, count)
    return MerkleTree(values=values, tree=tree, tree_index=tree_index)


# --- the compiled tree builder (cairn/core/_merkle_native.c) -----------------------------------------------
_NATIVE_SOURCE = Path(__file__).with_name("_merkle_native.c")
_native_lock = threading.Lock()
_native_state: dict[str, Any] = {}


def _native_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn"


def _compile_native() -> Path | None:
    """The compiled C builder (compiled once per source version into the user cache); None without cc."""
    source = _NATIVE_SOURCE.read_bytes()
    lib_path = _native_cache_dir() / f"merkle-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if not lib_path.exists():
        cc = shutil.which(os.environ.get("CC", "cc"))
        if cc is None:
            return None
        lib_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib_path.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(_NATIVE_SOURCE)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        os.replace(tmp, lib_path)
    return lib_path


def _load_native() -> tuple[Any, Any] | None:
    """(C builder, pycryptodome's keccak library), checked against the Python builder; None if unusable."""
    from Crypto.Hash import keccak as _k

    lib_path = _compile_native()
    if lib_path is None:
        return None
    lib = ctypes.CDLL(str(lib_path))
    lib.cairn_build_tree.argtypes = [ctypes.c_void_p] * 4 + [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.cairn_build_tree.restype = ctypes.c_int
    keccak_lib = ctypes.CDLL(_k._raw_keccak_lib._name)  # type: ignore[attr-defined]
    pair = (lib, keccak_lib)
    probe = [(f"0x{i * 0x1234567:040x}", (i * 7919) << (i * 5)) for i in range(1, 40)] + [(f"0x{0:040x}", 0)]
    got = _run_native(pair, probe)
    want = _python_tree(probe, 1)
    if got is None or got != (want.tree, want.tree_index):
        return None
    return pair


def native_builder() -> tuple[Any, Any] | None:
    """The loaded C tree builder, or None (no compiler, `CAIRN_MERKLE_NATIVE=0`, or a failed self-check)."""
    with _native_lock:
        if "lib" not in _native_state:
            lib = None
            if os.environ.get("CAIRN_MERKLE_NATIVE", "1") != "0":
                try:
                    lib = _load_native()
                except (OSError, subprocess.SubprocessError, AttributeError):
                    lib = None
            _native_state["lib"] = lib
        pair: tuple[Any, Any] | None = _native_state["lib"]
        return pair


def _run_native(
    pair: tuple[Any, Any], values: list[tuple[str, int]], encoded: tuple[bytes, bytes] | None = None
) -> tuple[list[bytes], list[int]] | None:
    """(node array, tree index) from the C builder over checked values, with a keccak state of its own.
    `encoded`: the addresses' hex digits and the big-endian amounts, when the check made them already."""
    lib, kl = pair
    count = len(values)
    if encoded is None:
        hex_digits = "".join([a for a, _ in values]).replace("0x", "").encode("ascii")  # checked addresses
        amounts = b"".join([n.to_bytes(32, "big") for _, n in values])
    else:
        hex_digits, amounts = encoded
    nodes = bytearray(32 * (2 * count - 1))
    index = (ctypes.c_int64 * count)()
    state = ctypes.c_void_p()
    if kl.keccak_init(ctypes.byref(state), ctypes.c_size_t(64), ctypes.c_ubyte(24)) != 0:
        return None
    try:
        fns = [ctypes.cast(f, ctypes.c_void_p) for f in (kl.keccak_reset, kl.keccak_absorb, kl.keccak_digest)]
        c_nodes = (ctypes.c_char * len(nodes)).from_buffer(nodes)
        rc = lib.cairn_build_tree(state, *fns, hex_digits, amounts, count, c_nodes, index)
        del c_nodes
    finally:
        kl.keccak_destroy(state)
    if rc != 0:  # pragma: no cover - out of memory in C
        return None
    raw = bytes(nodes)
    del nodes
    tree = [node for (node,) in struct.iter_unpack("32s", raw)]
    tree_index: list[int] = memoryview(index).cast("B").cast("q").tolist()
    return tree, tree_index


def _native_tree(
    values: list[tuple[str, int]], encoded: tuple[bytes, bytes] | None = None
) -> tuple[list[bytes], list[int]] | None:
    """(node array, tree index) built by the C builder; None when it is unavailable."""
    pair = native_builder()
    return None if pair is None else _run_native(pair, values, encoded)


def _fill_inner_nodes(tree: list[bytes], count: int) -> None:
    """Hash the inner nodes 0..count-2 level by level, bottom up: the parents [a, b) of one heap level have
    their children in the contiguous slice [2a+1, 2b+1), all hashed already (a level below or leaves)."""
    h = hasher()
    if count < 2:
        return
    level = (count - 1).bit_length() - 1  # the heap level of node count - 2, the last inner node
    while level >= 0:
        a = (1 << level) - 1
        b = min((1 << (level + 1)) - 1, count - 1)
        kids = tree[2 * a + 1 : 2 * b + 1]
        tree[a:b] = [h(x + y if x < y else y + x) for x, y in zip(kids[0::2], kids[1::2], strict=True)]
        level -= 1


def process_proof(leaf: bytes, proof: Sequence[str | bytes]) -> bytes:
    node = leaf
    for p in proof:
        node = hash_pair(node, _to_bytes32(p))
    return node


def verify(root: str | bytes, leaf: tuple[str, int] | bytes, proof: Sequence[str | bytes]) -> bool:
    """True when `proof` links `leaf` (an `(account, amount)` value or a leaf hash) to `root`."""
    lh = leaf if isinstance(leaf, bytes) else leaf_hash(normalize_address(leaf[0]), leaf[1])
    return process_proof(lh, proof) == _to_bytes32(root)
