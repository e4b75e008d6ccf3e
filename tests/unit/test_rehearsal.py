"""Old-knowledge rehearsal on the real tiny base: questions and the anchor's own free text, held to the anchor."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from sleep_ray.models.build import load_pretrained
from sleep_ray.roles.teacher import TeacherSelf
from tests.helpers import ROOT

BASE = str(ROOT / "examples" / "tiny_base")


def test_a_text_share_of_rehearsal_is_the_anchors_free_text_cut_mid_sentence():
    teacher = TeacherSelf(BASE, threads=1)
    items = teacher.rehearsal(24, seed=3, text_share=0.5)
    kinds = Counter(it.kind for it in items)
    # beside the questions, not in their place: as many questions as with no share
    assert 0 < kinds["text"] <= 12 and kinds["rehearsal"] == len(teacher.old_questions(24, seed=3))
    for it in items:
        if it.kind == "text":
            # student and teacher read the same words; the cut leaves the rest of a sentence to continue
            assert it.student == it.teacher and it.memory_id == "" and it.student.strip()
            assert not it.student.rstrip().endswith(".")
    # no text share: questions only, the same ones as before the share existed
    plain = teacher.rehearsal(24, seed=3)
    assert {it.kind for it in plain} == {"rehearsal"}
    assert [it.student for it in plain] == [f"Question: {q}\nAnswer:" for q in teacher.old_questions(24, seed=3)]


def test_old_text_is_answered_and_scored_by_the_anchor_not_the_drifted_model(tmp_path):
    model, tokenizer = load_pretrained(BASE)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a pre-sleep model that has drifted from the base
    model.save_pretrained(tmp_path / "drifted")
    tokenizer.save_pretrained(tmp_path / "drifted")
    drifted = str(tmp_path / "drifted")

    held = TeacherSelf(drifted, threads=1, anchor=BASE)
    items = [it for it in held.rehearsal(16, seed=5, text_share=1.0) if it.kind == "text"]
    assert items
    completions = [tokenizer(" is fond of hiking.")["input_ids"][1:]] * len(items)
    anchored = held.score(items, completions)
    base = TeacherSelf(BASE, threads=1).score(items, completions)
    own = TeacherSelf(drifted, threads=1).score(items, completions)
    for a, b, c in zip(anchored, base, own):
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)
        assert not np.allclose(a.values, c.values, atol=1e-3)
