"""OpenAI-compatible request and response bodies (validated at the HTTP edge only).

Every field OpenAI documents is either honoured, accepted because it cannot change the output
(``user``, ``metadata``, ...), or refused with a 400 that names it; unknown fields are refused
as OpenAI itself does ("Unrecognized request argument").
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from genfast.runtime.sampling import SEED_RANGE, SamplingParams

UNSUPPORTED = "is not supported by genfast"
MAX_STOP_CHARS = 1024


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False
    continuous_usage_stats: StrictBool = False


class _SamplingFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0, description="genfast/vLLM extension: 0 keeps every token.")
    seed: int | None = Field(default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = Field(default=None, description=f"Up to 4 strings of at most {MAX_STOP_CHARS} "
                                        "characters.")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request is supported.")
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(default=None, description="Token id (as a string) -> bias in "
                                                "[-100, 100] added to its logit.")
    ignore_eos: StrictBool = Field(default=False, description="genfast/vLLM extension: generate max_tokens exactly.")
    user: str | None = Field(default=None, description="Accepted; has no effect.")

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value):
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(len(stop) > MAX_STOP_CHARS for stop in ([value] if isinstance(value, str) else value or [])):
            raise ValueError(f"stop sequences are limited to {MAX_STOP_CHARS} characters")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias_keys_are_token_ids(cls, value):
        for key, bias in (value or {}).items():
            if not re.fullmatch(r"-?[0-9]+", key):
                raise ValueError(f"keys must be token ids, got {key!r}")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"values must be in [-100, 100], got {bias}")
        return value

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=default_max_tokens if self.max_tokens is None else self.max_tokens,
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=self.seed, stop=stops,
            ignore_eos=self.ignore_eos, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias={int(k): float(v) for k, v in (self.logit_bias or {}).items()})

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(cls, value, info):
        if value is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed with stream true")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _refuse_if_set(value: Any, name: str, allowed: tuple = (None,)) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} {UNSUPPORTED}")
    return value


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[StrictInt] | list[list[StrictInt]] = Field(
        description="One prompt: a string, or token ids (a list of one string / one id list also works).")
    echo: StrictBool = False
    logprobs: int | None = Field(default=None, ge=0, le=5,
                                 description="Log-probabilities of each token and this many alternatives.")
    best_of: int | None = Field(default=None, description=f"Only 1; larger values {UNSUPPORTED}.")
    suffix: str | None = Field(default=None, description=f"Insertion {UNSUPPORTED}.")

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, value):
        return _refuse_if_set(value, "best_of > 1", (None, 1))

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, value):
        return _refuse_if_set(value, "suffix", (None, ""))

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value):
        if isinstance(value, list) and value and isinstance(value[0], (str, list)):
            if len(value) != 1:
                raise ValueError("send one prompt per request (a list must hold exactly one prompt)")
            return value[0]
        if isinstance(value, list) and not value:
            raise ValueError("the prompt is empty")
        return value

    @model_validator(mode="after")
    def _zero_tokens_only_to_score(self):
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens 0 is only for scoring a prompt: send echo true (and logprobs)")
        return self

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        params = super().sampling(default_max_tokens)
        params.logprobs = self.logprobs
        if self.echo and self.logprobs is not None:
            params.prompt_logprobs = self.logprobs
        elif self.max_tokens == 0:
            params.prompt_logprobs = 0  # nothing to generate: the prompt is scored (and echoed)
        return params


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_call_id, refusal... do not change the prompt

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_only(cls, value):
        if isinstance(value, list):
            for part in value:
                if part.get("type") != "text":
                    raise ValueError(f"content parts of type {part.get('type')!r} are not supported "
                                     "(genfast serves a text model: send text parts)")
            return "".join(TextPart(**part).text for part in value)
        return value or ""


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: StrictBool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = Field(default=None, description=f"Tool calling {UNSUPPORTED}.")
    tool_choice: Any = Field(default=None, description=f"Tool calling {UNSUPPORTED}.")
    functions: list[dict[str, Any]] | None = Field(default=None, description=f"Function calling {UNSUPPORTED}.")
    function_call: Any = Field(default=None, description=f"Function calling {UNSUPPORTED}.")
    response_format: dict[str, Any] | None = Field(default=None, description="Only {'type': 'text'}.")
    parallel_tool_calls: bool | None = Field(default=None, description="Accepted; has no effect without tools.")
    metadata: dict[str, str] | None = Field(default=None, description="Accepted; has no effect.")
    store: bool | None = Field(default=None, description="Accepted; nothing is stored.")
    service_tier: str | None = Field(default=None, description="Accepted; has no effect.")

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value, info):
        return _refuse_if_set(value, info.field_name, (None, []))

    @field_validator("tool_choice", "function_call")
    @classmethod
    def _no_tool_choice(cls, value, info):
        return _refuse_if_set(value, info.field_name, (None, "none"))

    @field_validator("response_format")
    @classmethod
    def _text_format_only(cls, value):
        if value is not None and value.get("type") != "text":
            raise ValueError(f"response_format {value.get('type')!r} {UNSUPPORTED} (only 'text')")
        return value

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self):
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs true")
        if self.max_tokens == 0:
            raise ValueError("max_tokens must be at least 1")
        return self

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        params = super().sampling(default_max_tokens)
        if self.max_completion_tokens and not self.max_tokens:
            params.max_tokens = self.max_completion_tokens
        if self.logprobs:
            params.logprobs = self.top_logprobs or 0
        return params


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error object; every non-2xx answer of the server has this shape."""

    error: ErrorDetail


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict:
    """OpenAI's error format."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


IMAGE_SEEDS = 2**32
"""Distinct image seeds: PyTorch's CPU generator uses the low 32 bits of a seed."""


class ImageGenerationRequest(BaseModel):
    """OpenAI's ``POST /v1/images/generations`` for a class-conditional image model: the prompt
    names the class (a digit for the demo)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=1000, description="The class to draw, e.g. \"7\".")
    model: str | None = None
    n: StrictInt = Field(default=1, ge=1, le=10)
    size: str | None = Field(default=None, description="The model's own size (e.g. 16x16), or omitted.")
    response_format: Literal["b64_json", "url"] | None = Field(
        default=None, description="b64_json (the default here: genfast hosts no image URLs).")
    output_format: Literal["png"] | None = None
    seed: StrictInt | None = Field(default=None, ge=0, lt=2**32,
                                   description="genfast extension: image i is drawn from seed + i (mod 2^32; "
                                   "PyTorch's CPU generator keeps 32 bits).")
    user: str | None = Field(default=None, description="Accepted; has no effect.")
