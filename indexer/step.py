"""What the parts of an indexer step share: the options, the step's result, and the two ways it ends early.

A step (indexer.core) builds on an *anchor*: the block it continues from, `(number, hash)`, with hash None
before the first block. Backfill (indexer.backfill) and live following (indexer.follow) both start at
`anchor + 1`; either may stop the step with `NodeBehind` (the node lacks a block we have: fail over, never
roll back) or `Retry` (an inconsistent view of the chain: just run the step again).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.finality import FinalityMode

Anchor = tuple[int, str | None]  # (block number, its hash; None below the deployment's first block)


class NodeBehind(Exception):
    """The node does not have a block we already hold."""


class Retry(Exception):
    """The step saw an inconsistent view of the chain (reorg in flight, failover); just run it again."""


@dataclass
class IndexerOptions:
    finality: FinalityMode | None = None  # default: Settings.finality (cairn.core.finality)
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
    mode: str  # "backfill", "live", "idle", "behind", "retry"
