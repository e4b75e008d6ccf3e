"""One local Ray cluster for the whole test session.

Logical CPUs are over-subscribed (4 on a 2-core box) and every component asks for explicit fractional CPUs,
so Serve + Train + role actors fit; a Ray Train `fit()` that cannot be scheduled would otherwise hang forever.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=4, include_dashboard=True, log_to_driver=False, configure_logging=False)
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    except Exception:  # Serve was never started in this session
        pass
    ray.shutdown()
