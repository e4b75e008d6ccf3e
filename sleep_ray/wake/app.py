"""The wake endpoint: a Ray Serve application (`sleep_ray.wake.app:build_app`) of three deployments.

    WakeGateway      the HTTP ingress (`serve.gateways` replicas): body limit, bearer tokens, OpenAI bodies and
                     errors, the memory routes, version/rollback/sleep routes. Holds no weights; it asks a
                     serving replica through a Serve handle, so a replica that dies mid-request becomes a JSON
                     503 here instead of the proxy's plain-text 500.
    WakeServer       the serving replicas (`serve.replicas`, `server.py`): weights, retrieval, generation. A swap
                     arrives as a new `user_config` and `reconfigure` replaces the weights in place.
    SleepController  one replica (`controller.py`): the sleep scheduler, which sleeps beside serving and swaps.

All open the same durable `WakeStore` (`<run_dir>/wake/wake.sqlite`). Bodies: `openai_api.py` (completions, chat)
and `api.py` (memories, sleeps, versions); every response carries the weight version that produced it, in the
`X-Weight-Version` header and a `weight_version` field; every error is an OpenAI error body (`errors.py`).
"""

# No `from __future__ import annotations` here: Serve rebuilds the routes from these annotations at run time.
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.exceptions import RayActorError, RayTaskError

from sleep_ray.wake import api, openai_api
from sleep_ray.wake.auth import ADMIN_ENV, API_ENV, Guard
from sleep_ray.wake.controller import SleepController
from sleep_ray.wake.deploy import CONTROLLER_OPTIONS, GATEWAY_OPTIONS
from sleep_ray.wake.errors import ApiError, BodyLimit, body, install
from sleep_ray.wake.exchange import Answer, Ask, Delta
from sleep_ray.wake.server import WakeServer, config_of, replica_id, shared_store_of
from sleep_ray.wake.shared_store import StoreUnavailableError
from sleep_ray.wake.store import SleepRecord, StoredMemory

VERSION_HEADER = "X-Weight-Version"
REPLICA_HEADER = "X-Replica"  # the replica that answered: the serving one for completions, else this gateway
ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"description": "an OpenAI error body"} for c in (400, 401, 404, 409, 413)
}
bearer = HTTPBearer(auto_error=False)
Auth = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

app = FastAPI(title="sleep_ray wake endpoint", version="0.2.0", responses=ERRORS)
_last_version: list[int] = []  # the weight version the last answer of a serving replica carried (for errors)
_body_limit = [1 << 20]  # serve.max_body_bytes, set when the gateway starts (before any request)
install(app, lambda: _last_version[-1] if _last_version else None)
app.add_middleware(BodyLimit, limit=lambda: _body_limit[0])


def _header(creds: HTTPAuthorizationCredentials | None) -> str | None:
    """The Authorization header as the client sent it (FastAPI's HTTPBearer splits it)."""
    return f"{creds.scheme} {creds.credentials}" if creds else None


def _replica_error(e: Exception) -> ApiError:
    """What a serving replica's failure means to the client: its own ApiError, or a 503 when it died."""
    cause = e.cause if isinstance(e, RayTaskError) else e
    if isinstance(cause, ApiError):
        return ApiError(cause.status, cause.message, cause.param, cause.code)
    if isinstance(cause, StoreUnavailableError):
        return ApiError(503, str(cause), code="store_unavailable")
    if isinstance(e, RayActorError) or "ActorDied" in type(e).__name__ or "Unavailable" in type(e).__name__:
        return ApiError(503, "the serving replica stopped during the request; retry it", code="replica_unavailable")
    raise e


def _sleep_out(rec: SleepRecord, version: int | None) -> api.SleepOut:
    return api.SleepOut(
        sleep_id=rec.sleep_id,
        status=rec.status,
        created=rec.created,
        updated=rec.updated,
        info=rec.info,
        weight_version=version if version is not None else -1,
    )


@serve.deployment
@serve.ingress(app)
class WakeGateway:
    """The HTTP ingress: checks and routes; no weights."""

    def __init__(self, server: Any, controller: Any, args: dict[str, Any]):
        self.cfg = config_of(args)
        self.server, self.controller = server, controller
        self.store = shared_store_of(self.cfg)
        _body_limit[:] = [self.cfg.serve.max_body_bytes]
        opened = self.cfg.serve.open_admin
        self.admin = Guard(args.get("admin_token_sha256", ""), ADMIN_ENV, open_when_unset=opened, name="admin")
        self.api = Guard(args.get("api_token_sha256", ""), API_ENV, open_when_unset=True, name="api", warn=False)

    def _seen(self, version: int, replica: str = "") -> dict[str, str]:
        _last_version[:] = [version]
        return {VERSION_HEADER: str(version), REPLICA_HEADER: replica or replica_id()}

    async def _version(self) -> tuple[int, str]:
        try:
            version, checkpoint = await self.server.version.remote()
        except Exception as e:
            raise _replica_error(e) from None
        self._seen(version)
        return version, checkpoint

    # ---------------------------------------------------------------------------------------------- OpenAI

    @app.get("/v1/models", response_model=openai_api.ModelList)
    async def models(self) -> JSONResponse:
        version, _ = await self._version()
        card = openai_api.ModelCard(id=self.cfg.serve.model_name, created=int(time.time()), weight_version=version)
        out = openai_api.ModelList(data=[card], weight_version=version)
        return JSONResponse(out.model_dump(), headers=self._seen(version))

    @app.get("/v1/models/{model_id}", response_model=openai_api.ModelCard)
    async def model(self, model_id: str) -> JSONResponse:
        version, _ = await self._version()
        self._model(model_id, "model")
        card = openai_api.ModelCard(id=model_id, created=int(time.time()), weight_version=version)
        return JSONResponse(card.model_dump(), headers=self._seen(version))

    def _model(self, model: str, param: str = "model") -> None:
        if model != self.cfg.serve.model_name:
            msg = f"model {model!r} not found; this endpoint serves {self.cfg.serve.model_name!r}"
            raise ApiError(404, msg, param, "model_not_found")

    def _sizes(self, texts: list[tuple[str, str]]) -> None:
        limit = self.cfg.serve.max_prompt_chars
        for param, text in texts:
            if len(text) > limit:
                raise ApiError(400, f"{param}: {len(text)} characters; serve.max_prompt_chars is {limit}", param)

    @app.post("/v1/completions")
    async def completions(self, body: openai_api.CompletionRequest, authorization: Auth = None) -> Any:
        self.api.check(_header(authorization))
        self._model(body.model)
        ask = openai_api.completion_ask(body)
        self._sizes([(f"prompt.{i}", p) for i, p in enumerate(ask.prompts) if isinstance(p, str)])
        return await self._respond(ask, bool(body.stream), body.stream_options)

    @app.post("/v1/chat/completions")
    async def chat(self, body: openai_api.ChatRequest, authorization: Auth = None) -> Any:
        self.api.check(_header(authorization))
        self._model(body.model)
        ask = openai_api.chat_ask(body)
        self._sizes([(f"messages.{i}.content", c) for i, (_, c) in enumerate(ask.messages)])
        return await self._respond(ask, bool(body.stream), body.stream_options)

    async def _respond(self, ask: Ask, stream: bool, options: openai_api.StreamOptions | None) -> Any:
        self.controller.touch.remote()  # fire and forget: the idle trigger only needs a timestamp
        rid, created, model = f"cmpl-{uuid.uuid4().hex[:16]}", int(time.time()), self.cfg.serve.model_name
        if stream:
            seen: dict[str, str] = {}
            events = self._events(ask, rid, created, model, bool(options and options.include_usage), seen)
            first = await anext(events)  # an error before the first piece is still an HTTP error

            async def prepended() -> AsyncIterator[str]:
                yield first
                async for event in events:
                    yield event

            return StreamingResponse(prepended(), media_type="text/event-stream", headers=seen)
        try:
            answer: Answer = await self.server.answer.remote(ask)
        except Exception as e:
            raise _replica_error(e) from None
        out = openai_api.response_body(ask.kind, rid, created, model, answer)
        return JSONResponse(out, headers=self._seen(answer.version, answer.replica))

    async def _events(
        self, ask: Ask, rid: str, created: int, model: str, with_usage: bool, seen: dict[str, str]
    ) -> AsyncIterator[str]:
        """The SSE events of a streamed answer; `seen` gets the answering version's and replica's headers."""
        started: set[int] = set()
        version = -1
        try:
            async for item in self.server.options(stream=True).stream.remote(ask):
                if isinstance(item, tuple):  # the version and the replica that answer come first
                    version = item[0]
                    seen.update(self._seen(*item))
                elif isinstance(item, Delta):
                    chunk = openai_api.chunk_body(
                        ask.kind, rid, created, model, version, item, item.index not in started
                    )
                    started.add(item.index)
                    yield f"data: {json.dumps(chunk)}\n\n"
                elif with_usage:
                    obj = "chat.completion.chunk" if ask.kind == "chat" else "text_completion"
                    last: dict[str, Any] = {"id": rid, "object": obj, "created": created, "model": model}
                    last |= {"choices": [], "usage": openai_api.usage(item), "weight_version": item.version}
                    yield f"data: {json.dumps(last)}\n\n"
        except Exception as e:
            err = _replica_error(e)
            if not started:
                raise err from None
            yield f"data: {json.dumps(body(err.status, err.message, err.param, err.code))}\n\n"
        yield "data: [DONE]\n\n"

    # -------------------------------------------------------------------------------------------- memories

    @app.post("/v1/memories", response_model=api.MemoriesAck)
    async def add_memories(self, body: api.MemoriesIn, authorization: Auth = None) -> JSONResponse:
        self.admin.check(_header(authorization))
        s = self.cfg.serve
        if len(body.memories) > s.max_memories_per_call:
            msg = f"{len(body.memories)} memories in one call; serve.max_memories_per_call is {s.max_memories_per_call}"
            raise ApiError(400, msg, "memories")
        for i, m in enumerate(body.memories):
            if not m.text.strip():
                raise ApiError(400, f"memories.{i}.text: empty", f"memories.{i}.text")
            if len(m.text) > s.max_memory_chars:
                msg = f"memories.{i}.text: {len(m.text)} characters; serve.max_memory_chars is {s.max_memory_chars}"
                raise ApiError(400, msg, f"memories.{i}.text")
        self.controller.touch.remote()
        try:
            stored = await self.store.add_memories([(m.text, m.kind, m.memory_id) for m in body.memories])
        except ValueError as e:
            raise ApiError(409, str(e), "memories", "duplicate_memory_id") from None
        version, _ = await self._version()
        count = await self.store.count_unconsolidated()
        ack = api.MemoriesAck(accepted=[m.memory_id for m in stored], unconsolidated=count, weight_version=version)
        return JSONResponse(ack.model_dump(), headers=self._seen(version))

    @app.get("/v1/memories", response_model=api.MemoryPage)
    async def list_memories(
        self,
        authorization: Auth = None,
        offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        consumed: bool | None = None,
    ) -> JSONResponse:
        self.admin.check(_header(authorization))
        version, _ = await self._version()
        rows, total = await self.store.list_memories(offset=offset, limit=limit, consumed=consumed)
        data = await self._described(rows)
        page = api.MemoryPage(data=data, total=total, offset=offset, limit=limit, weight_version=version)
        return JSONResponse(page.model_dump(), headers=self._seen(version))

    @app.get("/v1/memories/{memory_id}", response_model=api.MemoryOut)
    async def get_memory(self, memory_id: str, authorization: Auth = None) -> JSONResponse:
        self.admin.check(_header(authorization))
        version, _ = await self._version()
        memory = await self.store.get_memory(memory_id)
        if memory is None:
            raise ApiError(404, f"no memory {memory_id!r}", "memory_id")
        out = (await self._described([memory]))[0]
        return JSONResponse(out.model_dump(), headers=self._seen(version))

    async def _described(self, rows: list[StoredMemory]) -> list[api.MemoryOut]:
        """Stored memories with where their knowledge stands (the knowledge ledger)."""
        return api.described(rows, await self.store.knowledge([m.memory_id for m in rows]))

    # ----------------------------------------------------------------------------------- sleep and versions

    @app.post("/v1/sleep", response_model=api.SleepOut, status_code=202)
    async def sleep(self, body: api.SleepIn, authorization: Auth = None) -> Any:
        self.admin.check(_header(authorization))
        version, _ = await self._version()
        code, got = await self.controller.start.remote(body.reason)
        if code != 202:
            raise ApiError(code, got, code="sleep_refused")
        return JSONResponse(_sleep_out(got, version).model_dump(), 202, headers=self._seen(version))

    @app.get("/v1/sleep/{sleep_id}", response_model=api.SleepOut)
    async def sleep_status(self, sleep_id: str, authorization: Auth = None) -> Any:
        self.admin.check(_header(authorization))
        version, _ = await self._version()
        rec = await self.controller.status.remote(sleep_id)
        if rec is None:
            raise ApiError(404, f"no sleep {sleep_id!r}", "sleep_id")
        return JSONResponse(_sleep_out(rec, version).model_dump(), headers=self._seen(version))

    @app.get("/v1/version", response_model=api.VersionOut)
    async def version(self) -> JSONResponse:
        version, checkpoint = await self._version()
        versions = [r.version for r in await self.store.versions()]
        out = api.VersionOut(weight_version=version, checkpoint=checkpoint, versions=versions)
        return JSONResponse(out.model_dump(), headers=self._seen(version))

    @app.post("/v1/rollback", response_model=api.VersionOut)
    async def rollback(self, authorization: Auth = None) -> JSONResponse:
        self.admin.check(_header(authorization))
        code, got = await self.controller.rollback.remote()
        if code != 200:
            raise ApiError(code, got, code="rollback_refused")
        versions = [r.version for r in await self.store.versions()]
        out = api.VersionOut(weight_version=got.version, checkpoint=got.checkpoint, versions=versions)
        return JSONResponse(out.model_dump(), headers=self._seen(got.version))


def build_app(args: dict[str, Any]) -> Any:
    """The application builder `serve deploy` / the REST API calls with the config's `args`:
    {"config": path, "overrides": [...], "admin_token_sha256": hex, "api_token_sha256": hex, "dashboard": url,
    "serve_config": path} (the hashes may be empty: then the replicas read the tokens from their environment)."""
    s = config_of(args).serve
    controller: Any = SleepController
    server: Any = WakeServer
    gateway: Any = WakeGateway
    ctrl = controller.options(ray_actor_options=CONTROLLER_OPTIONS).bind(args)
    replicas = server.options(
        num_replicas=s.replicas, ray_actor_options={"num_cpus": s.cpus_per_replica, "num_gpus": s.gpus_per_replica}
    ).bind(args)
    return gateway.options(num_replicas=s.gateways, ray_actor_options=GATEWAY_OPTIONS).bind(replicas, ctrl, args)
