"""API settings: the shared Cairn settings plus what only the API process needs (`CAIRN_API_*`)."""

from __future__ import annotations

from pydantic import Field

from cairn.core.settings import Settings


class ApiSettings(Settings):
    api_run_indexer: bool = Field(
        default=False, description="Run the indexer in a background thread of the API process."
    )
    api_migrate: bool = Field(default=True, description="Apply database migrations at start-up.")
    api_page_limit: int = Field(
        default=100, ge=1, le=1000, description="Largest page a list endpoint returns."
    )
    api_cors_origins: str = Field(
        default="",
        description="Comma-separated browser origins allowed to call the API (wallet front-ends).",
    )
    api_relay_gas_limit: int = Field(
        default=500_000, ge=21_000, description="Gas ceiling for one relayed registration."
    )


def api_settings(settings: Settings) -> ApiSettings:
    """Accept plain `Settings` too: fill the API-only fields from their defaults / environment."""
    if isinstance(settings, ApiSettings):
        return settings
    return ApiSettings(**settings.model_dump())
