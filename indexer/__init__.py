"""Cairn indexer: an exact, reorg-safe, resumable SQL mirror of every event of every Cairn contract.

* `cairn index` (or `python -m cairn.cli.index`) follows the chain; `--once` catches up and exits;
`--metrics-port N`
  serves Prometheus metrics (lag, events, reorgs, RPC errors); `--finality auto|tag|confirmations`.
* Library: `indexer.core.Indexer(settings, deployment).run(stop_event)` (e.g. a daemon thread of the API),
  `latest_indexed_block(engine)` for GET /health, `indexer.store.upgrade(engine, specs)` for migrations.
* Tables: `ev_<snake_event>` per event (indexer.schema), `indexer_cursor`, `indexer_blocks`; derived views for
  the backend in `indexer.views` (stable column names documented there).
* How it works: indexer.core (the loop, composing the rest), indexer.heads (head and finality),
  indexer.reorg (common ancestor), indexer.backfill (finalized ranges), indexer.follow (live blocks),
  indexer.decode (logs -> rows with cairn.core.events), indexer.rpc (JSON-RPC, retries, failover),
  indexer.store (one transaction per step).
"""

from __future__ import annotations

from indexer.store import latest_indexed_block

__all__ = ["latest_indexed_block"]
