"""`cairn train`: the embedded model, trained from the content of the datasets the validators accepted.

1. **Select** (`select_datasets`): the datasets in the indexer's mirror (`v_datasets`, at the cursor's block)
   that are eligible under the reward policy: `backend.rewards.allocation.eligible_scores` (quorum of
   distinct validators, median score at least `min_score`, not withdrawn), the reward function's own rule.
2. **Read** each selected dataset's bytes from the content store (`cairn.core.content.ContentStore`, keyed by
   the content hash); a dataset whose content is not stored, or is not UTF-8 text with at least one token,
   is skipped and reported.
3. **Train** (`train_artefact`): `backend.inference.model.EmbeddedModel` over the texts in ascending dataset
   order; the artefact's SHA-256 is its name in the content store. Deterministic: same content, same bytes.
4. **Manifest**: the dataset ids ascending and, for each, its share of the training tokens scaled to
   `WEIGHT_SCALE` (floor, at least 1): revenue attribution follows what each dataset put into the model.
   `ModelRegistry.registerManifest(modelId, ids, weights)` goes through the outbox with the trainer key
   (key `manifest:<chain>:<model id>:<artefact hash>`: one registration per artefact, whatever crashes);
   the model id is `keccak256(name)`. The `trained_model` row (artefact hash next to the model id) commits
   with the outbox row, and records the on-chain version once the transaction is mined.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_hash.auto import keccak
from sqlalchemy import Connection, Engine, inspect, text
from web3 import Web3

from backend.inference.model import Document, EmbeddedModel
from backend.models import TrainedModel
from backend.outbox import CONFIRMED, Outbox
from backend.rewards.allocation import eligible_scores
from cairn.core.content import ContentStore, content_hash
from cairn.core.deployment import Deployment
from cairn.core.errors import ConflictError, InvalidInputError
from cairn.core.policy import Policy

log = logging.getLogger("cairn.train")
WEIGHT_SCALE = 1_000_000
DEFAULT_MODEL_NAME = "cairn-demo-model-v1"  # the demo's model: its id is keccak256 of this name
PENDING, REGISTERED, FAILED = "pending", "registered", "failed"


def model_id_of(name: str) -> str:
    """A model's on-chain id: `0x` keccak256 of its UTF-8 name."""
    return "0x" + keccak(name.encode()).hex()


@dataclass(frozen=True)
class Candidate:
    content_hash: str  # 0x hex: the dataset's id
    owner: str
    size: int
    median: int


@dataclass(frozen=True)
class Skipped:
    content_hash: str
    reason: str


@dataclass(frozen=True)
class Artefact:
    data: bytes
    hash: str  # 0x SHA-256
    dataset_ids: list[str]
    tokens: list[int]
    weights: list[int]


@dataclass
class TrainReport:
    name: str
    model_id: str
    artefact: str
    artefact_size: int
    datasets: list[dict[str, Any]]
    skipped: list[Skipped]
    end_block: int
    status: str
    version: int | None = None
    tx_hash: str | None = None
    train_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# --- selection ---------------------------------------------------------------------------------------
def _rows(conn: Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def mirror_block(conn: Connection) -> int:
    """The block the indexer's mirror is complete up to (its cursor); InvalidInputError if never indexed."""
    if not inspect(conn).has_table("indexer_cursor"):
        raise InvalidInputError("the indexer mirror is empty: run `cairn index` first")
    cur = conn.execute(text("SELECT MAX(block_number) FROM indexer_cursor")).scalar()
    if cur is None:
        raise InvalidInputError("the indexer mirror is empty: run `cairn index` first")
    return int(cur)


def select_datasets(engine: Engine, policy: Policy) -> tuple[int, list[Candidate]]:
    """(the mirror's block, the datasets eligible at it under `policy`, ascending by content hash)."""
    with engine.connect() as conn:
        end = mirror_block(conn)
        have = set(inspect(conn).get_table_names()) | set(inspect(conn).get_view_names())
        events: dict[str, list[dict[str, Any]]] = {}
        for table, cols in (
            ("ev_attested", "contribution_id, validator, score, block_number, log_index"),
            ("ev_contribution_withdrawn", "contribution_id, block_number"),
        ):
            if table in have:
                events[table] = _rows(conn, f"SELECT {cols} FROM {table} WHERE block_number <= :e", e=end)
        scores = eligible_scores(events, end, policy)
        datasets = (
            _rows(conn, "SELECT content_hash, owner, size FROM v_datasets WHERE block_number <= :e", e=end)
            if "v_datasets" in have
            else []
        )
    out = {
        str(d["content_hash"]).lower(): Candidate(
            str(d["content_hash"]).lower(),
            str(d["owner"]).lower(),
            int(str(d["size"])),
            scores[str(d["content_hash"]).lower()],
        )
        for d in datasets
        if str(d["content_hash"]).lower() in scores
    }
    return end, [out[k] for k in sorted(out)]


def read_documents(
    store: ContentStore, candidates: Sequence[Candidate]
) -> tuple[list[Document], list[Skipped]]:
    """The texts of the candidates whose content is stored; the others skipped with the reason."""
    docs: list[Document] = []
    skipped: list[Skipped] = []
    for c in candidates:
        digest = bytes.fromhex(c.content_hash[2:])
        if not store.has(digest):
            skipped.append(Skipped(c.content_hash, "content not in the store"))
            continue
        data = b"".join(store.read_chunks(digest))
        try:
            docs.append(Document(c.content_hash, data.decode("utf-8")))
        except UnicodeDecodeError:
            skipped.append(Skipped(c.content_hash, "content is not UTF-8 text"))
    return docs, skipped


# --- training ----------------------------------------------------------------------------------------
def manifest_weights(tokens: Sequence[int]) -> list[int]:
    """Each dataset's share of the training tokens, scaled to WEIGHT_SCALE (floor, at least 1): uint32."""
    total = sum(tokens)
    return [max(1, t * WEIGHT_SCALE // total) for t in tokens]


def train_artefact(documents: Sequence[Document]) -> Artefact:
    """Train the embedded model on `documents` (sorted by dataset id here) and serialise it."""
    docs = sorted(documents, key=lambda d: d.dataset_id)
    model = EmbeddedModel.train(docs)
    data = model.to_bytes()
    ids = [d["id"] for d in model.datasets]
    tokens = [int(d["tokens"]) for d in model.datasets]
    return Artefact(data, "0x" + content_hash(data).hex(), ids, tokens, manifest_weights(tokens))


def train_from_store(store: ContentStore, candidates: Sequence[Candidate]) -> tuple[Artefact, list[Skipped]]:
    """Read, train and put the artefact into the store: what `cairn train` does before the chain."""
    docs, skipped = read_documents(store, candidates)
    if not docs:
        raise InvalidInputError(
            "no eligible dataset has its content in the store"
            + (f" ({len(skipped)} skipped: {skipped[0].reason})" if skipped else "")
        )
    art = train_artefact(docs)
    trained = set(art.dataset_ids)
    skipped += [
        Skipped(d.dataset_id, "content has no text tokens") for d in docs if d.dataset_id not in trained
    ]
    store.put_bytes(bytes.fromhex(art.hash[2:]), art.data)
    return art, sorted(skipped, key=lambda s: s.content_hash)


# --- records -----------------------------------------------------------------------------------------
def find_record(conn: Connection, *, chain_id: int, model_id: str, artefact: str) -> TrainedModel | None:
    row = conn.execute(
        text("SELECT * FROM trained_model WHERE chain_id = :c AND model_id = :m AND artefact_hash = :a"),
        {"c": chain_id, "m": model_id, "a": artefact},
    ).first()
    return TrainedModel.model_validate(dict(row._mapping)) if row is not None else None


def served_models(engine: Engine, *, chain_id: int) -> list[tuple[TrainedModel, str]]:
    """The latest registered training run of each model name on `chain_id` (what the API serves), with the
    trainer's address (the sender of its manifest transaction)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("trained_model"):
            return []
        rows = conn.execute(
            text(
                "SELECT t.*, o.sender AS trainer FROM trained_model t JOIN outbox_tx o ON o.id = t.outbox_id "
                "WHERE t.chain_id = :c AND t.status = :s AND t.id = ("
                "SELECT MAX(u.id) FROM trained_model u WHERE u.chain_id = t.chain_id AND u.name = t.name "
                "AND u.status = :s) ORDER BY t.name"
            ),
            {"c": chain_id, "s": REGISTERED},
        ).all()
    out = []
    for r in rows:
        values = dict(r._mapping)
        trainer = str(values.pop("trainer"))
        out.append((TrainedModel.model_validate(values), trainer))
    return out


def _insert_record(conn: Connection, *, outbox_id: int, chain_id: int, name: str, art: Artefact) -> None:
    now = int(time.time())
    conn.execute(
        text(
            "INSERT INTO trained_model (chain_id, name, model_id, artefact_hash, artefact_size, dataset_ids, "
            "weights, tokens, outbox_id, status, version, created_at, updated_at) VALUES (:c, :n, :m, :a, "
            ":size, :ids, :w, :t, :o, :s, NULL, :now, :now)"
        ),
        {
            "c": chain_id, "n": name, "m": model_id_of(name), "a": art.hash, "size": len(art.data),
            "ids": json.dumps(art.dataset_ids), "w": json.dumps(art.weights), "t": json.dumps(art.tokens),
            "o": outbox_id, "s": PENDING, "now": now,
        },
    )  # fmt: skip


def _set_status(engine: Engine, record_id: int, status: str, version: int | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE trained_model SET status = :s, version = :v, updated_at = :now WHERE id = :i"),
            {"s": status, "v": version, "now": int(time.time()), "i": record_id},
        )


# --- the whole run -----------------------------------------------------------------------------------
def train(
    *,
    engine: Engine,
    w3: Web3,
    deployment: Deployment,
    policy: Policy,
    store: ContentStore,
    trainer_key: str,
    name: str = DEFAULT_MODEL_NAME,
    timeout: float = 120.0,
) -> TrainReport:
    """Select, read, train, store the artefact, register the manifest through the outbox, record it."""
    if not name or len(name) > 100:
        raise InvalidInputError("the model name must have 1 to 100 characters", field="name")
    started = time.perf_counter()
    end, candidates = select_datasets(engine, policy)
    if not candidates:
        raise InvalidInputError(
            f"no dataset meets the policy's quorum ({policy.attestation.quorum} validators, median >= "
            f"{policy.attestation.min_score}) at block {end}"
        )
    art, skipped = train_from_store(store, candidates)
    seconds = time.perf_counter() - started
    chain_id = deployment.chain_id
    model_id = model_id_of(name)
    models = deployment.contract(w3, "ModelRegistry")
    key = f"manifest:{chain_id}:{model_id}:{art.hash}"
    data = models.functions.registerManifest(
        bytes.fromhex(model_id[2:]), [bytes.fromhex(i[2:]) for i in art.dataset_ids], art.weights
    )._encode_transaction_data()
    box = Outbox(engine, w3, trainer_key)
    tx = box.enqueue(
        key,
        to=models.address,
        data=data,
        with_row=lambda conn, oid: _insert_record(conn, outbox_id=oid, chain_id=chain_id, name=name, art=art),
    )
    tx = box.wait(tx.key, timeout=timeout)
    with engine.connect() as conn:
        record = find_record(conn, chain_id=chain_id, model_id=model_id, artefact=art.hash)
    if record is None or record.id is None:
        raise ConflictError(f"the outbox row {key} exists but its trained_model record does not")
    version: int | None = None
    if tx.status == CONFIRMED and tx.mined_hash:
        receipt = w3.eth.get_transaction_receipt(tx.mined_hash)  # type: ignore[arg-type]
        logs = models.events.ModelManifestRegistered().process_receipt(receipt)
        version = int(logs[0]["args"]["version"]) if logs else None
        _set_status(engine, record.id, REGISTERED, version)
    else:
        _set_status(engine, record.id, FAILED, None)
        raise ConflictError(f"registerManifest for {name} failed on chain (tx {tx.mined_hash})")
    datasets = [
        {"id": i, "content_hash": i, "tokens": t, "weight": w}
        for i, t, w in zip(art.dataset_ids, art.tokens, art.weights, strict=True)
    ]
    return TrainReport(
        name=name, model_id=model_id, artefact=art.hash, artefact_size=len(art.data), datasets=datasets,
        skipped=skipped, end_block=end, status=REGISTERED, version=version, tx_hash=tx.mined_hash,
        train_seconds=seconds,
    )  # fmt: skip
