"""The OpenAPI document's own contract, walked operation by operation (no server needed: the document is
built from the routes): every list is keyset-paginated (`cursor` + `limit` in, `next_cursor` out), and every
operation declares the problem+json statuses it can answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend.api.app import create_app
from backend.api.problems import PROBLEM_MEDIA_TYPE
from backend.api.settings import ApiSettings

# Operations whose answer holds an array of objects that is no page of a list, and why.
NOT_LISTS = {
    "GET /v1/accounts/{address}": "a summary: the newest 50 of each kind with the totals (every one: "
    "/v1/accounts/{address}/history, /v1/datasets?owner=)",
    "GET /v1/me": "the same summary for the signed-in account (every one: /v1/me/contributions)",
    "GET /v1/me/rewards": "the reward totals need every epoch; its per-epoch entries are paged in "
    "/v1/accounts/{address}/history?kinds=reward",
    "GET /v1/models": "OpenAI's model list, which the openai client reads whole",
    "GET /v1/contributions/{contribution_id}": "one contribution: one attestation per validator",
    "GET /v1/epochs/{epoch}": "one epoch: the roots proposed for it",
    "GET /v1/epochs/{epoch}/revenue": "one epoch's revenue",
    "GET /v1/channels/{channel_id}": "one channel: what it paid per model (one entry per model)",
}
# The lists the walk must find (so a change to how it finds them cannot make it pass on nothing).
LISTS = {
    "GET /v1/datasets", "GET /v1/epochs", "GET /v1/accounts/{address}/history",
    "GET /v1/validators/{address}/queue", "GET /v1/me/contributions", "GET /v1/me/claims",
    "GET /v1/payments", "GET /v1/payments/failed", "GET /v1/channels",
}  # fmt: skip


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    return create_app(ApiSettings(database_url=f"sqlite:///{tmp}/api.db")).openapi()


def _operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op) for path, ops in doc["paths"].items() for method, op in ops.items()
    ]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _object_arrays(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    """The top-level members of the JSON answer that are arrays of objects."""
    content = op["responses"].get("200", {}).get("content", {})
    schema = _resolve(doc, content.get("application/json", {}).get("schema", {}))
    found = []
    for name, prop in schema.get("properties", {}).items():
        if prop.get("type") == "array":
            items = _resolve(doc, prop.get("items", {}))
            if items.get("type") == "object" or "anyOf" in items or "oneOf" in items or "properties" in items:
                found.append(name)
    return found


def test_every_list_is_keyset_paginated(doc: dict[str, Any]) -> None:
    lists = {}
    for label, op in _operations(doc):
        arrays = _object_arrays(doc, op)
        if arrays and label.startswith("GET ") and label not in NOT_LISTS:
            lists[label] = (arrays, op)
    assert set(lists) == LISTS, sorted(lists)
    for label, (_, op) in lists.items():
        query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        assert {"cursor", "limit"} <= set(query), label
        limit = query["limit"]["schema"]
        assert limit.get("minimum") == 1 and limit.get("maximum"), label
        schema = _resolve(doc, op["responses"]["200"]["content"]["application/json"]["schema"])
        assert "next_cursor" in schema["properties"], label
        assert "next_cursor" in schema.get("required", []), label  # always there: null on the last page
    stale = [label for label in NOT_LISTS if not any(label == lb for lb, _ in _operations(doc))]
    assert stale == []
    assert all(_object_arrays(doc, op) for lb, op in _operations(doc) if lb in NOT_LISTS)


def test_every_operation_declares_the_problems_it_can_answer(doc: dict[str, Any]) -> None:
    """429 everywhere, 422 wherever a path, query or body value can be wrong, 401 with credentials, 403 with
    an API key's scope, each a problem+json body. (The statuses the server really answers are checked
    against these by the schemathesis run: tests/integration/test_api_fuzz.py.)"""
    schemes = {"session_cookie", "bearer", "api_key"}
    secured = {
        label: {name for req in op.get("security", []) for name in req} for label, op in _operations(doc)
    }
    operator = {label for label in secured if label.split(" ", 1)[1].startswith("/v1/operator/")}
    signed_in = {label for label in secured if label.split(" ", 1)[1].startswith("/v1/me")}
    assert len(operator) == 4 and len(signed_in) == 4, (operator, signed_in)
    assert {label for label, s in secured.items() if "api_key" in s} == operator
    assert all({"session_cookie", "bearer"} <= secured[label] for label in signed_in)
    for label, op in _operations(doc):
        responses = op["responses"]
        codes = {int(c) for c in responses if c.isdigit()}
        assert 429 in codes, label  # the rate limit: every operation
        if op.get("parameters") or "requestBody" in op:
            assert 422 in codes, label  # an invalid path, query or body value
        security = {name for req in op.get("security", []) for name in req}
        assert security <= schemes, label
        if security:
            assert 401 in codes, label
        if "api_key" in security:
            assert 403 in codes, label  # a key without the scope
        for code in codes:
            if code >= 400 and not label.startswith("HEAD "):  # a HEAD answer has no body
                content = responses[str(code)].get("content", {})
                assert PROBLEM_MEDIA_TYPE in content, (label, code)
