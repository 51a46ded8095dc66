"""A small retrieval + language model over text, trained with numpy in seconds, deterministic to the byte.

* **Tokens**: lowercased words (letters, digits, inner apostrophes) and the punctuation marks `. , ! ? ; :`.
* **Passages**: each document is cut into runs of whole sentences of at least `PASSAGE_TOKENS` tokens (a
  sentence longer than `MAX_PASSAGE_TOKENS` is cut); each passage remembers its dataset.
* **Retrieval**: TF-IDF (`1 + ln tf`, smoothed `idf = ln((1 + P) / (1 + df)) + 1`), rows L2-normalised, stored
  as term postings; a question is scored by cosine against every passage.
* **Language model**: word trigram counts with backoff to bigrams and unigrams, over each document's token
  stream. An answer is the best passage's sentence that holds most of the question's words, followed by a
  continuation sampled from the trigram model, seeded by the question's SHA-256 (the same question gets the
  same answer).
* **Artefact**: one file, `MAGIC`, a 4-byte big-endian header length, the header as canonical JSON (sorted
  keys, no spaces: vocabulary, datasets, array layout) and the arrays' little-endian bytes. Nothing in it
  depends on time or on the machine, so the same corpora give byte-identical artefacts (and content hashes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cairn.core.errors import InvalidInputError

MAGIC = b"CAIRNLM\x01"
FORMAT = 1
PASSAGE_TOKENS = 40
MAX_PASSAGE_TOKENS = 160
TOP_K = 3
MIN_CONTINUATION = 8
SENTENCE_END = frozenset({".", "!", "?"})
PUNCT = frozenset({".", ",", "!", "?", ";", ":"})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[.,!?;:]")

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def tokenize(text: str) -> list[str]:
    """The model's tokens of `text` (also the unit of the API's token usage)."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to readable text: no space before punctuation, sentences capitalised."""
    out: list[str] = []
    capital = True
    for tok in tokens:
        word = tok.capitalize() if capital and tok not in PUNCT else tok
        if out and tok not in PUNCT:
            out.append(" ")
        out.append(word)
        capital = tok in SENTENCE_END or (capital and tok in PUNCT)
    return "".join(out)


@dataclass(frozen=True)
class Document:
    """One dataset's text: `dataset_id` is its content hash (`0x` hex)."""

    dataset_id: str
    text: str


@dataclass(frozen=True)
class Passage:
    dataset_id: str
    score: float
    text: str


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str  # "stop" (a sentence ended) or "length" (max_tokens reached)
    prompt_tokens: int
    completion_tokens: int
    passages: list[Passage]
    retrieved: bool  # False: no question word is in the vocabulary; the answer is the trigram model's alone


def _passages(tokens: list[str]) -> list[list[str]]:
    """Runs of whole sentences of at least PASSAGE_TOKENS tokens (the last run may be shorter)."""
    out: list[list[str]] = []
    cur: list[str] = []
    for tok in tokens:
        cur.append(tok)
        if (tok in SENTENCE_END and len(cur) >= PASSAGE_TOKENS) or len(cur) >= MAX_PASSAGE_TOKENS:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def _counts(keys: I64) -> tuple[I64, I64]:
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq.astype(np.int64), counts.astype(np.int64)


class EmbeddedModel:
    """A trained model: arrays plus vocabulary and dataset list. Build with `train`, read with `load`."""

    def __init__(self, header: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.header = header
        self.vocab: list[str] = header["vocab"]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.datasets: list[dict[str, Any]] = header["datasets"]
        self.a = arrays
        self.V = len(self.vocab)

    # --- serialisation -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        layout: dict[str, list[Any]] = {}
        blobs: list[bytes] = []
        offset = 0
        for name in sorted(self.a):
            arr = np.ascontiguousarray(self.a[name])
            raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            layout[name] = [arr.dtype.str.lstrip("<>|="), list(arr.shape), offset, len(raw)]
            blobs.append(raw)
            offset += len(raw)
        header = {**self.header, "arrays": layout}
        head = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        return MAGIC + len(head).to_bytes(4, "big") + head + b"".join(blobs)

    @classmethod
    def load(cls, data: bytes) -> EmbeddedModel:
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            raise InvalidInputError("not a Cairn model artefact (bad magic)")
        n = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
        start = len(MAGIC) + 4
        header = json.loads(data[start : start + n])
        if header.get("format") != FORMAT:
            raise InvalidInputError(f"unsupported model artefact format {header.get('format')!r}")
        body = memoryview(data)[start + n :]
        arrays: dict[str, npt.NDArray[Any]] = {}
        for name, (dtype, shape, off, size) in header.pop("arrays").items():
            arrays[name] = np.frombuffer(body[off : off + size], dtype=np.dtype("<" + dtype)).reshape(shape)
        return cls(header, arrays)

    # --- training ------------------------------------------------------------------------------------
    @classmethod
    def train(cls, documents: Sequence[Document]) -> EmbeddedModel:
        """Train on `documents` (one per dataset, in the caller's order; ids must be distinct)."""
        docs = [(d.dataset_id, tokenize(d.text)) for d in documents]
        docs = [(i, t) for i, t in docs if t]
        if not docs:
            raise InvalidInputError("no training text: every selected dataset is empty")
        vocab = sorted({tok for _, toks in docs for tok in toks})
        V = len(vocab)
        if V >= 1 << 21:
            raise InvalidInputError(f"vocabulary of {V} words is too large for the trigram keys")
        index = {w: i for i, w in enumerate(vocab)}
        ptr: list[int] = [0]
        pds: list[int] = []
        ptoks: list[int] = []
        uni = np.zeros(V, dtype=np.int64)
        bi_parts: list[I64] = []
        tri_parts: list[I64] = []
        for d, (_, toks) in enumerate(docs):
            ids = np.fromiter((index[t] for t in toks), dtype=np.int64, count=len(toks))
            uni += np.bincount(ids, minlength=V)
            bi_parts.append(ids[:-1] * V + ids[1:])
            tri_parts.append((ids[:-2] * V + ids[1:-1]) * V + ids[2:])
            for p in _passages(toks):
                ptoks.extend(index[t] for t in p)
                ptr.append(len(ptoks))
                pds.append(d)
        bi_keys, bi_counts = _counts(np.concatenate(bi_parts))
        tri_keys, tri_counts = _counts(np.concatenate(tri_parts))
        passage_ptr = np.asarray(ptr, dtype=np.int64)
        passage_toks = np.asarray(ptoks, dtype=np.int32)
        P = len(pds)
        # TF-IDF postings: unique (passage, term) pairs with counts, re-sorted by term
        pid = np.repeat(np.arange(P, dtype=np.int64), np.diff(passage_ptr))
        pair, tf = _counts(pid * V + passage_toks.astype(np.int64))
        p_of, t_of = pair // V, pair % V
        df = np.bincount(t_of, minlength=V)
        idf = (np.log((1.0 + P) / (1.0 + df)) + 1.0).astype(np.float64)
        w = (1.0 + np.log(tf.astype(np.float64))) * idf[t_of]
        norms = np.sqrt(np.bincount(p_of, weights=w * w, minlength=P))
        w = w / norms[p_of]
        order = np.lexsort((p_of, t_of))
        post_ptr = np.zeros(V + 1, dtype=np.int64)
        post_ptr[1:] = np.cumsum(df)
        header = {
            "format": FORMAT,
            "vocab": vocab,
            "datasets": [{"id": i, "tokens": len(t)} for i, t in docs],
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "passage_ds": np.asarray(pds, dtype=np.int32),
            "passage_ptr": passage_ptr,
            "passage_toks": passage_toks,
            "idf": idf.astype(np.float32),
            "post_ptr": post_ptr,
            "post_doc": p_of[order].astype(np.int32),
            "post_w": w[order].astype(np.float32),
            "uni": uni,
            "bi_keys": bi_keys,
            "bi_counts": bi_counts,
            "tri_keys": tri_keys,
            "tri_counts": tri_counts,
        }
        return cls(header, arrays)

    # --- answering -----------------------------------------------------------------------------------
    def retrieve(self, tokens: Sequence[str], k: int = TOP_K) -> list[tuple[int, float]]:
        """The `k` best passages for `tokens` as (passage, cosine score > 0), best first (ties: lower id)."""
        ids = [self.index[t] for t in tokens if t in self.index and t not in PUNCT]
        if not ids:
            return []
        terms, tf = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        q = (1.0 + np.log(tf)) * self.a["idf"][terms]
        q = q / np.sqrt(float(np.dot(q, q)))
        scores = np.zeros(len(self.a["passage_ds"]), dtype=np.float64)
        ptr, doc, w = self.a["post_ptr"], self.a["post_doc"], self.a["post_w"]
        for t, qw in zip(terms.tolist(), q.tolist(), strict=True):
            lo, hi = int(ptr[t]), int(ptr[t + 1])
            np.add.at(scores, doc[lo:hi], qw * w[lo:hi].astype(np.float64))
        best = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return [(int(p), float(scores[p])) for p in best if scores[p] > 0]

    def best_sentence(self, p: int, question: Sequence[str]) -> list[str]:
        """The sentence of passage `p` that holds most of the question's words (weighted by idf; the first
        such sentence on ties), where the answer starts."""
        wanted = {self.index[t] for t in question if t in self.index and t not in PUNCT}
        idf = self.a["idf"]
        sentences: list[list[str]] = [[]]
        for tok in self.passage_tokens(p):
            sentences[-1].append(tok)
            if tok in SENTENCE_END:
                sentences.append([])
        best: list[str] = []
        best_score = -1.0
        for sent in sentences:
            ids = {self.index[t] for t in sent}
            score = float(sum(float(idf[i]) for i in ids & wanted))
            if sent and score > best_score:
                best, best_score = sent, score
        return best

    def passage_tokens(self, p: int) -> list[str]:
        lo, hi = int(self.a["passage_ptr"][p]), int(self.a["passage_ptr"][p + 1])
        return [self.vocab[i] for i in self.a["passage_toks"][lo:hi].tolist()]

    def _next(self, w1: int | None, w2: int | None, rng: np.random.Generator) -> int:
        """Sample the next token id from the trigram counts, backing off to bigrams, then unigrams."""
        V = self.V
        for keys, counts, prefix in (
            (self.a["tri_keys"], self.a["tri_counts"], None if w1 is None or w2 is None else w1 * V + w2),
            (self.a["bi_keys"], self.a["bi_counts"], w2),
        ):
            if prefix is None:
                continue
            lo = int(np.searchsorted(keys, prefix * V, side="left"))
            hi = int(np.searchsorted(keys, prefix * V + V, side="left"))
            if hi > lo:
                c = counts[lo:hi].astype(np.float64)
                return int(keys[lo + int(rng.choice(hi - lo, p=c / c.sum()))] % V)
        c = self.a["uni"].astype(np.float64)
        return int(rng.choice(V, p=c / c.sum()))

    def answer(self, prompt: str, *, max_tokens: int = 64) -> Answer:
        """The best passage's best sentence for `prompt`, continued by the trigram model to the end of a
        sentence at least MIN_CONTINUATION tokens on; at most `max_tokens` tokens."""
        if max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        q = tokenize(prompt)
        hits = self.retrieve(q)
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        rng = np.random.default_rng(seed)
        out = self.best_sentence(hits[0][0], q)[:max_tokens] if hits else []
        finish = "length" if len(out) >= max_tokens else "stop"
        added = 0
        while len(out) < max_tokens:
            w1 = self.index[out[-2]] if len(out) >= 2 else None
            w2 = self.index[out[-1]] if out else None
            tok = self.vocab[self._next(w1, w2, rng)]
            out.append(tok)
            added += 1
            if tok in SENTENCE_END and added >= MIN_CONTINUATION:
                finish = "stop"
                break
            finish = "length"
        passages = [
            Passage(self.datasets[int(self.a["passage_ds"][p])]["id"], s, detokenize(self.passage_tokens(p)))
            for p, s in hits
        ]
        return Answer(detokenize(out), finish, len(q), len(out), passages, bool(hits))

    def drawn_on(self, answer: Answer) -> list[dict[str, Any]]:
        """The datasets an answer drew on: those of its retrieved passages (best retrieval score first), or,
        when nothing was retrieved, every training dataset (the continuation comes from all of them)."""
        best: dict[str, float] = {}
        for p in answer.passages:
            best[p.dataset_id] = max(best.get(p.dataset_id, 0.0), p.score)
        if not answer.retrieved:
            best = {d["id"]: 0.0 for d in self.datasets}
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"id": i, "content_hash": i, "score": round(s, 6)} for i, s in ranked]
