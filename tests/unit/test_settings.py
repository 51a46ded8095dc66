"""Settings: signing keys are refused off the local chain unless real."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cairn.core.errors import ConfigError
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, Settings


def test_local_chain_falls_back_to_anvil_dev_keys() -> None:
    s = Settings(relayer_key=None, publisher_key=None)
    assert s.signing_key("publisher", LOCAL_CHAIN_ID) == ANVIL_DEV_KEYS[0]
    assert s.signing_key("relayer", LOCAL_CHAIN_ID) == ANVIL_DEV_KEYS[1]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "CAIRN_PUBLISHER_KEY is not set"),
        ("changeme", "placeholder"),
        (ANVIL_DEV_KEYS[0], "public anvil development key"),
    ],
)
def test_other_chains_refuse_missing_placeholder_and_dev_keys(key: str | None, message: str) -> None:
    s = Settings(publisher_key=key)
    with pytest.raises(ConfigError, match=message):
        s.signing_key("publisher", 8453)


def test_rpc_urls_split_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_RPC_URLS", "http://a:1, http://b:2")
    assert Settings().rpc_urls == ["http://a:1", "http://b:2"]


def test_relay_limits_are_one_nested_model_and_keep_their_flat_env_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backend.api.settings import ApiSettings, RelaySettings

    monkeypatch.setenv("CAIRN_API_RELAY_MIN_DEADLINE_S", "123")
    monkeypatch.setenv("CAIRN_API_RELAY_DAILY_GAS", "777000")
    monkeypatch.setenv("CAIRN_API_RELAY_CLIENT_HEADER", "X-Forwarded-For")
    s = ApiSettings()
    assert isinstance(s.api_relay, RelaySettings)
    assert (s.api_relay.min_deadline_s, s.api_relay.daily_gas) == (123, 777000)
    assert s.api_relay.client_header == "X-Forwarded-For"
    assert s.api_relay.gas_limit == 500_000  # a default
    # the flat keyword overrides one field; the others still come from the environment
    k = ApiSettings(api_relay_account_burst=3, api_relay_gas_limit=90_000)
    assert (k.api_relay.account_burst, k.api_relay.gas_limit, k.api_relay.min_deadline_s) == (3, 90_000, 123)
    # a dump round-trips (api_settings() rebuilds from one)
    assert ApiSettings(**k.model_dump()).api_relay == k.api_relay
    with pytest.raises(ValidationError):
        ApiSettings(api_relay_verify_gas=1)  # below its bound: refused like any field
