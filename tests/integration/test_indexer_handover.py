"""Backfill -> live handover: events are emitted while the backfill runs; zero missed, zero duplicated.
At least 20 runs under CI=true (alternating the node's `finalized` tag and a confirmation depth)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from support.indexer_chain import (
    attest_many_data,
    db_rows,
    emit,
    emitter_deployment,
    ground_truth,
    send,
    total,
)

from cairn.cli.devchain import Anvil
from cairn.core.deployment import load_deployment
from cairn.core.settings import Settings
from indexer.core import Indexer, IndexerOptions

RUNS = 20 if os.environ.get("CI") == "true" else 6


def test_backfill_to_live_misses_and_duplicates_nothing(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    names = sorted(dep.contracts)
    for i in range(60):
        send(anvil.url, dep.contracts[names[i % 2]].address, attest_many_data(i, 100))
    anvil.rpc("anvil_mine", [70])
    seed = 10_000
    for run in range(RUNS):
        finality = "tag" if run % 2 == 0 else "confirmations"
        settings = Settings(
            rpc_urls=[anvil.url], database_url=f"sqlite:///{tmp_path}/run{run}.db", deployment_file=dep_path,
            confirmations=1 + run % 4,
        )  # fmt: skip
        options = IndexerOptions(poll_interval=0.01, finality=finality, initial_range=4 + run, grow_step=3)
        modes: list[str] = []
        dep_now = load_deployment(dep_path)
        idx = Indexer(settings, dep_now, options=options, on_progress=lambda p, m=modes: m.append(p.mode))
        idx.prepare()
        stop = threading.Event()
        runner = threading.Thread(target=idx.run, args=(stop,))
        runner.start()
        try:
            # emit while the backfill runs, until (and a little after) the indexer reaches live mode
            emitted = 0
            during_backfill = 0
            while emitted < 6 or not ({"live", "idle"} & set(modes)):
                emit(anvil.url, dep, seed)
                seed += 1
                emitted += 1
                if not ({"live", "idle"} & set(modes)):
                    during_backfill += 1
                assert emitted < 2000
            assert "backfill" in modes and during_backfill > 0
            head = anvil.rpc("eth_getBlockByNumber", ["latest", False])
            assert isinstance(head, dict)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cur = idx.store.cursor()
                if cur is not None and cur.block_hash == head["hash"]:
                    break
                time.sleep(0.01)
        finally:
            stop.set()
            runner.join(10)
        truth = ground_truth(anvil.url, dep, postgres=False)
        got = db_rows(idx.engine, list(truth))
        assert total(got) == total(truth), f"run {run}: {total(got)} rows, expected {total(truth)}"
        assert got == truth, f"run {run}"
        idx.close()
        idx.engine.dispose()
