"""Auditor benchmark: `cairn audit` from the chain alone, on real anvil and the real contracts.

Figures
* `audit_seconds_100k`: `cairn audit --epoch 0 --no-bytecode` (a fresh process: eth_getLogs of the whole
  history, the reward function, the tree, the allocation file fetched and checked by hash, the conservation
  checks) for an epoch with 100,000 contributors (`BENCH_AUDIT_CONTRIBUTORS` scales it);
* `bytecode_verify_seconds`: `cairn audit --no-epochs` (a fresh process: every contract's sources compiled
  with py-solc-x over the npm solc wrapper, and compared with `eth_getCode` and the deployment transactions).

History: 100,000 compute providers, each registering one compute job from its own address (anvil
`--auto-impersonate`, zero gas price, automine off: the transactions go in JSON-RPC batches and are mined
into one block per 1,000), validator attestations in `attestBatch` transactions of 5,000, the epoch's emission
funded, then the epoch is published by the real lifecycle (`EpochLifecycle`, source `chain`, through the
outbox) under a quorum-1 policy whose file the auditor gets from `--artifacts` by its hash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from eth_abi.abi import encode
from eth_hash.auto import keccak

from cairn.cli.devchain import Anvil, rpc_call, start_anvil
from cairn.core.registration import compute_id
from cairn.core.settings import ANVIL_DEV_KEYS, REPO_ROOT

CONTRIBUTORS = int(os.environ.get("BENCH_AUDIT_CONTRIBUTORS", "100000"))
EPOCH_LENGTH = 100_000  # seconds: the history fits in epoch 0
ADMIN = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
RPC_BATCH = 1_000
PER_ATTEST = 5_000


def _sel(sig: str) -> bytes:
    return keccak(sig.encode())[:4]


def _provider(i: int) -> str:
    return f"0x{i + 0x1000000:040x}"


def _batch(url: str, calls: list[dict[str, Any]]) -> list[Any]:
    body = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_sendTransaction", "params": [c]}
        for i, c in enumerate(calls)
    ]
    r = httpx.post(url, json=body, timeout=600)
    replies = r.json()
    errors = [x["error"] for x in replies if "error" in x]
    if errors:
        raise RuntimeError(f"bench transactions refused: {errors[0]}")
    return [x["result"] for x in replies]


def _mine_all(anvil: Anvil) -> None:
    """Mine until the pool is empty (full blocks)."""
    while True:
        status: Any = rpc_call(anvil.url, "txpool_status", [], timeout=60)
        if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
            return
        rpc_call(anvil.url, "evm_mine", [], timeout=600)


def generate(anvil: Anvil, dep: Any) -> None:
    url = anvil.url
    reg = dep.address("ContributionRegistry")
    rpc_call(url, "evm_setAutomine", [False])
    sel = _sel("registerCompute(bytes32,uint64,bytes32,bytes32)")
    ids: list[bytes] = []
    calls = []
    for i in range(CONTRIBUTORS):
        provider = _provider(i)
        job = i.to_bytes(32, "big")
        data = sel + encode(
            ["bytes32", "uint64", "bytes32", "bytes32"], [job, 100 + i % 50, b"\x07" * 32, keccak(job)]
        )
        calls.append(
            {"from": provider, "to": reg, "data": "0x" + data.hex(), "gas": hex(200_000), "gasPrice": "0x0"}
        )
        ids.append(compute_id(provider, job))
        if len(calls) == RPC_BATCH:  # one block per batch: anvil's pool slows down as it grows
            _batch(url, calls)
            _mine_all(anvil)
            calls = []
    if calls:
        _batch(url, calls)
    _mine_all(anvil)
    att = _sel("attestBatch(bytes32[],uint16[])")
    calls = []
    for k in range(0, len(ids), PER_ATTEST):
        part = ids[k : k + PER_ATTEST]
        data = att + encode(
            ["bytes32[]", "uint16[]"], [part, [6000 + (k + j) % 4000 for j in range(len(part))]]
        )
        calls.append({"from": ADMIN, "to": reg, "data": "0x" + data.hex(), "gas": hex(95_000_000)})
    for c in calls:
        _batch(url, [c])
        _mine_all(anvil)
    rpc_call(url, "evm_setAutomine", [True])


def _timed(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[3:6])} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds


def run() -> dict[str, float]:
    from web3 import Web3

    from backend.rewards.lifecycle import EpochLifecycle
    from cairn.cli.deploy import deploy_all
    from cairn.core.db import make_engine
    from cairn.core.policy import POLICY_DIR, load_policy

    anvil = start_anvil(extra_args=["--auto-impersonate", "--base-fee", "0"])
    try:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = Path(tmp_s)
            dep_file = tmp / "deployment.json"
            dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=EPOCH_LENGTH, out=dep_file)
            w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 600}))
            dist = dep.contract(w3, "RewardDistributor")
            tx = dist.functions.fundEmission(0).transact({"from": w3.to_checksum_address(ADMIN)})
            w3.eth.wait_for_transaction_receipt(tx)
            t0 = time.perf_counter()
            generate(anvil, dep)
            print(f"   history of {CONTRIBUTORS} contributors generated in {time.perf_counter() - t0:.1f} s")
            anvil.rpc("evm_increaseTime", [EPOCH_LENGTH])
            anvil.rpc("evm_mine", [])
            raw = json.loads((POLICY_DIR / "v1.json").read_text())
            raw["attestation"]["quorum"] = 1
            raw["account_cap_bps"] = 10_000
            (tmp / "policy.json").write_text(json.dumps(raw))
            policy = load_policy(tmp / "policy.json")
            data = tmp / "data"
            eng = EpochLifecycle(
                engine=make_engine(f"sqlite:///{tmp / 'publisher.db'}"),
                w3=w3,
                deployment=dep,
                policy=policy,
                data_dir=data,
                publisher_key=ANVIL_DEV_KEYS[0],
                confirmations=0,
                finality="confirmations",
                source="chain",
            )
            row = eng.publish(0)
            assert row.leaf_count is not None and row.leaf_count >= CONTRIBUTORS, row
            base = [
                sys.executable,
                "-m",
                "cairn.cli",
                "audit",
                "--rpc-url",
                anvil.url,
                "--deployment",
                str(dep_file),
                "--format",
                "json",
                "--no-save",
            ]
            audit_s = _timed([*base, "--epoch", "0", "--artifacts", str(data), "--no-bytecode"])
            code_s = _timed([*base, "--no-epochs"])
    finally:
        anvil.stop()
    suffix = "100k" if CONTRIBUTORS == 100_000 else f"{CONTRIBUTORS}"
    return {f"audit_seconds_{suffix}": round(audit_s, 2), "bytecode_verify_seconds": round(code_s, 2)}
