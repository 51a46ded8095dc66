"""Settings: signing keys are refused off the local chain unless real."""

from __future__ import annotations

import pytest

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
