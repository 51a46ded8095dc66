"""The app's lifespan: the indexer running in-process, concurrent relays, and `cairn api` start-up errors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from fastapi.testclient import TestClient
from test_api_relay import relayer_nonce, signed_body
from test_api_stack import Stack, deploy
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from cairn.devchain import Anvil
from cairn.settings import ANVIL_DEV_KEYS


def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    """Poll `predicate` until it returns something truthy (the condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_in_process_indexer_follows_the_chain(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    dep = deploy(w3, admin, tmp_path)
    settings = ApiSettings(
        rpc_urls=[anvil.url],
        database_url=database_url,
        deployment_file=tmp_path / "deployment.json",
        data_dir=tmp_path / "data",
        api_run_indexer=True,
    )
    with TestClient(create_app(settings)) as client:
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        health = wait_for(lambda: (h := client.get("/health").json())["indexer_lag"] == 0 and h)
        assert health["indexer"]["in_process"] is True and health["indexer"]["running"] is True
        # a relayed registration shows up without any external indexer
        owner = Account.create()
        body = signed_body(stack, owner, "in-process")
        assert client.post("/v1/datasets", json=body).status_code == 202
        found = wait_for(
            lambda: (r := client.get(f"/v1/datasets/{body['content_hash']}")).status_code == 200 and r
        )
        assert found.json()["owner"] == owner.address
    # shutdown stopped the indexer thread
    assert not any(t.name == "cairn-indexer" and t.is_alive() for t in threading.enumerate())


def test_concurrent_identical_relays_send_one_transaction(anvil: Anvil, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    dep = deploy(w3, admin, tmp_path)
    settings = ApiSettings(
        rpc_urls=[anvil.url],
        database_url=f"sqlite:///{tmp_path}/c.db",
        deployment_file=tmp_path / "deployment.json",
    )
    with TestClient(create_app(settings)) as client:
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        body = signed_body(stack, Account.create(), "concurrent")
        before = relayer_nonce(stack)
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(client.post("/v1/datasets", json=body)))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [r.status_code for r in results] == [202] * 6
        assert len({r.json()["tx_hash"] for r in results}) == 1
        assert sum(not r.json()["duplicate"] for r in results) == 1
        assert relayer_nonce(stack) == before + 1


def test_cairn_api_refuses_a_missing_deployment_with_one_line(tmp_path: Path, anvil: Anvil) -> None:
    env = {
        "CAIRN_RPC_URLS": anvil.url,
        "CAIRN_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "CAIRN_DEPLOYMENT_FILE": str(tmp_path / "missing.json"),
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "300",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "api", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line, no traceback
    assert proc.stderr.startswith("error: deployment file") and "not found" in proc.stderr
