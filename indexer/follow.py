"""Live following: the unfinalized blocks above the anchor, block by block, `live_batch` per transaction.

Headers by number in one round trip, each checked against its parent's hash (a reorg in flight stops the batch
at the last consistent block), then logs by `blockHash` for exactly those blocks, so header and logs cannot
come from different forks. The rows, the blocks' hashes (kept until final, for the reorg walk in
indexer.reorg), the rollback of a reorg if there is one, and the cursor commit in one transaction.
"""

from __future__ import annotations

from typing import Any

from cairn.core.errors import RpcError
from indexer.context import StepContext
from indexer.step import Anchor, NodeBehind, Progress, Retry


class Follow:
    """Live steps of one indexer."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.rpc = ctx.rpc

    def step(
        self, anchor: Anchor, head: int, finalized: int, rollback_to: int | None, step_gen: int
    ) -> tuple[Progress, str]:
        """Blocks from `anchor + 1` (after rolling back above `rollback_to`, the common ancestor, if set);
        returns the progress and the new cursor block's hash. `step_gen` is the RPC generation the step
        verified."""
        n0 = anchor[0] + 1
        n1 = min(head, anchor[0] + self.ctx.options.live_batch)
        if n1 < n0:  # reorg to a chain no longer than the ancestor: just roll back
            assert rollback_to is not None and anchor[1] is not None
            self.ctx.store.commit(
                chain_id=self.ctx.chain_id,
                rows={},
                blocks=[],
                cursor=(anchor[0], anchor[1]),
                rollback_to=rollback_to,
            )
            return Progress(anchor[0], head, finalized, 0, 0, "live"), anchor[1]
        gen = self.rpc.generation
        chain = self._consistent_headers(anchor, n0, n1)
        try:
            per_block = self.rpc.batch(
                [("eth_getLogs", [{"blockHash": h["hash"], "address": self.ctx.addresses}]) for h in chain]
            )
        except RpcError:
            raise Retry() from None  # a block vanished between header and logs
        if not gen == step_gen == self.rpc.generation:
            raise Retry()  # failover during the step: redo it on the (verified) new node
        logs: list[dict[str, Any]] = []
        times: dict[str, int] = {}
        for hdr, blogs in zip(chain, per_block, strict=True):
            if not isinstance(blogs, list):
                raise Retry()
            times[hdr["hash"]] = int(hdr["timestamp"], 16)
            for lg in blogs:
                if lg["blockHash"] != hdr["hash"]:
                    raise Retry()
                logs.append(lg)
        rows = self.ctx.decoder.decode(logs, times)
        last = chain[-1]
        number = int(last["number"], 16)
        self.ctx.store.commit(
            chain_id=self.ctx.chain_id,
            rows=rows,
            blocks=[(int(h["number"], 16), h["hash"], h["parentHash"]) for h in chain],
            cursor=(number, last["hash"]),
            rollback_to=rollback_to,
            prune_below=min(finalized, head - max(self.ctx.confirmations, 1)),
        )
        return Progress(number, head, finalized, len(logs), len(chain), "live"), last["hash"]

    def _consistent_headers(self, anchor: Anchor, n0: int, n1: int) -> list[dict[str, Any]]:
        """Headers of [n0, n1] that build on the anchor and on each other (up to the first that does not)."""
        headers = self.rpc.headers(range(n0, n1 + 1))
        chain: list[dict[str, Any]] = []
        prev = anchor[1]
        for hdr in headers:
            if hdr is None:
                break
            if prev is not None and hdr["parentHash"] != prev:
                break  # a reorg in flight: stop at the last consistent block
            chain.append(hdr)
            prev = hdr["hash"]
        if not chain:
            if headers and headers[0] is None:
                raise NodeBehind()
            raise Retry()  # first block does not build on the cursor: next step finds the ancestor
        return chain
