"""Bytecode verification on real anvil: the honest deployment (`cairn deploy`) verifies as an exact match
(immutables masked, metadata equal); a contract deployed from modified source and a deployment file whose
recorded constructor arguments are not the deployment transaction's are each detected with their own
message. Sources are compiled with py-solc-x over the npm solc wrapper (`scripts/solc-wrap.cjs`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from eth_abi.abi import encode
from typer.testing import CliRunner
from web3 import Web3

from backend.audit.bytecode import compile_sources, verify_bytecode
from cairn.cli.app import app
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core.deployment import load_deployment
from cairn.core.settings import ANVIL_DEV_KEYS, REPO_ROOT


def test_honest_deployment_verifies_and_wrong_constructor_arguments_are_detected(
    anvil: Anvil, tmp_path: Path
) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep_file = tmp_path / "deployment.json"
    deploy_all(anvil.url, ANVIL_DEV_KEYS[0], challenge_delay=600, out=dep_file)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(
        app,
        [
            "audit",
            "--rpc-url",
            anvil.url,
            "--deployment",
            str(dep_file),
            "--no-epochs",
            "--format",
            "json",
            "--output",
            str(out),
            "--no-save",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["ok"] and report["bytecode"]["ok"]
    assert {c["name"]: (c["ok"], c["match"]) for c in report["contracts"]} == {
        n: (True, "exact")
        for n in (
            "RewardToken",
            "RewardDistributor",
            "ContributionRegistry",
            "ModelRegistry",
            "PaymentRouter",
        )
    }

    # the file claims a one-day challenge delay; the deployment transaction says 600 s
    raw = json.loads(dep_file.read_text())
    raw["contracts"]["RewardDistributor"]["constructor_args"][-1] = 86_400
    dep_file.write_text(json.dumps(raw))
    result = verify_bytecode(w3, load_deployment(dep_file))
    bad = {v.name: v for v in result.contracts if not v.ok}
    assert list(bad) == ["RewardDistributor"] and not result.ok
    assert bad["RewardDistributor"].problems == [
        "RewardDistributor: wrong constructor arguments: the deployment transaction has challengeDelay_=600 "
        "(file says 86400)"
    ]


def test_contract_deployed_from_modified_source_is_detected(anvil: Anvil, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep_file = tmp_path / "deployment.json"
    dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], out=dep_file)
    assert dep.compiler is not None
    # a copy of the sources where ModelRegistry has one more function
    root = tmp_path / "fork"
    shutil.copytree(REPO_ROOT / "contracts" / "src", root / "contracts" / "src")
    os.symlink(REPO_ROOT / "node_modules", root / "node_modules")
    src = root / "contracts" / "src" / "ModelRegistry.sol"
    text = src.read_text()
    marker = "    /// @param admin Holder"
    assert marker in text
    backdoor = "    function backdoor() external pure returns (uint256) {\n        return 42;\n    }\n\n"
    src.write_text(text.replace(marker, backdoor + marker, 1))
    compiled, _, _ = compile_sources(dep.compiler.settings, root)
    forked = compiled["ModelRegistry"]
    info = dep.contracts["ModelRegistry"]
    assert info.constructor_args is not None
    args = encode(
        ["address", "address", "uint64", "uint64"],
        [Web3.to_checksum_address(str(a)) if i < 2 else a for i, a in enumerate(info.constructor_args)],
    )
    tx = w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "data": "0x" + (forked.creation + args).hex(), "gas": 10_000_000}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    raw = json.loads(dep_file.read_text())
    raw["contracts"]["ModelRegistry"]["address"] = receipt["contractAddress"]
    raw["contracts"]["ModelRegistry"]["tx_hash"] = "0x" + bytes(tx).hex()
    dep_file.write_text(json.dumps(raw))

    result = verify_bytecode(w3, load_deployment(dep_file))
    verdicts = {v.name: v for v in result.contracts}
    assert [n for n, v in verdicts.items() if not v.ok] == ["ModelRegistry"]
    problems = verdicts["ModelRegistry"].problems
    assert (
        len(problems) == 1
        and problems[0].startswith(f"ModelRegistry: runtime code at {receipt['contractAddress']} is ")
        and problems[0].endswith("deployed from other source or settings")
    ), problems
    assert verdicts["ModelRegistry"].match == "mismatch"
    res = CliRunner().invoke(
        app,
        [
            "audit",
            "--rpc-url",
            anvil.url,
            "--deployment",
            str(dep_file),
            "--no-epochs",
            "--format",
            "html",
            "--output",
            str(tmp_path / "r.html"),
            "--no-save",
        ],
    )
    assert res.exit_code == 1
    page = (tmp_path / "r.html").read_text()
    assert "FAILED" in page and "ModelRegistry: runtime code at" in page
