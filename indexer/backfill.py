"""Backfill: the finalized blocks above the cursor, many per `eth_getLogs`, many ranges per transaction.

- Adaptive range `[lo, hi]`, `hi <= finalized`: on "too many results" the provider's suggested range, else
  half; after a success grow additively (at most x2), double over empty ranges, and shrink so that one query
  returns about `target_events` (memory stays flat in the range length). Past a provider's limit the range
  grows back only slowly (`_ceiling`, +10% per success).
- Prefetch: the next range is fetched in a background thread while this one is decoded and written.
- One transaction spans consecutive ranges for about `backfill_commit_s` (or `backfill_max_events`); the first
  backfill step of a process commits its first range alone, so a restart shows progress at once. Before the
  commit, the ranges' end headers and the anchor are checked in one round trip: each end header must match
  its range's logs (same fork) and the anchor must still be on the chain.
- The RPC client bounds the size of an `eth_getLogs` answer (`max_response_bytes`; too big -> a smaller
  range), except for a single block, which cannot be split.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cairn.core.errors import RangeTooLargeError, RpcError
from indexer.context import StepContext
from indexer.step import Anchor, NodeBehind, Progress, Retry
from indexer.store import Transaction

_Fetched = tuple[int, list[dict[str, Any]], int]  # (range end, its logs, RPC generation they came from)


class Backfill:
    """Backfill steps of one indexer; holds the adaptive range size and the ranges being fetched ahead."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.rpc = ctx.rpc
        self.options = options = ctx.options
        self.range = options.initial_range
        self._ceiling = options.max_range  # lowered when the provider says a range is too large
        self._steps = 0
        self._pool: ThreadPoolExecutor | None = None
        # ranges being fetched ahead, in chain order: (first block, planned last block, future)
        self._prefetch: list[tuple[int, int, Future[_Fetched]]] = []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def step(self, anchor: Anchor, head: int, finalized: int, step_gen: int) -> tuple[Progress, str]:
        """Consecutive finalized ranges from `anchor + 1` committed in ONE transaction with the cursor;
        returns the progress and the new cursor block's hash. `step_gen`: the RPC generation the step
        verified."""
        lo0 = lo = anchor[0] + 1
        started = time.monotonic()
        budget = self.options.backfill_commit_s if self._steps else 0.0
        self._steps += 1
        ends: list[tuple[int, list[dict[str, Any]]]] = []  # (range end, its last logs)
        n_events = 0
        with self.ctx.store.transaction() as tx:
            while True:
                hi, tail, n = self._range(tx, lo, finalized, step_gen)
                ends.append((hi, tail))
                n_events += n
                lo = hi + 1
                if (
                    hi >= finalized
                    or n_events >= self.options.backfill_max_events
                    or time.monotonic() - started >= budget
                ):
                    break
            hdr = self._check_range_ends(anchor, ends, step_gen)
            tx.finish(
                chain_id=self.ctx.chain_id,
                blocks=[(hi, hdr["hash"], hdr["parentHash"])],
                cursor=(hi, hdr["hash"]),
                prune_below=finalized,
            )
        return Progress(hi, head, finalized, n_events, hi - lo0 + 1, "backfill"), hdr["hash"]

    def _range(
        self, tx: Transaction, lo: int, finalized: int, step_gen: int
    ) -> tuple[int, list[dict[str, Any]], int]:
        """Fetch (or take the prefetched) logs of [lo, hi], start fetching the next range, decode and write
        them into `tx`; returns (hi, the range's last logs, number of logs)."""
        fetched = self._take_prefetch(lo)
        hi, logs, gen = fetched if fetched is not None else self._get_logs(lo, finalized)
        if not gen == step_gen == self.rpc.generation:
            raise Retry()  # the logs and the headers may come from different nodes
        n_logs = len(logs)
        self._grow(hi - lo + 1, n_logs)
        if hi < finalized:  # fetch the next ranges while this one is decoded and written
            self._start_prefetch(hi + 1, finalized)
        tail = logs[-64:]
        rows = self.ctx.decoder.decode(logs, {})
        del logs
        tx.write(rows)
        return hi, tail, n_logs

    def _check_range_ends(
        self, anchor: Anchor, ends: list[tuple[int, list[dict[str, Any]]]], step_gen: int
    ) -> dict[str, Any]:
        """One round trip: each range end's header must match its logs (same fork) and the anchor must still
        be on the chain; returns the last end's header."""
        blocks = [hi for hi, _ in ends]
        if anchor[1] is not None:
            blocks.append(anchor[0])
        headers = self.rpc.headers(blocks)
        if not step_gen == self.rpc.generation:
            raise Retry()  # failover during the step: redo it on the (verified) new node
        if anchor[1] is not None:
            at_anchor = headers.pop()
            if at_anchor is None or at_anchor["hash"] != anchor[1]:
                raise Retry()  # the cursor block changed under us: the next step handles the reorg
        for (hi, tail), hdr in zip(ends, headers, strict=True):
            if hdr is None:
                raise NodeBehind()
            hi_hex = hex(hi)
            if any(lg["blockNumber"] == hi_hex and lg["blockHash"] != hdr["hash"] for lg in tail):
                raise Retry()  # logs and header from different forks
        last = headers[-1]
        assert last is not None
        return last

    # --- adaptive range -----------------------------------------------------------------------------------
    def _get_logs(self, lo: int, hi_cap: int) -> _Fetched:
        """Logs of [lo, hi <= hi_cap] with the adaptive range; returns (hi, logs, generation)."""
        while True:
            hi = min(hi_cap, lo + self.range - 1)
            gen = self.rpc.generation
            try:
                logs = self.rpc.call(
                    "eth_getLogs",
                    [{"fromBlock": hex(lo), "toBlock": hex(hi), "address": self.ctx.addresses}],
                    bounded=hi > lo,  # one block cannot be split: no memory bound then
                )
            except RangeTooLargeError as exc:
                size = hi - lo + 1
                if exc.suggested is not None and exc.suggested[0] <= lo <= exc.suggested[1]:
                    new = exc.suggested[1] - lo + 1
                elif exc.suggested is not None:
                    new = exc.suggested[1] - exc.suggested[0] + 1
                else:
                    new = size // 2
                if size <= 1:
                    raise RpcError(f"eth_getLogs refuses even the single block {lo}: {exc.message}") from None
                self.range = max(1, min(new, size - 1 if new >= size else new))
                self._ceiling = self.range  # grow back past the provider's limit only slowly
                continue
            if not isinstance(logs, list):
                raise Retry()
            return hi, logs, gen

    def _grow(self, size: int, n_events: int) -> None:
        """Next range: double over empty ranges, else grow additively (at most x2 per step), capped by the
        observed density so that one query returns about `target_events` (memory flat in the range length)."""
        target = self.options.target_events
        cap = min(self.options.max_range, self._ceiling)
        self._ceiling = min(self.options.max_range, self._ceiling + max(1, self._ceiling // 10))
        if n_events == 0:
            self.range = min(cap, max(self.range, size) * 2)
            return
        by_density = max(1, size * target // n_events)
        base = max(self.range, size)
        self.range = max(1, min(cap, base + self.options.grow_step, 2 * base, by_density))

    # --- prefetch -----------------------------------------------------------------------------------------
    def _start_prefetch(self, lo: int, finalized: int) -> None:
        """Keep `prefetch_depth` consecutive ranges from `lo` in flight while the current one is decoded and
        written (planned with the current range size; a range that comes back shorter drops the rest)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.options.prefetch_depth, thread_name_prefix="cairn-prefetch"
            )
        nxt = self._prefetch[-1][1] + 1 if self._prefetch else lo
        while len(self._prefetch) < self.options.prefetch_depth and nxt <= finalized:
            hi = min(finalized, nxt + self.range - 1)
            self._prefetch.append((nxt, hi, self._pool.submit(self._get_logs, nxt, hi)))
            nxt = hi + 1

    def _take_prefetch(self, lo: int) -> _Fetched | None:
        """The prefetched range starting at `lo`, if it is the next one; anything else in flight is dropped
        (a provider refusal shortened a range, or a reorg/failover moved the cursor)."""
        if not self._prefetch:
            return None
        start, _, future = self._prefetch.pop(0)
        if start != lo:
            self._prefetch.clear()
            return None
        try:
            return future.result()
        except Exception:  # fetched again in the foreground, with the foreground's error handling
            self._prefetch.clear()
            return None

    def drop_prefetch(self) -> None:
        """Forget the ranges in flight (only the backfill step right after the one that started them uses
        them)."""
        self._prefetch.clear()
