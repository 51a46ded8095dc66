"""The outbox under kill -9: a worker pays N recipients through the outbox and is killed at random
moments, again and again; after it finally completes, every recipient got exactly one payment (0 double,
0 lost), and the sender's nonce advanced exactly once per payment.

Run as a script, this file is the worker: `python test_outbox_crash.py <rpc> <db url> <batch> <count>`.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

IN_CI = os.environ.get("CI") == "true"
KILLS = 100 if IN_CI else 5
PER_BATCH = 6
SENDER_KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"  # anvil dev key 9


def recipient(batch: int, i: int) -> str:
    return f"0x{0xFEED0000 + batch * 1000 + i:040x}"


def amount(batch: int, i: int) -> int:
    return 10**12 + batch * 1000 + i


def worker(rpc: str, db_url: str, batch: int, count: int) -> None:
    from web3 import Web3

    from backend.outbox import Outbox
    from cairn.core.db import make_engine

    engine = make_engine(db_url)  # tables created once by the test (keeps the worker's start-up short)
    box = Outbox(engine, Web3(Web3.HTTPProvider(rpc)), SENDER_KEY, stuck_after=5)
    while box.process():  # reconcile what a previous (killed) run left pending
        time.sleep(0.02)
    for i in range(count):
        box.enqueue(f"pay:{batch}:{i}", to=recipient(batch, i), value=amount(batch, i), gas=21_000)
    for i in range(count):
        row = box.wait(f"pay:{batch}:{i}", timeout=60)
        assert row.status == "confirmed", row


def _run_worker(rpc: str, db_url: str, batch: int, kill_after: float | None) -> int | None:
    proc = subprocess.Popen(
        [sys.executable, __file__, rpc, db_url, str(batch), str(PER_BATCH)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_after is None:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise AssertionError(err.decode()[-2000:])
        return proc.returncode
    try:
        proc.wait(timeout=kill_after)
        return proc.returncode  # finished before the kill
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL
        proc.wait()
        return None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_kill_9_at_random_points_never_pays_twice_or_loses_a_payment(anvil, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    from web3 import Web3

    from backend import migrations
    from cairn.core.db import make_engine

    setup = make_engine(sqlite_url)
    migrations.upgrade(setup)
    setup.dispose()
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    sender = w3.eth.account.from_key(SENDER_KEY).address
    start_nonce = w3.eth.get_transaction_count(sender)
    rng = random.Random(int(os.environ.get("CAIRN_CRASH_SEED", "1234")))
    kills, batch, batches_done = 0, 0, 0
    # measure one clean batch first: the kill window spans start-up and the whole payment loop
    _run_worker(anvil.url, sqlite_url, batch, None)
    batches_done, batch = 1, 1
    t0 = time.perf_counter()
    _run_worker(anvil.url, sqlite_url, batch, None)
    window = time.perf_counter() - t0
    batches_done, batch = 2, 2
    while kills < KILLS:
        t0 = time.perf_counter()
        code = _run_worker(anvil.url, sqlite_url, batch, rng.uniform(0.2 * window, 1.05 * window))
        if code is None:
            kills += 1
            if rng.random() < 0.15:  # sometimes let the next run complete the batch
                _run_worker(anvil.url, sqlite_url, batch, None)
                batch, batches_done = batch + 1, batches_done + 1
        else:
            # it finished before the kill: runs got faster than the measured window (a quieter machine);
            # shrink the window to this run so that the kills keep landing inside a run
            window = min(window, time.perf_counter() - t0)
            batch, batches_done = batch + 1, batches_done + 1
    _run_worker(anvil.url, sqlite_url, batch, None)  # finish the last, interrupted batch
    batches_done = batch + 1

    for b in range(batches_done):
        for i in range(PER_BATCH):
            assert w3.eth.get_balance(Web3.to_checksum_address(recipient(b, i))) == amount(b, i), (b, i)
    total = batches_done * PER_BATCH
    assert w3.eth.get_transaction_count(sender) - start_nonce == total
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        by_status = dict(conn.execute(text("SELECT status, COUNT(*) FROM outbox_tx GROUP BY status")).all())
    engine.dispose()
    assert by_status == {"confirmed": total}
    assert kills >= KILLS


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
