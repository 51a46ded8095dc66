"""Epochs as the chain records them (funding, proposed/revoked/accepted roots) and claims per account.

Everything here comes from the indexer's mirror of RewardDistributor events, so an auditor gets the same
answer from any node; allocation files and proofs come from `backend.api.services.allocations`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.api.mirror import as_int, mirror_version, rows, table_exists
from cairn.core.errors import NotFoundError

FUNDED = "ev_epoch_funded"
PROPOSED = "ev_root_proposed"
REVOKED = "ev_root_revoked"
ACCEPTED = "ev_root_accepted"
CLAIMED = "ev_claimed"
SOURCES = {0: "emission", 1: "revenue"}


def _events(session: Session, table: str, where: str, epoch: int | None) -> list[dict[str, Any]]:
    if not table_exists(session, table):
        return []
    return rows(session, f"SELECT * FROM {table}{where} ORDER BY block_number, log_index", {"e": epoch})


def _proposal_before(proposed: list[dict[str, Any]], event: dict[str, Any]) -> int | None:
    """The index of the latest proposal of the event's (epoch, root) logged before the event: the proposal a
    RootRevoked or RootAccepted refers to (a root revoked and proposed again is two proposals)."""
    key = (as_int(event["epoch"]), event["root"])
    at = _position(event)
    found = None
    for i, r in enumerate(proposed):
        if (as_int(r["epoch"]), r["root"]) == key and _position(r) < at:
            found = i
    return found


def _position(r: dict[str, Any]) -> tuple[int, int]:
    return as_int(r["block_number"]), as_int(r["log_index"])


def _roots(session: Session, epoch: int | None) -> list[dict[str, Any]]:
    where = " WHERE epoch = :e" if epoch is not None else ""
    proposed = _events(session, PROPOSED, where, epoch)
    if not proposed:
        return []
    revoked: set[int] = set()
    accepted: dict[int, int] = {}
    for r in _events(session, REVOKED, where, epoch):
        i = _proposal_before(proposed, r)
        if i is not None:
            revoked.add(i)
    for r in _events(session, ACCEPTED, where, epoch):
        i = _proposal_before(proposed, r)
        if i is not None:
            accepted[i] = as_int(r["block_time"])
    return [
        {
            "epoch": as_int(r["epoch"]),
            "root": r["root"],
            "policy_hash": r["policy_hash"],
            "total_cumulative": str(as_int(r["total_cumulative"])),
            "valid_at": as_int(r["valid_at"]),
            "uri": r["uri"],
            "proposed_block": as_int(r["block_number"]),
            "proposed_log_index": as_int(r["log_index"]),
            "proposed_time": as_int(r["block_time"]),
            "proposed_tx": r["tx_hash"],
            "revoked": i in revoked,
            "accepted_at": accepted.get(i),
        }
        for i, r in enumerate(proposed)
    ]


def _root_status(root: dict[str, Any], now: int) -> str:
    if root["revoked"]:
        return "revoked"
    if root["accepted_at"] is not None:
        return "accepted"
    return "claimable" if now >= int(root["valid_at"]) else "pending"


def _funding(session: Session, epoch: int | None) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    if not table_exists(session, FUNDED):
        return out
    where = " WHERE epoch = :e" if epoch is not None else ""
    for r in rows(session, f"SELECT epoch, amount, source FROM {FUNDED}{where}", {"e": epoch}):
        f = out.setdefault(as_int(r["epoch"]), {"emission": 0, "revenue": 0})
        source = SOURCES.get(as_int(r["source"]), "other")
        f[source] = f.get(source, 0) + as_int(r["amount"])
    return out


def _summary(epoch: int, roots: list[dict[str, Any]], funding: dict[str, int], now: int) -> dict[str, Any]:
    live = [r for r in roots if not r["revoked"]]
    current = live[-1] if live else None
    for r in roots:
        r["status"] = _root_status(r, now)
    return {
        "epoch": epoch,
        "status": current["status"] if current else ("revoked" if roots else "open"),
        "root": current["root"] if current else None,
        "policy_hash": current["policy_hash"] if current else None,
        "total_cumulative": current["total_cumulative"] if current else None,
        "valid_at": current["valid_at"] if current else None,
        "allocation_uri": current["uri"] if current else None,
        "funded": {k: str(v) for k, v in sorted(funding.items())},
        "pool": str(sum(funding.values())),
    }


def list_epochs(session: Session, *, now: int) -> list[dict[str, Any]]:
    """Every epoch that was funded or had a root proposed, newest first."""
    roots = _roots(session, None)
    funding = _funding(session, None)
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for r in roots:
        by_epoch.setdefault(int(r["epoch"]), []).append(r)
    epochs = sorted(set(by_epoch) | set(funding), reverse=True)
    return [_summary(e, by_epoch.get(e, []), funding.get(e, {}), now) for e in epochs]


def get_epoch(session: Session, *, epoch: int, now: int, current_epoch: int) -> dict[str, Any]:
    roots = _roots(session, epoch)
    funding = _funding(session, epoch).get(epoch, {})
    if not roots and not funding and epoch > current_epoch:
        raise NotFoundError(f"epoch {epoch} has not started (current epoch is {current_epoch})", epoch=epoch)
    out = _summary(epoch, roots, funding, now)
    out["roots"] = roots
    out["current_epoch"] = current_epoch
    return out


_LIVE: dict[tuple[int, tuple[Any, ...], int], dict[str, Any]] = {}


def live_root(session: Session, *, epoch: int) -> dict[str, Any]:
    """The epoch's latest root that was not revoked, or NotFoundError. Cached per indexer commit (one
    cursor read instead of the three root tables on every proof lookup)."""
    version = mirror_version(session)
    key = (id(session.get_bind()), version, epoch) if version is not None else None
    if key is not None and (hit := _LIVE.get(key)) is not None:
        return dict(hit)
    live = [r for r in _roots(session, epoch) if not r["revoked"]]
    if not live:
        raise NotFoundError(f"epoch {epoch} has no published root", epoch=epoch)
    if key is not None:
        if len(_LIVE) >= 4096:
            _LIVE.clear()
        _LIVE[key] = dict(live[-1])
    return live[-1]


def claimed(session: Session, *, address: str) -> int:
    """What `address` has claimed so far: the highest cumulative amount of its claims."""
    if not table_exists(session, CLAIMED):
        return 0
    found = rows(session, f"SELECT amount FROM {CLAIMED} WHERE account = :a", {"a": address.lower()})
    return sum(as_int(r["amount"]) for r in found)


_ALL_LIVE: dict[tuple[int, tuple[Any, ...]], list[dict[str, Any]]] = {}


def live_roots(session: Session) -> list[dict[str, Any]]:
    """The latest root of each epoch that was not revoked, oldest epoch first (cached per indexer
    commit, like `live_root`)."""
    version = mirror_version(session)
    key = (id(session.get_bind()), version) if version is not None else None
    if key is not None and (hit := _ALL_LIVE.get(key)) is not None:
        return [dict(r) for r in hit]
    latest: dict[int, dict[str, Any]] = {}
    for r in _roots(session, None):
        if not r["revoked"]:
            latest[int(r["epoch"])] = r
    out = [latest[e] for e in sorted(latest)]
    if key is not None:
        if len(_ALL_LIVE) >= 256:
            _ALL_LIVE.clear()
        _ALL_LIVE[key] = [dict(r) for r in out]
    return out
