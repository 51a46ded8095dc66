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
        target = self.path(digest)
        if target.is_file():
            # Already here: still drain and check, so a caller cannot mistake a wrong upload for a success.
            h, size = hashlib.sha256(), 0
            for chunk in chunks:
                size = self._count(size, len(chunk))
                h.update(chunk)
            self._check(digest, h.digest())
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            h, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size = self._count(size, len(chunk))
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._check(digest, h.digest())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    async def put_async_chunks(self, digest: bytes, chunks: AsyncIterable[bytes]) -> Path:
        """`put_chunks` for an async body (a streamed HTTP upload); the file writes are small and local."""
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            h, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size = self._count(size, len(chunk))
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._check(digest, h.digest())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

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
