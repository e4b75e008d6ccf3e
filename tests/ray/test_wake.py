"""The wake endpoint on real Ray Serve over loopback HTTP: OpenAI client, memories, auth, bad input, durability
(kill -9 of the serving replica right after an acknowledgement), a sleep that swaps, rollback, and a schemathesis
run against the OpenAPI document. One endpoint for the module (deploying costs tens of seconds)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sleep_ray.runtime.export import RECORD_FILE
from sleep_ray.wake.deploy import launch, wait_until_up
from sleep_ray.wake.store import WakeStore
from tests.helpers import ROOT, SMALL_DREAM, SMALL_SLEEP, assert_grown_checkpoint

pytestmark = pytest.mark.slow
TOKEN = "test-admin-token"
FACT = "Zorya Quill lives in Tarnholt. Zorya Quill works as a baker."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint(ray_cluster, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("wake")
    overrides = [
        f"run_dir={run_dir}",
        f"model.path={ROOT / 'examples' / 'tiny_base'}",
        f"serve.port={_free_port()}",
        "serve.replicas=2",  # the swap reaches every replica; a replica killed under load leaves one answering
        "serve.max_memories_per_call=4",
        "serve.max_memory_chars=400",
        "serve.gate.min_gain=-1",
        "serve.gate.min_retention=0",
        "serve.gate.questions_per_memory=1",
        "serve.gate.rehearsal_questions=8",
        "serve.gate.memory_hold=0",  # a 4-step sleep stores little: count every memory as learnt
        *SMALL_SLEEP,
        *SMALL_DREAM,  # a scheduled sleep runs both stages; round 1 of Dreaming is planned by the RLlib policy
        "sleep.dreaming.curriculum=ppo",
        "sleep.dreaming.memory_questions=2",
        f"sleep.dreaming.curriculum_policy={ROOT / 'examples' / 'curriculum_ppo'}",
        "resources.train_workers=1",
    ]
    ep = launch(None, overrides, admin_token=TOKEN)
    yield ep
    from ray import serve

    from sleep_ray.wake.shared_store import release

    serve.delete("sleep_ray")
    release(Path(run_dir).resolve() / "wake", "sleep_ray")


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_openai_client_completions_chat_streaming_and_version(endpoint):
    from openai import OpenAI

    client = OpenAI(base_url=f"{endpoint.url}/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["sleep-ray"]
    raw = client.completions.with_raw_response.create(
        model="sleep-ray", prompt="Question: Where does Ana Vel live?\nAnswer:", max_tokens=6
    )
    assert raw.headers["x-weight-version"] == "0" and raw.headers["x-replica"]
    done = raw.parse()
    assert done.choices[0].text and done.model_extra["weight_version"] == 0
    chat = client.chat.completions.create(
        model="sleep-ray", messages=[{"role": "user", "content": "Where does Ana Vel live?"}], max_tokens=8
    )
    assert chat.choices[0].message.content and "\n" not in chat.choices[0].message.content
    pieces = list(
        client.chat.completions.create(
            model="sleep-ray",
            messages=[{"role": "user", "content": "Where does Ana Vel live?"}],
            max_tokens=8,
            stream=True,
        )
    )
    streamed = "".join(p.choices[0].delta.content or "" for p in pieces)
    assert streamed == chat.choices[0].message.content  # greedy: streaming and not agree
    assert pieces[-1].choices[0].finish_reason in ("stop", "length")
    assert all(p.model_extra["weight_version"] == 0 for p in pieces)
    with client.completions.with_streaming_response.create(
        model="sleep-ray", prompt="Question: Who", max_tokens=5, stream=True
    ) as response:  # a stream names the version and the replica that answer it, as every other answer
        assert response.headers["x-weight-version"] == "0" and response.headers["x-replica"]
        text = "".join(c.choices[0].text for c in response.parse())
    assert text


def test_admin_routes_need_the_token(endpoint):
    body = {"memories": [{"text": FACT}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = httpx.post(f"{endpoint.url}/v1/memories", json=body, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["type"] == "authentication_error"
        assert httpx.get(f"{endpoint.url}/v1/memories", headers=headers).status_code == 401
        assert httpx.post(f"{endpoint.url}/v1/sleep", json={}, headers=headers).status_code == 401
        assert httpx.post(f"{endpoint.url}/v1/rollback", headers=headers).status_code == 401
    assert httpx.get(f"{endpoint.url}/v1/memories", headers=_admin()).json()["total"] == 0


@pytest.mark.parametrize(
    "case,kwargs,status",
    [
        ("malformed json", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("wrong type", {"json": {"memories": [{"text": 5}]}}, 400),
        ("empty text", {"json": {"memories": [{"text": "  "}]}}, 400),
        ("oversize text", {"json": {"memories": [{"text": "word " * 100}]}}, 400),
        ("too many", {"json": {"memories": [{"text": f"Fact {i}."} for i in range(5)]}}, 400),
        ("unknown field", {"json": {"memories": [{"text": "A fact.", "colour": "red"}]}}, 400),
        ("bad kind", {"json": {"memories": [{"text": "A fact.", "kind": "rumour"}]}}, 400),
        ("no memories", {"json": {"memories": []}}, 400),
    ],
)
def test_bad_memories_get_4xx_and_change_nothing(endpoint, case, kwargs, status):
    kwargs.setdefault("headers", {}).update(_admin())
    r = httpx.post(f"{endpoint.url}/v1/memories", **kwargs)
    assert r.status_code == status, (case, r.text)
    assert r.json()["error"]["message"] and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{endpoint.url}/v1/memories", headers=_admin()).json()["total"] == 0


@pytest.mark.parametrize(
    "body,status",
    [
        ({"model": "sleep-ray", "prompt": "Hello " * 600, "max_tokens": 4}, 400),  # over the window
        ({"model": "sleep-ray", "prompt": "Hi", "max_tokens": 10_000}, 400),
        ({"model": "other", "prompt": "Hi"}, 404),
        ({"model": "sleep-ray", "prompt": ""}, 400),
        ({"model": "sleep-ray", "prompt": "Hi", "best_of": 3}, 400),
        ({"model": "sleep-ray", "prompt": "Hi", "temperature": "hot"}, 400),
        ({"model": "sleep-ray", "prompt": "Hi", "colour": "red"}, 400),
        ('{"model": "sleep-ray", "prompt": "\\ud800"}', 400),  # a lone surrogate: refused, not a 500
    ],
)
def test_bad_completions_get_4xx(endpoint, body, status):
    if isinstance(body, str):  # raw JSON (a client library would refuse to encode it)
        r = httpx.post(f"{endpoint.url}/v1/completions", content=body, headers={"Content-Type": "application/json"})
    else:
        r = httpx.post(f"{endpoint.url}/v1/completions", json=body)
    assert r.status_code == status, r.text
    assert r.headers["x-weight-version"] == "0" and r.json()["error"]["message"]


def test_openai_client_fields_are_honoured_or_refused_by_name(endpoint):
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=f"{endpoint.url}/v1", api_key="unused", max_retries=0)
    assert client.models.retrieve("sleep-ray").id == "sleep-ray"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    q = "Where does Ana Vel live?"
    parts = [{"type": "text", "text": q}]
    chat = client.chat.completions.create(
        model="sleep-ray",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": parts, "name": "ana"}],
        max_completion_tokens=6,
        n=2,
        temperature=1.0,
        top_p=0.9,
        seed=3,
        user="someone",
        logprobs=True,
        top_logprobs=2,
        frequency_penalty=0.5,
        presence_penalty=0.5,
        logit_bias={"5": -1},
        metadata={"k": "v"},
        store=False,
    )
    assert [c.index for c in chat.choices] == [0, 1] and all(c.logprobs.content for c in chat.choices)
    assert chat.usage.completion_tokens == sum(len(c.logprobs.content) for c in chat.choices) <= 12
    assert all(len(t.top_logprobs) == 2 for c in chat.choices for t in c.logprobs.content)
    listed = client.completions.create(model="sleep-ray", prompt=["Question: Who", "Question:"], max_tokens=3, n=2)
    assert sorted(c.index for c in listed.choices) == [0, 1, 2, 3]
    ids = client.completions.create(model="sleep-ray", prompt=[[5, 6, 7], [8, 9]], max_tokens=3)
    assert sorted(c.index for c in ids.choices) == [0, 1] and ids.usage.prompt_tokens >= 5
    lp = client.completions.create(model="sleep-ray", prompt="Question: Who", max_tokens=3, logprobs=1)
    assert len(lp.choices[0].logprobs.tokens) == lp.usage.completion_tokens == 3
    echo = client.completions.create(model="sleep-ray", prompt="Question: Who", max_tokens=2, echo=True)
    assert echo.choices[0].text.startswith("Question: Who")
    stream = client.chat.completions.create(
        model="sleep-ray",
        messages=[{"role": "user", "content": q}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    refused = {
        "tools": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        "response_format": {"response_format": {"type": "json_object"}},
        "messages.0.content.0.type": {
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
        },
        "colour": {"extra_body": {"colour": "red"}},
    }
    for param, extra in refused.items():
        body = {"model": "sleep-ray", "messages": [{"role": "user", "content": q}], **extra}
        extra_body = body.pop("extra_body", {})
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(**body, extra_body=extra_body)
        assert err.value.body["param"] == param, err.value.body  # OpenAI's error object, naming the parameter


def test_a_stop_string_stops_generation_and_usage_counts_what_is_returned(endpoint):
    body = {"model": "sleep-ray", "prompt": "Question: Who", "max_tokens": 12}
    full = httpx.post(f"{endpoint.url}/v1/completions", json=body, timeout=60).json()
    word = full["choices"][0]["text"].split()[1]
    cut = httpx.post(f"{endpoint.url}/v1/completions", json={**body, "stop": [word]}, timeout=60).json()
    text = cut["choices"][0]["text"]
    assert cut["choices"][0]["finish_reason"] == "stop" and word not in text
    assert cut["usage"]["completion_tokens"] < full["usage"]["completion_tokens"]


def test_size_limits_refuse_before_tokenizing_while_other_routes_answer(endpoint):
    big = {"model": "sleep-ray", "messages": [{"role": "user", "content": "word " * 7_000}]}  # over max_prompt_chars
    waits: list[float] = []
    done = threading.Event()

    def ask_version() -> None:
        with httpx.Client(timeout=30) as c:
            while not done.is_set():
                t = time.time()
                c.get(f"{endpoint.url}/v1/version")
                waits.append(time.time() - t)

    probe = threading.Thread(target=ask_version, daemon=True)
    probe.start()
    for _ in range(5):
        r = httpx.post(f"{endpoint.url}/v1/chat/completions", json=big, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content"
    huge = httpx.post(f"{endpoint.url}/v1/completions", content=b"x" * 1_100_000, timeout=60)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
    done.set()
    probe.join(30)
    assert waits and max(waits) < 1.0, waits


def _string_paths(doc: dict, node: dict, path: tuple = (), depth: int = 0) -> list[tuple]:
    """Every path to a string in a request schema of the OpenAPI document (array items as index 0)."""
    while "$ref" in node:
        node = doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    if depth > 8:
        return []
    out = [p for alt in node.get("anyOf", []) + node.get("oneOf", []) for p in _string_paths(doc, alt, path, depth + 1)]
    if node.get("type") == "string":
        out.append(path)
    for key, sub in node.get("properties", {}).items():
        out += _string_paths(doc, sub, (*path, key), depth + 1)
    if node.get("type") == "array":
        out += _string_paths(doc, node.get("items", {}), (*path, 0), depth + 1)
    return list(dict.fromkeys(out))


def _put(body: dict, path: tuple, value: str) -> dict:
    """`body` with `value` at `path`, making the lists and objects on the way where the body has none."""
    cur: Any = body
    for i, key in enumerate(path):
        if i == len(path) - 1:
            if isinstance(key, int):
                cur[:] = cur[:key] + [value] + cur[key + 1 :] if len(cur) > key else [*cur, value]
            else:
                cur[key] = value
            return body
        want = list if isinstance(path[i + 1], int) else dict
        if isinstance(key, int):
            if len(cur) <= key:
                cur.append(want())
            elif not isinstance(cur[key], want):
                cur[key] = want()
        elif not isinstance(cur.get(key), want):
            cur[key] = want()
        cur = cur[key]
    return body


def test_unicode_edge_cases_in_every_string_field_get_no_5xx(endpoint):
    """A lone surrogate, NUL, a right-to-left override and a byte-order mark in every string field the OpenAI
    routes declare: an answer or an OpenAI error body, never a 5xx."""
    doc = httpx.get(f"{endpoint.url}/openapi.json").json()
    chat = [{"role": "user", "content": "Who?"}]
    bases = {
        "/v1/completions": {"model": "sleep-ray", "prompt": "Question: Who", "max_tokens": 1},
        "/v1/chat/completions": {"model": "sleep-ray", "messages": chat, "max_tokens": 1},
    }
    tried = 0
    with httpx.Client(timeout=60) as c:
        for route, base in bases.items():
            ref = doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
            paths = _string_paths(doc, ref)
            assert len(paths) >= 5, (route, paths)  # the walk found the fields (not vacuous)
            for path in paths:
                for odd in ("\ud800", "\x00", "\u202eRTL", "\ufeffBOM"):
                    body = _put(json.loads(json.dumps(base)), path, odd)
                    r = c.post(
                        f"{endpoint.url}{route}", content=json.dumps(body), headers={"content-type": "application/json"}
                    )
                    tried += 1
                    assert r.status_code < 500, (route, path, ascii(odd), r.text)
                    assert r.status_code == 200 or r.json()["error"]["message"], (route, path, r.text)
    assert tried >= 60


def _replica_pids() -> list[int]:
    from ray.util.state import list_actors

    alive = list_actors(filters=[("state", "=", "ALIVE")], detail=True)
    return sorted(int(a.pid) for a in alive if "WakeServer" in (a.class_name or ""))


def _replica_pid() -> int:
    return _replica_pids()[0]


def test_memory_is_durable_through_kill_9_and_used_in_context(endpoint):
    r = httpx.post(
        f"{endpoint.url}/v1/memories", json={"memories": [{"text": FACT, "memory_id": "zorya"}]}, headers=_admin()
    )
    assert r.status_code == 200 and r.json()["accepted"] == ["zorya"] and r.json()["durable"]
    os.kill(_replica_pid(), signal.SIGKILL)  # the replica that acknowledged dies at once
    store = WakeStore(endpoint.config_path.parent)
    assert [m.memory_id for m in store.unconsolidated()] == ["zorya"]
    wait_until_up(endpoint.url, 180)  # Serve replaces the replica
    ask = {"model": "sleep-ray", "messages": [{"role": "user", "content": "Where does Zorya Quill live?"}]}
    used = httpx.post(f"{endpoint.url}/v1/chat/completions", json=ask, timeout=60).json()
    assert used["memories_used"] == ["zorya"]
    bare = httpx.post(f"{endpoint.url}/v1/chat/completions", json={**ask, "use_memories": False}, timeout=60).json()
    assert bare["memories_used"] == []


def test_endpoint_keeps_answering_while_a_replica_is_killed_under_load(endpoint):
    wait_until_up(endpoint.url, 180)
    deadline = time.time() + 180
    while len(_replica_pids()) < 2 and time.time() < deadline:  # the durability test's replacement may be starting
        time.sleep(1)
    before = _replica_pids()
    assert len(before) == 2
    results: list[tuple[float, int]] = []  # (time sent, status; -1 = no HTTP answer)
    errors: list[dict] = []  # the bodies of the failed answers
    stop, clients = threading.Event(), 3
    body = {"model": "sleep-ray", "prompt": "Question: Where does Ana Vel live?\nAnswer:", "max_tokens": 4}

    def load() -> None:
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                sent = time.time()
                try:
                    r = c.post(f"{endpoint.url}/v1/completions", json=body)
                    results.append((sent, r.status_code))
                    if r.status_code != 200:
                        errors.append(r.json())  # JSON, never the proxy's plain text
                except httpx.HTTPError:
                    results.append((sent, -1))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(3)
    killed_at = time.time()
    os.kill(before[0], signal.SIGKILL)
    replaced_at, deadline = None, time.time() + 180
    while time.time() < deadline:
        now = _replica_pids()
        if len(now) == 2 and before[0] not in now:
            replaced_at = time.time()
            break
        time.sleep(0.5)
    time.sleep(3)  # keep the load on the replaced pair for a while
    stop.set()
    for t in threads:
        t.join(60)
    assert replaced_at is not None, "Serve did not replace the killed replica"
    during = [st for sent, st in results if killed_at <= sent < replaced_at]
    after = [st for sent, st in results if sent >= replaced_at]
    failed = [st for sent, st in results if sent >= killed_at and st != 200]
    assert during.count(200) >= 3, during  # the surviving replica answered while the other was replaced
    assert after and all(st == 200 for st in after), after
    assert len(failed) <= clients, failed  # at most the requests in flight on the killed replica
    assert all(st == 503 for st in failed) and all(e["error"]["code"] == "replica_unavailable" for e in errors)


def test_sleep_swaps_every_replica_then_rollback(endpoint):
    url = endpoint.url
    r = httpx.post(f"{url}/v1/sleep", json={"reason": "test"}, headers=_admin(), timeout=60)
    assert r.status_code == 202, r.text
    sleep_id = r.json()["sleep_id"]
    busy = httpx.post(f"{url}/v1/sleep", json={}, headers=_admin(), timeout=60)
    assert busy.status_code == 409  # one sleep at a time
    seen, seen_stages, deadline, status = set(), set(), time.time() + 600, {}
    while time.time() < deadline:
        status = httpx.get(f"{url}/v1/sleep/{sleep_id}", headers=_admin(), timeout=60).json()
        seen.add(status["status"])
        seen_stages.add(status["info"].get("stage", ""))
        v = httpx.post(f"{url}/v1/completions", json={"model": "sleep-ray", "prompt": "Question:", "max_tokens": 3})
        assert v.status_code == 200  # serving continues throughout
        if status["status"] in ("swapped", "rejected", "failed"):
            break
        time.sleep(1)
    assert status["status"] == "swapped", status
    assert status["info"]["gate"]["questions"] >= 1 and {"seeding", "dreaming", "gating"} & seen_stages
    out = Path(status["info"]["checkpoint"])
    record = json.loads((out / RECORD_FILE).read_text())
    dr = record["dreaming"]
    assert record["steps"] == 4 and len(dr["rounds"]) == 2  # seeding, then dreaming, in one sleep
    for rnd in dr["rounds"]:
        assert rnd["kept"] <= rnd["dreams"] and 0.0 <= rnd["mean_reward"] <= 1.0
    trials = [
        json.loads(x) for x in (out.with_name(out.name + ".dream.logs") / "trials.jsonl").read_text().splitlines()
    ]
    assert {t["round"] for t in trials} <= {0, 1} and all(t["reward"] in (0.0, 1.0) for t in trials)
    assert not out.with_name(out.name + ".dream.work").exists()
    assert_grown_checkpoint(out)  # both stages trained the new expert only
    assert httpx.get(f"{url}/v1/version").json()["weight_version"] == 1
    r = httpx.post(f"{url}/v1/completions", json={"model": "sleep-ray", "prompt": "Question:", "max_tokens": 3})
    assert r.json()["weight_version"] == 1 and r.headers["x-weight-version"] == "1"
    consumed = httpx.get(f"{url}/v1/memories", params={"consumed": True}, headers=_admin()).json()
    assert [m["consumed_by"] for m in consumed["data"]] == [sleep_id]
    nothing = httpx.post(f"{url}/v1/sleep", json={}, headers=_admin(), timeout=60)
    assert nothing.status_code == 409  # every memory is consolidated

    back = httpx.post(f"{url}/v1/rollback", headers=_admin(), timeout=300)
    assert back.status_code == 200 and back.json()["weight_version"] == 0
    assert httpx.get(f"{url}/v1/version").json()["weight_version"] == 0
    assert httpx.get(f"{url}/v1/memories", params={"consumed": False}, headers=_admin()).json()["total"] == 1
    assert httpx.post(f"{url}/v1/rollback", headers=_admin(), timeout=60).status_code == 409  # nothing older


def test_memory_routes_show_the_ledger_and_retrieval_serves_a_memory_whose_probes_failed(endpoint):
    from sleep_ray.wake.ledger import KnowledgeLedger

    url, store = endpoint.url, WakeStore(endpoint.config_path.parent)
    ask = {"model": "sleep-ray", "messages": [{"role": "user", "content": "Where does Zorya Quill live?"}]}
    ledger = KnowledgeLedger(store)
    ledger.settle({"zorya": 1.0}, 0.5, "sleep-later")  # a night verified it in the weights
    shown = httpx.get(f"{url}/v1/memories/zorya", headers=_admin()).json()
    assert (shown["status"], shown["held"], shown["consumed_by"]) == ("weights", 1.0, "sleep-later")
    assert shown["slept"] >= 1 and shown["probes"] >= 1  # the earlier sleep took it and kept its probes
    assert httpx.post(f"{url}/v1/chat/completions", json=ask, timeout=60).json()["memories_used"] == []
    ledger.settle({"zorya": 0.25}, 0.5, "sleep-later-still")  # a later night's regression probes failed
    page = httpx.get(f"{url}/v1/memories", headers=_admin()).json()
    assert [(m["memory_id"], m["status"], m["held"]) for m in page["data"]] == [("zorya", "context", 0.25)]
    assert httpx.post(f"{url}/v1/chat/completions", json=ask, timeout=60).json()["memories_used"] == ["zorya"]
    assert httpx.get(f"{url}/v1/memories/nobody", headers=_admin()).status_code == 404


def test_openapi_document_matches_the_server_and_holds_no_5xx(endpoint):
    """schemathesis generates requests from /openapi.json (valid and invalid) against the live endpoint: no 5xx,
    and every status code, content type and body is one the document declares."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(f"{endpoint.url}/openapi.json")
    ops = schema.exclude(path_regex="^/v1/(sleep|rollback)")  # these start sleeps and swaps: tested above
    failures, calls = [], []

    def fuzz(op):
        @settings(
            max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        @given(case=op.as_strategy())
        def check(case):
            response = case.call(headers=_admin(), timeout=60)
            calls.append(response.status_code)
            try:
                case.validate_response(response, checks=checks)
            except Exception as e:  # collect, so one report names every failing operation
                failures.append(f"{op.label}: {e}")

        check()

    for result in ops.get_all_operations():
        fuzz(result.ok())
    assert len(calls) >= 30 and not failures, (len(calls), failures[:5])


def test_the_admin_token_is_in_no_file_log_or_api_after_serving_and_sleeping(endpoint):
    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    run_dir = endpoint.config_path.parent.parent
    leaks = []
    for root in (run_dir, session):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 50_000_000:
                if TOKEN.encode() in path.read_bytes():
                    leaks.append(str(path))
    apps = httpx.get(f"{endpoint.dashboard}/api/serve/applications/", timeout=30).text
    assert not leaks and TOKEN not in apps and "admin_token_sha256" in apps, leaks[:5]


def _scheduler(run_dir, extra, sleep=None):
    """A SleepScheduler with a real store and a swap that records what it was asked (no Serve needed)."""
    from sleep_ray.config import load_config
    from sleep_ray.wake.scheduler import SleepScheduler, ensure_base_version, sleep_stages

    overrides = [f"run_dir={run_dir}", f"model.path={ROOT / 'examples' / 'tiny_base'}", *SMALL_SLEEP, *extra]
    overrides.append("sleep.dreaming.enabled=false")  # stage 1 alone: what these tests check fails or passes there
    cfg = load_config(None, [*overrides, "resources.train_workers=1", "serve.gate.rehearsal_questions=8"])
    store = WakeStore(run_dir / "wake")
    ensure_base_version(store, cfg.model.path)
    store.add_memories([(FACT, "document", "zorya")])
    swaps = []
    return SleepScheduler(cfg, store, lambda ckpt, v: swaps.append((ckpt, v)), sleep or sleep_stages), store, swaps


def _learns_nothing(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
    """A sleep whose model is the serving one, copied: the real gate must find no gain (the sleep itself is
    covered by the tests that run it; a full one here would cost two minutes to reach the same gate)."""
    import shutil

    shutil.copytree(parent, out)
    return 0.0


@pytest.mark.parametrize(
    "extra,sleep,status,why",
    [
        (["serve.gate.min_gain=0.5"], _learns_nothing, "rejected", "gate.min_gain"),  # a sleep that learnt too little
        (["resources.trainer.cpus=64"], None, "failed", "resources.trainer"),  # a crashed sleep (real stage 1)
    ],
)
def test_failed_gate_or_crashed_sleep_leaves_the_serving_model(ray_cluster, tmp_path, extra, sleep, status, why):
    scheduler, store, swaps = _scheduler(tmp_path, extra, sleep)
    rec = scheduler.start("test")
    scheduler._thread.join(timeout=600)
    done = store.get_sleep(rec.sleep_id)
    assert done.status == status, done.info
    assert why in (done.info.get("why") or done.info.get("error", ""))
    assert swaps == [] and store.active_version() == 0  # nothing swapped
    assert [m.memory_id for m in store.unconsolidated()] == ["zorya"]  # the memory stays in context
