"""Request and response models of the sign-in, `/v1/me` and operator endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from backend.api.schemas import Attestation, Compute, Dataset, Proof, Score, Wei


class NonceOut(BaseModel):
    nonce: str = Field(description="Put in the message's `Nonce:` line; usable once, until `expires_at`")
    expires_at: int
    issued_at: str = Field(description="A suitable `Issued At:` (RFC 3339, now)")
    domain: str = Field(description="The `domain` the message must name")
    uri: str = Field(description="A URI the message may name (any URI under this origin is accepted)")
    chain_id: int
    statement: str = Field(description="A suggested statement")


class SignIn(BaseModel):
    message: str = Field(max_length=2048, description="The EIP-4361 message, exactly as signed")
    signature: str = Field(max_length=4096, description="0x hex: personal_sign (EIP-191) or EIP-1271")
    session: Literal["cookie", "bearer"] = Field(
        default="cookie",
        description="cookie: an httpOnly SameSite=Strict cookie (browsers); bearer: a token in the answer",
    )


class SessionOut(BaseModel):
    address: str
    chain_id: int
    kind: str = Field(description="cookie or bearer")
    expires_at: int
    wallet: bool | None = Field(default=None, description="Signed by a contract wallet (EIP-1271)")
    token: str | None = Field(
        default=None, description="Bearer sessions only: send as `Authorization: Bearer <token>`; shown once"
    )


class AttestationStatus(BaseModel):
    attestations: list[Attestation]
    score: Score
    quorum: int = Field(description="Validators the reward policy requires")
    quorum_met: bool


class MyDataset(Dataset):
    kind: Literal["dataset"] = "dataset"
    status: AttestationStatus


class MyCompute(Compute):
    kind: Literal["compute"] = "compute"
    status: AttestationStatus


class MyContributions(BaseModel):
    address: str
    dataset_count: int = Field(description="All the account's datasets (every page)")
    compute_count: int = Field(description="All the account's compute jobs (every page)")
    items: list[Annotated[MyDataset | MyCompute, Field(discriminator="kind")]] = Field(
        description="Newest first: datasets and compute jobs in one order, `kind` tells which"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class EpochReward(BaseModel):
    epoch: int
    root: str
    cumulative: Wei = Field(description="The leaf's cumulative amount under this epoch's root")
    amount: Wei = Field(description="This epoch's part: cumulative minus the previous epoch's")
    claimable_now: bool


class MyRewards(BaseModel):
    address: str
    epochs: list[EpochReward] = Field(description="Oldest first, from each epoch's allocation file")
    cumulative: Wei = Field(description="Under the newest published root")
    claimed: Wei
    claimable: Wei = Field(description="Claimable now: the claimable root's cumulative minus claimed")
    claim: Proof | None = Field(description="The proof for `claim` under the claimable root, if any")


class Claim(BaseModel):
    amount: Wei
    cumulative_amount: Wei
    caller: str = Field(description="Who sent it: the account, a relayer (claimFor) or a payout batch")
    block_number: int
    block_time: int
    tx_hash: str


class MyClaims(BaseModel):
    address: str
    claims: list[Claim] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class PayoutOut(BaseModel):
    paid: int
    paid_amount: Wei
    already_paid: int
    below_min: int
    skipped: list[str]
    unpaid: list[str]
    batches: list[dict[str, object]]


class EpochState(BaseModel):
    """The rewards engine's row for the epoch after the step (closed, computed, proposed or accepted)."""

    epoch: int
    status: str
    end_block: int | None = None
    root: str | None = None
    policy_hash: str | None = None
    epoch_total: Wei | None = None
    total_cumulative: Wei | None = None
    leaf_count: int | None = None
    allocation_file: str | None = None
    uri: str | None = None
    valid_at: int | None = None
    payout: PayoutOut | None = None
