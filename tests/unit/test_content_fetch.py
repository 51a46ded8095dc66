"""`fetch_into`: https (a real local HTTPS server with a self-signed certificate made here by `openssl`) and
file URIs, the hash checked, sizes bounded, other schemes and downgrading redirects refused."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cairn.core.content import ContentMismatchError, ContentStore, ContentTooLargeError
from cairn.core.errors import InvalidInputError, NotFoundError
from cairn.core.fetch import ContentFetchError, fetch_into

CORPUS = b"Bees keep the hive at thirty-five degrees while the brood develops.\n" * 400


class Handler(BaseHTTPRequestHandler):
    """`/corpus.txt` (with Content-Length), `/nolength` (the same bytes, no length, then close),
    `/moved` (302 to /corpus.txt on the same origin), `/downgrade` (302 to an http:// URL)."""

    def do_GET(self) -> None:
        if self.path == "/corpus.txt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CORPUS)))
            self.end_headers()
            self.wfile.write(CORPUS)
        elif self.path == "/nolength":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(CORPUS)
            self.close_connection = True
        elif self.path in ("/moved", "/downgrade"):
            port = self.server.server_address[1]
            target = "/corpus.txt" if self.path == "/moved" else f"http://127.0.0.1:{port}/corpus.txt"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    url: str
    ca: ssl.SSLContext


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"https://127.0.0.1:{httpd.server_address[1]}", ssl.create_default_context(cafile=cert))
    finally:
        httpd.shutdown()
        httpd.server_close()


def _store(tmp_path: Path, max_bytes: int = 1 << 20) -> ContentStore:
    return ContentStore(tmp_path / "content", max_bytes=max_bytes)


def _leftovers(store: ContentStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()] if store.root.exists() else []


DIGEST = hashlib.sha256(CORPUS).digest()


def test_https_fetch_streams_into_the_store_hash_checked(https_server: Server, tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = fetch_into(store, DIGEST, f"{https_server.url}/corpus.txt", verify=https_server.ca)
    assert path == store.path(DIGEST) and path.read_bytes() == CORPUS
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == DIGEST.hex()
    # same-origin redirects are followed; a response without Content-Length is streamed to its end
    for route in ("/moved", "/nolength"):
        other = _store(tmp_path / route.strip("/"))
        assert (
            fetch_into(other, DIGEST, https_server.url + route, verify=https_server.ca).read_bytes() == CORPUS
        )
    # a blob the store holds is not fetched again (this URI would fail)
    assert fetch_into(store, DIGEST, "https://127.0.0.1:1/unreachable") == path


def test_wrong_bytes_are_refused_and_nothing_is_kept(https_server: Server, tmp_path: Path) -> None:
    store = _store(tmp_path)
    other = hashlib.sha256(b"something else").digest()
    with pytest.raises(ContentMismatchError, match=f"not to the content hash 0x{other.hex()}"):
        fetch_into(store, other, f"{https_server.url}/corpus.txt", verify=https_server.ca)
    assert not store.has(other) and _leftovers(store) == []


def test_size_limit_from_content_length_and_while_streaming(https_server: Server, tmp_path: Path) -> None:
    for route in ("/corpus.txt", "/nolength"):
        store = _store(tmp_path / route.strip("/"), max_bytes=len(CORPUS) - 1)
        with pytest.raises(ContentTooLargeError, match=f"(at most|limit of) {len(CORPUS) - 1}"):
            fetch_into(store, DIGEST, https_server.url + route, verify=https_server.ca)
        assert _leftovers(store) == []


def test_tls_is_verified_and_errors_are_specific(https_server: Server, tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(ContentFetchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        fetch_into(store, DIGEST, f"{https_server.url}/corpus.txt")  # system CAs: the self-signed one fails
    with pytest.raises(NotFoundError, match="answered 404"):
        fetch_into(store, DIGEST, f"{https_server.url}/missing", verify=https_server.ca)
    with pytest.raises(InvalidInputError, match="redirected to http://"):
        fetch_into(store, DIGEST, f"{https_server.url}/downgrade", verify=https_server.ca)
    assert _leftovers(store) == []


def test_file_uris_only_when_allowed(tmp_path: Path) -> None:
    f = tmp_path / "my corpus.txt"
    f.write_bytes(CORPUS)
    store = _store(tmp_path)
    uri = f.as_uri()  # file:///.../my%20corpus.txt
    with pytest.raises(InvalidInputError, match="scheme 'file' is not one of"):
        fetch_into(store, DIGEST, uri)
    assert fetch_into(store, DIGEST, uri, allow_file=True).read_bytes() == CORPUS
    with pytest.raises(NotFoundError, match="no file at"):
        fetch_into(_store(tmp_path / "b"), DIGEST, uri + ".gone", allow_file=True)
    with pytest.raises(InvalidInputError, match="names another host"):
        fetch_into(_store(tmp_path / "c"), DIGEST, "file://example.com/etc/passwd", allow_file=True)
    with pytest.raises(ContentTooLargeError):
        fetch_into(_store(tmp_path / "d", max_bytes=10), DIGEST, uri, allow_file=True)


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:1/x", "ipfs://bafy", "ar://tx", "ftp://host/x", "s3://b/k", "x"]
)
def test_other_schemes_are_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is not one of"):
        fetch_into(_store(tmp_path), DIGEST, uri)
