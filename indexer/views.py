"""Derived views over the event tables, for the backend and the rewards engine. Column names are stable.

Created (or replaced) at every indexer start after the tables, only when their source tables exist.

`v_datasets` — every registered dataset, one row each, whether registered alone (`DatasetRegistered`,
    item_index 0) or in a batch (`DatasetBatchRegistered`, one row per item), except registrations that
    lost the dataset later (`DatasetReclaimed` by an older commitment, `DatasetEvicted` by a compute
    registration of that id): content_hash, owner,
    size (Uint256), license_id BIGINT, metadata_hash, uri, block_number, log_index, item_index, block_hash,
    tx_hash, contract, block_time. Ordered keys: (block_number, log_index, item_index).
`v_contributions` — every registered contribution (datasets and compute), one row each:
    contribution_id TEXT (dataset content hash or compute contribution id), kind TEXT ('dataset'|'compute'),
    owner TEXT (dataset owner / compute provider), model_id TEXT (compute only, else NULL),
    size (dataset bytes, Uint256, else NULL), work_units (compute, Uint256, else NULL), uri TEXT (datasets),
    block_number, log_index, item_index, block_time, withdrawn BOOLEAN (a ContributionWithdrawn after the
    registration).
`v_attestations_latest` — the latest attestation per (contribution_id, validator):
    contribution_id, validator, score BIGINT, block_number, log_index, block_time.
`v_payments` — every PaymentSettled: payer, model_id, epoch BIGINT, amount, fee (Uint256), request_hash,
    request_count BIGINT, block_number, log_index, block_time, contract.
`v_payments_per_model_epoch` (PostgreSQL only: exact NUMERIC sums) — model_id, epoch, payments, requests,
    amount, fee. On SQLite amounts are decimal TEXT, which SQL cannot sum exactly: use
    `payments_per_model_epoch(conn)` (works on both, exact integers).
`v_manifests_latest` — the latest manifest version per model: model_id, version BIGINT, trainer,
    dataset_ids TEXT (JSON list of 0x hex), weights TEXT (JSON list of decimal strings), block_number,
    log_index, block_time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

VIEWS = (
    "v_datasets",
    "v_contributions",
    "v_attestations_latest",
    "v_payments",
    "v_payments_per_model_epoch",
    "v_manifests_latest",
)


def _bigint(dialect: str, expr: str) -> str:
    return f"CAST({expr} AS BIGINT)" if dialect == "postgresql" else f"CAST({expr} AS INTEGER)"


def view_sql(dialect: str, tables: set[str]) -> dict[str, str]:
    """SQL of each view whose source tables exist."""
    out: dict[str, str] = {}
    withdrawn_src = "ev_contribution_withdrawn" in tables

    def withdrawn(alias: str, id_col: str) -> str:
        if not withdrawn_src:
            return "FALSE" if dialect == "postgresql" else "0"
        return (
            f"EXISTS (SELECT 1 FROM ev_contribution_withdrawn w WHERE w.contribution_id = {alias}.{id_col} "
            f"AND (w.block_number > {alias}.block_number OR (w.block_number = {alias}.block_number "
            f"AND w.log_index > {alias}.log_index)))"
        )

    dataset_parts = []
    common = "block_number, log_index, {item} AS item_index, block_hash, tx_hash, contract, block_time"
    if "ev_dataset_registered" in tables:
        dataset_parts.append(
            "SELECT content_hash, owner, size, license_id, metadata_hash, uri, "
            + common.format(item=0)
            + " FROM ev_dataset_registered"
        )
    if "ev_dataset_batch_registered" in tables:
        dataset_parts.append(
            "SELECT content_hash, owner, size, license_id, metadata_hash, uri, "
            + common.format(item="item_index")
            + " FROM ev_dataset_batch_registered"
        )
    if dataset_parts:
        union = " UNION ALL ".join(dataset_parts)
        # A registration that lost its dataset later (commit-reveal: an older commitment took it over,
        # `DatasetReclaimed`; or a compute registration evicted a dataset squatting on its id,
        # `DatasetEvicted`) is not a dataset any more. Both events are rare: the filters scan tiny tables.
        lost = []
        for table, id_col, owner_col in (
            ("ev_dataset_reclaimed", "content_hash", "previous_owner"),
            ("ev_dataset_evicted", "contribution_id", "owner"),
        ):
            if table in tables:
                lost.append(
                    f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.{id_col} = u.content_hash "
                    f"AND x.{owner_col} = u.owner AND (x.block_number > u.block_number OR "
                    f"(x.block_number = u.block_number AND x.log_index > u.log_index)))"
                )
        out["v_datasets"] = f"SELECT * FROM ({union}) u WHERE " + " AND ".join(lost) if lost else union

    parts = []
    null_num = "CAST(NULL AS NUMERIC)" if dialect == "postgresql" else "NULL"
    if dataset_parts:
        parts.append(
            "SELECT d.content_hash AS contribution_id, 'dataset' AS kind, d.owner AS owner, "
            f"CAST(NULL AS TEXT) AS model_id, d.size AS size, {null_num} AS work_units, d.uri AS uri, "
            f"d.block_number, d.log_index, d.item_index, d.block_time, "
            f"{withdrawn('d', 'content_hash')} AS withdrawn FROM v_datasets d"
        )
    if "ev_compute_registered" in tables:
        parts.append(
            "SELECT c.contribution_id AS contribution_id, 'compute' AS kind, c.provider AS owner, "
            f"c.model_id AS model_id, {null_num} AS size, c.work_units AS work_units, "
            "CAST(NULL AS TEXT) AS uri, "
            f"c.block_number, c.log_index, 0 AS item_index, c.block_time, "
            f"{withdrawn('c', 'contribution_id')} AS withdrawn FROM ev_compute_registered c"
        )
    if parts:
        out["v_contributions"] = " UNION ALL ".join(parts)
    if "ev_attested" in tables:
        out["v_attestations_latest"] = (
            "SELECT contribution_id, validator, score, block_number, log_index, block_time FROM ("
            "SELECT a.*, ROW_NUMBER() OVER (PARTITION BY contribution_id, validator "
            "ORDER BY block_number DESC, log_index DESC) AS rn FROM ev_attested a) t WHERE rn = 1"
        )
    if "ev_payment_settled" in tables:
        out["v_payments"] = (
            f"SELECT payer, model_id, {_bigint(dialect, 'epoch')} AS epoch, amount, fee, request_hash, "
            "request_count, block_number, log_index, block_time, contract FROM ev_payment_settled"
        )
        if dialect == "postgresql":
            out["v_payments_per_model_epoch"] = (
                "SELECT model_id, CAST(epoch AS BIGINT) AS epoch, COUNT(*) AS payments, "
                "SUM(request_count) AS requests, SUM(amount) AS amount, SUM(fee) AS fee "
                "FROM ev_payment_settled GROUP BY model_id, epoch"
            )
    if "ev_model_manifest_registered" in tables:
        out["v_manifests_latest"] = (
            "SELECT model_id, version, trainer, dataset_ids, weights, block_number, log_index, block_time "
            "FROM ("
            "SELECT m.*, ROW_NUMBER() OVER (PARTITION BY model_id "
            "ORDER BY version DESC, block_number DESC, log_index DESC) AS rn "
            "FROM ev_model_manifest_registered m) t WHERE rn = 1"
        )
    return out


INDEXES = {
    "ev_attested": ("contribution_id", "validator"),
    "ev_payment_settled": ("model_id", "epoch"),
    "ev_contribution_withdrawn": ("contribution_id",),
    "ev_model_manifest_registered": ("model_id", "version"),
    "ev_dataset_registered": ("owner",),
    "ev_dataset_batch_registered": ("owner",),
    "ev_compute_registered": ("provider",),
    # one channel's deposits and withdrawals, read per paid request (backend.api.x402.channel_mirror)
    "ev_channel_deposited": ("channel_id",),
    "ev_channel_withdrawn": ("channel_id",),
    "ev_channel_refunded": ("channel_id",),
    "ev_channel_withdrawal_requested": ("channel_id",),
}


def create_indexes(conn: Connection, tables: Iterable[str]) -> None:
    """Secondary indexes for the views and the backend's lookups. The indexer builds them once it has caught
    up with the chain (building them after the backfill is several times faster than maintaining them row by
    row during it); idempotent."""
    present = set(tables)
    for table, cols in INDEXES.items():
        if table in present:
            conn.execute(
                text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{'_'.join(cols)} ON {table} ({', '.join(cols)})")
            )


def create_views(conn: Connection, tables: Iterable[str]) -> None:
    """(Re)create the views for the tables that exist."""
    present = set(tables)
    dialect = conn.dialect.name
    wanted = {name: f"CREATE VIEW {name} AS {sql}" for name, sql in view_sql(dialect, present).items()}
    if dialect == "sqlite":  # unchanged views are left alone (no schema change at every start)
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'view'")).all()
        have: dict[str, str] = {str(r[0]): str(r[1]) for r in rows}
        if all(have.get(n) == wanted.get(n) for n in VIEWS):
            return
    for name in reversed(VIEWS):  # dependants first (v_contributions reads v_datasets)
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
    for name, sql in view_sql(dialect, present).items():
        conn.execute(text(f"CREATE VIEW {name} AS {sql}"))


@dataclass(frozen=True)
class PaymentTotal:
    model_id: str
    epoch: int
    payments: int
    requests: int
    amount: int
    fee: int


def payments_per_model_epoch(conn: Connection, epoch: int | None = None) -> list[PaymentTotal]:
    """Exact PaymentSettled totals per (model, epoch) on SQLite and PostgreSQL, ordered by model, epoch."""
    where = " WHERE epoch = :e" if epoch is not None else ""
    params: dict[str, Any] = {"e": epoch} if epoch is not None else {}
    totals: dict[tuple[str, int], list[int]] = {}
    rows = conn.execute(
        text(f"SELECT model_id, epoch, amount, fee, request_count FROM v_payments{where}"), params
    )
    for model_id, ep, amount, fee, requests in rows:
        acc = totals.setdefault((str(model_id), int(ep)), [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += int(requests)
        acc[2] += int(amount)
        acc[3] += int(fee)
    return [PaymentTotal(m, e, *v) for (m, e), v in sorted(totals.items())]
