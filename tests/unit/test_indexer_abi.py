"""Pure log -> row decoding (golden values, cross-checked against eth_abi), table naming, migrations head."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak
from sqlalchemy import MetaData, Table, create_engine, select

from cairn.core.events import (
    BIGINT,
    TEXT,
    UINT256,
    build_spec,
    column_kind,
    decode_exploded,
    decode_log,
    snake_case,
    specs_from_abis,
)
from indexer.rpc import parse_suggested_range
from indexer.schema import event_metadata
from indexer.store import HEAD_REVISION, MIGRATIONS_DIR, Store, upgrade

OWNER = "0x" + "ab" * 20
HASH = "0x" + "cd" * 32


def _abi_event(name: str, inputs: list[tuple[str, str, bool]]) -> dict[str, object]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


DATASET = _abi_event(
    "DatasetRegistered",
    [("contentHash", "bytes32", True), ("owner", "address", True), ("size", "uint64", False),
     ("licenseId", "uint32", False), ("metadataHash", "bytes32", False), ("uri", "string", False)],
)  # fmt: skip
PAYMENT = _abi_event(
    "PaymentSettled",
    [("payer", "address", True), ("modelId", "bytes32", True), ("epoch", "uint64", True),
     ("amount", "uint256", False), ("fee", "uint256", False), ("requestHash", "bytes32", False),
     ("requestCount", "uint32", False)],
)  # fmt: skip
MANIFEST = _abi_event(
    "ModelManifestRegistered",
    [("modelId", "bytes32", True), ("version", "uint32", True), ("trainer", "address", True),
     ("datasetIds", "bytes32[]", False), ("weights", "uint32[]", False)],
)  # fmt: skip
SIGNED = _abi_event("Signed", [("delta", "int128", False), ("small", "int8", True), ("flag", "bool", False)])


def _word(v: int) -> str:
    return "0x" + v.to_bytes(32, "big").hex()


def _log(topics: list[str], data: bytes) -> dict[str, object]:
    return {
        "blockNumber": "0x1f", "logIndex": "0x3", "blockHash": HASH, "transactionHash": "0x" + "ee" * 32,
        "address": OWNER, "topics": topics, "data": "0x" + data.hex(),
    }  # fmt: skip


def test_names_and_kinds() -> None:
    assert snake_case("DatasetRegistered") == "dataset_registered"
    assert snake_case("contentHash") == "content_hash"
    assert snake_case("ERC20Transfer") == "erc20_transfer"
    assert snake_case("requestHash") == "request_hash"
    types = ("uint32", "uint64", "uint256", "int64", "int128", "address", "bytes")
    assert [column_kind(t) for t in types] == [BIGINT, UINT256, UINT256, BIGINT, UINT256, TEXT, TEXT]
    spec = build_spec(DATASET, uint_as_str=True)
    assert spec.table == "ev_dataset_registered"
    assert spec.signature == "DatasetRegistered(bytes32,address,uint64,uint32,bytes32,string)"
    assert spec.topic0 == "0x" + keccak(spec.signature.encode()).hex()
    assert spec.column_names[6:] == ["content_hash", "owner", "size", "license_id", "metadata_hash", "uri"]


@pytest.mark.parametrize("uint_as_str", [True, False])
def test_dynamic_event_golden(uint_as_str: bool) -> None:
    spec = build_spec(DATASET, uint_as_str=uint_as_str)
    data = encode(["uint64", "uint32", "bytes32", "string"], [2**64 - 1, 7, b"\x11" * 32, "ipfs://bafy/Ü"])
    row = decode_log(spec, _log([spec.topic0, HASH, "0x" + "00" * 12 + OWNER[2:]], data), 1700000000)
    size = str(2**64 - 1) if uint_as_str else 2**64 - 1
    assert row == (31, 3, HASH, "0x" + "ee" * 32, OWNER, 1700000000, HASH, OWNER, size, 7, "0x" + "11" * 32,
                   "ipfs://bafy/Ü")  # fmt: skip


def test_static_event_by_slicing_matches_eth_abi() -> None:
    spec = build_spec(PAYMENT, uint_as_str=False)
    amount, fee = 2**256 - 1, 12345
    data = encode(["uint256", "uint256", "bytes32", "uint32"], [amount, fee, b"\x22" * 32, 4000000000])
    topics = [spec.topic0, "0x" + "00" * 12 + OWNER[2:], HASH, _word(17)]
    row = decode_log(spec, _log(topics, data), 5)
    assert row[6:] == (OWNER, HASH, 17, amount, fee, "0x" + "22" * 32, 4000000000)
    assert build_spec(PAYMENT, uint_as_str=True).decode_args(topics, "0x" + data.hex())[3] == str(amount)


def test_arrays_signed_and_bool() -> None:
    spec = build_spec(MANIFEST, uint_as_str=True)
    data = encode(["bytes32[]", "uint32[]"], [[b"\x01" * 32, b"\x02" * 32], [3, 7]])
    row = decode_log(spec, _log([spec.topic0, HASH, _word(2), "0x" + "00" * 12 + OWNER[2:]], data), 0)
    assert row[6:9] == (HASH, 2, OWNER)
    assert json.loads(row[9]) == ["0x" + "01" * 32, "0x" + "02" * 32]
    assert json.loads(row[10]) == ["3", "7"]
    signed = build_spec(SIGNED, uint_as_str=True)
    data = encode(["int128", "bool"], [-5, True])
    row = decode_log(signed, _log([signed.topic0, _word(2**256 - 3)], data), 0)
    assert row[6:] == ("-5", -3, True)


def test_same_name_different_signature_get_distinct_tables() -> None:
    other = _abi_event("DatasetRegistered", [("contentHash", "bytes32", True)])
    specs = specs_from_abis([[DATASET], [other, DATASET]], uint_as_str=True)
    tables = sorted(s.table for s in specs.values())
    assert len(tables) == 2 and tables[0] == "ev_dataset_registered"
    assert re.fullmatch(r"ev_dataset_registered_[0-9a-f]{8}", tables[1])


def test_uint256_round_trip_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/u.db")
    specs = specs_from_abis([[PAYMENT]], uint_as_str=True)
    upgrade(engine, specs)  # the Alembic migrations + ABI-derived tables
    upgrade(engine, specs)  # idempotent
    spec = next(iter(specs.values()))
    data = encode(["uint256", "uint256", "bytes32", "uint32"], [2**256 - 1, 1, b"\x22" * 32, 9])
    row = decode_log(spec, _log([spec.topic0, "0x" + "00" * 12 + OWNER[2:], HASH, _word(3)], data), 0)
    store = Store(engine, specs)
    for _ in range(2):  # an upsert: the second commit changes nothing
        store.commit(chain_id=1, rows={spec.table: [row]}, blocks=[(31, HASH, HASH)], cursor=(31, HASH))
    table = Table(spec.table, MetaData(), autoload_with=engine)
    typed = event_metadata(specs).tables[spec.table]
    with engine.connect() as conn:
        assert conn.execute(select(table.c.block_number)).all() == [(31,)]
        (amount,) = conn.execute(select(typed.c.amount)).one()
    assert amount == 2**256 - 1 and isinstance(amount, int)


def test_transaction_commits_only_with_its_cursor(tmp_path: Path) -> None:
    """Rows written in several batches commit together with finish(); without it (or on an error) nothing."""
    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    specs = specs_from_abis([[PAYMENT]], uint_as_str=True)
    upgrade(engine, specs)
    spec = next(iter(specs.values()))
    data = encode(["uint256", "uint256", "bytes32", "uint32"], [5, 1, b"\x22" * 32, 9])
    topics = [spec.topic0, "0x" + "00" * 12 + OWNER[2:], HASH, _word(3)]
    row = decode_log(spec, _log(topics, data), 0)
    second = (row[0] + 1, *row[1:])
    store = Store(engine, specs)
    with pytest.raises(RuntimeError, match="without finish"), store.transaction() as tx:
        tx.write({spec.table: [row]})
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.write({spec.table: [row]})
        raise ValueError("a failed check before the commit")
    assert store.cursor() is None
    with store.transaction() as tx:
        tx.write({spec.table: [row]})
        tx.write({spec.table: [second]})
        tx.finish(chain_id=1, blocks=[(second[0], HASH, HASH)], cursor=(second[0], HASH))
    table = Table(spec.table, MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        assert conn.execute(select(table.c.block_number)).all() == [(row[0],), (second[0],)]
    cursor = store.cursor()
    assert cursor is not None and cursor.block_number == second[0]


def test_suggested_range_parsing() -> None:
    msg = "query returned more than 10000 results. Try with this block range [0x1E8480, 0x1E84FF]."
    assert parse_suggested_range(msg) == (0x1E8480, 0x1E84FF)
    assert parse_suggested_range("this block range should work: [0x10, 0x20]") == (16, 32)
    assert parse_suggested_range("query returned more than 10000 results") is None


def test_head_revision_constant_matches_migrations() -> None:
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        src = path.read_text()
        rev = re.search(r'^revision = "(\w+)"', src, re.M)
        down = re.search(r"^down_revision = (None|\"\w+\")", src, re.M)
        if rev and down:
            revisions[rev.group(1)] = None if down.group(1) == "None" else down.group(1).strip('"')
    heads = set(revisions) - {d for d in revisions.values() if d}
    assert heads == {HEAD_REVISION}


BATCH = _abi_event(
    "DatasetBatchRegistered",
    [("owner", "address", True), ("licenseId", "uint32", False), ("metadataHash", "bytes32", False),
     ("uri", "string", False), ("contentHashes", "bytes32[]", False), ("sizes", "uint64[]", False)],
)  # fmt: skip


@pytest.mark.parametrize("uint_as_str", [True, False])
def test_batch_event_is_stored_one_row_per_item(uint_as_str: bool) -> None:
    spec = build_spec(BATCH, uint_as_str=uint_as_str)
    assert spec.table == "ev_dataset_batch_registered"
    assert spec.key_columns == ["block_number", "log_index", "item_index"]
    assert spec.column_names[6:] == [
        "item_index", "owner", "license_id", "metadata_hash", "uri", "content_hash", "size",
    ]  # fmt: skip
    # the exploded columns hold one element each: the element's kind, not JSON text
    kinds = {c.name: c.kind for c in spec.columns}
    assert kinds["content_hash"] == TEXT and kinds["size"] == UINT256
    table = event_metadata({spec.topic0: spec}).tables[spec.table]
    assert [c.name for c in table.primary_key.columns] == spec.key_columns
    hashes = [keccak(bytes([i])) for i in range(3)]
    data = encode(
        ["uint32", "bytes32", "string", "bytes32[]", "uint64[]"],
        [7, b"\x11" * 32, "ipfs://dir", hashes, [10, 2**40, 0]],
    )
    lg = _log([spec.topic0, "0x" + "00" * 12 + OWNER[2:]], data)
    rows = decode_exploded(spec, lg, 1234)
    size = str if uint_as_str else int
    assert rows == [
        (31, 3, HASH, "0x" + "ee" * 32, OWNER, 1234, k, OWNER, 7, "0x" + "11" * 32, "ipfs://dir",
         "0x" + hashes[k].hex(), size(s))
        for k, s in enumerate([10, 2**40, 0])
    ]  # fmt: skip


def test_batch_event_with_unequal_arrays_is_refused() -> None:
    spec = build_spec(BATCH, uint_as_str=True)
    types = ["uint32", "bytes32", "string", "bytes32[]", "uint64[]"]
    data = encode(types, [1, b"\0" * 32, "", [b"\1" * 32], []])
    with pytest.raises(ValueError, match="unequal arrays"):
        decode_exploded(spec, _log([spec.topic0, "0x" + "00" * 12 + OWNER[2:]], data), 0)
