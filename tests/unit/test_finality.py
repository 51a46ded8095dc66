"""The one finality rule (`cairn.core.finality.decide_finalized`), shared by the indexer and the epoch
lifecycle: every mode, a node without the `finalized` tag, depths below genesis and negative depths."""

from __future__ import annotations

import pytest

from cairn.core.errors import ConfigError, InvalidInputError
from cairn.core.finality import NoFinalizedTagError, check_mode, decide_finalized
from cairn.core.settings import Settings


def test_auto_uses_the_tag_when_the_node_has_one() -> None:
    assert decide_finalized(mode="auto", head=100, tagged=36, confirmations=12) == 36


def test_auto_falls_back_to_the_depth_without_a_tag() -> None:
    assert decide_finalized(mode="auto", head=100, tagged=None, confirmations=12) == 88


def test_tag_uses_the_tag_and_ignores_the_depth() -> None:
    assert decide_finalized(mode="tag", head=100, tagged=99, confirmations=12) == 99


def test_tag_without_a_tag_is_a_configuration_error() -> None:
    with pytest.raises(NoFinalizedTagError, match="no `finalized` block tag") as info:
        decide_finalized(mode="tag", head=100, tagged=None, confirmations=12)
    assert isinstance(info.value, ConfigError)


def test_confirmations_ignores_the_tag() -> None:
    assert decide_finalized(mode="confirmations", head=100, tagged=36, confirmations=12) == 88
    assert decide_finalized(mode="confirmations", head=100, tagged=None, confirmations=0) == 100


@pytest.mark.parametrize("mode", ["auto", "confirmations"])
def test_nothing_final_yet_is_minus_one(mode: str) -> None:
    assert decide_finalized(mode=mode, head=5, tagged=None, confirmations=12) == -1  # type: ignore[arg-type]
    assert decide_finalized(mode=mode, head=11, tagged=None, confirmations=12) == -1  # type: ignore[arg-type]
    assert decide_finalized(mode=mode, head=12, tagged=None, confirmations=12) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["auto", "confirmations"])
def test_negative_depth_never_passes_the_head(mode: str) -> None:
    assert decide_finalized(mode=mode, head=100, tagged=None, confirmations=-5) == 100  # type: ignore[arg-type]


def test_a_tag_above_the_head_is_capped_at_the_head() -> None:
    """A node whose `latest` lags its `finalized` (answers from two backends): never past the head."""
    assert decide_finalized(mode="auto", head=100, tagged=105, confirmations=12) == 100
    assert decide_finalized(mode="tag", head=100, tagged=105, confirmations=12) == 100


def test_check_mode_names_the_modes() -> None:
    assert check_mode("tag") == "tag"
    with pytest.raises(InvalidInputError, match="auto, tag, confirmations"):
        check_mode("soon")


def test_the_setting_defaults_to_auto_and_reads_cairn_finality(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAIRN_FINALITY", raising=False)
    assert Settings().finality == "auto"
    monkeypatch.setenv("CAIRN_FINALITY", "confirmations")
    assert Settings().finality == "confirmations"
    monkeypatch.setenv("CAIRN_FINALITY", "soon")
    with pytest.raises(ValueError, match="finality"):
        Settings()
