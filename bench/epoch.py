"""Epoch build at scale: 1,000,000 contributors, 10,000,000 contribution rows in the SQL mirror.

Figures
* `epoch_seconds_1m`: SQL reduction (medians, joins) + split + cumulative leaves + Merkle tree + every proof
  (1M proofs derived) + the content-addressed allocation file, for 1M accounts, measured in a fresh process;
* `epoch_peak_rss_mb_1m`: that process's peak RSS (the reduction's worker process on SQLite is a spawned
  interpreter that exits before the split, when this one grows to its peak);
* `merkle_hashes_per_s`: keccak256 of 64 bytes through ctypes, one core (the Python fallback's rate, and a
  gauge of the machine's load; the tree is built in C calling the same keccak, ~3 hashes per leaf);
* `epoch_sql_seconds_1m`, `epoch_tree_seconds_1m`, `epoch_proofs_seconds_1m`, `epoch_file_seconds_1m`: parts;
* `epoch_cpu_seconds_1m`: CPU time (user + system) of the measuring process, the load-independent check;

Database: SQLite (the embedded default), in the indexer's own table definitions, built once with
`executemany` and cached at `bench/work/epoch-1000000-s2.db` (about 5 GB); delete it to rebuild. SQLite
because the benchmark then measures the reduction itself, with no server configuration, and because it is
the harder case (one core, no parallel query); PostgreSQL runs the same SQL
(tests/property/test_sql_dialects.py) and is the scale path (docs/SCALING.md).

Rows: 2,000,000 datasets owned by 1,000,000 accounts (2 each), 500,000 compute jobs over 100 models,
7,500,000 attestations (3 validators per contribution) = 10,000,000 contribution rows; plus 100 manifests of
1,000 datasets, 10,000 payments and the emission funding. `BENCH_EPOCH_ACCOUNTS` scales everything down
for a quick run; `BENCH_EPOCH_POSTGRES=1` also copies the rows into PostgreSQL (COPY, cached as database
`cairn_bench_epoch_<accounts>`) and reports the same figures with a `_pg` suffix.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work"
EPOCH = 3
END_BLOCK = 1_000_000


def _sizes() -> tuple[int, int, int]:
    accounts = int(os.environ.get("BENCH_EPOCH_ACCOUNTS", "1000000"))
    return accounts, 2 * accounts, accounts // 2


# Bumped when the cached database's schema changes: "-s2" = the indexer's own tables (indexer.schema,
# WITHOUT ROWID on SQLite) instead of a copy of their columns in rowid tables.
DB_SCHEMA = "s2"


def db_path() -> Path:
    accounts, _, _ = _sizes()
    return WORK / f"epoch-{accounts}-{DB_SCHEMA}.db"


def _addr(i: int) -> str:
    return f"0x{i + 0x100000:040x}"


def _h(prefix: int, i: int) -> str:
    return f"0x{prefix:08x}{i:056x}"


def build_db(path: Path) -> None:
    from sqlalchemy import create_engine

    from backend.rewards.events import create_event_tables
    from backend.rewards.sqlsource import ensure_indexes

    accounts, n_data, n_comp = _sizes()
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{tmp}")
    with engine.begin() as conn:
        create_event_tables(conn)
    engine.dispose()
    rng = random.Random(42)
    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    fixed = ("0x" + "ab" * 32, "0x" + "cd" * 32, "0x" + "ee" * 20, 1_700_000_000)
    chunk = 500_000
    log = 0

    def pos() -> tuple[int, int]:
        nonlocal log
        log += 1
        return 1 + log // 1000, log % 1000

    for start in range(0, n_data, chunk):
        rows = []
        for i in range(start, min(start + chunk, n_data)):
            b, li = pos()
            rows.append((b, li, *fixed, _h(0xD, i), _addr(i % accounts), "1000", 1, fixed[0], "ipfs://d"))
        db.executemany("INSERT INTO ev_dataset_registered VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    for start in range(0, n_comp, chunk):
        rows = []
        for i in range(start, min(start + chunk, n_comp)):
            b, li = pos()
            rows.append(
                (b, li, *fixed, _h(0xC, i), _addr((i * 7) % accounts), _h(0xE, i % 100), fixed[0],
                 str(rng.randrange(1, 10**6)), fixed[0])
            )  # fmt: skip
        db.executemany("INSERT INTO ev_compute_registered VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    cids = [_h(0xD, i) for i in range(n_data)] + [_h(0xC, i) for i in range(n_comp)]
    validators = [_addr(10**8 + v) for v in range(3)]
    rows = []
    rnd = rng.randrange
    for cid in cids:
        for v in validators:
            b, li = pos()
            rows.append((b, li, *fixed, cid, v, 4000 + rnd(6001)))
        if len(rows) >= chunk:
            db.executemany("INSERT INTO ev_attested VALUES (?,?,?,?,?,?,?,?,?)", rows)
            rows = []
    db.executemany("INSERT INTO ev_attested VALUES (?,?,?,?,?,?,?,?,?)", rows)
    del cids
    rows = []
    for m in range(100):
        ids = [_h(0xD, rng.randrange(n_data)) for _ in range(1000)]
        weights = [str(rng.randrange(1, 100)) for _ in ids]
        b, li = pos()
        rows.append((b, li, *fixed, _h(0xE, m), 1, fixed[2], json.dumps(ids), json.dumps(weights)))
    db.executemany("INSERT INTO ev_model_manifest_registered VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    rows = []
    for _ in range(10_000):
        b, li = pos()
        amount = rng.randrange(10**15, 10**20)
        rows.append((b, li, *fixed, fixed[2], _h(0xE, rng.randrange(100)), str(EPOCH), str(amount),
                     str(amount // 100), fixed[0], 1))  # fmt: skip
    db.executemany("INSERT INTO ev_payment_settled VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    b, li = pos()
    db.execute(
        "INSERT INTO ev_epoch_funded VALUES (?,?,?,?,?,?,?,?,?,?)",
        (b, li, *fixed, str(EPOCH), "0x" + "00" * 20, str(10**24), 0),
    )
    db.commit()
    db.close()
    engine = create_engine(f"sqlite:///{tmp}")
    ensure_indexes(engine)  # what `cairn epoch compute` does on a live mirror
    engine.dispose()
    tmp.replace(path)


PG_ADMIN = os.environ.get("CAIRN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def pg_url() -> str:
    accounts, _, _ = _sizes()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/cairn_bench_epoch_{accounts}"


def build_pg(sqlite_path: Path) -> bool:
    """Copy the cached SQLite mirror into PostgreSQL with COPY (once, kept). False without a server."""
    from sqlalchemy import create_engine, text

    from backend.rewards.allocation import EVENT_TABLES
    from backend.rewards.events import create_event_tables
    from backend.rewards.sqlsource import ensure_indexes

    url = pg_url()
    name = url.rsplit("/", 1)[1]
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists:
                eng = create_engine(url)
                with eng.connect() as c2:
                    done = c2.execute(text("SELECT to_regclass('bench_done')")).scalar()
                eng.dispose()
                if done:
                    return True
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception:
        return False
    eng = create_engine(url)
    with eng.begin() as conn:
        create_event_tables(conn)
    src = sqlite3.connect(sqlite_path)
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        for table in EVENT_TABLES:
            with cur.copy(f"COPY {table} FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in src.execute(f"SELECT * FROM {table}"):
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    ensure_indexes(eng)
    with eng.begin() as conn:
        for table in EVENT_TABLES:
            conn.execute(text(f"ANALYZE {table}"))
        conn.execute(text("CREATE TABLE bench_done (x int)"))
    eng.dispose()
    return True


def measure(path: str, out_dir: str) -> dict[str, float]:
    """The timed part, run in a fresh process so that RSS is the epoch build's own."""
    from backend.rewards.allocation import allocate
    from backend.rewards.publication import build_publication, write_allocation_file
    from backend.rewards.sqlsource import inputs_from_db
    from cairn.core.db import make_engine
    from cairn.core.policy import load_policy

    policy = load_policy("v1")
    engine = make_engine(path if "://" in path else f"sqlite:///{path}")
    t0 = time.perf_counter()
    inputs = inputs_from_db(engine, EPOCH, END_BLOCK, policy)
    t1 = time.perf_counter()
    amounts = allocate(inputs, policy)
    del inputs
    engine.dispose()
    t2 = time.perf_counter()
    pub = build_publication(
        epoch=EPOCH, end_block=END_BLOCK, chain_id=31337, distributor="0x" + "11" * 20, policy=policy,
        previous={}, epoch_amounts=amounts,
    )  # fmt: skip
    t3 = time.perf_counter()
    proof_nodes = 0
    proof_bytes = pub.tree.proof_bytes
    for i in range(len(pub.tree)):
        proof_nodes += len(proof_bytes(i))
    t4 = time.perf_counter()
    write_allocation_file(Path(out_dir), pub.chunks())
    t5 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the reduction's spawned worker (SQLite)
    self_rss = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime + workers.ru_utime + workers.ru_stime
    return {
        "epoch_seconds_1m": round(t5 - t0, 2),
        # CPU seconds of the process and its worker (imports and engine included): on the shared machine this
        # moves far less with the other engineers' load than the wall-clock figures do
        "epoch_cpu_seconds_1m": round(cpu, 2),
        "epoch_sql_seconds_1m": round(t1 - t0, 2),
        "epoch_split_seconds_1m": round(t2 - t1, 2),
        "epoch_tree_seconds_1m": round(t3 - t2, 2),
        "epoch_proofs_seconds_1m": round(t4 - t3, 2),
        "epoch_file_seconds_1m": round(t5 - t4, 2),
        # the process's own peak; the reduction's worker (spawned, gone before the split) is not in it
        "epoch_peak_rss_mb_1m": round(self_rss, 1),
        "epoch_leaves_1m": float(len(pub.tree)),
        "epoch_mean_proof_len_1m": round(proof_nodes / len(pub.tree), 2),
    }


def hashes_per_second(n: int = 300_000) -> float:
    from cairn.core.merkle import hasher

    h = hasher()
    data = [i.to_bytes(64, "big") for i in range(n)]
    t = time.perf_counter()
    for d in data:
        h(d)
    return n / (time.perf_counter() - t)


def _measure_in_subprocess(target: str, out_dir: Path) -> dict[str, float]:
    code = (
        "import json, sys; from bench.epoch import measure; "
        f"print(json.dumps(measure({target!r}, {str(out_dir)!r})))"
    )
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"epoch measurement failed: {res.stderr.strip()[-2000:]}")
    figures: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return figures


def run() -> dict[str, float]:
    WORK.mkdir(parents=True, exist_ok=True)
    path = db_path()
    figures: dict[str, float] = {}
    if not path.exists():
        t = time.perf_counter()
        build_db(path)
        figures["epoch_db_build_seconds_1m"] = round(time.perf_counter() - t, 1)
        print(f"   built {path} in {figures['epoch_db_build_seconds_1m']} s", flush=True)
    from sqlalchemy import create_engine

    from backend.rewards.sqlsource import ensure_indexes

    ready = create_engine(f"sqlite:///{path}")
    ensure_indexes(ready)  # an older cached database gets today's indexes (not timed: the indexer's job)
    ready.dispose()
    out_dir = WORK / "epoch-out"
    figures.update(_measure_in_subprocess(str(path), out_dir))
    if os.environ.get("BENCH_EPOCH_POSTGRES", "0") == "1":
        t = time.perf_counter()
        if build_pg(path):
            print(f"   PostgreSQL copy ready in {time.perf_counter() - t:.1f} s", flush=True)
            pg = _measure_in_subprocess(pg_url(), out_dir)
            figures.update({k.replace("_1m", "_1m_pg"): v for k, v in pg.items() if k.startswith("epoch_")})
    figures["merkle_hashes_per_s"] = round(hashes_per_second())
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
