"""x402 payments served first and settled later: their settlement outcomes and each payer's exposure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from backend.api.deps import ChainDep, EngineDep, SettingsDep
from backend.api.schemas import COMMON, READ, problem_responses
from backend.api.validation import parse_address
from backend.api.x402 import store
from cairn.core.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["payments"])
STATUSES = (store.ACCEPTED, store.SERVED, store.SETTLING, store.SETTLED, store.FAILED, store.VOID)
MAX_ID = 2**31 - 1  # payment ids are 32-bit integers in the database


@router.get("/payments", responses=problem_responses(*COMMON))
def list_payments(
    engine: EngineDep,
    chain: ChainDep,
    settings: SettingsDep,
    payer: Annotated[str | None, Query(description="Only this payer's payments.")] = None,
    status: Annotated[
        str | None, Query(description="accepted | served | settling | settled | failed | void")
    ] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Only payments with a larger id (paging).")] = 0,
) -> dict[str, Any]:
    """x402 payments, oldest first: settled ones with their transaction, failed ones with the reason; with
    `payer`, also that payer's unsettled exposure and failed settlements."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(
            f"status must be one of {', '.join(STATUSES)}, got {status!r}", field="status"
        )
    who = parse_address(payer, field="payer").lower() if payer else None
    out: dict[str, Any] = {
        "payments": store.payments(
            engine, chain.chain_id, payer=who, status=status, limit=settings.api_page_limit, after=after
        )
    }
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


@router.get("/payments/failed", responses=problem_responses(*COMMON))
def failed_payments(
    engine: EngineDep,
    chain: ChainDep,
    settings: SettingsDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Payments served but never settled (cancelled authorization, funds moved, expired), with the reason."""
    rows = store.payments(
        engine, chain.chain_id, payer=None, status=store.FAILED, limit=settings.api_page_limit, after=after
    )
    return {"payments": rows}


@router.get("/payments/{payment_id}", responses=problem_responses(*READ))
def get_payment(
    payment_id: Annotated[int, Path(ge=1, le=MAX_ID)], engine: EngineDep, chain: ChainDep
) -> dict[str, Any]:
    """One payment (the PAYMENT-RESPONSE `extra.status` link)."""
    rows = store.payments(engine, chain.chain_id, payer=None, status=None, limit=1, after=payment_id - 1)
    if not rows or rows[0]["id"] != payment_id:
        raise NotFoundError(f"no x402 payment {payment_id}")
    return rows[0]
