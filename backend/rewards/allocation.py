"""The pure reward function: `allocation(epoch) = f(events up to the epoch's end block, policy)`.

Two stages, both deterministic and integer-only:

1. **Reduce** the events to `EpochInputs`: the pools of the epoch and, per pool, integer weights per account.
   Two implementations give the same result: `inputs_from_events` (Python, over decoded chain events; the
   audit path) and `backend.rewards.sqlsource.inputs_from_db` (SQL over the indexer's mirror; the fast path).
2. **Split** (`allocate`): each pool is split over its accounts' weights by largest remainder (ties broken by
   ascending address), the per-account cap is applied, and the result is added to the previous cumulative
   amounts (`cumulate`). Sums are exact to the wei.

Eligibility (policy `attestation`): a contribution (dataset or compute job) counts at the end block when it
is registered, not withdrawn, has attestations from at least `quorum` distinct validators (the latest one of
each validator counts) and the median of those scores is at least `min_score`.

Pools of epoch `e` (all events at blocks <= the end block):
* emission = sum of `EpochFunded(epoch=e, source=0)` amounts (the distributor's `fundEmission` mints to
  itself, so `EmissionMinted` describes the same tokens and is not added again); split `data`/`compute`.
  - data emission: every eligible dataset, weight = its median score, paid to its owner;
  - compute emission: every eligible compute contribution, weight = work units x median score.
* revenue of model `m` = sum of `PaymentSettled(epoch=e, modelId=m)` (amount - fee), split
  `contributors`/`compute`/`protocol`:
  - contributors: the datasets of `m`'s latest manifest (highest version at the end block), weight =
    manifest weight x median score (ineligible datasets get nothing), paid to their owners;
  - compute: eligible compute contributions registered for `m`, weight = work units x median score;
  - protocol: the treasury.
  A pool with no eligible weight goes to the treasury. Every split rounds down, the remainder goes to
  the protocol part (the revenue and emission splits) or by largest remainder (account splits).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.core.errors import InvalidInputError, PublishRefusedError
from cairn.core.policy import BPS, Policy, median_floor

Weights = dict[str, int]


@dataclass
class EpochInputs:
    """Everything the split needs, reduced from the events. Accounts are 0x-lowercase addresses."""

    epoch: int
    emission: int = 0
    data_weights: Weights = field(default_factory=dict)
    compute_weights: Weights = field(default_factory=dict)
    revenue: dict[str, int] = field(default_factory=dict)  # model id -> net revenue (amount - fee)
    model_data_weights: dict[str, Weights] = field(default_factory=dict)
    model_compute_weights: dict[str, Weights] = field(default_factory=dict)

    def normalized(self) -> EpochInputs:
        """Same inputs without zero weights / empty entries (so two reductions compare equal)."""

        def clean(w: Mapping[str, int]) -> Weights:
            return {a: v for a, v in sorted(w.items()) if v}

        def clean_all(by_model: Mapping[str, Mapping[str, int]]) -> dict[str, Weights]:
            out: dict[str, Weights] = {}
            for m, w in sorted(by_model.items()):
                c = clean(w)
                if c:
                    out[m] = c
            return out

        return EpochInputs(
            epoch=self.epoch,
            emission=self.emission,
            data_weights=clean(self.data_weights),
            compute_weights=clean(self.compute_weights),
            revenue={m: v for m, v in sorted(self.revenue.items()) if v},
            model_data_weights=clean_all(self.model_data_weights),
            model_compute_weights=clean_all(self.model_compute_weights),
        )


# --- integer splitting ------------------------------------------------------------------------------
def split_largest_remainder(pool: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `pool` wei over `weights` exactly: floor shares, then one wei each to the largest remainders,
    ties broken by ascending key. Zero weights get nothing; an empty or all-zero weight map raises."""
    if pool < 0:
        raise InvalidInputError("cannot split a negative pool")
    total = 0
    for w in weights.values():
        if w < 0:
            raise InvalidInputError("negative weight")
        total += w
    if total == 0:
        raise InvalidInputError("cannot split over zero total weight")
    shares: dict[str, int] = {}
    rkeys: list[str] = []
    rvals: list[int] = []
    given = 0
    for key, w in weights.items():
        if not w:
            continue
        q, r = divmod(pool * w, total)
        shares[key] = q
        given += q
        if r:
            rkeys.append(key)
            rvals.append(r)
    left = pool - given  # < len(rvals): the remainders sum to left * total and each is < total
    if left:
        # the `left` largest remainders, ties by ascending key: every key above the left-th largest
        # remainder, then the smallest keys among those exactly at it (sorting ints, not (r, key) tuples)
        if left < len(rvals) // 8:
            cut = heapq.nlargest(left, rvals)[-1]
        else:
            cut = sorted(rvals, reverse=True)[left - 1]
        above = [k for k, r in zip(rkeys, rvals, strict=True) if r > cut]
        at = sorted(k for k, r in zip(rkeys, rvals, strict=True) if r == cut)
        for key in above:
            shares[key] += 1
        for key in at[: left - len(above)]:
            shares[key] += 1
    return shares


def _add(into: dict[str, int], part: Mapping[str, int]) -> None:
    for k, v in part.items():
        into[k] = into.get(k, 0) + v


def _split_or_treasury(pool: int, weights: Mapping[str, int], treasury: str, into: dict[str, int]) -> None:
    if pool == 0:
        return
    if any(weights.values()):
        shares = split_largest_remainder(pool, weights)
        if into:
            _add(into, shares)
        else:  # the first pool: nothing to add to
            into.update(shares)
    else:
        into[treasury] = into.get(treasury, 0) + pool


def apply_cap(amounts: dict[str, int], policy: Policy) -> dict[str, int]:
    """Cap every account (treasury excepted) at `account_cap_bps` of the epoch total; see
    cairn.core.policy."""
    treasury = policy.treasury
    total = sum(amounts.values())
    cap = total * policy.account_cap_bps // BPS
    out = dict(amounts)
    while True:
        over = [a for a, v in out.items() if v > cap and a != treasury]
        if not over:
            return out
        excess = 0
        for a in over:
            excess += out[a] - cap
            out[a] = cap
        receivers = {a: v for a, v in out.items() if v < cap and v > 0 and a != treasury}
        if policy.cap_excess == "treasury" or not receivers:
            out[treasury] = out.get(treasury, 0) + excess
            return out
        _add(out, split_largest_remainder(excess, receivers))


def allocate(inputs: EpochInputs, policy: Policy) -> dict[str, int]:
    """This epoch's amounts per account (only positive ones), summing exactly to all of the epoch's pools."""
    treasury = policy.treasury
    out: dict[str, int] = {}
    em = inputs.emission
    data_pool = em * policy.emission_split_bps.data // BPS
    _split_or_treasury(data_pool, inputs.data_weights, treasury, out)
    _split_or_treasury(em - data_pool, inputs.compute_weights, treasury, out)
    rs = policy.revenue_split_bps
    for model in sorted(inputs.revenue):
        revenue = inputs.revenue[model]
        if revenue <= 0:
            continue
        contributors = revenue * rs.contributors // BPS
        compute = revenue * rs.compute // BPS
        _split_or_treasury(contributors, inputs.model_data_weights.get(model, {}), treasury, out)
        _split_or_treasury(compute, inputs.model_compute_weights.get(model, {}), treasury, out)
        protocol = revenue - contributors - compute
        if protocol:
            out[treasury] = out.get(treasury, 0) + protocol
    capped = apply_cap(out, policy)
    result = {a: v for a, v in capped.items() if v > 0}
    pools = em + sum(v for v in inputs.revenue.values() if v > 0)
    if sum(result.values()) != pools:  # pragma: no cover - an invariant, not an input error
        raise PublishRefusedError(f"allocation sums to {sum(result.values())}, pools hold {pools}")
    return result


def cumulate(previous: Mapping[str, int], epoch_amounts: Mapping[str, int]) -> dict[str, int]:
    """New cumulative leaves = previous cumulative + this epoch's amounts."""
    out = {**previous, **epoch_amounts}
    for a in previous.keys() & epoch_amounts.keys():  # only the accounts in both need a sum
        out[a] = previous[a] + epoch_amounts[a]
    return out


def check_publishable(previous: Mapping[str, int], leaves: Iterable[tuple[str, int]]) -> int:
    """Refuse a decreasing cumulative leaf, a dropped account or two leaves for one account.

    Returns the total of the new leaves."""
    items = list(leaves)
    accounts = [a.lower() for a, _ in items]
    amounts = [v for _, v in items]
    if len(set(accounts)) == len(accounts) and (not amounts or min(amounts) >= 0):
        new = dict(zip(accounts, amounts, strict=True))
        if all(new.get(a, -1) >= v if v > 0 else new.get(a, 0) >= v for a, v in previous.items()):
            return sum(amounts)  # the whole-list checks passed; otherwise the loop below names the culprit
    return _check_one_by_one(previous, items)


def _check_one_by_one(previous: Mapping[str, int], leaves: Iterable[tuple[str, int]]) -> int:
    seen: set[str] = set()
    total = 0
    for account, amount in leaves:
        a = account.lower()
        if a in seen:
            raise PublishRefusedError(f"two leaves for account {a}")
        seen.add(a)
        if amount < previous.get(a, 0):
            raise PublishRefusedError(f"cumulative amount of {a} would decrease: {previous[a]} -> {amount}")
        total += amount
    missing = [a for a, v in previous.items() if v > 0 and a not in seen]
    if missing:
        raise PublishRefusedError(f"account {sorted(missing)[0]} lost its leaf ({len(missing)} accounts)")
    return total


# --- reduction of decoded events (the audit path; rows keyed like the ev_* columns) --------------------
EVENT_TABLES = (
    "ev_dataset_registered",
    "ev_compute_registered",
    "ev_attested",
    "ev_contribution_withdrawn",
    "ev_model_manifest_registered",
    "ev_payment_settled",
    "ev_epoch_funded",
)

Row = Mapping[str, Any]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        import json

        parsed: list[Any] = json.loads(value)
        return parsed
    return list(value)


def eligible_scores(events: Mapping[str, Sequence[Row]], end_block: int, policy: Policy) -> dict[str, int]:
    """contribution id -> median score, for eligible (quorum, min score, not withdrawn) contributions."""
    latest: dict[tuple[str, str], tuple[int, int, int]] = {}
    for r in events.get("ev_attested", []):
        if r["block_number"] > end_block:
            continue
        key = (r["contribution_id"], r["validator"])
        pos = (r["block_number"], r["log_index"])
        old = latest.get(key)
        if old is None or pos > old[:2]:
            latest[key] = (pos[0], pos[1], int(r["score"]))
    by_cid: dict[str, list[int]] = defaultdict(list)
    for (cid, _), (_, _, score) in latest.items():
        by_cid[cid].append(score)
    withdrawn = {
        r["contribution_id"]
        for r in events.get("ev_contribution_withdrawn", [])
        if r["block_number"] <= end_block
    }
    att = policy.attestation
    out: dict[str, int] = {}
    for cid, scores in by_cid.items():
        if cid in withdrawn or len(scores) < att.quorum:
            continue
        m = median_floor(scores)
        if m >= att.min_score:
            out[cid] = m
    return out


def latest_manifest_rows(rows: Iterable[Row], end_block: int | None = None) -> dict[str, Row]:
    """model id -> the row of its latest manifest: the highest version (at the end block, if given), the
    latest event among equal versions. The API's model view and the reward function both use it."""
    best: dict[str, tuple[tuple[int, int, int], Row]] = {}
    for r in rows:
        if end_block is not None and r["block_number"] > end_block:
            continue
        pos = (int(r["version"]), r["block_number"], r["log_index"])
        old = best.get(r["model_id"])
        if old is None or pos > old[0]:
            best[r["model_id"]] = (pos, r)
    return {model: r for model, (_, r) in best.items()}


def manifest_entries(row: Row) -> list[tuple[str, int]]:
    """[(dataset id, weight)] of a manifest row (arrays as lists or JSON text; ids lowercased)."""
    ids = [str(x).lower() for x in _as_list(row["dataset_ids"])]
    weights = [int(x) for x in _as_list(row["weights"])]
    return list(zip(ids, weights, strict=False))


def latest_manifests(rows: Iterable[Row], end_block: int) -> dict[str, list[tuple[str, int]]]:
    """model id -> [(dataset id, weight)] of its highest version at the end block (latest event wins)."""
    return {model: manifest_entries(r) for model, r in latest_manifest_rows(rows, end_block).items()}


def manifest_weights(manifest: list[tuple[str, int]], datasets: Mapping[str, tuple[str, int]]) -> Weights:
    """owner -> sum(manifest weight x median score) over the manifest's eligible datasets."""
    w: Weights = {}
    for did, weight in manifest:
        d = datasets.get(did)
        if d is not None and weight:
            w[d[0]] = w.get(d[0], 0) + weight * d[1]
    return w


def inputs_from_events(
    events: Mapping[str, Sequence[Row]], epoch: int, end_block: int, policy: Policy
) -> EpochInputs:
    """Reduce decoded events (table name -> rows with the ev_* column names) to the epoch's inputs."""
    scores = eligible_scores(events, end_block, policy)
    inp = EpochInputs(epoch=epoch)
    datasets: dict[str, tuple[str, int]] = {}  # eligible dataset id -> (owner, median)
    for r in events.get("ev_dataset_registered", []):
        if r["block_number"] > end_block:
            continue
        m = scores.get(r["content_hash"])
        if m is not None:
            datasets[r["content_hash"]] = (r["owner"], m)
            inp.data_weights[r["owner"]] = inp.data_weights.get(r["owner"], 0) + m
    for r in events.get("ev_compute_registered", []):
        if r["block_number"] > end_block:
            continue
        m = scores.get(r["contribution_id"])
        if m is None:
            continue
        w = int(r["work_units"]) * m
        p = r["provider"]
        inp.compute_weights[p] = inp.compute_weights.get(p, 0) + w
        mw = inp.model_compute_weights.setdefault(r["model_id"], {})
        mw[p] = mw.get(p, 0) + w
    for r in events.get("ev_payment_settled", []):
        if r["block_number"] <= end_block and int(r["epoch"]) == epoch:
            m = r["model_id"]
            inp.revenue[m] = inp.revenue.get(m, 0) + int(r["amount"]) - int(r["fee"])
    for r in events.get("ev_epoch_funded", []):
        if r["block_number"] <= end_block and int(r["epoch"]) == epoch and int(r["source"]) == 0:
            inp.emission += int(r["amount"])
    manifests = latest_manifests(events.get("ev_model_manifest_registered", []), end_block)
    for model, manifest in manifests.items():
        inp.model_data_weights[model] = manifest_weights(manifest, datasets)
    return inp.normalized()
