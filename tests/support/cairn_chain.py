"""Deploy the real Cairn ContributionRegistry and ModelRegistry (hardhat artifacts) on anvil and drive them
with batch calls, for the indexer tests that must run against real Cairn events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from cairn.core.deployment import Deployment
from cairn.core.registration import batch_digest, commitment, compute_id
from cairn.core.settings import REPO_ROOT
from support.indexer_chain import DEV_ACCOUNT, send, wait_receipt

ARTIFACTS = REPO_ROOT / "artifacts" / "contracts" / "src"


def artifact(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ARTIFACTS / f"{name}.sol" / f"{name}.json").read_text())
    return data


def call_data(sig: str, types: list[str], values: list[Any]) -> str:
    return "0x" + (keccak(sig.encode())[:4] + encode(types, values)).hex()


def _deploy(url: str, name: str, types: list[str], args: list[Any]) -> tuple[str, int, list[dict[str, Any]]]:
    from cairn.cli.devchain import rpc_call

    art = artifact(name)
    data = art["bytecode"] + encode(types, args).hex()
    tx_hash = str(
        rpc_call(url, "eth_sendTransaction", [{"from": DEV_ACCOUNT, "data": data, "gas": hex(30_000_000)}])
    )
    r = wait_receipt(url, tx_hash)
    assert r["status"] == "0x1", f"deploying {name} failed"
    return str(r["contractAddress"]).lower(), int(r["blockNumber"], 16), art["abi"]


def deploy_cairn(url: str, path: Path) -> Deployment:
    """Every Cairn contract, deployed and wired by `cairn.cli.deploy.deploy_all` (dev roles: account 0 is a
    validator and a trainer); the deployment file carries every contract's ABI."""
    from cairn.cli.deploy import deploy_all
    from cairn.core.settings import ANVIL_DEV_KEYS

    return deploy_all(url, ANVIL_DEV_KEYS[0], out=path)


def _commit(url: str, dep: Deployment, value: bytes) -> None:
    """`commit([value])` from the dev account (mined before the reveal that follows: automine)."""
    send(url, dep.address("ContributionRegistry"), call_data("commit(bytes32[])", ["bytes32[]"], [[value]]))


def register_datasets(url: str, dep: Deployment, start: int, n: int) -> list[bytes]:
    hashes = [keccak(f"dataset-{i}".encode()) for i in range(start, start + n)]
    items = [(h, 1000 + i, i % 4, keccak(h), f"ipfs://bafy{i}") for i, h in enumerate(hashes)]
    salt = keccak(f"salt-{start}-{n}".encode())
    _commit(url, dep, commitment(DEV_ACCOUNT, batch_digest(hashes), salt))
    send(url, dep.address("ContributionRegistry"),
         call_data("registerDatasets((bytes32,uint64,uint32,bytes32,string)[],bytes32)",
                   ["(bytes32,uint64,uint32,bytes32,string)[]", "bytes32"], [items, salt]))  # fmt: skip
    return hashes


def register_dataset_batch(url: str, dep: Deployment, start: int, n: int) -> list[bytes]:
    """`registerDatasetBatch` of n datasets sharing licence 9, one metadata hash and one URI."""
    hashes = [keccak(f"batch-dataset-{i}".encode()) for i in range(start, start + n)]
    batch = (hashes, [5000 + i for i in range(n)], 9, keccak(b"batch-manifest"), "ipfs://bafybatch")
    typ = "(bytes32[],uint64[],uint32,bytes32,string)"
    salt = keccak(f"batch-salt-{start}-{n}".encode())
    _commit(url, dep, commitment(DEV_ACCOUNT, batch_digest(hashes), salt))
    send(url, dep.address("ContributionRegistry"),
         call_data(f"registerDatasetBatch({typ},bytes32)", [typ, "bytes32"], [batch, salt]))  # fmt: skip
    return hashes


def register_computes(url: str, dep: Deployment, start: int, n: int) -> list[bytes]:
    jobs = [
        ((start + i).to_bytes(32, "big"), 10 + i, b"\x07" * 32, keccak(bytes([i % 256]))) for i in range(n)
    ]
    typ = "(bytes32,uint64,bytes32,bytes32)[]"
    send(url, dep.address("ContributionRegistry"), call_data(f"registerComputes({typ})", [typ], [jobs]))
    return [compute_id(DEV_ACCOUNT, j[0]) for j in jobs]


def attest(url: str, dep: Deployment, ids: list[bytes], scores: list[int]) -> None:
    send(url, dep.address("ContributionRegistry"),
         call_data("attestBatch(bytes32[],uint16[])", ["bytes32[]", "uint16[]"], [ids, scores]))  # fmt: skip


def withdraw(url: str, dep: Deployment, cid: bytes) -> None:
    send(url, dep.address("ContributionRegistry"), call_data("withdraw(bytes32)", ["bytes32"], [cid]))


def manifest(url: str, dep: Deployment, model: bytes, datasets: list[bytes], weights: list[int]) -> None:
    pairs = sorted(zip(datasets, weights, strict=True))
    send(url, dep.address("ModelRegistry"),
         call_data("registerManifest(bytes32,bytes32[],uint32[])", ["bytes32", "bytes32[]", "uint32[]"],
                   [model, [p[0] for p in pairs], [p[1] for p in pairs]]))  # fmt: skip
