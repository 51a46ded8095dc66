"""The tree built in Python (pycryptodome's keccak; leaf hashing in worker processes when asked): the builder
without a C compiler, and the reference the C builder is checked against."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from cairn.core.merkle.keccak import hasher
from cairn.core.merkle.leaves import hash_leaves, hash_leaves_chunk
from cairn.core.merkle.tree import MerkleTree


def python_tree(values: list[tuple[str, int]], workers: int) -> MerkleTree:
    """The tree through pycryptodome's keccak (leaf hashing in `workers` processes when > 1)."""
    count = len(values)
    if workers > 1:
        step = -(-count // (workers * 4))
        chunks = [values[i : i + step] for i in range(0, count, step)]
        # forkserver: the workers do not inherit (and count in their RSS) the caller's memory
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            blob = b"".join(pool.map(hash_leaves_chunk, chunks))
        hashes = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    else:
        hashes = hash_leaves(values)

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
