"""`Relayer`: gasless dataset registration. Verify the owner's EIP-712 signature, then send
`registerDatasetFor` through the outbox with the relayer key.

Safety rules (docs: DESIGN.md "Known ways such systems fail"):
- the signature is verified off-chain against the owner (and the current nonce, chain id and contract)
  before any gas is spent; a signature by A submitted for owner B is rejected;
- one signed message gives one transaction: the relay record (keyed by the relay id, keccak256 of the
  signature, unique on the typed-data digest) and the outbox row carrying the signed transaction commit in
  one database transaction *before* anything is broadcast; a retry returns the same relay;
- nonces, fee bumps and re-broadcasts are the outbox's (shared with other API processes through the
  database); a relay whose nonce another transaction took (`replaced`) is relayed afresh on the next retry,
  under the same relay id.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from backend.api.chain import Chain
from backend.api.relay import records
from backend.api.relay.guard import RelayGuard
from backend.api.relay.verify import (
    check_signature_shape,
    request_digest,
    revert_reason,
    signature_digest,
    verify_owner,
)
from backend.outbox import CONFIRMED, PENDING, Outbox, OutboxTx
from cairn.core.eip712 import Dataset, digest, register_dataset_typed_data
from cairn.core.errors import ConflictError, InvalidInputError, OutboxRejectedError, RelayError

MINED, REVERTED, REPLACED, SIGNED = "mined", "reverted", "replaced", "signed"


def relay_status(row: OutboxTx | None) -> str:
    if row is None or row.status == PENDING:
        return "pending"
    if row.status == CONFIRMED:
        return MINED
    return REPLACED if row.replaced else REVERTED


class Relayer:
    """Relays signed registrations for one chain with one key, through `outbox`."""

    def __init__(
        self,
        *,
        chain: Chain,
        engine: Engine,
        private_key: str,
        gas_limit: int,
        outbox: Outbox | None = None,
        guard: RelayGuard | None = None,
    ) -> None:
        self.chain = chain
        self.engine = engine
        self.outbox = outbox if outbox is not None else Outbox(engine, chain.w3, private_key)
        self.gas_limit = gas_limit
        self.guard = guard if guard is not None else RelayGuard(engine, chain)  # limits: guard.py

    @property
    def address(self) -> str:
        return str(self.outbox.account.address)

    # --- reading ---------------------------------------------------------------------------------------
    def status(self, ref: str) -> dict[str, Any] | None:
        """A relay by its relay id, or by the hash of any of its transactions (first send or fee bump)."""
        record = records.by_relay_id(self.engine, ref)
        if record is None and (row := self.outbox.get_by_hash(ref)) is not None:
            parts = row.key.split(":")  # relay:<chain>:<relay id>[:<replaced row>]
            if parts[0] == "relay" and len(parts) >= 3:
                record = records.by_relay_id(self.engine, parts[2])
        return None if record is None else self._answer(record, duplicate=False)

    def _answer(
        self, record: dict[str, Any], *, duplicate: bool, status: str | None = None
    ) -> dict[str, Any]:
        row = self.outbox.refresh(int(record["outbox_id"]))
        return {
            "tx_hash": row.tx_hash if row is not None else None,
            "status": status or relay_status(row),
            "block_number": row.block_number if row is not None else None,
            "relay_id": record["relay_id"],
            "message_digest": record["message_digest"],
            "owner": record["owner"],
            "content_hash": record["content_hash"],
            "nonce": record["owner_nonce"],
            "relayer": record["relayer"],
            "relayer_nonce": row.nonce if row is not None else None,
            "tx_hashes": self.outbox.hashes(int(record["outbox_id"])),
            "duplicate": duplicate,
        }

    def _recorded(self, sig_digest: str, msg_digest: str | None, req_digest: str) -> dict[str, Any] | None:
        """The API answer for this very request if it is already recorded (maybe by another process)."""
        for existing in (
            records.by_relay_id(self.engine, sig_digest),
            records.by_message(self.engine, msg_digest) if msg_digest else None,
        ):
            if existing is not None and existing["request_digest"] == req_digest:
                return self._answer(existing, duplicate=True)
        return None

    # --- relaying --------------------------------------------------------------------------------------
    def register_dataset(
        self, *, dataset: Dataset, owner: str, deadline: int, signature: bytes
    ) -> dict[str, Any]:
        """Verify, sign and record, then broadcast; a known signed message returns its relay."""
        prepared = self.prepare_dataset(dataset=dataset, owner=owner, deadline=deadline, signature=signature)
        if prepared["status"] != SIGNED:
            return prepared
        row = self.outbox.get_by_id(int(prepared["outbox_id"]))
        if row is None:  # pragma: no cover - the row was committed with the record
            raise RelayError(f"relay {prepared['relay_id']} lost its outbox row")
        replaced = prepared.get("replaced_outbox_id")

        def undo(conn: Connection, oid: int) -> None:
            if replaced is None:
                records.delete(conn, prepared["relay_id"])
            else:
                records.repoint(conn, prepared["relay_id"], old=oid, new=int(replaced))

        try:
            self.outbox.send(row, on_discard=undo)
        except OutboxRejectedError as exc:
            raise RelayError(f"the node refused the relayed transaction: {exc}") from None
        record = records.by_relay_id(self.engine, prepared["relay_id"])
        assert record is not None
        return self._answer(record, duplicate=False)

    def prepare_dataset(
        self, *, dataset: Dataset, owner: str, deadline: int, signature: bytes
    ) -> dict[str, Any]:
        """Everything up to the broadcast: checks, then the relay record and its outbox row (signed
        transaction, nonce fixed) committed together. Returns the relay with status `signed`, or the API
        answer for an already recorded message. A crash right after this leaves an outbox row that
        `reconcile()` (the outbox) broadcasts at the next start."""
        check_signature_shape(signature)
        sig_digest = signature_digest(signature)
        req_digest = request_digest(dataset, owner, deadline)
        replacing = records.by_relay_id(self.engine, sig_digest)
        if replacing is not None:
            if replacing["request_digest"] != req_digest:
                # Same signature, different owner or fields: a replay or a front-runner's edit.
                raise InvalidInputError(
                    f"signature is not {owner}'s over this registration (it was relayed before for "
                    f"owner {replacing['owner']} and content hash {replacing['content_hash']})",
                    field="signature",
                )
            answer = self._answer(replacing, duplicate=True)
            if answer["status"] != REPLACED:
                return answer
            # Its nonce was used by another transaction: nothing of it can be mined; relay it afresh.

        head = self.chain.latest_block()
        now = max(int(head["timestamp"]), int(time.time()))
        if deadline <= now:
            raise InvalidInputError(
                f"deadline {deadline} has passed (now {now}); sign again with a later deadline",
                field="deadline",
            )
        self.guard.before_verify(owner=owner, deadline=deadline, head_timestamp=int(head["timestamp"]))
        registry = self.chain.contract("ContributionRegistry")
        nonce = int(registry.functions.nonces(owner).call())
        typed = register_dataset_typed_data(
            chain_id=self.chain.chain_id,
            verifying_contract=registry.address,
            dataset=dataset,
            owner=owner,
            nonce=nonce,
            deadline=deadline,
        )
        typed_digest = digest(typed)
        msg_digest = "0x" + typed_digest.hex()
        try:
            verify_owner(
                self.chain.w3,
                chain_id=self.chain.chain_id,
                digest=typed_digest,
                signature=signature,
                owner=owner,
                nonce=nonce,
                verify_gas=self.guard.limits.verify_gas,
            )
        except InvalidInputError:
            # the owner's nonce moved because another API process just relayed this very message?
            if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                return elsewhere
            raise
        existing = records.by_message(self.engine, msg_digest)
        if existing is not None and existing["relay_id"] != sig_digest:  # same message, another signature
            return self._answer(existing, duplicate=True)
        try:
            self._check_not_registered(dataset.content_hash, sig_digest)
        except ConflictError:
            if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                return elsewhere
            raise

        args = [dataset.as_tuple(), owner, deadline, signature]
        try:
            gas = int(registry.functions.registerDatasetFor(*args).estimate_gas({"from": self.address}))
        except (ContractCustomError, ContractLogicError) as exc:
            if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                return elsewhere
            raise InvalidInputError(
                f"the registry would reject this registration: {revert_reason(exc, registry)}",
                field="signature",
            ) from None
        except Web3RPCError as exc:  # e.g. the relayer account cannot pay for gas
            raise RelayError(f"the node refused to estimate the relayed transaction: {exc}") from None
        if gas > self.gas_limit:
            raise InvalidInputError(
                f"registration needs {gas} gas, above the relay limit {self.gas_limit}", field="uri"
            )
        tx_gas = gas + gas // 5
        self.guard.before_send(
            owner=owner, nonce=nonce, gas=tx_gas, relay_id=sig_digest, message_digest=msg_digest
        )

        record = {
            "relay_id": sig_digest,
            "message_digest": msg_digest,
            "request_digest": req_digest,
            "chain_id": self.chain.chain_id,
            "owner": owner,
            "content_hash": dataset.content_hash,
            "owner_nonce": str(nonce),
            "deadline": str(deadline),
            "relayer": self.address,
            "created_at": int(time.time()),
        }
        made: list[int] = []

        def with_row(conn: Connection, oid: int) -> None:
            if replacing is None:
                records.insert_new(conn, {**record, "outbox_id": oid})
            else:
                records.repoint(conn, sig_digest, old=int(replacing["outbox_id"]), new=oid)
            self.guard.reserve(conn, owner=owner, nonce=nonce, relay_id=sig_digest, outbox_id=oid, gas=tx_gas)
            made.append(oid)

        key = f"relay:{self.chain.chain_id}:{sig_digest}"
        if replacing is not None:
            key += f":{replacing['outbox_id']}"
        try:
            self.outbox.enqueue(
                key,
                to=registry.address,
                data=registry.encode_abi("registerDatasetFor", args=args),
                gas=tx_gas,
                broadcast=False,
                with_row=with_row,
            )
        except records.AlreadyRecorded:
            made.clear()
        if not made:  # another request (maybe another API process) recorded it first: its relay answers
            if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                return elsewhere
            raise ConflictError(f"the message {msg_digest} is already relayed", relay_id=sig_digest)
        stored = records.by_relay_id(self.engine, sig_digest)
        assert stored is not None
        out = self._answer(stored, duplicate=False, status=SIGNED)
        out["outbox_id"] = made[0]
        if replacing is not None:
            out["replaced_outbox_id"] = int(replacing["outbox_id"])
        return out

    def reconcile(self) -> dict[str, int]:
        """At start-up: the outbox settles, re-broadcasts or fee-bumps every pending relay transaction
        (including one recorded right before a crash and never broadcast)."""
        return {"pending": self.outbox.process()}

    def _check_not_registered(self, content_hash: str, relay_id: str) -> None:
        registry = self.chain.contract("ContributionRegistry")
        record = registry.functions.contributionOf(content_hash).call()
        if int(record[1]) != 0:
            raise ConflictError(
                f"content hash {content_hash} is already registered (owner {record[0]})",
                content_hash=content_hash,
            )
        for other in records.by_content_hash(self.engine, content_hash):
            if other["relay_id"] == relay_id:
                continue
            answer = self._answer(other, duplicate=False)
            if answer["status"] not in (REVERTED, REPLACED):
                raise ConflictError(
                    f"content hash {content_hash} already has a relayed registration in tx "
                    f"{answer['tx_hash']}",
                    content_hash=content_hash,
                    tx_hash=answer["tx_hash"],
                )
