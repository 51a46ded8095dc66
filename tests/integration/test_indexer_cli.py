"""`cairn index --once` and `python -m cairn.cli.index --metrics-port` as real processes: exit code,
metrics."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.indexer_chain import emit, emitter_deployment, ground_truth, total

from cairn.cli.devchain import Anvil, free_port
from cairn.core.db import make_engine
from cairn.core.settings import REPO_ROOT
from indexer import latest_indexed_block


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_cairn_index_once_and_metrics(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for seed in range(1, 6):
        emit(anvil.url, dep, seed)
    head = int(str(anvil.rpc("eth_blockNumber")), 16)
    env_args = [
        "--rpc-url",
        anvil.url,
        "--database-url",
        sqlite_url,
        "--deployment",
        str(dep_path),
        "--quiet",
    ]
    cairn = Path(sys.executable).parent / "cairn"
    cmd = [str(cairn), "index", "--once", *env_args]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"indexed up to block {head}" in done.stderr
    engine = make_engine(sqlite_url)
    assert latest_indexed_block(engine) == head

    rows_before = total(ground_truth(anvil.url, dep, postgres=False))
    port = free_port()
    cmd = [sys.executable, "-m", "cairn.cli.index", "--metrics-port", str(port), "--poll", "0.05", *env_args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for seed in range(6, 9):
            emit(anvil.url, dep, seed)
        head = int(str(anvil.rpc("eth_blockNumber")), 16)
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                body = ""
            if (_metric(body, "cairn_indexer_block") or 0) >= head:
                break
            time.sleep(0.05)
        assert _metric(body, "cairn_indexer_block") == head, body
        rows_now = total(ground_truth(anvil.url, dep, postgres=False))
        assert _metric(body, "cairn_indexer_events_total") == rows_now - rows_before
        assert _metric(body, "cairn_indexer_lag_blocks") == 0
        assert _metric(body, "cairn_indexer_reorgs_total") == 0
        assert "cairn_indexer_rpc_errors" in body
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    engine.dispose()
