"""Base pretraining from scratch, tokenizer included, on a world's documents (`sleep-ray pretrain`); or,
with `pretrain.init_from`, continued from a checkpoint (its tokenizer kept), e.g. to teach one more skill.

    <run_dir>/pretrain/last/      resumable state: HF checkpoint + optimizer.pt + state.json
    <run_dir>/pretrain/metrics.jsonl, loss.png
    <run_dir>/base/               the finished base model (a standard HF directory, weight version 0)

Each step's batch is a pure function of (seed, step), so a resumed run sees exactly the batches the
interrupted run would have seen. The learning rate warms up, stays flat for `flat_fraction` of the steps
(small models learn to read in a sudden jump that a decaying rate can miss), then decays by cosine.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from sleep_ray.config import Config
from sleep_ray.data import prompts
from sleep_ray.data.corpus import Corpus
from sleep_ray.data.schema import World, fingerprint
from sleep_ray.eval.harness import quick_eval
from sleep_ray.models.build import build_model, count_parameters, load_pretrained
from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
from sleep_ray.models.tokenizer import train_tokenizer
from sleep_ray.seeds import derive

log = logging.getLogger(__name__)


def tokenizer_texts(world: World) -> list[str]:
    """What the tokenizer is trained on: trainable documents, their questions, and the prompt scaffolding."""
    texts = [prompts.in_context("", ""), prompts.question_writing(""), prompts.restatement(""), prompts.judging("", "")]
    texts += ["yes", "no"]
    for d in world.documents:
        if d.use in ("recall", "reading"):
            texts.append(d.text)
            texts.extend(f"{qa.question} {qa.answer}" for qa in d.qa)
    return texts


def lr_at(step: int, cfg: Config) -> float:
    """Warmup, flat, cosine decay to `min_lr_ratio`."""
    p = cfg.pretrain
    if step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    flat_end = max(p.warmup_steps, int(p.flat_fraction * p.steps))
    if step < flat_end:
        return p.lr
    t = (step - flat_end) / max(1, p.steps - flat_end)
    return p.lr * (p.min_lr_ratio + (1 - p.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_batch(
    corpus: Corpus, tokenizer: PreTrainedTokenizerBase, rng: random.Random, batch_size: int, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack whole examples (<s> text </s>) into `batch_size` rows of `seq_len`; padding is ignored by the loss.

    Returns (input_ids, labels), both LongTensor[batch_size, seq_len]; labels are -100 on padding.
    """
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    rows: list[list[int]] = []
    current: list[int] = []
    while len(rows) < batch_size:
        _, text = corpus.sample(rng)
        ids = [bos, *tokenizer(text, add_special_tokens=False)["input_ids"], eos][:seq_len]
        if len(current) + len(ids) > seq_len:
            rows.append(current)
            current = []
        current = current + ids
    input_ids = torch.full((batch_size, seq_len), pad, dtype=torch.long)
    labels = torch.full((batch_size, seq_len), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(row)
    return input_ids, labels


def pretrain(
    cfg: Config, world: World, *, resume: bool = True, progress: bool = True, until: int | None = None
) -> Path:
    """Pretrain the base model on `world`; returns the path of the finished base checkpoint.

    `until` stops after that step, leaving a resumable state (and no base checkpoint): a later call resumes
    exactly where it stopped. Returns the resumable state's path in that case.
    """
    p = cfg.pretrain
    torch.set_num_threads(p.threads)
    run = Path(cfg.run_dir)
    work, last, final = run / "pretrain", run / "pretrain" / "last", run / "base"
    work.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(world.documents, p.mix)

    start = 0
    if resume and (last / "state.json").is_file():
        model, tokenizer = load_pretrained(last)
        model.train()
        state = json.loads((last / "state.json").read_text())
        start = state["step"]
        optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        optimizer.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True))
        log.info("resuming pretraining at step %d from %s", start, last)
    else:
        if p.init_from:
            model, tokenizer = load_pretrained(p.init_from)
            log.info("continuing pretraining from %s", p.init_from)
        else:
            tokenizer = train_tokenizer(tokenizer_texts(world), cfg.model.vocab_size)
            model = build_model(cfg.model, tokenizer, seed=cfg.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        (work / "metrics.jsonl").write_text("")
    log.info("model: %d parameters, vocabulary %d", count_parameters(model), len(tokenizer))

    metrics_file = (work / "metrics.jsonl").open("a")
    stop = min(p.steps, until or p.steps)
    bar = tqdm(range(start, stop), initial=start, total=p.steps, disable=not progress, desc="pretrain")
    t_last, tokens = time.time(), 0
    model.train()
    for step in bar:
        rng = random.Random(derive(cfg.seed, step))
        input_ids, labels = make_batch(corpus, tokenizer, rng, p.batch_size, p.seq_len)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += int((labels != -100).sum())
        record: dict = {"step": step + 1, "loss": round(loss.item(), 4), "lr": optimizer.param_groups[0]["lr"]}
        done = step + 1 == p.steps
        if (step + 1) % p.eval_every == 0 or done:
            elapsed = time.time() - t_last
            record["tokens_per_s"] = round(tokens / max(elapsed, 1e-9), 1)
            record.update(quick_eval(model, tokenizer, world, cfg.eval))
            model.train()
            t_last, tokens = time.time(), 0
            log.info("step %d %s", step + 1, record)
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if (step + 1) % p.checkpoint_every == 0 or done or step + 1 == stop:
            _save_state(last, model, tokenizer, optimizer, cfg, step + 1)
    metrics_file.close()
    if stop < p.steps:
        return last
    meta = CheckpointMeta(
        version=0, step=p.steps, seed=cfg.seed, producer="pretrain", extra={"world": fingerprint(world)}
    )
    save_checkpoint(final, model, tokenizer, meta, config=cfg)
    plot_loss(work / "metrics.jsonl", work / "loss.png")
    return final


def _save_state(path: Path, model, tokenizer, optimizer, cfg: Config, step: int) -> None:
    meta = CheckpointMeta(version=0, step=step, seed=cfg.seed, producer="pretrain")
    save_checkpoint(path, model, tokenizer, meta, config=cfg)
    torch.save(optimizer.state_dict(), path / "optimizer.pt")
    (path / "state.json").write_text(json.dumps({"step": step}))


def plot_loss(metrics_path: Path, out: Path) -> None:
    """Loss (and any quick-eval accuracies) against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8)
    ax[0].set(xlabel="step", ylabel="loss", title="pretraining loss", yscale="log")
    evals = [r for r in rows if "base_recall" in r]
    for key in ("base_recall", "in_context", "closed_book_new"):
        ax[1].plot([r["step"] for r in evals], [r.get(key, float("nan")) for r in evals], marker="o", label=key)
    ax[1].set(xlabel="step", ylabel="exact match", title="quick eval", ylim=(0, 1))
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
