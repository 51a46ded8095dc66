"""The API under load on loopback: Merkle proofs of a 1M-leaf epoch and an account's history over 100 epochs.

Figures
* `api_proof_p99_ms`, `api_proof_rps`: `GET /v1/epochs/{n}/proofs/{address}` for random accounts of a
  1,000,000-leaf epoch, 64 concurrent clients (one asyncio process, httpx) offering 500 requests/s together
  (open loop, `BENCH_API_RATE`): p99 latency from each request's scheduled time, and the requests/s answered;
* `api_proof_max_rps`, `api_proof_closed_p99_ms`: the same 64 clients closed loop (each sends its next
  request when its last answer came): the most the server answers, and the p99 then (which is queueing:
  64 / rps on average, by Little's law);
* `api_account_p99_ms`: `GET /v1/accounts/{address}/history` (the account view the signed-in `/v1/me` view
  calls: registrations, attestations, rewards per epoch from each epoch's proof index, claims, payments) for
  an account with a reward in each of 100 epochs, 64 clients offering 100 views/s (`BENCH_API_ACCOUNT_RATE`),
  p99 latency; `api_account_rps`, `api_account_closed_p99_ms`: closed loop, as for proofs;
* `api_load_workers`: the uvicorn worker processes serving (`BENCH_API_WORKERS`, default 2 = the cores);
* `api_proof_server_cpu_ms`, `api_account_server_cpu_ms`: the serving processes' CPU time per request, which
  the other processes on a shared machine do not inflate the way they inflate latency.

Set-up (not timed): a fresh anvil with every contract, epoch 0 funded; epochs 0..98 published with 1,000
accounts each and epoch 99 with 1,000,000 accounts (cumulative leaves: the last epoch holds every account),
each root proposed and accepted on chain, the allocation files and their `.idx` proof indexes written by the
rewards engine's own publication code (`build_publication`, `store_publication`: bench/epoch.py's 1M build
without its 10M-row SQL reduction), the real indexer run to the head, and the API started as
`uvicorn --workers N` over the mirror (SQLite) with migrations applied once beforehand.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

from bench.epoch import _addr

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 100
SMALL = 1_000
BIG = int(os.environ.get("BENCH_API_ACCOUNTS", "1000000"))
CLIENTS = 64
RATE = float(os.environ.get("BENCH_API_RATE", "500"))  # proof lookups/s the 64 clients offer together
IN_FLIGHT = 4  # requests one paced client keeps out at once
ACCOUNT_RATE = float(os.environ.get("BENCH_API_ACCOUNT_RATE", "100"))  # account views/s offered
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "15"))
WORKERS = int(os.environ.get("BENCH_API_WORKERS", "2"))
EPOCH_LENGTH = 3600
DELAY = 60
TARGET = "0x" + "ab" * 20  # the account with a reward in every epoch


def _send(w3: Web3, admin: Any, fn: Any) -> None:
    tx = fn.build_transaction({"from": admin.address, "nonce": w3.eth.get_transaction_count(admin.address)})
    tx["gas"] = int(fn.estimate_gas({"from": admin.address}) * 12 // 10)
    h = w3.eth.send_raw_transaction(admin.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.01)
    if receipt["status"] != 1:
        raise RuntimeError(f"set-up transaction reverted: {receipt}")


def _travel(w3: Web3, anvil: Any, t: int) -> None:
    now = int(w3.eth.get_block("latest")["timestamp"])
    anvil.rpc("evm_setNextBlockTimestamp", [max(t, now + 1)])
    anvil.rpc("evm_mine")


def _publish(tmp: Path, anvil: Any) -> tuple[Any, int, list[str]]:
    """Deploy, fund, publish the 100 epochs on chain and write their files; returns (deployment, the big
    epoch, a sample of its accounts)."""
    from backend.rewards.publication import build_publication, store_publication
    from cairn.cli.deploy import deploy_all
    from cairn.core.policy import load_policy
    from cairn.core.settings import ANVIL_DEV_KEYS

    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    dep = deploy_all(w3, admin.key.hex(), epoch_length=EPOCH_LENGTH, challenge_delay=DELAY,
                     out=tmp / "deployment.json")  # fmt: skip
    dist = dep.contract(w3, "RewardDistributor")
    for role in ("PUBLISHER_ROLE", "GUARDIAN_ROLE"):
        _send(w3, admin, dist.functions.grantRole(getattr(dist.functions, role)().call(), admin.address))
    _send(w3, admin, dist.functions.fundEmission(0))
    policy = load_policy("v1")
    genesis = dep.epoch.genesis
    previous: dict[str, int] = {}
    small = [_addr(i) for i in range(SMALL - 1)] + [TARGET]
    for epoch in range(EPOCHS):
        accounts = small if epoch < EPOCHS - 1 else small + [_addr(i) for i in range(SMALL, BIG)]
        amounts = {a: 1 + (i % 7) for i, a in enumerate(accounts)}
        pub = build_publication(
            epoch=epoch, end_block=int(w3.eth.block_number), chain_id=31337, distributor=dist.address,
            policy=policy, previous=previous, epoch_amounts=amounts,
        )  # fmt: skip
        _, uri = store_publication(tmp / "data", pub)
        previous = dict(pub.tree.values)
        total = sum(previous.values())
        valid_at = int(w3.eth.get_block("latest")["timestamp"]) + DELAY
        _travel(w3, anvil, max(genesis + (epoch + 1) * EPOCH_LENGTH + 1, valid_at + 1))
        _send(w3, admin, dist.functions.proposeRoot(pub.tree.root, epoch, policy.content_hash(), total, uri))
        del pub
    _travel(w3, anvil, int(w3.eth.get_block("latest")["timestamp"]) + DELAY + 1)
    _send(w3, admin, dist.functions.acceptRoot())
    rng = random.Random(7)
    sample = [_addr(rng.randrange(BIG)) if rng.random() < 0.999 else TARGET for _ in range(20_000)]
    return dep, EPOCHS - 1, sample


def _env(tmp: Path, anvil_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CAIRN_RPC_URLS": anvil_url,
        "CAIRN_DATABASE_URL": f"sqlite:///{tmp}/api.db",
        "CAIRN_DEPLOYMENT_FILE": str(tmp / "deployment.json"),
        "CAIRN_DATA_DIR": str(tmp / "data"),
        "CAIRN_CONFIRMATIONS": "0",
        "CAIRN_API_RUN_INDEXER": "0",
    }


def _index(tmp: Path, anvil_url: str) -> None:
    """The real indexer to the head, and the API's migrations, once, before the workers start."""
    code = (
        "from cairn.core.settings import Settings; from cairn.core.deployment import load_deployment; "
        "from indexer.core import Indexer, IndexerOptions; from cairn.core.db import make_engine; "
        "from backend.api.app import run_migrations; s = Settings(); "
        "d = load_deployment(s.deployment_file); "
        "i = Indexer(s, d, options=IndexerOptions(poll_interval=0.02, confirmations=0)); i.run_once(); "
        "i.close(); run_migrations(make_engine(s.database_url), d)"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(tmp, anvil_url), cwd=ROOT, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """GET, once more on a connection the server closed under us (a keep-alive race): counted, not lost."""
    try:
        return await client.get(path)
    except httpx.TransportError:
        return await client.get(path)


async def _load(base: str, paths: list[str], seconds: float) -> tuple[list[float], float]:
    """CLIENTS concurrent clients, each sending one request after another for `seconds` (after a 2 s
    warm-up that is not counted): every latency in ms and the requests per second."""
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        start = time.perf_counter()
        counted_from = start + 2.0
        stop = counted_from + seconds

        async def one(k: int) -> None:
            i = k
            while (now := time.perf_counter()) < stop:
                t = now
                resp = await _get(client, paths[i % len(paths)])
                i += CLIENTS
                done = time.perf_counter()
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")
                if t >= counted_from:
                    latencies.append((done - t) * 1000)

        await asyncio.gather(*(one(k) for k in range(CLIENTS)))
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return latencies, len(latencies) / seconds


async def _paced(base: str, paths: list[str], seconds: float, rate: float) -> tuple[list[float], float]:
    """Open loop: CLIENTS clients together offer `rate` requests/s (each sends on its own fixed schedule,
    whether or not its last answer came: a slow server cannot slow the offered load down). Latency runs from
    the scheduled send time (queueing at the client counts, no coordinated omission). Returns every latency
    in ms and the answered requests per second."""
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=CLIENTS * 4, max_keepalive_connections=CLIENTS * 4)
    interval = CLIENTS / rate
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        start = time.perf_counter() + 0.5
        counted_from = start + 2.0
        stop = counted_from + seconds

        async def send(path: str, due: float) -> None:
            resp = await _get(client, path)
            if resp.status_code != 200:
                errors.append(f"{resp.status_code} {resp.text[:200]}")
            if due >= counted_from:
                latencies.append((time.perf_counter() - due) * 1000)

        pending: list[tuple[float, asyncio.Task[None]]] = []

        unsent: list[float] = []

        async def one(k: int) -> None:
            """At most IN_FLIGHT requests of this client at once: a request whose turn comes while they
            are all out waits, and its latency still runs from its scheduled time."""
            due = start + interval * k / CLIENTS
            i = k
            slots = asyncio.Semaphore(IN_FLIGHT)

            async def sent(path: str, at: float) -> None:
                try:
                    await send(path, at)
                finally:
                    slots.release()

            while due < stop:
                await asyncio.sleep(max(due - time.perf_counter(), 0))
                await slots.acquire()
                if time.perf_counter() >= stop + 2.0:  # the window is long over: the rest are never sent
                    slots.release()
                    while due < stop:
                        unsent.append(due)
                        due += interval
                    break
                pending.append((due, asyncio.create_task(sent(paths[i % len(paths)], due))))
                i += CLIENTS
                due += interval

        await asyncio.gather(*(one(k) for k in range(CLIENTS)))
        answered = sum(1 for due, t in pending if t.done() and due >= counted_from)
        await asyncio.wait([t for _, t in pending], timeout=2.0)
        now = time.perf_counter()
        for due, task in pending:  # still unanswered 2 s after the window: their latency is at least this
            if not task.done():
                task.cancel()
                if due >= counted_from:
                    latencies.append((now - due) * 1000)
        latencies.extend((now - due) * 1000 for due in unsent if due >= counted_from)
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return latencies, answered / seconds


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the uvicorn process `pid` and its worker processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def run() -> dict[str, float]:
    from cairn.cli.devchain import start_anvil

    with tempfile.TemporaryDirectory(prefix="cairn-api-load-") as d, start_anvil() as anvil:
        tmp = Path(d)
        t = time.perf_counter()
        _, big_epoch, sample = _publish(tmp, anvil)
        _index(tmp, anvil.url)
        print(f"   set-up {time.perf_counter() - t:.1f} s", flush=True)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.api.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(WORKERS), "--no-access-log", "--log-level",
             "warning"],
            env={**_env(tmp, anvil.url), "CAIRN_API_MIGRATE": "0"}, cwd=ROOT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            probe = f"{base}/v1/epochs/{big_epoch}/proofs/{TARGET}"
            for _ in range(600):
                try:
                    if httpx.get(probe, timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("the API did not answer a proof lookup")
            proof_paths = [f"/v1/epochs/{big_epoch}/proofs/{a}" for a in sample]
            cpu = _server_cpu(server.pid)
            closed, max_rps = asyncio.run(_load(base, proof_paths, SECONDS))
            proof_cpu = (_server_cpu(server.pid) - cpu) / max(len(closed), 1) * 1000
            print(f"   proofs, closed loop: {len(closed)} in {SECONDS} s", flush=True)
            lat, rps = asyncio.run(_paced(base, proof_paths, SECONDS, RATE))
            print(f"   proofs at {RATE}/s offered: {len(lat)} in {SECONDS} s", flush=True)
            view = f"/v1/accounts/{TARGET}/history"
            cpu = _server_cpu(server.pid)
            account_closed, account_rps = asyncio.run(_load(base, [view], SECONDS))
            account_cpu = (_server_cpu(server.pid) - cpu) / max(len(account_closed), 1) * 1000
            account_lat, _ = asyncio.run(_paced(base, [view], SECONDS, ACCOUNT_RATE))
            print(f"   account views: {len(account_closed)} closed, {len(account_lat)} paced", flush=True)
            history = httpx.get(base + view, params={"kinds": "reward", "limit": 100}, timeout=30)
            rewards = len(history.json()["items"])
            if rewards != EPOCHS:
                raise RuntimeError(f"the account's history shows {rewards} rewards, not {EPOCHS}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "api_proof_p99_ms": round(_p99(lat), 2),
        "api_proof_rps": round(rps, 1),
        "api_proof_p50_ms": round(sorted(lat)[len(lat) // 2], 2),
        "api_proof_max_rps": round(max_rps, 1),
        "api_proof_closed_p99_ms": round(_p99(closed), 2),
        "api_account_p99_ms": round(_p99(account_lat), 2),
        "api_account_rps": round(account_rps, 1),
        "api_account_closed_p99_ms": round(_p99(account_closed), 2),
        # server CPU per request (warm-up included, so an upper bound): the load-independent gauge; the
        # capacity of N free cores is about N * 1000 / this many requests per second
        "api_proof_server_cpu_ms": round(proof_cpu, 2),
        "api_account_server_cpu_ms": round(account_cpu, 2),
        "api_load_workers": float(WORKERS),
        "api_load_leaves": float(BIG),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
