"""Compiled contract artifacts (ABI and creation bytecode) produced by `npx hardhat build`.

Hardhat 3 writes one JSON file per contract at `artifacts/contracts/src/<File>.sol/<Name>.json`. Nothing here
compiles: if the artifacts are missing the caller gets one clear CairnError telling it to build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cairn.core.errors import ArtifactError
from cairn.core.settings import REPO_ROOT

ARTIFACTS_DIR = REPO_ROOT / "artifacts" / "contracts" / "src"

# Deployable Cairn contracts, in deployment order. The RewardDistributor comes right after the RewardToken:
# the token names it (immutable DISTRIBUTOR, the only caller of its claim ledger), so its address is predicted
# from the deployer's next nonce.
CORE_CONTRACTS: tuple[str, ...] = (
    "RewardToken",
    "RewardDistributor",
    "ContributionRegistry",
    "ModelRegistry",
    "PaymentRouter",
)


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code

    def event_names(self) -> list[str]:
        return [str(item["name"]) for item in self.abi if item.get("type") == "event"]


def artifact_path(name: str, artifacts_dir: Path = ARTIFACTS_DIR) -> Path:
    return artifacts_dir / f"{name}.sol" / f"{name}.json"


@lru_cache(maxsize=32)
def load_artifact(name: str, artifacts_dir: Path = ARTIFACTS_DIR) -> Artifact:
    """ABI and bytecode of contract `name`; raises ArtifactError with the fix if it is not built."""
    path = artifact_path(name, artifacts_dir)
    if not path.is_file():
        raise ArtifactError(
            f"no compiled artifact for {name} at {path}: run `npx hardhat build` (or `make build`) first"
        )
    try:
        data = json.loads(path.read_text())
        abi = data["abi"]
        bytecode = data["bytecode"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ArtifactError(
            f"artifact {path} is unreadable ({exc}): rebuild with `npx hardhat build`"
        ) from None
    if not isinstance(abi, list) or not isinstance(bytecode, str) or not bytecode.startswith("0x"):
        raise ArtifactError(f"artifact {path} has no ABI or bytecode: rebuild with `npx hardhat build`")
    if len(bytecode) <= 2:
        raise ArtifactError(f"{name} is abstract or an interface (no bytecode in {path})")
    return Artifact(name=name, abi=abi, bytecode=bytecode)
