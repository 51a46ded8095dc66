"""Relay endpoints for everything the registry accepts by signature (batch registrations in both shapes,
compute jobs, withdrawals, validators' attestations) and relayed claims (`claimFor`) for accounts without
gas. Each answers 202 with a relay receipt (`GET /v1/relays/{relay_id}` follows it) and meets the same
limits as `POST /v1/datasets` (contracts/SECURITY.md "Relayer"): client and account rate limits, the deny
list, the deadline margin, one pending relay per signer nonce and the daily gas budgets,
all before any gas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from backend.api import schemas
from backend.api.deps import ChainDep, RelayerDep, SessionDep, SettingsDep
from backend.api.metrics import Metrics
from backend.api.relay import Relayer
from backend.api.relay.guard import client_of
from backend.api.relay.messages import (
    AttestBatchMessage,
    AttestMessage,
    ComputeMessage,
    ComputesMessage,
    DatasetBatchMessage,
    DatasetsMessage,
    Message,
    WithdrawMessage,
)
from backend.api.schemas import COMMON, problem_responses
from backend.api.services import allocations
from backend.api.validation import (
    UINT32_MAX,
    UINT64_MAX,
    UINT256_MAX,
    parse_address,
    parse_bytes32,
    parse_hex,
)
from cairn.core import eip712
from cairn.core.eip712 import ComputeJob, Dataset, DatasetBatch
from cairn.core.errors import CairnError, ConflictError, InvalidInputError

router = APIRouter(prefix="/v1/relay", tags=["relay"])
signing = APIRouter(prefix="/v1/eip712", tags=["relay"])  # beside /v1/eip712/register-dataset

MAX_ITEMS = 100  # items in one relayed batch (the relay's gas ceiling bounds it further)
MAX_SCORE = 10_000
RELAY_ANSWERS = problem_responses(400, 402, 403, 409, 429, 502, *COMMON)
_ZERO = "0x" + "00" * 32


class _Signed(BaseModel):
    deadline: int = Field(ge=0, le=UINT256_MAX, description="Unix seconds after which the signature is void")
    signature: str = Field(description="65-byte EIP-712 signature, 0x + 130 hex")


class DatasetItem(BaseModel):
    content_hash: str = Field(description="bytes32, 0x + 64 hex (SHA-256 of the bytes)")
    size: int = Field(ge=0, le=UINT64_MAX)
    license_id: int = Field(ge=0, le=UINT32_MAX)
    metadata_hash: str = Field(description="bytes32, 0x + 64 hex")
    uri: str = Field(max_length=2048)


class DatasetsRelay(_Signed):
    """`RegisterDatasets`: datasets each with its own fields, one signature (`registerDatasetsFor`)."""

    owner: str
    datasets: list[DatasetItem] = Field(min_length=1, max_length=MAX_ITEMS)


class DatasetBatchRelay(_Signed):
    """`RegisterDatasetBatch`: datasets sharing licence, metadata and uri (`registerDatasetBatchFor`)."""

    owner: str
    content_hashes: list[str] = Field(min_length=1, max_length=MAX_ITEMS)
    sizes: list[int] = Field(min_length=1, max_length=MAX_ITEMS)
    license_id: int = Field(ge=0, le=UINT32_MAX)
    metadata_hash: str
    uri: str = Field(max_length=2048)


class ComputeItem(BaseModel):
    job_id: str = Field(description="bytes32")
    work_units: int = Field(ge=0, le=UINT64_MAX)
    model_id: str = Field(description="bytes32")
    result_hash: str = Field(description="bytes32")


class ComputeRelay(_Signed, ComputeItem):
    """`RegisterCompute` (`registerComputeFor`)."""

    provider: str


class ComputesRelay(_Signed):
    """`RegisterComputes` (`registerComputesFor`)."""

    provider: str
    jobs: list[ComputeItem] = Field(min_length=1, max_length=MAX_ITEMS)


class WithdrawRelay(_Signed):
    """`Withdraw` (`withdrawFor`)."""

    owner: str
    contribution_id: str = Field(description="bytes32")


class AttestRelay(_Signed):
    """`Attest` (`attestFor`), signed by a validator holding VALIDATOR_ROLE."""

    validator: str
    contribution_id: str = Field(description="bytes32")
    score: int = Field(ge=0, le=MAX_SCORE, description="0..10000 (basis points)")


class AttestBatchRelay(_Signed):
    """`AttestBatch` (`attestBatchFor`): many scores under one validator signature."""

    validator: str
    contribution_ids: list[str] = Field(min_length=1, max_length=MAX_ITEMS)
    scores: list[int] = Field(min_length=1, max_length=MAX_ITEMS)


class ClaimRelay(BaseModel):
    """A claim relayed for `account` (`claimFor`: the tokens go to the account; no signature needed)."""

    account: str


def _b32(value: str, field: str) -> str:
    return parse_bytes32(value, field=field)


def _dataset(d: DatasetItem, i: int) -> Dataset:
    ch = _b32(d.content_hash, f"datasets[{i}].content_hash")
    if ch == _ZERO:
        raise InvalidInputError("content_hash must not be zero", field=f"datasets[{i}].content_hash")
    return Dataset(ch, d.size, d.license_id, _b32(d.metadata_hash, f"datasets[{i}].metadata_hash"), d.uri)


def _job(j: ComputeItem) -> ComputeJob:
    return ComputeJob(
        _b32(j.job_id, "job_id"), j.work_units, _b32(j.model_id, "model_id"),
        _b32(j.result_hash, "result_hash"),
    )  # fmt: skip


def _signature(body: _Signed) -> bytes:
    return bytes.fromhex(parse_hex(body.signature, field="signature", size=65)[2:])


def _unique(items: list[str], field: str) -> None:
    if len(set(items)) != len(items):
        raise InvalidInputError(f"{field} must not repeat an item", field=field)


def run(request: Request, relayer: Relayer, send: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Admit the client (its rate limit, before anything reads the chain), relay, count the outcome."""
    metrics: Metrics = request.app.state.metrics
    client = client_of(
        dict(request.headers), request.client.host if request.client else None,
        relayer.guard.limits.client_header,
    )  # fmt: skip
    try:
        relayer.guard.admit_client(client)
        out = send()
    except Exception as exc:
        metrics.relayed.labels(type(exc).__name__).inc()
        if isinstance(exc, CairnError) and exc.http_status < 500:
            metrics.relay_refusals.labels(str(exc.fields.get("reason") or exc.code)).inc()
        raise
    metrics.relayed.labels("duplicate" if out["duplicate"] else "sent").inc()
    return out


def _relay(request: Request, relayer: Relayer, build: Callable[[], Message], body: _Signed) -> dict[str, Any]:
    return run(request, relayer, lambda: relayer.relay(build(), _signature(body)))


REGISTRY_TYPES = (
    "RegisterDataset", "RegisterDatasets", "RegisterDatasetBatch", "RegisterCompute", "RegisterComputes",
    "Withdraw", "Attest", "AttestBatch",
)  # fmt: skip


@signing.get("/registry", responses=problem_responses(*COMMON))
def registry_signing(
    chain: ChainDep, signer: Annotated[str, Query(description="The owner, provider or validator who signs")]
) -> dict[str, Any]:
    """What a wallet needs to sign any relayed registry message: the registry's EIP-712 domain, the signer's
    current nonce, and every primary type with the types it references (`eth_signTypedData_v4`)."""
    who = parse_address(signer, field="signer")
    registry = chain.contract("ContributionRegistry")
    types: dict[str, Any] = {}
    for primary in REGISTRY_TYPES:
        types[primary] = eip712.TYPES[primary]
        for name in eip712.referenced_types(primary):
            types[name] = eip712.TYPES[name]
    return {
        "domain": eip712.registry_domain(chain.chain_id, registry.address),
        "signer": who,
        "nonce": int(registry.functions.nonces(who).call()),
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, **types},
        "primary_types": list(REGISTRY_TYPES),
    }


@router.post("/datasets", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_datasets(body: DatasetsRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay `registerDatasetsFor` (commit, then reveal once the commit is mined, as `POST /v1/datasets`)."""

    def build() -> Message:
        datasets = tuple(_dataset(d, i) for i, d in enumerate(body.datasets))
        _unique([d.content_hash for d in datasets], "datasets")
        return DatasetsMessage(parse_address(body.owner, field="owner"), body.deadline, datasets=datasets)

    return _relay(request, relayer, build, body)


@router.post("/dataset-batch", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_dataset_batch(body: DatasetBatchRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay `registerDatasetBatchFor` (commit, then reveal)."""

    def build() -> Message:
        if len(body.sizes) != len(body.content_hashes):
            raise InvalidInputError("sizes must have one entry per content hash", field="sizes")
        hashes = tuple(_b32(h, f"content_hashes[{i}]") for i, h in enumerate(body.content_hashes))
        if _ZERO in hashes:
            raise InvalidInputError("content_hashes must not contain zero", field="content_hashes")
        _unique(list(hashes), "content_hashes")
        for i, size in enumerate(body.sizes):
            if not 0 <= size <= UINT64_MAX:
                raise InvalidInputError(f"sizes[{i}] must be a uint64", field="sizes")
        batch = DatasetBatch(
            hashes, tuple(body.sizes), body.license_id, _b32(body.metadata_hash, "metadata_hash"), body.uri
        )
        return DatasetBatchMessage(parse_address(body.owner, field="owner"), body.deadline, batch=batch)

    return _relay(request, relayer, build, body)


@router.post("/compute", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_compute(body: ComputeRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay `registerComputeFor` (one transaction)."""
    return _relay(
        request, relayer,
        lambda: ComputeMessage(parse_address(body.provider, field="provider"), body.deadline, job=_job(body)),
        body,
    )  # fmt: skip


@router.post("/computes", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_computes(body: ComputesRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay `registerComputesFor` (one transaction)."""

    def build() -> Message:
        jobs = tuple(_job(j) for j in body.jobs)
        _unique([j.job_id for j in jobs], "jobs")
        return ComputesMessage(parse_address(body.provider, field="provider"), body.deadline, jobs=jobs)

    return _relay(request, relayer, build, body)


@router.post("/withdraw", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_withdraw(body: WithdrawRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay `withdrawFor` (one transaction)."""
    return _relay(
        request, relayer,
        lambda: WithdrawMessage(
            parse_address(body.owner, field="owner"), body.deadline,
            contribution_id=_b32(body.contribution_id, "contribution_id"),
        ),
        body,
    )  # fmt: skip


@router.post("/attest", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_attest(body: AttestRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay a validator's `attestFor` (one transaction; the same `Attested` event as a direct `attest`)."""
    return _relay(
        request, relayer,
        lambda: AttestMessage(
            parse_address(body.validator, field="validator"), body.deadline,
            contribution_id=_b32(body.contribution_id, "contribution_id"), score=body.score,
        ),
        body,
    )  # fmt: skip


@router.post("/attest-batch", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_attest_batch(body: AttestBatchRelay, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Relay a validator's `attestBatchFor` (one transaction, one signature, many scores)."""

    def build() -> Message:
        if len(body.scores) != len(body.contribution_ids):
            raise InvalidInputError("scores must have one entry per contribution id", field="scores")
        for i, score in enumerate(body.scores):
            if not 0 <= score <= MAX_SCORE:
                raise InvalidInputError(f"scores[{i}] must be between 0 and {MAX_SCORE}", field="scores")
        ids = tuple(_b32(c, f"contribution_ids[{i}]") for i, c in enumerate(body.contribution_ids))
        _unique(list(ids), "contribution_ids")
        return AttestBatchMessage(
            parse_address(body.validator, field="validator"), body.deadline, contribution_ids=ids,
            scores=tuple(body.scores),
        )  # fmt: skip

    return _relay(request, relayer, build, body)


@router.post("/claim", status_code=202, response_model=schemas.RelayReceipt, responses=RELAY_ANSWERS)
def relay_claim(
    body: ClaimRelay,
    relayer: RelayerDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    chain: ChainDep,
) -> dict[str, Any]:
    """Relay `claimFor` for `account` with its leaf under the newest claimable root on this server: the
    tokens go to the account, the relayer pays the gas. 409 when nothing is claimable."""

    def send() -> dict[str, Any]:
        account = parse_address(body.account, field="account")
        leaf = allocations.latest_entitlement(
            session, settings=settings, chain=chain, address=account, claimable_only=True
        )
        if leaf is None:
            raise ConflictError(
                f"{account} has no entitlement under a claimable root on this server", account=account
            )
        found = allocations.proof(
            session, settings=settings, chain=chain, epoch=int(leaf["epoch"]), address=account
        )
        return relayer.claim_for(
            account=account, epoch=int(leaf["epoch"]), root=str(found["root"]),
            cumulative=int(found["cumulative_amount"]), proof=list(found["proof"]),
        )  # fmt: skip

    return run(request, relayer, send)
