"""Config loading: defaults, YAML, dotlist overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleep_ray.config import Config, ConfigError, load_config, to_yaml

ROOT = Path(__file__).resolve().parents[2]
# sleep_ray configs live in examples/ only. The files in clusters/ are Ray and Kubernetes documents (launcher YAML,
# runtime env, KubeRay resources), loaded and checked against the project by tests/unit/test_clusters.py.
CONFIG_FILES = sorted(ROOT.glob("examples/**/*.yaml"))
SLEEP_RAY_CONFIGS = CONFIG_FILES


def test_there_are_example_configs():
    assert (ROOT / "examples" / "tiny_cpu.yaml") in CONFIG_FILES


@pytest.mark.parametrize("path", SLEEP_RAY_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)


def test_override_wins_over_yaml_and_defaults():
    cfg = load_config(ROOT / "examples" / "tiny_cpu.yaml", ["sleep.seeding.lmbda=0.25", "pretrain.steps=7"])
    assert cfg.sleep.seeding.lmbda == 0.25
    assert cfg.pretrain.steps == 7


def test_misspelled_key_in_yaml_names_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sleep:\n  seeding:\n    lmbdaa: 0.3\n")
    with pytest.raises(ConfigError, match=r"sleep\.seeding\.lmbdaa"):
        load_config(bad)


@pytest.mark.parametrize(
    "override, key",
    [
        ("sleep.seeding.lmbda=1.5", "sleep.seeding.lmbda"),
        ("sleep.seeding.divergence=kl", "sleep.seeding.divergence"),
        ("model.hidden_size=abc", "model.hidden_size"),
        ("pretrain.steps=0", "pretrain.steps"),
        ("model.num_heads=3", "model.hidden_size"),
        ("nosuch.key=1", "nosuch"),
        # cross-field: with push_every 3 every sample lags 3 versions, so max_staleness 2 would reject all of them
        ("sleep.seeding.push_every=3", "sleep.seeding.max_staleness"),
        ("sleep.dreaming.curriculum=ppo", "sleep.dreaming.curriculum_policy"),
    ],
)
def test_bad_value_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_a_renamed_key_still_loads_with_a_warning_naming_the_new_one(tmp_path):
    with pytest.warns(DeprecationWarning, match=r"sleep\.seeding\.imitation_per_memory"):
        cfg = load_config(None, ["sleep.seeding.dreams_per_memory=3"])
    assert cfg.sleep.seeding.imitation_per_memory == 3
    old = tmp_path / "old.yaml"
    old.write_text("sleep:\n  seeding:\n    dreams_per_memory: 5\n    lmbda: 0.25\n")
    with pytest.warns(DeprecationWarning, match=r"old\.yaml"):
        cfg = load_config(old)
    assert (cfg.sleep.seeding.imitation_per_memory, cfg.sleep.seeding.lmbda) == (5, 0.25)
    with pytest.raises(ConfigError, match=r"sleep\.seeding\.imitation_per_memory: given twice"):
        load_config(None, ["sleep.seeding.dreams_per_memory=3", "sleep.seeding.imitation_per_memory=2"])


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, str]:
    """full key -> field name of every leaf setting under the dataclass `cls`."""
    import dataclasses
    import typing

    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out.update(_leaf_fields(kind, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            out[f"{prefix}{f.name}"] = f.name
    return out


def test_every_setting_is_read_by_the_code():
    """A setting nobody reads is a lie in the docs: every leaf field is read as an attribute (or a
    getattr(..., "name")) somewhere in sleep_ray outside the config package."""
    import ast

    read: set[str] = set()
    for path in (ROOT / "sleep_ray").rglob("*.py"):
        if "config" in path.relative_to(ROOT / "sleep_ray").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                read.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                read.add(node.value)
    unread = sorted(key for key, name in _leaf_fields(Config).items() if name not in read)
    assert unread == []


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["seed=3", "sleep.growth.layers=[0,2]"])
    path = tmp_path / "cfg.yaml"
    path.write_text(to_yaml(cfg))
    again = load_config(path)
    assert again == cfg
    assert again.sleep.growth.layers == [0, 2]


@pytest.mark.parametrize("path", SLEEP_RAY_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_models_exist_and_were_trained_on_the_configs_world(path):
    """A config's committed model (or the one its pretraining continues) is there and knows the config's world."""
    from sleep_ray.data.schema import fingerprint
    from sleep_ray.data.world import generate_world
    from sleep_ray.models.checkpoint import read_meta

    cfg = load_config(path)
    if cfg.bench.real.model:  # a pretrained model imported on first use (sleep-ray import-model), not committed
        from sleep_ray.models.imported import IMPORTS

        assert cfg.bench.real.model in IMPORTS and cfg.model.path == f"models/{cfg.bench.real.model}"
        return
    models = [p for p in (cfg.model.path, cfg.pretrain.init_from) if p and not p.startswith("/")]  # not a cluster's
    for model in models:
        assert (ROOT / model / "config.json").is_file(), f"{path.name}: {model} is not a committed model"
        trained_on = read_meta(ROOT / model).extra.get("world")
        assert trained_on == fingerprint(generate_world(cfg.data.world)), f"{path.name}: {model} is for another world"
