"""The treasury outside the local chain (real anvil, chain id 1337): policy v1's placeholder, a development
account or an address other than the PaymentRouter's fee recipient stops compute/publish with one line
(exit 2); the deployment's fee recipient as the policy treasury is accepted. On the local chain the
placeholder is fine (every other lifecycle test runs with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from backend import migrations
from backend.rewards.lifecycle import EpochLifecycle
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import start_anvil
from cairn.core.db import make_engine
from cairn.core.errors import EpochNotReadyError, TreasuryError
from cairn.core.policy import POLICY_DIR, load_policy
from cairn.core.settings import ANVIL_DEV_KEYS

CHAIN = 1337
TREASURY = "0x7ea5000000000000000000000000000000c0ffee"
OPERATOR_KEY = "0x" + "5e" * 32  # not a development key: accepted as publisher on chain 1337


def _policy(tmp_path: Path, treasury: str) -> Path:
    raw = json.loads((POLICY_DIR / "v1.json").read_text())
    raw["treasury"] = treasury
    path = tmp_path / f"policy-{treasury[-6:]}.json"
    path.write_text(json.dumps(raw))
    return path


def test_treasury_must_be_the_deployments_fee_recipient_off_the_local_chain(
    tmp_path: Path, sqlite_url: str
) -> None:
    with start_anvil(chain_id=CHAIN) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.url))
        dep = deploy_all(
            chain.url,
            ANVIL_DEV_KEYS[0],
            fee_recipient=Web3.to_checksum_address(TREASURY),
            out=tmp_path / "deployment.json",
        )
        engine = make_engine(sqlite_url)
        migrations.upgrade(engine)

        def eng(policy: Path | str) -> EpochLifecycle:
            return EpochLifecycle(engine=engine, w3=w3, deployment=dep, policy=load_policy(policy),
                               data_dir=tmp_path / "data", publisher_key=OPERATOR_KEY, confirmations=0,
                               finality="confirmations",
                               source="chain", migrate=False)  # fmt: skip

        with pytest.raises(TreasuryError, match=r"0x0+c41a is a placeholder; on chain 1337"):
            eng("v1").publish(0)
        dev = w3.eth.account.from_key(ANVIL_DEV_KEYS[3]).address.lower()
        with pytest.raises(TreasuryError, match="is a placeholder"):
            eng(_policy(tmp_path, dev)).compute(0)
        other = "0x" + "ab" * 20
        with pytest.raises(
            TreasuryError, match=f"{other} is not the PaymentRouter's fee recipient {TREASURY}"
        ):
            eng(_policy(tmp_path, other)).compute(0)
        with pytest.raises(EpochNotReadyError, match="has not ended"):  # past the treasury check
            eng(_policy(tmp_path, TREASURY)).publish(0)

        env = dict(os.environ, CAIRN_DATA_DIR=str(tmp_path / "data"), CAIRN_PUBLISHER_KEY=OPERATOR_KEY)
        res = subprocess.run(
            [sys.executable, "-m", "cairn.cli", "epoch", "publish", "0", "--rpc-url", chain.url, "--source",
             "chain", "--database-url", sqlite_url, "--deployment", str(tmp_path / "deployment.json")],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert "policy treasury 0x000000000000000000000000000000000000c41a is a placeholder" in lines[0]
        engine.dispose()
