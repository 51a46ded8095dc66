"""Allocation files (content-addressed, written by the rewards engine), Merkle proofs and policies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.api.chain import Chain
from backend.api.mirror import rows, table_exists
from backend.api.services import epochs
from backend.api.settings import ApiSettings
from backend.rewards import distribution as reward_distribution
from backend.rewards import epochs as reward_epochs
from backend.rewards import publication
from backend.rewards.proofindex import ProofIndex
from cairn.core.errors import AllocationMismatchError, CairnError, InvalidInputError, NotFoundError
from cairn.core.policy import POLICY_DIR, load_policy


def find_allocation_file(*, settings: ApiSettings, ref: str) -> Path:
    """`ref` is a content hash, `<hash>.json`, or a URI ending in one (files are content-addressed)."""
    return publication.find_allocation_file(settings.data_dir, ref)


def engine_state(session: Session, *, chain_id: int, epoch: int) -> dict[str, Any] | None:
    """The rewards engine's row for the epoch (status closed/computed/proposed/accepted), if any."""
    if not table_exists(session, reward_epochs.TABLE.name):
        return None
    row = reward_epochs.get(session.connection(), chain_id=chain_id, epoch=epoch)
    return None if row is None else reward_epochs.state(row)


def index_for_root(
    session: Session, *, settings: ApiSettings, chain: Chain, epoch: int, root: dict[str, Any]
) -> ProofIndex:
    """The proof index of the allocation file of `root` (the root's `uri`, else the engine's file for it),
    checked against the root: built once per file, then each lookup is a few reads (no hashing)."""
    refs = [str(root["uri"])] if root.get("uri") else []
    mismatch: AllocationMismatchError | None = None
    for ref in _refs(session, chain=chain, epoch=epoch, root=root, first=refs):
        try:
            index = publication.open_index(settings.data_dir, ref)
        except (NotFoundError, InvalidInputError):
            continue
        if index.root.lower() == str(root["root"]).lower():
            return index
        mismatch = mismatch or AllocationMismatchError(
            f"allocation file {index.allocation} gives root {index.root}, "
            f"the chain has {root['root']} for epoch {epoch}",
            epoch=epoch,
        )
    if mismatch is not None:
        raise mismatch
    raise NotFoundError(
        f"the allocation file of epoch {epoch} (root {root['root']}) is not on this server", epoch=epoch
    )


def index_of(*, settings: ApiSettings, root: dict[str, Any]) -> ProofIndex | None:
    """The proof index of a published root's allocation file (by the `uri` published with it), if this
    server has that file and it gives that root; else None."""
    if not root.get("uri"):
        return None
    try:
        index = publication.open_index(settings.data_dir, str(root["uri"]))
    except (NotFoundError, InvalidInputError):
        return None
    return index if index.root.lower() == str(root["root"]).lower() else None


def _refs(
    session: Session, *, chain: Chain, epoch: int, root: dict[str, Any], first: list[str]
) -> Iterator[str]:
    """The root's published `uri` first (no database read), then the rewards engine's file for that root."""
    yield from first
    state = engine_state(session, chain_id=chain.chain_id, epoch=epoch)
    if state and state.get("root") == root["root"] and state.get("allocation_file"):
        yield str(state["allocation_file"])


def is_claimable_now(root: dict[str, Any], head_time: int) -> bool:
    """Whether `root` can be claimed against at `head_time`: accepted, or its challenge delay passed."""
    return root["accepted_at"] is not None or head_time >= int(root["valid_at"])


def proof(
    session: Session, *, settings: ApiSettings, chain: Chain, epoch: int, address: str
) -> dict[str, Any]:
    root = epochs.live_root(session, epoch=epoch)
    index = index_for_root(session, settings=settings, chain=chain, epoch=epoch, root=root)
    found = index.lookup(address)
    if found is None:
        raise NotFoundError(f"{address} has no entitlement in epoch {epoch}", epoch=epoch, address=address)
    amount, proof_nodes = found
    claimed = epochs.claimed(session, address=address)
    head = chain.head(settings.api_head_max_age_s)
    return {
        "epoch": epoch,
        "account": address,
        "root": root["root"],
        "cumulative_amount": str(amount),
        "proof": proof_nodes,
        "claimed": str(claimed),
        "claimable": str(max(0, amount - claimed)),
        "valid_at": root["valid_at"],
        "claimable_now": is_claimable_now(root, int(head["timestamp"])),
        "allocation_file": index.allocation,
        "claim": {"account": address, "cumulativeAmount": str(amount), "proof": proof_nodes},
    }


def latest_entitlement(
    session: Session, *, settings: ApiSettings, chain: Chain, address: str, claimable_only: bool = False
) -> dict[str, Any] | None:
    """The account's leaf under the newest live root whose allocation file is here (None if none): one
    index lookup per epoch, newest first, and one head read. `claimable_only`: skip roots still in their
    challenge delay (the distributor pays under the newest claimable one), judged on the chain's head read
    now (else one at most `api_head_max_age_s` old)."""
    head = chain.latest_block() if claimable_only else chain.head(settings.api_head_max_age_s)
    head_time = int(head["timestamp"])
    for summary in epochs.list_epochs(session, now=head_time):
        if summary["root"] is None:
            continue
        epoch = int(summary["epoch"])
        try:
            root = epochs.live_root(session, epoch=epoch)
            if claimable_only and not is_claimable_now(root, head_time):
                continue
            found = index_for_root(session, settings=settings, chain=chain, epoch=epoch, root=root).lookup(
                address
            )
        except (NotFoundError, AllocationMismatchError):
            continue
        if found is None:
            continue
        return {
            "epoch": epoch,
            "root": root["root"],
            "cumulative_amount": found[0],
            "claimable_now": is_claimable_now(root, head_time),
        }
    return None


def policy_dirs(settings: ApiSettings) -> list[Path]:
    return [POLICY_DIR, settings.data_dir / "policies"]


def find_policy(session: Session, *, settings: ApiSettings, policy_hash: str) -> bytes:
    """The canonical JSON of the known policy whose content hash is `policy_hash`.

    Looked up in the policy folders, then in the allocation file of a root published with that hash (the
    file embeds its policy). The body's keccak256 is the hash itself, so a client can check what it got."""
    want = policy_hash.lower()
    for folder in policy_dirs(settings):
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.glob("*.json")):
            try:
                policy = load_policy(candidate)
            except CairnError:
                continue
            if policy.content_hash() == want:
                return policy.canonical_json()
    if table_exists(session, epochs.PROPOSED):
        for r in rows(
            session,
            f"SELECT uri FROM {epochs.PROPOSED} WHERE policy_hash = :p ORDER BY block_number",
            {"p": want},
        ):
            try:
                index = publication.open_index(settings.data_dir, str(r["uri"]))
            except CairnError:
                continue
            if index.policy_hash == want and index.policy is not None:
                return index.policy  # the embedded policy's canonical JSON, kept in the file's index
    raise NotFoundError(f"no policy with hash {policy_hash} on this server", policy_hash=policy_hash)


_DISTRIBUTIONS: dict[tuple[str, str], dict[str, Any]] = {}


def distribution(session: Session, *, settings: ApiSettings, chain: Chain, epoch: int) -> dict[str, Any]:
    """The Lorenz curve and Gini coefficient of the epoch's rewards (its live root's allocation file),
    computed once per (allocation file, root): a revoked root's replacement has another key."""
    root = epochs.live_root(session, epoch=epoch)
    index = index_for_root(session, settings=settings, chain=chain, epoch=epoch, root=root)
    key = (index.allocation, str(root["root"]).lower())
    if (hit := _DISTRIBUTIONS.get(key)) is None:
        doc = publication.load_document(find_allocation_file(settings=settings, ref=index.allocation))
        amounts = doc.get("epoch_amounts")
        if not isinstance(amounts, dict):
            raise InvalidInputError(f"allocation file {index.allocation} has no epoch_amounts")
        hit = reward_distribution.distribution(int(a) for a in amounts.values())
        if len(_DISTRIBUTIONS) >= 256:
            _DISTRIBUTIONS.clear()
        _DISTRIBUTIONS[key] = hit
    return {"epoch": epoch, "root": root["root"], "allocation_file": index.allocation, **hit}
