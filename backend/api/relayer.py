"""Where the relayer used to live; it is `backend.api.relay` now (verify, records, service)."""

from __future__ import annotations

from backend.api.relay import Relayer, relay_records

__all__ = ["Relayer", "relay_records"]
