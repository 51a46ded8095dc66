"""Crash-safe transaction outbox: the one way Cairn's backend and CLI send a transaction.

Everything that signs goes through it: the rewards engine (propose, accept, payouts), the API relayer, the
deployer and the demo. Persist signed transactions before broadcasting, fixed nonces shared across processes
through the database, fee bumps, reconciliation at start-up.

Rules that make a kill -9 at any point harmless:
1. `enqueue(key, ...)` is idempotent on `key` (the caller's name for the effect, e.g. `propose:31337:5`): a
   second call returns the existing row and sends nothing new.
2. The nonce is fixed when the row is written, in the same database transaction as the signed raw transaction
   (`outbox_tx` + first `outbox_attempt`). Nothing is broadcast before that commit. One key -> one nonce ->
   at most one of its signed versions can ever be mined: no double publication or payment. Nonces are per
   (chain, sender) and shared by every process on the database (`backend.outbox.store.reserve`).
3. `process()` (run at start and in a loop, e.g. `OutboxWorker`) reconciles every pending row with the chain:
   a receipt for any of its attempts' hashes settles it; if the sender's mined nonce has passed the row's
   nonce without a receipt for any attempt, on looks at least `PASSED_BLOCKS` blocks apart (a node may show a
   block's state before its receipts), it was replaced from outside and is marked `failed`; otherwise the
   latest attempt is re-broadcast (nothing is lost), and after `stuck_after` seconds it is replaced by a
   new attempt with the same nonce and fees bumped by `bump_percent` (persisted before broadcast).
"""

from __future__ import annotations

from backend.outbox.memory import memory_engine
from backend.outbox.sender import PASSED_BLOCKS, Outbox
from backend.outbox.store import CONFIRMED, FAILED, PENDING, OutboxTx
from backend.outbox.worker import OutboxWorker

__all__ = [
    "CONFIRMED", "FAILED", "PASSED_BLOCKS", "PENDING", "Outbox", "OutboxTx", "OutboxWorker", "memory_engine",
]  # fmt: skip
