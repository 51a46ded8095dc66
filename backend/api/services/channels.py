"""The x402 payment channels the gateway has served (backend.api.x402.channel), for `GET /v1/channels`: each
channel's config, its latest accepted voucher (the signed cumulative ceiling and its signature), the
cumulative amount charged and the number of paid requests (`channel_state`), what it paid per model
(`channel_usage`) and what the claimer has claimed of it (`channel_claim`, backend.api.x402.claimer).

Keyset pagination on the channel id, in ascending order. The id is 32 bytes, more than one cursor part holds
(`backend.api.pagination` keys are integers up to 2^63-1), so its cursor is the id as five 52-bit parts,
most significant first: their order is the id's order, and the ids are stored `0x`-lowercase with one length,
so SQL compares them as text in that same order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session
from web3 import Web3

from backend.api.mirror import as_int, rows, table_exists
from backend.api.pagination import decode, list_page
from cairn.core.errors import InvalidInputError

PART_BITS = 52
WIDTH = 5  # 5 * 52 = 260 bits >= 256
_PART_MAX = (1 << PART_BITS) - 1

_STATE_COLUMNS = (  # named, not `*`: the gateway's table may gain columns
    "channel_id, router, payer, payer_authorizer, receiver_authorizer, token, withdraw_delay, salt, "
    "max_claimable, signature, charged, requests, updated_at"
)


def cursor_key(channel_id: str) -> tuple[int, ...]:
    """The pagination key of a `0x`-hex channel id: five 52-bit parts, most significant first."""
    n = int(channel_id, 16)
    return tuple((n >> (PART_BITS * (WIDTH - 1 - i))) & _PART_MAX for i in range(WIDTH))


def cursor_id(cursor: str) -> str:
    """The channel id a `next_cursor` names (an InvalidInputError for one no page gave)."""
    parts = decode(cursor, WIDTH)
    n = 0
    for p in parts:
        if p > _PART_MAX:
            raise InvalidInputError(
                f"cursor must be the next_cursor of a previous page, got {cursor!r}", field="cursor"
            )
        n = (n << PART_BITS) | p
    if n >= 1 << 256:
        raise InvalidInputError(
            f"cursor must be the next_cursor of a previous page, got {cursor!r}", field="cursor"
        )
    return "0x" + n.to_bytes(32, "big").hex()


def _claims(session: Session, chain_id: int, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    if not ids or not table_exists(session, "channel_claim"):
        return {}
    names = {f"i{k}": cid for k, cid in enumerate(ids)}
    found = rows(
        session,
        "SELECT channel_id, model_id, total_claimed, amount, requests, state FROM channel_claim "
        f"WHERE chain_id = :c AND channel_id IN ({', '.join(':' + n for n in names)})",
        {"c": chain_id, **names},
    )
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in found:
        out[str(r["channel_id"])].append(r)
    return out


def _usage(session: Session, chain_id: int, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    if not ids:
        return {}
    names = {f"i{k}": cid for k, cid in enumerate(ids)}
    found = rows(
        session,
        "SELECT channel_id, model_id, charged, requests FROM channel_usage "
        f"WHERE chain_id = :c AND channel_id IN ({', '.join(':' + n for n in names)}) "
        "ORDER BY channel_id, model_id",
        {"c": chain_id, **names},
    )
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in found:
        out[str(r["channel_id"])].append(r)
    return out


def _channel(s: dict[str, Any], usage: list[dict[str, Any]], claims: list[dict[str, Any]]) -> dict[str, Any]:
    confirmed = [c for c in claims if c["state"] == "confirmed"]
    pending = [c for c in claims if c["state"] == "pending"]
    claimed = max((as_int(c["total_claimed"]) for c in confirmed), default=0)
    per_model: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for c in confirmed:
        a, n = per_model[str(c["model_id"])]
        per_model[str(c["model_id"])] = (a + as_int(c["amount"]), n + as_int(c["requests"]))
    signature = str(s["signature"] or "")
    max_claimable = as_int(s["max_claimable"])
    return {
        "channel_id": str(s["channel_id"]),
        "router": Web3.to_checksum_address(str(s["router"])),
        "payer": Web3.to_checksum_address(str(s["payer"])),
        "payer_authorizer": Web3.to_checksum_address(str(s["payer_authorizer"])),
        "receiver_authorizer": Web3.to_checksum_address(str(s["receiver_authorizer"])),
        "token": Web3.to_checksum_address(str(s["token"])),
        "withdraw_delay": as_int(s["withdraw_delay"]),
        "salt": str(s["salt"]),
        "voucher": (
            {"maxClaimableAmount": str(max_claimable), "signature": signature} if signature else None
        ),
        "charged": str(as_int(s["charged"])),
        "requests": as_int(s["requests"]),
        "updated_at": as_int(s["updated_at"]),
        "usage": [
            {
                "model_id": str(u["model_id"]),
                "charged": str(as_int(u["charged"])),
                "requests": as_int(u["requests"]),
                "claimed": str(per_model[str(u["model_id"])][0]),
                "claimed_requests": per_model[str(u["model_id"])][1],
            }
            for u in usage
        ],
        "claimed": str(claimed),
        "claiming": str(max(as_int(c["total_claimed"]) for c in pending)) if pending else None,
    }


def read_channels(
    session: Session,
    *,
    chain_id: int,
    payer: str | None = None,
    channel_id: str | None = None,
    limit: int = 1,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The channels of `payer` (or the one channel `channel_id`), ascending by id, at most `limit` after
    `cursor`: `{"channels": [...], "next_cursor": ...}`. Addresses checksummed, amounts decimal strings."""
    if not table_exists(session, "channel_state"):
        return {"channels": [], "next_cursor": None}
    where = ["chain_id = :c"]
    params: dict[str, Any] = {"c": chain_id, "_limit": limit + 1}
    if payer is not None:
        where.append("payer = :p")
        params["p"] = payer.lower()
    if channel_id is not None:
        where.append("channel_id = :id")
        params["id"] = channel_id.lower()
    if cursor is not None:
        where.append("channel_id > :after")
        params["after"] = cursor_id(cursor)
    found = rows(
        session,
        f"SELECT {_STATE_COLUMNS} FROM channel_state WHERE {' AND '.join(where)} "
        "ORDER BY channel_id LIMIT :_limit",
        params,
    )
    page = list_page(
        found, key=lambda r: cursor_key(str(r["channel_id"])), width=WIDTH, limit=limit, cursor=None,
        descending=False,
    )  # fmt: skip
    ids = [str(r["channel_id"]) for r in page.items]
    usage = _usage(session, chain_id, ids)
    claims = _claims(session, chain_id, ids)
    return {
        "channels": [
            _channel(r, usage.get(i, []), claims.get(i, [])) for r, i in zip(page.items, ids, strict=True)
        ],
        "next_cursor": page.next_cursor,
    }
