"""The API under load on loopback: Merkle proofs of a 1M-leaf epoch and an account's history over 100 epochs.

Figures (closed loop: 64 clients, each on its own keep-alive connection of bench/http_load.py, sends its next
request when its last answer came, for BENCH_API_SECONDS after a 2 s warm-up; every answer must be a 200
carrying what was asked for, or the run fails)
* `api_proof_p99_ms`, `api_proof_p50_ms`, `api_proof_rps`: `GET /v1/epochs/{n}/proofs/{address}` for random
  accounts of a 1,000,000-leaf epoch (each answer must hold a non-empty proof): latency percentiles and the
  lookups answered per second. Closed loop, so latency is about 64 / rps (Little's law): queueing;
* `api_account_p99_ms`, `api_account_p50_ms`, `api_account_rps`: the signed-in account view
  `GET /v1/me/rewards` (rewards per epoch from each epoch's proof index, cumulative, claimed, claimable with
  the proof) of an account with a reward in each of 100 epochs, signed in once with SIWE (EIP-4361, a bearer
  session; each answer must list the 100 epochs);
* `api_account_history_*`: the same for the public `GET /v1/accounts/{address}/history` of that account;
* `api_load_workers`: the API worker processes serving (`BENCH_API_WORKERS`, default 2 = the cores);
* `api_*_server_cpu_ms`: the serving processes' CPU time per request, which the other processes on a shared
  machine do not inflate the way they inflate latency; `api_*_loadavg`: the 1-minute load average during
  each run (the machine is shared: read the latencies next to it).

Set-up (not timed): a fresh anvil with every contract, epoch 0 funded; epochs 0..98 published with 1,000
accounts each and epoch 99 with 1,000,000 accounts (cumulative leaves: the last epoch holds every account),
each root proposed and accepted on chain, the allocation files and their `.idx` proof indexes written by the
rewards engine's own publication code (`build_publication`, `store_publication`: bench/epoch.py's 1M build
without its 10M-row SQL reduction), the real indexer run to the head, and the API started as
`cairn api --workers N` (one SO_REUSEPORT socket per process) over the mirror (SQLite) with migrations
applied once beforehand; the access log off (log level WARNING).
"""

from __future__ import annotations

import asyncio
import json
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
from bench.http_load import Response, closed_loop, percentile

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 100
SMALL = 1_000
BIG = int(os.environ.get("BENCH_API_ACCOUNTS", "1000000"))
CLIENTS = 64
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "15"))
WORKERS = int(os.environ.get("BENCH_API_WORKERS", "2"))
EPOCH_LENGTH = 3600
DELAY = 60
TARGET_KEY = Account.from_key("0x" + "ab" * 32)  # the account with a reward in every epoch; it signs in
TARGET = TARGET_KEY.address.lower()
TESTS = ROOT / "tests"


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
    picks = (rng.randrange(BIG) for _ in range(20_000))
    sample = [_addr(i) if i != SMALL - 1 else TARGET for i in picks]  # _addr(SMALL - 1) is TARGET's place
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
        # every load client is one loopback client and the account view one account: no rate limit here
        "CAIRN_API_RATE_CLIENT_BURST": "1000000000",
        "CAIRN_API_RATE_CLIENT_PER_MINUTE": "1000000000",
        "CAIRN_API_RATE_ACCOUNT_BURST": "1000000000",
        "CAIRN_API_RATE_ACCOUNT_PER_MINUTE": "1000000000",
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


def _is_proof(response: Response) -> str | None:
    """None when the body is a proof (a JSON object with a non-empty `proof` list), else what is wrong."""
    body = json.loads(response.body)
    return None if isinstance(body.get("proof"), list) and body["proof"] else "no proof in the answer"


def _is_history(response: Response) -> str | None:
    return None if isinstance(json.loads(response.body).get("items"), list) else "no items in the answer"


def _is_my_rewards(response: Response) -> str | None:
    epochs = json.loads(response.body).get("epochs")
    return None if isinstance(epochs, list) and len(epochs) == EPOCHS else f"not {EPOCHS} epochs of rewards"


def _sign_in(base: str) -> str:
    """Sign in once as TARGET with SIWE (EIP-4361) as a wallet would; the bearer token."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from support.siwe import sign_in

    with httpx.Client(timeout=30) as client:
        answer = sign_in(client, base, TARGET_KEY)
    if answer.status_code != 200:
        raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
    return str(answer.json()["token"])


def _measure(
    base: str, paths: list[str], check: Any, headers: dict[str, str] | None = None
) -> tuple[list[float], float, float, float]:
    """Closed loop at CLIENTS clients: latencies (ms), requests/s, the serving processes' CPU ms per request
    (warm-up included, so an upper bound) and the mean 1-minute load average before and after."""
    load, cpu = os.getloadavg()[0], _server_cpu(_SERVER[0])
    lat, rps = asyncio.run(closed_loop(base, paths, clients=CLIENTS, seconds=SECONDS, check=check,
                                       headers=headers))  # fmt: skip
    cpu_ms = (_server_cpu(_SERVER[0]) - cpu) / max(len(lat), 1) * 1000
    return lat, rps, cpu_ms, (load + os.getloadavg()[0]) / 2


_SERVER = [0]  # the `cairn api` parent's pid


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the `cairn api` process `pid` and its worker processes."""
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
            [sys.executable, "-m", "cairn.cli", "api", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(WORKERS)],
            env={**_env(tmp, anvil.url), "CAIRN_API_MIGRATE": "0", "CAIRN_LOG_LEVEL": "WARNING",
                 "CAIRN_API_SIWE_ORIGINS": f"http://127.0.0.1:{port}"}, cwd=ROOT,
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
            _SERVER[0] = server.pid
            lat, rps, proof_cpu, proof_load = _measure(base, proof_paths, _is_proof)
            print(f"   proofs: {len(lat)} in {SECONDS} s, load average {proof_load:.2f}", flush=True)
            token = _sign_in(base)
            me, me_rps, me_cpu, me_load = _measure(
                base, ["/v1/me/rewards"], _is_my_rewards, {"Authorization": f"Bearer {token}"}
            )
            print(f"   signed-in views: {len(me)} in {SECONDS} s, load average {me_load:.2f}", flush=True)
            view = f"/v1/accounts/{TARGET}/history"
            hist, hist_rps, hist_cpu, hist_load = _measure(base, [view], _is_history)
            print(f"   history views: {len(hist)} in {SECONDS} s, load average {hist_load:.2f}", flush=True)
            history = httpx.get(base + view, params={"kinds": "reward", "limit": 100}, timeout=30)
            rewards = len(history.json()["items"])
            if rewards != EPOCHS:
                raise RuntimeError(f"the account's history shows {rewards} rewards, not {EPOCHS}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "api_proof_p99_ms": round(percentile(lat, 0.99), 2),
        "api_proof_p50_ms": round(percentile(lat, 0.5), 2),
        "api_proof_rps": round(rps, 1),
        "api_account_p99_ms": round(percentile(me, 0.99), 2),
        "api_account_p50_ms": round(percentile(me, 0.5), 2),
        "api_account_rps": round(me_rps, 1),
        "api_account_history_p99_ms": round(percentile(hist, 0.99), 2),
        "api_account_history_p50_ms": round(percentile(hist, 0.5), 2),
        "api_account_history_rps": round(hist_rps, 1),
        # serving processes' CPU per request: the load-independent gauge (N free cores: ~N * 1000 / this rps)
        "api_proof_server_cpu_ms": round(proof_cpu, 2),
        "api_account_server_cpu_ms": round(me_cpu, 2),
        "api_account_history_server_cpu_ms": round(hist_cpu, 2),
        # the 1-minute load average on this machine during each run (other processes share the cores)
        "api_proof_loadavg": round(proof_load, 2),
        "api_account_loadavg": round(me_load, 2),
        "api_account_history_loadavg": round(hist_load, 2),
        "api_load_workers": float(WORKERS),
        "api_load_leaves": float(BIG),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
