"""Where the auditor fetches content-addressed files (allocation files, policies): `--artifacts DIR|URL`.

The chain records each root's `uri` (`allocations/0x<keccak256 of the file>.json`) and its `policyHash`;
the bytes come from anywhere (a directory, the Cairn API, a mirror) because the auditor checks them against
the hashes the chain holds and refuses anything else. A directory may be laid out as the URI says
(`DIR/allocations/<name>`), flat (`DIR/<name>`) or as a Cairn data dir (`DIR/rewards/<name>`); policies are
looked up as `policies/<policyHash>.json` the same ways. A URL is joined with the URI (`URL/allocations/...`).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from cairn.core.merkle import keccak256


def keccak_hex(blob: bytes) -> str:
    return "0x" + keccak256(blob).hex()


class Artifacts:
    """A read-only source of content-addressed files (None when a file is not there)."""

    def __init__(self, location: str | None, *, timeout: float = 60.0) -> None:
        self.location = location
        self.timeout = timeout

    def describe(self) -> str:
        return self.location or "(none: pass --artifacts DIR|URL)"

    def get(self, uri: str) -> bytes | None:
        """The bytes at `uri` (relative, as the chain's `uri`, or an absolute http(s) URL)."""
        if uri.startswith(("http://", "https://")):
            return self._http(uri)
        if self.location is None:
            return None
        if self.location.startswith(("http://", "https://")):
            return self._http(self.location.rstrip("/") + "/" + uri.lstrip("/"))
        base = Path(self.location)
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        for path in (base / uri, base / name, base / "rewards" / name):
            if path.is_file():
                return path.read_bytes()
        return None

    def _http(self, url: str) -> bytes | None:
        try:
            r = httpx.get(url, timeout=self.timeout, follow_redirects=True)
        except httpx.HTTPError:
            return None
        return r.content if r.status_code == 200 else None
