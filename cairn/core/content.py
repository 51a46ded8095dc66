"""Dataset content, addressed by its hash: the one definition of `content_hash` and the file-system store.

`content_hash` is the SHA-256 of a file's bytes: what `sha256sum`, a browser's Web Crypto / `@noble/hashes`,
Git LFS oids and Hugging Face file ids give, so a contributor can register a hosted file without downloading
it. The CLI, the API, the store, the trainer and the web app all use this module (docs/ARCHITECTURE.md).

The store keeps each blob at `<root>/sha256/<h[0:2]>/<h[2:4]>/<h>`; a blob is written to a temporary file in
the same directory, hashed while it streams in, and renamed into place only when its hash is the expected one,
so a crash or a wrong upload never leaves a partial or mislabelled blob behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cairn.core.errors import CairnError, InvalidInputError

CHUNK = 1 << 20
"""Read and write granularity (1 MiB)."""


def content_hash(data: bytes) -> bytes:
    """SHA-256 of `data` (32 bytes)."""
    return hashlib.sha256(data).digest()


def hash_stream(stream: BinaryIO) -> tuple[bytes, int]:
    """SHA-256 and byte count of a binary stream, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.digest(), size


def hash_file(path: Path) -> tuple[bytes, int]:
    """SHA-256 and size of a file, streamed (what `sha256sum FILE` prints, as bytes)."""
    with path.open("rb") as f:
        return hash_stream(f)


def parse_content_hash(value: str | bytes) -> bytes:
    """A content hash from `0x`-prefixed or bare hex (or 32 raw bytes); InvalidInputError otherwise."""
    if isinstance(value, bytes):
        if len(value) != 32:
            raise InvalidInputError(f"content hash must be 32 bytes, got {len(value)}")
        return value
    text = value[2:] if value[:2].lower() == "0x" else value
    if len(text) != 64:
        raise InvalidInputError(f"content hash must be 64 hex digits (SHA-256), got {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidInputError(f"content hash is not hex: {value!r}") from None


class ContentTooLargeError(InvalidInputError):
    """The bytes exceed the store's size limit (or the size the upload declared): HTTP 413."""

    code = "content_too_large"
    http_status = 413


class ContentMismatchError(InvalidInputError):
    """The bytes do not hash to the content hash they were offered as."""

    code = "content_mismatch"


class ContentIncompleteError(InvalidInputError):
    """The upload ended before its body did (the client went away): HTTP 400, nothing kept."""

    code = "content_incomplete"
    http_status = 400


class ContentNotRegisteredError(CairnError):
    """An upload for a content hash that no dataset registration (mined, or being relayed) names: HTTP 403,
    nothing is read or stored (so nobody can fill the store with bytes no registration paid for)."""

    code = "content_not_registered"
    http_status = 403
    exit_code = 4


class ContentStore:
    """Content-addressed blobs on the local file system."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, digest: bytes) -> Path:
        """Where the blob of `digest` lives (whether or not it is there)."""
        h = digest.hex()
        return self.root / "sha256" / h[0:2] / h[2:4] / h

    def has(self, digest: bytes) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: bytes) -> int | None:
        p = self.path(digest)
        return p.stat().st_size if p.is_file() else None

    def read_chunks(self, digest: bytes) -> Iterator[bytes]:
        """The blob's bytes in 1 MiB chunks; FileNotFoundError when it is not stored."""
        with self.path(digest).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def put_bytes(self, digest: bytes, data: bytes) -> Path:
        return self.put_chunks(digest, [data])

    def put_file(self, digest: bytes, path: Path) -> Path:
        with path.open("rb") as f:
            return self.put_chunks(digest, iter(lambda: f.read(CHUNK), b""))

    def put_chunks(self, digest: bytes, chunks: Iterable[bytes]) -> Path:
        """Store `chunks` as the blob of `digest`, refusing bytes that are too many or hash otherwise."""
        with _BlobWriter(self, digest) as blob:
            for chunk in chunks:
                blob.write(chunk)
            return blob.commit()

    async def put_async_chunks(self, digest: bytes, chunks: AsyncIterable[bytes]) -> Path:
        """`put_chunks` for an async body (a streamed HTTP upload); the file writes are small and local."""
        with _BlobWriter(self, digest) as blob:
            async for chunk in chunks:
                blob.write(chunk)
            return blob.commit()

    def _count(self, size: int, more: int) -> int:
        size += more
        if size > self.max_bytes:
            raise ContentTooLargeError(f"content exceeds the store's limit of {self.max_bytes} bytes")
        return size

    @staticmethod
    def _check(expected: bytes, actual: bytes) -> None:
        if actual != expected:
            raise ContentMismatchError(
                f"the bytes hash to 0x{actual.hex()}, not to the content hash 0x{expected.hex()}"
            )


class _BlobWriter:
    """One upload into the store: a temporary file beside the target, hashed and counted as it is written,
    renamed into place by `commit` only when the hash is the expected one; removed on any failure."""

    def __init__(self, store: ContentStore, digest: bytes) -> None:
        self.store, self.digest = store, digest
        self.target = store.path(digest)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.target.parent, prefix=".upload-")
        self.out = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def __enter__(self) -> _BlobWriter:
        return self

    def write(self, chunk: bytes) -> None:
        self.size = self.store._count(self.size, len(chunk))
        self.hash.update(chunk)
        self.out.write(chunk)

    def commit(self) -> Path:
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        self.store._check(self.digest, self.hash.digest())
        os.replace(self.tmp, self.target)
        return self.target

    def __exit__(self, *exc: object) -> None:
        self.out.close()
        Path(self.tmp).unlink(missing_ok=True)  # after commit: already renamed away
