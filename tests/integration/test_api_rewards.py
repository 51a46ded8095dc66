"""Epochs, proofs, allocation files, policies and revenue from a real distributor (both databases)."""

from __future__ import annotations

from fractions import Fraction

from support.api_stack import FEE_BPS, PAYMENT, Stack, assert_problem, h32
from web3 import Web3

from backend.rewards.publication import allocations_dir
from cairn.core import merkle


def test_epoch_list(stack: Stack) -> None:
    body = stack.api.get("/v1/epochs").json()
    assert body["current_epoch"] == 2
    epochs = {e["epoch"]: e for e in body["epochs"]}
    assert list(epochs) == [1, 0]  # newest first
    assert epochs[0]["status"] == "accepted" and epochs[0]["root"] == stack.seeded["tree0"].root
    assert epochs[1]["status"] == "pending" and epochs[1]["root"] == stack.seeded["tree1"].root
    net = PAYMENT - PAYMENT * FEE_BPS // 10_000
    assert epochs[0]["funded"]["revenue"] == str(net)
    assert int(epochs[0]["funded"]["emission"]) > 0
    assert epochs[0]["pool"] == str(int(epochs[0]["funded"]["emission"]) + net)


def test_epoch_detail(stack: Stack) -> None:
    e0 = stack.api.get("/v1/epochs/0").json()
    assert e0["status"] == "accepted"
    assert e0["policy_hash"] == stack.seeded["policy_hash"]
    assert e0["total_cumulative"] == str(4 * 10**18)
    assert e0["allocation_uri"] == stack.seeded["uri0"]
    assert [r["status"] for r in e0["roots"]] == ["accepted"]
    e1 = stack.api.get("/v1/epochs/1").json()
    assert [(r["root"], r["status"]) for r in e1["roots"]] == [
        (stack.seeded["revoked_root"], "revoked"),
        (stack.seeded["tree1"].root, "pending"),
    ]
    assert e1["status"] == "pending" and e1["root"] == stack.seeded["tree1"].root
    open_epoch = stack.api.get("/v1/epochs/2").json()
    assert open_epoch["status"] == "open" and open_epoch["root"] is None


def test_epoch_errors(stack: Stack) -> None:
    assert_problem(
        stack.api.get("/v1/epochs/99"), 404, "not_found", "epoch 99 has not started (current epoch is 2)"
    )
    assert_problem(stack.api.get("/v1/epochs/-1"), 422, "invalid_input", "epoch must be between 0 and 2^63-1")
    body = assert_problem(stack.api.get("/v1/epochs/abc"), 422, "invalid_input", "epoch")
    assert body["fields"] == ["epoch"]


def test_proof_is_ready_for_claim(stack: Stack) -> None:
    o0, o1 = stack.owners[0].address, stack.owners[1].address
    p = stack.api.get(f"/v1/epochs/0/proofs/{o1.lower()}").json()
    assert p["account"] == o1 and p["cumulative_amount"] == str(10**18)
    assert p["root"] == stack.seeded["tree0"].root and p["claimable_now"] is True
    assert merkle.verify(p["root"], (o1, int(p["cumulative_amount"])), p["proof"])
    # the distributor accepts exactly these arguments (simulated, so the module's state stays put)
    dist = stack.contract("RewardDistributor")
    paid = dist.functions.claim(int(p["claim"]["cumulativeAmount"]), p["claim"]["proof"]).call({"from": o1})
    assert paid == 10**18
    mine = stack.api.get(f"/v1/epochs/0/proofs/{o0}").json()
    assert mine["claimed"] == str(3 * 10**18) and mine["claimable"] == "0"
    pending = stack.api.get(f"/v1/epochs/1/proofs/{o0}").json()
    assert pending["cumulative_amount"] == str(5 * 10**18) and pending["claimable_now"] is False
    assert pending["claimable"] == str(2 * 10**18)


def test_proof_errors(stack: Stack) -> None:
    nobody = Web3.to_checksum_address("0x" + "ab" * 20)
    assert_problem(
        stack.api.get(f"/v1/epochs/0/proofs/{nobody}"),
        404,
        "not_found",
        f"{nobody} has no entitlement in epoch 0",
    )
    assert_problem(
        stack.api.get(f"/v1/epochs/2/proofs/{nobody}"), 404, "not_found", "epoch 2 has no published root"
    )
    assert_problem(
        stack.api.get("/v1/epochs/0/proofs/0xabc"), 422, "invalid_input", "address must be 20 bytes"
    )


def test_allocation_file_by_uri_and_hash(stack: Stack) -> None:
    uri = stack.seeded["uri0"]
    name = uri.rsplit("/", 1)[1]
    by_name = stack.api.get(f"/v1/allocations/{name}")
    assert by_name.status_code == 200 and by_name.headers["content-type"].startswith("application/json")
    assert "0x" + Web3.keccak(by_name.content).hex().removeprefix("0x") == name.removesuffix(".json")
    doc = by_name.json()
    assert (
        doc["format"] == "cairn-allocation-v1"
        and doc["epoch"] == 0
        and doc["root"] == stack.seeded["tree0"].root
    )
    assert doc["policy_hash"] == stack.seeded["policy_hash"]
    assert merkle.MerkleTree.load(doc["tree"]).root == stack.seeded["tree0"].root
    assert stack.api.get(f"/v1/allocations/{uri}").content == by_name.content
    assert stack.api.get(f"/v1/allocations/{name.removesuffix('.json')}").content == by_name.content
    missing = h32("no such file")
    assert_problem(
        stack.api.get(f"/v1/allocations/{missing}"), 404, "not_found", "no allocation file with hash"
    )
    assert_problem(
        stack.api.get("/v1/allocations/..%2F..%2Fetc%2Fpasswd"), 422, "invalid_input", "is not a content hash"
    )


def test_tampered_allocation_file_is_refused(stack: Stack) -> None:
    fake = h32("tampered")
    folder = allocations_dir(stack.settings.data_dir)
    (folder / f"{fake}.json").write_bytes(b'{"format": "cairn-allocation-v1"}')
    assert_problem(
        stack.api.get(f"/v1/allocations/{fake}"), 409, "allocation_mismatch", "does not hash to its name"
    )


def test_policy_by_hash(stack: Stack) -> None:
    h = stack.seeded["policy_hash"]
    resp = stack.api.get(f"/v1/policy/{h}")
    assert resp.status_code == 200
    assert "0x" + Web3.keccak(resp.content).hex().removeprefix("0x") == h
    assert "attestation" in resp.json()
    custom = stack.api.get(f"/v1/policy/{stack.seeded['custom_policy_hash']}")  # only in an allocation file
    assert custom.status_code == 200 and custom.json()["account_cap_bps"] == 9000
    assert "0x" + Web3.keccak(custom.content).hex().removeprefix("0x") == stack.seeded["custom_policy_hash"]
    missing = h32("no policy")
    assert_problem(stack.api.get(f"/v1/policy/{missing}"), 404, "not_found", f"no policy with hash {missing}")
    assert_problem(
        stack.api.get("/v1/policy/v1"), 422, "invalid_input", "policy_hash must be 0x-prefixed hex"
    )


def test_epoch_revenue(stack: Stack) -> None:
    r = stack.api.get("/v1/epochs/0/revenue").json()
    fee = PAYMENT * FEE_BPS // 10_000
    assert r["models"] == [
        {
            "model_id": stack.seeded["model_id"],
            "amount": str(PAYMENT),
            "fee": str(fee),
            "net": str(PAYMENT - fee),
            "requests": 1,
            "settlements": 1,
        }
    ]
    assert r["total_amount"] == str(PAYMENT) and r["total_net"] == str(PAYMENT - fee)
    assert stack.api.get("/v1/epochs/1/revenue").json()["models"] == []
    assert_problem(stack.api.get("/v1/epochs/x/revenue"), 422, "invalid_input", "epoch")


def _gini_and_lorenz(amounts: list[int], x: Fraction) -> tuple[Fraction, Fraction]:
    """Straightforward Gini (mean absolute difference over twice the mean) and the Lorenz curve at `x`."""
    n, total = len(amounts), sum(amounts)
    gini = Fraction(sum(abs(a - b) for a in amounts for b in amounts), 2 * n * total)
    ranked = sorted(amounts)
    whole = int(x * n)
    y = Fraction(sum(ranked[:whole]), total)
    if whole < n:
        y += (x * n - whole) * Fraction(ranked[whole], total)
    return gini, y


def test_distribution_matches_the_allocation_file(stack: Stack) -> None:
    for epoch in (0, 1):
        d = stack.api.get(f"/v1/epochs/{epoch}/distribution")
        assert d.status_code == 200, d.text
        body = d.json()
        assert body["root"] == stack.api.get(f"/v1/epochs/{epoch}").json()["root"]
        doc = stack.api.get(f"/v1/allocations/{body['allocation_file']}").json()
        amounts = [int(a) for a in doc["epoch_amounts"].values()]
        assert body["leaves"] == len(amounts) and body["total"] == str(sum(amounts))
        assert len(body["lorenz"]) == 101
        for k, (x, y) in enumerate(body["lorenz"]):
            gini, want = _gini_and_lorenz(amounts, Fraction(k, 100))
            assert x == k / 100 and abs(y - float(want)) < 1e-12
        assert abs(body["gini"] - float(gini)) < 1e-12


def test_distribution_errors(stack: Stack) -> None:
    assert_problem(
        stack.api.get("/v1/epochs/2/distribution"), 404, "not_found", "epoch 2 has no published root"
    )
    assert_problem(stack.api.get("/v1/epochs/abc/distribution"), 422, "invalid_input", "epoch")
