"""The signed-in account's own views (`CurrentAccount`): summary, contributions, rewards, claims."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api import schemas
from backend.api.auth.deps import CurrentAccount
from backend.api.auth.schemas import MyClaims, MyContributions, MyRewards
from backend.api.deps import ChainDep, SessionDep, SettingsDep
from backend.api.schemas import COMMON, problem_responses
from backend.api.services import accounts, me
from cairn.core.policy import load_policy

router = APIRouter(prefix="/v1/me", tags=["signed in"])
SIGNED_IN = problem_responses(401, *COMMON)
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items (newest first)")]


@router.get("", response_model=schemas.Account, responses=SIGNED_IN)
def get_me(
    account: CurrentAccount, session: SessionDep, settings: SettingsDep, chain: ChainDep
) -> dict[str, Any]:
    """The signed-in account's contributions, cumulative rewards, claimed and claimable amounts."""
    return accounts.get_account(session, settings=settings, chain=chain, address=account.address)


@router.get("/contributions", response_model=MyContributions, responses=SIGNED_IN)
def my_contributions(
    account: CurrentAccount, session: SessionDep, settings: SettingsDep, limit: Limit = 50
) -> dict[str, Any]:
    """Datasets and compute jobs, each with its attestation status: validators' scores, the policy's
    aggregate and whether quorum is met."""
    return me.my_contributions(
        session, address=account.address, limit=min(limit, settings.api_page_limit),
        policy=load_policy(settings.api_operator_policy),
    )  # fmt: skip


@router.get("/rewards", response_model=MyRewards, responses=SIGNED_IN)
def my_rewards(
    account: CurrentAccount, session: SessionDep, settings: SettingsDep, chain: ChainDep
) -> dict[str, Any]:
    """Rewards per epoch (from each allocation file), cumulative, claimed, claimable, the claim proof."""
    return me.my_rewards(session, settings=settings, chain=chain, address=account.address)


@router.get("/claims", response_model=MyClaims, responses=SIGNED_IN)
def my_claims(
    account: CurrentAccount, session: SessionDep, settings: SettingsDep, limit: Limit = 100
) -> dict[str, Any]:
    """Claim history, newest first: each `Claimed` event for the account (own claims, relayed, payouts)."""
    return me.my_claims(session, address=account.address, limit=min(limit, settings.api_page_limit))
