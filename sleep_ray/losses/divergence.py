"""Token-level divergences F(T || S) between teacher and student next-token distributions (docs/METHOD.md §3.2).

At every position n the teacher T(. | c, x, y<n) and the student S(. | x, y<n) each give a distribution over the
vocabulary; the functions here return one divergence per position, shape [B, T], from logits [B, T, V]:

    P = softmax(teacher_logits / temperature)      (the teacher)
    Q = softmax(student_logits / temperature)      (the student)

    forward_kl       KL(P || Q) = sum_v P_v (log P_v - log Q_v)
    reverse_kl       KL(Q || P) = sum_v Q_v (log Q_v - log P_v)
    generalized_jsd  beta * KL(P || M) + (1 - beta) * KL(Q || M),   M = beta * P + (1 - beta) * Q

Everything is computed from `log_softmax` and `logaddexp`, never from probabilities that are then logged, and
half-precision logits are upcast to float32 first (float32 and float64 are kept as they are). Terms with P_v = 0
(a teacher logit of -inf) contribute 0, as in the definition 0 * log 0 = 0, without NaN in value or gradient.

Nothing is detached here: the caller passes teacher logits computed under `torch.no_grad()` (or detached), and
the gradient flows to the student logits. Average over the positions of y with `sleep_ray.losses.reduce`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")


def _upcast(logits: Tensor) -> Tensor:
    """float16/bfloat16 -> float32; float32 and float64 unchanged."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _check_temperature(temperature: float) -> None:
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _log_probs(logits: Tensor, temperature: float) -> Tensor:
    """log softmax(logits / temperature) over the last dim. [..., V] -> [..., V]."""
    return torch.log_softmax(_upcast(logits) / temperature, dim=-1)


def _kl(logp: Tensor, logq: Tensor) -> Tensor:
    """KL(p || q) = sum_v p_v (log p_v - log q_v) from log-probabilities. [..., V] x [..., V] -> [...].

    Entries with p_v = 0 contribute exactly 0 (and a zero gradient), even where log q_v = -inf.
    """
    p = logp.exp()
    diff = torch.where(p > 0, logp - logq, torch.zeros_like(logp))
    return (p * diff).sum(dim=-1)


def _check_pair(teacher_logits: Tensor, student_logits: Tensor) -> None:
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher and student logits differ in shape: {tuple(teacher_logits.shape)} vs "
            f"{tuple(student_logits.shape)}"
        )


def forward_kl(teacher_logits: Tensor, student_logits: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Forward KL per position: KL(P || Q) = sum_v P_v (log P_v - log Q_v). Mode-covering for the student.

    P = softmax(teacher_logits / temperature), Q = softmax(student_logits / temperature).
    teacher_logits, student_logits: [B, T, V] (any leading dims). Returns [B, T], >= 0, float32 or float64.
    """
    _check_pair(teacher_logits, student_logits)
    _check_temperature(temperature)
    return _kl(_log_probs(teacher_logits, temperature), _log_probs(student_logits, temperature))


def reverse_kl(teacher_logits: Tensor, student_logits: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Reverse KL per position: KL(Q || P) = sum_v Q_v (log Q_v - log P_v). Mode-seeking for the student.

    P = softmax(teacher_logits / temperature), Q = softmax(student_logits / temperature).
    teacher_logits, student_logits: [B, T, V] (any leading dims). Returns [B, T], >= 0, float32 or float64.
    """
    _check_pair(teacher_logits, student_logits)
    _check_temperature(temperature)
    return _kl(_log_probs(student_logits, temperature), _log_probs(teacher_logits, temperature))


def generalized_jsd(teacher_logits: Tensor, student_logits: Tensor, *, beta: float, temperature: float = 1.0) -> Tensor:
    """Generalized Jensen-Shannon divergence per position (GKD; TRL's `generalized_jsd_loss` convention).

        JSD_beta(P, Q) = beta * KL(P || M) + (1 - beta) * KL(Q || M),   M = beta * P + (1 - beta) * Q
        log M = logaddexp(log P + log beta, log Q + log(1 - beta))

    P = softmax(teacher_logits / temperature) is the teacher, Q = softmax(student_logits / temperature) the
    student. beta = 0.5 gives the symmetric JSD (bounded by log 2). For small beta, JSD_beta ~ beta * KL(P || Q)
    (forward-KL-like); for beta near 1, JSD_beta ~ (1 - beta) * KL(Q || P) (reverse-KL-like).

    Endpoints: at beta = 0 (M = Q) and beta = 1 (M = P) the formula is identically 0, so, like TRL, we return
    the limits JSD_beta / beta -> KL(P || Q) (forward KL) at beta = 0 and JSD_beta / (1 - beta) -> KL(Q || P)
    (reverse KL) at beta = 1. Note the loss scale therefore jumps at the endpoints (by a factor 1/beta).

    teacher_logits, student_logits: [B, T, V] (any leading dims); beta in [0, 1]. Returns [B, T], >= 0.
    """
    _check_pair(teacher_logits, student_logits)
    _check_temperature(temperature)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    logp = _log_probs(teacher_logits, temperature)
    logq = _log_probs(student_logits, temperature)
    if beta == 0.0:
        return _kl(logp, logq)
    if beta == 1.0:
        return _kl(logq, logp)
    logm = torch.logaddexp(logp + math.log(beta), logq + math.log1p(-beta))
    return beta * _kl(logp, logm) + (1.0 - beta) * _kl(logq, logm)


def topk_logits(teacher_logits: Tensor, student_logits: Tensor, *, topk: int) -> tuple[Tensor, Tensor]:
    """Both logits restricted to the teacher's top-k tokens at each position. [B, T, V] -> ([B, T, K], [B, T, K]).

    idx = topk_indices(teacher_logits[b, t], K)   (the K tokens the teacher rates highest; ties broken by torch)
    returns teacher_logits.gather(-1, idx), student_logits.gather(-1, idx)

    K = min(topk, V). A softmax over the result renormalizes each distribution over those K tokens (see
    `divergence`). The selection depends only on the teacher and is invariant to the temperature.
    """
    _check_pair(teacher_logits, student_logits)
    if topk <= 0:
        raise ValueError(f"topk must be > 0, got {topk}")
    k = min(topk, teacher_logits.shape[-1])
    idx = teacher_logits.detach().topk(k, dim=-1).indices
    return teacher_logits.gather(-1, idx), student_logits.gather(-1, idx)


def divergence(
    kind: str,
    teacher_logits: Tensor,
    student_logits: Tensor,
    *,
    beta: float,
    temperature: float = 1.0,
    topk: int = 0,
) -> Tensor:
    """F(T || S) per position, F chosen by `kind` (the `sleep.seeding.divergence` config value).

        kind = "forward_kl" -> KL(P || Q);  "reverse_kl" -> KL(Q || P);  "jsd" -> generalized_jsd(beta)

    `beta` is used only by "jsd". With topk = 0 the distributions are over the full vocabulary V. With
    topk = K > 0 both the teacher and the student are restricted to the teacher's top-K tokens at each position
    and renormalized over those K tokens:

        P^K_v = exp(t_v / tau) / sum_{u in top-K} exp(t_u / tau),   Q^K_v likewise from the student's logits,

    and F is computed between P^K and Q^K. We renormalize (rather than keep the student's full-vocabulary
    log-probabilities on the K tokens) so that F stays a proper divergence between two distributions: zero
    exactly when the student matches the teacher's relative odds within the top-K. The cost of that choice is
    that the student's mass outside the teacher's top-K is not penalized; K = V equals the full divergence.

    teacher_logits, student_logits: [B, T, V]. Returns [B, T].
    """
    if kind not in DIVERGENCES:
        raise ValueError(f"unknown divergence {kind!r}; expected one of {DIVERGENCES}")
    if topk < 0:
        raise ValueError(f"topk must be >= 0, got {topk}")
    if topk > 0:
        teacher_logits, student_logits = topk_logits(teacher_logits, student_logits, topk=topk)
    if kind == "forward_kl":
        return forward_kl(teacher_logits, student_logits, temperature=temperature)
    if kind == "reverse_kl":
        return reverse_kl(teacher_logits, student_logits, temperature=temperature)
    return generalized_jsd(teacher_logits, student_logits, beta=beta, temperature=temperature)


def token_logprobs(logits: Tensor, tokens: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Log-probability of the given tokens: log softmax(logits / temperature)[b, t, tokens[b, t]].

        out[b, t] = l[b, t, tokens[b, t]] - logsumexp_v l[b, t, v],   l = logits / temperature

    `logits` are already aligned to predict `tokens` (logits[:, t] is the distribution of tokens[:, t]; for a
    causal LM that means model_logits[:, :-1] against input_ids[:, 1:]). Pass the sampling temperature to get the
    log-probabilities of the distribution the tokens were drawn from. Computed by gather minus logsumexp, without
    materializing a full [B, T, V] log-softmax.

    logits: [B, T, V]; tokens: [B, T] integer. Returns [B, T], float32 (or float64 for float64 logits).
    """
    _check_temperature(temperature)
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}")
    scaled = _upcast(logits) / temperature
    picked = scaled.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(scaled, dim=-1)
