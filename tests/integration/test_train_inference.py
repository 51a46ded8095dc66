"""`cairn train` on a real chain and mirror, then the OpenAI-compatible API in real uvicorn processes, driven
by the official `openai` client: the model is trained from the stored content of the datasets that meet the
policy's quorum, its manifest (weights = token shares) is registered through the outbox, and its answers name
the datasets they drew on. A second API process serves the first one's model as an upstream provider."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from eth_abi import encode
from eth_account import Account
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from support.api_stack import Stack, deploy_on
from support.pg import create_database, drop_database, require_postgres
from support.process import wait_until
from web3 import Web3

from backend.api.problems import install_problem_handlers
from backend.api.routers import inference as inference_router
from backend.api.routers.inference import ChatModelDep, ChatPriceDep, chat_charge
from backend.api.services.inference import Inference
from backend.api.settings import ApiSettings
from backend.api.x402.gateway import Gateway
from backend.api.x402.scheme import Charge
from backend.inference.model import tokenize
from backend.inference.training import WEIGHT_SCALE, model_id_of
from cairn.cli.devchain import free_port, start_anvil
from cairn.core.content import ContentStore, content_hash
from cairn.core.db import make_engine
from cairn.core.errors import ModelNotFoundError
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS

ROOT = Path(__file__).resolve().parents[2]
NAME = "cairn-demo-model-v1"
PRICE = "0"  # free in this world's API (a price of 0 asks no payment): the openai client has no x402;
# tests/integration/test_agent_loop.py pays a priced model with the official x402 client
QUESTION = "How does the indexer detect and roll back a reorg?"


@dataclass
class World:
    stack: Stack
    env: dict[str, str]
    store: ContentStore
    files: dict[str, str]  # label -> content hash
    report: dict[str, Any]
    api: str = ""
    proxy: str = ""
    silent: socket.socket | None = None


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", "api", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_until("API up", up, proc, log, timeout=90)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The chain, the mirror and the trainer's database (SQLite or PostgreSQL), the model trained by the
    CLI, the API serving it and a second API (SQLite) with it as an upstream."""
    if request.param == "postgres":
        require_postgres()
        db_url = create_database("cairn_train")
    tmp = tmp_path_factory.mktemp("train")
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp}/cairn.db"
    try:
        yield from _world(tmp, db_url)
    finally:
        if request.param == "postgres":
            drop_database(db_url)


def _world(tmp: Path, db_url: str) -> Iterator[World]:
    with start_anvil() as anvil:
        w3, admin, dep = deploy_on(anvil, tmp)
        settings = ApiSettings(
            rpc_urls=[anvil.url], database_url=db_url,
            deployment_file=tmp / "deployment.json", data_dir=tmp / "data", confirmations=0,
        )  # fmt: skip
        validators = [Account.from_key(ANVIL_DEV_KEYS[i]) for i in (0, 2, 7)]
        owners = [Account.from_key(ANVIL_DEV_KEYS[i]) for i in (5, 6)]
        stack = Stack(anvil, w3, dep, settings, tmp, admin, validators, owners, owners[0])
        registry = stack.contract("ContributionRegistry")
        stack.transact(admin, registry.functions.grantRole(registry.functions.VALIDATOR_ROLE().call(),
                                                           validators[2].address))  # fmt: skip
        store = ContentStore(settings.content_dir, max_bytes=settings.content_max_bytes)
        # a: README, b: ARCHITECTURE (quorum, stored); c: SECURITY (quorum, content absent); d: Makefile
        # (stored, but only two validators attested)
        paths = {"a": "README.md", "b": "docs/ARCHITECTURE.md", "c": "contracts/SECURITY.md", "d": "Makefile"}
        files: dict[str, str] = {}
        for i, (label, rel) in enumerate(paths.items()):
            data = (ROOT / rel).read_bytes()
            digest = content_hash(data)
            files[label] = "0x" + digest.hex()
            owner = owners[i % 2]
            for step in dataset_calls(
                registry, owner.address, digest, len(data), 1, b"\x01" * 32, f"file://{rel}"
            ):
                stack.transact(owner, step)
            attesters = validators if label != "d" else validators[:2]
            for v, score in zip(attesters, (9000, 7000, 8000), strict=False):
                stack.transact(v, registry.functions.attest(digest, score))
            if label != "c":
                store.put_file(digest, ROOT / rel)
        stack.index()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update(
            PYTHONPATH=str(ROOT), CAIRN_RPC_URLS=anvil.url, CAIRN_DATABASE_URL=settings.database_url,
            CAIRN_DEPLOYMENT_FILE=str(tmp / "deployment.json"), CAIRN_DATA_DIR=str(tmp / "data"),
            CAIRN_CONFIRMATIONS="0",
        )  # fmt: skip
        done = _cli(env, "train", "--json")
        assert done.returncode == 0, done.stderr + done.stdout
        world = World(stack, env, store, files, json.loads(done.stdout))
        stack.index()  # the manifest is now in the mirror too
        api, world.api = _serve(dict(env, CAIRN_API_PRICES=json.dumps({NAME: PRICE})), tmp / "api.log")
        silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        world.silent = silent
        try:
            upstreams = {
                "relayed": {"base_url": world.api + "/v1", "model": NAME},
                "wrong": {"base_url": world.api + "/v1", "model": "no-such-model"},
                "down": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "timeout_s": 5},
                "silent": {
                    "base_url": f"http://127.0.0.1:{silent.getsockname()[1]}/v1",
                    "timeout_s": 1,
                    "api_key": "sekrit",
                    "model": "their-name",
                },
            }
            proxy_env = dict(
                env, CAIRN_DATABASE_URL=f"sqlite:///{tmp}/proxy.db", CAIRN_DATA_DIR=str(tmp / "proxy"),
                CAIRN_API_UPSTREAMS=json.dumps(upstreams), CAIRN_API_DEFAULT_PRICE="0",
            )  # fmt: skip
            proxy, world.proxy = _serve(proxy_env, tmp / "proxy.log")
            try:
                yield world
            finally:
                _stop(proxy)
        finally:
            _stop(api)
            silent.close()


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="not-needed", max_retries=0, timeout=30)


def test_train_selects_quorum_datasets_with_stored_content_and_registers_token_share_weights(
    world: World,
) -> None:
    r, f = world.report, world.files
    assert r["name"] == NAME and r["model_id"] == model_id_of(NAME) and r["version"] == 1
    assert [d["id"] for d in r["datasets"]] == sorted([f["a"], f["b"]])  # d lacks quorum, c its content
    assert r["skipped"] == [{"content_hash": f["c"], "reason": "content not in the store"}]
    texts = {f["a"]: (ROOT / "README.md").read_text(), f["b"]: (ROOT / "docs/ARCHITECTURE.md").read_text()}
    tokens = [len(tokenize(texts[d["id"]])) for d in r["datasets"]]
    assert [d["tokens"] for d in r["datasets"]] == tokens
    assert [d["weight"] for d in r["datasets"]] == [t * WEIGHT_SCALE // sum(tokens) for t in tokens]
    artefact = bytes.fromhex(r["artefact"][2:])
    assert world.store.has(artefact)
    assert content_hash(b"".join(world.store.read_chunks(artefact))) == artefact
    # on chain: the manifest, sent by the trainer key (dev account 3, TRAINER_ROLE)
    models = world.stack.contract("ModelRegistry")
    mid = bytes.fromhex(r["model_id"][2:])
    ids = [bytes.fromhex(d["id"][2:]) for d in r["datasets"]]
    weights = [d["weight"] for d in r["datasets"]]
    assert models.functions.latestVersion(mid).call() == 1
    assert models.functions.trainerOf(mid).call() == Account.from_key(ANVIL_DEV_KEYS[3]).address
    expected = Web3.keccak(encode(["bytes32[]", "uint32[]"], [ids, weights]))
    assert bytes(models.functions.manifestHash(mid, 1).call()) == bytes(expected)
    tx = world.stack.w3.eth.get_transaction(r["tx_hash"])
    assert tx["from"] == Account.from_key(ANVIL_DEV_KEYS[3]).address


def test_training_again_gives_the_same_artefact_and_registers_nothing_new(world: World) -> None:
    again = _cli(world.env, "train", "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["artefact"] == world.report["artefact"] and second["tx_hash"] == world.report["tx_hash"]
    models = world.stack.contract("ModelRegistry")
    assert models.functions.latestVersion(bytes.fromhex(world.report["model_id"][2:])).call() == 1


def test_training_with_an_unknown_policy_is_one_line_and_exit_3(world: World) -> None:
    bad = _cli(world.env, "train", "--policy", "v999")
    assert bad.returncode == 3 and "reward policy not found" in bad.stderr and "Traceback" not in bad.stderr


def test_models_lists_the_trained_model_with_its_price(world: World) -> None:
    page = client(world.api).models.list()
    cards = {m.id: m for m in page.data}
    assert list(cards) == [NAME]
    card = cards[NAME]
    assert card.object == "model" and card.owned_by == Account.from_key(ANVIL_DEV_KEYS[3]).address.lower()
    extra = card.model_extra or {}
    assert extra["cairn"] == {
        "model_id": model_id_of(NAME), "provider": "embedded", "price": PRICE,
        "artefact": world.report["artefact"], "model_version": 1,
    }  # fmt: skip
    retrieved = client(world.api).models.retrieve(NAME)  # by name: OpenAI's model object
    assert retrieved.id == NAME and retrieved.owned_by == card.owned_by and retrieved.model_extra == extra
    with pytest.raises(openai.NotFoundError) as nf:
        client(world.api).models.retrieve("gpt-4o")
    assert nf.value.code == "model_not_found"
    # by its bytes32 id: the Cairn manifest view of the same model
    with urllib.request.urlopen(f"{world.api}/v1/models/{model_id_of(NAME)}", timeout=10) as resp:
        view = json.loads(resp.read())
    assert [d["weight"] for d in view["datasets"]] == [d["weight"] for d in world.report["datasets"]]


def test_price_of_reads_the_price_table_and_refuses_unknown_models(world: World) -> None:
    settings = ApiSettings(
        database_url=world.env["CAIRN_DATABASE_URL"], data_dir=Path(world.env["CAIRN_DATA_DIR"]),
        api_prices={NAME: 777}, api_default_price=5, api_upstreams={"up": {"base_url": world.api + "/v1"}},
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    inference = Inference(settings, engine, chain_id=31337)
    try:
        assert inference.price_of(NAME) == 777 and inference.price_of("up") == 5
        assert inference.resolve(NAME).model_id == model_id_of(NAME)
        with pytest.raises(ModelNotFoundError):
            inference.price_of("gpt-4o")
    finally:
        inference.close()
    # a model whose artefact is not in this server's content store is not served
    elsewhere = Inference(
        settings.model_copy(update={"data_dir": world.stack.tmp / "empty"}), engine, chain_id=31337
    )
    try:
        assert [m.name for m in elsewhere.models()] == ["up"]
        with pytest.raises(ModelNotFoundError):
            elsewhere.price_of(NAME)
    finally:
        elsewhere.close()
        engine.dispose()


def test_the_payment_gate_hooks_read_the_price_and_model_of_the_request(world: World) -> None:
    """`chat_price` / `chat_model` as a gate would use them: dependencies of the route, sharing its body."""
    settings = ApiSettings(
        database_url=world.env["CAIRN_DATABASE_URL"], data_dir=Path(world.env["CAIRN_DATA_DIR"]),
        api_prices={NAME: 42},
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    seen: list[tuple[int, str]] = []

    def gate(price: ChatPriceDep, model: ChatModelDep) -> None:
        seen.append((price, model.model_id))

    charges: list[Charge] = []

    async def x402_gate(request: Request) -> None:  # what require_payment(chat_charge) calls first
        charges.append(await chat_charge(request))

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(inference_router.router, dependencies=[Depends(gate), Depends(x402_gate)])
    app.state.inference = Inference(settings, engine, chain_id=31337)
    app.state.x402 = Gateway()  # the route's own gate: no scheme registered, so it can only ask (402)
    try:
        with TestClient(app) as tc:
            unpaid = tc.post(
                "/v1/chat/completions", json={"model": NAME, "messages": [{"role": "user", "content": "hi"}]}
            )
            assert unpaid.status_code == 402 and unpaid.headers["cache-control"] == "no-store"
            required = json.loads(base64.b64decode(unpaid.headers["payment-required"]))
            assert required["resource"]["url"] == "http://testserver/v1/chat/completions"
            assert seen == [(42, model_id_of(NAME))]
            assert charges == [
                Charge(
                    42,
                    "http://testserver/v1/chat/completions",
                    model_id_of(NAME),
                    f"one chat completion of {NAME}",
                )
            ]
            bad = tc.post("/v1/chat/completions", json={"model": NAME, "messages": []})
            assert bad.status_code == 422 and bad.headers["content-type"].startswith(
                "application/problem+json"
            )
            not_json = tc.post(
                "/v1/chat/completions", content=b"{", headers={"Content-Type": "application/json"}
            )
            assert not_json.status_code in (400, 422), not_json.text
            missing = tc.post(
                "/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
            )
            assert missing.status_code == 404 and missing.json()["code"] == "model_not_found"
            # validation (422) and the model (404) come before the payment: the gates never charged
            assert len(seen) == 1 and len(charges) == 1
    finally:
        app.state.inference.close()
        engine.dispose()


def test_chat_completion_names_its_datasets_and_counts_tokens(world: World) -> None:
    resp = client(world.api).chat.completions.create(
        model=NAME,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": QUESTION}],
        max_tokens=40,
    )
    assert resp.object == "chat.completion" and resp.model == NAME and len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert resp.usage is not None
    assert resp.usage.completion_tokens == len(tokenize(choice.message.content)) <= 40
    assert resp.usage.prompt_tokens == len(tokenize("Answer briefly.\n" + QUESTION))
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    cairn = (resp.model_extra or {})["cairn"]
    assert cairn["provider"] == "embedded" and cairn["artefact"] == world.report["artefact"]
    assert cairn["model_version"] == 1 and cairn["model_id"] == model_id_of(NAME)
    used = [d["id"] for d in cairn["datasets"]]
    assert used and set(used) <= {world.files["a"], world.files["b"]}
    assert world.files["b"] in used  # the architecture notes describe the indexer's reorg handling
    assert all(d["content_hash"] == d["id"] and d["score"] > 0 for d in cairn["datasets"])


def test_streamed_completion_is_the_same_answer_in_openai_chunks(world: World) -> None:
    c = client(world.api)
    whole = c.chat.completions.create(model=NAME, messages=[{"role": "user", "content": QUESTION}])
    chunks = list(
        c.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": QUESTION}], stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    finish = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert (finish[0].model_extra or {})["cairn"]["datasets"] == (whole.model_extra or {})["cairn"][
        "datasets"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]


def test_unknown_model_and_bad_requests_are_problems_the_client_raises(world: World) -> None:
    c = client(world.api)
    with pytest.raises(openai.NotFoundError) as nf:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert nf.value.status_code == 404 and nf.value.code == "model_not_found" and nf.value.param == "model"
    assert nf.value.response.headers["content-type"].startswith("application/problem+json")
    for bad in (
        {"model": NAME, "messages": []},
        {"model": NAME, "messages": [{"role": "system", "content": "no user message"}]},
        {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000},
        {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "n": 2},
        {"model": NAME, "messages": [{"role": "wizard", "content": "hi"}]},
    ):
        with pytest.raises(openai.UnprocessableEntityError) as ue:
            c.chat.completions.create(**bad)  # type: ignore[call-overload]
        assert ue.value.response.headers["content-type"].startswith("application/problem+json")
        assert ue.value.response.json()["code"] == "invalid_input"


def test_upstream_provider_serves_the_other_processes_model(world: World) -> None:
    proxy, direct = client(world.proxy), client(world.api)
    assert sorted(m.id for m in proxy.models.list().data) == ["down", "relayed", "silent", "wrong"]
    msgs: Any = [{"role": "user", "content": QUESTION}]
    via = proxy.chat.completions.create(model="relayed", messages=msgs, max_tokens=30)
    here = direct.chat.completions.create(model=NAME, messages=msgs, max_tokens=30)
    assert via.model == "relayed" and via.choices[0].message.content == here.choices[0].message.content
    assert via.usage == here.usage
    cairn = (via.model_extra or {})["cairn"]
    assert cairn["provider"] == "upstream" and cairn["model_id"] == model_id_of("relayed")
    assert cairn["datasets"] == (here.model_extra or {})["cairn"]["datasets"]
    assert (
        cairn["upstream"]["model"] == NAME
        and cairn["upstream"]["cairn"]["artefact"] == world.report["artefact"]
    )


def test_upstream_failures_are_502_and_503_problems(world: World) -> None:
    proxy = client(world.proxy)
    msgs: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.APIStatusError) as wrong:
        proxy.chat.completions.create(model="wrong", messages=msgs)
    assert wrong.value.status_code == 502 and wrong.value.response.json()["code"] == "upstream_error"
    assert "answered 404" in wrong.value.response.json()["detail"]
    with pytest.raises(openai.APIStatusError) as down:
        proxy.chat.completions.create(model="down", messages=msgs)
    assert down.value.status_code == 503 and down.value.response.json()["code"] == "upstream_unavailable"
    assert down.value.response.headers["content-type"].startswith("application/problem+json")
    assert "unreachable" in down.value.response.json()["detail"]
    with pytest.raises(openai.APIStatusError) as silent:
        proxy.chat.completions.create(model="silent", messages=msgs)
    assert silent.value.status_code == 503 and silent.value.response.json()["code"] == "upstream_unavailable"
    assert "did not answer within 1 s" in silent.value.response.json()["detail"]
    # what the proxy sent the silent upstream: its model name and key, OpenAI's path
    assert world.silent is not None
    world.silent.settimeout(5)
    conn, _ = world.silent.accept()
    sent = b""
    with conn:
        conn.settimeout(5)
        while chunk := conn.recv(65536):  # the proxy closed its side when it gave up: read to the end
            sent += chunk
    head, _, body = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1")
    assert b"authorization: bearer sekrit" in head.lower()
    assert json.loads(body)["model"] == "their-name" and json.loads(body)["stream"] is False


def test_streaming_through_the_upstream_provider(world: World) -> None:
    msgs: Any = [{"role": "user", "content": QUESTION}]
    whole = client(world.api).chat.completions.create(model=NAME, messages=msgs)
    chunks = list(client(world.proxy).chat.completions.create(model="relayed", messages=msgs, stream=True))
    assert (
        "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        == whole.choices[0].message.content
    )
    assert all(ch.model == "relayed" for ch in chunks)


def test_openapi_documents_the_inference_routes(world: World) -> None:
    with urllib.request.urlopen(world.api + "/openapi.json", timeout=10) as resp:
        spec = json.loads(resp.read())
    paths = spec["paths"]
    assert {"/v1/models", "/v1/chat/completions", "/v1/models/{model_id}"} <= set(paths)
    chat = paths["/v1/chat/completions"]["post"]
    assert {"application/json", "text/event-stream"} <= set(chat["responses"]["200"]["content"])
    assert {"400", "404", "422", "502", "503"} <= set(chat["responses"])
    completion = spec["components"]["schemas"]["ChatCompletion"]["properties"]
    assert {"id", "object", "created", "model", "choices", "usage", "cairn"} <= set(completion)


def test_retraining_with_more_content_registers_version_2_and_is_served(world: World) -> None:
    """Last in this module: it changes the model. The missing content arrives; training again includes it."""
    world.store.put_file(bytes.fromhex(world.files["c"][2:]), ROOT / "contracts/SECURITY.md")
    done = _cli(world.env, "train", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["version"] == 2 and report["skipped"] == []
    assert [d["id"] for d in report["datasets"]] == sorted(world.files[k] for k in "abc")
    assert report["artefact"] != world.report["artefact"]

    def served() -> dict[str, Any]:
        return dict((client(world.api).models.list().data[0].model_extra or {})["cairn"])

    deadline = time.monotonic() + 10  # the API reads its catalogue again within CATALOGUE_TTL_S
    while served()["artefact"] != report["artefact"]:
        assert time.monotonic() < deadline, served()
        time.sleep(0.1)
    assert served()["model_version"] == 2
    resp = client(world.api).chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "What may a guardian revoke, and until when?"}]
    )
    cairn = (resp.model_extra or {})["cairn"]
    assert cairn["artefact"] == report["artefact"] and world.files["c"] in [
        d["id"] for d in cairn["datasets"]
    ]
