"""Datasets, compute contributions and their attestations, read from the indexer's mirror."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from web3 import Web3

from backend.api.mirror import as_int, in_clause, rows, table_exists
from backend.api.pagination import EVENT_KEY, decode, sql_page
from backend.api.relayer import relay_records
from cairn.core.errors import NotFoundError
from cairn.core.policy import median_floor
from indexer.store import latest_indexed_block

DATASETS = "v_datasets"  # the indexer's view: single and batch registrations, one row per dataset
COMPUTE = "ev_compute_registered"
ATTESTED = "ev_attested"
LATEST_ATTESTATIONS = (
    "v_attestations_latest"  # the indexer's view: latest score per (contribution, validator)
)
WITHDRAWN = "ev_contribution_withdrawn"


def _cs(address: str) -> str:
    return str(Web3.to_checksum_address(address))


def _withdrawn(session: Session, ids: list[str]) -> set[str]:
    if not ids or not table_exists(session, WITHDRAWN):
        return set()
    clause, params = in_clause("w", ids)
    found = rows(
        session, f"SELECT contribution_id FROM {WITHDRAWN} WHERE contribution_id IN {clause}", params
    )
    return {r["contribution_id"] for r in found}


def _dataset_out(r: dict[str, Any], withdrawn: set[str]) -> dict[str, Any]:
    return {
        "kind": "dataset",
        "content_hash": r["content_hash"],
        "owner": _cs(r["owner"]),
        "size": as_int(r["size"]),
        "license_id": as_int(r["license_id"]),
        "metadata_hash": r["metadata_hash"],
        "uri": r["uri"],
        "block_number": as_int(r["block_number"]),
        "block_time": as_int(r["block_time"]),
        "tx_hash": r["tx_hash"],
        "withdrawn": r["content_hash"] in withdrawn,
    }


def get_dataset(session: Session, *, content_hash: str) -> dict[str, Any]:
    found = (
        rows(session, f"SELECT * FROM {DATASETS} WHERE content_hash = :h", {"h": content_hash})
        if table_exists(session, DATASETS)
        else []
    )
    if not found:
        raise NotFoundError(
            f"no dataset with content hash {content_hash} is registered"
            f" (indexed up to block {_indexed(session)}){_relay_note(session, content_hash)}",
            content_hash=content_hash,
        )
    out = _dataset_out(found[0], _withdrawn(session, [content_hash]))
    out["score"] = aggregate_score(attestations(session, contribution_id=content_hash))
    return out


def _indexed(session: Session) -> int | None:
    bind = session.get_bind()
    return latest_indexed_block(bind if isinstance(bind, Engine) else bind.engine)


def _relay_note(session: Session, content_hash: str) -> str:
    """Point at a relayed registration that the mirror has not caught up with yet."""
    if not table_exists(session, relay_records.name):
        return ""
    found = session.execute(
        select(relay_records.c.tx_hash).where(relay_records.c.content_hash == content_hash)
    ).first()
    return "" if found is None else f"; a relayed registration was sent in tx {found[0]}"


def list_datasets(session: Session, *, owner: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """Newest first, keyset-paginated on (block_number, log_index, item_index)."""
    if not table_exists(session, DATASETS):
        return {"items": [], "next_cursor": None}
    where = ["owner = :owner"] if owner is not None else []
    page = sql_page(
        session, select=f"SELECT * FROM {DATASETS}", where=where,
        params={"owner": owner.lower()} if owner is not None else {}, limit=limit, cursor=cursor,
    )  # fmt: skip
    withdrawn = _withdrawn(session, [r["content_hash"] for r in page.items])
    return {"items": [_dataset_out(r, withdrawn) for r in page.items], "next_cursor": page.next_cursor}


def attestations(session: Session, *, contribution_id: str) -> list[dict[str, Any]]:
    """The latest attestation of each validator (a later one replaces an earlier one)."""
    if not table_exists(session, LATEST_ATTESTATIONS):
        return []
    found = rows(
        session,
        f"SELECT v.validator, v.score, v.block_number, v.block_time, a.tx_hash FROM {LATEST_ATTESTATIONS} v "
        f"JOIN {ATTESTED} a ON a.block_number = v.block_number AND a.log_index = v.log_index "
        "WHERE v.contribution_id = :c ORDER BY v.validator",
        {"c": contribution_id},
    )
    return [
        {
            "validator": _cs(r["validator"]),
            "score": as_int(r["score"]),
            "block_number": as_int(r["block_number"]),
            "block_time": as_int(r["block_time"]),
            "tx_hash": r["tx_hash"],
        }
        for r in found
    ]


def aggregate_score(atts: list[dict[str, Any]]) -> dict[str, Any]:
    """Validators' latest scores (0..10000): count, median (the reward policy's aggregate: floor of the mean
    of the two middle scores for an even count), integer mean (rounded down), min and max."""
    scores = sorted(int(a["score"]) for a in atts)
    if not scores:
        return {"validators": 0, "median": None, "mean": None, "min": None, "max": None}
    return {
        "validators": len(scores),
        "median": median_floor(scores),
        "mean": sum(scores) // len(scores),
        "min": min(scores),
        "max": max(scores),
    }


def get_contribution(session: Session, *, contribution_id: str) -> dict[str, Any]:
    withdrawn = _withdrawn(session, [contribution_id])
    out: dict[str, Any] | None = None
    if table_exists(session, DATASETS):
        found = rows(session, f"SELECT * FROM {DATASETS} WHERE content_hash = :h", {"h": contribution_id})
        if found:
            out = _dataset_out(found[0], withdrawn)
    if out is None and table_exists(session, COMPUTE):
        found = rows(session, f"SELECT * FROM {COMPUTE} WHERE contribution_id = :h", {"h": contribution_id})
        if found:
            out = _compute_out(found[0], withdrawn)
    if out is None:
        raise NotFoundError(f"no contribution with id {contribution_id}", contribution_id=contribution_id)
    atts = attestations(session, contribution_id=contribution_id)
    out["id"] = contribution_id
    out["attestations"] = atts
    out["score"] = aggregate_score(atts)
    return out


def _compute_out(r: dict[str, Any], withdrawn: set[str]) -> dict[str, Any]:
    return {
        "kind": "compute",
        "contribution_id": r["contribution_id"],
        "owner": _cs(r["provider"]),
        "model_id": r["model_id"],
        "job_id": r["job_id"],
        "work_units": as_int(r["work_units"]),
        "result_hash": r["result_hash"],
        "block_number": as_int(r["block_number"]),
        "block_time": as_int(r["block_time"]),
        "tx_hash": r["tx_hash"],
        "withdrawn": r["contribution_id"] in withdrawn,
    }


def _owned_by(
    session: Session, table: str, owner_column: str, order: str, *, address: str, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many rows of `table` `address` owns, its newest `limit` rows in `order`)."""
    if not table_exists(session, table):
        return 0, []
    where = f"FROM {table} WHERE {owner_column} = :a"
    found = rows(session, f"SELECT * {where} ORDER BY {order} LIMIT :n", {"a": address, "n": limit})
    return _count(session, table, owner_column, address=address), found


def _count(session: Session, table: str, owner_column: str, *, address: str) -> int:
    if not table_exists(session, table):
        return 0
    found = rows(session, f"SELECT COUNT(*) AS n FROM {table} WHERE {owner_column} = :a", {"a": address})
    return as_int(found[0]["n"])


def account_contributions(session: Session, *, address: str, limit: int) -> dict[str, Any]:
    addr = address.lower()
    total_datasets, found = _owned_by(
        session,
        DATASETS,
        "owner",
        "block_number DESC, log_index DESC, item_index DESC",
        address=addr,
        limit=limit,
    )
    wd = _withdrawn(session, [r["content_hash"] for r in found])
    datasets = [_dataset_out(r, wd) for r in found]
    total_compute, found = _owned_by(
        session, COMPUTE, "provider", "block_number DESC, log_index DESC", address=addr, limit=limit
    )
    wd = _withdrawn(session, [r["contribution_id"] for r in found])
    compute = [_compute_out(r, wd) for r in found]
    return {
        "dataset_count": total_datasets,
        "compute_count": total_compute,
        "datasets": datasets,
        "compute": compute,
    }


def account_contributions_page(
    session: Session, *, address: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """An owner's datasets and compute jobs in one keyset order, newest first on `(block_number, log_index,
    item_index)` (a compute registration is item 0 of its log), with the totals of each kind."""
    addr = address.lower()
    parts = []
    if table_exists(session, DATASETS):
        parts.append(
            f"SELECT 'dataset' AS kind, content_hash AS id, block_number, log_index, item_index "
            f"FROM {DATASETS} WHERE owner = :a"
        )
    if table_exists(session, COMPUTE):
        parts.append(
            f"SELECT 'compute' AS kind, contribution_id AS id, block_number, log_index, 0 AS item_index "
            f"FROM {COMPUTE} WHERE provider = :a"
        )
    if cursor is not None:
        decode(cursor, len(EVENT_KEY))  # a bad cursor is one clear 422, whichever tables exist yet
    out: dict[str, Any] = {
        "dataset_count": _count(session, DATASETS, "owner", address=addr),
        "compute_count": _count(session, COMPUTE, "provider", address=addr),
    }
    if not parts:
        return {**out, "items": [], "next_cursor": None}
    page = sql_page(
        session, select=f"SELECT * FROM ({' UNION ALL '.join(parts)}) c", params={"a": addr}, limit=limit,
        cursor=cursor,
    )  # fmt: skip
    full: dict[str, dict[str, Any]] = {}
    for kind, table, column in (
        ("dataset", DATASETS, "content_hash"),
        ("compute", COMPUTE, "contribution_id"),
    ):
        ids = [r["id"] for r in page.items if r["kind"] == kind]
        if ids:
            clause, params = in_clause("c", ids)
            found = rows(session, f"SELECT * FROM {table} WHERE {column} IN {clause}", params)
            full.update({r[column]: r for r in found})
    withdrawn = _withdrawn(session, [r["id"] for r in page.items])
    items = [
        _dataset_out(full[r["id"]], withdrawn)
        if r["kind"] == "dataset"
        else _compute_out(full[r["id"]], withdrawn)
        for r in page.items
    ]
    return {**out, "items": items, "next_cursor": page.next_cursor}
