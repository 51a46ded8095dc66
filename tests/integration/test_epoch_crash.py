"""The whole epoch loop under kill -9: fund (fundEmission) -> close/compute -> publish (proposeRoot) ->
finalize (acceptRoot) -> push payouts (claimForBatch), epoch after epoch, with the worker process killed at
random moments, again and again, on real anvil with automine off (a miner thread in the test mines at random
intervals and is paused while a kill is classified, so kills land between persist, broadcast and receipt).

After the last run completes: every epoch funded once, every root proposed once and accepted once, no
payment twice, nothing lost (every account holds exactly its cumulative leaf), every outbox row confirmed
(no reverted duplicate), the publisher's nonce advanced once per outbox row, and the final state (roots,
totals, emission, every account's claimed amount and balance) equals a crash-free run on a fresh chain.

Run as a script, this file is the worker: `python test_epoch_crash.py <rpc> <db> <deployment> <data> <policy>
<epochs>` (prints `ready` once it has settled what the previous run left in the outbox).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI") == "true"
KILLS = 100 if IN_CI else int(os.environ.get("CAIRN_CRASH_KILLS", "8"))
PUBLISHER = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil dev key 0
CONTRIBUTORS = 8
BATCH = 3  # 9 leaves (8 owners + the treasury): 3 payout batches per epoch
EPOCH_LENGTH = 3600
DELAY = 5
ROOT = Path(__file__).resolve().parents[2]


# --- the worker ---------------------------------------------------------------------------------------
def travel(rpc: str, w3: Any, ts: int) -> None:
    """Move the chain's clock to `ts` (absolute, so a repeat after a kill moves nothing)."""
    from cairn.cli.devchain import rpc_call

    if int(w3.eth.get_block("latest")["timestamp"]) >= ts:
        return
    try:
        rpc_call(rpc, "evm_setNextBlockTimestamp", [ts])
        rpc_call(rpc, "evm_mine", [])
    except RuntimeError:
        if int(w3.eth.get_block("latest")["timestamp"]) < ts:  # a block mined meanwhile is fine
            raise


def run_epochs(eng: Any, rpc: str, epochs: int) -> None:
    """Epochs 0..epochs-1, each: funded while it runs, closed, proposed, accepted, paid out. Idempotent."""
    from backend.rewards.lifecycle import ACCEPTED
    from backend.rewards.payouts import push_payouts

    clock = eng.deployment.epoch
    for e in range(epochs):
        row = eng.row(e)
        (cur, cur_e, _), _ = eng._chain_roots()
        if row is not None and row.status == ACCEPTED and int.from_bytes(cur, "big") and cur_e > e:
            continue  # a later root is accepted: this epoch was paid out before it was proposed
        eng.fund(e)
        travel(rpc, eng.w3, clock.bounds(e)[1])  # epoch e ends ...
        eng.fund(e + 1)  # ... and e + 1 is funded as it starts (what the keeper does)
        row = eng.publish(e)
        travel(rpc, eng.w3, row.valid_at)
        eng.finalize(e)
        report = push_payouts(eng, e, batch_size=BATCH)
        assert not report.unpaid and not report.failed, report


def worker(rpc: str, db_url: str, dep_file: str, data_dir: str, policy_file: str, epochs: int) -> None:
    from web3 import Web3

    from backend.rewards.lifecycle import EpochLifecycle
    from cairn.core.db import make_engine
    from cairn.core.deployment import load_deployment
    from cairn.core.policy import load_policy

    w3 = Web3(Web3.HTTPProvider(rpc))
    eng = EpochLifecycle(
        engine=make_engine(db_url), w3=w3, deployment=load_deployment(Path(dep_file)),
        policy=load_policy(Path(policy_file)), data_dir=Path(data_dir), publisher_key=PUBLISHER,
        confirmations=0, finality="confirmations", source="chain",
        migrate=False,  # tables created once by the test
    )  # fmt: skip
    eng._outbox().drain()
    print("ready", flush=True)
    run_epochs(eng, rpc, epochs)


# --- the test -----------------------------------------------------------------------------------------
class Miner(threading.Thread):
    """Mines a block every 20-250 ms while active; `pause()` returns once no evm_mine is in flight."""

    def __init__(self, rpc: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.rpc, self.rng = rpc, random.Random(seed)
        self.active, self.done, self.lock = threading.Event(), threading.Event(), threading.Lock()

    def run(self) -> None:
        from cairn.cli.devchain import rpc_call

        while not self.done.is_set():
            with self.lock:
                if self.active.is_set():
                    rpc_call(self.rpc, "evm_mine", [])
            self.done.wait(self.rng.uniform(0.02, 0.25))  # the pace of block production, not a sync

    def pause(self) -> None:
        self.active.clear()
        with self.lock:
            pass

    def resume(self) -> None:
        self.active.set()


def contributor_keys() -> list[str]:
    from cairn.core.merkle import keccak256

    return ["0x" + keccak256(f"cairn-crash-contributor-{i}".encode()).hex() for i in range(CONTRIBUTORS)]


def setup_chain(rpc: str, folder: Path) -> tuple[Any, Path]:
    """Deploy, then CONTRIBUTORS datasets attested by both dev validators (quorum 2): (w3, dep file)."""
    from eth_account import Account
    from web3 import Web3

    from cairn.cli.deploy import deploy_all
    from cairn.core.policy import POLICY_DIR
    from cairn.core.registration import dataset_calls
    from cairn.core.settings import ANVIL_DEV_KEYS

    w3 = Web3(Web3.HTTPProvider(rpc))
    dep_file = folder / "deployment.json"
    dep = deploy_all(rpc, PUBLISHER, epoch_length=EPOCH_LENGTH, challenge_delay=DELAY, out=dep_file)
    raw = json.loads((POLICY_DIR / "v1.json").read_text())
    raw["attestation"]["quorum"] = 2  # the dev deployment has two validators (dev accounts 0 and 2)
    (folder / "policy.json").write_text(json.dumps(raw))
    registry = dep.contract(w3, "ContributionRegistry")

    def send(key: str, tx: dict[str, Any]) -> None:
        acct = Account.from_key(key)
        tx = {"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address), **tx}
        if "gas" not in tx:
            tx["gas"] = w3.eth.estimate_gas(tx, "pending")  # type: ignore[arg-type]
        tx.update({"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "chainId": w3.eth.chain_id})
        h = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
        assert w3.eth.wait_for_transaction_receipt(h)["status"] == 1

    ids = []
    for i, key in enumerate(contributor_keys()):
        owner = Account.from_key(key).address
        send(ANVIL_DEV_KEYS[5], {"to": owner, "value": 10**18, "gas": 21_000})
        cid = bytes([i + 1]) * 32
        for step in dataset_calls(registry, owner, cid, 1000 + i, 1, b"\x01" * 32, f"ipfs://crash-{i}"):
            send(key, {"to": registry.address, "data": step._encode_transaction_data()})
        ids.append(cid)
    for v, base in ((ANVIL_DEV_KEYS[0], 6000), (ANVIL_DEV_KEYS[2], 6500)):
        scores = [base + 400 * i for i in range(CONTRIBUTORS)]
        send(
            v,
            registry.functions.attestBatch(ids, scores).build_transaction(
                {"from": Account.from_key(v).address}
            ),
        )
    return w3, dep_file


def start_worker(paths: dict[str, str], epochs: int) -> subprocess.Popen[bytes]:
    args = [paths["rpc"], paths["db"], paths["dep"], paths["data"], paths["policy"], str(epochs)]
    return subprocess.Popen(
        [sys.executable, __file__, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def run_clean(paths: dict[str, str], epochs: int) -> None:
    proc = start_worker(paths, epochs)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def classify(w3: Any, engine: Any) -> str:
    """Where the kill landed, from the last outbox row (the miner is paused: nothing moves meanwhile)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, key, status FROM outbox_tx ORDER BY id DESC LIMIT 1")).first()
        if row is None or row.status != "pending":
            return "no transaction in flight"
        hashes = [h for (h,) in conn.execute(text("SELECT tx_hash FROM outbox_attempt WHERE outbox_id = :o"),
                                             {"o": row.id})]  # fmt: skip
    kind = row.key.split(":")[0]
    txs = [w3.eth.get_transaction(h) if _known(w3, h) else None for h in hashes]
    if any(t is not None and t["blockNumber"] is not None for t in txs):
        return f"{kind}: mined, receipt not recorded"
    if any(t is not None for t in txs):
        return f"{kind}: broadcast, not mined"
    return f"{kind}: signed and persisted, not broadcast"


def _known(w3: Any, tx_hash: str) -> bool:
    from web3.exceptions import TransactionNotFound

    try:
        w3.eth.get_transaction(tx_hash)
        return True
    except TransactionNotFound:
        return False


def _not_confirmed(w3: Any, engine: Any) -> list[tuple[Any, ...]]:
    """Rows not confirmed, with what the chain says about each attempt (for the assertion message)."""
    from sqlalchemy import text
    from web3.exceptions import TransactionNotFound

    out: list[tuple[Any, ...]] = []
    with engine.connect() as conn:
        for r in conn.execute(
            text("SELECT id, key, nonce, status, mined_hash FROM outbox_tx WHERE status != 'confirmed'")
        ):
            hashes = [
                h
                for (h,) in conn.execute(
                    text("SELECT tx_hash FROM outbox_attempt WHERE outbox_id = :o"), {"o": r.id}
                )
            ]
            seen = []
            for h in hashes:
                try:
                    rc = w3.eth.get_transaction_receipt(h)
                    seen.append((h, "mined", int(rc["status"]), int(rc["blockNumber"])))
                except TransactionNotFound:
                    seen.append((h, "unknown"))
            out.append((r.key, r.nonce, r.status, r.mined_hash, seen))
    return out


def chain_state(w3: Any, dep_file: Path, epochs: int) -> dict[str, Any]:
    """Everything the loop changes on chain, from events and views (addresses and amounts only)."""
    from eth_account import Account
    from web3 import Web3

    from cairn.core.deployment import load_deployment

    dep = load_deployment(dep_file)
    c = {n: dep.contract(w3, n) for n in dep.contracts}
    dist, token = c["RewardDistributor"], c["RewardToken"]
    frm = dep.start_block
    proposed = [(lg.args.epoch, "0x" + bytes(lg.args.root).hex(), lg.args.totalCumulative)
                for lg in dist.events.RootProposed().get_logs(from_block=frm)]  # fmt: skip
    accepted = [
        (lg.args.epoch, "0x" + bytes(lg.args.root).hex())
        for lg in dist.events.RootAccepted().get_logs(from_block=frm)
    ]
    funded = [
        (lg.args.epoch, lg.args.amount, lg.args.source)
        for lg in dist.events.EpochFunded().get_logs(from_block=frm)
    ]
    claims = [(lg.args.account.lower(), lg.args.amount, lg.args.cumulativeAmount)
              for lg in dist.events.Claimed().get_logs(from_block=frm)]  # fmt: skip
    accounts = sorted(
        {Account.from_key(k).address.lower() for k in contributor_keys()} | {a for a, _, _ in claims}
    )
    return {
        "proposed": sorted(proposed), "accepted": sorted(accepted), "funded": sorted(funded),
        "claims": sorted(claims),
        "claimed": {a: dist.functions.claimed(Web3.to_checksum_address(a)).call() for a in accounts},
        "balances": {a: token.functions.balanceOf(Web3.to_checksum_address(a)).call() for a in accounts},
        "pool": token.functions.balanceOf(dist.address).call(),
        "total_funded": dist.functions.totalFunded().call(),
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_kill_9_through_fund_publish_accept_payout_never_doubles_or_loses(tmp_path: Path) -> None:
    from sqlalchemy import text

    from backend import migrations
    from backend.rewards.publication import read_allocation_file
    from cairn.cli.devchain import start_anvil
    from cairn.core.db import make_engine

    rng = random.Random(int(os.environ.get("CAIRN_CRASH_SEED", "4321")))
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    crashed.mkdir()
    clean.mkdir()
    with start_anvil() as chain, start_anvil() as ref_chain:
        w3, dep_file = setup_chain(chain.url, crashed)
        db = f"sqlite:///{crashed}/cairn.db"
        engine = make_engine(db)
        migrations.upgrade(engine)
        publisher = w3.eth.account.from_key(PUBLISHER).address
        nonce0 = w3.eth.get_transaction_count(publisher)
        paths = {"rpc": chain.url, "db": db, "dep": str(dep_file), "data": str(crashed / "data"),
                 "policy": str(crashed / "policy.json")}  # fmt: skip
        chain.rpc("evm_setAutomine", [False])
        miner = Miner(chain.url, rng.randrange(2**32))
        miner.start()
        miner.resume()

        # one clean epoch measures the kill window (work after `ready`)
        proc = start_worker(paths, 1)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        t0 = time.perf_counter()
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        window = time.perf_counter() - t0
        epochs, kills, completed = 2, 0, 1
        where: Counter[str] = Counter()
        started = time.perf_counter()
        while kills < KILLS:
            miner.resume()
            proc = start_worker(paths, epochs)
            from_start = rng.random() < 0.2  # some kills during start-up and recovery (drain)
            if not from_start:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if line.strip() != b"ready":
                    _, err = proc.communicate(timeout=60)
                    raise AssertionError(err.decode()[-3000:])
            try:
                proc.wait(
                    timeout=rng.uniform(0.0, 1.05 * window) + (rng.uniform(0.3, 3.0) if from_start else 0)
                )
            except subprocess.TimeoutExpired:
                miner.pause()
                proc.kill()  # SIGKILL
                rest, _ = proc.communicate()
                kills += 1
                ready = not from_start or b"ready" in rest
                where[classify(w3, engine) if ready else "start-up / recovery (drain)"] += 1
                if rng.random() < 0.1:  # sometimes let the next run complete the epoch
                    miner.resume()
                    run_clean(paths, epochs)
                    epochs, completed = epochs + 1, completed + 1
                continue
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()[-3000:]
            epochs, completed = epochs + 1, completed + 1
        miner.resume()
        run_clean(paths, epochs)  # finish the last, interrupted epoch
        kill_time = time.perf_counter() - started
        miner.done.set()
        miner.join()
        chain.rpc("evm_mine", [])

        # the same epochs, crash-free, on a fresh chain
        ref_w3, ref_dep = setup_chain(ref_chain.url, clean)
        ref_db = f"sqlite:///{clean}/cairn.db"
        ref_engine = make_engine(ref_db)
        migrations.upgrade(ref_engine)
        run_clean({"rpc": ref_chain.url, "db": ref_db, "dep": str(ref_dep), "data": str(clean / "data"),
                   "policy": str(clean / "policy.json")}, epochs)  # fmt: skip

        got, want = chain_state(w3, dep_file, epochs), chain_state(ref_w3, ref_dep, epochs)
        print(f"\nkill -9: {kills} kills over {epochs} epochs ({completed} runs completed) in "
              f"{kill_time:.0f} s; window {window:.2f} s; where: {dict(sorted(where.items()))}")  # fmt: skip

        # each epoch funded once, proposed once, accepted once; every root equals the crash-free run's
        assert [e for e, _, s in got["funded"] if s == 0] == list(range(epochs + 1))
        assert [e for e, _, _ in got["proposed"]] == list(range(epochs))
        assert [e for e, _ in got["accepted"]] == list(range(epochs))
        assert got == want
        # no payment twice, nothing lost: per account, the claims are increasing steps that add up to the last
        # accepted leaf, which is also what it holds
        with engine.connect() as conn:
            last = conn.execute(text("SELECT allocation_file FROM reward_epoch WHERE epoch = :e"),
                                {"e": epochs - 1}).scalar_one()  # fmt: skip
        leaves = {
            v["value"][0]: int(v["value"][1])
            for v in read_allocation_file(crashed / "data", last)["tree"]["values"]
        }
        for account, cumulative in leaves.items():
            steps = [(amt, cum) for a, amt, cum in got["claims"] if a == account]
            cums = sorted(c for _, c in steps)
            assert len(set(cums)) == len(cums) and sum(a for a, _ in steps) == cumulative, account
            assert got["claimed"][account] == cumulative
            if account in got["balances"]:
                assert got["balances"][account] == cumulative
        assert got["pool"] == got["total_funded"] - sum(leaves.values())
        # every outbox row confirmed (no reverted duplicate), one nonce per row, nothing sent outside it
        with engine.connect() as conn:
            by_status = dict(
                conn.execute(text("SELECT status, COUNT(*) FROM outbox_tx GROUP BY status")).all()
            )
        assert set(by_status) == {"confirmed"}, _not_confirmed(w3, engine)
        assert w3.eth.get_transaction_count(publisher) - nonce0 == by_status["confirmed"]
        assert kills >= KILLS
        engine.dispose()
        ref_engine.dispose()


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
