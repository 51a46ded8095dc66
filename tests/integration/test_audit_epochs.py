"""`cairn audit` on real anvil, the real contracts and the real epoch lifecycle (its SQLite mirror filled by
the real indexer), each failure detected with its own message:

* epoch 0 published honestly verifies (pending, then accepted and claimed); a tampered mirror database changes
  nothing (the audit reads the chain); a tampered allocation file and an unexpected policy are refused;
* epoch 1 computed by the engine from the tampered mirror is a root for a different allocation: the
  watchtower (`cairn audit --watch --once`, guardian key) revokes it inside the challenge window; without a
  key it exits 3; the engine re-proposes the honest root, which verifies, and the audit knows the revoked one;
* epoch 2 proposed with another policy hash than its allocation file's policy: wrong policy;
* a chain whose id is not the deployment file's is refused; the API serves the latest report.
"""

from __future__ import annotations

import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.api_stack import index_to
from typer.testing import CliRunner
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from backend.audit.artifacts import Artifacts
from backend.audit.watch import EXIT_UNREVOKED, Watchtower
from backend.rewards.chainsource import end_block
from backend.rewards.lifecycle import ACCEPTED, PROPOSED, EpochLifecycle
from backend.rewards.publication import read_allocation_file
from cairn.cli.app import app
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core.db import make_engine
from cairn.core.merkle import MerkleTree, keccak256
from cairn.core.policy import POLICY_DIR, load_policy
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS

EPOCH_LENGTH = 1000
DELAY = 600
ADMIN, GUARDIAN, OWNER, ATTACKER = ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[4], ANVIL_DEV_KEYS[5], ANVIL_DEV_KEYS[8]


def _send(w3: Web3, key: str, fn: Any) -> dict[str, Any]:
    acct = Account.from_key(key)
    tx = fn.build_transaction({"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address)})
    signed = acct.sign_transaction(tx)
    receipt = dict(w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction)))
    assert receipt["status"] == 1
    return receipt


class Auditor:
    def __init__(self, anvil: Anvil, deployment: Path, data: Path) -> None:
        self.anvil, self.deployment, self.data = anvil, deployment, data

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
        out = self.data.parent / "report.json"
        res = CliRunner().invoke(
            app,
            [
                "audit",
                "--rpc-url",
                self.anvil.url,
                "--deployment",
                str(self.deployment),
                "--no-bytecode",
                "--format",
                "json",
                "--output",
                str(out),
                "--data-dir",
                str(self.data.parent / "auditor"),
                *args,
            ],
            env=env,
        )
        report = json.loads(out.read_text()) if out.exists() and res.exit_code in (0, 1) else {}
        out.unlink(missing_ok=True)
        return res.exit_code, report, res.output

    @staticmethod
    def problems(report: dict[str, Any]) -> list[str]:
        return [p for e in report["epochs"] for p in e["problems"]] + report["conservation"]["problems"]


def _advance(anvil: Anvil, seconds: int) -> None:
    anvil.rpc("evm_increaseTime", [seconds])
    anvil.rpc("evm_mine", [])


def _to_epoch_end(anvil: Anvil, w3: Web3, genesis: int, epoch: int) -> None:
    now = int(w3.eth.get_block("latest")["timestamp"])
    _advance(anvil, genesis + (epoch + 1) * EPOCH_LENGTH - now + 1)


def test_audit_detects_each_wrong_epoch_and_the_watchtower_revokes(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep_file = tmp_path / "deployment.json"
    dep = deploy_all(anvil.url, ADMIN, epoch_length=EPOCH_LENGTH, challenge_delay=DELAY, out=dep_file)
    raw = json.loads((POLICY_DIR / "v1.json").read_text())
    raw["attestation"]["quorum"] = 2  # the dev deployment's validators: dev accounts 0 and 2
    (tmp_path / "policy.json").write_text(json.dumps(raw))
    policy = load_policy(tmp_path / "policy.json")
    registry, dist = dep.contract(w3, "ContributionRegistry"), dep.contract(w3, "RewardDistributor")
    owner, attacker = Account.from_key(OWNER).address, Account.from_key(ATTACKER).address
    cid = b"\x42" * 32
    commit, reveal = dataset_calls(registry, owner, cid, 1234, 1, b"\x01" * 32, "ipfs://data")
    _send(w3, OWNER, commit)
    anvil.rpc("evm_mine", [])
    _send(w3, OWNER, reveal)
    _send(w3, ADMIN, registry.functions.attest(cid, 9000))
    _send(w3, ANVIL_DEV_KEYS[2], registry.functions.attest(cid, 7000))
    _send(w3, ANVIL_DEV_KEYS[7], dist.functions.fundEmission(0))
    _to_epoch_end(anvil, w3, dep.epoch.genesis, 0)

    data = tmp_path / "data"
    engine = make_engine(sqlite_url)
    settings = ApiSettings(
        rpc_urls=[anvil.url],
        database_url=sqlite_url,
        deployment_file=dep_file,
        data_dir=tmp_path / "auditor",
        confirmations=0,
    )
    eng = EpochLifecycle(
        engine=engine,
        w3=w3,
        deployment=dep,
        policy=policy,
        data_dir=data,
        publisher_key=ADMIN,
        confirmations=0,
        finality="confirmations",
        source="db",
    )
    index_to(settings, dep, engine, w3.eth.block_number)
    first = eng.publish(0)
    assert first.status == PROPOSED
    auditor = Auditor(anvil, dep_file, data)
    artifacts = ["--artifacts", str(data)]

    # epoch 0, pending: verifies
    code, report, out = auditor.run("--epoch", "0", *artifacts)
    assert code == 0, out
    e0 = report["epochs"][0]
    assert e0["status"] == "pending" and e0["root"] == e0["recomputed_root"] == first.root and report["ok"]

    # a tampered mirror database: the audit does not read it, the verdict does not move
    with engine.begin() as conn:
        conn.execute(text("UPDATE ev_dataset_registered SET owner = :a"), {"a": attacker.lower()})
        conn.execute(text("UPDATE ev_attested SET score = 1"))
    code, again, out = auditor.run("--epoch", "0", *artifacts, env={"CAIRN_DATABASE_URL": sqlite_url})
    assert code == 0, out
    assert again["epochs"] == report["epochs"]

    # accepted, then claimed: the claim matches its entitlement
    _advance(anvil, DELAY + 1)
    assert eng.finalize(0).status == ACCEPTED
    tree = MerkleTree.load(read_allocation_file(data, first.allocation_file or "")["tree"])
    amount, proof = tree.proof_for(owner)
    _send(w3, OWNER, dist.functions.claim(amount, [bytes.fromhex(p[2:]) for p in proof]))
    code, report, out = auditor.run("--epoch", "0", *artifacts)
    assert code == 0, out
    assert report["epochs"][0]["status"] == "accepted"
    assert any("claims: 1 checked" in c for c in report["conservation"]["checks"])

    # a tampered allocation file (same name, other bytes) is refused
    tampered = tmp_path / "tampered"
    shutil.copytree(data, tampered)
    path = tampered / "rewards" / (first.allocation_file or "")
    path.write_bytes(path.read_bytes().replace(b'"epoch":0', b'"epoch":7'))
    code, report, out = auditor.run("--epoch", "0", "--artifacts", str(tampered))
    assert code == 1
    assert any("is tampered: its bytes hash to" in p for p in auditor.problems(report)), out

    # the same files from a web server (real HTTP): verifies
    served = tmp_path / "served"
    served.mkdir()
    (served / "allocations").symlink_to(data / "rewards")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, report, out = auditor.run(
            "--epoch", "0", "--artifacts", f"http://127.0.0.1:{server.server_port}"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0 and report["epochs"][0]["ok"], out

    # no artifacts at all: the file cannot be checked, which fails too
    code, report, out = auditor.run("--epoch", "0")
    assert code == 1 and any("not found in" in p for p in auditor.problems(report)), out

    # the auditor expects v1 (quorum 1), the root was published under the quorum-2 policy
    code, report, out = auditor.run("--epoch", "0", *artifacts, "--policy", "v1")
    assert code == 1
    assert any("wrong policy: published under policy" in p for p in auditor.problems(report)), out

    # epoch 1: the engine computes from the tampered mirror (the attacker owns the dataset there)
    _send(w3, ANVIL_DEV_KEYS[7], dist.functions.fundEmission(1))
    _to_epoch_end(anvil, w3, dep.epoch.genesis, 1)
    index_to(settings, dep, engine, w3.eth.block_number)
    wrong = eng.publish(1)
    assert wrong.status == PROPOSED
    code, report, out = auditor.run("--epoch", "1", *artifacts)
    assert code == 1
    assert any("root published for a different allocation" in p for p in auditor.problems(report)), out

    # the watchtower without a guardian key: alert, exit status 3 for its supervisor
    res = CliRunner().invoke(
        app, ["audit", "--watch", "--once", "--rpc-url", anvil.url, "--deployment", str(dep_file), *artifacts]
    )
    assert res.exit_code == EXIT_UNREVOKED, res.output
    # with the guardian key: revoked inside the challenge window
    res = CliRunner().invoke(
        app,
        [
            "audit",
            "--watch",
            "--once",
            "--rpc-url",
            anvil.url,
            "--deployment",
            str(dep_file),
            *artifacts,
            "--guardian-key-env",
            "AUDIT_GUARDIAN_KEY",
            "--outbox-db",
            str(tmp_path / "tower.db"),
        ],
        env={"AUDIT_GUARDIAN_KEY": GUARDIAN},
    )
    assert res.exit_code == 0, res.output
    pending = dist.functions.pendingRoot().call()
    assert pending[2] == 0  # nothing pending: revoked
    revoked = dist.events.RootRevoked().get_logs(from_block=dep.start_block)
    assert [("0x" + bytes(lg["args"]["root"]).hex(), lg["args"]["guardian"]) for lg in revoked] == [
        (wrong.root, Account.from_key(GUARDIAN).address)
    ]
    assert int(w3.eth.get_block("latest")["timestamp"]) < wrong_valid_at(dist, dep, wrong.root or "")
    tower_db = make_engine(f"sqlite:///{tmp_path / 'tower.db'}")
    with tower_db.connect() as conn:  # the revocation went through the watchtower's own outbox
        sent = conn.execute(text("SELECT key, status, mined_hash FROM outbox_tx")).all()
    assert [(k.split(":")[0], s) for k, s, _ in sent] == [("revoke", "confirmed")]
    assert sent[0][2] == "0x" + bytes(revoked[0]["transactionHash"]).hex()
    tower_db.dispose()

    # the mirror repaired, the engine re-proposes the honest root: it verifies; the audit knows both
    with engine.begin() as conn:
        conn.execute(text("UPDATE ev_dataset_registered SET owner = :a"), {"a": owner.lower()})
        conn.execute(
            text("UPDATE ev_attested SET score = CASE WHEN validator = :v THEN 9000 ELSE 7000 END"),
            {"v": Account.from_key(ADMIN).address.lower()},
        )
    honest = eng.publish(1)
    assert honest.status == PROPOSED and honest.root != wrong.root
    tower = Watchtower(w3, dep, artifacts=Artifacts(str(data)), guardian_key=GUARDIAN)
    assert tower.look() is None and not tower.findings  # the honest root verifies: nothing revoked
    code, report, out = auditor.run("--epoch", "1", *artifacts)
    assert code == 0, out
    e1 = report["epochs"][0]
    assert e1["root"] == honest.root and [r["status"] for r in e1["roots"]] == ["revoked", "pending"]
    assert any("was revoked" in n for n in e1["notes"])

    # epoch 2 proposed with another policy hash than its file's policy: wrong policy, revoked by the tower
    _advance(anvil, DELAY + 1)
    assert eng.finalize(1).status == ACCEPTED
    _to_epoch_end(anvil, w3, dep.epoch.genesis, 2)
    index_to(settings, dep, engine, w3.eth.block_number)
    row = eng.compute(2)
    other = keccak256(b"another policy")
    _send(
        w3,
        ADMIN,
        dist.functions.proposeRoot(
            bytes.fromhex((row.root or "")[2:]), 2, other, int(row.total_cumulative or 0), row.uri or ""
        ),
    )
    code, report, out = auditor.run("--epoch", "2", *artifacts)
    assert code == 1
    assert any(
        f"wrong policy: RootProposed recorded policyHash 0x{other.hex()}" in p
        for p in auditor.problems(report)
    ), out
    finding = tower.look()
    assert finding is not None and finding.revoked_tx is not None and finding.epoch == 2
    sample = tower.metrics.registry.get_sample_value
    assert sample("cairn_audit_mismatches_total") == sample("cairn_audit_revocations_total") == 1.0
    assert sample("cairn_audit_roots_checked_total") == 2.0 and sample("cairn_audit_ok") == 0.0
    assert dist.functions.pendingRoot().call()[2] == 0

    # the whole history: every live root verifies, revoked ones are known; the report is served by the API
    code, report, out = auditor.run("--all", *artifacts)
    assert code == 0, out
    assert [(e["epoch"], e["status"]) for e in report["epochs"]] == [
        (0, "accepted"),
        (1, "accepted"),
        (2, "revoked"),
    ]
    with TestClient(create_app(settings, run_indexer=False)) as api:
        served = api.get("/v1/audit/latest")
        assert served.status_code == 200 and served.json()["epochs"] == report["epochs"]
    assert "everything verifies" in (tmp_path / "auditor" / "audit" / "latest.html").read_text()
    table = CliRunner().invoke(
        app, ["audit", "--rpc-url", anvil.url, "--deployment", str(dep_file), "--no-bytecode", "--no-save",
              *artifacts],
    )  # fmt: skip
    assert table.exit_code == 0 and "everything verifies" in table.output and "revoked" in table.output

    # a chain whose id is not the deployment file's is refused
    wrong_chain = json.loads(dep_file.read_text())
    wrong_chain["chain_id"] = 8453
    (tmp_path / "other.json").write_text(json.dumps(wrong_chain))
    res = CliRunner().invoke(
        app, ["audit", "--rpc-url", anvil.url, "--deployment", str(tmp_path / "other.json"), "--no-bytecode"]
    )
    assert res.exit_code != 0 and "is chain 31337 but the deployment file is for chain 8453" in str(
        res.exception or res.output
    )
    assert end_block(w3, dep, 2) is not None
    engine.dispose()


def wrong_valid_at(dist: Any, dep: Any, root: str) -> int:
    logs = dist.events.RootProposed().get_logs(from_block=dep.start_block)
    return next(int(lg["args"]["validAt"]) for lg in logs if "0x" + bytes(lg["args"]["root"]).hex() == root)
