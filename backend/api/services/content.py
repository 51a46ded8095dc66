"""Dataset content in the API: who may upload which bytes (`admit`), the streamed upload (`receive`) and the
download's headers. The blobs live in the one `cairn.core.content.ContentStore` (`Settings.content_dir`).

An upload is admitted only for a content hash that a dataset registration names, so that nobody can fill
the store with bytes no registration paid for (contracts/SECURITY.md "Content store"):
1. a dataset in the indexer's mirror (`v_datasets`: single and batch registrations); its registered size
   bounds the upload;
2. a relayed registration the relayer holds (`relay_record`, commit sent or mined, reveal pending or mined;
   not one whose transaction reverted); the size signed in it bounds the upload;
3. a dataset registered on chain that the mirror has not caught up with (`contributionOf`, kind dataset).
The bytes must then hash to the path's hash: the store writes them to a temporary file while hashing and
renames it into place only when the hash is the expected one.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from backend.api.chain import Chain
from backend.api.mirror import as_int, rows, table_exists
from backend.api.relay import Relayer, records
from cairn.core.content import (
    ContentIncompleteError,
    ContentNotRegisteredError,
    ContentStore,
    ContentTooLargeError,
)
from cairn.core.errors import InvalidInputError

DATASETS = "v_datasets"
KIND_DATASET = 1  # IContributionRegistry.Kind.Dataset
REFUSED_RELAY = ("reverted",)


@dataclass(frozen=True)
class Admission:
    """Why an upload for `digest` is allowed and how many bytes it may have."""

    digest: bytes
    source: str  # "registered" (mirror), "relayed" (relay record), "on_chain" (registry state)
    size: int | None  # the size the registration declares, when known

    def limit(self, store: ContentStore) -> int:
        return store.max_bytes if self.size is None else min(self.size, store.max_bytes)


def _hex(digest: bytes) -> str:
    return "0x" + digest.hex()


def _mirrored_size(session: Session, digest: bytes) -> int | None:
    if not table_exists(session, DATASETS):
        return None
    found = rows(session, f"SELECT size FROM {DATASETS} WHERE content_hash = :h LIMIT 1", {"h": _hex(digest)})
    return as_int(found[0]["size"]) if found else None


def _relayed_size(relayer: Relayer, chain: Chain, digest: bytes) -> int | bool | None:
    """The size signed in a live relayed registration of `digest` (None if it cannot be read), or False
    when the relayer holds none (or only reverted ones)."""
    for record in records.by_content_hash(relayer.engine, _hex(digest)):
        status = relayer.status(str(record["relay_id"]))
        if status is None or status["status"] in REFUSED_RELAY:
            continue
        try:  # registerDatasetFor(DatasetInput, owner, salt, deadline, signature): the struct comes first
            _, args = chain.contract("ContributionRegistry").decode_function_input(str(record["reveal_data"]))
            return int(next(iter(args.values()))["size"])
        except (KeyError, IndexError, TypeError, ValueError, StopIteration):
            return None
    return False


def admit(session: Session, *, relayer: Relayer, chain: Chain, digest: bytes) -> Admission:
    """The reason an upload for `digest` is allowed; ContentNotRegisteredError (403) when there is none."""
    size = _mirrored_size(session, digest)
    if size is not None:
        return Admission(digest, "registered", size)
    relayed = _relayed_size(relayer, chain, digest)
    if relayed is not False:
        return Admission(digest, "relayed", relayed if isinstance(relayed, int) else None)
    state = chain.contract("ContributionRegistry").functions.contributionOf(digest).call()
    if int(state[1]) == KIND_DATASET:
        return Admission(digest, "on_chain", None)
    raise ContentNotRegisteredError(
        f"no dataset registration names content hash {_hex(digest)} (none in the mirror, none being relayed, "
        "none on chain): register it first (POST /v1/datasets), then upload",
        content_hash=_hex(digest),
    )


def check_declared(admission: Admission, store: ContentStore, content_length: str | None) -> int | None:
    """Refuse an upload whose Content-Length is over its limit (the registered size, the store's limit)
    before any byte is read. Returns the declared length (None: not declared, e.g. chunked)."""
    if content_length is None:
        return None
    try:
        declared = int(content_length)
    except ValueError:
        raise InvalidInputError(f"Content-Length is not a number: {content_length!r}") from None
    limit = admission.limit(store)
    if declared > limit:
        raise ContentTooLargeError(_too_large(admission, store, declared), limit=limit)
    return declared


def _too_large(admission: Admission, store: ContentStore, got: int | None) -> str:
    what = f"{got} bytes" if got is not None else "more bytes"
    if admission.size is not None and admission.size < store.max_bytes:
        return f"the upload has {what} than the {admission.size} bytes its registration declares"
    return f"the upload has {what}; the content store takes at most {store.max_bytes} bytes"


async def _bounded(
    chunks: AsyncIterable[bytes], admission: Admission, store: ContentStore
) -> AsyncIterator[bytes]:
    """The body's chunks, refused (413) as soon as they exceed the limit; a vanished client is a 400."""
    limit, seen = admission.limit(store), 0
    try:
        async for chunk in chunks:
            seen += len(chunk)
            if seen > limit:
                raise ContentTooLargeError(_too_large(admission, store, None), limit=limit)
            yield chunk
    except ClientDisconnect:
        raise ContentIncompleteError("the client disconnected before the upload was complete") from None


async def receive(store: ContentStore, admission: Admission, chunks: AsyncIterable[bytes]) -> dict[str, Any]:
    """Stream the body into the store (hashed as it arrives, renamed into place only if it matches)."""
    created = not store.has(admission.digest)
    path = await store.put_async_chunks(admission.digest, _bounded(chunks, admission, store))
    size = path.stat().st_size
    return {
        "content_hash": _hex(admission.digest),
        "size": size,
        "created": created,
        "admitted_by": admission.source,
        "url": f"/v1/content/{_hex(admission.digest)}",
    }


def etag(digest: bytes) -> str:
    """The strong entity tag of a blob: its content hash (quoted, RFC 9110 8.8.3)."""
    return f'"{_hex(digest)}"'


def not_modified(digest: bytes, if_none_match: str | None) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag(digest) in tags


def blob_headers(digest: bytes, size: int) -> dict[str, str]:
    return {
        "ETag": etag(digest),
        "Content-Length": str(size),
        "Cache-Control": "public, max-age=31536000, immutable",  # the bytes of a hash never change
        "X-Content-SHA256": digest.hex(),
    }
