"""The signed-in views on the shared seeded stack (tests/support/api_stack.py): epoch 0 accepted and claimed
by owner 0, epoch 1 with a revoked root and a pending one; owner 0 signs in with SIWE over the app."""

from __future__ import annotations

import pytest
from support.api_stack import shared_stack
from support.siwe import sign_in


def test_rewards_per_epoch_claims_and_contributions_of_the_signed_in_owner(
    request: pytest.FixtureRequest,
) -> None:
    stack = shared_stack(request, "sqlite")
    owner = stack.owners[0]
    answer = sign_in(stack.api, "", owner)
    assert answer.status_code == 200, answer.text
    auth = {"Authorization": f"Bearer {answer.json()['token']}"}
    rewards = stack.api.get("/v1/me/rewards", headers=auth).json()
    tree0, tree1 = stack.seeded["tree0"], stack.seeded["tree1"]
    first, second = tree0.proof_for(owner.address)[0], tree1.proof_for(owner.address)[0]
    assert first == 3 * 10**18 and second == 5 * 10**18
    # epoch 1's live root is the pending one (the revoked root's leaf is not counted)
    assert [(e["epoch"], e["root"], e["cumulative"], e["amount"]) for e in rewards["epochs"]] == [
        (0, tree0.root, str(first), str(first)),
        (1, tree1.root, str(second), str(second - first)),
    ]
    assert rewards["cumulative"] == str(second) and rewards["claimed"] == str(first)
    claim_epoch = 1 if rewards["epochs"][1]["claimable_now"] else 0
    assert rewards["claim"]["epoch"] == claim_epoch
    assert rewards["claimable"] == str((second if claim_epoch else first) - first)
    assert rewards["claim"]["claim"]["proof"] == (tree1 if claim_epoch else tree0).proof_for(owner.address)[1]
    claims = stack.api.get("/v1/me/claims", headers=auth).json()["claims"]
    assert [(c["amount"], c["cumulative_amount"], c["caller"]) for c in claims] == [
        (str(first), str(first), owner.address)
    ]
    mine = stack.api.get("/v1/me/contributions", headers=auth).json()
    assert mine["address"] == owner.address and mine["dataset_count"] == 2
    by_hash = {d["content_hash"]: d for d in mine["items"] if d["kind"] == "dataset"}
    attested = by_hash[stack.seeded["datasets"][0]]["status"]
    assert attested["score"]["validators"] == 2 and attested["quorum"] == 3 and not attested["quorum_met"]
    assert {a["score"] for a in attested["attestations"]} == {9000, 6000}
    assert by_hash[stack.seeded["datasets"][1]]["withdrawn"] is True
    other = sign_in(stack.api, "", stack.owners[1]).json()["token"]
    theirs = stack.api.get("/v1/me/claims", headers={"Authorization": f"Bearer {other}"}).json()
    assert theirs == {"address": stack.owners[1].address, "claims": [], "next_cursor": None}
