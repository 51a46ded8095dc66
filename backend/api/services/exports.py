"""CSV and Parquet exports of contributions, claims, payments (from the indexer's mirror) and allocations
(from the published allocation files' proof indexes), streamed: rows are read in keyset batches
(`backend.api.pagination`) and written out batch by batch, so memory stays bounded whatever the size.

Wei amounts are decimal strings (uint256 does not fit a 64-bit integer), block numbers and times integers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.mirror import as_int, table_exists
from backend.api.pagination import sql_page
from backend.api.services import allocations, epochs
from backend.api.settings import ApiSettings
from cairn.core.errors import InvalidInputError

BATCH = 5_000
FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
STR, INT, BOOL = pa.string(), pa.int64(), pa.bool_()


@dataclass(frozen=True)
class Kind:
    """One export: its columns (name, Arrow type, how a mirror row gives the value) and where rows come
    from (`table`, a SELECT over the mirror, keyset-walked oldest first; None: allocation files)."""

    columns: tuple[tuple[str, pa.DataType], ...]
    table: str | None = None
    select: str = ""

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t) for n, t in self.columns])


def _wei(v: Any) -> str | None:
    return None if v is None else str(as_int(v))


KINDS: dict[str, Kind] = {
    "contributions": Kind(
        (("contribution_id", STR), ("kind", STR), ("owner", STR), ("model_id", STR), ("size", STR),
         ("work_units", STR), ("uri", STR), ("withdrawn", BOOL), ("block_number", INT), ("log_index", INT),
         ("item_index", INT), ("block_time", INT)),
        "v_contributions", "SELECT * FROM v_contributions",
    ),
    "claims": Kind(
        (("account", STR), ("caller", STR), ("amount", STR), ("cumulative_amount", STR), ("tx_hash", STR),
         ("block_number", INT), ("log_index", INT), ("block_time", INT)),
        epochs.CLAIMED, f"SELECT *, 0 AS item_index FROM {epochs.CLAIMED}",
    ),
    "payments": Kind(
        (("payer", STR), ("model_id", STR), ("epoch", INT), ("amount", STR), ("fee", STR),
         ("request_hash", STR), ("request_count", STR), ("tx_hash", STR), ("block_number", INT),
         ("log_index", INT), ("block_time", INT)),
        "ev_payment_settled", "SELECT *, 0 AS item_index FROM ev_payment_settled",
    ),
    "allocations": Kind(
        (("epoch", INT), ("root", STR), ("account", STR), ("amount", STR), ("cumulative_amount", STR)),
    ),
}  # fmt: skip
_WEI = {"size", "work_units", "amount", "fee", "cumulative_amount", "request_count"}


def parse(name: str) -> tuple[str, str]:
    """`claims.csv` -> ("claims", "csv"), or one clear InvalidInputError."""
    kind, _, fmt = name.rpartition(".")
    if kind not in KINDS or fmt not in FORMATS:
        raise InvalidInputError(
            f"export must be <kind>.<format> with kind one of {', '.join(KINDS)} and format csv or parquet, "
            f"got {name!r}",
            field="name",
        )
    return kind, fmt


def _value(column: str, typ: pa.DataType, row: dict[str, Any]) -> Any:
    v = row.get(column)
    if v is None:
        return None
    if typ == BOOL:
        return bool(v)
    if typ == INT:
        return as_int(v)
    return _wei(v) if column in _WEI else str(v)


def _mirror_rows(engine: Engine, kind: Kind) -> Iterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        with Session(engine) as session:
            if kind.table is None or not table_exists(session, kind.table):
                return
            page = sql_page(session, select=kind.select, limit=BATCH, cursor=cursor, descending=False)
        if page.items:
            yield page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _allocation_rows(engine: Engine, settings: ApiSettings) -> Iterator[list[dict[str, Any]]]:
    """Every leaf of every live root whose file is here, epoch by epoch, accounts in address order; the
    epoch's amount is the cumulative minus the account's cumulative under the previous such root."""
    with Session(engine) as session:
        roots = epochs.live_roots(session)
    previous = None
    for root in roots:
        index = allocations.index_of(settings=settings, root=root)
        if index is None:
            continue
        batch: list[dict[str, Any]] = []
        for account, cumulative in index.records():
            before = (previous.amount(account) or 0) if previous is not None else 0
            batch.append({
                "epoch": root["epoch"], "root": root["root"], "account": account,
                "amount": cumulative - before, "cumulative_amount": cumulative,
            })  # fmt: skip
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        previous = index


def batches(engine: Engine, settings: ApiSettings, name: str) -> Iterator[list[dict[str, Any]]]:
    """The export's rows, a batch at a time, as the columns' values."""
    kind = KINDS[name]
    source = _allocation_rows(engine, settings) if kind.table is None else _mirror_rows(engine, kind)
    for raw in source:
        yield [{c: _value(c, t, r) for c, t in kind.columns} for r in raw]


def _csv(v: Any) -> Any:
    """Booleans as `true` / `false` (what CSV readers and Parquet's own text form expect)."""
    return ("true" if v else "false") if isinstance(v, bool) else v


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written since the last `take()`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        return len(data)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def stream(engine: Engine, settings: ApiSettings, name: str, fmt: str) -> Iterator[bytes]:
    """The export as bytes, produced batch by batch (CSV: a header line, then rows; Parquet: one row group
    per batch, the footer at the end)."""
    kind = KINDS[name]
    sink = _Sink()
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=[c for c, _ in kind.columns], lineterminator="\n")
        writer.writeheader()
        for batch in batches(engine, settings, name):
            writer.writerows([{k: _csv(v) for k, v in r.items()} for r in batch])
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
        yield text.getvalue().encode()  # the header alone when there are no rows
        return
    pw = pq.ParquetWriter(sink, kind.schema)
    wrote = False
    for batch in batches(engine, settings, name):
        pw.write_table(pa.Table.from_pylist(batch, schema=kind.schema))
        wrote = True
        yield sink.take()
    if not wrote:
        pw.write_table(kind.schema.empty_table())
    pw.close()
    yield sink.take()
