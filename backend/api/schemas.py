"""Response models: the documented shape of each JSON answer (addresses checksummed, wei as strings)."""

from __future__ import annotations

from pydantic import BaseModel, Field

Wei = str  # decimal string: JSON numbers cannot hold uint256 exactly


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
        description="pending (until the reveal is mined), mined, reverted, or replaced (its nonce was used "
        "by another transaction; posting the same signed message again relays it afresh)"
    )
    phase: str = Field(
        default="commit",
        description="commit (the commitment hiding the content hash is being mined) or reveal "
        "(`registerDatasetFor`, sent once the commit is mined)",
    )
    commit_tx_hash: str | None = Field(default=None, description="The commitment's transaction")
    block_number: int | None
    relay_id: str = Field(description="keccak256 of the signature; stays the same across fee bumps")
    tx_hashes: list[str] = Field(default_factory=list, description="Every signed version, oldest first")
    relayer_nonce: int | None = Field(default=None, description="The relayer's nonce carrying it")
    message_digest: str = Field(description="EIP-712 digest that was signed")
    owner: str
    content_hash: str
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


class EpochDetail(EpochSummary):
    roots: list[Root]
    current_epoch: int
    engine: dict[str, object] | None = Field(description="The rewards engine's state row, if any")


class ClaimArgs(BaseModel):
    account: str
    cumulativeAmount: Wei  # the contract's parameter name
    proof: list[str]


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
