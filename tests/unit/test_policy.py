"""cairn.core.policy: the shipped policy validates, its hash is keccak of canonical JSON, bad ones fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak

from cairn.core.errors import InvalidInputError
from cairn.core.policy import POLICY_DIR, load_policy, parse_policy


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((POLICY_DIR / "v1.json").read_text())
    return data


def test_v1_loads_and_hash_is_keccak_of_canonical_json() -> None:
    policy = load_policy("v1")
    canonical = json.dumps(_raw(), sort_keys=True, separators=(",", ":")).encode()
    assert policy.content_hash() == "0x" + keccak(canonical).hex()
    assert policy.attestation.aggregation == "median"


def test_hash_ignores_formatting_but_not_values(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text(json.dumps(_raw(), indent=4))
    assert load_policy(p).content_hash() == load_policy("v1").content_hash()
    changed = _raw()
    changed["account_cap_bps"] = 2400
    assert parse_policy(changed).content_hash() != load_policy("v1").content_hash()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("emission_split_bps", "data"), 6000),
        (("revenue_split_bps", "protocol"), 2000),
        (("attestation", "quorum"), 0),
        (("attestation", "aggregation"), "mean"),
        (("account_cap_bps",), 0),
        (("cap_excess",), "burn"),
        (("treasury",), "0x" + "00" * 20),
        (("treasury",), "nope"),
        (("unknown_field",), 1),
    ],
)
def test_rejects_invalid_policies(path: tuple[str, ...], value: object) -> None:
    data = _raw()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidInputError, match="invalid reward policy"):
        parse_policy(data)


def test_missing_policy_is_one_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        load_policy("v999")
