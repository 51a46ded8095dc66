"""The pure split: exact sums, largest remainder (address tie-break), caps, eligibility, cumulative checks."""

from __future__ import annotations

from typing import Any

import pytest

from backend.rewards.allocation import (
    EpochInputs,
    allocate,
    apply_cap,
    check_publishable,
    cumulate,
    inputs_from_events,
    median_floor,
    split_largest_remainder,
)
from cairn.core.errors import PublishRefusedError
from cairn.core.policy import load_policy, parse_policy

A, B, C, D = (f"0x{i:040x}" for i in (0xA, 0xB, 0xC, 0xD))
POLICY = load_policy("v1")


def _policy(**changes: Any) -> Any:
    raw = POLICY.model_dump(mode="json")
    raw.update(changes)
    return parse_policy(raw)


def test_largest_remainder_ties_go_to_lowest_address() -> None:
    assert split_largest_remainder(10, {C: 1, A: 1, B: 1}) == {A: 4, B: 3, C: 3}
    assert split_largest_remainder(2, {C: 1, B: 1, A: 1}) == {A: 1, B: 1, C: 0}
    assert split_largest_remainder(7, {A: 1, B: 2}) == {A: 2, B: 5}  # 2.33 / 4.67: B has the larger remainder


def test_split_is_exact_for_huge_pools() -> None:
    pool = 10**30 + 7
    shares = split_largest_remainder(pool, {A: 3, B: 3, C: 3, D: 1})
    assert sum(shares.values()) == pool


def test_median_floor() -> None:
    assert median_floor([9000]) == 9000
    assert median_floor([1, 9000, 5000]) == 5000
    assert median_floor([5000, 6001]) == 5500
    assert median_floor([1, 2, 3, 4]) == 2


def test_cap_redistributes_pro_rata_then_treasury() -> None:
    p = _policy(account_cap_bps=4000)
    capped = apply_cap({A: 80, B: 10, C: 10}, p)
    assert capped[A] == 40 and sum(capped.values()) == 100
    assert capped[B] == capped[C] == 30
    p2 = _policy(account_cap_bps=4000, cap_excess="treasury")
    assert apply_cap({A: 80, B: 10, C: 10}, p2) == {A: 40, B: 10, C: 10, p2.treasury: 40}
    p3 = _policy(account_cap_bps=2000)  # two accounts can hold at most 40%: the rest to the treasury
    out = apply_cap({A: 50, B: 50}, p3)
    assert out == {A: 20, B: 20, p3.treasury: 60}


def _row(block: int, log: int, **kw: Any) -> dict[str, Any]:
    return {"block_number": block, "log_index": log, **kw}


def test_eligibility_revenue_and_manifest_flow() -> None:
    d1, d2, d3 = (f"0x{i:064x}" for i in (1, 2, 3))
    model = f"0x{0xE:064x}"
    att = []
    for i, cid in enumerate((d1, d2, d3)):
        for v in range(3):
            att.append(_row(2, 10 * i + v, contribution_id=cid, validator=f"0x{v + 100:040x}", score=8000))
    att.append(_row(3, 0, contribution_id=d2, validator=f"0x{100:040x}", score=0))  # replaces 8000
    att.append(
        _row(3, 1, contribution_id=d2, validator=f"0x{101:040x}", score=0)
    )  # median now 0 -> ineligible
    events = {
        "ev_dataset_registered": [
            _row(1, 0, content_hash=d1, owner=A),
            _row(1, 1, content_hash=d2, owner=B),
            _row(1, 2, content_hash=d3, owner=C),
        ],
        "ev_attested": att,
        "ev_contribution_withdrawn": [_row(4, 0, contribution_id=d3, owner=C)],
        "ev_model_manifest_registered": [
            _row(1, 5, model_id=model, version=1, dataset_ids=[d3], weights=[1]),
            _row(2, 50, model_id=model, version=2, dataset_ids=[d1, d2, d3], weights=[3, 1, 1]),
        ],
        "ev_payment_settled": [
            _row(5, 0, model_id=model, epoch=7, amount=1000, fee=0),
            _row(5, 1, model_id=model, epoch=6, amount=99, fee=0),  # another epoch
            _row(99, 0, model_id=model, epoch=7, amount=5000, fee=0),  # after the end block
        ],
        "ev_epoch_funded": [
            _row(5, 2, epoch=7, amount=10, source=0),
            _row(5, 3, epoch=7, amount=77, source=1),
        ],
    }
    inputs = inputs_from_events(events, 7, 50, POLICY)
    assert inputs.data_weights == {A: 8000}
    assert inputs.revenue == {model: 1000}
    assert inputs.emission == 10
    assert inputs.model_data_weights == {model: {A: 3 * 8000}}
    alloc = allocate(inputs, _policy(account_cap_bps=10_000))
    # emission 10: data 7 -> A, compute 3 -> treasury; revenue 1000: 700 -> A, 200 + 100 -> treasury
    assert alloc == {A: 707, POLICY.treasury: 303}


def test_allocation_with_nothing_eligible_goes_to_treasury() -> None:
    alloc = allocate(EpochInputs(epoch=1, emission=5, revenue={"0x01": 3}), POLICY)
    assert alloc == {POLICY.treasury: 8}
    assert allocate(EpochInputs(epoch=1), POLICY) == {}


def test_checker_refuses_decrease_duplicate_and_dropped_leaf() -> None:
    prev = {A: 10, B: 5}
    new = cumulate(prev, {A: 1, C: 2})
    assert check_publishable(prev, new.items()) == 18
    with pytest.raises(PublishRefusedError, match="decrease"):
        check_publishable(prev, [(A, 9), (B, 5)])
    with pytest.raises(PublishRefusedError, match="two leaves"):
        check_publishable(prev, [(A, 10), (B, 5), (A.upper().replace("0X", "0x"), 11)])
    with pytest.raises(PublishRefusedError, match="lost its leaf"):
        check_publishable(prev, [(A, 10)])


def test_declared_work_units_count_only_through_the_validators_score() -> None:
    """A provider declares its job's work units; they weigh only once a quorum of validators scored the job
    (which they do after checking the result against the declared work): an inflated job that the quorum
    scores below `min_score` earns nothing, and the score scales what the truthful one earns."""
    honest, inflated = (f"0x{i:064x}" for i in (0x51, 0x52))
    model = f"0x{0xE:064x}"
    att = [
        _row(2, 10 * k + v, contribution_id=cid, validator=f"0x{v + 100:040x}", score=score)
        for k, (cid, score) in enumerate(((honest, 9000), (inflated, 0)))
        for v in range(3)
    ]
    events = {
        "ev_compute_registered": [
            _row(1, 0, contribution_id=honest, provider=A, model_id=model, work_units=100),
            _row(1, 1, contribution_id=inflated, provider=B, model_id=model, work_units=10**12),
        ],
        "ev_attested": att,
    }
    inputs = inputs_from_events(events, 7, 50, POLICY)
    assert inputs.compute_weights == {A: 100 * 9000}


def test_splitting_into_sybil_accounts_gains_only_what_the_cap_withheld() -> None:
    """contracts/SECURITY.md "Sybil accounts": rewards follow validated contributions, so spreading the same
    datasets over several accounts earns the same unless the per-account cap binds; the cap limits an
    account's share, it is not a Sybil defence (the validator quorum and one owner per content hash are)."""
    one = EpochInputs(epoch=1, emission=1000, data_weights={A: 6, B: 2, C: 2})
    split = EpochInputs(epoch=1, emission=1000, data_weights={A: 3, D: 3, B: 2, C: 2})  # A's data, 2 accounts
    uncapped = _policy(account_cap_bps=10_000)
    a_alone = allocate(one, uncapped)[A]
    a_split = allocate(split, uncapped)
    assert a_split[A] + a_split[D] == a_alone
    capped = _policy(account_cap_bps=3_000, cap_excess="treasury")
    assert allocate(one, capped)[A] < allocate(split, capped)[A] + allocate(split, capped)[D]
