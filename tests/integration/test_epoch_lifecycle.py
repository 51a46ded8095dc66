"""The epoch lifecycle on real anvil + the real contracts + the indexer's SQL mirror: activity in
epoch 0, close (compute from the mirror), publish (proposeRoot through the outbox), finalize (acceptRoot),
a claim with a proof from the allocation file; every step idempotent; the chain-only audit agrees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import text
from support.api_stack import index_to
from web3 import Web3

from backend.rewards.chainsource import audit_cumulative, end_block
from backend.rewards.lifecycle import ACCEPTED, COMPUTED, PROPOSED, EpochLifecycle
from backend.rewards.payouts import relay_claims
from backend.rewards.publication import read_allocation_file
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core import merkle
from cairn.core.db import make_engine
from cairn.core.errors import EpochNotReadyError, InvalidInputError
from cairn.core.policy import POLICY_DIR, load_policy
from cairn.core.registration import dataset_batch_calls, dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS, Settings

EPOCH_LENGTH = 1000
DELAY = 5


def _send(w3: Web3, key: str, fn: Any) -> None:
    acct = Account.from_key(key)
    tx = fn.build_transaction(
        {
            "from": acct.address,
            "nonce": w3.eth.get_transaction_count(acct.address),
            "gas": fn.estimate_gas({"from": acct.address}, "pending"),  # a reveal needs its commit mined
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1


def _contract(w3: Web3, dep: Any, name: str) -> Any:
    return dep.contract(w3, name)


def test_close_publish_finalize_claim(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=EPOCH_LENGTH, challenge_delay=DELAY,
                     out=tmp_path / "deployment.json")  # fmt: skip
    raw = json.loads((POLICY_DIR / "v1.json").read_text())
    raw["attestation"]["quorum"] = 2  # the dev deployment has two validators (dev accounts 0 and 2)
    (tmp_path / "policy.json").write_text(json.dumps(raw))
    policy = load_policy(tmp_path / "policy.json")

    registry = _contract(w3, dep, "ContributionRegistry")
    distributor = _contract(w3, dep, "RewardDistributor")
    owner_key = ANVIL_DEV_KEYS[5]
    owner = Account.from_key(owner_key).address
    cid = b"\x42" * 32
    for step in dataset_calls(registry, owner, cid, 1234, 1, b"\x01" * 32, "ipfs://data"):
        _send(w3, owner_key, step)
    _send(w3, ANVIL_DEV_KEYS[0], registry.functions.attest(cid, 9000))
    _send(w3, ANVIL_DEV_KEYS[2], registry.functions.attest(cid, 7000))
    # a second contributor registers two datasets in one batch (one log, exploded by the indexer)
    batch_key = ANVIL_DEV_KEYS[6]
    batch_owner = Account.from_key(batch_key).address
    batch = [b"\x51" * 32, b"\x52" * 32]
    for step in dataset_batch_calls(registry, batch_owner, (batch, [10, 20], 1, b"\x02" * 32, "ipfs://b")):
        _send(w3, batch_key, step)
    for b, score in zip(batch, (6000, 8000), strict=True):
        _send(w3, ANVIL_DEV_KEYS[0], registry.functions.attest(b, score))
        _send(w3, ANVIL_DEV_KEYS[2], registry.functions.attest(b, score))
    _send(w3, ANVIL_DEV_KEYS[7], distributor.functions.fundEmission(0))

    engine = make_engine(sqlite_url)
    eng = EpochLifecycle(engine=engine, w3=w3, deployment=dep, policy=policy, data_dir=tmp_path / "data",
                      publisher_key=ANVIL_DEV_KEYS[0], confirmations=0,
                      finality="confirmations", source="db")  # fmt: skip
    with pytest.raises(EpochNotReadyError, match="not ended"):
        eng.close(0)
    anvil.rpc("evm_increaseTime", [EPOCH_LENGTH])
    anvil.rpc("evm_mine", [])
    settings = Settings(
        rpc_urls=[anvil.url], database_url=sqlite_url, deployment_file=tmp_path / "deployment.json",
        confirmations=0,
    )  # fmt: skip
    with pytest.raises(EpochNotReadyError, match="indexer"):
        eng.close(0)  # the mirror has not reached the end block yet
    index_to(settings, dep, engine, end_block(w3, dep, 0) or 0)
    assert eng.close(0).end_block == end_block(w3, dep, 0)

    computed = eng.compute(0)
    assert computed.status == COMPUTED and eng.compute(0) == computed  # idempotent
    doc = read_allocation_file(tmp_path / "data", computed.allocation_file or "")
    amounts = {a: int(v) for a, v in doc["epoch_amounts"].items()}
    assert sum(amounts.values()) == int(doc["total_cumulative"]) > 0
    assert amounts[owner.lower()] > 0  # the dataset owner earns the data emission (quorum 2, median 8000)
    # the batch's datasets earn for their owner too (weight 6000 + 8000 against 8000; v1 caps each account)
    assert amounts[batch_owner.lower()] >= amounts[owner.lower()] > 0

    cumulative, _, _ = audit_cumulative(w3, dep, 0, 0, policy)  # chain only, same pure core
    assert merkle.build_tree(sorted(cumulative.items())).root == computed.root

    proposed = eng.publish(0)
    assert proposed.status == PROPOSED and eng.publish(0).status == PROPOSED
    pend = distributor.functions.pendingRoot().call()
    assert "0x" + bytes(pend[0]).hex() == computed.root and pend[1] == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM outbox_tx WHERE key LIKE 'propose:%'")).scalar() == 1

    with pytest.raises(EpochNotReadyError, match="acceptable in"):
        eng.finalize(0)
    anvil.rpc("evm_increaseTime", [DELAY + 1])
    anvil.rpc("evm_mine", [])
    assert eng.finalize(0).status == ACCEPTED and eng.finalize(0).status == ACCEPTED
    cur = distributor.functions.root().call()
    assert "0x" + bytes(cur[0]).hex() == computed.root

    tree = merkle.MerkleTree.load(doc["tree"])
    amount, proof = tree.proof_for(owner)
    token = _contract(w3, dep, "RewardToken")
    before = token.functions.balanceOf(owner).call()
    _send(w3, owner_key, distributor.functions.claim(amount, [bytes.fromhex(p[2:]) for p in proof]))
    assert token.functions.balanceOf(owner).call() - before == amount

    # relayed claims (claimForBatch through the outbox) pay everyone else, once
    sent = relay_claims(eng, 0)
    assert sent and all(tx.status == "confirmed" for tx in sent)
    for account, cum in tree.values:
        assert distributor.functions.claimed(Web3.to_checksum_address(account)).call() == cum
    assert relay_claims(eng, 0) == []  # nothing left: no transaction

    # the CLI: status lists the epoch, audit recomputes the root from the chain alone and agrees
    from typer.testing import CliRunner

    from cairn.cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["epoch", "status", "--database-url", sqlite_url])
    assert res.exit_code == 0 and "accepted" in res.output and (computed.root or "") in res.output
    res = runner.invoke(
        app,
        ["audit", "--epoch", "0", "--rpc-url", anvil.url, "--deployment", str(tmp_path / "deployment.json"),
         "--policy", str(tmp_path / "policy.json"), "--artifacts", str(tmp_path / "data"), "--no-bytecode",
         "--format", "json", "--no-save"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)["epochs"][0]
    assert shown["ok"] and shown["status"] == "accepted"
    assert shown["root"] == shown["recomputed_root"] == computed.root  # on chain and recomputed


def test_close_waits_for_the_nodes_finalized_block(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    """With `auto` finality (the CLI's default) an epoch closes only once its end block is at or below the
    node's `finalized` block — the rule the indexer follows — not after a fixed depth (anvil: head - 64)."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=EPOCH_LENGTH, challenge_delay=DELAY,
                     out=tmp_path / "deployment.json")  # fmt: skip
    eng = EpochLifecycle(engine=make_engine(sqlite_url), w3=w3, deployment=dep, policy=load_policy("v1"),
                      data_dir=tmp_path / "data", publisher_key=ANVIL_DEV_KEYS[0], confirmations=0,
                      finality="auto", source="chain")  # fmt: skip
    anvil.rpc("evm_increaseTime", [EPOCH_LENGTH])
    anvil.rpc("evm_mine", [])
    end = end_block(w3, dep, 0)
    assert end is not None
    finalized = int(w3.eth.get_block("finalized")["number"])
    with pytest.raises(EpochNotReadyError, match="more final blocks") as info:
        eng.close(0)
    assert f"final only up to block {finalized}" in str(info.value)
    head = int(w3.eth.block_number)
    anvil.rpc("anvil_mine", [hex(end + 64 - head)])  # anvil: finalized = head - 64, now exactly the end block
    assert int(w3.eth.get_block("finalized")["number"]) >= end
    assert eng.close(0).end_block == end
    with pytest.raises(InvalidInputError, match="finality must be one of"):
        EpochLifecycle(engine=make_engine(sqlite_url), w3=w3, deployment=dep, policy=load_policy("v1"),
                    data_dir=tmp_path / "data", finality="soon", migrate=False)  # fmt: skip
