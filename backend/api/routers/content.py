"""Dataset content by its hash: streamed upload (`PUT`/`POST`) of registered content, streamed download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api import schemas
from backend.api.chain import Chain
from backend.api.deps import ChainDep, ContentStoreDep, EngineDep, RelayerDep
from backend.api.relay import Relayer
from backend.api.schemas import problem_responses
from backend.api.services import content
from cairn.core.content import ContentStore, parse_content_hash
from cairn.core.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["content"])
PATH = "/content/{content_hash}"
OCTETS = "application/octet-stream"
_HASH_DOC = "SHA-256 of the bytes (what `sha256sum` prints), 0x-prefixed or bare hex"
_BLOB_HEADERS = {
    "ETag": {"description": "The content hash, quoted", "schema": {"type": "string"}},
    "Content-Length": {"description": "Size in bytes", "schema": {"type": "integer"}},
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, streamed (Content-Length or chunked)",
        "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.ContentStored, "description": "Already stored: the bytes were checked again"},
    201: {"model": schemas.ContentStored, "description": "Stored"},
    **problem_responses(
        400,
        403,
        413,
        422,
        503,
        descriptions={
            400: "Bad Request: the client went away before the upload was complete",
            403: "Forbidden: no dataset registration (mirrored, relayed or on chain) names this content "
            "hash; nothing was read",
            422: "Unprocessable Content: the bytes do not hash to the path's content hash (nothing stored), "
            "or the hash or Content-Length is malformed",
        },
    ),
}
_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The bytes, streamed",
        "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
        "headers": _BLOB_HEADERS,
    },
    304: {"description": "Not Modified: If-None-Match named this content hash", "headers": _BLOB_HEADERS},
    **problem_responses(404, 422, descriptions={404: "Not Found: the store does not hold this content"}),
}


def _digest(content_hash: str) -> bytes:
    try:
        return parse_content_hash(content_hash)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message, field="content_hash") from None


def _admit(engine: Engine, relayer: Relayer, chain: Chain, digest: bytes) -> content.Admission:
    with Session(engine) as session:  # short: the session is not held while the body streams in
        return content.admit(session, relayer=relayer, chain=chain, digest=digest)


async def _upload(
    content_hash: str,
    request: Request,
    store: ContentStore,
    engine: Engine,
    relayer: Relayer,
    chain: Chain,
) -> JSONResponse:
    digest = _digest(content_hash)
    # The gate, then the declared length, both before a single byte of the body is read.
    admission = await run_in_threadpool(_admit, engine, relayer, chain, digest)
    content.check_declared(admission, store, request.headers.get("content-length"))
    stored = await content.receive(store, admission, request.stream())
    return JSONResponse(
        stored,
        status_code=201 if stored["created"] else 200,
        headers={"ETag": content.etag(digest), "Location": stored["url"]},
    )


_UPLOAD_DOC = """Upload a dataset's bytes, streamed, to the content store.

Accepted only when a dataset registration names the content hash (in the mirror, being relayed by this
server, or on chain) and the bytes hash to it (SHA-256); the registered size (or the store's limit,
`CAIRN_CONTENT_MAX_BYTES`) bounds the body, checked from Content-Length before reading and again while
streaming. Refused uploads store nothing."""


@router.put(
    PATH, operation_id="put_content", status_code=201, response_model=schemas.ContentStored,
    responses=_UPLOAD_RESPONSES, openapi_extra=_UPLOAD_BODY, description=_UPLOAD_DOC,
)  # fmt: skip
async def put_content(
    content_hash: str,
    request: Request,
    store: ContentStoreDep,
    engine: EngineDep,
    relayer: RelayerDep,
    chain: ChainDep,
) -> JSONResponse:
    return await _upload(content_hash, request, store, engine, relayer, chain)


@router.post(
    PATH, operation_id="post_content", status_code=201, response_model=schemas.ContentStored,
    responses=_UPLOAD_RESPONSES, openapi_extra=_UPLOAD_BODY, description=_UPLOAD_DOC,
)  # fmt: skip
async def post_content(
    content_hash: str,
    request: Request,
    store: ContentStoreDep,
    engine: EngineDep,
    relayer: RelayerDep,
    chain: ChainDep,
) -> JSONResponse:
    return await _upload(content_hash, request, store, engine, relayer, chain)


def _stored_size(store: ContentStore, digest: bytes) -> int:
    size = store.size(digest)
    if size is None:
        raise NotFoundError(f"the content store holds no content with hash 0x{digest.hex()}")
    return size


@router.get(PATH, operation_id="get_content", response_class=StreamingResponse, responses=_DOWNLOAD_RESPONSES)
def get_content(content_hash: str, store: ContentStoreDep, request: Request) -> Response:
    """Download a dataset's bytes, streamed (`application/octet-stream`; ETag = the content hash)."""
    digest = _digest(content_hash)
    size = _stored_size(store, digest)
    headers = content.blob_headers(digest, size)
    if content.not_modified(digest, request.headers.get("if-none-match")):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Length"})
    return StreamingResponse(store.read_chunks(digest), media_type=OCTETS, headers=headers)


@router.head(
    PATH,
    operation_id="head_content",
    responses={
        200: {"description": "The content is stored (size and ETag, no body)", "headers": _BLOB_HEADERS},
        404: {"description": "Not Found: the store does not hold this content"},
        422: {"description": "Unprocessable Content: the content hash is malformed"},
    },
)
def head_content(content_hash: str, store: ContentStoreDep) -> Response:
    """Whether the store holds this content: its size and ETag, no body."""
    digest = _digest(content_hash)
    size = _stored_size(store, digest)
    return Response(status_code=200, headers=content.blob_headers(digest, size), media_type=OCTETS)
