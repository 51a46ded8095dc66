"""The deployment file: what `cairn deploy` writes and everything else reads.

Format (JSON, default path `.cairn/deployment.json`, override with CAIRN_DEPLOYMENT_FILE):

    {
      "chain_id": 31337,
      "start_block": 1,                 # first block the indexer must read
      "deployer": "0x...",
      "deployed_at": "2026-11-23T10:00:00Z",
      "epoch": {"genesis": 1763892000, "length": 3600},   # seconds
      "contracts": {
        "RewardToken": {"address": "0x...", "block": 1, "abi": [...]},
        "ContributionRegistry": {...}, "ModelRegistry": {...},
        "PaymentRouter": {...}, "RewardDistributor": {...}
      },
      "compiler": {"version": "0.8.37+commit.f401782d", "settings": {...}, "input_hash": "0x..."}
    }

Each contract also records its deployment transaction (`tx_hash`) and its constructor arguments; with
`compiler` (the solc version, the settings and the keccak256 of the standard-JSON input that
`cairn.core.solc_input.build_input` makes of the sources) they let `cairn audit` rebuild and compare every
contract's code (files written before these fields existed lack them: the audit then says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address
from pydantic import BaseModel, Field, ValidationError

from cairn.core.errors import DeploymentError, WrongChainError

if TYPE_CHECKING:  # the indexer's processes never load web3 (start-up time and memory)
    from web3 import Web3
    from web3.contract import Contract


class ContractInfo(BaseModel):
    address: str
    block: int = Field(ge=0)
    abi: list[dict[str, Any]]
    tx_hash: str | None = None
    constructor_args: list[Any] | None = None


class CompilerInfo(BaseModel):
    version: str = Field(description="solc long version, e.g. 0.8.37+commit.f401782d")
    settings: dict[str, Any] = Field(description="standard-JSON settings without outputSelection")
    input_hash: str = Field(description="0x keccak256 of the canonical standard-JSON input")


class EpochConfig(BaseModel):
    genesis: int = Field(ge=0, description="Unix time at which epoch 0 starts")
    length: int = Field(gt=0, description="Epoch length in seconds")

    def epoch_at(self, timestamp: int) -> int:
        return max(0, (timestamp - self.genesis) // self.length)

    def bounds(self, epoch: int) -> tuple[int, int]:
        """[start, end) in unix seconds."""
        start = self.genesis + epoch * self.length
        return start, start + self.length


class Deployment(BaseModel):
    chain_id: int
    start_block: int = Field(ge=0)
    deployer: str
    deployed_at: str
    epoch: EpochConfig
    contracts: dict[str, ContractInfo]
    compiler: CompilerInfo | None = None

    def address(self, name: str) -> str:
        try:
            return self.contracts[name].address
        except KeyError:
            raise DeploymentError(f"deployment has no contract named {name!r}") from None

    def abi(self, name: str) -> list[dict[str, Any]]:
        try:
            return self.contracts[name].abi
        except KeyError:
            raise DeploymentError(f"deployment has no contract named {name!r}") from None

    def contract(self, w3: Web3, name: str) -> Contract:
        """The deployment's contract `name` on `w3` (checksummed address, the recorded ABI)."""
        return w3.eth.contract(address=to_checksum_address(self.address(name)), abi=self.abi(name))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)

    def require_chain(self, chain_id: int, rpc_url: str) -> None:
        if chain_id != self.chain_id:
            raise WrongChainError(
                f"RPC {rpc_url} is chain {chain_id} but the deployment file is for chain {self.chain_id}"
            )


def load_deployment(path: Path) -> Deployment:
    """Read and validate a deployment file, with one clear line on any problem."""
    if not path.exists():
        raise DeploymentError(f"deployment file {path} not found (run `cairn deploy` or `make run`)")
    try:
        return Deployment.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise DeploymentError(f"deployment file {path} is invalid: {first}") from None
