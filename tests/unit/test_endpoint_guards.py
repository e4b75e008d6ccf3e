"""The endpoint's guards without Serve: where tokens come from and how they are checked, the body limit before
parsing, OpenAI bodies turned into a replica's task (or refused by name), and a scheduler poll that survives."""

from __future__ import annotations

import asyncio
import logging
import os
import stat

import httpx
import pytest
from fastapi import FastAPI, Request

from sleep_ray.wake import openai_api
from sleep_ray.wake.auth import ADMIN_ENV, Guard, TokenError, digest, read_token_file, resolve
from sleep_ray.wake.controller import poll_forever
from sleep_ray.wake.errors import ApiError, BodyLimit, install

TOKEN = "a-token-of-enough-length"


def test_a_new_token_is_written_once_readable_by_its_owner_only_and_survives_a_restart(tmp_path, monkeypatch):
    monkeypatch.delenv(ADMIN_ENV, raising=False)
    path = tmp_path / "conf" / "admin_token"
    first = resolve("", ADMIN_ENV, str(path), create=True)
    assert first is not None and stat.S_IMODE(path.stat().st_mode) == 0o600 and first.token not in first.where
    again = resolve("", ADMIN_ENV, str(path), create=True)  # a restart reads the same file
    assert again is not None and again.token == first.token
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    assert resolve("", ADMIN_ENV, str(path), create=True).token == TOKEN  # type: ignore[union-attr]
    assert resolve("given-by-the-caller-long", ADMIN_ENV, str(path), create=True).where == "given by the caller"  # type: ignore[union-attr]
    os.chmod(path, 0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        read_token_file(path)
    with pytest.raises(TokenError, match="at least 16"):
        resolve("short", ADMIN_ENV, "", create=False)
    monkeypatch.delenv(ADMIN_ENV)
    assert resolve("", ADMIN_ENV, str(tmp_path / "none"), create=False) is None


def test_the_guard_knows_only_a_hash_and_closes_when_no_token_is_set(monkeypatch, caplog):
    monkeypatch.delenv(ADMIN_ENV, raising=False)
    guard = Guard(digest(TOKEN), ADMIN_ENV, open_when_unset=False, name="admin")
    guard.check(f"Bearer {TOKEN}")
    for bad in (None, "", f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN}x"):
        with pytest.raises(ApiError) as e:
            guard.check(bad)
        assert e.value.status == 401
    with caplog.at_level(logging.WARNING):
        closed = Guard("", ADMIN_ENV, open_when_unset=False, name="admin")
    with pytest.raises(ApiError, match="no admin token"):
        closed.check(f"Bearer {TOKEN}")
    with caplog.at_level(logging.WARNING):
        Guard("", ADMIN_ENV, open_when_unset=True, name="admin").check(None)  # opened on purpose, and logged
    assert "OPEN" in caplog.text and "closed" in caplog.text
    monkeypatch.setenv(ADMIN_ENV, TOKEN)  # deployed without a hash: the replica's own environment
    Guard("", ADMIN_ENV, open_when_unset=False, name="admin").check(f"Bearer {TOKEN}")


def _app(limit: int) -> FastAPI:
    app = FastAPI()
    install(app, lambda: 7)
    app.add_middleware(BodyLimit, limit=lambda: limit)
    seen: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        seen.append(len(await request.body()))
        return {"bytes": seen[-1]}

    @app.post("/refuse")
    async def refuse() -> dict:
        raise ApiError(400, "stop: bad", "stop")

    app.state.seen = seen
    return app


def test_the_body_limit_refuses_before_the_app_reads_a_byte():
    app = _app(limit=100)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:

            async def chunks(n: int):
                for _ in range(n):
                    yield b"x" * 30

            return [
                await c.post("/echo", content=b"x" * 100),
                await c.post("/echo", content=b"x" * 101),
                await c.post("/echo", content=chunks(3)),  # chunked, 90 bytes
                await c.post("/echo", content=chunks(4)),  # chunked, 120 bytes
                await c.post("/refuse"),
                await c.get("/nowhere"),
            ]

    ok, big, ok_chunked, big_chunked, refused, missing = asyncio.run(run())
    assert (ok.status_code, ok_chunked.status_code) == (200, 200) and app.state.seen == [100, 90]
    for r in (big, big_chunked):
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert refused.status_code == 400 and refused.json()["error"] == {
        "message": "stop: bad",
        "type": "invalid_request_error",
        "param": "stop",
        "code": None,
    }
    assert refused.json()["weight_version"] == 7 and missing.status_code == 404 and missing.json()["error"]


def test_openai_bodies_become_tasks_or_are_refused_by_parameter():
    chat = openai_api.ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": None},
            ],
            "max_tokens": 5,
            "max_completion_tokens": 3,
            "n": 2,
            "stop": "x",
            "logprobs": True,
            "top_logprobs": 2,
            "logit_bias": {"4": -100},
        }
    )
    ask = openai_api.chat_ask(chat)
    assert ask.messages == (("system", "Be brief."), ("user", "a\nb"), ("assistant", ""))
    s = ask.sampling
    assert (s.max_tokens, s.n, s.stop, s.logprobs, s.logit_bias) == (3, 2, ("x",), 2, {4: -100.0})
    ids = openai_api.completion_ask(openai_api.CompletionRequest(model="m", prompt=[[1, 2], [3]]))
    assert ids.prompts == ((1, 2), (3,)) and ids.sampling.stop is None and ids.sampling.temperature == 0.0
    for body, param in [
        ({"prompt": "p", "suffix": "s"}, "suffix"),
        ({"prompt": "p", "best_of": 2}, "best_of"),
        ({"prompt": "p", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ]:
        with pytest.raises(ApiError) as e:
            openai_api.completion_ask(openai_api.CompletionRequest.model_validate({"model": "m", **body}))
        assert e.value.param == param and e.value.status == 400
    with pytest.raises(ApiError) as e:
        openai_api.chat_ask(openai_api.ChatRequest.model_validate({"model": "m", "messages": [{"role": "tool"}]}))
    assert e.value.param == "messages.0.role"
    with pytest.raises(ValueError, match="lone surrogate"):
        openai_api.CompletionRequest.model_validate({"model": "m", "prompt": "\ud800"})


def test_the_scheduler_poll_logs_an_unexpected_error_and_goes_on(caplog):
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a database hiccup")

    async def run() -> None:
        task = asyncio.create_task(poll_forever(tick, 0.01))
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(run(), 10))
    assert len(calls) >= 3 and "a database hiccup" in caplog.text and "polling goes on" in caplog.text
