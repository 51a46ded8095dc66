"""`cairn data add`: register a dataset by its content hash, gaslessly, and upload its bytes.

`cairn data add FILE` hashes the file (SHA-256, streamed), signs the EIP-712 registration
(`cairn.core.eip712.register_dataset_typed_data`, fetched with the owner's nonce from
`GET /v1/eip712/register-dataset`), submits it through the API's relayer (`POST /v1/datasets`: commit, then
reveal), streams the bytes to the API's content store (`PUT /v1/content/{hash}`, admitted because the relayer
now holds the registration) and waits until the relay's reveal is mined (`GET /v1/relays/{relay_id}`).

`cairn data add --uri https://... --hash 0x... --size N` registers a hosted file without downloading it (the
hash is the file's SHA-256, e.g. a Hugging Face / Git LFS oid); nothing is uploaded.

The client functions (`DataClient`) are what the demo uses too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from eth_account import Account
from rich.console import Console

from cairn.core.content import CHUNK, hash_file, parse_content_hash
from cairn.core.errors import (
    CairnError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    MissingKeyError,
    NotFoundError,
    UnavailableError,
)
from cairn.core.settings import load_settings

data_app = typer.Typer(
    help="Datasets: register a file by its content hash and upload it.", no_args_is_help=True
)
out = Console()
ZERO32 = "0x" + "00" * 32
DEFAULT_KEY_ENV = "CAIRN_OWNER_KEY"
WAIT_S = 120.0
POLL_S = 0.3


def _error_for(status: int) -> type[CairnError]:
    if status in (400, 413, 422):
        return InvalidInputError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status >= 500:
        return UnavailableError
    return CairnError


@dataclass(frozen=True)
class Registered:
    content_hash: str
    size: int
    uri: str
    relay_id: str | None  # None: the owner had registered it already
    tx_hash: str | None
    uploaded: bool


class DataClient:
    """The Cairn API as a dataset owner sees it: typed data to sign, relay, content upload, relay status."""

    def __init__(self, api: str, *, timeout: float = 60.0) -> None:
        self.api = api.rstrip("/")
        self.http = httpx.Client(base_url=self.api, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"the API at {self.api} did not answer {method} {path}: {exc}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                detail, code = str(body.get("detail", "")), str(body.get("code", ""))
            except ValueError:
                detail, code = resp.text[:300], ""
            raise _error_for(resp.status_code)(
                f"{method} {path} answered {resp.status_code} {code}: {detail}".replace("  ", " "),
                status=resp.status_code, code=code,
            )  # fmt: skip
        return resp

    def get_json(self, path: str, **params: Any) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("GET", path, params=params or None).json()
        return reply

    def dataset(self, content_hash: str) -> dict[str, Any] | None:
        try:
            return self.get_json(f"/v1/datasets/{content_hash}")
        except NotFoundError:
            return None

    def upload(self, content_hash: str, path: Path, size: int) -> dict[str, Any]:
        """Stream `path` to `PUT /v1/content/{hash}` (1 MiB chunks, Content-Length declared)."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        resp = self._call(
            "PUT", f"/v1/content/{content_hash}", content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )  # fmt: skip
        reply: dict[str, Any] = resp.json()
        return reply

    def relay(
        self, key: str, *, content_hash: str, size: int, license_id: int, metadata_hash: str, uri: str
    ) -> dict[str, Any]:
        """Sign the registration the API's typed data describes (checked field by field) and relay it."""
        owner = Account.from_key(key).address
        asked = {"contentHash": content_hash, "size": size, "licenseId": license_id,
                 "metadataHash": metadata_hash, "uri": uri}  # fmt: skip
        typed = self.get_json(
            "/v1/eip712/register-dataset", owner=owner, content_hash=content_hash, size=size,
            license_id=license_id, metadata_hash=metadata_hash, uri=uri,
        )  # fmt: skip
        message = typed.get("message", {})
        offered = {k: message.get("dataset", {}).get(k) for k in asked}
        offered["contentHash"], offered["metadataHash"] = (
            str(offered["contentHash"]).lower(), str(offered["metadataHash"]).lower(),
        )  # fmt: skip
        wanted = {**asked, "contentHash": content_hash.lower(), "metadataHash": metadata_hash.lower()}
        if message.get("owner") != owner or offered != wanted:
            raise ConfigError(f"the API at {self.api} offered typed data for another registration: {message}")
        signature = Account.sign_typed_data(key, full_message=typed).signature
        body = {"content_hash": content_hash, "size": size, "license_id": license_id,
                "metadata_hash": metadata_hash, "uri": uri, "owner": owner,
                "deadline": int(message["deadline"]), "signature": "0x" + bytes(signature).hex()}  # fmt: skip
        reply: dict[str, Any] = self._call("POST", "/v1/datasets", json=body).json()
        return reply

    def wait_relayed(self, relay_id: str, *, timeout: float = WAIT_S) -> dict[str, Any]:
        """Poll `GET /v1/relays/{id}` (each read also lets the relayer send a due reveal) until the reveal is
        mined; ConflictError if it reverted, UnavailableError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_json(f"/v1/relays/{relay_id}")
            if status.get("phase") == "reveal" and status.get("status") == "mined":
                return status
            if status.get("status") == "reverted":
                raise ConflictError(f"relayed registration {relay_id} reverted in tx {status.get('tx_hash')}")
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"relayed registration {relay_id} not mined within {timeout:.0f} s (phase "
                    f"{status.get('phase')}, status {status.get('status')}); check GET /v1/relays/{relay_id}"
                )
            time.sleep(POLL_S)

    def wait_indexed(self, content_hash: str, *, timeout: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (found := self.dataset(content_hash)) is None:
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"dataset {content_hash} not in the API's mirror within {timeout:.0f} s"
                )
            time.sleep(POLL_S)
        return found

    def add(
        self,
        key: str,
        *,
        file: Path | None,
        uri: str | None = None,
        content_hash: str | None = None,
        size: int | None = None,
        license_id: int = 0,
        metadata_hash: str = ZERO32,
        upload: bool = True,
        timeout: float = WAIT_S,
    ) -> Registered:
        """Register (relayed) and upload one dataset; see the module docstring."""
        digest, size = _identify(file, content_hash, size)
        hex_hash = "0x" + digest.hex()
        uri = uri or f"{self.api}/v1/content/{hex_hash}"
        owner = Account.from_key(key).address
        relay_id = tx = None
        try:
            relayed = self.relay(
                key,
                content_hash=hex_hash,
                size=size,
                license_id=license_id,
                metadata_hash=metadata_hash,
                uri=uri,
            )
            relay_id = str(relayed["relay_id"])
        except ConflictError as exc:
            existing = self.dataset(hex_hash)
            if existing is None or str(existing.get("owner", "")).lower() != owner.lower():
                raise ConflictError(exc.message) from None
        uploaded = False
        if file is not None and upload:  # the relayer holds the registration now: the store admits the bytes
            self.upload(hex_hash, file, size)
            uploaded = True
        if relay_id is not None:
            tx = str(self.wait_relayed(relay_id, timeout=timeout).get("tx_hash"))
        return Registered(hex_hash, size, uri, relay_id, tx, uploaded)


def _identify(file: Path | None, content_hash: str | None, size: int | None) -> tuple[bytes, int]:
    """(digest, size) of FILE (streamed SHA-256), checked against --hash / --size when given; without FILE,
    --hash and --size themselves."""
    if file is None:
        if content_hash is None or size is None:
            raise InvalidInputError("without FILE, give --uri, --hash (the file's SHA-256) and --size")
        return parse_content_hash(content_hash), size
    if not file.is_file():
        raise NotFoundError(f"no file {file}")
    digest, real = hash_file(file)
    if content_hash is not None and parse_content_hash(content_hash) != digest:
        raise InvalidInputError(f"{file} hashes to 0x{digest.hex()}, not to --hash {content_hash}")
    if size is not None and size != real:
        raise InvalidInputError(f"{file} has {real} bytes, not --size {size}")
    return digest, real


def _owner_key(key_env: str) -> str:
    value = os.environ.get(key_env, "").strip()
    if not value:
        raise MissingKeyError(
            f"{key_env} is not set; it must hold the dataset owner's private key (--key-env)"
        )
    try:
        Account.from_key(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_env} does not hold a valid private key") from None
    return value


@data_app.command("add")
def add_command(
    file: Annotated[Path | None, typer.Argument(help="The dataset file (hashed, uploaded)")] = None,
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="Where the file can be fetched (default: the API's content URL)"),
    ] = None,
    content_hash: Annotated[
        str | None, typer.Option("--hash", help="SHA-256 of the file (required without FILE)")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=0, help="Size in bytes (required without FILE)")
    ] = None,
    license_id: Annotated[int, typer.Option("--license", min=0, help="Licence id (uint32)")] = 0,
    metadata_hash: Annotated[
        str, typer.Option("--metadata-hash", help="bytes32 of off-chain metadata")
    ] = ZERO32,
    api: Annotated[
        str | None, typer.Option("--api", help="API base URL (default http://CAIRN_API_HOST:PORT)")
    ] = None,
    key_env: Annotated[
        str, typer.Option("--key-env", help="Environment variable holding the owner's private key")
    ] = DEFAULT_KEY_ENV,
    upload: Annotated[
        bool, typer.Option("--upload/--no-upload", help="Upload FILE to the content store")
    ] = True,
    wait_indexed: Annotated[
        bool, typer.Option("--wait-indexed", help="Also wait until the API's mirror shows the dataset")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the relay")] = WAIT_S,
) -> None:
    """Register a dataset gaslessly by its SHA-256 (EIP-712 signed, relayed) and upload its bytes."""
    key = _owner_key(key_env)
    if api is None:
        settings = load_settings()
        api = f"http://{settings.api_host}:{settings.api_port}"
    client = DataClient(api)
    try:
        done = client.add(
            key, file=file, uri=uri, content_hash=content_hash, size=size, license_id=license_id,
            metadata_hash=metadata_hash, upload=upload, timeout=timeout,
        )  # fmt: skip
        if wait_indexed:
            client.wait_indexed(done.content_hash, timeout=timeout)
    finally:
        client.close()
    how = (
        f"relayed {done.relay_id}, tx {done.tx_hash}" if done.relay_id else "already registered by this owner"
    )
    out.print(
        f"dataset {done.content_hash} ({done.size} bytes) registered: {how}", highlight=False, soft_wrap=True
    )
    out.print(
        f"uri {done.uri}; content {'uploaded' if done.uploaded else 'not uploaded'}",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
