"""A validator's review queue: contributions it has not attested yet (not withdrawn), oldest first, each
with the number of validators who have, and a link to the content when the content store has it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from web3 import Web3

from backend.api.mirror import as_int, table_exists
from backend.api.pagination import sql_page
from backend.api.services import contributions
from backend.api.settings import ApiSettings
from cairn.core.content import ContentStore

CONTRIBUTIONS = "v_contributions"


def content_store(settings: ApiSettings) -> ContentStore:
    return ContentStore(settings.content_dir, max_bytes=settings.content_max_bytes)


def _out(r: dict[str, Any], store: ContentStore) -> dict[str, Any]:
    cid = str(r["contribution_id"])
    dataset = r["kind"] == "dataset"
    available = dataset and store.has(bytes.fromhex(cid[2:]))
    return {
        "contribution_id": cid,
        "kind": r["kind"],
        "owner": Web3.to_checksum_address(str(r["owner"])),
        "model_id": r.get("model_id"),
        "size": None if r.get("size") is None else as_int(r["size"]),
        "work_units": None if r.get("work_units") is None else as_int(r["work_units"]),
        "uri": r.get("uri"),
        "attested_by": as_int(r["attested_by"]),
        "content_available": available,
        "content_url": f"/v1/content/{cid}" if available else None,
        "block_number": as_int(r["block_number"]),
        "block_time": as_int(r["block_time"]),
    }


def review_queue(
    session: Session, *, settings: ApiSettings, validator: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Oldest first, keyset-paginated on (block_number, log_index, item_index)."""
    if not table_exists(session, CONTRIBUTIONS):
        return {"validator": validator, "items": [], "next_cursor": None}
    att = contributions.ATTESTED
    if table_exists(session, att):
        same = f"FROM {att} a WHERE a.contribution_id = c.contribution_id"
        attested_by = f"(SELECT COUNT(DISTINCT a.validator) {same})"
        mine = f"NOT EXISTS (SELECT 1 {same} AND a.validator = :v)"
    else:
        attested_by, mine = "0", "1 = 1"
    select = f"SELECT * FROM (SELECT c.*, {attested_by} AS attested_by FROM {CONTRIBUTIONS} c WHERE {mine}) q"
    page = sql_page(
        session, select=select, where=["NOT withdrawn"], params={"v": validator.lower()}, limit=limit,
        cursor=cursor, descending=False,
    )  # fmt: skip
    store = content_store(settings)
    return {
        "validator": validator,
        "items": [_out(r, store) for r in page.items],
        "next_cursor": page.next_cursor,
    }
