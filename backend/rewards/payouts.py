"""Payouts for accounts that cannot claim themselves: relayed claims (`claimForBatch`) through the outbox.

The tokens go from the distributor straight to each account (the relayer only pays gas), so this is
also the push payout: nobody has to hold or move the funds. Safety comes from the contract (cumulative
claims: a leaf pays once; a batch rejects duplicate or unsorted accounts) and from the outbox (one key
per batch, signed and persisted before broadcast, fixed nonce). Accounts are filtered by
`claimed(account)` just before a batch is built; a batch that reverts because someone claimed meanwhile
pays nothing and is rebuilt on the next run.
"""

from __future__ import annotations

from web3 import Web3

from backend.rewards.lifecycle import ACCEPTED, EpochEngine, EpochNotReadyError
from backend.rewards.outbox import OutboxTx
from backend.rewards.publication import read_allocation_file
from cairn.merkle import MerkleTree, keccak256


def relay_claims(
    eng: EpochEngine, epoch: int, *, accounts: list[str] | None = None, batch_size: int = 100
) -> list[OutboxTx]:
    """Claim for `accounts` (default: every leaf with something left to claim) of the accepted `epoch`."""
    row = eng.require_row(epoch)
    if row.status != ACCEPTED or row.allocation_file is None or row.root is None:
        raise EpochNotReadyError(f"epoch {epoch} is not accepted: run `cairn epoch finalize {epoch}` first")
    (cur, cur_epoch, _), _ = eng._chain_roots()
    if "0x" + cur.hex() != row.root:
        raise EpochNotReadyError(f"the claimable root is epoch {cur_epoch}'s, not epoch {epoch}'s")
    tree = MerkleTree.load(read_allocation_file(eng.data_dir, row.allocation_file)["tree"])
    wanted = sorted({a.lower() for a in accounts} if accounts is not None else {a for a, _ in tree.values})
    dist = eng.distributor
    todo: list[tuple[str, int, list[bytes]]] = []
    for account in wanted:
        idx = tree.index_of(account)
        amount = tree.values[idx][1]
        if amount > int(dist.functions.claimed(Web3.to_checksum_address(account)).call()):
            todo.append((account, amount, tree.proof_bytes(idx)))
    box = eng._outbox()
    sent: list[OutboxTx] = []
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        ident = keccak256(b"".join(bytes.fromhex(a[2:]) + n.to_bytes(32, "big") for a, n, _ in batch)).hex()
        key = f"claimbatch:{eng.chain_id}:{dist.address.lower()}:{epoch}:{ident[:32]}"
        call = dist.functions.claimForBatch(
            [Web3.to_checksum_address(a) for a, _, _ in batch],
            [n for _, n, _ in batch],
            [p for _, _, p in batch],
        )
        tx = box.enqueue(key, to=dist.address, data=call._encode_transaction_data())
        sent.append(box.wait(tx.key, timeout=120))
    return sent
