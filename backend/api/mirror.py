"""Reading the indexer's mirror (`ev_*` tables, docs/ARCHITECTURE.md) with plain SQL that runs on SQLite and
PostgreSQL alike. Uint256 columns come back as TEXT (SQLite) or NUMERIC (PostgreSQL): `as_int` reads both."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

_known: dict[tuple[int, str], bool] = {}
_known_lock = threading.Lock()


def table_exists(session: Session, name: str) -> bool:
    """True once the indexer has created `name`; positive answers are cached per engine."""
    bind = session.get_bind()
    key = (id(bind), name)
    if _known.get(key):
        return True
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as conn:
        found = inspect(conn).has_table(name)
    if found:
        with _known_lock:
            _known[key] = True
    return found


def rows(session: Session, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in session.execute(text(sql), dict(params or {}))]


def as_int(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int(str(value).split(".")[0]) if isinstance(value, str) else int(value)  # type: ignore[call-overload]


def json_list(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    parsed = json.loads(str(value))
    return parsed if isinstance(parsed, list) else []


def in_clause(prefix: str, values: Sequence[object]) -> tuple[str, dict[str, object]]:
    """`(:p0, :p1, ...)` and its parameters, for `IN` lists built from validated values."""
    names = [f"{prefix}{i}" for i in range(len(values))]
    return "(" + ", ".join(f":{n}" for n in names) + ")", dict(zip(names, values, strict=True))


def mirror_version(session: Session) -> tuple[Any, ...] | None:
    """The indexer's last commit (block, hash, time): it changes with every commit, a rollback included, so
    anything computed from the mirror can be cached under it."""
    if not table_exists(session, "indexer_cursor"):
        return None
    found = session.execute(
        text("SELECT block_number, block_hash, updated_at FROM indexer_cursor WHERE id = 1")
    ).first()
    return None if found is None else tuple(found)
