"""API settings: the shared Cairn settings plus what only the API process needs (`CAIRN_API_*`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cairn.core.settings import Settings

DEFAULT_PRICE = 10**15  # atomic units of the RewardToken (18 decimals): 0.001 token per chat completion


class Upstream(BaseModel):
    """An OpenAI-compatible server that answers for one model name (`CAIRN_API_UPSTREAMS`)."""

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = Field(description="The upstream's API root, e.g. http://host:8000/v1")
    model: str | None = Field(default=None, description="The model name upstream (default: the same name)")
    api_key: SecretStr | None = Field(default=None, description="Sent as `Authorization: Bearer <key>`")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="Read timeout of one completion")


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
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes `cairn api` serves with, each on its own SO_REUSEPORT socket of the one "
        "port (the kernel spreads connections over them); use the number of cores.",
    )
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
    # x402 payments (backend/api/x402, README "Agents")
    settler_key: SecretStr | None = Field(
        default=None,
        description="Key of the x402 settler (SETTLER_ROLE on the PaymentRouter) that sends settleExactBatch "
        "through the outbox; on the local chain an unset key is anvil dev key 1.",
    )
    api_x402_exposure_limit: int = Field(
        default=10 * 10**18,
        ge=0,
        description="Serve first, settle later: the most one payer may owe in accepted but unsettled exact "
        "payments (atomic units of the RewardToken); past it the payer gets 402 until they settle.",
    )
    api_x402_max_timeout_s: int = Field(
        default=600,
        ge=60,
        description="`maxTimeoutSeconds` of the x402 requirements (clients sign validBefore = now + this).",
    )
    api_x402_settle_window_s: int = Field(
        default=60,
        ge=0,
        description="An authorization must stay valid at least this long past the chain's clock (time to "
        "settle it).",
    )
    api_x402_clock_skew_s: int = Field(
        default=5, ge=0, description="Tolerated skew between the payer's clock and the chain's clock (s)."
    )
    api_x402_state_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a payer's balance, code and the chain's clock are cached between reads (the "
        "verification's RPC is one batch per payer per this interval; 0: every request).",
    )
    api_x402_serve_timeout_s: int = Field(
        default=300,
        ge=1,
        description="A paid request still not served this many seconds after its payment was accepted (its "
        "API process was killed while serving it) is voided by the settler (a channel request: released "
        "by the channel claimer): never charged. Keep it above the longest request and below "
        "`api_x402_max_timeout_s` minus `api_x402_settle_window_s`.",
    )
    api_x402_batch_size: int = Field(
        default=100, ge=1, le=500, description="Exact payments per settleExactBatch transaction."
    )
    api_x402_settle_interval_s: float = Field(
        default=2.0, gt=0, description="Seconds between two settlement rounds of the x402 settler."
    )
    api_x402_settle_in_api: bool = Field(
        default=True,
        description="Run the x402 settler in a background thread of the API process (off when a separate "
        "`python -m backend.api.x402.settle` process settles).",
    )
    # Channels: the x402 `batch-settlement` scheme on the same gateway (backend/api/x402/channel.py) and its
    # claimer (backend/api/x402/claimer.py); the receiver authorizer is the settler key's address.
    api_x402_channels: bool = Field(
        default=True,
        description="Offer the `batch-settlement` scheme (PaymentRouter channels, vouchers checked with no "
        "RPC) next to `exact` in every 402.",
    )
    api_channel_claim_in_api: bool = Field(
        default=True,
        description="Run the channel claimer in a background thread of the API process (off when a separate "
        "`python -m backend.api.x402.claimer` process claims; run exactly one per database either way).",
    )
    api_channel_claim_interval_s: float = Field(
        default=2.0, gt=0, description="Seconds between two rounds of the channel claimer."
    )
    api_channel_claim_min_requests: int = Field(
        default=1000, ge=1, description="Unclaimed requests of a channel that make it due for a claim."
    )
    api_channel_claim_max_wait_s: float = Field(
        default=300.0, ge=0,
        description="Seconds after which every channel with anything unclaimed is claimed (a pending "
        "withdrawal is claimed at once).",
    )  # fmt: skip
    # Rate limits of every endpoint (backend/api/ratelimit.py): per client (before anything is read) and per
    # signed-in account or API key (once the credentials are known). The relay's own, stricter buckets above
    # apply on top of these to the relay endpoints.
    api_rate_client_burst: int = Field(
        default=120, ge=1, description="Requests one client may send at once (token bucket size)."
    )
    api_rate_client_per_minute: float = Field(
        default=600.0, gt=0, description="Requests per minute one client earns back."
    )
    api_rate_account_burst: int = Field(
        default=60, ge=1, description="Requests one signed-in account or API key may send at once."
    )
    api_rate_account_per_minute: float = Field(
        default=300.0, gt=0, description="Requests per minute one account or API key earns back."
    )
    # Sign-In with Ethereum and sessions (backend/api/auth).
    api_siwe_origins: str = Field(
        default="",
        description="Comma-separated origins (scheme://host[:port]) a SIWE message may name: its domain must "
        "be one of their authorities and its URI must lie under that origin. Empty: http://localhost:<port> "
        "and http://127.0.0.1:<port> (CAIRN_API_PORT).",
    )
    api_siwe_nonce_ttl_s: int = Field(
        default=600, ge=10, le=86_400, description="Seconds a sign-in nonce stays usable (once)."
    )
    api_siwe_clock_skew_s: int = Field(
        default=60, ge=0, le=600, description="Seconds Issued At may lie ahead of the server clock."
    )
    api_session_ttl_s: int = Field(
        default=3600, ge=60, le=7 * 86_400,
        description="Seconds a session lasts (shorter if the message's Expiration Time comes first).",
    )  # fmt: skip
    api_operator_policy: str = Field(
        default="v1", description="Reward policy the operator endpoints close epochs with (as `--policy`)."
    )

    def siwe_origins(self) -> list[str]:
        origins = [o.strip().rstrip("/") for o in self.api_siwe_origins.split(",") if o.strip()]
        return origins or [f"http://localhost:{self.api_port}", f"http://127.0.0.1:{self.api_port}"]

    # Inference (backend/api/services/inference.py, README "Inference API").
    api_prices: dict[str, int] = Field(
        default_factory=dict,
        description="Price of one chat completion per model name, in the RewardToken's atomic units, as JSON "
        '`{"cairn-demo-model-v1": "1000"}`; models not listed cost `api_default_price`.',
    )
    api_default_price: int = Field(
        default=DEFAULT_PRICE, ge=0, description="Price of a model missing from `api_prices` (atomic units)."
    )
    api_upstreams: dict[str, Upstream] = Field(
        default_factory=dict,
        description="Models answered by an OpenAI-compatible upstream instead of the embedded model, as JSON "
        '`{"name": {"base_url": "http://host:8000/v1", "model": "upstream-name", "api_key": "..."}}`.',
    )
    api_max_tokens: int = Field(
        default=256, ge=1, le=4096, description="Largest `max_tokens` a chat completion may ask for."
    )

    @field_validator("api_prices")
    @classmethod
    def _prices(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(name for name, price in value.items() if price < 0)
        if bad:
            raise ValueError(f"prices must be >= 0 atomic units (model {bad[0]!r})")
        return value

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
