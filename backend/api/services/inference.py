"""Inference: the served models, their prices and the providers that answer chat completions.

`Inference` (one per API process, `app.state.inference`) lists the models (`models()`): every model name's
latest registered training run in `trained_model` (backend.inference.training) whose artefact is in the
content store, answered by the embedded model, and every name in `CAIRN_API_UPSTREAMS`, answered by an
OpenAI-compatible upstream over HTTP (an upstream entry wins over an embedded model of the same name).
`price_of(name)` is the price table (`CAIRN_API_PRICES`, else `CAIRN_API_DEFAULT_PRICE`), in the
RewardToken's atomic units. `complete(request)` answers in OpenAI's `chat.completion` shape plus `cairn`;
`open_stream(request)` relays an upstream model's own stream (`stream: true`) chunk by chunk, opened (status
checked) before the answer starts, and raises `UpstreamUnavailableError` from the stream when the upstream
breaks it off (the paid request is then void: backend.api.x402.gateway).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine

from backend.api.schemas_openai import ChatCompletionRequest
from backend.api.settings import ApiSettings, Upstream
from backend.inference.model import EmbeddedModel, tokenize
from backend.inference.training import model_id_of, served_models
from backend.models import TrainedModel
from cairn.core.content import ContentStore
from cairn.core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    UnavailableError,
    UpstreamError,
    UpstreamUnavailableError,
)

DEFAULT_MAX_TOKENS = 64
CATALOGUE_TTL_S = 1.0  # a newly trained model is served within a second


@dataclass(frozen=True)
class ServedModel:
    name: str
    model_id: str  # keccak256(name), the id of payments and manifests
    provider: str  # "embedded" | "upstream"
    created: int
    owned_by: str
    record: TrainedModel | None = None
    upstream: Upstream | None = None


def not_found(name: str) -> ModelNotFoundError:
    msg = f"The model `{name}` does not exist or is not served here (GET /v1/models lists the models)"
    return ModelNotFoundError(
        msg,
        model=name,
        error={"message": msg, "type": "invalid_request_error", "param": "model", "code": "model_not_found"},
    )


class Inference:
    def __init__(
        self, settings: ApiSettings, engine: Engine, *, chain_id: int, store: ContentStore | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.chain_id = chain_id
        self.store = store or ContentStore(settings.content_dir, max_bytes=settings.content_max_bytes)
        self.started = int(time.time())
        self._models: dict[str, EmbeddedModel] = {}  # artefact hash -> loaded model
        self._lock = threading.Lock()
        self._catalogue: tuple[float, list[ServedModel]] | None = None
        self.http = httpx.Client(follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    # --- the catalogue -------------------------------------------------------------------------------
    def models(self) -> list[ServedModel]:
        """The served models by name, read again at most every CATALOGUE_TTL_S seconds (a paid request
        resolves its model two or three times: the gate's price, its model id, the answer)."""
        now = time.monotonic()
        cached = self._catalogue
        if cached is not None and now - cached[0] < CATALOGUE_TTL_S:
            return cached[1]
        fresh = self._read_models()
        self._catalogue = (now, fresh)
        return fresh

    def _read_models(self) -> list[ServedModel]:
        out: dict[str, ServedModel] = {}
        for r, trainer in served_models(self.engine, chain_id=self.chain_id):
            if self.store.has(bytes.fromhex(r.artefact_hash[2:])):
                out[r.name] = ServedModel(r.name, r.model_id, "embedded", r.created_at, trainer, record=r)
        for name, up in self.settings.api_upstreams.items():
            out[name] = ServedModel(
                name, model_id_of(name), "upstream", self.started, "upstream", upstream=up
            )
        return [out[k] for k in sorted(out)]

    def cached(self, name: str) -> ServedModel | None:
        """The served model `name` from a catalogue read less than CATALOGUE_TTL_S ago (no I/O), or None when
        the catalogue is stale or does not list it (then `resolve`, which may read the database)."""
        cached = self._catalogue
        if cached is None or time.monotonic() - cached[0] >= CATALOGUE_TTL_S:
            return None
        return next((m for m in cached[1] if m.name == name), None)

    def resolve(self, name: str) -> ServedModel:
        for m in self.models():
            if m.name == name:
                return m
        raise not_found(name)

    def price_of(self, name: str) -> int:
        """Price of one chat completion of model `name` (atomic units); ModelNotFoundError if not served."""
        self.resolve(name)
        return int(self.settings.api_prices.get(name, self.settings.api_default_price))

    def card(self, m: ServedModel) -> dict[str, Any]:
        cairn: dict[str, Any] = {
            "model_id": m.model_id,
            "provider": m.provider,
            "price": str(self.settings.api_prices.get(m.name, self.settings.api_default_price)),
        }
        if m.record is not None:
            cairn.update(artefact=m.record.artefact_hash, model_version=m.record.version)
        return {"id": m.name, "object": "model", "created": m.created, "owned_by": m.owned_by, "cairn": cairn}

    # --- answering -----------------------------------------------------------------------------------
    def _embedded(self, record: TrainedModel) -> EmbeddedModel:
        with self._lock:
            model = self._models.get(record.artefact_hash)
            if model is None:
                digest = bytes.fromhex(record.artefact_hash[2:])
                try:
                    data = b"".join(self.store.read_chunks(digest))
                except FileNotFoundError:
                    raise UnavailableError(
                        f"the artefact {record.artefact_hash} of model {record.name} is not in the "
                        "content store"
                    ) from None
                model = self._models[record.artefact_hash] = EmbeddedModel.load(data)
            return model

    def max_tokens(self, request: ChatCompletionRequest) -> int:
        """The completion's token budget; InvalidInputError (422) above CAIRN_API_MAX_TOKENS (checked by the
        payment gate's charge too, so a request that cannot be served is never paid for)."""
        return self._max_tokens(request)

    def _max_tokens(self, request: ChatCompletionRequest) -> int:
        limit = request.token_limit()
        if limit is not None and limit > self.settings.api_max_tokens:
            raise InvalidInputError(
                f"max_tokens {limit} is above this server's limit of {self.settings.api_max_tokens}",
                field="max_tokens",
            )
        return limit if limit is not None else DEFAULT_MAX_TOKENS

    def complete(self, request: ChatCompletionRequest) -> dict[str, Any]:
        """A `chat.completion` for `request` (not streamed; the router re-chunks it for `stream: true`)."""
        m = self.resolve(request.model)
        max_tokens = self._max_tokens(request)
        if m.upstream is not None:
            return self._upstream(m, m.upstream, request, max_tokens)
        assert m.record is not None
        model = self._embedded(m.record)
        ans = model.answer(request.question(), max_tokens=max_tokens)
        prompt_tokens = len(tokenize(request.prompt_text()))
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": m.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ans.text},
                    "finish_reason": ans.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": ans.completion_tokens,
                "total_tokens": prompt_tokens + ans.completion_tokens,
            },
            "system_fingerprint": m.record.artefact_hash[:18],
            "cairn": {
                "provider": "embedded",
                "model_id": m.model_id,
                "model_version": m.record.version,
                "artefact": m.record.artefact_hash,
                "datasets": model.drawn_on(ans),
            },
        }

    def _upstream(
        self, m: ServedModel, up: Upstream, request: ChatCompletionRequest, max_tokens: int
    ) -> dict[str, Any]:
        resp = self._send(m, up, _upstream_request(self.http, m, up, request, max_tokens, stream=False))
        if resp.status_code >= 400:
            detail = _upstream_detail(resp)
            raise UpstreamError(
                f"the upstream of model {m.name} answered {resp.status_code}: {detail}",
                model=m.name, upstream_status=resp.status_code,
            )  # fmt: skip
        try:
            data = resp.json()
            choice = data["choices"][0]
            content = str(choice["message"]["content"] or "")
            usage = data.get("usage") or {}
            pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
            finish = (
                choice.get("finish_reason") if choice.get("finish_reason") in ("stop", "length") else "stop"
            )
        except (ValueError, KeyError, IndexError, TypeError):
            raise UpstreamError(f"the upstream of model {m.name} did not answer a chat completion") from None
        theirs = data.get("cairn") if isinstance(data.get("cairn"), dict) else {}
        return {
            "id": str(data.get("id") or "chatcmpl-" + secrets.token_hex(12)),
            "object": "chat.completion",
            "created": int(data.get("created") or time.time()),
            "model": m.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
            "system_fingerprint": data.get("system_fingerprint"),
            "cairn": _upstream_cairn(m, str(data.get("model") or up.model or m.name), theirs),
        }

    def open_stream(self, request: ChatCompletionRequest) -> Iterator[bytes] | None:
        """For `stream: true` to an upstream model: its stream, opened now (an unreachable upstream or an
        error status raises here, before any answer), relayed as SSE bytes; None for an embedded model (the
        router re-chunks its completion)."""
        m = self.resolve(request.model)
        max_tokens = self._max_tokens(request)
        if m.upstream is None or not request.stream:
            return None
        up = m.upstream
        req = _upstream_request(self.http, m, up, request, max_tokens, stream=True)
        resp = self._send(m, up, req, stream=True)
        if resp.status_code >= 400:
            try:
                resp.read()
                detail = _upstream_detail(resp)
            except httpx.HTTPError:
                detail = "(no body)"
            finally:
                resp.close()
            raise UpstreamError(
                f"the upstream of model {m.name} answered {resp.status_code}: {detail}",
                model=m.name, upstream_status=resp.status_code,
            )  # fmt: skip
        return self._relay(m, up, resp)

    def _send(
        self, m: ServedModel, up: Upstream, req: httpx.Request, *, stream: bool = False
    ) -> httpx.Response:
        """`req` sent to the upstream; a timeout or a transport failure is UpstreamUnavailableError."""
        try:
            return self.http.send(req, stream=stream)
        except httpx.TimeoutException:
            raise UpstreamUnavailableError(
                f"the upstream of model {m.name} did not answer within {up.timeout_s:g} s", model=m.name
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(
                f"the upstream of model {m.name} is unreachable ({type(exc).__name__})", model=m.name
            ) from None

    def _relay(self, m: ServedModel, up: Upstream, resp: httpx.Response) -> Iterator[bytes]:
        """The upstream's `chat.completion.chunk` events under our model name, the last one (with a
        finish_reason) carrying our `cairn` member; `[DONE]` only when the upstream sent it."""
        done = False
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    chunk = None
                if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
                    raise UpstreamError(f"the upstream of model {m.name} streamed a line that is not a chunk")
                choices = chunk["choices"]
                theirs = chunk.pop("cairn", None)
                upstream_model = str(chunk.get("model") or up.model or m.name)
                chunk["model"] = m.name
                if any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
                    chunk["cairn"] = _upstream_cairn(
                        m, upstream_model, theirs if isinstance(theirs, dict) else {}
                    )
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(
                f"the upstream of model {m.name} broke off its stream ({type(exc).__name__})", model=m.name
            ) from None
        finally:
            resp.close()
        if not done:
            raise UpstreamUnavailableError(
                f"the upstream of model {m.name} ended its stream before [DONE]", model=m.name
            )
        yield b"data: [DONE]\n\n"


def _upstream_cairn(m: ServedModel, upstream_model: str, theirs: dict[str, Any]) -> dict[str, Any]:
    """Our `cairn` member for an upstream's answer: the datasets it names, and its own member as it is."""
    datasets = [
        {
            "id": str(d["id"]),
            "content_hash": str(d.get("content_hash", d["id"])),
            "score": float(d.get("score", 0)),
        }
        for d in theirs.get("datasets", [])
        if isinstance(d, dict) and "id" in d
    ]
    return {
        "provider": "upstream",
        "model_id": m.model_id,
        "model_version": None,
        "artefact": None,
        "datasets": datasets,
        "upstream": {"model": upstream_model, "cairn": theirs or None},
    }


def _upstream_detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if body.get("detail"):
            return str(body["detail"])[:300]
    return str(body)[:200]


def _upstream_request(
    http: httpx.Client,
    m: ServedModel,
    up: Upstream,
    request: ChatCompletionRequest,
    max_tokens: int,
    *,
    stream: bool,
) -> httpx.Request:
    """The chat completion request for `m`'s upstream: the client's body under the upstream's model name, our
    token cap, `stream` as asked (stream options only for a stream), its key as a bearer token."""
    body = request.model_dump(mode="json", exclude_none=True)
    body.update(model=up.model or m.name, stream=stream, max_tokens=max_tokens)
    if not stream:
        body.pop("stream_options", None)
    body.pop("max_completion_tokens", None)
    url = str(up.base_url).rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {up.api_key.get_secret_value()}"} if up.api_key else {}
    timeout = httpx.Timeout(up.timeout_s, connect=5.0)
    return http.build_request("POST", url, json=body, headers=headers, timeout=timeout)
