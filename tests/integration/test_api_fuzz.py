"""Schemathesis against the API's own OpenAPI (security issue 10, finding 6): every operation, positive and
negative cases, at least 1,000 in all, on the real seeded stack (anvil, contracts, SQLite mirror); no answer
is a 5xx and every answer (status, content type, body) is one the schema declares. The cases carry a real
SIWE session (bearer), so the signed-in operations are fuzzed past their 401; sign-out gets a fresh session
per case. The operator endpoints get no key (their 401s; their steps: tests/integration/test_api_auth.py)."""

from __future__ import annotations

import pytest
from support.api_fuzz import fuzz
from support.api_stack import shared_stack
from support.siwe import sign_in

MIN_CASES = 1000
SIGNED_IN = ("/v1/me", "/v1/auth/session", "/v1/auth/signout")


def test_schemathesis_finds_no_server_error_and_no_undeclared_answer(request: pytest.FixtureRequest) -> None:
    stack = shared_stack(request, "sqlite")  # SQLite: where epochs >= 2^63 used to answer 500
    owner = stack.owners[0]  # an account with contributions, rewards and a claim

    def bearer() -> dict[str, str]:
        answer = sign_in(stack.api, "", owner)
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    session = bearer()

    def auth(label: str) -> dict[str, str]:
        return bearer() if label == "POST /v1/auth/signout" else session

    report = fuzz(stack.api.app, auth=auth)
    assert len(report.operations) >= 15, report.operations
    assert set(report.cases_per_operation) == set(report.operations), report.cases_per_operation
    assert report.cases >= MIN_CASES, (report.cases, report.cases_per_operation)
    assert report.server_errors == 0, report.failures
    assert report.failures == [], "\n".join(report.failures[:20])
    signed_in = [op for op in report.operations if op.split(" ", 1)[1].startswith(SIGNED_IN)]
    assert len(signed_in) == 6, signed_in
    assert all(report.ok_per_operation[op] > 0 for op in signed_in), report.ok_per_operation
