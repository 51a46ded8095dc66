"""Keyset pagination, the one helper every list endpoint uses.

A page is ordered by integer key columns (newest first by default: `(block_number, log_index, item_index)`
for chain events, `(epoch,)` for epochs); its `next_cursor` is the last row's key joined by `-` (for chain
events the same `<block>-<log index>-<item>` as before). The next page holds the rows strictly after that key
in the order, so a walk over all pages returns every row once, even while new rows are appended at the head.
`sql_page` pushes the condition and the limit into SQL (an index on the key columns answers it); `list_page`
does the same over rows already in memory (e.g. epochs assembled from several event tables).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.api.mirror import as_int, rows
from cairn.core.errors import InvalidInputError

EVENT_KEY = ("block_number", "log_index", "item_index")
KEY_MAX = 2**63 - 1  # key columns are BIGINT (and SQLite binds at most 2^63-1)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode(key: Sequence[int]) -> str:
    return "-".join(str(int(k)) for k in key)


def decode(cursor: str, width: int) -> tuple[int, ...]:
    """A cursor of `width` non-negative integers (a shorter one is padded with zeros: `<block>-<log>`)."""
    try:
        parts = [int(p) for p in cursor.split("-")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= width or any(not 0 <= p <= KEY_MAX for p in parts):
        shape = "-".join(["<n>"] * width)
        raise InvalidInputError(
            f"cursor must be the next_cursor of a previous page ({shape}), got {cursor!r}", field="cursor"
        )
    return tuple(parts + [0] * (width - len(parts)))


def check_limit(limit: int, largest: int) -> int:
    """`limit` within 1..`largest` (the server's `api_page_limit`), or one clear InvalidInputError."""
    if limit > largest:
        raise InvalidInputError(f"limit must be at most {largest}, got {limit}", field="limit")
    if limit < 1:
        raise InvalidInputError(f"limit must be at least 1, got {limit}", field="limit")
    return limit


def _after(columns: Sequence[str], descending: bool) -> str:
    """`(c0, c1, ...) < (:k0, :k1, ...)` (or `>`), spelled out for every database."""
    op = "<" if descending else ">"
    cond = f"{columns[-1]} {op} :k{len(columns) - 1}"
    for i in range(len(columns) - 2, -1, -1):
        cond = f"({columns[i]} {op} :k{i} OR ({columns[i]} = :k{i} AND {cond}))"
    return cond


def sql_page(
    session: Session,
    *,
    select: str,
    where: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    key: Sequence[str] = EVENT_KEY,
    limit: int,
    cursor: str | None,
    descending: bool = True,
) -> Page:
    """`select` is `SELECT ... FROM <table or subquery>`; `where` are ANDed conditions on its columns."""
    conds = list(where)
    bound = dict(params or {})
    if cursor is not None:
        conds.append(_after(key, descending))
        bound.update({f"k{i}": v for i, v in enumerate(decode(cursor, len(key)))})
    order = ", ".join(f"{c} {'DESC' if descending else 'ASC'}" for c in key)
    sql = select + (" WHERE " + " AND ".join(conds) if conds else "") + f" ORDER BY {order} LIMIT :_limit"
    found = rows(session, sql, {**bound, "_limit": limit + 1})
    return _cut(found, limit, lambda r: [as_int(r[c]) for c in key])


def list_page(
    items: Sequence[dict[str, Any]],
    *,
    key: Callable[[dict[str, Any]], Sequence[int]],
    width: int,
    limit: int,
    cursor: str | None,
    descending: bool = True,
) -> Page:
    """The same over `items` already sorted by `key` (`width` integers) in the page order."""
    chosen = list(items)
    if cursor is not None:
        after = decode(cursor, width)
        chosen = [i for i in chosen if (tuple(key(i)) < after if descending else tuple(key(i)) > after)]
    return _cut(chosen[: limit + 1], limit, key)


def _cut(found: list[dict[str, Any]], limit: int, key: Callable[[dict[str, Any]], Sequence[int]]) -> Page:
    page = found[:limit]
    more = len(found) > limit and bool(page)
    return Page(page, encode(key(page[-1])) if more else None)
