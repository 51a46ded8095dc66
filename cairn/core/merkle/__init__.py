"""OpenZeppelin StandardMerkleTree-compatible Merkle tree for `["address", "uint256"]` leaves.

Compatible with `@openzeppelin/merkle-tree` (`StandardMerkleTree.of(values, ["address","uint256"])`, default
`sortLeaves: true`) and with OpenZeppelin's `MerkleProof.verify` on-chain:

* leaf  = keccak256(keccak256(abi.encode(address, uint256)))   (double hash: no 64-byte leaf forgery)
* node  = keccak256(sort(a, b))                                 (sorted pairs, no position bits)
* layout: a complete binary tree in one array of 2n-1 nodes, root at index 0, children of i at 2i+1 and
  2i+2; the leaf hashes, sorted ascending, fill the array from its end backwards
  (`tree[2n-2-k] = sorted_leaf_hashes[k]`); `values[i].treeIndex` says where value i's leaf sits.

Modules: `keccak` (keccak256 over pycryptodome's compiled Keccak, one reused state per thread), `leaves`
(the hand-written 64-byte `abi.encode`, leaf and pair hashes), `tree` (`MerkleTree`: node array, proofs,
dump / load, `verify`), `build` (`build_tree`: bulk checks, then the C builder of `native`, else the Python
builder of `pybuild`, whose leaf hashing can be spread over processes for big trees).
"""

from __future__ import annotations

from cairn.core.merkle import native, pybuild
from cairn.core.merkle.build import build_tree
from cairn.core.merkle.keccak import Hasher, hasher, keccak256, leaf_hasher
from cairn.core.merkle.leaves import (
    FORMAT,
    LEAF_ENCODING,
    encode_leaf,
    hash_pair,
    leaf_hash,
    normalize_address,
)
from cairn.core.merkle.native import native_builder
from cairn.core.merkle.pybuild import python_tree
from cairn.core.merkle.tree import MerkleTree, process_proof, verify

__all__ = [
    "FORMAT",
    "LEAF_ENCODING",
    "Hasher",
    "MerkleTree",
    "build_tree",
    "encode_leaf",
    "hash_pair",
    "hasher",
    "keccak256",
    "leaf_hash",
    "leaf_hasher",
    "native",
    "native_builder",
    "normalize_address",
    "process_proof",
    "pybuild",
    "python_tree",
    "verify",
]
