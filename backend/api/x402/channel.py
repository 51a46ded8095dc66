"""The x402 `batch-settlement` scheme on the gateway: cumulative vouchers over PaymentRouter channels.

An agent deposits into a channel once (on chain: `PaymentRouter.deposit` / `depositWithAuthorization`),
then pays each request with a voucher payload (x402 wire form):
`{"type": "voucher", "channelConfig": {...}, "voucher": {"channelId", "maxClaimableAmount", "signature"}}`.

`accept` verifies it with no RPC: the channel id and the EIP-712 voucher digest are computed locally
(`cairn.core.channel`, separator precomputed), the signature is recovered with libsecp256k1, and the channel's
deposit and pending withdrawal come from the indexer's mirror (`channel_mirror`). Then, in one database
transaction that holds the channel's row lock (PostgreSQL `SELECT ... FOR UPDATE`; SQLite `BEGIN IMMEDIATE`,
the database's write lock), it checks that the voucher covers the channel's cumulative charged amount plus
this request's price and that this stays within the deposit, and records the new charged total, the
voucher and the request as in flight (a `channel_request` row). So two API processes serving one channel
process its requests one at a time, and a voucher increment pays for one request only.

The request's row goes when its route has served it (`served`: its charge becomes claimable) or failed
(`void`: under the channel's lock its charge is released, the charged total goes back down by its price). The
claimer (`backend.api.x402.claimer`) later claims, for many channels in one transaction, each channel's
charged total minus its requests in flight, under the latest voucher (the router lets the receiver claim any
cumulative total up to the voucher's `maxClaimableAmount`): a request that ends void is never claimed. A row
left behind by an API process killed mid-request is released by the claimer once it is older than the serve
timeout (`release_stale`): that request is not charged, served or not."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import Connection, Engine, text

from backend.api.mirror import in_clause
from backend.api.x402.channel_mirror import MirroredChannel, mirrored_channel
from backend.api.x402.groupcommit import GroupCommit
from backend.api.x402.scheme import Accepted, Charge, PaymentRejectedError
from cairn.core.channel import (
    MAX_WITHDRAW_DELAY,
    MIN_WITHDRAW_DELAY,
    SCHEME,
    ZERO_ADDRESS,
    ChannelConfig,
    ChannelDomain,
    VoucherFormatError,
    parse_amount,
    recover,
    signature_bytes,
)

_INSERT_STATE = text(
    "INSERT INTO channel_state (chain_id, channel_id, router, payer, payer_authorizer, receiver_authorizer, "
    "token, withdraw_delay, salt, max_claimable, signature, charged, requests, updated_at) VALUES (:chain, "
    ":channel, :router, :payer, :payer_authorizer, :receiver_authorizer, :token, :withdraw_delay, :salt, "
    "'0', '', '0', 0, :now) ON CONFLICT (chain_id, channel_id) DO NOTHING"
)
_SELECT_STATE = (
    "SELECT charged, requests, max_claimable, signature FROM channel_state "
    "WHERE chain_id = :chain AND channel_id = :channel"
)
_UPDATE_STATE = text(
    "UPDATE channel_state SET max_claimable = :max, signature = :sig, charged = :charged, "
    "requests = requests + 1, updated_at = :now WHERE chain_id = :chain AND channel_id = :channel"
)
_UPSERT_USAGE = text(
    "INSERT INTO channel_usage (chain_id, channel_id, model_id, charged, requests) VALUES "
    "(:chain, :channel, :model, :charged, 1) ON CONFLICT (chain_id, channel_id, model_id) DO UPDATE SET "
    "charged = :charged, requests = channel_usage.requests + 1"
)
_SELECT_USAGE = text(
    "SELECT charged FROM channel_usage "
    "WHERE chain_id = :chain AND channel_id = :channel AND model_id = :model"
)

_SELECT_TOTAL_CLAIMED = text(  # the channel's cumulative claimed total on chain, as the claimer knows it
    "SELECT total_claimed FROM channel_claim WHERE chain_id = :chain AND channel_id = :channel "
    "AND state = 'confirmed'"
)
_SELECT_CLAIMED = text(  # the amounts (decimal text) of the claim rows that are not failed
    "SELECT amount FROM channel_claim WHERE chain_id = :chain AND channel_id = :channel "
    "AND model_id = :model AND state != 'failed'"
)
_INSERT_REQUEST = text(
    "INSERT INTO channel_request (chain_id, channel_id, model_id, amount, accepted_at) "
    "VALUES (:chain, :channel, :model, :amount, :now) RETURNING id"
)
_DELETE_REQUEST = text("DELETE FROM channel_request WHERE id = :id")
_STALE_REQUESTS = text(
    "SELECT id, channel_id, model_id, amount FROM channel_request "
    "WHERE chain_id = :chain AND accepted_at < :before ORDER BY id"
)
_RELEASE_STATE = text(
    "UPDATE channel_state SET charged = :charged, requests = requests - 1 "
    "WHERE chain_id = :chain AND channel_id = :channel"
)
_RELEASE_USAGE = text(
    "UPDATE channel_usage SET charged = :charged, requests = requests - 1 "
    "WHERE chain_id = :chain AND channel_id = :channel AND model_id = :model"
)


@functools.lru_cache(maxsize=65536)
def _checksum(address: str) -> str:
    return to_checksum_address(address)


def reject(reason: str, message: str, extra: dict[str, Any] | None = None) -> PaymentRejectedError:
    return PaymentRejectedError(f"invalid_batch_settlement_evm_{reason}", message, extra=extra)


def _select_state(sqlite: bool) -> Any:
    """The channel row's read that takes its lock: FOR UPDATE on PostgreSQL (SQLite: BEGIN IMMEDIATE)."""
    return text(_SELECT_STATE + ("" if sqlite else " FOR UPDATE"))


@contextlib.contextmanager
def _transaction(conn: Connection, immediate: bool) -> Iterator[Connection]:
    """One write transaction on `conn`, committed on success and rolled back on any exception. `immediate`
    (SQLite): take the database's write lock at the start (BEGIN IMMEDIATE), so the reads that follow are
    already under it."""
    if immediate:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


class BatchSettlementScheme:
    """`Scheme` for x402 `batch-settlement` on the PaymentRouter.

    `engine`: the API's database (the mirror's `ev_channel_*` tables and the backend's `channel_*` tables);
    `chain_id`, `router`, `token`: the deployment's chain and contracts; `receiver_authorizer`: the address
    of the gateway's claim key (holds SETTLER_ROLE; must be each channel's `receiverAuthorizer`);
    `token_name` / `token_version`: the RewardToken's EIP-712 domain (for `depositWithAuthorization`);
    `withdraw_delay`: the smallest channel `withdrawDelay` accepted, announced in the requirements;
    `min_deposit`: the deposit hint announced (`extra.minDeposit`, default 100 requests' price);
    `max_timeout_seconds`: the requirement's `maxTimeoutSeconds`."""

    name = SCHEME

    def __init__(
        self,
        *,
        engine: Engine,
        chain_id: int,
        router: str,
        token: str,
        receiver_authorizer: str,
        token_name: str,
        token_version: str = "1",
        withdraw_delay: int = MIN_WITHDRAW_DELAY,
        min_deposit: int | None = None,
        max_timeout_seconds: int = 300,
    ) -> None:
        if not MIN_WITHDRAW_DELAY <= withdraw_delay <= MAX_WITHDRAW_DELAY:
            raise ValueError(
                f"withdraw_delay {withdraw_delay} outside {MIN_WITHDRAW_DELAY}..{MAX_WITHDRAW_DELAY}"
            )
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.chain_id = chain_id
        self.network = f"eip155:{chain_id}"
        self.domain = ChannelDomain(chain_id, router)
        self.router = self.domain.router
        self.token = token.lower()
        self.receiver_authorizer = receiver_authorizer.lower()
        self.token_name = token_name
        self.token_version = token_version
        self.withdraw_delay = withdraw_delay
        self.min_deposit = min_deposit
        self.max_timeout_seconds = max_timeout_seconds
        # SQLite: threads of one process queue here rather than in SQLite's busy handler (which sleeps in
        # steps of up to 100 ms); other processes still wait on the database's write lock
        self._local = threading.Lock()
        self._held: Connection | None = None
        self._served: GroupCommit[int] = GroupCommit(self._delete_requests)
        database = engine.url.database if self.sqlite else None
        self._lock_fd = (
            os.open(f"{database}.x402.lock", os.O_RDWR | os.O_CREAT, 0o600)
            if database and database != ":memory:" and not database.startswith("file:")
            else None
        )
        self._asset = to_checksum_address(self.token)
        self._pay_to = to_checksum_address(self.router)
        self._extra: dict[str, Any] = {
            "receiverAuthorizer": to_checksum_address(self.receiver_authorizer),
            "withdrawDelay": self.withdraw_delay,
            "name": self.token_name,
            "version": self.token_version,
            "assetTransferMethod": "eip3009",
        }
        self._channel_id = functools.lru_cache(maxsize=65536)(self.domain.channel_id)  # two keccaks saved
        self._select = _select_state(self.sqlite)

    # --- Scheme -------------------------------------------------------------------------------------
    def requirement(self, charge: Charge) -> dict[str, Any]:
        """x402 v2 PaymentRequirements for a channel voucher of `charge.amount`."""
        extra = dict(self._extra)
        extra["minDeposit"] = str(self.min_deposit if self.min_deposit is not None else 100 * charge.amount)
        return {
            "scheme": SCHEME,
            "network": self.network,
            "asset": self._asset,
            "amount": str(charge.amount),
            "payTo": self._pay_to,
            "maxTimeoutSeconds": self.max_timeout_seconds,
            "extra": extra,
        }

    def accept(self, payload: dict[str, Any], requirement: dict[str, Any], charge: Charge) -> Accepted:
        """Verify a voucher payload (the PaymentPayload or its inner `payload`) and charge `charge.amount`
        against its channel, atomically; PaymentRejectedError (402) when it does not pay."""
        inner = payload.get("payload") if "x402Version" in payload else payload
        if not isinstance(inner, dict):
            raise reject("payload", "the batch-settlement payload must be an object")
        config, channel_id, max_claimable, signature = self.verify(inner)
        price = charge.amount
        with self._connection() as conn, _transaction(conn, self.sqlite):
            charged, requests, onchain, request_id = self._charge(
                conn, config, channel_id, max_claimable, signature, charge
            )
        return Accepted(
            scheme=SCHEME,
            payer=_checksum(config.payer),
            amount=price,
            extra={
                "channelId": channel_id,
                "chargedCumulativeAmount": str(charged),
                "maxClaimableAmount": str(max_claimable),
                "balance": str(onchain.balance),
                "requests": requests,
                "modelId": charge.model_id.lower(),
                "requestId": request_id,
            },
        )

    def response(self, accepted: Accepted) -> dict[str, Any]:
        """PAYMENT-RESPONSE (x402 SettleResponse): the channel's new cumulative charged total, which the
        client's next voucher must exceed by the next price."""
        x = accepted.extra
        return {
            "success": True,
            "transaction": "",
            "network": self.network,
            "payer": accepted.payer,
            "amount": str(accepted.amount),
            "extra": {
                "chargedAmount": str(accepted.amount),
                "channelState": {
                    "channelId": x["channelId"],
                    "balance": x["balance"],
                    "chargedCumulativeAmount": x["chargedCumulativeAmount"],
                },
            },
        }

    def served(self, accepted: Accepted) -> None:
        """The request's route produced its whole response: it is no longer in flight, so the claimer may
        claim its charge (no lock needed: a deleted row only makes more of the charged total claimable).
        Returns once that is committed; concurrent requests' marks share one transaction (`GroupCommit`)."""
        self._served.submit(int(accepted.extra["requestId"]))

    def _delete_requests(self, ids: list[int]) -> None:
        marks, params = in_clause("r", ids)
        with self._connection() as conn, _transaction(conn, immediate=False):  # the DELETE locks
            conn.execute(text(f"DELETE FROM channel_request WHERE id IN {marks}"), params)

    def void(self, accepted: Accepted, reason: str) -> dict[str, Any] | None:
        """Release a failed request's charge: under the channel's lock, its in-flight row goes and the
        channel's charged total and its model's usage go back down by the price. The claimer never claims a
        request in flight, so the charge is released (None, kept charged, only if a claim row covers it
        all the same: a check, not a path the claimer takes). Already released as stale by the claimer:
        nothing more to release. The stored voucher still covers the lower total."""
        x = accepted.extra
        with self._connection() as conn, _transaction(conn, self.sqlite):
            charged = release(
                conn, self._select, self.chain_id, x["channelId"], x["modelId"], x["requestId"],
                accepted.amount,
            )  # fmt: skip
        if charged is None:
            return None
        return {
            "success": False,
            "errorReason": reason,
            "errorMessage": "the paid request failed: its charge is released",
            "transaction": "",
            "network": self.network,
            "payer": accepted.payer,
            "amount": "0",
            "extra": {
                "chargedAmount": "0",
                "channelState": {
                    "channelId": x["channelId"],
                    "balance": x["balance"],
                    "chargedCumulativeAmount": str(charged),
                },
            },
        }

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """PostgreSQL: a pooled connection. SQLite: the scheme's one connection, under the process lock (the
        accept transactions of a process are serialised by SQLite's write lock anyway)."""
        if not self.sqlite:
            with self.engine.connect() as conn:
                yield conn
            return
        with self._local, self._processes_lock():
            if self._held is None or self._held.closed:
                self._held = self.engine.connect()
            try:
                yield self._held
            except PaymentRejectedError:  # rolled back by the caller; the connection is fine
                raise
            except BaseException:
                self._held.close()  # a broken connection is not reused
                self._held = None
                raise

    @contextlib.contextmanager
    def _processes_lock(self) -> Iterator[None]:
        """SQLite: an exclusive `flock` on `<database>.x402.lock` for the scheme's transaction, so the API
        processes take SQLite's write lock in turn, each woken by the kernel the moment the previous one is
        done. (Without it a process that finds the lock taken sleeps in SQLite's busy handler, 1 to 100 ms
        at a time, while the lock is long free: at 64 agents on 2 processes the cores idled ~40%.) Other
        writers (indexer, settler) still meet SQLite's own lock; the flock only orders the gateway's."""
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Return the held SQLite connection to the pool (at shutdown)."""
        with self._local:
            if self._held is not None:
                self._held.close()
                self._held = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # --- verification (no I/O) --------------------------------------------------------------------------
    def verify(self, inner: dict[str, Any]) -> tuple[ChannelConfig, str, int, str]:
        """The channel config, id, voucher ceiling and signature of a voucher payload whose signature is
        the channel's payer authorizer's; raises PaymentRejectedError otherwise. Pure computation."""
        kind = inner.get("type")
        if kind == "deposit":
            raise reject(
                "deposit_unsupported",
                "deposit payloads are not settled by this gateway; deposit on chain with "
                "PaymentRouter.deposit or depositWithAuthorization, then pay with vouchers",
            )
        if kind != "voucher":
            raise reject("payload_type", f"payload type must be 'voucher', got {kind!r}")
        voucher = inner.get("voucher")
        if not isinstance(voucher, dict):
            raise reject("payload", "payload.voucher must be an object")
        try:
            config = ChannelConfig.from_wire(inner.get("channelConfig"))
            max_claimable = parse_amount(voucher.get("maxClaimableAmount"), "voucher.maxClaimableAmount")
            raw = signature_bytes(voucher.get("signature"))
        except VoucherFormatError as exc:
            raise reject("payload", str(exc)) from None
        if config.receiver != self.router:
            raise reject("receiver", f"channelConfig.receiver must be the PaymentRouter {self.router}")
        if config.token != self.token:
            raise reject("token", f"channelConfig.token must be the RewardToken {self.token}")
        if config.receiver_authorizer != self.receiver_authorizer:
            raise reject(
                "receiver_authorizer", f"channelConfig.receiverAuthorizer must be {self.receiver_authorizer}"
            )
        if not self.withdraw_delay <= config.withdraw_delay <= MAX_WITHDRAW_DELAY:
            raise reject(
                "withdraw_delay",
                f"channelConfig.withdrawDelay must be between {self.withdraw_delay} and {MAX_WITHDRAW_DELAY}",
            )
        if config.payer_authorizer == ZERO_ADDRESS:
            raise reject(
                "payer_authorizer",
                "channelConfig.payerAuthorizer must be an EOA "
                "(vouchers are verified locally, not by EIP-1271)",
            )
        channel_id = self._channel_id(config)
        if str(voucher.get("channelId", "")).lower() != channel_id:
            raise reject("channel_id", f"voucher.channelId is not the id of channelConfig ({channel_id})")
        signer = recover(self.domain.voucher_digest(channel_id, max_claimable), raw)
        if signer != config.payer_authorizer:
            raise reject("voucher_signature", "the voucher is not signed by the channel's payerAuthorizer")
        return config, channel_id, max_claimable, voucher["signature"]

    def _corrective(
        self,
        conn: Connection,
        config: ChannelConfig,
        channel_id: str,
        onchain: MirroredChannel,
        charged: int,
        signed_max: str,
        signature: str,
    ) -> dict[str, Any]:
        """The corrective 402's requirement `extra` for a voucher that does not cover the channel's charged
        total plus the price (the client lost its state, or another client of the channel paid meanwhile):
        the channel's state and the latest voucher it accepted, with the field names of the official x402
        SDK's batch-settlement server (`handle_enrich_payment_required_response`), so that the client can
        check that voucher's signature is its own and resync to the charged total."""
        claimed = [int(t) for t in conn.execute(_SELECT_TOTAL_CLAIMED, {
            "chain": self.chain_id, "channel": channel_id}).scalars()]  # fmt: skip
        available = onchain.withdrawal_available_at
        extra: dict[str, Any] = {
            "channelState": {
                "channelId": channel_id,
                "balance": str(onchain.balance),
                "totalClaimed": str(max(claimed, default=0)),
                "withdrawRequestedAt": available - config.withdraw_delay if available is not None else 0,
                "refundNonce": "0",  # the PaymentRouter's refunds take no nonce
                "chargedCumulativeAmount": str(charged),
            }
        }
        if signature:  # a voucher was accepted before (a new channel has none)
            extra["voucherState"] = {"signedMaxClaimable": signed_max, "signature": signature}
        return extra

    # --- the locked charge ------------------------------------------------------------------------------
    def _charge(
        self,
        conn: Connection,
        config: ChannelConfig,
        channel_id: str,
        max_claimable: int,
        signature: str,
        charge: Charge,
    ) -> tuple[int, int, MirroredChannel, int]:
        onchain = mirrored_channel(conn, self.router, channel_id)
        if onchain.deposited == 0:
            raise reject(
                "channel_not_found", f"channel {channel_id} has no deposit (yet) in the indexed chain"
            )
        if onchain.withdrawal_pending:
            raise reject(
                "withdrawal_pending",
                f"channel {channel_id} has a withdrawal pending "
                f"(available at {onchain.withdrawal_available_at}); "
                "no further vouchers are accepted until it is finalized",
            )
        now = int(time.time())
        key = {"chain": self.chain_id, "channel": channel_id}
        conn.execute(
            _INSERT_STATE,
            {
                **key, "router": self.router, "payer": config.payer,
                "payer_authorizer": config.payer_authorizer,
                "receiver_authorizer": config.receiver_authorizer, "token": config.token,
                "withdraw_delay": config.withdraw_delay, "salt": config.salt, "now": now,
            },
        )  # fmt: skip
        row = conn.execute(self._select, key).one()  # locked until commit
        previous, requests = int(row[0]), int(row[1])
        charged = previous + charge.amount
        if max_claimable < charged:
            raise reject(
                "voucher_amount",
                f"voucher maxClaimableAmount {max_claimable} must cover the channel's charged total "
                f"{previous} "
                f"plus this request's {charge.amount} = {charged}",
                self._corrective(conn, config, channel_id, onchain, previous, str(row[2]), str(row[3])),
            )
        if charged > onchain.balance:
            raise reject(
                "insufficient_balance",
                f"channel {channel_id} balance {onchain.balance} does not cover the charged total {charged}; "
                "deposit more",
            )
        update = {**key, "max": str(max_claimable), "sig": signature, "charged": str(charged), "now": now}
        conn.execute(_UPDATE_STATE, update)
        usage = {**key, "model": charge.model_id.lower()}
        before = conn.execute(_SELECT_USAGE, usage).scalar()  # under the channel's lock, like the state row
        conn.execute(_UPSERT_USAGE, {**usage, "charged": str(int(before or 0) + charge.amount)})
        request_id = int(
            conn.execute(_INSERT_REQUEST, {**usage, "amount": str(charge.amount), "now": now}).scalar_one()
        )
        return charged, requests + 1, onchain, request_id


def release(
    conn: Connection, select: Any, chain_id: int, channel_id: str, model_id: str, request_id: int, amount: int
) -> int | None:
    """In the caller's transaction: lock the channel's row (`select`: the scheme's SELECT, FOR UPDATE on
    PostgreSQL; SQLite: the caller began IMMEDIATE), delete the request's in-flight row and, if it was still
    there, take its `amount` off the channel's charged total and its model's usage. Returns the channel's
    charged total after, or None when a non-failed claim row already covers that charge (it stays charged)."""
    key = {"chain": chain_id, "channel": channel_id}
    usage = {**key, "model": model_id}
    charged = int(conn.execute(select, key).one()[0])  # the channel's lock
    if conn.execute(_DELETE_REQUEST, {"id": request_id}).rowcount == 0:
        return charged  # released already (stale, by the claimer); the gateway voids only unserved requests
    used = int(conn.execute(_SELECT_USAGE, usage).scalar() or 0)
    claimed = sum(int(a) for a in conn.execute(_SELECT_CLAIMED, usage).scalars())
    if used - amount < claimed or charged < amount:
        return None
    conn.execute(_RELEASE_STATE, {**key, "charged": str(charged - amount)})
    conn.execute(_RELEASE_USAGE, {**usage, "charged": str(used - amount)})
    return charged - amount


def release_stale(engine: Engine, chain_id: int, before: int) -> int:
    """Release every channel request of `chain_id` still in flight that was accepted before unix time `before`
    (its API process was killed mid-request, or it ran past the serve timeout): as `void`, one locked
    transaction per request. Returns how many were released."""
    sqlite = engine.dialect.name == "sqlite"
    select = _select_state(sqlite)
    with engine.connect() as conn:
        stale = list(conn.execute(_STALE_REQUESTS, {"chain": chain_id, "before": before}))
    for request_id, channel_id, model_id, amount in stale:
        with engine.connect() as conn, _transaction(conn, sqlite):
            release(conn, select, chain_id, str(channel_id), str(model_id), int(request_id), int(amount))
    return len(stale)
