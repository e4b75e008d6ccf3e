"""Group advantages, the policy-gradient loss and the masked reductions, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sleep_ray.losses.policy import group_advantages, policy_gradient_loss
from sleep_ray.losses.reduce import masked_mean, sequence_mean, token_mean

# ------------------------------------------------------------------------------------- group advantages


def test_group_advantages_hand() -> None:
    # Groups (1, 0) and (0, 1): mean 0.5, population std 0.5 -> +-0.5 / 0.5 = +-1.
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), group_size=2)
    a = 0.5 / (0.5 + 1e-6)
    torch.testing.assert_close(adv, torch.tensor([a, -a, -a, a]))


def test_group_advantages_population_std() -> None:
    # Group (1, 2, 3): mean 2, population std sqrt(2/3) (not the sample std 1).
    r = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    adv = group_advantages(r, group_size=3, eps=0.0)
    s = math.sqrt(2 / 3)
    torch.testing.assert_close(adv, torch.tensor([[-1 / s, 0.0, 1 / s]], dtype=torch.float64))
    assert adv.shape == (1, 3)
    # Normalized advantages have unit population variance within the group.
    assert adv.pow(2).mean().item() == pytest.approx(1.0)


def test_group_advantages_without_std() -> None:
    r = torch.tensor([[0.2, 0.6], [1.0, 0.0]])
    adv = group_advantages(r, group_size=2, normalize_std=False)
    torch.testing.assert_close(adv, torch.tensor([[-0.2, 0.2], [0.5, -0.5]]))


def test_equal_rewards_get_exactly_zero() -> None:
    r = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.7, 0.0, 1.0, 0.5])
    adv = group_advantages(r, group_size=3)
    assert (adv[:6] == 0).all()
    assert adv[6] < 0 < adv[7]
    assert adv[8].abs() < 1e-6
    assert (group_advantages(r, group_size=1) == 0).all()  # a group of one has no baseline signal


def test_group_advantages_shapes_and_dtypes() -> None:
    adv = group_advantages(torch.tensor([1, 0, 1, 1]), group_size=2)
    assert adv.dtype == torch.float32
    assert adv.shape == (4,)
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), group_size=3)
    with pytest.raises(ValueError, match="group_size=3"):
        group_advantages(torch.zeros(2, 2), group_size=3)
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(2), group_size=0)


# ------------------------------------------------------------------------------------ policy gradient


def test_policy_gradient_loss_hand() -> None:
    logprobs = torch.tensor([[-1.0, -2.0, -math.inf], [-0.5, -0.25, -3.0]], requires_grad=True)
    advantages = torch.tensor([2.0, -1.0], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    loss = policy_gradient_loss(logprobs, advantages, mask)
    torch.testing.assert_close(loss.detach(), torch.tensor([[2.0, 4.0, 0.0], [-0.5, -0.25, -3.0]]))
    loss.sum().backward()
    # d loss / d logprob = -advantage on the mask, 0 off it (no NaN from the -inf there).
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-2.0, -2.0, 0.0], [1.0, 1.0, 1.0]]))
    assert advantages.grad is None  # advantages are constants of the estimator


def test_policy_gradient_float_mask_selects_without_weighting() -> None:
    logprobs = torch.tensor([[-1.0, -2.0]])
    loss = policy_gradient_loss(logprobs, torch.tensor([1.0]), torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(loss, torch.tensor([[1.0, 0.0]]))


def test_policy_gradient_raises_the_better_sample() -> None:
    # One step of the loss on a 2-token policy moves probability toward the sample with the higher reward.
    logits = torch.zeros(2, requires_grad=True)
    tokens = torch.tensor([0, 1])
    adv = group_advantages(torch.tensor([1.0, 0.0]), group_size=2)
    logprobs = torch.log_softmax(logits, -1)[tokens].unsqueeze(-1)  # [B=2, T=1]
    loss = sequence_mean(policy_gradient_loss(logprobs, adv, torch.ones(2, 1)), torch.ones(2, 1)).mean()
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[0] < 0 < logits.grad[1]


def test_policy_gradient_shape_checks() -> None:
    with pytest.raises(ValueError, match="advantages"):
        policy_gradient_loss(torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="mask"):
        policy_gradient_loss(torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 2))


# ------------------------------------------------------------------------------------ masked reductions

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


def test_masked_mean_hand() -> None:
    assert masked_mean(VALUES, MASK).item() == pytest.approx((1 + 2 + 4) / 3)
    torch.testing.assert_close(masked_mean(VALUES, MASK, dim=-1), torch.tensor([1.5, 4.0]))
    torch.testing.assert_close(masked_mean(VALUES, MASK, dim=0), torch.tensor([2.5, 2.0, 0.0]))
    # Float weights: (0.5 * 1 + 1 * 2) / 1.5.
    weights = torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_mean(VALUES, weights).item() == pytest.approx(2.5 / 1.5)


def test_masked_mean_empty_and_garbage_outside_the_mask() -> None:
    values = torch.tensor([[math.nan, -math.inf, 2.0]], requires_grad=True)
    mask = torch.tensor([[0, 0, 1]])
    assert masked_mean(values, mask).item() == 2.0
    out = masked_mean(values, torch.zeros(1, 3))
    assert out.item() == 0.0
    (out + masked_mean(values, mask)).backward()
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        masked_mean(VALUES, MASK[:, :2])


def test_sequence_mean_hand() -> None:
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(sequence_mean(VALUES, mask), torch.tensor([1.5, 0.0]))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        sequence_mean(VALUES[0], mask[0])


def test_token_mean_hand_and_global_count() -> None:
    assert token_mean(VALUES, MASK).item() == pytest.approx(7 / 3)
    assert token_mean(VALUES, MASK, total_tokens=7).item() == pytest.approx(1.0)
    assert token_mean(VALUES, MASK, total_tokens=torch.tensor(14)).item() == pytest.approx(0.5)
    assert token_mean(VALUES, torch.zeros_like(MASK)).item() == 0.0
    assert token_mean(VALUES, MASK, total_tokens=0).item() == 0.0


def test_token_mean_is_invariant_to_sharding() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(6, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(6, 5, generator=g) < 0.6
    mask[0] = True
    whole = token_mean(values, mask)
    n_all = mask.sum()
    for split in ([1, 5], [3, 3], [2, 2, 2], [5, 1]):
        shards = zip(values.split(split), mask.split(split))
        summed = sum(token_mean(v, m, total_tokens=n_all) for v, m in shards)
        torch.testing.assert_close(summed, whole)
    # Per-shard means averaged do not give the token mean in general.
    per_shard = torch.stack([token_mean(v, m) for v, m in zip(values.split([1, 5]), mask.split([1, 5]))]).mean()
    assert not torch.isclose(per_shard, whole)
