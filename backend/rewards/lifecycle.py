"""Epoch lifecycle: a persisted state machine (`reward_epoch`), idempotent at every step.

    (none) --close--> closed --compute--> computed --publish--> proposed --finalize--> accepted

* close(e): the epoch has ended on chain (a block at/after its end time exists), its end block is final
  (head >= end block + confirmations) and, with the SQL source, the indexer's cursor has passed it.
  Records the end block and the policy hash.
* compute(e): reduce (SQL mirror or chain), split, cumulate onto epoch e-1's leaves (read back from e-1's
  allocation file), check, build the tree, write the content-addressed file. Re-running gives the same file.
* publish(e): `proposeRoot(root, e, policyHash, totalCumulative, uri)` through the outbox (key
  `propose:<chain>:<distributor>:<e>`: at most one proposal per epoch, whatever crashes).
* finalize(e): once `validAt` has passed, `acceptRoot()` through the outbox (key `accept:...:<e>`); if the
  chain already shows the root as current (a later proposal accepted it), just records it.
Every step first looks at the chain, so a step interrupted after its transaction was mined is recorded, not
repeated.

Funding is not part of the state machine (it happens while the epoch runs, not after it ends):
* fund(e): `fundEmission(e)` through the outbox (key `fund:...:<e>`, then `#1`, `#2` after a failed try) while
  epoch e runs; nothing is sent when the epoch's emission cap is already minted. `cairn epoch keeper` calls it
  once per epoch as soon as the epoch starts.

The treasury (policy `treasury`) must be the protocol's real treasury outside the local chain: compute and
publish refuse a placeholder, a development account or an address other than the PaymentRouter's fee recipient
(see `require_real_treasury`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text
from web3 import Web3

from backend.outbox import PENDING, Outbox, OutboxTx
from backend.rewards.allocation import allocate
from backend.rewards.chainsource import end_block, inputs_from_chain
from backend.rewards.publication import (
    build_publication,
    cumulative_from_document,
    read_allocation_file,
    write_allocation_file,
)
from backend.rewards.sqlsource import ensure_indexes, inputs_from_db
from cairn.core.deployment import Deployment
from cairn.core.errors import (
    ConflictError,
    EpochEndedError,
    EpochNotReadyError,
    InvalidInputError,
    NotFoundError,
    TreasuryError,
)
from cairn.core.finality import check_mode, finalized_block
from cairn.core.policy import PLACEHOLDER_TREASURIES, Policy
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID

CLOSED, COMPUTED, PROPOSED, ACCEPTED = "closed", "computed", "proposed", "accepted"
ORDER = {CLOSED: 0, COMPUTED: 1, PROPOSED: 2, ACCEPTED: 3}


FUND_TRIES = 3


@dataclass(frozen=True)
class FundResult:
    """What `fund` did: `sent` (this call's, or a killed run's, fundEmission confirmed now), `already`."""

    epoch: int
    status: str
    minted: int
    tx: OutboxTx | None


@dataclass
class EpochRow:
    chain_id: int
    epoch: int
    status: str
    end_block: int
    policy_hash: str
    root: str | None
    total_cumulative: str | None
    allocation_file: str | None
    uri: str | None
    valid_at: int | None


class EpochLifecycle:
    def __init__(
        self,
        *,
        engine: Engine,
        w3: Web3,
        deployment: Deployment,
        policy: Policy,
        data_dir: Path,
        publisher_key: str | None = None,
        confirmations: int = 12,
        finality: str = "auto",
        source: str = "db",
        migrate: bool = True,
    ) -> None:
        self.engine = engine
        self.w3 = w3
        self.deployment = deployment
        self.policy = policy
        self.data_dir = Path(data_dir)
        self.confirmations = confirmations
        self.finality = check_mode(finality)
        self.source = source
        self.chain_id = deployment.chain_id
        self.distributor = self._contract("RewardDistributor")
        self.publisher_key = publisher_key
        self._token_contract: Any = None
        if migrate:
            from backend import migrations  # alembic is slow to import: only when needed

            migrations.upgrade(engine)

    # --- rows -------------------------------------------------------------------------------------------
    def row(self, epoch: int) -> EpochRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                text(
                    "SELECT chain_id, epoch, status, end_block, policy_hash, root, total_cumulative, "
                    "allocation_file, uri, valid_at FROM reward_epoch WHERE chain_id = :c AND epoch = :e"
                ),
                {"c": self.chain_id, "e": epoch},
            ).first()
        return EpochRow(*r) if r else None

    def rows(self) -> list[EpochRow]:
        with self.engine.connect() as conn:
            rs = conn.execute(
                text(
                    "SELECT chain_id, epoch, status, end_block, policy_hash, root, total_cumulative, "
                    "allocation_file, uri, valid_at FROM reward_epoch WHERE chain_id = :c ORDER BY epoch"
                ),
                {"c": self.chain_id},
            ).all()
        return [EpochRow(*r) for r in rs]

    def _update(self, epoch: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE reward_epoch SET {sets}, updated_at = :now WHERE chain_id = :c AND epoch = :e"),
                {**fields, "now": int(time.time()), "c": self.chain_id, "e": epoch},
            )

    def _outbox(self) -> Outbox:
        if not self.publisher_key:
            raise InvalidInputError("no publisher key: set CAIRN_PUBLISHER_KEY")
        return Outbox(self.engine, self.w3, self.publisher_key)

    def _key(self, what: str, epoch: int) -> str:
        return f"{what}:{self.chain_id}:{self.distributor.address.lower()}:{epoch}"

    def _now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def current_epoch(self) -> int:
        """The epoch of the chain's latest block (0 before genesis)."""
        return self.deployment.epoch.epoch_at(self._now())

    # --- treasury -------------------------------------------------------------------------------------
    def require_real_treasury(self) -> None:
        """Outside the local chain the policy's treasury must be the deployment's treasury.

        Refused: a known placeholder (policy v1 ships `0x...c41a` for the local chain), an address below
        2**64 (hand-typed), a public anvil development account, and, when the deployment has a PaymentRouter,
        any address other than its `feeRecipient()` (one protocol treasury receives the protocol fee and the
        policy's protocol share)."""
        if self.chain_id == LOCAL_CHAIN_ID:
            return
        from eth_account import Account

        t = self.policy.treasury
        hint = f"on chain {self.chain_id} use a policy file whose treasury is the protocol's (--policy FILE)"
        dev = {Account.from_key(k).address.lower() for k in ANVIL_DEV_KEYS}
        if t in PLACEHOLDER_TREASURIES or int(t, 16) < 2**64 or t in dev:
            raise TreasuryError(f"policy treasury {t} is a placeholder; {hint}")
        if "PaymentRouter" in self.deployment.contracts:
            fee_recipient = str(self._contract("PaymentRouter").functions.feeRecipient().call()).lower()
            if fee_recipient != t:
                raise TreasuryError(
                    f"policy treasury {t} is not the PaymentRouter's fee recipient {fee_recipient}; {hint}"
                )

    # --- funding ----------------------------------------------------------------------------------------
    def _contract(self, name: str) -> Any:
        """The deployment's contract `name` on this engine's chain."""
        return self.deployment.contract(self.w3, name)

    def _token(self) -> Any:
        if self._token_contract is None:
            self._token_contract = self._contract("RewardToken")
        return self._token_contract

    def emission_left(self, epoch: int) -> int:
        """Wei of `epoch`'s emission cap not minted yet."""
        token = self._token()
        cap = int(token.functions.emissionCap(epoch).call())
        return cap - int(token.functions.mintedInEpoch(epoch).call())

    def fund(self, epoch: int | None = None, *, timeout: float = 120.0) -> FundResult:
        """Mint epoch `epoch`'s emission (default: the current epoch) into the pool, once, while it runs.

        Idempotent and crash-safe: what an earlier run left in the outbox for this epoch is settled first;
        nothing is sent when the cap is already minted; a failed try (reverted, replaced) leaves the next
        key (`#1`, `#2`) free, so the outbox never wedges on it."""
        now = self._now()
        e = self.deployment.epoch.epoch_at(now) if epoch is None else epoch
        if e < 0:
            raise InvalidInputError(f"epoch must be >= 0, not {e}")
        start, end = self.deployment.epoch.bounds(e)
        if now < start:
            raise EpochNotReadyError(f"epoch {e} starts in {start - now} s; its emission cannot be minted")
        box = self._outbox()
        keys = [self._key("fund", e)] + [f"{self._key('fund', e)}#{i}" for i in range(1, FUND_TRIES)]
        rows = [r for r in (box.get(k) for k in keys) if r is not None]
        last = rows[-1] if rows else None
        resumed = last is not None and last.status == PENDING  # a killed run's transaction: settle it
        if last is not None and resumed:
            last = box.wait(last.key, timeout=timeout)
        token = self._token()
        if self.emission_left(e) == 0:
            minted = int(token.functions.mintedInEpoch(e).call())
            sent = resumed and last is not None and last.status == "confirmed"
            return FundResult(e, "sent" if sent else "already", minted, last)
        if self._now() >= end:
            raise EpochEndedError(
                f"epoch {e} has ended: emission minted now would fall outside its allocation; not funded"
            )
        if len(rows) >= FUND_TRIES:
            last_hash = last.mined_hash if last is not None else "-"
            raise ConflictError(f"fundEmission({e}) failed {len(rows)} times (last tx {last_hash})")
        data = self.distributor.functions.fundEmission(e)._encode_transaction_data()
        queued = box.enqueue(keys[len(rows)], to=self.distributor.address, data=data)
        tx = box.wait(queued.key, timeout=timeout)
        minted = int(token.functions.mintedInEpoch(e).call())
        if tx.status != "confirmed" and self.emission_left(e) != 0:
            raise ConflictError(f"fundEmission({e}) failed on chain (tx {tx.mined_hash}); run it again")
        return FundResult(e, "sent" if tx.status == "confirmed" else "already", minted, tx)

    # --- steps -----------------------------------------------------------------------------------------
    def close(self, epoch: int) -> EpochRow:
        existing = self.row(epoch)
        if existing is not None:
            return existing
        end = end_block(self.w3, self.deployment, epoch)
        if end is None:
            raise EpochNotReadyError(f"epoch {epoch} has not ended on chain yet")
        final = finalized_block(self.w3, mode=self.finality, confirmations=self.confirmations)
        if final < end:
            raise EpochNotReadyError(
                f"epoch {epoch} ends at block {end} but the chain is final only up to block {final} "
                f"({self.finality} finality); wait for {end - final} more final blocks"
            )
        if self.source == "db":
            self._require_indexed(end)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO reward_epoch (chain_id, epoch, status, end_block, policy_hash, updated_at) "
                    "SELECT :c, :e, :s, :b, :p, :now WHERE NOT EXISTS "
                    "(SELECT 1 FROM reward_epoch WHERE chain_id = :c AND epoch = :e)"
                ),
                {"c": self.chain_id, "e": epoch, "s": CLOSED, "b": end, "p": self.policy.content_hash(),
                 "now": int(time.time())},
            )  # fmt: skip
        row = self.row(epoch)
        assert row is not None
        return row

    def _require_indexed(self, end: int) -> None:
        if "indexer_cursor" not in set(inspect(self.engine).get_table_names()):
            raise EpochNotReadyError("the indexer mirror is empty: run `cairn index` (or use --source chain)")
        with self.engine.connect() as conn:
            cursor = conn.execute(text("SELECT MAX(block_number) FROM indexer_cursor")).scalar()
        if cursor is None or int(cursor) < end:
            raise EpochNotReadyError(f"the indexer is at block {cursor}, the epoch ends at block {end}")

    def previous_cumulative(self, epoch: int) -> dict[str, int]:
        prev = self.row(epoch - 1) if epoch > 0 else None
        if prev is not None and prev.allocation_file:
            return cumulative_from_document(read_allocation_file(self.data_dir, prev.allocation_file))
        current_root, _, _ = self.distributor.functions.root().call()
        if (
            int.from_bytes(bytes(current_root), "big") == 0
            and int(self.distributor.functions.nextEpoch().call()) == epoch
        ):
            return {}
        raise EpochNotReadyError(f"epoch {epoch - 1} is not computed here: compute it first")

    def compute(self, epoch: int) -> EpochRow:
        self.require_real_treasury()
        row = self.close(epoch)
        if ORDER[row.status] >= ORDER[COMPUTED]:
            return row
        if self.source == "db":
            ensure_indexes(self.engine)
            inputs = inputs_from_db(self.engine, epoch, row.end_block, self.policy)
        else:
            inputs = inputs_from_chain(self.w3, self.deployment, epoch, row.end_block, self.policy)
        amounts = allocate(inputs, self.policy)
        pub = build_publication(
            epoch=epoch, end_block=row.end_block, chain_id=self.chain_id,
            distributor=self.distributor.address, policy=self.policy,
            previous=self.previous_cumulative(epoch), epoch_amounts=amounts,
        )  # fmt: skip
        name, uri = write_allocation_file(self.data_dir, pub.chunks())
        self._update(
            epoch, status=COMPUTED, root=pub.root, epoch_total=str(pub.epoch_total),
            total_cumulative=str(pub.total_cumulative), leaf_count=len(pub.tree),
            allocation_file=name, uri=uri,
        )  # fmt: skip
        out = self.row(epoch)
        assert out is not None
        return out

    def _chain_roots(self) -> tuple[tuple[bytes, int, int], tuple[bytes, int, int]]:
        cur = self.distributor.functions.root().call()
        pend = self.distributor.functions.pendingRoot().call()
        return (bytes(cur[0]), int(cur[1]), int(cur[2])), (bytes(pend[0]), int(pend[1]), int(pend[2]))

    def publish(self, epoch: int) -> EpochRow:
        row = self.compute(epoch)  # refuses a placeholder treasury first
        if ORDER[row.status] >= ORDER[PROPOSED]:
            return row
        assert row.root is not None and row.uri is not None and row.total_cumulative is not None
        root = bytes.fromhex(row.root[2:])
        (cur, cur_e, cur_valid), (pend, pend_e, pend_valid) = self._chain_roots()
        if (pend == root and pend_e == epoch) or (cur == root and cur_e == epoch):
            self._update(epoch, status=PROPOSED, valid_at=pend_valid if pend == root else cur_valid)
            return self.row(epoch)  # type: ignore[return-value]
        call = self.distributor.functions.proposeRoot(
            root, epoch, bytes.fromhex(row.policy_hash[2:]), int(row.total_cumulative), row.uri
        )
        data = call._encode_transaction_data()
        box = self._outbox()
        tx = box.enqueue(self._key("propose", epoch), to=self.distributor.address, data=data)
        tx = box.wait(tx.key, timeout=120)
        if tx.status != "confirmed":
            raise ConflictError(f"proposeRoot for epoch {epoch} failed on chain (tx {tx.mined_hash})")
        (cur, cur_e, cur_valid), (pend, pend_e, pend_valid) = self._chain_roots()
        valid_at = pend_valid if pend == root else cur_valid
        self._update(epoch, status=PROPOSED, valid_at=valid_at)
        return self.row(epoch)  # type: ignore[return-value]

    def finalize(self, epoch: int) -> EpochRow:
        row = self.row(epoch)
        if row is None or ORDER[row.status] < ORDER[PROPOSED]:
            raise EpochNotReadyError(f"epoch {epoch} is not proposed yet: run `cairn epoch publish {epoch}`")
        if row.status == ACCEPTED:
            return row
        assert row.root is not None
        root = bytes.fromhex(row.root[2:])
        (cur, cur_e, _), (pend, pend_e, pend_valid) = self._chain_roots()
        has_root = int.from_bytes(cur, "big") != 0
        accepted = (cur == root and cur_e == epoch) or (has_root and cur_e > epoch)
        if not accepted:
            if not (pend == root and pend_e == epoch):
                raise ConflictError(f"the root of epoch {epoch} is neither pending nor current (revoked?)")
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            if now < pend_valid:
                raise EpochNotReadyError(f"epoch {epoch}'s root is acceptable in {pend_valid - now} s")
            data = self.distributor.functions.acceptRoot()._encode_transaction_data()
            box = self._outbox()
            tx = box.wait(
                box.enqueue(self._key("accept", epoch), to=self.distributor.address, data=data).key,
                timeout=120,
            )
            if tx.status != "confirmed":
                (cur, cur_e, _), _ = self._chain_roots()
                if not (cur == root and cur_e == epoch):
                    raise ConflictError(f"acceptRoot for epoch {epoch} failed (tx {tx.mined_hash})")
        self._update(epoch, status=ACCEPTED)
        return self.row(epoch)  # type: ignore[return-value]

    def require_row(self, epoch: int) -> EpochRow:
        row = self.row(epoch)
        if row is None:
            raise NotFoundError(f"epoch {epoch} is not known here: run `cairn epoch compute {epoch}`")
        return row
