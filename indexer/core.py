"""The indexer loop: adaptive backfill of finalized ranges, then block-by-block live following by hash.

The only state is the cursor (last committed block and its hash) and the hashes of unfinalized blocks, both in
the database and committed in the same transaction as the rows. Each step:

1. One batched round trip: `latest`, `finalized` (if the node has the tag) and the header at our cursor.
2. Node behind (no header at our cursor): count it, fail over, wait. Never a rollback.
3. Cursor hash differs from the node's: a reorg (also one that happened while we were down: this check runs on
   the first step after start-up, and since block hashes chain, any change below the cursor changes the cursor
   block's hash too). Walk the stored hashes back to the highest block the node still agrees with (the common
   ancestor); deeper than the stored window -> `DeepReorgError` naming the block. The rollback is committed
   together with the re-applied blocks.
4. Finalized blocks above the cursor: one `eth_getLogs` over an adaptive range `[cursor+1, hi]`, `hi <=
   finalized` (the provider's suggested range on "too many results", else halve; grow additively after a
   success, double over empty ranges; shrink to bound the events per range, which keeps memory flat). The
   next range is fetched in a background thread while this one is decoded and written; one transaction
   spans consecutive ranges for about a second (`backfill_commit_s`), then their end headers and the cursor
   block are checked in one round trip and the rows commit with the new cursor.
5. Otherwise the unfinalized blocks above the cursor, one by one: header by number, parent-hash check against
   the previous block, logs by `blockHash` (so header and logs cannot come from different forks).

Since every step starts exactly at `cursor + 1` and commits atomically, the switch from backfill to live, a
kill -9, or a retried step can neither lose nor duplicate an event.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.errors import ChainUnreachableError, DeepReorgError, RangeTooLargeError, RpcError
from cairn.core.events import EventSpec, decode_exploded, decode_log, specs_from_abis
from cairn.core.settings import Settings
from indexer import metrics
from indexer.rpc import RpcClient
from indexer.store import Cursor, Store, Transaction, upgrade

log = logging.getLogger("cairn.indexer")


_frozen = False


def _freeze_startup_objects() -> None:
    """Once per process: collect, then move every surviving object (modules, SQLAlchemy metadata, ABIs, specs)
    out of the collector's reach (`gc.freeze`). Backfill allocates millions of short-lived dicts, lists and
    tuples; without this, the full collections they trigger re-traverse all those long-lived objects each time
    (measured: about a third of the backfill's CPU time)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


class _NodeBehind(Exception):
    pass


class _Retry(Exception):
    """The step saw an inconsistent view of the chain (reorg in flight, failover); just run it again."""


@dataclass
class IndexerOptions:
    finality: str = "auto"  # "auto" (node's `finalized` tag if it has one), "tag", "confirmations"
    confirmations: int | None = None  # default: Settings.confirmations
    poll_interval: float = 1.0
    initial_range: int = 1  # blocks in the first eth_getLogs (grows fast over sparse blocks)
    grow_step: int = 2_000  # additive growth after a success
    max_range: int = 500_000
    target_events: int = 10_000  # shrink the range when a query returns more (bounds memory)
    live_batch: int = 64  # unfinalized blocks per transaction
    backfill_commit_s: float = 1.0  # a backfill transaction spans consecutive ranges for about this long
    backfill_max_events: int = 250_000  # ... or this many events
    prefetch_depth: int = 1  # eth_getLogs ranges fetched ahead in background threads (2 measured no faster)
    rpc_timeout: float = 10.0
    rpc_attempts: int = 12
    max_response_bytes: int = 24 * 1024 * 1024  # bigger eth_getLogs answers are split (bounds memory)


@dataclass
class Progress:
    """What the last step did (for progress bars and tests)."""

    cursor: int
    head: int
    finalized: int
    events: int
    blocks: int
    mode: str  # "backfill", "live", "idle", "behind"


class Indexer:
    """Mirror every event of a deployment into SQL. `run(stop_event)` follows the chain until stopped."""

    def __init__(
        self,
        settings: Settings,
        deployment: Deployment,
        *,
        engine: Engine | None = None,
        options: IndexerOptions | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.settings = settings
        self.deployment = deployment
        self.options = options or IndexerOptions()
        self.confirmations = (
            self.options.confirmations if self.options.confirmations is not None else settings.confirmations
        )
        self._own_engine = engine is None
        self.engine = engine or make_engine(settings.database_url)
        self.stop = threading.Event()
        self.rpc = RpcClient(
            settings.rpc_urls,
            timeout=self.options.rpc_timeout,
            max_attempts=self.options.rpc_attempts,
            on_error=lambda kind: metrics.RPC_ERRORS.labels(kind).inc(),
            stop=self.stop,
            max_response_bytes=self.options.max_response_bytes,
        )
        uint_as_str = self.engine.dialect.name != "postgresql"
        self.specs: dict[str, EventSpec] = specs_from_abis(
            (c.abi for c in deployment.contracts.values()), uint_as_str=uint_as_str
        )
        self.addresses = sorted({c.address.lower() for c in deployment.contracts.values()})
        self.start_block = deployment.start_block
        self.store = Store(self.engine, self.specs)
        self.on_progress = on_progress
        self.range = self.options.initial_range
        self._ceiling = self.options.max_range  # lowered when the provider says a range is too large
        self.has_finalized_tag: bool | None = (
            None if self.options.finality == "auto" else (self.options.finality == "tag")
        )
        self.cursor: Cursor | None = None
        self.events_total = 0
        self.reorgs = 0
        self._prepared = False
        self._indexes_built = False
        self._verified_urls: set[str] = set()
        self._step_gen = 0
        self._backfill_steps = 0
        self._pool: ThreadPoolExecutor | None = None
        # ranges being fetched ahead, in chain order: (first block, planned last block, future)
        self._prefetch: list[tuple[int, int, Future[tuple[int, list[dict[str, Any]], int]]]] = []

    # --- start-up ---------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Verify the chain id, run migrations, load the cursor. Idempotent."""
        if self._prepared:
            return
        self._verify_chain()
        upgrade(self.engine, self.specs)
        self.cursor = self.store.cursor()
        if self.cursor is not None and self.cursor.chain_id != self.deployment.chain_id:
            from cairn.core.errors import WrongChainError

            raise WrongChainError(
                f"database {self.engine.url!r} holds chain {self.cursor.chain_id}, "
                f"the deployment is chain {self.deployment.chain_id}"
            )
        self._prepared = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.rpc.close()
        if self._own_engine:
            self.engine.dispose()

    # --- main loop --------------------------------------------------------------------------------------
    def run(self, stop_event: threading.Event | None = None, *, once: bool = False) -> None:
        """Follow the chain until `stop_event` is set (or, with `once`, until caught up with the head)."""
        stop = stop_event or self.stop
        self.stop = stop
        self.rpc.stop = stop  # RPC backoff waits end as soon as we are told to stop
        self.prepare()
        _freeze_startup_objects()
        while not stop.is_set():
            try:
                progress = self.step()
            except ChainUnreachableError as exc:
                if once:
                    raise
                log.warning("%s; retrying", exc.message)  # a follower outlives RPC outages
                stop.wait(max(1.0, self.options.poll_interval))
                continue
            if self.on_progress is not None:
                self.on_progress(progress)
            if progress.mode in ("idle", "behind", "retry"):
                if once and progress.mode == "idle":
                    return
                stop.wait(self.options.poll_interval)

    def run_once(self) -> None:
        """Catch up with the head and return."""
        self.run(once=True)

    def step(self) -> Progress:
        """One unit of work; commits at most one transaction."""
        self.prepare()
        try:
            return self._step()
        except _NodeBehind:
            metrics.NODE_BEHIND.inc()
            self.rpc.failover()
            cur = self.cursor.block_number if self.cursor else self.start_block - 1
            return Progress(cur, -1, -1, 0, 0, "behind")
        except _Retry:
            cur = self.cursor.block_number if self.cursor else self.start_block - 1
            return Progress(cur, -1, -1, 0, 0, "retry")

    def _heads(self) -> tuple[dict[str, Any], int, dict[str, Any] | None]:
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False])]
        if self.cursor is not None:
            calls.append(("eth_getBlockByNumber", [hex(self.cursor.block_number), False]))
        if self.has_finalized_tag is not False:
            calls.append(("eth_getBlockByNumber", ["finalized", False]))
        try:
            results = self.rpc.batch(calls)
        except RpcError:
            if self.has_finalized_tag is None:  # node without the tag
                self.has_finalized_tag = False
                return self._heads()
            raise
        latest = results[0]
        if not isinstance(latest, dict):
            raise _Retry()
        head = int(latest["number"], 16)
        at_cursor = results[1] if self.cursor is not None else None
        finalized = head - self.confirmations
        if self.has_finalized_tag is not False:
            fin = results[-1]
            if isinstance(fin, dict):
                self.has_finalized_tag = True
                finalized = int(fin["number"], 16)
            elif self.has_finalized_tag is None:
                self.has_finalized_tag = False
        return latest, min(max(finalized, -1), head), at_cursor

    def _verify_chain(self) -> None:
        """Every URL we read from (failovers too) must serve the deployment's chain."""
        while self.rpc.url not in self._verified_urls:
            gen, url = self.rpc.generation, self.rpc.url
            chain_id = self.rpc.chain_id()
            if self.rpc.generation == gen:
                self.deployment.require_chain(chain_id, url)
                self._verified_urls.add(url)
        self._step_gen = self.rpc.generation

    def _step(self) -> Progress:
        self._verify_chain()
        latest, finalized, at_cursor = self._heads()
        head = int(latest["number"], 16)
        metrics.HEAD.set(head)
        rollback_to: int | None = None
        anchor: tuple[int, str | None]
        if self.cursor is None:
            anchor = (self.start_block - 1, None)
        else:
            if head < self.cursor.block_number or at_cursor is None:
                raise _NodeBehind()
            anchor = (self.cursor.block_number, self.cursor.block_hash)
            if at_cursor["hash"] != self.cursor.block_hash:
                rollback_to, anchor_hash = self._common_ancestor()
                anchor = (rollback_to, anchor_hash)
        metrics.LAG.set(max(0, head - anchor[0]))
        if rollback_to is None and head <= anchor[0]:
            self._ensure_indexes()
            return Progress(anchor[0], head, finalized, 0, 0, "idle")
        if finalized > anchor[0] and rollback_to is None:
            return self._backfill(anchor, head, finalized)
        return self._live(anchor, head, finalized, rollback_to)

    # --- reorgs -----------------------------------------------------------------------------------------
    def _common_ancestor(self) -> tuple[int, str]:
        stored = self.store.stored_blocks()
        if not stored:
            raise DeepReorgError("reorg detected but no block hashes are stored")
        headers = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n, _ in stored])
        for (n, h), hdr in zip(stored, headers, strict=True):
            if hdr is None:
                raise _NodeBehind()
            if hdr["hash"] == h:
                assert self.cursor is not None
                depth = self.cursor.block_number - n
                log.warning("reorg: rolling back %d block(s) to common ancestor %d", depth, n)
                self.reorgs += 1
                metrics.REORGS.inc()
                metrics.REORG_DEPTH.set(depth)
                return n, h
        low_n, low_h = stored[-1]
        raise DeepReorgError(
            f"reorg deeper than the finality window: block {low_n} ({low_h}) is no longer on the chain; "
            f"re-index from scratch or raise the confirmation depth"
        )

    # --- backfill ---------------------------------------------------------------------------------------
    def _get_logs(self, lo: int, hi_cap: int) -> tuple[int, list[dict[str, Any]], int]:
        """Logs of [lo, hi <= hi_cap] with the adaptive range; returns (hi, logs, generation)."""
        while True:
            hi = min(hi_cap, lo + self.range - 1)
            gen = self.rpc.generation
            try:
                logs = self.rpc.call(
                    "eth_getLogs",
                    [{"fromBlock": hex(lo), "toBlock": hex(hi), "address": self.addresses}],
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
                raise _Retry()
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

    def _backfill(self, anchor: tuple[int, str | None], head: int, finalized: int) -> Progress:
        """Consecutive finalized ranges from `cursor + 1` in ONE transaction with the cursor: for up to
        `backfill_commit_s` seconds or `backfill_max_events` events (the first step of a process commits its
        first range alone, so a restart shows progress at once). The ranges' end headers and the anchor are
        checked in one round trip before the commit."""
        lo0 = lo = anchor[0] + 1
        started = time.monotonic()
        budget = self.options.backfill_commit_s if self._backfill_steps else 0.0
        self._backfill_steps += 1
        ends: list[tuple[int, list[dict[str, Any]]]] = []  # (range end, its last logs)
        n_events = 0
        with self.store.transaction() as tx:
            while True:
                hi, tail, n = self._backfill_range(tx, lo, finalized)
                ends.append((hi, tail))
                n_events += n
                lo = hi + 1
                if (
                    hi >= finalized
                    or n_events >= self.options.backfill_max_events
                    or time.monotonic() - started >= budget
                ):
                    break
            hdr = self._check_range_ends(anchor, ends)
            tx.finish(
                chain_id=self.deployment.chain_id,
                blocks=[(hi, hdr["hash"], hdr["parentHash"])],
                cursor=(hi, hdr["hash"]),
                prune_below=finalized,
            )
        assert self.cursor is None or anchor[0] == self.cursor.block_number
        self._committed(hi, hdr["hash"], n_events)
        return Progress(hi, head, finalized, n_events, hi - lo0 + 1, "backfill")

    def _backfill_range(
        self, tx: Transaction, lo: int, finalized: int
    ) -> tuple[int, list[dict[str, Any]], int]:
        """Fetch (or take the prefetched) logs of [lo, hi], start fetching the next range, decode and write
        them into `tx`; returns (hi, the range's last logs, number of logs)."""
        fetched = self._take_prefetch(lo)
        hi, logs, gen = fetched if fetched is not None else self._get_logs(lo, finalized)
        if not gen == self._step_gen == self.rpc.generation:
            raise _Retry()  # the logs and the headers may come from different nodes
        n_logs = len(logs)
        self._grow(hi - lo + 1, n_logs)
        if hi < finalized:  # fetch the next ranges while this one is decoded and written
            self._start_prefetch(hi + 1, finalized)
        tail = logs[-64:]
        rows = self._decode(logs, {})
        del logs
        tx.write(rows)
        return hi, tail, n_logs

    def _check_range_ends(
        self, anchor: tuple[int, str | None], ends: list[tuple[int, list[dict[str, Any]]]]
    ) -> dict[str, Any]:
        """One round trip: each range end's header must match its logs (same fork) and the anchor must still
        be on the chain; returns the last end's header."""
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", [hex(hi), False]) for hi, _ in ends]
        if anchor[1] is not None:
            calls.append(("eth_getBlockByNumber", [hex(anchor[0]), False]))
        headers = self.rpc.batch(calls)
        if not self._step_gen == self.rpc.generation:
            raise _Retry()  # failover during the step: redo it on the (verified) new node
        if anchor[1] is not None:
            at_anchor = headers.pop()
            if at_anchor is None or at_anchor["hash"] != anchor[1]:
                raise _Retry()  # the cursor block changed under us: the next step handles the reorg
        for (hi, tail), hdr in zip(ends, headers, strict=True):
            if hdr is None:
                raise _NodeBehind()
            hi_hex = hex(hi)
            if any(lg["blockNumber"] == hi_hex and lg["blockHash"] != hdr["hash"] for lg in tail):
                raise _Retry()  # logs and header from different forks
        last: dict[str, Any] = headers[-1]
        return last

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

    def _take_prefetch(self, lo: int) -> tuple[int, list[dict[str, Any]], int] | None:
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

    def _decode(self, logs: list[dict[str, Any]], times: dict[str, int]) -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        missing: set[str] = set()
        for lg in logs:
            if "blockTimestamp" not in lg and lg["blockHash"] not in times:
                missing.add(lg["blockNumber"])
        if missing:
            got = self.rpc.batch([("eth_getBlockByNumber", [n, False]) for n in sorted(missing)])
            for hdr in got:
                if hdr is None:
                    raise _NodeBehind()
                times[hdr["hash"]] = int(hdr["timestamp"], 16)
        ts_cache: dict[str, int] = {}
        decoders: dict[str, tuple[Callable[[dict[str, Any], int], Any], Any] | None] = {}
        for lg in logs:  # the hot loop: one row per log, no per-log function calls but the decoder's
            if lg.get("removed"):
                raise _Retry()
            topics = lg["topics"]
            if not topics:
                continue
            try:
                entry = decoders[topics[0]]
            except KeyError:
                entry = decoders[topics[0]] = self._row_decoder(topics[0], rows)
            if entry is None:
                continue
            try:
                btime = ts_cache[lg["blockTimestamp"]]
            except KeyError:
                btime = self._block_time(lg, times, ts_cache)
            entry[1](entry[0](lg, btime))
        return rows

    def _row_decoder(
        self, topic0: str, rows: dict[str, list[tuple[Any, ...]]]
    ) -> tuple[Callable[[dict[str, Any], int], Any], Any] | None:
        """(log -> row, the append of its table's batch) for a topic0, or None for a foreign event; for an
        exploded event (log -> rows, the batch's extend)."""
        spec = self.specs.get(topic0)
        if spec is None:
            return None
        batch = rows.setdefault(spec.table, [])
        if spec.exploded:  # one log -> one row per array element (cairn.core.events.EXPLODED_EVENTS)
            return functools.partial(decode_exploded, spec), batch.extend
        decode = spec.decode_row or functools.partial(decode_log, spec)
        return decode, batch.append

    @staticmethod
    def _block_time(lg: dict[str, Any], times: dict[str, int], ts_cache: dict[str, int]) -> int:
        """A log's block time: its `blockTimestamp` (newer nodes) or its block header's."""
        ts = lg.get("blockTimestamp")
        if ts is not None:
            btime = ts_cache[ts] = int(ts, 16)
            return btime
        if lg["blockHash"] not in times:
            raise _Retry()  # header fetched from another fork
        return times[lg["blockHash"]]

    def _committed(self, number: int, block_hash: str, n_events: int) -> None:
        self.cursor = Cursor(self.deployment.chain_id, number, block_hash)
        self.events_total += n_events
        metrics.EVENTS.inc(n_events)
        metrics.INDEXED_BLOCK.set(number)

    # --- live -------------------------------------------------------------------------------------------
    def _ensure_indexes(self) -> None:
        if not self._indexes_built:
            from indexer.views import create_indexes

            with self.engine.begin() as conn:
                create_indexes(conn, self.store.tables)
            self._indexes_built = True

    def _live(
        self, anchor: tuple[int, str | None], head: int, finalized: int, rollback_to: int | None
    ) -> Progress:
        self._prefetch.clear()  # only ever consumed by the backfill steps right after the one that started it
        self._ensure_indexes()
        n0 = anchor[0] + 1
        n1 = min(head, anchor[0] + self.options.live_batch)
        if n1 < n0:  # reorg to a chain no longer than the ancestor: just roll back
            assert rollback_to is not None and anchor[1] is not None
            self.store.commit(
                chain_id=self.deployment.chain_id,
                rows={},
                blocks=[],
                cursor=(anchor[0], anchor[1]),
                rollback_to=rollback_to,
            )
            self._committed(anchor[0], anchor[1], 0)
            return Progress(anchor[0], head, finalized, 0, 0, "live")
        gen = self.rpc.generation
        headers = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(n0, n1 + 1)])
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
                raise _NodeBehind()
            raise _Retry()  # first block does not build on the cursor: next step finds the ancestor
        try:
            per_block = self.rpc.batch(
                [("eth_getLogs", [{"blockHash": h["hash"], "address": self.addresses}]) for h in chain]
            )
        except RpcError:
            raise _Retry() from None  # a block vanished between header and logs
        if not gen == self._step_gen == self.rpc.generation:
            raise _Retry()  # failover during the step: redo it on the (verified) new node
        logs: list[dict[str, Any]] = []
        times: dict[str, int] = {}
        for hdr, blogs in zip(chain, per_block, strict=True):
            if not isinstance(blogs, list):
                raise _Retry()
            times[hdr["hash"]] = int(hdr["timestamp"], 16)
            for lg in blogs:
                if lg["blockHash"] != hdr["hash"]:
                    raise _Retry()
                logs.append(lg)
        rows = self._decode(logs, times)
        last = chain[-1]
        self.store.commit(
            chain_id=self.deployment.chain_id,
            rows=rows,
            blocks=[(int(h["number"], 16), h["hash"], h["parentHash"]) for h in chain],
            cursor=(int(last["number"], 16), last["hash"]),
            rollback_to=rollback_to,
            prune_below=min(finalized, head - max(self.confirmations, 1)),
        )
        self._committed(int(last["number"], 16), last["hash"], len(logs))
        return Progress(int(last["number"], 16), head, finalized, len(logs), len(chain), "live")
