"""The Python EIP-712 type strings match the Solidity typehashes and sign what the contracts verify."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from cairn.core import eip712
from cairn.core.settings import REPO_ROOT

SRC = REPO_ROOT / "contracts" / "src"


def _solidity_type_strings(path: Path) -> dict[str, str]:
    """`NAME_TYPEHASH = keccak256("..." "...")` constants of a Solidity file, string literals concatenated."""
    text = path.read_text()
    found: dict[str, str] = {}
    for m in re.finditer(r"(\w+)_TYPEHASH\s*=\s*keccak256\(\s*((?:\"[^\"]*\"\s*)+)\)", text):
        found[m.group(1)] = "".join(re.findall(r"\"([^\"]*)\"", m.group(2)))
    return found


def test_registry_typehashes_match_solidity() -> None:
    sol = _solidity_type_strings(SRC / "ContributionRegistry.sol")
    expected = {
        "DATASET": "Dataset",
        "REGISTER_DATASET": "RegisterDataset",
        "REGISTER_DATASETS": "RegisterDatasets",
        "DATASET_BATCH": "DatasetBatch",
        "REGISTER_DATASET_BATCH": "RegisterDatasetBatch",
        "COMPUTE": "Compute",
        "REGISTER_COMPUTE": "RegisterCompute",
        "REGISTER_COMPUTES": "RegisterComputes",
        "WITHDRAW": "Withdraw",
        "ATTEST": "Attest",
        "ATTEST_BATCH": "AttestBatch",
    }
    assert set(sol) == set(expected)
    for const, primary in expected.items():
        assert eip712.type_string(primary) == sol[const], const


def test_eip3009_and_permit_typehashes_are_the_eips() -> None:
    # Values from EIP-3009 / USDC FiatTokenV2 and EIP-2612.
    assert eip712.typehash("TransferWithAuthorization").hex() == (
        "7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
    )
    assert eip712.typehash("ReceiveWithAuthorization").hex() == (
        "d099cc98ef71107a616c4f0f941f04c322d8e254fe26b3c6668db87aae413de8"
    )
    assert eip712.typehash("CancelAuthorization").hex() == (
        "158b0a9edf7a828aad02f63cd515c68ef2f50ba807396f6d12842833a1597429"
    )
    assert eip712.typehash("Permit").hex() == (
        "6e71edae12b1b97f4d1f60370fef10105fa2faae0126114a169c64845d6126c9"
    )


def test_batch_digest_hashes_array_of_structs() -> None:
    """EIP-712 arrays of structs: keccak of the concatenated struct hashes, as the contract computes."""
    ds = [
        eip712.Dataset("0x" + "11" * 32, 1, 2, "0x" + "22" * 32, "ipfs://a"),
        eip712.Dataset("0x" + "33" * 32, 3, 4, "0x" + "44" * 32, ""),
    ]
    owner = "0x" + "ab" * 20
    verifying = "0x" + "cd" * 20
    typed = eip712.register_datasets_typed_data(
        chain_id=31337, verifying_contract=verifying, owner=owner, datasets=ds, nonce=5, deadline=99
    )

    def word(x: int) -> bytes:
        return x.to_bytes(32, "big")

    def struct_hash(d: eip712.Dataset) -> bytes:
        return keccak(
            eip712.typehash("Dataset")
            + bytes.fromhex(d.content_hash[2:])
            + word(d.size)
            + word(d.license_id)
            + bytes.fromhex(d.metadata_hash[2:])
            + keccak(text=d.uri)
        )

    array_hash = keccak(b"".join(struct_hash(d) for d in ds))
    body = keccak(
        eip712.typehash("RegisterDatasets")
        + bytes(12)
        + bytes.fromhex(owner[2:])
        + array_hash
        + word(5)
        + word(99)
    )
    domain = keccak(
        keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        + keccak(text=eip712.REGISTRY_DOMAIN_NAME)
        + keccak(text="1")
        + word(31337)
        + bytes(12)
        + bytes.fromhex(verifying[2:])
    )
    assert eip712.digest(typed) == keccak(b"\x19\x01" + domain + body)


def test_signature_is_low_s_and_recovers() -> None:
    acct = Account.create()
    typed = eip712.register_dataset_typed_data(
        chain_id=1,
        verifying_contract="0x" + "01" * 20,
        owner=acct.address,
        dataset=eip712.Dataset("0x" + "aa" * 32, 10, 0, "0x" + "00" * 32, "u"),
        nonce=0,
        deadline=1,
    )
    sig = eip712.sign_typed_data(acct.key, typed)
    assert len(sig) == 65 and sig[64] in (27, 28)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    assert int.from_bytes(sig[32:64], "big") <= n // 2
    recovered = Account._recover_hash(eip712.digest(typed), signature=sig)
    assert recovered == acct.address


def test_dataset_rejects_short_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        eip712.Dataset("0x1234", 1, 0, "0x" + "00" * 32, "").as_tuple()
