"""The agent stack (issue 11): anvil, every contract, two datasets registered and attested, the indexer's
mirror, a model trained by `cairn train` and priced PRICE, the real API on uvicorn with its settler and
channel claimer, and a payer funded with RewardToken. Used by tests/integration/test_agent_loop.py and the
web app's "try the model" test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from backend.inference.training import DEFAULT_MODEL_NAME
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import start_anvil
from cairn.core.content import ContentStore, content_hash
from cairn.core.db import make_engine
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS
from support.api_stack import index_to
from support.uvicorn_thread import serve
from support.x402_stack import fund_payers

ROOT = Path(__file__).resolve().parents[2]
NAME = DEFAULT_MODEL_NAME
PRICE = 25 * 10**15  # 0.025 CAIRN per completion
EPOCH_LENGTH = 3600
SCORES = (9000, 7000, 8000)


@dataclass
class Loop:
    w3: Web3
    dep: Any
    settings: ApiSettings
    tmp: Path
    url: str
    payer: LocalAccount
    owners: dict[str, str]  # dataset id -> owner (lowercase)
    report: dict[str, Any]

    @property
    def token(self) -> str:
        return str(self.dep.address("RewardToken"))

    @property
    def network(self) -> str:
        return f"eip155:{self.w3.eth.chain_id}"


def send(w3: Web3, key: str, fn: Any) -> None:
    acct = Account.from_key(key)
    tx = fn.build_transaction(
        {
            "from": acct.address,
            "nonce": w3.eth.get_transaction_count(acct.address),
            "gas": fn.estimate_gas({"from": acct.address}, "pending"),
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1


@contextmanager
def agent_stack(tmp: Path) -> Iterator[Loop]:
    """The stack above in `tmp`: two attested datasets (README.md, docs/ARCHITECTURE.md) owned by dev keys 5
    and 6, `cairn train` run on them, the model priced PRICE, dev key 6 funded with tokens as the payer."""
    with start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        dep = deploy_all(anvil.url, ANVIL_DEV_KEYS[0], epoch_length=EPOCH_LENGTH, challenge_delay=5,
                         out=tmp / "deployment.json")  # fmt: skip
        registry = dep.contract(w3, "ContributionRegistry")
        role = registry.functions.VALIDATOR_ROLE().call()
        validator3 = Account.from_key(ANVIL_DEV_KEYS[7]).address
        send(w3, ANVIL_DEV_KEYS[0], registry.functions.grantRole(role, validator3))
        settings = ApiSettings(
            rpc_urls=[anvil.url], database_url=f"sqlite:///{tmp}/cairn.db",
            deployment_file=tmp / "deployment.json", data_dir=tmp / "data", confirmations=0,
            api_prices={NAME: PRICE}, api_x402_settle_interval_s=0.5,
            api_channel_claim_min_requests=3, api_channel_claim_interval_s=0.5,
        )  # fmt: skip
        content = ContentStore(settings.content_dir, max_bytes=settings.content_max_bytes)
        owners: dict[str, str] = {}
        for key_index, rel in ((5, "README.md"), (6, "docs/ARCHITECTURE.md")):
            data = (ROOT / rel).read_bytes()
            digest = content_hash(data)
            owner = Account.from_key(ANVIL_DEV_KEYS[key_index])
            for step in dataset_calls(
                registry, owner.address, digest, len(data), 1, b"\x01" * 32, "file://x"
            ):
                send(w3, ANVIL_DEV_KEYS[key_index], step)
            for v, score in zip((0, 2, 7), SCORES, strict=True):
                send(w3, ANVIL_DEV_KEYS[v], registry.functions.attest(digest, score))
            content.put_file(digest, ROOT / rel)
            owners["0x" + digest.hex()] = owner.address.lower()
        engine = make_engine(settings.database_url)
        index_to(settings, dep, engine, w3.eth.block_number)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update(
            PYTHONPATH=str(ROOT), CAIRN_RPC_URLS=anvil.url, CAIRN_DATABASE_URL=settings.database_url,
            CAIRN_DEPLOYMENT_FILE=str(tmp / "deployment.json"), CAIRN_DATA_DIR=str(tmp / "data"),
            CAIRN_CONFIRMATIONS="0",
        )  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "cairn.cli", "train", "--json"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        [payer] = fund_payers(w3, dep)[:1]
        try:
            with serve(create_app(settings, run_indexer=False)) as url:
                yield Loop(w3, dep, settings, tmp, url, payer, owners, json.loads(done.stdout))
        finally:
            engine.dispose()
