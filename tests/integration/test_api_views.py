"""Public per-address views against a real chain and the real indexer: a validator's review queue (with the
content link), attesting by signature through the relay until the mirror shows it, an account's history,
CSV / Parquet exports equal to the mirror's rows, and keyset pagination that walks every row once."""

from __future__ import annotations

import csv
import io
from typing import Any

import pyarrow.parquet as pq
from eth_account import Account
from sqlalchemy import text
from support.api_stack import Stack, assert_problem, h32

from backend.api.services.queue import content_store
from cairn.core import eip712
from cairn.core.content import content_hash


def _sign(signer: Any, typed: dict[str, Any]) -> str:
    return "0x" + bytes(Account.sign_typed_data(signer.key, full_message=typed).signature).hex()


def _common(s: Stack, signer: str) -> dict[str, Any]:
    reg = s.contract("ContributionRegistry")
    return {
        "chain_id": 31337,
        "verifying_contract": reg.address,
        "nonce": int(reg.functions.nonces(signer).call()),
        "deadline": int(s.w3.eth.get_block("latest")["timestamp"]) + 3600,
    }


def _walk(s: Stack, path: str, key: str = "items", **params: Any) -> list[dict[str, Any]]:
    """Every page with `limit=1`, following next_cursor; asserts no row comes twice."""
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        resp = s.api.get(path, params={**params, "limit": 1, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    seen = [repr(sorted(r.items())) for r in out]
    assert len(seen) == len(set(seen)), "a row came twice"
    return out


def _queue(s: Stack, validator: str) -> dict[str, dict[str, Any]]:
    body = s.api.get(f"/v1/validators/{validator}/queue", params={"limit": 100}).json()
    return {i["contribution_id"]: i for i in body["items"]}


def test_validator_sees_its_queue_attests_by_signature_and_the_status_changes(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    v = s.validators[1]
    ds = s.seeded["datasets"]
    queue = _queue(s, v.address)
    # not attested by v: dataset 2 and the compute job; dataset 0 is (v attested it), dataset 1 is withdrawn
    assert set(queue) == {ds[2], s.seeded["compute_id"]}
    assert queue[ds[2]]["content_available"] is False and queue[ds[2]]["content_url"] is None
    assert queue[s.seeded["compute_id"]]["attested_by"] == 1
    # a dataset whose bytes are in the content store, registered gaslessly through the relay
    data = b"reviewable bytes " * 64
    digest = content_hash(data)
    content_store(s.settings).put_bytes(digest, data)
    owner = Account.create()
    item = eip712.Dataset("0x" + digest.hex(), len(data), 1, h32("meta-review"), "ar://review")
    c = _common(s, owner.address)
    typed = eip712.register_datasets_typed_data(owner=owner.address, datasets=[item], **c)
    resp = s.api.post("/v1/relay/datasets", json={
        "owner": owner.address, "deadline": c["deadline"], "signature": _sign(owner, typed),
        "datasets": [{"content_hash": item.content_hash, "size": item.size, "license_id": 1,
                      "metadata_hash": item.metadata_hash, "uri": item.uri}],
    })  # fmt: skip
    assert resp.status_code == 202, resp.text
    s.w3.eth.wait_for_transaction_receipt(resp.json()["tx_hash"], timeout=60)
    s.index()
    queued = _queue(s, v.address)[item.content_hash]
    assert queued["content_available"] is True and queued["attested_by"] == 0
    assert queued["content_url"] == f"/v1/content/{item.content_hash}"
    assert queued["owner"] == owner.address and queued["size"] == len(data)
    before = s.api.get(f"/v1/contributions/{item.content_hash}").json()
    assert before["attestations"] == []
    # the validator attests by signature; the relayer sends attestFor
    c = _common(s, v.address)
    typed = eip712.attest_typed_data(validator=v.address, contribution_id=item.content_hash, score=7500, **c)
    resp = s.api.post("/v1/relay/attest", json={
        "validator": v.address, "deadline": c["deadline"], "signature": _sign(v, typed),
        "contribution_id": item.content_hash, "score": 7500,
    })  # fmt: skip
    assert resp.status_code == 202, resp.text
    assert s.w3.eth.wait_for_transaction_receipt(resp.json()["tx_hash"], timeout=60)["status"] == 1
    s.index()
    after = s.api.get(f"/v1/contributions/{item.content_hash}").json()
    got = [(a["validator"].lower(), a["score"]) for a in after["attestations"]]
    assert got == [(v.address.lower(), 7500)]
    assert after["score"] != before["score"]
    assert item.content_hash not in _queue(s, v.address)  # it left this validator's queue only
    assert item.content_hash in _queue(s, s.validators[0].address)
    # the attestation is in the validator's history like a direct one
    hist = s.api.get(f"/v1/accounts/{v.address}/history", params={"kinds": "attestation"}).json()["items"]
    assert hist[0]["contribution_id"] == item.content_hash and hist[0]["score"] == 7500
    assert {h["kind"] for h in hist} == {"attestation"}


def test_account_history_has_registrations_rewards_claims_and_payments(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    o0 = s.owners[0].address
    items = s.api.get(f"/v1/accounts/{o0}/history", params={"limit": 100}).json()["items"]
    kinds = [i["kind"] for i in items]
    assert kinds.count("registration") == 2 and kinds.count("claim") == 1
    rewards = {i["epoch"]: i for i in items if i["kind"] == "reward"}
    assert rewards[0]["amount"] == str(3 * 10**18) and rewards[0]["cumulative_amount"] == str(3 * 10**18)
    assert rewards[1]["amount"] == str(2 * 10**18) and rewards[1]["cumulative_amount"] == str(5 * 10**18)
    assert rewards[1]["root"] == s.seeded["tree1"].root
    claim = next(i for i in items if i["kind"] == "claim")
    assert claim["amount"] == str(3 * 10**18)
    keys = [(i["block_number"], i["log_index"], i["item_index"]) for i in items]
    assert keys == sorted(keys, reverse=True)  # newest first
    payments = s.api.get(f"/v1/accounts/{s.payer.address}/history", params={"kinds": "payment"}).json()
    assert [p["model_id"] for p in payments["items"]] == [s.seeded["model_id"]]
    assert_problem(
        s.api.get(f"/v1/accounts/{o0}/history", params={"kinds": "bribes"}), 422, "invalid_input", "kinds"
    )
    assert_problem(
        s.api.get(f"/v1/accounts/{o0}/history", params={"cursor": "x-y"}), 422, "invalid_input", "cursor"
    )


def test_pagination_walks_every_row_once(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    o0 = s.owners[0].address
    whole = s.api.get(f"/v1/accounts/{o0}/history", params={"limit": 100}).json()["items"]
    assert _walk(s, f"/v1/accounts/{o0}/history") == whole and len(whole) >= 5
    epochs = s.api.get("/v1/epochs", params={"limit": 100}).json()
    assert _walk(s, "/v1/epochs", key="epochs") == epochs["epochs"] and len(epochs["epochs"]) >= 2
    datasets = s.api.get("/v1/datasets", params={"limit": 100}).json()["items"]
    assert _walk(s, "/v1/datasets") == datasets
    v = s.validators[0].address
    assert _walk(s, f"/v1/validators/{v}/queue") == list(_queue(s, v).values())


def _db(s: Stack, sql: str) -> list[dict[str, Any]]:
    with s.api.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        return [dict(r._mapping) for r in conn.execute(text(sql))]


def _export(s: Stack, name: str) -> list[dict[str, Any]]:
    resp = s.api.get(f"/v1/exports/{name}")
    assert resp.status_code == 200, resp.text
    if name.endswith(".csv"):
        assert resp.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(resp.text)))
    assert resp.headers["content-type"] == "application/vnd.apache.parquet"
    return list(pq.read_table(io.BytesIO(resp.content)).to_pylist())


def _str(rows: list[dict[str, Any]], columns: list[str]) -> list[tuple[str, ...]]:
    def one(c: str, v: Any) -> str:
        if c == "withdrawn" and not isinstance(v, str):  # the database's 0/1, Parquet's bool
            return "true" if v else "false"
        return "" if v is None else str(v)

    return [tuple(one(c, r[c]) for c in columns) for r in rows]


def test_exports_parse_back_and_equal_the_database_rows(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    expected = {
        "claims": (["account", "amount", "cumulative_amount", "tx_hash", "block_number", "log_index"],
                   "SELECT * FROM ev_claimed ORDER BY block_number, log_index"),
        "payments": (["payer", "model_id", "epoch", "amount", "fee", "request_hash", "block_number"],
                     "SELECT * FROM ev_payment_settled ORDER BY block_number, log_index"),
        "contributions": (["contribution_id", "kind", "owner", "size", "uri", "withdrawn", "block_number"],
                          "SELECT * FROM v_contributions ORDER BY block_number, log_index, item_index"),
    }  # fmt: skip
    for kind, (columns, sql) in expected.items():
        want = _str(_db(s, sql), columns)
        assert want, kind
        for fmt in ("csv", "parquet"):
            got = _export(s, f"{kind}.{fmt}")
            assert _str(got, columns) == want, (kind, fmt)
    # allocations: every leaf of every live root, the epoch's amount and the cumulative
    tree0, tree1 = s.seeded["tree0"], s.seeded["tree1"]
    want_alloc = []
    for epoch, tree, prev in ((0, tree0, {}), (1, tree1, dict(tree0.values))):
        for account, cumulative in sorted(tree.values, key=lambda v: v[0].lower()):
            before = prev.get(account, 0)
            amount = str(cumulative - before)
            want_alloc.append((str(epoch), tree.root, account.lower(), amount, str(cumulative)))
    cols = ["epoch", "root", "account", "amount", "cumulative_amount"]
    for fmt in ("csv", "parquet"):
        assert _str(_export(s, f"allocations.{fmt}"), cols) == want_alloc, fmt
    assert_problem(s.api.get("/v1/exports/secrets.csv"), 422, "invalid_input", "export must be")
    assert_problem(s.api.get("/v1/exports/claims.xlsx"), 422, "invalid_input", "csv or parquet")
