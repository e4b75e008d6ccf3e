"""`make demo`: the whole story on the tiny CPU default, through the live endpoint's HTTP API.

1. start the wake endpoint (Ray Serve) on the base model;
2. ask about cycle 1's new people, retrieval off: it does not know them;
3. POST those facts as memories; ask again: right, from context;
4. sleep (Knowledge Seeding), eval gate, hot swap, while the endpoint keeps serving;
5. ask again with retrieval off: right, from the weights; check old knowledge is kept;
6. evaluate both checkpoints with the full harness (report and plots) and print the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sleep_ray.config import Config
from sleep_ray.data.schema import Memory, World
from sleep_ray.eval.harness import items
from sleep_ray.eval.metrics import exact_match, first_answer
from sleep_ray.wake.deploy import Endpoint

DONE = ("swapped", "rejected", "failed")


def ask(ep: Endpoint, model: str, question: str, use_memories: bool) -> tuple[str, int]:
    body = {"model": model, "messages": [{"role": "user", "content": question}], "use_memories": use_memories}
    r = httpx.post(f"{ep.url}/v1/chat/completions", json=body, timeout=120)
    r.raise_for_status()
    out = r.json()
    return out["choices"][0]["message"]["content"], int(out["weight_version"])


def score(ep: Endpoint, model: str, probes: list[Any], use_memories: bool) -> tuple[float, set[int]]:
    """Accuracy of the endpoint on (question, answer) probes, and the weight versions that answered."""
    hits, versions = 0, set()
    for p in probes:
        text, v = ask(ep, model, p.question, use_memories)
        hits += int(exact_match(first_answer(text), p.answer))
        versions.add(v)
    return hits / max(1, len(probes)), versions


def sleep_now(ep: Endpoint, console: Console, poll_s: float = 2.0) -> dict[str, Any]:
    """POST /v1/sleep and follow it to the end with a progress line."""
    auth = {"Authorization": f"Bearer {ep.admin_token}"}
    r = httpx.post(f"{ep.url}/v1/sleep", json={"reason": "demo"}, headers=auth, timeout=60)
    r.raise_for_status()
    sleep_id, status = r.json()["sleep_id"], r.json()
    with console.status("sleeping") as bar:
        while status["status"] not in DONE:
            time.sleep(poll_s)
            status = httpx.get(f"{ep.url}/v1/sleep/{sleep_id}", headers=auth, timeout=60).json()
            info = status["info"]
            step = f" step {info['step']}/{info['steps']}" if "step" in info else ""
            bar.update(f"sleep {sleep_id}: {status['status']}{step}")
    return status


def run_demo(cfg: Config, world: World, ep: Endpoint, console: Console, base_probes: int = 60) -> dict[str, Any]:
    model = cfg.serve.model_name
    memories: list[Memory] = [m for m in world.stream if m.cycle == 1]
    new = [p for m in memories for p in m.probes if p.kind == "new" and p.split == "eval"]
    old = [it.probe for it in items(world, ("eval",)) if it.cycle == "base"][:base_probes]
    shown = new[:3]

    console.print(f"[2/6] asking about {len(new)} facts it was never told (retrieval off)")
    before = [ask(ep, model, p.question, False)[0] for p in shown]
    closed_before, _ = score(ep, model, new, False)
    old_before, _ = score(ep, model, old, False)

    auth = {"Authorization": f"Bearer {ep.admin_token}"}
    body = {"memories": [{"text": m.text, "kind": m.kind, "memory_id": m.memory_id} for m in memories]}
    httpx.post(f"{ep.url}/v1/memories", json=body, headers=auth, timeout=60).raise_for_status()
    console.print(f"[3/6] POSTed {len(memories)} memories; asking again with retrieval on")
    in_context, _ = score(ep, model, new, True)

    console.print("[4/6] sleeping: Knowledge Seeding, eval gate, hot swap (serving continues)")
    t = time.time()
    status = sleep_now(ep, console)
    console.print(
        f"      sleep {status['sleep_id']}: {status['status']} in {time.time() - t:.0f} s "
        f"({status['info'].get('why') or status['info'].get('error', '')})"
    )
    console.print("[5/6] asking again, retrieval off: answers must now come from the weights")
    after = [ask(ep, model, p.question, False)[0] for p in shown]
    closed_after, versions = score(ep, model, new, False)
    old_after, _ = score(ep, model, old, False)

    table = Table(title="what the endpoint knows (chat completions over HTTP)")
    for col in ("", "before sleep", "in context", "after sleep"):
        table.add_column(col)
    table.add_row(
        f"cycle-1 new people ({len(new)} probes)", f"{closed_before:.3f}", f"{in_context:.3f}", f"{closed_after:.3f}"
    )
    table.add_row(f"old facts ({len(old)} probes)", f"{old_before:.3f}", "", f"{old_after:.3f}")
    console.print(table)
    for p, b, a in zip(shown, before, after):
        console.print(f"  Q: {p.question}  gold: {p.answer}\n     before: {b!r}  after: {a!r}")
    return {
        "status": status,
        "new_before": closed_before,
        "new_in_context": in_context,
        "new_after": closed_after,
        "old_before": old_before,
        "old_after": old_after,
        "versions_after": sorted(versions),
        "checkpoint": status["info"].get("checkpoint"),
        "run_dir": str(Path(cfg.run_dir)),
    }
