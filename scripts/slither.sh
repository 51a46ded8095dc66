#!/usr/bin/env bash
# Slither over contracts/src, offline: a throw-away venv, solc = scripts/solc-wrap.cjs (npm solc), and a
# standard-JSON input (crytic-compile's solc platform needs --combined-json, which solc-js lacks).
# Usage: bash scripts/slither.sh [extra slither args]   (triage: contracts/SECURITY.md)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SLITHER_VENV:-/tmp/slither-venv}
[ -x "$VENV/bin/slither" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "slither-analyzer>=0.11,<0.12"; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '#!/bin/sh\nexec node %s/scripts/solc-wrap.cjs "$@"\n' "$PWD" > "$WORK/solc"
chmod +x "$WORK/solc"
python3 - "$WORK/input.json" <<'PY'
import json, pathlib, sys
sources = {str(p): {"urls": [str(p)]} for p in sorted(pathlib.Path("contracts/src").glob("*.sol"))}
settings = {"optimizer": {"enabled": True, "runs": 10000}, "evmVersion": "cancun",
            "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers"], "": ["ast"]}}}
json.dump({"language": "Solidity", "sources": sources, "settings": settings}, open(sys.argv[1], "w"))
PY
PATH="$PWD/node_modules/.bin:$PATH" "$VENV/bin/slither" "$WORK/input.json" --compile-force-framework solc-json \
  --solc "$WORK/solc" --solc-working-dir . "$@"
