"""Gasless dataset registration: signature checks (`verify`), relay records (`records`) and the relayer
that sends through the outbox (`service`)."""

from __future__ import annotations

from backend.api.relay.records import relay_records
from backend.api.relay.service import Relayer

__all__ = ["Relayer", "relay_records"]
