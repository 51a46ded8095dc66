"""Configuration through `CAIRN_*` environment variables and an optional `.env` file (pydantic-settings).

Keys that sign transactions have no default, except the well-known anvil development keys, which are
used only when the chain id is the local one (31337). Anywhere else a missing or placeholder key stops
the process with one clear line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cairn.core.errors import ConfigError, MissingKeyError
from cairn.core.finality import FinalityMode

LOCAL_CHAIN_ID = 31337
REPO_ROOT = Path(__file__).resolve().parents[2]

# Anvil's deterministic development accounts (mnemonic "test test ... junk"). Public knowledge:
# usable only on the local chain, refused anywhere else.
ANVIL_DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
# role -> the anvil development account that holds it on the local chain (cairn/cli/deploy.py DEV_ROLES)
DEV_KEY_INDEX = {"publisher": 0, "relayer": 1, "trainer": 3}
PLACEHOLDER_MARKERS = ("changeme", "change-me", "placeholder", "xxx", "your-key", "todo")


class Settings(BaseSettings):
    """Settings shared by the indexer, the API, the rewards engine and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="CAIRN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    rpc_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8545"],
        description="Comma-separated JSON-RPC URLs; later ones are failovers.",
    )
    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / '.cairn' / 'cairn.db'}",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    deployment_file: Path = Field(
        default=REPO_ROOT / ".cairn" / "deployment.json",
        description="Deployment file written by `cairn deploy` (chain id, addresses, start block, ABIs).",
    )
    data_dir: Path = Field(default=REPO_ROOT / ".cairn", description="Where run-time files live.")
    content_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Largest dataset file the content store accepts (bytes).",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    confirmations: int = Field(
        default=12, ge=0, description="Finality depth when the node has no `finalized` tag."
    )
    finality: FinalityMode = Field(
        default="auto",
        description="Which block is final (cairn.core.finality): auto (the node's `finalized` tag if it has "
        "one, else `confirmations` deep), tag, or confirmations.",
    )
    relayer_key: SecretStr | None = Field(default=None, description="Key that relays gasless registrations.")
    publisher_key: SecretStr | None = Field(default=None, description="Key that proposes Merkle roots.")
    trainer_key: SecretStr | None = Field(
        default=None, description="Key that registers training manifests (TRAINER_ROLE on ModelRegistry)."
    )
    log_level: str = "INFO"

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @property
    def content_dir(self) -> Path:
        """Root of the content store (cairn.core.content.ContentStore)."""
        return self.data_dir / "content"

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.database_url.startswith("postgres") else "sqlite"

    def signing_key(self, role: str, chain_id: int) -> str:
        """Return the private key for `role` ('relayer', 'publisher' or 'trainer'), refusing unsafe ones.

        On the local chain an unset key falls back to an anvil development key; on any other chain a
        missing key, a placeholder or a well-known development key raises ConfigError.
        """
        secret: SecretStr | None = getattr(self, f"{role}_key")
        value = secret.get_secret_value().strip() if secret is not None else ""
        if chain_id == LOCAL_CHAIN_ID:
            if not value:
                return ANVIL_DEV_KEYS[DEV_KEY_INDEX.get(role, 1)]
            return value
        env = f"CAIRN_{role.upper()}_KEY"
        if not value:
            raise MissingKeyError(f"{env} is not set; it is required on chain {chain_id}")
        if any(m in value.lower() for m in PLACEHOLDER_MARKERS):
            raise ConfigError(f"{env} is a placeholder; set a real key for chain {chain_id}")
        if value.lower() in ANVIL_DEV_KEYS:
            raise ConfigError(f"{env} is a public anvil development key; refused on chain {chain_id}")
        return value


SettingsT = TypeVar("SettingsT", bound=Settings)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, `.env` and explicit overrides (CLI flags win)."""
    return build_settings(Settings, **overrides)


def build_settings(cls: type[SettingsT], **overrides: object) -> SettingsT:
    """`cls` from the environment and the overrides that are not None; a bad value is one ConfigError line
    naming its variable (`CAIRN_CONFIRMATIONS: Input should be greater than or equal to 0`)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "CAIRN_" + "_".join(str(p) for p in first["loc"][:1]).upper()
        raise ConfigError(f"{name}: {first['msg']}", setting=name) from None
