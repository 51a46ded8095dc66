"""The inference configuration: the trainer key, the price table and the upstream providers, read from
`CAIRN_*` variables as the API reads them."""

from __future__ import annotations

import pytest

from backend.api.settings import DEFAULT_PRICE, ApiSettings
from cairn.core.errors import ConfigError, MissingKeyError
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, Settings, build_settings


def test_trainer_key_is_the_dev_trainer_locally_and_required_elsewhere() -> None:
    s = Settings()
    assert s.signing_key("trainer", LOCAL_CHAIN_ID) == ANVIL_DEV_KEYS[3]  # TRAINER_ROLE on the local chain
    with pytest.raises(MissingKeyError, match="CAIRN_TRAINER_KEY"):
        s.signing_key("trainer", 8453)


def test_prices_and_upstreams_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_API_PRICES", '{"cairn-demo-model-v1": "1000", "big": "5000000000000000000"}')
    monkeypatch.setenv("CAIRN_API_UPSTREAMS", '{"gpt": {"base_url": "http://127.0.0.1:9/v1", "model": "x"}}')
    s = ApiSettings()
    assert s.api_prices == {"cairn-demo-model-v1": 1000, "big": 5 * 10**18}
    assert s.api_default_price == DEFAULT_PRICE
    assert (
        str(s.api_upstreams["gpt"].base_url) == "http://127.0.0.1:9/v1"
        and s.api_upstreams["gpt"].model == "x"
    )


def test_a_negative_price_or_a_bad_upstream_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_API_PRICES", '{"m": "-1"}')
    with pytest.raises(ConfigError, match="CAIRN_API_PRICES"):
        build_settings(ApiSettings)
    monkeypatch.delenv("CAIRN_API_PRICES")
    monkeypatch.setenv("CAIRN_API_UPSTREAMS", '{"m": {"base_url": "not a url"}}')
    with pytest.raises(ConfigError, match="CAIRN_API_UPSTREAMS"):
        build_settings(ApiSettings)
