"""Attacks on the relayer's wallet, against the real stack (anvil, the deployed contracts, the API app on a
real database), and the gas each one made the relayer pay (contracts/SECURITY.md "Relayer").

Figures
* `relayer_attack_gas_spent`: gas the relayer paid over all attack kinds together, `ATTEMPTS` attempts each
  (every relayer transaction's receipt gasUsed, cross-checked with the fall of its balance), under the
  default limits (`ApiSettings`);
* `relayer_daily_budget_gas`: the configured global daily budget (`CAIRN_API_RELAY_DAILY_GAS`).

The attack drivers are shared with tests/integration/test_relay_attacks.py, which runs each kind on its
own under tighter limits and asserts the refusals.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil, start_anvil
from cairn.core.contracts import load_artifact
from cairn.core.eip712 import Dataset, register_dataset_typed_data
from cairn.core.settings import ANVIL_DEV_KEYS, REPO_ROOT

ATTEMPTS = 100
MOCKS = REPO_ROOT / "artifacts" / "contracts" / "test" / "mocks"
FLIP, BURN, BURN_VIA_REGISTRY = 0, 1, 2  # GriefWallet1271 modes


@dataclass
class Target:
    """The API under attack, on `anvil`."""

    anvil: Anvil
    w3: Web3
    registry: Any
    settings: ApiSettings
    admin: LocalAccount
    client: TestClient | None = None
    relayer: str = field(default_factory=lambda: Account.from_key(ANVIL_DEV_KEYS[1]).address)

    @property
    def api(self) -> TestClient:
        assert self.client is not None
        return self.client

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def spend(self, since_block: int) -> tuple[int, int, int]:
        """(gas, wei, reverted transactions) the relayer paid in blocks after `since_block`."""
        gas = wei = reverted = 0
        for n in range(since_block + 1, self.head() + 1):
            for tx in self.w3.eth.get_block(n, full_transactions=True)["transactions"]:
                if str(tx["from"]).lower() != self.relayer.lower():  # type: ignore[index]
                    continue
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
                gas += int(receipt["gasUsed"])
                wei += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
                reverted += int(receipt["status"]) == 0
        return gas, wei, reverted

    def balance(self) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(self.relayer)))

    def deploy_wallet(self, owner: LocalAccount, mode: int) -> str:
        art = load_artifact("GriefWallet1271", MOCKS)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor(owner.address, mode).build_transaction(
            {
                "from": self.admin.address,
                "nonce": self.w3.eth.get_transaction_count(self.admin.address, "pending"),
            }
        )
        signed = self.admin.sign_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        return str(receipt["contractAddress"])

    def body(
        self, signer: LocalAccount, label: str, *, owner: str | None = None, nonce: int | None = None,
        deadline: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A registration of `label` signed by `signer` for `owner` (default: the signer itself)."""
        owner = owner or signer.address
        ds = Dataset(
            content_hash="0x" + Web3.keccak(text=label).hex().removeprefix("0x"), size=4096, license_id=2,
            metadata_hash="0x" + "00" * 32, uri=f"ar://{label}",
        )  # fmt: skip
        if nonce is None:
            nonce = int(self.registry.functions.nonces(Web3.to_checksum_address(owner)).call())
        if deadline is None:
            deadline = int(self.w3.eth.get_block("latest")["timestamp"]) + 3600
        typed = register_dataset_typed_data(
            chain_id=31337, verifying_contract=self.registry.address, owner=Web3.to_checksum_address(owner),
            dataset=ds, nonce=nonce, deadline=deadline,
        )  # fmt: skip
        sig = Account.sign_typed_data(signer.key, full_message=typed).signature
        return {
            "content_hash": ds.content_hash, "size": ds.size, "license_id": ds.license_id,
            "metadata_hash": ds.metadata_hash, "uri": ds.uri, "owner": Web3.to_checksum_address(owner),
            "deadline": deadline, "signature": "0x" + bytes(sig).hex(),
        }  # fmt: skip

    def post(self, body: dict[str, Any], client_ip: str, client: TestClient | None = None) -> Any:
        """POST /v1/datasets as `client_ip`, behind a proxy that appended it to X-Forwarded-For (the first
        value is whatever the client claimed)."""
        headers = {"X-Forwarded-For": f"203.0.113.9, {client_ip}"}
        return (client or self.api).post("/v1/datasets", json=body, headers=headers)

    def settle(self) -> None:
        """Let the outbox and the guard settle what was sent (the API's worker threads do it too)."""
        relayer = self.api.app.state.relayer  # type: ignore[attr-defined]
        relayer.outbox.process()
        relayer.guard.settle()


@contextlib.contextmanager
def target(tmp: Path, database_url: str | None = None, **limits: Any) -> Iterator[Target]:
    """A fresh anvil, every contract deployed, the API app over `database_url` (default SQLite under `tmp`)
    with the proxy header configured and `limits` (ApiSettings fields) applied."""
    with start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        admin = Account.from_key(ANVIL_DEV_KEYS[0])
        dep = deploy_all(w3, admin.key.hex(), epoch_length=3600, out=tmp / "deployment.json")
        # the relayer's own buckets are under test: the general per-client limit (ratelimit.py) stays out
        limits.setdefault("api_rate_client_burst", 1_000_000)
        settings = ApiSettings(
            rpc_urls=[anvil.url], database_url=database_url or f"sqlite:///{tmp}/relayer.db",
            deployment_file=tmp / "deployment.json", data_dir=tmp / "data", confirmations=0,
            api_relay_client_header="X-Forwarded-For", **limits,
        )  # fmt: skip
        t = Target(anvil, w3, dep.contract(w3, "ContributionRegistry"), settings, admin)
        with TestClient(create_app(settings)) as client:
            t.client = client
            yield t


@dataclass
class Outcome:
    kind: str
    attempts: int
    statuses: Counter[int]
    codes: Counter[str]
    gas: int
    wei: int
    reverted: int
    balance_drop: int

    def row(self) -> str:
        return (
            f"{self.kind}: {self.attempts} attempts, statuses {dict(self.statuses)}, gas {self.gas} "
            f"({self.reverted} reverted), wei {self.wei}"
        )


def _run(t: Target, kind: str, attempts: int, attack: Callable[[], list[Any]]) -> Outcome:
    start, balance = t.head(), t.balance()
    responses = attack()
    t.settle()
    gas, wei, reverted = t.spend(start)
    codes = Counter(str(r.json().get("code", r.json().get("status"))) for r in responses)
    return Outcome(
        kind, attempts, Counter(r.status_code for r in responses), codes, gas, wei, reverted,
        balance - t.balance(),
    )  # fmt: skip


def deadline_now_plus_one(t: Target, attempts: int) -> Outcome:
    """Signatures with `deadline = now + 1`: valid off chain, expired by the time a block includes them."""

    def attack() -> list[Any]:
        out = []
        for i in range(attempts):
            key = Account.create()
            # "now" as the old check saw it (the later of the chain's and the server's clock), +1 s and a
            # second of slack so that it still passes that check when the clock ticks meanwhile
            now = max(int(t.w3.eth.get_block("latest")["timestamp"]), int(time.time()))
            out.append(t.post(t.body(key, f"deadline-{i}", deadline=now + 2), "198.51.100.1"))
        return out

    return _run(t, "deadline", attempts, attack)


def same_nonce(t: Target, attempts: int) -> Outcome:
    """One owner signs `attempts` registrations with the same nonce while the first is still pending (blocks
    are mined only afterwards): all but one could only revert."""
    owner = Account.create()

    def attack() -> list[Any]:
        t.anvil.rpc("evm_setAutomine", [False])
        try:
            out = [t.post(t.body(owner, f"same-nonce-{i}", nonce=0), "198.51.100.2") for i in range(attempts)]
        finally:
            t.anvil.rpc("evm_setAutomine", [True])
            t.anvil.rpc("evm_mine")
        return out

    return _run(t, "same_nonce", attempts, attack)


def wallet_1271(t: Target, attempts: int, mode: int) -> Outcome:
    """A contract-wallet owner: FLIP passes every simulation and reverts on chain; BURN burns ~400k gas in
    `isValidSignature` on its valid path; BURN_VIA_REGISTRY does so only when the registry calls it (the
    gas estimate and the chain), not in the relayer's own direct check."""
    key = Account.create()
    wallet = t.deploy_wallet(key, mode)

    def attack() -> list[Any]:
        out = []
        for i in range(attempts):
            out.append(t.post(t.body(key, f"wallet-{mode}-{wallet}-{i}", owner=wallet), "198.51.100.3"))
            if out[-1].status_code == 202:
                t.settle()  # as the API's own worker threads would within a second or two
        return out

    kind = {FLIP: "eip1271_flip", BURN: "eip1271_burn", BURN_VIA_REGISTRY: "eip1271_burn_via_registry"}[mode]
    return _run(t, kind, attempts, attack)


def fresh_key_flood(
    t: Target, attempts: int, *, clients: int = 1, honest: Callable[[], None] | None = None
) -> Outcome:
    """Valid registrations from `attempts` fresh keys, spread over `clients` client addresses, sent from 8
    threads at once (`honest()`, if given, runs meanwhile)."""
    bodies = [t.body(Account.create(), f"flood-{clients}-{i}") for i in range(attempts)]

    def attack() -> list[Any]:
        out: list[Any] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for i in range(k, attempts, 8):
                r = t.post(bodies[i], f"192.0.2.{i % clients}")
                with lock:
                    out.append(r)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        if honest is not None:
            honest()
        for th in threads:
            th.join(300)
        return out

    return _run(t, "flood" if clients == 1 else "distributed_flood", attempts, attack)


def all_attacks(t: Target, attempts: int) -> list[Outcome]:
    return [
        deadline_now_plus_one(t, attempts),
        same_nonce(t, attempts),
        wallet_1271(t, attempts, FLIP),
        wallet_1271(t, attempts, BURN),
        wallet_1271(t, attempts, BURN_VIA_REGISTRY),
        fresh_key_flood(t, attempts),
        fresh_key_flood(t, attempts, clients=attempts),
    ]


def run() -> dict[str, float]:
    attempts = int(os.environ.get("BENCH_RELAYER_ATTEMPTS", str(ATTEMPTS)))
    with tempfile.TemporaryDirectory() as tmp, target(Path(tmp)) as t:
        outcomes = all_attacks(t, attempts)
        for o in outcomes:
            print(o.row())
        return {
            "relayer_attack_gas_spent": float(sum(o.gas for o in outcomes)),
            "relayer_daily_budget_gas": float(t.settings.api_relay.daily_gas),
        }


if __name__ == "__main__":
    print(run())
