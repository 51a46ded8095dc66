"""The x402 settler: served exact payments -> `PaymentRouter.settleExactBatch` transactions, through the
outbox only, and each payment's outcome (settled with the transaction hash, or failed with the reason) in the
database.

Only a served request is charged: a payment is recorded `accepted` before its route runs and becomes
`served` only once the route has produced its whole response (backend.api.x402.gateway,
`PaymentResponseMiddleware`); the settler batches `served` payments only, so a payment whose route is still
running, failed, or whose stream broke midway is never in a batch. A payment left `accepted` by an API
process killed mid-request is voided by the settler once it is `serve_timeout_s` old
(`api_x402_serve_timeout_s`, `store.void_stale`). The rule never charges for unserved work; the trade-off is
that a request served in full just before the kill (its `served` mark not yet written) is not charged
either, and a request still running past the timeout (a very long stream) is served free. The timeout must
stay above the longest request (the upstreams' `timeout_s` and a stream's length) and below
`api_x402_max_timeout_s` minus `api_x402_settle_window_s`, so that a served payment is still settleable.

Crash safety (kill -9 at any point; tests/integration/test_x402_settle_crash.py):
1. A batch is claimed in the outbox row's own database transaction (`Outbox.enqueue(with_row=...)`): the
   `x402_batch` row, its payments moved to `settling`, and the signed transaction commit together or not at
   all.
   Nothing is broadcast before that commit; a payment is in at most one pending batch.
2. A round first reconciles: every pending batch whose outbox row is settled gets its receipt's outcomes
   (PaymentSettled rows carry the authorization nonce as requestHash; PaymentSkipped rows the reason) applied
   once (`store.apply_outcomes` flips the batch to `applied` in the same transaction). A batch whose
   transaction did not land (reverted, replaced, refused at its first broadcast) puts its payments back to
   `served` for the next batch: the token's nonce makes a second submission of a settled authorization
   impossible anyway, so nothing is paid twice.
3. Then it voids the stale accepted payments and submits the next batch of served payments.

Run it as a process (`python -m backend.api.x402.settle`, settings from CAIRN_* like the API) or in the API
process (`api_x402_settle_in_api`, `SettlerThread`).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy import Connection, Engine, delete, update
from web3.logs import DISCARD

from backend.api.x402 import store
from backend.outbox import CONFIRMED, PENDING, Outbox
from cairn.core.errors import OutboxError, OutboxRevertError

log = logging.getLogger("cairn.x402.settle")
REASONS = {
    keccak(text="ERC3009UsedAuthorization(address,bytes32)")[:4]: "authorization_used_or_cancelled",
    keccak(text="ERC20InsufficientBalance(address,uint256,uint256)")[:4]: "insufficient_balance",
    keccak(text="ERC3009InvalidSignature()")[:4]: "invalid_signature",
    keccak(text="ERC3009InvalidAuthorizationTime(uint256,uint256)")[:4]: "authorization_expired",
    keccak(text="PaymentRouterZeroValue()")[:4]: "zero_value",
}


def reason_name(selector: bytes) -> str:
    return REASONS.get(bytes(selector), "0x" + bytes(selector).hex())


def payment_tuple(row: Any) -> tuple[Any, ...]:
    """The router's `ExactPayment` for a stored payment (the model is the batch's argument)."""
    auth = json.loads(row.authorization)
    sig = bytes.fromhex(auth["signature"][2:])
    v = sig[64] if sig[64] >= 27 else sig[64] + 27
    return (
        _checksum(row.payer), int(row.amount), int(auth["validAfter"]), int(auth["validBefore"]),
        bytes.fromhex(row.nonce[2:]), v, sig[:32], sig[32:64],
    )  # fmt: skip


def _checksum(address: str) -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(address))


class ExactSettler:
    """Batches served exact payments into settleExactBatch through `outbox`, and records their outcomes."""

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        router: Any,
        *,
        batch_size: int = 100,
        serve_timeout_s: int = 300,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.router = router
        self.batch_size = batch_size
        self.serve_timeout_s = serve_timeout_s
        self.chain_id = outbox.chain_id

    def round(self) -> dict[str, int]:
        """Reconcile the outbox and the open batches, then submit one new batch. Returns counts. The outbox is
        processed (re-broadcasts, fee bumps) only while a batch is open: the sender may be shared (the API's
        relayer key on the local chain), and an idle settler leaves the other rows to their owner."""
        if store.open_batches(self.engine, self.chain_id):
            self.outbox.process()
        applied = self.reconcile()
        voided = store.void_stale(self.engine, self.chain_id, self.serve_timeout_s)
        if voided:
            log.warning("%s payment(s) not served within %s s voided", voided, self.serve_timeout_s)
        submitted = self.submit()
        return {"applied": applied, "voided": voided, "submitted": submitted}

    def reconcile(self) -> int:
        done = 0
        for batch in store.open_batches(self.engine, self.chain_id):
            row = self.outbox.refresh(batch.outbox_id)
            if row is None or row.status == PENDING:
                continue
            if row.status == CONFIRMED and row.mined_hash:
                receipt = self.outbox.w3.eth.get_transaction_receipt(row.mined_hash)  # type: ignore[arg-type]
                settled, skipped = self._outcomes(receipt)
                store.apply_outcomes(self.engine, batch.id, row.mined_hash, settled, skipped)
            else:  # reverted or replaced: nothing of it happened on chain
                log.warning(
                    "settlement batch %s did not land (%s); its payments are batched again", batch.id, row
                )
                store.release_batch(self.engine, batch.id)
            done += 1
        return done

    def _outcomes(self, receipt: Any) -> tuple[set[tuple[str, str]], dict[tuple[str, str], str]]:
        ev = self.router.events
        settled = {
            (str(e["args"]["payer"]).lower(), "0x" + bytes(e["args"]["requestHash"]).hex())
            for e in ev.PaymentSettled().process_receipt(receipt, errors=DISCARD)
        }
        skipped = {
            (str(e["args"]["from"]).lower(), "0x" + bytes(e["args"]["nonce"]).hex()): reason_name(
                e["args"]["reason"]
            )
            for e in ev.PaymentSkipped().process_receipt(receipt, errors=DISCARD)
        }
        return settled, skipped

    def submit(self) -> int:
        rows = store.unbatched(self.engine, self.chain_id, "exact", self.batch_size)
        if not rows:
            return 0
        model = rows[0].model_id  # one model per batch (the router takes it once, not per row)
        rows = [r for r in rows if r.model_id == model]
        ids = [int(r.id) for r in rows]
        data = self.router.encode_abi(
            "settleExactBatch", [[payment_tuple(r) for r in rows], bytes.fromhex(model[2:])]
        )
        key = f"x402-exact:{self.chain_id}:{uuid.uuid4().hex}"  # nothing is stored under it unless claimed

        def claim(conn: Connection, oid: int) -> None:
            store.claim_batch(conn, self.chain_id, ids, oid)

        try:
            # gas estimated by the outbox: safe, since a row that runs out of gas reverts the whole batch
            # (PaymentRouterRowOutOfGas) instead of being skipped
            row = self.outbox.enqueue(key, to=self.router.address, data=data, broadcast=False, with_row=claim)
        except store.BatchRaceError:
            return 0
        except OutboxRevertError as exc:  # the whole batch would revert now (e.g. the router is paused)
            log.warning("settlement batch of %s payments not sent: %s", len(rows), exc)
            return 0
        try:
            self.outbox.send(row, on_discard=_forget_batch)
        except OutboxError as exc:  # refused: discarded with its batch; re-broadcast problems: next round
            log.warning("settlement batch %s not sent now: %s", key, exc)
        return len(rows)


def _forget_batch(conn: Connection, outbox_id: int) -> None:
    """The outbox discards a row the node refused at its first broadcast: its batch goes."""
    bid = conn.execute(
        store.BATCH.select().with_only_columns(store.BATCH.c.id).where(store.BATCH.c.outbox_id == outbox_id)
    ).scalar()
    if bid is None:
        return
    conn.execute(
        update(store.PAYMENT)
        .where(store.PAYMENT.c.batch_id == bid, store.PAYMENT.c.status == store.SETTLING)
        .values(status=store.SERVED, batch_id=None)
    )
    conn.execute(delete(store.BATCH).where(store.BATCH.c.id == bid))


class SettlerThread:
    """`ExactSettler.round()` every `interval` seconds in a daemon thread (the API's in-process settler)."""

    def __init__(self, settler: ExactSettler, interval: float) -> None:
        self.settler = settler
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="cairn-x402-settler", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.settler.round()
            except Exception:  # node or database away for a moment: next round
                log.warning("x402 settlement round failed; retrying", exc_info=True)

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


def build_settler(cfg: Any, chain: Any, engine: Engine) -> ExactSettler:
    """The settler of the API settings `cfg` on `chain` (backend.api.chain.Chain)."""
    outbox = Outbox(engine, chain.w3, cfg.signing_key("settler", chain.chain_id))
    return ExactSettler(
        engine, outbox, chain.contract("PaymentRouter"), batch_size=cfg.api_x402_batch_size,
        serve_timeout_s=cfg.api_x402_serve_timeout_s,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    """`python -m backend.api.x402.settle [--once]`: settle until killed (or one round)."""
    from backend.api.chain import connect_chain
    from backend.api.settings import ApiSettings
    from cairn.core.db import make_engine

    logging.basicConfig(level=logging.INFO)
    cfg = ApiSettings()
    engine = make_engine(cfg.database_url)
    settler = build_settler(cfg, connect_chain(cfg), engine)
    while True:
        counts = settler.round()
        if "--once" in argv:
            print(json.dumps(counts))
            return 0
        time.sleep(cfg.api_x402_settle_interval_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
