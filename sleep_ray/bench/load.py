"""Closed-loop HTTP load on the wake endpoint, and what each weight version should answer: the instruments of the
swap benchmarks (`sleep-ray bench system`, benchmarks/serve_swap.py).

    with Load(url, "sleep-ray", questions, max_tokens=8, clients=4) as load:
        time.sleep(30)
    load.rows   # (start, end, status, weight_version, text, question index) per request
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from sleep_ray.wake.exchange import Sampling
from sleep_ray.wake.model import Generator, chat_prompt, load_weights


def expected_answers(checkpoint: str, questions: list[str], max_tokens: int, dtype: str = "float32") -> list[str]:
    """What a version answers (greedy, same prompt shape and stop as the server, in `dtype`) to each question."""
    w, gen = load_weights(checkpoint, dtype=dtype), Generator()
    greedy = Sampling(max_tokens=max_tokens)
    return [
        gen.generate(w, chat_prompt(w, [("user", q)], ""), max_tokens, greedy, ["\n"], 0)[0][0].text for q in questions
    ]


class Load:
    """`clients` threads asking the questions round-robin until stopped; every outcome recorded."""

    def __init__(self, url: str, model: str, questions: list[str], max_tokens: int, clients: int):
        self.url, self.model, self.questions, self.max_tokens = url, model, questions, max_tokens
        self.rows: list[tuple] = []  # (start, end, status, version, text, question index)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, i: int) -> None:
        with httpx.Client(timeout=120) as http:
            k = i
            while not self.stop.is_set():
                q = self.questions[k % len(self.questions)]
                body = {
                    "model": self.model,
                    "messages": [{"role": "user", "content": q}],
                    "max_tokens": self.max_tokens,
                    "use_memories": False,
                }
                t0 = time.time()
                try:
                    r = http.post(f"{self.url}/v1/chat/completions", json=body)
                    out = r.json() if r.status_code == 200 else {}
                    text = out["choices"][0]["message"]["content"] if out else r.text
                    row = (r.status_code, int(out.get("weight_version", -1)), text)
                except httpx.HTTPError as e:
                    row = (0, -1, repr(e))
                self.rows.append((t0, time.time(), *row, k % len(self.questions)))
                k += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def latency(rows: list[tuple]) -> dict[str, float]:
    """Request count, p50 and p99 latency (ms) of Load rows."""
    lat = np.array([e - s for s, e, *_ in rows] or [0.0]) * 1000
    return {"requests": len(rows), "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}
