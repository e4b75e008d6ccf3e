"""The peers `sleep-ray bench peers` trains through Hugging Face TRL (the optional `bench` extra), each from the
base checkpoint on the same day's memories, under a wall-clock limit:

    trl_sft       SFTTrainer, every weight, on the memories' text (continual fine-tuning)
    trl_sft_lora  SFTTrainer with a peft LoRA adapter on every linear layer, on the memories' text
    trl_gkd       GKDTrainer (trl.experimental): generalized on-policy distillation from the frozen base model.
                  TRL scores the student's own token sequence with the teacher, so the teacher cannot read a
                  different prompt: the memory reaches GKD only through its dataset completions (the answers the
                  base model gave with the memory in context), never through the teacher's logits
    trl_sdft      SDFTTrainer (trl.experimental): on-policy self-distillation; the frozen base model is the
                  teacher and reads the memory in its prompt (TRL's `privileged_context`), the student does not

The question-and-answer material is the sleep's own (questions the base model wrote about each memory, answered
with the memory in context: `peers.day_material`). Each run records a training curve: closed-book accuracy on
the day's new-people probes at `curve_points` moments, with the time spent checking excluded from its clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

from sleep_ray.config import PeersBenchConfig

PEERS = ("trl_sft", "trl_sft_lora", "trl_gkd", "trl_sdft")


class MissingExtraError(RuntimeError):
    """The optional dependencies a benchmark needs are not installed."""


def trl_version() -> str:
    """TRL's version; a clear error naming the extra when it is missing."""
    try:
        import trl
    except ImportError as e:
        raise MissingExtraError(
            "sleep-ray bench peers needs TRL, which is in the optional 'bench' extra: pip install -e '.[bench]'"
        ) from e
    return str(trl.__version__)


@dataclass(frozen=True)
class QA:
    """One question about a memory: the student's closed-book prompt, the memory window the teacher reads, and
    the answer the teacher gave with that window in context (no trailing newline)."""

    prompt: str
    context: str
    answer: str


class Meter:
    """Wall-clock and machine CPU seconds (every process on the box: Ray workers included), with pauses."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._t: tuple[float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float]:
        c = psutil.cpu_times()
        return time.time(), c.user + c.system + getattr(c, "nice", 0.0)

    def start(self) -> Meter:
        self._t = self._now()
        return self

    def stop(self) -> Meter:
        if self._t is not None:
            t, c = self._now()
            self.wall += t - self._t[0]
            self.cpu += c - self._t[1]
            self._t = None
        return self

    def elapsed(self) -> float:
        """Wall seconds so far, the running stretch included."""
        return self.wall + (time.time() - self._t[0] if self._t is not None else 0.0)

    @contextmanager
    def paused(self) -> Iterator[None]:
        running = self._t is not None
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()


@dataclass
class PeerRun:
    method: str
    lr: float
    checkpoint: str
    wall_s: float
    cpu_s: float
    steps: int
    tokens: int
    trainable: int
    stopped_by_wall: bool
    curve: list[tuple[float, float]] = field(default_factory=list)  # (training seconds, closed-book new people)


def _callback(meter: Meter, limit_s: float, at: set[int], probe: Callable[[Any], float], curve: list) -> Any:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Checks the curve at the chosen steps (off the clock) and stops training at the wall limit."""

        def __init__(self) -> None:
            self.stopped = False
            self.generated = 0.0  # completion tokens, from the mean length TRL logs (SDFT does not count its inputs)
            self.logged_at = 0

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "completions/mean_length" in logs:
                steps = state.global_step - self.logged_at
                self.generated += float(logs["completions/mean_length"]) * args.per_device_train_batch_size * steps
                self.logged_at = state.global_step

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if state.global_step in at:
                with meter.paused():
                    curve.append((round(meter.wall, 2), probe(model)))
            if limit_s and meter.elapsed() >= limit_s:
                self.stopped = control.should_training_stop = True

    return Clock()


def _common(method: str, cfg: PeersBenchConfig, out: Path, lr: float, seed: int, steps: int) -> dict[str, Any]:
    return dict(
        output_dir=str(out / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=lr,
        lr_scheduler_type="constant",
        seed=seed,
        report_to=[],
        save_strategy="no",
        logging_steps=max(1, steps // 10),
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        include_num_input_tokens_seen="no" if method == "trl_sdft" else "non_padding",  # SDFT cannot count
    )


def _trainer(
    method: str,
    base: str,
    texts: Sequence[str],
    qa: Sequence[QA],
    args: dict[str, Any],
    cfg: PeersBenchConfig,
    fmt: Any,
    max_new_tokens: int,
    temperature: float,
) -> Any:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    window = int(model.config.max_position_embeddings)
    if method in ("trl_sft", "trl_sft_lora"):
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer

        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, target_modules="all-linear")
        return SFTTrainer(
            model=model,
            args=SFTConfig(**args, max_length=window),
            train_dataset=Dataset.from_dict({"text": list(texts)}),
            processing_class=tok,
            peft_config=lora if method == "trl_sft_lora" else None,
        )
    if method == "trl_gkd":
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        rows = []
        for x in qa:
            p = tok(x.prompt, add_special_tokens=False)["input_ids"]
            c = tok(x.answer + "\n", add_special_tokens=False)["input_ids"]
            rows.append(
                {
                    "prompt": x.prompt,
                    "input_ids": p + c,
                    "attention_mask": [1] * (len(p) + len(c)),
                    "completion_mask": [0] * len(p) + [1] * len(c),
                }
            )
        teacher = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
        gkd = GKDConfig(**args, max_length=window, max_new_tokens=max_new_tokens, temperature=temperature)
        return GKDTrainer(
            model=model, teacher_model=teacher, args=gkd, train_dataset=Dataset.from_list(rows), processing_class=tok
        )
    if method == "trl_sdft":
        from trl.experimental.sdft import SDFTConfig, SDFTTrainer

        sdft = SDFTConfig(
            **args,
            num_generations=cfg.generations,
            max_completion_length=max_new_tokens,
            max_prompt_length=window - max_new_tokens,
            temperature=temperature,
            teacher_prompt_template=sdft_template(fmt),
            generation_kwargs={"eos_token_id": [tok.eos_token_id, *tok("\n", add_special_tokens=False)["input_ids"]]},
        )
        data = {"prompt": [x.prompt for x in qa], "privileged_context": [x.context for x in qa]}
        return SDFTTrainer(model=model, args=sdft, train_dataset=Dataset.from_dict(data), processing_class=tok)
    raise ValueError(f"unknown TRL peer {method!r}; known: {', '.join(PEERS)}")


def sdft_template(fmt: Any) -> str:
    """SDFT's teacher prompt as a template over the student's prompt: the sleep teacher's in-context prompt,
    which for the raw prompt shapes is the closed-book prompt after the context."""
    student = fmt.closed_book("{q}")
    teacher = fmt.in_context("{privileged_context}", "{q}")
    if not teacher.endswith(student):
        raise ValueError("trl_sdft needs an in-context prompt that ends with the closed-book prompt (raw shapes)")
    return teacher[: -len(student)] + "{prompt}"


def train_peer(
    method: str,
    *,
    base: str,
    texts: Sequence[str],
    qa: Sequence[QA],
    lr: float,
    steps: int,
    cfg: PeersBenchConfig,
    fmt: Any,
    max_new_tokens: int,
    temperature: float,
    wall_limit_s: float,
    out: Path,
    probe: Callable[[Any], float],
    seed: int,
) -> PeerRun:
    """Train one peer from `base` at learning rate `lr`, for at most `steps` optimizer steps, into `out/model` (a
    LoRA adapter merged into the weights); `probe(model)` gives a curve point (closed-book accuracy of the live
    model)."""
    meter = Meter().start()
    trainer = _trainer(
        method, base, texts, qa, _common(method, cfg, out, lr, seed, steps), cfg, fmt, max_new_tokens, temperature
    )
    at = {max(1, round(steps * (i + 1) / cfg.curve_points)) for i in range(cfg.curve_points)}
    curve: list[tuple[float, float]] = []
    clock = _callback(meter, wall_limit_s, at, probe, curve)
    trainer.add_callback(clock)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    trainer.train()
    meter.stop()
    state = trainer.state
    if trainer.state.global_step not in at:  # stopped by the wall limit, between two of the curve's steps
        curve.append((round(meter.wall, 2), probe(trainer.model)))
    model = trainer.model.merge_and_unload() if method == "trl_sft_lora" else trainer.model
    model.config.use_cache = True  # the on-policy trainers turn it off for training; generation wants it
    model.save_pretrained(out / "model")
    trainer.processing_class.save_pretrained(out / "model")
    return PeerRun(
        method,
        lr,
        str(out / "model"),
        round(meter.wall, 1),
        round(meter.cpu, 1),
        int(state.global_step),
        int(state.num_input_tokens_seen) or round(clock.generated),
        trainable,
        bool(clock.stopped),
        curve,
    )
