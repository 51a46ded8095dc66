"""What the relayer carries: one class per registry function an EIP-712 signature authorises.

Each message knows its typed data (`cairn.core.eip712`, given the signer's current nonce), the registry call
it becomes, what it names (`subject`: the content hash, compute id or contribution id the relay is found
by) and, for dataset registrations, what its commitment hides (`commit_digest`: the content hash, or
`batchDigest` of a batch's content hashes). Dataset registrations are commit-reveal (two transactions, see
`service.py`); every other kind is one transaction (`direct`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from backend.api.relay.verify import request_digest as dataset_request_digest
from cairn.core import eip712
from cairn.core.eip712 import ComputeJob, Dataset, DatasetBatch
from cairn.core.registration import batch_digest, compute_id

# A reveal's gas before it can be estimated (its commitment is not mined yet): its calldata, 80k for the
# first dataset (a fresh slot, the event, the signature check) and this for each further one
# (registerDatasets: 30.6k per item, registerDatasetBatch: 24.1k; contracts/gas-snapshot.json).
PER_EXTRA_DATASET_GAS = 32_000


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True)
class Message:
    """A signed registry message: `signer` (owner, provider or validator), `deadline`, the kind's fields."""

    signer: str
    deadline: int
    kind: str = field(init=False, default="")
    primary: str = field(init=False, default="")  # the EIP-712 primary type

    # --- per kind ---------------------------------------------------------------------------------------
    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        raise NotImplementedError

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        """The registry function and its arguments (`salt` only matters to commit-reveal kinds)."""
        raise NotImplementedError

    @property
    def subject(self) -> str:
        raise NotImplementedError

    @property
    def content_hashes(self) -> tuple[str, ...]:
        """The datasets it registers (checked against the chain and other relays before any gas)."""
        return ()

    @property
    def commit_digest(self) -> str | None:
        """What its commitment hides; None: no commitment (one transaction)."""
        return None

    # --- shared -----------------------------------------------------------------------------------------
    @property
    def direct(self) -> bool:
        return self.commit_digest is None

    def reveal_bound(self, calldata: str) -> int:
        """A bound on the reveal's gas before it can be estimated: its calldata plus the registrations."""
        extra = max(len(self.content_hashes) - 1, 0) * PER_EXTRA_DATASET_GAS
        return len(calldata) // 2 * 16 + 80_000 + extra

    def request_digest(self) -> str:
        """What the client asked for: everything the signature must cover except the nonce."""
        typed = self.typed(chain_id=0, verifying_contract="0x" + "00" * 20, nonce=0)
        body = {k: v for k, v in typed["message"].items() if k != "nonce"}
        text = json.dumps([self.kind, self.signer.lower(), body], sort_keys=True, default=str)
        return _hex(keccak(text.encode()))


@dataclass(frozen=True)
class DatasetMessage(Message):
    dataset: Dataset = field(kw_only=True)
    kind: str = field(init=False, default="dataset")
    primary: str = field(init=False, default="RegisterDataset")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.register_dataset_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, owner=self.signer,
            dataset=self.dataset, nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        return "registerDatasetFor", [self.dataset.as_tuple(), self.signer, salt, self.deadline, signature]

    @property
    def subject(self) -> str:
        return self.dataset.content_hash

    @property
    def content_hashes(self) -> tuple[str, ...]:
        return (self.dataset.content_hash,)

    @property
    def commit_digest(self) -> str | None:
        return self.dataset.content_hash

    def request_digest(self) -> str:
        return dataset_request_digest(self.dataset, self.signer, self.deadline)  # as before kinds existed


@dataclass(frozen=True)
class DatasetsMessage(Message):
    """`registerDatasetsFor`: many datasets, each with its own fields, one signature and one commitment."""

    datasets: tuple[Dataset, ...] = field(kw_only=True)
    kind: str = field(init=False, default="datasets")
    primary: str = field(init=False, default="RegisterDatasets")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.register_datasets_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, owner=self.signer,
            datasets=self.datasets, nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        items = [d.as_tuple() for d in self.datasets]
        return "registerDatasetsFor", [items, self.signer, salt, self.deadline, signature]

    @property
    def subject(self) -> str:
        return self.datasets[0].content_hash

    @property
    def content_hashes(self) -> tuple[str, ...]:
        return tuple(d.content_hash for d in self.datasets)

    @property
    def commit_digest(self) -> str | None:
        return _hex(batch_digest(self.content_hashes))


@dataclass(frozen=True)
class DatasetBatchMessage(Message):
    """`registerDatasetBatchFor`: datasets sharing licence, metadata and location (the cheap shape)."""

    batch: DatasetBatch = field(kw_only=True)
    kind: str = field(init=False, default="dataset_batch")
    primary: str = field(init=False, default="RegisterDatasetBatch")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.register_dataset_batch_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, owner=self.signer,
            batch=self.batch, nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        return "registerDatasetBatchFor", [self.batch.as_tuple(), self.signer, salt, self.deadline, signature]

    @property
    def subject(self) -> str:
        return self.batch.content_hashes[0]

    @property
    def content_hashes(self) -> tuple[str, ...]:
        return tuple(self.batch.content_hashes)

    @property
    def commit_digest(self) -> str | None:
        return _hex(batch_digest(self.content_hashes))


@dataclass(frozen=True)
class ComputeMessage(Message):
    job: ComputeJob = field(kw_only=True)
    kind: str = field(init=False, default="compute")
    primary: str = field(init=False, default="RegisterCompute")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.register_compute_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, provider=self.signer, job=self.job,
            nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        return "registerComputeFor", [self.job.as_tuple(), self.signer, self.deadline, signature]

    @property
    def subject(self) -> str:
        return _hex(compute_id(self.signer, self.job.job_id))


@dataclass(frozen=True)
class ComputesMessage(Message):
    jobs: tuple[ComputeJob, ...] = field(kw_only=True)
    kind: str = field(init=False, default="computes")
    primary: str = field(init=False, default="RegisterComputes")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.register_computes_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, provider=self.signer, jobs=self.jobs,
            nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        jobs = [j.as_tuple() for j in self.jobs]
        return "registerComputesFor", [jobs, self.signer, self.deadline, signature]

    @property
    def subject(self) -> str:
        return _hex(compute_id(self.signer, self.jobs[0].job_id))


@dataclass(frozen=True)
class WithdrawMessage(Message):
    contribution_id: str = field(kw_only=True)
    kind: str = field(init=False, default="withdraw")
    primary: str = field(init=False, default="Withdraw")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.withdraw_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, owner=self.signer,
            contribution_id=self.contribution_id, nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        cid = bytes.fromhex(self.contribution_id[2:])
        return "withdrawFor", [cid, self.signer, self.deadline, signature]

    @property
    def subject(self) -> str:
        return self.contribution_id


@dataclass(frozen=True)
class AttestMessage(Message):
    """`attestFor`: a validator's score, signed by the validator."""

    contribution_id: str = field(kw_only=True)
    score: int = field(kw_only=True)
    kind: str = field(init=False, default="attest")
    primary: str = field(init=False, default="Attest")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.attest_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, validator=self.signer,
            contribution_id=self.contribution_id, score=self.score, nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        cid = bytes.fromhex(self.contribution_id[2:])
        return "attestFor", [cid, self.score, self.signer, self.deadline, signature]

    @property
    def subject(self) -> str:
        return self.contribution_id


@dataclass(frozen=True)
class AttestBatchMessage(Message):
    """`attestBatchFor`: many scores under one validator signature."""

    contribution_ids: tuple[str, ...] = field(kw_only=True)
    scores: tuple[int, ...] = field(kw_only=True)
    kind: str = field(init=False, default="attest_batch")
    primary: str = field(init=False, default="AttestBatch")

    def typed(self, *, chain_id: int, verifying_contract: str, nonce: int) -> dict[str, Any]:
        return eip712.attest_batch_typed_data(
            chain_id=chain_id, verifying_contract=verifying_contract, validator=self.signer,
            contribution_ids=self.contribution_ids, scores=self.scores, nonce=nonce, deadline=self.deadline,
        )  # fmt: skip

    def call(self, *, salt: bytes, signature: bytes) -> tuple[str, list[Any]]:
        ids = [bytes.fromhex(c[2:]) for c in self.contribution_ids]
        return "attestBatchFor", [ids, list(self.scores), self.signer, self.deadline, signature]

    @property
    def subject(self) -> str:
        return self.contribution_ids[0]


KINDS = ("dataset", "datasets", "dataset_batch", "compute", "computes", "withdraw", "attest", "attest_batch")
