"""`RelayGuard`: what the relayer refuses before it spends any gas (contracts/SECURITY.md "Relayer").

In the order a request meets them:
1. per-client token bucket (`admit_client`, before anything reads the chain): 429 + Retry-After;
2. deny list (contract wallets that made the relayer pay for a revert): 403;
   minimum deadline margin against the latest block's timestamp: 422 `deadline_too_soon`;
3. (the relayer verifies the signature; EIP-1271 wallets get `verify_gas` gas for `isValidSignature`)
4. per-account token bucket (charged only after the signature is verified, so nobody can spend another
   owner's bucket), one pending relay per owner nonce (409), the daily gas budget (global and per account,
   pre-checked here): 402 + Retry-After (`before_send`);
5. in the database transaction that stores the outbox row: the nonce claim and the budget reservation for
   real (`reserve`; budget.py), so concurrent requests and API processes cannot overshoot.
After the outbox settles a row, `settle()` turns the reservation into the receipt's gasUsed, counts the gas
and wei paid, and puts a contract-wallet owner whose transaction reverted on the deny list.

Nothing here holds a lock across a chain or database round trip: the buckets' lock guards a dict update,
so a flood that the buckets refuse costs microseconds and never queues honest requests behind it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from web3 import Web3
from web3.exceptions import TransactionNotFound

from backend.api.chain import Chain
from backend.api.ratelimit import MAX_KEYS, TokenBuckets, client_of
from backend.api.relay import records
from backend.api.relay.budget import GLOBAL, Budget, BudgetFull, NonceTaken, Ready, until_next_day
from backend.api.settings import RelaySettings
from cairn.core.errors import (
    BudgetExhaustedError,
    DeadlineTooSoonError,
    NoncePendingError,
    RateLimitedError,
    RelayDeniedError,
    RelayGasCeilingError,
)

__all__ = ["MAX_KEYS", "RelayGuard", "RelayLimits", "TokenBuckets", "client_of"]  # the buckets: ratelimit.py

if TYPE_CHECKING:
    from backend.api.metrics import Metrics


RelayLimits = RelaySettings  # the relayer's limits: `ApiSettings.api_relay` (backend/api/settings.py)


class RelayGuard:
    def __init__(
        self, engine: Engine, chain: Chain, limits: RelayLimits | None = None, metrics: Metrics | None = None
    ) -> None:
        self.limits = limits if limits is not None else RelayLimits()
        self.chain = chain
        self.metrics = metrics
        self.budget = Budget(
            engine, chain.chain_id, daily_gas=self.limits.daily_gas,
            account_daily_gas=self.limits.account_daily_gas,
        )  # fmt: skip
        self.clients = TokenBuckets(self.limits.client_burst, self.limits.client_per_minute)
        self.accounts = TokenBuckets(self.limits.account_burst, self.limits.account_per_minute)

    # --- before the chain is read ------------------------------------------------------------------------
    def admit_client(self, client: str) -> None:
        if wait := self.clients.take(client):
            raise RateLimitedError(
                f"too many relay requests from this client; retry in {wait} s",
                reason="rate_client", retry_after=wait,
            )  # fmt: skip

    def before_verify(self, *, owner: str, deadline: int, head_timestamp: int) -> None:
        """Deny list and the minimum deadline margin, measured against the chain's clock."""
        self.settle()
        if (denied := self.budget.denied(owner)) is not None:
            raise RelayDeniedError(
                f"{owner} is a contract wallet whose relayed registration reverted on chain in tx "
                f"{denied['tx_hash']} after passing every check; the relayer relays nothing more for it",
                owner=owner, tx_hash=denied["tx_hash"],
            )  # fmt: skip
        margin = self.limits.min_deadline_s
        if deadline < head_timestamp + margin:
            raise DeadlineTooSoonError(
                f"deadline {deadline} is {deadline - head_timestamp} s after the latest block "
                f"({head_timestamp}); the relayer needs at least {margin} s to get it mined: sign again with "
                "a later deadline",
                field="deadline", min_deadline_s=margin,
            )  # fmt: skip

    # --- after the signature is verified -------------------------------------------------------------------
    def before_send(
        self, *, owner: str, nonce: int, gas: int, relay_id: str, message_digest: str, wallet: bool
    ) -> None:
        """The owner's bucket, its pending nonce and today's budgets (a pre-check; `reserve` decides). A
        pending relay of this very message (another request, maybe another process) is no conflict: the
        relayer answers with it. `gas` is the transaction's gas limit; a contract wallet's is held to
        `wallet_gas_limit` (`wallet`: the owner has code, decided once per relay by the caller): its
        `isValidSignature` may tell the relayer's direct check (bounded by `verify_gas`) from the registry's
        call, which the estimate and the chain make."""
        wallet_cap = self.limits.wallet_gas_limit
        if gas > wallet_cap and wallet:
            raise RelayGasCeilingError(
                f"the relayed transaction for contract wallet {owner} needs {gas} gas, above the relayer's "
                f"ceiling {wallet_cap} for contract wallets (its isValidSignature costs more through the "
                "registry than in the relayer's check)",
                owner=owner, gas=gas, ceiling=wallet_cap,
            )  # fmt: skip
        if wait := self.accounts.take(owner.lower()):
            raise RateLimitedError(
                f"too many relays for {owner}; retry in {wait} s",
                reason="rate_account", retry_after=wait, owner=owner,
            )  # fmt: skip
        holder = self.budget.pending_relay(owner, nonce)
        if holder is not None and holder != relay_id:
            record = records.by_relay_id(self.budget.engine, holder)
            if record is None or record["message_digest"] != message_digest:
                raise self._nonce_pending(owner, nonce, holder)
        for scope in (GLOBAL, owner):
            if self.budget.remaining(scope) < gas:
                raise self._exhausted(scope)
        self._gauge()

    def before_claim(self, *, account: str, gas: int) -> None:
        """A relayed claim (no signature, no owner nonce): the account's bucket and today's budgets."""
        if wait := self.accounts.take(account.lower()):
            raise RateLimitedError(
                f"too many relays for {account}; retry in {wait} s",
                reason="rate_account", retry_after=wait, owner=account,
            )  # fmt: skip
        for scope in (GLOBAL, account):
            if self.budget.remaining(scope) < gas:
                raise self._exhausted(scope)
        self._gauge()

    def reserve(self, conn: Connection, **charge: Any) -> None:
        """Inside the transaction that stores the outbox row (before anything is broadcast): `Budget.reserve`
        with these keyword arguments, its refusals turned into the API's errors."""
        try:
            self.budget.reserve(conn, **charge)
        except NonceTaken as exc:
            raise self._nonce_pending(charge["owner"], charge["nonce"], exc.relay_id) from None
        except BudgetFull as exc:
            raise self._exhausted(exc.scope) from None

    def _nonce_pending(self, owner: str, nonce: int, holder: str) -> NoncePendingError:
        return NoncePendingError(
            f"relay {holder} with {owner}'s nonce {nonce} is pending: only one message per nonce can be "
            "mined; wait for it, then sign with the next nonce",
            owner=owner, nonce=nonce, relay_id=holder,
        )  # fmt: skip

    def _exhausted(self, scope: str) -> BudgetExhaustedError:
        wait = until_next_day(time.time())
        whose = "all accounts" if scope == GLOBAL else scope
        return BudgetExhaustedError(
            f"the relayer's daily gas budget for {whose} ({self.budget.limit(scope)} gas) is spent; retry "
            f"in {wait} s (the next UTC day) or send the registration yourself",
            reason="budget_global" if scope == GLOBAL else "budget_account", retry_after=wait,
        )  # fmt: skip

    # --- after the outbox settled a row ----------------------------------------------------------------
    def settle(self) -> int:
        """Turn every settled outbox row's reservation into the gas it used; returns how many."""
        done = 0
        w3 = self.chain.w3
        for charge in self.budget.ready():
            gas_used = wei = 0
            reverted = False
            if charge.mined_hash is not None:
                try:
                    receipt = w3.eth.get_transaction_receipt(charge.mined_hash)  # type: ignore[arg-type]
                except TransactionNotFound:  # reorged out, or a node behind: the next round retries
                    continue
                gas_used = int(receipt["gasUsed"])
                wei = gas_used * int(receipt.get("effectiveGasPrice") or 0)
                reverted = int(receipt["status"]) != 1
            if not self.budget.finish(charge, gas_used=gas_used, wei=wei):
                continue
            done += 1
            if self.metrics is not None and gas_used:
                self.metrics.relayer_gas.inc(gas_used)
                self.metrics.relayer_wei.inc(wei)
            if reverted and self._is_wallet(charge):
                self.budget.deny(charge.owner, tx_hash=str(charge.mined_hash), gas_used=gas_used)
        if done:
            self._gauge()
        return done

    def _is_wallet(self, charge: Ready) -> bool:
        """The owner is a contract wallet: as recorded with the relay (decided at the request), else (a relay
        recorded before that was stored) the chain's answer now."""
        if charge.owner_is_contract is not None:
            return charge.owner_is_contract
        return len(self.chain.w3.eth.get_code(Web3.to_checksum_address(charge.owner))) > 0

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.relay_budget_remaining.set(self.budget.remaining(GLOBAL))
