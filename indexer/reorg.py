"""Reorgs: the parent-hash walk back to the common ancestor.

The indexer stores the hashes of the blocks it has not seen finalized (plus the cursor block) in
`indexer_blocks`. When the node's header at our cursor has another hash, some block at or below the cursor
changed (block hashes chain, so any change below changes the cursor block's hash too; this also catches a
reorg that happened while the indexer was down). `common_ancestor` fetches the node's headers for all stored
blocks in one round trip and returns the highest one it still agrees with; the step then rolls back above it
in the same transaction that re-applies the new blocks (indexer.follow). Deeper than the stored window ->
`DeepReorgError` naming the lowest stored block.
"""

from __future__ import annotations

import logging

from cairn.core.errors import DeepReorgError
from indexer import metrics
from indexer.rpc import RpcClient
from indexer.step import NodeBehind
from indexer.store import Store

log = logging.getLogger("cairn.indexer")


def common_ancestor(store: Store, rpc: RpcClient, cursor_block: int) -> tuple[int, str]:
    """(number, hash) of the highest stored block the node still has; counts the reorg in the metrics."""
    stored = store.stored_blocks()
    if not stored:
        raise DeepReorgError("reorg detected but no block hashes are stored")
    headers = rpc.headers(n for n, _ in stored)
    for (n, h), hdr in zip(stored, headers, strict=True):
        if hdr is None:
            raise NodeBehind()
        if hdr["hash"] == h:
            depth = cursor_block - n
            log.warning("reorg: rolling back %d block(s) to common ancestor %d", depth, n)
            metrics.REORGS.inc()
            metrics.REORG_DEPTH.set(depth)
            return n, h
    low_n, low_h = stored[-1]
    raise DeepReorgError(
        f"reorg deeper than the finality window: block {low_n} ({low_h}) is no longer on the chain; "
        f"re-index from scratch or raise the confirmation depth"
    )
