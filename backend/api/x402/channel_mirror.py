"""A channel's on-chain state as the indexer's mirror shows it (no RPC): the router's `ev_channel_*` rows.

`balance` is the router's `Channel.balance` (deposited - withdrawn - refunded); a withdrawal is pending when
the latest `ChannelWithdrawalRequested` comes after the latest `ChannelWithdrawn`. The channel's claimed total
is not here: only the gateway (the channels' receiver authorizer) claims, and its `channel_claim` rows say how
much (backend.api.x402.claimer).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from backend.api.mirror import as_int

_KINDS = (
    ("ev_channel_deposited", "amount"),
    ("ev_channel_withdrawn", "amount"),
    ("ev_channel_refunded", "amount"),
    ("ev_channel_withdrawal_requested", "available_at"),
)
_SQL = text(
    " UNION ALL ".join(
        f"SELECT {k} AS kind, {col} AS value, block_number, log_index FROM {table} "
        "WHERE channel_id = :channel AND contract = :router"
        for k, (table, col) in enumerate(_KINDS)
    )
)


@dataclass(frozen=True)
class MirroredChannel:
    deposited: int
    balance: int  # deposited - withdrawn - refunded
    withdrawal_available_at: int | None  # a pending withdrawal's availableAt (unix s), else None

    @property
    def withdrawal_pending(self) -> bool:
        return self.withdrawal_available_at is not None


def mirrored_channel(conn: Connection, router: str, channel_id: str) -> MirroredChannel:
    """The mirror's view of one channel of `router` (both `0x`-lowercase)."""
    totals = [0, 0, 0]
    last_request: tuple[int, int, int] | None = None  # (block, log index, availableAt)
    last_withdrawn: tuple[int, int] | None = None
    for kind, value, block, log_index in conn.execute(_SQL, {"channel": channel_id, "router": router}):
        pos = (int(block), int(log_index))
        if kind == 3:
            if last_request is None or pos > last_request[:2]:
                last_request = (*pos, as_int(value))
            continue
        totals[kind] += as_int(value)
        if kind == 1 and (last_withdrawn is None or pos > last_withdrawn):
            last_withdrawn = pos
    pending = None
    if last_request is not None and (last_withdrawn is None or last_request[:2] > last_withdrawn):
        pending = last_request[2]
    return MirroredChannel(totals[0], totals[0] - totals[1] - totals[2], pending)


def withdrawals_requested(conn: Connection, router: str) -> dict[str, int]:
    """Channels of `router` with a withdrawal pending now: channel id -> availableAt."""
    rows = conn.execute(
        text(
            "SELECT channel_id, available_at, block_number, log_index FROM ev_channel_withdrawal_requested r "
            "WHERE contract = :router AND NOT EXISTS (SELECT 1 FROM ev_channel_withdrawn w "
            "WHERE w.contract = r.contract AND w.channel_id = r.channel_id "
            "AND (w.block_number > r.block_number "
            "OR (w.block_number = r.block_number AND w.log_index > r.log_index)))"
        ),
        {"router": router},
    )
    return {str(r[0]): as_int(r[1]) for r in rows}
