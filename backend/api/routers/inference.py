"""OpenAI-compatible inference: `GET /v1/models` and `POST /v1/chat/completions` (`stream: true` answers
Server-Sent Events in OpenAI's `chat.completion.chunk` format). The logic is
`backend.api.services.inference.Inference` (`app.state.inference`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from backend.api.deps import InferenceDep
from backend.api.schemas import problem_responses
from backend.api.schemas_openai import ChatCompletion, ChatCompletionRequest, ModelList
from backend.api.services.inference import Inference, ServedModel
from backend.api.x402.gateway import require_payment
from backend.api.x402.scheme import Accepted, Charge
from cairn.core.errors import InvalidInputError

router = APIRouter(prefix="/v1", tags=["inference"])


def chat_price(body: ChatCompletionRequest, inference: InferenceDep) -> int:
    """The price of this chat completion in the RewardToken's atomic units (`Inference.price_of` of the
    request's model; 404 problem if no such model is served): what a payment gate in front of
    `chat_completions` charges. FastAPI parses the body once for the gate and the route."""
    return inference.price_of(body.model)


ChatPriceDep = Annotated[int, Depends(chat_price)]


def chat_model(body: ChatCompletionRequest, inference: InferenceDep) -> ServedModel:
    """The served model this chat completion names (`model_id` = keccak256(name), the id a payment names);
    404 problem if none."""
    return inference.resolve(body.model)


ChatModelDep = Annotated[ServedModel, Depends(chat_model)]


async def chat_charge(request: Request) -> Charge:
    """The x402 charge of a chat completion request (`backend.api.x402.gateway.require_payment(chat_charge)`):
    the model's price, the URL and the model id the revenue is attributed to. A body that is not a valid chat
    completion request (or `max_tokens` above CAIRN_API_MAX_TOKENS) is a 422 problem and an unknown model a
    404 problem, before a payment is asked for."""
    try:
        raw = await request.json()
    except ValueError:
        raise InvalidInputError("the body is not JSON") from None
    try:
        body = ChatCompletionRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    inference: Inference = request.app.state.inference
    inference.max_tokens(body)  # 422 above the server's limit, before any payment
    model = inference.cached(body.model)  # the hot path: no thread hop while the catalogue is fresh
    if model is None:
        model = await run_in_threadpool(inference.resolve, body.model)
    return Charge(
        amount=inference.price_of(body.model),
        resource=str(request.url),
        model_id=model.model_id,
        description=f"one chat completion of {model.name}",
    )


@router.get("/models", response_model=ModelList, responses=problem_responses(503))
def list_models(inference: InferenceDep) -> dict[str, Any]:
    """The models this server answers for (OpenAI's model list): embedded models trained by `cairn train`
    and models configured with an upstream. `cairn` holds the on-chain model id and the price."""
    return {"object": "list", "data": [inference.card(m) for m in inference.models()]}


STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The completion; with `stream: true`, `text/event-stream` of `chat.completion.chunk` "
        "events ending with `data: [DONE]` (the last chunk with a finish_reason carries `cairn`)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


CHAT_ERRORS = problem_responses(400, 402, 404, 422, 502, 503)
for _code, _what in {
    402: "Payment Required (x402 v2): the `PAYMENT-REQUIRED` header (base64 JSON) lists the accepted "
    "payments for this model's price; pay with an x402 client (`PAYMENT-SIGNATURE`). Asked only after the "
    "body is valid and the model exists; a model priced 0 is free",
    404: "Not Found: no served model has this name (`code: model_not_found`, OpenAI's `error` member)",
    502: "Bad Gateway: the model's upstream answered an error or no chat completion (`upstream_error`)",
    503: "Service Unavailable: the model's upstream did not answer (`upstream_unavailable`), its artefact is "
    "missing, or the database did not answer",
}.items():
    CHAT_ERRORS[_code] = {**CHAT_ERRORS[_code], "description": _what}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={**STREAM_DOC, **CHAT_ERRORS},
)
def chat_completions(
    body: ChatCompletionRequest,
    inference: InferenceDep,
    paid: Annotated[Accepted, Depends(require_payment(chat_charge))],
) -> Any:
    """Answer a chat (OpenAI's chat completion), paid over x402 at the model's price (`GET /v1/models`,
    its `cairn` member's `price`). The `datasets` of the answer's `cairn` member name the datasets it
    drew on (ids = content hashes); `usage` counts the model's tokens; the `PAYMENT-RESPONSE` header is
    the x402 settlement."""
    relay = inference.open_stream(body)  # an upstream's own stream, relayed as it comes
    if relay is not None:
        return StreamingResponse(relay, media_type="text/event-stream", headers={"Cache-Control": "no-store"})
    completion = inference.complete(body)
    if not body.stream:
        return completion
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        _sse(completion, include_usage=include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


def _pieces(text: str) -> list[str]:
    """The content in word-sized deltas whose concatenation is exactly `text`."""
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        out.append(word if i == 0 else " " + word)
    return [p for p in out if p]


def _sse(completion: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for piece in _pieces(choice["message"]["content"]):
        yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield event(
        [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}], cairn=completion["cairn"]
    )
    if include_usage:
        yield event([], usage=completion["usage"])
    yield b"data: [DONE]\n\n"
