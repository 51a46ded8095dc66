"""Response models: the documented shape of each JSON answer (addresses checksummed, wei as strings)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.api.problems import PROBLEM_MEDIA_TYPE

Wei = str  # decimal string: JSON numbers cannot hold uint256 exactly


class Problem(BaseModel):
    """RFC 9457 problem details (`application/problem+json`), the body of every error answer. Extra members
    name what went wrong: `field` or `fields` (the input at fault), `errors` (each validation error), ids."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="https://cairn.dev/problems/<code>")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code, e.g. invalid_input, not_found")


PROBLEM_DESCRIPTIONS = {
    400: "Bad Request: the body is not JSON",
    402: "Payment Required: the relayer's gas budget for this account or for today is spent",
    401: "Unauthorized: no valid session or API key (sign in with SIWE, or send an operator key); the "
    "`WWW-Authenticate` header names the scheme",
    403: "Forbidden: the credentials do not allow this (an API key without the scope), or the relayer "
    "refuses the request before spending any gas",
    404: "Not Found",
    409: "Conflict: the state on chain or on this server disagrees with the request",
    413: "Content Too Large: the body exceeds the size limit",
    422: "Unprocessable Content: a path, query or body value is invalid (`field` / `fields` name it)",
    429: "Too Many Requests: rate limited; retry after `Retry-After` seconds",
    502: "Bad Gateway: the node refused the relayed transaction",
    503: "Service Unavailable: the chain node or the database did not answer",
}


def problem_responses(
    *codes: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error answers an operation can give, each a problem+json `Problem`
    (`descriptions` replaces the generic description of some codes)."""
    schema = Problem.model_json_schema()
    texts = {**PROBLEM_DESCRIPTIONS, **(descriptions or {})}
    return {
        code: {"description": texts[code], "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for code in codes
    }


# Every operation reads the chain or the database (503) and validates its input (422).
COMMON = (422, 503)
READ = (404, *COMMON)


class IndexerState(BaseModel):
    in_process: bool
    running: bool | None = None
    error: str | None = None


class EpochClock(BaseModel):
    genesis: int
    length: int


class Health(BaseModel):
    status: str
    version: str
    chain_id: int
    rpc_url: str
    latest_block: int
    latest_block_time: int
    latest_indexed_block: int | None
    indexer_lag: int | None = Field(description="latest_block - latest_indexed_block")
    database: str = Field(description="sqlite or postgresql")
    database_kind: str
    contracts: dict[str, str]
    epoch: EpochClock
    start_block: int = Field(description="the deployment's first block (its contracts' logs start there)")
    indexer: IndexerState


class Score(BaseModel):
    validators: int
    median: int | None = Field(description="The reward policy's aggregate (0..10000)")
    mean: int | None
    min: int | None
    max: int | None


class Attestation(BaseModel):
    validator: str
    score: int
    block_number: int
    block_time: int
    tx_hash: str


class Dataset(BaseModel):
    kind: str = "dataset"
    content_hash: str
    owner: str
    size: int
    license_id: int
    metadata_hash: str
    uri: str
    block_number: int
    block_time: int
    tx_hash: str
    withdrawn: bool
    score: Score | None = None


class DatasetPage(BaseModel):
    items: list[Dataset]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Compute(BaseModel):
    kind: str = "compute"
    contribution_id: str
    owner: str
    model_id: str
    job_id: str
    work_units: int
    result_hash: str
    block_number: int
    block_time: int
    tx_hash: str
    withdrawn: bool


class Contribution(BaseModel):
    id: str
    kind: str
    owner: str
    block_number: int
    block_time: int
    tx_hash: str
    withdrawn: bool
    content_hash: str | None = None
    size: int | None = None
    license_id: int | None = None
    metadata_hash: str | None = None
    uri: str | None = None
    contribution_id: str | None = None
    model_id: str | None = None
    job_id: str | None = None
    work_units: int | None = None
    result_hash: str | None = None
    attestations: list[Attestation]
    score: Score


class Rewards(BaseModel):
    cumulative: Wei = Field(description="Cumulative entitlement under the newest published root")
    claimed: Wei
    claimable: Wei
    epoch: int | None
    root: str | None
    claimable_now: bool = Field(description="False while that root waits out its challenge delay")


class Account(BaseModel):
    address: str
    dataset_count: int
    compute_count: int
    datasets: list[Dataset]
    compute: list[Compute]
    rewards: Rewards


class RelayReceipt(BaseModel):
    tx_hash: str = Field(
        description="The current phase's transaction (the reveal once sent, else the commit): the mined one, "
        "else the latest (fee bumps replace it)"
    )
    status: str = Field(
        description="pending (until the reveal is mined), mined, reverted, replaced (its nonce was used "
        "by another transaction; posting the same signed message again relays it afresh), or failed (its "
        "commitment expired before the reveal could be sent)"
    )
    phase: str = Field(
        default="commit",
        description="commit (the commitment hiding the content hash is being mined), reveal "
        "(`registerDataset*For`, sent once the commit is mined), or send (a kind without a commitment)",
    )
    commit_tx_hash: str | None = Field(default=None, description="The commitment's transaction")
    block_number: int | None
    relay_id: str = Field(description="keccak256 of the signature; stays the same across fee bumps")
    tx_hashes: list[str] = Field(default_factory=list, description="Every signed version, oldest first")
    relayer_nonce: int | None = Field(default=None, description="The relayer's nonce carrying it")
    message_digest: str = Field(description="EIP-712 digest that was signed")
    owner: str
    content_hash: str = Field(
        description="What the relay names: the (first) content hash, the compute id or the contribution id"
    )
    kind: str = Field(
        default="dataset",
        description="dataset, datasets, dataset_batch (commit-reveal), compute, computes, withdraw, attest, "
        "attest_batch, claim (one transaction: phase `send`)",
    )
    failure: str | None = Field(
        default=None, description="Why the relay can no longer succeed (status `failed`)"
    )
    nonce: str
    relayer: str
    duplicate: bool = Field(description="True when this signed message had been relayed before")


class ManifestEntry(BaseModel):
    dataset_id: str
    weight: int


class Model(BaseModel):
    model_id: str
    version: int
    trainer: str
    datasets: list[ManifestEntry]
    block_number: int
    block_time: int
    tx_hash: str
    versions: list[int]


class ModelRevenue(BaseModel):
    model_id: str
    amount: Wei
    fee: Wei
    net: Wei
    requests: int
    settlements: int


class Revenue(BaseModel):
    epoch: int
    models: list[ModelRevenue]
    total_amount: Wei
    total_fee: Wei
    total_net: Wei


class Root(BaseModel):
    epoch: int
    root: str
    policy_hash: str
    total_cumulative: Wei
    valid_at: int
    uri: str
    proposed_block: int
    proposed_tx: str
    revoked: bool
    accepted_at: int | None
    status: str = Field(description="pending, claimable, accepted or revoked")


class EpochSummary(BaseModel):
    epoch: int
    status: str = Field(description="open, pending, claimable, accepted or revoked")
    root: str | None
    policy_hash: str | None
    total_cumulative: Wei | None
    valid_at: int | None
    allocation_uri: str | None
    funded: dict[str, Wei]
    pool: Wei


class EpochList(BaseModel):
    current_epoch: int
    epochs: list[EpochSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class EpochDetail(EpochSummary):
    roots: list[Root]
    current_epoch: int
    engine: dict[str, object] | None = Field(description="The rewards engine's state row, if any")


class ClaimArgs(BaseModel):
    account: str
    cumulativeAmount: Wei  # the contract's parameter name
    proof: list[str]


class Distribution(BaseModel):
    epoch: int
    root: str
    allocation_file: str
    leaves: int = Field(description="recipients of the epoch's rewards (accounts with an epoch amount)")
    total: Wei = Field(description="the epoch's rewards, wei")
    gini: float = Field(description="Gini coefficient of the epoch's per-account amounts, 0..1")
    lorenz: list[list[float]] = Field(
        description="[x, y] pairs: cumulative share of recipients (ascending amounts) and of rewards, "
        "101 evenly spaced x, exact at each"
    )


class Proof(BaseModel):
    epoch: int
    account: str
    root: str
    cumulative_amount: Wei
    proof: list[str]
    claimed: Wei
    claimable: Wei
    valid_at: int
    claimable_now: bool
    allocation_file: str
    claim: ClaimArgs = Field(description="Arguments for RewardDistributor.claim / claimFor")


class ContentStored(BaseModel):
    """An upload the content store accepted: the bytes hashed to the path's content hash."""

    content_hash: str = Field(description="SHA-256 of the bytes, 0x + 64 hex")
    size: int = Field(description="Bytes stored")
    created: bool = Field(description="False: the store already held these bytes")
    admitted_by: str = Field(
        description="Why the upload was allowed: registered (the mirror has the dataset), relayed (the "
        "relayer holds its registration), on_chain (registered, not yet mirrored)"
    )
    url: str = Field(description="Where to download it")


class HistoryEntry(BaseModel):
    kind: str = Field(description="registration, attestation, reward, claim or payment")
    contribution_id: str | None = None
    contribution_kind: str | None = Field(default=None, description="dataset or compute (registrations)")
    score: int | None = Field(default=None, description="The attestation's score (attestations)")
    amount: Wei | None = Field(
        default=None, description="Claimed, paid, or the epoch's reward (its cumulative minus the previous)"
    )
    cumulative_amount: Wei | None = None
    model_id: str | None = None
    epoch: int | None = None
    root: str | None = Field(default=None, description="The epoch's live root (rewards)")
    tx_hash: str | None
    block_number: int
    log_index: int
    item_index: int
    block_time: int


class HistoryPage(BaseModel):
    address: str
    items: list[HistoryEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class QueueItem(BaseModel):
    contribution_id: str
    kind: str
    owner: str
    model_id: str | None
    size: int | None
    work_units: int | None
    uri: str | None
    attested_by: int = Field(description="How many validators have attested it")
    content_available: bool = Field(description="The content store has the dataset's bytes")
    content_url: str | None = Field(description="Where to download them (`GET /v1/content/{hash}`)")
    block_number: int
    block_time: int


class QueuePage(BaseModel):
    validator: str
    items: list[QueueItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Payment(BaseModel):
    """An x402 payment served first and settled later (`backend.api.x402.store`)."""

    id: int
    scheme: str = Field(description="exact or channel")
    payer: str
    nonce: str
    amount: Wei
    model_id: str
    resource: str
    status: str = Field(description="accepted, served, settling, settled, failed or void")
    tx_hash: str | None = Field(description="The settlement transaction, once settled")
    reason: str | None = Field(description="Why it failed to settle")
    created_at: int
    updated_at: int


class Exposure(BaseModel):
    payer: str
    unsettled: Wei
    limit: Wei
    failed: int
    failed_amount: Wei
    refused: bool = Field(description="New payments from this payer are refused (402) until these settle")


class PaymentPage(BaseModel):
    payments: list[Payment] = Field(description="Oldest first (by id)")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    exposure: Exposure | None = Field(default=None, description="With `payer`: its unsettled exposure")


class Voucher(BaseModel):
    """The latest voucher the gateway accepted on a channel (x402 `batch-settlement` wire names)."""

    maxClaimableAmount: Wei = Field(description="The signed cumulative ceiling the receiver may claim")
    signature: str = Field(description="The payer authorizer's EIP-712 signature of (channelId, ceiling)")


class ChannelModelUsage(BaseModel):
    model_id: str
    charged: Wei = Field(description="Cumulative amount charged for this model")
    requests: int = Field(description="Paid requests for this model")
    claimed: Wei = Field(description="Of it, claimed on chain (confirmed claim rows)")
    claimed_requests: int


class Channel(BaseModel):
    """A PaymentRouter channel the gateway has served (`backend.api.services.channels`)."""

    channel_id: str
    router: str
    payer: str
    payer_authorizer: str
    receiver_authorizer: str
    token: str
    withdraw_delay: int = Field(description="Seconds between a withdrawal request and its finalization")
    salt: str
    voucher: Voucher | None = Field(description="The latest accepted voucher; null before the first")
    charged: Wei = Field(description="Cumulative amount charged on the channel (what the voucher covers)")
    requests: int = Field(description="Paid requests served through the channel")
    updated_at: int = Field(description="Unix time of the latest accepted voucher")
    usage: list[ChannelModelUsage] = Field(description="Per model")
    claimed: Wei = Field(description="The channel's cumulative total claimed on chain by the gateway")
    claiming: Wei | None = Field(
        description="The cumulative total of a claim transaction still in flight, if any"
    )


class ChannelPage(BaseModel):
    payer: str
    channels: list[Channel] = Field(description="Ascending by channel id")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
