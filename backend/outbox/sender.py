"""`Outbox`: one sender key on one chain. Signs and stores before it broadcasts, bumps fees, reconciles."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound

from backend.outbox import store
from backend.outbox.store import CONFIRMED, FAILED, PENDING, OutboxTx
from cairn.core.errors import OutboxError, OutboxNonceError, OutboxRejectedError, OutboxRevertError

PASSED_BLOCKS = 2  # a used nonce without a receipt for this many blocks: replaced from outside
NONCE_ATTEMPTS = 50  # another process took the nonce first (the unique constraint says so): retry
BENIGN = ("known", "nonce too low", "underpriced", "already")  # broadcast answers reconciliation settles


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

    # --- reading ------------------------------------------------------------------------------------
    def get(self, key: str) -> OutboxTx | None:
        return store.by_key(self.engine, key)

    def get_by_id(self, oid: int) -> OutboxTx | None:
        return store.by_id(self.engine, oid)

    def get_by_hash(self, tx_hash: str) -> OutboxTx | None:
        """The row whose attempts (the first one or any fee bump) include `tx_hash`."""
        return store.by_hash(self.engine, tx_hash)

    def hashes(self, oid: int) -> list[str]:
        return [str(a.tx_hash) for a in store.attempts(self.engine, oid)]

    def chain_pending(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.account.address, "pending"))

    def next_nonce(self) -> int:
        """The nonce the next new row would get now (a deployer predicts CREATE addresses from it)."""
        with self.engine.connect() as conn:
            return store.free_nonce(conn, self.chain_id, self.sender, self.chain_pending())

    def estimate_gas(self, to: str | None, data: str, *, value: int = 0, key: str = "transaction") -> int:
        """The gas limit the outbox gives a transaction: the node's estimate in the "pending" block (the
        block this will be mined in: a reveal needs its commitment a block old) plus 20% and 10k.
        OutboxRevertError if it would revert now (nothing is signed or stored; the caller re-reads the
        chain)."""
        call: dict[str, Any] = {"from": self.account.address, "data": data, "value": value}
        if to is not None:
            call["to"] = Web3.to_checksum_address(to)
        try:
            est = int(self.w3.eth.estimate_gas(call, "pending"))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise OutboxRevertError(f"{key} would revert now ({exc}); nothing sent") from None
        return est * 12 // 10 + 10_000

    # --- writing ------------------------------------------------------------------------------------
    def _fees(self) -> tuple[int, int]:
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        tip = self.priority_fee
        return 2 * base + tip, tip

    def _sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        signed = self.account.sign_transaction(tx)
        return "0x" + bytes(signed.hash).hex(), "0x" + bytes(signed.raw_transaction).hex()

    def _tx(
        self, nonce: int, to: str | None, data: str, value: int, gas: int, fees: tuple[int, int]
    ) -> dict[str, Any]:
        tx: dict[str, Any] = {
            "type": 2, "chainId": self.chain_id, "nonce": nonce, "value": value, "data": data, "gas": gas,
            "maxFeePerGas": fees[0], "maxPriorityFeePerGas": fees[1],
        }  # fmt: skip
        if to is not None:  # no `to`: contract creation
            tx["to"] = Web3.to_checksum_address(to)
        return tx

    def enqueue(
        self,
        key: str,
        *,
        to: str | None,
        data: str = "0x",
        value: int = 0,
        gas: int | None = None,
        broadcast: bool = True,
        with_row: Callable[[Connection, int], None] | None = None,
    ) -> OutboxTx:
        """Persist a signed transaction for `key` (once) and broadcast it. Returns the row.

        `to=None` creates a contract (`data` is the init code). `with_row(conn, id)` runs inside the
        transaction that stores the row (a caller's own record that references it commits with it, or
        neither does). With `broadcast=False` the row waits for `process()` or `send()`. A first
        broadcast the node refuses outright (e.g. insufficient funds) discards the row and raises
        OutboxRejectedError."""
        existing = self.get(key)
        if existing is not None:
            return existing
        to_cs = Web3.to_checksum_address(to) if to is not None else None
        if gas is None:
            gas = self.estimate_gas(to_cs, data, value=value, key=key)
        fees = self._fees()
        fields = {
            "to_address": to_cs.lower() if to_cs else None,
            "data": data,
            "value": str(value),
            "gas": gas,
        }
        created = False
        for attempt in range(NONCE_ATTEMPTS):
            try:
                created = store.reserve(
                    self.engine, key=key, chain_id=self.chain_id, sender=self.sender,
                    chain_pending=self.chain_pending(), fields=fields, fees=fees, with_row=with_row,
                    sign=lambda n: self._sign(self._tx(n, to_cs, data, value, gas, fees)),
                )  # fmt: skip
                break
            except IntegrityError:
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        else:
            raise OutboxNonceError(f"could not reserve a nonce for {key}: other senders keep taking it")
        row = self.get(key)
        if row is None:
            raise OutboxError(f"outbox transaction {key} vanished right after it was stored")
        if created and broadcast:
            self.send(row)
        return row

    def send(self, row: OutboxTx, *, on_discard: Callable[[Connection, int], None] | None = None) -> None:
        """The first broadcast of a stored row. A definite refusal discards it (nothing was sent, the nonce
        is free again), running `on_discard(conn, id)` in that transaction, and raises OutboxRejectedError."""
        try:
            self._broadcast_latest(row.id)
        except OutboxError as exc:
            if len(store.attempts(self.engine, row.id)) == 1:
                with self.engine.begin() as conn:
                    if on_discard is not None:
                        on_discard(conn, row.id)
                    store.discard(conn, row.id)
                raise OutboxRejectedError(f"{row.key}: the node refused it: {exc}") from None
            raise

    # --- chain side ------------------------------------------------------------------------------------
    def _broadcast(self, raw: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(bytes.fromhex(raw[2:]))
        except Exception as exc:  # already known / nonce too low / underpriced: reconciliation decides
            msg = str(exc).lower()
            if not any(s in msg for s in BENIGN):
                raise OutboxError(f"broadcast rejected: {exc}") from None

    def _broadcast_latest(self, oid: int) -> None:
        attempts = store.attempts(self.engine, oid)
        if attempts:
            self._broadcast(attempts[-1].raw_tx)

    def _receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _find_receipt(self, oid: int) -> Any | None:
        for a in store.attempts(self.engine, oid):
            r = self._receipt(a.tx_hash)
            if r is not None:
                return r
        return None

    def _settle(self, oid: int, receipt: Any) -> None:
        store.settle(
            self.engine, oid, status=CONFIRMED if int(receipt["status"]) == 1 else FAILED,
            mined_hash="0x" + bytes(receipt["transactionHash"]).hex(), block=int(receipt["blockNumber"]),
        )  # fmt: skip

    def refresh(self, oid: int) -> OutboxTx | None:
        """The row, settled first if one of its attempts has a receipt now (a status lookup's view)."""
        row = self.get_by_id(oid)
        if row is not None and row.status == PENDING and (receipt := self._find_receipt(oid)) is not None:
            self._settle(oid, receipt)
            row = self.get_by_id(oid)
        return row

    def _bump(self, oid: int, row: Any) -> None:
        last = store.attempts(self.engine, oid)[-1]
        max_fee, tip = self._fees()
        max_fee = max(max_fee, int(last.max_fee) * (100 + self.bump_percent) // 100 + 1)
        tip = max(tip, int(last.priority_fee) * (100 + self.bump_percent) // 100 + 1)
        tx = self._tx(int(row.nonce), row.to_address, row.data, int(row.value), int(row.gas), (max_fee, tip))
        tx_hash, raw = self._sign(tx)
        with self.engine.begin() as conn:  # persisted before it is broadcast, like the first attempt
            store.add_attempt(conn, oid, tx_hash, raw, (max_fee, tip))
        self._broadcast(raw)

    def process(self) -> int:
        """Reconcile every pending row with the chain once. Returns how many are still pending.

        A receipt for any attempt settles a row. A nonce used without a receipt for PASSED_BLOCKS blocks
        marks it failed (replaced from outside). Otherwise the latest attempt is re-broadcast (a node that
        dropped it gets it back) and, older than `stuck_after`, replaced by a fee bump at the same nonce,
        unless a lower nonce is missing from the node's pool (a bump cannot help then)."""
        rows = store.pending_rows(self.engine, self.chain_id, self.sender)
        if not rows:
            return 0
        pending = 0
        head = int(self.w3.eth.block_number)
        mined_nonce = int(self.w3.eth.get_transaction_count(self.account.address, "latest"))
        pool_next = self.chain_pending()
        for row in rows:
            receipt = self._find_receipt(row.id)
            if receipt is None and mined_nonce > int(row.nonce):
                # The nonce is used but no attempt has a receipt. A node can show a block's state (the new
                # nonce) before its receipts (anvil does, for a moment; so can two load-balanced RPC
                # backends): decide only when the nonce was already passed PASSED_BLOCKS blocks ago.
                first = self._passed.setdefault(row.id, head)
                receipt = self._find_receipt(row.id)
                if receipt is None:
                    if head - first >= PASSED_BLOCKS:
                        store.settle(self.engine, row.id, status=FAILED, mined_hash=None, block=None)
                    else:
                        pending += 1
                    continue
            if receipt is not None:
                self._settle(row.id, receipt)
                continue
            pending += 1
            attempts = store.attempts(self.engine, row.id)
            stuck = attempts and time.time() - int(attempts[-1].created_at) >= self.stuck_after
            if stuck and int(row.nonce) <= pool_next:
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
