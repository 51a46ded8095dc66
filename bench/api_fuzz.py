"""Schemathesis against the API's own OpenAPI (security issue 10, finding 6) on a real seeded stack: anvil,
the contracts, the indexer's SQLite mirror, the app. Figures: `api_fuzz_cases` (cases sent, all operations,
coverage + positive + negative) and `api_fuzz_5xx` (answers >= 500; must be 0). The driver is the test's
(tests/support/api_fuzz.py, used by tests/integration/test_api_fuzz.py)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def run() -> dict[str, float]:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from support.api_fuzz import fuzz
    from support.api_stack import build_stack

    with tempfile.TemporaryDirectory(prefix="cairn-api-fuzz-") as tmp:
        stacks = build_stack(Path(tmp), "sqlite")
        stack = next(stacks)
        try:
            report = fuzz(stack.api.app)
        finally:
            stacks.close()
    for line in report.failures[:10]:
        print("   failure:", line)
    print(f"   {len(report.operations)} operations, statuses {dict(sorted(report.statuses.items()))}")
    return {"api_fuzz_cases": float(report.cases), "api_fuzz_5xx": float(report.server_errors)}
