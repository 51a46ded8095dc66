"""Indexer benchmark: >= 500k real Cairn events on anvil; raw eth_getLogs vs our indexer, side by side.

Events come from the real Cairn contracts deployed by `cairn.cli.deploy.deploy_all` (the indexer follows
all of
them; the load is on ContributionRegistry): batch compute
registrations (`registerComputes`, ComputeRegistered) and batch attestations (`attestBatch`, Attested), many
events per transaction. Figures:

- raw_getlogs_events_per_s: eth_getLogs over the same ranges, httpx + orjson parse, nothing else (the ceiling)
- indexer_events_per_s_sqlite / _postgres: our indexer end to end (fetch, decode, upsert, commit)
- indexer_ratio_sqlite / _postgres: ours / raw, each raw figure measured right before its indexer run
- indexer_peak_rss_mb: peak RSS of a `python -m cairn.cli.index --once` process indexing everything into
SQLite
- indexer_restart_s: after kill -9 mid-backfill, from process start to its first committed block
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from eth_abi.abi import encode
from eth_hash.auto import keccak
from sqlalchemy import create_engine, text

from cairn.cli.devchain import Anvil, rpc_call, start_anvil
from cairn.core.db import make_engine
from cairn.core.deployment import Deployment, load_deployment
from cairn.core.settings import REPO_ROOT, Settings
from indexer import latest_indexed_block
from indexer.core import Indexer, IndexerOptions

TARGET_EVENTS = int(os.environ.get("CAIRN_BENCH_INDEXER_EVENTS", "500000"))
ADMIN = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
PG_ADMIN_URL = os.environ.get(
    "CAIRN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
COMPUTES = 2_000  # registrations (ComputeRegistered); the rest are attestations
PER_TX = 5_000  # attestations per attestBatch transaction (one block each)
JSON = {"Content-Type": "application/json"}


def _sel(sig: str) -> bytes:
    return keccak(sig.encode())[:4]


def _send(url: str, to: str | None, data: bytes) -> str:
    tx: dict[str, Any] = {"from": ADMIN, "data": "0x" + data.hex(), "gas": hex(95_000_000)}
    if to:
        tx["to"] = to
    return str(rpc_call(url, "eth_sendTransaction", [tx], timeout=120))


def _receipt(url: str, tx_hash: str) -> dict[str, Any]:
    for _ in range(6000):
        r = rpc_call(url, "eth_getTransactionReceipt", [tx_hash], timeout=60)
        if isinstance(r, dict):
            if r["status"] != "0x1":
                raise RuntimeError(f"bench transaction {tx_hash} reverted")
            return r
        time.sleep(0.01)
    raise TimeoutError(tx_hash)


def deploy_registry(anvil: Anvil, path: Path) -> Deployment:
    """The whole Cairn deployment (`cairn.cli.deploy.deploy_all`); the indexer mirrors every contract's
    events."""
    from cairn.cli.deploy import deploy_all
    from cairn.core.settings import ANVIL_DEV_KEYS

    return deploy_all(anvil.url, ANVIL_DEV_KEYS[0], out=path)


def generate(anvil: Anvil, dep: Deployment, n_events: int) -> int:
    url = anvil.url
    reg = dep.address("ContributionRegistry")
    ids: list[bytes] = []
    hashes = []
    for batch in range(COMPUTES // 500):
        jobs = []
        for i in range(500):
            job = (batch * 500 + i).to_bytes(32, "big")
            jobs.append((job, 100 + i, b"\x07" * 32, keccak(job)))
            ids.append(keccak(encode(["address", "bytes32"], [ADMIN, job])))
        data = _sel("registerComputes((bytes32,uint64,bytes32,bytes32)[])") + encode(
            ["(bytes32,uint64,bytes32,bytes32)[]"], [jobs]
        )
        hashes.append(_send(url, reg, data))
    left = n_events - COMPUTES
    sel = _sel("attestBatch(bytes32[],uint16[])")
    k = 0
    while left > 0:
        n = min(PER_TX, left)
        cids = [ids[(k + j) % len(ids)] for j in range(n)]
        scores = [(k + j) % 10001 for j in range(n)]
        hashes.append(_send(url, reg, sel + encode(["bytes32[]", "uint16[]"], [cids, scores])))
        k += n
        left -= n
    for h in hashes:
        _receipt(url, h)
    anvil.rpc("anvil_mine", [100])  # everything below the `finalized` tag (anvil: head - 64)
    return n_events


def raw_getlogs(url: str, dep: Deployment, head: int, blocks_per_call: int) -> tuple[int, float]:
    """Plain eth_getLogs over [start, head] in fixed ranges: httpx + orjson, nothing else."""
    addr = [c.address for c in dep.contracts.values()]
    n = 0
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        lo = dep.start_block
        while lo <= head:
            hi = min(head, lo + blocks_per_call - 1)
            params = [{"fromBlock": hex(lo), "toBlock": hex(hi), "address": addr}]
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": params})
            logs = orjson.loads(client.post(url, content=body, headers=JSON).content)
            n += len(logs["result"])
            lo = hi + 1
    return n, time.perf_counter() - started


def index_once(url: str, db: str, dep_path: Path) -> tuple[int, float]:
    settings = Settings(rpc_urls=[url], database_url=db, deployment_file=dep_path)
    started = time.perf_counter()
    idx = Indexer(settings, load_deployment(dep_path), options=IndexerOptions())
    idx.run_once()
    elapsed = time.perf_counter() - started
    idx.close()
    idx.engine.dispose()
    return idx.events_total, elapsed


def _cmd(url: str, db: str, dep_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cairn.cli.index", "--rpc-url", url, "--database-url", db,
            "--deployment", str(dep_path), "--quiet", *extra]  # fmt: skip


# Started from a small launcher process: a child forked straight from this (large) benchmark process starts
# as a copy of it, and Linux keeps that pre-exec high-water mark in the child's ru_maxrss (after the epoch
# benchmark that read ~700 MB for a ~190 MB indexer).
_RSS_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(url: str, db: str, dep_path: Path) -> float:
    """Peak RSS of a `python -m cairn.cli.index --once` process, measured by a launcher that forks it."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_LAUNCHER, *_cmd(url, db, dep_path, "--once")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    code, maxrss_kb = (int(x) for x in out.stdout.split())
    if code != 0:
        raise RuntimeError(f"indexer exited with {code}")
    return maxrss_kb / 1024.0


def restart_seconds(url: str, db: str, dep_path: Path) -> float:
    engine = make_engine(db)
    first = subprocess.Popen(_cmd(url, db, dep_path), cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (latest_indexed_block(engine) or 0) < load_deployment(
        dep_path
    ).start_block + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before = latest_indexed_block(engine)
    started = time.perf_counter()
    second = subprocess.Popen(_cmd(url, db, dep_path), cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    while latest_indexed_block(engine) == before and time.perf_counter() - started < 60:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    second.send_signal(signal.SIGKILL)
    second.wait()
    engine.dispose()
    return elapsed


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-indexer-") as tmp, start_anvil() as anvil:
        dep_path = Path(tmp) / "deployment.json"
        dep = deploy_registry(anvil, dep_path)
        t0 = time.perf_counter()
        generate(anvil, dep, TARGET_EVENTS)
        figures["indexer_generation_s"] = round(time.perf_counter() - t0, 2)
        head = int(str(anvil.rpc("eth_blockNumber")), 16)
        # Both sides measured in the same collector state: the indexer freezes the process's long-lived
        # objects (indexer.core._freeze_startup_objects), so the raw baseline does too, else its JSON parse
        # pays full collections over every object of this process (~30% slower, flattering the ratio).
        gc.collect()
        gc.freeze()
        ratios: dict[str, float] = {}
        raws = []
        for kind in ("sqlite", "postgres"):
            raw_n, raw_s = raw_getlogs(anvil.url, dep, head, blocks_per_call=2)
            if raw_n < TARGET_EVENTS:
                raise RuntimeError(f"only {raw_n} events on chain")
            raw_rate = raw_n / raw_s
            raws.append(raw_rate)
            if kind == "sqlite":
                db = f"sqlite:///{tmp}/bench.db"
                admin = None
            else:
                name = f"cairn_bench_{uuid.uuid4().hex[:10]}"
                admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                db = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
            try:
                n, secs = index_once(anvil.url, db, dep_path)
            finally:
                if admin is not None:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
            if n != raw_n:
                raise RuntimeError(f"{kind}: indexer wrote {n} events, the chain has {raw_n}")
            figures[f"indexer_events_per_s_{kind}"] = round(n / secs)
            ratios[kind] = (n / secs) / raw_rate
        figures["raw_getlogs_events_per_s"] = round(sum(raws) / len(raws))
        figures["indexer_ratio_sqlite"] = round(ratios["sqlite"], 3)
        figures["indexer_ratio_postgres"] = round(ratios["postgres"], 3)
        figures["indexer_peak_rss_mb"] = round(peak_rss_mb(anvil.url, f"sqlite:///{tmp}/rss.db", dep_path), 1)
        figures["indexer_restart_s"] = round(
            restart_seconds(anvil.url, f"sqlite:///{tmp}/restart.db", dep_path), 3
        )
        figures["indexer_bench_events"] = float(TARGET_EVENTS)
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
