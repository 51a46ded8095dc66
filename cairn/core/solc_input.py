"""The Solidity standard-JSON input of Cairn's contracts, built from this repository's sources.

`cairn deploy` records the compiler version, the settings and the keccak256 of this input in the deployment
file; `cairn audit` rebuilds the input from the sources it has, checks its hash and compiles it (py-solc-x) to
compare with the code on chain. The input uses Hardhat 3's source unit names (`project/contracts/src/...`,
`npm/@openzeppelin/contracts@<version>/...`) and remapping, so that the metadata (and its hash at the end
of the runtime code) can match what `npx hardhat build` produced, not only the executable code.

Sources are `contracts/src/**/*.sol` and every file they import (transitively), with their content inline:
the compiler needs no import callback and the input alone determines the output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cairn.core.errors import ArtifactError
from cairn.core.merkle import keccak256
from cairn.core.settings import REPO_ROOT

SOURCES_DIR = Path("contracts") / "src"
BUILD_INFO_DIR = REPO_ROOT / "artifacts" / "build-info"
PROJECT_PREFIX = "project/"
OUTPUT_SELECTION = {
    "*": {
        "*": [
            "abi",
            "evm.bytecode.object",
            "evm.deployedBytecode.object",
            "evm.deployedBytecode.immutableReferences",
        ]
    }
}
_IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']\s*;""", re.MULTILINE)


def _npm_unit(package_path: str, root: Path) -> tuple[str, Path]:
    """`@openzeppelin/contracts/x.sol` -> (`npm/@openzeppelin/contracts@<version>/x.sol`, file path)."""
    parts = package_path.split("/")
    pkg = "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]
    rest = package_path[len(pkg) + 1 :]
    pkg_dir = root / "node_modules" / pkg
    try:
        version = json.loads((pkg_dir / "package.json").read_text())["version"]
    except (OSError, KeyError, json.JSONDecodeError):
        raise ArtifactError(f"cannot resolve import {package_path!r}: no {pkg_dir}/package.json") from None
    return f"npm/{pkg}@{version}/{rest}", pkg_dir / rest


def _resolve(unit: str, imported: str, root: Path, npm_files: dict[str, Path]) -> str:
    """The source unit name of `imported` as written in `unit`."""
    if imported.startswith("."):
        base = unit.rsplit("/", 1)[0]
        parts: list[str] = []
        for piece in f"{base}/{imported}".split("/"):
            if piece == "..":
                parts.pop()
            elif piece not in (".", ""):
                parts.append(piece)
        return "/".join(parts)
    name, path = _npm_unit(imported, root)
    npm_files[name] = path
    return name


def _unit_path(unit: str, root: Path, npm_files: dict[str, Path]) -> Path:
    if unit.startswith(PROJECT_PREFIX):
        return root / unit[len(PROJECT_PREFIX) :]
    if unit in npm_files:
        return npm_files[unit]
    if not unit.startswith("npm/"):
        raise ArtifactError(f"unknown source unit {unit!r}")
    # a relative import inside an npm package: npm/[@scope/]<name>@<version>/<rest>
    parts = unit[len("npm/") :].split("/")
    n = 2 if parts[0].startswith("@") else 1
    pkg = "/".join([*parts[: n - 1], parts[n - 1].rsplit("@", 1)[0]])
    return root / "node_modules" / pkg / "/".join(parts[n:])


def build_input(settings: dict[str, Any], root: Path = REPO_ROOT) -> dict[str, Any]:
    """The standard-JSON input: `contracts/src/**/*.sol` of `root` and their imports, `settings` (the
    optimizer, evmVersion, viaIR, remappings ... as recorded) with this module's output selection."""
    src = root / SOURCES_DIR
    pending = sorted(PROJECT_PREFIX + str(p.relative_to(root)) for p in src.rglob("*.sol"))
    if not pending:
        raise ArtifactError(f"no Solidity sources under {src}")
    npm_files: dict[str, Path] = {}
    sources: dict[str, dict[str, str]] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = _unit_path(unit, root, npm_files)
        try:
            content = path.read_text()
        except OSError:
            raise ArtifactError(f"source {unit} not found at {path}") from None
        sources[unit] = {"content": content}
        for imported in _IMPORT.findall(content):
            pending.append(_resolve(unit, imported, root, npm_files))
    return {
        "language": "Solidity",
        "sources": dict(sorted(sources.items())),
        "settings": {**settings, "outputSelection": OUTPUT_SELECTION},
    }


def input_hash(std_input: dict[str, Any]) -> str:
    """`0x` keccak256 of the input's canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(std_input, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + keccak256(blob).hex()


def hardhat_compiler(
    build_info_dir: Path = BUILD_INFO_DIR, artifact: Path | None = None
) -> tuple[str, dict[str, Any]]:
    """The compiler long version and settings (output selection dropped) of the Hardhat build that produced
    the artifacts `cairn deploy` deploys (the build named by the RewardToken artifact's `buildInfoId`)."""
    from cairn.core.contracts import artifact_path

    path = artifact or artifact_path("RewardToken")
    try:
        build_id = json.loads(path.read_text())["buildInfoId"]
        info = json.loads((build_info_dir / f"{build_id}.json").read_text())
    except (OSError, KeyError, json.JSONDecodeError):
        raise ArtifactError(
            f"no build info for {path} under {build_info_dir}: run `npx hardhat build` first"
        ) from None
    settings = {k: v for k, v in info["input"]["settings"].items() if k != "outputSelection"}
    return str(info["solcLongVersion"]), settings
