"""`cairn train`'s training step on the demo corpora: read the datasets' content from the store, train the
embedded model (TF-IDF retrieval + trigram language model) and store its content-addressed artefact
(`backend.inference.training.train_from_store`, the function `cairn train` calls before the chain).

Figures
* `train_seconds_demo`: median wall time of `REPEATS` runs, each into a fresh content store;
* `train_demo_tokens`: training tokens of the corpora (all datasets together).

The corpora are the demo's datasets, the text files the repository ships (`cairn.demo.corpus_files`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from backend.inference.training import Candidate, train_from_store
from cairn.core.content import ContentStore, hash_file
from cairn.demo import corpus_files

REPEATS = 5


def run() -> dict[str, float]:
    files = corpus_files()
    assert files, "no demo corpora under cairn/demo/corpora"
    times: list[float] = []
    tokens = 0
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            store = ContentStore(Path(tmp), max_bytes=1 << 30)
            candidates = []
            for f in files:
                digest, size = hash_file(f)
                store.put_file(digest, f)
                candidates.append(Candidate("0x" + digest.hex(), "0x" + "00" * 20, size, 10_000))
            started = time.perf_counter()
            art, _ = train_from_store(store, sorted(candidates, key=lambda c: c.content_hash))
            times.append(time.perf_counter() - started)
            tokens = sum(art.tokens)
    return {"train_seconds_demo": round(statistics.median(times), 4), "train_demo_tokens": float(tokens)}


if __name__ == "__main__":
    print(run())
