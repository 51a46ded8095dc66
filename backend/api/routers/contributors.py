"""Contributors: relayed dataset registration, datasets, contributions, accounts, typed data to sign."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from backend.api import schemas
from backend.api.deps import ChainDep, RelayerDep, SessionDep, SettingsDep
from backend.api.pagination import check_limit
from backend.api.routers.relays import run
from backend.api.schemas import COMMON, READ, problem_responses
from backend.api.services import accounts, contributions
from backend.api.services.eip712 import register_dataset_request
from backend.api.validation import (
    UINT32_MAX,
    UINT64_MAX,
    UINT256_MAX,
    parse_address,
    parse_bytes32,
    parse_hex,
)
from cairn.core.eip712 import Dataset
from cairn.core.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["contributors"])


class DatasetRegistration(BaseModel):
    """A dataset registration signed by its owner (EIP-712 `RegisterDataset`), relayed by the server."""

    content_hash: str = Field(description="bytes32, 0x + 64 hex")
    size: int = Field(ge=0, le=UINT64_MAX, description="Size in bytes (uint64)")
    license_id: int = Field(ge=0, le=UINT32_MAX, description="License id (uint32)")
    metadata_hash: str = Field(description="bytes32, 0x + 64 hex")
    uri: str = Field(max_length=2048, description="Where the data can be fetched")
    owner: str = Field(description="The owner's address; must be the signer")
    deadline: int = Field(ge=0, le=UINT256_MAX, description="Unix seconds after which the signature is void")
    signature: str = Field(description="65-byte EIP-712 signature, 0x + 130 hex")


@router.post(
    "/datasets",
    status_code=202,
    response_model=schemas.RelayReceipt,
    responses=problem_responses(400, 402, 403, 409, 429, 502, *COMMON),
)
def register_dataset(body: DatasetRegistration, relayer: RelayerDep, request: Request) -> dict[str, Any]:
    """Verify the owner's signature, then relay `registerDatasetFor`; 202 with the relay id and the
    transaction hash.

    Retrying the same signed message returns the same relay and sends nothing new. Refused before any gas
    is spent (contracts/SECURITY.md "Relayer"): 429 + Retry-After (rate), 402 + Retry-After (daily gas
    budget), 403 (deny-listed contract wallet), 409 (a relay with this owner nonce is pending), 422 (e.g. a
    deadline too close to the chain's clock)."""
    return run(request, relayer, lambda: _register(body, relayer))


def _register(body: DatasetRegistration, relayer: RelayerDep) -> dict[str, Any]:
    dataset = Dataset(
        content_hash=parse_bytes32(body.content_hash, field="content_hash"),
        size=body.size,
        license_id=body.license_id,
        metadata_hash=parse_bytes32(body.metadata_hash, field="metadata_hash"),
        uri=body.uri,
    )
    if dataset.content_hash == "0x" + "00" * 32:
        raise InvalidInputError("content_hash must not be zero", field="content_hash")
    owner = parse_address(body.owner, field="owner")
    signature = bytes.fromhex(parse_hex(body.signature, field="signature", size=65)[2:])
    return relayer.register_dataset(dataset=dataset, owner=owner, deadline=body.deadline, signature=signature)


@router.get("/relays/{relay_id}", response_model=schemas.RelayReceipt, responses=problem_responses(*READ))
def relay_by_id(relay_id: str, relayer: RelayerDep) -> dict[str, Any]:
    """Status of a relayed registration by its relay id (the POST answer's `relay_id`): stable across fee
    bumps, which replace the transaction and its hash."""
    return _relay(relayer.status(parse_bytes32(relay_id, field="relay_id")))


@router.get("/relay/{tx_hash}", response_model=schemas.RelayReceipt, responses=problem_responses(*READ))
def relay_status(tx_hash: str, relayer: RelayerDep) -> dict[str, Any]:
    """Status of a relayed registration by the hash of any of its transactions (the first one or a fee
    bump), or by its relay id."""
    return _relay(relayer.status(parse_bytes32(tx_hash, field="tx_hash")))


def _relay(found: dict[str, Any] | None) -> dict[str, Any]:
    if found is None:
        raise NotFoundError("no relayed registration with this relay id or transaction hash")
    return found


@router.get("/datasets/{content_hash}", response_model=schemas.Dataset, responses=problem_responses(*READ))
def get_dataset(content_hash: str, session: SessionDep) -> dict[str, Any]:
    return contributions.get_dataset(session, content_hash=parse_bytes32(content_hash, field="content_hash"))


@router.get("/datasets", response_model=schemas.DatasetPage, responses=problem_responses(*COMMON))
def list_datasets(
    session: SessionDep,
    settings: SettingsDep,
    owner: Annotated[str | None, Query(description="Only this owner's datasets")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    check_limit(limit, settings.api_page_limit)
    return contributions.list_datasets(
        session,
        owner=parse_address(owner, field="owner") if owner is not None else None,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/contributions/{contribution_id}",
    response_model=schemas.Contribution,
    responses=problem_responses(*READ),
)
def get_contribution(contribution_id: str, session: SessionDep) -> dict[str, Any]:
    """A dataset or compute contribution with each validator's latest attestation and the aggregate."""
    return contributions.get_contribution(
        session, contribution_id=parse_bytes32(contribution_id, field="contribution_id")
    )


@router.get("/accounts/{address}", response_model=schemas.Account, responses=problem_responses(*READ))
def get_account(address: str, session: SessionDep, settings: SettingsDep, chain: ChainDep) -> dict[str, Any]:
    """Contributions, cumulative rewards, claimed and claimable amounts of an address."""
    return accounts.get_account(
        session, settings=settings, chain=chain, address=parse_address(address, field="address")
    )


@router.get("/eip712/register-dataset", responses=problem_responses(*COMMON))
def eip712_register_dataset(
    chain: ChainDep,
    owner: Annotated[str, Query(description="The owner who will sign")],
    content_hash: Annotated[str | None, Query()] = None,
    size: Annotated[int | None, Query(ge=0, le=UINT64_MAX)] = None,
    license_id: Annotated[int | None, Query(ge=0, le=UINT32_MAX)] = None,
    metadata_hash: Annotated[str | None, Query()] = None,
    uri: Annotated[str | None, Query(max_length=2048)] = None,
    deadline: Annotated[int | None, Query(ge=0, le=UINT256_MAX)] = None,
) -> dict[str, Any]:
    """Typed data to sign (`eth_signTypedData_v4`): domain, types and message with the owner's current nonce.

    Dataset fields left out are zero / empty in the message; fill them in before signing."""
    return register_dataset_request(
        chain=chain,
        owner=parse_address(owner, field="owner"),
        content_hash=parse_bytes32(content_hash, field="content_hash") if content_hash else None,
        size=size,
        license_id=license_id,
        metadata_hash=parse_bytes32(metadata_hash, field="metadata_hash") if metadata_hash else None,
        uri=uri,
        deadline=deadline,
    )
