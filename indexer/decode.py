"""Logs -> table rows, with the ABI-derived event catalogue (cairn.core.events).

One row per log (one per array element for an exploded event), batched per table. A log's block time is its
`blockTimestamp` (newer nodes) or, for nodes without it, its block header's, fetched in one round trip for the
blocks that lack both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cairn.core.events import EventSpec, decode_exploded, decode_log
from indexer.rpc import RpcClient
from indexer.step import NodeBehind, Retry

Rows = dict[str, list[tuple[Any, ...]]]  # table -> rows in chain order
_RowDecoder = tuple[Callable[[dict[str, Any], int], Any], Any]  # (log -> row(s), its batch's append/extend)


class Decoder:
    """Decodes the logs of Cairn's contracts; foreign events are skipped."""

    def __init__(self, specs: dict[str, EventSpec], rpc: RpcClient) -> None:
        self.specs = specs
        self.rpc = rpc

    def decode(self, logs: list[dict[str, Any]], times: dict[str, int]) -> Rows:
        """Rows of `logs`; `times` maps block hashes to known block times (filled in here where missing)."""
        rows: Rows = {}
        missing: set[str] = set()
        for lg in logs:
            if "blockTimestamp" not in lg and lg["blockHash"] not in times:
                missing.add(lg["blockNumber"])
        if missing:
            for hdr in self.rpc.headers(sorted(missing)):
                if hdr is None:
                    raise NodeBehind()
                times[hdr["hash"]] = int(hdr["timestamp"], 16)
        ts_cache: dict[str, int] = {}
        decoders: dict[str, _RowDecoder | None] = {}
        for lg in logs:  # the hot loop: one row per log, no per-log function calls but the decoder's
            if lg.get("removed"):
                raise Retry()
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
                btime = _block_time(lg, times, ts_cache)
            entry[1](entry[0](lg, btime))
        return rows

    def _row_decoder(self, topic0: str, rows: Rows) -> _RowDecoder | None:
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


def _block_time(lg: dict[str, Any], times: dict[str, int], ts_cache: dict[str, int]) -> int:
    """A log's block time: its `blockTimestamp` (newer nodes) or its block header's."""
    ts = lg.get("blockTimestamp")
    if ts is not None:
        btime = ts_cache[ts] = int(ts, 16)
        return btime
    if lg["blockHash"] not in times:
        raise Retry()  # header fetched from another fork
    return times[lg["blockHash"]]
