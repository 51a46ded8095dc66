"""Finding 2 of issue 10, on anvil with the real contracts and the real API: a mempool watcher copies the
content hash of every pending registration (direct `registerDataset`, relayed `registerDatasetFor` sent by the
API's relayer, one hash of a 100-item `registerDatasetBatch`) and races it with a higher tip. It never ends up
the owner:

* copying at once: his commitment can only be mined in the block of the victim's reveal (the content hash is
  hidden until then), so his reveal comes a block after the victim's and reverts;
* even when the victim's reveal is held back until the watcher's own reveal is mined (here: dropped from the
  mempool and re-broadcast later), the victim's older commitment takes the dataset over (`DatasetReclaimed`).

Blocks are mined by hand (`evm_setAutomine(false)`), so the test orders the mempool exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from support.api_stack import Stack, deploy, local_settings, signed_body
from web3 import Web3

from backend.api.app import create_app
from cairn.cli.devchain import Anvil
from cairn.core.registration import commitment, dataset_batch_calls, dataset_calls, new_salt
from cairn.core.settings import ANVIL_DEV_KEYS

REVEALS = ("registerDataset", "registerDatasetFor", "registerDatasetBatch", "registerDatasets")
TIP = 50 * 10**9  # the watcher outbids everyone


class Watcher:
    """Copies the content hashes of pending reveals; commits and reveals them as its own, tipping high."""

    def __init__(self, w3: Web3, registry: Any, key: str) -> None:
        self.w3, self.registry = w3, registry
        self.acct: LocalAccount = Account.from_key(key)
        self.salt = new_salt()
        self.stolen: list[bytes] = []

    def pending_reveals(self) -> list[tuple[str, bytes]]:
        """(tx hash, one copied content hash) of each pending reveal to the registry."""
        pool: Any = self.w3.provider.make_request("txpool_content", [])  # type: ignore[arg-type]
        out = []
        for by_nonce in pool["result"]["pending"].values():
            for tx in by_nonce.values():
                if (tx.get("to") or "").lower() != self.registry.address.lower():
                    continue
                fn, args = self.registry.decode_function_input(tx["input"])
                if fn.fn_name == "registerDatasetBatch":
                    out.append((tx["hash"], bytes(args["batch"]["contentHashes"][-1])))  # one of the batch
                elif fn.fn_name == "registerDatasetFor":
                    out.append((tx["hash"], bytes(args["d"]["contentHash"])))
                elif fn.fn_name in REVEALS:
                    out.append((tx["hash"], bytes(args["contentHash"])))
        return out

    def _send(self, fn: Any, gas: int = 300_000) -> str:
        tx = fn.build_transaction(
            {
                "from": self.acct.address,
                "nonce": self.w3.eth.get_transaction_count(self.acct.address, "pending"),
                "gas": gas,
                "maxPriorityFeePerGas": TIP,
                "maxFeePerGas": 10 * TIP,
            }
        )
        return self.w3.eth.send_raw_transaction(self.acct.sign_transaction(tx).raw_transaction).hex()

    def commit(self, content_hash: bytes) -> str:
        self.stolen.append(content_hash)
        mine = commitment(self.acct.address, content_hash, self.salt)
        return self._send(self.registry.functions.commit([mine]))

    def reveal(self, content_hash: bytes) -> str:
        fn = self.registry.functions.registerDataset
        return self._send(fn(content_hash, 1, 0, b"\0" * 32, "ipfs://stolen", self.salt))


@pytest.fixture
def env(anvil: Anvil, tmp_path: Path) -> Iterator[tuple[Stack, TestClient, Watcher]]:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    dep = deploy(w3, admin, tmp_path)
    settings = local_settings(anvil, tmp_path, "frontrun")
    with TestClient(create_app(settings)) as client:
        client.app.state.outbox_worker.stop()  # type: ignore[attr-defined]  # the test drives the relayer
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        watcher = Watcher(w3, stack.contract("ContributionRegistry"), ANVIL_DEV_KEYS[8])
        anvil.rpc("evm_setAutomine", [False])
        try:
            yield stack, client, watcher
        finally:
            anvil.rpc("evm_setAutomine", [True])


def _mine(anvil: Anvil) -> None:
    anvil.rpc("evm_mine", [])


def _send_signed(w3: Web3, key: str, fn: Any) -> tuple[str, bytes]:
    """Sign and broadcast (not mined yet); returns (hash, raw) so the test can re-broadcast it."""
    acct = Account.from_key(key)
    tx = fn.build_transaction(
        {
            "from": acct.address,
            "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
            "gas": 3_000_000,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 10**11,
        }
    )
    raw = bytes(acct.sign_transaction(tx).raw_transaction)
    return w3.eth.send_raw_transaction(raw).hex(), raw


def _owner(stack: Stack, content_hash: bytes) -> str:
    return str(stack.contract("ContributionRegistry").functions.contributionOf(content_hash).call()[0])


def _race_copy_at_once(stack: Stack, watcher: Watcher, victim: str, expected: int) -> None:
    """The watcher copies each pending reveal at once (commit now, reveal in the next block)."""
    found = watcher.pending_reveals()
    assert len(found) == expected, found
    for _, content_hash in found:
        watcher.commit(content_hash)
    _mine(stack.anvil)  # the victim's reveal and the watcher's commit (first in the block: higher tip)
    reveals = [watcher.reveal(h) for _, h in found]
    _mine(stack.anvil)
    for tx_hash in reveals:  # his commitment is younger than the holder's: AlreadyRegistered
        assert stack.w3.eth.get_transaction_receipt(tx_hash)["status"] == 0
    for _, content_hash in found:
        assert _owner(stack, content_hash) == victim


def _race_with_victim_held_back(stack: Stack, watcher: Watcher, victim: str, raw: bytes, h: bytes) -> None:
    """The victim's reveal is held back (dropped) until the watcher's reveal is mined; then it lands."""
    (found,) = watcher.pending_reveals()
    stack.anvil.rpc("anvil_dropTransaction", [found[0]])
    watcher.commit(found[1])
    _mine(stack.anvil)
    watcher.reveal(found[1])
    _mine(stack.anvil)
    assert _owner(stack, h) == watcher.acct.address  # for now
    stack.w3.eth.send_raw_transaction(raw)
    _mine(stack.anvil)
    assert _owner(stack, h) == victim
    stack.index()  # the mirror agrees: the dataset is the victim's, the watcher's lost registration is gone
    shown = stack.api.get(f"/v1/datasets/0x{h.hex()}").json()
    assert shown["owner"] == victim, shown
    registry = stack.contract("ContributionRegistry")
    (ev,) = registry.events.DatasetReclaimed().get_logs(from_block=0, argument_filters={"contentHash": h})
    assert ev.args.previousOwner == watcher.acct.address and ev.args.newOwner == victim


def test_direct_registration_copied_from_the_mempool_stays_the_owners(
    env: tuple[Stack, TestClient, Watcher],
) -> None:
    stack, _, watcher = env
    registry = stack.contract("ContributionRegistry")
    key = ANVIL_DEV_KEYS[5]
    owner = Account.from_key(key).address
    for label, held_back in (("direct-a", False), ("direct-b", True)):
        h = Web3.keccak(text=label)
        commit, reveal = dataset_calls(registry, owner, h, 10, 1, b"\1" * 32, f"ipfs://{label}")
        _send_signed(stack.w3, key, commit)
        assert watcher.pending_reveals() == []  # a commitment shows nothing to copy
        _mine(stack.anvil)
        _, raw = _send_signed(stack.w3, key, reveal)
        if held_back:
            _race_with_victim_held_back(stack, watcher, owner, raw, bytes(h))
        else:
            _race_copy_at_once(stack, watcher, owner, 1)


def test_batch_registration_with_one_hash_copied_stays_whole(env: tuple[Stack, TestClient, Watcher]) -> None:
    stack, _, watcher = env
    registry = stack.contract("ContributionRegistry")
    key = ANVIL_DEV_KEYS[6]
    owner = Account.from_key(key).address
    for label, held_back in (("batch-a", False), ("batch-b", True)):
        hashes = [bytes(Web3.keccak(text=f"{label}-{i}")) for i in range(100)]
        batch = (hashes, [1] * 100, 1, b"\2" * 32, f"ipfs://{label}")
        commit, reveal = dataset_batch_calls(registry, owner, batch)
        _send_signed(stack.w3, key, commit)
        _mine(stack.anvil)
        _, raw = _send_signed(stack.w3, key, reveal)
        if held_back:
            _race_with_victim_held_back(stack, watcher, owner, raw, hashes[-1])
        else:
            _race_copy_at_once(stack, watcher, owner, 1)
        assert all(_owner(stack, h) == owner for h in hashes)  # the whole batch, none lost


def test_relayed_registration_through_the_api_stays_the_owners(
    env: tuple[Stack, TestClient, Watcher],
) -> None:
    stack, client, watcher = env
    for label, held_back in (("relayed-a", False), ("relayed-b", True)):
        owner = Account.create()
        body = signed_body(stack, owner, label)
        posted = client.post("/v1/datasets", json=body)
        assert posted.status_code == 202, posted.text
        relay = posted.json()
        assert relay["phase"] == "commit" and relay["status"] == "pending"
        assert watcher.pending_reveals() == []  # the relayer's commitment hides the content hash
        _mine(stack.anvil)
        revealing = client.get(f"/v1/relays/{relay['relay_id']}").json()  # the commit is mined: reveal
        assert revealing["phase"] == "reveal" and revealing["status"] == "pending", revealing
        h = bytes.fromhex(body["content_hash"][2:])
        if held_back:
            raw = stack.w3.provider.make_request(  # type: ignore[arg-type]
                "eth_getRawTransactionByHash", [revealing["tx_hash"]]
            )["result"]
            _race_with_victim_held_back(stack, watcher, owner.address, bytes.fromhex(raw[2:]), h)
        else:
            _race_copy_at_once(stack, watcher, owner.address, 1)
        done = client.get(f"/v1/relays/{relay['relay_id']}").json()
        assert done["status"] == "mined" and done["phase"] == "reveal"
