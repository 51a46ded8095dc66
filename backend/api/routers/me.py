"""The signed-in account's own views (`CurrentAccount`): summary, contributions, rewards, claims."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response

from backend.api import schemas
from backend.api.auth.deps import CurrentAccount
from backend.api.auth.schemas import MyClaims, MyContributions, MyRewards
from backend.api.deps import ChainDep, SessionDep, SettingsDep
from backend.api.pagination import check_limit
from backend.api.schemas import COMMON, problem_responses
from backend.api.services import accounts, me
from cairn.core.policy import load_policy

router = APIRouter(prefix="/v1/me", tags=["signed in"])
SIGNED_IN = problem_responses(401, *COMMON)
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items (newest first)")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


@router.get("", response_model=schemas.Account, responses=SIGNED_IN)
def get_me(
    account: CurrentAccount, session: SessionDep, settings: SettingsDep, chain: ChainDep
) -> dict[str, Any]:
    """The signed-in account's contributions, cumulative rewards, claimed and claimable amounts."""
    return accounts.get_account(session, settings=settings, chain=chain, address=account.address)


@router.get("/contributions", response_model=MyContributions, responses=SIGNED_IN)
def my_contributions(
    account: CurrentAccount,
    session: SessionDep,
    settings: SettingsDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Datasets and compute jobs, newest first, each with its attestation status: validators' scores, the
    policy's aggregate and whether quorum is met. Pass `next_cursor` back as `cursor` for the next page."""
    return me.my_contributions(
        session, address=account.address, limit=check_limit(limit, settings.api_page_limit), cursor=cursor,
        policy=load_policy(settings.api_operator_policy),
    )  # fmt: skip


@router.get("/rewards", response_model=MyRewards, responses=SIGNED_IN)
async def my_rewards(
    account: CurrentAccount, session: SessionDep, settings: SettingsDep, chain: ChainDep
) -> Response:
    """Rewards per epoch (from each allocation file), cumulative, claimed, claimable, the claim proof.

    On the event loop, like the proof lookup it ends with: one memory-mapped index lookup per epoch and
    two indexed queries (a worker thread's round trip would cost more); the body is answered as built (the
    schema above is the contract; `tests/integration/test_api_me.py` checks it)."""
    found = me.my_rewards(session, settings=settings, chain=chain, address=account.address)
    return Response(orjson.dumps(found), media_type="application/json")


@router.get("/claims", response_model=MyClaims, responses=SIGNED_IN)
def my_claims(
    account: CurrentAccount,
    session: SessionDep,
    settings: SettingsDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Claim history, newest first: each `Claimed` event for the account (own claims, relayed, payouts).
    Pass `next_cursor` back as `cursor` for the next page."""
    limit = check_limit(limit, settings.api_page_limit)
    return me.my_claims(session, address=account.address, limit=limit, cursor=cursor)
