"""`cairn up` (free ports, real anvil, SQLite) supervises the epoch keeper next to the indexer and the API:
epoch 0's emission is minted as soon as the stack is up, the next epoch's as the chain's clock enters it, and
Ctrl-C stops the keeper with the other children. With CAIRN_KEEPER_ENABLED=false no keeper runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from support.process import wait_until
from web3 import Web3

from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil, free_port
from cairn.core.settings import ANVIL_DEV_KEYS

ROOT = Path(__file__).resolve().parents[2]


def _funded(w3: Web3, dep: Any) -> list[int]:
    dist = dep.contract(w3, "RewardDistributor")
    return [int(lg.args.epoch) for lg in dist.events.EpochFunded().get_logs(from_block=dep.start_block)]


def _up(anvil: Anvil, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    out, dep = tmp_path / "up.out", str(tmp_path / "deployment.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", "up", "--rpc-url", anvil.url, "--api-port", str(free_port()),
         "--database-url", f"sqlite:///{tmp_path}/cairn.db", "--deployment", dep],
        stdout=out.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
        env=dict(os.environ, CAIRN_DATA_DIR=str(tmp_path / "data"), CAIRN_CONFIRMATIONS="0",
                 CAIRN_KEEPER_INTERVAL="0.2", CAIRN_PUBLISHER_KEY="", **env),
    )  # fmt: skip
    return proc, out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    kids = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert psutil.wait_procs(kids, timeout=20)[1] == []


def test_cairn_up_runs_the_keeper_which_funds_each_epoch(anvil: Anvil, tmp_path: Path) -> None:
    dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=1000, out=tmp_path / "deployment.json")
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    proc, out = _up(anvil, tmp_path)
    try:
        wait_until("ready", lambda: "ready: API" in out.read_text(), proc, out, timeout=120)
        wait_until("epoch 0 funded", lambda: _funded(w3, dep) == [0], proc, out, timeout=120)
        assert "keeper" in out.read_text()
        anvil.rpc("evm_setNextBlockTimestamp", [dep.epoch.bounds(1)[0]])
        anvil.rpc("evm_mine", [])
        wait_until("epoch 1 funded", lambda: _funded(w3, dep) == [0, 1], proc, out, timeout=120)
        log = tmp_path / "data" / "logs" / "keeper.log"
        # the keeper logs a funding once the outbox has its receipt, just after the chain shows it
        wait_until("keeper log", lambda: "epoch 1: emission funded" in log.read_text(), proc, out, timeout=60)
        assert "epoch 0: emission funded" in log.read_text()
    finally:
        _stop(proc)


def test_keeper_can_be_left_out(anvil: Anvil, tmp_path: Path) -> None:
    deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=1000, out=tmp_path / "deployment.json")
    proc, out = _up(anvil, tmp_path, CAIRN_KEEPER_ENABLED="false")
    try:
        wait_until("ready", lambda: "Ctrl-C stops everything" in out.read_text(), proc, out, timeout=120)
        names = [" ".join(p.cmdline()) for p in psutil.Process(proc.pid).children(recursive=True)]
        assert any(" index" in n for n in names) and not any("keeper" in n for n in names), names
    finally:
        _stop(proc)
