"""kill -9 of the indexer process (`python -m cairn.cli.index`) at random points during backfill; after the
final
run the database is identical to the ground truth read directly with eth_getLogs (no gap, no duplicate)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from support.indexer_chain import attest_many_data, db_rows, emit, emitter_deployment, ground_truth, send

from cairn.cli.devchain import Anvil
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment
from cairn.core.settings import REPO_ROOT
from indexer import latest_indexed_block

KILLS = 10 if os.environ.get("CI") == "true" else 4


def indexer_cmd(anvil: Anvil, db: str, dep_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cairn.cli.index", "--rpc-url", anvil.url, "--database-url", db,
        "--deployment", str(dep_path), "--finality", "confirmations", "--confirmations", "2",
        "--quiet", "--initial-range", "3", "--max-range", "6", *extra,
    ]  # fmt: skip


def test_kill9_during_backfill_resumes_exactly(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for i in range(150):
        name = sorted(dep.contracts)[i % 2]
        send(anvil.url, dep.contracts[name].address, attest_many_data(i, 150))
        if i % 10 == 0:
            emit(anvil.url, dep, i)
    rng = random.Random(7)
    engine = make_engine(database_url)
    partial = 0
    for k in range(KILLS):
        proc = subprocess.Popen(indexer_cmd(anvil, database_url, dep_path), cwd=REPO_ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        before = latest_indexed_block(engine)
        # wait for the first commit of this run (progress), then a random extra delay, then kill -9
        deadline = time.monotonic() + 60
        while latest_indexed_block(engine) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            partial += 1
        proc.wait(10)
        for seed in range(1000 + 3 * k, 1003 + 3 * k):  # the chain keeps moving between runs
            emit(anvil.url, dep, seed)
    assert partial >= KILLS // 2, "the kills should land mid-backfill"
    done = subprocess.run(indexer_cmd(anvil, database_url, dep_path, "--once"), cwd=REPO_ROOT, timeout=300,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    truth = ground_truth(anvil.url, load_deployment(dep_path), postgres=database_url.startswith("postgres"))
    assert db_rows(engine, list(truth)) == truth
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM ev_attested")).scalar()
    assert n == len(truth["ev_attested"]) > 20_000
    engine.dispose()
