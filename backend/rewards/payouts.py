"""Payouts for accounts that cannot (or do not) claim: push payouts and relayed claims (`claimForBatch`).

Push payouts (`cairn epoch payout N`) and relayed claims (`cairn epoch relay N --account ...`) are the same
thing: the publisher sends `claimForBatch(accounts, cumulativeAmounts, proofs)` and pays the gas; the tokens
go from the distributor straight to each account. Going through the distributor (not an ERC-20 batch transfer
from a wallet) keeps its bookkeeping whole: `claimed(account)` rises, so a later `claim` by the account pays
only the rest, and the total paid can never exceed what was funded.

Safety:
* the contract: cumulative claims (a leaf pays once), a batch rejects duplicate or unsorted accounts;
* the outbox: one key per batch content, signed and persisted before broadcast, fixed nonce;
* what an earlier (killed) run left pending is settled first (`Outbox.drain`), and `claimed(account)` is read
  again just before each batch is built, so an account paid meanwhile (by itself or by a batch that was
  still in flight) is skipped;
* an account of the batch that claimed between the read and the mining (e.g. a front-run `claimFor`) no
  longer reverts the batch: the contract skips it (`ClaimSkipped`) and pays the others; the report lists it
  in `skipped`;
* a batch that still reverts (e.g. the root changed) pays nothing; its accounts are read again and the
  batch is rebuilt without the paid ones (a new key), at most `MAX_TRIES` times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3
from web3.logs import DISCARD

from backend.outbox import CONFIRMED, FAILED, OutboxTx
from backend.rewards.lifecycle import ACCEPTED, EpochLifecycle
from backend.rewards.publication import read_allocation_file
from cairn.core.errors import EpochNotReadyError, InvalidInputError, OutboxRevertError
from cairn.core.merkle import MerkleTree, keccak256

MAX_TRIES = 3


@dataclass
class PayoutReport:
    """What a payout run found and did (amounts in wei)."""

    epoch: int
    accounts: int = 0  # leaves considered
    already_paid: int = 0  # claimed(account) == cumulative when read
    below_min: int = 0  # something left, but less than min_amount
    paid: int = 0  # accounts paid by this run
    paid_amount: int = 0
    batches: list[OutboxTx] = field(default_factory=list)  # every batch transaction this run settled
    failed: list[OutboxTx] = field(default_factory=list)  # batches that reverted (rebuilt or given up)
    unpaid: list[str] = field(default_factory=list)  # accounts still due after MAX_TRIES failed batches
    skipped: list[str] = field(default_factory=list)  # in a mined batch, but paid meanwhile (ClaimSkipped)

    def summary(self) -> str:
        ok = sum(1 for t in self.batches if t.status == CONFIRMED)
        return (
            f"epoch {self.epoch}: {self.paid} account(s) paid {self.paid_amount} wei in {ok} batch(es); "
            f"{self.already_paid} already paid, {self.below_min} below the minimum, "
            f"{len(self.skipped)} skipped (paid meanwhile), "
            f"{len(self.failed)} reverted batch(es), {len(self.unpaid)} left unpaid"
        )


def _claimable_tree(eng: EpochLifecycle, epoch: int) -> MerkleTree:
    row = eng.require_row(epoch)
    if row.status != ACCEPTED or row.allocation_file is None or row.root is None:
        raise EpochNotReadyError(f"epoch {epoch} is not accepted: run `cairn epoch finalize {epoch}` first")
    (cur, cur_epoch, _), _ = eng._chain_roots()
    if "0x" + cur.hex() != row.root:
        raise EpochNotReadyError(
            f"the claimable root is epoch {cur_epoch}'s, not epoch {epoch}'s: pay out epoch {cur_epoch}"
        )
    return MerkleTree.load(read_allocation_file(eng.data_dir, row.allocation_file)["tree"])


def push_payouts(
    eng: EpochLifecycle,
    epoch: int,
    *,
    accounts: list[str] | None = None,
    min_amount: int = 1,
    batch_size: int = 100,
    timeout: float = 120.0,
) -> PayoutReport:
    """Pay every account of the accepted `epoch` (or only `accounts`) whose claimable amount is at least
    `min_amount` wei, `batch_size` accounts per `claimForBatch`. Idempotent: a second run pays nobody."""
    if batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, not {batch_size}")
    if min_amount < 1:
        raise InvalidInputError(f"--min-amount must be at least 1 wei, not {min_amount}")
    tree = _claimable_tree(eng, epoch)
    box = eng._outbox()
    box.drain(timeout=timeout)  # batches a killed run left in flight land (or fail) before anything is read
    cumulative = dict(tree.values)
    if accounts is not None:
        wanted = sorted({a.lower() for a in accounts})
        unknown = [a for a in wanted if a not in cumulative]
        if unknown:
            raise InvalidInputError(f"{unknown[0]} has no leaf in epoch {epoch}'s tree")
    else:
        wanted = sorted(cumulative)
    report = PayoutReport(epoch, accounts=len(wanted))
    dist = eng.distributor

    def due(account: str) -> int:
        return cumulative[account] - int(dist.functions.claimed(Web3.to_checksum_address(account)).call())

    pos = 0
    while pos < len(wanted):
        batch: list[str] = []
        while pos < len(wanted) and len(batch) < batch_size:  # claimed() read just before the batch
            account = wanted[pos]
            pos += 1
            left = due(account)
            if left <= 0:
                report.already_paid += 1
            elif left < min_amount:
                report.below_min += 1
            else:
                batch.append(account)
        for attempt in range(MAX_TRIES):
            if not batch:
                break
            tx = _send_batch(eng, epoch, tree, batch, attempt, timeout)
            if tx is not None:
                report.batches.append(tx)
                if tx.status == CONFIRMED:
                    paid, skipped = _claimed_in(eng, tx)
                    report.paid += len(paid)
                    report.paid_amount += sum(paid.values())
                    report.skipped += skipped
                    break
                report.failed.append(tx)
            # reverted (or would revert): someone was paid meanwhile; rebuild without them
            still = [a for a in batch if due(a) >= min_amount]
            report.already_paid += len(batch) - len(still)
            batch = still
        else:
            report.unpaid += batch
    return report


def _claimed_in(eng: EpochLifecycle, tx: OutboxTx) -> tuple[dict[str, int], list[str]]:
    """(account -> amount of the Claimed events, the ClaimSkipped accounts) of a mined batch."""
    receipt = eng.w3.eth.get_transaction_receipt(tx.mined_hash)  # type: ignore[arg-type]
    out: dict[str, int] = {}
    for log in eng.distributor.events.Claimed().process_receipt(receipt, errors=DISCARD):
        out[str(log["args"]["account"]).lower()] = int(log["args"]["amount"])
    skipped = [
        str(log["args"]["account"]).lower()
        for log in eng.distributor.events.ClaimSkipped().process_receipt(receipt, errors=DISCARD)
    ]
    return out, skipped


def _send_batch(
    eng: EpochLifecycle, epoch: int, tree: MerkleTree, batch: list[str], attempt: int, timeout: float
) -> OutboxTx | None:
    """Send (once per content and try) and settle one claimForBatch; None if it would revert now."""
    dist = eng.distributor
    box = eng._outbox()
    amounts = [tree.values[tree.index_of(a)][1] for a in batch]
    pairs = zip(batch, amounts, strict=True)
    content = b"".join(bytes.fromhex(a[2:]) + n.to_bytes(32, "big") for a, n in pairs)
    ident = keccak256(content)
    base = f"claimbatch:{eng.chain_id}:{dist.address.lower()}:{epoch}:{ident.hex()[:32]}"
    keys = [base] + [f"{base}#{i}" for i in range(1, MAX_TRIES)]
    key = next((k for k in keys[attempt:] if (r := box.get(k)) is None or r.status != FAILED), None)
    if key is None:
        return box.get(keys[-1])
    existing = box.get(key)
    if existing is not None:  # settled by drain() or by an earlier batch of this run
        return existing
    proofs = [tree.proof_bytes(tree.index_of(a)) for a in batch]
    call = dist.functions.claimForBatch([Web3.to_checksum_address(a) for a in batch], amounts, proofs)
    try:
        tx = box.enqueue(key, to=dist.address, data=call._encode_transaction_data())
    except OutboxRevertError:  # an account of the batch was paid between the read and now
        return None
    return box.wait(tx.key, timeout=timeout)


def relay_claims(
    eng: EpochLifecycle, epoch: int, *, accounts: list[str] | None = None, batch_size: int = 100
) -> list[OutboxTx]:
    """Relayed claims for `accounts` (default: every leaf with something left): the confirmed batches."""
    report = push_payouts(eng, epoch, accounts=accounts, batch_size=batch_size)
    return [t for t in report.batches if t.status == CONFIRMED]
