"""Crash-safe transaction outbox: persist signed transactions before broadcasting, fixed nonces, fee bumps.

Rules that make a kill -9 at any point harmless:
1. `enqueue(key, ...)` is idempotent on `key` (the caller's name for the effect, e.g. `propose:31337:5`): a
   second call returns the existing row and sends nothing new.
2. The nonce is fixed when the row is written, in the same database transaction as the signed raw transaction
   (`outbox_tx` + first `outbox_attempt`). Nothing is broadcast before that commit. One key -> one nonce ->
   at most one of its signed versions can ever be mined: no double publication or payment.
3. `process()` (run at start and in a loop) reconciles every pending row with the chain: a receipt
   for any of its attempts' hashes settles it; if the sender's mined nonce has passed the row's nonce
   without a receipt for any attempt, on looks at least `PASSED_BLOCKS` blocks apart (a node may show a
   block's state before its receipts), it was replaced from outside and is marked `failed`; otherwise the
   latest attempt is re-broadcast (nothing is lost), and after `stuck_after` seconds it is replaced by a
   new attempt with the same nonce and fees bumped by `bump_percent` (persisted before broadcast).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound

from cairn.core.errors import OutboxError, OutboxRevertError

PENDING, CONFIRMED, FAILED = "pending", "confirmed", "failed"
PASSED_BLOCKS = 2  # a used nonce without a receipt for this many blocks: replaced from outside


@dataclass(frozen=True)
class OutboxTx:
    id: int
    key: str
    nonce: int
    status: str
    mined_hash: str | None
    block_number: int | None


def _now() -> int:
    return int(time.time())


class Outbox:
    """One sender key on one chain, backed by the `outbox_tx` / `outbox_attempt` tables."""

    def __init__(
        self,
        engine: Engine,
        w3: Web3,
        private_key: str,
        *,
        stuck_after: float = 30.0,
        bump_percent: int = 25,
        priority_fee: int = 1_000_000_000,
    ) -> None:
        self.engine = engine
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(private_key)
        self.sender = self.account.address.lower()
        self.chain_id = int(w3.eth.chain_id)
        self.stuck_after = stuck_after
        self.bump_percent = max(bump_percent, 11)  # nodes require >= 10% on both fees to replace
        self.priority_fee = priority_fee
        self._passed: dict[int, int] = {}  # row id -> head block when its nonce was first seen used

    # --- writing ------------------------------------------------------------------------------------
    def get(self, key: str) -> OutboxTx | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                text("SELECT id, key, nonce, status, mined_hash, block_number FROM outbox_tx WHERE key = :k"),
                {"k": key},
            ).first()
        return OutboxTx(*r) if r else None

    def _fees(self) -> tuple[int, int]:
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        tip = self.priority_fee
        return 2 * base + tip, tip

    def _sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        signed = self.account.sign_transaction(tx)
        return "0x" + bytes(signed.hash).hex(), "0x" + bytes(signed.raw_transaction).hex()

    def enqueue(
        self, key: str, *, to: str, data: str = "0x", value: int = 0, gas: int | None = None
    ) -> OutboxTx:
        """Persist a signed transaction for `key` (once) and broadcast it. Returns the row."""
        existing = self.get(key)
        if existing is not None:
            return existing
        to_cs = Web3.to_checksum_address(to)
        if gas is None:
            try:
                est = self.w3.eth.estimate_gas(
                    {"from": self.account.address, "to": to_cs, "data": data, "value": value}  # type: ignore[typeddict-item]
                )
            except ContractLogicError as exc:  # nothing signed or stored: the caller re-reads the chain
                raise OutboxRevertError(f"{key} would revert now ({exc}); nothing sent") from None
            gas = int(est * 12 // 10) + 10_000
        max_fee, tip = self._fees()
        for _ in range(5):  # another process took the same nonce first: the unique index says so, retry
            try:
                self._persist(key, to_cs, data, value, gas, max_fee, tip)
                break
            except IntegrityError:
                continue
        else:
            raise OutboxError(f"could not reserve a nonce for {key}: other senders keep taking it")
        row = self.get(key)
        assert row is not None
        if row.status == PENDING:
            self._broadcast_latest(row.id)
        return row

    def _persist(self, key: str, to_cs: str, data: str, value: int, gas: int, max_fee: int, tip: int) -> None:
        """Sign with the next free nonce and store the row and its first attempt in one transaction."""
        chain_next = int(self.w3.eth.get_transaction_count(self.account.address, "latest"))
        now = _now()
        with self.engine.begin() as conn:
            again = conn.execute(text("SELECT id FROM outbox_tx WHERE key = :k"), {"k": key}).first()
            if again is None:
                top = conn.execute(
                    text("SELECT MAX(nonce) FROM outbox_tx WHERE chain_id = :c AND sender = :s"),
                    {"c": self.chain_id, "s": self.sender},
                ).scalar()
                nonce = max(chain_next, (int(top) + 1) if top is not None else 0)
                tx = {
                    "type": 2, "chainId": self.chain_id, "nonce": nonce, "to": to_cs, "value": value,
                    "data": data, "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
                }  # fmt: skip
                tx_hash, raw = self._sign(tx)
                oid = conn.execute(
                    text(
                        "INSERT INTO outbox_tx (key, chain_id, sender, nonce, to_address, data, value, gas, "
                        "status, created_at, updated_at) "
                        "VALUES (:k, :c, :s, :n, :t, :d, :v, :g, :st, :now, :now) RETURNING id"
                    ),
                    {"k": key, "c": self.chain_id, "s": self.sender, "n": nonce, "t": to_cs.lower(),
                     "d": data, "v": str(value), "g": gas, "st": PENDING, "now": now},
                ).scalar_one()  # fmt: skip
                conn.execute(
                    text(
                        "INSERT INTO outbox_attempt (outbox_id, tx_hash, raw_tx, max_fee, priority_fee, "
                        "created_at) VALUES (:o, :h, :r, :mf, :pf, :now)"
                    ),
                    {"o": oid, "h": tx_hash, "r": raw, "mf": str(max_fee), "pf": str(tip), "now": now},
                )

    # --- chain side ------------------------------------------------------------------------------------
    def _attempts(self, oid: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT tx_hash, raw_tx, max_fee, priority_fee, created_at FROM outbox_attempt "
                        "WHERE outbox_id = :o ORDER BY id"
                    ),
                    {"o": oid},
                )
            )

    def _broadcast(self, raw: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(bytes.fromhex(raw[2:]))
        except Exception as exc:  # already known / nonce too low / underpriced: reconciliation decides
            msg = str(exc).lower()
            if not any(s in msg for s in ("known", "nonce too low", "underpriced", "already")):
                raise OutboxError(f"broadcast rejected: {exc}") from None

    def _broadcast_latest(self, oid: int) -> None:
        attempts = self._attempts(oid)
        if attempts:
            self._broadcast(attempts[-1].raw_tx)

    def _receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _settle(self, oid: int, receipt: Any) -> None:
        status = CONFIRMED if int(receipt["status"]) == 1 else FAILED
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE outbox_tx SET status = :st, mined_hash = :h, block_number = :b, "
                    "updated_at = :now WHERE id = :o"
                ),
                {"st": status, "h": "0x" + bytes(receipt["transactionHash"]).hex(),
                 "b": int(receipt["blockNumber"]), "now": _now(), "o": oid},
            )  # fmt: skip

    def _find_receipt(self, oid: int) -> Any | None:
        for a in self._attempts(oid):
            r = self._receipt(a.tx_hash)
            if r is not None:
                return r
        return None

    def _bump(self, oid: int, row: Any) -> None:
        attempts = self._attempts(oid)
        last = attempts[-1]
        max_fee, tip = self._fees()
        max_fee = max(max_fee, int(last.max_fee) * (100 + self.bump_percent) // 100 + 1)
        tip = max(tip, int(last.priority_fee) * (100 + self.bump_percent) // 100 + 1)
        tx = {
            "type": 2, "chainId": self.chain_id, "nonce": int(row.nonce),
            "to": Web3.to_checksum_address(row.to_address), "value": int(row.value), "data": row.data,
            "gas": int(row.gas), "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
        }  # fmt: skip
        tx_hash, raw = self._sign(tx)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO outbox_attempt (outbox_id, tx_hash, raw_tx, max_fee, priority_fee, "
                    "created_at) VALUES (:o, :h, :r, :mf, :pf, :now)"
                ),
                {"o": oid, "h": tx_hash, "r": raw, "mf": str(max_fee), "pf": str(tip), "now": _now()},
            )
        self._broadcast(raw)

    def process(self) -> int:
        """Reconcile every pending row with the chain once. Returns how many are still pending."""
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    text(
                        "SELECT id, nonce, to_address, data, value, gas FROM outbox_tx "
                        "WHERE chain_id = :c AND sender = :s AND status = :p ORDER BY nonce"
                    ),
                    {"c": self.chain_id, "s": self.sender, "p": PENDING},
                )
            )
        pending = 0
        for row in rows:
            receipt = self._find_receipt(row.id)
            if receipt is None:
                head = int(self.w3.eth.block_number)
                mined_nonce = int(self.w3.eth.get_transaction_count(self.account.address, "latest"))
                if mined_nonce > int(row.nonce):
                    # The nonce is used but no attempt has a receipt. A node can show a block's state (the new
                    # nonce) before its receipts (anvil does, for a moment; so can two load-balanced RPC
                    # backends): decide only when the nonce was already passed PASSED_BLOCKS blocks ago.
                    first = self._passed.setdefault(row.id, head)
                    receipt = self._find_receipt(row.id)
                    if receipt is None and head - first >= PASSED_BLOCKS:
                        with self.engine.begin() as conn:
                            conn.execute(
                                text("UPDATE outbox_tx SET status = :f, updated_at = :now WHERE id = :o"),
                                {"f": FAILED, "now": _now(), "o": row.id},
                            )
                        continue
                    if receipt is None:
                        pending += 1
                        continue
            if receipt is not None:
                self._settle(row.id, receipt)
                continue
            pending += 1
            attempts = self._attempts(row.id)
            if attempts and time.time() - int(attempts[-1].created_at) >= self.stuck_after:
                self._bump(row.id, row)
            else:
                self._broadcast_latest(row.id)
        return pending

    def drain(self, *, timeout: float = 120.0, poll: float = 0.05) -> None:
        """Process until nothing of this sender is pending (what a killed run left behind is settled)."""
        deadline = time.monotonic() + timeout
        while self.process():
            if time.monotonic() > deadline:
                raise OutboxError(f"outbox transactions of {self.sender} still pending after {timeout:.0f} s")
            time.sleep(poll)

    def wait(self, key: str, *, timeout: float = 60.0, poll: float = 0.05) -> OutboxTx:
        """Process until `key` is settled (confirmed or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.get(key)
            if row is None:
                raise OutboxError(f"no outbox transaction {key}")
            if row.status != PENDING:
                return row
            if time.monotonic() > deadline:
                raise OutboxError(f"outbox transaction {key} still pending after {timeout:.0f} s")
            self.process()
            row = self.get(key)
            if row is not None and row.status != PENDING:
                return row
            time.sleep(poll)
