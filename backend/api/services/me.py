"""The signed-in account's own views, composed from the read services (contributions, epochs, allocations):
contributions with their attestation status, rewards per epoch with the claimable proof, claim history."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.api.chain import Chain
from backend.api.mirror import PerCommitCache, as_int, table_exists
from backend.api.pagination import decode, sql_page
from backend.api.services import allocations, contributions, epochs
from backend.api.settings import ApiSettings
from cairn.core.errors import AllocationMismatchError, NotFoundError
from cairn.core.policy import Policy

CLAIM_KEY = ("block_number", "log_index")  # one Claimed event per log


def _status(session: Session, contribution_id: str, policy: Policy) -> dict[str, Any]:
    atts = contributions.attestations(session, contribution_id=contribution_id)
    score = contributions.aggregate_score(atts)
    quorum = policy.attestation.quorum
    met = score["validators"] >= quorum
    return {"attestations": atts, "score": score, "quorum": quorum, "quorum_met": met}


def my_contributions(
    session: Session, *, address: str, limit: int, cursor: str | None, policy: Policy
) -> dict[str, Any]:
    """One keyset page of the account's datasets and compute jobs, newest first, each with its status."""
    out = contributions.account_contributions_page(session, address=address, limit=limit, cursor=cursor)
    for item in out["items"]:
        item["status"] = _status(session, item.get("content_hash") or item["contribution_id"], policy)
    return {"address": address, **out}


def my_rewards(session: Session, *, settings: ApiSettings, chain: Chain, address: str) -> dict[str, Any]:
    """Each epoch whose live root's allocation file is here and has a leaf for `address`, oldest first
    (kept per indexer commit and account, `_leaves`), each judged claimable on the shared head read; the
    proof (`allocations.proof`) under the newest claimable root, and what the account has claimed."""
    # the head read at most `api_head_max_age_s` ago, as the proof view judges `claimable_now`: a stale head
    # can only hold back a root that just became claimable, never offer one that is not yet
    head_time = int(chain.head(settings.api_head_max_age_s)["timestamp"])
    out: list[dict[str, Any]] = []
    claimable_epoch: int | None = None
    previous = 0
    for root, cumulative in _leaves(session, settings=settings, chain=chain, address=address):
        epoch = int(root["epoch"])
        now_claimable = allocations.is_claimable_now(root, head_time)
        out.append({
            "epoch": epoch, "root": root["root"], "cumulative": str(cumulative),
            "amount": str(cumulative - previous), "claimable_now": now_claimable,
        })  # fmt: skip
        previous = cumulative
        if now_claimable:
            claimable_epoch = epoch
    claim = None
    if claimable_epoch is not None:
        claim = allocations.proof(
            session, settings=settings, chain=chain, epoch=claimable_epoch, address=address
        )
    claimed = int(claim["claimed"]) if claim else epochs.claimed(session, address=address)  # one read
    claimable = max(0, int(claim["cumulative_amount"]) - claimed) if claim else 0
    return {
        "address": address, "epochs": out, "cumulative": str(previous), "claimed": str(claimed),
        "claimable": str(claimable), "claim": claim,
    }  # fmt: skip


_LEAVES = PerCommitCache(10_000, list)  # accounts kept; (root, cumulative) pairs are never changed


def _leaves(
    session: Session, *, settings: ApiSettings, chain: Chain, address: str
) -> list[tuple[dict[str, Any], int]]:
    """(live root, the account's cumulative amount under it) of each epoch whose allocation file is here and
    names `address`, oldest first: one index lookup per epoch, kept per indexer commit (roots change only
    with the mirror; allocation files are content-addressed)."""

    def compute() -> list[tuple[dict[str, Any], int]]:
        found: list[tuple[dict[str, Any], int]] = []
        for root in epochs.live_roots(session):  # one cached read per indexer commit, oldest epoch first
            epoch = int(root["epoch"])
            try:
                index = allocations.index_for_root(
                    session, settings=settings, chain=chain, epoch=epoch, root=root
                )
            except (NotFoundError, AllocationMismatchError):
                continue
            cumulative = index.amount(address)  # the amount only: the one proof is read by the caller
            if cumulative is not None:
                found.append((root, cumulative))
        return found

    leaves: list[tuple[dict[str, Any], int]] = _LEAVES.get(
        session, (str(settings.data_dir), address.lower()), compute
    )
    return leaves


def my_claims(session: Session, *, address: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """One keyset page of the account's `Claimed` events, newest first on `(block_number, log_index)`."""
    if cursor is not None:
        decode(cursor, len(CLAIM_KEY))  # a bad cursor is one clear 422, even before the first claim
    if not table_exists(session, epochs.CLAIMED):
        return {"address": address, "claims": [], "next_cursor": None}
    page = sql_page(
        session, select=f"SELECT * FROM {epochs.CLAIMED}", where=["account = :a"],
        params={"a": address.lower()}, key=CLAIM_KEY, limit=limit, cursor=cursor,
    )  # fmt: skip
    return {"address": address, "claims": [_claim(r) for r in page.items], "next_cursor": page.next_cursor}


def _claim(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "amount": str(as_int(r["amount"])), "cumulative_amount": str(as_int(r["cumulative_amount"])),
        "caller": contributions._cs(r["caller"]), "block_number": as_int(r["block_number"]),
        "block_time": as_int(r["block_time"]), "tx_hash": r["tx_hash"],
    }  # fmt: skip
