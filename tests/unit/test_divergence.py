"""Token-level divergences and token log-probabilities against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sleep_ray.losses.divergence import (
    DIVERGENCES,
    divergence,
    forward_kl,
    generalized_jsd,
    reverse_kl,
    token_logprobs,
    topk_logits,
)

D = torch.float64


def _logits(*probs: float) -> torch.Tensor:
    """Logits [1, 1, V] whose softmax is `probs`."""
    return torch.tensor([[[math.log(p) for p in probs]]], dtype=D)


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


P = [0.8, 0.2]
Q = [0.5, 0.5]


def _random(shape: tuple[int, ...] = (3, 4, 11), seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=D) * scale


def test_forward_kl_hand() -> None:
    out = forward_kl(_logits(*P), _logits(*Q))
    assert out.shape == (1, 1)
    expected = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    assert out.item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.1927448, abs=1e-7)


def test_reverse_kl_hand() -> None:
    out = reverse_kl(_logits(*P), _logits(*Q))
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert out.item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2231436, abs=1e-7)


@pytest.mark.parametrize("beta", [0.5, 0.3, 0.9])
def test_jsd_hand(beta: float) -> None:
    m = [beta * p + (1 - beta) * q for p, q in zip(P, Q)]
    expected = beta * _kl(P, m) + (1 - beta) * _kl(Q, m)
    out = generalized_jsd(_logits(*P), _logits(*Q), beta=beta)
    assert out.item() == pytest.approx(expected, rel=1e-10)


def test_jsd_half_is_symmetric_and_bounded_by_log2() -> None:
    a, b = _random(seed=1), _random(seed=2)
    torch.testing.assert_close(generalized_jsd(a, b, beta=0.5), generalized_jsd(b, a, beta=0.5))
    # Nearly disjoint distributions approach the bound log 2.
    far = generalized_jsd(_logits(1 - 1e-12, 1e-12), _logits(1e-12, 1 - 1e-12), beta=0.5)
    assert far.item() == pytest.approx(math.log(2), rel=1e-6)
    assert (generalized_jsd(a, b, beta=0.5) <= math.log(2) + 1e-12).all()


def test_jsd_beta_swaps_roles() -> None:
    # JSD_beta(P, Q) = JSD_{1-beta}(Q, P).
    a, b = _random(seed=3), _random(seed=4)
    torch.testing.assert_close(generalized_jsd(a, b, beta=0.2), generalized_jsd(b, a, beta=0.8))


def test_jsd_endpoints_are_the_kl_limits() -> None:
    a, b = _random(seed=5), _random(seed=6)
    torch.testing.assert_close(generalized_jsd(a, b, beta=0.0), forward_kl(a, b))
    torch.testing.assert_close(generalized_jsd(a, b, beta=1.0), reverse_kl(a, b))
    # ... which are the limits of JSD_beta / beta and JSD_beta / (1 - beta) (the error is O(beta)).
    a, b = _random(seed=5, scale=1.0), _random(seed=6, scale=1.0)
    eps = 1e-6
    torch.testing.assert_close(generalized_jsd(a, b, beta=eps) / eps, forward_kl(a, b), rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(generalized_jsd(a, b, beta=1 - eps) / eps, reverse_kl(a, b), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("kind", DIVERGENCES)
@pytest.mark.parametrize("topk", [0, 4])
def test_zero_when_equal(kind: str, topk: int) -> None:
    a = _random(seed=7)
    out = divergence(kind, a, a.clone(), beta=0.5, topk=topk)
    torch.testing.assert_close(out, torch.zeros(3, 4, dtype=D), atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", DIVERGENCES)
@pytest.mark.parametrize("topk", [0, 3])
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 1.0])
def test_non_negative_on_random(kind: str, topk: int, beta: float) -> None:
    for seed in range(5):
        out = divergence(kind, _random(seed=seed), _random(seed=100 + seed), beta=beta, topk=topk)
        assert out.shape == (3, 4)
        assert torch.isfinite(out).all()
        assert (out >= -1e-12).all()
        assert (out > 0).any()


def test_dispatch_matches_functions() -> None:
    a, b = _random(seed=8), _random(seed=9)
    torch.testing.assert_close(divergence("forward_kl", a, b, beta=0.3), forward_kl(a, b))
    torch.testing.assert_close(divergence("reverse_kl", a, b, beta=0.3), reverse_kl(a, b))
    torch.testing.assert_close(divergence("jsd", a, b, beta=0.3), generalized_jsd(a, b, beta=0.3))


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_topk_full_vocab_equals_full(kind: str) -> None:
    a, b = _random(seed=10), _random(seed=11)
    full = divergence(kind, a, b, beta=0.4)
    torch.testing.assert_close(divergence(kind, a, b, beta=0.4, topk=11), full)
    torch.testing.assert_close(divergence(kind, a, b, beta=0.4, topk=50), full)  # K is capped at V


def test_topk_renormalizes_over_teacher_top_tokens() -> None:
    # Teacher [0.5, 0.3, 0.2]: top-2 = tokens {0, 1} -> P^K = [5/8, 3/8]. Student [0.2, 0.2, 0.6] -> Q^K = [.5, .5].
    teacher = _logits(0.5, 0.3, 0.2)
    student = _logits(0.2, 0.2, 0.6)
    out = divergence("forward_kl", teacher, student, beta=0.5, topk=2)
    assert out.item() == pytest.approx(_kl([5 / 8, 3 / 8], [0.5, 0.5]), rel=1e-12)
    # The selection follows the teacher at each position.
    t_k, s_k = topk_logits(teacher, student, topk=2)
    assert t_k.shape == (1, 1, 2)
    torch.testing.assert_close(s_k, torch.tensor([[[math.log(0.2), math.log(0.2)]]], dtype=D))


@pytest.mark.parametrize("kind", DIVERGENCES)
@pytest.mark.parametrize("topk", [0, 3])
def test_gradient_flows_to_student_only(kind: str, topk: int) -> None:
    teacher = _random(seed=12)
    student = _random(seed=13).requires_grad_(True)
    divergence(kind, teacher, student, beta=0.5, topk=topk).sum().backward()
    assert student.grad is not None
    assert torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None
    if topk:
        outside = torch.ones_like(student.grad, dtype=torch.bool)
        outside.scatter_(-1, teacher.topk(topk, dim=-1).indices, False)
        assert (student.grad[outside] == 0).all()


def test_forward_kl_gradient_is_q_minus_p() -> None:
    # d KL(P || softmax(s)) / d s = Q - P.
    student = _logits(*Q).requires_grad_(True)
    forward_kl(_logits(*P), student).sum().backward()
    torch.testing.assert_close(student.grad, torch.tensor([[[0.5 - 0.8, 0.5 - 0.2]]], dtype=D))


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_temperature_equals_dividing_logits(kind: str) -> None:
    a, b = _random(seed=14), _random(seed=15)
    torch.testing.assert_close(
        divergence(kind, a, b, beta=0.3, temperature=2.5), divergence(kind, a / 2.5, b / 2.5, beta=0.3)
    )
    torch.testing.assert_close(
        divergence(kind, a, b, beta=0.3, temperature=0.5, topk=4),
        divergence(kind, a / 0.5, b / 0.5, beta=0.3, topk=4),
    )


def test_teacher_zero_probability_is_finite() -> None:
    teacher = torch.tensor([[[0.0, -math.inf, 1.0]]], dtype=D)
    student = torch.tensor([[[0.5, 2.0, -1.0]]], dtype=D, requires_grad=True)
    p = torch.softmax(teacher, -1)[0, 0].tolist()
    q = torch.softmax(student.detach(), -1)[0, 0].tolist()
    fkl = forward_kl(teacher, student)
    assert fkl.item() == pytest.approx(_kl(p, q), rel=1e-12)
    rkl = reverse_kl(teacher, student)
    assert rkl.item() == math.inf  # the student puts mass where the teacher has none
    jsd = generalized_jsd(teacher, student, beta=0.5)
    assert torch.isfinite(jsd).all()
    (fkl + jsd).sum().backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_half_precision_is_upcast() -> None:
    a, b = _random(seed=16).bfloat16(), _random(seed=17).bfloat16()
    out = divergence("jsd", a, b, beta=0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, divergence("jsd", a.float(), b.float(), beta=0.5))


def test_bad_arguments() -> None:
    a = _random()
    with pytest.raises(ValueError, match="unknown divergence"):
        divergence("tvd", a, a, beta=0.5)
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(a, a, beta=1.5)
    with pytest.raises(ValueError, match="temperature"):
        forward_kl(a, a, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        reverse_kl(a, a[..., :5])
    with pytest.raises(ValueError, match="topk"):
        divergence("jsd", a, a, beta=0.5, topk=-1)


def test_token_logprobs_hand() -> None:
    logits = torch.tensor([[[math.log(0.8), math.log(0.2)], [math.log(0.3), math.log(0.7)]]], dtype=D)
    tokens = torch.tensor([[1, 1]])
    out = token_logprobs(logits, tokens)
    assert out.shape == (1, 2)
    torch.testing.assert_close(out, torch.tensor([[math.log(0.2), math.log(0.7)]], dtype=D))
    # Logits need not be normalized: adding a constant per position changes nothing.
    torch.testing.assert_close(token_logprobs(logits + 5.0, tokens), out)


def test_token_logprobs_matches_log_softmax_and_temperature() -> None:
    logits = _random(seed=18).requires_grad_(True)
    tokens = torch.randint(0, 11, (3, 4), generator=torch.Generator().manual_seed(0))
    expected = torch.log_softmax(logits / 0.7, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    out = token_logprobs(logits, tokens, temperature=0.7)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="match"):
        token_logprobs(logits, tokens[:, :2])
