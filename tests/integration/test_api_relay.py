"""Relayed registration against a real chain: signature checks before gas, idempotence, conflicts."""

from __future__ import annotations

from eth_account import Account
from sqlalchemy import select
from support.api_stack import Stack, assert_problem, h32, relayer_nonce, sign_registration, signed_body

from backend.models import RelayRecord


def test_typed_data_has_domain_and_current_nonce(sqlite_stack: Stack) -> None:
    owner = Account.create()
    typed = sqlite_stack.api.get("/v1/eip712/register-dataset", params={"owner": owner.address}).json()
    registry = sqlite_stack.deployment.contracts["ContributionRegistry"].address
    assert typed["domain"] == {
        "name": "Cairn ContributionRegistry",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": sqlite_stack.w3.to_checksum_address(registry),
    }
    assert typed["primaryType"] == "RegisterDataset"
    assert typed["message"]["nonce"] == 0 and typed["message"]["owner"] == owner.address
    assert typed["message"]["deadline"] > sqlite_stack.w3.eth.get_block("latest")["timestamp"]
    assert_problem(
        sqlite_stack.api.get("/v1/eip712/register-dataset", params={"owner": "0x" + "g" * 40}),
        422,
        "invalid_input",
        "owner must be a 0x-prefixed hex address",
    )
    body = assert_problem(sqlite_stack.api.get("/v1/eip712/register-dataset"), 422, "invalid_input", "owner")
    assert body["fields"] == ["owner"]


def test_relay_registers_once_and_is_idempotent(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = Account.create()
    body = signed_body(s, owner, "relayed-1")
    before = relayer_nonce(s)
    first = s.api.post("/v1/datasets", json=body)
    assert first.status_code == 202, first.text
    out = first.json()
    # "pending" when the node has not mined it by the time the API answers (a loaded machine)
    assert out["status"] in ("mined", "pending") and out["duplicate"] is False
    assert out["owner"] == owner.address
    receipt = s.w3.eth.wait_for_transaction_receipt(out["tx_hash"], timeout=60)
    assert receipt["status"] == 1
    # retry with the very same signed message: same hash, no second transaction
    for _ in range(2):
        again = s.api.post("/v1/datasets", json=body)
        assert again.status_code == 202 and again.json()["tx_hash"] == out["tx_hash"]
        assert again.json()["duplicate"] is True
    assert relayer_nonce(s) == before + 2  # commit, then reveal
    with s.api.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        assert len(conn.execute(select(RelayRecord)).fetchall()) >= 1
    # the owner now owns it on chain, and the mirror shows it after indexing
    record = s.contract("ContributionRegistry").functions.contributionOf(body["content_hash"]).call()
    assert record[0] == owner.address and record[1] == 1
    assert_problem(
        s.api.get(f"/v1/datasets/{body['content_hash']}"),
        404,
        "not_found",
        "indexed up to block",
        f"a relayed registration was sent in tx {out['tx_hash']}",
    )
    s.index()
    d = s.api.get(f"/v1/datasets/{body['content_hash']}").json()
    assert d["owner"] == owner.address and d["uri"] == "ar://relayed-1" and d["tx_hash"] == out["tx_hash"]
    status = s.api.get(f"/v1/relay/{out['tx_hash']}").json()
    assert status["status"] == "mined" and status["relay_id"] == out["relay_id"]
    # the next typed data carries the next nonce
    typed = s.api.get("/v1/eip712/register-dataset", params={"owner": owner.address}).json()
    assert typed["message"]["nonce"] == 1
    assert_problem(s.api.get(f"/v1/relay/{h32('unknown tx')}"), 404, "not_found", "no relayed registration")


def test_signature_for_a_submitted_for_b_is_rejected(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    alice, mallory = Account.create(), Account.create()
    body = signed_body(s, alice, "front-run")
    before = relayer_nonce(s)
    stolen = {**body, "owner": mallory.address}
    assert_problem(
        s.api.post("/v1/datasets", json=stolen), 422, "invalid_input", f"signature is not {mallory.address}'s"
    )
    # a changed field (the uri) also breaks the signature
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "uri": "ar://evil"}),
        422,
        "invalid_input",
        "signature is not",
    )
    assert relayer_nonce(s) == before  # no gas spent
    # after alice's own relay, the same signature for mallory is still refused
    assert s.api.post("/v1/datasets", json=body).status_code == 202
    assert_problem(s.api.post("/v1/datasets", json=stolen), 422, "invalid_input", "signature is not")


def test_bad_signatures_and_fields(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = Account.create()
    body = signed_body(s, owner, "bad-sigs")
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "signature": "0x1234"}),
        422,
        "invalid_input",
        "signature must be 65 bytes",
    )
    garbage = "0x" + "11" * 64 + "1b"
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "signature": garbage}), 422, "invalid_input", "signature"
    )
    sig = bytes.fromhex(body["signature"][2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = sig[:32] + (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "signature": "0x" + high_s.hex()}),
        422,
        "invalid_input",
        "high s",
    )
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "owner": "0x1234"}),
        422,
        "invalid_input",
        "owner must be 20 bytes",
    )
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "content_hash": "0x" + "00" * 32}),
        422,
        "invalid_input",
        "content_hash must not be zero",
    )
    assert_problem(
        s.api.post("/v1/datasets", json={**body, "metadata_hash": "0xabc"}),
        422,
        "invalid_input",
        "metadata_hash must be 32 bytes",
    )
    missing = {k: v for k, v in body.items() if k not in ("size", "deadline")}
    problem = assert_problem(
        s.api.post("/v1/datasets", json=missing), 422, "invalid_input", "size", "deadline"
    )
    assert problem["fields"] == ["deadline", "size"]
    problem = assert_problem(
        s.api.post("/v1/datasets", json={**body, "size": 2**64}), 422, "invalid_input", "size"
    )
    assert problem["fields"] == ["size"]


def test_expired_deadline_is_rejected(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = Account.create()
    past = int(s.w3.eth.get_block("latest")["timestamp"]) - 10
    body = signed_body(s, owner, "expired", deadline=past)
    assert_problem(s.api.post("/v1/datasets", json=body), 422, "invalid_input", f"deadline {past} has passed")


def test_already_registered_is_409(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = Account.create()
    taken = s.seeded["datasets"][0]
    params = {"owner": owner.address, "content_hash": taken, "size": 1}
    body = sign_registration(owner, s.api.get("/v1/eip712/register-dataset", params=params).json())
    assert body["content_hash"] == taken
    problem = assert_problem(
        s.api.post("/v1/datasets", json=body), 409, "conflict", f"content hash {taken} is already"
    )
    assert problem["content_hash"] == taken
