"""`Relayer`: gasless dataset registration. Verify the owner's EIP-712 signature, then register through the
outbox with the relayer key, commit-reveal (finding 2 of issue 10): first `commit([commitment])`, where the
commitment `keccak256(abi.encode(owner, contentHash, salt))` hides the content hash (the salt is derived from
the owner's signature, which nobody else sees before the reveal), then, once the commit is mined,
`registerDatasetFor(dataset, owner, salt, deadline, signature)`. A watcher who copies the content hash from
the pending reveal can only commit later, and the registry gives the dataset to the earliest commitment.

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

from eth_utils.crypto import keccak
from sqlalchemy import Connection, Engine
from web3 import Web3
from web3.exceptions import Web3RPCError

from backend.api.chain import Chain
from backend.api.relay import records
from backend.api.relay.guard import RelayGuard
from backend.api.relay.messages import DatasetMessage, Message
from backend.api.relay.verify import (
    check_signature_shape,
    signature_digest,
    simulate_reveal,
    verify_owner,
)
from backend.outbox import CONFIRMED, PENDING, Outbox, OutboxTx
from cairn.core.eip712 import Dataset, digest
from cairn.core.errors import (
    BudgetExhaustedError,
    ConflictError,
    InvalidInputError,
    OutboxRejectedError,
    OutboxRevertError,
    RelayError,
    RelayGasCeilingError,
)
from cairn.core.registration import MAX_COMMITMENT_AGE, commitment

MINED, REVERTED, REPLACED, SIGNED = "mined", "reverted", "replaced", "signed"
COMMIT, REVEAL, SEND = "commit", "reveal", "send"
FAILED = "failed"  # the reveal can no longer succeed (its commitment expired)
_SALT_DOMAIN = b"cairn.relay.salt"
_CLAIM_DOMAIN = b"cairn.relay.claim:"
CLAIM = "claim"
_COMMIT_GAS = 60_000  # commit([one commitment]): ~46k


def relay_salt(signature: bytes) -> bytes:
    """The commitment's salt: secret until the reveal (only the API and the owner know the signature), and the
    same after a restart."""
    return keccak(_SALT_DOMAIN + signature)


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
            parts = row.key.split(":")  # relay:<chain>:<relay id>[:<replaced row>][:reveal]
            if parts[0] == "relay" and len(parts) >= 3:
                record = records.by_relay_id(self.engine, parts[2])
        if record is None:
            return None
        return self._answer(self._advance(record), duplicate=False)

    def _answer(
        self, record: dict[str, Any], *, duplicate: bool, status: str | None = None
    ) -> dict[str, Any]:
        commit_row = self.outbox.refresh(int(record["outbox_id"]))
        reveal_id = record.get("reveal_outbox_id")
        reveal_row = self.outbox.refresh(int(reveal_id)) if reveal_id is not None else None
        row = reveal_row if reveal_row is not None else commit_row
        kind = str(record.get("kind") or "dataset")
        phase = REVEAL if reveal_row is not None else COMMIT
        if reveal_row is None and record.get("reveal_data") is None and kind != "dataset":
            phase = SEND  # one transaction, no commitment
        current = relay_status(row)
        if phase == COMMIT and current == MINED and record.get("reveal_data") is not None:
            current = "pending"  # committed: the registration itself is the reveal
        if record.get("failure") and reveal_row is None:
            current = FAILED
        hashes = self.outbox.hashes(int(record["outbox_id"]))
        if reveal_id is not None:
            hashes += self.outbox.hashes(int(reveal_id))
        return {
            "tx_hash": row.tx_hash if row is not None else None,
            "status": status or current,
            "phase": phase,
            "commit_tx_hash": commit_row.tx_hash if commit_row is not None else None,
            "block_number": row.block_number if row is not None else None,
            "relay_id": record["relay_id"],
            "message_digest": record["message_digest"],
            "owner": record["owner"],
            "content_hash": record["content_hash"],
            "kind": kind,
            "failure": record.get("failure"),
            "nonce": record["owner_nonce"],
            "relayer": record["relayer"],
            "relayer_nonce": row.nonce if row is not None else None,
            "tx_hashes": hashes,
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
        """`relay` for a single dataset registration."""
        return self.relay(DatasetMessage(owner, deadline, dataset=dataset), signature)

    def relay(self, msg: Message, signature: bytes) -> dict[str, Any]:
        """Verify, sign and record, then broadcast; a known signed message returns its relay."""
        prepared = self.prepare(msg, signature)
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
        return self._answer(self._advance(record), duplicate=False)

    def after_outbox_round(self) -> None:
        """What the outbox worker runs after each round: settle the gas budget from the rows it settled, then
        send the reveals whose commit is mined."""
        self.guard.settle()
        self.advance_pending()

    def _is_contract(self, address: str) -> bool:
        return len(self.chain.w3.eth.get_code(Web3.to_checksum_address(address))) > 0

    def advance_pending(self) -> int:
        """Send the reveal of every relay whose commit is mined (the outbox worker calls this each round).
        Returns how many reveals were enqueued."""
        sent = 0
        for record in records.awaiting_reveal(self.engine, self.chain.chain_id):
            if self._advance(record).get("reveal_outbox_id") is not None:
                sent += 1
        return sent

    def _advance(self, record: dict[str, Any]) -> dict[str, Any]:
        """The reveal, once the commit is mined (a block later than the commitment, which the registry
        requires: the reveal is mined in a later block than the commit it follows). Returns the record."""
        if record.get("reveal_data") is None or record.get("reveal_outbox_id") is not None:
            return record
        commit_row = self.outbox.refresh(int(record["outbox_id"]))
        if commit_row is None or commit_row.status != CONFIRMED:
            return record
        registry = self.chain.contract("ContributionRegistry")
        key = f"relay:{self.chain.chain_id}:{record['relay_id']}:{commit_row.id}:reveal"
        mined_at = commit_row.block_number
        if mined_at is not None and self.chain.w3.eth.block_number + 1 > mined_at + MAX_COMMITMENT_AGE:
            # the reveal would be mined after the commitment expired: it can never succeed
            records.fail(
                self.engine, record["relay_id"],
                f"the commitment mined in block {mined_at} expired (after {MAX_COMMITMENT_AGE} blocks) "
                "before the reveal could be sent; sign again to register",
            )  # fmt: skip
            fresh = records.by_relay_id(self.engine, record["relay_id"])
            return fresh if fresh is not None else record

        data = str(record["reveal_data"])
        try:
            gas = self.outbox.estimate_gas(registry.address, data, key=key)
        except (OutboxRevertError, Web3RPCError, ValueError):
            return record  # would revert now: nothing is sent; the relay stays committed and says so
        wallet = record.get("owner_is_contract")
        if wallet is None:  # recorded before the relay stored it
            wallet = self._is_contract(str(record["owner"]))
        if gas > self.gas_limit or (gas > self.guard.limits.wallet_gas_limit and wallet):
            return record  # over the relayer's ceiling (a wallet that grew costly): nothing is sent

        def with_row(conn: Connection, oid: int) -> None:
            records.set_reveal(conn, record["relay_id"], oid)
            # the reveal's own reservation (the commit's charge holds the owner nonce until it settles)
            self.guard.reserve(
                conn, owner=str(record["owner"]), nonce=int(record["owner_nonce"]),
                relay_id=str(record["relay_id"]), outbox_id=oid, gas=gas, claim_nonce=False,
            )  # fmt: skip

        def undo(conn: Connection, oid: int) -> None:
            records.clear_reveal(conn, record["relay_id"], oid)

        try:
            row = self.outbox.enqueue(
                key,
                to=registry.address,
                data=data,
                gas=gas,
                broadcast=False,
                with_row=with_row,
            )
        except records.AlreadyRecorded:  # another process enqueued it
            pass
        except BudgetExhaustedError:
            return record  # the day's budget is spent: the reveal waits for the next day's (never over it)
        except OutboxRevertError:
            # the reveal would revert now (e.g. the dataset went to an older commitment, or the deadline
            # passed): nothing is sent; the relay stays committed and says so
            return record
        else:
            try:
                self.outbox.send(row, on_discard=undo)
            except OutboxRejectedError as exc:
                raise RelayError(f"the node refused the relayed reveal: {exc}") from None
        fresh = records.by_relay_id(self.engine, record["relay_id"])
        return fresh if fresh is not None else record

    def prepare_dataset(
        self, *, dataset: Dataset, owner: str, deadline: int, signature: bytes
    ) -> dict[str, Any]:
        """`prepare` for a single dataset registration."""
        return self.prepare(DatasetMessage(owner, deadline, dataset=dataset), signature)

    def prepare(self, msg: Message, signature: bytes) -> dict[str, Any]:
        """Everything up to the broadcast: checks, then the relay record and its outbox row (signed
        transaction, nonce fixed) committed together. Returns the relay with status `signed`, or the API
        answer for an already recorded message. A crash right after this leaves an outbox row that
        `reconcile()` (the outbox) broadcasts at the next start."""
        owner, deadline = msg.signer, msg.deadline
        check_signature_shape(signature)
        sig_digest = signature_digest(signature)
        req_digest = msg.request_digest()
        replacing = records.by_relay_id(self.engine, sig_digest)
        if replacing is not None:
            if replacing["request_digest"] != req_digest:
                # Same signature, different owner or fields: a replay or a front-runner's edit.
                raise InvalidInputError(
                    f"signature is not {owner}'s over this message (it was relayed before for "
                    f"{replacing['owner']} and {replacing['content_hash']})",
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
        typed = msg.typed(chain_id=self.chain.chain_id, verifying_contract=registry.address, nonce=nonce)
        typed_digest = digest(typed)
        msg_digest = "0x" + typed_digest.hex()
        wallet = self._is_contract(owner)  # decided once for this relay; every later check uses it
        try:
            verify_owner(
                self.chain.w3,
                chain_id=self.chain.chain_id,
                digest=typed_digest,
                signature=signature,
                owner=owner,
                nonce=nonce,
                verify_gas=self.guard.limits.verify_gas,
                wallet=wallet,
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
            for content_hash in msg.content_hashes:
                self._check_not_registered(content_hash, sig_digest)
        except ConflictError:
            if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                return elsewhere
            raise

        salt = relay_salt(signature)
        fn_name, args = msg.call(salt=salt, signature=signature)
        call = registry.functions[fn_name](*args)
        # A contract wallet's isValidSignature runs inside this simulation (the registry calls it), so the
        # simulation's gas cap holds it to the relayer's wallet ceiling.
        cap = min(self.guard.limits.wallet_gas_limit, self.gas_limit) if wallet else self.gas_limit
        committed = not msg.direct
        reason = simulate_reveal(call, registry, sender=self.address, gas=cap, committed=committed)
        if (
            reason is not None
            and wallet
            and simulate_reveal(call, registry, sender=self.address, gas=self.gas_limit, committed=committed)
            is None
        ):  # only the cap made it fail: the wallet costs more than the ceiling through the registry
            raise RelayGasCeilingError(
                f"the relayed {msg.kind} for contract wallet {owner} needs more gas, above the "
                f"relayer's ceiling {cap} for contract wallets (its isValidSignature costs more through "
                "the registry than in the relayer's check)",
                owner=owner, ceiling=cap,
            )  # fmt: skip
        if reason is not None:
            if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                return elsewhere
            raise InvalidInputError(f"the registry would reject this {msg.kind}: {reason}", field="signature")
        call_data = registry.encode_abi(fn_name, args=args)
        if msg.direct:  # one transaction: it can be estimated now
            try:
                first_gas = self.outbox.estimate_gas(registry.address, call_data, key=msg.kind)
            except OutboxRevertError as exc:
                raise InvalidInputError(f"the registry would reject this {msg.kind}: {exc}") from None
            if first_gas > self.gas_limit:
                raise InvalidInputError(
                    f"this {msg.kind} needs {first_gas} gas, more than the relay limit {self.gas_limit}",
                    field="signature",
                )
            tx_gas = first_gas
            reveal_data: str | None = None
        else:
            # The reveal's gas cannot be estimated before the commit is mined; its calldata bounds it.
            reveal_bound = msg.reveal_bound(call_data)
            if reveal_bound > self.gas_limit:
                raise InvalidInputError(
                    f"registration needs more gas than the relay limit {self.gas_limit}", field="uri"
                )
            # The budget must have room for both phases: the commit, and a bound on the reveal (sent once
            # the commit is mined, with its own reservation; see `_advance`).
            first_gas = _COMMIT_GAS
            tx_gas = _COMMIT_GAS + reveal_bound
            reveal_data = call_data
        self.guard.before_send(
            owner=owner, nonce=nonce, gas=tx_gas, relay_id=sig_digest, message_digest=msg_digest,
            wallet=wallet,
        )  # fmt: skip

        record = {
            "relay_id": sig_digest,
            "message_digest": msg_digest,
            "request_digest": req_digest,
            "chain_id": self.chain.chain_id,
            "owner": owner,
            "content_hash": msg.subject,
            "owner_nonce": str(nonce),
            "deadline": str(deadline),
            "relayer": self.address,
            "created_at": int(time.time()),
            "reveal_data": reveal_data,
            "owner_is_contract": wallet,
            "kind": msg.kind,
        }
        made: list[int] = []

        def with_row(conn: Connection, oid: int) -> None:
            if replacing is None:
                records.insert_new(conn, {**record, "outbox_id": oid})
            else:
                records.repoint(conn, sig_digest, old=int(replacing["outbox_id"]), new=oid)
            # the first transaction's own gas; a reveal reserves its own when it is sent (`_advance`)
            self.guard.reserve(
                conn, owner=owner, nonce=nonce, relay_id=sig_digest, outbox_id=oid, gas=first_gas
            )
            made.append(oid)

        key = f"relay:{self.chain.chain_id}:{sig_digest}"
        if replacing is not None:
            key += f":{replacing['outbox_id']}"
        if msg.direct:
            data = call_data
        else:
            assert msg.commit_digest is not None
            data = registry.encode_abi("commit", args=[[commitment(owner, msg.commit_digest, salt)]])
        try:
            self.outbox.enqueue(
                key, to=registry.address, data=data, gas=first_gas, broadcast=False, with_row=with_row
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

    def claim_for(
        self, *, account: str, epoch: int, root: str, cumulative: int, proof: list[str]
    ) -> dict[str, Any]:
        """Relay `RewardDistributor.claimFor(account, cumulative, proof)` for an account without gas (the
        tokens go to the account; no signature is needed, so nothing can be forged). One relay per
        (account, cumulative amount); refused before any gas when nothing is claimable or the claim would
        revert, and held to the same client/account rate limits and daily gas budgets as every relay."""
        which = f"{self.chain.chain_id}:{account.lower()}:{cumulative}"
        relay_id = "0x" + keccak(_CLAIM_DOMAIN + which.encode()).hex()
        existing = records.by_relay_id(self.engine, relay_id)
        if existing is not None:
            answer = self._answer(existing, duplicate=True)
            if answer["status"] not in (REPLACED, REVERTED):
                return answer
            raise ConflictError(
                f"the relayed claim {relay_id} for {account} was {answer['status']}; claim directly",
                relay_id=relay_id,
            )
        self.guard.settle()
        distributor = self.chain.contract("RewardDistributor")
        claimed = int(distributor.functions.claimed(account).call())
        if cumulative <= claimed:
            raise ConflictError(
                f"{account} has nothing to claim: {claimed} of its cumulative {cumulative} (epoch {epoch}) "
                "is claimed already",
                account=account, claimed=str(claimed),
            )  # fmt: skip
        args = [account, cumulative, [bytes.fromhex(p[2:]) for p in proof]]
        reason = simulate_reveal(
            distributor.functions.claimFor(*args), distributor, sender=self.address, gas=self.gas_limit,
            committed=False,
        )  # fmt: skip
        if reason is not None:
            raise InvalidInputError(f"the distributor would reject this claim: {reason}", field="account")
        data = distributor.encode_abi("claimFor", args=args)
        try:
            gas = self.outbox.estimate_gas(distributor.address, data, key="claim")
        except OutboxRevertError as exc:
            raise InvalidInputError(f"the distributor would reject this claim: {exc}") from None
        self.guard.before_claim(account=account, gas=gas)
        record = {
            "relay_id": relay_id, "message_digest": relay_id, "request_digest": relay_id,
            "chain_id": self.chain.chain_id, "owner": account, "content_hash": root.lower(),
            "owner_nonce": str(cumulative), "deadline": "0", "relayer": self.address,
            "created_at": int(time.time()), "reveal_data": None, "owner_is_contract": False, "kind": CLAIM,
        }  # fmt: skip
        made: list[int] = []

        def with_row(conn: Connection, oid: int) -> None:
            records.insert_new(conn, {**record, "outbox_id": oid})
            self.guard.reserve(
                conn, owner=account, nonce=cumulative, relay_id=relay_id, outbox_id=oid, gas=gas,
                claim_nonce=False,
            )  # fmt: skip
            made.append(oid)

        try:
            row = self.outbox.enqueue(
                f"relay:{self.chain.chain_id}:{relay_id}", to=distributor.address, data=data, gas=gas,
                broadcast=False, with_row=with_row,
            )  # fmt: skip
        except records.AlreadyRecorded:
            made.clear()
        if not made:
            again = records.by_relay_id(self.engine, relay_id)
            if again is None:  # pragma: no cover - recorded by another process, then discarded
                raise ConflictError(f"the claim {relay_id} is being relayed", relay_id=relay_id)
            return self._answer(again, duplicate=True)

        def undo(conn: Connection, oid: int) -> None:
            records.delete(conn, relay_id)

        try:
            self.outbox.send(row, on_discard=undo)
        except OutboxRejectedError as exc:
            raise RelayError(f"the node refused the relayed claim: {exc}") from None
        stored = records.by_relay_id(self.engine, relay_id)
        assert stored is not None
        return self._answer(stored, duplicate=False)

    def reconcile(self) -> dict[str, int]:
        """At start-up: the outbox settles, re-broadcasts or fee-bumps every pending relay transaction
        (including one recorded right before a crash and never broadcast), then reveals mined commits."""
        pending = self.outbox.process()
        return {"pending": pending, "revealed": self.advance_pending()}

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
