"""`cairn audit` over the shared seeded stack (real anvil, contracts and events: a paid inference through the
PaymentRouter, emission funding, an accepted and claimed root, a revoked and a pending one, each written by
hand rather than by the reward function): the conservation checks agree with real payments and funding, and
the hand-made roots are each found to be for a different allocation than the chain's events give."""

from __future__ import annotations

import pytest
from support.api_stack import assert_problem, shared_stack

from backend.audit.artifacts import Artifacts
from backend.audit.epochs import audit_chain


def test_audit_of_the_seeded_stack(request: pytest.FixtureRequest) -> None:
    stack = shared_stack(request, "sqlite")
    # no report written under this stack's data dir yet: a problem+json 404, not a 500
    assert_problem(stack.api.get("/v1/audit/latest"), 404, "not_found", "no audit report yet")
    report = audit_chain(stack.w3, stack.deployment, artifacts=Artifacts(str(stack.settings.data_dir)))
    assert any("payments - fees = revenue: 1 epoch(s), 1 payment(s)" in c for c in report.checks), (
        report.checks
    )
    assert not [p for p in report.conservation if "payments minus fees" in p or "emission" in p]
    # the payer's test tokens came from epoch 0's cap (local chain only), outside the pool: noted
    assert any("minted outside the pool: local test tokens" in c for c in report.checks), report.checks
    assert [(e.epoch, e.status) for e in report.epochs] == [(0, "accepted"), (1, "pending")]
    for e in report.epochs:
        assert any("root published for a different allocation" in p for p in e.problems), e.problems
    assert [r.status for r in report.epochs[1].roots] == ["revoked", "pending"]
    # the owner's claim was against the hand-made root, not against what the events entitle it to
    assert any("matches no entitlement" in p for p in report.conservation), report.conservation
    assert not report.ok
