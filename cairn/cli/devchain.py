"""Start and stop a local anvil chain (the npm `@foundry-rs/anvil` binary) for `make run` and the tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import ConfigError
from cairn.core.settings import LOCAL_CHAIN_ID, REPO_ROOT


def anvil_binary() -> str:
    """Path of the anvil binary installed by `npm ci` (falls back to one on PATH)."""
    local = REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise ConfigError("anvil not found: run `npm ci` (it installs @foundry-rs/anvil)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc_call(url: str, method: str, params: list[object] | None = None, timeout: float = 5.0) -> object:
    """One raw JSON-RPC call; raises RuntimeError on a JSON-RPC error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply.get("result")


@dataclass
class Anvil:
    """A running anvil process. Use as a context manager or call `stop()`."""

    port: int
    process: subprocess.Popen[bytes]
    state_file: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rpc(self, method: str, params: list[object] | None = None) -> object:
        return rpc_call(self.url, method, params)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_anvil(
    port: int | None = None,
    *,
    chain_id: int = 31337,
    block_time: float | None = None,
    state_file: Path | None = None,
    extra_args: list[str] | None = None,
    log_file: Path | None = None,
    timeout: float = 20.0,
) -> Anvil:
    """Start anvil and wait until it answers `eth_chainId`.

    `state_file` makes the chain persistent across restarts (`--state`), which is how a second
    `make run` resumes the same chain.
    """
    port = port or free_port()
    args = [anvil_binary(), "--port", str(port), "--host", "127.0.0.1", "--chain-id", str(chain_id)]
    args += ["--gas-limit", "100000000", "--code-size-limit", "100000"]
    if block_time:
        args += ["--block-time", str(block_time)]
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--state", str(state_file), "--state-interval", "1"]
    args += extra_args or []
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    anvil = Anvil(port=port, process=proc, state_file=state_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"anvil exited with code {proc.returncode} while starting on port {port}")
        try:
            anvil.rpc("eth_chainId")
            return anvil
        except OSError:
            time.sleep(0.05)
    anvil.stop()
    raise ConfigError(f"anvil did not answer on port {port} within {timeout:.0f} s")


def kill_process_group(pid: int) -> None:
    """SIGTERM a process group started with start_new_session=True (used on Ctrl-C)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)


def mint_test_tokens(w3: Any, dep: Any, to: str, amount: int) -> None:
    """Local anvil chain only: mint `amount` of the running epoch's emission cap to `to`, sent as the
    RewardDistributor (the token's only minter) through anvil's account impersonation. A test-and-demo path
    of the development chain: the contracts have no minting role anyone could be granted, and a real chain
    has no impersonation."""
    if int(w3.eth.chain_id) != LOCAL_CHAIN_ID:
        raise ConfigError(f"test tokens are minted only on the local chain {LOCAL_CHAIN_ID}")
    token = dep.contract(w3, "RewardToken")
    dist = dep.contract(w3, "RewardDistributor").address
    epoch = dep.epoch.epoch_at(int(w3.eth.get_block("latest")["timestamp"]))
    w3.provider.make_request("anvil_impersonateAccount", [dist])
    try:
        w3.provider.make_request("anvil_setBalance", [dist, hex(10**18)])
        tx = token.functions.mintEmission(epoch, to, amount).build_transaction({"from": dist})
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))
        if receipt["status"] != 1:
            raise RuntimeError(f"minting test tokens for epoch {epoch} reverted")
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [dist])
