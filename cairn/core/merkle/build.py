"""`build_tree`: check the leaves (in bulk when they are plain), then build in C or in Python."""

from __future__ import annotations

import operator
from collections.abc import Iterable

from cairn.core.errors import InvalidInputError
from cairn.core.merkle.leaves import MAX_UINT256, normalize_address
from cairn.core.merkle.native import native_tree
from cairn.core.merkle.pybuild import python_tree
from cairn.core.merkle.tree import MerkleTree


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
        built = native_tree(values, encoded)
        if built is not None:
            return MerkleTree(values=values, tree=built[0], tree_index=built[1])
    return python_tree(values, workers)


def _checked_one_by_one(items: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    values: list[tuple[str, int]] = []
    for a, n in items:
        if not isinstance(n, int) or not 0 <= n <= MAX_UINT256:
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
