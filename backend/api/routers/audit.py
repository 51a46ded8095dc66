"""`GET /v1/audit/latest`: the latest report `cairn audit` wrote under the data dir (for the dashboard).

The API only serves the file: the audit itself reads the chain alone and never this API or its database.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import SettingsDep
from backend.api.schemas import problem_responses
from backend.audit.report import read_latest
from cairn.core.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit/latest", responses=problem_responses(404))
def latest_audit(settings: SettingsDep) -> dict[str, Any]:
    """The latest audit report (format `cairn-audit-v1`): `ok`, a verdict per epoch and per contract, the
    conservation checks. 404 until `cairn audit` (or its watchtower) has written one."""
    report = read_latest(settings.data_dir)
    if report is None:
        raise NotFoundError("no audit report yet: run `cairn audit` with this data dir (CAIRN_DATA_DIR)")
    return report
