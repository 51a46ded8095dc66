"""The epoch audit: every root on chain recomputed from chain events alone, plus conservation checks.

Reads only the chain (`eth_getLogs`, `eth_call`, blocks) and content-addressed files fetched by the hashes
the chain recorded (`backend.audit.artifacts`); never the Cairn database or API.

Roots: `RootProposed` / `RootRevoked` / `RootAccepted` give each epoch's history; the epoch's *live* root is
its accepted one, else its pending one (a revoked root is shown, never audited as live, and an epoch revoked
and proposed again is audited on the new root). For an epoch with a live root:
* the allocation file at the root's `uri` must hash to the name in it, and say the same epoch, chain,
  distributor, root, total and policy hash as the chain;
* the policy is the one whose hash is the root's `policyHash` (from `--artifacts`/policies, the file, or the
  shipped policies); content that hashes to anything else is refused;
* the allocation is recomputed with the backend's pure reward function (`allocate`, `build_publication`)
  over the events up to the epoch's end block; root and total must equal the chain's;
* the total is within what was funded up to the epoch's end (`EpochFunded` sums = `fundedThrough`).

Conservation over the whole history: emission per epoch within `emissionCap` (and equal to what the token
minted), total claimed within the latest accepted total, every `Claimed` equal to the claimant's leaf in
the root live at that block, no content hash with two owners (a second registration is only valid with the
`DatasetReclaimed` of the same transaction, or after `DatasetEvicted`), and per epoch the settled payments
minus fees equal the revenue the router funded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from web3 import Web3

from backend.audit.artifacts import Artifacts, keccak_hex
from backend.rewards.allocation import allocate, inputs_from_events
from backend.rewards.chainsource import Rows, end_block, fetch_events
from backend.rewards.publication import (
    Publication,
    allocation_name,
    build_publication,
    cumulative_from_document,
)
from cairn.core.deployment import Deployment
from cairn.core.errors import CairnError
from cairn.core.merkle import MerkleTree
from cairn.core.policy import POLICY_DIR, Policy, parse_policy

log = logging.getLogger("cairn.audit")

ROOT_TABLES = ("ev_root_proposed", "ev_root_revoked", "ev_root_accepted")
AUDIT_TABLES = (
    *ROOT_TABLES,
    "ev_claimed",
    "ev_emission_minted",
    "ev_dataset_reclaimed",
    "ev_dataset_evicted",
)
PENDING, ACCEPTED, REVOKED = "pending", "accepted", "revoked"


@dataclass
class RootRecord:
    epoch: int
    root: str
    policy_hash: str
    total: int
    valid_at: int
    uri: str
    block: int
    log_index: int
    tx_hash: str
    status: str = PENDING
    accepted_at: tuple[int, int] | None = None  # (block, log index) of RootAccepted


@dataclass
class EpochVerdict:
    epoch: int
    status: str  # accepted | pending | revoked | none
    root: str | None = None
    total: int | None = None
    policy_hash: str | None = None
    recomputed_root: str | None = None
    recomputed_total: int | None = None
    end_block: int | None = None
    allocation: str | None = None
    leaves: int = 0
    roots: list[RootRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str) -> None:
        self.problems.append(message)

    @property
    def live(self) -> RootRecord | None:
        for r in reversed(self.roots):
            if r.status != REVOKED:
                return r
        return None


@dataclass
class ChainAudit:
    chain_id: int
    head_block: int
    epochs: list[EpochVerdict]
    conservation: list[str]  # problems
    checks: list[str]  # what was checked (one line each)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.conservation and all(e.ok for e in self.epochs)


def _h(v: Any) -> str:
    return v.lower() if isinstance(v, str) else "0x" + bytes(v).hex()


def _pos(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["block_number"]), int(row["log_index"])


def root_history(events: Rows) -> dict[int, list[RootRecord]]:
    """Each epoch's proposed roots in chain order, marked revoked / accepted / pending."""
    tagged: list[tuple[tuple[int, int], str, dict[str, Any]]] = [
        (_pos(r), t, r) for t in ROOT_TABLES for r in events.get(t, [])
    ]
    history: dict[int, list[RootRecord]] = {}
    for pos, table, r in sorted(tagged, key=lambda x: x[0]):
        epoch = int(r["epoch"])
        if table == "ev_root_proposed":
            history.setdefault(epoch, []).append(
                RootRecord(
                    epoch=epoch,
                    root=_h(r["root"]),
                    policy_hash=_h(r["policy_hash"]),
                    total=int(r["total_cumulative"]),
                    valid_at=int(r["valid_at"]),
                    uri=str(r["uri"]),
                    block=pos[0],
                    log_index=pos[1],
                    tx_hash=_h(r["tx_hash"]),
                )
            )
            continue
        pending = [x for x in history.get(epoch, []) if x.status == PENDING and x.root == _h(r["root"])]
        if pending:
            pending[-1].status = REVOKED if table == "ev_root_revoked" else ACCEPTED
            if table == "ev_root_accepted":
                pending[-1].accepted_at = pos
    return history


class PolicyFinder:
    """The policy with a given hash, from the artifacts (`policies/<hash>.json`), an allocation file, or the
    shipped policies; anything that does not hash to what the chain recorded is refused."""

    def __init__(self, artifacts: Artifacts) -> None:
        self.artifacts = artifacts
        self.known: dict[str, Policy] = {}
        for path in sorted(POLICY_DIR.glob("*.json")):
            try:
                p = parse_policy(orjson.loads(path.read_bytes()))
            except (CairnError, orjson.JSONDecodeError):
                continue
            self.known.setdefault(p.content_hash(), p)

    def add(self, p: Policy) -> None:
        self.known.setdefault(p.content_hash(), p)

    def find(self, policy_hash: str) -> Policy | None:
        if policy_hash in self.known:
            return self.known[policy_hash]
        blob = self.artifacts.get(f"policies/{policy_hash}.json")
        if blob is None:  # the Cairn API's path (`GET /v1/policy/{hash}`)
            blob = self.artifacts.get(f"policy/{policy_hash}")
        if blob is None:
            return None
        try:
            p = parse_policy(orjson.loads(blob))
        except (CairnError, orjson.JSONDecodeError):
            return None
        if p.content_hash() != policy_hash:
            return None
        self.known[policy_hash] = p
        return p


def _load_file(
    rec: RootRecord, dep: Deployment, artifacts: Artifacts, policies: PolicyFinder, v: EpochVerdict
) -> dict[str, Any] | None:
    """The allocation file of `rec`, checked against its content address and the chain's record."""
    try:
        name = allocation_name(rec.uri)
    except CairnError:
        v.fail(f"epoch {rec.epoch}: the root's uri {rec.uri!r} is not content-addressed (no 0x<hash>.json)")
        return None
    v.allocation = name
    blob = artifacts.get(rec.uri)
    if blob is None:
        v.fail(f"epoch {rec.epoch}: allocation file {name} not found in {artifacts.describe()}")
        return None
    got = keccak_hex(blob)
    if got + ".json" != name:
        v.fail(
            f"epoch {rec.epoch}: allocation file {name} is tampered: its bytes hash to {got}, "
            "not to the content address the chain recorded"
        )
        return None
    doc: dict[str, Any] = orjson.loads(blob)
    distributor = dep.address("RewardDistributor").lower()
    for key, want in (
        ("epoch", rec.epoch),
        ("chain_id", dep.chain_id),
        ("distributor", distributor),
        ("root", rec.root),
        ("total_cumulative", str(rec.total)),
    ):
        if str(doc.get(key)).lower() != str(want).lower():
            v.fail(f"epoch {rec.epoch}: allocation file {name} says {key}={doc.get(key)}, the chain {want}")
    try:
        embedded = parse_policy(doc.get("policy"))
    except CairnError as exc:
        v.fail(f"epoch {rec.epoch}: allocation file {name} holds no valid policy ({exc})")
        return doc
    if embedded.content_hash() != rec.policy_hash:
        v.fail(
            f"epoch {rec.epoch}: wrong policy: RootProposed recorded policyHash {rec.policy_hash}, but the "
            f"allocation file's policy hashes to {embedded.content_hash()}"
        )
    else:
        policies.add(embedded)
    try:
        tree = MerkleTree.load(doc["tree"])
    except (CairnError, KeyError, TypeError, ValueError) as exc:
        v.fail(f"epoch {rec.epoch}: allocation file {name} holds no valid Merkle tree ({exc})")
        return doc
    if tree.root != rec.root:
        v.fail(f"epoch {rec.epoch}: allocation file {name}'s tree has root {tree.root}, the chain {rec.root}")
    return doc


def audit_chain(
    w3: Web3,
    dep: Deployment,
    *,
    epochs: list[int] | None = None,
    artifacts: Artifacts | None = None,
    expected_policy: Policy | None = None,
    head_block: int | None = None,
    events: Rows | None = None,
) -> ChainAudit:
    """Audit `epochs` (default: every epoch with a proposed root) and the conservation checks."""
    started = time.perf_counter()
    artifacts = artifacts or Artifacts(None)
    head = int(w3.eth.block_number) if head_block is None else head_block
    if events is None:
        events = fetch_events(w3, dep, head, extra_tables=AUDIT_TABLES)
    history = root_history(events)
    dist = dep.contract(w3, "RewardDistributor")
    first = int(dist.functions.FIRST_EPOCH().call())
    targets = sorted(set(epochs) if epochs is not None else set(history))
    policies = PolicyFinder(artifacts)
    verdicts: dict[int, EpochVerdict] = {}
    cumulative_by_epoch: dict[int, dict[str, int]] = {}
    previous: dict[str, int] = {}
    # replay through the last target and the last accepted root (claims are checked against each accepted one)
    accepted_epochs = [e for e, rs in history.items() if any(r.status == ACCEPTED for r in rs)]
    last = max([*targets, *accepted_epochs], default=first - 1)
    funded = _funded_through(events)
    for e in range(first, last + 1):
        v = EpochVerdict(epoch=e, status="none", roots=history.get(e, []))
        verdicts[e] = v
        rec = v.live
        if rec is None:
            v.status = REVOKED if v.roots else "none"
            if e in targets:
                v.notes.append(
                    "no live root: " + ("every proposal was revoked" if v.roots else "none proposed")
                )
            break  # roots are consecutive: nothing after an epoch without a live root
        v.status, v.root, v.total, v.policy_hash = rec.status, rec.root, rec.total, rec.policy_hash
        doc = _load_file(rec, dep, artifacts, policies, v) if e in targets else None
        policy = policies.find(rec.policy_hash)
        if policy is None and doc is None and e not in targets:  # a replayed epoch: its file names its policy
            scratch = EpochVerdict(epoch=e, status=rec.status)
            _load_file(rec, dep, artifacts, policies, scratch)
            policy = policies.find(rec.policy_hash)
        if policy is None:
            v.fail(
                f"epoch {e}: no policy with hash {rec.policy_hash} (looked in the shipped policies, the "
                f"allocation file and {artifacts.describe()}): cannot recompute"
            )
            break
        if expected_policy is not None and e in targets and expected_policy.content_hash() != rec.policy_hash:
            v.fail(
                f"epoch {e}: wrong policy: published under policy {rec.policy_hash}, the auditor expects "
                f"{expected_policy.content_hash()} ({expected_policy.name})"
            )
        end = end_block(w3, dep, e)
        if end is None:
            v.fail(f"epoch {e}: a root was proposed but the epoch has not ended on chain")
            break
        v.end_block = end
        amounts = allocate(inputs_from_events(events, e, end, policy), policy)
        pub: Publication = build_publication(
            epoch=e,
            end_block=end,
            chain_id=dep.chain_id,
            distributor=dep.address("RewardDistributor"),
            policy=policy,
            previous=previous,
            epoch_amounts=amounts,
        )
        v.recomputed_root, v.recomputed_total, v.leaves = pub.root, pub.total_cumulative, len(pub.tree)
        cumulative_by_epoch[e] = pub.cumulative
        previous = pub.cumulative
        if e not in targets:
            continue
        if (pub.root, pub.total_cumulative) != (rec.root, rec.total):
            v.fail(
                f"epoch {e}: root published for a different allocation: the chain has root {rec.root} "
                f"(total {rec.total}), the chain's events under policy {rec.policy_hash} give {pub.root} "
                f"(total {pub.total_cumulative})"
            )
        if doc is not None:
            if int(doc.get("end_block", -1)) != end:
                v.fail(
                    f"epoch {e}: the allocation file says end block {doc.get('end_block')}, the chain {end}"
                )
            if "tree" in doc and cumulative_from_document(doc) != pub.cumulative and pub.root == rec.root:
                v.fail(f"epoch {e}: the allocation file's leaves differ from the recomputed ones")
        f_events = funded(e)
        f_chain = int(dist.functions.fundedThrough(e).call())
        if f_events != f_chain:
            v.fail(
                f"epoch {e}: EpochFunded events up to epoch {e} sum to {f_events}, "
                f"fundedThrough says {f_chain}"
            )
        if rec.total > f_events:
            v.fail(
                f"epoch {e}: the root promises {rec.total}, more than the {f_events} funded through epoch {e}"
            )
        for r in v.roots:
            if r.status == REVOKED:
                v.notes.append(f"root {r.root} proposed at block {r.block} was revoked")
    out = [verdicts[e] for e in targets if e in verdicts]
    out += [
        EpochVerdict(epoch=e, status="none", notes=["no root proposed yet"])
        for e in targets
        if e not in verdicts
    ]
    token = dep.contract(w3, "RewardToken")
    problems, checks = conservation(
        events,
        history,
        cumulative_by_epoch,
        emission_cap=lambda e: int(token.functions.emissionCap(e).call()),
        router=dep.address("PaymentRouter").lower() if "PaymentRouter" in dep.contracts else None,
        distributor=dep.address("RewardDistributor").lower(),
    )
    return ChainAudit(dep.chain_id, head, out, problems, checks, time.perf_counter() - started)


def _funded_through(events: Rows) -> Callable[[int], int]:
    """`funded(e)`: the `EpochFunded` amounts of epochs <= e (what `fundedThrough(e)` must say)."""
    rows = events.get("ev_epoch_funded", [])

    def funded(epoch: int) -> int:
        return sum(int(r["amount"]) for r in rows if int(r["epoch"]) <= epoch)

    return funded


def conservation(
    events: Rows,
    history: dict[int, list[RootRecord]],
    cumulative_by_epoch: dict[int, dict[str, int]],
    *,
    emission_cap: Callable[[int], int],
    router: str | None,
    distributor: str | None = None,
) -> tuple[list[str], list[str]]:
    """The conservation checks over decoded events: (problems, what was checked). `emission_cap(e)` is the
    token's on-chain cap of epoch e; `router` the PaymentRouter (the revenue it funded is checked);
    `distributor` the RewardDistributor (the emission minted to it is the pool's emission)."""
    problems: list[str] = []
    checks: list[str] = []

    # emission within the on-chain schedule, and what was minted is what funded the pool
    emission: dict[int, int] = {}
    revenue: dict[int, int] = {}
    for r in events.get("ev_epoch_funded", []):
        e = int(r["epoch"])
        if int(r["source"]) == 0:
            emission[e] = emission.get(e, 0) + int(r["amount"])
        elif router is not None and str(r["from"]).lower() == router:
            revenue[e] = revenue.get(e, 0) + int(r["amount"])
    minted: dict[int, int] = {}  # all of an epoch's emission
    to_pool: dict[int, int] = {}  # the part minted to the distributor (fundEmission)
    for r in events.get("ev_emission_minted", []):
        e, amount = int(r["epoch"]), int(r["amount"])
        minted[e] = minted.get(e, 0) + amount
        if distributor is not None and str(r["to"]).lower() == distributor:
            to_pool[e] = to_pool.get(e, 0) + amount
    outside = 0
    for e in sorted(set(emission) | set(minted)):
        cap = emission_cap(e)
        if max(emission.get(e, 0), minted.get(e, 0)) > cap:
            problems.append(
                f"epoch {e}: emission {max(emission.get(e, 0), minted.get(e, 0))} exceeds the on-chain "
                f"schedule's cap {cap}"
            )
        if distributor is not None and emission.get(e, 0) != to_pool.get(e, 0):
            problems.append(
                f"epoch {e}: EpochFunded emission {emission.get(e, 0)} != the EmissionMinted to the pool "
                f"{to_pool.get(e, 0)}"
            )
        outside += minted.get(e, 0) - to_pool.get(e, 0)
    checks.append(
        f"emission within the schedule: {len(minted)} epoch(s)"
        + (f" ({outside} wei minted outside the pool: local test tokens)" if outside else "")
    )

    # payments minus fees add up to the revenue the router funded, per epoch
    paid: dict[int, int] = {}
    for r in events.get("ev_payment_settled", []):
        amount, fee = int(r["amount"]), int(r["fee"])
        if fee > amount:
            problems.append(f"payment in tx {r['tx_hash']}: fee {fee} above its amount {amount}")
        paid[int(r["epoch"])] = paid.get(int(r["epoch"]), 0) + amount - fee
    for e in sorted(set(paid) | set(revenue)):
        if paid.get(e, 0) != revenue.get(e, 0):
            problems.append(
                f"epoch {e}: payments minus fees {paid.get(e, 0)} != revenue funded by the router "
                f"{revenue.get(e, 0)}"
            )
    checks.append(
        f"payments - fees = revenue: {len(paid)} epoch(s), {len(events.get('ev_payment_settled', []))} "
        "payment(s)"
    )

    # one owner per content hash
    reclaimed = {(_h(r["tx_hash"]), _h(r["content_hash"])) for r in events.get("ev_dataset_reclaimed", [])}
    evictions = sorted((_pos(r), _h(r["contribution_id"])) for r in events.get("ev_dataset_evicted", []))
    owners: dict[str, str] = {}
    regs = sorted(
        events.get("ev_dataset_registered", []), key=lambda r: (*_pos(r), int(r.get("item_index", 0)))
    )
    ev_i = 0
    for r in regs:
        while ev_i < len(evictions) and evictions[ev_i][0] <= _pos(r):
            owners.pop(evictions[ev_i][1], None)
            ev_i += 1
        h, owner = _h(r["content_hash"]), str(r["owner"]).lower()
        prev = owners.get(h)
        if prev is not None and prev != owner and (_h(r["tx_hash"]), h) not in reclaimed:
            problems.append(
                f"content hash {h} has two owners: {prev} and {owner} (block {r['block_number']})"
            )
        owners[h] = owner
    checks.append(f"one owner per content hash: {len(owners)} dataset(s)")

    # claims: each equal to the claimant's leaf in the root live at that block; totals within promises
    accepted = sorted((r.accepted_at, r) for rs in history.values() for r in rs if r.accepted_at is not None)
    claimed_total = 0
    unchecked = 0
    last_claimed: dict[str, int] = {}
    for c in sorted(events.get("ev_claimed", []), key=_pos):
        account, cum, amount = str(c["account"]).lower(), int(c["cumulative_amount"]), int(c["amount"])
        claimed_total += amount
        if cum - last_claimed.get(account, 0) != amount:
            problems.append(
                f"Claimed by {account} of {amount} does not continue its claimed total "
                f"({last_claimed.get(account, 0)} -> {cum})"
            )
        last_claimed[account] = cum
        live = [r for pos, r in accepted if pos < _pos(c)]
        if not live:
            problems.append(f"Claimed by {account} at block {c['block_number']} before any accepted root")
            continue
        rec = live[-1]
        leaves = cumulative_by_epoch.get(rec.epoch)
        if leaves is None:
            unchecked += 1
            continue
        if leaves.get(account) != cum:
            problems.append(
                f"Claimed by {account} of cumulative {cum} at block {c['block_number']} matches no "
                "entitlement: "
                f"the live root (epoch {rec.epoch}) gives it {leaves.get(account, 0)}"
            )
    promised = accepted[-1][1].total if accepted else 0
    if claimed_total > promised:
        problems.append(
            f"total claimed {claimed_total} exceeds the total promised by the accepted root {promised}"
        )
    checks.append(
        f"claims: {len(events.get('ev_claimed', []))} checked against entitlements"
        + (f" ({unchecked} under roots not replayed)" if unchecked else "")
        + f"; total claimed {claimed_total} <= promised {promised}"
    )
    return problems, checks
