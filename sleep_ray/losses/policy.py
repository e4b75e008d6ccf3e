"""Group-relative advantages and the policy-gradient loss for Learning-to-Imitate (docs/METHOD.md §3.4, 3.5).

The paper does not name the RL optimiser for LTI. We use REINFORCE with a group baseline (GRPO-style
advantages, no critic): for each dream prefix the student samples G completions, each gets the imitation reward
r, and a completion's advantage is its reward relative to the other completions of the same prefix.

    A_i = (r_i - mean_g(r)) / (std_g(r) + eps)        (or r_i - mean_g(r) without std normalization)
    loss[b, n] = -A_b * log S(y_{b,n} | x_b, y_{b,<n})     per token, 0 where the mask is 0

Reduce the per-token loss with `sleep_ray.losses.reduce` (`sequence_mean` or `token_mean`). Minimizing it
follows the policy gradient E[A * grad log S(y|x)], i.e. it maximizes the (1 - alpha) E[r] term of L_KS.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, *, group_size: int, normalize_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO-style group-relative advantages.

        A[i, g] = (r[i, g] - mean_g r[i, :]) / (std_g r[i, :] + eps)     if normalize_std
        A[i, g] =  r[i, g] - mean_g r[i, :]                              otherwise

    rewards: [N * G] (consecutive groups of G samples of the same prompt) or [N, G]; group_size = G. Returns the
    same shape, floating point (integer rewards are converted to float32).

    std is the population standard deviation, sqrt(mean_g (r - mean)^2) (correction 0). TRL's GRPO uses the
    sample std (correction 1); the two differ by the constant factor sqrt((G - 1) / G) for a fixed G, which the
    learning rate absorbs, and the population std is also defined for G = 1. A group whose rewards are all equal
    carries no signal and gets exactly 0 advantage (not a float-rounding residue divided by eps).

    Example: rewards [1, 0, 0, 1], G = 2 -> means [0.5, 0.5], stds [0.5, 0.5] -> A ~ [+1, -1, -1, +1].
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if rewards.dim() not in (1, 2):
        raise ValueError(f"rewards must be [N*G] or [N, G], got {tuple(rewards.shape)}")
    if rewards.dim() == 2 and rewards.shape[1] != group_size:
        raise ValueError(f"rewards {tuple(rewards.shape)} do not have group_size={group_size} columns")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards if rewards.is_floating_point() else rewards.float()
    grouped = r.reshape(-1, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if normalize_std:
        std = grouped.std(dim=1, keepdim=True, correction=0)
        centered = centered / (std + eps)
    constant = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)
    advantages = torch.where(constant, torch.zeros_like(centered), centered)
    return advantages.reshape(rewards.shape)


def policy_gradient_loss(logprobs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """Per-token REINFORCE loss with a group baseline: loss[b, n] = -advantages[b] * logprobs[b, n] where mask != 0.

    logprobs: [B, T], log S(y_{b,n} | x_b, y_{b,<n}) of the sampled tokens under the current student, with
    gradient (see `divergence.token_logprobs`); advantages: [B], one per sampled sequence (`group_advantages`);
    mask: [B, T], bool or float, nonzero on the completion's tokens. Returns [B, T], 0 wherever mask is 0 (even if
    the log-probability there is -inf or NaN). The mask only selects positions; it does not weight them, so a
    float mask is not applied twice when the result is then reduced with the same mask.

    Advantages are constants of the estimator and are detached here. The update is on-policy: each batch of
    samples is drawn from the current student and used for one gradient step, so the importance ratio
    S_new / S_old is 1 and PPO-style ratio clipping would be inert; it is not implemented. Reusing samples for
    several steps would need that ratio (and clipping) added.
    """
    if logprobs.shape != mask.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and mask {tuple(mask.shape)} differ in shape")
    if advantages.shape != logprobs.shape[:1]:
        raise ValueError(f"advantages must be [B]={tuple(logprobs.shape[:1])}, got {tuple(advantages.shape)}")
    adv = advantages.detach().to(logprobs.dtype).unsqueeze(-1)
    keep = mask != 0
    safe_logprobs = torch.where(keep, logprobs, torch.zeros_like(logprobs))
    return torch.where(keep, -adv * safe_logprobs, torch.zeros_like(safe_logprobs))
