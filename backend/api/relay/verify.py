"""Checks on a relayed registration's signature before any gas is spent: shape (65 bytes, low s, v), the
signer (ECDSA, or EIP-1271 for contract wallets), and the digests that name a request and a signature."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_hash.auto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from cairn.core.eip712 import Dataset
from cairn.core.errors import InvalidInputError, RelayError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EIP1271_MAGIC = bytes.fromhex("1626ba7e")
EIP1271_ABI = [
    {
        "type": "function",
        "name": "isValidSignature",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    }
]


def signature_digest(signature: bytes) -> str:
    """The relay id: keccak256 of the signature (stable across fee bumps, unlike the transaction hash)."""
    return "0x" + keccak(signature).hex()


def request_digest(dataset: Dataset, owner: str, deadline: int) -> str:
    """What the client asked for (everything the signature must cover except the nonce)."""
    parts = [owner.lower(), dataset.content_hash, str(dataset.size), str(dataset.license_id)]
    parts += [dataset.metadata_hash, dataset.uri, str(deadline)]
    return "0x" + keccak("\x1f".join(parts).encode()).hex()


def check_signature_shape(signature: bytes) -> None:
    if len(signature) != 65:
        raise InvalidInputError(
            f"signature must be 65 bytes (r, s, v), got {len(signature)} bytes", field="signature"
        )
    s = int.from_bytes(signature[32:64], "big")
    if s > SECP256K1_N // 2:
        raise InvalidInputError("signature has a high s value (not canonical, EIP-2)", field="signature")
    if signature[64] not in (0, 1, 27, 28):
        raise InvalidInputError(f"signature has an invalid v byte {signature[64]}", field="signature")


def verify_owner(
    w3: Web3,
    *,
    chain_id: int,
    digest: bytes,
    signature: bytes,
    owner: str,
    nonce: int,
    verify_gas: int,
    wallet: bool,
) -> None:
    """The owner signed `digest`: as an EOA (ECDSA recovery) or, if `wallet` (the owner has code, decided
    by the caller), as a contract wallet (EIP-1271, whose `isValidSignature` gets at most `verify_gas` gas:
    a wallet that burns more is refused)."""
    try:
        signer = Account._recover_hash(digest, signature=signature)
    except Exception:
        signer = None
    if signer is not None and signer.lower() == owner.lower():
        return
    if wallet and _eip1271(w3, owner, digest, signature, verify_gas):
        return
    raise InvalidInputError(
        f"signature is not {owner}'s over this registration (nonce {nonce}, chain {chain_id})"
        + (f"; it was signed by {signer}" if signer else "")
        + (f"; the wallet's isValidSignature did not accept it within {verify_gas} gas" if wallet else ""),
        field="signature",
        reason="wallet_signature" if wallet else "signature",
    )


def _eip1271(w3: Web3, owner: str, digest: bytes, signature: bytes, gas: int) -> bool:
    wallet = w3.eth.contract(address=Web3.to_checksum_address(owner), abi=EIP1271_ABI)
    try:
        answer = wallet.functions.isValidSignature(digest, signature).call({"gas": gas})
    except Exception:  # reverted, out of gas, or not an EIP-1271 wallet
        return False
    return bytes(answer) == EIP1271_MAGIC


def revert_reason(exc: Exception, contract: Any) -> str:
    """The custom error's name when the revert data matches one of `contract`'s errors, else the message."""
    data = getattr(exc, "data", None) or getattr(exc, "message", None) or str(exc)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        selector = data[:10].lower()
        for entry in contract.abi:
            if entry.get("type") == "error":
                sig = f"{entry['name']}({','.join(i['type'] for i in entry.get('inputs', []))})"
                if "0x" + keccak(sig.encode()).hex()[:8] == selector:
                    return str(entry["name"])
    return str(getattr(exc, "message", None) or exc)


def simulate_reveal(
    reveal: Any, registry: Any, *, sender: str, gas: int, committed: bool = True
) -> str | None:
    """Simulate a relayed call with `gas`. A reveal (`committed`) is simulated before its commitment
    exists: None if it fails exactly at the commitment check, which the registry makes after the deadline,
    nonce, signature and pause checks (so all of those pass); otherwise the revert reason. A call without a
    commitment: None if it succeeds. RelayError if the node refuses to simulate."""
    try:
        reveal.call({"from": sender, "gas": gas})
    except (ContractCustomError, ContractLogicError) as exc:
        reason = revert_reason(exc, registry)
        return None if committed and reason.startswith("ContributionRegistryUnknownCommitment") else reason
    except Web3RPCError as exc:
        if "gas" in str(exc).lower():  # out of gas at the cap
            return str(exc)
        raise RelayError(f"the node refused to simulate the relayed transaction: {exc}") from None
    return "the registration succeeded without a commitment" if committed else None
