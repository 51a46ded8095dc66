"""Bytecode verification: compile this repository's sources with the deployment's recorded compiler settings
(py-solc-x over the npm `solc` wrapper `scripts/solc-wrap.cjs`, offline) and compare with the chain.

Per contract:
* **runtime code** (`eth_getCode`) against the compiled `deployedBytecode`, with the immutables' bytes
  (`immutableReferences`) zeroed on both sides and the CBOR metadata tail (its length is the code's last two
  bytes) compared separately: equal code and tail is an `exact` match, equal code with another tail a
  `partial` one (same executable code, other metadata: e.g. other source file names or comments);
* **immutables**: every reference to one immutable holds the same value in the deployed code;
* **constructor arguments**: the deployment transaction (`tx_hash` in the deployment file) created this
  address, its input is the compiled creation code (metadata tail masked when it differs) followed by exactly
  the ABI encoding of the recorded arguments, and the recorded arguments agree with the deployment file
  (other contracts' addresses, the epoch clock).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from web3 import Web3

from cairn.core.contracts import CORE_CONTRACTS
from cairn.core.deployment import Deployment
from cairn.core.errors import ArtifactError
from cairn.core.settings import REPO_ROOT
from cairn.core.solc_input import build_input, input_hash

SOLC_WRAPPER = REPO_ROOT / "scripts" / "solc-wrap.cjs"
# Constructor parameters (trailing "_" dropped) that name another contract of the deployment.
ADDRESS_ARGS = {
    "token": "RewardToken",
    "registry": "ContributionRegistry",
    "modelRegistry": "ModelRegistry",
    "distributor": "RewardDistributor",
    "router": "PaymentRouter",
}


# Compiler outputs by (input hash, compiler): the same input compiles to the same output (the watchtower and
# the tests verify more than once per process).
_COMPILED: dict[tuple[str, str], tuple[dict[str, Compiled], str, str]] = {}


@dataclass
class ContractVerdict:
    name: str
    address: str
    ok: bool = True
    match: str = "mismatch"  # exact | partial | mismatch | unverifiable
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)


@dataclass
class Compiled:
    abi: list[dict[str, Any]]
    creation: bytes
    runtime: bytes
    immutables: list[tuple[int, int, str]]  # (start, length, id)


def compile_sources(
    settings: dict[str, Any], root: Path = REPO_ROOT, solc_binary: Path = SOLC_WRAPPER
) -> tuple[dict[str, Compiled], str, str]:
    """Compile `root`'s contracts with `settings`: (contracts by name, input hash, compiler version)."""
    import solcx
    from solcx.exceptions import SolcError

    std_input = build_input(settings, root)
    ihash = input_hash(std_input)
    cached = _COMPILED.get((ihash, str(solc_binary)))
    if cached is not None:
        return cached
    try:
        out = solcx.compile_standard(std_input, solc_binary=str(solc_binary), allow_empty=True)
        version = _version(solc_binary)
    except (SolcError, OSError, subprocess.CalledProcessError) as exc:
        raise ArtifactError(f"compiling the sources failed: {str(exc).splitlines()[0]}") from None
    compiled: dict[str, Compiled] = {}
    for unit, contracts in out.get("contracts", {}).items():
        if not unit.startswith("project/contracts/src/"):
            continue
        for name, c in contracts.items():
            evm = c["evm"]
            refs = [
                (int(r["start"]), int(r["length"]), ident)
                for ident, items in evm["deployedBytecode"].get("immutableReferences", {}).items()
                for r in items
            ]
            compiled[name] = Compiled(
                abi=c["abi"],
                creation=bytes.fromhex(evm["bytecode"]["object"]),
                runtime=bytes.fromhex(evm["deployedBytecode"]["object"]),
                immutables=refs,
            )
    _COMPILED[(ihash, str(solc_binary))] = (compiled, ihash, version)
    return compiled, ihash, version


def _version(solc_binary: Path) -> str:
    text = subprocess.run([str(solc_binary), "--version"], capture_output=True, text=True, check=True).stdout
    return text.rsplit("Version:", 1)[-1].strip()


def _release(version: str) -> str:
    """`0.8.37+commit.f401782d` of `0.8.37+commit.f401782d.Emscripten.clang` (the build platform dropped: the
    same release and commit compile the same bytes on every platform)."""
    m = re.match(r"\d+\.\d+\.\d+(?:-[\w.]+)?\+commit\.[0-9a-f]+", version)
    return m.group(0) if m else version


def metadata_length(code: bytes) -> int:
    """Bytes of the CBOR metadata tail, its 2-byte length included (0 when the code has none)."""
    if len(code) < 2:
        return 0
    n = int.from_bytes(code[-2:], "big") + 2
    return n if n <= len(code) and code[-n] in (0xA1, 0xA2, 0xA3, 0xA4, 0xA5) else 0


def _masked(code: bytes, refs: list[tuple[int, int, str]]) -> bytearray:
    out = bytearray(code)
    for start, length, _ in refs:
        out[start : start + length] = b"\x00" * length
    return out


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def compare_runtime(onchain: bytes, c: Compiled, verdict: ContractVerdict) -> None:
    if not onchain:
        verdict.fail(f"{verdict.name}: no code at {verdict.address}")
        return
    if len(onchain) != len(c.runtime):
        verdict.fail(
            f"{verdict.name}: runtime code at {verdict.address} is {len(onchain)} bytes, the compiled source "
            f"gives {len(c.runtime)}: deployed from other source or settings"
        )
        return
    meta = metadata_length(c.runtime)
    body_chain = _masked(onchain[: len(onchain) - meta], c.immutables)
    body_src = _masked(c.runtime[: len(c.runtime) - meta], c.immutables)
    if body_chain != body_src:
        at = _first_difference(bytes(body_chain), bytes(body_src))
        verdict.fail(
            f"{verdict.name}: runtime code at {verdict.address} differs from the compiled source (first "
            f"difference at byte {at}, immutables and metadata masked): deployed from other source or "
            "settings"
        )
        return
    values: dict[str, set[bytes]] = {}
    for start, length, ident in c.immutables:
        values.setdefault(ident, set()).add(onchain[start : start + length])
    for ident, seen in values.items():
        if len(seen) > 1:
            verdict.fail(f"{verdict.name}: immutable #{ident} holds {len(seen)} different values in the code")
    if onchain[len(onchain) - meta :] == c.runtime[len(c.runtime) - meta :]:
        verdict.match = "exact"
    else:
        verdict.match = "partial"
        verdict.notes.append(
            "executable code matches; the metadata tail differs (other source names/comments)"
        )


def _constructor_types(abi: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return next((list(e.get("inputs", [])) for e in abi if e.get("type") == "constructor"), [])


def _abi_type(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(p) for p in param["components"])
        return f"({inner}){t[5:]}"
    return t


def check_constructor(w3: Web3, dep: Deployment, c: Compiled, verdict: ContractVerdict) -> None:
    info = dep.contracts[verdict.name]
    if info.tx_hash is None or info.constructor_args is None:
        verdict.fail(f"{verdict.name}: the deployment file records no deployment transaction or arguments")
        return
    tx = w3.eth.get_transaction(info.tx_hash)  # type: ignore[arg-type]
    receipt = w3.eth.get_transaction_receipt(info.tx_hash)  # type: ignore[arg-type]
    created = receipt.get("contractAddress")
    if tx.get("to") is not None or created is None or str(created).lower() != info.address.lower():
        verdict.fail(f"{verdict.name}: transaction {info.tx_hash} did not create {info.address}")
        return
    data = bytes(tx["input"])
    creation = c.creation
    if len(data) < len(creation):
        verdict.fail(f"{verdict.name}: the deployment transaction's input is shorter than the creation code")
        return
    head = bytearray(data[: len(creation)])
    want = bytearray(creation)
    meta = metadata_length(c.runtime)
    if verdict.match == "partial" and meta:  # the runtime's metadata tail sits inside the creation code
        tail = c.runtime[len(c.runtime) - meta :]
        at = creation.find(tail)
        if at >= 0:
            head[at : at + meta] = want[at : at + meta] = b"\x00" * meta
    if head != want:
        verdict.fail(
            f"{verdict.name}: the deployment transaction's creation code differs from the compiled source"
        )
        return
    inputs = _constructor_types(c.abi)
    types = [_abi_type(p) for p in inputs]
    try:
        expected = encode(
            types, [_abi_value(t, v) for t, v in zip(types, info.constructor_args, strict=True)]
        )
    except (ValueError, TypeError) as exc:
        verdict.fail(f"{verdict.name}: the recorded constructor arguments do not encode: {exc}")
        return
    if data[len(creation) :] != expected:
        from eth_abi.abi import decode

        actual = decode(types, data[len(creation) :])
        diffs = [
            f"{p['name']}={_show(a)} (file says {_show(r)})"
            for p, a, r in zip(inputs, actual, info.constructor_args, strict=True)
            if _norm(a) != _norm(r)
        ]
        verdict.fail(
            f"{verdict.name}: wrong constructor arguments: the deployment transaction has "
            + (", ".join(diffs) or "other bytes")
        )
        return
    for p, value in zip(inputs, info.constructor_args, strict=True):
        key = str(p["name"]).rstrip("_")
        if key in ADDRESS_ARGS and ADDRESS_ARGS[key] in dep.contracts:
            target = dep.contracts[ADDRESS_ARGS[key]].address
            if str(value).lower() != target.lower():
                verdict.fail(
                    f"{verdict.name}: constructor argument {p['name']}={value} is not the "
                    f"deployment's {ADDRESS_ARGS[key]} {target}"
                )
        if key == "genesis" and int(value) != dep.epoch.genesis:
            verdict.fail(
                f"{verdict.name}: constructor genesis {value} != the deployment's {dep.epoch.genesis}"
            )
        if key in ("length", "epochLength") and int(value) != dep.epoch.length:
            verdict.fail(
                f"{verdict.name}: constructor epoch length {value} != the deployment's {dep.epoch.length}"
            )


def _abi_value(typ: str, value: Any) -> Any:
    if typ == "address":
        return Web3.to_checksum_address(str(value))
    if typ.startswith(("uint", "int")) and not typ.endswith("]"):
        return int(value)
    if typ.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def _norm(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str):
        return v.lower()
    return v


def _show(v: Any) -> str:
    return str(_norm(v))


@dataclass
class BytecodeReport:
    contracts: list[ContractVerdict]
    input_hash: str
    compiler: str
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(v.ok for v in self.contracts)


def verify_bytecode(
    w3: Web3, dep: Deployment, *, root: Path = REPO_ROOT, solc_binary: Path = SOLC_WRAPPER
) -> BytecodeReport:
    """Compile the sources with the deployment's recorded settings and verify every core contract."""
    started = time.perf_counter()
    if dep.compiler is None:
        verdicts = [
            ContractVerdict(
                name,
                dep.contracts[name].address,
                ok=False,
                match="unverifiable",
                problems=[f"{name}: the deployment file records no compiler settings"],
            )
            for name in CORE_CONTRACTS
            if name in dep.contracts
        ]
        return BytecodeReport(
            verdicts,
            "",
            "",
            time.perf_counter() - started,
            [
                "the deployment file records no compiler (deployed before `cairn deploy` "
                "recorded it): nothing to compile against"
            ],
        )
    compiled, ihash, version = compile_sources(dep.compiler.settings, root, solc_binary)
    problems = []
    if ihash != dep.compiler.input_hash:
        problems.append(
            f"the sources give standard-JSON input {ihash}, the deployment recorded "
            f"{dep.compiler.input_hash}: "
            "these are not the sources it was deployed from (the per-contract verdicts say which differ)"
        )
    if _release(version) != _release(dep.compiler.version):
        problems.append(f"the compiler is {version}, the deployment was built with {dep.compiler.version}")
    verdicts = []
    for name in CORE_CONTRACTS:
        if name not in dep.contracts:
            continue
        info = dep.contracts[name]
        verdict = ContractVerdict(name, info.address)
        verdicts.append(verdict)
        c = compiled.get(name)
        if c is None:
            verdict.fail(f"{name}: the sources have no contract {name}")
            continue
        code = bytes(w3.eth.get_code(Web3.to_checksum_address(info.address)))
        compare_runtime(code, c, verdict)
        if verdict.ok:
            check_constructor(w3, dep, c, verdict)
        if not verdict.ok:
            verdict.match = "mismatch" if verdict.match != "unverifiable" else verdict.match
    return BytecodeReport(verdicts, ihash, version, time.perf_counter() - started, problems)
