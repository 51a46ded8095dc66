"""The foundation end to end: `cairn dev` (what `make run` runs) as a real process tree.

Start the stack on a fresh anvil and SQLite, let it play the demo loop, register one dataset through the API
(gasless, EIP-712), see the indexer mirror it and read it back from the API; Ctrl-C stops every child; a
second start resumes the same chain and database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from eth_account import Account
from eth_hash.auto import keccak

from cairn.cli.devchain import free_port
from cairn.core.settings import ANVIL_DEV_KEYS
from cairn.demo import CORPORA_DIR

READY_TIMEOUT_S = 120


class DevStack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.chain_port, self.api_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.output = tmp / "dev.out"
        self.env = dict(os.environ)
        self.env.update(
            CAIRN_DATA_DIR=str(tmp / "data"),
            CAIRN_DATABASE_URL=f"sqlite:///{tmp / 'data' / 'cairn.db'}",
            CAIRN_DEPLOYMENT_FILE=str(tmp / "data" / "deployment.json"),
            CAIRN_CONFIRMATIONS="2",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0  # markers are looked for in the output of the current start only

    def start(self, *args: str) -> None:
        self.offset = len(self.text())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "dev", "--chain-port", str(self.chain_port),
             "--api-port", str(self.api_port), *args],
            stdout=self.output.open("ab"), stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait_for(self, marker: str, timeout: float = READY_TIMEOUT_S) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if marker in self.text()[self.offset :]:
                return time.monotonic() - started
            assert self.proc is not None and self.proc.poll() is None, self.text()
            time.sleep(0.2)
        raise AssertionError(f"{marker!r} not printed within {timeout} s:\n{self.text()}")

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def interrupt(self) -> list[psutil.Process]:
        assert self.proc is not None
        kids = self.descendants()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        _, alive = psutil.wait_procs(kids, timeout=20)
        return alive

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.api}{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            f"{self.api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    s = DevStack(tmp_path)
    yield s
    if s.proc is not None and s.proc.poll() is None:
        for kid in s.descendants():
            kid.kill()
        s.proc.kill()


def test_make_run_stack_demo_register_read_back_stop_and_resume(stack: DevStack) -> None:
    stack.start()
    ready_s = stack.wait_for("ready: API")
    assert ready_s < READY_TIMEOUT_S
    health = stack.get("/health")
    assert health["chain_id"] == 31337
    assert health["database_kind"] == "sqlite"
    assert isinstance(health["latest_indexed_block"], int)
    assert set(health["contracts"]) >= {"RewardToken", "ContributionRegistry", "RewardDistributor"}

    stack.wait_for("demo done", timeout=180)  # the whole loop: register, attest, pay, epoch, claim
    # the demo trained the embedded model on the corpora (`cairn train`); the API serves it
    assert "`cairn train`: model cairn-demo-model-v1 version 1" in stack.text()
    models = stack.get("/v1/models")["data"]
    assert [m["id"] for m in models] == ["cairn-demo-model-v1"] and models[0]["cairn"]["model_version"] == 1
    # the demo's agent asked over HTTP, paid with the official x402 client; the settler settled it and the
    # epoch's allocation paid the corpora's owners through the manifest's weights
    text = " ".join(stack.text().split())  # the console wraps long lines
    assert "official x402 client" in text and "the settler settled it" in text
    for who in "AB":
        paid_for = rf"contributor {who} was paid 0\.0*[1-9]\d* tokens for the agent's question"
        assert re.search(paid_for, text), text[-3000:]
    question = [{"role": "user", "content": "How do bees make honey from nectar?"}]
    unpaid = urllib.request.Request(
        f"{stack.api}/v1/chat/completions", headers={"Content-Type": "application/json"},
        data=json.dumps({"model": "cairn-demo-model-v1", "messages": question}).encode(),
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as required:
        urllib.request.urlopen(unpaid, timeout=10)
    assert required.value.code == 402 and required.value.headers["PAYMENT-REQUIRED"]
    # the demo's paid answer drew on the beekeeping corpus first (the demo moved the chain's clock past the
    # epoch's end, ahead of this machine's, so a client signing by the wall clock now would be refused)
    bees = "0x" + hashlib.sha256((CORPORA_DIR / "beekeeping.txt").read_bytes()).hexdigest()
    assert re.search(r"drew on " + bees[:10], text), text[-3000:]

    # Register one dataset through the API (gasless, signed EIP-712), see the indexer mirror it, read it back.
    owner_key = ANVIL_DEV_KEYS[9]
    owner = Account.from_key(owner_key).address
    content_hash = "0x" + keccak(f"e2e-{time.time_ns()}".encode()).hex()
    meta = "0x" + keccak(b"e2e-meta").hex()
    query = f"owner={owner}&content_hash={content_hash}&size=4096&license_id=7&metadata_hash={meta}&uri=ipfs://e2e"
    typed = stack.get(f"/v1/eip712/register-dataset?{query}")
    signature = Account.sign_typed_data(owner_key, full_message=typed).signature
    body = {"content_hash": content_hash, "size": 4096, "license_id": 7, "metadata_hash": meta}
    body |= {"uri": "ipfs://e2e", "owner": owner, "deadline": int(typed["message"]["deadline"])}
    reply = stack.post("/v1/datasets", body | {"signature": "0x" + bytes(signature).hex()})
    assert reply["tx_hash"].startswith("0x")
    deadline = time.monotonic() + 60
    dataset: dict[str, Any] | None = None
    while time.monotonic() < deadline and dataset is None:
        try:
            dataset = stack.get(f"/v1/datasets/{content_hash}")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            time.sleep(0.3)
    assert dataset is not None, "the indexer never mirrored the relayed registration"
    assert dataset["owner"] == owner
    assert int(dataset["size"]) == 4096 and int(dataset["license_id"]) == 7 and dataset["uri"] == "ipfs://e2e"

    alive = stack.interrupt()
    assert alive == [], f"children still running after Ctrl-C: {alive}"
    assert "stopping" in stack.text()

    stack.start()
    stack.wait_for("resume: same chain")
    stack.wait_for("ready: API", timeout=READY_TIMEOUT_S)
    again = stack.get(f"/v1/datasets/{content_hash}")
    assert again["owner"] == owner
    assert stack.interrupt() == []


def test_cairn_up_on_an_existing_chain_and_postgresql(anvil: Any, postgres_url: str, tmp_path: Path) -> None:
    from cairn.cli.deploy import deploy_all

    deploy_all(anvil.url, ANVIL_DEV_KEYS[0], out=tmp_path / "deployment.json")
    api_port = free_port()
    env = dict(os.environ, CAIRN_DATA_DIR=str(tmp_path / "data"), CAIRN_CONFIRMATIONS="0")
    output = tmp_path / "up.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", "up", "--rpc-url", anvil.url, "--database-url", postgres_url,
         "--deployment", str(tmp_path / "deployment.json"), "--api-port", str(api_port)],
        stdout=output.open("ab"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "ready: API" not in output.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, output.read_text()
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["database_kind"] == "postgresql" and health["chain_id"] == 31337
        assert isinstance(health["latest_indexed_block"], int)
        kids = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert psutil.wait_procs(kids, timeout=20)[1] == []
    finally:
        if proc.poll() is None:
            proc.kill()
