"""Request and response models of the OpenAI-compatible inference routes (`/v1/models`,
`/v1/chat/completions`): the OpenAI shapes the `openai` client reads, plus Cairn's `cairn` member naming the
datasets an answer drew on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelCard(BaseModel):
    id: str = Field(description="The model's name (what `model` in a chat completion names)")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix seconds: when this version was trained (upstream: API start)")
    owned_by: str = Field(description="The trainer's address (embedded) or `upstream`")
    cairn: dict[str, Any] = Field(description="model_id (keccak256 of the name), provider, artefact, price")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; sampling options the embedded model has no use for are accepted
    and ignored (its answers are deterministic), `n` must be 1."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=100)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None

    @model_validator(mode="after")
    def _has_user_text(self) -> ChatCompletionRequest:
        if not any(m.role == "user" and m.text().strip() for m in self.messages):
            raise ValueError("messages must contain a user message with text")
        return self

    def question(self) -> str:
        """The last user message's text: what the model answers."""
        return next(m.text() for m in reversed(self.messages) if m.role == "user" and m.text().strip())

    def prompt_text(self) -> str:
        return "\n".join(m.text() for m in self.messages)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class DatasetUse(BaseModel):
    id: str = Field(description="The dataset's id (its content hash, 0x SHA-256)")
    content_hash: str
    score: float = Field(description="Best retrieval score (cosine) of its passages; 0: language model only")


class CairnAnswer(BaseModel):
    provider: Literal["embedded", "upstream"]
    model_id: str = Field(description="keccak256 of the model name: the id payments and manifests use")
    model_version: int | None = Field(description="The manifest version on chain (embedded models)")
    artefact: str | None = Field(description="SHA-256 of the model artefact (embedded models)")
    datasets: list[DatasetUse] = Field(description="The datasets this answer drew on")
    upstream: dict[str, Any] | None = Field(default=None, description="Upstream model and its `cairn` member")


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    cairn: CairnAnswer
