"""The content store through the API on the real stack (anvil, contracts, relayer, SQLite mirror): uploads are
admitted only for registered or relayed content hashes and only with the right bytes within the size limit;
downloads stream the bytes back (`sha256sum` of the download is the hash); `cairn data add` end to end
against a real API process (uvicorn), read back after indexing."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from support.api_stack import Stack, assert_problem, h32, signed_body

from backend.api.app import create_app
from cairn.cli.devchain import free_port
from cairn.core import eip712
from cairn.core.content import ContentStore
from cairn.core.registration import dataset_batch_calls, dataset_calls
from cairn.core.settings import REPO_ROOT

OCTETS = {"Content-Type": "application/octet-stream"}


def _blob(label: str, n: int = 3000) -> tuple[bytes, str]:
    data = (f"{label}: the hive hums at dusk while foragers return with pollen.\n" * (n // 60 + 1)).encode()[
        :n
    ]
    return data, "0x" + hashlib.sha256(data).hexdigest()


def _store(s: Stack) -> ContentStore:
    return ContentStore(s.settings.content_dir, max_bytes=s.settings.content_max_bytes)


def _stored_files(s: Stack) -> list[Path]:
    root = s.settings.content_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _register_directly(s: Stack, owner: Account, digest: str, size: int) -> None:
    registry = s.contract("ContributionRegistry")
    for step in dataset_calls(registry, owner.address, digest, size, 1, h32("meta"), "https://example.org/x"):
        s.transact(owner, step)


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_upload_refused_for_an_unregistered_hash(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    data, digest = _blob("nobody registered this")
    before = _stored_files(s)
    body = assert_problem(
        s.api.put(f"/v1/content/{digest}", content=data, headers=OCTETS),
        403, "content_not_registered", f"no dataset registration names content hash {digest}",
    )  # fmt: skip
    assert body["content_hash"] == digest
    assert_problem(s.api.post(f"/v1/content/{digest}", content=data), 403, "content_not_registered")
    assert _stored_files(s) == before  # nothing written, not even a temporary file
    assert_problem(s.api.get(f"/v1/content/{digest}"), 404, "not_found", "holds no content with hash")
    assert s.api.head(f"/v1/content/{digest}").status_code == 404
    assert_problem(s.api.get("/v1/content/0x1234"), 422, "invalid_input", "64 hex digits")
    assert_problem(s.api.put("/v1/content/nothex" + "0" * 58, content=b"x"), 422, "invalid_input", "not hex")


def test_relayed_hash_upload_wrong_bytes_too_large_then_round_trip(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    s = sqlite_stack
    owner = Account.create()
    data, digest = _blob("relayed corpus")
    relayed = s.api.post(
        "/v1/datasets", json=signed_body(s, owner, "content-relayed", content_hash=digest, size=len(data))
    )
    assert relayed.status_code == 202, relayed.text
    before = _stored_files(s)

    wrong = bytes(reversed(data))  # same length, other bytes
    body = assert_problem(
        s.api.put(f"/v1/content/{digest}", content=wrong, headers=OCTETS), 422, "content_mismatch",
        "0x" + hashlib.sha256(wrong).hexdigest(), f"not to the content hash {digest}",
    )  # fmt: skip
    assert body["status"] == 422
    # more bytes than the signed registration declares: refused from Content-Length, and while streaming
    assert_problem(
        s.api.put(f"/v1/content/{digest}", content=data + b"!", headers=OCTETS), 413, "content_too_large",
        f"than the {len(data)} bytes its registration declares",
    )  # fmt: skip
    assert_problem(
        s.api.put(f"/v1/content/{digest}", content=_chunks(data + b"!" * 5000)), 413, "content_too_large"
    )
    assert _stored_files(s) == before

    up = s.api.put(f"/v1/content/{digest}", content=_chunks(data), headers=OCTETS)  # chunked, no length
    assert up.status_code == 201, up.text
    assert up.json() == {
        "content_hash": digest, "size": len(data), "created": True, "admitted_by": "relayed",
        "url": f"/v1/content/{digest}",
    }  # fmt: skip
    assert up.headers["etag"] == f'"{digest}"' and up.headers["location"] == f"/v1/content/{digest}"
    again = s.api.post(f"/v1/content/{digest}", content=data, headers=OCTETS)
    assert again.status_code == 200 and again.json()["created"] is False

    got = s.api.get(f"/v1/content/{digest}")
    assert got.status_code == 200 and got.headers["content-type"] == "application/octet-stream"
    assert got.headers["etag"] == f'"{digest}"' and int(got.headers["content-length"]) == len(data)
    downloaded = tmp_path / "downloaded"
    downloaded.write_bytes(got.content)
    printed = subprocess.run(
        ["sha256sum", str(downloaded)], capture_output=True, text=True, check=True
    ).stdout
    assert "0x" + printed.split()[0] == digest and got.content == data
    head = s.api.head(f"/v1/content/{digest}")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == f'"{digest}"'
    assert int(head.headers["content-length"]) == len(data)
    cached = s.api.get(f"/v1/content/{digest[2:]}", headers={"If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304 and cached.content == b""
    assert _store(s).path(bytes.fromhex(digest[2:])).read_bytes() == data  # the store the trainer reads


def test_registered_on_chain_single_and_batch_admitted(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    funded = s.owners[1]  # owns gas on the local chain; registers directly, not through the relayer
    data_a, digest_a = _blob("direct a", 2000)
    _register_directly(s, funded, digest_a, len(data_a))
    # mined, not mirrored yet: admitted from the registry's state
    up = s.api.put(f"/v1/content/{digest_a}", content=data_a)
    assert up.status_code == 201 and up.json()["admitted_by"] == "on_chain", up.text

    blobs = [_blob(f"batch item {i}", 1500 + i) for i in range(3)]
    batch = eip712.DatasetBatch(
        content_hashes=tuple(d for _, d in blobs), sizes=tuple(len(b) for b, _ in blobs),
        license_id=2, metadata_hash=h32("content-batch"), uri="https://example.org/batch",
    )  # fmt: skip
    for step in dataset_batch_calls(s.contract("ContributionRegistry"), funded.address, batch.as_tuple()):
        s.transact(funded, step)
    s.index()
    data, digest = blobs[1]
    assert_problem(  # the mirror's per-item size bounds the upload
        s.api.put(f"/v1/content/{digest}", content=data + b"x"), 413, "content_too_large",
        f"than the {len(data)} bytes its registration declares",
    )  # fmt: skip
    up = s.api.put(f"/v1/content/{digest}", content=data)
    assert up.status_code == 201 and up.json()["admitted_by"] == "registered", up.text
    assert s.api.get(f"/v1/content/{digest}").content == data


def test_store_limit_from_content_length_and_while_streaming(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    data, digest = _blob("over the store's limit", 4000)
    _register_directly(s, s.owners[0], digest, len(data))
    small = s.settings.model_copy(update={"content_max_bytes": 1000})
    with TestClient(create_app(small)) as api:
        assert_problem(
            api.put(f"/v1/content/{digest}", content=data), 413, "content_too_large",
            "4000 bytes; the content store takes at most 1000 bytes",
        )  # fmt: skip
        assert_problem(
            api.put(f"/v1/content/{digest}", content=_chunks(data)), 413, "content_too_large", "1000"
        )
    assert not _store(s).has(bytes.fromhex(digest[2:]))


@pytest.fixture(scope="module")
def api_process(sqlite_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cairn api` (uvicorn) on the stack's chain, database and data directory."""
    s = sqlite_stack
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.out"
    env = dict(
        os.environ, CAIRN_RPC_URLS=s.anvil.url, CAIRN_DATABASE_URL=s.settings.database_url,
        CAIRN_DEPLOYMENT_FILE=str(s.settings.deployment_file), CAIRN_DATA_DIR=str(s.settings.data_dir),
        CAIRN_CONFIRMATIONS="0",
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", "api", "--port", str(port)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cairn(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("CAIRN_OWNER_KEY", None)
    if key is not None:
        env["CAIRN_TEST_OWNER"] = key
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", "data", "add", *args, "--key-env", "CAIRN_TEST_OWNER"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=180,
    )  # fmt: skip


def test_cairn_data_add_end_to_end(sqlite_stack: Stack, api_process: str, tmp_path: Path) -> None:
    s = sqlite_stack
    owner = Account.create()
    corpus = tmp_path / "sailing.txt"
    corpus.write_text("Reef the mainsail before the squall, not during it.\n" * 200)
    digest = "0x" + hashlib.sha256(corpus.read_bytes()).hexdigest()
    done = _cairn(str(corpus), "--api", api_process, "--license", "3", key=owner.key.hex())
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dataset {digest} ({corpus.stat().st_size} bytes) registered: relayed" in done.stdout
    assert "content uploaded" in done.stdout

    s.index()
    d = s.api.get(f"/v1/datasets/{digest}").json()
    assert d["owner"] == owner.address and d["size"] == corpus.stat().st_size and d["license_id"] == 3
    assert d["uri"] == f"{api_process}/v1/content/{digest}"
    with urllib.request.urlopen(d["uri"], timeout=10) as resp:  # the registered URI serves the bytes
        assert resp.read() == corpus.read_bytes() and resp.headers["ETag"] == f'"{digest}"'

    # a second run by the same owner: already registered, the upload is checked again; exit 0
    again = _cairn(str(corpus), "--api", api_process, key=owner.key.hex())
    assert again.returncode == 0 and "already registered by this owner" in again.stdout, again.stderr
    # someone else: one line, exit 5 (conflict)
    other = _cairn(str(corpus), "--api", api_process, key=Account.create().key.hex())
    assert (
        other.returncode == 5 and "already registered" in other.stderr and len(other.stderr.splitlines()) == 1
    )

    # a hosted file, registered by its SHA-256 without downloading it (no upload)
    hosted = "0x" + hashlib.sha256(b"a Hugging Face file").hexdigest()
    uri = "https://huggingface.co/datasets/org/set/resolve/main/train.txt"
    reg = _cairn("--uri", uri, "--hash", hosted, "--size", "19", "--api", api_process, key=owner.key.hex())
    assert reg.returncode == 0 and "content not uploaded" in reg.stdout, reg.stdout + reg.stderr
    s.index()
    h = s.api.get(f"/v1/datasets/{hosted}").json()
    assert h["uri"] == uri and h["size"] == 19 and h["owner"] == owner.address
    assert s.api.head(f"/v1/content/{hosted}").status_code == 404

    # one-line errors with exit codes
    nokey = _cairn(str(corpus), "--api", api_process)
    assert nokey.returncode == 2 and "CAIRN_TEST_OWNER is not set" in nokey.stderr
    bad = _cairn(str(corpus), "--api", api_process, "--hash", hosted, key=owner.key.hex())
    assert bad.returncode == 3 and f"not to --hash {hosted}" in bad.stderr
    missing = _cairn("--uri", uri, "--api", api_process, key=owner.key.hex())
    assert missing.returncode == 3 and "--hash (the file's SHA-256) and --size" in missing.stderr
    down = _cairn(str(corpus), "--api", f"http://127.0.0.1:{free_port()}", key=owner.key.hex())
    assert down.returncode == 69 and "did not answer" in down.stderr


def _headers_only(url: str, digest: str, length: int) -> tuple[int, bytes]:
    """Send a PUT's headers announcing `length` bytes and no body at all; return the server's answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        head = f"PUT /v1/content/{digest} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
        sock.sendall((head + "Content-Type: application/octet-stream\r\n\r\n").encode())
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.read()


def test_refusals_come_before_the_body_is_read(sqlite_stack: Stack, api_process: str) -> None:
    """Over a real socket: the API answers while the client has sent only the headers, so an unregistered
    hash or an oversized Content-Length costs the server no body bytes."""
    s = sqlite_stack
    _, unregistered = _blob("never registered, never read")
    status, body = _headers_only(api_process, unregistered, 10**9)
    assert status == 403 and b"content_not_registered" in body, body
    data, digest = _blob("registered, announced too large", 1200)
    _register_directly(s, s.owners[0], digest, len(data))
    status, body = _headers_only(api_process, digest, 10**9)
    assert status == 413 and b"content_too_large" in body, body


def test_openapi_declares_the_content_endpoints(sqlite_stack: Stack) -> None:
    op = sqlite_stack.api.get("/openapi.json").json()["paths"]["/v1/content/{content_hash}"]
    assert set(op) == {"put", "post", "get", "head"}
    for method in ("put", "post"):
        assert "application/octet-stream" in op[method]["requestBody"]["content"]
        assert {"200", "201", "403", "413", "422"} <= set(op[method]["responses"])
    assert "application/octet-stream" in op["get"]["responses"]["200"]["content"]
    assert "ETag" in op["get"]["responses"]["200"]["headers"] and "404" in op["get"]["responses"]
