"""EIP-712 typed data of a relayed dataset registration (the ContributionRegistry's `RegisterDataset`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.api.relayer import DatasetFields

DOMAIN_NAME = "Cairn ContributionRegistry"
DOMAIN_VERSION = "1"


def register_dataset_typed_data(
    *,
    chain_id: int,
    verifying_contract: str,
    dataset: DatasetFields,
    owner: str,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """Full typed data (domain, types, primaryType, message) ready for `eth_signTypedData_v4`."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "RegisterDataset": [
                {"name": "owner", "type": "address"},
                {"name": "dataset", "type": "Dataset"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
            "Dataset": [
                {"name": "contentHash", "type": "bytes32"},
                {"name": "size", "type": "uint64"},
                {"name": "licenseId", "type": "uint32"},
                {"name": "metadataHash", "type": "bytes32"},
                {"name": "uri", "type": "string"},
            ],
        },
        "primaryType": "RegisterDataset",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": verifying_contract,
        },
        "message": {
            "owner": owner,
            "dataset": {
                "contentHash": dataset.content_hash,
                "size": dataset.size,
                "licenseId": dataset.license_id,
                "metadataHash": dataset.metadata_hash,
                "uri": dataset.uri,
            },
            "nonce": nonce,
            "deadline": deadline,
        },
    }
