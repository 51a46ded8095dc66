"""The API's view of the chain: one web3 client, the deployment file and its contracts."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3
from web3.contract import Contract

from cairn.core.deployment import Deployment, load_deployment
from cairn.core.errors import ChainUnreachableError
from cairn.core.settings import Settings


@dataclass
class Chain:
    """A connected RPC client checked against the deployment file."""

    w3: Web3
    deployment: Deployment
    rpc_url: str
    _contracts: dict[str, Contract] = field(default_factory=dict)
    _head: tuple[float, dict[str, Any]] | None = None
    _head_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def contract(self, name: str) -> Contract:
        if name not in self._contracts:
            self._contracts[name] = self.deployment.contract(self.w3, name)
        return self._contracts[name]

    def has_function(self, contract: str, function: str) -> bool:
        if contract not in self.deployment.contracts:
            return False
        abi: list[dict[str, Any]] = self.deployment.abi(contract)
        return any(e.get("type") == "function" and e.get("name") == function for e in abi)

    def head(self, max_age: float) -> dict[str, Any]:
        """The latest block, read at most `max_age` seconds ago (0: read now). Read endpoints under load
        (proofs, account views) share one RPC call per process per `max_age` instead of one per request."""
        if max_age <= 0:
            return self.latest_block()
        now = time.monotonic()
        cached = self._head
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        block = self.latest_block()
        with self._head_lock:
            self._head = (now, block)
        return block

    def latest_block(self) -> dict[str, Any]:
        try:
            block = self.w3.eth.get_block("latest")
        except Exception as exc:
            raise ChainUnreachableError(f"RPC {self.rpc_url} did not answer: {type(exc).__name__}") from None
        return dict(block)


def connect_chain(settings: Settings) -> Chain:
    """Connect to the first answering RPC URL, load the deployment file and verify the chain id."""
    deployment = load_deployment(settings.deployment_file)
    errors: list[str] = []
    for url in settings.rpc_urls:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 15}))
        try:
            chain_id = int(w3.eth.chain_id)
        except Exception as exc:
            errors.append(f"{url}: {type(exc).__name__}")
            continue
        deployment.require_chain(chain_id, url)
        return Chain(w3=w3, deployment=deployment, rpc_url=url)
    raise ChainUnreachableError(f"no RPC endpoint answered ({'; '.join(errors)})")
