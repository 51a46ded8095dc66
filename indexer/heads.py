"""The first round trip of every step: the head, the finalized block and the header at our cursor.

One batched request asks for `latest`, the header at the cursor and, unless the mode is `confirmations` or the
node is known to lack it, the `finalized` tag. Which block is final is decided by the one rule shared with the
epoch lifecycle (`cairn.core.finality.decide_finalized`). In `auto` mode a node that rejects the tag (an error
for the whole batch) or answers it with null is remembered as having none, and is not asked again.
"""

from __future__ import annotations

from typing import Any

from cairn.core.errors import RpcError
from cairn.core.finality import FinalityMode, decide_finalized
from indexer.rpc import RpcClient
from indexer.step import Retry


class Heads:
    """The head and the finalized block for one indexer (mode and depth fixed, the node's tag learned)."""

    def __init__(self, rpc: RpcClient, *, mode: FinalityMode, confirmations: int) -> None:
        self.rpc = rpc
        self.mode = mode
        self.confirmations = confirmations
        # None: not known yet (auto); False: never ask (confirmations, or a node without the tag)
        self.has_finalized_tag: bool | None = None if mode == "auto" else mode == "tag"

    def read(self, cursor_block: int | None) -> tuple[dict[str, Any], int, dict[str, Any] | None]:
        """(latest header, finalized block number (-1 if none), the header at `cursor_block` or None)."""
        refs: list[int | str] = ["latest"]
        if cursor_block is not None:
            refs.append(cursor_block)
        ask_tag = self.has_finalized_tag is not False
        if ask_tag:
            refs.append("finalized")
        try:
            results = self.rpc.headers(refs)
        except RpcError:
            if ask_tag and self.has_finalized_tag is None:  # node without the tag
                self.has_finalized_tag = False
                return self.read(cursor_block)
            raise
        latest = results[0]
        if not isinstance(latest, dict):
            raise Retry()
        head = int(latest["number"], 16)
        at_cursor = results[1] if cursor_block is not None else None
        tagged: int | None = None
        if ask_tag:
            fin = results[-1]
            if isinstance(fin, dict):
                self.has_finalized_tag = True
                tagged = int(fin["number"], 16)
            elif self.has_finalized_tag is None:
                self.has_finalized_tag = False
        depth = self.confirmations
        finalized = decide_finalized(mode=self.mode, head=head, tagged=tagged, confirmations=depth)
        return latest, finalized, at_cursor
