"""The wake endpoint: a Ray Serve application (`sleep_ray.wake.app:build_app`) of two deployments.

    WakeServer       the ingress, `serve.replicas` replicas: OpenAI-compatible completions and chat (streaming or
                     not), the memory routes, version/rollback/sleep routes. Holds the served weights; a swap
                     arrives as a new `user_config` and `reconfigure` replaces them in place.
    SleepController  one replica: the sleep scheduler (`scheduler.py`), which sleeps beside serving and swaps.

Both open the same durable `WakeStore` (`<run_dir>/wake/wake.sqlite`). Routes and bodies: `api.py`; every response
carries the weight version that produced it, in the `X-Weight-Version` header and a `weight_version` field.
"""

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from sleep_ray.config import Config, load_config
from sleep_ray.wake import api
from sleep_ray.wake.deploy import CONTROLLER_OPTIONS, Swapper, serve_config
from sleep_ray.wake.ledger import KnowledgeLedger
from sleep_ray.wake.model import Generator, Weights, chat_prompt, completion_prompt, load_weights
from sleep_ray.wake.retrieve import context_for
from sleep_ray.wake.scheduler import NothingToSleepOnError, SleepBusyError, SleepScheduler, ensure_base_version
from sleep_ray.wake.store import SleepRecord, StoredMemory, WakeStore

VERSION_HEADER = "X-Weight-Version"
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": api.ErrorOut} for c in (400, 401, 404, 409, 422)}

app = FastAPI(title="sleep_ray wake endpoint", version="0.1.0", responses=ERRORS)
bearer = HTTPBearer(auto_error=False)
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _serving_version() -> int | None:
    """This replica's current weight version (for responses made before a handler took its weights)."""
    try:
        w = getattr(serve.get_replica_context().servable_object, "weights", None)
    except Exception:  # outside a replica
        return None
    return None if w is None else int(w.version)


def _error(status: int, detail: str) -> JSONResponse:
    v = _serving_version()
    headers = {VERSION_HEADER: str(v)} if v is not None else {}
    return JSONResponse({"detail": detail, "weight_version": v}, status_code=status, headers=headers)


@app.exception_handler(HTTPException)
async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail))


@app.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ()))
    return _error(422, f"{where}: {first.get('msg', 'invalid request')}")


def _config(args: dict[str, Any]) -> Config:
    return load_config(args.get("config"), list(args.get("overrides", [])))


def _store(cfg: Config) -> WakeStore:
    return WakeStore(Path(cfg.run_dir) / "wake")


def _token(configured: str, env: str) -> str:
    return configured or os.environ.get(env, "")


def _check(creds: HTTPAuthorizationCredentials | None, token: str) -> None:
    if token and (creds is None or creds.credentials != token):
        raise HTTPException(401, "missing or wrong bearer token")


def _sleep_out(rec: SleepRecord, version: int) -> api.SleepOut:
    return api.SleepOut(
        sleep_id=rec.sleep_id,
        status=rec.status,
        created=rec.created,
        updated=rec.updated,
        info=rec.info,
        weight_version=version,
    )


@serve.deployment
class SleepController:
    """The single scheduler replica: triggers, runs and gates sleeps, swaps every WakeServer replica."""

    def __init__(self, args: dict[str, Any]):
        self.cfg = _config(args)
        s = self.cfg.serve
        store = _store(self.cfg)
        active = ensure_base_version(store, self.cfg.model.path)
        path = Path(args["serve_config"])
        if not path.is_file():  # deployed by `serve deploy` or a RayService, not by `sleep-ray serve`: swaps need it
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(serve_config(self.cfg, args, active.checkpoint, active.version), indent=2))
        swap = Swapper(args["dashboard"], f"http://{s.host}:{s.port}", Path(args["serve_config"]), s.replicas)
        self.scheduler = SleepScheduler(self.cfg, store, swap)
        self._loop = asyncio.get_event_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.serve.scheduler_poll_s)
            try:
                await asyncio.to_thread(self.scheduler.tick)
            except (SleepBusyError, NothingToSleepOnError):
                pass

    async def touch(self) -> None:
        self.scheduler.touch()

    async def start(self, reason: str) -> tuple[int, Any]:
        try:
            return 202, await asyncio.to_thread(self.scheduler.start, reason)
        except SleepBusyError as e:
            return 409, str(e)
        except NothingToSleepOnError as e:
            return 409, str(e)

    async def status(self, sleep_id: str) -> SleepRecord | None:
        return await asyncio.to_thread(self.scheduler.status, sleep_id)

    async def rollback(self) -> tuple[int, Any]:
        try:
            rec = await asyncio.to_thread(self.scheduler.rollback)
            return 200, rec
        except NothingToSleepOnError as e:
            return 409, str(e)
        except Exception as e:  # a failed swap leaves the version as it was
            return 409, f"rollback failed: {type(e).__name__}: {e}"


@serve.deployment
@serve.ingress(app)
class WakeServer:
    """One serving replica: the weights of `user_config`, the memory store, the OpenAI routes."""

    def __init__(self, controller: Any, args: dict[str, Any]):
        self.cfg = _config(args)
        self.controller = controller
        self.store = _store(self.cfg)
        self.gen = Generator()
        self.weights: Weights | None = None
        self.retrieval = self.cfg.serve.retrieval
        self.admin = _token(args.get("admin_token", "") or self.cfg.serve.admin_token, "SLEEP_RAY_ADMIN_TOKEN")
        self.api_token = _token(self.cfg.serve.completion_token, "SLEEP_RAY_API_TOKEN")

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A swap: load the named checkpoint beside the current weights, then replace them in one assignment."""
        ckpt, version = str(user_config["checkpoint"]), int(user_config["version"])
        self.retrieval = bool(user_config.get("retrieval", self.cfg.serve.retrieval))
        w = self.weights
        if w is None or (w.checkpoint, w.version) != (ckpt, version):
            threads = self.cfg.resources.threads_per_process
            self.weights = await asyncio.to_thread(load_weights, ckpt, version, threads, self.cfg.model.dtype)

    def _w(self) -> Weights:
        if self.weights is None:
            raise HTTPException(400, "no weights loaded yet")
        return self.weights

    def _activity(self) -> None:
        self.controller.touch.remote()  # fire and forget: the idle trigger only needs a timestamp

    # ---------------------------------------------------------------------------------------------- OpenAI

    @app.get("/v1/models", response_model=api.ModelList)
    async def models(self) -> JSONResponse:
        w = self._w()
        card = api.ModelCard(id=self.cfg.serve.model_name, created=int(time.time()), weight_version=w.version)
        out = api.ModelList(data=[card], weight_version=w.version)
        return JSONResponse(out.model_dump(), headers={VERSION_HEADER: str(w.version)})

    def _limits(self, w: Weights, model: str, max_tokens: int | None, prompt_tokens: int) -> int:
        if model != self.cfg.serve.model_name:
            raise HTTPException(404, f"model {model!r} not found; this endpoint serves {self.cfg.serve.model_name!r}")
        n = max_tokens or self.cfg.serve.max_new_tokens
        if n > self.cfg.serve.max_tokens_limit:
            raise HTTPException(400, f"max_tokens {n} is over serve.max_tokens_limit={self.cfg.serve.max_tokens_limit}")
        if prompt_tokens + n > w.window:
            raise HTTPException(
                400, f"prompt ({prompt_tokens} tokens) + max_tokens ({n}) is over the window ({w.window})"
            )
        return n

    def _prepare(
        self, w: Weights, body: Any, bare: str, query: str, default_stops: list[str]
    ) -> tuple[int, str, list[str], list[str]]:
        """Check the request against the limits and find the memories to prepend:
        (max_tokens, context, ids of the memories used, stop strings)."""
        prompt_tokens = w.count(bare)
        n = self._limits(w, body.model, body.max_tokens, prompt_tokens)
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or []) or default_stops
        budget = w.window - prompt_tokens - n - 8
        use = self.retrieval if body.use_memories is None else body.use_memories
        if not use or self.cfg.serve.retrieval_k == 0 or budget <= 8:
            return n, "", [], stops
        mems = self.store.unconsolidated()
        context = context_for(query, mems, self.cfg.serve.retrieval_k, w.count, budget)
        return n, context, [m.memory_id for m in mems if context and m.text in context], stops

    @app.post("/v1/completions", response_model=api.CompletionResponse)
    async def completions(self, body: api.CompletionRequest, creds: Creds) -> Any:
        _check(creds, self.api_token)
        w = self._w()
        self._activity()
        n, context, used, stops = self._prepare(w, body, body.prompt, body.prompt, [])
        prompt = completion_prompt(body.prompt, context)
        return await self._answer(w, "text_completion", prompt, n, stops, body, used)

    @app.post("/v1/chat/completions", response_model=api.ChatResponse)
    async def chat(self, body: api.ChatRequest, creds: Creds) -> Any:
        _check(creds, self.api_token)
        w = self._w()
        self._activity()
        messages = [(m.role, m.content) for m in body.messages]
        query = next((c for r, c in reversed(messages) if r == "user"), "")
        one_line = [] if getattr(w.tokenizer, "chat_template", None) else ["\n"]  # the tiny models answer in a line
        n, context, used, stops = self._prepare(w, body, chat_prompt(w, messages, ""), query, one_line)
        return await self._answer(w, "chat.completion", chat_prompt(w, messages, context), n, stops, body, used)

    async def _answer(
        self, w: Weights, kind: str, prompt: str, n: int, stops: list[str], body: Any, used: list[str]
    ) -> Any:
        temp, seed = body.temperature, body.seed
        rid, created, headers = f"cmpl-{uuid.uuid4().hex[:16]}", int(time.time()), {VERSION_HEADER: str(w.version)}
        if body.stream:
            return StreamingResponse(
                self._sse(w, kind, rid, created, prompt, n, temp, stops, seed),
                media_type="text/event-stream",
                headers=headers,
            )
        text, finish, p_tok, c_tok = await asyncio.to_thread(self.gen.complete, w, prompt, n, temp, stops, seed)
        usage = api.Usage(prompt_tokens=p_tok, completion_tokens=c_tok, total_tokens=p_tok + c_tok)
        common: dict[str, Any] = dict(
            id=rid, created=created, model=self.cfg.serve.model_name, usage=usage, weight_version=w.version
        )
        common["memories_used"] = used
        if kind == "chat.completion":
            msg = api.ChatMessage(role="assistant", content=text)
            out: Any = api.ChatResponse(choices=[api.ChatChoice(message=msg, finish_reason=finish)], **common)
        else:
            out = api.CompletionResponse(choices=[api.CompletionChoice(text=text, finish_reason=finish)], **common)
        return JSONResponse(out.model_dump(), headers=headers)

    def _sse(
        self,
        w: Weights,
        kind: str,
        rid: str,
        created: int,
        prompt: str,
        n: int,
        temp: float,
        stops: list[str],
        seed: Any,
    ) -> Iterator[str]:
        chat = kind == "chat.completion"
        base = {"id": rid, "created": created, "model": self.cfg.serve.model_name, "weight_version": w.version}
        base["object"] = "chat.completion.chunk" if chat else "text_completion"
        for i, (delta, finish) in enumerate(self.gen.stream(w, prompt, n, temp, stops, seed)):
            if chat:
                d: dict[str, Any] = {"content": delta} if delta else {}
                if i == 0:
                    d["role"] = "assistant"
                choice: dict[str, Any] = {"index": 0, "delta": d, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": delta, "finish_reason": finish, "logprobs": None}
            yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"
        yield "data: [DONE]\n\n"

    # -------------------------------------------------------------------------------------------- memories

    @app.post("/v1/memories", response_model=api.MemoriesAck)
    async def add_memories(self, body: api.MemoriesIn, creds: Creds) -> JSONResponse:
        _check(creds, self.admin)
        s, w = self.cfg.serve, self._w()
        if len(body.memories) > s.max_memories_per_call:
            raise HTTPException(
                422,
                f"{len(body.memories)} memories in one call; serve.max_memories_per_call is {s.max_memories_per_call}",
            )
        for i, m in enumerate(body.memories):
            if not m.text.strip():
                raise HTTPException(422, f"memories.{i}.text: empty")
            if len(m.text) > s.max_memory_chars:
                raise HTTPException(
                    422, f"memories.{i}.text: {len(m.text)} characters; serve.max_memory_chars is {s.max_memory_chars}"
                )
        self._activity()
        try:
            stored = await asyncio.to_thread(
                self.store.add_memories, [(m.text, m.kind, m.memory_id) for m in body.memories]
            )
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
        ack = api.MemoriesAck(
            accepted=[m.memory_id for m in stored],
            unconsolidated=self.store.count_unconsolidated(),
            weight_version=w.version,
        )
        return JSONResponse(ack.model_dump(), headers={VERSION_HEADER: str(w.version)})

    @app.get("/v1/memories", response_model=api.MemoryPage)
    async def list_memories(
        self,
        creds: Creds,
        offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        consumed: bool | None = None,
    ) -> JSONResponse:
        _check(creds, self.admin)
        w = self._w()
        rows, total = self.store.list_memories(offset=offset, limit=limit, consumed=consumed)
        page = api.MemoryPage(
            data=self._described(rows), total=total, offset=offset, limit=limit, weight_version=w.version
        )
        return JSONResponse(page.model_dump(), headers={VERSION_HEADER: str(w.version)})

    @app.get("/v1/memories/{memory_id}", response_model=api.MemoryOut)
    async def get_memory(self, memory_id: str, creds: Creds) -> JSONResponse:
        _check(creds, self.admin)
        w = self._w()
        memory = self.store.get_memory(memory_id)
        if memory is None:
            raise HTTPException(404, f"no memory {memory_id!r}")
        return JSONResponse(self._described([memory])[0].model_dump(), headers={VERSION_HEADER: str(w.version)})

    def _described(self, rows: list[StoredMemory]) -> list[api.MemoryOut]:
        """Stored memories with where their knowledge stands (the knowledge ledger)."""
        return api.described(rows, KnowledgeLedger(self.store).knowledge([m.memory_id for m in rows]))

    # ----------------------------------------------------------------------------------- sleep and versions

    @app.post("/v1/sleep", response_model=api.SleepOut, status_code=202)
    async def sleep(self, body: api.SleepIn, creds: Creds) -> Any:
        _check(creds, self.admin)
        w = self._w()
        code, got = await self.controller.start.remote(body.reason)
        if code != 202:
            raise HTTPException(code, got)
        return JSONResponse(_sleep_out(got, w.version).model_dump(), 202, headers={VERSION_HEADER: str(w.version)})

    @app.get("/v1/sleep/{sleep_id}", response_model=api.SleepOut)
    async def sleep_status(self, sleep_id: str, creds: Creds) -> Any:
        _check(creds, self.admin)
        w = self._w()
        rec = await self.controller.status.remote(sleep_id)
        if rec is None:
            raise HTTPException(404, f"no sleep {sleep_id!r}")
        return JSONResponse(_sleep_out(rec, w.version).model_dump(), headers={VERSION_HEADER: str(w.version)})

    @app.get("/v1/version", response_model=api.VersionOut)
    async def version(self) -> JSONResponse:
        w = self._w()
        out = api.VersionOut(
            weight_version=w.version, checkpoint=w.checkpoint, versions=[r.version for r in self.store.versions()]
        )
        return JSONResponse(out.model_dump(), headers={VERSION_HEADER: str(w.version)})

    @app.post("/v1/rollback", response_model=api.VersionOut)
    async def rollback(self, creds: Creds) -> JSONResponse:
        _check(creds, self.admin)
        code, got = await self.controller.rollback.remote()
        if code != 200:
            raise HTTPException(code, got)
        out = api.VersionOut(
            weight_version=got.version, checkpoint=got.checkpoint, versions=[r.version for r in self.store.versions()]
        )
        return JSONResponse(out.model_dump(), headers={VERSION_HEADER: str(got.version)})


def build_app(args: dict[str, Any]) -> Any:
    """The application builder `serve deploy` / the REST API calls with the config's `args`:
    {"config": path, "overrides": [...], "admin_token": str, "dashboard": url, "serve_config": path}."""
    cfg = _config(args)
    s = cfg.serve
    controller: Any = SleepController
    server: Any = WakeServer
    ctrl = controller.options(ray_actor_options=CONTROLLER_OPTIONS).bind(args)
    opts = {
        "num_replicas": s.replicas,
        "ray_actor_options": {"num_cpus": s.cpus_per_replica, "num_gpus": s.gpus_per_replica},
    }
    return server.options(**opts).bind(ctrl, args)
