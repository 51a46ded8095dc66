"""Fast path: reduce the indexer's SQL mirror (`ev_*` tables) to `EpochInputs`, on SQLite and PostgreSQL.

The heavy work runs inside the database: latest attestation per (contribution, validator), per-contribution
quorum and median (window functions), eligibility joins and the per-owner sums of dataset scores. Only
account-level aggregates, the compute contributions and the manifests' datasets come back to Python, where
wide integers (work units x score, wei amounts) are multiplied exactly.

Column conventions (docs/ARCHITECTURE.md): `uint64`..`uint256` columns are NUMERIC(78,0) on PostgreSQL and
decimal TEXT on SQLite, so epochs and amounts are compared as bound parameters of that column's form and
converted with `int()` in Python.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text

from backend.rewards.allocation import EVENT_TABLES, EpochInputs, latest_manifests, manifest_weights
from cairn.core.db import make_engine
from cairn.core.errors import ConfigError
from cairn.core.policy import Policy

# A validator's latest attestation (at the end block) replaces its earlier ones.
_LATEST = """a.block_number <= :end AND NOT EXISTS (
        SELECT 1 FROM ev_attested b
        WHERE b.contribution_id = a.contribution_id AND b.validator = a.validator AND b.block_number <= :end
          AND (b.block_number > a.block_number
               OR (b.block_number = a.block_number AND b.log_index > a.log_index)))"""

# Pass 1: count, distinct validators, min, max and sum of the scores per contribution, in one streaming GROUP
# BY over the (contribution_id, validator, ...) covering index (no sort, no per-row latest check). Where every
# validator attested once (n = nv, the common case) these are the latest scores' aggregates already.
AGG_SQL = """
CREATE TEMPORARY TABLE cairn_agg AS
SELECT contribution_id AS cid, COUNT(*) AS n, COUNT(DISTINCT validator) AS nv, MIN(score) AS lo,
       MAX(score) AS hi, CAST(SUM(score) AS BIGINT) AS total
FROM ev_attested WHERE block_number <= :end{range}
GROUP BY contribution_id
"""

# Pass 1b: contributions where a validator attested more than once are aggregated again over the latest
# attestation of each validator only, and replace their pass-1 rows.
AGG_FIX_SQL = f"""
CREATE TEMPORARY TABLE cairn_agg_fix AS
SELECT a.contribution_id AS cid, COUNT(*) AS n, MIN(a.score) AS lo, MAX(a.score) AS hi,
       CAST(SUM(a.score) AS BIGINT) AS total
FROM ev_attested a
WHERE a.contribution_id IN (SELECT cid FROM cairn_agg WHERE n > nv) AND {_LATEST}
GROUP BY a.contribution_id
"""
AGG_FIX_STEPS = (
    "DELETE FROM cairn_agg WHERE n > nv",
    "INSERT INTO cairn_agg (cid, n, nv, lo, hi, total) SELECT cid, n, n, lo, hi, total FROM cairn_agg_fix",
    "DROP TABLE cairn_agg_fix",
)

# Pass 2: the floor-median. Up to 4 scores it follows from the aggregates (n=3: total-lo-hi; n=4: the two
# middle ones sum to total-lo-hi); only contributions with 5 or more validators need the window function.
MEDIAN_SQL = f"""
CREATE TEMPORARY TABLE cairn_eligible AS
WITH med AS (
    SELECT cid, n,
           CASE WHEN n = 1 THEN total WHEN n = 2 THEN total / 2
                WHEN n = 3 THEN total - lo - hi ELSE (total - lo - hi) / 2 END AS median
    FROM cairn_agg WHERE n >= :quorum AND n <= 4
    UNION ALL
    SELECT cid, MAX(n) AS n, CAST(SUM(score) AS BIGINT) / COUNT(*) AS median FROM (
        SELECT g.cid AS cid, g.n AS n, a.score AS score,
               ROW_NUMBER() OVER (PARTITION BY g.cid ORDER BY a.score) AS rn
        FROM cairn_agg g JOIN ev_attested a ON a.contribution_id = g.cid
        WHERE g.n >= 5 AND g.n >= :quorum AND {_LATEST}
    ) r WHERE rn = (n + 1) / 2 OR rn = (n + 2) / 2
    GROUP BY cid
)
SELECT med.cid AS cid, med.median AS median FROM med
WHERE med.median >= :min_score
  AND NOT EXISTS (SELECT 1 FROM ev_contribution_withdrawn w
                  WHERE w.contribution_id = med.cid AND w.block_number <= :end)
"""

# Datasets are registered alone (ev_dataset_registered) or in batches (ev_dataset_batch_registered, a row per
# item, the same dataset columns): the dataset queries run over each table and their results are merged.
DATASET_TABLES = ("ev_dataset_registered", "ev_dataset_batch_registered")

DATA_WEIGHTS_SQL = """
SELECT d.owner, SUM(e.median) FROM {datasets} d JOIN cairn_eligible e ON e.cid = d.content_hash
WHERE d.block_number <= :end GROUP BY d.owner ORDER BY d.owner
"""

COMPUTE_SQL = """
SELECT c.provider, c.model_id, c.work_units, e.median
FROM ev_compute_registered c JOIN cairn_eligible e ON e.cid = c.contribution_id
WHERE c.block_number <= :end
"""

MANIFEST_DATASETS_SQL = """
SELECT d.content_hash, d.owner, e.median
FROM cairn_manifest_ref r
JOIN {datasets} d ON d.content_hash = r.cid
JOIN cairn_eligible e ON e.cid = d.content_hash
WHERE d.block_number <= :end
"""


# Indexes the reduction needs on the mirror (created if missing by `ensure_indexes`).
INDEXES = (
    # covering: the latest-attestation check and the per-contribution GROUP BY never touch the table
    ("cairn_ix_attested_latest", "ev_attested", "contribution_id, validator, block_number, log_index, score"),
    # covering: the joins from the eligible contributions read owner / provider, model and work units from
    # the index alone, without a lookup of each of the 2M dataset and 0.5M compute rows in its table
    ("cairn_ix_dataset_cover", "ev_dataset_registered", "content_hash, block_number, owner"),
    ("cairn_ix_dataset_batch_cover", "ev_dataset_batch_registered", "content_hash, block_number, owner"),
    (
        "cairn_ix_compute_cover",
        "ev_compute_registered",
        "contribution_id, block_number, provider, model_id, work_units",
    ),
    ("cairn_ix_withdrawn_cid", "ev_contribution_withdrawn", "contribution_id"),
)


# Earlier single-column indexes that the covering ones above replace (dropped: every insert paid for them).
SUPERSEDED_INDEXES = ("cairn_ix_dataset_content_hash", "cairn_ix_compute_cid")


def ensure_indexes(engine: Engine) -> None:
    """Create the lookup indexes the reduction relies on (idempotent; without them the latest-attestation
    check is quadratic)."""
    with engine.begin() as conn:
        have = set(inspect(conn).get_table_names())
        for name, table, cols in INDEXES:
            if table in have:
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({cols})"))
        for name in SUPERSEDED_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


def _u256(conn: Connection, value: int) -> Any:
    """A bound value in the form of a Uint256 column (decimal TEXT on SQLite, NUMERIC on PostgreSQL)."""
    return value if conn.dialect.name == "postgresql" else str(value)


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every row of a query as plain tuples. SQLite: straight from the DBAPI cursor of the same connection
    (SQLAlchemy's Row objects cost ~1 s per million rows); other databases through SQLAlchemy."""
    if conn.dialect.name == "sqlite":
        cur = conn.connection.cursor()  # sqlite3 binds the :name parameters itself
        try:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = list(cur.fetchall())
            return rows
        finally:
            cur.close()
    return [tuple(r) for r in conn.execute(text(sql), params)]


def _insert_refs(conn: Connection, refs: list[str]) -> None:
    """Fill cairn_manifest_ref (one executemany; on SQLite without SQLAlchemy's per-row parameter dicts)."""
    if not refs:
        return
    if conn.dialect.name == "sqlite":
        cur = conn.connection.cursor()
        try:
            cur.executemany("INSERT INTO cairn_manifest_ref (cid) VALUES (?)", [(c,) for c in refs])
        finally:
            cur.close()
    else:
        conn.execute(text("INSERT INTO cairn_manifest_ref (cid) VALUES (:c)"), [{"c": c} for c in refs])


def _add_compute(inp: EpochInputs, rows: list[tuple[Any, ...]]) -> None:
    """Compute weights (work units x median, exact in Python: the product exceeds 64 bits) per provider,
    overall and per model."""
    cw = inp.compute_weights
    by_model = inp.model_compute_weights
    for provider, model, work, median in rows:
        w = int(work) * int(median)
        cw[provider] = cw.get(provider, 0) + w
        mw = by_model.get(model)
        if mw is None:
            mw = by_model[model] = {}
        mw[provider] = mw.get(provider, 0) + w


def ensure_tables(conn: Connection) -> list[str]:
    """The names of the event tables this reduction needs that the database lacks."""
    have = set(inspect(conn).get_table_names())
    return [t for t in EVENT_TABLES if t not in have]


@dataclass
class _Part:
    """The contributions of one id range, reduced: per-owner dataset scores, compute rows (provider, model,
    work units, median) and the medians of the manifests' datasets (id -> (owner, median))."""

    data: dict[str, int]
    compute: list[tuple[Any, ...]]
    datasets: dict[str, tuple[str, int]]


def _reduce_range(
    conn: Connection, end_block: int, policy: Policy, refs: list[str], lo: str | None, hi: str | None
) -> _Part:
    """Medians, eligibility and the joins for the contributions with lo <= id < hi (None: unbounded)."""
    att = policy.attestation
    p: dict[str, Any] = {"end": end_block}
    bounds = ""
    if lo is not None:
        bounds += " AND contribution_id >= :lo"
        p["lo"] = lo
    if hi is not None:
        bounds += " AND contribution_id < :hi"
        p["hi"] = hi
    for tmp in ("cairn_agg", "cairn_agg_fix", "cairn_eligible", "cairn_manifest_ref"):
        conn.execute(text(f"DROP TABLE IF EXISTS {tmp}"))
    conn.execute(text(AGG_SQL.replace("{range}", bounds)), p)  # every later step reads cairn_agg only
    p = {"end": end_block}
    conn.execute(text(AGG_FIX_SQL), p)
    for step in AGG_FIX_STEPS:
        conn.execute(text(step))
    conn.execute(text(MEDIAN_SQL), {**p, "quorum": att.quorum, "min_score": att.min_score})
    if conn.dialect.name != "sqlite":
        # SQLite's plans scan cairn_eligible once and seek into the mirror's indexes: an index on it costs
        # ~2.5 s at 1M and no join uses it (measured); PostgreSQL keeps it for its planner
        conn.execute(text("CREATE INDEX cairn_eligible_cid ON cairn_eligible (cid)"))
    tables = _dataset_tables(conn)
    data = _data_weights(conn, tables, p)
    compute = _rows(conn, COMPUTE_SQL, p)
    conn.execute(text("CREATE TEMPORARY TABLE cairn_manifest_ref (cid TEXT PRIMARY KEY)"))
    _insert_refs(conn, refs)
    datasets = {
        cid: (owner, int(med))
        for table in tables
        for cid, owner, med in _rows(conn, MANIFEST_DATASETS_SQL.format(datasets=table), p)
    }
    for tmp in ("cairn_eligible", "cairn_agg", "cairn_manifest_ref"):
        conn.execute(text(f"DROP TABLE {tmp}"))
    return _Part(data, compute, datasets)


def _dataset_tables(conn: Connection) -> list[str]:
    """The dataset tables present: the single-registration table, and the batch table once it has rows."""
    have = set(inspect(conn).get_table_names())
    tables = [DATASET_TABLES[0]]
    batch = DATASET_TABLES[1]
    if batch in have and conn.execute(text(f"SELECT 1 FROM {batch} LIMIT 1")).first() is not None:
        tables.append(batch)
    return tables


def _data_weights(conn: Connection, tables: list[str], p: dict[str, Any]) -> dict[str, int]:
    """Per owner, the sum of the medians of its eligible datasets, ordered by owner (both tables merged)."""
    data: dict[str, int] = {}
    for table in tables:
        for owner, total in _rows(conn, DATA_WEIGHTS_SQL.format(datasets=table), p):
            if total:
                data[owner] = data.get(owner, 0) + int(total)
    return data if len(tables) == 1 else dict(sorted(data.items()))


# Below this many registered contributions the reduction runs in one process (a worker costs more).
PARALLEL_MIN_CONTRIBUTIONS = int(os.environ.get("CAIRN_REDUCE_PARALLEL_MIN", "100000"))


def _sqlite_file(conn: Connection) -> str | None:
    """The database file of a SQLite connection another process can open, else None."""
    if conn.dialect.name != "sqlite":
        return None
    db = conn.engine.url.database
    return db if db and db != ":memory:" and not db.startswith("file:") else None


def _split_point(conn: Connection) -> str | None:
    """A contribution id that splits the registered contributions about in half (None: too few to split).

    The k-th dataset id (index walk), with k chosen so that datasets plus compute jobs below it are half of
    all: the compute ids below the dataset median are counted, not assumed uniform."""
    nd = int(conn.execute(text("SELECT COUNT(*) FROM ev_dataset_registered")).scalar() or 0)
    nc = int(conn.execute(text("SELECT COUNT(*) FROM ev_compute_registered")).scalar() or 0)
    if nd == 0 or nd + nc < PARALLEL_MIN_CONTRIBUTIONS:
        return None
    nth = text("SELECT content_hash FROM ev_dataset_registered ORDER BY content_hash LIMIT 1 OFFSET :k")
    median = conn.execute(nth, {"k": nd // 2}).scalar()
    below = conn.execute(
        text("SELECT COUNT(*) FROM ev_compute_registered WHERE contribution_id < :m"), {"m": median}
    ).scalar()
    k = min(max((nd + nc) // 2 - int(below or 0), 0), nd - 1)
    split: str | None = conn.execute(nth, {"k": k}).scalar()
    return split


def _reduce_in_child(path: str, end_block: int, policy: Policy, refs: list[str], lo: str, send: Any) -> None:
    """Worker process: reduce the ids >= lo on a connection of its own and send the `_Part` back."""
    try:
        engine = make_engine(f"sqlite:///{path}", check=False)
        with engine.connect() as conn:
            part = _reduce_range(conn, end_block, policy, refs, lo, None)
            conn.rollback()
        engine.dispose()
        send.send(("ok", part))
    except BaseException as exc:  # reported to the parent, which raises
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _reduce(conn: Connection, end_block: int, policy: Policy, refs: list[str]) -> list[_Part]:
    """Reduce every contribution: on a SQLite file big enough, the two halves of the id space at once (this
    connection and a spawned worker process with its own; each contribution's attestations, registration and
    withdrawal fall in one half, so the parts add up exactly), else in one pass."""
    path = _sqlite_file(conn)
    split = _split_point(conn) if path is not None else None
    if path is None or split is None:
        return [_reduce_range(conn, end_block, policy, refs, None, None)]
    # spawned, not forked: a fresh interpreter whatever threads this process runs (a fork could copy a lock
    # another thread holds); it opens its own connection to the file, never this one (~0.5 s to start)
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(
        target=_reduce_in_child, args=(path, end_block, policy, refs, split, send), daemon=True
    )
    worker.start()
    send.close()
    try:
        mine = _reduce_range(conn, end_block, policy, refs, None, split)
        status, theirs = recv.recv()
    except BaseException:
        worker.terminate()
        raise
    finally:
        worker.join()
        recv.close()
    if status != "ok":
        raise RuntimeError(f"the reduction of contribution ids >= {split} failed: {theirs}")
    return [mine, theirs]


def inputs_from_conn(conn: Connection, epoch: int, end_block: int, policy: Policy) -> EpochInputs:
    missing = ensure_tables(conn)
    if missing:
        raise ConfigError(f"the indexer mirror lacks tables {', '.join(missing)}: run `cairn index` first")
    p = {"end": end_block}
    inp = EpochInputs(epoch=epoch)
    e = _u256(conn, epoch)
    rows = conn.execute(
        text(
            "SELECT model_id, amount, fee FROM ev_payment_settled WHERE block_number <= :end AND epoch = :e"
        ),
        {**p, "e": e},
    )
    for model, amount, fee in rows:
        inp.revenue[model] = inp.revenue.get(model, 0) + int(amount) - int(fee)
    rows = conn.execute(
        text("SELECT amount FROM ev_epoch_funded WHERE block_number <= :end AND epoch = :e AND source = 0"),
        {**p, "e": e},
    )
    inp.emission = sum(int(a) for (a,) in rows)

    manifest_rows = [
        dict(r)
        for r in conn.execute(
            text(
                "SELECT model_id, version, dataset_ids, weights, block_number, log_index "
                "FROM ev_model_manifest_registered WHERE block_number <= :end"
            ),
            p,
        ).mappings()
    ]
    manifests = latest_manifests(manifest_rows, end_block)
    refs = sorted({did for m in manifests.values() for did, _ in m})

    parts = _reduce(conn, end_block, policy, refs)
    data = parts[0].data
    datasets = parts[0].datasets
    for part in parts[1:]:
        for owner, total in part.data.items():
            data[owner] = data.get(owner, 0) + total
        datasets.update(part.datasets)
    if conn.dialect.name != "sqlite" or len(parts) > 1:
        # one SQLite part comes ordered by owner (BINARY collation orders like Python); two sorted parts
        # appended are two runs, which the sort merges in one pass
        data = dict(sorted(data.items()))
    for part in parts:
        _add_compute(inp, part.compute)
    for model, manifest in manifests.items():
        inp.model_data_weights[model] = manifest_weights(manifest, datasets)
    out = inp.normalized()
    out.data_weights = data  # normalized already (no zero weight, sorted keys): not copied again
    return out


def inputs_from_db(engine: Engine, epoch: int, end_block: int, policy: Policy) -> EpochInputs:
    """Reduce the mirror in `engine` to the epoch's inputs (one transaction, rolled back: read-only)."""
    with engine.connect() as conn:
        try:
            return inputs_from_conn(conn, epoch, end_block, policy)
        finally:
            conn.rollback()
