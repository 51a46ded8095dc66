"""The indexer: an exact, reorg-safe, resumable SQL mirror of a deployment's events, one step at a time.

The only state is the cursor (last committed block and its hash) and the hashes of unfinalized blocks, both in
the database and committed in the same transaction as the rows. Each step:

1. One batched round trip (indexer.heads): `latest`, `finalized` (if the node has the tag) and the header at
   our cursor; which block is final is `cairn.core.finality.decide_finalized`.
2. Node behind (no header at our cursor): count it, fail over, wait. Never a rollback.
3. Cursor hash differs from the node's: a reorg (also one that happened while we were down). Walk the stored
   hashes back to the common ancestor (indexer.reorg); the rollback is committed together with the re-applied
   blocks.
4. Finalized blocks above the cursor: backfill (indexer.backfill), adaptive `eth_getLogs` ranges fetched ahead
   in a background thread, about a second of ranges per transaction.
5. Otherwise the unfinalized blocks above the cursor, block by block (indexer.follow).

Logs become rows in indexer.decode, and every write is one transaction of indexer.store. Since every step
starts exactly at `cursor + 1` and commits atomically, the switch from backfill to live, a kill -9, or a
retried step can neither lose nor duplicate an event. Secondary indexes are built once the indexer has caught
up.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.errors import ChainUnreachableError, WrongChainError
from cairn.core.events import EventSpec, specs_from_abis
from cairn.core.finality import check_mode
from cairn.core.settings import Settings
from indexer import metrics
from indexer.backfill import Backfill
from indexer.context import StepContext
from indexer.decode import Decoder
from indexer.follow import Follow
from indexer.heads import Heads
from indexer.reorg import common_ancestor
from indexer.rpc import RpcClient
from indexer.step import Anchor, IndexerOptions, NodeBehind, Progress, Retry
from indexer.store import Cursor, Store, upgrade
from indexer.views import create_indexes

log = logging.getLogger("cairn.indexer")

__all__ = ["Indexer", "IndexerOptions", "Progress"]

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
        self.options = options = options or IndexerOptions()
        self.finality = check_mode(options.finality or settings.finality)
        depth = options.confirmations
        self.confirmations = depth if depth is not None else settings.confirmations
        self._own_engine = engine is None
        self.engine = engine or make_engine(settings.database_url)
        self.stop = threading.Event()
        self.rpc = RpcClient(
            settings.rpc_urls,
            timeout=options.rpc_timeout,
            max_attempts=options.rpc_attempts,
            on_error=lambda kind: metrics.RPC_ERRORS.labels(kind).inc(),
            stop=self.stop,
            max_response_bytes=options.max_response_bytes,
        )
        uint_as_str = self.engine.dialect.name != "postgresql"
        self.specs: dict[str, EventSpec] = specs_from_abis(
            (c.abi for c in deployment.contracts.values()), uint_as_str=uint_as_str
        )
        addresses = sorted({c.address.lower() for c in deployment.contracts.values()})
        self.start_block = deployment.start_block
        self.store = Store(self.engine, self.specs)
        self.on_progress = on_progress
        self.heads = Heads(self.rpc, mode=self.finality, confirmations=self.confirmations)
        ctx = StepContext(
            rpc=self.rpc,
            store=self.store,
            decoder=Decoder(self.specs, self.rpc),
            options=options,
            chain_id=deployment.chain_id,
            addresses=addresses,
            confirmations=self.confirmations,
        )
        self.backfill = Backfill(ctx)
        self.follow = Follow(ctx)
        self.cursor: Cursor | None = None
        self.events_total = 0
        self.reorgs = 0
        self._prepared = False
        self._indexes_built = False
        self._verified_urls: set[str] = set()
        self._step_gen = 0

    # --- start-up ---------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Verify the chain id, run migrations, load the cursor. Idempotent."""
        if self._prepared:
            return
        self._verify_chain()
        upgrade(self.engine, self.specs)
        self.cursor = self.store.cursor()
        if self.cursor is not None and self.cursor.chain_id != self.deployment.chain_id:
            raise WrongChainError(
                f"database {self.engine.url!r} holds chain {self.cursor.chain_id}, "
                f"the deployment is chain {self.deployment.chain_id}"
            )
        self._prepared = True

    def close(self) -> None:
        self.backfill.close()
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
        except NodeBehind:
            metrics.NODE_BEHIND.inc()
            self.rpc.failover()
            return Progress(self._cursor_block(), -1, -1, 0, 0, "behind")
        except Retry:
            return Progress(self._cursor_block(), -1, -1, 0, 0, "retry")

    def _cursor_block(self) -> int:
        return self.cursor.block_number if self.cursor else self.start_block - 1

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
        cursor = self.cursor
        latest, finalized, at_cursor = self.heads.read(cursor.block_number if cursor else None)
        head = int(latest["number"], 16)
        metrics.HEAD.set(head)
        rollback_to: int | None = None
        anchor: Anchor
        if cursor is None:
            anchor = (self.start_block - 1, None)
        else:
            if head < cursor.block_number or at_cursor is None:
                raise NodeBehind()
            anchor = (cursor.block_number, cursor.block_hash)
            if at_cursor["hash"] != cursor.block_hash:
                rollback_to, anchor_hash = common_ancestor(self.store, self.rpc, cursor.block_number)
                self.reorgs += 1
                anchor = (rollback_to, anchor_hash)
        metrics.LAG.set(max(0, head - anchor[0]))
        if rollback_to is None and head <= anchor[0]:
            self._ensure_indexes()
            return Progress(anchor[0], head, finalized, 0, 0, "idle")
        if finalized > anchor[0] and rollback_to is None:
            progress, block_hash = self.backfill.step(anchor, head, finalized, self._step_gen)
        else:
            self.backfill.drop_prefetch()
            self._ensure_indexes()
            progress, block_hash = self.follow.step(anchor, head, finalized, rollback_to, self._step_gen)
        # The lag after this step, set before the block so a scrape never sees the new block with the old lag.
        metrics.LAG.set(max(0, head - progress.cursor))
        self._committed(progress.cursor, block_hash, progress.events)
        return progress

    def _committed(self, number: int, block_hash: str, n_events: int) -> None:
        self.cursor = Cursor(self.deployment.chain_id, number, block_hash)
        self.events_total += n_events
        metrics.EVENTS.inc(n_events)
        metrics.INDEXED_BLOCK.set(number)

    def _ensure_indexes(self) -> None:
        """Secondary indexes, once caught up (building them after the backfill is several times faster)."""
        if not self._indexes_built:
            with self.engine.begin() as conn:
                create_indexes(conn, self.store.tables)
            self._indexes_built = True
