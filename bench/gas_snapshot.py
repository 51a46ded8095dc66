"""contracts/gas-snapshot.json: the exact gas of every scenario, committed so that a change up or down shows
in the diff (as Uniswap v4-core's snapshots). A flat JSON object, sorted keys, `"Contract.function: scenario":
gas` with integer values and nothing but gas."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "contracts" / "gas-snapshot.json"
UPDATE_HINT = (
    "make gas-snapshot (or .venv/bin/python -m bench.gas --update), then commit contracts/gas-snapshot.json"
)


def load(path: Path = SNAPSHOT) -> dict[str, int]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict) and all(type(v) is int for v in data.values()), (
        f"{path}: gas must be integers"
    )
    return data


def write(gas: dict[str, int], path: Path = SNAPSHOT) -> None:
    path.write_text(json.dumps(dict(sorted(gas.items())), indent=2) + "\n")


def diff(committed: dict[str, int], measured: dict[str, int]) -> list[str]:
    """One line per scenario whose gas differs, appeared or disappeared; empty when they are equal."""
    lines = []
    for name in sorted(committed.keys() | measured.keys()):
        old, new = committed.get(name), measured.get(name)
        if old == new:
            continue
        if old is None:
            lines.append(f"  + {name}: {new} (not in the snapshot)")
        elif new is None:
            lines.append(f"  - {name}: {old} (no longer measured)")
        else:
            lines.append(f"  ~ {name}: {old} -> {new} ({new - old:+d}, {(new - old) / old:+.3%})")
    return lines


def report(committed: dict[str, int], measured: dict[str, int]) -> str:
    """The failure message of a stale snapshot: what differs and how to update it."""
    lines = diff(committed, measured)
    return "\n".join(
        [
            f"{SNAPSHOT.relative_to(REPO)} differs from a fresh measurement on anvil:",
            *lines,
            f"If intended: {UPDATE_HINT}",
        ]
    )
