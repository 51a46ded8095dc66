"""An account: its contributions, cumulative rewards (latest published root), claimed and claimable."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.api.chain import Chain
from backend.api.services import allocations, contributions, epochs
from backend.api.settings import ApiSettings


def get_account(session: Session, *, settings: ApiSettings, chain: Chain, address: str) -> dict[str, Any]:
    contrib = contributions.account_contributions(session, address=address, limit=50)
    claimed = epochs.claimed(session, address=address)
    entitlement = allocations.latest_entitlement(session, settings=settings, chain=chain, address=address)
    cumulative = entitlement["cumulative_amount"] if entitlement else 0
    return {
        "address": address,
        **contrib,
        "rewards": {
            "cumulative": str(cumulative),
            "claimed": str(claimed),
            "claimable": str(max(0, cumulative - claimed)),
            "epoch": entitlement["epoch"] if entitlement else None,
            "root": entitlement["root"] if entitlement else None,
            "claimable_now": bool(entitlement and entitlement["claimable_now"]),
        },
    }
