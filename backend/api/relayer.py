"""Gasless dataset registration: verify the owner's EIP-712 signature, then relay it with the relayer key.

Safety rules (docs: DESIGN.md "Known ways such systems fail"):
- the signature is verified off-chain against the owner (and the current nonce, chain id and contract)
  before any gas is spent; a signature by A submitted for owner B is rejected;
- one signed message gives one transaction: a relay record keyed by the signature digest (and unique on the
  typed-data digest) holding the signed raw transaction is committed *before* broadcasting, and a retry
  returns the recorded transaction hash (re-broadcasting the same raw bytes if the node lost it);
- relayer nonces are assigned under a lock, so concurrent requests never reuse one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import HexStr
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, Text, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import Nonce, TxParams

from backend.api.chain import Chain
from cairn.core.eip712 import Dataset, digest, register_dataset_typed_data
from cairn.core.errors import ConflictError, InvalidInputError, RelayError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EIP1271_MAGIC = bytes.fromhex("1626ba7e")

metadata = MetaData()
relay_records = Table(
    "api_relay_records",
    metadata,
    Column("signature_digest", String(66), primary_key=True),
    Column("message_digest", String(66), nullable=False, unique=True),
    Column("request_digest", String(66), nullable=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("owner", String(42), nullable=False),
    Column("content_hash", String(66), nullable=False, index=True),
    Column("owner_nonce", Text, nullable=False),
    Column("deadline", Text, nullable=False),
    Column("relayer", String(42), nullable=False),
    Column("relayer_nonce", BigInteger, nullable=False),
    Column("tx_hash", String(66), nullable=False, unique=True),
    Column("raw_tx", Text, nullable=False),
    Column("status", String(16), nullable=False),  # signed -> sent
    Column("created_at", BigInteger, nullable=False),
)


def signature_digest(signature: bytes) -> str:
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


class Relayer:
    """Relays signed registrations for one chain with one key; records live in `api_relay_records`."""

    def __init__(self, *, chain: Chain, engine: Engine, private_key: str, gas_limit: int) -> None:
        self.chain = chain
        self.engine = engine
        self.account = Account.from_key(private_key)
        self.gas_limit = gas_limit
        self._lock = threading.RLock()
        metadata.create_all(engine, checkfirst=True)

    @property
    def address(self) -> str:
        return str(self.account.address)

    # --- reading ---------------------------------------------------------------------------------------
    def _record(self, column: Column[Any], value: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(relay_records).where(column == value)).first()
        return dict(row._mapping) if row else None

    def status(self, tx_hash: str) -> dict[str, Any] | None:
        record = self._record(relay_records.c.tx_hash, tx_hash)
        return None if record is None else self._out(record, duplicate=False)

    def _out(self, record: dict[str, Any], *, duplicate: bool) -> dict[str, Any]:
        receipt_status: str = "pending"
        block: int | None = None
        try:
            receipt = self.chain.w3.eth.get_transaction_receipt(record["tx_hash"])
            receipt_status = "mined" if receipt["status"] == 1 else "reverted"
            block = int(receipt["blockNumber"])
        except TransactionNotFound:
            pass
        return {
            "tx_hash": record["tx_hash"],
            "status": receipt_status,
            "block_number": block,
            "relay_id": record["signature_digest"],
            "message_digest": record["message_digest"],
            "owner": record["owner"],
            "content_hash": record["content_hash"],
            "nonce": record["owner_nonce"],
            "relayer": record["relayer"],
            "duplicate": duplicate,
        }

    def _rebroadcast_if_lost(self, record: dict[str, Any]) -> None:
        """The tx was signed and recorded; if the node does not know it, send the same bytes again."""
        try:
            self.chain.w3.eth.get_transaction(record["tx_hash"])
        except TransactionNotFound:
            # already known or nonce consumed: the recorded hash stays the answer (reconcile() cleans up)
            with contextlib.suppress(Web3RPCError):
                self.chain.w3.eth.send_raw_transaction(bytes.fromhex(record["raw_tx"][2:]))
                if record["status"] == "signed":
                    self._mark_sent(record["signature_digest"])
            return
        if record["status"] == "signed":
            self._mark_sent(record["signature_digest"])

    # --- relaying --------------------------------------------------------------------------------------
    def register_dataset(
        self, *, dataset: Dataset, owner: str, deadline: int, signature: bytes
    ) -> dict[str, Any]:
        """Verify, sign and record, then broadcast; a known signed message returns its recorded tx."""
        with self._lock:
            prepared = self.prepare_dataset(
                dataset=dataset, owner=owner, deadline=deadline, signature=signature
            )
            if prepared["status"] != "signed":
                return prepared
            return self._broadcast(prepared)

    def prepare_dataset(
        self, *, dataset: Dataset, owner: str, deadline: int, signature: bytes
    ) -> dict[str, Any]:
        """Everything up to the broadcast: checks, then the signed transaction committed as a relay record
        (status `signed`). Returns that record, or the API answer for an already recorded message.
        A crash right after this leaves a record that `reconcile()` broadcasts at the next start."""
        check_signature_shape(signature)
        sig_digest = signature_digest(signature)
        req_digest = request_digest(dataset, owner, deadline)
        with self._lock:  # re-entrant: register_dataset already holds it
            existing = self._record(relay_records.c.signature_digest, sig_digest)
            if existing is not None:
                if existing["request_digest"] != req_digest:
                    # Same signature, different owner or fields: a replay or a front-runner's edit.
                    raise InvalidInputError(
                        f"signature is not {owner}'s over this registration (it was relayed before for "
                        f"owner {existing['owner']} and content hash {existing['content_hash']})",
                        field="signature",
                    )
                self._rebroadcast_if_lost(existing)
                return self._out(existing, duplicate=True)

            head = self.chain.latest_block()
            now = max(int(head["timestamp"]), int(time.time()))
            if deadline <= now:
                raise InvalidInputError(
                    f"deadline {deadline} has passed (now {now}); sign again with a later deadline",
                    field="deadline",
                )
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
                self._verify_owner(digest=typed_digest, signature=signature, owner=owner, nonce=nonce)
            except InvalidInputError:
                # the owner's nonce moved because another API process just relayed this very message?
                if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                    return elsewhere
                raise
            existing = self._record(relay_records.c.message_digest, msg_digest)
            if existing is not None:  # the same message under another valid signature
                self._rebroadcast_if_lost(existing)
                return self._out(existing, duplicate=True)
            try:
                self._check_not_registered(dataset.content_hash)
            except ConflictError:
                if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                    return elsewhere
                raise

            call = registry.functions.registerDatasetFor(
                dataset.as_tuple(),
                owner,
                deadline,
                signature,
            )
            try:
                gas = int(call.estimate_gas({"from": self.address}))
            except (ContractCustomError, ContractLogicError) as exc:
                if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                    return elsewhere
                raise InvalidInputError(
                    f"the registry would reject this registration: {_revert_reason(exc, registry)}",
                    field="signature",
                ) from None
            except Web3RPCError as exc:  # e.g. the relayer account cannot pay for gas
                raise RelayError(f"the node refused to estimate the relayed transaction: {exc}") from None
            if gas > self.gas_limit:
                raise InvalidInputError(
                    f"registration needs {gas} gas, above the relay limit {self.gas_limit}", field="uri"
                )
            relayer_nonce = self._next_relayer_nonce()
            params: TxParams = {
                "from": self.account.address,
                "nonce": Nonce(relayer_nonce),
                "gas": gas + gas // 5,
                "chainId": self.chain.chain_id,
            }
            tx = call.build_transaction(params)
            signed = self.account.sign_transaction(tx)
            tx_hash = "0x" + bytes(signed.hash).hex()
            raw = "0x" + bytes(signed.raw_transaction).hex()
            record = {
                "signature_digest": sig_digest,
                "message_digest": msg_digest,
                "request_digest": req_digest,
                "chain_id": self.chain.chain_id,
                "owner": owner,
                "content_hash": dataset.content_hash,
                "owner_nonce": str(nonce),
                "deadline": str(deadline),
                "relayer": self.address,
                "relayer_nonce": relayer_nonce,
                "tx_hash": tx_hash,
                "raw_tx": raw,
                "status": "signed",
                "created_at": int(time.time()),
            }
            # Persist before broadcasting: a crash after this line never leads to a second transaction.
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(relay_records).values(**record))
            except IntegrityError:
                # Another API process recorded this signature or message first: its transaction is the answer.
                if (elsewhere := self._recorded(sig_digest, msg_digest, req_digest)) is not None:
                    return elsewhere
                raise
            return record

    def _next_relayer_nonce(self) -> int:
        """The node's pending count, but never a nonce a recorded, not yet broadcast transaction holds."""
        pending = int(self.chain.w3.eth.get_transaction_count(self.account.address, "pending"))
        with self.engine.connect() as conn:
            held = conn.execute(
                select(func.max(relay_records.c.relayer_nonce)).where(
                    relay_records.c.relayer == self.address,
                    relay_records.c.chain_id == self.chain.chain_id,
                    relay_records.c.status == "signed",
                )
            ).scalar()
        return pending if held is None else max(pending, int(held) + 1)

    def _broadcast(self, record: dict[str, Any]) -> dict[str, Any]:
        sig_digest = record["signature_digest"]
        try:
            self.chain.w3.eth.send_raw_transaction(bytes.fromhex(record["raw_tx"][2:]))
        except Web3RPCError as exc:
            if self._node_has(record["tx_hash"]):  # "already known": the same bytes went out another way
                self._mark_sent(sig_digest)
                return self._out(record, duplicate=False)
            # The node gave a definite refusal: nothing was broadcast, so forget the record.
            with self.engine.begin() as conn:
                conn.execute(relay_records.delete().where(relay_records.c.signature_digest == sig_digest))
            raise RelayError(f"the node refused the relayed transaction: {exc}") from None
        self._mark_sent(sig_digest)
        return self._out(record, duplicate=False)

    def _recorded(self, sig_digest: str, msg_digest: str, req_digest: str) -> dict[str, Any] | None:
        """The API answer for this very request if it is already recorded (maybe by another process)."""
        for column, value in (
            (relay_records.c.signature_digest, sig_digest),
            (relay_records.c.message_digest, msg_digest),
        ):
            existing = self._record(column, value)
            if existing is not None and existing["request_digest"] == req_digest:
                self._rebroadcast_if_lost(existing)
                return self._out(existing, duplicate=True)
        return None

    def _node_has(self, tx_hash: str) -> bool:
        try:
            self.chain.w3.eth.get_transaction(HexStr(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def _mark_sent(self, sig_digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(relay_records)
                .where(relay_records.c.signature_digest == sig_digest)
                .values(status="sent")
            )

    def reconcile(self) -> dict[str, int]:
        """At start-up: broadcast every recorded transaction that may never have left (status `signed`).

        Same bytes, same hash: a transaction the node already has or has mined is just marked sent. One
        whose relayer nonce was taken by another transaction can never be mined; its record is dropped so
        that a retry of the same signed message is relayed afresh."""
        counts = {"sent": 0, "dropped": 0}
        with self._lock:
            with self.engine.connect() as conn:
                pending = [
                    dict(r._mapping)
                    for r in conn.execute(
                        select(relay_records)
                        .where(
                            relay_records.c.status == "signed",
                            relay_records.c.chain_id == self.chain.chain_id,
                            relay_records.c.relayer == self.address,
                        )
                        .order_by(relay_records.c.relayer_nonce)
                    )
                ]
            for record in pending:
                try:
                    self.chain.w3.eth.get_transaction(record["tx_hash"])
                    known = True
                except TransactionNotFound:
                    known = False
                if not known:
                    try:
                        self.chain.w3.eth.send_raw_transaction(bytes.fromhex(record["raw_tx"][2:]))
                    except Web3RPCError:
                        confirmed = int(
                            self.chain.w3.eth.get_transaction_count(self.account.address, "latest")
                        )
                        if confirmed > int(record["relayer_nonce"]):
                            with self.engine.begin() as conn:
                                conn.execute(
                                    relay_records.delete().where(
                                        relay_records.c.signature_digest == record["signature_digest"]
                                    )
                                )
                            counts["dropped"] += 1
                        continue
                self._mark_sent(record["signature_digest"])
                counts["sent"] += 1
        return counts

    def _verify_owner(self, *, digest: bytes, signature: bytes, owner: str, nonce: int) -> None:
        try:
            signer = Account._recover_hash(digest, signature=signature)
        except Exception:
            signer = None
        if signer is not None and signer.lower() == owner.lower():
            return
        w3 = self.chain.w3
        if len(w3.eth.get_code(Web3.to_checksum_address(owner))) > 0 and self._eip1271(
            owner, digest, signature
        ):
            return
        raise InvalidInputError(
            f"signature is not {owner}'s over this registration (nonce {nonce}, chain {self.chain.chain_id})"
            + (f"; it was signed by {signer}" if signer else ""),
            field="signature",
        )

    def _eip1271(self, owner: str, digest: bytes, signature: bytes) -> bool:
        abi = [
            {
                "type": "function",
                "name": "isValidSignature",
                "stateMutability": "view",
                "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
                "outputs": [{"name": "", "type": "bytes4"}],
            }
        ]
        wallet = self.chain.w3.eth.contract(address=Web3.to_checksum_address(owner), abi=abi)
        try:
            return bytes(wallet.functions.isValidSignature(digest, signature).call()) == EIP1271_MAGIC
        except Exception:
            return False

    def _check_not_registered(self, content_hash: str) -> None:
        registry = self.chain.contract("ContributionRegistry")
        record = registry.functions.contributionOf(content_hash).call()
        kind = int(record[1])
        if kind != 0:
            raise ConflictError(
                f"content hash {content_hash} is already registered (owner {record[0]})",
                content_hash=content_hash,
            )
        pending = self._record(relay_records.c.content_hash, content_hash)
        if pending is not None and self._out(pending, duplicate=False)["status"] != "reverted":
            raise ConflictError(
                f"content hash {content_hash} already has a relayed registration in tx {pending['tx_hash']}",
                content_hash=content_hash,
                tx_hash=pending["tx_hash"],
            )


def _revert_reason(exc: Exception, contract: Any) -> str:
    data = getattr(exc, "data", None) or getattr(exc, "message", None) or str(exc)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        selector = data[:10].lower()
        for entry in contract.abi:
            if entry.get("type") == "error":
                sig = f"{entry['name']}({','.join(i['type'] for i in entry.get('inputs', []))})"
                if "0x" + keccak(sig.encode()).hex()[:8] == selector:
                    return str(entry["name"])
    return str(getattr(exc, "message", None) or exc)
