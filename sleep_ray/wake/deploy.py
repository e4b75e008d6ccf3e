"""The wake endpoint as a declarative Serve config, and the swap that changes only its `user_config`.

`sleep-ray serve` writes the config (also saved as `<run_dir>/wake/serve_config.json`, so `serve deploy` and
KubeRay's RayService can take it) and PUTs it to the Ray dashboard's Serve REST API. A swap PUTs the same config
with a new `user_config` for `WakeServer` (checkpoint and version): Serve then calls `reconfigure` on every
replica in place (no restart, no new code version): no request fails during a swap under load
(docs/BENCHMARKS.md, "hot swaps under load"). Then `wait_for_version` polls the endpoint until the new version answers.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sleep_ray.config import Config
from sleep_ray.wake.auth import ADMIN_ENV, API_ENV, digest, resolve

IMPORT_PATH = "sleep_ray.wake.app:build_app"
SERVER, CONTROLLER, GATEWAY = "WakeServer", "SleepController", "WakeGateway"
# The scheduler swaps through the head's dashboard and checks the head's HTTP proxy, so it lives on the head node
# (Ray gives the head the built-in resource `node:__internal_head__`).
CONTROLLER_OPTIONS: dict[str, Any] = {"num_cpus": 0.05, "resources": {"node:__internal_head__": 0.001}}
GATEWAY_OPTIONS: dict[str, Any] = {"num_cpus": 0.05}  # checks and routes; the serving replicas do the work


def serve_config(cfg: Config, args: dict[str, Any], checkpoint: str, version: int) -> dict[str, Any]:
    """The Serve deploy config of the wake application (the schema of `serve deploy` / the REST API)."""
    s = cfg.serve
    user_config = {"checkpoint": checkpoint, "version": version, "retrieval": s.retrieval}
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": s.host, "port": s.port},
        "applications": [
            {
                "name": s.app_name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": args,
                "deployments": [
                    {
                        "name": SERVER,
                        "num_replicas": s.replicas,
                        "user_config": user_config,
                        "ray_actor_options": {"num_cpus": s.cpus_per_replica, "num_gpus": s.gpus_per_replica},
                    },
                    {"name": CONTROLLER, "num_replicas": 1, "ray_actor_options": CONTROLLER_OPTIONS},
                    {"name": GATEWAY, "num_replicas": s.gateways, "ray_actor_options": GATEWAY_OPTIONS},
                ],
            }
        ],
    }


def with_weights(config: dict[str, Any], checkpoint: str, version: int) -> dict[str, Any]:
    """A copy of `config` whose WakeServer user_config names `checkpoint` at `version`; nothing else changes."""
    new = copy.deepcopy(config)
    for dep in new["applications"][0]["deployments"]:
        if dep["name"] == SERVER:
            dep["user_config"] = {**dep.get("user_config", {}), "checkpoint": checkpoint, "version": version}
    return new


def _auth_headers() -> dict[str, str]:
    """Ray's bearer token for its dashboard when token auth is on (RAY_AUTH_MODE=token, Ray 2.60's default), else {}."""
    try:
        from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled
    except ImportError:  # a Ray without token auth
        return {}
    return dict(get_auth_headers_if_auth_enabled({}))


def deploy(dashboard: str, config: dict[str, Any], timeout_s: float = 60.0) -> None:
    """PUT the config to the dashboard's Serve REST API (declarative: only what changed is applied)."""
    url = f"{dashboard}/api/serve/applications/"
    r = httpx.put(url, json=config, headers=_auth_headers(), timeout=timeout_s)
    if r.status_code >= 300:
        raise RuntimeError(f"Serve deploy at {dashboard} failed: {r.status_code} {r.text[:500]}")


def wait_for_version(url: str, version: int, replicas: int, timeout_s: float = 300.0) -> None:
    """Return once `2 * replicas` consecutive GET /v1/version calls answer `version` (every replica swapped)."""
    deadline, streak = time.time() + timeout_s, 0
    while time.time() < deadline:
        try:
            got = httpx.get(f"{url}/v1/version", timeout=10).json().get("weight_version")
        except (httpx.HTTPError, json.JSONDecodeError, AttributeError):
            got = None
        streak = streak + 1 if got == version else 0
        if streak >= 2 * replicas:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the endpoint at {url} did not serve weight version {version} within {timeout_s:.0f} s")


def wait_until_up(url: str, timeout_s: float = 300.0) -> int:
    """Wait for the first answer of GET /v1/version; returns the served version."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            r = httpx.get(f"{url}/v1/version", timeout=10)
            if r.status_code == 200:
                return int(r.json()["weight_version"])
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the endpoint at {url} did not come up within {timeout_s:.0f} s")


class Swapper:
    """The scheduler's swap: redeploy with new weights, wait until they answer, remember the config."""

    def __init__(self, dashboard: str, url: str, config_path: Path, replicas: int):
        self.dashboard, self.url, self.path, self.replicas = dashboard, url, config_path, replicas

    def __call__(self, checkpoint: str, version: int) -> None:
        config = with_weights(json.loads(self.path.read_text()), checkpoint, version)
        deploy(self.dashboard, config)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(self.path)
        wait_for_version(self.url, version, self.replicas)


@dataclass
class Endpoint:
    url: str
    dashboard: str
    admin_token: str  # in memory only ("" when the admin routes are open)
    admin_token_from: str  # where it came from, for a message (never the token)
    config_path: Path
    version: int


def launch(cfg_path: str | None, overrides: list[str], admin_token: str = "", timeout_s: float = 300.0) -> Endpoint:
    """Deploy the wake application on the connected (or a new local) Ray cluster and wait until it answers.

    Paths are made absolute (Serve replicas do not share the caller's working directory). The admin token is,
    in order: `admin_token`, env SLEEP_RAY_ADMIN_TOKEN, `serve.admin_token_file`, else a new random one written to
    that file (mode 600), unless `serve.open_admin`. Only its SHA-256 reaches Serve (`auth.py`)."""

    from sleep_ray.config import load_config
    from sleep_ray.runtime.cluster import init_ray
    from sleep_ray.runtime.resources import check_serve_resources
    from sleep_ray.wake.scheduler import ensure_base_version
    from sleep_ray.wake.store import WakeStore

    cfg: Config = load_config(cfg_path, overrides)
    absolute = [f"run_dir={Path(cfg.run_dir).resolve()}"]
    if cfg.model.path:
        absolute.append(f"model.path={Path(cfg.model.path).resolve()}")
    overrides = [*overrides, *absolute]
    cfg = load_config(cfg_path, overrides)
    admin = resolve(admin_token, ADMIN_ENV, cfg.serve.admin_token_file, create=not cfg.serve.open_admin)
    api = resolve("", API_ENV, cfg.serve.api_token_file, create=False)
    init_ray(cfg.resources, dashboard_port=cfg.serve.dashboard_port)
    check_serve_resources(cfg.serve)
    dashboard = _dashboard_url()
    root = Path(cfg.run_dir) / "wake"
    base = ensure_base_version(WakeStore(root), cfg.model.path)
    config_path = root / "serve_config.json"
    args = {
        "config": str(Path(cfg_path).resolve()) if cfg_path else None,
        "overrides": overrides,
        "admin_token_sha256": digest(admin.token) if admin else "",
        "api_token_sha256": digest(api.token) if api else "",
        "dashboard": dashboard,
        "serve_config": str(config_path),
    }
    config = serve_config(cfg, args, base.checkpoint, base.version)
    config_path.write_text(json.dumps(config, indent=2))
    deploy(dashboard, config)
    url = f"http://{cfg.serve.host}:{cfg.serve.port}"
    version = wait_until_up(url, timeout_s)
    token, where = (admin.token, admin.where) if admin else ("", "none: the admin routes are open")
    return Endpoint(url, dashboard, token, where, config_path, version)


def _dashboard_url() -> str:
    """The running Ray cluster's dashboard address as an http URL (waits briefly for the dashboard to start)."""
    import ray

    deadline = time.time() + 60
    while time.time() < deadline:
        addr = ray.worker.get_dashboard_url()
        if addr:
            return addr if addr.startswith("http") else f"http://{addr}"
        time.sleep(0.5)
    raise RuntimeError("the Ray dashboard is not running; the wake endpoint deploys through its Serve REST API")
