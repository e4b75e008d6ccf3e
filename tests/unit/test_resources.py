"""Resource requests as config: what each role asks Ray for, and how a request's prompts split over engines."""

from __future__ import annotations

import pytest

from sleep_ray.config import ConfigError, RoleResources, load_config
from sleep_ray.rollout.pool import split
from sleep_ray.runtime.resources import actor_options, ray_resources


def test_a_role_asks_for_its_cpus_gpus_and_custom_resources():
    res = RoleResources(cpus=1.0, gpus=0.5, custom={"rollout_node": 0.5})
    assert ray_resources(res) == {"CPU": 1.0, "GPU": 0.5, "rollout_node": 0.5}
    assert actor_options(res) == {"num_cpus": 1.0, "num_gpus": 0.5, "resources": {"rollout_node": 0.5}}
    assert ray_resources(RoleResources(cpus=0.25)) == {"CPU": 0.25}  # zeros are not asked for
    assert "resources" not in actor_options(RoleResources())


def test_defaults_fit_two_cpus_and_no_gpu():
    r = load_config().resources
    roles = [r.trainer, r.teacher, r.critic, r.rollout, r.dream_generator, r.trial_critic]
    assert all(x.gpus == 0 for x in roles)
    assert r.trainer.cpus * r.train_workers + (r.teachers + 1 + r.rollout_engines) * r.teacher.cpus <= 2


@pytest.mark.parametrize(
    "n,k,want",
    [(10, 2, [(0, 5), (5, 10)]), (5, 2, [(0, 3), (3, 5)]), (1, 3, [(0, 1)]), (0, 2, []), (4, 1, [(0, 4)])],
)
def test_split_cuts_prompts_into_contiguous_near_equal_shares(n, k, want):
    assert split(n, k) == want


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["resources.colocate=[teacher,trainer]"], "resources.colocate"),
        (["resources.placement_strategy=TIGHT"], "resources.placement_strategy"),
        (["resources.rollout.gpus=-1"], "resources.rollout.gpus"),
        (["resources.teacher.custom={rollout_node: -1}"], "resources.teacher.custom.rollout_node"),
        (["resources.engine=vllm", "resources.vllm.tensor_parallel_size=2"], "resources.rollout.gpus"),
        (
            ["resources.engine=vllm", "resources.vllm.tensor_parallel_size=2", "resources.rollout.gpus=2"],
            "resources.dream_generator.gpus",  # a dream-generator writes through its own engine
        ),
        (["serve.gpus_per_replica=-0.5"], "serve.gpus_per_replica"),
    ],
)
def test_a_bad_resource_value_names_its_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, overrides)


def test_tensor_parallel_engine_with_one_gpu_per_shard_loads():
    cfg = load_config(
        None,
        [
            "resources.engine=vllm",
            "resources.vllm.tensor_parallel_size=2",
            "resources.rollout.gpus=2",
            "resources.dream_generator.gpus=2",
        ],
    )
    assert cfg.resources.vllm.tensor_parallel_size == 2
