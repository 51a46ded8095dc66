"""Schemathesis against the API's own OpenAPI document, on a running app (security issue 10, finding 6).

`fuzz(app)` loads `/openapi.json` from the app (ASGI, the app's lifespan already entered by the caller's
TestClient, so it answers from the real chain and mirror), then for every operation generates cases that
fit the schema (positive) and cases that do not (negative), sends each, and checks the answer: no 5xx, a
status code the operation declares, a declared content type, a body matching the declared schema. Used by
tests/integration/test_api_fuzz.py (in `make test`) and bench/api_fuzz.py (`api_fuzz_cases`,
`api_fuzz_5xx`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class FuzzReport:
    operations: list[str] = field(default_factory=list)
    cases: int = 0
    server_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    cases_per_operation: Counter[str] = field(default_factory=Counter)
    ok_per_operation: Counter[str] = field(default_factory=Counter)  # 2xx answers
    failures: list[str] = field(default_factory=list)


Auth = Callable[[str], dict[str, str]]  # operation label -> headers (credentials) for one case


def fuzz(
    app: Any, *, examples: int = 64, auth: Auth | None = None, only: Callable[[str], bool] | None = None
) -> FuzzReport:
    """Per operation: schemathesis' coverage cases (each declared bound, just inside and just outside, each
    required part missing, ...), then up to `examples` random cases per generation mode; every answer
    counted and checked. `auth`, if given, adds credentials to each case (e.g. a session's bearer token or
    an operator's API key), so the signed-in and operator operations are fuzzed past their 401. `only`, if
    given, picks the operations by label (`POST /v1/operator/epochs/{epoch}/close`)."""
    report = FuzzReport()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is not None and not only(operation.label):
            continue
        report.operations.append(operation.label)
        _coverage(operation, report, auth)
        for mode in MODES:
            _fuzz_operation(operation, mode, examples, report, auth)
    return report


def _send(operation: Any, case: Any, mode: str, report: FuzzReport, auth: Auth | None) -> None:
    label = operation.label
    report.cases += 1
    try:
        response = case.call(headers=auth(label)) if auth is not None else case.call()
    except Exception as exc:  # the ASGI transport re-raises what the app did not handle: a 500
        report.server_errors += 1
        report.statuses[500] += 1
        report.failures.append(f"{label} [{mode}] {case.method} {case.formatted_path} -> 500: {exc!r}"[:2000])
        return
    report.cases_per_operation[label] += 1
    report.statuses[response.status_code] += 1
    if 200 <= response.status_code < 300:
        report.ok_per_operation[label] += 1
    if response.status_code >= 500:
        report.server_errors += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except (Exception, BaseExceptionGroup) as exc:  # a failed check (FailureGroup): recorded, not shrunk
        where = f"{case.method} {case.formatted_path} {case.query or ''}"
        report.failures.append(f"{label} [{mode}] {where} -> {response.status_code}: {exc}"[:2000])


def _coverage(operation: Any, report: FuzzReport, auth: Auth | None) -> None:
    """The coverage phase of `schemathesis run`: deterministic cases at and beyond every declared limit."""
    config = operation.schema.config.generation_for(operation=operation)
    for case in operation.schema.iter_coverage_cases(
        operation, generation_modes=list(MODES), generation_config=config
    ):
        _send(operation, case, "coverage", report, auth)


def _fuzz_operation(
    operation: Any, mode: GenerationMode, examples: int, report: FuzzReport, auth: Auth | None
) -> None:
    label = operation.label

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        _send(operation, case, str(mode), report, auth)

    try:
        run()
    except Exception as exc:  # e.g. no negative case exists for an operation without parameters
        if mode is GenerationMode.POSITIVE:
            report.failures.append(f"{label} [{mode}] could not run: {type(exc).__name__}: {exc}"[:2000])
