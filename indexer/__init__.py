"""Cairn indexer: an exact, reorg-safe, resumable SQL mirror of every Cairn contract event.

Library entry points: `Indexer(settings, deployment).run(stop_event)` (e.g. in an API background thread) and
`latest_indexed_block(engine)` (for GET /health). Views for the backend: `indexer.views`.
"""

from __future__ import annotations

from indexer.store import latest_indexed_block

__all__ = ["latest_indexed_block"]
