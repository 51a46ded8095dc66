"""Cairn HTTP API: contributors, agents and auditors read the mirror and relay signed registrations."""

from backend.api.app import create_app

__all__ = ["create_app"]
