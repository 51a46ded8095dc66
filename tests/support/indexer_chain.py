"""Helpers for the indexer tests: deploy the test emitter on anvil, write a deployment file, emit events,
and compute the ground truth straight from one eth_getLogs call (no indexer machinery involved)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak
from sqlalchemy import Engine

from cairn.cli.devchain import rpc_call
from cairn.core.deployment import ContractInfo, Deployment, EpochConfig
from cairn.core.events import decode_exploded, decode_log, specs_from_abis
from cairn.core.settings import REPO_ROOT
from indexer.store import dump_events

EMITTER_ARTIFACT = REPO_ROOT / "artifacts/contracts/test/mocks/IndexerEmitter.sol/IndexerEmitter.json"
DEV_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


def _selector(sig: str) -> str:
    return keccak(sig.encode())[:4].hex()


def send(url: str, to: str | None, data: str, *, sender: str = DEV_ACCOUNT, wait: bool = True) -> str:
    tx: dict[str, Any] = {"from": sender, "data": data, "gas": hex(30_000_000)}
    if to:
        tx["to"] = to
    tx_hash = str(rpc_call(url, "eth_sendTransaction", [tx]))
    if wait:
        receipt = wait_receipt(url, tx_hash)
        assert receipt["status"] == "0x1", receipt
    return tx_hash


def wait_receipt(url: str, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = rpc_call(url, "eth_getTransactionReceipt", [tx_hash])
        if isinstance(r, dict):
            return r
        time.sleep(0.01)
    raise TimeoutError(tx_hash)


def deploy_emitter(url: str) -> tuple[str, int, list[dict[str, Any]]]:
    art = json.loads(EMITTER_ARTIFACT.read_text())
    tx_hash = str(rpc_call(url, "eth_sendTransaction", [{"from": DEV_ACCOUNT, "data": art["bytecode"]}]))
    receipt = wait_receipt(url, tx_hash)
    return str(receipt["contractAddress"]).lower(), int(receipt["blockNumber"], 16), art["abi"]


def emitter_deployment(url: str, path: Path, *, copies: int = 2) -> Deployment:
    """Deploy `copies` emitters (events from several contracts) and write the deployment file."""
    contracts: dict[str, ContractInfo] = {}
    first = None
    for i in range(copies):
        address, block, abi = deploy_emitter(url)
        first = block if first is None else first
        contracts[f"IndexerEmitter{i}"] = ContractInfo(address=address, block=block, abi=abi)
    chain_id = int(str(rpc_call(url, "eth_chainId")), 16)
    dep = Deployment(
        chain_id=chain_id,
        start_block=first or 0,
        deployer=DEV_ACCOUNT,
        deployed_at="2026-11-23T00:00:00Z",
        epoch=EpochConfig(genesis=0, length=3600),
        contracts=contracts,
    )
    dep.save(path)
    return dep


def emit_all_data(seed: int) -> str:
    return "0x" + _selector("emitAll(bytes32)") + seed.to_bytes(32, "big").hex()


def attest_many_data(seed: int, count: int) -> str:
    return (
        "0x"
        + _selector("attestMany(bytes32,uint256)")
        + seed.to_bytes(32, "big").hex()
        + count.to_bytes(32, "big").hex()
    )


def emit(url: str, dep: Deployment, seed: int, *, which: int | None = None, wait: bool = True) -> str:
    names = sorted(dep.contracts)
    name = names[(seed if which is None else which) % len(names)]
    return send(url, dep.contracts[name].address, emit_all_data(seed), wait=wait)


def ground_truth(url: str, dep: Deployment, *, postgres: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Expected rows of every event table, from one eth_getLogs over [start_block, latest]."""
    specs = specs_from_abis((c.abi for c in dep.contracts.values()), uint_as_str=not postgres)
    head = int(str(rpc_call(url, "eth_blockNumber")), 16)
    addresses = [c.address for c in dep.contracts.values()]
    logs: Any = rpc_call(
        url,
        "eth_getLogs",
        [{"fromBlock": hex(dep.start_block), "toBlock": hex(head), "address": addresses}],
        timeout=60,
    )
    out: dict[str, list[tuple[Any, ...]]] = {s.table: [] for s in specs.values()}
    for lg in logs:
        spec = specs[lg["topics"][0]]
        if spec.exploded:
            out[spec.table].extend(decode_exploded(spec, lg, int(lg["blockTimestamp"], 16)))
        else:
            out[spec.table].append(decode_log(spec, lg, int(lg["blockTimestamp"], 16)))
    for spec in specs.values():  # by the key: (block, log), or (block, log, item) for exploded events
        out[spec.table].sort(key=(lambda r: (r[0], r[1], r[6])) if spec.exploded else (lambda r: r[:2]))
    return out


def normalise(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Driver values to plain Python (Decimal -> int, SQLite 0/1 bools stay comparable)."""
    from decimal import Decimal

    return {
        t: [tuple(int(v) if isinstance(v, Decimal) else v for v in r) for r in rs] for t, rs in rows.items()
    }


def db_rows(engine: Engine, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    return normalise(dump_events(engine, tables))


def total(rows: dict[str, list[tuple[Any, ...]]]) -> int:
    return sum(len(r) for r in rows.values())
