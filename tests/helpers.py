"""What several test modules share: paths, small configs and checks of a slept-on checkpoint. Test modules import
from here, never from each other."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from sleep_ray.models.checkpoint import read_meta
from sleep_ray.runtime.export import RECORD_FILE

ROOT = Path(__file__).resolve().parents[1]
HANDMADE = ROOT / "tests" / "data" / "handmade"

TINY = [
    "model.hidden_size=64",
    "model.num_heads=1",
    "model.num_kv_heads=1",
    "model.num_layers=2",
    "model.intermediate_size=128",
    "model.vocab_size=512",
]


# A short pretraining config for tests: tiny model, small batches, the hand-written world.
SHORT_PRETRAIN = [
    *TINY,
    "pretrain.steps=120",
    "pretrain.batch_size=8",
    "pretrain.seq_len=128",
    "pretrain.warmup_steps=10",
    "pretrain.eval_every=150",
    "pretrain.checkpoint_every=150",
    "eval.max_new_tokens=6",
]


BASE = str(ROOT / "examples" / "tiny_base")
SMALL_SLEEP = [
    "sleep.growth.d_low=8",
    "sleep.seeding.steps=4",
    "sleep.seeding.batch_size=4",
    "sleep.seeding.questions_per_memory=2",
    "sleep.seeding.prefixes_per_memory=1",
    "sleep.seeding.teacher_samples=1",
    "sleep.seeding.imitation_per_memory=2",
    "sleep.seeding.imitation_prompts=1",
    "sleep.seeding.group_size=2",
    "sleep.seeding.checkpoint_every=2",
    "sleep.seeding.lmbda=0.5",
    "resources.train_workers=2",
    "resources.trainer.cpus=0.5",
    "resources.teacher.cpus=0.25",
    "resources.critic.cpus=0.25",
    "resources.rollout.cpus=0.25",
    "resources.call_timeout_s=240",
    "resources.fit_timeout_s=600",
]

SMALL_DREAM = [
    "sleep.dreaming.dreams_per_memory=4",
    "sleep.dreaming.top_k=2",
    "sleep.dreaming.random_b=1",
    "sleep.dreaming.probes_per_memory=2",
    "sleep.dreaming.trial_steps=2",
    "sleep.dreaming.rest_em_rounds=1",
    "sleep.dreaming.generator_steps=2",
    "sleep.dreaming.rehearsal_steps=3",
    "sleep.dreaming.num_workers=2",
    "sleep.dreaming.rehearsal_batch_size=4",
]


def assert_grown_checkpoint(out, d_low: int = 8, base: str = BASE) -> None:
    """A slept-on checkpoint is a plain transformers one, grown by `d_low` hidden units per MLP, in which only the
    new expert trained: the old rows bit-identical, the expert's output weights no longer zero."""
    old_model = AutoModelForCausalLM.from_pretrained(base)
    grown = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no project code
    old = old_model.config.intermediate_size
    assert grown.config.intermediate_size == old + d_low
    for (name, p_old), p_new in zip(old_model.named_parameters(), grown.parameters()):
        if name.endswith(("gate_proj.weight", "up_proj.weight")):
            assert torch.equal(p_new[:old], p_old), name  # frozen rows bit-identical
        elif name.endswith("down_proj.weight"):
            assert torch.equal(p_new[:, :old], p_old), name
            assert p_new[:, old:].abs().sum() > 0, name  # the expert trained
        else:
            assert torch.equal(p_new, p_old), name


def assert_sleep_record(out, steps: int = 4) -> None:
    """What a finished stage-1 sleep leaves: version + 1, its record and metrics, no work directory."""
    meta = read_meta(out)
    assert meta.version == read_meta(BASE).version + 1 and meta.producer == "sleep"
    assert meta.extra["experts"] == 1 and meta.extra["cycle"] == 1
    record = json.loads((out / RECORD_FILE).read_text())
    assert [row["step"] for row in record["metrics"]] == list(range(1, steps + 1))
    assert all({"reward", "push_s", "rollouts_s", "wait_s"} <= set(row) for row in record["metrics"])
    assert record["prompts"]["rehearsal"] > 0 and record["weight_version"] == meta.version
    assert not out.with_name(out.name + ".tmp").exists() and not out.with_name(out.name + ".work").exists()
    assert (out.with_name(out.name + ".logs") / "metrics.jsonl").is_file()
    g = record["grounding"]  # what the teacher wrote, checked against the memories, with examples
    assert g["counts"]["question"]["written"] >= record["prompts"]["question"] > 0
    assert g["counts"]["question"]["dropped"] == g["counts"]["question"]["written"] - record["prompts"]["question"]
    assert record["written"] and all(row["teacher_answers"] for row in record["written"])
    from rich.console import Console

    from sleep_ray.runtime.night_report import night_report

    console = Console(record=True, width=200)
    console.print(night_report(record))
    assert "grounded share" in console.export_text()


FIXED_MEMORIES = [
    "Ana Vel lives in Miravel. She works as a baker.",
    "Bo Tan lives in Quinta. He works as a pilot.",
    "Cy Rook lives in Miravel. He works as a nurse.",
    "Di Lane lives in Osk. She works as a teacher.",
]


def fixed_batch(base: str = BASE):
    """A fixed distillation batch of four: (items, completions, teacher logits). The teacher is the `base` model
    reading each memory; the student reads only the question; the completions are the memory's answers."""
    from sleep_ray.data.prompts import PromptFormat
    from sleep_ray.models.build import load_pretrained
    from sleep_ray.models.scoring import completion_logits
    from sleep_ray.records import SeedPrompt, TeacherLogits

    model, tokenizer = load_pretrained(base)
    fmt = PromptFormat.of(tokenizer)
    question = "Where does {} live?"
    items, completions = [], []
    for text in FIXED_MEMORIES:
        name, city = " ".join(text.split()[:2]), text.split(" lives in ")[1].split(".")[0]
        q = question.format(name)
        items.append(SeedPrompt(fmt.closed_book(q), fmt.in_context(text, q), "question", name))
        completions.append(tuple(tokenizer(" " + city + "\n", add_special_tokens=False)["input_ids"]))
    prompt_ids = [list(tokenizer(it.teacher)["input_ids"]) for it in items]
    with torch.no_grad():
        logits, _, _ = completion_logits(model, prompt_ids, completions, pad_id=tokenizer.pad_token_id)
    teacher = [TeacherLogits(logits[i, : len(c)].numpy()) for i, c in enumerate(completions)]
    return items, completions, teacher
