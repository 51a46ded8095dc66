"""Rewards and auditors: epochs, roots, proofs ready for `claim`, allocation files, policies."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from backend.api import schemas
from backend.api.deps import ChainDep, SessionDep, SettingsDep
from backend.api.pagination import check_limit, list_page
from backend.api.schemas import COMMON, READ, problem_responses
from backend.api.services import allocations, epochs
from backend.api.validation import EpochPath, parse_address, parse_bytes32, parse_epoch

router = APIRouter(prefix="/v1", tags=["rewards"])


def _now_and_epoch(chain: ChainDep) -> tuple[int, int]:
    head = chain.latest_block()
    now = int(head["timestamp"])
    return now, chain.deployment.epoch.epoch_at(now)


@router.get("/epochs", response_model=schemas.EpochList, responses=problem_responses(*COMMON))
def list_epochs(
    session: SessionDep,
    chain: ChainDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Every funded epoch or epoch with a root, newest first, with status, root and pool; keyset-paginated
    on the epoch number (pass `next_cursor` back as `cursor`)."""
    check_limit(limit, settings.api_page_limit)
    now, current = _now_and_epoch(chain)
    page = list_page(
        epochs.list_epochs(session, now=now), key=lambda e: (int(e["epoch"]),), width=1, limit=limit,
        cursor=cursor,
    )  # fmt: skip
    return {"current_epoch": current, "epochs": page.items, "next_cursor": page.next_cursor}


@router.get("/epochs/{epoch}", response_model=schemas.EpochDetail, responses=problem_responses(*READ))
def get_epoch(
    epoch: EpochPath, session: SessionDep, chain: ChainDep, settings: SettingsDep
) -> dict[str, Any]:
    """Status, root, policy hash, totals and every root proposed for the epoch."""
    now, current = _now_and_epoch(chain)
    out = epochs.get_epoch(session, epoch=parse_epoch(epoch), now=now, current_epoch=current)
    out["engine"] = allocations.engine_state(session, chain_id=chain.chain_id, epoch=epoch)
    return out


@router.get(
    "/epochs/{epoch}/proofs/{address}", response_model=schemas.Proof, responses=problem_responses(409, *READ)
)
async def get_proof(
    epoch: EpochPath, address: str, session: SessionDep, chain: ChainDep, settings: SettingsDep
) -> Response:
    """Cumulative amount and Merkle proof of `address` under the epoch's root, ready for `claim`.

    The hot path under load: it runs on the event loop (a few small file reads and two indexed queries,
    about a millisecond: cheaper than the worker-thread round trips) and answers the `Proof` body as
    built (the schema above is the contract; `tests/integration/test_api_rewards.py` checks it)."""
    found = allocations.proof(
        session,
        settings=settings,
        chain=chain,
        epoch=parse_epoch(epoch),
        address=parse_address(address, field="address"),
    )
    return Response(orjson.dumps(found), media_type="application/json")


@router.get(
    "/epochs/{epoch}/distribution",
    response_model=schemas.Distribution,
    responses=problem_responses(409, *READ),
)
def get_distribution(
    epoch: EpochPath, session: SessionDep, chain: ChainDep, settings: SettingsDep
) -> dict[str, Any]:
    """Lorenz curve and Gini coefficient of the epoch's rewards, from its live root's allocation file
    (computed by the server once per root, so an auditor needs not download the file)."""
    return allocations.distribution(session, settings=settings, chain=chain, epoch=parse_epoch(epoch))


@router.get(
    "/allocations/{ref:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/json": {}}}, **problem_responses(409, 404, 422)},
)
def get_allocation(ref: str, settings: SettingsDep) -> Response:
    """The content-addressed allocation file, by its hash, file name or the `uri` published with the root."""
    path = allocations.find_allocation_file(settings=settings, ref=ref)
    return FileResponse(path, media_type="application/json")  # streamed in chunks, never read whole


@router.get(
    "/policy/{policy_hash}",
    responses={200: {"content": {"application/json": {}}}, **problem_responses(*READ)},
)
def get_policy(policy_hash: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The reward policy whose hash was published with a root."""
    body = allocations.find_policy(
        session, settings=settings, policy_hash=parse_bytes32(policy_hash, field="policy_hash")
    )
    return Response(body, media_type="application/json")
