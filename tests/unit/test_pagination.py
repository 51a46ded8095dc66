"""The keyset cursor: one format for every list, refused with one clear message when it is not one."""

from __future__ import annotations

import pytest

from backend.api.pagination import decode, encode, list_page
from cairn.core.errors import InvalidInputError


def test_cursor_round_trips_and_pads_short_ones() -> None:
    assert decode(encode((12, 3, 1)), 3) == (12, 3, 1)
    assert decode("12-3", 3) == (12, 3, 0)


@pytest.mark.parametrize("bad", ["", "x", "1-2-3-4", "-1", "1--2", str(2**63)])
def test_bad_cursors_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="cursor must be the next_cursor"):
        decode(bad, 3)


def test_list_page_walks_every_item_once_newest_first() -> None:
    items = [{"epoch": e} for e in range(9, -1, -1)]
    seen, cursor = [], None
    while True:
        page = list_page(items, key=lambda i: (i["epoch"],), width=1, limit=3, cursor=cursor)
        seen += [i["epoch"] for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(range(9, -1, -1))
