"""Emission funding on real anvil: `cairn epoch fund [N]` mints an epoch's emission once, through the outbox,
only while the epoch runs; the keeper (`cairn epoch keeper`, what `cairn dev`/`cairn up` supervise) funds each
epoch as the chain's clock enters it, and a keeper killed with -9 and restarted sends nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import text
from support.process import wait_until
from web3 import Web3

from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core.db import make_engine
from cairn.core.settings import ANVIL_DEV_KEYS

EPOCH_LENGTH = 1000
ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = Account.from_key(ANVIL_DEV_KEYS[0]).address


def _cairn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args], capture_output=True, text=True, timeout=120,
        check=False, env=env, cwd=ROOT,
    )  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def _setup(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> tuple[Web3, Any, dict[str, str]]:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=EPOCH_LENGTH, out=tmp_path / "deployment.json")
    from cairn.core.deployment import load_deployment

    dep = load_deployment(tmp_path / "deployment.json")
    env = dict(
        os.environ, CAIRN_RPC_URLS=anvil.url, CAIRN_DATABASE_URL=sqlite_url,
        CAIRN_DATA_DIR=str(tmp_path / "data"), CAIRN_DEPLOYMENT_FILE=str(tmp_path / "deployment.json"),
        CAIRN_PUBLISHER_KEY="",
    )  # fmt: skip
    return w3, dep, env


def _contract(w3: Web3, dep: Any, name: str) -> Any:
    return dep.contract(w3, name)


def _funded(w3: Web3, dep: Any) -> list[tuple[int, int]]:
    logs = _contract(w3, dep, "RewardDistributor").events.EpochFunded().get_logs(from_block=dep.start_block)
    return [(int(lg.args.epoch), int(lg.args.amount)) for lg in logs if lg.args.source == 0]


def _to_epoch(anvil: Anvil, w3: Web3, dep: Any, epoch: int) -> None:
    start = dep.epoch.bounds(epoch)[0]
    if int(w3.eth.get_block("latest")["timestamp"]) < start:
        anvil.rpc("evm_setNextBlockTimestamp", [start])
        anvil.rpc("evm_mine", [])


def test_fund_command_once_per_epoch_only_while_it_runs(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    w3, dep, env = _setup(anvil, sqlite_url, tmp_path)
    token = _contract(w3, dep, "RewardToken")
    cap0 = int(token.functions.emissionCap(0).call())

    res = _cairn(env, "epoch", "fund")  # default: the current epoch (0)
    assert res.returncode == 0, res.stderr
    assert f"epoch 0: funded, emission minted {cap0} wei tx 0x" in res.stdout
    assert _funded(w3, dep) == [(0, cap0)]
    nonce = w3.eth.get_transaction_count(PUBLISHER)

    res = _cairn(env, "epoch", "fund", "0")  # again: nothing sent
    assert res.returncode == 0 and "epoch 0: already funded (nothing sent)" in res.stdout, res.stderr
    assert w3.eth.get_transaction_count(PUBLISHER) == nonce and _funded(w3, dep) == [(0, cap0)]

    assert "epoch 1 starts in" in _one_line(_cairn(env, "epoch", "fund", "1"), 5)  # not started: conflict
    assert "must be >= 0" in _one_line(_cairn(env, "epoch", "fund", "--", "-1"), 3)

    _to_epoch(
        anvil, w3, dep, 2
    )  # epoch 1 ran unfunded and ended: too late, it would be outside its allocation
    assert "epoch 1 has ended" in _one_line(_cairn(env, "epoch", "fund", "1"), 5)
    # someone else funds epoch 2 (fundEmission is permissionless): `fund` sends nothing
    other = Account.from_key(ANVIL_DEV_KEYS[7])
    tx = (
        _contract(w3, dep, "RewardDistributor")
        .functions.fundEmission(2)
        .build_transaction({"from": other.address, "nonce": w3.eth.get_transaction_count(other.address)})
    )
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(other.sign_transaction(tx).raw_transaction)
    )
    res = _cairn(env, "epoch", "fund")
    assert res.returncode == 0 and "epoch 2: already funded (nothing sent)" in res.stdout, res.stderr
    assert w3.eth.get_transaction_count(PUBLISHER) == nonce
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        keys = [k for (k,) in conn.execute(text("SELECT key FROM outbox_tx ORDER BY id"))]
    engine.dispose()
    assert len(keys) == 1 and keys[0].startswith("fund:31337:") and keys[0].endswith(":0")


def test_keeper_funds_each_epoch_as_it_starts_and_survives_kill_9(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    w3, dep, env = _setup(anvil, sqlite_url, tmp_path)
    token = _contract(w3, dep, "RewardToken")
    caps = [int(token.functions.emissionCap(e).call()) for e in range(3)]
    log = tmp_path / "keeper.log"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "epoch", "keeper", "--interval", "0.2"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip

    proc = start()
    try:
        wait_until("epoch 0 funded", lambda: _funded(w3, dep) == [(0, caps[0])], proc, log)
        for e in (1, 2):
            _to_epoch(anvil, w3, dep, e)
            want = [(i, caps[i]) for i in range(e + 1)]
            wait_until(f"epoch {e} funded", lambda want=want: _funded(w3, dep) == want, proc, log)
        wait_until("the keeper's log line", lambda: "epoch 2: emission funded" in log.read_text(), proc, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        nonce = w3.eth.get_transaction_count(PUBLISHER)
        proc = start()  # a restart in the same epoch sends nothing
        wait_until("restart", lambda: "epoch 2: emission already funded" in log.read_text(), proc, log)
        assert w3.eth.get_transaction_count(PUBLISHER) == nonce
        assert _funded(w3, dep) == [(i, caps[i]) for i in range(3)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
