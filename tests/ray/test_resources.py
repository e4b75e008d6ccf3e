"""Resource checks against the live local cluster (4 logical CPUs, no GPU): a request that can never be placed
fails at once naming its key, instead of Ray waiting forever; colocated roles share one placement group."""

from __future__ import annotations

import pytest

from sleep_ray.config import load_config
from sleep_ray.runtime.resources import Placement, check_resources, check_serve_resources, role_actor


class _Where:
    def group(self) -> str | None:
        import ray

        pg = ray.get_runtime_context().get_placement_group_id()
        return None if pg is None else str(pg)


ROLES = {"teacher": 1, "critic": 1, "rollout": 1}


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["resources.rollout.gpus=1"], r"resources\.rollout=\{'CPU': 0\.25, 'GPU': 1\.0\} is more than any node"),
        (["resources.teacher.custom={rollout_node: 1}"], r"resources\.teacher=.*rollout_node.*more than any node"),
        (["resources.trainer.cpus=64"], r"resources\.trainer=\{'CPU': 64\.0\} is more than any node"),
        (["resources.teachers=40"], r"this sleep needs 11(\.\d+)? CPU .*40 x resources\.teacher"),
        (
            ["resources.colocate=[teacher,critic]", "resources.teacher.cpus=3", "resources.critic.cpus=3"],
            r"resources\.colocate=\['teacher', 'critic'\] needs \{'CPU': 6\.0\} on one node",
        ),
    ],
)
def test_a_request_the_cluster_can_never_hold_fails_naming_the_key(ray_cluster, overrides, message):
    r = load_config(None, overrides).resources
    roles = {**ROLES, "teacher": r.teachers}
    with pytest.raises(ValueError, match=message):
        check_resources(r, roles, train_workers=1)


def test_defaults_fit_the_local_cluster(ray_cluster):
    check_resources(load_config().resources, ROLES, train_workers=1)


def test_colocated_roles_share_one_placement_group(ray_cluster):
    ray = ray_cluster
    r = load_config(None, ["resources.colocate=[teacher,critic]"]).resources
    place = Placement(r, {"teacher": 2, "critic": 1})
    actors = []
    try:
        actors = [role_actor(_Where, r.teacher, place.slot("teacher")).remote() for _ in range(2)]
        actors.append(role_actor(_Where, r.critic, place.slot("critic")).remote())
        actors.append(role_actor(_Where, r.rollout, place.slot("rollout")).remote())  # not colocated
        groups = ray.get([a.group.remote() for a in actors], timeout=120)
        assert groups[0] == groups[1] == groups[2] == place.group.id.hex()
        assert groups[3] is None
    finally:
        for a in actors:
            ray.kill(a)
        place.remove()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["serve.gpus_per_replica=1"],
            r"serve\.cpus_per_replica/gpus_per_replica=\{'CPU': 0\.5, 'GPU': 1\.0\} is more",
        ),
        (["serve.replicas=20"], r"the wake endpoint needs 10 CPU .*20 x serve\.cpus_per_replica"),
    ],
)
def test_wake_replicas_the_cluster_can_never_hold_fail_naming_the_key(ray_cluster, overrides, message):
    with pytest.raises(ValueError, match=message):
        check_serve_resources(load_config(None, overrides).serve)
    check_serve_resources(load_config().serve)  # the default fits
