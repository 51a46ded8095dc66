"""API settings: the shared Cairn settings plus what only the API process needs (`CAIRN_API_*`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cairn.core.settings import Settings

RELAY_ENV_PREFIX = "CAIRN_API_RELAY_"
_FLAT = "api_relay_"


class RelaySettings(BaseSettings):
    """The relayer's limits (backend/api/relay/guard.py, contracts/SECURITY.md "Relayer"): one nested model,
    `ApiSettings.api_relay`. Each field keeps its flat environment variable `CAIRN_API_RELAY_<FIELD>` (this
    model's own prefix) and its flat keyword `api_relay_<field>` to `ApiSettings(...)`."""

    model_config = SettingsConfigDict(
        env_prefix=RELAY_ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    gas_limit: int = Field(
        default=500_000, ge=21_000, description="Gas ceiling for one relayed registration."
    )
    min_deadline_s: int = Field(
        default=600,
        ge=0,
        description="A relayed signature's deadline must be at least this many seconds after the latest "
        "block's timestamp (block time, outbox latency and fee bumps fit well inside it).",
    )
    verify_gas: int = Field(
        default=50_000,
        ge=5_000,
        description="Gas cap of the off-chain EIP-1271 isValidSignature check of a contract wallet.",
    )
    wallet_gas_limit: int = Field(
        default=220_000,
        ge=21_000,
        description="Gas ceiling of one relayed transaction (its estimate + 20%) for a contract-wallet "
        "owner: the largest EOA registration (2 KiB uri) needs about 160k, the rest is the wallet's check.",
    )
    client_burst: int = Field(
        default=60, ge=1, description="Relay requests one client may send at once (token bucket size)."
    )
    client_per_minute: float = Field(
        default=30.0, gt=0, description="Relay requests per minute one client earns back."
    )
    client_header: str = Field(
        default="",
        description="Behind a reverse proxy: the header naming the client (its last comma-separated "
        "value, the one the proxy appended, e.g. X-Forwarded-For); empty: the TCP peer address.",
    )
    account_burst: int = Field(
        default=10, ge=1, description="Relays one owner account may ask for at once (token bucket size)."
    )
    account_per_minute: float = Field(
        default=2.0, gt=0, description="Relays per minute one owner account earns back."
    )
    daily_gas: int = Field(
        default=20_000_000,
        ge=0,
        description="Gas the relayer may spend per UTC day, all accounts together (reserved at the "
        "transaction's gas limit before it is sent, settled at the receipt's gasUsed).",
    )
    account_daily_gas: int = Field(
        default=2_000_000, ge=0, description="Gas the relayer may spend per UTC day for one owner account."
    )



class ApiSettings(Settings):
    api_run_indexer: bool = Field(
        default=False, description="Run the indexer in a background thread of the API process."
    )
    api_migrate: bool = Field(default=True, description="Apply database migrations at start-up.")
    api_page_limit: int = Field(
        default=100, ge=1, le=1000, description="Largest page a list endpoint returns."
    )
    api_head_max_age_s: float = Field(
        default=1.0,
        ge=0,
        description="Read endpoints (proofs, account views) reuse the latest block read at most this many "
        "seconds ago (0: read it for every request); relays always read it afresh.",
    )
    api_cors_origins: str = Field(
        default="",
        description="Comma-separated browser origins allowed to call the API (wallet front-ends).",
    )
    api_relay: RelaySettings = Field(
        default_factory=RelaySettings, description="The relayer's limits (`CAIRN_API_RELAY_*`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_relay_fields(cls, data: Any) -> Any:
        """`api_relay_<field>=...` keywords (the flat names) go into the nested `api_relay` model; the
        fields not given still come from `CAIRN_API_RELAY_*` / `.env` / the defaults."""
        if not isinstance(data, dict):
            return data
        flat = {k[len(_FLAT) :]: data.pop(k) for k in [k for k in data if k.startswith(_FLAT)]}
        if flat:
            base = data.get("api_relay")
            given = base.model_dump() if isinstance(base, RelaySettings) else dict(base or {})
            data["api_relay"] = RelaySettings(**{**given, **flat})
        return data


def api_settings(settings: Settings) -> ApiSettings:
    """Accept plain `Settings` too: fill the API-only fields from their defaults / environment."""
    if isinstance(settings, ApiSettings):
        return settings
    return ApiSettings(**settings.model_dump())
