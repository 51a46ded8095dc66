"""Public per-address views (chain data is public): an account's history, a validator's review queue, and
streamed CSV / Parquet exports. The signed-in `/v1/me/...` views call the same services."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from backend.api import schemas
from backend.api.deps import EngineDep, SessionDep, SettingsDep
from backend.api.pagination import check_limit
from backend.api.schemas import COMMON, problem_responses
from backend.api.services import exports, history, queue
from backend.api.validation import parse_address

router = APIRouter(prefix="/v1", tags=["accounts"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


@router.get(
    "/accounts/{address}/history", response_model=schemas.HistoryPage, responses=problem_responses(*COMMON)
)
async def account_history(
    address: str,
    session: SessionDep,
    settings: SettingsDep,
    kinds: Annotated[
        str | None,
        Query(description="Comma-separated subset of registration,attestation,reward,claim,payment"),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Registrations, attestations (as a validator), rewards per epoch, claims and payments (as a payer) of
    `address`, newest first; keyset-paginated (pass `next_cursor` back as `cursor`).

    Served on the event loop (one indexed query; the reward entries are cached per indexer commit) with
    its body serialized once, like the proof endpoint."""
    check_limit(limit, settings.api_page_limit)
    page = history.history(
        session, settings=settings, address=parse_address(address, field="address"),
        kinds=history.parse_kinds(kinds), limit=limit, cursor=cursor,
    )  # fmt: skip
    return Response(orjson.dumps(page), media_type="application/json")


@router.get(
    "/validators/{address}/queue", response_model=schemas.QueuePage, responses=problem_responses(*COMMON)
)
def validator_queue(
    address: str, session: SessionDep, settings: SettingsDep, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Contributions `address` has not attested yet (withdrawn ones left out), oldest first, with a content
    link where the content store has the dataset; keyset-paginated."""
    check_limit(limit, settings.api_page_limit)
    return queue.review_queue(
        session, settings=settings, validator=parse_address(address, field="address"), limit=limit,
        cursor=cursor,
    )  # fmt: skip


@router.get(
    "/exports/{name}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
        **problem_responses(*COMMON),
    },
)
def export(name: str, engine: EngineDep, settings: SettingsDep) -> StreamingResponse:
    """`{kind}.{csv|parquet}` with kind contributions, claims, payments or allocations: every row, streamed
    in batches (wei amounts as decimal strings)."""
    kind, fmt = exports.parse(name)
    return StreamingResponse(
        exports.stream(engine, settings, kind, fmt),
        media_type=exports.FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="cairn-{kind}.{fmt}"'},
    )
