"""Every kind the registry accepts by signature, relayed for wallets without gas against a real chain (batch
registrations in both shapes, compute jobs, withdrawal, a validator's attestations), and `claimFor` after an
epoch; refusals before any gas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from support.api_stack import Stack, assert_problem, h32

from cairn.cli.devchain import rpc_call
from cairn.core import eip712
from cairn.core.registration import compute_id


def _registry(s: Stack) -> Any:
    return s.contract("ContributionRegistry")


def _sign(signer: LocalAccount, typed: dict[str, Any]) -> str:
    return "0x" + bytes(Account.sign_typed_data(signer.key, full_message=typed).signature).hex()


def _common(s: Stack, signer: str) -> dict[str, Any]:
    """Domain and nonce as a wallet gets them from the API (checked against the chain)."""
    reg = _registry(s)
    got = s.api.get("/v1/eip712/registry", params={"signer": signer}).json()
    assert got["domain"] == eip712.registry_domain(31337, reg.address)
    assert got["nonce"] == int(reg.functions.nonces(signer).call())
    assert got["types"]["AttestBatch"] == eip712.TYPES["AttestBatch"] and "Dataset" in got["types"]
    return {
        "chain_id": got["domain"]["chainId"],
        "verifying_contract": got["domain"]["verifyingContract"],
        "nonce": got["nonce"],
        "deadline": int(s.w3.eth.get_block("latest")["timestamp"]) + 3600,
    }


def _mined(s: Stack, out: dict[str, Any]) -> dict[str, Any]:
    receipt = s.w3.eth.wait_for_transaction_receipt(out["tx_hash"], timeout=60)
    assert receipt["status"] == 1, receipt
    status = s.api.get(f"/v1/relays/{out['relay_id']}").json()
    assert status["status"] == "mined", status
    return status


def _post(s: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = s.api.post(path, json=body)
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def _items(label: str, n: int) -> list[eip712.Dataset]:
    meta = h32(f"{label}-meta")
    return [eip712.Dataset(h32(f"{label}-{i}"), 100 + i, 3, meta, f"ar://{label}/{i}") for i in range(n)]


def _no_gas(s: Stack, who: LocalAccount) -> None:
    assert s.w3.eth.get_balance(who.address) == 0  # it never paid anything: the relayer did


def test_batch_registrations_in_both_shapes_are_relayed(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = Account.create()
    reg = _registry(s)
    # shape 1: RegisterDatasets, each dataset with its own fields
    items = _items("many", 3)
    c = _common(s, owner.address)
    typed = eip712.register_datasets_typed_data(owner=owner.address, datasets=items, **c)
    body = {
        "owner": owner.address,
        "deadline": c["deadline"],
        "signature": _sign(owner, typed),
        "datasets": [
            {"content_hash": d.content_hash, "size": d.size, "license_id": d.license_id,
             "metadata_hash": d.metadata_hash, "uri": d.uri}
            for d in items
        ],
    }  # fmt: skip
    out = _post(s, "/v1/relay/datasets", body)
    assert out["kind"] == "datasets" and out["content_hash"] == items[0].content_hash
    status = _mined(s, out)
    assert status["phase"] == "reveal" and status["commit_tx_hash"] in status["tx_hashes"]
    assert len(status["tx_hashes"]) == 2  # commit, then reveal: no fee bump on anvil
    for d in items:
        assert reg.functions.contributionOf(d.content_hash).call()[0] == owner.address
    again = s.api.post("/v1/relay/datasets", json=body).json()  # the same signed message: no new transaction
    assert again["duplicate"] is True and again["relay_id"] == out["relay_id"]
    # shape 2: RegisterDatasetBatch, shared licence, metadata and uri
    hashes = [h32(f"shared-{i}") for i in range(4)]
    batch = eip712.DatasetBatch(tuple(hashes), (10, 20, 30, 40), 5, h32("shared-meta"), "ar://shared")
    c = _common(s, owner.address)
    assert c["nonce"] == 1
    typed = eip712.register_dataset_batch_typed_data(owner=owner.address, batch=batch, **c)
    out = _post(s, "/v1/relay/dataset-batch", {
        "owner": owner.address, "deadline": c["deadline"], "signature": _sign(owner, typed),
        "content_hashes": hashes, "sizes": [10, 20, 30, 40], "license_id": 5,
        "metadata_hash": h32("shared-meta"), "uri": "ar://shared",
    })  # fmt: skip
    assert out["kind"] == "dataset_batch"
    _mined(s, out)
    for h in hashes:
        assert reg.functions.contributionOf(h).call()[0] == owner.address
    _no_gas(s, owner)
    s.index()
    page = s.api.get("/v1/datasets", params={"owner": owner.address, "limit": 100}).json()
    assert {d["content_hash"] for d in page["items"]} == {d.content_hash for d in items} | set(hashes)
    # a batch naming a hash that is registered already is refused before any gas
    c = _common(s, owner.address)
    dup = [items[0], *_items("fresh", 1)]
    typed = eip712.register_datasets_typed_data(owner=owner.address, datasets=dup, **c)
    body = {**body, "deadline": c["deadline"], "signature": _sign(owner, typed), "datasets": [
        {"content_hash": d.content_hash, "size": d.size, "license_id": d.license_id,
         "metadata_hash": d.metadata_hash, "uri": d.uri} for d in dup
    ]}  # fmt: skip
    assert_problem(s.api.post("/v1/relay/datasets", json=body), 409, "conflict", "already registered")


def test_compute_jobs_and_withdrawal_are_relayed(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    provider = Account.create()
    reg = _registry(s)
    job = eip712.ComputeJob(h32("job-r1"), 360, h32("model-a"), h32("result-r1"))
    c = _common(s, provider.address)
    typed = eip712.register_compute_typed_data(provider=provider.address, job=job, **c)
    out = _post(s, "/v1/relay/compute", {
        "provider": provider.address, "deadline": c["deadline"], "signature": _sign(provider, typed),
        "job_id": job.job_id, "work_units": 360, "model_id": job.model_id, "result_hash": job.result_hash,
    })  # fmt: skip
    cid = "0x" + compute_id(provider.address, job.job_id).hex()
    assert out["kind"] == "compute" and out["content_hash"] == cid
    assert _mined(s, out)["phase"] == "send"
    assert reg.functions.contributionOf(cid).call()[0] == provider.address
    jobs = [eip712.ComputeJob(h32(f"job-m{i}"), i + 1, h32("model-a"), h32(f"res-m{i}")) for i in range(3)]
    c = _common(s, provider.address)
    typed = eip712.register_computes_typed_data(provider=provider.address, jobs=jobs, **c)
    out = _post(s, "/v1/relay/computes", {
        "provider": provider.address, "deadline": c["deadline"], "signature": _sign(provider, typed),
        "jobs": [{"job_id": j.job_id, "work_units": j.work_units, "model_id": j.model_id,
                  "result_hash": j.result_hash} for j in jobs],
    })  # fmt: skip
    _mined(s, out)
    for j in jobs:
        record = reg.functions.contributionOf(compute_id(provider.address, j.job_id)).call()
        assert record[0] == provider.address
    # withdrawal of the first job, by signature
    c = _common(s, provider.address)
    typed = eip712.withdraw_typed_data(owner=provider.address, contribution_id=cid, **c)
    body = {"owner": provider.address, "deadline": c["deadline"], "signature": _sign(provider, typed),
            "contribution_id": cid}  # fmt: skip
    _mined(s, _post(s, "/v1/relay/withdraw", body))
    assert reg.functions.contributionOf(cid).call()[2] is True  # withdrawn
    _no_gas(s, provider)
    # the same withdrawal signed by someone else for the provider: refused before any gas
    c = _common(s, provider.address)
    other = Account.create()
    typed = eip712.withdraw_typed_data(owner=provider.address, contribution_id=cid, **c)
    bad = {**body, "deadline": c["deadline"], "signature": _sign(other, typed)}
    assert_problem(s.api.post("/v1/relay/withdraw", json=bad), 422, "invalid_input", "signed by")


def test_validator_attestations_are_relayed_and_refused_for_non_validators(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    v = s.validators[1]
    target = s.seeded["datasets"][2]
    c = _common(s, v.address)
    typed = eip712.attest_typed_data(validator=v.address, contribution_id=target, score=4321, **c)
    body = {"validator": v.address, "deadline": c["deadline"], "signature": _sign(v, typed),
            "contribution_id": target, "score": 4321}  # fmt: skip
    out = _post(s, "/v1/relay/attest", body)
    assert out["kind"] == "attest"
    _mined(s, out)
    s.index()
    atts = s.api.get(f"/v1/contributions/{target}").json()["attestations"]
    assert any(a["validator"].lower() == v.address.lower() and a["score"] == 4321 for a in atts), atts
    # a batch under one signature
    ids = [s.seeded["datasets"][0], s.seeded["compute_id"]]
    c = _common(s, v.address)
    typed = eip712.attest_batch_typed_data(validator=v.address, contribution_ids=ids, scores=[100, 200], **c)
    out = _post(s, "/v1/relay/attest-batch", {
        "validator": v.address, "deadline": c["deadline"], "signature": _sign(v, typed),
        "contribution_ids": ids, "scores": [100, 200],
    })  # fmt: skip
    _mined(s, out)
    # a key without VALIDATOR_ROLE: the registry would reject it, so nothing is sent
    nobody = Account.create()
    c = _common(s, nobody.address)
    typed = eip712.attest_typed_data(validator=nobody.address, contribution_id=target, score=1, **c)
    resp = s.api.post("/v1/relay/attest", json={
        "validator": nobody.address, "deadline": c["deadline"], "signature": _sign(nobody, typed),
        "contribution_id": target, "score": 1,
    })  # fmt: skip
    assert_problem(resp, 422, "invalid_input", "AccessControlUnauthorizedAccount")
    assert_problem(
        s.api.post("/v1/relay/attest", json={**body, "score": 10_001}), 422, "invalid_input", "score"
    )


def test_claim_is_relayed_for_an_account_without_gas(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    dist, token = s.contract("RewardDistributor"), s.contract("RewardToken")
    who = s.owners[1].address  # 1e18 under the accepted root of epoch 0, never claimed
    assert int(dist.functions.claimed(who).call()) == 0
    before = int(token.functions.balanceOf(who).call())
    gas_before = s.w3.eth.get_balance(who)
    out = _post(s, "/v1/relay/claim", {"account": who})
    assert out["kind"] == "claim" and out["owner"] == who
    _mined(s, out)
    assert int(dist.functions.claimed(who).call()) == 10**18
    assert int(token.functions.balanceOf(who).call()) == before + 10**18
    assert s.w3.eth.get_balance(who) == gas_before  # the relayer paid the gas
    again = s.api.post("/v1/relay/claim", json={"account": who})
    assert again.status_code == 202 and again.json()["duplicate"] is True
    # nothing claimable: refused before any gas
    assert_problem(
        s.api.post("/v1/relay/claim", json={"account": Account.create().address}), 409, "conflict",
        "no entitlement",
    )  # fmt: skip


def test_a_relay_whose_commitment_expired_fails_instead_of_waiting_forever(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    owner = Account.create()
    item = _items("expiring", 1)[0]
    c = _common(s, owner.address)
    c["deadline"] += 10 * 86_400  # the deadline outlives the commitment: only the commitment's age fails it
    typed = eip712.register_datasets_typed_data(owner=owner.address, datasets=[item], **c)
    body = {
        "owner": owner.address, "deadline": c["deadline"], "signature": _sign(owner, typed),
        "datasets": [{"content_hash": item.content_hash, "size": item.size, "license_id": item.license_id,
                      "metadata_hash": item.metadata_hash, "uri": item.uri}],
    }  # fmt: skip
    # the relayer looks only when asked (its outbox worker paused), so the commit can age unseen
    worker = s.api.app.state.outbox_worker  # type: ignore[attr-defined]
    worker.stop()
    s.anvil.rpc("evm_setAutomine", [False])
    try:
        out = _post(s, "/v1/relay/datasets", body)
        assert (out["phase"], out["status"]) == ("commit", "pending")  # the commit is not mined yet
        # the commit is mined, then MAX_COMMITMENT_AGE blocks pass before the relayer looks again
        rpc_call(s.anvil.url, "anvil_mine", [hex(7202), hex(1)], timeout=300)
    finally:
        s.anvil.rpc("evm_setAutomine", [True])
        worker.stop_event.clear()
        worker.start()
    status = s.api.get(f"/v1/relays/{out['relay_id']}").json()
    assert status["status"] == "failed" and status["phase"] == "commit", status
    assert "expired" in status["failure"] and "sign again" in status["failure"]
    assert s.api.app.state.relayer.advance_pending() == 0  # type: ignore[attr-defined]  # nothing is sent
    assert _registry(s).functions.contributionOf(item.content_hash).call()[1] == 0


def _compute_body(t: Any, provider: LocalAccount, label: str) -> dict[str, Any]:
    reg = t.registry
    job = eip712.ComputeJob(h32(label), 1, h32("model"), h32(f"{label}-result"))
    typed = eip712.register_compute_typed_data(
        chain_id=31337, verifying_contract=reg.address, provider=provider.address, job=job,
        nonce=int(reg.functions.nonces(provider.address).call()),
        deadline=int(t.w3.eth.get_block("latest")["timestamp"]) + 3600,
    )  # fmt: skip
    return {
        "provider": provider.address, "deadline": typed["message"]["deadline"],
        "signature": _sign(provider, typed), "job_id": job.job_id, "work_units": 1, "model_id": job.model_id,
        "result_hash": job.result_hash,
    }  # fmt: skip


def test_new_kinds_meet_the_relayers_rate_limits_and_budgets(tmp_path: Path) -> None:
    from bench import relayer as attacks

    # one account's bucket holds 1 relay: the second is a 429 with Retry-After, before any gas
    with attacks.target(tmp_path / "rate", api_relay_account_burst=1, api_relay_account_per_minute=1.0) as t:
        provider = Account.create()
        first = t.api.post("/v1/relay/compute", json=_compute_body(t, provider, "rate-1"))
        assert first.status_code == 202, first.text
        t.w3.eth.wait_for_transaction_receipt(first.json()["tx_hash"], timeout=60)
        second = t.api.post("/v1/relay/compute", json=_compute_body(t, provider, "rate-2"))
        assert_problem(second, 429, "rate_limited", "too many relays")
        assert int(second.headers["Retry-After"]) >= 1
    # a day's gas for one account below one compute registration: 402 with Retry-After, nothing sent
    with attacks.target(tmp_path / "budget", api_relay_account_daily_gas=30_000) as t:
        before = t.w3.eth.get_transaction_count(t.api.app.state.relayer.address)  # type: ignore[attr-defined]
        resp = t.api.post("/v1/relay/compute", json=_compute_body(t, Account.create(), "budget-1"))
        assert_problem(resp, 402, "relay_budget_exhausted", "daily gas budget")
        assert "Retry-After" in resp.headers
        after = t.w3.eth.get_transaction_count(t.api.app.state.relayer.address)  # type: ignore[attr-defined]
        assert after == before
