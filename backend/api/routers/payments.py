"""x402 payments served first and settled later: their settlement outcomes and each payer's exposure; and the
payment channels the gateway has served, with their latest voucher."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from backend.api import schemas
from backend.api.deps import ChainDep, EngineDep, SessionDep, SettingsDep
from backend.api.pagination import check_limit, decode, list_page
from backend.api.schemas import COMMON, READ, problem_responses
from backend.api.services import channels
from backend.api.validation import parse_address, parse_bytes32
from backend.api.x402 import store
from cairn.core.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["payments"])
STATUSES = (store.ACCEPTED, store.SERVED, store.SETTLING, store.SETTLED, store.FAILED, store.VOID)
MAX_ID = 2**31 - 1  # payment ids are 32-bit integers in the database


Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many payments")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def _page(
    engine: EngineDep,
    chain: ChainDep,
    settings: SettingsDep,
    *,
    payer: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Keyset on the payment id, oldest first (ids only grow, so new payments join the last page)."""
    check_limit(limit, settings.api_page_limit)
    (after,) = decode(cursor, 1) if cursor is not None else (0,)
    found = store.payments(
        engine, chain.chain_id, payer=payer, status=status, limit=limit + 1, after=min(after, MAX_ID)
    )
    page = list_page(
        found, key=lambda p: (int(p["id"]),), width=1, limit=limit, cursor=None, descending=False
    )
    return {"payments": page.items, "next_cursor": page.next_cursor}


@router.get("/payments", response_model=schemas.PaymentPage, responses=problem_responses(*COMMON))
def list_payments(
    engine: EngineDep,
    chain: ChainDep,
    settings: SettingsDep,
    payer: Annotated[str | None, Query(description="Only this payer's payments.")] = None,
    status: Annotated[
        str | None, Query(description="accepted | served | settling | settled | failed | void")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """x402 payments, oldest first: settled ones with their transaction, failed ones with the reason; with
    `payer`, also that payer's unsettled exposure and failed settlements. Pass `next_cursor` back as
    `cursor` for the next page."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(
            f"status must be one of {', '.join(STATUSES)}, got {status!r}", field="status"
        )
    who = parse_address(payer, field="payer").lower() if payer else None
    out = _page(engine, chain, settings, payer=who, status=status, limit=limit, cursor=cursor)
    if who:
        e = store.exposure(engine, chain.chain_id, who)
        out["exposure"] = {
            "payer": who,
            "unsettled": str(e.unsettled),
            "limit": str(settings.api_x402_exposure_limit),
            "failed": e.failed,
            "failed_amount": str(e.failed_amount),
            "refused": bool(e.failed) or e.unsettled >= settings.api_x402_exposure_limit,
        }
    return out


@router.get("/payments/failed", response_model=schemas.PaymentPage, responses=problem_responses(*COMMON))
def failed_payments(
    engine: EngineDep, chain: ChainDep, settings: SettingsDep, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """Payments served but never settled (cancelled authorization, funds moved, expired), with the reason,
    oldest first; pass `next_cursor` back as `cursor` for the next page."""
    return _page(engine, chain, settings, payer=None, status=store.FAILED, limit=limit, cursor=cursor)


@router.get("/payments/{payment_id}", response_model=schemas.Payment, responses=problem_responses(*READ))
def get_payment(
    payment_id: Annotated[int, Path(ge=1, le=MAX_ID)], engine: EngineDep, chain: ChainDep
) -> dict[str, Any]:
    """One payment (the PAYMENT-RESPONSE `extra.status` link)."""
    rows = store.payments(engine, chain.chain_id, payer=None, status=None, limit=1, after=payment_id - 1)
    if not rows or rows[0]["id"] != payment_id:
        raise NotFoundError(f"no x402 payment {payment_id}")
    return rows[0]


ChannelLimit = Annotated[int, Query(ge=1, le=1000, description="At most this many channels")]


@router.get("/channels", response_model=schemas.ChannelPage, responses=problem_responses(*COMMON))
def list_channels(
    session: SessionDep,
    chain: ChainDep,
    settings: SettingsDep,
    payer: Annotated[str, Query(description="The channels' payer (a 0x address)")],
    limit: ChannelLimit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The payer's PaymentRouter channels the gateway has served, ascending by channel id: each with its
    config, its latest voucher (signed cumulative ceiling and signature: off chain, held by the gateway), the
    cumulative amount charged and the paid requests, per model, and what the gateway has claimed on chain.
    Pass `next_cursor` back as `cursor` for the next page."""
    who = parse_address(payer, field="payer")
    check_limit(limit, settings.api_page_limit)
    page = channels.read_channels(session, chain_id=chain.chain_id, payer=who, limit=limit, cursor=cursor)
    return {"payer": who, **page}


@router.get("/channels/{channel_id}", response_model=schemas.Channel, responses=problem_responses(*READ))
def get_channel(
    channel_id: Annotated[str, Path(description="The channel id (bytes32, 0x hex)")],
    session: SessionDep,
    chain: ChainDep,
) -> dict[str, Any]:
    """One channel the gateway has served (see `GET /v1/channels`)."""
    cid = parse_bytes32(channel_id, field="channel_id")
    page = channels.read_channels(session, chain_id=chain.chain_id, channel_id=cid)
    if not page["channels"]:
        raise NotFoundError(f"no channel {cid} served by this gateway")
    one: dict[str, Any] = page["channels"][0]
    return one
