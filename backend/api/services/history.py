"""An account's history, newest first, from the chain alone (the indexer's mirror) and the published
allocation files: its registrations (datasets and compute jobs), attestations (as a validator), rewards (one
entry per epoch with a live root that names it: the epoch's amount and the cumulative), claims and payments
(as a payer). One keyset over `(block_number, log_index, item_index)`: a reward entry sits at its root's
`RootProposed` event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.api.mirror import PerCommitCache, as_int, table_exists
from backend.api.pagination import EVENT_KEY, decode, list_page, sql_page
from backend.api.services import allocations, contributions, epochs
from backend.api.settings import ApiSettings
from cairn.core.errors import InvalidInputError

KINDS = ("registration", "attestation", "reward", "claim", "payment")
PAYMENTS = "ev_payment_settled"
_T = "CAST(NULL AS TEXT)"
_N = "CAST(NULL AS BIGINT)"
_NAMES = (
    "entry", "contribution_id", "contribution_kind", "score", "amount", "cumulative_amount", "model_id",
    "epoch", "tx_hash", "block_number", "log_index", "item_index", "block_time",
)  # fmt: skip


def _select(table: str, where: str, *values: str) -> str:
    """`SELECT <values AS the shared names> FROM table WHERE where` (every branch names every column, so
    the union reads the same whichever tables exist yet)."""
    named = ", ".join(f"{v} AS {n}" for v, n in zip(values, _NAMES, strict=True))
    return f"SELECT {named} FROM {table} WHERE {where}"


_EV = ("tx_hash", "block_number", "log_index")
# kind -> [(table it needs, SELECT of the shared columns for rows of :a)]
_SOURCES: dict[str, list[tuple[str, str]]] = {
    "registration": [
        (contributions.DATASETS, _select(
            contributions.DATASETS, "owner = :a", "'registration'", "content_hash", "'dataset'", _N, _T, _T,
            _T, _T, *_EV, "item_index", "block_time",
        )),
        (contributions.COMPUTE, _select(
            contributions.COMPUTE, "provider = :a", "'registration'", "contribution_id", "'compute'", _N, _T,
            _T, "model_id", _T, *_EV, "0", "block_time",
        )),
    ],
    "attestation": [
        (contributions.ATTESTED, _select(
            contributions.ATTESTED, "validator = :a", "'attestation'", "contribution_id", _T, "score", _T, _T,
            _T, _T, *_EV, "0", "block_time",
        )),
    ],
    "claim": [
        (epochs.CLAIMED, _select(
            epochs.CLAIMED, "account = :a", "'claim'", _T, _T, _N, "CAST(amount AS TEXT)",
            "CAST(cumulative_amount AS TEXT)", _T, _T, *_EV, "0", "block_time",
        )),
    ],
    "payment": [
        (PAYMENTS, _select(
            PAYMENTS, "payer = :a", "'payment'", _T, _T, _N, "CAST(amount AS TEXT)", _T, "model_id",
            "CAST(epoch AS TEXT)", *_EV, "0", "block_time",
        )),
    ],
}  # fmt: skip


def parse_kinds(value: str | None) -> tuple[str, ...]:
    if not value:
        return KINDS
    kinds = tuple(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise InvalidInputError(
            f"kinds must be a comma-separated subset of {', '.join(KINDS)}, got {value!r}", field="kinds"
        )
    return kinds


def _out(r: dict[str, Any]) -> dict[str, Any]:
    def num(v: Any) -> str | None:
        return None if v is None else str(as_int(v))

    return {
        "kind": r["entry"],
        "contribution_id": r.get("contribution_id"),
        "contribution_kind": r.get("contribution_kind"),
        "score": None if r.get("score") is None else as_int(r["score"]),
        "amount": num(r.get("amount")),
        "cumulative_amount": num(r.get("cumulative_amount")),
        "model_id": r.get("model_id"),
        "epoch": None if r.get("epoch") is None else as_int(r["epoch"]),
        "root": r.get("root"),
        "tx_hash": r.get("tx_hash"),
        "block_number": as_int(r["block_number"]),
        "log_index": as_int(r["log_index"]),
        "item_index": as_int(r["item_index"]),
        "block_time": as_int(r["block_time"]),
    }


_REWARDS = PerCommitCache(10_000, lambda entries: [dict(r) for r in entries])  # accounts kept


def rewards(session: Session, *, settings: ApiSettings, address: str) -> list[dict[str, Any]]:
    """One entry per epoch whose live root's allocation file (on this server) names `address`, newest
    first: the epoch's amount (its cumulative minus the previous one) and the cumulative. Kept per indexer
    commit (roots change only with the mirror; allocation files are content-addressed)."""
    found: list[dict[str, Any]] = _REWARDS.get(
        session, (str(settings.data_dir), address.lower()),
        lambda: _rewards(session, settings=settings, address=address),
    )  # fmt: skip
    return found


def _rewards(session: Session, *, settings: ApiSettings, address: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    previous = 0
    for root in epochs.live_roots(session):
        index = allocations.index_of(settings=settings, root=root)
        if index is None:
            continue
        cumulative = index.amount(address)
        if cumulative is None:
            continue
        out.append({
            "entry": "reward", "epoch": root["epoch"], "root": root["root"], "amount": cumulative - previous,
            "cumulative_amount": cumulative, "tx_hash": root["proposed_tx"],
            "block_number": root["proposed_block"], "log_index": root["proposed_log_index"], "item_index": 0,
            "block_time": root["proposed_time"],
        })  # fmt: skip
        previous = cumulative
    out.reverse()
    return out


def history(
    session: Session,
    *,
    settings: ApiSettings,
    address: str,
    kinds: tuple[str, ...],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    addr = address.lower()
    if cursor is not None:
        decode(cursor, len(EVENT_KEY))  # a bad cursor is one clear 422 before any query
    parts = [
        sql for k in kinds if k != "reward" for table, sql in _SOURCES[k] if table_exists(session, table)
    ]
    found: list[dict[str, Any]] = []
    if parts:
        select = f"SELECT * FROM ({' UNION ALL '.join(parts)}) h"
        # one row more than a page: merged with the reward entries, the page is cut below
        found = sql_page(session, select=select, params={"a": addr}, limit=limit + 1, cursor=cursor).items
    if "reward" in kinds:
        found += rewards(session, settings=settings, address=addr)

    def key(r: dict[str, Any]) -> tuple[int, int, int]:
        return as_int(r["block_number"]), as_int(r["log_index"]), as_int(r["item_index"])

    found.sort(key=key, reverse=True)
    page = list_page(found, key=key, width=3, limit=limit, cursor=cursor)
    return {"address": address, "items": [_out(r) for r in page.items], "next_cursor": page.next_cursor}
