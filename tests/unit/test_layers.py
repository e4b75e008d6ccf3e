"""Imports run one way: a module may import its own package and any package of a lower layer, never a higher one
and never another package of its own layer. The layers are drawn in docs/ARCHITECTURE.md ("Layers"); every
import counts, including one inside a function."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

# bottom to top; a name is a package of sleep_ray/ or a top-level module (records.py, cli.py)
LAYERS: list[tuple[str, ...]] = [
    ("records", "seeds", "config", "losses", "rewards"),  # typed records, seeds, settings, pure losses and rewards
    ("data", "models"),  # the world and its prompt shapes; checkpoints, growth, generation
    ("eval", "rollout"),  # probing a checkpoint; the engines that sample
    ("train", "roles"),  # pretraining; the roles a night starts (teacher, student, critic, the train loop)
    ("runtime",),  # what both sleep stages and the scheduler share: Ray start-up, fit, budgets, export
    ("seeding", "dream"),  # the two sleep stages
    ("wake",),  # the endpoint and the life of nights
    ("bench",),  # the benchmarks
    ("cli",),  # the command line
]
LAYER = {name: k for k, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """'sleep_ray.wake.app' -> 'wake'; 'sleep_ray.records' -> 'records'; 'sleep_ray' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str, source: str) -> list[str]:
    """Every sleep_ray module `source` imports (absolute or relative, at any depth of the code)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")[: -node.level]
                out.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.append(node.module)
    return [m for m in out if m == "sleep_ray" or m.startswith("sleep_ray.")]


def violations(sources: dict[str, str]) -> list[str]:
    """'importer -> imported (why)' for every import that breaks the layering; `sources`: module name -> code."""
    bad = []
    for module, source in sorted(sources.items()):
        here = _unit(module)
        if here not in LAYER:
            if here:  # the package's own __init__ ('') may import nothing of sleep_ray but itself
                bad.append(f"{module}: {here!r} is in no layer (add it to LAYERS and docs/ARCHITECTURE.md)")
            continue
        for target in _imports(module, source):
            there = _unit(target)
            if not there or there == here:
                continue
            if there not in LAYER:
                bad.append(f"{module} -> {target} ({there!r} is in no layer)")
            elif LAYER[there] > LAYER[here]:
                bad.append(f"{module} -> {target} (upward: layer {LAYER[there]} from layer {LAYER[here]})")
            elif LAYER[there] == LAYER[here]:
                bad.append(f"{module} -> {target} (sideways: {here} and {there} share layer {LAYER[here]})")
    return bad


def _package_sources() -> dict[str, str]:
    root = ROOT / "sleep_ray"
    sources = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[module] = path.read_text()
    return sources


def test_every_import_of_the_package_runs_down_the_layers():
    sources = _package_sources()
    assert len(sources) > 80 and "sleep_ray.records" in sources and "sleep_ray.wake.app" in sources
    assert violations(sources) == []


def test_an_upward_or_sideways_import_is_caught():
    sources = _package_sources()
    sources["sleep_ray.records"] += "\nfrom sleep_ray.wake.app import build_app\n"  # bottom reaching the top
    sources["sleep_ray.dream.run"] += "\ndef f():\n    from sleep_ray.seeding import run\n"  # stage to stage, lazily
    sources["sleep_ray.models.growth"] += "\nfrom ..eval import metrics\n"  # relative, upward
    assert violations(sources) == [
        "sleep_ray.dream.run -> sleep_ray.seeding (sideways: dream and seeding share layer 5)",
        "sleep_ray.models.growth -> sleep_ray.eval (upward: layer 2 from layer 1)",
        "sleep_ray.records -> sleep_ray.wake.app (upward: layer 6 from layer 0)",
    ]


def test_a_new_package_must_be_placed_in_a_layer():
    sources = {"sleep_ray.helpers.misc": "import os\n", "sleep_ray.wake.app": "from sleep_ray.helpers import misc\n"}
    assert violations(sources) == [
        "sleep_ray.helpers.misc: 'helpers' is in no layer (add it to LAYERS and docs/ARCHITECTURE.md)",
        "sleep_ray.wake.app -> sleep_ray.helpers ('helpers' is in no layer)",
    ]


def test_the_layers_in_the_architecture_doc_match_the_test():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    drawn = [tuple(x.strip(" `") for x in row.split("|")[2].split(",")) for row in rows]
    assert drawn == LAYERS


def test_no_module_is_longer_than_about_400_lines():
    long = {p.name: n for p in (ROOT / "sleep_ray").rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}


def test_test_modules_share_helpers_through_one_module_only():
    """Test modules import tests/helpers.py, never one another (nor conftest, which pytest loads itself)."""
    crossing = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
                if node.module != "tests.helpers":
                    crossing.append(f"{path.relative_to(ROOT)} -> {node.module}")
    assert crossing == []
