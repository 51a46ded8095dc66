"""content_hash is SHA-256 of the bytes (what sha256sum prints); the store refuses wrong or oversized data."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from cairn.core.content import (
    ContentMismatchError,
    ContentStore,
    ContentTooLargeError,
    content_hash,
    hash_file,
    parse_content_hash,
)
from cairn.core.errors import InvalidInputError


def test_content_hash_is_what_sha256sum_prints(tmp_path: Path) -> None:
    f = tmp_path / "corpus.txt"
    f.write_bytes(b"the quick brown fox\n" * 1000)
    out = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True, check=True).stdout
    printed = out.split()[0]
    digest, size = hash_file(f)
    assert digest.hex() == printed == content_hash(f.read_bytes()).hex()
    assert size == 20_000


def test_store_round_trip_and_refusals(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "content", max_bytes=10)
    data = b"0123456789"
    d = content_hash(data)
    store.put_chunks(d, [data[:4], data[4:]])
    assert store.has(d) and store.size(d) == 10
    assert b"".join(store.read_chunks(d)) == data
    with pytest.raises(ContentMismatchError, match="not to the content hash"):
        store.put_bytes(hashlib.sha256(b"x").digest(), b"y")
    with pytest.raises(ContentTooLargeError, match="limit of 10 bytes"):
        store.put_bytes(content_hash(b"01234567890"), b"01234567890")
    # Nothing partial is left behind.
    assert [p.name for p in (tmp_path / "content").rglob("*") if p.is_file()] == [d.hex()]


def test_parse_content_hash() -> None:
    h = "ab" * 32
    assert parse_content_hash("0x" + h) == parse_content_hash(h) == bytes.fromhex(h)
    with pytest.raises(InvalidInputError, match="64 hex digits"):
        parse_content_hash("0x1234")
