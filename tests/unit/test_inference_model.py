"""The embedded model (backend.inference.model) and the training manifest's weights, on real text files of
this repository: deterministic artefacts, retrieval that finds the right dataset, bounded answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_hash.auto import keccak

from backend.inference.model import MAGIC, Document, EmbeddedModel, detokenize, tokenize
from backend.inference.training import WEIGHT_SCALE, manifest_weights, model_id_of, train_artefact
from cairn.core.content import content_hash
from cairn.core.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[2]
FILES = ("README.md", "docs/ARCHITECTURE.md", "contracts/SECURITY.md")


def docs() -> list[Document]:
    out = []
    for name in FILES:
        data = (REPO / name).read_bytes()
        out.append(Document("0x" + content_hash(data).hex(), data.decode()))
    return out


def test_tokens_round_trip_to_readable_text() -> None:
    assert tokenize("Hello, World! It's 2 o'clock.") == [
        "hello",
        ",",
        "world",
        "!",
        "it's",
        "2",
        "o'clock",
        ".",
    ]
    assert detokenize(["hello", ",", "world", "!", "it's", "fine", "."]) == "Hello, world! It's fine."


def test_same_corpora_give_byte_identical_artefacts_in_any_order() -> None:
    a = train_artefact(docs())
    b = train_artefact(list(reversed(docs())))
    assert a.data == b.data and a.hash == b.hash
    assert a.hash == "0x" + content_hash(a.data).hex() and a.data.startswith(MAGIC)
    assert a.dataset_ids == sorted(d.dataset_id for d in docs())
    reloaded = EmbeddedModel.load(a.data)
    assert reloaded.to_bytes() == a.data


def test_weights_are_each_datasets_share_of_training_tokens() -> None:
    a = train_artefact(docs())
    by_id = {d.dataset_id: len(tokenize(d.text)) for d in docs()}
    assert a.tokens == [by_id[i] for i in a.dataset_ids]
    total = sum(a.tokens)
    assert a.weights == [t * WEIGHT_SCALE // total for t in a.tokens]
    assert manifest_weights([1, 10**9]) == [1, WEIGHT_SCALE - 1]  # never 0: every dataset stays attributed
    assert all(0 < w < 2**32 for w in a.weights)


def test_answers_draw_on_the_dataset_that_holds_the_answer() -> None:
    corpus = docs()
    model = EmbeddedModel.load(train_artefact(corpus).data)
    security = corpus[FILES.index("contracts/SECURITY.md")].dataset_id
    ans = model.answer("What does the guardian's revokeRoot do to a pending root?", max_tokens=48)
    used = model.drawn_on(ans)
    assert ans.retrieved and used and used[0]["id"] == used[0]["content_hash"]
    assert {u["id"] for u in used} <= {d.dataset_id for d in corpus}
    assert any(u["id"] == security for u in used)
    assert ans.completion_tokens == len(tokenize(ans.text)) <= 48
    assert ans.finish_reason in ("stop", "length")
    again = model.answer("What does the guardian's revokeRoot do to a pending root?", max_tokens=48)
    assert again == ans  # seeded by the question: the same question, the same answer


def test_an_unrelated_question_is_answered_by_the_language_model_over_every_dataset() -> None:
    model = EmbeddedModel.load(train_artefact(docs()).data)
    ans = model.answer("zzzq xxyy", max_tokens=5)
    assert not ans.retrieved and ans.completion_tokens == 5 and ans.finish_reason == "length"
    assert sorted(u["id"] for u in model.drawn_on(ans)) == sorted(d.dataset_id for d in docs())


def test_bad_inputs_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="no training text"):
        EmbeddedModel.train([Document("0x" + "00" * 32, "  \n ")])
    with pytest.raises(InvalidInputError, match="bad magic"):
        EmbeddedModel.load(b"not a model")
    with pytest.raises(InvalidInputError, match="max_tokens"):
        EmbeddedModel.load(train_artefact(docs()).data).answer("hi", max_tokens=0)
    assert model_id_of("cairn-demo-model-v1") == "0x" + keccak(b"cairn-demo-model-v1").hex()
