"""Finality: the one rule for "which block is final", shared by the indexer and the epoch lifecycle.

Modes (`CAIRN_FINALITY`, `--finality`):
- `auto`: the node's `finalized` block tag where the node has one, else `head - confirmations`;
- `tag`: the node's `finalized` tag, required (a node without it is a configuration error);
- `confirmations`: always `head - confirmations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from cairn.core.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:  # the indexer's processes never load web3 (start-up time and memory)
    from web3 import Web3

FinalityMode = Literal["auto", "tag", "confirmations"]
FINALITY_MODES: tuple[str, ...] = get_args(FinalityMode)


class NoFinalizedTagError(ConfigError):
    """`tag` finality on a node that has no `finalized` block tag."""

    code = "no_finalized_tag"


def check_mode(mode: str) -> FinalityMode:
    """`mode` if it is a finality mode, else InvalidInputError naming the modes."""
    if mode not in FINALITY_MODES:
        raise InvalidInputError(f"finality must be one of {', '.join(FINALITY_MODES)}, not {mode!r}")
    return mode  # type: ignore[return-value]


def decide_finalized(*, mode: FinalityMode, head: int, tagged: int | None, confirmations: int) -> int:
    """The last final block given the head, the node's `finalized` block number (`tagged`, None when the node
    has no such tag) and the configured depth: never above the head (a negative depth counts as 0), -1 while
    no block is final yet."""
    if mode == "tag" and tagged is None:
        raise NoFinalizedTagError("the node has no `finalized` block tag: use --finality confirmations")
    final = head - confirmations if mode == "confirmations" or tagged is None else tagged
    return max(min(final, head), -1)


def finalized_block(w3: Web3, *, mode: FinalityMode, confirmations: int) -> int:
    """`decide_finalized` for the chain behind `w3` (two calls; the indexer batches its own)."""
    head = int(w3.eth.block_number)
    tagged: int | None = None
    if mode != "confirmations":
        try:
            tagged = int(w3.eth.get_block("finalized")["number"])
        except Exception:  # a node without the tag answers with an error
            tagged = None
    return decide_finalized(mode=mode, head=head, tagged=tagged, confirmations=confirmations)
