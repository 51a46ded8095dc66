"""The committed gas snapshot (contracts/gas-snapshot.json) is exact: CI fails when any scenario's gas
changes, up or down, so every change of gas shows in the diff of that file.

Re-measures every scenario of `bench/gas_scenarios.py` on a fresh anvil with real transactions.
After an intended change: `make gas-snapshot` (or `.venv/bin/python -m bench.gas --update`), then commit the
file. The design targets stay asserted on the measured figures.
"""

from __future__ import annotations

import pytest

from bench import gas_scenarios as scenarios
from bench import gas_snapshot as snapshot
from bench.gas_figures import figures


@pytest.fixture(scope="module")
def measured() -> dict[str, int]:
    return scenarios.measure()


def test_snapshot_holds_only_exact_gas() -> None:
    committed = snapshot.load()
    assert committed, "empty gas snapshot"
    for name, gas in committed.items():
        assert type(gas) is int and 21_000 <= gas < 30_000_000, (name, gas)
        contract, _, scenario = name.partition(": ")
        assert "." in contract and scenario, f"{name!r} is not 'Contract.function: scenario'"


def test_gas_equals_snapshot(measured: dict[str, int]) -> None:
    committed = snapshot.load()
    assert measured == committed, snapshot.report(committed, measured)


def test_design_targets_hold(measured: dict[str, int]) -> None:
    """The issue's targets and anchors (README, contracts/SECURITY.md)."""
    fig = figures(measured)
    assert fig["gas_contribution_lifecycle"] <= 150_000  # register to reward
    assert fig["gas_claim_first"] <= 90_000
    assert fig["gas_claim_next"] <= 55_000
    assert fig["gas_publish_root"] <= 50_000  # root update, at any tree size
    assert fig["gas_claim_relayed_batch10_per_user"] <= 45_000
    assert fig["gas_payment_voucher_per_request"] <= 100
    assert fig["gas_register_dataset"] <= 120_000  # commit + reveal (commit-reveal against front-running)
    assert fig["gas_register_dataset_batch_per_item"] <= 30_000  # its share of the commitment included
