"""Comments, docstrings and docs cite only files and modules that exist: a file moved or a module renamed
without updating what cites it fails here, naming the place."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

from cairn.core.settings import REPO_ROOT

# Path-like words ending in a source or data extension: `backend/models.py`, `contracts/gas-snapshot.json`.
PATH_RE = re.compile(r"(?<![\w./@-])((?:\.?[\w-]+/)+[\w.-]+\.(?:py|md|json|sol|sh|c|cjs|js|toml|ini|lock))\b")
# Dotted names of our own packages, quoted in backticks: `cairn.core.errors`, `indexer.core.Indexer`.
MODULE_RE = re.compile(r"`((?:cairn|indexer|backend)(?:\.[A-Za-z_]\w*)+)")
# Paths that name run-time or external files, not files of this repository.
NOT_REPO_FILES = ("openzeppelin/", ".cairn/", "WORK/", "s/scripts/", "node_modules/")
# Where a relative path may start: the repository, the citing file's folder, and the folders that paths are
# relative to in their context (contracts' imports; package data in pyproject.toml).
BASES = ("", "contracts", "cairn", "indexer", "backend")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", *patterns], capture_output=True, text=True, check=True
    ).stdout
    return [REPO_ROOT / f for f in out.split() if not f.startswith("node_modules")]


def _exists(ref: str, cited_in: Path) -> bool:
    return (cited_in.parent / ref).exists() or any((REPO_ROOT / base / ref).exists() for base in BASES)


def _resolves(dotted: str) -> bool:
    """A module, or an attribute chain of a module (`pkg.mod.Class.method`)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_cited_files_exist() -> None:
    missing = []
    for path in _tracked("*.py", "*.md", "Makefile", "*.sol", "*.sh", "*.toml"):
        for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            for m in PATH_RE.finditer(line):
                ref = m.group(1)
                if ref.startswith(NOT_REPO_FILES) or "<" in ref or "*" in ref or _exists(ref, path):
                    continue
                missing.append(f"{path.relative_to(REPO_ROOT)}:{n}: {ref}")
    assert missing == [], "cited files that do not exist:\n" + "\n".join(missing)


def test_cited_modules_exist() -> None:
    missing = []
    for path in _tracked("*.py", "*.md"):
        for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            for m in MODULE_RE.finditer(line):
                dotted = m.group(1).rstrip(".")
                if dotted.endswith((".py", ".md", ".json", ".db")) or _resolves(dotted):
                    continue
                missing.append(f"{path.relative_to(REPO_ROOT)}:{n}: {dotted}")
    assert missing == [], "cited modules or names that do not exist:\n" + "\n".join(missing)
