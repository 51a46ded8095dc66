"""The API refuses a chain that is not the deployment's. The stack the other API tests share lives in
tests/support/api_stack.py (fixtures `stack` and `sqlite_stack` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from support.api_stack import deploy
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from cairn.cli.devchain import start_anvil
from cairn.core.errors import WrongChainError
from cairn.core.settings import ANVIL_DEV_KEYS


def test_wrong_chain_is_one_clear_error(tmp_path: Path) -> None:
    with start_anvil(chain_id=31338) as other, start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        deploy(w3, Account.from_key(ANVIL_DEV_KEYS[0]), tmp_path)
        settings = ApiSettings(
            rpc_urls=[other.url],
            database_url=f"sqlite:///{tmp_path}/x.db",
            deployment_file=tmp_path / "deployment.json",
        )
        with (
            pytest.raises(WrongChainError, match="is chain 31338 but the deployment file is for chain 31337"),
            TestClient(create_app(settings)),
        ):
            pass
