"""A relayed registration whose transaction the node dropped is fee-bumped by the outbox (same nonce, new
hash, same relay id), and the relay sent after it (next nonce, stuck behind the gap) is mined too. Both
are commit-reveal: the commits are bumped and mined first, then each reveal is sent (here when the relay is
read)."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account
from fastapi.testclient import TestClient
from support.api_stack import Stack, deploy, local_settings, relayer_nonce, signed_body
from web3 import Web3

from backend.api.app import create_app
from cairn.cli.devchain import Anvil
from cairn.core.settings import ANVIL_DEV_KEYS


def test_dropped_relay_is_bumped_and_later_relays_do_not_stall(anvil: Anvil, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    dep = deploy(w3, admin, tmp_path)
    settings = local_settings(anvil, tmp_path, "bump")
    with TestClient(create_app(settings)) as client:
        client.app.state.outbox_worker.stop()  # type: ignore[attr-defined]  # the test drives process()
        outbox = client.app.state.relayer.outbox  # type: ignore[attr-defined]
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, [], [], admin, client=client)
        first_body = signed_body(stack, Account.create(), "dropped-1")
        second_body = signed_body(stack, Account.create(), "behind-the-gap")
        before = relayer_nonce(stack)
        anvil.rpc("evm_setAutomine", [False])

        first = client.post("/v1/datasets", json=first_body).json()
        assert first["status"] == "pending" and first["relayer_nonce"] == before
        anvil.rpc("anvil_dropTransaction", [first["tx_hash"]])  # the node forgets it
        second = client.post("/v1/datasets", json=second_body).json()
        assert second["status"] == "pending" and second["relayer_nonce"] == before + 1  # waits behind the gap

        outbox.stuck_after = 0
        outbox.process()  # the dropped one is re-signed with higher fees; the one behind it is only re-sent
        bumped = client.get(f"/v1/relays/{first['relay_id']}").json()
        assert bumped["relay_id"] == first["relay_id"] and bumped["tx_hashes"][0] == first["tx_hash"]
        assert len(bumped["tx_hashes"]) == 2 and bumped["tx_hash"] == bumped["tx_hashes"][1]
        assert len(client.get(f"/v1/relays/{second['relay_id']}").json()["tx_hashes"]) == 1

        outbox.stuck_after = 3600
        anvil.rpc("evm_mine", [])
        for relay in (first, second):  # the commits are mined: reading a relay sends its reveal
            revealing = client.get(f"/v1/relays/{relay['relay_id']}").json()
            assert revealing["phase"] == "reveal" and revealing["status"] == "pending", revealing
        anvil.rpc("evm_mine", [])
        for body, relay in ((first_body, first), (second_body, second)):
            status = client.get(f"/v1/relays/{relay['relay_id']}").json()
            assert status["status"] == "mined", status
            record = (
                stack.contract("ContributionRegistry").functions.contributionOf(body["content_hash"]).call()
            )
            assert record[0] == body["owner"] and record[1] == 1
        mined = client.get(f"/v1/relays/{first['relay_id']}").json()
        assert mined["commit_tx_hash"] == bumped["tx_hash"] != first["tx_hash"]
        # the first hash still finds the relay (through the outbox's attempts)
        by_old_hash = client.get(f"/v1/relay/{first['tx_hash']}").json()
        assert by_old_hash["relay_id"] == first["relay_id"] and by_old_hash["status"] == "mined"
        assert relayer_nonce(stack) == before + 4  # two commits, two reveals
        # a retry of the same signed message is the same relay, nothing new is sent
        again = client.post("/v1/datasets", json=first_body).json()
        assert again["duplicate"] is True and again["tx_hash"] == mined["tx_hash"]
        assert relayer_nonce(stack) == before + 4  # two commits, two reveals
