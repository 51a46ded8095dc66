"""The app's lifespan: the indexer running in-process, concurrent relays, and `cairn api` start-up errors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from support.api_stack import Stack, assert_problem, deploy_on, local_settings, relayer_nonce, signed_body
from web3.exceptions import TransactionNotFound

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from backend.models import OutboxTx, RelayRecord
from cairn.cli.devchain import Anvil, start_anvil
from cairn.core.eip712 import Dataset
from cairn.core.settings import ANVIL_DEV_KEYS


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
    w3, admin, dep = deploy_on(anvil, tmp_path)
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
    w3, admin, dep = deploy_on(anvil, tmp_path)
    settings = local_settings(anvil, tmp_path, "c")
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
        # one relay, one commit (an answer shows the commit or, once it is mined, the one reveal)
        assert len({r.json()["commit_tx_hash"] for r in results}) == 1
        assert len({r.json()["relay_id"] for r in results}) == 1
        assert sum(not r.json()["duplicate"] for r in results) == 1
        assert relayer_nonce(stack) == before + 2  # the commit and its reveal


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


def _prepare_only(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """Stop right after the relay record is committed, as a crash between recording and broadcasting would."""
    relayer = client.app.state.relayer  # type: ignore[attr-defined]
    dataset = Dataset(
        body["content_hash"], body["size"], body["license_id"], body["metadata_hash"], body["uri"]
    )
    record: dict[str, Any] = relayer.prepare_dataset(
        dataset=dataset,
        owner=body["owner"],
        deadline=body["deadline"],
        signature=bytes.fromhex(body["signature"][2:]),
    )
    assert record["status"] == "signed"
    return record


def test_crash_between_record_and_broadcast_is_recovered(anvil: Anvil, tmp_path: Path) -> None:
    w3, admin, dep = deploy_on(anvil, tmp_path)
    settings = local_settings(anvil, tmp_path, "r")
    with TestClient(create_app(settings)) as client:
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        body = signed_body(stack, Account.create(), "crash-recovery")
        before = relayer_nonce(stack)
        record = _prepare_only(client, body)
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(record["tx_hash"])
    # restart: the lifespan broadcasts the recorded bytes, the retry gets the same hash, one tx in total
    with TestClient(create_app(settings)) as client:
        receipt = w3.eth.wait_for_transaction_receipt(record["tx_hash"], timeout=30, poll_latency=0.02)
        assert receipt["status"] == 1
        again = client.post("/v1/datasets", json=body)
        # the recorded commit, then its reveal (sent at start-up once the commit was mined)
        assert again.status_code == 202 and again.json()["commit_tx_hash"] == record["tx_hash"]
        assert again.json()["status"] == "mined" and again.json()["phase"] == "reveal"
        assert relayer_nonce(stack) == before + 2


def test_record_whose_nonce_was_taken_is_dropped_and_relayed_afresh(anvil: Anvil, tmp_path: Path) -> None:
    w3, admin, dep = deploy_on(anvil, tmp_path)
    settings = local_settings(anvil, tmp_path, "d")
    relayer_key = Account.from_key(ANVIL_DEV_KEYS[1])
    with TestClient(create_app(settings)) as client:
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        body = signed_body(stack, Account.create(), "nonce-taken")
        record = _prepare_only(client, body)
    # someone else uses the relayer key's nonce before the restart
    tx = {"to": admin.address, "value": 1, "gas": 21000, "gasPrice": w3.eth.gas_price, "chainId": 31337}
    tx["nonce"] = record["relayer_nonce"]
    w3.eth.send_raw_transaction(relayer_key.sign_transaction(tx).raw_transaction)
    with TestClient(create_app(settings)) as client:
        # the outbox calls a row replaced once its nonce was used without a receipt for PASSED_BLOCKS blocks
        for _ in range(2):
            anvil.rpc("evm_mine", [])
        wait_for(lambda: client.get(f"/v1/relays/{record['relay_id']}").json()["status"] == "replaced")
        fresh = client.post("/v1/datasets", json=body)
        assert fresh.status_code == 202, fresh.text
        assert fresh.json()["tx_hash"] != record["tx_hash"] and fresh.json()["status"] == "mined"
        assert fresh.json()["relay_id"] == record["relay_id"]  # the same relay, carried by a new transaction
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(record["tx_hash"])


def test_node_down_is_503_problem(tmp_path: Path) -> None:
    anvil = start_anvil()
    try:
        deploy_on(anvil, tmp_path)
        settings = local_settings(anvil, tmp_path, "down")
        with TestClient(create_app(settings)) as client:
            assert client.get("/health").status_code == 200
            anvil.stop()
            assert_problem(client.get("/health"), 503, "chain_unreachable", f"RPC {anvil.url} did not answer")
            owner = Account.create().address
            assert_problem(
                client.get("/v1/eip712/register-dataset", params={"owner": owner}),
                503,
                "chain_unreachable",
                "did not answer",
            )
            assert client.get("/metrics").status_code == 200  # metrics still render
    finally:
        anvil.stop()


def test_cors_origins(anvil: Anvil, tmp_path: Path) -> None:
    deploy_on(anvil, tmp_path)
    settings = local_settings(anvil, tmp_path, "cors").model_copy(
        update={"api_cors_origins": "https://wallet.example"}
    )
    with TestClient(create_app(settings)) as client:
        ok = client.options(
            "/v1/datasets",
            headers={"Origin": "https://wallet.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://wallet.example"
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_relayer_without_funds_is_502_and_records_nothing(anvil: Anvil, tmp_path: Path) -> None:
    w3, admin, dep = deploy_on(anvil, tmp_path)
    broke = Account.create()
    settings = local_settings(anvil, tmp_path, "broke").model_copy(
        update={"relayer_key": SecretStr(broke.key.hex())}
    )
    with TestClient(create_app(settings)) as client:
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        body = signed_body(stack, Account.create(), "no-gas")
        assert_problem(client.post("/v1/datasets", json=body), 502, "relay_failed", "the node refused")
        with client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
            assert conn.execute(select(RelayRecord)).fetchall() == []
            assert conn.execute(select(OutboxTx)).fetchall() == []  # the refused row was discarded
        assert w3.eth.get_transaction_count(broke.address) == 0


def test_two_api_processes_on_one_database_relay_a_message_once(anvil: Anvil, tmp_path: Path) -> None:
    w3, admin, dep = deploy_on(anvil, tmp_path)
    settings = local_settings(anvil, tmp_path, "shared")
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=a)
        body = signed_body(stack, Account.create(), "two-processes")
        before = relayer_nonce(stack)
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda c=c: results.append(c.post("/v1/datasets", json=body)))
            for c in (a, b, a, b)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [r.status_code for r in results] == [202] * 4, [r.text for r in results]
        assert len({r.json()["commit_tx_hash"] for r in results}) == 1  # one commit (and one reveal)
        assert relayer_nonce(stack) == before + 2


def test_simultaneous_starts_on_a_fresh_database(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    """`cairn dev` starts the indexer and the API at once: concurrent migrations must not fail a start."""
    deploy_on(anvil, tmp_path)
    settings = local_settings(anvil, tmp_path, "fresh").model_copy(update={"database_url": database_url})
    results: list[Any] = []

    def start() -> None:
        try:
            with TestClient(create_app(settings)) as client:
                results.append(client.get("/health").status_code)
        except Exception as exc:  # collected, asserted below
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [200, 200, 200]


MIGRATE = """
import sys
from pathlib import Path
from backend.api.app import run_migrations
from backend.api.settings import ApiSettings
from backend.models import OutboxTx, RelayRecord
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment
settings = ApiSettings(database_url=sys.argv[1], deployment_file=Path(sys.argv[2]))
run_migrations(make_engine(settings.database_url), load_deployment(settings.deployment_file))
print("migrated")
"""


def test_two_processes_migrating_a_fresh_database(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    deploy_on(anvil, tmp_path)
    args = [sys.executable, "-c", MIGRATE, database_url, str(tmp_path / "deployment.json")]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert all(out.strip() == "migrated" for out, _ in outs)


def _listeners(parent: Any, port: int) -> list[int]:
    """Pids of `parent`'s child processes holding a listening socket on `port`."""
    found = []
    for child in parent.children():
        try:
            conns = child.net_connections(kind="tcp")
        except Exception:  # exited meanwhile
            continue
        if any(c.status == "LISTEN" and c.laddr.port == port for c in conns):
            found.append(child.pid)
    return sorted(found)


def test_cairn_api_workers_share_one_port_and_stop_together(anvil: Anvil, tmp_path: Path) -> None:
    """`cairn api --workers 2`: two processes, each with its own SO_REUSEPORT socket on the port, both given
    connections by the kernel; SIGTERM stops all (exit 0); a worker that dies takes the others down with a
    non-zero exit (for the process manager to restart the whole service)."""
    import signal

    import httpx
    import psutil

    from cairn.cli.devchain import free_port

    deploy_on(anvil, tmp_path)
    env = {
        "CAIRN_RPC_URLS": anvil.url, "CAIRN_DATABASE_URL": f"sqlite:///{tmp_path}/workers.db",
        "CAIRN_DEPLOYMENT_FILE": str(tmp_path / "deployment.json"), "CAIRN_DATA_DIR": str(tmp_path / "data"),
        "CAIRN_CONFIRMATIONS": "0", "CAIRN_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin",
    }  # fmt: skip

    def start() -> tuple[subprocess.Popen[bytes], int, list[int]]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "api", "--port", str(port), "--workers", "2"], env=env
        )
        parent = psutil.Process(proc.pid)

        def up() -> list[int] | None:
            assert proc.poll() is None, "cairn api exited"
            pids = _listeners(parent, port)
            return pids if len(pids) == 2 else None

        return proc, port, wait_for(up, timeout=90)

    proc, port, workers = start()
    try:
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for _ in range(32)]
        assert all(c.get("/health").status_code == 200 for c in clients)
        served = {
            pid: sum(
                1 for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.status == "ESTABLISHED" and c.laddr.port == port
            )
            for pid in workers
        }  # fmt: skip
        assert sum(served.values()) == 32 and all(n > 0 for n in served.values()), served
        for c in clients:
            c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in workers)
    finally:
        if proc.poll() is None:
            proc.kill()

    proc, port, workers = start()
    try:
        os_kill = psutil.Process(workers[0])
        os_kill.kill()
        assert proc.wait(timeout=60) != 0
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
