"""Schemathesis against the API's own OpenAPI (security issue 10, finding 6): every operation, positive and
negative cases, at least 1,000 in all, on the real seeded stack (anvil, contracts, SQLite mirror); no answer
is a 5xx and every answer (status, content type, body) is one the schema declares. The cases carry a real
SIWE session (bearer), so the signed-in operations are fuzzed past their 401; sign-out gets a fresh session
per case. The shared stack is read-only, so there the operator endpoints get no key (their 401s); they are
fuzzed with a valid key (made by `cairn apikey create`, both scopes) on a stack of their own, where closing,
publishing, finalizing and paying out really run on its anvil (the steps one by one:
tests/integration/test_api_auth.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support.api_fuzz import fuzz
from support.api_stack import build_stack, shared_stack, travel_to
from support.siwe import sign_in
from typer.testing import CliRunner

from cairn.cli.app import app as cli

MIN_CASES = 1000
SIGNED_IN = ("/v1/me", "/v1/auth/session", "/v1/auth/signout")
OPERATOR = "/v1/operator/"
# random cases per generation mode and operator operation (on top of the coverage cases): each valid step
# builds the lifecycle and may send transactions, so fewer than the read routes' 64
OPERATOR_EXAMPLES = 24 if os.environ.get("CI") == "true" else 12


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


def test_operator_routes_fuzzed_with_a_valid_key_answer_problems_never_a_server_error(tmp_path: Path) -> None:
    started = time.monotonic()
    stacks = build_stack(tmp_path, "sqlite", rewards=False)  # epoch 0 ended and funded, no root yet
    stack = next(stacks)
    try:
        made = CliRunner().invoke(
            cli, ["apikey", "create", "--scope", "epochs:write", "--scope", "payouts:write", "--name", "fuzz",
                  "--database-url", stack.settings.database_url],
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        key = made.stdout.strip().splitlines()[0]
        headers = {"X-API-Key": key}
        # epoch 0 proposed and past its challenge delay: the fuzz's epoch 0 cases close and publish again
        # (idempotent), finalize (acceptRoot) and pay out (claimForBatch) for real
        for step in ("close", "publish"):
            answer = stack.api.post(f"/v1/operator/epochs/0/{step}", headers=headers)
            assert answer.status_code == 200, answer.text
        travel_to(stack, int(answer.json()["valid_at"]) + 1)
        built = time.monotonic()
        report = fuzz(
            stack.api.app, examples=OPERATOR_EXAMPLES, auth=lambda _: {"X-API-Key": key},
            only=lambda label: OPERATOR in label,
        )  # fmt: skip
        next_epoch = int(stack.contract("RewardDistributor").functions.nextEpoch().call())
        again = stack.api.post("/v1/operator/epochs/0/payout", headers=headers)
    finally:
        stacks.close()
    took, statuses = time.monotonic() - built, dict(sorted(report.statuses.items()))
    print(f"operator fuzz: stack {built - started:.1f}s, {report.cases} cases {took:.1f}s, "
          f"statuses {statuses}, 2xx {dict(report.ok_per_operation)}")  # fmt: skip
    assert sorted(op.rsplit("/", 1)[1] for op in report.operations) == [
        "close",
        "finalize",
        "payout",
        "publish",
    ]
    assert set(report.cases_per_operation) == set(report.operations), report.cases_per_operation
    assert report.server_errors == 0, report.failures
    assert report.failures == [], "\n".join(report.failures[:20])
    assert report.statuses[401] == 0, report.statuses  # the key was accepted on every case that carried it
    assert all(report.ok_per_operation[op] > 0 for op in report.operations), report.ok_per_operation
    assert next_epoch == 1  # the fuzz finalized epoch 0 on chain
    assert again.status_code == 200, again.text
    paid = again.json()["payout"]
    assert paid["paid"] == 0 and paid["already_paid"] == again.json()["leaf_count"], paid  # and paid it out
