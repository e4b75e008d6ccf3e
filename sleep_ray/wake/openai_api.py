"""OpenAI's `/v1/completions` and `/v1/chat/completions` bodies (pydantic), and what a request asks of a replica.

Every request field of the OpenAI API reference is declared, so none is refused as unknown. Each is honoured
(model, prompt as text, texts, token ids or lists of them, messages with the developer/system/user/assistant
roles and text content parts, max_tokens, max_completion_tokens, n, best_of equal to n, temperature, top_p, stop,
seed, frequency/presence penalties, logit_bias, logprobs, echo, stream, stream_options.include_usage), accepted
with no effect on a text model (user, metadata, store, service_tier, prompt_cache_key, safety_identifier,
parallel_tool_calls, message names), or refused with a 400 naming the parameter when set to something this
endpoint cannot do (tools, functions, audio, images, suffix, structured output, predicted output, reasoning
effort). `requested(body)` turns a request into the typed `Ask` a serving replica answers.

Unlike OpenAI, `temperature` defaults to 0 (greedy): the tiny models of the examples answer in a few tokens.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sleep_ray.wake.errors import ApiError
from sleep_ray.wake.exchange import Answer, Ask, Choice, Delta, Sampling


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]  # a lone surrogate is refused here, not in the tokenizer
Json = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # no obfuscation padding is ever added


class _Request(Strict):
    """What completions and chat share."""

    model: Text
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=16)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stop: Text | list[Text] | None = Field(default=None)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: Text | None = None
    use_memories: bool | None = Field(default=None, description="sleep_ray: prepend relevant memories")


class CompletionRequest(_Request):
    prompt: Text | list[Text] | list[int] | list[list[int]]
    best_of: int | None = Field(default=None, ge=1, le=16)
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    suffix: Text | None = None


class ContentPart(Strict):
    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: Text | None = None
    refusal: Text | None = None
    image_url: Json | None = None
    input_audio: Json | None = None
    file: Json | None = None


class ChatMessage(Strict):
    role: Literal["developer", "system", "user", "assistant", "tool", "function"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None
    refusal: Text | None = None
    tool_calls: list[Json] | None = None
    tool_call_id: Text | None = None
    function_call: Json | None = None
    audio: Json | None = None


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    audio: Json | None = None
    function_call: Text | Json | None = None
    functions: list[Json] | None = None
    metadata: dict[str, Text] | None = None
    modalities: list[Text] | None = None
    parallel_tool_calls: bool | None = None
    prediction: Json | None = None
    prompt_cache_key: Text | None = None
    reasoning_effort: Text | None = None
    response_format: Json | None = None
    safety_identifier: Text | None = None
    service_tier: Text | None = None
    store: bool | None = None
    tool_choice: Text | Json | None = None
    tools: list[Json] | None = None
    verbosity: Text | None = None
    web_search_options: Json | None = None


# ------------------------------------------------------------------------------------------------ refusals


def _refuse(param: str, what: str) -> ApiError:
    return ApiError(400, f"{param}: {what} is not supported by this endpoint", param, "unsupported_parameter")


def _sampling(body: _Request, max_tokens: int | None, logprobs: int | None) -> Sampling:
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > 4:
        raise ApiError(400, "stop: at most 4 stop sequences", "stop")
    bias: dict[int, float] = {}
    for key, value in (body.logit_bias or {}).items():
        if not key.lstrip("-").isdigit():
            raise ApiError(400, f"logit_bias: key {key!r} is not a token id", "logit_bias")
        bias[int(key)] = float(value)
    return Sampling(
        max_tokens=max_tokens,
        temperature=0.0 if body.temperature is None else float(body.temperature),
        top_p=1.0 if body.top_p is None else float(body.top_p),
        n=body.n or 1,
        seed=body.seed,
        stop=tuple(s for s in stops if s) if body.stop is not None else None,
        frequency_penalty=float(body.frequency_penalty or 0.0),
        presence_penalty=float(body.presence_penalty or 0.0),
        logit_bias=bias,
        logprobs=logprobs,
        use_memories=body.use_memories,
    )


def completion_ask(body: CompletionRequest) -> Ask:
    """The replica's task for a completion request (refuses what cannot be done, naming the parameter)."""
    if body.suffix:
        raise _refuse("suffix", "inserting text before a suffix")
    n = body.n or 1
    if body.best_of is not None and body.best_of != n:
        raise _refuse("best_of", "best_of other than n")
    if body.echo and body.logprobs is not None:
        raise _refuse("echo", "echo together with logprobs")
    if body.stream and body.logprobs is not None:
        raise _refuse("logprobs", "logprobs while streaming")
    p = body.prompt
    if isinstance(p, str):
        prompts: list[str | tuple[int, ...]] = [p]
    elif not p:
        raise ApiError(400, "prompt: empty", "prompt")
    elif all(isinstance(x, int) for x in p):
        prompts = [tuple(int(x) for x in p)]  # type: ignore[arg-type]
    else:
        rows = cast(list[str | list[int]], p)  # pydantic took a list of texts or of id lists, never a mix
        prompts = [x if isinstance(x, str) else tuple(x) for x in rows]
    for i, one in enumerate(prompts):
        if not one:
            raise ApiError(400, f"prompt.{i}: empty" if len(prompts) > 1 else "prompt: empty", "prompt")
    sampling = _sampling(body, body.max_tokens, body.logprobs)
    return Ask(kind="completion", prompts=tuple(prompts), messages=(), echo=bool(body.echo), sampling=sampling)


def _content(i: int, m: ChatMessage) -> str:
    if m.content is None:
        if m.role != "assistant":
            raise ApiError(400, f"messages.{i}.content: required for role {m.role!r}", f"messages.{i}.content")
        return ""
    if isinstance(m.content, str):
        return m.content
    texts = []
    for j, part in enumerate(m.content):
        if part.type not in ("text", "refusal"):
            raise _refuse(f"messages.{i}.content.{j}.type", f"content of type {part.type!r}")
        texts.append((part.text if part.type == "text" else part.refusal) or "")
    return "\n".join(texts)


def chat_ask(body: ChatRequest) -> Ask:
    """The replica's task for a chat request (refuses what cannot be done, naming the parameter)."""
    for name in ("audio", "functions", "function_call", "prediction", "reasoning_effort", "web_search_options"):
        if getattr(body, name):
            raise _refuse(name, name.replace("_", " "))
    if body.tools:
        raise _refuse("tools", "tool calling")
    if body.tool_choice not in (None, "none", "auto"):
        raise _refuse("tool_choice", "a required tool choice")
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise _refuse("response_format", f"response format {body.response_format.get('type')!r}")
    if body.modalities and set(body.modalities) != {"text"}:
        raise _refuse("modalities", "output other than text")
    if body.verbosity not in (None, "medium"):
        raise _refuse("verbosity", "a verbosity setting")
    if body.stream and body.logprobs:
        raise _refuse("logprobs", "logprobs while streaming")
    messages = []
    for i, m in enumerate(body.messages):
        if m.role in ("tool", "function") or m.tool_calls or m.function_call or m.audio:
            raise _refuse(f"messages.{i}.role", "tool and function messages")
        messages.append(("system" if m.role == "developer" else m.role, _content(i, m)))
    top = (body.top_logprobs or 0) if body.logprobs else None
    sampling = _sampling(body, body.max_completion_tokens or body.max_tokens, top)
    return Ask(kind="chat", prompts=(), messages=tuple(messages), echo=False, sampling=sampling)


# ---------------------------------------------------------------------------------------------- responses


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sleep_ray"
    weight_version: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
    weight_version: int


def usage(answer: Answer) -> Json:
    done = sum(c.tokens for c in answer.choices)
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": done,
        "total_tokens": answer.prompt_tokens + done,
    }


def _completion_logprobs(c: Choice) -> Json | None:
    if c.logprobs is None:
        return None
    return {
        "tokens": [t.token for t in c.logprobs],
        "token_logprobs": [t.logprob for t in c.logprobs],
        "top_logprobs": [dict(t.top) for t in c.logprobs],
        "text_offset": [t.offset for t in c.logprobs],
    }


def _chat_logprobs(c: Choice) -> Json | None:
    if c.logprobs is None:
        return None

    def one(token: str, lp: float) -> Json:
        return {"token": token, "logprob": lp, "bytes": list(token.encode("utf-8", "replace"))}

    content = [{**one(t.token, t.logprob), "top_logprobs": [one(a, b) for a, b in t.top]} for t in c.logprobs]
    return {"content": content, "refusal": None}


def response_body(kind: str, rid: str, created: int, model: str, answer: Answer) -> Json:
    """The OpenAI response object of a finished completion or chat, with sleep_ray's two extra fields."""
    if kind == "chat":
        choices: list[Json] = [
            {
                "index": c.index,
                "message": {"role": "assistant", "content": c.text, "refusal": None},
                "finish_reason": c.finish_reason,
                "logprobs": _chat_logprobs(c),
            }
            for c in answer.choices
        ]
    else:
        choices = [
            {"index": c.index, "text": c.text, "finish_reason": c.finish_reason, "logprobs": _completion_logprobs(c)}
            for c in answer.choices
        ]
    return {
        "id": rid,
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(answer),
        "weight_version": answer.version,
        "memories_used": list(answer.memories_used),
    }


def chunk_body(kind: str, rid: str, created: int, model: str, version: int, d: Delta, first: bool) -> Json:
    """One server-sent event of a stream."""
    if kind == "chat":
        delta: Json = {"content": d.text} if d.text else {}
        if first:
            delta["role"] = "assistant"
        choice: Json = {"index": d.index, "delta": delta, "finish_reason": d.finish_reason, "logprobs": None}
    else:
        choice = {"index": d.index, "text": d.text, "finish_reason": d.finish_reason, "logprobs": None}
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return {
        "id": rid,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "weight_version": version,
    }
