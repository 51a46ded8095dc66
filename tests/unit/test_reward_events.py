"""The rewards engine's hand-written event list (backend.rewards.events, used to create and fill ev_* tables
in tests and the benchmark) agrees with the compiled contracts' ABIs, and the audit path's catalogue finds
every event the reward function reads."""

from __future__ import annotations

import pytest

from backend.rewards.events import DATASET_BATCH, EVENTS, READ_TABLES, EventDef, reward_specs
from cairn.core.contracts import load_artifact
from cairn.core.errors import ArtifactError
from cairn.core.events import canonical_type, snake_case, specs_from_abis

CONTRACTS = sorted({e.contract for e in [*EVENTS.values(), DATASET_BATCH]})


def _abi(name: str) -> list[dict[str, object]]:
    try:
        return load_artifact(name).abi
    except ArtifactError as exc:  # pragma: no cover - `make test` builds the contracts first
        pytest.fail(str(exc))


@pytest.mark.parametrize("ev", [*EVENTS.values(), DATASET_BATCH], ids=lambda e: e.name)
def test_signature_and_topic0_match_the_abi(ev: EventDef) -> None:
    entries = [e for e in _abi(ev.contract) if e.get("type") == "event" and e.get("name") == ev.name]
    assert len(entries) == 1, f"{ev.contract} has no single event {ev.name}"
    inputs = entries[0]["inputs"]
    assert isinstance(inputs, list)
    spec = next(iter(specs_from_abis([[entries[0]]], uint_as_str=False).values()))
    assert ev.signature == spec.signature and ev.topic0 == spec.topic0
    assert [(p.name, p.type, p.indexed) for p in ev.params] == [
        (snake_case(str(i["name"])), canonical_type(i), bool(i["indexed"])) for i in inputs
    ]


def test_the_catalogue_holds_every_event_the_reward_function_reads() -> None:
    specs = reward_specs(_abi(c) for c in CONTRACTS)
    assert {s.table for s in specs.values()} == READ_TABLES
    assert {s.topic0 for s in specs.values()} == {e.topic0 for e in [*EVENTS.values(), DATASET_BATCH]}
    with pytest.raises(ArtifactError, match="lack the events"):
        reward_specs([_abi("RewardDistributor")])
