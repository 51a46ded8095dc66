"""The events the reward function reads, and how the audit path decodes them.

The audit path decodes raw logs with the ABI-derived catalogue (`cairn.core.events`, built from the deployed
contracts' ABIs: `reward_specs`, `decode_rows`), the same decoder the indexer uses. `SIGNATURES` lists the
events by hand for the tests and the benchmark, which create and fill `ev_*` tables without a deployment;
`tests/unit/test_reward_events.py` pins them to the compiled contracts' ABIs.

Rows use the indexer's column names and value forms (docs/ARCHITECTURE.md "Tables"), so the audit path
(`eth_getLogs` -> these rows) and the fast path (SQL mirror) feed the same reduction: addresses and bytes32 as
`0x`-lowercase text, integers as `int`, arrays as lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cairn.core.errors import ArtifactError
from cairn.core.events import EventSpec, column_kind, decode_exploded, decode_log, specs_from_abis
from cairn.core.merkle import keccak256
from indexer.schema import sync_event_tables

SIGNATURES = {
    "ev_dataset_registered": (
        "ContributionRegistry",
        "DatasetRegistered(bytes32 indexed contentHash, address indexed owner, uint64 size, "
        "uint32 licenseId, bytes32 metadataHash, string uri)",
    ),
    "ev_compute_registered": (
        "ContributionRegistry",
        "ComputeRegistered(bytes32 indexed contributionId, address indexed provider, "
        "bytes32 indexed modelId, bytes32 jobId, uint64 workUnits, bytes32 resultHash)",
    ),
    "ev_attested": (
        "ContributionRegistry",
        "Attested(bytes32 indexed contributionId, address indexed validator, uint16 score)",
    ),
    "ev_contribution_withdrawn": (
        "ContributionRegistry",
        "ContributionWithdrawn(bytes32 indexed contributionId, address indexed owner)",
    ),
    "ev_model_manifest_registered": (
        "ModelRegistry",
        "ModelManifestRegistered(bytes32 indexed modelId, uint32 indexed version, address indexed trainer, "
        "bytes32[] datasetIds, uint32[] weights)",
    ),
    "ev_payment_settled": (
        "PaymentRouter",
        "PaymentSettled(address indexed payer, bytes32 indexed modelId, uint64 indexed epoch, "
        "uint256 amount, uint256 fee, bytes32 requestHash, uint32 requestCount)",
    ),
    "ev_epoch_funded": (
        "RewardDistributor",
        "EpochFunded(uint64 indexed epoch, address indexed from, uint256 amount, uint8 source)",
    ),
}


def snake_case(name: str) -> str:
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


@dataclass(frozen=True)
class Param:
    name: str  # snake_case column name
    type: str
    indexed: bool


@dataclass(frozen=True)
class EventDef:
    table: str
    contract: str
    name: str
    params: tuple[Param, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.params)})"

    @property
    def topic0(self) -> str:
        return "0x" + keccak256(self.signature.encode()).hex()


def parse_signature(table: str, contract: str, sig: str) -> EventDef:
    name, rest = sig.split("(", 1)
    params = []
    for part in rest.rstrip(")").split(","):
        words = part.split()
        params.append(Param(name=snake_case(words[-1]), type=words[0], indexed="indexed" in words[1:-1]))
    return EventDef(table=table, contract=contract, name=name.strip(), params=tuple(params))


EVENTS: dict[str, EventDef] = {t: parse_signature(t, c, s) for t, (c, s) in SIGNATURES.items()}
# A batch of datasets (one log) stands for one `ev_dataset_registered` row per item, with `item_index` (the
# indexer stores it exploded the same way: cairn.core.events.EXPLODED_EVENTS).
DATASET_BATCH = parse_signature(
    "ev_dataset_batch_registered",
    "ContributionRegistry",
    "DatasetBatchRegistered(address indexed owner, uint32 licenseId, bytes32 metadataHash, string uri, "
    "bytes32[] contentHashes, uint64[] sizes)",
)


def explode_dataset_batch(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A decoded `DatasetBatchRegistered` row -> one `ev_dataset_registered`-shaped row per item."""
    fixed_keys = ("block_number", "log_index", "block_hash", "tx_hash", "contract", "block_time")
    fixed = {k: row[k] for k in fixed_keys}
    shared = {k: row[k] for k in ("owner", "license_id", "metadata_hash", "uri")}
    return [
        {**fixed, "item_index": k, "content_hash": h, "size": size, **shared}
        for k, (h, size) in enumerate(zip(row["content_hashes"], row["sizes"], strict=True))
    ]


READ_TABLES = frozenset([*EVENTS, DATASET_BATCH.table])


def reward_specs(abis: Iterable[list[dict[str, Any]]]) -> dict[str, EventSpec]:
    """topic0 -> the catalogue's spec of every event the reward function reads, from the contracts' ABIs
    (uint256 values as `int`); refuses ABIs that lack one of them."""
    specs = {t: s for t, s in specs_from_abis(abis, uint_as_str=False).items() if s.table in READ_TABLES}
    missing = READ_TABLES - {s.table for s in specs.values()}
    if missing:
        raise ArtifactError(f"the deployment's ABIs lack the events of {sorted(missing)}")
    return specs


def decode_rows(spec: EventSpec, log: dict[str, Any], block_time: int = 0) -> list[dict[str, Any]]:
    """A raw JSON-RPC log (hex strings) -> its rows (one per item of a batch event), keyed by column."""
    names = spec.column_names
    if spec.exploded:
        return [dict(zip(names, row, strict=True)) for row in decode_exploded(spec, log, block_time)]
    return [dict(zip(names, decode_log(spec, log, block_time), strict=True))]


# --- the ev_* tables (for tests and the benchmark): created by indexer.schema from these signatures; the
# value forms of their columns for inserting decoded rows ----------------------------------------------------
def column_kinds(table: str) -> dict[str, str]:
    """column -> kind ("bigint", "uint256", "bool", "text") of an ev_* table, as cairn.core.events assigns
    them (the batch table holds exploded rows: the dataset columns plus item_index)."""

    if table == DATASET_BATCH.table:
        return {**column_kinds("ev_dataset_registered"), "item_index": "bigint"}
    return {p.name: ("text" if p.type.endswith("[]") else column_kind(p.type)) for p in EVENTS[table].params}


def storage_value(kind: str, value: Any, dialect: str) -> Any:
    """A Python value in the form the ev_* column stores (Uint256: decimal TEXT on SQLite, int on PostgreSQL;
    arrays: JSON text of decimal / hex strings)."""
    if isinstance(value, list):
        import json

        return json.dumps([str(v) for v in value])
    if kind == "uint256":
        return int(value) if dialect == "postgresql" else str(int(value))
    return value


def abi_events() -> list[dict[str, Any]]:
    """EVENTS and DATASET_BATCH as ABI event entries (parameter names in their snake_case column form)."""
    return [
        {
            "type": "event",
            "name": ev.name,
            "anonymous": False,
            "inputs": [{"name": p.name, "type": p.type, "indexed": p.indexed} for p in ev.params],
        }
        for ev in [*EVENTS.values(), DATASET_BATCH]
    ]


def create_event_tables(bind: Any) -> None:
    """Create the ev_* tables of EVENTS (if missing) with the indexer's own definitions: the table specs of
    `cairn.core.events` and the DDL of `indexer.schema` (on SQLite `WITHOUT ROWID`, Uint256 as decimal
    TEXT), so the tests and the benchmark run the fast path on the schema a running indexer writes."""

    specs = specs_from_abis([abi_events()], uint_as_str=bind.dialect.name != "postgresql")
    sync_event_tables(bind, specs)


def insert_rows(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert decoded rows (Python values) into an ev_* table, converting to the storage forms."""
    from sqlalchemy import text

    if not rows:
        return
    kinds = column_kinds(table)
    dialect = conn.dialect.name
    cols = list(rows[0].keys())
    names = ", ".join(f'"{c}"' for c in cols)
    binds = ", ".join(f":p{i}" for i in range(len(cols)))
    stmt = text(f"INSERT INTO {table} ({names}) VALUES ({binds})")
    params = [
        {f"p{i}": storage_value(kinds.get(c, "fixed"), r[c], dialect) for i, c in enumerate(cols)}
        for r in rows
    ]
    conn.execute(stmt, params)
