"""What the demo registers: small plain-English text corpora on distinct topics, written for Cairn (public
domain), shipped as package data. The demo hashes them (SHA-256), uploads them to the API's content store and
registers them by their hash; the trainer learns from their content."""

from __future__ import annotations

from pathlib import Path

CORPORA_DIR = Path(__file__).parent / "corpora"


def corpus_files() -> list[Path]:
    """The demo corpora (`cairn/demo/corpora/*.txt`), sorted by name."""
    return sorted(CORPORA_DIR.glob("*.txt"))
