"""Bad configuration stops with one clear line naming what is wrong, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cairn.cli.devchain import Anvil, free_port
from cairn.core.deployment import ContractInfo, Deployment, EpochConfig


def _deployment_file(tmp_path: Path, chain_id: int) -> Path:
    dep = Deployment(
        chain_id=chain_id,
        start_block=0,
        deployer="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        deployed_at="2026-11-23T00:00:00Z",
        epoch=EpochConfig(genesis=0, length=3600),
        contracts={"RewardToken": ContractInfo(address="0x" + "11" * 20, block=0, abi=[])},
    )
    path = tmp_path / "deployment.json"
    dep.save(path)
    return path


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], exit_code: int = 2) -> str:
    """A configuration error exits 2; an unreachable node or database (UnavailableError) exits 69."""
    assert proc.returncode == exit_code, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_unreachable_rpc_is_named(tmp_path: Path, sqlite_url: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    dep = _deployment_file(tmp_path, 31337)
    line = _one_line_error(
        _cairn("check", "--rpc-url", url, "--database-url", sqlite_url, "--deployment", str(dep)), 69
    )
    assert f"RPC {url} is unreachable" in line


def test_wrong_chain_for_deployment_is_named(tmp_path: Path, anvil_session: Anvil, sqlite_url: str) -> None:
    dep = _deployment_file(tmp_path, 8453)
    proc = _cairn(
        "check", "--rpc-url", anvil_session.url, "--database-url", sqlite_url, "--deployment", str(dep)
    )
    line = _one_line_error(proc)
    assert "is chain 31337 but the deployment file is for chain 8453" in line


def test_unreachable_database_is_named(tmp_path: Path, anvil_session: Anvil) -> None:
    dep = _deployment_file(tmp_path, 31337)
    db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope"
    proc = _cairn("check", "--rpc-url", anvil_session.url, "--database-url", db, "--deployment", str(dep))
    line = _one_line_error(proc, 69)
    assert "database unreachable" in line and "127.0.0.1" in line


def test_good_configuration_passes(tmp_path: Path, anvil_session: Anvil, sqlite_url: str) -> None:
    dep = _deployment_file(tmp_path, 31337)
    proc = _cairn(
        "check", "--rpc-url", anvil_session.url, "--database-url", sqlite_url, "--deployment", str(dep)
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok: chain 31337" in proc.stdout


def test_missing_deployment_file_is_named(tmp_path: Path) -> None:
    proc = _cairn("check", "--deployment", str(tmp_path / "none.json"))
    assert "none.json not found" in _one_line_error(proc)


def test_bad_setting_value_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    for env, words in ((("CAIRN_CONFIRMATIONS", "-1"), "greater than or equal to 0"),
                       (("CAIRN_FINALITY", "bogus"), "'auto', 'tag' or 'confirmations'")):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "cairn.cli", "check"],
            capture_output=True, text=True, timeout=60, check=False, env={**os.environ, env[0]: env[1]},
        )  # fmt: skip
        assert _one_line_error(proc) == f"error: {env[0]}: Input should be {words}"
