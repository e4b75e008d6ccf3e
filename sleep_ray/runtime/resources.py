"""What each role asks Ray for, checked against the cluster before anything starts, and the placement group that
keeps colocated roles on one node.

    check_resources(cfg, roles={"teacher": 2, "critic": 1, "rollout": 1}, train_workers=1)  # raises, naming the key
    placement = Placement(cfg.resources, {"teacher": 2, "critic": 1})       # one bundle per actor of those roles
    actor = role_actor(TeacherSelf, cfg.resources.teacher, placement.slot("teacher")).remote(...)
    placement.remove()

Without the check, Ray waits forever for an actor or a Train worker that no node can hold. On an autoscaling
cluster `resources.resource_wait_s` asks the autoscaler for the missing resources and waits that long for nodes
to join before failing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import ray

from sleep_ray.config import ResourcesConfig, RoleResources, ServeConfig


def ray_resources(res: RoleResources) -> dict[str, float]:
    """One actor's request in Ray's resource names: {"CPU": .., "GPU": .., custom...} (zeros left out)."""
    out = {"CPU": float(res.cpus), "GPU": float(res.gpus), **{k: float(v) for k, v in res.custom.items()}}
    return {k: v for k, v in out.items() if v > 0}


def actor_options(res: RoleResources) -> dict[str, Any]:
    """`.options(...)` keywords for an actor of this role."""
    opts: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus}
    if res.custom:
        opts["resources"] = dict(res.custom)
    return opts


def role_actor(cls: type, res: RoleResources, slot: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """`cls` as a Ray actor class asking for this role's resources, in a placement-group slot when given."""
    return ray.remote(cls).options(**actor_options(res), **dict(slot or {}), **options)


def _fits(need: Mapping[str, float], have: Mapping[str, float]) -> bool:
    return all(have.get(k, 0.0) + 1e-9 >= v for k, v in need.items())


def _live_nodes() -> list[dict[str, float]]:
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def _unplaceable(requests: Mapping[str, tuple[dict[str, float], int]], what: str) -> list[str]:
    """Problems of `requests` ({config key: (one actor's resources, count)}) on the live cluster, each naming its
    key: one actor that no node can hold, or a sum beyond the cluster's total. [] when all fit."""
    nodes = _live_nodes()
    total = {k: float(v) for k, v in ray.cluster_resources().items()}
    out = []
    for key, (need, n) in requests.items():
        if n and not any(_fits(need, node) for node in nodes):
            out.append(f"{key}={need} is more than any node of this cluster has ({_node_summary(nodes)})")
    want: dict[str, float] = {}
    for need, n in requests.values():
        for k, v in need.items():
            want[k] = want.get(k, 0.0) + n * v
    short = {k: (v, total.get(k, 0.0)) for k, v in want.items() if total.get(k, 0.0) + 1e-9 < v}
    if short:
        terms = " + ".join(f"{n} x {key}" for key, (_, n) in requests.items() if n)
        needs = ", ".join(f"{v:g} {k} (cluster has {t:g})" for k, (v, t) in short.items())
        out.append(f"{what} needs {needs}: {terms}")
    return out


def _problems(r: ResourcesConfig, roles: Mapping[str, int], train_workers: int) -> list[str]:
    """Every request of a sleep that this cluster can never hold, each naming its key; [] when all fit."""
    counts = {**roles, "trainer": train_workers}
    out = _unplaceable(
        {f"resources.{role}": (ray_resources(getattr(r, role)), n) for role, n in counts.items()}, "this sleep"
    )
    if r.colocate:
        nodes = _live_nodes()
        bundle: dict[str, float] = {}
        for role in r.colocate:
            for k, v in ray_resources(getattr(r, role)).items():
                bundle[k] = bundle.get(k, 0.0) + roles.get(role, 0) * v
        if r.placement_strategy == "STRICT_PACK" and not any(_fits(bundle, node) for node in nodes):
            out.append(f"resources.colocate={list(r.colocate)} needs {bundle} on one node; no node has that")
    return out


def check_serve_resources(s: ServeConfig) -> None:
    """Raise ValueError naming the key when the cluster can never hold `serve.replicas` wake replicas (Serve would
    otherwise keep them pending and the endpoint never come up)."""
    need = {k: v for k, v in {"CPU": s.cpus_per_replica, "GPU": s.gpus_per_replica}.items() if v > 0}
    problems = _unplaceable({"serve.cpus_per_replica/gpus_per_replica": (need, s.replicas)}, "the wake endpoint")
    if problems:
        raise ValueError("; ".join(problems))


def _node_summary(nodes: list[dict[str, float]]) -> str:
    """E.g. "CPU 4, GPU 1; CPU 8": what each live node offers (internal resources such as node:<ip> left out)."""
    internal = ("node:", "memory", "object_store_memory", "accelerator_type:")
    parts = [", ".join(f"{k} {v:g}" for k, v in n.items() if not k.startswith(internal)) for n in nodes]
    return "; ".join(parts) or "no live nodes"


def check_resources(r: ResourcesConfig, roles: Mapping[str, int], train_workers: int = 0) -> None:
    """Raise ValueError naming the key when the cluster can never hold what a sleep asks for: `roles` maps a role
    name of ResourcesConfig to its number of actors, `train_workers` counts Ray Train workers (resources.trainer).
    With `resource_wait_s` > 0, ask the autoscaler for it and wait that long first."""
    problems = _problems(r, roles, train_workers)
    if problems and r.resource_wait_s > 0:
        from ray.autoscaler.sdk import request_resources

        counts = {**roles, "trainer": train_workers}
        bundles = [ray_resources(getattr(r, role)) for role, n in counts.items() for _ in range(n)]
        request_resources(bundles=[b for b in bundles if b])
        deadline = time.time() + r.resource_wait_s
        while problems and time.time() < deadline:
            time.sleep(5.0)
            problems = _problems(r, roles, train_workers)
        request_resources(bundles=[])  # from here the actors' own demand keeps the nodes
    if problems:
        raise ValueError("; ".join(problems))


class Placement:
    """One placement group holding a bundle per actor of the roles in `resources.colocate` (strategy
    `resources.placement_strategy`, STRICT_PACK by default: all on one node). Roles not colocated get no slot."""

    def __init__(self, r: ResourcesConfig, roles: Mapping[str, int], timeout_s: float = 120.0):
        self.group: Any = None
        self._next: dict[str, list[int]] = {}
        bundles: list[dict[str, float]] = []
        for role in r.colocate:
            for _ in range(roles.get(role, 0)):
                self._next.setdefault(role, []).append(len(bundles))
                bundles.append(ray_resources(getattr(r, role)) or {"CPU": 0.01})
        if not bundles:
            return
        from ray.util.placement_group import placement_group

        self.group = placement_group(bundles, strategy=r.placement_strategy, name="")
        if not self.group.wait(timeout_seconds=timeout_s):
            self.remove()
            raise ValueError(
                f"resources.colocate={list(r.colocate)}: the placement group {bundles} ({r.placement_strategy}) "
                f"could not be placed within {timeout_s:g} s"
            )

    def slot(self, role: str) -> dict[str, Any]:
        """Scheduling options for the next actor of `role` ({} when the role is not colocated)."""
        if self.group is None or not self._next.get(role):
            return {}
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        index = self._next[role].pop(0)
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index)}

    def remove(self) -> None:
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.group)
            self.group = None
