"""Push payouts on real anvil: `claimForBatch` through the outbox for every account of the accepted epoch with
at least `--min-amount` due, in batches; an account that claimed by itself is skipped, a second run pays
nobody, and a batch that reverts because an account claimed while it was in flight is rebuilt without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from backend import migrations
from backend.rewards.lifecycle import EpochLifecycle
from backend.rewards.payouts import push_payouts
from backend.rewards.publication import read_allocation_file
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core.db import make_engine
from cairn.core.merkle import MerkleTree
from cairn.core.policy import POLICY_DIR, load_policy
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS

ROOT = Path(__file__).resolve().parents[2]
OWNERS = [ANVIL_DEV_KEYS[i] for i in (5, 6, 7, 8, 9)]


def _contract(w3: Web3, dep: Any, name: str) -> Any:
    return dep.contract(w3, name)


def _send(w3: Web3, key: str, fn: Any, tip: int | None = None, wait: bool = True) -> Any:
    acct = Account.from_key(key)
    extra = {"maxPriorityFeePerGas": tip, "maxFeePerGas": 10 * tip} if tip else {}
    tx = fn.build_transaction(
        {
            "from": acct.address,
            "nonce": w3.eth.get_transaction_count(acct.address),
            "gas": fn.estimate_gas({"from": acct.address}, "pending"),  # a reveal needs its commit mined
            **extra,
        }
    )
    h = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    if wait:
        assert w3.eth.wait_for_transaction_receipt(h)["status"] == 1
    return h


def _accepted_epoch(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> tuple[Web3, EpochLifecycle, MerkleTree]:
    """Five datasets (dev 5..9) attested by both dev validators; epoch 0 funded, proposed and accepted."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=1000, challenge_delay=5,
                     out=tmp_path / "deployment.json")  # fmt: skip
    raw = json.loads((POLICY_DIR / "v1.json").read_text())
    raw["attestation"]["quorum"] = 2
    (tmp_path / "policy.json").write_text(json.dumps(raw))
    registry = _contract(w3, dep, "ContributionRegistry")
    ids = [bytes([0x50 + i]) * 32 for i in range(len(OWNERS))]
    for key, cid in zip(OWNERS, ids, strict=True):
        for step in dataset_calls(
            registry, Account.from_key(key).address, cid, 1, 1, b"\x01" * 32, "ipfs://p"
        ):
            _send(w3, key, step)
    _send(w3, ANVIL_DEV_KEYS[0], registry.functions.attestBatch(ids, [6000, 7000, 8000, 9000, 9900]))
    _send(w3, ANVIL_DEV_KEYS[2], registry.functions.attestBatch(ids, [6000, 7000, 8000, 9000, 9900]))
    engine = make_engine(sqlite_url)
    migrations.upgrade(engine)
    eng = EpochLifecycle(engine=engine, w3=w3, deployment=dep, policy=load_policy(tmp_path / "policy.json"),
                      data_dir=tmp_path / "data", publisher_key=ANVIL_DEV_KEYS[0], confirmations=0,
                      finality="confirmations",
                      source="chain")  # fmt: skip
    eng.fund(0)
    anvil.rpc("evm_setNextBlockTimestamp", [dep.epoch.bounds(0)[1]])
    anvil.rpc("evm_mine", [])
    row = eng.publish(0)
    anvil.rpc("evm_setNextBlockTimestamp", [row.valid_at])
    anvil.rpc("evm_mine", [])
    row = eng.finalize(0)
    tree = MerkleTree.load(read_allocation_file(tmp_path / "data", row.allocation_file or "")["tree"])
    return w3, eng, tree


def _claimed(eng: EpochLifecycle, account: str) -> int:
    return int(eng.distributor.functions.claimed(Web3.to_checksum_address(account)).call())


def _outbox_rows(eng: EpochLifecycle) -> list[tuple[str, str]]:
    with eng.engine.connect() as conn:
        return [
            (r.key, r.status) for r in conn.execute(text("SELECT key, status FROM outbox_tx ORDER BY id"))
        ]


def _cairn(tmp_path: Path, anvil: Anvil, sqlite_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CAIRN_DATA_DIR=str(tmp_path / "data"), CAIRN_PUBLISHER_KEY="")
    dep, pol = str(tmp_path / "deployment.json"), str(tmp_path / "policy.json")
    common = ["--rpc-url", anvil.url, "--database-url", sqlite_url, "--deployment", dep, "--policy", pol]
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", "epoch", "payout", *args, *common],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=ROOT,
    )  # fmt: skip


def test_push_payouts_threshold_skip_self_claimed_idempotent_and_cli(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    w3, eng, tree = _accepted_epoch(anvil, sqlite_url, tmp_path)
    leaves = dict(tree.values)
    assert len(leaves) == 6  # five owners + the treasury (the compute pool has nobody eligible)
    self_claimer = Account.from_key(OWNERS[4]).address.lower()
    amount, proof = tree.proof_for(self_claimer)
    _send(w3, OWNERS[4], eng.distributor.functions.claim(amount, [bytes.fromhex(p[2:]) for p in proof]))
    others = sorted((v, a) for a, v in leaves.items() if a != self_claimer)
    smallest = others[0][1]
    threshold = others[0][0] + 1  # the smallest leaf is below it

    report = push_payouts(eng, 0, min_amount=threshold, batch_size=2)
    assert (report.accounts, report.already_paid, report.below_min, report.paid) == (6, 1, 1, 4)
    assert len(report.batches) == 2 and all(t.status == "confirmed" for t in report.batches)
    assert report.paid_amount == sum(v for v, a in others[1:]) and not report.failed and not report.unpaid
    assert "4 account(s) paid" in report.summary()
    for a, v in leaves.items():
        assert _claimed(eng, a) == (0 if a == smallest else v)
    rows = _outbox_rows(eng)

    again = push_payouts(eng, 0, min_amount=threshold, batch_size=2)  # nothing left above the threshold
    assert (again.paid, again.batches, again.already_paid, again.below_min) == (0, [], 5, 1)
    assert _outbox_rows(eng) == rows

    res = _cairn(tmp_path, anvil, sqlite_url, "0", "--batch-size", "2")
    assert res.returncode == 0, res.stderr
    assert "epoch 0: 1 account(s) paid" in res.stdout and "5 already paid" in res.stdout
    assert _claimed(eng, smallest) == leaves[smallest]
    claims = eng.distributor.events.Claimed().get_logs(from_block=0)
    assert sorted((lg.args.account.lower(), lg.args.amount) for lg in claims) == sorted(leaves.items())

    bad = [(["7"], 4, "epoch 7 is not known"), (["0", "--batch-size", "0"], 3, "batch-size"),
           (["0", "--min-amount", "0"], 3, "min-amount")]  # fmt: skip
    for args, code, words in bad:
        res = _cairn(tmp_path, anvil, sqlite_url, *args)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == code and len(lines) == 1 and words in lines[0], (args, res.stderr)


def test_batch_with_a_claim_in_flight_skips_that_account_and_pays_the_rest(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    w3, eng, tree = _accepted_epoch(anvil, sqlite_url, tmp_path)
    leaves = dict(tree.values)
    racer = Account.from_key(OWNERS[0]).address.lower()
    anvil.rpc("evm_setAutomine", [False])
    amount, proof = tree.proof_for(racer)
    # the account's own claim waits in the pool with a high tip: it is mined first, in the batch's block
    _send(w3, OWNERS[0], eng.distributor.functions.claim(amount, [bytes.fromhex(p[2:]) for p in proof]),
          tip=100 * 10**9, wait=False)  # fmt: skip
    stop = threading.Event()

    def miner() -> None:  # mines whenever a payout batch is pending in the outbox
        while not stop.is_set():
            with eng.engine.connect() as conn:
                pending = conn.execute(
                    text(
                        "SELECT COUNT(*) FROM outbox_tx WHERE status = 'pending' AND key LIKE 'claimbatch:%'"
                    )
                ).scalar_one()
            if pending:
                anvil.rpc("evm_mine", [])
            stop.wait(0.02)

    thread = threading.Thread(target=miner, daemon=True)
    thread.start()
    try:
        report = push_payouts(eng, 0, batch_size=10)
    finally:
        stop.set()
        thread.join()
    # Finding 3: the racer's claim no longer reverts the batch (it used to: the batch failed and was rebuilt
    # without the racer); the contract skips the racer with ClaimSkipped and pays everyone else at once.
    assert [t.status for t in report.batches] == ["confirmed"] and not report.failed
    assert report.skipped == [racer] and "1 skipped (paid meanwhile)" in report.summary()
    assert report.paid == len(leaves) - 1 and report.already_paid == 0 and not report.unpaid
    (skip,) = eng.distributor.events.ClaimSkipped().get_logs(from_block=0)
    assert skip.args.account.lower() == racer and skip.args.alreadyClaimed == leaves[racer]
    for a, v in leaves.items():
        assert _claimed(eng, a) == v
    claims = eng.distributor.events.Claimed().get_logs(from_block=0)
    assert sorted((lg.args.account.lower(), lg.args.amount) for lg in claims) == sorted(leaves.items())
