"""Dreaming's parts in-process: parsing dreams, the importance filter, and a trial on the committed tiny model."""

from __future__ import annotations

import random

import pytest
import torch

from sleep_ray.config import load_config
from sleep_ray.data import prompts
from sleep_ray.dream.critic import TrialCritic
from sleep_ray.dream.generator import DreamGenerator
from sleep_ray.dream.records import DreamSample, SelfProbe, TrialResult, parse_dream
from sleep_ray.dream.select import importance, select, sft_loss
from tests.helpers import ROOT

BASE = str(ROOT / "examples" / "tiny_base")
CTX = "Ana Vel lives in Miravel. Ana Vel works as a baker."


def test_select_keeps_exactly_the_top_k_plus_b_random_others():
    scores = [0.1, 5.0, 0.3, 4.0, 0.2, 3.0, 0.0]
    kept = select(scores, k=3, b=2, rng=random.Random(0))
    assert len(kept) == 5 and len(set(kept)) == 5
    assert {1, 3, 5} <= set(kept)  # the three largest
    assert kept == sorted(kept)
    assert select(scores, k=3, b=0, rng=random.Random(0)) == [1, 3, 5]
    assert select(scores, k=6, b=4, rng=random.Random(0)) == list(range(7))  # asks for more than there are
    others = {tuple(select(scores, k=3, b=2, rng=random.Random(s))) for s in range(20)}
    assert len(others) > 1  # the b extra are drawn at random


def test_parse_dream_reads_qa_and_restatements_and_refuses_malformed_ones():
    qa = parse_dream("qa", "m1", CTX, " Where does Ana Vel live?\nAnswer: Miravel\nQuestion: x", "m1/r0/0", 3)
    assert qa is not None and qa.generator_version == 3
    assert qa.student == prompts.closed_book("Where does Ana Vel live?") and qa.completion == " Miravel"
    assert qa.teacher == prompts.in_context(CTX, "Where does Ana Vel live?")
    assert qa.writer_prompt == prompts.question_writing(CTX) and qa.written.endswith("Answer: Miravel\n")
    rs = parse_dream("restatement", "m1", CTX, "Ana Vel makes bread for a living.\nmore", "m1/r0/1", 0)
    assert rs is not None and rs.student == "Ana Vel" and rs.completion == " makes bread for a living."
    assert rs.teacher == prompts.restatement(CTX) + "Ana Vel"
    assert parse_dream("qa", "m1", CTX, " no question mark\nAnswer: x", "d", 0) is None
    assert parse_dream("qa", "m1", CTX, " Where?\nAnswer:", "d", 0) is None  # no answer
    assert parse_dream("restatement", "m1", CTX, "Too short.", "d", 0) is None
    with pytest.raises(ValueError, match="unknown dream kind 'poem'"):
        parse_dream("poem", "m1", CTX, "x", "d", 0)


def test_trial_reward_is_binary_and_keeps_the_gain():
    assert TrialResult("d", "m", 0.25, 0.5, 1.0).reward == 1.0
    assert TrialResult("d", "m", 0.5, 0.5, 1.0).reward == 0.0
    assert TrialResult("d", "m", 0.5, 0.25, 1.0).gain == pytest.approx(-0.25)


def test_importance_is_the_gradient_norm_and_is_larger_for_what_the_model_does_not_know(tiny_model, tiny_tokenizer):
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    prompt, good = "Question: Where does Ana Vel live?\nAnswer:", " Miravel"
    (norm,) = importance(tiny_model, tiny_tokenizer, [prompt], [good], params)
    grads = torch.autograd.grad(sft_loss(tiny_model, tiny_tokenizer, [prompt], [good]), params)
    assert norm == pytest.approx(float(torch.sqrt(sum((g**2).sum() for g in grads))), rel=1e-5)
    assert norm > 0


def _dream(student: str, completion: str) -> DreamSample:
    return DreamSample("d0", "m1", "qa", "", "", student, "", completion)


def test_a_dream_that_cannot_help_gets_reward_zero_and_leaves_the_student_untouched():
    cfg = load_config(None, ["sleep.dreaming.trial_steps=6"]).sleep.dreaming
    probes = [
        SelfProbe("m1", prompts.closed_book("Where does Ana Vel live?"), "Miravel"),
        SelfProbe("m1", prompts.closed_book("What does Ana Vel do for a living?"), "baker"),
    ]
    critic = TrialCritic(BASE, probes, cfg, threads=0)
    before = {n: p.detach().clone() for n, p in critic.lora.model.named_parameters() if "lora" not in n}
    res = critic.trial(_dream("The weather", " was calm over the quiet hills that morning."), seed=0)
    assert res.reward == 0.0 and res.after <= res.before and res.memory_id == "m1"
    after = {n: p for n, p in critic.lora.model.named_parameters() if "lora" not in n}
    assert all(torch.equal(before[n], after[n]) for n in before)  # trials train an adapter, never the student
    scores = critic.importance([_dream(p.prompt, " " + p.reference) for p in probes])
    assert len(scores) == 2 and all(s > 0 for s in scores)


def test_the_m_step_makes_the_winners_more_likely_and_its_adapter_travels_as_arrays():
    cfg = load_config(None, ["sleep.dreaming.generator_steps=10", "sleep.dreaming.generator_lr=0.01"]).sleep.dreaming
    gen = DreamGenerator(BASE, cfg, threads=0, seed=0)
    dreams = gen.write([("m1", CTX)], per_memory=6, seed=0)
    assert dreams and all(d.memory_id == "m1" and d.generator_version == 0 for d in dreams)
    winner = DreamSample(
        "w", "m1", "qa", prompts.question_writing(CTX), " Where does Ana Vel live?\nAnswer: Miravel\n", "", "", ""
    )

    def nll() -> float:
        with torch.no_grad():
            return float(sft_loss(gen.lora.model, gen.lora.tokenizer, [winner.writer_prompt], [winner.written]))

    before = nll()
    gen.learn([winner], seed=0)
    assert gen.version == 1 and nll() < before - 0.1  # the generator now writes its winner more readily
    arrays, version = gen.adapter()
    other = DreamGenerator(BASE, cfg, threads=0, seed=1)
    other.load_adapter(arrays, version)
    assert (
        other.version == 1
        and abs(
            float(sft_loss(other.lora.model, other.lora.tokenizer, [winner.writer_prompt], [winner.written])) - nll()
        )
        < 1e-5
    )
    assert all(d.generator_version == 1 for d in other.write([("m1", CTX)], per_memory=4, seed=0))


def test_merged_adapter_weights_give_a_plain_engine_the_adapted_model():
    """What a vLLM engine receives after an M-step: W + scale * B @ A, by Hugging Face names. Loaded into a plain
    HF engine, they give the same logits as the generator's adapted model."""
    from sleep_ray.rollout.hf import HFEngine

    cfg = load_config(None, ["sleep.dreaming.generator_steps=10", "sleep.dreaming.generator_lr=0.01"]).sleep.dreaming
    gen = DreamGenerator(BASE, cfg, threads=0, seed=0)
    winner = DreamSample(
        "w", "m1", "qa", prompts.question_writing(CTX), " Where does Ana Vel live?\nAnswer: Miravel\n", "", "", ""
    )
    gen.learn([winner], seed=0)
    plain = HFEngine(BASE, threads=0)
    ids = plain.tokenizer(winner.writer_prompt + winner.written, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = plain.model(ids).logits
        assert plain.load_weights(gen.lora.merged(), gen.version) == 1
        merged, adapted = plain.model(ids).logits, gen.lora.model(input_ids=ids).logits
    assert (before - adapted).abs().max() > 1e-2  # the M-step changed the function
    assert torch.allclose(merged, adapted, atol=1e-4)
    assert gen.engine.weight_version() == 1  # the shared engine samples the adapted model, stamped with it


@pytest.mark.slow
def test_rest_em_raises_the_mean_trial_reward_over_rounds_on_the_test_config():
    """E-step, M-step, E-step on four memories of the test world: the generator, fine-tuned on its winners,
    writes dreams that win more trials. Both rounds sample with the same seed, so without learning they would
    write the same dreams and earn the same reward."""
    from sleep_ray.data.world import generate_world
    from sleep_ray.roles.teacher import TeacherSelf

    cfg = load_config(None, ["sleep.dreaming.trial_steps=6", "sleep.dreaming.generator_steps=40"])
    d = cfg.sleep.dreaming
    world = generate_world(cfg.data.world)
    memories = [m for m in world.stream if m.cycle == 1 and m.kind == "document"][:4]
    teacher = TeacherSelf(BASE, threads=0)
    items = teacher.write_questions(memories, per_memory=4, seed=d.probe_seed)
    answers = teacher.answer([it.teacher for it in items], max_new_tokens=d.max_new_tokens)
    probes = [SelfProbe(it.memory_id, it.student, a) for it, a in zip(items, answers) if a.strip()]
    contexts = teacher.contexts(memories)
    gen, critic = DreamGenerator(BASE, d, threads=0, seed=0), TrialCritic(BASE, probes, d, threads=0)
    means = []
    for rnd in range(2):
        dreams = gen.write(contexts, per_memory=6, seed=11, round_=rnd)
        results = [critic.trial(x, seed=i) for i, x in enumerate(dreams)]
        means.append(sum(r.reward for r in results) / len(results))
        gen.learn([x for x, r in zip(dreams, results) if r.reward > 0], seed=rnd)
    assert means[1] > means[0], means
