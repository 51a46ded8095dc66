"""The channel claimer: the latest voucher of many channels in one `PaymentRouter.claim(ChannelClaim[])`
transaction, sent through the outbox only.

One round (`ChannelClaimer.run_once`):
1. `outbox.process()`, then every pending `channel_claim` row takes its outbox row's outcome (confirmed, or
   failed: its amounts become claimable again).
2. Requests in flight (`channel_request` rows) older than `serve_timeout_s` are released as void
   (`backend.api.x402.channel.release_stale`: an API process killed mid-request; that request is not charged).
3. The channels to claim: charged beyond what their requests in flight and their non-failed claim rows
   cover (a request's charge is claimable only once its route has served it, so a request that ends void is
   never claimed: the router lets the receiver claim any cumulative total up to the voucher's
   `maxClaimableAmount`), no claim of theirs in flight, and
   either a withdrawal pending in the mirror (`ChannelWithdrawalRequested` without a later `ChannelWithdrawn`:
   claimed at once, before `availableAt` lets the payer take the unclaimed balance), or at least
   `min_requests` unclaimed requests, or `max_wait_s` passed since the last full round (or `force`).
4. One row per (channel, model) with unclaimed served charges, in order, each raising the channel's cumulative
   `totalClaimed` (strictly increasing on chain) under the channel's latest voucher; at most `max_rows` rows.
   The rows and the outbox transaction are stored in one database transaction
   (`Outbox.enqueue(with_row=...)`) under the key `channelclaim:<chain>:<router>:<hash of the rows>`.

Crash safety: a kill before that commit leaves nothing (the next round rebuilds the same batch); after it,
the stored rows are in flight, so no later batch covers them again and the outbox re-broadcasts the same
signed transaction (one key, one nonce). A claim repeated on chain cannot pay twice: `claim` reverts unless
`totalClaimed` rises. A batch that would revert (e.g. a channel drained by a late withdrawal) is retried
without the channels whose own row reverts (`eth_call`), which are reported in `ClaimRound.skipped`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from sqlalchemy import Connection, Engine, text

from backend.api.x402.channel import release_stale
from backend.api.x402.channel_mirror import withdrawals_requested
from backend.outbox import CONFIRMED, FAILED, PENDING, Outbox
from cairn.core.channel import ChannelConfig
from cairn.core.errors import OutboxRevertError

log = logging.getLogger("cairn.channels")


@dataclass(frozen=True)
class ClaimLine:
    channel_id: str
    model_id: str
    config: ChannelConfig
    max_claimable: int
    signature: str
    total_claimed: int
    amount: int
    requests: int

    def request_hash(self) -> bytes:
        """keccak256(abi.encode(channelId, modelId, totalClaimed, requests)): names the requests covered."""
        return keccak(
            encode(
                ["bytes32", "bytes32", "uint256", "uint256"],
                [
                    bytes.fromhex(self.channel_id[2:]),
                    bytes.fromhex(self.model_id[2:]),
                    self.total_claimed,
                    self.requests,
                ],
            )
        )

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.config.as_tuple(), self.max_claimable, self.total_claimed,
            bytes.fromhex(self.signature[2:]), bytes.fromhex(self.model_id[2:]), self.request_hash(),
            self.requests,
        )  # fmt: skip


@dataclass
class ClaimRound:
    settled: dict[str, int] = field(default_factory=dict)  # confirmed / failed claim rows this round
    released: int = 0  # requests in flight past the serve timeout, released as void this round
    outbox_id: int | None = None
    key: str | None = None
    lines: list[ClaimLine] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # channels whose own claim row reverts

    @property
    def requests(self) -> int:
        return sum(line.requests for line in self.lines)


class ChannelClaimer:
    """Claims channel vouchers for the gateway. `outbox` holds the receiver authorizer's key (SETTLER_ROLE);
    `router` is the web3 PaymentRouter contract; `engine` the API's database (mirror + channel tables)."""

    def __init__(
        self,
        *,
        engine: Engine,
        outbox: Outbox,
        router: Any,
        min_requests: int = 1000,
        max_wait_s: float = 300.0,
        max_rows: int = 200,
        serve_timeout_s: int = 300,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.router = router
        self.router_address = str(router.address).lower()
        self.chain_id = outbox.chain_id
        self.min_requests = min_requests
        self.max_wait_s = max_wait_s
        self.max_rows = max_rows
        self.serve_timeout_s = serve_timeout_s
        self._last_full = time.monotonic()

    # --- one round ------------------------------------------------------------------------------------
    def run_once(self, *, force: bool = False) -> ClaimRound:
        result = ClaimRound()
        self.outbox.process()
        result.settled = self.settle()
        result.released = release_stale(self.engine, self.chain_id, int(time.time()) - self.serve_timeout_s)
        if result.released:
            log.warning("released %d channel request(s) not served within %d s", result.released,
                        self.serve_timeout_s)  # fmt: skip
        full = force or time.monotonic() - self._last_full >= self.max_wait_s
        with self.engine.connect() as conn:
            lines = self.due_lines(conn, full=full)
        if full:
            self._last_full = time.monotonic()
        while lines:
            try:
                self._enqueue(lines, result)
                return result
            except OutboxRevertError:
                bad = {ln.channel_id for ln in lines if not self._claimable_alone(ln)}
                keep = [ln for ln in lines if ln.channel_id not in bad]  # a channel's rows go together
                result.skipped += sorted(bad)
                if len(keep) == len(lines):
                    raise
                lines = (
                    keep  # totals are cumulative per channel: dropping whole channels keeps the rest valid
                )
        return result

    def settle(self) -> dict[str, int]:
        """Pending claim rows take their outbox row's outcome."""
        counts: dict[str, int] = defaultdict(int)
        with self.engine.connect() as conn:
            ids = [int(r[0]) for r in conn.execute(
                text("SELECT DISTINCT outbox_id FROM channel_claim WHERE chain_id = :c AND state = :p"),
                {"c": self.chain_id, "p": PENDING},
            )]  # fmt: skip
        for oid in ids:
            tx = self.outbox.get_by_id(oid)
            status = tx.status if tx is not None else FAILED  # a discarded row: nothing was sent
            if status == PENDING:
                continue
            with self.engine.begin() as conn:
                n = conn.execute(
                    text("UPDATE channel_claim SET state = :s WHERE outbox_id = :o AND state = :p"),
                    {"s": status, "o": oid, "p": PENDING},
                ).rowcount
            counts[status] += int(n)
            if status == FAILED:
                log.warning("channel claim transaction %s failed; its vouchers are claimed again", oid)
        return dict(counts)

    def due_lines(self, conn: Connection, *, full: bool) -> list[ClaimLine]:
        """The claim rows the next transaction would carry (see the module docstring)."""
        params = {"c": self.chain_id, "r": self.router_address}
        # usage and requests in flight in one statement (one snapshot): a charge accepted, served or voided
        # meanwhile is seen on both sides or on neither. Read before the states: a channel's charged total
        # net of its requests in flight never decreases, and its latest voucher covers its charged total, so
        # the voucher read after covers every total claimed here.
        flying: dict[tuple[str, str], tuple[int, int]] = defaultdict(lambda: (0, 0))
        charged_by: dict[tuple[str, str], tuple[int, int]] = {}
        for ch, model, charged, requests, amount in conn.execute(
            text("SELECT u.channel_id, u.model_id, u.charged, u.requests, r.amount FROM channel_usage u "
                 "LEFT JOIN channel_request r ON r.chain_id = u.chain_id AND r.channel_id = u.channel_id "
                 "AND r.model_id = u.model_id WHERE u.chain_id = :c ORDER BY u.channel_id, u.model_id"),
            {"c": self.chain_id},
        ):  # fmt: skip
            charged_by[(ch, model)] = (int(charged), int(requests))
            if amount is not None:
                a, n = flying[(ch, model)]
                flying[(ch, model)] = (a + int(amount), n + 1)
        states = {
            str(r[0]): r for r in conn.execute(
                text("SELECT channel_id, payer, payer_authorizer, receiver_authorizer, token, "
                     "withdraw_delay, salt, max_claimable, signature, charged, requests FROM channel_state "
                     "WHERE chain_id = :c AND router = :r AND requests > 0 ORDER BY channel_id"), params)
        }  # fmt: skip
        claimed: dict[tuple[str, str], tuple[int, int]] = defaultdict(lambda: (0, 0))
        claiming: set[str] = set()  # channels with a claim transaction pending
        totals: dict[str, int] = defaultdict(int)
        for ch, model, amount, requests, total, state in conn.execute(
            text("SELECT channel_id, model_id, amount, requests, total_claimed, state FROM channel_claim "
                 "WHERE chain_id = :c AND state != :f"), {"c": self.chain_id, "f": FAILED},
        ):  # fmt: skip
            a, n = claimed[(ch, model)]
            claimed[(ch, model)] = (a + int(amount), n + int(requests))
            totals[ch] = max(totals[ch], int(total))
            if state == PENDING:
                claiming.add(ch)
        usage: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for (ch, model), (charged, requests) in charged_by.items():
            a, n = claimed[(ch, model)]
            fa, fn = flying[(ch, model)]
            if charged - fa > a:
                usage[ch].append((model, charged - fa - a, requests - fn - n))
        urgent = set(withdrawals_requested(conn, self.router_address))
        lines: list[ClaimLine] = []
        order = sorted(usage, key=lambda c: (c not in urgent, c))  # channels being withdrawn first
        for ch in order:
            if ch in claiming or ch not in states:
                continue
            pending_requests = sum(n for _, _, n in usage[ch])
            if not (full or ch in urgent or pending_requests >= self.min_requests):
                continue
            s = states[ch]
            config = ChannelConfig(
                payer=s[1], payer_authorizer=s[2], receiver=self.router_address, receiver_authorizer=s[3],
                token=s[4], withdraw_delay=int(s[5]), salt=s[6],
            )  # fmt: skip
            rows = usage[ch]
            if len(lines) + len(rows) > self.max_rows:
                break
            total = totals[ch]
            for model, amount, requests in rows:
                total += amount
                lines.append(ClaimLine(ch, model, config, int(s[7]), str(s[8]), total, amount, requests))
        return lines

    # --- sending --------------------------------------------------------------------------------------
    def _key(self, lines: list[ClaimLine]) -> str:
        digest = keccak(b"".join(
            bytes.fromhex(ln.channel_id[2:] + ln.model_id[2:]) + ln.total_claimed.to_bytes(32, "big")
            for ln in lines
        )).hex()  # fmt: skip
        return f"channelclaim:{self.chain_id}:{self.router_address}:{digest}"

    def _enqueue(self, lines: list[ClaimLine], result: ClaimRound) -> None:
        data = self.router.functions.claim([ln.as_tuple() for ln in lines])._encode_transaction_data()
        now = int(time.time())

        def record(conn: Connection, oid: int) -> None:
            conn.execute(
                text("INSERT INTO channel_claim (outbox_id, chain_id, channel_id, model_id, total_claimed, "
                     "amount, requests, state, created_at) VALUES (:o, :c, :ch, :m, :t, :a, :n, :s, :now)"),
                [{"o": oid, "c": self.chain_id, "ch": ln.channel_id, "m": ln.model_id,
                  "t": str(ln.total_claimed), "a": str(ln.amount), "n": ln.requests, "s": PENDING,
                  "now": now} for ln in lines],
            )  # fmt: skip

        key = self._key(lines)
        tx = self.outbox.enqueue(key, to=self.router_address, data=data, with_row=record)
        result.key, result.outbox_id, result.lines = key, tx.id, lines
        log.info("channel claim %s: %d row(s), %d request(s)", key, len(lines), result.requests)

    def _claimable_alone(self, line: ClaimLine) -> bool:
        try:
            self.router.functions.claim([line.as_tuple()]).call({"from": self.outbox.account.address})
        except Exception:  # reverts alone: leave it out of the batch
            return False
        return True

    # --- waiting / background -------------------------------------------------------------------------
    def claim_all(self, *, timeout: float = 120.0) -> list[ClaimRound]:
        """Claim everything charged now and wait until those claims are mined (tests, shutdown, benches)."""
        rounds: list[ClaimRound] = []
        deadline = time.monotonic() + timeout
        while True:
            r = self.run_once(force=True)
            rounds.append(r)
            if r.outbox_id is not None:
                self.outbox.wait(str(r.key), timeout=max(1.0, deadline - time.monotonic()))
                continue
            with self.engine.connect() as conn:
                pending = conn.execute(
                    text("SELECT COUNT(*) FROM channel_claim WHERE chain_id = :c AND state = :p"),
                    {"c": self.chain_id, "p": PENDING},
                ).scalar()
            if not pending:
                return rounds
            if time.monotonic() > deadline:
                raise TimeoutError("channel claims still pending")
            time.sleep(0.05)


class ClaimerThread:
    """`ChannelClaimer.run_once` every `interval` seconds in a daemon thread (the API runs one next to its
    outbox worker when it holds the claim key)."""

    def __init__(self, claimer: ChannelClaimer, *, interval: float = 2.0) -> None:
        self.claimer = claimer
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="cairn-channel-claimer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.claimer.run_once()
            except Exception:  # the node or the database is away for a moment: next round
                log.warning("channel claim round failed; retrying", exc_info=True)

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


def main(argv: list[str]) -> int:
    """`python -m backend.api.x402.claimer [--once]`: claim until killed (or one forced round), for an API
    run with CAIRN_API_CHANNEL_CLAIM_IN_API=false. Exactly one claimer per database."""
    import json
    import sys

    from backend.api.chain import connect_chain
    from backend.api.settings import ApiSettings
    from backend.api.x402.service import build_claimer
    from cairn.core.db import make_engine

    logging.basicConfig(level=logging.INFO)
    cfg = ApiSettings()
    claimer = build_claimer(cfg, connect_chain(cfg), make_engine(cfg.database_url))
    while True:
        done = claimer.run_once(force="--once" in argv)
        if "--once" in argv:
            shown = {"requests": done.requests, "outbox_id": done.outbox_id, "skipped": done.skipped}
            print(json.dumps(shown))
            sys.stdout.flush()
            return 0
        time.sleep(cfg.api_channel_claim_interval_s)


__all__ = ["CONFIRMED", "ChannelClaimer", "ClaimLine", "ClaimRound", "ClaimerThread"]

if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
