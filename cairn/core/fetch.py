"""Fetching a dataset's bytes from its URI into the content store, hash checked: `fetch_into(store, digest,
uri)`.

Schemes: `https://` (httpx, streamed, redirects followed only to https), and `file://` when the caller allows
it (`allow_file=True`: the operator's own files, e.g. `cairn data add --uri file:///...`; never for a URI
someone else registered, which could name a local file whose hash they know). Plain `http://` only with
`allow_insecure_http=True` (local tests and loopback stacks). Anything else is refused.

The bytes stream through `ContentStore.put_chunks`, which hashes them on the way and keeps them only if they
hash to `digest`; a blob the store already holds is not fetched again.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from cairn.core.content import CHUNK, ContentStore, ContentTooLargeError
from cairn.core.errors import InvalidInputError, NotFoundError, UnavailableError

DEFAULT_TIMEOUT_S = 30.0
MAX_REDIRECTS = 5


class ContentFetchError(UnavailableError):
    """The URI's server did not answer, or answered with an error status."""

    code = "content_fetch_failed"


def _schemes(*, allow_file: bool, allow_insecure_http: bool) -> set[str]:
    return {"https"} | ({"file"} if allow_file else set()) | ({"http"} if allow_insecure_http else set())


def fetch_into(
    store: ContentStore,
    digest: bytes,
    uri: str,
    *,
    allow_file: bool = False,
    allow_insecure_http: bool = False,
    verify: ssl.SSLContext | str | bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Store the bytes at `uri` as the blob of `digest` and return its path.

    Raises InvalidInputError (scheme not allowed), ContentTooLargeError (over the store's limit, from
    Content-Length or while streaming), ContentMismatchError (the bytes hash otherwise: nothing is kept),
    NotFoundError (no such file, HTTP 404/410) or ContentFetchError (the server failed or did not answer).
    `verify` is httpx's: True (the system's CAs), a CA bundle path or an `ssl.SSLContext`."""
    if store.has(digest):
        return store.path(digest)
    scheme = urlsplit(uri).scheme.lower()
    allowed = _schemes(allow_file=allow_file, allow_insecure_http=allow_insecure_http)
    if scheme not in allowed:
        hint = " (file:// only for your own files, http:// only with allow_insecure_http)"
        raise InvalidInputError(
            f"cannot fetch {uri!r}: scheme {scheme or 'none'!r} is not one of {sorted(allowed)}{hint}",
            field="uri",
        )
    if scheme == "file":
        return _fetch_file(store, digest, uri)
    return _fetch_http(store, digest, uri, allowed=allowed, verify=verify, timeout=timeout)


def _fetch_file(store: ContentStore, digest: bytes, uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInputError(f"file URI {uri!r} names another host ({parts.netloc})", field="uri")
    path = Path(url2pathname(unquote(parts.path)))
    if not path.is_absolute():
        raise InvalidInputError(f"file URI {uri!r} must be absolute (file:///...)", field="uri")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NotFoundError(f"no file at {uri}") from None
    if size > store.max_bytes:
        raise ContentTooLargeError(
            f"{uri} has {size} bytes; the content store takes at most {store.max_bytes}"
        )
    return store.put_file(digest, path)


def _fetch_http(
    store: ContentStore,
    digest: bytes,
    uri: str,
    *,
    allowed: set[str],
    verify: ssl.SSLContext | str | bool,
    timeout: float,
) -> Path:
    def refuse_downgrade(request: httpx.Request) -> None:  # every hop, redirects included
        if request.url.scheme not in allowed:
            raise InvalidInputError(
                f"{uri} redirected to {request.url}, whose scheme is not allowed", field="uri"
            )

    try:
        with (
            httpx.Client(
                verify=verify, timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                event_hooks={"request": [refuse_downgrade]},
            ) as client,
            client.stream("GET", uri) as resp,
        ):  # fmt: skip
            if resp.status_code in (404, 410):
                raise NotFoundError(f"GET {uri} answered {resp.status_code}")
            if resp.status_code != 200:
                raise ContentFetchError(f"GET {uri} answered {resp.status_code}")
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > store.max_bytes:
                raise ContentTooLargeError(
                    f"{uri} has {declared} bytes; the content store takes at most {store.max_bytes}"
                )
            return store.put_chunks(digest, resp.iter_bytes(CHUNK))
    except httpx.HTTPError as exc:
        raise ContentFetchError(f"GET {uri} failed: {type(exc).__name__}: {exc}") from None
