"""Cheap requests stay cheap (security issue 10, findings 4 and 6), on a real stack: anvil, the contracts, the
indexer's SQLite mirror and the app.

* Finding 4: with several epochs of 20,000-leaf trees, 200 `GET /v1/accounts/<random address>` neither
  re-hash an allocation file nor re-validate a tree (`publication.COUNTERS`) nor grow the process's memory;
  proofs come from each file's proof index and still verify against the root on chain; downloads stream.
* Finding 6: inputs that used to answer 500 answer a 422 problem naming the field.
"""

from __future__ import annotations

import gc
import json
import random

import psutil
from support.api_stack import EPOCH_LENGTH, Stack, assert_problem, signed_body, travel_to, write_allocation
from web3 import Web3

from backend.rewards import publication
from backend.rewards.proofindex import index_path
from cairn.core import merkle
from cairn.core.policy import load_policy

LEAVES = 20_000
BIG_EPOCHS = (2, 3, 4, 5, 6)  # more epochs than the former cache of 4 trees held
REQUESTS = 200
RSS_BOUND = 24 * 2**20


def _random_address(rng: random.Random) -> str:
    return Web3.to_checksum_address("0x" + rng.randbytes(20).hex())


def _publish_big_epochs(s: Stack, rng: random.Random) -> dict[int, tuple[merkle.MerkleTree, str]]:
    """Epochs 2..6, each adding LEAVES new accounts (1 wei each); each proposal accepts the previous one."""
    dist = s.contract("RewardDistributor")
    policy_hash = load_policy("v1").content_hash()
    cumulative = {a: n for a, n in s.seeded["tree1"].values}
    trees = {}
    for epoch in BIG_EPOCHS:
        travel_to(s, s.deployment.epoch.genesis + (epoch + 1) * EPOCH_LENGTH + 1)
        amounts = {"0x" + rng.randbytes(20).hex(): 1 for _ in range(LEAVES)}
        tree, uri = write_allocation(s, epoch, cumulative, amounts)
        total = sum(n for _, n in tree.values)
        s.transact(s.admin, dist.functions.proposeRoot(tree.root, epoch, policy_hash, total, uri))
        cumulative = dict(tree.values)
        trees[epoch] = (tree, uri)
    s.index()
    return trees


def test_random_accounts_and_proofs_are_served_from_the_index(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    rng = random.Random(10)
    published = _publish_big_epochs(s, rng)
    trees = {e: tree for e, (tree, _) in published.items()}
    proc = psutil.Process()

    # the first request builds each file's proof index once (these files came without one)
    assert s.api.get(f"/v1/accounts/{_random_address(rng)}").status_code == 200
    folder = publication.allocations_dir(s.settings.data_dir)
    for _, uri in published.values():
        assert index_path(folder / publication.allocation_name(uri)).is_file()
    built = dict(publication.COUNTERS)
    assert built["index_builds"] >= len(BIG_EPOCHS)
    gc.collect()
    rss_before = proc.memory_info().rss

    for _ in range(REQUESTS):
        r = s.api.get(f"/v1/accounts/{_random_address(rng)}")
        assert r.status_code == 200, r.text
        assert r.json()["rewards"] == {
            "cumulative": "0", "claimed": "0", "claimable": "0", "epoch": None, "root": None,
            "claimable_now": False,
        }  # fmt: skip
    gc.collect()
    grown = proc.memory_info().rss - rss_before
    print(f"RSS grew {grown / 2**20:.2f} MiB over {REQUESTS} GET /v1/accounts/<random address>")
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB over {REQUESTS} requests"

    # proofs: from the index, verified with OpenZeppelin's algorithm against the root on chain
    dist = s.contract("RewardDistributor")
    chain_root = "0x" + bytes(dist.functions.pendingRoot().call()[0]).hex()
    last = trees[BIG_EPOCHS[-1]]
    assert chain_root == last.root
    for account, amount in rng.sample(last.values, 20):
        p = s.api.get(f"/v1/epochs/{BIG_EPOCHS[-1]}/proofs/{account}").json()
        assert p["cumulative_amount"] == str(amount) and p["root"] == chain_root
        assert p["proof"] == last.proof_for(account)[1]
        assert merkle.verify(chain_root, (account, amount), p["proof"])
    # an account of an older epoch's tree, under the latest root (cumulative leaves carry it forward)
    account, amount = trees[BIG_EPOCHS[0]].values[7]
    body = s.api.get(f"/v1/accounts/{account}").json()["rewards"]
    assert body["cumulative"] == str(amount) and body["epoch"] == BIG_EPOCHS[-1]
    assert {k: publication.COUNTERS[k] for k in built} == built  # no hash, no validation, no build

    # downloads stream the stored file (its length known up front, bytes identical)
    uri = s.api.get(f"/v1/epochs/{BIG_EPOCHS[-1]}").json()["allocation_uri"]
    name = publication.allocation_name(uri)
    stored = (publication.allocations_dir(s.settings.data_dir) / name).read_bytes()
    got = s.api.get(f"/v1/allocations/{uri}")
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
    assert int(got.headers["content-length"]) == len(stored) and got.content == stored


def test_inputs_that_answered_500_answer_422(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = s.owners[0]
    big = 2**63
    for path in (
        f"/v1/epochs/{big}",
        f"/v1/epochs/{big}/revenue",
        f"/v1/epochs/{big}/proofs/{owner.address}",
    ):
        body = assert_problem(s.api.get(path), 422, "invalid_input", "epoch must be between 0 and 2^63-1")
        assert body["field"] == "epoch"
    assert (
        s.api.get(f"/v1/epochs/{big - 1}").status_code == 404
    )  # the largest epoch is a lookup, not an error

    signed = signed_body(s, owner, "griefing-deadline")
    for deadline in (2**256, 2**256 + 12345):
        body = assert_problem(
            s.api.post("/v1/datasets", json={**signed, "deadline": deadline}), 422, "invalid_input"
        )
        assert body["fields"] == ["deadline"]
    params = {"owner": owner.address, "deadline": str(2**256)}
    body = assert_problem(s.api.get("/v1/eip712/register-dataset", params=params), 422, "invalid_input")
    assert body["fields"] == ["deadline"]

    # a lone surrogate is valid JSON ("\ud800") but no text: refused (by the JSON parser) before anything
    # is signed or stored
    raw = json.dumps({**signed, "uri": "ar://x\ud800"})  # ensure_ascii: the escape goes over the wire as is
    resp = s.api.post("/v1/datasets", content=raw, headers={"content-type": "application/json"})
    body = assert_problem(resp, 422, "invalid_input", "uri", "unicode string")
    assert body["fields"] == ["uri"]
