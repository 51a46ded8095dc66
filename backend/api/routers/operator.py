"""Operators (an API key with a scope): the epoch lifecycle as API calls, on the code `cairn epoch` runs.

Each is idempotent and answers with the epoch's state; a step that cannot run yet is 409
`epoch_not_ready` with what it waits for. 401 without a (known, unrevoked) key, 403 without the scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.auth.deps import Operator, OperatorScope
from backend.api.auth.schemas import EpochState
from backend.api.deps import ChainDep, EngineDep, SettingsDep
from backend.api.schemas import COMMON, problem_responses
from backend.api.services import operator
from backend.api.validation import EpochPath, parse_epoch

router = APIRouter(prefix="/v1/operator/epochs", tags=["operators"])
RESPONSES = problem_responses(401, 403, 404, 409, 502, *COMMON)
EpochsWrite = Annotated[Operator, OperatorScope("epochs:write")]
PayoutsWrite = Annotated[Operator, OperatorScope("payouts:write")]


@router.post("/{epoch}/close", response_model=EpochState, responses=RESPONSES)
def close(
    epoch: EpochPath, _: EpochsWrite, settings: SettingsDep, chain: ChainDep, engine: EngineDep
) -> dict[str, Any]:
    """`cairn epoch compute`: close the ended epoch (end block final, mirror past it) and compute its
    allocation, tree and file. Scope `epochs:write`."""
    return operator.step("close", settings=settings, chain=chain, engine=engine, epoch=parse_epoch(epoch))


@router.post("/{epoch}/publish", response_model=EpochState, responses=RESPONSES)
def publish(
    epoch: EpochPath, _: EpochsWrite, settings: SettingsDep, chain: ChainDep, engine: EngineDep
) -> dict[str, Any]:
    """`cairn epoch publish`: propose the root (closing and computing first if needed).
    Scope `epochs:write`."""
    return operator.step("publish", settings=settings, chain=chain, engine=engine, epoch=parse_epoch(epoch))


@router.post("/{epoch}/finalize", response_model=EpochState, responses=RESPONSES)
def finalize(
    epoch: EpochPath, _: EpochsWrite, settings: SettingsDep, chain: ChainDep, engine: EngineDep
) -> dict[str, Any]:
    """`cairn epoch finalize`: accept the proposed root once its challenge delay passed.
    Scope `epochs:write`."""
    return operator.step("finalize", settings=settings, chain=chain, engine=engine, epoch=parse_epoch(epoch))


@router.post("/{epoch}/payout", response_model=EpochState, responses=RESPONSES)
def payout(
    epoch: EpochPath,
    _: PayoutsWrite,
    settings: SettingsDep,
    chain: ChainDep,
    engine: EngineDep,
    min_amount: Annotated[
        int, Query(ge=1, le=2**255, description="Pay accounts with at least this many wei due")
    ] = 1,
    batch_size: Annotated[int, Query(ge=1, le=500, description="Accounts per claimForBatch")] = 100,
) -> dict[str, Any]:
    """`cairn epoch payout`: claimForBatch for every account of the accepted epoch with something due; a
    second call pays nobody. Scope `payouts:write`."""
    return operator.payout(
        settings=settings, chain=chain, engine=engine, epoch=parse_epoch(epoch), min_amount=min_amount,
        batch_size=batch_size,
    )  # fmt: skip
