"""A revoked root does not stall the pipeline (security issue 10, finding 5, third bullet), on real anvil, the
contracts, the indexer's SQLite mirror and the API: the lifecycle proposes epoch 0, the guardian revokes the
root, `publish` sees the revocation on chain, reopens the epoch, recomputes it (the same allocation: the
same root) and proposes it again under a new outbox key; it is accepted and claimed. The API shows each
state, and the re-proposed root (equal to the revoked one) is not shown as revoked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.api_stack import index_to
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from backend.rewards.chainsource import end_block
from backend.rewards.lifecycle import ACCEPTED, PROPOSED, EpochLifecycle
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core import merkle
from cairn.core.db import make_engine
from cairn.core.errors import ConflictError
from cairn.core.policy import POLICY_DIR, load_policy
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS

EPOCH_LENGTH = 1000
DELAY = 600
ADMIN, GUARDIAN, OWNER = ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[4], ANVIL_DEV_KEYS[5]
PROPOSALS = "key LIKE 'propose:%'"


def _send(w3: Web3, key: str, fn: Any) -> dict[str, Any]:
    acct = Account.from_key(key)
    tx = fn.build_transaction({"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address)})
    receipt = dict(
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
        )
    )
    assert receipt["status"] == 1
    return receipt


def _index(settings: ApiSettings, dep: Any, engine: Any, w3: Web3) -> None:
    index_to(settings, dep, engine, w3.eth.block_number)


def _epoch(api: TestClient) -> dict[str, Any]:
    r = api.get("/v1/epochs/0")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_revoked_root_is_recomputed_proposed_again_accepted_and_claimed(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep = deploy_all(anvil.url, ADMIN, epoch_length=EPOCH_LENGTH, challenge_delay=DELAY,
                     out=tmp_path / "deployment.json")  # fmt: skip
    raw = json.loads((POLICY_DIR / "v1.json").read_text())
    raw["attestation"]["quorum"] = 2  # the dev deployment's validators: dev accounts 0 and 2
    (tmp_path / "policy.json").write_text(json.dumps(raw))
    policy = load_policy(tmp_path / "policy.json")
    registry, dist = dep.contract(w3, "ContributionRegistry"), dep.contract(w3, "RewardDistributor")
    owner = Account.from_key(OWNER).address
    cid = b"\x42" * 32
    commit, reveal = dataset_calls(registry, owner, cid, 1234, 1, b"\x01" * 32, "ipfs://data")
    _send(w3, OWNER, commit)
    anvil.rpc("evm_mine", [])  # the reveal needs a commitment from an earlier block
    _send(w3, OWNER, reveal)
    _send(w3, ADMIN, registry.functions.attest(cid, 9000))
    _send(w3, ANVIL_DEV_KEYS[2], registry.functions.attest(cid, 7000))
    _send(w3, ANVIL_DEV_KEYS[7], dist.functions.fundEmission(0))
    anvil.rpc("evm_increaseTime", [EPOCH_LENGTH])
    anvil.rpc("evm_mine", [])

    engine = make_engine(sqlite_url)
    settings = ApiSettings(
        rpc_urls=[anvil.url], database_url=sqlite_url, deployment_file=tmp_path / "deployment.json",
        data_dir=tmp_path / "data", confirmations=0, api_head_max_age_s=0,
    )  # fmt: skip
    eng = EpochLifecycle(
        engine=engine, w3=w3, deployment=dep, policy=policy, data_dir=tmp_path / "data", publisher_key=ADMIN,
        confirmations=0, finality="confirmations", source="db",
    )  # fmt: skip
    _index(settings, dep, engine, w3)
    assert (end_block(w3, dep, 0) or 0) > 0

    first = eng.publish(0)
    assert first.status == PROPOSED and first.root is not None
    with TestClient(create_app(settings, run_indexer=False)) as api:
        _index(settings, dep, engine, w3)
        shown = _epoch(api)
        assert shown["status"] == "pending" and shown["root"] == first.root
        assert [r["status"] for r in shown["roots"]] == ["pending"]

        _send(w3, GUARDIAN, dist.functions.revokeRoot())  # the guardian revokes it
        _index(settings, dep, engine, w3)
        shown = _epoch(api)
        assert shown["status"] == "revoked" and shown["root"] is None
        assert [r["status"] for r in shown["roots"]] == ["revoked"]
        assert shown["engine"]["status"] == "proposed"  # the engine has not looked yet
        with pytest.raises(ConflictError, match="publish 0"):
            eng.finalize(0)

        again = eng.publish(0)  # sees the revocation, reopens, recomputes, proposes under a new key
        assert again.status == PROPOSED and again.root == first.root  # same inputs: the same allocation
        assert again.allocation_file == first.allocation_file
        with engine.connect() as conn:
            keys = dict(
                conn.execute(text("SELECT key, status FROM outbox_tx WHERE key LIKE 'propose:%'")).all()
            )
        base = f"propose:{dep.chain_id}:{dist.address.lower()}:0"
        assert keys == {base: "confirmed", f"{base}#1": "confirmed"}
        assert eng.publish(0).status == PROPOSED  # idempotent: still pending, nothing new sent
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT COUNT(*) FROM outbox_tx WHERE key LIKE 'propose:%'")).scalar() == 2
            )

        _index(settings, dep, engine, w3)
        shown = _epoch(api)
        assert shown["status"] == "pending" and shown["root"] == first.root  # the same root, not revoked
        assert [r["status"] for r in shown["roots"]] == ["revoked", "pending"]
        assert shown["engine"]["status"] == "proposed" and shown["engine"]["root"] == first.root

        anvil.rpc("evm_increaseTime", [DELAY + 1])
        anvil.rpc("evm_mine", [])
        assert eng.finalize(0).status == ACCEPTED
        _index(settings, dep, engine, w3)
        shown = _epoch(api)
        assert shown["status"] == "accepted" and shown["root"] == first.root
        assert [r["status"] for r in shown["roots"]] == ["revoked", "accepted"]

        p = api.get(f"/v1/epochs/0/proofs/{owner}").json()
        chain_root = "0x" + bytes(dist.functions.root().call()[0]).hex()
        assert p["root"] == chain_root and p["claimable_now"] is True
        amount = int(p["cumulative_amount"])
        assert amount > 0 and merkle.verify(chain_root, (owner, amount), p["proof"])
        token = dep.contract(w3, "RewardToken")
        before = token.functions.balanceOf(owner).call()
        _send(w3, OWNER, dist.functions.claim(amount, p["proof"]))
        assert token.functions.balanceOf(owner).call() == before + amount
        _index(settings, dep, engine, w3)
        rewards = api.get(f"/v1/accounts/{owner}").json()["rewards"]
        assert rewards["cumulative"] == str(amount) and rewards["claimed"] == str(amount)
        assert rewards["claimable"] == "0" and rewards["epoch"] == 0
    engine.dispose()
