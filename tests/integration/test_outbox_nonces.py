"""Nonces are shared per (chain, sender) across processes through the database: two processes enqueue on
one key at the same moment and get distinct, consecutive nonces; every transaction is mined once. And a
contract creation (no `to`) goes through the outbox like any other transaction."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from backend import migrations
from backend.outbox import Outbox
from cairn.cli.devchain import Anvil
from cairn.core.db import make_engine
from cairn.core.settings import ANVIL_DEV_KEYS

KEY = ANVIL_DEV_KEYS[7]
TO = "0x000000000000000000000000000000000000c0De"
PER_PROCESS = 8
WORKER = """
import sys, time
from web3 import Web3
from backend.outbox import Outbox
from cairn.core.db import make_engine
rpc, url, key, name, start_at, count = sys.argv[1:7]
TO = "0x000000000000000000000000000000000000c0De"
box = Outbox(make_engine(url), Web3(Web3.HTTPProvider(rpc)), key)
time.sleep(max(0.0, float(start_at) - time.time()))  # both processes start enqueueing together
for i in range(int(count)):
    box.enqueue(f"{name}:{i}", to=TO, value=1 + i, gas=21_000)
print("done")
"""


def test_two_processes_on_one_key_get_distinct_consecutive_nonces(anvil: Anvil, database_url: str) -> None:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    sender = Account.from_key(KEY).address
    n0 = w3.eth.get_transaction_count(sender)
    start_at = time.time() + 4.0  # after both interpreters have imported web3
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                anvil.url,
                database_url,
                KEY,
                name,
                str(start_at),
                str(PER_PROCESS),
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, nonce FROM outbox_tx WHERE sender = :s"), {"s": sender.lower()})
        nonces = {str(k): int(n) for k, n in rows}
    assert len(nonces) == 2 * PER_PROCESS
    assert sorted(nonces.values()) == list(range(n0, n0 + 2 * PER_PROCESS))
    box = Outbox(engine, w3, KEY)
    box.drain(timeout=60)
    assert w3.eth.get_transaction_count(sender) == n0 + 2 * PER_PROCESS  # each mined once, none stalled
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT DISTINCT status FROM outbox_tx")).scalars().all()
    assert statuses == ["confirmed"]
    engine.dispose()


def test_contract_creation_through_the_outbox(anvil: Anvil, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrations.upgrade(engine)
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    box = Outbox(engine, w3, KEY)
    init = "0x600a600c600039600a6000f3602a60005260206000f3"  # runtime: return 42
    row = box.wait(box.enqueue("create:1", to=None, data=init).key, timeout=30)
    assert row.status == "confirmed" and row.to_address is None
    assert row.mined_hash is not None
    address = w3.eth.get_transaction_receipt(row.mined_hash)["contractAddress"]  # type: ignore[arg-type]
    assert int.from_bytes(w3.eth.call({"to": address}), "big") == 42
    engine.dispose()
