"""The reward policy: versioned data (`cairn/core/policies/v<N>.json`), validated here, with a content hash.

The hash published with every Merkle root (`RootProposed.policyHash`) is `keccak256(canonical JSON)`;
the canonical JSON is the validated policy serialised with sorted keys, no whitespace, ASCII only.
Anyone holding the policy file recomputes it with `Policy.content_hash()`.

Parameters (all shares in basis points, 10000 = 100%)
-----------------------------------------------------
* `emission_split_bps` {data, compute}: the epoch's emission pool (EpochFunded with source 0) between
  eligible datasets (weight: aggregated score) and eligible compute contributions (work units x score).
* `revenue_split_bps` {contributors, compute, protocol}: each model's net revenue of the epoch
  (PaymentSettled amount - fee) between the datasets of its latest manifest (weight x score, then to
  their owners), the compute contributions registered for that model (work units x score) and the
  protocol treasury.
* `attestation` {quorum, min_score, aggregation}: a contribution is eligible when at least `quorum`
  distinct validators attested it (a validator's later attestation replaces its earlier one), the
  `median` of their scores is >= `min_score`, and it was not withdrawn. The median of an even count is
  the floor of the mean of the two middle scores.
* `account_cap_bps`: no account (the treasury excepted) receives more than this share of the epoch's
  total. `cap_excess` says where the excess goes: `redistribute` (pro rata to the uncapped accounts'
  amounts, repeated until nobody is over the cap; to the treasury when every receiving account is
  capped) or `treasury`.
* `treasury`: receives the protocol share, pools with nobody eligible, and (with `treasury`) cap excess.
  It is part of the policy (so its hash, published with every root, fixes who the protocol is and the audit
  needs nothing but the chain and the policy file). Outside the local chain it must be the deployment's
  treasury, the PaymentRouter's fee recipient: the rewards engine refuses to compute or publish with a
  placeholder (`PLACEHOLDER_TREASURIES`, anything below 2**64, an anvil development account) or another
  address. The shipped `v1.json` holds the local placeholder `0x...c41a`; a deployment publishes its own
  copy of v1 with its treasury (`cairn epoch publish N --policy FILE`).
* `rounding`: `largest_remainder_address` - every integer split gives each party floor(pool x w / W),
  then the leftover wei one each to the largest remainders, ties broken by ascending address.
  Sums are exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from cairn.core.errors import InvalidInputError
from cairn.core.merkle import keccak256

POLICY_DIR = Path(__file__).resolve().parent / "policies"
BPS = 10_000
# Treasuries that only stand in for the real one on the local chain (policies/v1.json ships the first).
PLACEHOLDER_TREASURIES = frozenset({"0x000000000000000000000000000000000000c41a"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmissionSplit(_Strict):
    data: int = Field(ge=0, le=BPS)
    compute: int = Field(ge=0, le=BPS)

    @model_validator(mode="after")
    def _sums(self) -> EmissionSplit:
        if self.data + self.compute != BPS:
            raise ValueError("emission_split_bps must sum to 10000")
        return self


class RevenueSplit(_Strict):
    contributors: int = Field(ge=0, le=BPS)
    compute: int = Field(ge=0, le=BPS)
    protocol: int = Field(ge=0, le=BPS)

    @model_validator(mode="after")
    def _sums(self) -> RevenueSplit:
        if self.contributors + self.compute + self.protocol != BPS:
            raise ValueError("revenue_split_bps must sum to 10000")
        return self


class Attestation(_Strict):
    quorum: int = Field(ge=1, le=1000)
    min_score: int = Field(ge=0, le=10_000)
    aggregation: Literal["median"] = "median"


class Policy(_Strict):
    version: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=100)
    emission_split_bps: EmissionSplit
    revenue_split_bps: RevenueSplit
    attestation: Attestation
    account_cap_bps: int = Field(gt=0, le=BPS)
    cap_excess: Literal["redistribute", "treasury"]
    treasury: str
    rounding: Literal["largest_remainder_address"] = "largest_remainder_address"

    @field_validator("treasury")
    @classmethod
    def _address(cls, value: str) -> str:
        v = value.lower()
        if len(v) != 42 or not v.startswith("0x") or any(c not in "0123456789abcdef" for c in v[2:]):
            raise ValueError("treasury must be a 0x address")
        if int(v, 16) == 0:
            raise ValueError("treasury must not be the zero address")
        return v

    def canonical_json(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode()

    @cached_property
    def _hash(self) -> str:
        return "0x" + keccak256(self.canonical_json()).hex()

    def content_hash(self) -> str:
        """`0x` keccak256 of the canonical JSON: the `policyHash` published with the root."""
        return self._hash


def median_floor(scores: Iterable[int]) -> int:
    """The `median` aggregation of validators' scores: the middle score, or for an even count the floor of the
    mean of the two middle ones. Used by the reward function and shown by the API (`score.median`)."""
    s = sorted(scores)
    n = len(s)
    return (s[(n - 1) // 2] + s[n // 2]) // 2


def parse_policy(data: object) -> Policy:
    try:
        return Policy.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "policy"
        raise InvalidInputError(f"invalid reward policy: {where}: {first['msg']}") from None


def load_policy(ref: str | Path = "v1") -> Policy:
    """Load a policy by version name (`v1` -> cairn/core/policies/v1.json) or by file path."""
    path = Path(ref)
    if not path.suffix:
        path = POLICY_DIR / f"{ref}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"reward policy not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"reward policy {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_policy(raw)
