"""Keyset pages over real data (a module's own seeded stack: anvil, contracts, the indexer's SQLite mirror):
the signed-in contributions and claims, and the x402 payments, each walked page by page with `limit=1`
returns every item once, in order; a cursor taken before new rows arrive still continues where it stopped.
And, on the same seeded chain, the operator's close of an epoch whose roots came from elsewhere."""

from __future__ import annotations

import time
from typing import Any

from support.api_stack import CHALLENGE_DELAY, Stack, assert_problem, h32, travel_to
from support.siwe import sign_in

from backend.api.auth import store as auth_store
from backend.api.x402 import store
from cairn.core.registration import dataset_calls


def _walk(s: Stack, path: str, key: str, headers: dict[str, str] | None = None, **params: Any) -> list[Any]:
    """Every page of `limit` (1 unless given) from `cursor` (else the start), following next_cursor."""
    out: list[dict[str, Any]] = []
    cursor = params.pop("cursor", None)
    for _ in range(1000):
        query = {"limit": 1, **params, **({"cursor": cursor} if cursor else {})}
        resp = s.api.get(path, params=query, headers=headers or {})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body[key]) <= query["limit"]
        out += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("more than 1000 pages")


def _bearer(s: Stack, owner: Any) -> dict[str, str]:
    answer = sign_in(s.api, "", owner)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _register(s: Stack, owner: Any, label: str) -> str:
    registry = s.contract("ContributionRegistry")
    ch = h32(label)
    for step in dataset_calls(registry, owner.address, ch, 4096, 1, h32(f"meta-{label}"), f"ar://{label}"):
        s.transact(owner, step)
    return ch


def _id(item: dict[str, Any]) -> str:
    return str(item.get("content_hash") or item["contribution_id"])


def test_my_contributions_pages_walk_datasets_and_compute_once_newest_first(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = s.owners[1]  # one dataset and one compute job in the seed
    registry = s.contract("ContributionRegistry")
    for i in range(3):
        _register(s, owner, f"pages-{i}")
    s.transact(owner, registry.functions.registerCompute(h32("pages-job"), 5, h32("model-a"), h32("res-p")))
    s.index()
    auth = _bearer(s, owner)
    whole = s.api.get("/v1/me/contributions", params={"limit": 100}, headers=auth).json()
    assert whole["dataset_count"] == 4 and whole["compute_count"] == 2 and whole["next_cursor"] is None
    items = whole["items"]
    assert len(items) == 6 and {i["kind"] for i in items} == {"dataset", "compute"}
    keys = [(i["block_number"], i["tx_hash"]) for i in items]
    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=True)  # newest first
    assert all(i["owner"] == owner.address and "quorum_met" in i["status"] for i in items)
    walked = _walk(s, "/v1/me/contributions", "items", auth)
    assert walked == items  # every one once, in order
    assert [_id(i) for i in _walk(s, "/v1/me/contributions", "items", auth, limit=4)] == [
        _id(i) for i in items
    ]
    # a cursor taken before new contributions arrive continues with the rest, none repeated, none skipped
    first = s.api.get("/v1/me/contributions", params={"limit": 2}, headers=auth).json()
    assert [_id(i) for i in first["items"]] == [_id(i) for i in items[:2]] and first["next_cursor"]
    newer = _register(s, owner, "pages-late")
    s.index()
    rest = _walk(s, "/v1/me/contributions", "items", auth, cursor=first["next_cursor"])
    assert [_id(i) for i in rest] == [_id(i) for i in items[2:]]
    again = s.api.get("/v1/me/contributions", params={"limit": 100}, headers=auth).json()
    assert [_id(i) for i in again["items"]] == [newer] + [_id(i) for i in items]
    assert again["dataset_count"] == 5
    # another account's rows never show; a bad cursor or limit is one clear 422
    other = s.api.get("/v1/me/contributions", params={"limit": 100}, headers=_bearer(s, s.owners[0])).json()
    assert not {_id(i) for i in other["items"]} & {_id(i) for i in again["items"]}
    for bad in ({"cursor": "x-y"}, {"cursor": "1-2-3-4"}):
        assert_problem(
            s.api.get("/v1/me/contributions", params=bad, headers=auth), 422, "invalid_input", "cursor"
        )
    too_many = {"limit": s.settings.api_page_limit + 1}
    assert_problem(
        s.api.get("/v1/me/contributions", params=too_many, headers=auth), 422, "invalid_input", "limit"
    )


def test_my_claims_pages_walk_every_claim_once_newest_first(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = s.owners[0]  # claimed epoch 0 in the seed; epoch 1's root is pending
    dist = s.contract("RewardDistributor")
    auth = _bearer(s, owner)
    before = s.api.get("/v1/me/claims", headers=auth).json()
    assert len(before["claims"]) == 1 and before["next_cursor"] is None
    now = int(s.w3.eth.get_block("latest")["timestamp"])
    travel_to(s, now + CHALLENGE_DELAY + 1)
    s.transact(s.admin, dist.functions.acceptRoot())
    amount, proof = s.seeded["tree1"].proof_for(owner.address)
    s.transact(owner, dist.functions.claim(amount, proof))
    s.index()
    whole = s.api.get("/v1/me/claims", params={"limit": 100}, headers=auth).json()
    assert [c["cumulative_amount"] for c in whole["claims"]] == [str(amount), before["claims"][0]["amount"]]
    assert _walk(s, "/v1/me/claims", "claims", auth) == whole["claims"]
    bad = s.api.get("/v1/me/claims", params={"cursor": "1-2-3"}, headers=auth)  # `<block>-<log>`
    assert_problem(bad, 422, "invalid_input", "cursor")


def _record(s: Stack, payer: str, n: int) -> int:
    return store.record(
        s.api.app.state.engine, chain_id=31337, scheme="exact", payer=payer, nonce=h32(f"nonce-{payer}-{n}"),
        amount=10 + n, model_id=s.seeded["model_id"], resource="/v1/chat/completions",
        authorization={"n": n}, balance=10**30, limit=10**30,
    )  # fmt: skip


def test_payments_pages_walk_every_payment_once_oldest_first(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    a, b = s.owners[0].address, s.owners[1].address
    ids = [_record(s, a if n % 3 else b, n) for n in range(7)]
    assert store.void(s.api.app.state.engine, ids[1], "route failed")
    whole = s.api.get("/v1/payments", params={"limit": 100}).json()
    assert [p["id"] for p in whole["payments"]] == ids and whole["next_cursor"] is None
    assert _walk(s, "/v1/payments", "payments") == whole["payments"]
    mine = _walk(s, "/v1/payments", "payments", payer=a, limit=2)
    assert [p["id"] for p in mine] == [i for n, i in enumerate(ids) if n % 3]
    voided = _walk(s, "/v1/payments", "payments", status="void")
    assert [p["id"] for p in voided] == [ids[1]] and voided[0]["reason"] == "route failed"
    assert _walk(s, "/v1/payments/failed", "payments") == []
    # ids only grow: a cursor taken before new payments continues with the rest and then the new ones
    first = s.api.get("/v1/payments", params={"limit": 3}).json()
    late = [_record(s, a, 100 + n) for n in range(2)]
    rest = _walk(s, "/v1/payments", "payments", cursor=first["next_cursor"], limit=2)
    assert [p["id"] for p in first["payments"] + rest] == ids + late
    with_exposure = s.api.get("/v1/payments", params={"payer": a, "limit": 1}).json()
    assert with_exposure["exposure"]["payer"] == a.lower() and with_exposure["next_cursor"]
    assert_problem(s.api.get("/v1/payments", params={"cursor": "x"}), 422, "invalid_input", "cursor")


def test_closing_epoch_0_under_roots_computed_elsewhere_is_409_naming_why(sqlite_stack: Stack) -> None:
    """The seed proposed and accepted epoch 0's root without the rewards engine: the operator's close can
    only refuse, and says why (it used to name an "epoch -1")."""
    s = sqlite_stack
    secret, _ = auth_store.create_key(
        s.api.app.state.engine, name="pages", scopes=["epochs:write"], now=int(time.time())
    )
    answer = s.api.post("/v1/operator/epochs/0/close", headers={"X-API-Key": secret})
    body = assert_problem(answer, 409, "epoch_not_ready", "epoch 0 cannot be computed here", "next epoch is")
    assert "-1" not in body["detail"]
