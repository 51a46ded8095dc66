"""The auditor's pure parts: root histories (revoked and re-proposed roots), the metadata tail, compiler
releases, the standard-JSON input, the default challenge delay, the watchtower's stack command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.audit.bytecode import _release, metadata_length
from backend.audit.epochs import ACCEPTED, PENDING, REVOKED, root_history
from backend.audit.report import build_report, render_html
from cairn.cli.deploy import default_challenge_delay
from cairn.cli.stack import watchtower_args
from cairn.core.settings import Settings
from cairn.core.solc_input import build_input, input_hash


def _log(block: int, i: int, **kw: Any) -> dict[str, Any]:
    return {"block_number": block, "log_index": i, "tx_hash": "0x" + "ab" * 32, **kw}


def test_root_history_knows_revoked_reproposed_and_accepted_roots() -> None:
    r1, r2 = "0x" + "11" * 32, "0x" + "22" * 32
    prop = {"policy_hash": "0x" + "00" * 32, "total_cumulative": 5, "valid_at": 9, "uri": "allocations/x"}
    events = {
        "ev_root_proposed": [
            _log(10, 0, epoch=0, root=r1, **prop),
            _log(12, 0, epoch=0, root=r2, **prop),
            _log(20, 0, epoch=1, root=r1, **prop),
        ],
        "ev_root_revoked": [_log(11, 0, epoch=0, root=r1, guardian="0x" + "01" * 20)],
        "ev_root_accepted": [_log(20, -1, epoch=0, root=r2)],
    }
    h = root_history(events)
    assert [(r.root, r.status) for r in h[0]] == [(r1, REVOKED), (r2, ACCEPTED)]
    assert [(r.root, r.status) for r in h[1]] == [(r1, PENDING)]
    assert h[0][1].accepted_at == (20, -1)


def test_metadata_tail_and_release() -> None:
    cbor = (
        bytes.fromhex("a2646970667358221220")
        + b"\x01" * 32
        + bytes.fromhex("64736f6c6343000825")
        + b"\x00\x33"
    )
    code = b"\x60\x80" * 10 + cbor
    assert metadata_length(code) == len(cbor)
    assert metadata_length(b"\x60\x80\x00\x01") == 0  # no CBOR map there
    assert _release("0.8.37+commit.f401782d.Emscripten.clang") == _release("0.8.37+commit.f401782d")
    assert _release("0.8.37+commit.f401782d") != _release("0.8.36+commit.f401782d")


def test_standard_json_input_is_the_sources_and_their_imports() -> None:
    settings = {"optimizer": {"enabled": True, "runs": 10000}, "evmVersion": "cancun"}
    std = build_input(settings)
    units = set(std["sources"])
    assert "project/contracts/src/RewardDistributor.sol" in units
    assert any(
        u.startswith("npm/@openzeppelin/contracts@") and u.endswith("access/AccessControl.sol") for u in units
    )
    assert not any("/test/" in u for u in units)
    assert input_hash(std) == input_hash(build_input(settings))
    assert input_hash(std) != input_hash(build_input({**settings, "evmVersion": "paris"}))


def test_default_challenge_delay_is_a_day_on_real_chains() -> None:
    assert default_challenge_delay(31337) == 600
    assert default_challenge_delay(8453) == default_challenge_delay(1) == 86_400


def test_watchtower_args_take_the_guardian_key_only_when_set(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, api_port=8000)
    assert watchtower_args(s, {}) == [
        "audit",
        "--watch",
        "--artifacts",
        str(tmp_path),
        "--metrics-port",
        "8001",
    ]
    assert watchtower_args(s, {"CAIRN_GUARDIAN_KEY": "0xkey"})[-2:] == [
        "--guardian-key-env",
        "CAIRN_GUARDIAN_KEY",
    ]


def test_empty_report_is_ok_and_renders() -> None:
    report = build_report(None, None, rpc_url="http://x", deployment="d.json")
    assert report["ok"] is True and report["epochs"] == [] and report["contracts"] == []
    assert "everything verifies" in render_html(report)
