"""EIP-712 typed data Cairn's contracts verify: the single Python source of the type strings.

The type definitions below must match the Solidity typehashes (`ContributionRegistry.*_TYPEHASH`, EIP-3009 and
EIP-2612 in `RewardToken`); `tests/unit/test_eip712.py` checks them against the Solidity sources and
`tests/integration/test_contracts_registry.py` against the deployed contracts.

Every builder returns the full typed data (`types`, `primaryType`, `domain`, `message`), ready for
`eth_signTypedData_v4` in a wallet or `sign_typed_data` below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

REGISTRY_DOMAIN_NAME = "Cairn ContributionRegistry"
REGISTRY_DOMAIN_VERSION = "1"
TOKEN_DOMAIN_VERSION = "1"  # OpenZeppelin ERC20Permit: EIP712(name, "1")

Field = dict[str, str]


def _fields(declaration: str) -> list[Field]:
    """`"address owner,uint256 nonce"` (Solidity's typehash notation) -> the EIP-712 field list."""
    return [{"name": name, "type": typ} for typ, name in (part.split() for part in declaration.split(","))]


DOMAIN_FIELDS: list[Field] = _fields("string name,string version,uint256 chainId,address verifyingContract")
_NONCE_DEADLINE = "uint256 nonce,uint256 deadline"  # every registry message ends with these
_EIP3009 = "address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce"

TYPES: dict[str, list[Field]] = {
    "Dataset": _fields("bytes32 contentHash,uint64 size,uint32 licenseId,bytes32 metadataHash,string uri"),
    "RegisterDataset": _fields(f"address owner,Dataset dataset,{_NONCE_DEADLINE}"),
    "RegisterDatasets": _fields(f"address owner,Dataset[] datasets,{_NONCE_DEADLINE}"),
    "DatasetBatch": _fields(
        "bytes32[] contentHashes,uint64[] sizes,uint32 licenseId,bytes32 metadataHash,string uri"
    ),
    "RegisterDatasetBatch": _fields(f"address owner,DatasetBatch batch,{_NONCE_DEADLINE}"),
    "Compute": _fields("bytes32 jobId,uint64 workUnits,bytes32 modelId,bytes32 resultHash"),
    "RegisterCompute": _fields(f"address provider,Compute job,{_NONCE_DEADLINE}"),
    "RegisterComputes": _fields(f"address provider,Compute[] jobs,{_NONCE_DEADLINE}"),
    "Withdraw": _fields(f"address owner,bytes32 contributionId,{_NONCE_DEADLINE}"),
    "Attest": _fields(f"address validator,bytes32 contributionId,uint16 score,{_NONCE_DEADLINE}"),
    "AttestBatch": _fields(f"address validator,bytes32[] contributionIds,uint16[] scores,{_NONCE_DEADLINE}"),
    # EIP-3009, exactly as in the EIP (and USDC's FiatTokenV2).
    "TransferWithAuthorization": _fields(_EIP3009),
    "ReceiveWithAuthorization": _fields(_EIP3009),
    "CancelAuthorization": _fields("address authorizer,bytes32 nonce"),
    # EIP-2612.
    "Permit": _fields("address owner,address spender,uint256 value,uint256 nonce,uint256 deadline"),
}


@dataclass(frozen=True)
class Dataset:
    """The fields of one dataset registration (hex strings are 0x-prefixed 32 bytes)."""

    content_hash: str
    size: int
    license_id: int
    metadata_hash: str
    uri: str

    def message(self) -> dict[str, Any]:
        return {
            "contentHash": self.content_hash,
            "size": self.size,
            "licenseId": self.license_id,
            "metadataHash": self.metadata_hash,
            "uri": self.uri,
        }

    def as_tuple(self) -> tuple[bytes, int, int, bytes, str]:
        """ABI tuple for the contract's `DatasetInput` struct."""
        return (_b32(self.content_hash), self.size, self.license_id, _b32(self.metadata_hash), self.uri)


@dataclass(frozen=True)
class ComputeJob:
    job_id: str
    work_units: int
    model_id: str
    result_hash: str

    def message(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "workUnits": self.work_units,
            "modelId": self.model_id,
            "resultHash": self.result_hash,
        }

    def as_tuple(self) -> tuple[bytes, int, bytes, bytes]:
        return (_b32(self.job_id), self.work_units, _b32(self.model_id), _b32(self.result_hash))


def _b32(value: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes of hex, got {len(raw)}")
    return raw


def _referenced(primary: str) -> list[str]:
    """Struct types `primary` references (transitively), excluding itself, sorted by name (EIP-712)."""
    found: set[str] = set()
    stack = [primary]
    while stack:
        for field in TYPES[stack.pop()]:
            base = field["type"].removesuffix("[]")
            if base in TYPES and base != primary and base not in found:
                found.add(base)
                stack.append(base)
    return sorted(found)


def referenced_types(primary: str) -> list[str]:
    """The struct types a primary type references, transitively, sorted (what its `types` must hold)."""
    return _referenced(primary)


def type_string(primary: str) -> str:
    """The EIP-712 `encodeType` string, e.g. `RegisterDataset(address owner,...)Dataset(...)`."""

    def one(name: str) -> str:
        return name + "(" + ",".join(f"{f['type']} {f['name']}" for f in TYPES[name]) + ")"

    return one(primary) + "".join(one(t) for t in _referenced(primary))


def typehash(primary: str) -> bytes:
    return keccak(text=type_string(primary))


def _typed(primary: str, domain: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    types: dict[str, list[Field]] = {"EIP712Domain": DOMAIN_FIELDS, primary: TYPES[primary]}
    for name in _referenced(primary):
        types[name] = TYPES[name]
    return {"types": types, "primaryType": primary, "domain": domain, "message": message}


def _domain(name: str, version: str, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    return {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying_contract}


def registry_domain(chain_id: int, verifying_contract: str) -> dict[str, Any]:
    return _domain(REGISTRY_DOMAIN_NAME, REGISTRY_DOMAIN_VERSION, chain_id, verifying_contract)


def token_domain(token_name: str, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    """The RewardToken's domain: its ERC-20 name, version "1" (what x402 puts in `extra.name/version`)."""
    return _domain(token_name, TOKEN_DOMAIN_VERSION, chain_id, verifying_contract)


def _registry_message(
    primary: str, *, chain_id: int, verifying_contract: str, nonce: int, deadline: int, **fields: Any
) -> dict[str, Any]:
    """A registry message: signer and payload `fields`, then the nonce and deadline they all end with."""
    message = {**fields, "nonce": nonce, "deadline": deadline}
    return _typed(primary, registry_domain(chain_id, verifying_contract), message)


def register_dataset_typed_data(
    *, chain_id: int, verifying_contract: str, owner: str, dataset: Dataset, nonce: int, deadline: int
) -> dict[str, Any]:
    """`RegisterDataset` for `ContributionRegistry.registerDatasetFor`."""
    return _registry_message(
        "RegisterDataset", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, owner=owner, dataset=dataset.message(),
    )  # fmt: skip


def register_datasets_typed_data(
    *,
    chain_id: int,
    verifying_contract: str,
    owner: str,
    datasets: Sequence[Dataset],
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """`RegisterDatasets` (one signature over a batch) for `ContributionRegistry.registerDatasetsFor`."""
    return _registry_message(
        "RegisterDatasets", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, owner=owner, datasets=[d.message() for d in datasets],
    )  # fmt: skip


@dataclass(frozen=True)
class DatasetBatch:
    """Datasets sharing licence, metadata and location (`ContributionRegistry.registerDatasetBatch`)."""

    content_hashes: tuple[str, ...]
    sizes: tuple[int, ...]
    license_id: int
    metadata_hash: str
    uri: str

    def message(self) -> dict[str, Any]:
        return {
            "contentHashes": list(self.content_hashes),
            "sizes": list(self.sizes),
            "licenseId": self.license_id,
            "metadataHash": self.metadata_hash,
            "uri": self.uri,
        }

    def as_tuple(self) -> tuple[list[bytes], list[int], int, bytes, str]:
        """ABI tuple for the contract's `DatasetBatch` struct."""
        return (
            [_b32(h) for h in self.content_hashes],
            list(self.sizes),
            self.license_id,
            _b32(self.metadata_hash),
            self.uri,
        )


def register_dataset_batch_typed_data(
    *, chain_id: int, verifying_contract: str, owner: str, batch: DatasetBatch, nonce: int, deadline: int
) -> dict[str, Any]:
    """`RegisterDatasetBatch` for `ContributionRegistry.registerDatasetBatchFor`."""
    return _registry_message(
        "RegisterDatasetBatch", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, owner=owner, batch=batch.message(),
    )  # fmt: skip


def register_compute_typed_data(
    *, chain_id: int, verifying_contract: str, provider: str, job: ComputeJob, nonce: int, deadline: int
) -> dict[str, Any]:
    """`RegisterCompute` for `ContributionRegistry.registerComputeFor`."""
    return _registry_message(
        "RegisterCompute", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, provider=provider, job=job.message(),
    )  # fmt: skip


def register_computes_typed_data(
    *,
    chain_id: int,
    verifying_contract: str,
    provider: str,
    jobs: Sequence[ComputeJob],
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """`RegisterComputes` (one signature over a batch) for `ContributionRegistry.registerComputesFor`."""
    return _registry_message(
        "RegisterComputes", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, provider=provider, jobs=[j.message() for j in jobs],
    )  # fmt: skip


def withdraw_typed_data(
    *, chain_id: int, verifying_contract: str, owner: str, contribution_id: str, nonce: int, deadline: int
) -> dict[str, Any]:
    """`Withdraw` for `ContributionRegistry.withdrawFor` (a gasless owner withdraws through the relayer)."""
    return _registry_message(
        "Withdraw", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, owner=owner, contributionId=contribution_id,
    )  # fmt: skip


def attest_typed_data(
    *,
    chain_id: int,
    verifying_contract: str,
    validator: str,
    contribution_id: str,
    score: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """`Attest` for `ContributionRegistry.attestFor` (a validator attests through the relayer)."""
    return _registry_message(
        "Attest", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, validator=validator, contributionId=contribution_id, score=score,
    )  # fmt: skip


def attest_batch_typed_data(
    *,
    chain_id: int,
    verifying_contract: str,
    validator: str,
    contribution_ids: Sequence[str],
    scores: Sequence[int],
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """`AttestBatch` (one signature over many scores) for `ContributionRegistry.attestBatchFor`."""
    return _registry_message(
        "AttestBatch", chain_id=chain_id, verifying_contract=verifying_contract, nonce=nonce,
        deadline=deadline, validator=validator, contributionIds=list(contribution_ids), scores=list(scores),
    )  # fmt: skip


def transfer_authorization_typed_data(
    *,
    token_name: str,
    chain_id: int,
    verifying_contract: str,
    from_: str,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: str,
    receive: bool = False,
) -> dict[str, Any]:
    """EIP-3009 `TransferWithAuthorization` (or `ReceiveWithAuthorization` when `receive`)."""
    primary = "ReceiveWithAuthorization" if receive else "TransferWithAuthorization"
    message = {
        "from": from_,
        "to": to,
        "value": value,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    return _typed(primary, token_domain(token_name, chain_id, verifying_contract), message)


def cancel_authorization_typed_data(
    *, token_name: str, chain_id: int, verifying_contract: str, authorizer: str, nonce: str
) -> dict[str, Any]:
    message = {"authorizer": authorizer, "nonce": nonce}
    return _typed("CancelAuthorization", token_domain(token_name, chain_id, verifying_contract), message)


def permit_typed_data(
    *,
    token_name: str,
    chain_id: int,
    verifying_contract: str,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    message = {"owner": owner, "spender": spender, "value": value, "nonce": nonce, "deadline": deadline}
    return _typed("Permit", token_domain(token_name, chain_id, verifying_contract), message)


def digest(typed: Mapping[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest (`keccak256(0x1901 || domainSeparator || hashStruct(message))`)."""
    signable = encode_typed_data(full_message=dict(typed))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_typed_data(private_key: str | bytes, typed: Mapping[str, Any]) -> bytes:
    """65-byte `r || s || v` signature (low-s, v in {27, 28}) as the contracts expect."""
    signed = Account.sign_typed_data(private_key, full_message=dict(typed))
    return bytes(signed.signature)
