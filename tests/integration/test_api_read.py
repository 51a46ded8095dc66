"""Read endpoints over a real indexed mirror (SQLite and PostgreSQL): happy paths and problem+json errors."""

from __future__ import annotations

from support.api_stack import Stack, assert_problem, h32
from web3 import Web3


def test_health(stack: Stack) -> None:
    h = stack.api.get("/health").json()
    assert h["status"] == "ok"
    assert h["chain_id"] == 31337
    head = stack.w3.eth.block_number
    assert h["latest_block"] == head
    assert h["latest_indexed_block"] == head and h["indexer_lag"] == 0
    kind = "postgresql" if stack.settings.database_url.startswith("postgres") else "sqlite"
    assert h["database"] == kind and h["database_kind"] == kind
    assert h["start_block"] == stack.deployment.start_block
    registry = stack.deployment.contracts["ContributionRegistry"].address
    assert h["contracts"]["ContributionRegistry"] == Web3.to_checksum_address(registry)
    assert h["version"]


def test_dataset_by_hash(stack: Stack) -> None:
    ch = stack.seeded["datasets"][0]
    d = stack.api.get(f"/v1/datasets/{ch}").json()
    assert d["content_hash"] == ch
    assert d["owner"] == stack.owners[0].address  # checksummed
    assert d["size"] == 1000 and d["license_id"] == 1 and d["uri"] == "ipfs://d0"
    assert d["withdrawn"] is False
    assert d["score"] == {"validators": 2, "median": 7500, "mean": 7500, "min": 6000, "max": 9000}
    assert stack.api.get(f"/v1/datasets/{stack.seeded['datasets'][1]}").json()["withdrawn"] is True


def test_dataset_errors(stack: Stack) -> None:
    missing = h32("never registered")
    assert_problem(
        stack.api.get(f"/v1/datasets/{missing}"),
        404,
        "not_found",
        f"no dataset with content hash {missing} is registered",
        f"(indexed up to block {stack.w3.eth.block_number})",
    )
    assert_problem(
        stack.api.get("/v1/datasets/0x1234"), 422, "invalid_input", "content_hash must be 32 bytes"
    )
    assert_problem(stack.api.get("/v1/datasets/" + "zz" * 32), 422, "invalid_input", "0x-prefixed hex")


def test_dataset_list_pagination(stack: Stack) -> None:
    first = stack.api.get("/v1/datasets", params={"limit": 2}).json()
    assert [d["content_hash"] for d in first["items"]] == [
        stack.seeded["datasets"][2],
        stack.seeded["datasets"][1],
    ]
    assert first["next_cursor"]
    second = stack.api.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [d["content_hash"] for d in second["items"]] == [stack.seeded["datasets"][0]]
    assert second["next_cursor"] is None
    mine = stack.api.get("/v1/datasets", params={"owner": stack.owners[1].address.lower()}).json()
    assert [d["content_hash"] for d in mine["items"]] == [stack.seeded["datasets"][2]]


def test_dataset_list_errors(stack: Stack) -> None:
    body = assert_problem(stack.api.get("/v1/datasets", params={"limit": 0}), 422, "invalid_input", "limit")
    assert body["fields"] == ["limit"]
    assert_problem(stack.api.get("/v1/datasets", params={"limit": 500}), 422, "invalid_input", "at most 100")
    assert_problem(
        stack.api.get("/v1/datasets", params={"cursor": "abc"}), 422, "invalid_input", "cursor must be"
    )
    assert_problem(
        stack.api.get("/v1/datasets", params={"owner": "0x12"}),
        422,
        "invalid_input",
        "owner must be 20 bytes",
    )
    bad_checksum = stack.owners[0].address.swapcase().replace("X", "x")
    assert_problem(
        stack.api.get("/v1/datasets", params={"owner": bad_checksum}),
        422,
        "invalid_input",
        "invalid EIP-55 checksum",
    )


def test_contribution_with_attestations(stack: Stack) -> None:
    ch = stack.seeded["datasets"][0]
    c = stack.api.get(f"/v1/contributions/{ch}").json()
    assert c["kind"] == "dataset" and c["id"] == ch
    by_validator = {a["validator"]: a["score"] for a in c["attestations"]}
    assert by_validator == {stack.validators[0].address: 9000, stack.validators[1].address: 6000}
    assert c["score"]["mean"] == 7500
    compute = stack.api.get(f"/v1/contributions/{stack.seeded['compute_id']}").json()
    assert compute["kind"] == "compute" and compute["work_units"] == 77
    assert compute["owner"] == stack.owners[1].address
    assert compute["score"] == {"validators": 1, "median": 5000, "mean": 5000, "min": 5000, "max": 5000}
    missing = h32("nothing")
    assert_problem(
        stack.api.get(f"/v1/contributions/{missing}"), 404, "not_found", f"no contribution with id {missing}"
    )
    assert_problem(
        stack.api.get("/v1/contributions/0x" + "1" * 63), 422, "invalid_input", "contribution_id must be 32"
    )


def test_account(stack: Stack) -> None:
    a = stack.api.get(f"/v1/accounts/{stack.owners[0].address.lower()}").json()
    assert a["address"] == stack.owners[0].address
    assert a["dataset_count"] == 2 and a["compute_count"] == 0
    assert {d["content_hash"] for d in a["datasets"]} == set(stack.seeded["datasets"][:2])
    # epoch 0's root is accepted and owner 0 claimed 3e18; epoch 1's root (5e18 cumulative) is still pending
    assert a["rewards"] == {
        "cumulative": str(5 * 10**18),
        "claimed": str(3 * 10**18),
        "claimable": str(2 * 10**18),
        "epoch": 1,
        "root": stack.seeded["tree1"].root,
        "claimable_now": False,
    }
    b = stack.api.get(f"/v1/accounts/{stack.owners[1].address}").json()
    assert b["compute_count"] == 1 and b["compute"][0]["contribution_id"] == stack.seeded["compute_id"]
    assert_problem(
        stack.api.get("/v1/accounts/0xnothex"), 422, "invalid_input", "address must be a 0x-prefixed hex"
    )


def test_model_latest_manifest(stack: Stack) -> None:
    m = stack.api.get(f"/v1/models/{stack.seeded['model_id']}").json()
    assert m["version"] == 2 and m["versions"] == [1, 2]
    assert m["trainer"] == stack.admin.address
    assert m["datasets"] == [{"dataset_id": d, "weight": 1} for d in stack.seeded["manifest_ids"]]
    missing = h32("no model")
    assert_problem(
        stack.api.get(f"/v1/models/{missing}"),
        404,
        "not_found",
        f"no manifest registered for model {missing}",
    )


def test_metrics(stack: Stack) -> None:
    stack.api.get("/health")
    text = stack.api.get("/metrics").text
    assert 'cairn_api_requests_total{method="GET",route="/health",status="200"}' in text
    assert "cairn_indexer_lag_blocks 0.0" in text


def test_unknown_route_is_problem(stack: Stack) -> None:
    assert_problem(stack.api.get("/v1/nope"), 404, "not_found", "Not Found")


def test_openapi_documents_every_endpoint(stack: Stack) -> None:
    spec = stack.api.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/health",
        "/v1/datasets",
        "/v1/datasets/{content_hash}",
        "/v1/contributions/{contribution_id}",
        "/v1/accounts/{address}",
        "/v1/eip712/register-dataset",
        "/v1/models/{model_id}",
        "/v1/epochs",
        "/v1/epochs/{epoch}",
        "/v1/epochs/{epoch}/revenue",
        "/v1/epochs/{epoch}/proofs/{address}",
        "/v1/epochs/{epoch}/distribution",
        "/v1/allocations/{ref}",
        "/v1/policy/{policy_hash}",
        "/v1/relay/{tx_hash}",
    } <= paths
    proof = spec["components"]["schemas"]["Proof"]["properties"]
    assert {"cumulative_amount", "proof", "claim"} <= set(proof)
    dist = spec["paths"]["/v1/epochs/{epoch}/distribution"]["get"]["responses"]
    assert {"404", "422"} <= set(dist) and "application/problem+json" in dist["404"]["content"]
    assert stack.api.get("/").headers["content-type"].startswith("text/html")
