"""Can the real model's grown expert hold the natural passages' facts at all? Plain supervised steps, no Ray.

A diagnostic beside `sleep-ray bench real`: it separates what the expert can store (capacity, learning rate, which
layers grow) from what a night's material and objective give it. SmolLM2-135M-Instruct (`sleep-ray import-model
smollm2-135m-instruct` first) is grown as `examples/real_smollm2.yaml` says, every parameter but the expert
frozen (the student's own `prepare_trainable`), and trained with cross-entropy on the reply tokens:

  * `oracle`: the 84 probe questions themselves, the gold answer as the reply. Asked the same questions
    afterwards, this is memorisation: an upper bound on what any night can store in this expert;
  * `text`: the 28 passages as plain text (knowledge injection by continued pretraining), asked the probes.

Batches of 8 drawn with a fixed seed; closed-book accuracy (reply contains the gold) after half the steps and at
the end, in-context accuracy at the end. One JSON line per evaluation.

    .venv/bin/python benchmarks/real_capacity.py oracle 26,27,28,29 150 1e-3
    .venv/bin/python benchmarks/real_capacity.py oracle 26,27,28,29 150 5e-3
    .venv/bin/python benchmarks/real_capacity.py oracle 10,11,12,13 150 5e-3
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from sleep_ray.config import load_config
from sleep_ray.data.natural import natural_stream
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.eval.metrics import contains_answer, first_answer
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.roles.student import make_student, prepare_trainable

MAX_TOKENS = 160


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("mode", choices=("oracle", "text"))
    p.add_argument("layers", help="comma-separated layers that grow, e.g. 26,27,28,29")
    p.add_argument("steps", type=int)
    p.add_argument("lr", type=float)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--config", default="examples/real_smollm2.yaml")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [f"sleep.growth.layers=[{args.layers}]"])
    base, tok = load_pretrained(cfg.model.path)
    fmt = PromptFormat.of(tok)
    student, record = make_student(base, cfg.sleep.growth, seed=0, experts_so_far=0)
    params = prepare_trainable(student, record)
    memories = natural_stream()
    probes = [q for m in memories for q in m.probes]
    if args.mode == "oracle":
        data = [(fmt.closed_book(q.question), f" {q.answer}.") for q in probes]
    else:
        data = [("", m.text) for m in memories]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    t0 = time.time()

    def evaluate(step: int | str) -> None:
        student.eval()
        with torch.no_grad():
            closed = complete(student, tok, [fmt.closed_book(q.question) for q in probes], 24, batch_size=16)
            read = None
            if step == "end":
                asks = [fmt.in_context(m.text, q.question) for m in memories for q in m.probes]
                read = complete(student, tok, asks, 24, batch_size=16)

        def score(replies: list[str]) -> float:
            return sum(contains_answer(first_answer(r), q.answer) for r, q in zip(replies, probes)) / len(probes)

        row = {"mode": args.mode, "layers": args.layers, "lr": args.lr, "step": step}
        row |= {"closed_book": round(score(closed), 3), "in_context": read and round(score(read), 3)}
        print(json.dumps(row | {"seconds": round(time.time() - t0)}), flush=True)
        student.train()

    rng = random.Random(0)
    for step in range(1, args.steps + 1):
        ids, labels = [], []
        for prompt, target in rng.sample(data, 8):
            a = tok(prompt, add_special_tokens=False)["input_ids"] if prompt else []
            b = tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids.append((a + b)[:MAX_TOKENS])
            labels.append(([-100] * len(a) + b)[:MAX_TOKENS])
        width = max(map(len, ids))
        loss = student(
            input_ids=torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
            attention_mask=torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
            labels=torch.tensor([y + [-100] * (width - len(y)) for y in labels]),
        ).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
        if step == args.steps // 2:
            evaluate(step)
    evaluate("end")


if __name__ == "__main__":
    main()
