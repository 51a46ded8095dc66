"""Epoch lifecycle: a persisted state machine (`reward_epoch`), idempotent at every step.

    (none) --close--> closed --compute--> computed --publish--> proposed --finalize--> accepted

* close(e): the epoch has ended on chain (a block at/after its end time exists), its end block is final
  (head >= end block + confirmations) and, with the SQL source, the indexer's cursor has passed it.
  Records the end block and the policy hash.
* compute(e): reduce (SQL mirror or chain), split, cumulate onto epoch e-1's leaves (read back from e-1's
  allocation file), check, build the tree, write the content-addressed file. Re-running gives the same file.
* publish(e): `proposeRoot(root, e, policyHash, totalCumulative, uri)` through the outbox (key
  `propose:<chain>:<distributor>:<e>`, then `...:<e>#<k>` after k revocations: at most one proposal per
  epoch and attempt, whatever crashes). A proposed epoch whose root the guardian revoked (nothing pending
  for it on chain, nothing accepted at or after it) is reopened first: back to closed with its computed
  fields cleared (and any later epoch computed on top of it), then computed and proposed again.
* finalize(e): once `validAt` has passed, `acceptRoot()` through the outbox (key `accept:...:<e>`); if the
  chain already shows the root as current (a later proposal accepted it), just records it.
Every step first looks at the chain, so a step interrupted after its transaction was mined is recorded, not
repeated.

Funding is not part of the state machine (it happens while the epoch runs): `fund(e)` is
`backend.rewards.funding`. The treasury check that compute and publish make first is
`backend.rewards.treasury`. The rows are read and written through `backend.rewards.epochs`; the shared
plumbing (chain, contracts, outbox) is `backend.rewards.context.EpochContext`.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text

from backend.models import RewardEpoch
from backend.rewards import epochs, funding, treasury
from backend.rewards.allocation import allocate
from backend.rewards.chainsource import end_block, inputs_from_chain
from backend.rewards.context import EpochContext
from backend.rewards.epochs import ACCEPTED, CLOSED, COMPUTED, ORDER, PROPOSED
from backend.rewards.funding import FundResult
from backend.rewards.publication import (
    build_publication,
    cumulative_from_document,
    read_allocation_file,
    store_publication,
)
from backend.rewards.sqlsource import ensure_indexes, inputs_from_db
from cairn.core.errors import ConflictError, EpochNotReadyError
from cairn.core.finality import finalized_block

__all__ = ["ACCEPTED", "CLOSED", "COMPUTED", "ORDER", "PROPOSED", "EpochLifecycle", "EpochRow", "FundResult"]

log = logging.getLogger("cairn.rewards")
EpochRow = RewardEpoch  # a row of reward_epoch (the name the lifecycle's callers know)


class EpochLifecycle(EpochContext):
    """close -> compute -> publish -> finalize over one chain's `reward_epoch` rows; and funding."""

    def require_real_treasury(self) -> None:
        """See `backend.rewards.treasury.require_real_treasury`."""
        router = self._contract("PaymentRouter") if "PaymentRouter" in self.deployment.contracts else None
        treasury.require_real_treasury(self.chain_id, self.policy, router)

    def emission_left(self, epoch: int) -> int:
        """Wei of `epoch`'s emission cap not minted yet."""
        return funding.emission_left(self, epoch)

    def fund(self, epoch: int | None = None, *, timeout: float = 120.0) -> FundResult:
        """See `backend.rewards.funding.fund`."""
        return funding.fund(self, epoch, timeout=timeout)

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
            policy_hash = self.policy.content_hash()
            epochs.insert_closed(
                conn, chain_id=self.chain_id, epoch=epoch, end_block=end, policy_hash=policy_hash
            )
        return self.require_row(epoch)

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
        next_epoch = int(self.distributor.functions.nextEpoch().call())
        if int.from_bytes(bytes(current_root), "big") == 0 and next_epoch == epoch:
            return {}
        if epoch == 0:  # there is no epoch -1 to compute: the distributor's roots came from elsewhere
            raise EpochNotReadyError(
                f"epoch 0 cannot be computed here: the distributor already holds roots not computed here "
                f"(its next epoch is {next_epoch})"
            )
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
        name, uri = store_publication(self.data_dir, pub)  # the file and its proof index
        return self._update(
            epoch, status=COMPUTED, root=pub.root, epoch_total=str(pub.epoch_total),
            total_cumulative=str(pub.total_cumulative), leaf_count=len(pub.tree),
            allocation_file=name, uri=uri,
        )  # fmt: skip

    def publish(self, epoch: int) -> EpochRow:
        existing = self.row(epoch)
        if existing is not None and existing.status == PROPOSED and self._revoked(existing):
            with self.engine.begin() as conn:
                reopened = epochs.reopen(
                    conn, chain_id=self.chain_id, epoch=epoch, policy_hash=self.policy.content_hash()
                )
            log.warning("epoch %d: root %s was revoked on chain; reopened %s", epoch, existing.root, reopened)
        row = self.compute(epoch)  # refuses a placeholder treasury first
        if ORDER[row.status] >= ORDER[PROPOSED]:
            return row
        assert row.root is not None and row.uri is not None and row.total_cumulative is not None
        root = bytes.fromhex(row.root[2:])
        (cur, cur_e, cur_valid), (pend, pend_e, pend_valid) = self._chain_roots()
        if (pend == root and pend_e == epoch) or (cur == root and cur_e == epoch):
            return self._update(epoch, status=PROPOSED, valid_at=pend_valid if pend == root else cur_valid)
        call = self.distributor.functions.proposeRoot(
            root, epoch, bytes.fromhex(row.policy_hash[2:]), int(row.total_cumulative), row.uri
        )
        data = call._encode_transaction_data()
        box = self._outbox()
        attempt = self._revocations(epoch, since=row.end_block)
        key = self._key("propose", epoch) + (f"#{attempt}" if attempt else "")
        tx = box.enqueue(key, to=self.distributor.address, data=data)
        tx = box.wait(tx.key, timeout=120)
        if tx.status != "confirmed":
            raise ConflictError(f"proposeRoot for epoch {epoch} failed on chain (tx {tx.mined_hash})")
        (cur, cur_e, cur_valid), (pend, pend_e, pend_valid) = self._chain_roots()
        valid_at = pend_valid if pend == root else cur_valid
        return self._update(epoch, status=PROPOSED, valid_at=valid_at)

    def _revoked(self, row: EpochRow) -> bool:
        """The proposed `row`'s root is gone from the chain: nothing is pending for its epoch and no root of
        its epoch or a later one was accepted (only a guardian's `revokeRoot` does that)."""
        (cur, cur_e, _), (pend, pend_e, _) = self._chain_roots()
        if int.from_bytes(pend, "big") != 0 and pend_e == row.epoch:
            return False
        return not (int.from_bytes(cur, "big") != 0 and cur_e >= row.epoch)

    def _revocations(self, epoch: int, *, since: int) -> int:
        """How many roots of `epoch` the guardians revoked (RootRevoked logs from its end block on)."""
        logs = self.distributor.events.RootRevoked.get_logs(
            from_block=since, to_block="latest", argument_filters={"epoch": epoch}
        )
        return len(logs)

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
                raise ConflictError(
                    f"the root of epoch {epoch} is neither pending nor current (revoked? "
                    f"`cairn epoch publish {epoch}` recomputes and proposes it again)"
                )
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
        return self._update(epoch, status=ACCEPTED)
