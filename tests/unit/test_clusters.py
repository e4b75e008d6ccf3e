"""The cluster files (clusters/) agree with the project: one image tag, the pinned Ray, entrypoints that the CLI
accepts with configs that load, the wake app's Serve config as sleep_ray writes it, and custom resources that the
node types advertise. Pure parsing: no Ray cluster, no Kubernetes, no network."""

from __future__ import annotations

import ast
import copy
import inspect
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from sleep_ray.cli import COMMANDS, build_parser
from sleep_ray.config import ROLES, Config, load_config
from sleep_ray.wake import deploy

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ROOT / "clusters"
DOCKERFILE = CLUSTERS / "Dockerfile"
LAUNCHER = CLUSTERS / "aws-gpu-cluster.yaml"
RAYJOB = CLUSTERS / "kuberay" / "rayjob-sleep.yaml"
RAYSERVICE = CLUSTERS / "kuberay" / "rayservice-wake.yaml"
VOLUMES = CLUSTERS / "kuberay" / "volumes.yaml"
RUNTIME_ENV = CLUSTERS / "runtime_env.yaml"
README = CLUSTERS / "README.md"
GPU_CONFIG = ROOT / "examples" / "gpu_qwen.yaml"
# Every YAML file in clusters/ and the tests below that read it; a new file must be added here (and checked).
COVERED = {LAUNCHER, RAYJOB, RAYSERVICE, VOLUMES, RUNTIME_ENV}
KUBERAY = [RAYJOB, RAYSERVICE]
CLUSTER_FILES = [LAUNCHER, RAYJOB, RAYSERVICE]
IMAGE_KEYS = {"image", "head_image", "worker_image"}  # launcher docker keys; Kubernetes containers use `image`


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ------------------------------------------------------------------------------------------ helpers


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def ray_pin() -> Requirement:
    reqs = [Requirement(d) for d in pyproject()["dependencies"]]
    return next(r for r in reqs if r.name == "ray")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            instr, _, args = line.strip().partition(" ")
            out.append((instr.upper(), args.strip()))
    return out


def instructions(name: str) -> list[str]:
    return [args for instr, args in dockerfile() if instr == name]


def dockerfile_tag() -> str:
    """The tag the Dockerfile declares (LABEL org.opencontainers.image.ref.name)."""
    labels = dict(kv.split("=", 1) for args in instructions("LABEL") for kv in shlex.split(args))
    return labels["org.opencontainers.image.ref.name"]


def base_image_ray_version() -> Version:
    (base,) = instructions("FROM")
    m = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-gpu", base)
    assert m, f"FROM {base}: expected rayproject/ray:<ray version>-py3XX-gpu"
    return Version(m.group(1))


def image_workdir() -> str:
    return instructions("WORKDIR")[-1].rstrip("/") + "/"


def images(node: Any) -> list[str]:
    """Every image named anywhere in a parsed document."""
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k in IMAGE_KEYS]
        return own + [i for v in node.values() for i in images(v)]
    if isinstance(node, list):
        return [i for v in node for i in images(v)]
    return []


def repo_path(path: str) -> Path:
    """A config path as a cluster sees it (relative to the image's WORKDIR, or under it) -> the repo file."""
    rel = path.removeprefix(image_workdir())
    assert not rel.startswith("/"), f"{path}: not a file of the repository (the image holds it at {image_workdir()})"
    return ROOT / rel


def gpu_config() -> Config:
    return load_config(GPU_CONFIG)


def serve_v2() -> dict[str, Any]:
    return yaml.safe_load(load(RAYSERVICE)["spec"]["serveConfigV2"])


def wake_app() -> dict[str, Any]:
    (app,) = serve_v2()["applications"]
    return app


def deployments(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in app["deployments"]}


def cluster_spec(path: Path) -> dict[str, Any]:
    return load(path)["spec"]["rayClusterSpec"]


def groups(path: Path) -> dict[str, dict[str, Any]]:
    """KubeRay node groups by name ("head" and each worker groupName)."""
    spec = cluster_spec(path)
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}


def cpu_quantity(q: Any) -> float:
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def kuberay_custom(params: dict[str, Any]) -> dict[str, float]:
    """rayStartParams.resources in KubeRay's string form '"{\\"name\\": 1}"' -> {"name": 1}."""
    raw = params.get("resources")
    if raw is None:
        return {}
    assert raw.startswith('"') and raw.endswith('"'), f"rayStartParams.resources {raw!r}: KubeRay wants '\"{{...}}\"'"
    return json.loads(raw[1:-1].replace('\\"', '"'))


def group_resources(group: dict[str, Any]) -> dict[str, float]:
    """What the Ray node of a KubeRay group advertises: container limits, rayStartParams overrides, custom."""
    params = group.get("rayStartParams", {})
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    cpus = float(params["num-cpus"]) if "num-cpus" in params else cpu_quantity(limits["cpu"])
    gpus = float(params["num-gpus"]) if "num-gpus" in params else float(limits.get("nvidia.com/gpu", 0))
    return {"CPU": cpus, "GPU": gpus, **kuberay_custom(params)}


HEAD_RESOURCE = "node:__internal_head__"  # Ray gives the head node this built-in resource


def node_resources(path: Path) -> dict[str, dict[str, float]]:
    """Node type (launcher) or group (KubeRay) -> the Ray resources one node of it advertises."""
    if path == LAUNCHER:
        doc = load(LAUNCHER)
        types = {name: dict(t["resources"]) for name, t in doc["available_node_types"].items()}
        types[doc["head_node_type"]][HEAD_RESOURCE] = 1.0
        return types
    out = {name: group_resources(g) for name, g in groups(path).items()}
    out["head"][HEAD_RESOURCE] = 1.0
    return out


def gpu_nodes(path: Path) -> dict[str, dict[str, float]]:
    return {n: r for n, r in node_resources(path).items() if r.get("GPU", 0) > 0}


def role_requests(cfg: Config) -> dict[str, dict[str, float]]:
    """What one actor of each role (and one Serve replica) asks Ray for."""
    out = {}
    for role in ROLES:
        r = getattr(cfg.resources, role)
        out[f"resources.{role}"] = {"CPU": r.cpus, "GPU": r.gpus, **r.custom}
    out["serve"] = {"CPU": cfg.serve.cpus_per_replica, "GPU": cfg.serve.gpus_per_replica}
    return out


def fits(request: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0) >= v for k, v in request.items() if v > 0)


def pod_specs(path: Path) -> list[dict[str, Any]]:
    return [g["template"]["spec"] for g in groups(path).values()]


def launch_args_keys() -> set[str]:
    """The keys of the `args` dict that sleep_ray.wake.deploy.launch builds for the app (read from its source)."""
    tree = ast.parse(inspect.getsource(deploy.launch).lstrip())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "args" for t in node.targets):
            assert isinstance(node.value, ast.Dict), "deploy.launch: `args` is no longer a dict literal"
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError("deploy.launch no longer builds an `args` dict")


# ----------------------------------------------------------------------------------- every file parses


def test_every_yaml_file_in_clusters_is_covered():
    found = {*CLUSTERS.glob("**/*.yaml"), *CLUSTERS.glob("**/*.yml")}
    assert sorted(map(ids, found - COVERED)) == [], "a new file in clusters/: add it to COVERED and check it"
    assert sorted(map(ids, COVERED - found)) == []


@pytest.mark.parametrize("path", sorted(COVERED), ids=ids)
def test_every_yaml_file_parses_into_mappings(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(d, dict) and d for d in docs)


def test_dockerfile_parses_builds_from_the_repo_and_installs_sleep_ray():
    assert [instr for instr, _ in dockerfile()][0] == "FROM"
    assert any(args.split()[-2:] == [".", "."] for args in instructions("COPY")), "COPY . . (the repository)"
    assert any("pip install --no-deps -e ." in args for args in instructions("RUN"))
    assert image_workdir() == "/app/"


# ------------------------------------------------------------------------------------- image and Ray


def test_dockerfile_declares_a_tag_of_the_project_version():
    name, _, tag = dockerfile_tag().rpartition(":")
    assert name and tag == f"{pyproject()['version']}-gpu"


@pytest.mark.parametrize("path", [DOCKERFILE, README], ids=ids)
def test_docker_build_and_push_commands_name_the_declared_tag(path):
    cmds = re.findall(r"docker (build|push) (.*)", path.read_text())
    assert {verb for verb, _ in cmds} == {"build", "push"}
    for verb, args in cmds:
        argv = shlex.split(args)
        tag = argv[argv.index("-t") + 1] if verb == "build" else argv[0]
        assert tag == dockerfile_tag(), f"docker {verb} {args}"


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=ids)
def test_every_image_is_the_dockerfile_tag(path):
    found = [i for doc in yaml.safe_load_all(path.read_text()) for i in images(doc)]
    assert found, f"{ids(path)} names no image"
    assert set(found) == {dockerfile_tag()}


@pytest.mark.parametrize("path", KUBERAY, ids=ids)
def test_every_kuberay_ray_container_names_the_image(path):
    for name, spec in zip(groups(path), pod_specs(path)):
        assert spec["containers"][0].get("image") == dockerfile_tag(), f"{ids(path)}: group {name}"


def test_base_image_ray_is_the_pinned_ray():
    assert ray_pin().specifier.contains(base_image_ray_version()), f"{ray_pin()}"


def test_base_image_python_is_allowed_by_the_project():
    (base,) = instructions("FROM")
    major, minor = re.search(r"-py(\d)(\d+)-", base).groups()
    assert Requirement(f"python{pyproject()['requires-python']}").specifier.contains(f"{major}.{minor}")


@pytest.mark.parametrize("path", KUBERAY, ids=ids)
def test_kuberay_ray_version_is_the_pinned_ray_of_the_image(path):
    version = Version(cluster_spec(path)["rayVersion"])
    assert ray_pin().specifier.contains(version), f"rayVersion {version} vs {ray_pin()}"
    assert version == base_image_ray_version()


# ---------------------------------------------------------------------------------------- entrypoints


def entrypoints() -> list[str]:
    return [load(RAYJOB)["spec"]["entrypoint"]]


@pytest.mark.parametrize("entrypoint", entrypoints())
def test_entrypoint_is_a_sleep_ray_command_with_a_config_that_loads(entrypoint):
    argv = shlex.split(entrypoint)
    assert argv[0] == "sleep-ray" and argv[1] in COMMANDS, entrypoint
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"sleep-ray rejects the arguments of: {entrypoint}")
    assert args.config, f"{entrypoint}: no --config"
    path = repo_path(args.config)
    assert path.is_file(), f"{entrypoint}: {path} is not in the repository"
    load_config(path, args.overrides)


def test_rayjob_runs_once_and_deletes_its_cluster():
    doc = load(RAYJOB)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    assert doc["spec"]["shutdownAfterJobFinishes"] is True


# ------------------------------------------------------------------------------------ the wake service


def test_rayservice_is_a_kuberay_rayservice():
    doc = load(RAYSERVICE)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayService")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own pydantic v1-style fields
def test_serve_config_v2_passes_the_serve_schema():
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(serve_v2())


def test_serve_app_is_the_wake_app():
    app = wake_app()
    assert app["import_path"] == deploy.IMPORT_PATH
    assert app["route_prefix"] == "/"
    assert set(deployments(app)) == {deploy.SERVER, deploy.CONTROLLER, deploy.GATEWAY}


def test_serve_app_args_are_what_launch_passes():
    hashes = {"admin_token_sha256", "api_token_sha256"}  # optional: without them the replicas read the env
    assert set(wake_app()["args"]) == launch_args_keys() - hashes and hashes <= launch_args_keys()


def test_serve_app_config_is_a_repo_config_that_loads():
    args = wake_app()["args"]
    path = repo_path(args["config"])
    assert path.is_file(), f"args.config {args['config']}: {path} is not in the repository"
    assert isinstance(args["overrides"], list)
    cfg = load_config(path, args["overrides"])
    assert wake_app()["name"] == cfg.serve.app_name


def test_serve_app_args_agree_with_its_config():
    args = wake_app()["args"]
    cfg = load_config(repo_path(args["config"]), args["overrides"])
    assert not any("token" in k for k in args), "no secret (nor its hash) in a committed file: replicas read the env"
    assert args["dashboard"] == f"http://localhost:{cfg.serve.dashboard_port}"
    assert Path(args["serve_config"]) == Path(cfg.run_dir) / "wake" / "serve_config.json"  # where launch writes it


def test_wake_server_asks_for_the_configs_replica_resources():
    args = wake_app()["args"]
    s = load_config(repo_path(args["config"]), args["overrides"]).serve
    server = deployments(wake_app())[deploy.SERVER]
    assert server["num_replicas"] == s.replicas
    assert server["ray_actor_options"]["num_gpus"] == s.gpus_per_replica
    assert server["ray_actor_options"]["num_cpus"] == s.cpus_per_replica


def test_serve_config_v2_has_the_structure_sleep_ray_deploys():
    got, app = serve_v2(), wake_app()
    cfg = load_config(repo_path(app["args"]["config"]), app["args"]["overrides"])
    user = deployments(app)[deploy.SERVER]["user_config"]
    want = deploy.serve_config(cfg, app["args"], user["checkpoint"], user["version"])
    assert set(got) == set(want)
    assert {k: got[k] for k in want if k != "applications"} == {k: v for k, v in want.items() if k != "applications"}
    (want_app,) = want["applications"]
    assert {k: v for k, v in app.items() if k != "deployments"} == {
        k: v for k, v in want_app.items() if k != "deployments"
    }
    want_deps = deployments(want_app)
    assert set(deployments(app)) == set(want_deps)
    for name, dep in deployments(app).items():
        assert set(dep) == set(want_deps[name]), name
        assert dep.get("user_config") == want_deps[name].get("user_config"), name
        assert dep["num_replicas"] == want_deps[name]["num_replicas"], name
        wanted_options = want_deps[name]["ray_actor_options"].items()
        assert wanted_options <= dep["ray_actor_options"].items(), f"{name}: sleep_ray deploys {dict(wanted_options)}"


def test_first_served_version_is_the_configured_base_checkpoint():
    app = wake_app()
    cfg = load_config(repo_path(app["args"]["config"]), app["args"]["overrides"])
    user = deployments(app)[deploy.SERVER]["user_config"]
    assert user["checkpoint"] == cfg.model.path
    assert user["version"] == 0  # a plain HF checkpoint reads as version 0 (sleep_ray.models.checkpoint.read_meta)


def test_every_deployment_fits_a_node_of_the_rayservice():
    nodes = node_resources(RAYSERVICE)
    for name, dep in deployments(wake_app()).items():
        opts = dep["ray_actor_options"]
        request = {"CPU": opts.get("num_cpus", 0), "GPU": opts.get("num_gpus", 0), **opts.get("resources", {})}
        assert any(fits(request, node) for node in nodes.values()), f"{name} asks {request}; nodes: {nodes}"


# ---------------------------------------------------------------------------- resources and node types


def test_gpu_config_trains_on_gpus():
    assert gpu_config().resources.trainer.gpus > 0


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=ids)
def test_custom_resources_of_the_gpu_config_are_advertised(path):
    nodes = node_resources(path)
    for role, request in role_requests(gpu_config()).items():
        for name in set(request) - {"CPU", "GPU"}:
            assert any(name in node for node in nodes.values()), f"{role} asks for {name}; {ids(path)}: {nodes}"


@pytest.mark.parametrize("path", KUBERAY, ids=ids)
def test_gpu_worker_group_advertises_the_custom_resources(path):
    custom = {k for req in role_requests(gpu_config()).values() for k in req if k not in ("CPU", "GPU")}
    assert custom, "examples/gpu_qwen.yaml pins no role to a node type (resources.<role>.custom)"
    for name, group in groups(path).items():
        if group_resources(group)["GPU"] > 0:
            assert custom <= set(kuberay_custom(group["rayStartParams"])), f"{ids(path)}: group {name}"


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=ids)
def test_no_role_asks_for_more_gpus_than_a_gpu_worker_has(path):
    workers = gpu_nodes(path)
    assert workers, f"{ids(path)} has no GPU node type"
    smallest = min(r["GPU"] for r in workers.values())
    for role, request in role_requests(gpu_config()).items():
        assert request["GPU"] <= smallest, (
            f"{role}.gpus={request['GPU']:g}; a GPU worker of {ids(path)} has {smallest:g}"
        )


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=ids)
def test_every_role_fits_one_node(path):
    nodes = node_resources(path)
    for role, request in role_requests(gpu_config()).items():
        assert any(fits(request, node) for node in nodes.values()), f"{role} asks {request}; {ids(path)}: {nodes}"


@pytest.mark.parametrize("path", KUBERAY, ids=ids)
def test_kuberay_head_serves_the_dashboard_and_holds_no_gpu(path):
    params = groups(path)["head"]["rayStartParams"]
    assert params["dashboard-host"] == "0.0.0.0"
    assert params["num-gpus"] == "0"


# ------------------------------------------------------------------------------ the cluster launcher


def test_launcher_config_passes_the_autoscaler_schema():
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(load(LAUNCHER))))


def test_launcher_node_types():
    doc = load(LAUNCHER)
    assert doc["provider"]["type"] == "aws"
    types = doc["available_node_types"]
    head = types[doc["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["min_workers"] == head["max_workers"] == 0
    for name in gpu_nodes(LAUNCHER):
        assert 0 < types[name]["min_workers"] <= types[name]["max_workers"] <= doc["max_workers"], name


def test_launcher_starts_ray_with_the_autoscaler_and_joins_the_head_port():
    doc = load(LAUNCHER)
    head = " ".join(doc["head_start_ray_commands"])
    worker = " ".join(doc["worker_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    port = re.search(r"--port=(\d+)", head).group(1)
    assert f"--address=$RAY_HEAD_IP:{port}" in worker
    assert doc["setup_commands"] in ([], None), "the image holds everything: no setup_commands"


# ------------------------------------------------------------------------------- volumes and auth


def launcher_mounts() -> set[str]:
    opts = load(LAUNCHER)["docker"]["run_options"]
    return {o.split()[1].split(":")[1] for o in opts if o.startswith("-v ")}


def pod_mounts(spec: dict[str, Any]) -> set[str]:
    return {m["mountPath"] for m in spec["containers"][0].get("volumeMounts", [])}


def under_a_mount(path: str, mounts: set[str]) -> bool:
    return any(Path(path).is_relative_to(m) for m in mounts)


def test_config_paths_lie_on_the_mounted_volumes():
    cfg = gpu_config()
    paths = [cfg.run_dir, cfg.model.path, cfg.data.world_dir]
    for path in paths:
        assert under_a_mount(path, launcher_mounts()), f"{path}: not on a volume of {ids(LAUNCHER)}"
        for f in KUBERAY:
            for spec in pod_specs(f):
                assert under_a_mount(path, pod_mounts(spec)), f"{path}: not on a volume of {ids(f)}"


@pytest.mark.parametrize("path", KUBERAY, ids=ids)
def test_kuberay_pods_mount_the_claims_of_volumes_yaml(path):
    claims = {d["metadata"]["name"]: d for d in yaml.safe_load_all(VOLUMES.read_text())}
    for spec in pod_specs(path):
        for vol in spec.get("volumes", []):
            if "persistentVolumeClaim" in vol:
                name = vol["persistentVolumeClaim"]["claimName"]
                assert name in claims, f"{ids(path)} mounts {name}, which {ids(VOLUMES)} does not define"
                assert "ReadWriteMany" in claims[name]["spec"]["accessModes"], f"{name}: every pod mounts it"


def test_one_ray_auth_mode_in_every_cluster_file():
    launcher = {o.split("=", 1)[1] for o in load(LAUNCHER)["docker"]["run_options"] if "RAY_AUTH_MODE=" in o}
    kuberay = {cluster_spec(p).get("authOptions", {}).get("mode") for p in KUBERAY}
    assert len(launcher | kuberay) == 1 and None not in kuberay, f"launcher {launcher}, KubeRay {kuberay}"


# ---------------------------------------------------------------------------------------- runtime env


def test_runtime_env_ships_the_code_only():
    env = load(RUNTIME_ENV)
    assert {".venv", "runs"} <= set(env["excludes"])
    assert not {"pip", "conda", "uv", "image_uri", "container"} & set(env), "nodes use the image's packages"
    assert all(isinstance(v, str) for v in env.get("env_vars", {}).values())
